"""Per-layer, per-head attention weights of a real model as a tokensphere :class:`~tokensphere.Model`.

Layer ℓ of a Transformer adds to the residual stream the multi-head attention of its input y (n × d):

    Σ_h softmax_j(⟨W_Q,h y_i + b_Q,h, W_K,h y_j + b_K,h⟩ / √k) (W_O,h (W_V,h y_j + b_V,h)) + b_O

with k = d / H the head dimension, W_Q,h, W_K,h, W_V,h the k × d row blocks of head h and W_O,h the d × k column
block of the output projection. What is **mapped** (eq. (2.7) of the paper, heads summed):

* Q_h = r_ℓ W_Q,h and K_h = r_ℓ W_K,h, (H, k, d), and β = 1/√k: for tokens y_i = r_ℓ x_i of norm r_ℓ,
  β⟨Q_h x_i, K_h x_j⟩ is exactly the real score. r_ℓ is the radius of the layer's inputs: √d by default
  (the norm of every output of a layer norm with unit gain and zero bias, up to its ε), or measured (the root
  mean square norm of the real attention inputs, :func:`measured_radius`).
* V_h = s_ℓ W_O,h W_V,h, (H, d, d): what head h adds to the residual stream per unit of input. The particles
  are the residual stream h normalised, x = h/ρ_ℓ; the update is linear in the attention input y of norm r_ℓ,
  so on the sphere it is Σ_h Σ_j A^h_ij V_h x_j with s_ℓ = r_ℓ/ρ_ℓ. Post-LN models (BERT, ALBERT) read the
  residual stream itself (y = h, s_ℓ = 1); pre-LN GPT-2 reads y = ln_1(h), and s_ℓ (measured,
  :func:`measured_radius`) carries the ratio of the two norms.
* GPT-2's causal mask: ``causal=True``.

What is **dropped**: every layer norm (gains, biases, GPT-2's centring of ln_1 before attention, and the
renormalisation itself: the sphere's projection P⊥ and retraction stand in for it), the biases of Q, K, V and of the output projection, the feed-forward
block, dropout, and the residual scaling (the dynamics move x by the tangent part of the update, not by the
update itself). ALBERT's embedding-to-hidden map is not a layer: its output is the simulation's start.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..model import Layerwise, Model
from .hidden import Hidden
from .layers import layer_modules
from .load import Checkpoint

__all__ = ["attention_model", "layer_weights", "measured_radius", "score_spectrum"]


def _projections(ck: Checkpoint, layer: Any) -> tuple[torch.Tensor, ...]:
    """(W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O) of one layer as y ↦ W y + b maps (out × in), float64."""
    if ck.family == "gpt2":
        d = ck.hidden_size
        w = layer.attn.c_attn.weight.T  # Conv1D: y ↦ y W + b, W of shape (in, out)
        b = layer.attn.c_attn.bias
        mats = (w[:d], w[d:2 * d], w[2 * d:], layer.attn.c_proj.weight.T,
                b[:d], b[d:2 * d], b[2 * d:], layer.attn.c_proj.bias)
    elif ck.family == "bert":
        sa, out = layer.attention.self, layer.attention.output.dense
        mats = (sa.query.weight, sa.key.weight, sa.value.weight, out.weight,
                sa.query.bias, sa.key.bias, sa.value.bias, out.bias)
    else:
        a = layer.attention
        mats = (a.query.weight, a.key.weight, a.value.weight, a.dense.weight,
                a.query.bias, a.key.bias, a.value.bias, a.dense.bias)
    return tuple(m.detach().to(torch.float64) for m in mats)


def layer_weights(ck: Checkpoint) -> dict[str, Any]:
    """The per-head matrices of each applied layer (the checkpoint's current depth).

    Returns ``{"Q": (L, H, k, d), "K": (L, H, k, d), "V": (L, H, d, d) (= W_O,h W_V,h), "head_dim": k,
    "dropped_bias_norms": (L, 4) the norms of b_Q, b_K, b_V, b_O}`` as float64 tensors.
    """
    H, d = ck.heads, ck.hidden_size
    k = d // H
    qs, ks, vs, biases = [], [], [], []
    for layer in layer_modules(ck):
        wq, wk, wv, wo, bq, bk, bv, bo = _projections(ck, layer)
        qs.append(wq.reshape(H, k, d))
        ks.append(wk.reshape(H, k, d))
        # W_O,h: the d × k column block of head h; V_h = W_O,h W_V,h
        vs.append(torch.einsum("dhk,hke->hde", wo.reshape(d, H, k), wv.reshape(H, k, d)))
        biases.append(torch.stack([torch.linalg.vector_norm(b) for b in (bq, bk, bv, bo)]))
    return {"Q": torch.stack(qs), "K": torch.stack(ks), "V": torch.stack(vs), "head_dim": k,
            "dropped_bias_norms": torch.stack(biases)}


def measured_radius(hidden: Hidden) -> tuple[torch.Tensor, torch.Tensor]:
    """(r, s): r_ℓ = √(mean_i |y_i|²) of each layer's real attention inputs y, and s_ℓ = r_ℓ/ρ_ℓ with ρ_ℓ the
    same root mean square norm of the residual stream h entering layer ℓ. Two (L,) float64 tensors."""
    rms = hidden.attention_inputs.pow(2).sum(-1).mean(-1).sqrt()
    residual = hidden.states[:-1].pow(2).sum(-1).mean(-1).sqrt()
    return rms, rms / residual


def attention_model(ck: Checkpoint, radius: float | torch.Tensor | None = None,
                    weights: dict[str, Any] | None = None, value_scale: torch.Tensor | None = None) -> Model:
    """The checkpoint's attention layers as a tokensphere Model with a :class:`~tokensphere.Layerwise` schedule
    (layer ℓ on [ℓ, ℓ + 1): one unit of time per layer).

    radius: None (√d for every layer), a number, or (L,) per-layer radii r_ℓ (see the module docstring).
    weights: :func:`layer_weights`'s output, when already computed. value_scale: (L,) factors s_ℓ of V
    (default 1; see the module docstring). Returns a Model with β = 1/√k, H heads
    summed, Q, K (L, H, k, d) and V (L, H, d, d) stacks, causal for GPT-2. The Model's own Q, K, V are layer 0's.
    """
    w = layer_weights(ck) if weights is None else weights
    L = w["Q"].shape[0]
    r = torch.as_tensor(math.sqrt(ck.hidden_size) if radius is None else radius, dtype=torch.float64)
    r = r.expand(L) if r.ndim == 0 else r
    if r.shape != (L,) or not bool(torch.isfinite(r).all()) or bool((r <= 0).any()):
        raise ValueError(f"radius must be a positive number or {L} positive numbers, got shape {tuple(r.shape)}")
    q = w["Q"] * r[:, None, None, None]
    kk = w["K"] * r[:, None, None, None]
    v = w["V"]
    if value_scale is not None:
        s = torch.as_tensor(value_scale, dtype=torch.float64)
        s = s.expand(L) if s.ndim == 0 else s
        if s.shape != (L,) or not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
            raise ValueError(f"value_scale must be a positive number or {L} positive numbers, got "
                             f"{tuple(s.shape) if s.shape != (L,) else s.tolist()}")
        v = v * s[:, None, None, None]
    return Model(beta=1.0 / math.sqrt(w["head_dim"]), Q=q[0], K=kk[0], V=v[0], heads=ck.heads,
                 causal=ck.family == "gpt2", schedule=Layerwise(1.0, Q=q, K=kk, V=v))


def score_spectrum(weights: dict[str, Any]) -> torch.Tensor:
    """Eigenvalues of sym(W_Q,hᵀ W_K,h)/√k per layer and head, ascending: (L, H, d) float64.

    The bilinear form of the scores; its symmetric part decides which directions attract (the paper's
    discussion of Q and K, §2 and §4).
    """
    b = torch.einsum("lhkd,lhke->lhde", weights["Q"], weights["K"]) / math.sqrt(weights["head_dim"])
    return torch.linalg.eigvalsh((b + b.transpose(-1, -2)) / 2)
