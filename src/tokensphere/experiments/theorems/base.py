"""What every theorem check shares: the result record, the time budget, the seeded simulation call.

A check is a function ``check(size, budget) -> CheckResult``. ``size`` is "small" (the mutation tests) or
"default"; ``budget`` is a wall-clock deadline that every simulation and every loop of the check consults,
so a check that would hang (a broken field whose steps shrink forever) fails with the reason instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ...integrate import Solver
from ...simulate import simulate
from ...validate import validate_choice

__all__ = ["Budget", "CheckResult", "CheckTimeout", "SIZES", "clopper_pearson_lower", "run_sim"]

SIZES = ("small", "default")
MAX_STEPS = 50_000  # per-system step cap of every check's integration (a few thousand suffice for all of them)


class CheckTimeout(RuntimeError):
    """A check ran past its wall-clock budget."""


@dataclass(frozen=True)
class CheckResult:
    """One theorem check.

    name: what was checked (with the theorem's number); measured/reference: numbers as text; passed: bool.
    detail: the setting (sizes, seeds). seconds: wall time. plot: data of the check's figure (JSON-able:
    ``x``, ``series`` {label: values}, ``xlabel``, ``ylabel``, optional ``logy``, ``kind`` "line"/"points",
    ``refs`` {label: value} for horizontal reference lines), drawn by :mod:`tokensphere.plot.checks`.
    """

    name: str
    measured: str
    reference: str
    passed: bool
    detail: str = ""
    seconds: float = 0.0
    plot: dict[str, Any] | None = field(default=None, repr=False, compare=False)


class Budget:
    """A wall-clock deadline. :meth:`progress` is a ``simulate`` progress callback and :meth:`tick` a loop guard;
    both raise :class:`CheckTimeout` once ``seconds`` have passed since construction."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def tick(self) -> None:
        if self.elapsed > self.seconds:
            raise CheckTimeout(f"time limit of {self.seconds:g} s exceeded")

    def progress(self, _fraction: float) -> None:
        self.tick()


def run_sim(x0: Any, budget: Budget, *, t_max: float, save_at: Any = 2, rtol: float = 1e-10, atol: float = 1e-12,
            **model: Any):
    """``simulate`` with dopri5 at (rtol, atol), a step cap and the budget's deadline. Returns the Trajectory."""
    solver = Solver("dopri5", rtol=rtol, atol=atol, max_steps=MAX_STEPS)
    return simulate(x0, solver=solver, t_max=t_max, save_at=save_at, progress=budget.progress, threads=None,
                    **model)


def check_size(size: str) -> bool:
    """True for "small". Raises ValueError naming ``size`` otherwise unless "default"."""
    validate_choice("size", size, SIZES)
    return size == "small"


def clopper_pearson_lower(successes: int, trials: int, level: float = 0.95) -> float:
    """One-sided lower confidence bound for a binomial probability (exact; = (1 − level)^{1/N} when all succeed)."""
    if successes == 0:
        return 0.0
    if successes == trials:
        return (1 - level) ** (1 / trials)
    from scipy.stats import beta as beta_dist

    return float(beta_dist.ppf(1 - level, successes, trials - successes + 1))


def gram(x: torch.Tensor) -> torch.Tensor:
    """⟨x_i, x_j⟩: (..., n, d) → (..., n, n)."""
    return x @ x.transpose(-1, -2)
