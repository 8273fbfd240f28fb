"""Interaction energies and their time-derivative identities (§3.3–§3.4 of the paper).

Two normalisations, named differently on purpose:

* normalisation A (the Lyapunov diagnostic, Remark 3.8):  E_β(X) = (1/(2βn²)) Σ_i Σ_j e^{β⟨Q x_i, K x_j⟩}
  — :func:`energy`, :func:`log_energy`, :func:`energy_normalized` (Ē = (1/n²) Σ Σ e^{β(s_ij − s*)} ∈ (0, 1], s* = ‖QᵀK‖₂).
* normalisation B (§3.4 of the paper, SA metric):  Ẽ_β(X) = (1/(2β)) Σ_i Σ_j e^{β⟨V x_i, x_j⟩} — :func:`energy_tilde`.

At β = 0, normalisation A is replaced by its finite part lim_{β→0} (E_β − 1/(2β)) = (1/(2n²)) Σ Σ ⟨x_i, x_j⟩,
for which the same rate identity holds. The weights are the kernel's (:func:`tokensphere.field.weights_at`).

Rate identities along exact flows ((3.11), (3.12)), returned by :func:`energy_rate`:
    SA:   dE_β/dt = (1/n²) Σ_i Z_{β,i} |ẋ_i|²        USA:  dE_β/dt = (1/n) Σ_i |ẋ_i|²
    (V = QᵀK symmetric, SA):  dẼ_β/dt = Σ_i Z_{β,i} |ẋ_i|²,  Z_{β,i} = Σ_j e^{β⟨V x_i, x_j⟩}
with the opposite sign for V = −I.
"""

from __future__ import annotations

import torch

from .field import velocity, weights_at
from .model import Model
from .weights import Weights

__all__ = ["energy", "energy_normalized", "energy_over_time", "energy_rate", "energy_tilde", "log_energy"]


def log_energy(x: torch.Tensor, model: Model | float) -> torch.Tensor:
    """log E_β(X), normalisation A, computed by log-sum-exp (finite for any β > 0).

    x: (B, n, d). model: a :class:`Model` (its β and Q, K) or a number β (Q = K = I). Returns (B,).
    Raises ValueError if some β is 0 (use :func:`energy`, which returns the finite part there).
    """
    w = _weights(x, model)
    if bool((w.beta == 0).any()):
        raise ValueError("beta must be > 0 for log_energy (E_β has a 1/β factor); use energy() at beta = 0")
    n = x.shape[1]
    beta = w.beta.expand(x.shape[0])
    s = _bilinear(x, w, beta)
    return torch.logsumexp(s.flatten(1), dim=1) - torch.log(2 * beta * n * n)


def energy(x: torch.Tensor, model: Model | float) -> torch.Tensor:
    """E_β(X) = (1/(2βn²)) Σ_i Σ_j e^{β⟨Q x_i, K x_j⟩} (normalisation A; = e^β/(2β) at consensus with Q = K = I).

    x: (B, n, d). Returns (B,); entries with β = 0 hold the finite part (1/(2n²)) Σ Σ ⟨Q x_i, K x_j⟩.
    Overflows to inf where e^β does (β ≳ 709); use :func:`log_energy` or :func:`energy_normalized` there.
    """
    w = _weights(x, model)
    n = x.shape[1]
    beta = w.beta.expand(x.shape[0])
    zero = beta == 0
    safe = torch.where(zero, torch.ones_like(beta), beta)
    e = torch.exp(torch.logsumexp(_bilinear(x, w, safe).flatten(1), dim=1) - torch.log(2 * safe * n * n))
    if not bool(zero.any()):
        return e
    return torch.where(zero, _bilinear(x, w).flatten(1).sum(1) / (2 * n * n), e)


def energy_normalized(x: torch.Tensor, model: Model | float) -> torch.Tensor:
    """Ē = (1/n²) Σ_i Σ_j e^{β(s_ij − s*)} ∈ (0, 1], s_ij = ⟨Q x_i, K x_j⟩, s* = ‖QᵀK‖₂ (largest singular value).

    s* bounds every score of unit vectors, so Ē ≤ 1 for any Q, K, and E_β = (e^{βs*}/(2β)) Ē. With Q = K = I
    (s* = 1) Ē reaches 1 exactly at consensus; for a symmetric positive semi-definite QᵀK at consensus on its
    top eigenvector. x: (B, n, d). Returns (B,). Never overflows, whatever β.
    """
    w = _weights(x, model)
    top = (w.beta * _score_bound(w, x)).view(-1, 1, 1)
    return torch.exp(_bilinear(x, w, w.beta) - top).flatten(1).mean(1)


def energy_tilde(x: torch.Tensor, model: Model | float) -> torch.Tensor:
    """Ẽ_β(X) = (1/(2β)) Σ_i Σ_j e^{β⟨V x_i, x_j⟩} (normalisation B, no 1/n², V inside; §3.4).

    x: (B, n, d). V is the model's value matrix (identity when V = "identity"). Returns (B,). β must be > 0.
    """
    w = _weights(x, model)
    if bool((w.beta == 0).any()):
        raise ValueError("beta must be > 0 for energy_tilde (it has a 1/β factor)")
    beta = w.beta.expand(x.shape[0])
    s = beta.view(-1, 1, 1) * _form_scores(x, _value_form(w, x))
    return torch.exp(torch.logsumexp(s.flatten(1), dim=1) - torch.log(2 * beta))


def energy_rate(x: torch.Tensor, model: Model, which: str = "A") -> torch.Tensor:
    """Right-hand side of the energy identity at X: the exact dE/dt along the flow of ``model``.

    which="A" (normalisation A): needs Q = K = I, one head, no mask, V = ±I; SA gives
    (1/n²) Σ_i Z_{β,i} |ẋ_i|², USA gives (1/n) Σ_i |ẋ_i|², times the sign of V. For USA in
    time_scale "exp_beta" (s = e^β t) it returns dĒ/ds = 2β (1/n) Σ_i |dx_i/ds|², the rate of
    :func:`energy_normalized`.
    which="tilde" (normalisation B): SA with V = QᵀK symmetric; returns Σ_i Z_{β,i} |ẋ_i|².
    x: (B, n, d). Returns (B,).
    """
    if model.heads != 1 or model.schedule is not None or model.causal or model.mask is not None:
        raise ValueError("energy_rate is defined for one head, constant weights and no mask (§3.4)")
    w = _weights(x, model)
    v = velocity(x, model)
    speed2 = (v * v).sum(-1)  # (B, n)
    n = x.shape[1]
    beta = w.beta
    if which == "A":
        if not model.is_sa_toy:
            raise ValueError("energy_rate(which='A') needs Q = K = I and V = ±I (§3.4); use which='tilde'")
        if model.normalization == "uniform":
            rate = speed2.sum(1) / n
            if model.time_scale == "exp_beta":
                # s = e^β t: ds-velocity is e^{−β} ẋ, so dE/ds = e^{−β}(1/n)Σ|ẋ|² = e^{β}(1/n)Σ|dx/ds|²;
                # reported in units of e^β/(2β)-normalised energy Ē: dĒ/ds = 2β (1/n) Σ |dx/ds|²
                return w.sign * 2 * beta * rate
            return w.sign * rate
        logz = torch.logsumexp(_bilinear(x, w, beta), dim=-1)  # (B, n)
        return w.sign * (torch.exp(logz) * speed2).sum(1) / (n * n)
    if which == "tilde":
        if model.normalization != "softmax":
            raise ValueError("energy_rate(which='tilde') is the SA identity; use normalization='softmax'")
        if w.ff_w is not None or w.centered or w.norm != "post" or not w.projection:
            raise ValueError("energy_rate(which='tilde') holds for the plain SA flow (2.3) only: no feed-forward "
                             "term, not centred, post-norm with the projection (the identity needs ẋ to be the "
                             "gradient of Ẽ)")
        b = _value_form(w, x)
        form = _score_form(w, x)
        if not (torch.allclose(b, b.transpose(-1, -2)) and torch.allclose(b.expand_as(form), form)):
            raise ValueError("energy_rate(which='tilde') needs V = QᵀK, symmetric (§3.4)")
        logz = torch.logsumexp(beta.view(-1, 1, 1) * _form_scores(x, b), dim=-1)
        return (torch.exp(logz) * speed2).sum(1)
    raise ValueError(f"which must be one of 'A', 'tilde', got {which!r}")


def energy_over_time(positions: torch.Tensor, model: Model | float, kind: str = "normalized") -> torch.Tensor:
    """An energy at every saved time of a run: positions (T, B, n, d) → (T, B).

    kind: "normalized" (Ē, never overflows), "log" (log E_β) or "energy" (E_β). Per-system parameters of the
    model (e.g. β of shape (B,)) are matched to the B axis.
    """
    fn = {"normalized": energy_normalized, "log": log_energy, "energy": energy}.get(kind)
    if fn is None:
        raise ValueError(f"kind must be one of 'normalized', 'log', 'energy', got {kind!r}")
    if positions.ndim != 4:
        raise ValueError(f"positions must have shape (T, B, n, d), got {tuple(positions.shape)}")
    T, B, n, d = positions.shape
    m = _as_model(model)
    if m.batch_size not in (1, B):
        raise ValueError(f"model has per-system parameters for B = {m.batch_size} systems but positions have "
                         f"B = {B}")
    return fn(positions.reshape(T * B, n, d), m.take(torch.arange(B).repeat(T))).reshape(T, B)


# ---------------------------------------------------------------------------------------------------------


def _as_model(model: Model | float) -> Model:
    return model if isinstance(model, Model) else Model(beta=model)


def _weights(x: torch.Tensor, model: Model | float) -> Weights:
    """Canonical weights at t = 0, checked against x; energies need one head and no mask (§3.4)."""
    m = _as_model(model)
    if m.heads != 1:
        raise ValueError(f"energies are defined for one head (heads = 1), got heads = {m.heads}")
    if m.mask is not None or m.causal:
        raise ValueError("energies are defined without attention masks (mask = None, causal = False)")
    return weights_at(m, x)


def _form_scores(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x_iᵀ b x_j for a (B or 1, d, d) form b. x: (B, n, d). Returns (B, n, n)."""
    return torch.matmul(torch.matmul(x, b), x.transpose(-1, -2))


def _bilinear(x: torch.Tensor, w: Weights, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Scores scale·⟨Q x_i, K x_j⟩ (scale: (B or 1,), default 1): (B, n, n). The queries are scaled before
    the product, as in the kernel, so β·s is rounded the same way everywhere."""
    xs = x if scale is None else x * scale.view(-1, 1, 1)
    if w.identity_attention:
        return torch.bmm(xs, x.transpose(1, 2))
    return torch.matmul(torch.matmul(xs, _score_form(w, x)), x.transpose(-1, -2))


def _value_form(w: Weights, x: torch.Tensor) -> torch.Tensor:
    """V as a (B or 1, d, d) matrix; ±I when V is given by name."""
    if w.v is None:
        return w.sign * torch.eye(x.shape[-1], dtype=x.dtype, device=x.device).unsqueeze(0)
    return w.v[:, 0]


def _score_form(w: Weights, x: torch.Tensor) -> torch.Tensor:
    """QᵀK as a (B or 1, d, d) matrix (identity for Q = K = I)."""
    if w.qk is not None:
        return w.qk[:, 0]
    if w.q is not None:
        return w.q[:, 0].transpose(-1, -2) @ w.k[:, 0]
    return torch.eye(x.shape[-1], dtype=x.dtype, device=x.device).unsqueeze(0)


def _score_bound(w: Weights, x: torch.Tensor) -> torch.Tensor:
    """s* = ‖QᵀK‖₂ ≥ ⟨Q x_i, K x_j⟩ for unit vectors: (B or 1,); exactly 1 for Q = K = I."""
    if w.q is None and w.qk is None:
        return torch.ones(1, dtype=x.dtype, device=x.device)
    return torch.linalg.matrix_norm(_score_form(w, x), ord=2)
