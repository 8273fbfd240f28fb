"""``tokensphere demo``: a small but real experiment, written to a run folder in a few seconds.

n = 32 tokens on S² (d = 3), SA with V = I, β ∈ {1, 9}, four seeded uniform starts shared by both β, adaptive
dopri5 (rtol 1e-8) on t ∈ [0, 30] with 151 saved times. The folder holds the Trajectory (zarr), three figures
(tokens on the sphere, normalised energy, cluster counts) and summary.json. Expected picture: at β = 1 every
start collapses to one cluster; at β = 9 the tokens sit in several clusters at t = 30 (metastability,
SPEC §5.11); Ē(t) is non-decreasing in every system (SPEC §8.7).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import torch
from rich.console import Console
from rich.markup import escape
from typer import Option

from ..analysis import cluster_count, scale_aware_delta
from ..validate import check_int
from ..energy import energy_normalized
from ..init import Uniform
from ..model import Model
from ..plot import Panel, save_figure, series_figure, tokens_figure
from ..simulate import simulate
from ..trajectory import Trajectory, check_output_path
from .simulate import describe_model, format_counts, progress_bar

__all__ = ["demo_command", "DEMO_BETAS", "DELTA"]

N, D = 32, 3  # n = 32 as in Fig. 3; d = 3 so the tokens can be drawn on S² (SPEC §6)
DEMO_BETAS = (1.0, 9.0)  # the ends of the Fig. 3 β range [0.1, 9]: one cluster vs metastable clusters
SNAPSHOTS = (0.0, 3.0, 10.0, 30.0)
RTOL, ATOL = 1e-8, 1e-10
DELTA = 1e-3  # cluster threshold ⟨x_i, x_j⟩ > 1 − δ of Fig. 3 (SPEC §6)
# Scale-aware threshold δ_β = 1 − cos(τ*_β/2) (analysis.scale_aware_delta): half the angle τ*_β ≈ √((d−1)/β)
# beyond which a pair no longer attracts (SPEC §5.4); absolute thresholds ignore that scale (SPEC §7).
SCALED_LABEL = "δ = 1 − cos(τ*_β/2)"
FILES = {
    "trajectory.zarr": "the run: positions (time, system, token, dim), β, steps, seeds, metadata",
    "tokens.png": "tokens on S² at a few times, one start per β, with their paths",
    "energy.png": "normalised energy Ē(t) = 2β e^(−β) E_β(t) per system (non-decreasing)",
    "clusters.png": f"number of clusters over time, δ = {DELTA:g} and the scale-aware {SCALED_LABEL}",
    "summary.json": "settings, seeds, final cluster counts, energy check, wall time, metadata",
}


def demo_command(
    out: Annotated[Path, Option(help="Run folder to create (must not exist unless --overwrite).")] = Path("runs/demo"),
    overwrite: Annotated[
        bool, Option("--overwrite", help="Reuse an existing folder, replacing the demo files.")
    ] = False,
    seed: Annotated[int, Option(help="Seed of the initial states (start k uses stream (seed, k)).")] = 0,
    n_seeds: Annotated[int, Option(hidden=True, help="Starts per β.")] = 4,
    t_max: Annotated[float, Option(hidden=True, help="Final time.")] = 30.0,
    save_at: Annotated[int, Option(hidden=True, help="Number of saved times.")] = 151,
    report: Annotated[bool, Option("--report/--no-report", help="After the run, reproduce Figures 2–6 (reduced) "
                                   "and write the HTML report DIR/index.html.")] = True,
    quick: Annotated[bool, Option(hidden=True, help="Tiny grids (for tests).")] = False,
) -> None:
    """Reproduce the paper at reduced size: a clustering run (n = 32 on S², β = 1 and 9), Figures 2–6, the
    anchor-vs-adaptive comparison and the theorem checks, in one HTML report (DIR/index.html)."""
    # The demo's tensors are small: intra-op threads only add synchronisation. Measured on a loaded 2-core
    # machine: integration 0.25 s with one thread, 3–8 s with two.
    from ..runtime import torch_threads
    from .reproduce import reproduce

    folder = check_output_path(out, overwrite=overwrite)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out must be a directory (a run folder), got the file {folder}")
    with torch_threads(1):
        _demo(folder / "run", True, seed, n_seeds, t_max, save_at)
        if report:
            index = reproduce(folder, seed=seed, quick=quick)
            Console(highlight=False, soft_wrap=True).print(escape(f"report: {index}"))


def _demo(out: Path, overwrite: bool, seed: int, n_seeds: int, t_max: float, save_at: int) -> None:
    start = time.perf_counter()
    folder = check_output_path(out, overwrite=overwrite)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out must be a directory (a run folder), got the file {folder}")
    check_int("n_seeds", n_seeds, minimum=1)
    spec = Uniform(batch=n_seeds, n=N, d=D, seed=seed)
    x0 = spec.sample().repeat(len(DEMO_BETAS), 1, 1)  # system (β_i, k) starts from stream (seed, k)
    model = Model(beta=torch.tensor(DEMO_BETAS, dtype=torch.float64).repeat_interleave(n_seeds))
    console = Console(highlight=False, soft_wrap=True)
    console.print(
        f"demo: {describe_model(model)}, n = {N} tokens on S², β ∈ {{{', '.join(f'{b:g}' for b in DEMO_BETAS)}}} "
        f"× {n_seeds} seeded starts, dopri5 (rtol {RTOL:g}), t ∈ [0, {t_max:g}], {save_at} saved times"
    )
    meta = {"seed": seed, "init": {**spec.describe(), "shared_across_beta": True}, "cli": {"command": "demo"}}
    with progress_bar("integrating", t_max) as update:
        traj = simulate(
            x0, model=model, solver="dopri5", rtol=RTOL, atol=ATOL, t_max=t_max, save_at=save_at,
            progress=update, metadata=meta,
        )
    folder.mkdir(parents=True, exist_ok=True)
    traj.save(folder / "trajectory.zarr", overwrite=overwrite)

    betas = traj.model.beta_tensor().tolist()
    energy = torch.stack([energy_normalized(x, traj.model) for x in traj.positions])  # (T, B)
    k_fixed = cluster_count(traj.positions, DELTA)  # (T, B)
    k_scaled = torch.empty_like(k_fixed)
    for b in DEMO_BETAS:
        idx = [s for s, v in enumerate(betas) if v == b]
        k_scaled[:, idx] = cluster_count(traj.positions[:, idx], float(scale_aware_delta(b, D)))
    _figures(traj, folder, energy, k_fixed, k_scaled, n_seeds)

    drop = max(float((energy[:-1] - energy[1:]).max()), 0.0)  # largest step-to-step decrease of Ē
    final = {"fixed": _by_beta(k_fixed[-1], betas), "scaled": _by_beta(k_scaled[-1], betas)}
    wall = time.perf_counter() - start
    _write_json(folder / "summary.json", _summary(traj, seed, n_seeds, final, energy[-1].tolist(), drop, wall))

    steps, t_end = traj.steps.tolist(), float(traj.times[-1])
    lines = [
        f"integrated {len(betas)} systems in {traj.metadata['wall_seconds']:.2f} s "
        f"({min(steps)}–{max(steps)} steps per system); total {wall:.1f} s",
        f"clusters at t = {t_end:g} (δ = {DELTA:g}):   {format_counts(final['fixed'])}",
        f"clusters at t = {t_end:g} ({SCALED_LABEL}): {format_counts(final['scaled'])}",
        "energy Ē(t) " + ("non-decreasing in every system" if drop <= RTOL else "NOT monotone")
        + f" (largest step-to-step decrease {drop:.2g}, tolerance {RTOL:g})",
        f"wrote {folder}/",
    ]
    lines += [f"  {name:<16} {what}" for name, what in FILES.items()]
    for line in lines:
        console.print(escape(line))


def _figures(traj: Trajectory, folder: Path, energy, k_fixed, k_scaled, n_seeds: int) -> None:
    t_end = float(traj.times[-1])
    snaps = [t for t in SNAPSHOTS if t <= t_end] + ([] if t_end in SNAPSHOTS else [t_end])
    fig = tokens_figure(
        traj.positions, traj.times, systems=[i * n_seeds for i in range(len(DEMO_BETAS))],  # start 0 of each β
        snapshot_times=snaps, row_labels=[f"β = {b:g}" for b in DEMO_BETAS],
        title=f"SA, n = {traj.shape[2]} tokens on S², the same start for both β",
    )
    save_figure(fig, folder / "tokens.png")
    betas = traj.model.beta_tensor().tolist()
    energy_panel = Panel(energy, r"$\bar E = 2\beta\, e^{-\beta} E_\beta$", "normalised energy (1 = consensus)")
    save_figure(series_figure(traj.times, [energy_panel], betas, title="Energy along the flow"), folder / "energy.png")
    panels = [
        Panel(k_fixed, "number of clusters", f"δ = {DELTA:g}", logy=True, steps=True),
        Panel(k_scaled, "number of clusters", f"scale-aware {SCALED_LABEL}", logy=True, steps=True),
    ]
    title = r"Clusters: connected components of $\{\langle x_i, x_j\rangle > 1 - \delta\}$"
    save_figure(series_figure(traj.times, panels, betas, title=title), folder / "clusters.png")


def _by_beta(counts: torch.Tensor, betas: list[float]) -> dict[float, list[int]]:
    out: dict[float, list[int]] = {}
    for b, c in zip(betas, counts.tolist()):
        out.setdefault(b, []).append(int(c))
    return out


def _summary(traj: Trajectory, seed, n_seeds, final, final_energy, drop, wall) -> dict[str, Any]:
    T, B, n, d = traj.shape
    t_end = float(traj.times[-1])
    return {
        "command": "tokensphere demo",
        "settings": {
            "n": n, "d": d, "betas": list(DEMO_BETAS), "starts_per_beta": n_seeds, "t_max": t_end,
            "saved_times": T, "snapshot_times": [t for t in SNAPSHOTS if t <= t_end],
            "model": traj.model.describe(), "solver": traj.solver.describe(),
        },
        "seeds": {
            "seed": seed,
            "systems": [{"system": s, "beta": b, "stream": [seed, s % n_seeds]}
                        for s, b in enumerate(traj.model.beta_tensor().tolist())],
            "note": "system (beta_i, k) starts from numpy SeedSequence([seed, k]): the same start for every beta",
        },
        "final_cluster_counts": {
            "time": t_end,
            "delta_fixed": {"delta": DELTA, "by_beta": {f"{b:g}": c for b, c in final["fixed"].items()}},
            "delta_scale_aware": {
                "delta": {f"{b:g}": float(scale_aware_delta(b, D)) for b in final["scaled"]},
                "by_beta": {f"{b:g}": c for b, c in final["scaled"].items()},
            },
        },
        "energy_normalized": {
            "final_by_system": final_energy,
            "largest_step_decrease": drop,
            "tolerance": RTOL,
            "non_decreasing": drop <= RTOL,
        },
        "steps": traj.steps.tolist(),
        "rejected": traj.rejected.tolist(),
        "wall_seconds": {"integration": traj.metadata.get("wall_seconds"), "total": wall},
        "files": FILES,
        "metadata": traj.metadata,
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON through a temporary sibling renamed into place (never a truncated file)."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
