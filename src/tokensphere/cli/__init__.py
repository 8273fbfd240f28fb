"""The ``tokensphere`` command line: a typer app, one small module per command (STYLE.md, "The command line").

Commands parse options, call the library and print; they hold no mathematics. Errors never show a traceback:

* invalid input (a ``ValueError`` from the library's checks, which name the parameter): one line
  ``error: <message>`` on stderr, exit code 2 (typer's own usage errors also exit with 2);
* a failed integration (:class:`tokensphere.IntegrationError`): one line, exit code 1;
* a problem too large for the memory (the kernel's ``MemoryError``, or torch's allocator failing): one line
  ``error: out of memory: ...``, exit code 2;
* Ctrl-C: one line, exit code 130. Outputs are written atomically, so an interrupted run leaves no store, and
  the sets of files of ``figures``, ``demo``, ``probe``, ``check`` and ``train`` appear all together or not at all.

The root option ``--threads N`` holds for the whole command: it is torch's thread count while the command runs
(restored afterwards) and wins over the thread policy wherever a command applies one (``options.command_threads``,
``options.root_threads``).
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
from .options import root_threads_applied
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
        _report("interrupted (Ctrl-C); every file is written atomically, so none was left half-written (a set of "
                "files written together appears whole or not at all; other files finished before the interrupt are "
                "kept)", EXIT_INTERRUPTED)


class _Group(TyperGroup):
    """The app's command group: every command runs under :func:`_guarded` (so ``CliRunner`` sees it too), with
    torch's thread count set to the root ``--threads`` when given (and restored afterwards)."""

    def invoke(self, ctx: Any) -> Any:
        def run() -> Any:
            with root_threads_applied(ctx.params.get("threads")):
                return super(_Group, self).invoke(ctx)

        return _guarded(run)


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
        "are immune to a busy machine), all cores from 512 tokens on. A number given here is torch's thread count "
        "for the whole command and wins over that policy wherever a command sets the threads (simulate, train, "
        "figures, demo, check, report) and for every integration the library starts inside the command; it is "
        "recorded in their metadata.",
    ),
) -> None:
    """Self-attention dynamics as interacting particles on the unit sphere (arXiv:2312.10794)."""
    # the root --threads is applied around the command by _Group.invoke (options.root_threads_applied) and read
    # by the commands through options.command_threads; auto leaves torch's setting alone, and the commands apply
    # the library's policy


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
