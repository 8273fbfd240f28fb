"""Recognising a configuration: its inner products, its spherical-design strength, sharpness, and which known
universally optimal configuration it is.

* Spherical t-design (Delsarte–Goethals–Seidel 1977): (1/n) Σ_x p(x) = ∫ p dσ for every polynomial of degree ≤ t.
  Equivalently Σ_i Σ_j P_k^{(d)}(⟨x_i,x_j⟩) = 0 for k = 1..t, with P_k^{(d)} = C_k^{λ}/C_k^{λ}(1), λ = (d−2)/2,
  the normalised Gegenbauer polynomial (Legendre for d = 3; Chebyshev T_k for d = 2, the λ → 0 limit). Each sum
  is ≥ 0 (addition theorem), so the test is (1/n²) Σ Σ P_k ≤ tol.
* Sharp configuration (Cohn–Kumar 2007, after Delsarte–Goethals–Seidel): m distinct inner products between
  distinct points and a spherical (2m − 1)-design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..energy import log_energy
from ..validate import validate_int, validate_real
from .known import Known, known_for
from .optimize import log_interaction_energy

__all__ = ["Structure", "describe", "design_sums", "design_strength", "gegenbauer", "inner_products",
           "is_sharp", "match_known", "normalized_gegenbauer"]

DESIGN_TOL = 1e-8  # (1/n²) Σ Σ P_k below this counts as zero: the sums are quadratic in the distance to a design
GROUP_TOL = 1e-5  # inner products closer than this are one value
MAX_DEGREE = 20  # degrees tried by design_strength


def gegenbauer(k: int, lam: float, s: torch.Tensor) -> torch.Tensor:
    """Gegenbauer polynomial C_k^λ(s) by the three-term recurrence
    k C_k = 2(k + λ − 1) s C_{k−1} − (k + 2λ − 2) C_{k−2},  C_0 = 1, C_1 = 2λ s.  λ > 0 (λ = 0 is d = 2: use
    :func:`normalized_gegenbauer`). s: any shape. Returns the same shape."""
    k = validate_int("k", k, minimum=0)
    lam = validate_real("lam", lam, minimum=0.0, strict_minimum=True)
    prev, cur = torch.ones_like(s), 2 * lam * s
    if k == 0:
        return prev
    for j in range(2, k + 1):
        prev, cur = cur, (2 * (j + lam - 1) * s * cur - (j + 2 * lam - 2) * prev) / j
    return cur


def normalized_gegenbauer(k: int, d: int, s: torch.Tensor) -> torch.Tensor:
    """P_k^{(d)}(s) = C_k^{(d−2)/2}(s) / C_k^{(d−2)/2}(1) (so P_k(1) = 1); for d = 2 the Chebyshev polynomial
    T_k(s) = cos(k arccos s), the λ → 0 limit. d ≥ 2. s: any shape, values in [−1, 1]."""
    d = validate_int("d", d, minimum=2)
    k = validate_int("k", k, minimum=0)
    if d == 2:
        prev, cur = torch.ones_like(s), s.clone()
        if k == 0:
            return prev
        for _ in range(2, k + 1):
            prev, cur = cur, 2 * s * cur - prev
        return cur
    lam = (d - 2) / 2
    return gegenbauer(k, lam, s) / gegenbauer(k, lam, torch.ones((), dtype=s.dtype)).item()


def design_sums(x: torch.Tensor, max_degree: int = MAX_DEGREE) -> torch.Tensor:
    """(1/n²) Σ_i Σ_j P_k^{(d)}(⟨x_i,x_j⟩) for k = 1..max_degree. x: (n, d) unit vectors. Returns (max_degree,),
    each entry ≥ 0 up to round-off; entry k − 1 is 0 iff x is balanced in degree k."""
    max_degree = validate_int("max_degree", max_degree, minimum=1)
    x = _as_points(x)
    gram = (x @ x.T).clamp(-1.0, 1.0)
    return torch.stack([normalized_gegenbauer(k, x.shape[1], gram).mean() for k in range(1, max_degree + 1)])


def design_strength(x: torch.Tensor, tol: float = DESIGN_TOL, max_degree: int = MAX_DEGREE) -> int:
    """The largest t ≤ max_degree such that x (n, d) is a spherical t-design: the design sums vanish (≤ tol)
    for k = 1..t. 0 when the centroid is not at the origin."""
    sums = design_sums(x, max_degree)
    bad = torch.nonzero(sums.abs() > tol).flatten()
    return int(bad[0]) if bad.numel() else max_degree


def inner_products(x: torch.Tensor, tol: float = GROUP_TOL) -> list[tuple[float, float]]:
    """Distinct inner products ⟨x_i,x_j⟩ (i, j over all pairs, i = j included) with their mean multiplicity per
    point, grouped by single linkage at gap tol, in decreasing order: [(t, m_t)], Σ m_t = n. x: (n, d)."""
    x = _as_points(x)
    n = x.shape[0]
    vals = torch.sort((x @ x.T).clamp(-1.0, 1.0).flatten(), descending=True).values
    cuts = torch.nonzero(vals[:-1] - vals[1:] > tol).flatten() + 1
    bounds = [0, *cuts.tolist(), vals.numel()]
    return [(float(vals[a:b].mean()), (b - a) / n) for a, b in zip(bounds[:-1], bounds[1:])]


def is_sharp(distinct: int, strength: int) -> bool:
    """Sharp: m distinct inner products between distinct points (``distinct``) and a (2m − 1)-design."""
    return distinct >= 1 and strength >= 2 * distinct - 1


def match_known(x: torch.Tensor, beta: float, *, rtol: float = 1e-9, tol: float = GROUP_TOL) -> Known | None:
    """The known universally optimal configuration x is (up to an isometry), or None: same n and d, log F_β within
    rtol of the exact value (F_β = E_β − e^β/(2βn), the interaction part: log E_β cannot tell configurations apart
    for large β, where the self term e^β/(2βn) swamps the rest), and the same inner-product distribution (values
    within tol, equal multiplicities). x: (n, d)."""
    x = _as_points(x)
    known = known_for(*x.shape)
    if known is None:
        return None
    gap = float(log_interaction_energy(x.unsqueeze(0), beta)[0]) - known.log_interaction_energy(beta)
    found = inner_products(x, tol)
    same = len(found) == len(known.distribution) and all(
        abs(t - t0) <= 10 * tol and abs(m - m0) < 1e-9
        for (t, m), (t0, m0) in zip(found, sorted(known.distribution, reverse=True)))
    return known if same and abs(gap) <= rtol else None


@dataclass(frozen=True)
class Structure:
    """What a configuration is. n, d, beta; log_energy: log E_β; inner_products: [(t, m_t)] (decreasing t,
    t = 1 first); distinct: number of distinct values ≠ 1; strength: spherical-design strength; sharp;
    known: the known configuration for (n, d) or None; matches: whether x is it; gap: log E_β − log E_β(known)
    (the relative energy gap to first order), None without a known configuration; log_interaction: log F_β,
    F_β = E_β − e^β/(2βn) the part of the energy that depends on the points; interaction_gap:
    log F_β − log F_β(known), None without a known configuration (for large β the gap of E_β is swamped by its
    constant self term: at β = 30 any spread-out 4 points are within 1e-12 of the tetrahedron's E_β)."""

    n: int
    d: int
    beta: float
    log_energy: float
    inner_products: list[tuple[float, float]]
    distinct: int
    strength: int
    sharp: bool
    known: Known | None
    matches: bool
    gap: float | None
    log_interaction: float | None = None
    interaction_gap: float | None = None

    @property
    def relative_gap(self) -> float | None:
        """E_β/E_β(known) − 1."""
        return None if self.gap is None else math.expm1(self.gap)

    @property
    def relative_interaction_gap(self) -> float | None:
        """F_β/F_β(known) − 1, F_β = E_β − e^β/(2βn)."""
        return None if self.interaction_gap is None else math.expm1(self.interaction_gap)


def describe(x: torch.Tensor, beta: float, *, tol: float = GROUP_TOL, design_tol: float = DESIGN_TOL) -> Structure:
    """The :class:`Structure` of x (n, d) at inverse temperature beta > 0."""
    x = _as_points(x)
    beta = validate_real("beta", beta, minimum=0.0, strict_minimum=True)
    ips = inner_products(x, tol)
    distinct = sum(1 for t, _ in ips if t < 1 - tol)
    strength = design_strength(x, design_tol)
    known = known_for(*x.shape)
    le = float(log_energy(x.unsqueeze(0), beta)[0])
    gap = None if known is None else le - known.log_energy(beta)
    lf = float(log_interaction_energy(x.unsqueeze(0), beta)[0])
    igap = None if known is None else lf - known.log_interaction_energy(beta)
    matches = known is not None and match_known(x, beta, tol=tol) is not None
    return Structure(x.shape[0], x.shape[1], beta, le, ips, distinct, strength, is_sharp(distinct, strength), known,
                     matches, gap, lf, igap)


def _as_points(x: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"x must have shape (n, d) with d >= 2, got {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if not bool(torch.isfinite(x).all()):  # a NaN would pass every "≤ tol" test as a design of any strength
        raise ValueError("x must hold finite coordinates, got NaN or inf")
    return x
