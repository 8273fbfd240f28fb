"""The velocity kernel ((2.3)-(2.7) of the paper, causal masks, the circle forms (7.1), large-β stability): every
variant against an independent per-row reference, invariants (tangency, equivariances, stationary states),
streaming = dense, stability.

Independent truth: ``ref_field`` below is a plain NumPy loop over systems, heads and rows that evaluates
the formulas (2.3)-(2.7) of the paper literally (with the row maximum subtracted, so that large β cannot
overflow). It shares no code with tokensphere.

Tolerances (float64, unit round-off u = 1.1e-16): the field is a convex combination (SA) or an average
(USA) of n vectors, so evaluation errors are O(n·u·|F|) with |F| the size of the raw field. For n ≤ 20 we use
1e-12 relative to max|F| (about 50 times that bound); tangency ⟨ẋ_i, x_i⟩ = (F·x)(1 − |x|²) + rounding is
O(u·|F|), checked at 1e-13·max(1, |F|); streaming and dense differ only by summation order, checked at 1e-13.
"""

import itertools
import math
import resource

import numpy as np
import pytest
import torch

from tokensphere import Model, attention, log_normalizer, scores, tangent_project, velocity

from helpers import gauss, sphere

B, N, D = 3, 7, 4
RTOL = 1e-12  # reference vs kernel, relative to the field's size (see module docstring)


# ---------------------------------------------------------------------------------------------------
# helpers


def orthogonal(d, seed):
    q, r = torch.linalg.qr(gauss(d, d, seed=seed))
    return q * torch.sign(torch.diagonal(r))


def ref_field(x, kw, project=True):
    """(2.3)/(2.7) of the paper, with the optional causal mask, evaluated row by row in NumPy:
    Σ_h Σ_j A^h_ij V_h x_j, then P⊥_{x_i}."""
    x = np.asarray(x, dtype=np.float64)
    Bx, n, d = x.shape
    H = kw.get("heads", 1)
    beta = np.broadcast_to(np.asarray(kw.get("beta", 1.0), dtype=np.float64).reshape(-1), (Bx,))
    norm = kw.get("normalization", "softmax")

    def pick(name, b, h):
        v = kw.get(name)
        if v is None or isinstance(v, str):
            return None
        a = np.asarray(v, dtype=np.float64)
        if H == 1:
            return a if a.ndim == 2 else a[b]
        if a.ndim == 2:
            return a
        return a[h] if a.ndim == 3 else a[b, h]

    out = np.zeros_like(x)
    for b in range(Bx):
        for h in range(H):
            Q, K, QK = pick("Q", b, h), pick("K", b, h), pick("QK", b, h)
            form = Q.T @ K if Q is not None else (QK if QK is not None else np.eye(d))
            V = pick("V", b, h)
            if V is None:
                V = -np.eye(d) if kw.get("V") == "repulsive" else np.eye(d)
            mask = kw.get("mask")
            if mask is not None:
                m = np.asarray(mask, dtype=np.float64)
                m = m if m.ndim == 2 else (m[b] if m.ndim == 3 else m[b, h])
            else:
                m = np.zeros((n, n))
            if kw.get("causal", False):
                m = m + np.where(np.arange(n)[None, :] > np.arange(n)[:, None], -np.inf, 0.0)
            for i in range(n):
                keep = np.isfinite(m[i])
                s = np.array([beta[b] * x[b, i] @ form @ x[b, j] + m[i, j] for j in range(n) if keep[j]])
                vx = np.array([V @ x[b, j] for j in range(n) if keep[j]])
                if norm == "softmax":
                    w = np.exp(s - s.max())
                    w = w / w.sum()
                else:
                    shift = beta[b] if kw.get("time_scale") == "exp_beta" else 0.0
                    count = keep.sum() if kw.get("uniform_count") == "attended" else n
                    w = np.exp(s - shift) / count
                f = w @ vx
                if kw.get("head_reduction") == "mean":
                    f = f / H
                out[b, i] += f
    if project:
        out = out - (out * x).sum(-1, keepdims=True) * x
    return torch.from_numpy(out)


def close(a, b, rtol=RTOL, scale=None):
    """|a − b| ≤ rtol · max(1, scale) elementwise (scale defaults to max|b|)."""
    s = max(1.0, float(b.abs().max()) if scale is None else scale)
    err = float((a - b).abs().max())
    assert err <= rtol * s, f"max error {err:.3e} > {rtol:.1e} * {s:.3e}"


def random_mask(B, n, seed, heads=None):
    """Additive biases: finite values, some −inf, but the diagonal always 0 so no row is empty."""
    g = torch.Generator().manual_seed(seed)
    shape = (B, n, n) if heads is None else (B, heads, n, n)
    m = torch.randn(*shape, generator=g, dtype=torch.float64)
    dead = torch.rand(*shape, generator=g) < 0.3
    m = m.masked_fill(dead, -math.inf)
    eye = torch.eye(n, dtype=torch.bool)
    return m.masked_fill(eye, 0.0)


def variant_kwargs(name, Bn=B, n=N, d=D):
    """Model keyword arguments for each variant (normalisation, scores, heads, values, masks) the kernel covers."""
    k = 2  # query/key width ≠ d
    s = 1 / math.sqrt(d)
    V = gauss(d, d, seed=11, scale=s)
    table = {
        "SA": dict(beta=2.0),
        "USA": dict(beta=2.0, normalization="uniform"),
        "USA_exp_beta": dict(beta=2.0, normalization="uniform", time_scale="exp_beta"),
        "SA_repulsive": dict(beta=1.5, V="repulsive"),
        "USA_repulsive": dict(beta=1.5, normalization="uniform", V="repulsive"),
        "SA_beta0": dict(beta=0.0),
        "general_V": dict(beta=1.5, V=V),
        "QK_nonsquare_k<d": dict(beta=1.2, Q=gauss(k, d, seed=1), K=gauss(k, d, seed=2), V=V),
        "QK_nonsquare_k>d": dict(beta=0.7, Q=gauss(d + 2, d, seed=3, scale=s), K=gauss(d + 2, d, seed=4, scale=s)),
        "QK_form": dict(beta=1.3, QK=gauss(d, d, seed=5), V=V),
        "USA_QKV": dict(beta=1.1, normalization="uniform", Q=gauss(k, d, seed=6), K=gauss(k, d, seed=7), V=V),
        "heads_sum": dict(
            beta=1.0, heads=3, Q=gauss(3, k, d, seed=8), K=gauss(3, k, d, seed=9), V=gauss(3, d, d, seed=10, scale=s)
        ),
        "heads_mean": dict(
            beta=1.0,
            heads=3,
            head_reduction="mean",
            Q=gauss(3, k, d, seed=8),
            K=gauss(3, k, d, seed=9),
            V=gauss(3, d, d, seed=10, scale=s),
        ),
        "heads_QK_sharedV": dict(beta=0.8, heads=2, QK=gauss(2, d, d, seed=12), V=V),
        "mask": dict(beta=1.0, mask=random_mask(Bn, n, seed=13)),
        "mask_shared": dict(beta=1.0, mask=random_mask(1, n, seed=14)[0]),
        "mask_per_head": dict(
            beta=1.0, heads=2, QK=gauss(2, d, d, seed=15), mask=random_mask(Bn, n, seed=16, heads=2)
        ),
        "USA_mask_attended": dict(
            beta=1.0, normalization="uniform", uniform_count="attended", mask=random_mask(Bn, n, seed=17)
        ),
        "causal": dict(beta=1.3, causal=True),
        "causal_QKV": dict(beta=1.3, causal=True, QK=gauss(d, d, seed=18), V=V),
        "causal_USA_n": dict(beta=1.3, causal=True, normalization="uniform"),
        "causal_USA_attended": dict(beta=1.3, causal=True, normalization="uniform", uniform_count="attended"),
        "causal_mask": dict(beta=0.9, causal=True, mask=random_mask(Bn, n, seed=19)),
        "per_system_beta": dict(beta=torch.tensor([0.0, 0.5, 3.0], dtype=torch.float64)[:Bn]),
        "per_system_beta_USA": dict(
            beta=torch.tensor([0.0, 0.5, 3.0], dtype=torch.float64)[:Bn], normalization="uniform"
        ),
        "per_system_QK": dict(beta=1.0, QK=gauss(Bn, d, d, seed=20), V=gauss(Bn, d, d, seed=21, scale=s)),
    }
    return table[name]


VARIANTS = [
    "SA", "USA", "USA_exp_beta", "SA_repulsive", "USA_repulsive", "SA_beta0", "general_V", "QK_nonsquare_k<d",
    "QK_nonsquare_k>d", "QK_form", "USA_QKV", "heads_sum", "heads_mean", "heads_QK_sharedV", "mask", "mask_shared",
    "mask_per_head", "USA_mask_attended", "causal", "causal_QKV", "causal_USA_n", "causal_USA_attended",
    "causal_mask", "per_system_beta", "per_system_beta_USA", "per_system_QK",
]  # fmt: skip
NON_CAUSAL = [v for v in VARIANTS if not v.startswith("causal")]
SOFTMAX = [v for v in VARIANTS if variant_kwargs(v).get("normalization", "softmax") == "softmax"]


def raw_scale(x, kw):
    return float(ref_field(x, kw, project=False).abs().max())


# ---------------------------------------------------------------------------------------------------
# every variant against the reference; shape, dtype and tangency


@pytest.mark.parametrize("name", VARIANTS)
def test_matches_reference(name):
    kw = variant_kwargs(name)
    x = sphere(B, N, D, seed=100)
    v = velocity(x, Model(**kw))
    assert v.shape == (B, N, D) and v.dtype == torch.float64
    close(v, ref_field(x, kw), scale=raw_scale(x, kw))


@pytest.mark.parametrize("name", VARIANTS)
def test_tangent_to_round_off(name):
    kw = variant_kwargs(name)
    x = sphere(B, N, D, seed=101)
    v = velocity(x, Model(**kw))
    assert torch.isfinite(v).all()
    radial = (v * x).sum(-1).abs().max()
    assert radial <= 1e-13 * max(1.0, raw_scale(x, kw))


@pytest.mark.parametrize("name", VARIANTS)
def test_unprojected_field_and_its_projection(name):
    """projection=False gives Σ_h Σ_j A_ij V_h x_j itself, and P⊥ of it is the projected field."""
    kw = variant_kwargs(name)
    x = sphere(B, N, D, seed=102)
    raw = velocity(x, Model(**kw, projection=False))
    close(raw, ref_field(x, kw, project=False))
    assert torch.equal(raw, velocity(x, Model(**kw), project=False))  # the per-call override
    close(tangent_project(x, raw), velocity(x, Model(**kw)), rtol=1e-14, scale=float(raw.abs().max()))
    assert torch.equal(velocity(x, Model(**kw, projection=False), project=True), velocity(x, Model(**kw)))


def test_tangent_project_closed_form():
    x = torch.tensor([[0.6, 0.8, 0.0]], dtype=torch.float64)
    assert tangent_project(x, x).abs().max() <= 1e-16
    y = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)  # ⟨x, y⟩ = 2.2
    expect = torch.tensor([[1.0 - 1.32, 2.0 - 1.76, 3.0]], dtype=torch.float64)
    assert torch.allclose(tangent_project(x, y), expect, rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------------------------------
# streaming back end


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("chunk", [1, 3, 7, N, N + 5])
def test_streaming_equals_dense(name, chunk):
    kw = variant_kwargs(name)
    x = sphere(B, N, D, seed=103)
    m = Model(**kw)
    dense, stream = velocity(x, m), velocity(x, m, chunk_size=chunk)
    close(stream, dense, rtol=1e-13, scale=raw_scale(x, kw))
    raw_m = Model(**kw, projection=False)
    close(velocity(x, raw_m, chunk_size=chunk), velocity(x, raw_m), rtol=1e-13)


@pytest.mark.parametrize("beta", [1e3, 1e4])
@pytest.mark.parametrize("chunk", [1, 4])
def test_streaming_equals_dense_at_large_beta(beta, chunk):
    """The online softmax rescales its running sums when the row maximum changes; at β = 1e4 a wrong
    rescaling overflows or zeroes the sums. Points are close (spread 0.02 rad) so the field is not zero."""
    x = _cluster_near(B, 9, D, spread=0.02, seed=104)
    m = Model(beta=beta)
    dense = velocity(x, m)
    assert dense.abs().max() > 1e-6  # a non-trivial comparison
    close(velocity(x, m, chunk_size=chunk), dense, rtol=1e-13)
    close(dense, ref_field(x, {"beta": beta}), rtol=1e-10)  # exponents of size β·1e-4 ≈ 1: error ~ β·u·|F|


_STREAMING_CHILD = r"""
import json, math, resource, sys, torch
from tokensphere import Model, plan, velocity
n, chunk, d, beta, normalization = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
chunk = chunk or None  # 0: the plan's choice
g = torch.Generator().manual_seed(105)
x = torch.randn(1, n, d, generator=g, dtype=torch.float64)
x = x / x.norm(dim=-1, keepdim=True)
peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
v = velocity(x, Model(beta=beta, normalization=normalization), chunk_size=chunk)
growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak0
err = 0.0
for i in (0, 1, n // 2, n - 1):
    w = torch.exp(beta * (x[0] @ x[0, i]) - beta)  # e^{β(s_ij − 1)}, independent of the kernel
    f = math.exp(beta) * (w @ x[0]) / n if normalization == "uniform" else (w @ x[0]) / w.sum()
    # the scale of the rounding in those sums of n positive-weighted terms: Σ_j w_ij |x_j| / Σ_j w_ij (times e^β/n·Σw
    # for USA), which the projection's cancellation does not shrink
    scale = (w @ x[0].abs()).max() / (n * math.exp(-beta) if normalization == "uniform" else w.sum())
    f = f - (f @ x[0, i]) * x[0, i]
    err = max(err, float((v[0, i] - f).abs().max() / scale))
backend = plan(x, Model(beta=beta, normalization=normalization), chunk_size=chunk).backend
print(json.dumps({"growth": growth, "err": err, "finite": bool(torch.isfinite(v).all()), "shape": list(v.shape),
                  "backend": backend}))
"""


def _streaming_rows_match_direct(n, chunk, normalization, beta=3.0, d=4, backend="streaming"):
    """Run the streaming kernel (chunk 0: the back end the plan picks, expected ``backend``) at size n in a
    fresh process and compare a few rows with a direct per-row evaluation. Both are sums of n terms, whose
    recursive rounding error is at most (n − 1)ε relative to the sum of their absolute values, in the numerator
    and the normaliser, each side: tolerance 4nε of that scale. Returns the growth of that process's peak
    memory in bytes during the call — a fresh process, so the heap state left by earlier tests cannot blur it."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _STREAMING_CHILD, str(n), str(chunk), str(d), str(beta),
                          normalization], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["shape"] == [1, n, d] and r["finite"] and r["backend"] == backend
    assert r["err"] <= 4 * n * torch.finfo(torch.float64).eps, r
    return r["growth"]


def test_streaming_at_large_n():
    """n = 12000: one dense (n × n) float64 matrix takes 1.15 GB (and the dense softmax makes several);
    the streaming path needs O(n·chunk) memory. ru_maxrss is the process peak, so its growth bounds what
    this call allocated beyond earlier peaks."""
    n = 12000
    growth = _streaming_rows_match_direct(n, chunk=2048, normalization="softmax")
    assert growth < 0.9 * n * n * 8


@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_symmetric_back_end_at_large_n(normalization):
    """n = 12000, the plan's choice for the toy model: the symmetric back end, O(n·d + block²) memory (a dense
    score matrix alone would take 1.15 GB), the same rows as the direct evaluation."""
    n = 12000
    growth = _streaming_rows_match_direct(n, chunk=0, normalization=normalization, backend="symmetric")
    assert growth < 0.05 * n * n * 8


@pytest.mark.slow
@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_streaming_at_very_large_n(normalization):
    """n = 20000, d = 4, chunk 2048: the dense matrix would take 3.2 GB (about 12 s per call on 2 cores)."""
    n = 20000
    growth = _streaming_rows_match_direct(n, chunk=2048, normalization=normalization)
    assert growth < 0.5 * n * n * 8


# ---------------------------------------------------------------------------------------------------
# attention, scores, normaliser


@pytest.mark.parametrize("name", SOFTMAX)
def test_softmax_attention_is_row_stochastic(name):
    kw = variant_kwargs(name)
    x = sphere(B, N, D, seed=106)
    a = attention(x, Model(**kw))
    H = kw.get("heads", 1)
    assert a.shape == (B, H, N, N)
    assert (a >= 0).all()
    assert (a.sum(-1) - 1).abs().max() <= 1e-14
    if "mask" in kw or kw.get("causal"):
        blocked = scores(x, Model(**kw)) == -math.inf
        assert blocked.any() and (a[blocked] == 0).all()
    if kw.get("causal"):
        assert (a[..., 0, 0] == 1).all()  # token 0 sees only itself


def test_attention_and_scores_closed_forms():
    x = sphere(B, N, D, seed=107)
    Q, K = gauss(2, D, seed=1), gauss(2, D, seed=2)
    beta = 1.7
    s = beta * (x @ Q.T) @ (x @ K.T).transpose(1, 2)  # β⟨Q x_i, K x_j⟩
    m = Model(beta=beta, Q=Q, K=K)
    assert torch.allclose(scores(x, m)[:, 0], s, rtol=1e-14, atol=1e-14)
    assert torch.allclose(log_normalizer(x, m)[:, 0], torch.log(torch.exp(s).sum(-1)), rtol=1e-14, atol=0)
    a = torch.exp(s) / torch.exp(s).sum(-1, keepdim=True)
    assert torch.allclose(attention(x, m)[:, 0], a, rtol=1e-13, atol=1e-16)
    usa = Model(beta=beta, Q=Q, K=K, normalization="uniform")
    assert torch.allclose(attention(x, usa)[:, 0], torch.exp(s) / N, rtol=1e-13, atol=0)
    usa_s = Model(beta=beta, Q=Q, K=K, normalization="uniform", time_scale="exp_beta")
    assert torch.allclose(attention(x, usa_s)[:, 0], torch.exp(s - beta) / N, rtol=1e-13, atol=0)


@pytest.mark.parametrize("beta", [0.0, 0.3, 5.0, 50.0])
def test_normaliser_bounds(beta):
    """(3.3) of the paper for the empirical measure: n e^{−β} ≤ Z_{β,i} ≤ n e^{β} for Q = K = I; with itself in the
    sum also Z ≥ e^{β}."""
    x = sphere(B, N, D, seed=108)
    logz = log_normalizer(x, Model(beta=beta))[:, 0]
    assert (logz <= math.log(N) + beta + 1e-13).all()
    assert (logz >= math.log(N) - beta - 1e-13).all()
    assert (logz >= beta - 1e-13).all()


# ---------------------------------------------------------------------------------------------------
# equivariance (Remark 2.2 of the paper; rotations U with UᵀBU = B and UV = VU)


@pytest.mark.parametrize("name", NON_CAUSAL)
def test_permutation_equivariance(name):
    """v(πX) = π v(X); a mask is a function of the pair, so it is permuted with the tokens."""
    kw = dict(variant_kwargs(name))
    x = sphere(B, N, D, seed=109)
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(1))
    kw_p = dict(kw)
    if "mask" in kw:
        kw_p["mask"] = kw["mask"][..., perm, :][..., :, perm]
    v = velocity(x, Model(**kw))
    v_p = velocity(x[:, perm], Model(**kw_p))
    close(v_p, v[:, perm], rtol=1e-13, scale=raw_scale(x, kw))


def test_causal_breaks_permutation_equivariance():
    """The check above is able to fail: with a causal mask reversing the order changes the field."""
    x = sphere(B, N, D, seed=110)
    perm = torch.arange(N - 1, -1, -1)
    m = Model(beta=1.0, causal=True)
    assert (velocity(x[:, perm], m) - velocity(x, m)[:, perm]).abs().max() > 1e-3


@pytest.mark.parametrize(
    "kw",
    [
        dict(beta=2.0),
        dict(beta=2.0, normalization="uniform"),
        dict(beta=2.0, normalization="uniform", time_scale="exp_beta"),
        dict(beta=2.0, V="repulsive"),
        dict(beta=torch.tensor([0.0, 1.0, 7.0], dtype=torch.float64)),
        dict(beta=2.0, causal=True),
    ],
    ids=["SA", "USA", "USA_exp_beta", "repulsive", "per_system_beta", "causal"],
)
def test_rotation_equivariance_identity_weights(kw):
    """Q = K = V = I: v(X Uᵀ) = v(X) Uᵀ for orthogonal U (each x_i ↦ U x_i)."""
    x = sphere(B, N, D, seed=111)
    for seed in (1, 2):
        U = orthogonal(D, seed)
        if seed == 2:
            U[:, 0] = -U[:, 0]  # also an improper rotation (det = −1)
        m = Model(**kw)
        close(velocity(x @ U.T, m), velocity(x, m) @ U.T, rtol=1e-13)


def _commuting_weights(seed):
    """U, QK, V with UᵀQK U = QK and UV = VU, none of them symmetric (then the flow commutes with U):
    in a random orthonormal basis, U = R(φ1) ⊕ R(φ2) and QK, V = (aI + bJ) ⊕ (cI + eJ), J the 90° rotation."""
    J = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    I2 = torch.eye(2, dtype=torch.float64)

    def rot(phi):
        return math.cos(phi) * I2 + math.sin(phi) * J

    def block(a, b, c, e):
        return torch.block_diag(a * I2 + b * J, c * I2 + e * J)

    O = orthogonal(4, seed)
    U = O @ torch.block_diag(rot(0.7), rot(-2.1)) @ O.T
    QK = O @ block(1.3, -0.8, 0.4, 1.1) @ O.T
    V = O @ block(0.9, 0.5, -1.2, 0.3) @ O.T
    return U, QK, V


@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_rotation_equivariance_commuting_weights(normalization):
    U, QK, V = _commuting_weights(seed=3)
    assert torch.allclose(U.T @ QK @ U, QK, atol=1e-14) and torch.allclose(U @ V, V @ U, atol=1e-14)
    assert not torch.allclose(QK, QK.T)  # the non-symmetric case
    x = sphere(B, N, 4, seed=112)
    m = Model(beta=1.5, QK=QK, V=V, normalization=normalization)
    close(velocity(x @ U.T, m), velocity(x, m) @ U.T, rtol=1e-13)
    close(velocity(x @ U.T, m, chunk_size=3), velocity(x, m) @ U.T, rtol=1e-13)
    # and the property is not automatic: a generic rotation breaks it
    W = orthogonal(4, seed=9)
    assert (velocity(x @ W.T, m) - velocity(x, m) @ W.T).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------------
# structural identities between variants


@pytest.mark.parametrize("k", [1, 2, 4, 7])
@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_QK_form_equals_pair(k, normalization):
    """Only B = QᵀK enters the scores ((2.3) of the paper: ⟨Qx, Ky⟩ = xᵀQᵀKy), for any width k of Q, K ∈ R^{k×d}."""
    Q, K, V = gauss(k, D, seed=31, scale=0.7), gauss(k, D, seed=32, scale=0.7), gauss(D, D, seed=33)
    x = sphere(B, N, D, seed=113)
    a = velocity(x, Model(beta=1.4, Q=Q, K=K, V=V, normalization=normalization))
    b = velocity(x, Model(beta=1.4, QK=Q.T @ K, V=V, normalization=normalization))
    close(a, b, rtol=1e-13)


@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_heads_sum_and_mean(normalization):
    """(2.7): H heads give the sum of the H single-head fields; head_reduction="mean" divides by H."""
    H, k = 3, 2
    Q, K, V = gauss(H, k, D, seed=41), gauss(H, k, D, seed=42), gauss(H, D, D, seed=43)
    x = sphere(B, N, D, seed=114)
    common = dict(beta=1.2, normalization=normalization)
    total = sum(velocity(x, Model(Q=Q[h], K=K[h], V=V[h], **common)) for h in range(H))
    close(velocity(x, Model(heads=H, Q=Q, K=K, V=V, **common)), total, rtol=1e-13)
    close(velocity(x, Model(heads=H, Q=Q, K=K, V=V, head_reduction="mean", **common)), total / H, rtol=1e-13)
    # per-system heads (B, H, k, d) equal per-system single models
    Qb, Kb = gauss(B, H, k, D, seed=44), gauss(B, H, k, D, seed=45)
    vb = velocity(x, Model(heads=H, Q=Qb, K=Kb, **common))
    for b in range(B):
        one = sum(velocity(x[b : b + 1], Model(Q=Qb[b, h], K=Kb[b, h], **common)) for h in range(H))
        close(vb[b : b + 1], one, rtol=1e-13)


@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_repulsive_is_minus_attractive(normalization):
    x = sphere(B, N, D, seed=115)
    for beta in (0.0, 0.5, 4.0):
        att = velocity(x, Model(beta=beta, normalization=normalization))
        rep = velocity(x, Model(beta=beta, normalization=normalization, V="repulsive"))
        assert torch.equal(rep, -att)
        minus_eye = -torch.eye(D, dtype=torch.float64)
        close(velocity(x, Model(beta=beta, normalization=normalization, V=minus_eye)), -att, rtol=1e-14)


def test_identity_matrices_equal_the_toy_path():
    """Q = K = V = I given as matrices (general path) equals the toy fast path."""
    x = sphere(B, N, D, seed=116)
    eye = torch.eye(D, dtype=torch.float64)
    for normalization in ("softmax", "uniform"):
        a = velocity(x, Model(beta=2.5, normalization=normalization))
        b = velocity(x, Model(beta=2.5, normalization=normalization, Q=eye, K=eye, V=eye))
        close(a, b, rtol=1e-14)


def test_zero_mask_equals_no_mask():
    x = sphere(B, N, D, seed=117)
    zero = torch.zeros(N, N, dtype=torch.float64)
    close(velocity(x, Model(beta=2.0, mask=zero)), velocity(x, Model(beta=2.0)), rtol=1e-14)


def test_constant_mask_row_shift_is_invisible_to_softmax_but_not_usa():
    """Softmax is invariant under adding c_i to row i of the scores; USA multiplies row i by e^{c_i}."""
    x = sphere(B, N, D, seed=118)
    c = gauss(N, 1, seed=5).expand(N, N).contiguous()
    close(velocity(x, Model(beta=1.0, mask=c)), velocity(x, Model(beta=1.0)), rtol=1e-14)
    usa = velocity(x, Model(beta=1.0, normalization="uniform"))
    close(velocity(x, Model(beta=1.0, normalization="uniform", mask=c)), usa * torch.exp(c[:, :1]), rtol=1e-13)


@pytest.mark.parametrize("beta", [0.0, 1.0, 3.0, 10.0])
def test_usa_exp_beta_is_a_time_change(beta):
    """time_scale="exp_beta" integrates in s = e^β t: its field is e^{−β} times the original-time field."""
    x = sphere(B, N, D, seed=119)
    orig = velocity(x, Model(beta=beta, normalization="uniform"))
    fast = velocity(x, Model(beta=beta, normalization="uniform", time_scale="exp_beta"))
    close(fast * math.exp(beta), orig, rtol=1e-13)


@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_beta_zero_is_the_mean_field_4_1(normalization):
    """(4.1): at β = 0, SA and USA are ẋ_i = P⊥_{x_i}((1/n) Σ_j x_j)."""
    x = sphere(B, N, D, seed=120)
    mean = x.mean(1, keepdim=True).expand_as(x)
    expect = mean - (mean * x).sum(-1, keepdim=True) * x
    close(velocity(x, Model(beta=0.0, normalization=normalization)), expect, rtol=1e-14)


@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_duplicating_every_token_leaves_the_field_unchanged(normalization):
    """Both fields depend on X only through µ = (1/n) Σ δ_{x_i} ((3.1) of the paper); in particular USA carries its
    1/n factor ((USA) in the paper: a fork without 1/n runs n times too fast — this doubles its field)."""
    x = sphere(B, N, D, seed=121)
    x2 = torch.cat([x, x], dim=1)
    m = Model(beta=2.0, normalization=normalization)
    close(velocity(x2, m)[:, :N], velocity(x, m), rtol=1e-13)
    close(velocity(x2, m)[:, N:], velocity(x, m), rtol=1e-13)


# ---------------------------------------------------------------------------------------------------
# causal masking (not in the paper; Karagodin–Polyanskiy–Rigollet, arXiv:2411.04990)


@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
@pytest.mark.parametrize("chunk", [None, 2])
def test_causal_first_token_never_moves(normalization, chunk):
    x = sphere(B, N, D, seed=122)
    for beta in (0.0, 1.0, 30.0):
        v = velocity(x, Model(beta=beta, causal=True, normalization=normalization), chunk_size=chunk)
        assert v[:, 0].abs().max() <= 1e-15 * math.exp(beta if normalization == "uniform" else 0.0)
        if beta <= 1.0:
            assert v[:, 1:].abs().max() > 1e-3  # the others do move


@pytest.mark.parametrize(
    "kw",
    [dict(beta=1.3), dict(beta=1.3, normalization="uniform"), dict(beta=0.8, QK=gauss(D, D, seed=50))],
    ids=["SA", "USA", "QK"],
)
def test_causal_equals_explicit_upper_mask(kw):
    x = sphere(B, N, D, seed=123)
    upper = torch.triu(torch.full((N, N), -math.inf, dtype=torch.float64), diagonal=1)
    a = velocity(x, Model(causal=True, **kw))
    b = velocity(x, Model(mask=upper, **kw))
    close(a, b, rtol=1e-14)
    close(velocity(x, Model(causal=True, **kw), chunk_size=3), b, rtol=1e-13)


@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_causal_prefix_does_not_see_the_future(normalization):
    """Token i depends on x_1..x_i only, so the first m rows equal the field of the first m tokens
    (USA counted by n here is 1/n of the full length, hence uniform_count="attended")."""
    x = sphere(B, N, D, seed=124)
    kw = dict(beta=1.5, causal=True, normalization=normalization, uniform_count="attended")
    full = velocity(x, Model(**kw))
    for m in (1, 3, N):
        close(velocity(x[:, :m], Model(**kw)), full[:, :m], rtol=1e-14)


def test_causal_usa_attended_divides_row_i_by_i_plus_1():
    """uniform_count="attended": row i (0-based) of causal USA is divided by i + 1 instead of n."""
    x = sphere(B, N, D, seed=125)
    by_n = velocity(x, Model(beta=1.3, causal=True, normalization="uniform"))
    by_i = velocity(x, Model(beta=1.3, causal=True, normalization="uniform", uniform_count="attended"))
    ratio = N / torch.arange(1, N + 1, dtype=torch.float64).view(1, N, 1)
    close(by_i, by_n * ratio, rtol=1e-14)
    close(velocity(x, Model(beta=1.3, causal=True, normalization="uniform", uniform_count="attended"),
                   chunk_size=2), by_n * ratio, rtol=1e-13)  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# large β: stability (row maximum subtracted) and the hardmax limit ((9.5)-(9.6) of the paper)


def _cluster_near(B, n, d, spread, seed):
    """n points within about `spread` radians of a random pole."""
    pole = sphere(B, 1, d, seed)
    x = pole + spread * gauss(B, n, d, seed=seed + 1) / math.sqrt(d)
    return x / x.norm(dim=-1, keepdim=True)


def _separated(B, n, d, seed, min_angle=0.3):
    """Random points with pairwise angles ≥ min_angle (rejection, per system)."""
    rows, g = [], torch.Generator().manual_seed(seed)
    for _ in range(B):
        while True:
            y = torch.randn(n, d, generator=g, dtype=torch.float64)
            y = y / y.norm(dim=-1, keepdim=True)
            gram = y @ y.T - 2 * torch.eye(n, dtype=torch.float64)
            if gram.max() < math.cos(min_angle):
                rows.append(y)
                break
    return torch.stack(rows)


@pytest.mark.parametrize("beta", [1e2, 1e3, 1e4, 1e6])
def test_sa_large_beta_finite_and_below_the_hardmax_bound(beta):
    """With Z_i ≥ e^β (self term), |ẋ_i| ≤ Σ_{j≠i} e^{−β(1−s_ij)} √(1 − s_ij²): the SA field → 0 as β → ∞
    for distinct points (hardmax limit, cf. (9.5)-(9.6) of the paper: on the sphere with Q = K = I each token
    attends only to itself)."""
    x = torch.cat([_separated(2, 6, D, seed=126), _cluster_near(2, 6, D, spread=0.003, seed=127)])
    v = velocity(x, Model(beta=beta))
    assert torch.isfinite(v).all()
    s = (x @ x.transpose(1, 2)).clamp(-1, 1)
    terms = torch.exp(-beta * (1 - s)) * torch.sqrt(1 - s**2)
    bound = terms.sum(-1) - torch.diagonal(terms, dim1=1, dim2=2)
    assert (v.norm(dim=-1) <= bound * (1 + 1e-8) + 1e-15).all()  # s_ii = 1 ± 2u shifts e^{β(s−1)} by ~β·u
    assert v[:2].abs().max() <= 1e-15 or beta < 1e3  # separated: e^{−1e3·(1−cos 0.3)} underflows to 0
    close(v, ref_field(x, {"beta": beta}), rtol=1e-9, scale=1e-30)  # exponents β(s−1) carry error ~ β·u


def test_sa_velocity_decreases_to_zero_with_beta():
    x = _separated(B, 5, 3, seed=128, min_angle=0.5)
    speeds = [float(velocity(x, Model(beta=b)).norm(dim=-1).max()) for b in (10.0, 20.0, 40.0, 80.0, 160.0)]
    assert all(a > b for a, b in zip(speeds, speeds[1:])), speeds
    assert speeds[-1] < 1e-8


def test_general_QK_hardmax_limit():
    """β → ∞ with generic Q, K: A_i· → the indicator of argmax_j ⟨Q x_i, K x_j⟩, so
    ẋ_i → P⊥_{x_i}(V x_{j*(i)}) (9.5)-(9.6), with the error bounded by e^{−β·gap} (the score gap)."""
    x = sphere(2, 6, D, seed=129)
    QK, V = gauss(D, D, seed=51), gauss(D, D, seed=52)
    s = x @ QK @ x.transpose(1, 2)
    top2 = s.topk(2, dim=-1).values
    gap = float((top2[..., 0] - top2[..., 1]).min())
    assert gap > 2e-3  # no ties in this configuration
    jstar = s.argmax(-1)
    vx = x @ V.T
    target = torch.gather(vx, 1, jstar.unsqueeze(-1).expand(-1, -1, D))
    target = target - (target * x).sum(-1, keepdim=True) * x
    for beta in (1e4, 1e5):
        v = velocity(x, Model(beta=beta, QK=QK, V=V))
        assert torch.isfinite(v).all()
        err_bound = 6 * math.exp(-beta * gap) * float(vx.norm(dim=-1).max()) * 2 + 1e-12
        assert float((v - target).abs().max()) <= err_bound
        close(velocity(x, Model(beta=beta, QK=QK, V=V), chunk_size=2), v, rtol=1e-13)


@pytest.mark.parametrize("beta", [1e3, 1e4])
def test_usa_exp_beta_large_beta_finite_and_correct(beta):
    """USA in s = e^β t at β = 1e4: e^{β(s_ij − 1)} ≤ 1, no overflow; separated points do not move, close ones
    (angles ≈ 1/√β) do, and agree with the reference."""
    x = torch.cat([_separated(1, 5, D, seed=130), _cluster_near(2, 5, D, spread=2 / math.sqrt(beta), seed=131)])
    kw = dict(beta=beta, normalization="uniform", time_scale="exp_beta")
    v = velocity(x, Model(**kw))
    assert torch.isfinite(v).all()
    assert v[0].abs().max() <= 1e-15
    assert v[1:].abs().max() > 1e-4
    close(v, ref_field(x, kw), rtol=1e-9)
    close(velocity(x, Model(**kw), chunk_size=2), v, rtol=1e-13)


def test_usa_original_time_at_beta_700_finite():
    x = _cluster_near(1, 5, D, spread=0.05, seed=132)
    v = velocity(x, Model(beta=700.0, normalization="uniform"))
    assert torch.isfinite(v).all() and v.abs().max() > 1e250


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_usa_original_time_in_float32_finite_at_its_limit_refused_above(dtype):
    """e^β overflows float32 (and bfloat16) above β ≈ 88.7: USA in original time takes β up to
    ⌊ln(max)⌋ − 9 = 79 there, with a finite field that matches float64 (the clustered tokens make every term
    near e^β), and refuses a larger β with an error naming beta, the limit and the dtype, not inf/NaN."""
    x64 = _cluster_near(1, 5, D, spread=0.05, seed=133)
    x = x64.to(dtype)
    v = velocity(x, Model(beta=79.0, normalization="uniform"))
    assert torch.isfinite(v).all() and v.float().abs().max() > 1e30
    ref = velocity(x.double(), Model(beta=79.0, normalization="uniform"))
    tol = 64 * torch.finfo(dtype).eps * 79  # the relative error of e^{β⟨x_i, x_j⟩} grows like β times the scores'
    assert ((v.double() - ref).abs().max() / ref.abs().max()) < tol
    with pytest.raises(ValueError, match=r"beta must be <= 79 .*" + str(dtype).replace("torch.", "")):
        velocity(x, Model(beta=80.0, normalization="uniform"))
    slow = Model(beta=80.0, normalization="uniform", time_scale="exp_beta")  # the rescaled time: any β
    assert torch.isfinite(velocity(x, slow)).all()


# ---------------------------------------------------------------------------------------------------
# circle: the angle forms (7.1) of the paper


@pytest.mark.parametrize("beta", [0.0, 0.7, 4.0, 25.0])
@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_circle_angle_form(beta, normalization):
    """x_i = (cos θ_i, sin θ_i): θ̇_i = ⟨ẋ_i, (−sin θ_i, cos θ_i)⟩ must equal
    USA: −(1/n) Σ_j e^{β cos(θ_i−θ_j)} sin(θ_i−θ_j);  SA: the same sum divided by (1/n) Σ_k e^{β cos(θ_i−θ_k)}."""
    n = 9
    theta = 2 * math.pi * torch.rand(B, n, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    x = torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1)
    v = velocity(x, Model(beta=beta, normalization=normalization))
    tangent = torch.stack([-torch.sin(theta), torch.cos(theta)], dim=-1)
    theta_dot = (v * tangent).sum(-1)
    diff = theta[..., :, None] - theta[..., None, :]
    kern = torch.exp(beta * torch.cos(diff))
    num = -(kern * torch.sin(diff)).sum(-1)
    expect = num / n if normalization == "uniform" else num / kern.sum(-1)
    scale = math.exp(beta) if normalization == "uniform" else 1.0
    assert float((theta_dot - expect).abs().max()) <= 1e-13 * scale
    assert float((v * x).sum(-1).abs().max()) <= 1e-14 * scale  # and no radial part on the circle


# ---------------------------------------------------------------------------------------------------
# stationary states (consensus, antipodal pair, the β = 0 saddle of Theorem 4.1, simplex, polygon)


def _assert_still(x, model, scale=1.0):
    v = velocity(x, model)
    assert float(v.abs().max()) <= 1e-14 * scale, float(v.abs().max())
    assert float(velocity(x, model, chunk_size=2).abs().max()) <= 1e-14 * scale


CONSENSUS_CASES = [
    (beta, norm)
    for beta in (0.0, 1.0, 9.0, 100.0, 1e4)
    for norm in ("softmax", "uniform", "exp_beta")
    if not (norm == "uniform" and beta > 700)  # USA in original time is refused above β = 700
]


@pytest.mark.parametrize("beta, normalization", CONSENSUS_CASES)
def test_consensus_is_stationary(beta, normalization):
    kw = dict(beta=beta, normalization="uniform" if normalization != "softmax" else "softmax")
    if normalization == "exp_beta":
        kw["time_scale"] = "exp_beta"
    scale = math.exp(beta) if normalization == "uniform" else 1.0
    pole = sphere(B, 1, D, seed=133)
    _assert_still(pole.expand(B, 6, D).contiguous(), Model(**kw), scale)
    _assert_still(pole, Model(**kw), scale)  # n = 1 never moves


@pytest.mark.parametrize("beta", [0.0, 0.5, 3.0, 40.0, 300.0])
@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_antipodal_pair_is_stationary(beta, normalization):
    x1 = sphere(B, 1, D, seed=134)
    x = torch.cat([x1, -x1], dim=1)
    scale = math.exp(beta) if normalization == "uniform" else 1.0
    _assert_still(x, Model(beta=beta, normalization=normalization), scale)


@pytest.mark.parametrize("n", [2, 3, 6])
def test_beta_zero_n_minus_one_at_pole_and_one_antipode_is_stationary(n):
    pole = sphere(B, 1, D, seed=135)
    x = torch.cat([pole.expand(B, n - 1, D), -pole], dim=1)
    for normalization in ("softmax", "uniform"):
        _assert_still(x, Model(beta=0.0, normalization=normalization))
    # (every token sees only ±pole, so the configuration is in fact stationary for every β)
    _assert_still(x, Model(beta=2.0))


def _simplex(d):
    """n = d + 1 unit vectors in R^d with pairwise inner products −1/d (regular simplex)."""
    n = d + 1
    centred = torch.eye(n, dtype=torch.float64) - 1.0 / n
    basis = torch.linalg.qr(centred)[0][:, :d]  # orthonormal basis of 1⊥ in R^n
    pts = centred @ basis
    return pts / pts.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("d", [2, 3, 5])
@pytest.mark.parametrize("beta", [0.0, 1.0, 8.0])
@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_regular_simplex_is_stationary(d, beta, normalization):
    x = _simplex(d)
    gram = x @ x.T
    assert torch.allclose(gram, (1 + 1 / d) * torch.eye(d + 1, dtype=torch.float64) - 1 / d, atol=1e-14)
    scale = math.exp(beta) if normalization == "uniform" else 1.0
    rot = orthogonal(d, seed=d)
    _assert_still((x @ rot.T)[None], Model(beta=beta, normalization=normalization), scale)


@pytest.mark.parametrize("n", [3, 5, 12])
@pytest.mark.parametrize("beta", [0.0, 2.0, 20.0])
@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_regular_polygon_is_stationary(n, beta, normalization):
    theta = 0.3 + 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    x = torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1)[None]
    scale = math.exp(beta) if normalization == "uniform" else 1.0
    _assert_still(x, Model(beta=beta, normalization=normalization), scale)
    # a perturbed polygon moves (the check can fail)
    y = x.clone()
    y[0, 0] = torch.tensor([math.cos(0.5), math.sin(0.5)], dtype=torch.float64)
    assert float(velocity(y, Model(beta=1.0, normalization=normalization)).abs().max()) > 1e-3


def test_sa_at_huge_beta_separated_points_do_not_move():
    x = _separated(B, 8, 3, seed=136, min_angle=0.4)
    v = velocity(x, Model(beta=1e4))
    # e^{−1e4 (1 − cos 0.4)} underflows to 0: only the self term remains, P⊥_{x_i} x_i = x_i(1 − |x_i|²) ~ u
    assert float(v.abs().max()) <= 1e-15


def test_random_configuration_is_not_stationary():
    """Control for the stationary tests: a generic configuration moves."""
    x = sphere(B, N, D, seed=137)
    assert float(velocity(x, Model(beta=1.0)).norm(dim=-1).min()) > 1e-3


# ---------------------------------------------------------------------------------------------------
# differentiability (time-dependent weights are the controls of §10 of the paper: they need gradients with
# respect to positions and weights)


@pytest.mark.parametrize("chunk", [None, 2])
def test_gradcheck_positions_and_weights(chunk):
    x = sphere(1, 4, 3, seed=138).requires_grad_(True)
    QK = gauss(3, 3, seed=53).requires_grad_(True)
    V = gauss(3, 3, seed=54).requires_grad_(True)

    def f(x, QK, V):
        return velocity(x, Model(beta=1.3, QK=QK, V=V), chunk_size=chunk)

    assert torch.autograd.gradcheck(f, (x, QK, V), eps=1e-6, atol=1e-7, rtol=1e-6)

    def g(x):
        return velocity(x, Model(beta=2.0, normalization="uniform"), chunk_size=chunk)

    assert torch.autograd.gradcheck(g, (x,), eps=1e-6, atol=1e-7, rtol=1e-6)


def test_float32_follows_input_dtype():
    x = sphere(B, N, D, seed=139)
    v32 = velocity(x.float(), Model(beta=2.0, QK=gauss(D, D, seed=55)))
    v64 = velocity(x, Model(beta=2.0, QK=gauss(D, D, seed=55)))
    assert v32.dtype == torch.float32
    assert torch.allclose(v32.double(), v64, atol=1e-5)  # float32: u ≈ 6e-8 times O(β·|QK|·n) growth


def test_reference_sanity():
    """The reference itself on a case solvable by hand: two points at angle θ, SA, Q = K = V = I.
    ẋ_1 = P⊥_{x_1}(A_12 x_2), A_12 = e^{β cos θ}/(e^β + e^{β cos θ}), |P⊥ x_2| = sin θ."""
    th, beta = 1.0, 2.0
    x = torch.tensor([[[1.0, 0.0], [math.cos(th), math.sin(th)]]], dtype=torch.float64)
    a12 = math.exp(beta * math.cos(th)) / (math.exp(beta) + math.exp(beta * math.cos(th)))
    speed = a12 * math.sin(th)
    expect = torch.tensor([[[0.0, speed], [speed * math.sin(th), -speed * math.cos(th)]]], dtype=torch.float64)
    assert torch.allclose(ref_field(x, {"beta": beta}), expect, atol=1e-15)
    assert torch.allclose(velocity(x, Model(beta=beta)), expect, atol=1e-15)


def test_all_variants_listed_are_distinct_models():
    """Guard against a typo making two variants identical (which would weaken the parametrised tests)."""
    x = sphere(B, N, D, seed=140)
    fields = {name: velocity(x, Model(**variant_kwargs(name))) for name in VARIANTS}
    for a, b in itertools.combinations(VARIANTS, 2):
        assert not torch.allclose(fields[a], fields[b]), (a, b)


@pytest.mark.parametrize("kw", [
    dict(beta=2.5),
    dict(beta="per-system"),
    dict(beta=1.5, normalization="uniform", time_scale="exp_beta"),
    dict(beta=900.0),  # above the margin: the row maximum, decided per block
])
def test_fused_lanes_give_the_bits_of_one_thread(kw, monkeypatch):
    """The fused path spreads its blocks of systems over lanes (one torch thread each, at least two blocks per
    lane, from a million scores on): with 2, 3 or 5 lanes every field equals, bit for bit, the one computed on
    one thread and the one computed with two intra-op threads; each lane is started once, and torch's thread
    setting is restored."""
    import tokensphere.field as field
    from tokensphere.runtime import lanes, torch_threads

    started = []
    inner = field.run_lanes

    def spy(k, fn):
        def counted():
            started.append(k)
            fn()
        inner(k, counted)

    monkeypatch.setattr(field, "run_lanes", spy)
    with lanes(4):  # below a million scores the blocks stay on one lane (a worker's wake-up would not pay)
        velocity(sphere(300, 16, 3, seed=310), Model(beta=1.0))
    assert started == [1]
    monkeypatch.setattr(field, "_LANES_MIN_SCORES", 0)  # these small inputs on lanes
    for shape in [(330, 32, 3), (200, 32, 32), (50, 64, 8)]:  # 6, 13 and 4 blocks (partial last blocks)
        x = sphere(*shape, seed=310)
        model = Model(**{**kw, "beta": gauss(shape[0], seed=311).abs() * 3}) if kw["beta"] == "per-system" \
            else Model(**kw)
        for project in (True, False):
            with torch_threads(1), lanes(1):
                one = velocity(x, model, project=project)
            with torch_threads(2), lanes(1):
                assert torch.equal(velocity(x, model, project=project), one)
            before = torch.get_num_threads()
            for k in (2, 3, 5):
                started.clear()
                with lanes(k):
                    assert torch.equal(velocity(x, model, project=project), one), (shape, k)
                blocks = -(-shape[0] // field.block_systems(shape[1], shape[2], 8))
                used = max(1, min(k, blocks // 2))  # at least two blocks per lane
                assert used >= 2 and started == [used] * used
                assert torch.get_num_threads() == before


def test_run_lanes_carries_modes_and_raises_worker_errors():
    """run_lanes: the caller's inference and grad modes hold in every lane; an exception in a worker reaches
    the caller after every lane has ended; the thread setting is restored either way."""
    import threading

    from tokensphere.runtime import run_lanes

    main = threading.get_ident()
    seen = []
    with torch.inference_mode():
        run_lanes(3, lambda: seen.append((torch.is_inference_mode_enabled(), torch.get_num_threads())))
    assert seen == [(True, 1)] * 3
    with torch.no_grad():
        run_lanes(2, lambda: seen.append(torch.is_grad_enabled()))
    assert seen[3:] == [False, False]
    before, ended = torch.get_num_threads(), []

    def fail_in_workers():
        if threading.get_ident() != main:
            raise ValueError("worker failed")
        ended.append(True)

    with pytest.raises(ValueError, match="worker failed"):
        run_lanes(3, fail_in_workers)
    assert ended == [True] and torch.get_num_threads() == before


@pytest.mark.parametrize("kw", [dict(beta=1.5), dict(beta=2.0, normalization="uniform", time_scale="exp_beta")])
def test_sdpa_runs_on_every_lane_core_with_the_same_bits(kw, monkeypatch):
    """Under the small-systems policy (one torch thread) the fused attention back end takes torch's threads
    over the lanes' cores for its large products: with 2 lanes it runs on 2 threads, gives the bits of one
    thread, and the caller's setting is restored."""
    import tokensphere.field as field
    from tokensphere.field import plan
    from tokensphere.runtime import lanes, torch_threads

    x = sphere(6, 256, 32, seed=330)
    model = Model(**kw, QK=torch.eye(32, dtype=torch.float64))  # a general model: the toy one is fused at n = 256
    assert plan(x, model).backend == "sdpa"
    threads = []
    inner = field._sdpa
    monkeypatch.setattr(field, "_sdpa", lambda *a: (threads.append(torch.get_num_threads()), inner(*a))[1])
    with torch_threads(1):
        with lanes(1):
            one = velocity(x, model)
        with lanes(2):
            two = velocity(x, model)
        assert torch.get_num_threads() == 1
    assert threads == [1, 2] and torch.equal(one, two)


def test_run_lanes_works_in_a_forked_child():
    """A process forked after the lanes' workers started has none of their threads: it makes its own pool
    (else its first run_lanes would wait forever)."""
    import multiprocessing as mp

    from tokensphere.runtime import run_lanes

    run_lanes(2, lambda: None)  # the parent's pool exists now
    child = mp.get_context("fork").Process(target=_lanes_in_child)
    child.start()
    child.join(60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0


def _lanes_in_child() -> None:
    from tokensphere.runtime import run_lanes

    seen = []
    run_lanes(2, lambda: seen.append(1))
    raise SystemExit(0 if seen == [1, 1] else 3)


def test_run_lanes_by_rows_covers_the_batch_once(monkeypatch):
    """run_lanes_by_rows: with k lanes the rows come in 2k contiguous slices that cover range(B) exactly once;
    one call on the whole batch below the size threshold, with one lane, or off the CPU."""
    import tokensphere.runtime as runtime
    from tokensphere.runtime import lanes, run_lanes_by_rows

    def seen(like, k):
        got = []
        with lanes(k):
            run_lanes_by_rows(like, lambda r: got.append((r.start, r.stop)))
        return sorted(got)

    x = torch.zeros(50, 4, 3)
    assert seen(x, 3) == [(0, 50)]  # 600 elements: below the threshold
    monkeypatch.setattr(runtime, "LANES_MIN_ELEMENTS", 0)
    got = seen(x, 3)
    assert len(got) == 6 and got[0][0] == 0 and got[-1][1] == 50
    assert all(a[1] == b[0] for a, b in zip(got, got[1:]))  # contiguous, no gap, no overlap
    assert seen(x, 1) == [(0, 50)] and seen(x[:11], 3) == [(0, 11)]  # one lane; fewer than 2 rows a slice
    assert seen(torch.empty(50, 4, 3, device="meta"), 3) == [(0, 50)]  # off the CPU: the device's own threads


def test_fused_blocks_on_one_lane_hold_a_system_per_thread(monkeypatch):
    """(6, 300, 16): the working set allows one system per block; on one lane with two torch threads a block
    holds two systems (a batched product splits by systems: one system would leave a thread idle), with the
    same field; the block a memory budget allows is never exceeded."""
    from tokensphere import field
    from tokensphere.runtime import lanes, torch_threads

    steps = []
    real = field._workspace
    monkeypatch.setattr(field, "_workspace", lambda step, *rest: steps.append(step) or real(step, *rest))
    x = sphere(6, 300, 16, seed=40)
    model = Model(beta=1.5)
    assert field.block_systems(300, 16, 8) == 1
    with torch_threads(1), lanes(1):
        one = velocity(x, model)
    with torch_threads(2), lanes(1):
        two = velocity(x, model)
    assert steps == [1, 2]
    torch.testing.assert_close(two, one, rtol=0, atol=1e-15)
    w = field.weights_at(model.to(x.dtype), x)
    with torch_threads(2), lanes(1):
        capped = field._toy_dense(x, w, block=1, project=True)
    assert steps[-1] == 1 and torch.equal(capped, one)


def test_fused_workspace_is_per_thread_and_reused_safely():
    """The fused path keeps its block buffers per thread: calls from two threads at once, and calls that
    alternate between shapes (last blocks of different sizes), give exactly the single-threaded fields."""
    import threading

    shapes = [(300, 16, 3), (70, 32, 32), (5, 64, 8)]  # several blocks, partial last blocks
    xs = [sphere(*s, seed=200 + k) for k, s in enumerate(shapes)]
    model = Model(beta=2.5)
    expected = [velocity(x, model) for x in xs]
    # independent truth for one of them: the dense general path with the projection
    from tokensphere.field import _general_dense, weights_at

    w = weights_at(model, xs[1])
    close(expected[1], tangent_project(xs[1], _general_dense(xs[1], w)), rtol=1e-12)
    results: dict[tuple[int, int], torch.Tensor] = {}

    errors = []

    def work(tid):
        try:
            for rep in range(4):
                for k in (rep % 3, (rep + 1) % 3, (rep + 2) % 3):
                    results[(tid, rep * 3 + k)] = v = velocity(xs[k], model)
                    if not torch.equal(v, expected[k]):
                        errors.append((tid, rep, k, float((v - expected[k]).abs().max())))
        except Exception as exc:  # an exception in a thread would otherwise only be printed
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 2 * 12
