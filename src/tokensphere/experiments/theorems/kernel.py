"""Checks of the velocity field itself against an independent evaluation of (2.3)/(2.7), and of its
invariances (block masks, causal masking).

:func:`reference_velocity` evaluates the field row by row in NumPy from the matrices the check drew (not from
the library's canonical tensors): for every token i and head h, the scores s_j = β⟨Q_h x_i, K_h x_j⟩ + b_ij
over the keys j that i attends to, the weights e^{s_j}/Σ_k e^{s_k} (SA) or e^{s_j − c}/N (USA; N = n or the
number of attended keys, c = β in the time scale s = e^{β} t), the sum over heads of Σ_j A^h_ij V_h x_j, and
the projection P⊥_{x_i} y = y − ⟨x_i, y⟩x_i.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ...field import velocity
from ...init import Uniform
from ...model import Model
from .base import Budget, CheckResult, check_size, gram, run_sim

__all__ = ["reference_velocity", "check_kernel_reference", "check_causal", "check_block_mask",
           "check_linear_closed_form"]


def reference_velocity(x: np.ndarray, beta: float, *, Q=None, K=None, V=None, sign: float = 1.0, bias=None,
                       causal: bool = False, normalization: str = "softmax", uniform_count: str = "n",
                       time_scale: str = "original", project: bool = True) -> np.ndarray:
    """(2.3)/(2.7) row by row. x: (n, d). Q, K: (H, r, d) or None (identity); V: (H, d, d) or None (sign·I);
    bias: (n, n) additive scores (−inf masks) or None. Returns (n, d)."""
    n, d = x.shape
    H = 1 if Q is None else Q.shape[0]
    out = np.zeros((n, d))
    for i in range(n):
        keys = [j for j in range(n) if (not causal or j <= i) and (bias is None or np.isfinite(bias[i, j]))]
        y = np.zeros(d)
        for h in range(H):
            q = x[i] if Q is None else Q[h] @ x[i]
            s = np.array([beta * float(q @ (x[j] if K is None else K[h] @ x[j])) for j in keys])
            if bias is not None:
                s = s + np.array([bias[i, j] for j in keys])
            if normalization == "softmax":
                a = np.exp(s - s.max())
                a = a / a.sum()
            else:
                shift = beta if time_scale == "exp_beta" else 0.0
                a = np.exp(s - shift) / (len(keys) if uniform_count == "attended" else n)
            for w, j in zip(a, keys):
                y += w * (sign * x[j] if V is None else V[h] @ x[j])
        out[i] = y - (x[i] @ y) * x[i] if project else y
    return out


def _cases(rng: np.random.Generator, n: int, d: int) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(label, Model keywords, reference keywords): every branch of the kernel with general matrices."""
    H, r = 3, 2
    Q, K = rng.standard_normal((H, r, d)) / math.sqrt(d), rng.standard_normal((H, r, d)) / math.sqrt(d)
    V = rng.standard_normal((H, d, d)) / math.sqrt(d)  # non-symmetric, a different one per head
    QK = rng.standard_normal((d, d)) / math.sqrt(d)
    bias = rng.standard_normal((n, n))
    bias[rng.random((n, n)) < 0.3] = -math.inf
    np.fill_diagonal(bias, 0.0)  # every token keeps itself: no empty row
    out = [
        ("SA, Q = K = V = I", {}, {}),
        ("USA, Q = K = V = I", {"normalization": "uniform"}, {"normalization": "uniform"}),
        ("USA in s = e^β t", {"normalization": "uniform", "time_scale": "exp_beta"},
         {"normalization": "uniform", "time_scale": "exp_beta"}),
        ("SA, V = −I", {"V": "repulsive"}, {"sign": -1.0}),
        ("SA, Q, K (2×d), V general", {"Q": Q[0], "K": K[0], "V": V[0]}, {"Q": Q[:1], "K": K[:1], "V": V[:1]}),
        ("USA, QᵀK and V general", {"QK": QK, "V": V[1], "normalization": "uniform"},
         {"Q": np.eye(d)[None], "K": QK[None], "V": V[1:2], "normalization": "uniform"}),
        ("SA, 3 heads summed", {"Q": Q, "K": K, "V": V, "heads": H}, {"Q": Q, "K": K, "V": V}),
        ("SA, 3 heads and a mask with −inf", {"Q": Q, "K": K, "V": V, "heads": H, "mask": bias},
         {"Q": Q, "K": K, "V": V, "bias": bias}),
        ("SA, causal", {"Q": Q[0], "K": K[0], "V": V[0], "causal": True},
         {"Q": Q[:1], "K": K[:1], "V": V[:1], "causal": True}),
        ("USA, causal, 1/i", {"causal": True, "normalization": "uniform", "uniform_count": "attended"},
         {"causal": True, "normalization": "uniform", "uniform_count": "attended"}),
        ("USA, causal, 1/n, mask, s = e^β t",
         {"causal": True, "normalization": "uniform", "mask": bias, "time_scale": "exp_beta"},
         {"causal": True, "normalization": "uniform", "bias": bias, "time_scale": "exp_beta"}),
    ]
    return out  # QK given directly is scored x_iᵀ (QᵀK) x_j = ⟨I x_i, (QᵀK) x_j⟩


def check_kernel_reference(size: str, budget: Budget) -> CheckResult:
    """(2.3), (2.7): the library's velocity (dense and streaming) against the row-by-row NumPy evaluation."""
    small = check_size(size)
    n, d, beta = (7, 4, 1.7) if small else (9, 5, 2.3)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    xt = torch.as_tensor(x)[None]
    rows, worst = [], 0.0
    for label, kw, ref_kw in _cases(rng, n, d):
        budget.tick()
        model = Model(beta=beta, **kw)
        ref = reference_velocity(x, beta, **ref_kw)
        scale = max(1.0, float(np.abs(ref).max()))
        errs = [float(np.abs(velocity(xt, model)[0].numpy() - ref).max()) / scale]
        errs.append(float(np.abs(velocity(xt, model, chunk_size=3)[0].numpy() - ref).max()) / scale)
        rows.append((label, max(errs)))
        worst = max(worst, max(errs))
    tol = 1e-12
    bad = [lab for lab, e in rows if not e <= tol]
    return CheckResult(
        "(2.3), (2.7): velocity = row-by-row evaluation (general Q, K, V, 3 heads summed, masks, causal, SA/USA, "
        "both USA time scales; dense and streaming)",
        f"largest relative difference {worst:.1e} over {len(rows)} models"
        + (f"; off: {', '.join(bad)}" if bad else ""),
        f"≤ {tol:g} (round-off)",
        not bad,
        f"n = {n}, d = {d}, β = {beta}; NumPy reference from the drawn matrices, not the library's tensors",
        plot={"kind": "bars", "x": [lab for lab, _ in rows], "series": {"relative difference": [e for _, e in rows]},
              "xlabel": "model", "ylabel": "|library − ref.| / |ref.|", "logy": True,
              "refs": {"tolerance": tol}},
    )


def check_causal(size: str, budget: Budget) -> CheckResult:
    """Causal masking (Karagodin–Polyanskiy–Rigollet 2024), V = I: token 1 attends only to itself, so it never
    moves (P⊥_{x_1} x_1 = 0), and a single limit cluster sits at x_1(0). Also with general Q, K."""
    small = check_size(size)
    n, d, beta, t_max = (6, 3, 1.0, 25.0) if small else (8, 3, 1.0, 30.0)
    rng = np.random.default_rng(12)
    Q, K = rng.standard_normal((d, d)) / math.sqrt(d), rng.standard_normal((d, d)) / math.sqrt(d)
    x0 = Uniform(batch=4, n=n, d=d, seed=12).sample()
    x0[:, :, 0] = x0[:, :, 0].abs() + 0.5  # an open half-space {x_1 > 0}: the causal flow then collapses
    x0 = x0 / x0.norm(dim=-1, keepdim=True)
    moved, spread, series = 0.0, 0.0, {}
    for label, kw in (("SA", {}), ("SA, Q, K general", {"Q": Q, "K": K}), ("USA 1/i", {"normalization": "uniform",
                                                                                        "uniform_count": "attended"})):
        traj = run_sim(x0, budget, t_max=t_max, save_at=26, beta=beta, causal=True, **kw)
        x = traj.positions
        moved = max(moved, float((x[:, :, 0] - x0[None, :, 0]).norm(dim=-1).max()))
        dist = (x[:, :, 1:] - x[:, :, :1]).norm(dim=-1).amax(-1)  # (T, B): farthest token from x_1
        spread = max(spread, float(dist[-1].max()))
        series[label] = dist.amax(1).tolist()
    tol_move, tol_final = 1e-12, 1e-3
    return CheckResult(
        "Causal masking, V = I: token 1 never moves; the tokens collapse onto x_1(0)",
        f"|x_1(t) − x_1(0)| ≤ {moved:.1e}; max_i |x_i(T) − x_1(0)| = {spread:.1e}",
        f"≤ {tol_move:g} (round-off); < {tol_final:g} at T = {t_max:g}",
        moved <= tol_move and spread < tol_final,
        f"n = {n}, d = {d}, β = {beta}, 4 starts in a half-space; SA, SA with general Q, K, USA with 1/i",
        plot={"x": traj.times.tolist(), "series": series, "xlabel": "t", "ylabel": "max_i |x_i(t) − x_1(t)|",
              "logy": True},
    )


def check_block_mask(size: str, budget: Budget) -> CheckResult:
    """A block-diagonal mask (two groups that do not see each other) splits the system: the masked run equals
    two separate runs, each group's own (2.3) with general Q, K, V, to integrator accuracy."""
    small = check_size(size)
    n1, n2, d, beta, t_max = (3, 4, 3, 2.0, 3.0) if small else (4, 5, 4, 2.0, 4.0)
    n = n1 + n2
    rng = np.random.default_rng(13)
    Q, K, V = (rng.standard_normal((d, d)) / math.sqrt(d) for _ in range(3))
    mask = np.full((n, n), -math.inf)
    mask[:n1, :n1] = 0.0
    mask[n1:, n1:] = 0.0
    x0 = Uniform(batch=2, n=n, d=d, seed=13).sample()
    kw = {"Q": Q, "K": K, "V": V, "rtol": 1e-12, "atol": 1e-14}
    whole = run_sim(x0, budget, t_max=t_max, save_at=13, beta=beta, mask=mask, **kw).positions
    a = run_sim(x0[:, :n1], budget, t_max=t_max, save_at=13, beta=beta, **kw).positions
    b = run_sim(x0[:, n1:], budget, t_max=t_max, save_at=13, beta=beta, **kw).positions
    err_t = (whole - torch.cat([a, b], dim=2)).norm(dim=-1).flatten(1).amax(1)
    err = float(err_t.max())
    moved = float((whole[-1] - whole[0]).norm(dim=-1).max())
    tol = 1e-8
    return CheckResult(
        "Masks (2.3) with b_ij = −inf between two groups: the system splits into two independent ones",
        f"max |x^masked(t) − x^separate(t)| = {err:.1e} (tokens moved up to {moved:.2f})",
        f"≤ {tol:g} (dopri5 at rtol 1e-12)",
        err <= tol and moved > 0.1,
        f"groups of {n1} and {n2} tokens, d = {d}, β = {beta}, general Q, K, V, t ∈ [0, {t_max:g}]",
        plot={"x": torch.linspace(0, t_max, 13).tolist(), "series": {"difference": err_t.tolist()},
              "xlabel": "t", "ylabel": "max |masked − separate|", "logy": True, "refs": {"tolerance": tol}},
    )


def pair_angles(x: torch.Tensor) -> torch.Tensor:
    """Off-diagonal Gram entries, (..., n, d) → (..., n(n−1))."""
    g = gram(x)
    n = g.shape[-1]
    return g[..., ~torch.eye(n, dtype=torch.bool)]


def _constant_attention(bias: np.ndarray, normalization: str, beta: float, causal: bool, uniform_count: str,
                        time_scale: str) -> np.ndarray:
    """A_ij when every score β⟨Q x_i, K x_j⟩ is 0 (QᵀK = 0): the normalised e^{b_ij} over the attended keys."""
    n = bias.shape[0]
    b = bias.copy()
    if causal:
        b[np.triu_indices(n, 1)] = -math.inf
    e = np.exp(b - (beta if normalization == "uniform" and time_scale == "exp_beta" else 0.0))
    if normalization == "softmax":
        return e / e.sum(1, keepdims=True)
    return e / (np.isfinite(b).sum(1, keepdims=True) if uniform_count == "attended" else n)


def check_linear_closed_form(size: str, budget: Budget) -> CheckResult:
    """Pure self-attention (9.1) (no projection) with QᵀK = 0: the attention is the constant A^h of the masks
    (softmax or 1/n, 1/i of the biases b_ij alone), so (2.7) is the linear ODE Ẋ = Σ_h A^h X V_hᵀ with the exact
    solution vec X(t) = exp(t Σ_h A^h ⊗ V_h) vec X(0) (SciPy's expm). Exercises non-symmetric V, two heads with
    their own masks and values, causal masks, and (USA) with 1/n, 1/i and the time scale s = e^β t."""
    from scipy.linalg import expm

    small = check_size(size)
    n, d, H, t_max = (5, 3, 2, 1.0) if small else (6, 4, 2, 1.5)
    rng = np.random.default_rng(14)
    V = rng.standard_normal((H, d, d)) / math.sqrt(d)
    bias = rng.standard_normal((H, n, n))
    bias[rng.random((H, n, n)) < 0.3] = -math.inf
    for h in range(H):
        np.fill_diagonal(bias[h], 0.0)
    zero = np.zeros((H, d, d))
    cases = [
        ("SA, 2 heads, per-head masks", {"QK": zero, "V": V, "heads": H, "mask": bias[None]},
         [(bias[h], V[h]) for h in range(H)], {}),
        ("SA, causal", {"QK": zero[0], "V": V[0], "causal": True}, [(np.zeros((n, n)), V[0])], {"causal": True}),
        ("USA, mask, s = e^β t", {"QK": zero[0], "V": V[1], "mask": bias[0], "normalization": "uniform",
                                  "time_scale": "exp_beta"}, [(bias[0], V[1])],
         {"normalization": "uniform", "time_scale": "exp_beta"}),
        ("USA, causal, 1/i", {"QK": zero[0], "V": V[0], "causal": True, "normalization": "uniform",
                              "uniform_count": "attended"}, [(np.zeros((n, n)), V[0])],
         {"causal": True, "normalization": "uniform", "uniform_count": "attended"}),
    ]
    beta = 2.0
    x0 = rng.standard_normal((1, n, d))
    times = np.linspace(0, t_max, 6)
    worst, series = 0.0, {}
    for label, kw, heads, opts in cases:
        traj = run_sim(torch.as_tensor(x0), budget, t_max=t_max, save_at=times.tolist(), rtol=1e-12, atol=1e-14,
                       beta=beta, projection=False, **kw)
        M = sum(np.kron(_constant_attention(b, opts.get("normalization", "softmax"), beta, opts.get("causal", False),
                                            opts.get("uniform_count", "n"), opts.get("time_scale", "original")), v)
                for b, v in heads)
        exact = np.stack([(expm(t * M) @ x0[0].reshape(-1)).reshape(n, d) for t in times])
        err = np.abs(traj.positions[:, 0].numpy() - exact).max(axis=(1, 2)) / np.abs(exact).max()
        worst = max(worst, float(err.max()))
        series[label] = err.tolist()
    tol = 1e-9
    return CheckResult(
        "(9.1) with QᵀK = 0: linear ODE Ẋ = Σ_h A^h X V_hᵀ, exact solution exp(t Σ_h A^h ⊗ V_h) (heads, masks, causal, "
        "non-symmetric V, USA 1/n, 1/i, s = e^β t)",
        f"max relative |x(t) − exact| = {worst:.1e} over {len(cases)} models",
        f"≤ {tol:g} (dopri5 at rtol 1e-12)",
        worst <= tol,
        f"n = {n}, d = {d}, t ∈ [0, {t_max:g}], β = {beta} (scores vanish), random biases with −inf entries",
        plot={"x": times.tolist(), "series": series, "xlabel": "t", "ylabel": "relative error against expm",
              "logy": True, "refs": {"tolerance": tol}},
    )
