"""The imports point one way: no module imports the package root, layers (the packages, and the top-level
modules of the kernel, model and runtime layers) import only layers below them, and the modules of the report,
plot, experiments, theory and analysis packages import no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "tokensphere"
# (package, packages it must not import): cli → report → plot → experiments → analysis/theory/simulate/...
FORBIDDEN = {
    "theory": ("simulate", "experiments", "plot", "report", "cli", "sweep", "integrate"),
    "analysis": ("experiments", "plot", "report", "cli"),
    "experiments": ("plot", "report", "cli"),
    "plot": ("report", "cli"),
    "report": ("cli",),
    "circle": ("experiments", "plot", "report", "cli", "sweep", "analysis", "meanfield", "probe"),
    "meanfield": ("experiments", "plot", "report", "cli", "sweep", "probe"),
    "probe": ("report", "cli", "sweep"),
    "sweep": ("experiments", "plot", "report", "cli"),
    "optimal": ("experiments", "plot", "report", "cli", "sweep", "simulate"),
    "integrate": ("simulate", "experiments", "plot", "report", "cli", "sweep", "analysis", "circle", "meanfield",
                  "blocks", "layers"),
    "control": ("experiments", "plot", "report", "cli", "sweep"),
}
_ABOVE_KERNEL = ("simulate", "integrate", "experiments", "plot", "report", "cli", "sweep", "analysis", "circle",
                 "meanfield", "probe", "optimal", "control", "blocks", "layers", "trajectory", "io")
# the top-level modules of the bottom layers (files, not packages): the kernel, the model, the runtime
FORBIDDEN.update({
    "field": _ABOVE_KERNEL,
    "rowpass": _ABOVE_KERNEL + ("field", "model", "weights"),
    "model": _ABOVE_KERNEL + ("field", "energy"),
    "weights": _ABOVE_KERNEL + ("field", "energy", "model"),
    "schedule": _ABOVE_KERNEL + ("field", "energy", "model"),
    "runtime": _ABOVE_KERNEL + ("field", "energy", "model", "weights", "schedule"),
    "validate": _ABOVE_KERNEL + ("field", "energy", "model", "weights", "schedule", "runtime"),
})
# files of other owners that still import the package root; each is to be fixed where it lives
ROOT_IMPORT_KNOWN: set[str] = set()


def _module(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = ["tokensphere", *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    """Absolute names of every module imported anywhere in the file (also inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append(name)
            out += [f"{name}.{a.name}" for a in node.names]  # "from . import x" may name a module
    return out


FILES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_imports_the_package_root(path):
    if str(path.relative_to(SRC)) in ROOT_IMPORT_KNOWN or path == SRC / "__init__.py":
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert all(a.name != "tokensphere" for a in node.names), f"{path}: import tokensphere"
        elif isinstance(node, ast.ImportFrom):
            target = node.module if not node.level else ".".join(
                package.split(".")[: len(package.split(".")) - node.level + 1] + ([node.module] if node.module else []))
            submodules = all((SRC / a.name).is_dir() or (SRC / f"{a.name}.py").is_file() for a in node.names)
            where = f"{path}: from {'.' * node.level}{node.module or ''} import …"
            assert target != "tokensphere" or submodules, where


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_below(layer):
    bad = []
    paths = sorted((SRC / layer).rglob("*.py")) if (SRC / layer).is_dir() else [SRC / f"{layer}.py"]
    assert paths and all(p.is_file() for p in paths), layer
    for path in paths:
        for name in _imports(path):
            parts = name.split(".")
            if len(parts) > 1 and parts[0] == "tokensphere" and parts[1] in FORBIDDEN[layer]:
                bad.append(f"{path.relative_to(SRC)} imports {name}")
    assert not bad, bad


def test_no_import_cycle_within_my_packages():
    mods = {_module(p): p for p in FILES if p.parent.name in ("report", "plot", "experiments", "theory", "analysis")}
    graph = {m: {i for i in _imports(p) if i in mods and i != m} for m, p in mods.items()}
    # a package __init__ re-exporting its modules is not a cycle: drop the edges into __init__ modules
    inits = {_module(p) for p in FILES if p.name == "__init__.py"}
    graph = {m: {i for i in deps if i not in inits} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for nxt in graph[m]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " → ".join(stack[stack.index(nxt):] + [m, nxt]))
            if nxt not in state:
                visit(nxt, stack + [m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
