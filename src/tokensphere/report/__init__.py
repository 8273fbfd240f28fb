"""The self-contained HTML report (SPEC §6): sections of figures, tables, theorem checks and 3-D views.

Build sections and write the page::

    from tokensphere.report import Check, Section, write_report

    s = Section("Figure 4", "circle trajectories", figures=["fig4.png"], tables={"settings": {"n": 32}},
                checks=[Check("two clusters at β = 4", "2", "2", True)])
    write_report([s], "runs/report", "tokensphere report")   # → runs/report/index.html

:func:`sections_for` turns a saved run (run folder, trajectory store, phase-diagram store, figure folder) into
sections; :func:`viewer_fragment` is the interactive plotly view of tokens on S². The page needs no network.
"""

from .html import Check, Figure, Fragment, Section, figure1_slot, flatten, render_report, write_report
from .sections import (
    energy_checks,
    input_kind,
    norm_check,
    phase_sections,
    sections_for,
    theorem_section,
    trajectory_sections,
    uniform_pair_probability,
)
from .viewer import frame_indices, viewer_figure, viewer_fragment

__all__ = [
    "Check",
    "Figure",
    "Fragment",
    "Section",
    "energy_checks",
    "figure1_slot",
    "flatten",
    "frame_indices",
    "input_kind",
    "norm_check",
    "phase_sections",
    "render_report",
    "sections_for",
    "theorem_section",
    "trajectory_sections",
    "uniform_pair_probability",
    "viewer_figure",
    "viewer_fragment",
    "write_report",
]
