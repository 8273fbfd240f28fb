"""Butcher tableaux and Lie-group coefficients: data only.

Explicit Runge–Kutta: y₁ = y₀ + h Σ b_j k_j, k_i = f(t + c_i h, y₀ + h Σ_{j<i} a_ij k_j). Embedded pairs carry
``e = b − b̂`` (the error estimate is h Σ e_j k_j) and the order of the lower-order solution.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction as Fr

__all__ = ["Tableau", "CrouchGrossman", "TABLEAUX", "CROUCH_GROSSMAN"]


@dataclass(frozen=True)
class Tableau:
    """An explicit Runge–Kutta method: c (s,), a (lower triangle, s rows), b (s,), optional embedded error e."""

    name: str
    order: int
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    e: tuple[float, ...] | None = None  # b − b̂ for an embedded pair
    error_order: int | None = None  # order of the embedded (lower-order) solution
    fsal: bool = False  # last stage is f at the new point

    @property
    def stages(self) -> int:
        return len(self.b)


def _f(*xs) -> tuple[float, ...]:
    return tuple(float(Fr(x)) for x in xs)


EULER = Tableau("euler", 1, _f(0), ((),), _f(1))
MIDPOINT = Tableau("midpoint", 2, _f(0, "1/2"), ((), _f("1/2")), _f(0, 1))
HEUN = Tableau("heun", 2, _f(0, 1), ((), _f(1)), _f("1/2", "1/2"))
RK3 = Tableau("rk3", 3, _f(0, "1/2", 1), ((), _f("1/2"), _f(-1, 2)), _f("1/6", "2/3", "1/6"))
RK4 = Tableau(
    "rk4",
    4,
    _f(0, "1/2", "1/2", 1),
    ((), _f("1/2"), _f(0, "1/2"), _f(0, 0, 1)),
    _f("1/6", "1/3", "1/3", "1/6"),
)

# Bogacki–Shampine 3(2), FSAL.
_BS_B = ("2/9", "1/3", "4/9", 0)
_BS_BHAT = ("7/24", "1/4", "1/3", "1/8")
BOSH3 = Tableau(
    "bosh3",
    3,
    _f(0, "1/2", "3/4", 1),
    ((), _f("1/2"), _f(0, "3/4"), _f("2/9", "1/3", "4/9")),
    _f(*_BS_B),
    tuple(float(Fr(x) - Fr(y)) for x, y in zip(_BS_B, _BS_BHAT)),
    error_order=2,
    fsal=True,
)

# Dormand–Prince 5(4), FSAL (Hairer, Nørsett & Wanner, Solving ODEs I, Table 5.2).
_DP_B = ("35/384", 0, "500/1113", "125/192", "-2187/6784", "11/84", 0)
_DP_BHAT = ("5179/57600", 0, "7571/16695", "393/640", "-92097/339200", "187/2100", "1/40")
DOPRI5 = Tableau(
    "dopri5",
    5,
    _f(0, "1/5", "3/10", "4/5", "8/9", 1, 1),
    (
        (),
        _f("1/5"),
        _f("3/40", "9/40"),
        _f("44/45", "-56/15", "32/9"),
        _f("19372/6561", "-25360/2187", "64448/6561", "-212/729"),
        _f("9017/3168", "-355/33", "46732/5247", "49/176", "-5103/18656"),
        _f("35/384", 0, "500/1113", "125/192", "-2187/6784", "11/84"),
    ),
    _f(*_DP_B),
    tuple(float(Fr(x) - Fr(y)) for x, y in zip(_DP_B, _DP_BHAT)),
    error_order=4,
    fsal=True,
)

TABLEAUX = {t.name: t for t in (EULER, MIDPOINT, HEUN, RK3, RK4, BOSH3, DOPRI5)}


@dataclass(frozen=True)
class CrouchGrossman:
    """A commutator-free Crouch–Grossman Lie-group method (coefficients as in an ERK tableau).

    Y_r = exp(h a_{r,r−1} F_{r−1}) ∘ ⋯ ∘ exp(h a_{r,1} F_1) (y₀),   y₁ = exp(h b_s F_s) ∘ ⋯ ∘ exp(h b_1 F_1) (y₀),
    with F_j the frozen vector field at Y_j (an element of so(d) per token).
    """

    name: str
    order: int
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]


LIE_EULER = CrouchGrossman("lie-euler", 1, _f(0), ((),), _f(1))
# Crouch & Grossman (1993), third order, three stages.
CG3 = CrouchGrossman(
    "cg3",
    3,
    _f(0, "3/4", "17/24"),
    ((), _f("3/4"), _f("119/216", "17/108")),
    _f("13/51", "-2/3", "24/17"),
)

CROUCH_GROSSMAN = {m.name: m for m in (LIE_EULER, CG3)}
