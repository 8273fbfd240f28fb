"""The mean-field field, energy and dissipation of a density on the circle T = R/2πZ, on a periodic grid.

A density ρ on T (∫ ρ dθ = 1) is held as its N cell averages ρ_j on the cells centred at θ_j = j h,
h = 2π/N, with faces at θ_{j+½} = (j + ½) h. With h_β(u) = e^{β cos u} and h_β'(u) = −β sin u e^{β cos u},
the velocities of the continuity equation (3.4) on the circle are

    (USA, (3.8))   𝒳[ρ](θ) = (1/β)(h_β' ∗ ρ)(θ) = ∫ e^{β cos(θ−φ)} sin(φ − θ) ρ(φ) dφ,
    (SA, (3.2))    𝒳[ρ](θ) = (1/β)(h_β' ∗ ρ)(θ) / Z[ρ](θ),   Z[ρ](θ) = (h_β ∗ ρ)(θ) = ∫ e^{β cos(θ−φ)} ρ(φ) dφ,

so that at the empirical measure (1/n) Σ_j δ_{θ_j} they are the particle systems (7.1):
θ̇_i = −(1/n) Σ_j e^{β cos(θ_i−θ_j)} sin(θ_i − θ_j) (USA), and the same divided by (1/n) Σ_k e^{β cos(θ_i−θ_k)} (SA).

Convolutions are the midpoint rule (h ∗ ρ)(θ_i + s) ≈ h Σ_j h(θ_i + s − θ_j) ρ_j, a circular convolution
computed by FFT. The kernels are sampled in the scaled form e^{β(cos u − 1)} (no overflow at large β; the
factor e^{β} cancels in SA and is restored in USA). The midpoint rule is spectrally accurate for smooth ρ
and keeps Z > 0 and |𝒳_SA| ≤ 1 (as in the exact field) for ρ ≥ 0, up to FFT round-off.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.special import ive

from ..model import NORMALIZATIONS, validate_beta
from ..validate import validate_choice, validate_int

__all__ = [
    "NORMALIZATIONS",
    "cell_centres",
    "check_density",
    "check_beta",
    "energy_dissipation",
    "fourier_coefficients",
    "mean_field_energy",
    "mean_field_velocity",
    "speed_bound",
]

# The midpoint rule aliases mode N − k of the kernel e^{β cos u} (Fourier coefficients I_k(β), width ~1/√β)
# onto mode k; on the resolved modes k < N/4 the relative error is about I_{N−k}(β)/I_k(β) ≈ e^{−N²/(4β)}
KERNEL_ALIAS_TOL = 1e-3

# e^{β} overflows float64 above ln(max double) ≈ 709.78; USA velocities and energies carry that factor


def cell_centres(n_cells: int) -> np.ndarray:
    """Cell centres θ_j = 2πj/N, j = 0, …, N − 1: (N,) float64. Raises ValueError unless N ≥ 4."""
    n_cells = validate_int("n_cells", n_cells, minimum=4)
    return 2 * np.pi * np.arange(n_cells) / n_cells


def check_density(name: str, rho) -> np.ndarray:
    """``rho`` as a float64 array (..., N) of finite, non-negative cell averages, N ≥ 4; ValueError otherwise.

    The mass h Σ_j ρ_j need not be 1 (the equations are linear in the mass for USA and homogeneous for SA).
    """
    a = np.asarray(rho, dtype=np.float64)
    if a.ndim == 0 or a.shape[-1] < 4:
        raise ValueError(f"{name} must be an array (..., N) of cell averages with N >= 4, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must hold only finite values (found NaN or inf)")
    if (a < 0).any():
        raise ValueError(f"{name} must be non-negative (a density), got minimum {a.min():g}")
    return a


def check_beta(beta, normalization: str, *, positive: bool = False) -> np.ndarray:
    """β as a float64 array (a scalar or any batch shape), validated by the model's rules
    (:func:`tokensphere.model.validate_beta`: finite, ≥ 0 or > 0 if ``positive``, USA up to 700)."""
    b = np.asarray(beta, dtype=np.float64)
    flat = validate_beta(torch.from_numpy(b.reshape(-1).copy()), normalization, positive=positive,
                         normalizations=("softmax", "uniform"))  # SA and USA only on the circle's mean field
    return flat.numpy().reshape(b.shape)


def fourier_coefficients(rho) -> np.ndarray:
    """ρ̂_k = ∫ e^{−ikθ} ρ(θ) dθ ≈ h Σ_j e^{−ikθ_j} ρ_j for k = 0, …, N/2 (the convention of (h_β ∗ ρ) =
    Σ_k I_k(β) ρ̂_k e^{ikθ}). rho: (..., N). Returns (..., N//2 + 1) complex128; ρ̂_0 is the mass."""
    a = np.asarray(rho, dtype=np.float64)
    return np.fft.rfft(a, axis=-1) * (2 * np.pi / a.shape[-1])


def _convolve(rho: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """h Σ_j K_{(i−j) mod N} ρ_j for kernel samples K (..., N) and densities (..., N), by FFT."""
    n = rho.shape[-1]
    return np.fft.irfft(np.fft.rfft(rho, axis=-1) * np.fft.rfft(kernel, axis=-1), n=n, axis=-1) * (2 * np.pi / n)


def _check_kernel_resolution(beta: np.ndarray, n_cells: int, name: str = "rho", *, warn: bool = False) -> None:
    """ValueError (or, with ``warn``, a RuntimeWarning) naming the density ``name`` and beta when N cells cannot
    resolve the kernel e^{β cos u} for a smooth density: the aliasing error I_{N−k}(β)/I_k(β) on the highest
    resolved mode k = ⌈N/4⌉ − 1 exceeds KERNEL_ALIAS_TOL. Then the discrete field of a smooth ρ is wrong by
    orders of magnitude (e.g. ≈ 1e-23 instead of ≈ 3e-5 for SA at β = 10^4 on 64 cells, and the density
    silently stops moving), and energies and dissipation rates alike. Exact at β = 0 (a constant kernel); the
    sums stay exact for particles on grid points (the empirical measure), hence only a warning where the
    caller may mean those."""
    k = (n_cells + 3) // 4 - 1
    b = np.unique(np.asarray(beta, dtype=np.float64))
    b = b[b > 0]
    if b.size == 0:
        return
    num, den = ive(n_cells - k, b), ive(k, b)  # both may underflow to 0 (fine grid, small β): no aliasing
    bad = num > KERNEL_ALIAS_TOL * den
    if bad.any():
        ratio = num / den
        worst = float(b[bad].max())
        need = int(np.ceil(2 * np.sqrt(worst * np.log(1 / KERNEL_ALIAS_TOL))))
        text = (f"{name} has N = {n_cells} cells, too few for beta = {worst:g}: the kernel e^(beta cos u) "
                f"(width ~1/sqrt(beta)) needs N >= about {need} cells (aliasing error "
                f"{float(ratio[bad].max()):.2g} > {KERNEL_ALIAS_TOL:g}); refine the grid or lower beta")
        if not warn:
            raise ValueError(text)
        warnings.warn(text + " (exact only for particles on grid points)", RuntimeWarning, stacklevel=3)


def _kernels(beta: np.ndarray, n_cells: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Scaled kernel samples at u_m = m h + shift: e^{β(cos u − 1)} and −sin u e^{β(cos u − 1)}, (..., N)."""
    u = 2 * np.pi * np.arange(n_cells) / n_cells + shift
    k = np.exp(beta[..., None] * (np.cos(u) - 1.0))
    return k, -np.sin(u) * k


def _spectra(beta: np.ndarray, n_cells: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """rfft of the two scaled kernels at offset ``shift``: what a run reuses at every step, (..., N//2 + 1)."""
    k, s = _kernels(beta, n_cells, shift)
    return np.fft.rfft(k, axis=-1), np.fft.rfft(s, axis=-1)


def _field(rho: np.ndarray, beta: np.ndarray, normalization: str, shift: float,
           spectra: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(𝒳[ρ], Z[ρ]) at θ_i + shift, both (..., N); Z is the unscaled h_β ∗ ρ. ``spectra``: from :func:`_spectra`."""
    n = rho.shape[-1]
    k_hat, s_hat = _spectra(beta, n, shift) if spectra is None else spectra
    rho_hat = np.fft.rfft(rho, axis=-1) * (2 * np.pi / n)
    z_scaled = np.fft.irfft(rho_hat * k_hat, n=n, axis=-1)
    num_scaled = np.fft.irfft(rho_hat * s_hat, n=n, axis=-1)
    with np.errstate(over="ignore"):  # only SA's Z overflows, for β ≳ 709; its velocity does not use it
        scale = np.exp(beta)[..., None]
    if normalization == "uniform":
        return scale * num_scaled, scale * z_scaled
    # |𝒳_SA| ≤ 1 exactly (|sin| ≤ 1 under a positive kernel); the clip removes FFT round-off where Z ≈ 0
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(z_scaled > 0, num_scaled / z_scaled, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):  # Z = inf · 0 = NaN where the scaled Z underflows
        return np.clip(v, -1.0, 1.0), scale * z_scaled


def mean_field_velocity(rho, beta, normalization: str = "softmax", *, at: str = "centres") -> np.ndarray:
    """The mean-field velocity 𝒳[ρ] of (3.2) (SA) or (3.8) (USA) on the circle, at cell centres or faces.

    rho: (..., N) non-negative cell averages (∫ ρ = 1 for a probability density). beta: scalar or an array
    broadcastable against rho's leading shape (...). at: "centres" (θ_j = jh) or "faces" (θ_{j+½}).
    Returns (..., N) float64. Raises ValueError for bad rho, beta, normalization or at; for a grid too
    coarse for β (N below about 5.3√β: the kernel's aliasing makes the field of a smooth density wrong)
    it warns (RuntimeWarning); particles on grid points are exact on any grid.
    """
    rho = check_density("rho", rho)
    shift = _shift(at, rho.shape[-1])
    rho, b = _batched(rho, check_beta(beta, normalization))
    _check_kernel_resolution(b, rho.shape[-1], warn=True)
    return _field(rho, b, normalization, shift)[0]


def _batched(rho: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """rho (..., N) and β broadcast against each other's batch shape: one density and several β, or the
    reverse. Raises ValueError naming beta when they do not broadcast."""
    try:
        batch = np.broadcast_shapes(rho.shape[:-1], b.shape)
    except ValueError:
        raise ValueError(f"beta of shape {b.shape} does not broadcast against rho's batch shape "
                         f"{rho.shape[:-1]}") from None
    return np.broadcast_to(rho, batch + rho.shape[-1:]), np.broadcast_to(b, batch)


def _shift(at: str, n_cells: int) -> float:
    validate_choice("at", at, ("centres", "faces"))
    return 0.0 if at == "centres" else np.pi / n_cells


def speed_bound(beta, normalization: str, n_cells: int) -> np.ndarray:
    """A bound on |𝒳[ρ]| at the faces, over every density ρ ≥ 0 of unit mass on an N-cell grid.

    SA: 1. USA: max over face offsets u of |sin u| e^{β cos u} (the discrete field is an average of these).
    beta: scalar or array (...). Returns (...) float64.
    """
    b = check_beta(beta, normalization)
    if normalization == "softmax":
        return np.ones_like(b)
    _, s = _kernels(b, validate_int("n_cells", n_cells, minimum=4), np.pi / n_cells)
    return np.abs(s).max(axis=-1) * np.exp(b)


def mean_field_energy(rho, beta) -> np.ndarray:
    """E_β[ρ] = (1/(2β)) ∬ e^{β cos(θ−φ)} ρ(θ) ρ(φ) dθ dφ, (3.5) on the circle (7.4), by the midpoint rule.

    At the empirical measure of particles on grid points this is (7.4) exactly. rho: (..., N) cell averages.
    beta: > 0, scalar or broadcastable to (...). Returns (...) float64 (overflows to inf for β ≳ 700).
    Warns on a grid too coarse for β (as :func:`mean_field_velocity`).
    """
    rho = check_density("rho", rho)
    rho, b = _batched(rho, check_beta(beta, "softmax", positive=True))
    _check_kernel_resolution(b, rho.shape[-1], warn=True)
    k, _ = _kernels(b, rho.shape[-1], 0.0)
    h = 2 * np.pi / rho.shape[-1]
    with np.errstate(over="ignore"):
        return np.exp(b) / (2 * b) * h * np.sum(_convolve(rho, k) * rho, axis=-1)


def energy_dissipation(rho, beta, normalization: str = "softmax") -> np.ndarray:
    """The rate d/dt E_β[ρ(t)] along the continuity equation (3.4), computed from ρ alone.

    (SA, (3.6)):  ∫ |𝒳[ρ]|² Z[ρ] ρ dθ,      (USA, Lemma 3.7):  ∫ |𝒳[ρ]|² ρ dθ.
    rho: (..., N) cell averages; beta ≥ 0 broadcastable to (...). Returns (...) float64, ≥ 0. Warns
    on a grid too coarse for β (as :func:`mean_field_velocity`).

    Accuracy: the FFT convolutions carry round-off of ~1e-16 of their largest value, so the SA rate, of the
    scale of E_β ~ e^β/(2β), has an absolute error floor of about 1e-32·e^β (𝒳 enters squared): a stationary
    density (one filled cell of 64, where the exact rate is 0) gives 5e307 at β = 800, where E_β ≈ 1e344 is
    beyond float64 (:func:`mean_field_energy` returns inf). Compare rates with the energy's scale, not with 0.
    """
    rho = check_density("rho", rho)
    rho, b = _batched(rho, check_beta(beta, normalization))
    _check_kernel_resolution(b, rho.shape[-1], warn=True)
    v, z = _field(rho, b, normalization, 0.0)
    h = 2 * np.pi / rho.shape[-1]
    if normalization == "uniform":
        return h * np.sum(v**2 * rho, axis=-1)
    # SA: Z = e^β · (scaled Z) overflows for β ≳ 709, and inf · 0 (a cell with v = 0 or a far cell whose
    # scaled Z underflows) would give NaN; sum with the scaled Z and restore e^β in log scale instead
    k, _ = _kernels(b, rho.shape[-1], 0.0)
    scaled = h * np.sum(v**2 * _convolve(rho, k) * rho, axis=-1)
    with np.errstate(over="ignore", divide="ignore"):
        return np.where(scaled > 0, np.exp(np.log(np.where(scaled > 0, scaled, 1.0)) + b), 0.0)
