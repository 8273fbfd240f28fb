"""Experiments: seeded runs of the library and what is measured on them, shared by the CLI, the figures and the
report (``cli → report → plot → experiments → analysis, theory, simulate, sweep``).

* :mod:`.layout` — the β × starts batch (:func:`beta_batch`) and grouping systems by β (:func:`group_by_beta`).
* :mod:`.theorems` — the theorem checks (:data:`CHECKS`, :func:`run_checks`) behind ``tokensphere check``.
* :mod:`.demo` — the run of ``tokensphere demo`` (:func:`demo_run`).
* :mod:`.circle`, :mod:`.metastability`, :mod:`.movie` — the runs behind Figure 4, Problem 1 and the movies.
* :mod:`.reproduction` — the reduced Figure 3 and 5 sweeps and the anchor-vs-adaptive comparison.
* :func:`describe_model` — a model in a few words.
"""

from .circle import circle_counts, circle_runs, cluster_count_distribution
from .demo import DemoRun, demo_run, demo_summary
from .describe import describe_model
from .layout import BetaBatch, beta_batch, counts_by_beta, group_by_beta, system_betas, systems_by_beta
from .metastability import metastability_data, metastability_runs
from .movie import movie_run
from .reproduction import preset_difference
from .theorems import CHECKS, CheckResult, run_checks

__all__ = [
    "BetaBatch",
    "CHECKS",
    "CheckResult",
    "DemoRun",
    "beta_batch",
    "circle_counts",
    "circle_runs",
    "cluster_count_distribution",
    "counts_by_beta",
    "demo_run",
    "demo_summary",
    "describe_model",
    "group_by_beta",
    "metastability_data",
    "metastability_runs",
    "movie_run",
    "preset_difference",
    "run_checks",
    "system_betas",
    "systems_by_beta",
]
