"""Phase diagrams (Figures 3 and 5): the clustered-pair fraction over a grid of (d, β, t), resumably.

A phase diagram is one sweep (:mod:`tokensphere.sweep.runner`) with a built-in configuration
(:meth:`PhaseDiagram.to_sweep`): the grid d × β, ``batch`` seeds per point, the statistics pair_fraction and
cluster_count (and the authors' Gram rank and span dimension for the anchor preset) taken on the fly and
summarised over the seeds, under the names the figures and the report read (``clustered_fraction``,
``clustered_fraction_se``, ``single_cluster_probability``, ``cluster_count_mean``, ``cluster_count_quantile``).
The store adds the curve Γ of (6.12) (``gamma_transition_time``, ``gamma_curve_time``) and the spec in its
attributes. Work units are one d and a block of ``betas_per_unit`` β values; an interrupted run resumes, and
serial, resumed and parallel (Dask) runs give identical numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..ensembles import Ensemble
from ..integrate.controller import StepController
from ..integrate.solver import Solver, anchor_solver
from ..model import Model
from ..theory.equiangular import transition_curve
from ..validate import validate_choice, validate_int, validate_real
from .config import SweepConfig, config_from_dict, to_toml
from .runner import run_sweep
from .statistics import QUANTILES  # noqa: F401 - re-exported (the quantiles of cluster_count_quantile)
from .units import compute_unit

__all__ = ["PhaseDiagram", "run_phase_diagram", "unit_statistics", "FIGURE3_FULL", "PHASE_NAMES"]

PRESETS = ("adaptive", "anchor")
# the sweep's variables under the names of the phase-diagram store (the figures and the report read these)
PHASE_NAMES = {
    "pair_fraction_mean": "clustered_fraction",
    "pair_fraction_se": "clustered_fraction_se",
    "cluster_count_fraction_one": "single_cluster_probability",
    "rank_cluster_count_median": "authors_cluster_rank_median",
    "span_dimension_mean": "authors_span_dimension_mean",
}


@dataclass(frozen=True)
class PhaseDiagram:
    """What to sweep and measure. Defaults are a reduced Figure 3 that finishes in minutes on 2 cores.

    dims: dimensions d. betas: inverse temperatures. t_max, n_times: output times linspace(0, t_max, n_times).
    n: tokens. batch: random initialisations per (d, β). delta: pair threshold (Fig. 3: 1e-3).
    normalization: softmax (SA) or uniform (USA). ensemble: random (Q, K, V) (Figure 5), identity by default.
    preset: "adaptive" (dopri5 with rtol/atol, integration error far below the Monte-Carlo error) or
    "anchor" (the authors' Euler step 0.1 + renormalisation, :func:`~tokensphere.anchor_solver`).
    seed: master seed. betas_per_unit: β values per work unit (the unit of resumption and of parallelism).
    β is validated by :class:`~tokensphere.Model`, rtol and atol by :class:`StepController`; see
    :meth:`solver` for the solver of each preset.
    """

    dims: tuple[int, ...] = (2, 8, 32)
    betas: tuple[float, ...] = tuple(float(b) for b in np.round(np.linspace(0.1, 9.0, 24), 10))
    t_max: float = 30.0
    n_times: int = 61
    n: int = 32
    batch: int = 64
    delta: float = 1e-3
    normalization: str = "softmax"
    ensemble: Ensemble = field(default_factory=Ensemble)
    preset: str = "adaptive"
    rtol: float = 1e-6
    atol: float = 1e-8
    seed: int = 0
    betas_per_unit: int = 8

    def __post_init__(self) -> None:
        if not self.dims:
            raise ValueError("dims must list at least one dimension d >= 2")
        for d in self.dims:
            validate_int("d", d, minimum=2)
        if not self.betas:
            raise ValueError("betas must list at least one value >= 0")
        validate_real("t_max", self.t_max, minimum=0.0, strict_minimum=True)
        validate_int("n_times", self.n_times, minimum=2)
        validate_int("n", self.n, minimum=2)
        validate_int("batch", self.batch, minimum=2)
        validate_real("delta", self.delta, minimum=0.0, maximum=2.0, strict_minimum=True)
        validate_choice("normalization", self.normalization, ("softmax", "uniform"))
        validate_choice("preset", self.preset, PRESETS)
        validate_int("seed", self.seed, minimum=0)
        validate_int("betas_per_unit", self.betas_per_unit, minimum=1)
        if isinstance(self.ensemble, dict):
            object.__setattr__(self, "ensemble", Ensemble(**self.ensemble))
        object.__setattr__(self, "dims", tuple(int(d) for d in self.dims))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        # the objects that run the sweep validate their own fields (β, with the USA limit; rtol, atol)
        self.solver(Model(beta=torch.tensor(self.betas, dtype=torch.float64), normalization=self.normalization))

    @property
    def controller(self) -> StepController:
        """The step-size controller of the adaptive preset (this spec's rtol and atol)."""
        return StepController(rtol=self.rtol, atol=self.atol)

    def solver(self, model: Model) -> Solver:
        """The solver of the preset for ``model``: dopri5 with :attr:`controller` ("adaptive"), or the
        authors' scheme :func:`~tokensphere.anchor_solver` ("anchor", per-system USA steps included)."""
        if self.preset == "anchor":
            return anchor_solver(model)
        return Solver("dopri5", controller=self.controller)

    def describe(self) -> dict[str, Any]:
        out = asdict(self)
        out["ensemble"] = self.ensemble.describe()
        return out

    @classmethod
    def from_json(cls, text: str) -> PhaseDiagram:
        kw = json.loads(text)
        kw["dims"], kw["betas"] = tuple(kw["dims"]), tuple(kw["betas"])
        kw["ensemble"] = Ensemble(**kw["ensemble"])
        return cls(**kw)

    @property
    def times(self) -> np.ndarray:
        return np.linspace(0.0, self.t_max, self.n_times)

    def units(self) -> list[tuple[int, int, int]]:
        """Work units (d index, first β index, end β index)."""
        return [(d[0], b[0], b[1]) for d, b in self.to_sweep().units()]

    def to_sweep(self) -> SweepConfig:
        """The phase diagram as a sweep configuration (the built-in config; :func:`~.config.to_toml` prints it)."""
        anchor = self.preset == "anchor"
        summaries = {"pair_fraction": ["mean", "se"], "cluster_count": ["mean", "quantile", "fraction_one"]}
        if anchor:  # the authors' statistics (Gram rank, span dimension), for the anchor preset only
            summaries.update(rank_cluster_count=["median"], span_dimension=["mean"])
        ens = self.ensemble
        tables = {
            "sweep": {"seeds": self.batch, "seed": self.seed, "t_max": self.t_max, "n_times": self.n_times,
                      "statistics": list(summaries), "summaries": summaries, "per_seed": False,
                      "delta": self.delta, "betas_per_unit": self.betas_per_unit},
            "model": {"n": self.n, "normalization": self.normalization},
            "solver": {"method": "dopri5", "rtol": self.rtol, "atol": self.atol, "anchor": anchor},
            "weights": {"score": ens.score, "value": ens.value, "share": ens.share,
                        **({"redraw": ens.redraw} if ens.redraw is not None else {})},
            "grid": {"d": list(self.dims), "beta": list(self.betas)},
            "names": {k: v for k, v in PHASE_NAMES.items()
                      if any(k == f"{stat}_{how}" for stat, hows in summaries.items() for how in hows)},
        }
        config = config_from_dict(tables)
        return config_from_dict(tables, text="# the built-in phase-diagram sweep (tokensphere phase-diagram)\n"
                                + to_toml(config))


# Figure 3 exactly as in the paper (n = 32, δ = 1e-3, t ≤ 30, 2^10 starts): hours on a laptop (`--full`).
FIGURE3_FULL = PhaseDiagram(
    dims=(2, 8, 32, 128, 512, 1024),
    betas=tuple(float(b) for b in np.round(np.linspace(0.1, 9.0, 90), 10)),
    t_max=30.0,
    n_times=200,
    n=32,
    batch=1024,
    betas_per_unit=6,
)


GAMMA_FINE = 200  # β points of the fine Γ curve


def _unit(spec: PhaseDiagram, d_index: int, k0: int, k1: int) -> tuple[tuple[int, int], ...]:
    return ((d_index, d_index + 1), (k0, k1))


def unit_statistics(
    spec: PhaseDiagram,
    d_index: int,
    k0: int,
    k1: int,
    progress: Callable[[float], None] | None = None,
) -> dict[str, np.ndarray]:
    """Simulate the systems of d = dims[d_index] and β indices k0 … k1 − 1 and return their statistics under the
    store's names: arrays over (β, t), and (β, quantile, t) for ``cluster_count_quantile``. The numbers do not
    depend on how β values are grouped (each system has its own seeded streams, :mod:`.units`)."""
    return compute_unit(spec.to_sweep(), _unit(spec, d_index, k0, k1), progress)


def _gamma(spec: PhaseDiagram) -> xr.Dataset:
    """The curve Γ_{∞,δ} (6.12) at the grid's β and on a fine β grid: the extra variables of the store."""
    fine = np.linspace(min(spec.betas), max(spec.betas), GAMMA_FINE)
    delta = min(spec.delta, 1.0)
    ds = xr.Dataset(
        {
            "gamma_transition_time": (("beta",), transition_curve(spec.betas, delta, spec.n, spec.t_max,
                                                                  normalization=spec.normalization)),
            # the same curve on a fine β grid, for a smooth overlay on coarse sweeps
            "gamma_curve_time": (("gamma_beta",), transition_curve(fine, delta, spec.n, spec.t_max,
                                                                   normalization=spec.normalization)),
        },
        coords={"beta": list(spec.betas), "gamma_beta": fine},
    )
    ds["gamma_transition_time"].attrs["description"] = (
        "t*(beta): first time the equiangular gamma_beta(t) reaches 1 - delta (curve Gamma, eq. 6.12); NaN after t_max"
    )
    ds["gamma_transition_time"].encoding["chunks"] = (len(spec.betas),)
    ds["gamma_curve_time"].encoding["chunks"] = (GAMMA_FINE,)
    return ds


def run_phase_diagram(
    spec: PhaseDiagram,
    out: str | Path,
    *,
    overwrite: bool = False,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_start: Callable[[dict[str, Any]], None] | None = None,
) -> xr.Dataset:
    """Run (or resume) the phase diagram into the zarr store ``out`` and return the dataset.

    workers > 1 runs units in parallel on a local Dask cluster (one process per worker, one torch thread
    each); scheduler: the address of an existing Dask cluster instead. Results are identical to a serial run.
    progress(done_units, total_units) is called after each unit; on_start as in
    :func:`~tokensphere.sweep.runner.run_sweep`.
    """
    validate_int("workers", workers, minimum=1)
    return run_sweep(spec.to_sweep(), out, overwrite=overwrite, workers=workers, scheduler=scheduler,
                     progress=progress, on_start=on_start, extra=lambda: _gamma(spec),
                     attrs={"spec": json.dumps(spec.describe())})
