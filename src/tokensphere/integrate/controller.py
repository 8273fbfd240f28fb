"""Step-size control for the embedded Runge–Kutta pairs: *how to choose steps*, separate from the method.

Per system b, with the scaled error norm of an attempted step of size h from x to y (RMS over tokens and
coordinates; Hairer, Nørsett & Wanner, Solving ODEs I, §II.4, (4.11))

    err_b = √( mean_{i,k} ( e_{b,ik} / (atol + rtol · max(|x_{b,ik}|, |y_{b,ik}|)) )² ),

the step is accepted when err_b ≤ 1 and the next step is (ibid., (4.13))

    h_new = h · min(max_factor, max(min_factor, safety · err_b^{−1/(q+1)})),

q being the order of the embedded (lower-order) solution. The defaults are those of Hairer's DOPRI5 code:
safety 0.9 (WORK(2)), factor bounds 0.2 ≤ h_new/h ≤ 10 (WORK(3), WORK(4)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..runtime import run_lanes_by_rows
from ..validate import validate_real

__all__ = ["StepController"]

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# err_b is floored here before the power: a step with zero estimated error grows by max_factor, not by ∞
_ERR_FLOOR = 1e-10


@dataclass(frozen=True)
class StepController:
    """Elementary error-per-step controller (HNW §II.4), one step size per system.

    rtol, atol: relative and absolute tolerances (> 0). safety: factor in (0, 1] applied to the optimal
    step. min_factor, max_factor: bounds on h_new/h (0 < min_factor ≤ 1 ≤ max_factor). dt_max: largest
    step (None = unlimited). Raises ValueError naming the field for every invalid value.
    """

    rtol: float = 1e-7
    atol: float = 1e-9
    safety: float = 0.9  # DOPRI5 default WORK(2) (HNW, Solving ODEs I, §II.4 and Appendix)
    min_factor: float = 0.2  # DOPRI5 default WORK(3): h_new/h ≥ 0.2
    max_factor: float = 10.0  # DOPRI5 default WORK(4): h_new/h ≤ 10
    dt_max: float | None = None

    def __post_init__(self) -> None:
        for name in ("rtol", "atol"):
            object.__setattr__(self, name, validate_real(name, getattr(self, name), minimum=0.0, strict_minimum=True))
        object.__setattr__(self, "safety", validate_real("safety", self.safety, minimum=0.0, maximum=1.0,
                                                      strict_minimum=True))
        object.__setattr__(self, "min_factor", validate_real("min_factor", self.min_factor, minimum=0.0, maximum=1.0,
                                                          strict_minimum=True))
        object.__setattr__(self, "max_factor", validate_real("max_factor", self.max_factor, minimum=1.0))
        if self.dt_max is not None:
            object.__setattr__(self, "dt_max", validate_real("dt_max", self.dt_max, minimum=0.0, strict_minimum=True))

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable fields; ``StepController(**describe())`` rebuilds it."""
        return asdict(self)

    def error_ratio(self, err: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                    scratch: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """err_b of the module docstring. err, x, y: (B, n, d). Returns (B,) float64; NaN counts as +∞.

        scratch: two contiguous (B, n, d) buffers to compute in (no allocation; same arithmetic, same result).
        """
        tol = torch.tensor([self.atol, self.rtol], dtype=x.dtype, device=x.device)

        def ratio(rows: slice, a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor:
            # the same calls with or without scratch (out=None allocates)
            m = torch.maximum(torch.abs(x[rows], out=a), torch.abs(y[rows], out=b), out=a)
            scale = torch.addcmul(tol[0], m, tol[1], out=a)  # atol + rtol·max(|x|, |y|) in one pass
            return _rms(torch.div(err[rows], scale, out=a))

        if scratch is None:
            e = ratio(slice(None), None, None)
        else:  # large batches: the rows spread over the lanes (each row by one thread, the same bits)
            a, b = scratch
            e = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
            run_lanes_by_rows(x, lambda r: e[r].copy_(ratio(r, a[r], b[r])))
        return torch.nan_to_num(e, nan=float("inf"))

    def next_step(self, h: torch.Tensor, err_ratio: torch.Tensor, error_order: int) -> torch.Tensor:
        """h_new of (4.13) for steps h (B,) with error ratios err_b (B,) and embedded order q."""
        optimal = self.safety * err_ratio.clamp(min=_ERR_FLOOR) ** (-1.0 / (error_order + 1))
        return h * optimal.clamp(self.min_factor, self.max_factor)

    def cap(self, h: torch.Tensor) -> torch.Tensor:
        """h clamped to dt_max (unchanged when dt_max is None)."""
        return h if self.dt_max is None else h.clamp(max=self.dt_max)

    def initial_step(self, f: Field, t: torch.Tensor, x: torch.Tensor, order: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Starting step per system (HNW §II.4, "Starting step size", steps (a)–(f)), before dt_max.

        With the scaled RMS norm ‖·‖ of the tolerances: d0 = ‖x‖, d1 = ‖f(t, x)‖, h0 = 0.01·d0/d1 (10⁻⁶ if
        either is < 10⁻⁵); one explicit Euler step of h0 gives d2 = ‖f(t + h0, x1) − f(t, x)‖/h0; then
        h1 = (0.01/max(d1, d2))^{1/(p+1)} (max(10⁻⁶, 10⁻³·h0) if max(d1, d2) ≤ 10⁻¹⁵) and h = min(100·h0, h1).
        t: (B,), x: (B, n, d), p = ``order``. Returns (h (B,) float64, f(t, x) (B, n, d)).
        """

        rms = _rms
        f0 = f(t, x)
        scale = self.atol + self.rtol * x.abs()
        d0, d1 = rms(x / scale), rms(f0 / scale)
        h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1.clamp(min=1e-300))
        x1 = x + h0.view(-1, 1, 1).to(x.dtype) * f0
        d2 = rms((f(t + h0, x1) - f0) / scale) / h0
        dm = torch.maximum(d1, d2)
        h1 = torch.where(dm <= 1e-15, torch.clamp(h0 * 1e-3, min=1e-6),
                         (0.01 / dm.clamp(min=1e-300)) ** (1.0 / (order + 1)))
        return torch.minimum(100 * h0, h1), f0


def _rms(z: torch.Tensor) -> torch.Tensor:
    """√(mean of z²) over all but the first axis, as float64 (B,): one pass (the 2-norm's reduction), no z²."""
    flat = z.flatten(1)
    return (torch.linalg.vector_norm(flat, dim=1) / flat.shape[1] ** 0.5).to(torch.float64)
