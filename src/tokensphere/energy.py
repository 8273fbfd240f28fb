"""Interaction energies and their time-derivative identities (SPEC §4).

Two normalisations, named differently on purpose (SPEC §4.1):

* normalisation A (the Lyapunov diagnostic, Remark 3.8):  E_β(X) = (1/(2βn²)) Σ_i Σ_j e^{β⟨Q x_i, K x_j⟩}
  — :func:`energy`, :func:`log_energy`, :func:`energy_normalized` (Ē = (1/n²) Σ Σ e^{β(s_ij − 1)} ∈ (0, 1]).
* normalisation B (§3.4 of the paper, SA metric):  Ẽ_β(X) = (1/(2β)) Σ_i Σ_j e^{β⟨V x_i, x_j⟩} — :func:`energy_tilde`.

At β = 0, normalisation A is replaced by its finite part lim_{β→0} (E_β − 1/(2β)) = (1/(2n²)) Σ Σ ⟨x_i, x_j⟩,
for which the same rate identity holds. Scores are taken from :func:`tokensphere.field.scores`.

Rate identities along exact flows (SPEC §4.2, §4.4), returned by :func:`energy_rate`:
    SA:   dE_β/dt = (1/n²) Σ_i Z_{β,i} |ẋ_i|²        USA:  dE_β/dt = (1/n) Σ_i |ẋ_i|²
    (V = QᵀK symmetric, SA):  dẼ_β/dt = Σ_i Z_{β,i} |ẋ_i|²,  Z_{β,i} = Σ_j e^{β⟨V x_i, x_j⟩}
with the opposite sign for V = −I.
"""

from __future__ import annotations

import torch

from .field import scores, velocity
from .model import Model

__all__ = ["energy", "energy_normalized", "energy_over_time", "energy_rate", "energy_tilde", "log_energy"]


def log_energy(x: torch.Tensor, model: Model | float) -> torch.Tensor:
    """log E_β(X), normalisation A, computed by log-sum-exp (finite for any β > 0).

    x: (B, n, d). model: a :class:`Model` (its β and Q, K) or a number β (Q = K = I). Returns (B,).
    Raises ValueError if some β is 0 (use :func:`energy`, which returns the finite part there).
    """
    m = _as_model(model)
    if bool((m.beta_tensor() == 0).any()):
        raise ValueError("beta must be > 0 for log_energy (E_β has a 1/β factor); use energy() at beta = 0")
    _check_one_head(m)
    n = x.shape[1]
    s = scores(x, m)[:, 0]
    beta = m.beta_tensor().to(x.dtype).expand(x.shape[0])
    return torch.logsumexp(s.flatten(1), dim=1) - torch.log(2 * beta * n * n)


def energy(x: torch.Tensor, model: Model | float) -> torch.Tensor:
    """E_β(X) = (1/(2βn²)) Σ_i Σ_j e^{β⟨Q x_i, K x_j⟩} (normalisation A; = e^β/(2β) at consensus with Q = K = I).

    x: (B, n, d). Returns (B,); entries with β = 0 hold the finite part (1/(2n²)) Σ Σ ⟨Q x_i, K x_j⟩.
    Overflows to inf where e^β does (β ≳ 709); use :func:`log_energy` or :func:`energy_normalized` there.
    """
    m = _as_model(model)
    _check_one_head(m)
    beta = m.beta_tensor().to(x.dtype).expand(x.shape[0])
    n = x.shape[1]
    zero = beta == 0
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    if bool((~zero).any()):
        safe = Model(**{**_fields(m), "beta": torch.where(zero, torch.ones_like(beta), beta)})
        out = torch.exp(log_energy(x, safe))
    if bool(zero.any()):
        unit = Model(**{**_fields(m), "beta": torch.ones_like(beta)})
        raw = scores(x, unit)[:, 0]  # β = 1 gives the bare scores ⟨Q x_i, K x_j⟩
        out = torch.where(zero, raw.flatten(1).sum(1) / (2 * n * n), out)
    return out


def energy_normalized(x: torch.Tensor, model: Model | float) -> torch.Tensor:
    """Ē = (1/n²) Σ_i Σ_j e^{β(s_ij − 1)} ∈ (0, 1] for scores s_ij ≤ 1, so E_β = (e^β/(2β)) Ē (SPEC §8.3).

    x: (B, n, d). Returns (B,). Never overflows for Q = K = I, whatever β.
    """
    m = _as_model(model)
    _check_one_head(m)
    s = scores(x, m)[:, 0]
    beta = m.beta_tensor().to(x.dtype).view(-1, 1, 1)
    return torch.exp(s - beta).flatten(1).mean(1)


def energy_tilde(x: torch.Tensor, model: Model | float) -> torch.Tensor:
    """Ẽ_β(X) = (1/(2β)) Σ_i Σ_j e^{β⟨V x_i, x_j⟩} (normalisation B, no 1/n², V inside; SPEC §4.4).

    x: (B, n, d). V is the model's value matrix (identity when V = "identity"). Returns (B,). β must be > 0.
    """
    m = _as_model(model)
    if bool((m.beta_tensor() == 0).any()):
        raise ValueError("beta must be > 0 for energy_tilde (it has a 1/β factor)")
    b = _value_form(m, x)
    beta = m.beta_tensor().to(x.dtype).expand(x.shape[0])
    s = scores(x, Model(beta=beta, QK=b))[:, 0]
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
        raise ValueError("energy_rate is defined for one head, constant weights and no mask (SPEC §4.2)")
    v = velocity(x, model)
    speed2 = (v * v).sum(-1)  # (B, n)
    n = x.shape[1]
    if which == "A":
        if not model.is_sa_toy:
            raise ValueError("energy_rate(which='A') needs Q = K = I and V = ±I (SPEC §4.2); use which='tilde'")
        if model.normalization == "uniform":
            rate = speed2.sum(1) / n
            if model.time_scale == "exp_beta":
                # s = e^β t: ds-velocity is e^{−β} ẋ, so dE/ds = e^{−β}(1/n)Σ|ẋ|² = e^{β}(1/n)Σ|dx/ds|²;
                # reported in units of e^β/(2β)-normalised energy Ē: dĒ/ds = 2β (1/n) Σ |dx/ds|²
                beta = model.beta_tensor().to(x.dtype)
                return model.sign * 2 * beta * rate
            return model.sign * rate
        logz = torch.logsumexp(scores(x, model)[:, 0], dim=-1)  # (B, n)
        return model.sign * (torch.exp(logz) * speed2).sum(1) / (n * n)
    if which == "tilde":
        if model.normalization != "softmax":
            raise ValueError("energy_rate(which='tilde') is the SA identity; use normalization='softmax'")
        b = _value_form(model, x)
        scores_form = _score_form(model, x)
        if not (torch.allclose(b, b.transpose(-1, -2)) and torch.allclose(b.expand_as(scores_form), scores_form)):
            raise ValueError("energy_rate(which='tilde') needs V = QᵀK, symmetric (SPEC §4.4)")
        beta = model.beta_tensor().to(x.dtype)
        logz = torch.logsumexp(scores(x, Model(beta=beta, QK=b))[:, 0], dim=-1)
        return (torch.exp(logz) * speed2).sum(1)
    raise ValueError(f"which must be one of 'A', 'tilde', got {which!r}")


def _as_model(model: Model | float) -> Model:
    if isinstance(model, Model):
        return model
    return Model(beta=model)


def _value_form(m: Model, x: torch.Tensor) -> torch.Tensor:
    """V as a (B or 1, d, d) matrix in the dtype of x; ±I when V is given by name."""
    _check_one_head(m)
    if m._v is None:  # type: ignore[attr-defined]
        return m.sign * torch.eye(x.shape[-1], dtype=x.dtype, device=x.device).unsqueeze(0)
    return m._v[:, 0].to(dtype=x.dtype, device=x.device)  # type: ignore[attr-defined]


def _score_form(m: Model, x: torch.Tensor) -> torch.Tensor:
    """QᵀK as a (B or 1, d, d) matrix (identity for Q = K = I)."""
    if m._qk is not None:  # type: ignore[attr-defined]
        return m._qk[:, 0].to(dtype=x.dtype, device=x.device)  # type: ignore[attr-defined]
    if m._q is not None:  # type: ignore[attr-defined]
        q, k = m._q[:, 0], m._k[:, 0]  # type: ignore[attr-defined]
        return (q.transpose(-1, -2) @ k).to(dtype=x.dtype, device=x.device)
    return torch.eye(x.shape[-1], dtype=x.dtype, device=x.device).unsqueeze(0)


def _check_one_head(m: Model) -> None:
    """Energies are defined for one head attending to every token (SPEC §4): refuse heads, masks, causal."""
    if m.heads != 1:
        raise ValueError(f"energies are defined for one head (heads = 1), got heads = {m.heads}")
    if m.mask is not None or m.causal:
        raise ValueError("energies are defined without attention masks (mask = None, causal = False)")


def _fields(m: Model) -> dict:
    return {
        "normalization": m.normalization,
        "Q": m.Q,
        "K": m.K,
        "QK": m.QK,
        "time_scale": m.time_scale,
    }



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
    index = torch.arange(B).repeat(T)
    return fn(positions.reshape(T * B, n, d), m.take(index)).reshape(T, B)
