"""A model in a few words, for summaries, progress lines and report text."""

from __future__ import annotations

from ..model import Model

__all__ = ["describe_model"]


def describe_model(model: Model) -> str:
    """A short description: "SA (softmax), V = I"; "USA (1/n), V = −I (repulsive), causal mask" and so on.

    Names, in this order, the normalisation (SA (2.6), USA, Sinkhorn, hardmax), the value matrix, then only what
    differs from the toy model: general QᵀK, a score mask, the causal mask, several heads, time-dependent
    weights, a block normalisation other than post-norm (pre, RMSNorm, nGPT), no projection (pure self-attention
    (9.1) on R^d; with the plain post-norm only), centred values (9.4), the time s = e^β t, a
    feed-forward term (2.8), noise.
    """
    parts = [_NORMALIZATION_WORDS.get(model.normalization, model.normalization)]
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
    norm = getattr(model, "norm", "post")
    if norm != "post":
        parts.append({"pre": "pre-norm blocks", "rms": "RMSNorm blocks (gain ellipsoid)",
                      "ngpt": "nGPT blocks"}.get(norm, f"{norm}-norm blocks"))
    if not model.projection and norm == "post":
        parts.append("no projection (pure SA on R^d)")
    if model.centered:
        parts.append("centred values V(x_j − x_i) (9.4)")
    if model.time_scale != "original":
        parts.append("time s = e^β t")
    if model.feedforward is not None:
        parts.append("feed-forward (2.8)")
    if model.noise > 0:
        parts.append(f"noise σ = {model.noise:g}")
    return ", ".join(parts)


_NORMALIZATION_WORDS = {
    "softmax": "SA (softmax)",
    "uniform": "USA (1/n)",
    "sinkhorn": "Sinkhorn (doubly stochastic)",
    "hardmax": "hardmax (β = ∞)",
}
