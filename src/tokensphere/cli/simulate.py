"""``tokensphere simulate``: integrate a batch of systems (every β × ``--batch`` starts) and write a zarr store.

The command builds a :class:`~tokensphere.Model`, an initial state (:func:`~tokensphere.init.make_initial` or a
saved run) and a solver, calls :func:`~tokensphere.simulate` with a progress bar, writes the
:class:`~tokensphere.Trajectory` atomically and prints a one-paragraph summary. It validates the output path
before any work; every other check is the library's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from typer import Option
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from ..analysis import cluster_count
from ..validate import check_int
from ..init import make_initial
from ..integrate import METHODS, anchor_solver
from ..model import Model
from ..simulate import simulate
from ..trajectory import Trajectory, check_output_path
from .options import split_values

__all__ = ["simulate_command", "parse_betas", "progress_bar", "describe_model", "counts_by_beta", "SUMMARY_DELTA"]

SUMMARY_DELTA = 1e-3  # cluster threshold of the paper's Fig. 3 (SPEC §6)
ANCHOR_STEP = 0.1  # the authors' default step (SPEC §7)


def parse_betas(values: Sequence[str] | None) -> list[float]:
    """β values from repeated and/or comma-separated options: ``["1", "4,9"]`` → ``[1.0, 4.0, 9.0]``.

    None gives ``[1.0]``. Raises ValueError naming beta for a token that is not a number; the range (β ≥ 0,
    finite) is checked by :class:`~tokensphere.Model`.
    """
    if not values:
        return [1.0]
    return split_values(values, float, "beta must be a finite number >= 0")


@contextmanager
def progress_bar(description: str, t_max: float) -> Iterator[Callable[[float], None]]:
    """A rich progress bar on stderr, driven by the ``progress`` callback of :func:`~tokensphere.simulate`.

    Yields the callback (it receives the fraction of [0, t_max] done by the slowest system). The bar appears
    at the first call, so input errors raised before the integration starts print no bar; on failure it is
    removed, leaving only the error line.
    """
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("t = {task.fields[t]:.3g} / " + f"{t_max:g}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    task: list[Any] = []

    def update(fraction: float) -> None:
        if not task:
            progress.start()
            task.append(progress.add_task(description, total=1.0, t=0.0))
        progress.update(task[0], completed=fraction, t=fraction * t_max)

    try:
        yield update
    except BaseException:
        if task:  # erase the bar (Live.stop, not Progress.stop, which adds a blank line off a terminal)
            progress.live.transient = True
            progress.live.stop()
        raise
    if task:
        progress.stop()


def describe_model(model: Model) -> str:
    """A short human description: "SA (softmax), V = I" etc."""
    parts = ["SA (softmax)" if model.normalization == "softmax" else "USA (1/n)"]
    parts.append("V = −I (repulsive)" if model.V == "repulsive" else "V = I" if model.V == "identity" else "V given")
    if model.causal:
        parts.append("causal mask")
    if not model.projection:
        parts.append("no projection")
    if model.time_scale != "original":
        parts.append("time s = e^β t")
    return ", ".join(parts)


def counts_by_beta(traj: Trajectory, delta: float) -> dict[float, list[int]]:
    """Final cluster counts (:func:`~tokensphere.analysis.cluster_count`, threshold δ) grouped by β, in the
    order the β values first appear. Returns {β: [count per system]}."""
    counts = cluster_count(traj.final(), delta).tolist()
    betas = traj.model.beta_tensor().expand(traj.shape[1]).tolist()
    out: dict[float, list[int]] = {}
    for b, c in zip(betas, counts):
        out.setdefault(b, []).append(int(c))
    return out


def format_counts(groups: dict[float, list[int]], limit: int = 8) -> str:
    """"β = 1: 1 1 1 1; β = 9: 3 4 3 3" (min/median/max when a β has more than ``limit`` systems)."""
    items = []
    for b, counts in groups.items():
        if len(counts) <= limit:
            items.append(f"β = {b:g}: " + " ".join(map(str, counts)))
        else:
            s = sorted(counts)
            items.append(f"β = {b:g}: median {s[len(s) // 2]} (min {s[0]}, max {s[-1]}, {len(s)} systems)")
    return "; ".join(items)


def simulate_command(
    ctx: typer.Context,
    out: Annotated[Path, Option(help="Output zarr store (a directory) for the Trajectory.")],
    n: Annotated[int, Option(help="Number of tokens n.")] = 32,
    d: Annotated[int, Option(help="Dimension d (tokens on S^{d-1}).")] = 3,
    batch: Annotated[int, Option(help="Systems per β; start k is the same seeded state for every β.")] = 1,
    beta: Annotated[
        list[str] | None,
        Option(help="Inverse temperature β ≥ 0; repeat the option or give a comma list (1,4,9).", show_default="1"),
    ] = None,
    normalization: Annotated[str, Option(help="softmax (SA, /Z) or uniform (USA, /n).")] = "softmax",
    time_scale: Annotated[
        str, Option(help="original, or exp_beta (USA only: time s = e^β t; --t-max is then in s).")
    ] = "original",
    repulsive: Annotated[bool, Option("--repulsive", help="V = −I instead of V = I.")] = False,
    causal: Annotated[bool, Option("--causal", help="Causal mask: token i attends to j ≤ i.")] = False,
    projection: Annotated[
        bool, Option("--projection/--no-projection", help="Apply the tangent projection P⊥ (the paper's model).")
    ] = True,
    t_max: Annotated[float, Option(help="Final time (time plays the role of depth).")] = 10.0,
    save_at: Annotated[int, Option(help="Number of equally spaced output times in [0, t-max].")] = 101,
    solver: Annotated[str | None, Option(help=f"Method: {', '.join(METHODS)}.", show_default="dopri5")] = None,
    dt: Annotated[float | None, Option(help="Step (fixed-step methods) or first step (adaptive).")] = None,
    rtol: Annotated[float | None, Option(help="Relative tolerance (adaptive).", show_default="1e-7")] = None,
    atol: Annotated[float | None, Option(help="Absolute tolerance (adaptive).", show_default="1e-9")] = None,
    anchor: Annotated[
        bool, Option("--anchor", help="The authors' scheme: Euler on the raw field, renormalised; step --dt or 0.1.")
    ] = False,
    init: Annotated[str, Option(help="Start: uniform, orthonormal, cap, hemisphere or equiangular.")] = "uniform",
    cap_angle: Annotated[float | None, Option(help="Cap half-angle in rad (--init cap).", show_default="π/2")] = None,
    gamma0: Annotated[
        float | None, Option(help="Pairwise ⟨x_i, x_j⟩ at t = 0 (--init equiangular).", show_default="0")
    ] = None,
    from_run: Annotated[
        Path | None, Option(help="Start from the final state of a saved run (replaces --init, --n, --d, --seed).")
    ] = None,
    seed: Annotated[int, Option(help="Seed of the initial state (start k uses stream (seed, k)).")] = 0,
    dtype: Annotated[str, Option(help="float64 or float32.")] = "float64",
    device: Annotated[str | None, Option(help="torch device, e.g. cpu or cuda.", show_default="cpu")] = None,
    chunk_size: Annotated[int | None, Option(help="Stream the field over key blocks of this size (O(n) memory).")] = (
        None
    ),
    overwrite: Annotated[bool, Option("--overwrite", help="Replace --out if it exists.")] = False,
) -> None:
    """Integrate the attention dynamics for every β × --batch starts and write a zarr store."""
    out_path = check_output_path(out, overwrite=overwrite)
    _check_device(device)
    betas = parse_betas(beta)
    check_int("batch", batch, minimum=1)
    model = Model(
        beta=torch.tensor(betas, dtype=torch.float64).repeat_interleave(batch),
        normalization=normalization,
        V="repulsive" if repulsive else "identity",
        causal=causal,
        projection=projection,
        time_scale=time_scale,
    )
    if anchor:
        if solver is not None or rtol is not None or atol is not None:
            raise ValueError(
                "anchor sets the solver (Euler + renormalisation); do not combine --anchor with --solver/--rtol/--atol"
            )
        method: Any = anchor_solver(model, step=ANCHOR_STEP if dt is None else dt)
        solver_kw: dict[str, Any] = {}
    else:
        method, solver_kw = solver or "dopri5", {"dt": dt, "rtol": rtol, "atol": atol}

    metadata: dict[str, Any] = {"cli": {"command": "simulate", "options": _jsonable(ctx.params)}}
    if from_run is not None:
        x0: Any = str(from_run)
    else:
        extra = {"angle": cap_angle} if init == "cap" and cap_angle is not None else {}
        if init == "equiangular" and gamma0 is not None:
            extra["gamma0"] = gamma0
        spec = make_initial(init, batch=batch, n=n, d=d, seed=seed, **extra)
        x0 = spec.sample().repeat(len(betas), 1, 1)  # system (β_i, k) starts from stream (seed, k)
        metadata.update(seed=seed, init={**spec.describe(), "shared_across_beta": True})

    with progress_bar("integrating", t_max) as update:
        traj = simulate(
            x0, model=model, solver=method, t_max=t_max, save_at=save_at, dtype=dtype, device=device,
            chunk_size=chunk_size, progress=update, metadata=metadata, **solver_kw,
        )
    traj.save(out_path, overwrite=overwrite)
    _print_summary(traj, out_path)


def _print_summary(traj: Trajectory, path: Path) -> None:
    T, B, n, d = traj.shape
    betas = ", ".join(f"{b:g}" for b in dict.fromkeys(traj.model.beta_tensor().expand(B).tolist()))
    s, meta, steps = traj.solver, traj.metadata, traj.steps.tolist()
    if s.kind == "adaptive":
        how = f"rtol {s.rtol:g}, atol {s.atol:g}"
    else:
        how = f"dt {s.dt:g}" if isinstance(s.dt, (int, float)) else "dt per system"
    raw = "" if s.projected_field else " on the raw field"
    lines = [
        f"{B} systems (β ∈ {{{betas}}}), n = {n}, d = {d}, {describe_model(traj.model)}, "
        f"{meta.get('dtype')} on {meta.get('device')}",
        f"solver {s.method}{raw} ({how}): {min(steps)}–{max(steps)} steps per system, "
        f"{int(traj.rejected.sum())} rejected; t ∈ [0, {float(traj.times[-1]):g}], {T} saved times",
        f"wall time {meta.get('wall_seconds', float('nan')):.2f} s (integration)",
    ]
    if traj.model.projection:  # pure SA (9.1) is a flow on R^d: a threshold on ⟨x_i, x_j⟩ is not a cluster test
        groups = counts_by_beta(traj, SUMMARY_DELTA)
        lines.append(f"clusters at t = {float(traj.times[-1]):g} (δ = {SUMMARY_DELTA:g}): {format_counts(groups)}")
    lines.append(f"wrote {path}")
    console = Console(highlight=False, soft_wrap=True)
    for line in lines:
        console.print(escape(line))


def _check_device(device: str | None) -> None:
    """Raise ValueError for a device string torch does not know, or a CUDA device on a machine without one."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} is not available: torch sees no CUDA device here")


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in params.items()}
