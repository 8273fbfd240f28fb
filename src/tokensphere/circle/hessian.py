"""The energy E_β on the torus T^n, its gradient and Hessian, and the classification of critical points
(Theorem 5.1 and Appendix B of the paper).

    E_β(θ) = (1/(2βn²)) Σ_i Σ_j e^{β cos(θ_i − θ_j)}                                               (7.4)
    ∂_{θ_k} E_β = (1/n²) Σ_j e^{β cos(θ_k − θ_j)} sin(θ_j − θ_k)        (so (USA) (7.1) is θ̇ = n ∇E_β)
    ∂_{θ_i}∂_{θ_j} E_β = (1/n²) g(θ_i − θ_j)  (i ≠ j),    ∂²_{θ_i} E_β = −(1/n²) Σ_{m≠i} g(θ_i − θ_m),
    g(x) = (cos x − β sin²x) e^{β cos x}                                                        (Appendix B)

Rows of the Hessian sum to 0: the global rotation θ ↦ θ + c·1 is always a zero mode. The spectrum and the
classification are taken on 1^⊥. To avoid overflow every function can return its value times e^{−β}
(``scaled=True``, the kernel's e^{β(cos − 1)}); the classification only uses signs, so it works scaled.
At β = 0, E_β is replaced by its finite part lim_{β→0}(E_β − 1/(2β)) = (1/(2n²)) Σ Σ cos(θ_i − θ_j) (as
:func:`tokensphere.energy` does); the gradient and Hessian are continuous there.
"""

from __future__ import annotations

from typing import Any

import torch

from ..validate import as_tensor, validate_real

__all__ = ["classify_critical_point", "torus_energy", "torus_gradient", "torus_hessian", "torus_hessian_spectrum",
           "CRITICAL_KINDS"]

CRITICAL_KINDS = ("maximum", "strict saddle", "minimum", "degenerate", "not critical")


def torus_energy(theta: Any, beta: Any, *, scaled: bool = False) -> torch.Tensor:
    """E_β(θ) (7.4), or e^{−β} E_β when ``scaled`` (finite for every β).

    theta: (..., n), e.g. (B, n). beta: a number or a tensor broadcastable to theta.shape[:-1], e.g. (B,).
    Returns (...). At β = 0: the finite part (1/(2n²)) Σ Σ cos(θ_i − θ_j). Raises ValueError for β < 0.
    """
    theta, beta = _inputs(theta, beta)
    n = theta.shape[-1]
    diff = theta.unsqueeze(-1) - theta.unsqueeze(-2)
    zero = beta == 0
    safe = torch.where(zero, torch.ones_like(beta), beta)
    # e^{β(cos − 1)} = e^{−2β sin²(x/2)}: no cancellation in cos x − 1 for close angles
    w = torch.exp(-2 * safe[..., None, None] * torch.sin(diff / 2) ** 2).sum((-1, -2))
    e = w / (2 * safe * n * n) if scaled else torch.exp(torch.log(w) + safe - torch.log(2 * safe * n * n))
    if not bool(zero.any()):
        return e
    return torch.where(zero, torch.cos(diff).sum((-1, -2)) / (2 * n * n), e)


def torus_gradient(theta: Any, beta: Any, *, scaled: bool = False) -> torch.Tensor:
    """∇E_β(θ): ∂_{θ_k} E_β = (1/n²) Σ_j e^{β cos(θ_k − θ_j)} sin(θ_j − θ_k); times e^{−β} when ``scaled``.

    theta: (..., n). beta: a number or broadcastable to theta.shape[:-1]. Returns (..., n); its entries sum to 0.
    """
    theta, beta = _inputs(theta, beta)
    n = theta.shape[-1]
    diff = theta.unsqueeze(-2) - theta.unsqueeze(-1)  # [k, j] = θ_j − θ_k
    w = _kernel(diff, beta, scaled)
    return (w * torch.sin(diff)).sum(-1) / (n * n)


def torus_hessian(theta: Any, beta: Any, *, scaled: bool = False) -> torch.Tensor:
    """The Hessian of E_β on T^n (Appendix B, Theorem 5.1); times e^{−β} when ``scaled``.

    H_ij = (1/n²) g(θ_i − θ_j) for i ≠ j, H_ii = −(1/n²) Σ_{m≠i} g(θ_i − θ_m), g(x) = (cos x − β sin²x) e^{β cos x}.
    theta: (..., n). beta: a number or broadcastable to theta.shape[:-1]. Returns (..., n, n), symmetric,
    rows summing to 0.
    """
    theta, beta = _inputs(theta, beta)
    n = theta.shape[-1]
    diff = theta.unsqueeze(-1) - theta.unsqueeze(-2)
    s = torch.sin(diff)
    g = (torch.cos(diff) - beta[..., None, None] * s * s) * _kernel(diff, beta, scaled)
    g = g * (1 - torch.eye(n, dtype=g.dtype, device=g.device))
    return (g - torch.diag_embed(g.sum(-1))) / (n * n)


def torus_hessian_spectrum(theta: Any, beta: Any) -> torch.Tensor:
    """Eigenvalues of e^{−β} × the Hessian of E_β restricted to 1^⊥ (the rotation mode removed), ascending.

    theta: (..., n). beta: a number or broadcastable to theta.shape[:-1]. Returns (..., n − 1).
    """
    h = torus_hessian(theta, beta, scaled=True)
    u = rotation_complement(h.shape[-1], h.dtype, h.device)
    return torch.linalg.eigvalsh(u.transpose(0, 1) @ h @ u)


def classify_critical_point(theta: Any, beta: Any, tol: float = 1e-10, grad_tol: float = 1e-7) -> str | list[str]:
    """Classify critical points of E_β on T^n by the spectrum of the Hessian on 1^⊥ (Theorem 5.1).

    An eigenvalue λ counts as zero when |λ| ≤ tol·max|λ|. Returns, per system:
    "maximum" (all n − 1 eigenvalues < 0: only the rotation zero mode), "minimum" (all > 0),
    "strict saddle" (some > 0, not all: the ascent flow (7.1) leaves it generically), "degenerate" (none > 0
    but a zero eigenvalue besides the rotation mode), or "not critical" (max_k |∂_k E_β| > grad_tol·max|λ|).
    "minimum" and "strict saddle" both have a positive eigenvalue. The positive eigenvalues of distant
    clusters are ~e^{−2β} relative to the largest (within-cluster) ones: beyond what tol resolves they read
    as zero ("degenerate"). theta: (B, n) → a list of B strings, or (n,) → one string. beta: a number or (B,).
    n = 1 is a "maximum". Raises ValueError for tol or grad_tol outside (0, 1).
    """
    tol = validate_real("tol", tol, minimum=0.0, maximum=1.0, strict_minimum=True)
    grad_tol = validate_real("grad_tol", grad_tol, minimum=0.0, maximum=1.0, strict_minimum=True)
    theta_t, beta_t = _inputs(theta, beta)
    if theta_t.ndim > 2:
        raise ValueError(f"theta must have shape (n,) or (B, n), got {tuple(theta_t.shape)}")
    single = theta_t.ndim == 1
    th, b = theta_t.reshape(-1, theta_t.shape[-1]), beta_t.reshape(-1)
    if th.shape[-1] == 1:
        kinds = ["maximum"] * th.shape[0]
        return kinds[0] if single else kinds
    lam = torus_hessian_spectrum(th, b)
    grad = torus_gradient(th, b, scaled=True).abs().amax(-1)
    kinds = [_kind(lam[i], float(grad[i]), tol, grad_tol) for i in range(th.shape[0])]
    return kinds[0] if single else kinds


def rotation_complement(n: int, dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
    """An orthonormal basis of 1^⊥ ⊂ R^n (the complement of the rotation mode): (n, n − 1)."""
    a = torch.eye(n, dtype=dtype, device=device)
    a[:, 0] = 1.0
    q, _ = torch.linalg.qr(a)
    return q[:, 1:]


# ------------------------------------------------------------------------------------------------------------


def _kind(lam: torch.Tensor, grad: float, tol: float, grad_tol: float) -> str:
    top = float(lam.abs().max())
    if grad > grad_tol * top:
        return "not critical"
    pos = int((lam > tol * top).sum())
    neg = int((lam < -tol * top).sum())
    if pos == lam.numel():
        return "minimum"
    if pos:
        return "strict saddle"
    return "maximum" if neg == lam.numel() else "degenerate"


def _kernel(diff: torch.Tensor, beta: torch.Tensor, scaled: bool) -> torch.Tensor:
    """e^{β cos x} (or e^{β(cos x − 1)} when scaled) at the differences x = diff (..., n, n)."""
    b = beta[..., None, None]
    w = torch.exp(-2 * b * torch.sin(diff / 2) ** 2)
    return w if scaled else w * torch.exp(b)


def _inputs(theta: Any, beta: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """theta (..., n) float tensor and β broadcast to theta.shape[:-1], validated."""
    th = as_tensor("theta", theta)
    if th.ndim < 1 or th.shape[-1] < 1:
        raise ValueError(f"theta must have shape (..., n) with n >= 1, got {tuple(th.shape)}")
    if not bool(torch.isfinite(th).all()):
        raise ValueError("theta must hold only finite values (found NaN or inf)")
    b = as_tensor("beta", beta, dtype=th.dtype)
    bad = ~(torch.isfinite(b) & (b >= 0))
    if bool(bad.any()):
        raise ValueError(f"beta must be a finite number >= 0, got {float(b[bad].reshape(-1)[0])}")
    try:
        b = torch.broadcast_to(b, th.shape[:-1])
    except RuntimeError:
        raise ValueError(f"beta must be a number or have shape {tuple(th.shape[:-1])} (theta's leading "
                         f"dimensions), got {tuple(b.shape)}") from None
    return th, b
