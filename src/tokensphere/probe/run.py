"""One probing run: texts through a real model (Figure 1's histograms and statistics over depth), and the same
texts' layer-0 tokens moved by the particle dynamics with the model's own attention weights, compared layer by
layer. Returns plain data (JSON-able dict) and the position tensors; writing and drawing are the caller's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..validate import validate_choice, validate_real
from .compare import (DYNAMICS, FLOW_TOLERANCES, MAX_BINS, comparison_table, inner_product_histograms,
                      layer_statistics, simulate_layers)
from .extract import attention_model, layer_weights, measured_radius, score_spectrum
from .hidden import hidden_states
from .layers import REPEATS, deepened, describe_depth
from .load import Checkpoint

__all__ = ["DELTA", "RADII", "ProbeResult", "probe", "validate_options"]

# The δ of the cluster statistics of real hidden states. Trained models keep tokens far apart (the bulk of
# Figure 1 sits at 0–0.6), so Figure 3's δ = 10⁻³ would count every token as its own cluster; δ = 0.05 links
# tokens within about 18° (arccos 0.95), the width of the spike at 1 the paper's figure shows.
DELTA = 0.05
RADII = ("measured", "layernorm")

MAPPED = [
    "Q_h = r_l W_Q,h and K_h = r_l W_K,h (k x d row blocks of head h), beta = 1/sqrt(k): exact scores for tokens of "
    "norm r_l",
    "V_h = s_l W_O,h W_V,h (d x d): what head h adds to the residual stream; heads summed (eq. (2.7)); s_l = r_l / "
    "(RMS norm of the residual stream entering layer l): 1 for post-LN BERT/ALBERT, the ln_1 ratio for GPT-2",
    "one unit of time per layer: Layerwise schedule, layer l on [l, l + 1)",
    "GPT-2: causal mask",
]
DROPPED = [
    "layer norms (gains, biases, GPT-2's centring by ln_1, the renormalisation itself: the sphere's projection and "
    "retraction stand in)",
    "biases of Q, K, V and of the output projection (their norms are listed in dropped_bias_norms)",
    "the feed-forward block (MLP) of every layer",
    "dropout (evaluation mode) and the residual scaling: the flow moves x along the tangent part of the update",
]


def validate_options(*, delta: float, dynamics: str, radius: str, repeat: str) -> None:
    """Check :func:`probe`'s options before any work; raises ValueError naming the option."""
    validate_real("delta", delta, minimum=0.0, maximum=2.0, strict_minimum=True)
    validate_choice("dynamics", dynamics, DYNAMICS)
    validate_choice("radius", radius, RADII)
    validate_choice("repeat", repeat, REPEATS)


@dataclass(frozen=True)
class ProbeResult:
    """data: the JSON-able record. real, simulated: per text, (L + 1, n_t, d) unit vectors. tokens: per text."""

    data: dict[str, Any]
    real: list[torch.Tensor]
    simulated: list[torch.Tensor]
    tokens: list[list[str]]


def probe(ck: Checkpoint, texts: list[str], *, depth: int | None = None, repeat: str = "last",
          delta: float = DELTA, dynamics: str = "flow", radius: str = "measured", max_tokens: int | None = None,
          progress: Callable[[int, int, str], None] | None = None) -> ProbeResult:
    """Probe ``ck`` on ``texts``: hidden states of every layer (depth extended to ``depth``), Figure 1's
    histograms and statistics, the simulation with the extracted weights and the comparison.

    radius: "measured" (r_ℓ = RMS norm of each layer's real attention inputs, per text) or "layernorm"
    (r_ℓ = √d). progress(done, total, what) is called before each step (2 per text) and at the end.
    Raises ValueError naming ``texts``, ``delta``, ``dynamics``, ``radius``, ``depth`` or ``repeat``.
    """
    if not texts:
        raise ValueError("texts must hold at least one text")
    validate_options(delta=delta, dynamics=dynamics, radius=radius, repeat=repeat)
    depth = ck.trained_depth if depth is None else depth
    with deepened(ck, depth, repeat):
        weights = layer_weights(ck)
    total = 2 * len(texts)
    tick = progress or (lambda done, all_, what: None)
    real, sim, tokens, rows, radii, text_info = [], [], [], [], [], []
    for t, text in enumerate(texts):
        tick(2 * t, total, f"text {t + 1}/{len(texts)}: {depth} layers of the model")
        hidden = hidden_states(ck, text, depth=depth, repeat=repeat, max_tokens=max_tokens)
        x = hidden.unit
        r, scale = measured_radius(hidden) if radius == "measured" else (None, None)
        model = attention_model(ck, radius=r, weights=weights, value_scale=scale)
        tick(2 * t + 1, total, f"text {t + 1}/{len(texts)}: particle dynamics ({dynamics})")
        xs = simulate_layers(model, x[0], depth, dynamics)
        real.append(x)
        sim.append(xs)
        tokens.append(hidden.tokens)
        rows.append(comparison_table(x, xs, delta))
        radii.append({"r": (r if r is not None else torch.full((depth,), math.sqrt(ck.hidden_size))).tolist(),
                      "value_scale": scale.tolist() if scale is not None else [1.0] * depth})
        text_info.append({"n_tokens": len(hidden.tokens), "start": " ".join(text.split()[:8]),
                          "words": len(text.split())})
    tick(total, total, "done")
    spectrum = score_spectrum(weights)
    data = {
        "figure": "Figure 1: histograms of pairwise inner products <x_i, x_j>, i != j, of the normalised hidden "
                  "states of every layer",
        "model": {"name": ck.name, "path": str(ck.path), "family": ck.family, "d": ck.hidden_size,
                  "heads": ck.heads, "head_dim": weights["head_dim"], "trained_depth": ck.trained_depth},
        "depth": describe_depth(ck, depth, repeat),
        "texts": text_info,
        "settings": {
            "delta": delta,
            "pairs": "ordered pairs i != j (diagonal excluded); each text's counts per layer sum to n(n - 1)",
            "bins": "Freedman-Diaconis, width 2 IQR / N^(1/3), on the pooled unordered pairs of all texts, per "
                    f"layer (at most {MAX_BINS} bins)",
            "normalisation": "every token's hidden state divided by its norm (GPT-2: the last state is taken "
                             "before ln_f)",
            "dynamics": dynamics,
            "solver": ({"method": "dopri5", **FLOW_TOLERANCES} if dynamics == "flow"
                       else {"method": "euler", "dt": 1.0, "projected_field": False}),
            "time_per_layer": 1.0,
            "radius": radius,
        },
        "histograms": inner_product_histograms(real),
        "histograms_simulated": inner_product_histograms(sim),
        "statistics": {"real": [layer_statistics(x, delta) for x in real],
                       "simulated": [layer_statistics(x, delta) for x in sim]},
        "comparison": {"per_text": rows, "mean": _mean_rows(rows), "summary": _summary(_mean_rows(rows))},
        "mapping": {"beta": 1.0 / math.sqrt(weights["head_dim"]), "radius_per_text": radii, "mapped": MAPPED,
                    "dropped": DROPPED,
                    "dropped_bias_norms": {"columns": ["b_Q", "b_K", "b_V", "b_O"],
                                           "per_layer": weights["dropped_bias_norms"].tolist()}},
        "score_spectrum": {"what": "min and max eigenvalue of sym(W_Q,h^T W_K,h)/sqrt(k), per layer and head",
                           "min": spectrum[..., 0].tolist(), "max": spectrum[..., -1].tolist()},
    }
    return ProbeResult(data=data, real=real, simulated=sim, tokens=tokens)



def _mean_rows(rows: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Average each column over texts, layer by layer."""
    return [{"layer": ell, **{k: float(np.mean([r[ell][k] for r in rows])) for k in rows[0][ell] if k != "layer"}}
            for ell in range(len(rows[0]))]


def _summary(mean: list[dict[str, float]]) -> dict[str, Any]:
    """A few numbers that say how far the simulation follows the model (trained and extended layers alike)."""
    real = np.array([r["real_mean_inner_product"] for r in mean])
    sim = np.array([r["sim_mean_inner_product"] for r in mean])
    corr = float(np.corrcoef(real, sim)[0, 1]) if len(real) > 2 and real.std() > 0 and sim.std() > 0 else None
    return {
        "max_abs_error_mean_inner_product": float(np.abs(real - sim).max()),
        "correlation_mean_inner_product_over_depth": corr,
        "real_mean_inner_product_first_last": [float(real[0]), float(real[-1])],
        "sim_mean_inner_product_first_last": [float(sim[0]), float(sim[-1])],
        "max_w1": float(max(r["w1"] for r in mean)),
        "min_token_cosine": float(min(r["token_cosine"] for r in mean)),
    }
