"""``tokensphere train transport|classify|interpolate``: train time-dependent weights on one control task
(:mod:`tokensphere.experiments.control`) and write the loss curve, the before/after figure and a JSON summary
into a run folder, atomically (the folder appears complete or not at all).

No ``from __future__ import annotations`` here: the option declarations name each task's defaults, which
typer must read from the evaluated annotations."""


from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from typer import Option

from ..experiments.control import DEFAULT_STEPS, TASKS, run_demo
from ..io import atomic_path, run_metadata, validate_output_path, write_json
from ..plot.control import control_figures
from ..runtime import torch_threads
from ..validate import validate_int
from .options import command_threads
from .progress import stderr_progress

__all__ = ["train_app", "FILES"]

FILES = {
    "loss.png": "training loss against the step (log scale)",
    "clouds.png": "the cloud on S²: x(0) with the target, x(T) untrained, x(T) trained",
    "summary.json": "settings, seed, measured metrics (loss reduction, accuracy), the loss curve, metadata",
}

train_app = typer.Typer(
    help="Train time-dependent weights Q(t), K(t), V(t) and a feed-forward layer (2.8) on a control task "
    "(the controls of §10 of the paper), by backpropagation through the integrator.",
    no_args_is_help=True,
)


def _train(task: str, seed: int, steps: int | None, out: Path | None, overwrite: bool, time_form: str) -> None:
    folder = validate_output_path(out if out is not None else Path(f"runs/train-{task}"), overwrite=overwrite,
                                  replaces="run")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out must be a directory (a run folder), got the file {folder}")
    total = DEFAULT_STEPS[task] if steps is None else steps
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.4g}"), TimeElapsedColumn())
    # the root --threads, else the package's thread policy: one thread for systems of a few hundred tokens
    with torch_threads(command_threads(256)) as threads, stderr_progress(*columns) as bar:
        demo = run_demo(task, seed, steps, time_form=time_form,
                        progress=lambda k, loss: bar(description=f"training {task}", total=total, completed=k,
                                                     loss=loss))
    with atomic_path(folder) as tmp:  # the run folder appears complete or not at all (missing parents made here)
        tmp.mkdir()
        control_figures(demo, tmp)
        summary = {"command": f"tokensphere train {task}", **demo.summary(), "files": FILES,
                   "metadata": run_metadata(dtype=demo.start.dtype, device=demo.start.device, seed=seed,
                                            threads=threads)}  # the count the training ran with
        write_json(tmp / "summary.json", summary)
    m = demo.metrics
    console = Console(highlight=False, soft_wrap=True)
    lines = [f"{task}: loss {m['loss_before']:.4g} → {m['loss_after']:.4g} (reduced {m['reduction']:.3g}×; "
             f"required ≥ {m['required_reduction']:g}×) in {m['seconds']:.1f} s"]
    if "test_accuracy" in m:
        lines.append(f"held-out accuracy {m['accuracy_before']:.3f} untrained → {m['test_accuracy']:.3f} trained "
                     f"(chance {m['chance']:g}, required ≥ {m['required_accuracy']:.3f}); "
                     f"training accuracy {m['train_accuracy']:.3f}")
    lines.append(f"wrote {folder}/")
    lines += [f"  {name:<13} {what}" for name, what in FILES.items()]
    for line in lines:
        console.print(escape(line))


def _command(task: str):
    def command(
        seed: Annotated[int, Option(help="Seed of the data and of the initial weights.")] = 0,
        steps: Annotated[int | None, Option(min=0, help="Training steps (Adam).", show_default=str(DEFAULT_STEPS[task]))]
        = None,
        out: Annotated[Path | None, Option(help="Run folder to create (must not exist unless --overwrite).",
                                          show_default=f"runs/train-{task}")] = None,
        overwrite: Annotated[bool, Option("--overwrite", help="Replace an existing run folder (one holding summary.json) or an empty folder; anything else is refused, never deleted.")] = False,
        time_form: Annotated[str, Option(help="Time dependence of the weights: 'piecewise' (L layers, a discrete "
                                         "Transformer) or 'smooth' (Legendre basis in t).")] = "piecewise",
    ) -> None:
        validate_int("seed", seed, minimum=0, maximum=2**63 - 1)
        _train(task, seed, steps, out, overwrite, time_form)

    command.__doc__ = {
        "transport": "Steer a cloud around the north pole of S² to a two-lobed target measure (loss W₂², exact OT).",
        "classify": "Two classes on S² (polar caps / equatorial band) must end in two clusters; held-out accuracy.",
        "interpolate": "Move n given points to n given targets (loss mean |x_i(T) − y_i|²).",
    }[task]
    return command


for _task in TASKS:
    train_app.command(_task)(_command(_task))
