"""The three figures of ``tokensphere demo``'s run: tokens on S², the normalised energy, the cluster counts."""

from __future__ import annotations

from pathlib import Path

from ..experiments.demo import DELTA, DEMO_BETAS, SCALED_LABEL, SNAPSHOTS, DemoRun
from ..experiments.layout import system_betas
from .save import save_figure
from .series import ENERGY_LABEL, Panel, series_figure
from .tokens import tokens_figure

__all__ = ["demo_figures"]


def demo_figures(run: DemoRun, folder: Path) -> list[Path]:
    """Write tokens.png (start 0 of each β at a few times), energy.png (Ē(t) per system) and clusters.png (counts
    for the fixed and the scale-aware δ) into ``folder``. Returns the paths written."""
    traj = run.traj
    t_end = float(traj.times[-1])
    snaps = [t for t in SNAPSHOTS if t <= t_end] + ([] if t_end in SNAPSHOTS else [t_end])
    fig = tokens_figure(
        traj.positions, traj.times, systems=[i * run.n_seeds for i in range(len(DEMO_BETAS))],  # start 0 of each β
        snapshot_times=snaps, row_labels=[f"β = {b:g}" for b in DEMO_BETAS],
        title=f"SA, n = {traj.shape[2]} tokens on S², the same start for both β",
    )
    tokens = save_figure(fig, folder / "tokens.png")
    betas = system_betas(traj.model, traj.shape[1])
    energy_panel = Panel(run.energy, ENERGY_LABEL, "normalised energy (1 = consensus)")
    energy = save_figure(series_figure(traj.times, [energy_panel], betas, title="Energy along the flow"),
                         folder / "energy.png")
    panels = [
        Panel(run.k_fixed, "number of clusters", f"δ = {DELTA:g}", logy=True, steps=True),
        Panel(run.k_scaled, "number of clusters", f"scale-aware {SCALED_LABEL}", logy=True, steps=True),
    ]
    title = r"Clusters: connected components of $\{\langle x_i, x_j\rangle > 1 - \delta\}$"
    clusters = save_figure(series_figure(traj.times, panels, betas, title=title), folder / "clusters.png")
    return [tokens, energy, clusters]
