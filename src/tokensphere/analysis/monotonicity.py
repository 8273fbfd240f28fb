"""Energy monotonicity along a run: E_β is non-decreasing along exact (SA) and (USA) flows with V = I, and
non-increasing with V = −I (the paper's (3.6) and Lemma 3.7, §3.3; particle forms of normalisation A).

:func:`energy_series` evaluates the energy at every saved time; :func:`step_against_trend` measures the
largest step between consecutive saved times against the expected direction, relative to the largest |energy|
of that system along the run (a scale that does not vanish when the energy itself decays to 0, as the finite
part of E_β does at β = 0 with V = −I). Along a numerical solution that number is of the order of the
integrator's tolerance.
"""

from __future__ import annotations

import torch

from ..energy import energy_over_time
from ..model import Model

__all__ = ["ENERGY_BLOCK", "energy_monotonicity", "energy_series", "step_against_trend"]

ENERGY_BLOCK = 2 * 10**7  # score entries per energy evaluation: bounds the memory of long or large runs


def energy_series(positions: torch.Tensor, model: Model, kind: str = "normalized") -> torch.Tensor:
    """:func:`~tokensphere.energy_over_time` evaluated over blocks of saved times, so that the (times, B, n, n)
    scores stay below ~2·10⁷ entries. positions: (T, B, n, d). Returns (T, B) in the dtype of positions."""
    if positions.ndim != 4:
        raise ValueError(f"positions must have shape (T, B, n, d), got {tuple(positions.shape)}")
    T, B, n, _ = positions.shape
    block = max(1, ENERGY_BLOCK // max(B * n * n, 1))
    return torch.cat([energy_over_time(positions[k : k + block], model, kind=kind) for k in range(0, T, block)])


def step_against_trend(series: torch.Tensor, *, decreasing: bool = False) -> torch.Tensor:
    """Largest relative step against a monotone trend, per column.

    series: (T, B), e.g. an energy per saved time and system. For a non-decreasing trend the value for system b
    is max_k (e_k − e_{k+1}) / max_k' |e_k'| over consecutive saved times (mirrored when ``decreasing``),
    clipped at 0 (0: no step against the trend). The scale is the system's largest finite |e|, not |e_k|: an
    energy that decays to round-off level (the finite part of E_β at β = 0, V = −I) would otherwise turn
    round-off into an arbitrarily large relative step. Steps involving non-finite values are ignored (NaN when
    none is left). Returns (B,) float64.
    """
    e = series.to(torch.float64)
    if e.ndim != 2:
        raise ValueError(f"series must have shape (T, B), got {tuple(e.shape)}")
    if e.shape[0] < 2:
        return torch.zeros(e.shape[1], dtype=torch.float64)
    step = e[1:] - e[:-1]
    size = torch.where(torch.isfinite(e), e.abs(), torch.zeros_like(e)).amax(0)  # (B,): the system's scale
    against = (step if decreasing else -step) / size.clamp_min(torch.finfo(torch.float64).tiny)
    finite = torch.isfinite(against)
    worst = torch.where(finite, against, torch.full_like(against, -torch.inf)).amax(0).clamp_min(0.0)
    return torch.where(finite.any(0), worst, torch.full_like(worst, torch.nan))


def energy_monotonicity(positions: torch.Tensor, model: Model) -> torch.Tensor:
    """The energy check of a run: :func:`step_against_trend` of its energy, in the direction set by V = ±I.

    The energy is the normalised Ē = 2β e^{−β} E_β (never overflows) for β > 0 and the finite part
    (1/(2n²)) Σ_i Σ_j ⟨x_i, x_j⟩ of E_β at β = 0, where Ē is constant. positions: (T, B, n, d); model: the
    run's model (Q = K = I, V = ±I, one head, no mask: elsewhere no monotone energy is claimed, and the caller
    decides whether to ask). Returns (B,) float64: 0 along an exactly monotone run.
    """
    positions = positions.to(torch.float64)
    B = positions.shape[1]
    beta = model.beta_tensor().reshape(-1).expand(B)
    e = energy_series(positions, model, "normalized")
    zero = beta == 0
    if bool(zero.any()):
        idx = torch.nonzero(zero).reshape(-1)
        sub = model.take(idx) if model.batch_size > 1 else model
        e[:, idx] = energy_series(positions[:, idx], sub, "energy")
    return step_against_trend(e, decreasing=model.sign < 0)
