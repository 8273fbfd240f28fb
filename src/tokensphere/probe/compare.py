"""Figure 1's measurements on hidden states, the particle simulation driven by a real model's weights, and the
layer-by-layer comparison of the two.

* :func:`inner_product_histograms`: per layer, histograms of ⟨x_i, x_j⟩ over ordered pairs i ≠ j (so each
  text's counts sum to n(n − 1)), with Freedman–Diaconis bins of width 2·IQR/N^{1/3} computed on the pooled
  pairs of the layer (the binning of the paper's Figure 1; N = number of unordered pairs, all texts).
* :func:`layer_statistics`: pair fraction and cluster count at a stated δ (:mod:`tokensphere.analysis`) and the
  mean off-diagonal inner product, per layer.
* :func:`simulate_layers`: the dynamics (2.7) with the extracted weights (:func:`.extract.attention_model`),
  from the model's own layer-0 tokens, saved at t = 0, 1, …, L (one unit of time per layer).
* :func:`comparison_table`: real against simulated, layer by layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.stats import wasserstein_distance

from ..analysis import pair_inner_products, pair_statistics
from ..integrate import Solver
from ..model import Model
from ..simulate import simulate
from ..validate import validate_choice, validate_int

__all__ = ["DYNAMICS", "MAX_BINS", "comparison_table", "inner_product_histograms", "layer_statistics",
           "simulate_layers"]

MAX_BINS = 1000  # a cap on Freedman–Diaconis bins when a spike at 1 makes the IQR tiny
DYNAMICS = ("flow", "euler")
FLOW_TOLERANCES = {"rtol": 1e-6, "atol": 1e-8}  # dopri5; the statistics are read to 2–3 digits


def _pairs(x: torch.Tensor) -> np.ndarray:
    """Unordered-pair inner products, clipped to [−1, 1] (round-off of unit vectors): (..., n, d) → (..., P)."""
    return pair_inner_products(x.to(torch.float64)).clamp(-1.0, 1.0).numpy()


def inner_product_histograms(states: list[torch.Tensor]) -> dict[str, Any]:
    """Histograms of ⟨x_i, x_j⟩, i ≠ j, per layer and per text, on shared per-layer Freedman–Diaconis bins.

    states: one (L + 1, n_t, d) tensor of unit vectors per text (the same L + 1). Returns ``{"edges": [L + 1
    lists], "counts": [text][layer] lists of ints}``; counts of text t at each layer sum to n_t(n_t − 1).
    """
    if not states:
        raise ValueError("states must hold at least one text's (L + 1, n, d) hidden states, got none")
    layers = states[0].shape[0]
    if any(s.shape[0] != layers for s in states):
        raise ValueError("states must all hold the same number of layers")
    values = [_pairs(s) for s in states]  # text → (L + 1, P_t)
    edges, counts = [], [[] for _ in states]
    for ell in range(layers):
        pooled = np.concatenate([v[ell] for v in values])
        e = np.histogram_bin_edges(pooled, bins="fd")
        if len(e) - 1 > MAX_BINS:
            e = np.histogram_bin_edges(pooled, bins=MAX_BINS)
        edges.append(e.tolist())
        for t, v in enumerate(values):
            counts[t].append((2 * np.histogram(v[ell], bins=e)[0]).tolist())  # ordered pairs: (i, j) and (j, i)
    return {"edges": edges, "counts": counts}


def layer_statistics(x: torch.Tensor, delta: float) -> dict[str, list]:
    """Per-layer statistics of (L + 1, n, d) unit vectors, float64.

    pair_fraction: fraction of ordered pairs with ⟨x_i, x_j⟩ > 1 − δ; cluster_count: components of that
    graph (:func:`tokensphere.analysis.pair_statistics`); mean_inner_product: mean of ⟨x_i, x_j⟩ over i ≠ j.
    Returns lists of length L + 1.
    """
    x = x.to(torch.float64)
    fraction, count = pair_statistics(x, delta)
    return {"pair_fraction": fraction.tolist(), "cluster_count": count.tolist(),
            "mean_inner_product": pair_inner_products(x).mean(-1).tolist()}


def simulate_layers(model: Model, x0: torch.Tensor, layers: int, dynamics: str = "flow") -> torch.Tensor:
    """Run the particle dynamics with a layerwise model from x0 (n, d) (normalised here) over L layers.

    dynamics: "flow" integrates (2.7) with dopri5 (layer ℓ's weights for t ∈ [ℓ, ℓ + 1), landing on every
    layer boundary); "euler" is the discrete layer: one step of unit size per layer with the *unprojected*
    update followed by renormalisation, x ← (x + Σ_h Σ_j A^h_ij V_h x_j)/|·| (the residual update, then a
    layer norm without gain or bias). Returns (L + 1, n, d) float64 positions at t = 0, 1, …, L.
    """
    validate_choice("dynamics", dynamics, DYNAMICS)
    validate_int("layers", layers, minimum=1)
    solver = Solver("euler", dt=1.0, projected_field=False) if dynamics == "euler" else Solver("dopri5", **FLOW_TOLERANCES)
    x = x0.to(torch.float64)
    x = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    traj = simulate(x[None], model=model, solver=solver, t_max=float(layers),
                    save_at=[float(t) for t in range(layers + 1)])
    return traj.positions[:, 0].to(torch.float64)


def comparison_table(real: torch.Tensor, sim: torch.Tensor, delta: float) -> list[dict[str, float]]:
    """Real against simulated positions, both (L + 1, n, d) unit vectors, one row per layer.

    Columns: the three :func:`layer_statistics` of each; ``w1``: the 1-Wasserstein distance between the two
    distributions of pair inner products; ``token_cosine``: mean_i ⟨x_i^real, x_i^sim⟩ (1 = the same positions).
    """
    r, s = layer_statistics(real, delta), layer_statistics(sim, delta)
    pr, ps = _pairs(real), _pairs(sim)
    cosine = (real.to(torch.float64) * sim.to(torch.float64)).sum(-1).mean(-1)
    rows = []
    for ell in range(real.shape[0]):
        row: dict[str, float] = {"layer": ell}
        for key in ("mean_inner_product", "pair_fraction", "cluster_count"):
            row[f"real_{key}"] = r[key][ell]
            row[f"sim_{key}"] = s[key][ell]
        row["w1"] = float(wasserstein_distance(pr[ell], ps[ell]))
        row["token_cosine"] = float(cosine[ell])
        rows.append(row)
    return rows
