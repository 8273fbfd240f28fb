"""The feed-forward term of (2.8): ẋ_i = P⊥_{x_i}(Σ_j A_ij V x_j + w σ(a x_i + b)).

Independent truth: a hand-computed case (numbers worked out below), the paper's formula evaluated with plain
NumPy, an exact solution on the circle, tangency, dense = streaming, the to_spec/from_spec round trip, and
finite differences for the gradient in (w, a, b).
"""

import math

import numpy as np
import pytest
import torch

from tokensphere import Model, Solver, simulate, velocity
from tokensphere.feedforward import FeedForward, feedforward_term

from helpers import gauss, sphere


def _ff(d, p, seed, activation="relu", batch=None):
    lead = () if batch is None else (batch,)
    return FeedForward(gauss(*lead, d, p, seed=seed), gauss(*lead, p, d, seed=seed + 1),
                       gauss(*lead, p, seed=seed + 2), activation=activation)


def test_hand_computed_case():
    # x = (0.6, 0.8); a x + b = (0.6 + 0.1, −0.8 + 0.2) = (0.7, −0.6); relu → (0.7, 0);
    # w (0.7, 0) = (0.7·1, 0.7·3) = (0.7, 2.1); ⟨x, ·⟩ = 0.42 + 1.68 = 2.1; P⊥ = (0.7 − 1.26, 2.1 − 1.68)
    x = torch.tensor([[[0.6, 0.8]]], dtype=torch.float64)
    ff = FeedForward([[1.0, 2.0], [3.0, 4.0]], [[1.0, 0.0], [0.0, -1.0]], [0.1, 0.2])
    m = Model(beta=1.0, feedforward=ff)
    w = m.weights()
    assert torch.allclose(feedforward_term(x, w), torch.tensor([[[0.7, 2.1]]], dtype=torch.float64), atol=1e-15)
    # one token, V = I: the attention term P⊥_x x vanishes, so the velocity is the projected feed-forward term
    assert torch.allclose(velocity(x, m), torch.tensor([[[-0.56, 0.42]]], dtype=torch.float64), atol=1e-15)


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh"])
def test_field_is_attention_plus_projected_term(activation):
    B, n, d, p = 2, 6, 4, 5
    x = sphere(B, n, d, seed=3)
    kw = dict(beta=1.7, Q=gauss(3, d, seed=4), K=gauss(3, d, seed=5), V=gauss(d, d, seed=6))
    ff = _ff(d, p, seed=7, activation=activation)
    with_ff = velocity(x, Model(**kw, feedforward=ff))
    without = velocity(x, Model(**kw))
    # the paper's term with NumPy: w σ(a x_i + b), then P⊥_{x_i}
    sig = {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh,
           "gelu": lambda z: 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))}[activation]
    xn, wn, an, bn = x.numpy(), ff.w[0].numpy(), ff.a[0].numpy(), ff.b[0].numpy()
    term = sig(xn @ an.T + bn) @ wn.T
    term = term - (term * xn).sum(-1, keepdims=True) * xn
    assert np.allclose((with_ff - without).numpy(), term, rtol=0, atol=1e-13 * max(1.0, np.abs(term).max()))


def test_tangent_and_streaming_equals_dense():
    B, n, d, p = 3, 11, 3, 4
    x = sphere(B, n, d, seed=11)
    m = Model(beta=[0.5, 2.0, 9.0], QK=gauss(d, d, seed=12), V=gauss(d, d, seed=13), feedforward=_ff(d, p, seed=14))
    dense = velocity(x, m)
    assert float((dense * x).sum(-1).abs().max()) < 1e-13 * max(1.0, float(dense.abs().max()))
    for c in (1, 4, 11):
        assert torch.allclose(velocity(x, m, chunk_size=c), dense, rtol=0, atol=1e-13)


def test_per_system_weights_and_take():
    B, n, d, p = 3, 5, 3, 2
    x = sphere(B, n, d, seed=21)
    ff = _ff(d, p, seed=22, batch=B)
    m = Model(beta=1.0, feedforward=ff)
    v = velocity(x, m)
    for s in range(B):
        single = Model(beta=1.0, feedforward=FeedForward(ff.w[s], ff.a[s], ff.b[s]))
        assert torch.allclose(v[s:s + 1], velocity(x[s:s + 1], single), atol=1e-14)
    sub = m.take(torch.tensor([2, 0]))
    assert torch.allclose(velocity(x[[2, 0]], sub), v[[2, 0]], atol=1e-14)


def test_spec_round_trip_and_flags():
    ff = _ff(3, 4, seed=31, activation="gelu")
    m = Model(beta=2.0, V="repulsive", feedforward=ff)
    assert not m.is_sa_toy and Model(beta=2.0).is_sa_toy
    spec, arrays = m.to_spec()
    m2 = Model.from_spec(spec, {k: v.numpy() for k, v in arrays.items()})
    assert m2.feedforward.activation == "gelu"
    x = sphere(2, 7, 3, seed=32)
    assert torch.equal(velocity(x, m), velocity(x, m2))
    assert "FeedForward(d=3, p=4" in m.describe()["feedforward"]
    spec0, arrays0 = Model(beta=2.0).to_spec()
    assert spec0["feedforward"] is None and not any(k.startswith("feedforward/") for k in arrays0)


def test_exact_solution_on_the_circle():
    # n = 1, d = 2, a = 0, w = I, relu(b) = b = u: ẋ = P⊥_x u, i.e. φ' = −|u| sin φ for φ = θ − θ_u, whose solution
    # is tan(φ(t)/2) = tan(φ(0)/2) e^{−|u| t}
    u = torch.tensor([0.3, 0.4], dtype=torch.float64)
    ff = FeedForward(torch.eye(2, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64), u)
    th0 = 2.5
    x0 = torch.tensor([[[math.cos(th0), math.sin(th0)]]], dtype=torch.float64)
    ts = [0.0, 1.0, 3.0]
    traj = simulate(x0, model=Model(beta=1.0, feedforward=ff), solver=Solver("dopri5", rtol=1e-11, atol=1e-12),
                    t_max=3.0, save_at=ts)
    th_u = math.atan2(0.4, 0.3)
    for k, t in enumerate(ts):
        phi = 2 * math.atan(math.tan((th0 - th_u) / 2) * math.exp(-0.5 * t))
        expect = torch.tensor([math.cos(th_u + phi), math.sin(th_u + phi)], dtype=torch.float64)
        assert torch.allclose(traj.positions[k, 0, 0], expect, atol=1e-9)


def test_gradient_in_w_a_b_matches_finite_differences():
    d, p, n = 3, 4, 5
    x = sphere(1, n, d, seed=41)
    y = gauss(1, n, d, seed=42)
    params = [gauss(d, p, seed=43).requires_grad_(True), gauss(p, d, seed=44).requires_grad_(True),
              gauss(p, seed=45).requires_grad_(True)]

    def loss(w, a, b):
        return (velocity(x, Model(beta=1.3, feedforward=FeedForward(w, a, b, activation="tanh"))) * y).sum()

    loss(*params).backward()
    for i, prm in enumerate(params):
        delta = gauss(*prm.shape, seed=50 + i)
        eps = 1e-6
        with torch.no_grad():
            shifted = [q + (eps * delta if j == i else 0) for j, q in enumerate(params)]
            minus = [q - (eps * delta if j == i else 0) for j, q in enumerate(params)]
            fd = (loss(*shifted) - loss(*minus)) / (2 * eps)
        ad = (prm.grad * delta).sum()
        assert abs(float(ad - fd)) <= 1e-7 * max(1.0, abs(float(fd)))


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(w=np.ones((3, 4)), a=np.ones((3, 4))), "a must have shape"),
        (dict(w=np.ones((3, 4)), a=np.ones((4, 3)), b=np.ones(3)), "b must have shape"),
        (dict(w=np.ones(3), a=np.ones((4, 3))), "w must have shape"),
        (dict(w=np.ones((3, 4)), a=np.ones((4, 3)), activation="sigmoid"), "activation"),
        (dict(w=np.full((3, 4), np.nan), a=np.ones((4, 3))), "finite"),
        (dict(w=np.ones((2, 3, 4)), a=np.ones((3, 4, 3))), "batch size"),
    ],
)
def test_bad_input(kwargs, word):
    with pytest.raises(ValueError, match=word):
        FeedForward(**kwargs)


def test_bad_model_input():
    with pytest.raises(ValueError, match="feedforward"):
        Model(feedforward={"w": 1})
    with pytest.raises(ValueError, match="d = 2"):
        velocity(sphere(1, 3, 2, seed=0), Model(feedforward=_ff(3, 2, seed=1)))


def test_layerwise_feedforward_stacks_switch_at_layer_boundaries_and_are_stored(tmp_path):
    """A discrete Transformer whose feed-forward layer changes per layer: at a time in layer ℓ the field equals
    the field of a model holding layer ℓ's (w, a, b) as constants; the run is stored and restored exactly."""
    from tokensphere import Layerwise, Model, Trajectory, simulate, velocity

    g = torch.Generator().manual_seed(4)
    L, d, p = 3, 3, 5
    w = torch.randn(L, d, p, generator=g, dtype=torch.float64)
    a = torch.randn(L, p, d, generator=g, dtype=torch.float64)
    b = torch.randn(L, p, generator=g, dtype=torch.float64)
    model = Model(beta=2.0, feedforward=FeedForward(w[0], a[0], b[0], activation="tanh"),
                  schedule=Layerwise(0.5, w=w, a=a, b=b))
    x = torch.randn(2, 6, d, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True)
    for ell, t in enumerate((0.2, 0.7, 1.3)):
        const = Model(beta=2.0, feedforward=FeedForward(w[ell], a[ell], b[ell], activation="tanh"))
        torch.testing.assert_close(velocity(x, model, t), velocity(x, const), rtol=0, atol=1e-14)
    run = simulate(x, model=model, t_max=1.5, save_at=4)
    loaded = Trajectory.load(run.save(tmp_path / "r.zarr"))
    assert loaded == run
    torch.testing.assert_close(velocity(x, loaded.model, 1.3), velocity(x, model, 1.3), rtol=0, atol=0)


def test_layerwise_feedforward_stacks_need_a_feedforward_model():
    from tokensphere import Layerwise, Model

    with pytest.raises(ValueError, match="feedforward"):
        Model(schedule=Layerwise(1.0, w=torch.ones(2, 3, 4), a=torch.ones(2, 4, 3)))
