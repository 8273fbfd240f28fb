"""A model in a few words, for summaries, progress lines and report text."""

from __future__ import annotations

from ..model import Model

__all__ = ["describe_model"]


def describe_model(model: Model) -> str:
    """A short description: "SA (softmax), V = I"; "USA (1/n), V = −I (repulsive), causal mask" and so on.

    Names, in this order, the normalisation (SA (2.6) or USA), the value matrix, then only what differs from
    the toy model: general QᵀK, a score mask, the causal mask, several heads, time-dependent weights, no
    projection (pure self-attention (9.1) on R^d), the time s = e^β t.
    """
    parts = ["SA (softmax)" if model.normalization == "softmax" else "USA (1/n)"]
    v = model.V
    parts.append("V = −I (repulsive)" if isinstance(v, str) and v == "repulsive"
                 else "V = I" if isinstance(v, str) else "V given")
    if model.Q is not None or model.QK is not None:
        parts.append("general QᵀK")
    if model.mask is not None:
        parts.append("score mask")
    if model.causal:
        parts.append("causal mask")
    if model.heads > 1:
        parts.append(f"{model.heads} heads" + (" (averaged)" if model.head_reduction == "mean" else ""))
    if model.schedule is not None:
        parts.append("time-dependent weights")
    if not model.projection:
        parts.append("no projection (pure SA on R^d)")
    if model.time_scale != "original":
        parts.append("time s = e^β t")
    return ", ".join(parts)
