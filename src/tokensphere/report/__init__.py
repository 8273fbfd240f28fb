"""The self-contained HTML report: sections of figures, tables, verdict rows and 3-D views, one offline page.

Build sections and write the page::

    from tokensphere.report import Section, Verdict, write_report

    s = Section("Figure 4", "circle trajectories", figures=["fig4.png"], tables={"settings": {"n": 32}},
                verdicts=[Verdict("two clusters at β = 4", "2", "2", True)])
    write_report([s], "runs/report", "tokensphere report")   # → runs/report/index.html

:func:`sections_for` turns a saved run (run folder, trajectory store, phase-diagram store, figure folder) into
sections; :func:`theorem_section` shows the theorem checks of :mod:`tokensphere.experiments.theorems`;
:func:`viewer_fragment` is the interactive plotly view of tokens on S². The page needs no network.
"""

from .elements import Figure, Fragment, Section, Verdict, png_bytes
from .html import flatten, render_report, write_report
from .sections import (
    energy_verdicts,
    input_kind,
    norm_verdict,
    phase_sections,
    preset_comparison_section,
    sections_for,
    theorem_section,
    trajectory_sections,
)
from .viewer import viewer_figure, viewer_fragment

__all__ = [
    "Figure",
    "Fragment",
    "Section",
    "Verdict",
    "png_bytes",
    "energy_verdicts",
    "flatten",
    "input_kind",
    "norm_verdict",
    "phase_sections",
    "preset_comparison_section",
    "render_report",
    "sections_for",
    "theorem_section",
    "trajectory_sections",
    "viewer_figure",
    "viewer_fragment",
    "write_report",
]
