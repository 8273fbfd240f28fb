"""Global search for minimisers of E_β over n-point sets of S^{d−1}: batched random restarts (free and
antipodal), then optional basin hopping (Wales–Doye 1997) from the best local minima.

One batch minimises seeded random starts (uniform on the sphere) with Riemannian L-BFGS
(:func:`tokensphere.optimal.lbfgs`, all starts at once). With ``symmetry="antipodal"`` the starts are antipodal
sets (y, −y) and the minimisation stays among them (half the variables, far fewer local minima; the icosahedron,
the cross-polytope, the 600-cell and the E8 roots are antipodal). ``"mixed"`` (the default, n even) makes half of
each batch antipodal and half free, so optima that are not antipodal (the simplex) are still reached. The best
configuration is finally polished without the symmetry constraint from a slightly perturbed copy, so a symmetric
saddle is not reported as a minimum. Basin hopping perturbs the ``batch`` best minima found so far (each point
moved by a Gaussian tangent vector of standard deviation ``sigma`` radians, then retracted), re-minimises them in
one batch and keeps each one that lowers the energy (greedy, zero-temperature acceptance).

Local minima are compared by log F_β, F_β = E_β − e^β/(2βn) the interaction part (same order as E_β, but
resolved at any β: the constant self term e^β/(2βn) swamps the differences of E_β for large β, see
:mod:`.optimize`).

Measured on the 600-cell (n = 120, d = 4, β = 5; BENCHMARKS.md): free restarts reach it in 1 of 128 (the other
local minima sit ≥ 3.1e-5 above it), antipodal restarts in 60 of 64; basin hopping from free minima did not help.
The known universally optimal configuration counts as reached when the best minimum's log F_β is within
FOUND_RTOL of its exact value *and*, polished (gradient norm below ``polish_gtol``), it is that configuration
(:func:`tokensphere.optimal.match_known`: inner-product distribution and energy); with ``stop_at_known`` the search
stops there. It never uses the known coordinates.

With a ``time_limit`` the local minimisations stop at the limit (checked before every L-BFGS iteration, so the
overrun is one iteration); the final polish of the best then gets at most POLISH_GRACE × time_limit more. Minima
cut short by the limit are kept, unconverged, among the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from ..energy import log_energy
from ..field import tangent_project
from ..init import sample_sphere
from ..integrate.steps import retract
from ..runtime import choose_threads, torch_threads
from ..validate import validate_choice, validate_int, validate_real
from .designs import match_known
from .known import known_for
from .optimize import LBFGSResult, lbfgs, log_energy_from_interaction

__all__ = ["SYMMETRIES", "SearchResult", "search"]

SYMMETRIES = ("none", "antipodal", "mixed")
POLISH_KICK = 1e-4  # radians: the final unconstrained polish starts this far off the best (leaves a saddle)
FOUND_RTOL = 1e-7  # |log F − log F_known| below this makes the best a candidate for the known configuration, then
#                    verified by its inner products (the 600-cell's nearest local minima sit ≈ 3.1e-5 above it in
#                    log E, BENCHMARKS.md, so at least that in log F: Δ log F ≈ (E/F) Δ log E)
POLISH_GRACE = 0.1  # with a time limit, the final polish of the best may run this fraction of the limit past it


@dataclass
class SearchResult:
    """The outcome of :func:`search`.

    x: (n, d) best configuration; log_energy: its log E_β; minima: (M,) log E_β of every local minimum computed
    (restarts and hops, in order); history: [(seconds, local minimisations so far, best log E_β)] after each
    batch; found_seconds / found_minimisations: when the known configuration was first reached and verified
    (None if never or if there is none); restarts, hops: how many of each were run; seconds: wall time;
    seed, beta, n, d: the inputs; log_interaction: log F_β of x and interaction_minima: (M,) log F_β of every
    local minimum (F_β = E_β − e^β/(2βn), the part that depends on the points: what the search compares).
    """

    x: torch.Tensor
    log_energy: float
    minima: torch.Tensor
    history: list[tuple[float, int, float]] = field(default_factory=list)
    found_seconds: float | None = None
    found_minimisations: int | None = None
    restarts: int = 0
    hops: int = 0
    seconds: float = 0.0
    seed: int = 0
    beta: float = 1.0
    n: int = 0
    d: int = 0
    log_interaction: float = float("inf")
    interaction_minima: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.float64))


def search(
    n: int,
    d: int,
    beta: float,
    *,
    restarts: int = 64,
    hops: int = 0,
    batch: int = 32,
    sigma: float = 0.15,
    symmetry: str = "mixed",
    seed: int = 0,
    gtol: float = 1e-6,
    polish_gtol: float = 1e-10,
    stop_at_known: bool = True,
    time_limit: float | None = None,
    dtype: torch.dtype = torch.float64,
    threads: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> SearchResult:
    """Search for the minimiser of E_β over n points on S^{d−1}: ``restarts`` seeded random starts, then ``hops``
    basin-hopping moves, ``batch`` local minimisations at a time; symmetry: "none", "antipodal" or "mixed" (the
    restarts' kind, see the module docstring; "antipodal"/"mixed" need n even, and "mixed" means "none" for n odd).

    n ≥ 2, d ≥ 2, beta > 0, restarts ≥ 1, hops ≥ 0, batch ≥ 1, sigma > 0 (radians), gtol, polish_gtol > 0
    (gradient-norm tolerances of the screening and of the final polish of the best), time_limit > 0 seconds or
    None: the minimisations stop at the limit (overrun: one L-BFGS iteration of a batch), the final polish of the
    best may take POLISH_GRACE × time_limit more. threads: torch threads (default
    :func:`tokensphere.runtime.choose_threads`: one below 512 points). progress(done, total, best_log_energy) is
    called after each batch (best log E_β). Same seed → same result (without a time limit). Returns a :class:`SearchResult`; raises ValueError naming the parameter on bad input.
    """
    n = validate_int("n", n, minimum=2)
    d = validate_int("d", d, minimum=2)
    beta = validate_real("beta", beta, minimum=0.0, strict_minimum=True)
    restarts = validate_int("restarts", restarts, minimum=1)
    hops = validate_int("hops", hops, minimum=0)
    batch = validate_int("batch", batch, minimum=1)
    sigma = validate_real("sigma", sigma, minimum=0.0, strict_minimum=True)
    validate_choice("symmetry", symmetry, SYMMETRIES)
    if symmetry == "antipodal" and n % 2:
        raise ValueError(f"symmetry 'antipodal' needs an even n (points come in pairs ±y), got n = {n}")
    if symmetry == "mixed" and n % 2:
        symmetry = "none"
    seed = validate_int("seed", seed, minimum=0, maximum=2**63 - 1)  # torch's generator takes a 64-bit seed
    gtol = validate_real("gtol", gtol, minimum=0.0, strict_minimum=True)
    polish_gtol = validate_real("polish_gtol", polish_gtol, minimum=0.0, strict_minimum=True)
    if time_limit is not None:
        time_limit = validate_real("time_limit", time_limit, minimum=0.0, strict_minimum=True)
    with torch_threads(choose_threads(n, threads)):
        return _search(n, d, beta, restarts, hops, batch, sigma, symmetry, seed, gtol, polish_gtol, stop_at_known,
                       time_limit, dtype, progress)


def _search(n: int, d: int, beta: float, restarts: int, hops: int, batch: int, sigma: float, symmetry: str,
            seed: int, gtol: float, polish_gtol: float, stop_at_known: bool, time_limit: float | None,
            dtype: torch.dtype, progress: Callable[[int, int, float], None] | None) -> SearchResult:
    known = known_for(n, d)
    target = known.log_interaction_energy(beta) if known is not None else None
    start = time.perf_counter()
    deadline = None if time_limit is None else start + time_limit
    gen = torch.Generator().manual_seed(seed)
    pool_x = torch.empty(0, n, d, dtype=dtype)  # the local minima kept for hopping (best first)
    pool_f = torch.empty(0, dtype=dtype)  # their log F_β
    minima: list[torch.Tensor] = []
    interaction: list[torch.Tensor] = []
    out = SearchResult(x=pool_x, log_energy=float("inf"), minima=pool_f, seed=seed, beta=beta, n=n, d=d)
    total = restarts + hops
    done = 0
    verified: torch.Tensor | None = None  # the polished best, once verified to be the known configuration

    def log_e(log_f: float) -> float:
        return float(log_energy_from_interaction(log_f, beta, n))

    def is_known(x: torch.Tensor, log_f: float) -> bool:
        """The energy is within FOUND_RTOL of the known one and x is that configuration (inner products)."""
        return abs(log_f - target) <= FOUND_RTOL and match_known(x, beta) is not None

    def record(r: LBFGSResult) -> bool:
        """Book a batch of minima; True when the search should stop."""
        nonlocal done, verified
        done += r.log_energy.numel()
        minima.append(r.log_energy)
        interaction.append(r.log_interaction)
        if target is not None and out.found_seconds is None and abs(float(pool_f[0]) - target) <= FOUND_RTOL:
            # a candidate by energy: polish it and verify its structure before declaring the known optimum found
            p = lbfgs(pool_x[:1], beta, gtol=polish_gtol, deadline=deadline)
            if float(p.log_interaction[0]) <= float(pool_f[0]):
                pool_x[0], pool_f[0] = p.x[0], p.log_interaction[0]
            if is_known(pool_x[0], float(pool_f[0])):
                out.found_seconds, out.found_minimisations = time.perf_counter() - start, done
                verified = pool_x[0].clone()
        elapsed = time.perf_counter() - start
        best = log_e(float(pool_f[0]))
        out.history.append((elapsed, done, best))
        if progress is not None:
            progress(done, total, best)
        return (stop_at_known and out.found_seconds is not None) or (
            deadline is not None and time.perf_counter() >= deadline)

    stop = False
    k = 0
    round_ = 0
    while k < restarts and not stop:
        b = min(batch, restarts - k)
        for r in _restart_parts(b, n, d, beta, symmetry, round_, gen, gtol, dtype, deadline):
            # each kind of a mixed batch is booked on its own, so the search can stop before the slower free part
            pool_x, pool_f = _keep_best(pool_x, pool_f, r.x, r.log_interaction, batch)
            out.restarts += r.x.shape[0]
            k += r.x.shape[0]
            stop = record(r)
            if stop:
                break
        round_ += 1
    k = 0
    while k < hops and not stop:
        b = min(batch, hops - k, pool_x.shape[0])
        base = pool_x[:b]
        noise = sigma * torch.randn(base.shape, generator=gen, dtype=dtype)
        r = lbfgs(retract(base + tangent_project(base, noise)), beta, gtol=gtol, deadline=deadline)
        # greedy acceptance: a hop replaces its parent only if lower; the pool keeps the `batch` best overall
        better = r.log_interaction < pool_f[:b]
        pool_x[:b][better], pool_f[:b][better] = r.x[better], r.log_interaction[better]
        pool_x, pool_f = _keep_best(pool_x, pool_f, pool_x[:0], pool_f[:0], batch)
        out.hops += b
        k += b
        stop = record(r)
    best_x, best_f = pool_x[0], float(pool_f[0])
    if verified is None or not torch.equal(best_x, verified):
        # polish from a slightly perturbed copy, so that a symmetric saddle is not reported (not needed for a
        # best already polished and verified to be the known optimum, a minimum)
        best = best_x.unsqueeze(0)
        kick = POLISH_KICK * torch.randn(best.shape, generator=gen, dtype=dtype)
        grace = None if deadline is None else max(deadline, time.perf_counter()) + POLISH_GRACE * time_limit
        polished = lbfgs(retract(best + tangent_project(best, kick)), beta, gtol=polish_gtol, deadline=grace)
        if float(polished.log_interaction[0]) <= best_f:  # else cut short by the time limit above the best
            best_x, best_f = polished.x[0], float(polished.log_interaction[0])
    out.x, out.log_interaction = best_x, best_f
    out.log_energy = float(log_energy(best_x.unsqueeze(0), beta)[0])
    if target is not None and out.found_seconds is None and is_known(out.x, out.log_interaction):
        out.found_seconds, out.found_minimisations = time.perf_counter() - start, done  # reached by the polish
    out.minima = torch.cat(minima)
    out.interaction_minima = torch.cat(interaction)
    out.seconds = time.perf_counter() - start
    return out


def _restart_parts(b: int, n: int, d: int, beta: float, symmetry: str, round_: int, gen: torch.Generator,
                   gtol: float, dtype: torch.dtype, deadline: float | None) -> Iterator[LBFGSResult]:
    """Minimise b seeded random starts: free, antipodal, or (mixed) ⌈b/2⌉ antipodal then ⌊b/2⌋ free (a batch of
    one alternates by round). Yields one :class:`LBFGSResult` of full configurations (count, n, d) per kind,
    antipodal first (the faster and, where the optimum is antipodal, the more successful one)."""
    if symmetry == "mixed":
        n_anti = (b + 1) // 2 if b > 1 else 1 - round_ % 2
    else:
        n_anti = b if symmetry == "antipodal" else 0
    for count, anti in ((n_anti, True), (b - n_anti, False)):
        if count:
            seed = int(torch.randint(0, 2**62, (1,), generator=gen))
            x0 = sample_sphere(count, n // 2 if anti else n, d, seed=seed, dtype=dtype)
            yield lbfgs(x0, beta, gtol=gtol, antipodal=anti, deadline=deadline)


def _keep_best(px: torch.Tensor, pf: torch.Tensor, x: torch.Tensor, f: torch.Tensor, size: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The `size` lowest of the pooled minima, sorted (lowest first)."""
    allx, allf = torch.cat([px, x]), torch.cat([pf, f])
    order = torch.argsort(allf)[:size]
    return allx[order].clone(), allf[order].clone()
