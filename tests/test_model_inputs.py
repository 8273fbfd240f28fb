"""Model options that combine (heads with the centered term, schedules with named or partial weights, feed-forward
layers through take/at and the block sub-steps) and inputs that must be read as meant or refused clearly
(boolean masks and indices, complex arrays, integer-valued floats, integer dtypes, infinite eps).

The fields are checked against dense references written here from the formulas, in plain torch."""

import math

import numpy as np
import pytest
import torch

from tokensphere import FeedForward, Layerwise, Model, SplitSolver, Uniform, scores, simulate, velocity
from tokensphere.layers import block_step
from tokensphere.norms import layer_norm, rms

from helpers import gauss, sphere


def _project(x, f):
    return f - (x * f).sum(-1, keepdim=True) * x


def _softmax_attention(x, beta, qk):
    """A_ij = softmax_j(β xᵢᵀ QK xⱼ) for one (d, d) bilinear form. x: (B, n, d) → (B, n, n)."""
    return torch.softmax(beta * x @ qk @ x.transpose(1, 2), dim=-1)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("V", ["identity", "repulsive"])
def test_centered_term_with_heads_and_a_named_value(reduction, V):
    """(9.4) with heads (2.7): Σ_h Σ_j A^h_ij V (x_j − x_i), summed or averaged over h, for V = ±I given by name
    (each head subtracts its own V x_i: H of them in the sum, not one)."""
    x = sphere(2, 6, 3, seed=1)
    qk = gauss(2, 3, 3, seed=2)
    m = Model(beta=1.5, QK=qk, heads=2, V=V, centered=True, projection=False, head_reduction=reduction)
    sign = 1.0 if V == "identity" else -1.0
    ref = sum(sign * (_softmax_attention(x, 1.5, qk[h]) @ x - x) for h in range(2))
    ref = ref / 2 if reduction == "mean" else ref
    torch.testing.assert_close(velocity(x, m), ref, rtol=0, atol=1e-14)


def test_scheduled_value_replaces_the_repulsive_one():
    """A schedule's V replaces V = −I, sign included: layer 0 runs Σ_j A_ij V₀ x_j, and the frozen model stores
    and restores the same field."""
    x = sphere(1, 5, 3, seed=3)
    vs = gauss(2, 3, 3, seed=4)
    m = Model(beta=1.0, V="repulsive", schedule=Layerwise(1.0, V=vs))
    ref = _project(x, _softmax_attention(x, 1.0, torch.eye(3, dtype=torch.float64)) @ x @ vs[0].T)
    torch.testing.assert_close(velocity(x, m, 0.0), ref, rtol=0, atol=1e-14)
    frozen = m.at(0.0)
    spec, arrays = frozen.to_spec()
    torch.testing.assert_close(velocity(x, Model.from_spec(spec, arrays)), ref, rtol=0, atol=1e-14)


def test_a_schedule_with_only_one_of_q_and_k():
    """K alone pairs with the model's Q = I (scores xᵢᵀ K xⱼ); Q alone cannot pair with scores given as QK, and a Q
    whose row count differs from the model's K is refused with a message naming both."""
    x = sphere(1, 4, 3, seed=5)
    k = torch.diag(torch.tensor([5.0, 0.1, -3.0], dtype=torch.float64))
    got = scores(x, Model(beta=2.0, schedule=lambda t: {"K": k}))
    torch.testing.assert_close(got.reshape(1, 4, 4), 2.0 * x @ k @ x.transpose(1, 2), rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="QK"):
        velocity(x, Model(QK=torch.eye(3), schedule=lambda t: {"Q": torch.eye(3)}))
    with pytest.raises(ValueError, match="same number of rows"):
        velocity(x, Model(Q=torch.eye(3), K=torch.eye(3), schedule=lambda t: {"Q": torch.ones(2, 3)}))


def _ff_stacks():
    g = torch.Generator().manual_seed(6)
    return tuple(torch.randn(*s, generator=g, dtype=torch.float64) for s in ((3, 3, 4), (3, 4, 3), (3, 4)))


def test_take_and_at_keep_the_feed_forward_layer_the_weights_use():
    """After take(perm) every system keeps its own feed-forward layer in the block sub-steps, and at(t) holds the
    layer ℓ(t) of a per-layer schedule, not layer 0."""
    x = sphere(3, 4, 3, seed=7)
    per_system = FeedForward(gauss(3, 3, 5, seed=8), gauss(5, 3, seed=9), gauss(3, 5, seed=10))
    m = Model(beta=torch.tensor([1.0, 2.0, 3.0]), feedforward=per_system, norm="ngpt")
    perm = torch.tensor([2, 1, 0])
    torch.testing.assert_close(block_step(x[perm], m.take(perm), 0.1), block_step(x, m, 0.1)[perm],
                               rtol=0, atol=0)
    w, a, b = _ff_stacks()
    sched = Model(norm="ngpt", feedforward=FeedForward(w[0], a[0], b[0]), schedule=Layerwise(1.0, w=w, a=a, b=b))
    assert torch.equal(sched.at(2.5).feedforward.w[0], w[2])


def test_per_layer_feed_forward_through_the_split_solver():
    """The documented per-layer feed-forward schedule runs through the splitting, one layer per unit of time, and
    equals the same layers run one at a time as constant models."""
    w, a, b = _ff_stacks()
    x = sphere(1, 5, 3, seed=11)
    m = Model(feedforward=FeedForward(w[0], a[0], b[0]), schedule=Layerwise(1.0, w=w, a=a, b=b))
    got = simulate(x, model=m, t_max=3.0, solver=SplitSolver(dt=1.0), save_at=[0.0, 3.0]).final()
    y = x
    for layer in range(3):
        one = Model(feedforward=FeedForward(w[layer], a[layer], b[layer]))
        y = simulate(y, model=one, t_max=1.0, solver=SplitSolver(dt=1.0), save_at=[0.0, 1.0]).final()
    torch.testing.assert_close(got, y, rtol=0, atol=1e-14)
    assert set(Layerwise(1.0, w=w, a=a, b=b)(1.5)) == {"w", "a", "b"}
    assert torch.equal(Layerwise(1.0, w=w, a=a, b=b)(1.5)["w"][0], w[1])


@pytest.mark.parametrize("kind", ["tensor", "numpy", "list"])
def test_boolean_masks_follow_torchs_convention(kind):
    """True: may attend. The boolean mask equals the additive bias 0 / −inf it stands for."""
    allowed = torch.tril(torch.ones(4, 4, dtype=torch.bool))
    mask = {"tensor": allowed, "numpy": allowed.numpy(), "list": allowed.tolist()}[kind]
    bias = torch.zeros(4, 4, dtype=torch.float64).masked_fill(~allowed, -math.inf)
    x = sphere(2, 4, 3, seed=12)
    torch.testing.assert_close(velocity(x, Model(beta=2.0, mask=mask)), velocity(x, Model(beta=2.0, mask=bias)),
                               rtol=0, atol=0)
    ref = _project(x, torch.softmax(2.0 * x @ x.transpose(1, 2) + bias, dim=-1) @ x)
    torch.testing.assert_close(velocity(x, Model(beta=2.0, mask=mask)), ref, rtol=0, atol=1e-14)


def test_take_reads_boolean_masks_and_refuses_fractions():
    m = Model(beta=torch.tensor([1.0, 2.0, 3.0]))
    assert m.take(torch.tensor([True, False, True])).beta_tensor().tolist() == [1.0, 3.0]
    assert m.take(np.array([False, True, False])).beta_tensor().tolist() == [2.0]
    assert m.take(np.array([2, 0], dtype=np.int32)).beta_tensor().tolist() == [3.0, 1.0]
    with pytest.raises(ValueError, match="integers or a boolean mask"):
        m.take(torch.tensor([0.7]))


def test_complex_inputs_are_refused():
    with pytest.raises(ValueError, match="beta must be a real array"):
        Model(beta=np.array([1 + 5j]))
    with pytest.raises(ValueError, match="V must be a real array"):
        Model(V=(1 + 1j) * torch.eye(3))


def test_integer_valued_floats_are_stored_as_integers():
    """validate_int accepts 2.0 and NumPy integers: the stored value is the int it validated."""
    u = Uniform(batch=2.0, n=np.int64(5), d=3.0, seed=np.int32(1))
    assert (u.batch, u.n, u.d, u.seed) == (2, 5, 3, 1) and all(type(v) is int for v in (u.batch, u.n, u.d, u.seed))
    assert u.sample().shape == (2, 5, 3)
    m = Model(heads=2.0, QK=gauss(2, 3, 3, seed=13), sinkhorn_iters=np.int64(50), tie_seed=np.int64(3))
    assert (type(m.heads), type(m.sinkhorn_iters), type(m.tie_seed)) == (int, int, int)
    assert velocity(sphere(1, 4, 3, seed=14), m).shape == (1, 4, 3)


def test_integer_dtypes_are_refused():
    with pytest.raises(ValueError, match="floating-point"):
        Model(beta=1.0).to(torch.int64)


def test_norm_gain_length_and_eps_are_checked():
    x = sphere(1, 4, 3, seed=15) * 2.0
    with pytest.raises(ValueError, match=r"norm_gain must have shape \(d,\) = \(3,\)"):
        velocity(x, Model(norm="rms", projection=False, norm_gain=torch.ones(5)))
    for fn in (rms, layer_norm):
        with pytest.raises(ValueError, match="eps must be a finite number"):
            fn(x, eps=math.inf)
