"""A conservative, positivity-preserving finite-volume solver of the continuity equation (3.4) on the circle:

    ∂_t ρ + ∂_θ(ρ 𝒳[ρ]) = 0   on R_{≥0} × T,   ρ(0) = ρ_0,

with 𝒳 the SA field (3.2) or the USA field (3.8) (:mod:`.kernel`). The scheme, on N cells of width h = 2π/N:

* face fluxes F_{j+½} = a⁺ ρ_j^R + a⁻ ρ_{j+1}^L, a = 𝒳[ρ](θ_{j+½}) (upwind), with face values ρ_j^{R,L} =
  ρ_j ± σ_j/2 from van Leer-limited slopes σ_j ("muscl", second order in smooth regions) or σ_j = 0
  ("upwind", first order); dρ_j/dt = −(F_{j+½} − F_{j−½})/h, so h Σ_j ρ_j is conserved to round-off;
* the three-stage strong-stability-preserving Runge–Kutta method of Shu and Osher (a convex combination of
  forward Euler steps) with a fixed step Δt = cfl · h / A, where A bounds |𝒳[ρ]| for every ρ ≥ 0 of the same
  mass (1 for SA; max |sin u| e^{β cos u} for USA). Each Euler stage keeps ρ ≥ 0 when A Δt/h ≤ ½, because
  the limited face values lie between neighbouring averages; so cfl ≤ ½ makes the scheme positive.

Under-resolution is reported, not hidden: when a cluster forms the density concentrates to a width of a
few cells; ``resolution`` is the share of the spectral energy Σ|ρ̂_k|² in the upper half of the resolved
wavenumbers (k ≥ N/4), and a saved state counts as resolved while it is below ``resolution_tol``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..validate import validate_choice, validate_real
from .kernel import _check_kernel_resolution, _field, _shift, _spectra, cell_centres, check_beta, check_density, fourier_coefficients, speed_bound

__all__ = ["MeanFieldSolution", "SCHEMES", "resolution", "solve_continuity"]

SCHEMES = ("muscl", "upwind")
RESOLUTION_TOL = 1e-8  # spectral energy share above k = N/4; ≈ 1e-4 relative L² error in the upper modes


@dataclass(frozen=True)
class MeanFieldSolution:
    """A solution of the continuity equation on the circle at saved times.

    t: (T,) times. theta: (N,) cell centres. rho: (T, ..., N) cell averages (the batch shape of ρ_0 and β).
    beta: (...) inverse temperatures. normalization: "softmax" (SA) or "uniform" (USA). dt: the time step.
    resolution: (T, ...) spectral share of the upper modes (see :func:`resolution`); resolved: (T, ...) bool.
    """

    t: np.ndarray
    theta: np.ndarray
    rho: np.ndarray
    beta: np.ndarray
    normalization: str
    scheme: str
    dt: float
    resolution: np.ndarray
    resolved: np.ndarray

    @property
    def mass(self) -> np.ndarray:
        """h Σ_j ρ_j at each saved time: (T, ...)."""
        return self.rho.sum(axis=-1) * (2 * np.pi / self.rho.shape[-1])


def resolution(rho) -> np.ndarray:
    """Σ_{k ≥ N/4} |ρ̂_k|² / Σ_k |ρ̂_k|² (k ≥ 0): how much of ρ lives in the poorly resolved upper half of the
    grid's wavenumbers. ≈ 1e-30 for a smooth density, O(1e-3) for a cluster a few cells wide. rho: (..., N)."""
    c = np.abs(fourier_coefficients(rho)) ** 2
    n = np.asarray(rho).shape[-1]
    return c[..., n // 4:].sum(axis=-1) / c.sum(axis=-1)


def _van_leer(rho: np.ndarray) -> np.ndarray:
    """Limited slopes σ_j = 2 Δ₋Δ₊/(Δ₋ + Δ₊) where Δ₋Δ₊ > 0, else 0 (|σ_j| ≤ 2 min(|Δ₋|, |Δ₊|))."""
    dm = rho - np.roll(rho, 1, axis=-1)
    dp = np.roll(rho, -1, axis=-1) - rho
    prod = dm * dp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(prod > 0, 2 * prod / (dm + dp), 0.0)


def _rate(rho: np.ndarray, beta: np.ndarray, normalization: str, scheme: str, spectra) -> np.ndarray:
    """−(F_{j+½} − F_{j−½})/h for cell averages (..., N); ``spectra``: the face kernels' rfft."""
    n = rho.shape[-1]
    a = _field(rho, beta, normalization, _shift("faces", n), spectra)[0]
    half_slope = 0.5 * _van_leer(rho) if scheme == "muscl" else 0.0
    right = rho + half_slope                       # ρ_j^R, at face j+½ from cell j
    left_next = np.roll(rho - half_slope, -1, -1)  # ρ_{j+1}^L, at face j+½ from cell j+1
    flux = np.maximum(a, 0.0) * right + np.minimum(a, 0.0) * left_next
    return -(flux - np.roll(flux, 1, axis=-1)) * (n / (2 * np.pi))


def solve_continuity(
    rho0,
    beta,
    t,
    *,
    normalization: str = "softmax",
    scheme: str = "muscl",
    cfl: float = 0.45,
    resolution_tol: float = RESOLUTION_TOL,
    stop_when_unresolved: bool = False,
) -> MeanFieldSolution:
    """Solve ∂_t ρ + ∂_θ(ρ 𝒳[ρ]) = 0 ((3.4) with (3.2) for SA, (3.8) for USA) on the circle.

    rho0: (..., N) non-negative cell averages at time 0 (e.g. :meth:`TrigonometricDensity.cell_averages`),
        N ≥ 4; a batch (...) of systems shares one grid. beta: ≥ 0, scalar or an array; the batch shape is
        the broadcast of rho0's leading shape and beta's (one density, several β: a batch over β).
    t: (T,) increasing output times ≥ 0 (t = 0 returns ρ_0). normalization: "softmax" (SA) or "uniform" (USA).
    scheme: "muscl" (van Leer, second order) or "upwind" (first order). cfl: 0 < cfl ≤ ½ keeps ρ ≥ 0.
    stop_when_unresolved: end at the first saved time at which some system's :func:`resolution` exceeds
        ``resolution_tol`` (the returned t is then shorter).
    Returns a :class:`MeanFieldSolution`. The batch advances with one step, the smallest of its systems'.
    Raises ValueError for bad input, and when N cells cannot resolve the kernel e^{β cos u} of width ~1/√β
    (N below about 5.3√β: the discrete field would be wrong, see :func:`_check_kernel_resolution`).
    """
    rho = check_density("rho0", rho0)
    b = check_beta(beta, normalization)
    try:
        batch = np.broadcast_shapes(rho.shape[:-1], b.shape)
    except ValueError:
        raise ValueError(f"beta of shape {b.shape} does not broadcast against rho0's batch shape "
                         f"{rho.shape[:-1]}") from None
    rho = np.broadcast_to(rho, batch + rho.shape[-1:]).copy()
    b = np.broadcast_to(b, batch).astype(np.float64)
    validate_choice("scheme", scheme, SCHEMES)
    cfl = validate_real("cfl", cfl, minimum=0.0, maximum=0.5, strict_minimum=True)
    resolution_tol = validate_real("resolution_tol", resolution_tol, minimum=0.0, strict_minimum=True)
    times = np.atleast_1d(np.asarray(t, dtype=np.float64))
    if times.size == 0:
        raise ValueError("t must hold at least one output time")
    if times.ndim != 1 or not np.isfinite(times).all() or (times < 0).any() or (np.diff(times) <= 0).any():
        raise ValueError(f"t must be a 1-D array of increasing finite times >= 0, got {t!r}")
    n = rho.shape[-1]
    _check_kernel_resolution(b, n, "rho0")
    h = 2 * np.pi / n
    # speed_bound is for unit mass; the USA field is linear in ρ (SA is homogeneous of degree 0)
    mass = 1.0 if normalization == "softmax" else max(float(np.max(h * rho.sum(-1))), np.finfo(float).tiny)
    dt = cfl * h / float(np.max(speed_bound(b, normalization, n) * mass))
    spectra = _spectra(b, n, _shift("faces", n))

    def step(u: np.ndarray, tau: float) -> np.ndarray:  # Shu–Osher SSP-RK3: convex combinations of Euler steps
        u1 = u + tau * _rate(u, b, normalization, scheme, spectra)
        u2 = 0.75 * u + 0.25 * (u1 + tau * _rate(u1, b, normalization, scheme, spectra))
        return u / 3 + (2 / 3) * (u2 + tau * _rate(u2, b, normalization, scheme, spectra))

    saved, res = [], []
    now = 0.0
    for target in times:
        while now < target:
            tau = min(dt, target - now)
            if target - (now + tau) < 1e-12 * dt:  # land exactly on the output time
                tau, now = target - now, target
            else:
                now += tau
            rho = step(rho, tau)
        saved.append(rho.copy())
        res.append(resolution(rho))
        if stop_when_unresolved and (res[-1] > resolution_tol).any():
            break
    res_arr = np.stack(res)
    return MeanFieldSolution(
        t=times[: len(saved)], theta=cell_centres(n), rho=np.stack(saved), beta=b, normalization=normalization,
        scheme=scheme, dt=dt, resolution=res_arr, resolved=res_arr <= resolution_tol,
    )
