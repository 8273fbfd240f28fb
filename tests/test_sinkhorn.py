"""Sinkhorn (doubly stochastic) attention, Remark 3.5: marginals, softmax as one row normalisation, masks,
large β in the log domain, permutation equivariance, agreement with POT (an independent implementation), an
exact case (circulant kernels are already doubly stochastic), storage and errors."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch

from tokensphere import Model
from tokensphere.field import attention, plan, scores, velocity
from tokensphere.sinkhorn import sinkhorn, sinkhorn_log

from helpers import gauss, sphere  # noqa: E402


def _cap(B, n, d, spread, seed):
    """Points in a small cap around e_1 (angles ~ spread): β ⟨x_i, x_j⟩ varies by O(β spread²)."""
    x = torch.zeros(B, n, d, dtype=torch.float64)
    x[..., 0] = 1.0
    x = x + spread * gauss(B, n, d, seed=seed)
    return x / x.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("beta, spread", [(0.5, None), (2.0, None), (1e4, 0.01), (1e4, 0.005)])
def test_rows_and_columns_sum_to_one(beta, spread):
    x = sphere(3, 9, 3, seed=1) if spread is None else _cap(3, 9, 3, spread, seed=2)
    s = scores(x, Model(beta=beta))
    assert float(s.abs().max()) > 0.4 * beta  # the exponents are of size β: e^{s} itself would overflow at 1e4
    res = sinkhorn_log(s, iters=20000, tol=1e-11)
    a = res.log_attention.exp()
    assert res.converged and res.iterations > 0
    assert torch.isfinite(a).all() and (a > 0).all()
    roundoff = 50 * torch.finfo(torch.float64).eps * max(1.0, float(s.abs().max()))  # log-sum-exp of size-β terms
    assert float((a.sum(-1) - 1).abs().max()) < roundoff  # the last step is a row normalisation
    col = float((a.sum(-2) - 1).abs().max())
    assert col <= 1e-11 + roundoff and abs(col - res.error) < roundoff


def test_zero_iterations_is_softmax_and_a_doubly_stochastic_input_is_a_fixed_point():
    x = sphere(2, 7, 4, seed=3)
    s = scores(x, Model(beta=3.0))
    torch.testing.assert_close(sinkhorn(s, iters=0), torch.softmax(s, -1), rtol=0, atol=1e-15)
    m0 = Model(beta=3.0, normalization="sinkhorn", sinkhorn_iters=0)
    torch.testing.assert_close(velocity(x, m0), velocity(x, Model(beta=3.0)), rtol=0, atol=1e-14)
    a = sinkhorn(s, iters=5000, tol=1e-14)
    again = sinkhorn_log(torch.log(a), iters=5000, tol=1e-13)
    assert again.iterations <= 1
    torch.testing.assert_close(again.log_attention.exp(), a, rtol=0, atol=1e-12)


def test_masked_entries_stay_zero_and_marginals_hold_on_a_pattern_with_total_support():
    n = 8
    i = torch.arange(n)
    band = (i[:, None] - i[None, :]).abs() <= 1  # tridiagonal: contains the identity, so total support
    mask = torch.zeros(n, n, dtype=torch.float64).masked_fill(~band, -math.inf)
    x = sphere(2, n, 3, seed=5)
    model = Model(beta=2.0, normalization="sinkhorn", mask=mask, sinkhorn_iters=5000, sinkhorn_tol=1e-12)
    a = attention(x, model)
    assert (a[..., ~band] == 0).all()
    assert float((a.sum(-1) - 1).abs().max()) < 1e-13
    assert float((a.sum(-2) - 1).abs().max()) < 1e-11


def test_agrees_with_pot_sinkhorn():
    # POT: argmin <P, M> − reg·H(P) with P 1 = a, Pᵀ 1 = b, i.e. P = diag(u) e^{−M/reg} diag(v); with M = −s,
    # reg = 1 and a = b = 1 this is our doubly stochastic scaling of e^{s}.
    x = sphere(1, 10, 3, seed=7)
    s = scores(x, Model(beta=1.5))[0, 0]
    ones = np.ones(10)
    want = ot.sinkhorn(ones, ones, -s.numpy(), 1.0, method="sinkhorn_log", numItermax=100000, stopThr=1e-14)
    got = sinkhorn(s, iters=100000, tol=1e-14).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_circulant_kernel_is_already_doubly_stochastic():
    # a regular polygon on the circle: K_ij = e^{β cos(2π(i−j)/n)} is circulant, so softmax rows and columns
    # both sum to 1 and Sinkhorn attention equals softmax attention exactly (no iteration needed).
    n = 7
    th = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n + 0.3
    x = torch.stack([th.cos(), th.sin()], -1)[None]
    m = Model(beta=4.0, normalization="sinkhorn")
    torch.testing.assert_close(attention(x, m), attention(x, Model(beta=4.0)), rtol=0, atol=1e-14)
    assert sinkhorn_log(scores(x, m), iters=100, tol=1e-13).iterations == 0


def test_field_is_permutation_equivariant_and_tangent():
    x = sphere(2, 9, 3, seed=11)
    m = Model(beta=2.0, normalization="sinkhorn", sinkhorn_iters=2000, sinkhorn_tol=1e-13)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(0))
    f = velocity(x, m)
    torch.testing.assert_close(velocity(x[:, perm], m), f[:, perm], rtol=0, atol=1e-12)
    assert float((f * x).sum(-1).abs().max()) < 1e-14


def test_hand_computed_field():
    # one independent NumPy evaluation: alternate normalisations of e^{β X Xᵀ}, then P⊥(A X)
    x = sphere(1, 6, 3, seed=13)
    beta = 1.2
    xn = x[0].numpy()
    k = np.exp(beta * xn @ xn.T)
    k = k / k.sum(1, keepdims=True)
    for _ in range(3000):
        k = k / k.sum(0, keepdims=True)
        k = k / k.sum(1, keepdims=True)
    y = k @ xn
    want = y - (y * xn).sum(1, keepdims=True) * xn
    got = velocity(x, Model(beta=beta, normalization="sinkhorn", sinkhorn_iters=3000, sinkhorn_tol=0.0))[0]
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


def test_routed_to_the_dense_back_end_with_clear_errors(monkeypatch):
    x = sphere(1, 5, 3, seed=0)
    m = Model(beta=1.0, normalization="sinkhorn")
    assert plan(x, m).backend == "dense"
    with pytest.raises(ValueError, match="chunk_size"):
        velocity(x, m, chunk_size=2)
    import tokensphere.field as fieldmod

    monkeypatch.setattr(fieldmod, "SMALL_BYTES", 0)
    monkeypatch.setattr(fieldmod, "memory_budget", lambda device: 100)
    with pytest.raises(MemoryError, match="sinkhorn"):
        velocity(x, m)


def test_options_validated_and_stored():
    with pytest.raises(ValueError, match="sinkhorn_iters"):
        Model(normalization="sinkhorn", sinkhorn_iters=-1)
    with pytest.raises(ValueError, match="sinkhorn_tol"):
        Model(normalization="sinkhorn", sinkhorn_tol=2.0)
    with pytest.raises(ValueError, match="normalization"):
        Model(normalization="sinkhorns")
    m = Model(beta=2.0, normalization="sinkhorn", sinkhorn_iters=7, sinkhorn_tol=1e-5)
    back = Model.from_spec(*m.to_spec())
    assert (back.normalization, back.sinkhorn_iters, back.sinkhorn_tol) == ("sinkhorn", 7, 1e-5)
    x = sphere(1, 5, 3, seed=1)
    torch.testing.assert_close(velocity(x, back), velocity(x, m), rtol=0, atol=0)


def test_cli_stores_the_sinkhorn_options(tmp_path):
    from helpers import assert_one_line_error, invoke

    from tokensphere.trajectory import Trajectory

    r = invoke("simulate", "--out", tmp_path / "run", "--n", 6, "--normalization", "sinkhorn", "--sinkhorn-iters", 40,
               "--sinkhorn-tol", 1e-8, "--t-max", 0.5, "--save-at", 2)
    assert r.exit_code == 0, r.output
    m = Trajectory.load(tmp_path / "run").model
    assert (m.normalization, m.sinkhorn_iters, m.sinkhorn_tol) == ("sinkhorn", 40, 1e-8)
    bad = invoke("simulate", "--out", tmp_path / "bad", "--n", 6, "--normalization", "sinkhorn", "--sinkhorn-iters", -2)
    assert_one_line_error(bad, 2, "sinkhorn_iters")


def test_sinkhorn_refuses_nan_scores():
    s = torch.zeros(1, 3, 3, dtype=torch.float64)
    s[0, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        sinkhorn_log(s)


def test_float32_scaling_converges_at_the_default_tolerance():
    """float32 column sums carry ~1e-7 of round-off: the default tol 1e-9 is raised to 64 epsilons, so the
    scaling stops converged instead of running every iteration; float64 keeps the tolerance asked for."""
    g = torch.Generator().manual_seed(3)
    s64 = torch.randn(4, 32, 32, generator=g, dtype=torch.float64)
    r32 = sinkhorn_log(s64.float())
    assert r32.converged and r32.iterations < 100 and r32.tol == 64 * torch.finfo(torch.float32).eps
    a32 = r32.log_attention.double().exp()
    assert float((a32.sum(-2) - 1).abs().max()) <= 1e-5  # columns, checked in float64
    r64 = sinkhorn_log(s64)
    assert r64.converged and r64.tol == 1e-9 and r64.error <= 1e-9
    torch.testing.assert_close(a32, r64.log_attention.exp(), rtol=0, atol=1e-5)


def test_numpy_integer_iterations_are_accepted():
    s = torch.randn(8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert sinkhorn_log(s, np.int64(5)).iterations == sinkhorn_log(s, 5).iterations
