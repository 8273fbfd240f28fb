"""Property-based checks of the velocity kernel and energies (hypothesis; profile in conftest.py).

Random B ∈ [1, 4], n ∈ [1, 12], d ∈ [2, 6], β ∈ [0, 50], seed, both normalisations. Checked: shape, dtype,
finiteness, tangency, the speed bounds, streaming = dense, permutation equivariance, the energy rate sign.

Tolerances (float64, u = 1.1e-16): for SA with V = I the raw field F_i is a convex combination of unit vectors,
|F_i| ≤ 1, so tangency and streaming-vs-dense errors are a few u·n: 1e-13. USA fields are up to e^β ≈ 5e21
(β = 50), so USA errors are measured relative to e^β.
"""

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from tokensphere import Model, energy, energy_rate, velocity

shapes = st.tuples(st.integers(1, 4), st.integers(1, 12), st.integers(2, 6))
betas = st.floats(0.0, 50.0, allow_nan=False, allow_infinity=False)
seeds = st.integers(0, 2**31 - 1)
norms = st.sampled_from(["softmax", "uniform"])


def positions(shape, seed, clustered):
    """Unit vectors; `clustered` puts them within ~0.1 rad of one pole (the large-β regime where A is not ≈ I)."""
    g = torch.Generator().manual_seed(seed)
    B, n, d = shape
    x = torch.randn(B, n, d, generator=g, dtype=torch.float64)
    if clustered:
        x = torch.randn(B, 1, d, generator=g, dtype=torch.float64) + 0.1 * x / math.sqrt(d)
    return x / x.norm(dim=-1, keepdim=True)


def scale_of(normalization, beta):
    return math.exp(beta) if normalization == "uniform" else 1.0


@given(shapes, betas, seeds, norms, st.booleans())
def test_shape_finite_tangent(shape, beta, seed, normalization, clustered):
    x = positions(shape, seed, clustered)
    v = velocity(x, Model(beta=beta, normalization=normalization))
    assert v.shape == shape and v.dtype == torch.float64
    assert torch.isfinite(v).all()
    assert float((v * x).sum(-1).abs().max()) <= 1e-13 * scale_of(normalization, beta)


@given(shapes, betas, seeds, st.booleans())
def test_sa_speed_at_most_one(shape, beta, seed, clustered):
    """SA, V = I: |ẋ_i| = |P⊥ Σ_j A_ij x_j| ≤ |Σ_j A_ij x_j| ≤ Σ_j A_ij = 1; V = −I the same."""
    x = positions(shape, seed, clustered)
    for V in ("identity", "repulsive"):
        v = velocity(x, Model(beta=beta, V=V))
        assert float(v.norm(dim=-1).max()) <= 1 + 1e-14


@given(shapes, betas, seeds, st.booleans())
def test_usa_speed_bound(shape, beta, seed, clustered):
    """USA: |ẋ_i| ≤ (1/n) Σ_{j≠i} e^{β⟨x_i,x_j⟩} √(1 − ⟨x_i,x_j⟩²) ≤ (n−1)/n · e^β (self term projects to 0)."""
    x = positions(shape, seed, clustered)
    n = shape[1]
    v = velocity(x, Model(beta=beta, normalization="uniform"))
    s = (x @ x.transpose(1, 2)).clamp(-1, 1)
    terms = torch.exp(beta * s) * torch.sqrt(1 - s**2)
    bound = (terms.sum(-1) - torch.diagonal(terms, dim1=1, dim2=2)) / n
    assert (v.norm(dim=-1) <= bound * (1 + 1e-12) + 1e-13 * math.exp(beta)).all()


@given(shapes, betas, seeds, norms, st.integers(1, 14), st.booleans())
def test_streaming_equals_dense(shape, beta, seed, normalization, chunk, clustered):
    x = positions(shape, seed, clustered)
    m = Model(beta=beta, normalization=normalization)
    err = float((velocity(x, m, chunk_size=chunk) - velocity(x, m)).abs().max())
    assert err <= 1e-13 * scale_of(normalization, beta)


@given(shapes, st.floats(0.0, 5.0), seeds, norms, st.integers(1, 14), st.booleans())
def test_streaming_equals_dense_general_weights(shape, beta, seed, normalization, chunk, causal):
    """Random Q, K (k = 3), V and optionally a causal mask: both back ends agree, and the field is tangent."""
    x = positions(shape, seed, False)
    d = shape[2]
    g = torch.Generator().manual_seed(seed + 1)
    Q, K, V = (torch.randn(r, d, generator=g, dtype=torch.float64) / math.sqrt(d) for r in (3, 3, d))
    m = Model(beta=beta, normalization=normalization, Q=Q, K=K, V=V, causal=causal)
    dense = velocity(x, m)
    raw = float(velocity(x, m, project=False).abs().max())
    assert torch.isfinite(dense).all()
    assert float((velocity(x, m, chunk_size=chunk) - dense).abs().max()) <= 1e-13 * max(1.0, raw)
    assert float((dense * x).sum(-1).abs().max()) <= 1e-13 * max(1.0, raw)


@given(shapes, betas, seeds, norms, st.randoms(use_true_random=False))
def test_permutation_equivariance(shape, beta, seed, normalization, rnd):
    x = positions(shape, seed, False)
    perm = list(range(shape[1]))
    rnd.shuffle(perm)
    m = Model(beta=beta, normalization=normalization)
    err = float((velocity(x[:, perm], m) - velocity(x, m)[:, perm]).abs().max())
    assert err <= 1e-13 * scale_of(normalization, beta)


@given(shapes, st.floats(0.0, 20.0), seeds, norms, st.booleans())
def test_energy_is_non_decreasing_along_the_flow(shape, beta, seed, normalization, clustered):
    """(3.6), Lemma 3.7 of the paper: dE_β/dt ≥ 0 for V = I and ≤ 0 for V = −I; E_β ≤ e^β/(2β) (its value at
    consensus)."""
    x = positions(shape, seed, clustered)
    up = energy_rate(x, Model(beta=beta, normalization=normalization))
    down = energy_rate(x, Model(beta=beta, normalization=normalization, V="repulsive"))
    assert (up >= 0).all() and torch.equal(down, -up)
    if beta > 0:
        assert (energy(x, beta) <= math.exp(beta) / (2 * beta) * (1 + 1e-13 * max(1.0, beta))).all()
