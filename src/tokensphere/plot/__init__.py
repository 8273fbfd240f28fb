"""Figures (one module per figure family). matplotlib only, Agg canvas, no LaTeX, no pyplot global state.

* :func:`tokens_figure` — token positions on the circle (d = 2) or on S² (d = 3) at a few times, with trajectories.
* :func:`series_figure` — quantities over time (energy, cluster counts), one line per system coloured by β.
* :func:`save_figure` — write a figure atomically (:func:`tokensphere.io.atomic_path`).
* :func:`phase_figure`, :func:`phase_difference_figure` — Figures 3 and 5 from a phase-diagram dataset.
* :func:`regimes_figure` — Figure 2 from :func:`tokensphere.theory.regimes`.
* :func:`circle_figure`, :func:`cluster_count_distribution_figure` — Figure 4 and the counts over seeds.
* :func:`g_figure` — Figure 6 (g and ±τ*_β).
* :func:`metastability_figure` — plateaus, merges and the energy staircase (Problem 1).
* :func:`animate` — GIF/MP4 movies on the circle or S² through one animation writer.
* :func:`demo_figures` — the three figures of ``tokensphere demo``'s run.

The functions draw what :mod:`tokensphere.experiments` and :mod:`tokensphere.analysis` computed; they compute
nothing about the dynamics.
"""

from __future__ import annotations

from .animate import animate
from .arrays import frame_indices
from .circle import circle_figure, cluster_count_distribution_figure
from .demo import demo_figures
from .gfunction import g_figure
from .metastability import metastability_figure
from .phase import phase_difference_figure, phase_figure
from .regimes import regimes_figure
from .save import save_figure
from .series import Panel, series_figure
from .tokens import tokens_figure

__all__ = [
    "Panel", "animate", "circle_figure", "cluster_count_distribution_figure", "demo_figures", "frame_indices",
    "g_figure", "metastability_figure", "phase_difference_figure", "phase_figure", "regimes_figure",
    "save_figure", "series_figure", "tokens_figure",
]
