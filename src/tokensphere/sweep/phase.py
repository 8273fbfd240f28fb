"""Phase diagrams (Figures 3 and 5): the clustered-pair fraction over a grid of (d, β, t), resumably.

The sweep is split into work units (one d, a block of consecutive β values); all β × seeds of a unit are one
batch. Statistics are taken on the fly at the requested times (no positions are kept), aggregated over
the ``batch`` systems of each β, and written to a zarr store unit by unit; a unit's ``done`` flag is set
after its data. An interrupted run leaves a valid store that the same call resumes, and because every
system draws from its own seeded stream, resumed, chunked and parallel (Dask) runs give identical numbers.
The store carries consolidated metadata (refreshed at the end of a run and on resume), so
``xarray.open_zarr`` opens it directly.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
import zarr

from ..analysis.clusters import pair_statistics, rank_cluster_count, span_dimension
from ..ensembles import Ensemble, RedrawSchedule
from ..init import Uniform
from ..integrate.controller import StepController
from ..integrate.solver import Solver, anchor_solver
from ..io import atomic_zarr_write, validate_output_path, run_metadata
from ..io.atomic import open_zarr_store
from ..model import Model
from ..simulate import simulate
from ..theory.equiangular import transition_curve
from ..validate import validate_choice, validate_int, validate_real

__all__ = ["PhaseDiagram", "run_phase_diagram", "unit_statistics", "FIGURE3_FULL"]

PRESETS = ("adaptive", "anchor")
QUANTILES = (0.1, 0.5, 0.9)


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
        K, u = len(self.betas), self.betas_per_unit
        return [(i, k0, min(k0 + u, K)) for i in range(len(self.dims)) for k0 in range(0, K, u)]


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


def _seed_for_d(seed: int, d: int) -> int:
    return int(np.random.SeedSequence([seed, d]).generate_state(1)[0])


def unit_statistics(
    spec: PhaseDiagram,
    d_index: int,
    k0: int,
    k1: int,
    progress: Callable[[float], None] | None = None,
    x0: torch.Tensor | None = None,
) -> dict[str, np.ndarray]:
    """Simulate one work unit and return its aggregated statistics (arrays over (β in the unit, t)).

    Systems are β-major: system s of β index k has global index k·batch + s and its own random stream, so the
    result does not depend on how β values are grouped into units. x0 overrides the initial positions
    (shape (B, n, d) with B = (k1 − k0)·batch), e.g. to compare presets on the same states.
    """
    d = spec.dims[d_index]
    K, S = k1 - k0, spec.batch
    B = K * S
    beta_idx = np.repeat(np.arange(k0, k1), S)
    system_idx = np.tile(np.arange(S), K)
    beta = torch.tensor([spec.betas[k] for k in beta_idx], dtype=torch.float64)
    if x0 is None:
        x0 = Uniform(batch=B, n=spec.n, d=d, seed=_seed_for_d(spec.seed, d), first_system=k0 * S).sample()
    kw: dict[str, Any] = {"beta": beta, "normalization": spec.normalization}
    ens = spec.ensemble
    if not ens.is_identity:
        gidx = [int(k) * S + int(s) for k, s in zip(beta_idx, system_idx)]
        if ens.redraw is None:
            qk, v = ens.draw(d, ens.keys(spec.seed, d, list(map(int, beta_idx)), gidx))
            if qk is not None:
                kw["QK"] = qk
            if v is not None:
                kw["V"] = v
        else:
            kw["schedule"] = RedrawSchedule(ens, d, spec.seed, list(map(int, beta_idx)), gidx)
    model = Model(**kw)
    solver = spec.solver(model)

    T = spec.n_times
    frac = np.full((T, B), np.nan)
    count = np.full((T, B), -1, dtype=np.int64)
    rank = np.full((T, B), -1, dtype=np.int64) if spec.preset == "anchor" else None
    dim = np.full((T, B), -1, dtype=np.int64) if spec.preset == "anchor" else None

    def on_save(k: torch.Tensor, systems: torch.Tensor, x: torch.Tensor) -> None:
        kk, ss = k.cpu().numpy(), systems.cpu().numpy()
        f, c = pair_statistics(x, spec.delta)
        frac[kk, ss] = f.cpu().numpy()
        count[kk, ss] = c.cpu().numpy()
        if rank is not None:  # the authors' statistics (Gram rank, span dimension), for the anchor preset only
            rank[kk, ss] = rank_cluster_count(x, 0.9999).cpu().numpy()
            dim[kk, ss] = span_dimension(x, 1e-3).cpu().numpy()

    simulate(
        x0, model=model, solver=solver, t_max=spec.t_max, save_at=spec.n_times, store=False, on_save=on_save,
        progress=progress,
    )
    f = frac.reshape(T, K, S)
    c = count.reshape(T, K, S)
    out = {
        "clustered_fraction": f.mean(-1).T,
        "clustered_fraction_se": (f.std(-1, ddof=1) / math.sqrt(S)).T,
        "single_cluster_probability": (c == 1).mean(-1).T,
        "cluster_count_mean": c.mean(-1).T,
        "cluster_count_quantile": np.quantile(c, QUANTILES, axis=-1).transpose(2, 0, 1),  # (K, Q, T)
    }
    if rank is not None:
        out["authors_cluster_rank_median"] = np.median(rank.reshape(T, K, S), -1).T
        out["authors_span_dimension_mean"] = dim.reshape(T, K, S).mean(-1).T
    return out


GAMMA_FINE = 200  # β points of the fine Γ curve


def _fine_betas(spec: PhaseDiagram) -> np.ndarray:
    return np.linspace(min(spec.betas), max(spec.betas), GAMMA_FINE)


def _template(spec: PhaseDiagram) -> xr.Dataset:
    D, K, T, Q = len(spec.dims), len(spec.betas), spec.n_times, len(QUANTILES)
    nan3 = np.full((D, K, T), np.nan)
    data = {
        "clustered_fraction": (("d", "beta", "t"), nan3.copy()),
        "clustered_fraction_se": (("d", "beta", "t"), nan3.copy()),
        "single_cluster_probability": (("d", "beta", "t"), nan3.copy()),
        "cluster_count_mean": (("d", "beta", "t"), nan3.copy()),
        "cluster_count_quantile": (("d", "beta", "quantile", "t"), np.full((D, K, Q, T), np.nan)),
        "done": (("d", "beta"), np.zeros((D, K), dtype=bool)),
        "gamma_transition_time": (("beta",), transition_curve(spec.betas, min(spec.delta, 1.0), spec.n, spec.t_max,
                                                              normalization=spec.normalization)),
        # the same curve on a fine β grid, for a smooth overlay on coarse sweeps
        "gamma_curve_time": (("gamma_beta",), transition_curve(_fine_betas(spec), min(spec.delta, 1.0), spec.n,
                                                               spec.t_max, normalization=spec.normalization)),
    }
    if spec.preset == "anchor":
        data["authors_cluster_rank_median"] = (("d", "beta", "t"), nan3.copy())
        data["authors_span_dimension_mean"] = (("d", "beta", "t"), nan3.copy())
    ds = xr.Dataset(
        data,
        coords={
            "d": list(spec.dims),
            "beta": list(spec.betas),
            "t": spec.times,
            "quantile": list(QUANTILES),
            "gamma_beta": _fine_betas(spec),
        },
    )
    ds["clustered_fraction"].attrs["description"] = (
        "fraction of ordered pairs i != j with <x_i, x_j> > 1 - delta, averaged over the batch (Figure 3)"
    )
    ds["clustered_fraction_se"].attrs["description"] = "standard error of clustered_fraction over the batch"
    ds["gamma_transition_time"].attrs["description"] = (
        "t*(beta): first time the equiangular gamma_beta(t) reaches 1 - delta (curve Gamma, eq. 6.12); NaN after t_max"
    )
    ds.attrs["spec"] = json.dumps(spec.describe())
    ds.attrs["metadata"] = json.dumps(run_metadata(dtype=torch.float64, device="cpu"))
    chunks = {"d": 1, "beta": spec.betas_per_unit, "t": T, "quantile": Q, "gamma_beta": GAMMA_FINE}
    for v in ds.data_vars:
        ds[v].encoding["chunks"] = tuple(chunks[dim] for dim in ds[v].dims)
    return ds


def _consolidate(path: Path) -> None:
    """Write the store's consolidated metadata (what ``xarray.open_zarr`` reads first)."""
    with warnings.catch_warnings():
        # zarr 3 notes that consolidated metadata is not (yet) in the v3 spec; xarray reads it all the same
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        zarr.consolidate_metadata(str(path))


def _open_or_create(spec: PhaseDiagram, path: Path, overwrite: bool) -> xr.Dataset:
    if path.exists() and not overwrite:
        if not (path / ".zgroup").is_file() and not (path / "zarr.json").is_file():
            raise ValueError(f"out path {path} exists and is not a zarr store; pass overwrite=True / --overwrite "
                             "to replace it")
        _consolidate(path)  # stores from older versions, or interrupted ones, open without a fallback
        with open_zarr_store(path) as ds:
            stored = ds.attrs.get("spec")
            if stored is None or PhaseDiagram.from_json(stored) != spec:
                raise ValueError(
                    f"out store {path} holds a different phase diagram; pass overwrite=True / --overwrite to replace it"
                )
            return ds.load()
    ds = _template(spec)
    atomic_zarr_write(ds, path, overwrite=overwrite)
    return ds


def _write_unit(path: Path, spec: PhaseDiagram, unit: tuple[int, int, int], stats: dict[str, np.ndarray]) -> None:
    i, k0, k1 = unit
    region = {"d": slice(i, i + 1), "beta": slice(k0, k1)}
    data = {}
    for name, arr in stats.items():
        dims = ("d", "beta", "quantile", "t") if arr.ndim == 3 else ("d", "beta", "t")
        data[name] = (dims, arr[None])
    xr.Dataset(data).to_zarr(path, region=region, consolidated=False)
    # the flag goes last: a unit interrupted before this line is recomputed on resume
    xr.Dataset({"done": (("d", "beta"), np.ones((1, k1 - k0), dtype=bool))}).to_zarr(
        path, region=region, consolidated=False
    )


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_phase_diagram(
    spec: PhaseDiagram,
    out: str | Path,
    *,
    overwrite: bool = False,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> xr.Dataset:
    """Run (or resume) the sweep into the zarr store ``out`` and return the dataset.

    workers > 1 runs units in parallel on a local Dask cluster (one process per worker, one torch thread
    each); results are identical to a serial run. progress(done_units, total_units) is called after each unit.
    """
    validate_int("workers", workers, minimum=1)
    path = Path(out)
    if not (path.exists() and not overwrite):
        validate_output_path(path, overwrite=overwrite)
    ds = _open_or_create(spec, path, overwrite)
    units = spec.units()
    done = ds["done"].values
    pending = [u for u in units if not done[u[0], u[1] : u[2]].all()]
    finished = len(units) - len(pending)
    if progress is not None:
        progress(finished, len(units))
    if workers == 1 or len(pending) <= 1:
        for u in pending:
            _write_unit(path, spec, u, unit_statistics(spec, *u))
            finished += 1
            if progress is not None:
                progress(finished, len(units))
    else:
        from dask.distributed import Client, LocalCluster, as_completed

        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            with Client(cluster) as client:
                client.run(torch.set_num_threads, 1)
                client.run(_ignore_sigint)  # Ctrl-C stops the driver only; workers die with the cluster
                futures = {client.submit(unit_statistics, spec, *u, pure=False): u for u in pending}
                for fut in as_completed(futures):
                    _write_unit(path, spec, futures[fut], fut.result())
                    finished += 1
                    if progress is not None:
                        progress(finished, len(units))
    _consolidate(path)
    with open_zarr_store(path) as final:
        return final.load()

