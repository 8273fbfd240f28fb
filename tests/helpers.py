"""Helpers shared by several test modules (random inputs that do not use the library, CLI assertions, the
benchmark scripts as modules)."""

import importlib.util
from pathlib import Path

import torch
from typer.testing import CliRunner

from tokensphere.cli import app

runner = CliRunner()


def sphere(B, n, d, seed):
    """(B, n, d) uniform points on the sphere from torch's own generator (independent of tokensphere.init)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, n, d, generator=g, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


def gauss(*shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=torch.float64)


def invoke(*args):
    """Run the CLI in-process (every argument stringified)."""
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, code: int, word: str) -> None:
    """Exit ``code``, exactly one stderr line ``error: ...`` mentioning ``word``, no traceback anywhere."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, (result.exit_code, result.output)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and word in lines[0], lines[0]
    assert "Traceback" not in result.output


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` imported as a module (the benchmarks are scripts, not a package)."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
