"""Noise (Problem 7 of the paper): the long-time state of (SA) with Brownian noise of strength σ on the sphere,
as a (β, σ) phase diagram of the order parameter r = |(1/n) Σ_i x_i|.

Each σ is one batched run over every β × seeded uniform start (:func:`~tokensphere.experiments.layout.beta_batch`),
integrated by :mod:`tokensphere.integrate.sde`; r is averaged over the second half of [0, t_max] and over the
starts. Clustered states have r near 1, spread ones r = O(1/√n).

The overlay is the mean-field linear stability threshold of the uniform measure,
:func:`tokensphere.theory.uniform_stability_threshold` (derived there).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..analysis.geometry import order_parameter
from ..init import Uniform
from ..integrate.sde import SDESolver
from ..model import Model
from ..simulate import simulate
from ..theory.noise import uniform_stability_threshold
from ..validate import validate_int, validate_real
from .layout import beta_batch

__all__ = ["heat_kernel_agreement", "noise_phase_diagram", "scheme_orders"]


def noise_phase_diagram(
    betas: Sequence[float] = (0.0, 1.0, 2.0, 4.0, 8.0),
    sigmas: Sequence[float] = (0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 1.2),
    *,
    n: int = 32,
    d: int = 3,
    starts: int = 4,
    t_max: float = 20.0,
    dt: float = 0.05,
    seed: int = 0,
    method: str = "geodesic",
) -> dict[str, Any]:
    """Long-time order parameter of (SA) with noise over a (β, σ) grid.

    Every σ runs the len(betas) × ``starts`` systems (uniform starts seeded ``seed``, the same for every β and σ)
    with the stochastic ``method`` and step ``dt`` up to ``t_max``; the increments of σ number k are seeded
    ``seed + k``, start s drawing from stream s under every β (so each β's values do not depend on the others). Returns a JSON-able dict: betas, sigmas, r_mean and r_std ((len(sigmas), len(betas)): mean and
    standard deviation over the starts of r averaged over t ∈ [t_max/2, t_max]), r_uniform (E r for n independent
    uniform tokens, ≈ √(1/n)), sigma_c (the mean-field threshold at each β) and curve (σ_c on a fine β grid),
    the settings and the wall time.
    """
    betas = [validate_real("beta", b, minimum=0.0) for b in betas]
    sigmas = [validate_real("sigma", s, minimum=0.0) for s in sigmas]
    if not betas or not sigmas:
        raise ValueError(f"betas and sigmas must each hold at least one value, got {len(betas)} and {len(sigmas)}")
    validate_int("starts", starts, minimum=1)
    start = time.perf_counter()
    batch = beta_batch(Uniform(batch=starts, n=n, d=d, seed=seed), betas)
    saves = torch.linspace(0.0, t_max, 21, dtype=torch.float64)
    late = saves >= t_max / 2
    r_mean = np.empty((len(sigmas), len(betas)))
    r_std = np.empty_like(r_mean)
    for k, sigma in enumerate(sigmas):
        model = Model(beta=batch.beta, noise=sigma)
        if sigma > 0:
            # start s draws from stream s under every β (common random numbers): a β's result does not depend on
            # which other β are in the grid
            solver = SDESolver(method, dt=dt, seed=seed + k, streams=tuple(range(starts)) * len(betas))
            traj = simulate(batch.x0, model=model, solver=solver, t_max=t_max, save_at=saves)
        else:
            traj = simulate(batch.x0, model=model, t_max=t_max, save_at=saves)
        r = order_parameter(traj.positions[late]).mean(0).reshape(len(betas), starts)  # (β, starts)
        r_mean[k] = r.mean(-1).numpy()
        r_std[k] = r.std(-1, unbiased=False).numpy()
    fine = np.linspace(min(betas), max(betas), 60)
    return {
        "betas": betas,
        "sigmas": sigmas,
        "r_mean": r_mean.tolist(),
        "r_std": r_std.tolist(),
        "r_uniform": _uniform_order(n, d),
        "sigma_c": uniform_stability_threshold(betas, d).tolist(),
        "curve": {"beta": fine.tolist(), "sigma_c": uniform_stability_threshold(fine, d).tolist()},
        "settings": {"n": n, "d": d, "starts": starts, "t_max": t_max, "dt": dt, "seed": seed, "method": method,
                     "average": "t in [t_max/2, t_max], then over starts"},
        "seconds": time.perf_counter() - start,
    }


def _uniform_order(n: int, d: int) -> float:
    """E|(1/n) Σ x_i| for n independent uniform tokens on S^{d−1} (≈ √(1/n) for large n): the mean over 4 000
    seeded draws."""
    x = Uniform(batch=4000, n=n, d=d, seed=12345).sample()
    return float(order_parameter(x).mean())


def heat_kernel_agreement(d: int = 3, sigma: float = 0.8, *, times: Sequence[float] = (0.25, 0.5, 1.0, 2.0),
                          samples: int = 8000, dt: float = 0.01, seed: int = 0,
                          method: str = "geodesic") -> dict[str, Any]:
    """Brownian motion alone (V = 0: the drift vanishes) against the heat kernel of (σ²/2)Δ on S^{d−1}:
    E⟨x_t, x_0⟩ = e^{−(d−1)σ²t/2} and E⟨x_t, x_0⟩² = 1/d + (1 − 1/d) e^{−dσ²t}.

    ``samples`` tokens (8 per system) from seeded uniform starts. Returns a JSON-able dict: times, measured and
    exact first and second moments, their Monte-Carlo standard errors, the largest |measured − exact| / SE, and
    the settings.
    """
    n = 8
    samples = validate_int("samples", samples, minimum=n)
    if samples % n:
        raise ValueError(f"samples must be a multiple of {n} (tokens per system), got {samples}")
    x0 = Uniform(batch=samples // n, n=n, d=d, seed=seed).sample()
    model = Model(beta=0.0, V=torch.zeros(d, d, dtype=torch.float64), noise=sigma)
    ts = [0.0, *map(float, times)]
    traj = simulate(x0, model=model, solver=method, dt=dt, t_max=ts[-1], save_at=ts, seed=seed + 1)
    c = (traj.positions[1:] * x0).sum(-1).flatten(1)  # (T, samples)
    m = c.shape[1]
    first, second = c.mean(1), (c * c).mean(1)
    se1, se2 = c.std(1) / math.sqrt(m), (c * c).std(1) / math.sqrt(m)
    t = torch.tensor(ts[1:], dtype=torch.float64)
    exact1 = torch.exp(-(d - 1) * sigma**2 * t / 2)
    exact2 = 1 / d + (1 - 1 / d) * torch.exp(-d * sigma**2 * t)
    z = torch.cat([(first - exact1).abs() / se1, (second - exact2).abs() / se2])
    return {
        "times": ts[1:], "first": first.tolist(), "first_exact": exact1.tolist(), "first_se": se1.tolist(),
        "second": second.tolist(), "second_exact": exact2.tolist(), "second_se": se2.tolist(),
        "max_z": float(z.max()), "settings": {"d": d, "sigma": sigma, "samples": m, "dt": dt, "method": method,
                                              "seed": seed},
    }


def scheme_orders(*, d: int = 3, sigma: float = 1.0, samples: int = 400_000, paths: int = 200,
                  seed: int = 0) -> dict[str, Any]:
    """Measured orders of the stochastic methods (the figures of docs/variants.md).

    Weak: the local error E⟨x_1, x_0⟩ − e^{−(d−1)σ²h/2} of one step of pure noise (rotation invariance makes the
    global error m(h)^{T/h} − e^{−(d−1)σ²T/2}, so local O(h²) is global weak order 1), estimated with the control
    variate 1 − σ²|P⊥ΔW|²/2 (known mean) over ``samples`` tokens, h = 0.02 … 0.0025. Strong: E|x_h(T) − x_ref(T)|
    at T = 0.5 for (SA) β = 1 with σ = 0.7, n = 3, against the same method at h = T/2⁹ driven by the same Brownian
    path (increments summed), over ``paths`` systems. Returns {method: {"weak_h", "weak_local_error",
    "weak_order" (slope − 1), "strong_h", "strong_error", "strong_order"}}.
    """
    from ..field import tangent_project, velocity
    from ..integrate.sde import SDE_METHODS, sde_step

    g = torch.Generator().manual_seed(seed)
    zero = lambda t, y: torch.zeros_like(y)  # noqa: E731
    x = Uniform(batch=samples, n=1, d=d, seed=seed).sample()
    hs = [0.02, 0.01, 0.005, 0.0025]
    strong_model = Model(beta=1.0)
    field = lambda t, y: velocity(y, strong_model)  # noqa: E731
    n, T, K, s_sigma = 3, 0.5, 9, 0.7
    x0 = Uniform(batch=paths, n=n, d=d, seed=seed + 1).sample()
    dw_fine = torch.randn(2**K, paths, n, d, generator=g, dtype=torch.float64) * math.sqrt(T / 2**K)
    out: dict[str, Any] = {}
    for method in SDE_METHODS:
        local = []
        for h in hs:
            dw = torch.randn(x.shape, generator=g, dtype=torch.float64) * math.sqrt(h)
            y = sde_step(method, zero, torch.zeros(samples), x, torch.full((samples,), h, dtype=torch.float64), dw,
                         sigma)
            tangent = tangent_project(x, dw)
            control = 1 - 0.5 * sigma**2 * (tangent * tangent).sum(-1)
            mean = float(((y * x).sum(-1) - control).mean()) + 1 - 0.5 * (d - 1) * sigma**2 * h
            local.append(mean - math.exp(-0.5 * (d - 1) * sigma**2 * h))
        finals = {}
        for k in (K, 2, 3, 4, 5):
            w = dw_fine.reshape(2**k, 2 ** (K - k), paths, n, d).sum(1)
            y = x0
            for step in range(2**k):
                y = sde_step(method, field, torch.zeros(paths), y, torch.full((paths,), T / 2**k, dtype=torch.float64),
                             w[step], s_sigma)
            finals[k] = y
        strong_h = [T / 2**k for k in (2, 3, 4, 5)]
        strong = [float((finals[k] - finals[K]).norm(dim=-1).mean()) for k in (2, 3, 4, 5)]
        out[method] = {
            "weak_h": hs, "weak_local_error": local,
            "weak_order": float(np.polyfit(np.log(hs), np.log(np.abs(local)), 1)[0]) - 1,
            "strong_h": strong_h, "strong_error": strong,
            "strong_order": float(np.polyfit(np.log(strong_h), np.log(strong), 1)[0]),
        }
    return out
