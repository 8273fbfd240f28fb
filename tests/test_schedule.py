"""The schedule protocol, canonical weights and model specs.

Truths used: exact rational layer boundaries (fractions), the field of a constant model built from the slice
a system should see, direct draws of the ensemble from its seed keys, and exact round trips of stored specs.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from tokensphere import Layerwise, Model, velocity
from tokensphere.ensembles import Ensemble, RedrawSchedule
from tokensphere.model import UnrestoredSchedule
from tokensphere.schedule import CallableSchedule, layer_breakpoints, layer_index

from helpers import gauss, sphere

B, N, D = 5, 6, 3


def test_layer_index_is_exact_at_float_boundaries():
    tau = 0.1  # not representable: k * 0.1 and t / 0.1 round differently
    ks = np.arange(0, 200)
    bounds = torch.tensor([k * tau for k in ks], dtype=torch.float64)
    assert torch.equal(layer_index(bounds, tau), torch.as_tensor(ks))
    below = torch.nextafter(bounds[1:], torch.zeros_like(bounds[1:]))
    assert torch.equal(layer_index(below, tau), torch.as_tensor(ks[:-1]))
    # against exact rational arithmetic on random times
    t = torch.rand(500, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 20
    exact = [max(k for k in range(0, 202) if k == 0 or Fraction(k * tau) <= Fraction(float(v))) for v in t]
    assert layer_index(t, tau).tolist() == exact
    assert layer_index(t, tau, layers=3).max() == 2 and layer_index(-1.0, tau) == 0


def test_layer_breakpoints():
    assert layer_breakpoints(0.5, 2.0) == [0.5, 1.0, 1.5]
    assert layer_breakpoints(0.5, 2.0, t0=1.0) == [1.5]
    assert layer_breakpoints(0.5, 10.0, layers=3) == [0.5, 1.0]
    assert Layerwise(1.0, V=torch.zeros(4, D, D)).breakpoints(10.0, t0=1.5) == [2.0, 3.0]


def _stack(L: int, seed: int) -> torch.Tensor:
    return torch.eye(D, dtype=torch.float64) + 0.4 * gauss(L, D, D, seed=seed)


@pytest.mark.parametrize("per_system", [False, True])
def test_layerwise_per_system_times_match_constant_models(per_system):
    """One call with per-system times equals, system by system, the constant model of that system's layer."""
    L = 4
    vs = _stack(L, 1) if not per_system else torch.stack([_stack(B, 10 + ell) for ell in range(L)])  # (L, B, d, d)
    qk = gauss(L, D, D, seed=2)
    beta = torch.linspace(0.5, 3.0, B, dtype=torch.float64)
    model = Model(beta=beta, schedule=Layerwise(0.5, V=vs, QK=qk))
    x = sphere(B, N, D, seed=3)
    t = torch.tensor([0.0, 0.49, 0.5, 1.2, 7.0], dtype=torch.float64)
    got = velocity(x, model, t)
    for b in range(B):
        ell = min(int(Fraction(float(t[b])) / Fraction(0.5)), L - 1)
        v = vs[ell] if not per_system else vs[ell, b]
        ref = velocity(x[b : b + 1], Model(beta=float(beta[b]), V=v, QK=qk[ell]))
        assert torch.allclose(got[b : b + 1], ref, rtol=1e-13, atol=1e-14)
    # restriction: a sub-model at the same times gives the same rows
    idx = torch.tensor([4, 1, 2])
    assert torch.allclose(velocity(x[idx], model.take(idx), t[idx]), got[idx], rtol=1e-13, atol=1e-14)


def test_callable_schedule_per_system_times():
    fn = lambda t: {"V": (1.0 + t) * torch.eye(D, dtype=torch.float64)}  # noqa: E731
    model = Model(beta=1.0, schedule=fn)
    assert isinstance(model.schedule, CallableSchedule)
    x = sphere(3, N, D, seed=4)
    t = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    got = velocity(x, model, t, project=False)
    base = velocity(x, Model(beta=1.0), project=False)
    scale = (1.0 + t).view(-1, 1, 1)
    assert torch.allclose(got, scale * base, rtol=1e-13, atol=1e-14)


def test_take_does_not_revalidate(monkeypatch):
    """Restricting a model is tensor indexing: __post_init__ (the validation) does not run again."""
    model = Model(beta=torch.linspace(1, 2, B, dtype=torch.float64), QK=gauss(B, D, D, seed=5),
                  mask=torch.zeros(N, N, dtype=torch.float64), schedule=Layerwise(1.0, V=_stack(3, 6)))
    calls = []
    original = Model.__post_init__
    monkeypatch.setattr(Model, "__post_init__", lambda self: (calls.append(1), original(self)))
    sub = model.take(torch.tensor([3, 0]))
    x = sphere(2, N, D, seed=7)
    velocity(x, sub, torch.tensor([0.5, 1.5], dtype=torch.float64))
    assert calls == []
    assert torch.equal(sub.beta_tensor(), model.beta_tensor()[[3, 0]])


def test_redraw_schedule_draws_each_matrix_once_per_system_and_layer():
    """A small sweep unit integrated adaptively (systems at their own times, the batch shrinking as systems
    finish) draws each (system, layer) once; the draws equal the ensemble's draws from the seed keys."""
    import tokensphere as ts

    ens = Ensemble(score="goe", value="psd", share="independent", redraw=1.0)
    Bs = 6
    sched = RedrawSchedule(ens, D, seed=3, beta_index=[0, 0, 0, 1, 1, 1], system=list(range(Bs)))
    beta = torch.tensor([0.5, 0.5, 0.5, 4.0, 4.0, 4.0], dtype=torch.float64)
    model = Model(beta=beta, schedule=sched)
    traj = ts.simulate(ts.Uniform(batch=Bs, n=N, d=D, seed=1), model=model, t_max=3.0, save_at=4, rtol=1e-8,
                       atol=1e-10)
    assert bool(torch.isfinite(traj.positions).all())
    assert sched.draws == Bs * 3  # layers 0, 1, 2 for every system; t = 3 = t_max ends the run (no layer 3)
    # the matrices of layer 1 are the ensemble's draws for those keys
    keys = ens.keys(3, D, [0, 0, 0, 1, 1, 1], list(range(Bs)), layer=1)
    qk, v = ens.draw(D, keys)
    got = sched.matrices(torch.full((Bs,), 1.5, dtype=torch.float64), 1, torch.float64, torch.device("cpu"))
    assert torch.equal(got["qk"][:, 0], qk) and torch.equal(got["v"][:, 0], v)
    shared = RedrawSchedule(Ensemble(score="goe", value="identity", share="shared", redraw=1.0), D, 3, [0] * Bs,
                            list(range(Bs)))
    shared.matrices(torch.tensor([0.2, 0.4, 1.1, 2.5, 2.6, 0.1], dtype=torch.float64), 1, torch.float64,
                    torch.device("cpu"))
    assert shared.draws == 3  # one draw per layer for the whole batch


def _models():
    g = torch.Generator().manual_seed(8)
    mask = torch.zeros(B, N, N, dtype=torch.float64)
    mask[:, 0, 1] = -math.inf
    yield Model(beta=torch.linspace(0.5, 2, B, dtype=torch.float64), Q=gauss(2, D, D, seed=9),
                K=gauss(2, D, D, seed=10), V=gauss(2, D, D, seed=11), heads=2, mask=mask, normalization="uniform",
                uniform_count="attended")
    yield Model(beta=2.0, V="repulsive", causal=True)
    yield Model(beta=torch.linspace(0.5, 2, B, dtype=torch.float64),
                schedule=Layerwise(0.7, V=_stack(3, 12), QK=torch.randn(3, D, D, generator=g, dtype=torch.float64)))
    yield Model(beta=1.0, schedule=RedrawSchedule(Ensemble(score="ginibre_product", value="plus_score", redraw=0.5),
                                                  D, 4, [0] * B, list(range(B))))


@pytest.mark.parametrize("model", list(_models()), ids=["general", "repulsive-causal", "layerwise", "redraw"])
def test_model_spec_round_trip(model):
    """to_spec → JSON → from_spec rebuilds a model with the same field at every time, also restricted."""
    import json

    spec, arrays = model.to_spec()
    back = Model.from_spec(json.loads(json.dumps(spec)), {k: v.numpy() for k, v in arrays.items()})
    x = sphere(B, N, D, seed=13)
    for t in (0.0, 0.69, 0.7, 1.3, 5.0):
        assert torch.equal(velocity(x, back, t), velocity(x, model, t))
    idx = torch.tensor([2, 0])
    sub = model.take(idx)
    spec, arrays = sub.to_spec()
    back = Model.from_spec(spec, arrays)
    tt = torch.tensor([0.2, 1.4], dtype=torch.float64)
    assert torch.equal(velocity(x[idx], back, tt), velocity(x[idx], sub, tt))


def test_a_python_function_schedule_is_not_silently_dropped():
    model = Model(beta=1.0, schedule=lambda t: {"V": torch.eye(D, dtype=torch.float64)})
    spec, arrays = model.to_spec()
    back = Model.from_spec(spec, arrays)
    assert isinstance(back.schedule, UnrestoredSchedule)
    with pytest.raises(ValueError, match="cannot be stored"):
        velocity(sphere(1, N, D, seed=1), back, 0.5)


def test_weights_are_cached_per_dtype():
    model = Model(beta=2.0, QK=gauss(D, D, seed=14))
    assert model.weights(torch.float32) is model.weights(torch.float32)
    assert model.weights(torch.float32).qk.dtype == torch.float32
    assert model.weights().qk.dtype == torch.float64
