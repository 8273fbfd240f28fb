"""The ``tokensphere`` command line: a typer app, one small module per command (STYLE.md, "The command line").

Commands parse options, call the library and print; they hold no mathematics. Errors never show a traceback:

* invalid input (a ``ValueError`` from the library's checks, which name the parameter): one line
  ``error: <message>`` on stderr, exit code 2 (typer's own usage errors also exit with 2);
* a failed integration (:class:`tokensphere.IntegrationError`): one line, exit code 1;
* a problem too large for the memory (the kernel's ``MemoryError``, or torch's allocator failing): one line
  ``error: out of memory: ...``, exit code 2;
* Ctrl-C: one line, exit code 130. Outputs are written atomically, so an interrupted run leaves no store.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from ..io import package_version
from ..integrate import IntegrationError
from .check import check_command
from .demo import demo_command
from .figures import figures_command
from .optimal import optimal_command
from .phase import phase_diagram_command
from .probe import probe_command
from .report import report_command
from .simulate import simulate_command
from .train import train_app
from .sweep import sweep_command

__all__ = ["app", "main", "EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED"]

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell convention


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _report(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _guarded(call: Any) -> Any:
    """Run ``call()`` and turn the library's exceptions into one stderr line and an exit code."""
    try:
        return call()
    except ValueError as exc:
        _report(_one_line(exc), EXIT_BAD_INPUT)
    except IntegrationError as exc:
        _report(f"integration failed: {_one_line(exc)}", EXIT_FAILED)
    except MemoryError as exc:  # the kernel's plan refuses what cannot fit, before allocating
        _report(f"out of memory: {_one_line(exc)}", EXIT_BAD_INPUT)
    except RuntimeError as exc:  # torch's allocator failing mid-way: still one line, naming the size
        if "can't allocate memory" not in str(exc) and "out of memory" not in str(exc):
            raise
        _report(f"out of memory: {_one_line(exc)[:300]}; use smaller sizes", EXIT_BAD_INPUT)
    except OSError as exc:  # a path the system refuses (name too long, permission, read-only file system)
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        _report(f"cannot read or write{where}: {exc.strerror or _one_line(exc)}", EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        _report("interrupted (Ctrl-C); every file is written atomically, so none was left half-written (files "
                "finished before the interrupt are kept)", EXIT_INTERRUPTED)


class _Group(TyperGroup):
    """The app's command group: every command runs under :func:`_guarded` (so ``CliRunner`` sees it too)."""

    def invoke(self, ctx: Any) -> Any:
        return _guarded(lambda: super(_Group, self).invoke(ctx))


app = typer.Typer(
    name="tokensphere",
    cls=_Group,
    help="Self-attention dynamics as interacting particles on the unit sphere (arXiv:2312.10794).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"tokensphere {package_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, show_default="auto",
        help="torch intra-op threads. Default auto: the library's policy (tokensphere.runtime.choose_threads): "
        "one thread for systems of fewer than 512 tokens (batches of small systems run fastest single-threaded and "
        "are immune to a busy machine), all cores from 512 tokens on. A number given here is passed to simulate "
        "(and recorded in the run's metadata) and set as torch's thread count for the other commands.",
    ),
) -> None:
    """Self-attention dynamics as interacting particles on the unit sphere (arXiv:2312.10794)."""
    if threads is not None:  # auto leaves torch's setting alone: the commands apply the library's policy
        import torch

        torch.set_num_threads(threads)


app.command("simulate")(simulate_command)
app.command("demo")(demo_command)
app.command("phase-diagram")(phase_diagram_command)
app.command("sweep")(sweep_command)
app.command("figures")(figures_command)
app.command("report")(report_command)
app.command("check")(check_command)
app.command("probe")(probe_command)
app.add_typer(train_app, name="train")
app.command("optimal")(optimal_command)


def main() -> None:
    """Console-script entry point (``tokensphere``): run the app; bad input exits 2 with one line, never a traceback."""
    try:
        _guarded(lambda: app(prog_name="tokensphere"))
    except typer.Exit as exc:  # raised by _guarded outside typer's own handler (e.g. in an eager callback)
        sys.exit(exc.exit_code)
