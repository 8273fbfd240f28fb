"""Known universally optimal configurations (Cohn–Kumar 2007; Theorem 9.2 of the paper, in its correct direction):
their coordinates, their inner-product distributions and their exact energies.

Each configuration carries its distribution of inner products seen from one point, {t: multiplicity}, taken
from the literature (Conway–Sloane, "Sphere Packings, Lattices and Groups"; Coxeter, "Regular Polytopes"), not
from the coordinates. All these configurations are distance-transitive, so the distribution is the same from
every point, and the exact energy is a finite sum
    E_β = (1/(2βn²)) Σ_i Σ_j e^{β⟨x_i,x_j⟩} = (1/(2βn)) Σ_t m_t e^{βt},
    log E_β = logsumexp_t(βt + log m_t) − log(2βn).
The self term (t = 1, m = 1) contributes the constant e^β/(2βn), which dominates E_β for large β; the part that
depends on the configuration, F_β = E_β − e^β/(2βn) = (1/(2βn)) Σ_{t≠self} m_t e^{βt}, is what the search
compares (:meth:`Known.log_interaction_energy`).
The coordinates are built separately (:meth:`Known.points`); the tests check that the two agree.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..norms import sphere
from ..validate import validate_int, validate_real

__all__ = ["KNOWN", "Known", "known_for"]

PHI = (1 + math.sqrt(5)) / 2  # golden ratio


@dataclass(frozen=True)
class Known:
    """A known universally optimal configuration of n points on S^{d−1}.

    name; n, d; distribution: ((t, m_t), ...) inner products seen from one point (t = 1 included, m = 1);
    design: the largest t for which it is a spherical t-design (literature value); sharp: whether it is sharp
    (m distinct inner products ≠ 1 and a (2m−1)-design, Delsarte–Goethals–Seidel 1977); build: coordinates.
    """

    name: str
    n: int
    d: int
    distribution: tuple[tuple[float, int], ...]
    design: int
    sharp: bool
    build: Callable[[], torch.Tensor]

    def log_energy(self, beta: float) -> float:
        """Exact log E_β from the inner-product distribution (closed form above). beta > 0."""
        beta = validate_real("beta", beta, minimum=0.0, strict_minimum=True)
        terms = [beta * t + math.log(m) for t, m in self.distribution]
        top = max(terms)
        return top + math.log(sum(math.exp(v - top) for v in terms)) - math.log(2 * beta * self.n)

    def log_interaction_energy(self, beta: float) -> float:
        """Exact log F_β, F_β = E_β − e^β/(2βn) = (1/(2βn)) Σ_{t≠self} m_t e^{βt}: the interaction part, without
        the self term (t = 1, m = 1). Finite for any beta > 0 (log-sum-exp)."""
        beta = validate_real("beta", beta, minimum=0.0, strict_minimum=True)
        terms = [beta * t + math.log(m - (t == 1.0)) for t, m in self.distribution if m - (t == 1.0) > 0]
        top = max(terms)
        return top + math.log(sum(math.exp(v - top) for v in terms)) - math.log(2 * beta * self.n)

    def energy(self, beta: float) -> float:
        """Exact E_β = (1/(2βn)) Σ_t m_t e^{βt} (may overflow to inf for β ≳ 700; use :meth:`log_energy`)."""
        return math.exp(self.log_energy(beta))

    def points(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Unit-vector coordinates, shape (n, d)."""
        return sphere(self.build().to(dtype))


def _simplex(d: int) -> torch.Tensor:
    """Regular simplex: the d+1 standard basis vectors of R^{d+1} centred, in an orthonormal basis of the
    hyperplane Σ = 0 (n = d + 1 points in R^d)."""
    e = torch.eye(d + 1, dtype=torch.float64) - 1.0 / (d + 1)
    # orthonormal basis of {Σ = 0}: the first d left singular vectors of the centring matrix
    u, _, _ = torch.linalg.svd(e)
    return e @ u[:, :d]


def _cross(d: int) -> torch.Tensor:
    """Cross-polytope: ±e_k, 2d points."""
    eye = torch.eye(d, dtype=torch.float64)
    return torch.cat([eye, -eye])


def _polygon(n: int) -> torch.Tensor:
    """Regular n-gon on the circle."""
    a = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    return torch.stack([a.cos(), a.sin()], dim=1)


def _icosahedron() -> torch.Tensor:
    """Cyclic permutations of (0, ±1, ±φ): 12 points."""
    pts = []
    for s1, s2 in itertools.product((1, -1), repeat=2):
        v = (0.0, s1 * 1.0, s2 * PHI)
        for k in range(3):
            pts.append(v[-k:] + v[:-k] if k else v)
    return torch.tensor(pts, dtype=torch.float64)


def _even_permutations(k: int) -> list[tuple[int, ...]]:
    out = []
    for p in itertools.permutations(range(k)):
        inversions = sum(p[i] > p[j] for i in range(k) for j in range(i + 1, k))
        if inversions % 2 == 0:
            out.append(p)
    return out


def _cell600() -> torch.Tensor:
    """600-cell vertices (120): the 8 permutations of (±1, 0, 0, 0), the 16 points (±½, ±½, ±½, ±½), and the 96
    even permutations of ½(±φ, ±1, ±1/φ, 0) (Coxeter, Regular Polytopes, §8.7)."""
    pts = [tuple(float(s) if i == k else 0.0 for i in range(4)) for k in range(4) for s in (1, -1)]
    pts += list(itertools.product((0.5, -0.5), repeat=4))
    base = (PHI / 2, 0.5, 1 / (2 * PHI), 0.0)
    for signs in itertools.product((1, -1), repeat=3):
        v = tuple(s * c for s, c in zip(signs + (1,), base))
        for perm in _even_permutations(4):
            pts.append(tuple(v[perm[i]] for i in range(4)))
    return torch.tensor(pts, dtype=torch.float64)


def _e8() -> torch.Tensor:
    """E8 root system (240 roots of norm √2): the 112 vectors with two entries ±1, the rest 0, and the 128
    vectors (±½)^8 with an even number of minus signs."""
    pts = []
    for i, j in itertools.combinations(range(8), 2):
        for si, sj in itertools.product((1.0, -1.0), repeat=2):
            v = [0.0] * 8
            v[i], v[j] = si, sj
            pts.append(v)
    for signs in itertools.product((0.5, -0.5), repeat=8):
        if sum(s < 0 for s in signs) % 2 == 0:
            pts.append(list(signs))
    return torch.tensor(pts, dtype=torch.float64)


def _polygon_distribution(n: int) -> tuple[tuple[float, int], ...]:
    """cos(2πk/n), k = 0..n−1, grouped: 1 and (n even) −1 once, the other values twice."""
    out = {}
    for k in range(n):
        k = min(k, n - k)
        out[k] = out.get(k, 0) + 1
    return tuple((math.cos(2 * math.pi * k / n), m) for k, m in sorted(out.items()))


ICOSAHEDRON = Known("icosahedron", 12, 3, ((1.0, 1), (1 / math.sqrt(5), 5), (-1 / math.sqrt(5), 5), (-1.0, 1)),
                    5, True, _icosahedron)
CELL600 = Known("600-cell", 120, 4,
                ((1.0, 1), (PHI / 2, 12), (0.5, 20), (1 / (2 * PHI), 12), (0.0, 30), (-1 / (2 * PHI), 12),
                 (-0.5, 20), (-PHI / 2, 12), (-1.0, 1)), 11, False, _cell600)
E8 = Known("E8 roots", 240, 8, ((1.0, 1), (0.5, 56), (0.0, 126), (-0.5, 56), (-1.0, 1)), 7, True, _e8)
KNOWN = (ICOSAHEDRON, CELL600, E8)  # the sporadic ones; simplices, cross-polytopes, polygons come from known_for


def simplex(d: int) -> Known:
    """Regular simplex on S^{d−1}: n = d + 1, inner products −1/d (d of them per point); a 2-design, sharp."""
    d = validate_int("d", d, minimum=2)
    return Known(f"simplex ({d + 1} points)", d + 1, d, ((1.0, 1), (-1.0 / d, d)), 2, True, lambda: _simplex(d))


def cross_polytope(d: int) -> Known:
    """Cross-polytope ±e_k on S^{d−1}: n = 2d, inner products 0 (2d − 2 per point) and −1; a 3-design, sharp."""
    d = validate_int("d", d, minimum=2)
    return Known(f"cross-polytope ({2 * d} points)", 2 * d, d, ((1.0, 1), (0.0, 2 * d - 2), (-1.0, 1)), 3, True,
                 lambda: _cross(d))


def polygon(n: int) -> Known:
    """Regular n-gon on S¹: an (n−1)-design, sharp (⌊n/2⌋ distinct inner products ≠ 1; 2⌊n/2⌋ − 1 ≤ n − 1)."""
    n = validate_int("n", n, minimum=3)
    return Known(f"regular {n}-gon", n, 2, _polygon_distribution(n), n - 1, True, lambda: _polygon(n))


def known_for(n: int, d: int) -> Known | None:
    """The known universally optimal configuration of n points on S^{d−1}, or None. Tried in the order: polygon
    (d = 2), simplex (n = d + 1), cross-polytope (n = 2d), icosahedron, 600-cell, E8 roots."""
    n = validate_int("n", n, minimum=1)
    d = validate_int("d", d, minimum=2)
    if d == 2 and n >= 3:
        return polygon(n)
    if n == d + 1:
        return simplex(d)
    if n == 2 * d:
        return cross_polytope(d)
    for k in KNOWN:
        if (k.n, k.d) == (n, d):
            return k
    return None
