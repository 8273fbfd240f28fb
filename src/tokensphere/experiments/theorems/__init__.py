"""The theorem checks: the paper's theorems on small seeded experiments (``tokensphere check``, the report).

Each check simulates with the library, measures a quantity and compares it with a prediction that does not
come from the code under test: a closed form, a reduced ODE solved by SciPy, a theorem's bound with its exact
constant, an identity evaluated independently (NumPy row by row, autograd of the energies), or a Monte-Carlo
confidence interval. Nothing is tuned to pass. Each runs under a wall-clock limit and never hangs: a check
that raises or runs out of time is a failed :class:`CheckResult` that says why. ("Check" means these theorem
checks only; input validation lives in :mod:`tokensphere.validate`.)

The checks exercise general Q, K, V (non-symmetric, non-square), several heads, masks, causal masking, (USA)
in both time scales and quantitative rates, so that a wrong field fails at least one of them
(``tests/test_mutations.py`` injects broken fields and asserts it).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable

from ...runtime import choose_threads, torch_threads
from ...validate import validate_real
from .base import SIZES, Budget, CheckResult, CheckTimeout, check_size
from .circle_critical import check_critical_points, check_tau_star
from .collapse import check_beta0_consensus, check_cone_rate, check_large_d, check_small_beta_circle, check_wendel
from .extremes import check_energy_extremes
from .flows import check_beta0, check_energy_rates, check_equiangular, check_gradient_flows, check_two_particles
from .kernel import (
    check_block_mask,
    check_causal,
    check_kernel_reference,
    check_linear_closed_form,
    reference_velocity,
)

__all__ = ["ALIASES", "CHECK_N", "CHECKS", "CheckResult", "CheckTimeout", "SIZES", "TIME_LIMIT", "reference_velocity",
           "run_check", "run_checks"]

CHECK_N = 16  # the most tokens per system in most checks: sets the thread count (tokensphere.runtime)
TIME_LIMIT = 30.0  # seconds per check at the default size (each takes a few seconds on 2 cores)

Check = Callable[[str, Budget], CheckResult]

# cheap checks of the field first: ``run_checks(..., stop_at_first_failure=True)`` then fails fast
CHECKS: dict[str, Check] = {
    "kernel_reference": check_kernel_reference,
    "linear_closed_form": check_linear_closed_form,
    "gradient_flows": check_gradient_flows,
    "energy_rates": check_energy_rates,
    "tau_star": check_tau_star,
    "two_particles": check_two_particles,
    "beta0_closed_form": check_beta0,
    "equiangular_sa": check_equiangular("softmax"),
    "equiangular_usa": check_equiangular("uniform"),
    "block_mask": check_block_mask,
    "causal": check_causal,
    "cone_rate": check_cone_rate,
    "energy_extremes": check_energy_extremes,
    "wendel": check_wendel,
    "beta0_consensus": check_beta0_consensus,
    "small_beta_circle": check_small_beta_circle,
    "critical_points": check_critical_points,
    "large_d": check_large_d,
}


# names of the checks before they were regrouped (accepted by run_check/run_checks and the CLI)
ALIASES = {"tau_star_sign": "tau_star", "usa_gradient_flow": "gradient_flows", "cone_collapse": "cone_rate",
           "energy_sa": "energy_rates", "energy_usa": "energy_rates", "energy_repulsive": "energy_rates"}


def run_check(name: str, *, size: str = "default", time_limit: float | None = None) -> CheckResult:
    """Run one check under a time limit; an exception or a timeout becomes a failed result naming the reason.

    name: a key of :data:`CHECKS`. size: "default" or "small". time_limit: seconds (default TIME_LIMIT).
    """
    name = ALIASES.get(name, name)
    if name not in CHECKS:
        raise ValueError(f"unknown check {name!r}; available: {', '.join(CHECKS)}")
    check_size(size)
    limit = TIME_LIMIT if time_limit is None else validate_real("time_limit", time_limit, minimum=0.0,
                                                                 strict_minimum=True)
    budget = Budget(limit)
    start = time.perf_counter()
    try:
        result = CHECKS[name](size, budget)
    except CheckTimeout as exc:
        return CheckResult(name, "did not finish", f"within {limit:g} s", False, str(exc),
                           time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001  (any failure of a check is reported as its result)
        where = traceback.extract_tb(exc.__traceback__)[-1]
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]} (at {where.name}, line {where.lineno})"
        return CheckResult(name, "raised an exception", "a measurement", False, reason, time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if seconds > limit:
        return CheckResult(result.name, result.measured, result.reference, False,
                           f"took {seconds:.1f} s, over the limit of {limit:g} s; {result.detail}", seconds,
                           result.plot)
    return CheckResult(result.name, result.measured, result.reference, bool(result.passed), result.detail, seconds,
                       result.plot)


def run_checks(names: list[str] | None = None, *, threads: int | None = None, size: str = "default",
               time_limit: float | None = None, stop_at_first_failure: bool = False) -> list[CheckResult]:
    """Run the named checks (all by default), in order, each under ``time_limit`` seconds (see :func:`run_check`).

    threads: torch threads (default: :func:`tokensphere.runtime.choose_threads` for systems of CHECK_N tokens).
    size: "default" or "small" (reduced sizes, for tests). stop_at_first_failure: return after the first
    failed check. Raises ValueError naming an unknown check.
    """
    names = list(CHECKS) if names is None else [ALIASES.get(n, n) for n in names]
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; available: {', '.join(CHECKS)}")
    check_size(size)
    out = []
    with torch_threads(choose_threads(CHECK_N, threads)):
        for name in names:
            out.append(run_check(name, size=size, time_limit=time_limit))
            if stop_at_first_failure and not out[-1].passed:
                break
    return out
