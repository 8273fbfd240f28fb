"""The reduced reproduction of the paper's sweeps (``tokensphere demo``): the Figure 3 and Figure 5 settings, a
tiny variant for tests, the comparison of the authors' Euler scheme with adaptive integration, and the measured
single-cluster frequencies that Figure 2 can overlay.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..ensembles import Ensemble
from ..io.atomic import open_zarr_store
from ..sweep.phase import PhaseDiagram

__all__ = ["FIG3_REDUCED", "FIG5_PANELS", "FIG5_REDUCED", "preset_difference", "quick_spec", "single_cluster_points"]

# Figure 3 reduced: the paper's d = 2, 8, 32 panels (of 2 … 1024), 24 of its 90 β, batch 64 of 1024
FIG3_REDUCED = PhaseDiagram()
# Figure 5: d = 128 in the paper, 32 here; the four ensembles of panels (a)–(d)
FIG5_PANELS = {
    "a": ("Q, K, V Ginibre", Ensemble(score="ginibre_product", value="ginibre")),
    "b": ("QᵀK GOE, V ⪰ 0", Ensemble(score="goe", value="psd")),
    "c": ("Q, K Ginibre, V = QᵀK", Ensemble(score="ginibre_product", value="plus_score")),
    "d": ("QᵀK Wigner, V = QᵀK", Ensemble(score="wigner_authors", value="plus_score")),
}
FIG5_REDUCED = PhaseDiagram(dims=(32,), betas=tuple(float(b) for b in np.round(np.linspace(0.1, 9.0, 12), 10)),
                            batch=32, n_times=31, betas_per_unit=6)


def quick_spec(spec: PhaseDiagram) -> PhaseDiagram:
    """A much smaller grid of the same sweep, for tests: one d, about 3 β, 4 starts of 8 tokens, 7 times."""
    return replace(spec, dims=spec.dims[:1], betas=spec.betas[:: max(1, len(spec.betas) // 3)], batch=4,
                   n_times=7, t_max=6.0, n=8)


def preset_difference(anchor: xr.Dataset, adaptive: xr.Dataset) -> dict[str, Any]:
    """How far the authors' scheme moves the clustered fraction, on the same initial states.

    anchor, adaptive: phase-diagram datasets of one grid (anchor and adaptive presets). Returns
    {"max_abs": max |Δ|, "max_z": max |Δ|/SE, "by_d": {"d = …": max |Δ| at that d}}, with Δ = anchor −
    adaptive and SE the two Monte-Carlo standard errors combined (cells with SE = 0 left out of max_z).
    """
    diff = anchor["clustered_fraction"] - adaptive["clustered_fraction"]
    se = np.sqrt(adaptive["clustered_fraction_se"] ** 2 + anchor["clustered_fraction_se"] ** 2)
    return {
        "max_abs": float(np.abs(diff).max()),
        "max_z": float((np.abs(diff) / se.where(se > 0)).max().item()),
        "by_d": {f"d = {int(d)}": float(np.abs(diff.sel(d=d)).max()) for d in adaptive["d"].values},
    }


def single_cluster_points(store: str | Path) -> dict[str, Any]:
    """The measured single-cluster probability of a phase-diagram store at its last time, as points to overlay
    on Figure 2: {"d": [...], "beta": [...], "value": [...], "time": t, "store": path} over the finished (d, β)
    cells with β > 0 and a finite value. Raises ValueError when ``store`` is not a phase-diagram store."""
    store = Path(store)
    if not store.is_dir():
        raise ValueError(f"measured must be a phase-diagram store (a directory), got {store}")
    try:
        with open_zarr_store(store) as ds:
            p = ds["single_cluster_probability"].isel(t=-1).load()
            done = ds["done"].values
            t_last = float(ds["t"].values[-1])
    except Exception:  # noqa: BLE001 - any reading failure means "not a phase-diagram store"
        raise ValueError(f"measured: {store} is not a phase-diagram store") from None
    d_list, b_list, v_list = [], [], []
    for i, d in enumerate(p["d"].values):
        for k, b in enumerate(p["beta"].values):
            if done[i, k] and np.isfinite(p.values[i, k]) and b > 0:
                d_list.append(float(d))
                b_list.append(float(b))
                v_list.append(float(p.values[i, k]))
    return {"d": d_list, "beta": b_list, "value": v_list, "time": t_last, "store": str(store)}
