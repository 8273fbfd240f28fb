"""Control and training: gradients of losses of x(T) with respect to β, Q(t), K(t), V(t) and the feed-forward
weights of (2.8), by backpropagation through the integrator and by the adjoint method, and the three seeded
training demonstrations.

Independent truth: five-point central finite differences in float64 (backprop is the exact derivative of the
discrete scheme, so they agree to the finite-difference error, ≲ 1e-9 relative here); the adjoint gradient
converges to the same limit as the step shrinks, at the order of the RK4 scheme (the difference falls by
≈ 2⁴ per halving); the rollout integrates the same ODE as the adaptive driver; closed forms of W₂² (sorted
matching in one dimension) and of MMD; the Legendre recursion against NumPy. The training tests state their
success factor from the task: the loss at least halves (transport, classification), falls ten-fold
(interpolation: exact interpolation is attainable, so the loss can be driven to ~0), and the held-out accuracy
is at least chance + 3 binomial standard deviations.
"""

import json
import math

import numpy as np
import pytest
import torch

from tokensphere import Model, Solver, simulate, tangent_project
from tokensphere.control import (
    Constant, Controls, ControlSchedule, Piecewise, Smooth, adjoint_gradients, legendre, rollout, step_grid,
)
from tokensphere.control.losses import matching_loss, mmd2, wasserstein2
from tokensphere.experiments.control import REQUIRED_REDUCTION, required_accuracy, run_demo
from tokensphere.feedforward import FeedForward

from helpers import assert_one_line_error, gauss, invoke, sphere

D, N, T, L, P = 3, 5, 2.0, 4, 4


def _controls(form, seed=0):
    g = torch.Generator().manual_seed(seed)

    def make(shape, scale=0.5):
        if form == "piecewise":
            return Piecewise(L, T, shape, generator=g, scale=scale)
        if form == "smooth":
            return Smooth(3, T, shape, generator=g, scale=scale)
        return Constant(shape, generator=g, scale=scale)

    parts = {"Q": make((D, D)), "K": make((D, D)), "V": make((D, D)), "w": make((D, P)), "a": make((P, D), 1.0),
             "b": make((P,))}
    return Controls(parts, beta=1.5, train_beta=True, activation="tanh")


def _problem(seed=1):
    return sphere(1, N, D, seed=seed), gauss(1, N, D, seed=seed + 1)


def _directional_check(loss, params, seed):
    """Relative error of autograd's directional derivative ⟨∇L, δ⟩ against the five-point central difference
    (8(L(θ+εδ) − L(θ−εδ)) − (L(θ+2εδ) − L(θ−2εδ)))/(12ε), error O(ε⁴) + O(u·|L|/ε), per parameter
    (params: {name: tensor}), δ a seeded Gaussian direction, ε = 1e-4 (both error terms ≲ 1e-12·|L|)."""
    for p in params.values():
        p.grad = None
    loss().backward()
    errors = {}
    eps = 1e-4
    for i, (name, p) in enumerate(params.items()):
        delta = gauss(*p.shape, seed=seed + i) if p.ndim else gauss(1, seed=seed + i)[0]
        vals = {}
        with torch.no_grad():
            for k in (-2, -1, 1, 2):
                p += k * eps * delta
                vals[k] = float(loss())
                p -= k * eps * delta
        fd = (8 * (vals[1] - vals[-1]) - (vals[2] - vals[-2])) / (12 * eps)
        ad = float((p.grad * delta).sum())
        errors[name] = abs(ad - fd) / max(abs(fd), 1e-12)
    return errors


@pytest.mark.parametrize("form", ["piecewise", "smooth", "constant"])
def test_backprop_gradients_match_finite_differences(form):
    c = _controls(form)
    x0, y = _problem()

    def loss():
        return ((rollout(x0, c.model(), T, 2 * L) - y) ** 2).sum()

    errors = _directional_check(loss, dict(c.named_parameters()), seed=100)
    assert len(errors) == 7  # β and the six parts Q, K, V, w, a, b
    assert max(errors.values()) <= 1e-6, errors


def test_model_built_from_parameters_keeps_the_graph():
    # Model validation and canonical shapes must not detach: gradients reach β, Q, K, V, w, a, b
    x0, y = _problem(seed=5)
    ps = {"beta": torch.tensor(0.8, dtype=torch.float64), "Q": gauss(2, D, seed=6), "K": gauss(2, D, seed=7),
          "V": gauss(D, D, seed=8), "w": gauss(D, P, seed=9), "a": gauss(P, D, seed=10), "b": gauss(P, seed=11)}
    for p in ps.values():
        p.requires_grad_(True)

    def loss():
        m = Model(beta=ps["beta"], Q=ps["Q"], K=ps["K"], V=ps["V"],
                  feedforward=FeedForward(ps["w"], ps["a"], ps["b"], activation="gelu"))
        return ((rollout(x0, m, 1.0, 6, method="rk3") - y) ** 2).sum()

    errors = _directional_check(loss, ps, seed=200)
    assert max(errors.values()) <= 1e-6, errors


def test_adjoint_converges_to_backprop_at_the_order_of_rk4():
    c = _controls("piecewise", seed=3)
    x0, y = _problem(seed=9)
    params = list(c.parameters())

    def lossf(x):
        return ((x - y) ** 2).sum()

    diffs, diffs_x0 = [], []
    for steps in (8, 16, 32):
        x0g = x0.clone().requires_grad_(True)
        for p in params:
            p.grad = None
        bp_loss = lossf(rollout(x0g, c.model(), T, steps))
        bp_loss.backward()
        bp = torch.cat([p.grad.reshape(-1) for p in params])
        loss, grads, gx0 = adjoint_gradients(x0, c.model, params, lossf, T, steps)
        assert float(loss) == float(bp_loss.detach())  # the same forward scheme
        ad = torch.cat([g.reshape(-1) for g in grads])
        diffs.append(float((ad - bp).norm() / bp.norm()))
        # dL/dx(0): only its tangential part is defined by the dynamics on the sphere (the discrete scheme
        # renormalises, the ambient adjoint does not), so compare P⊥_{x_i(0)} of both
        bx, ax = tangent_project(x0, x0g.grad), tangent_project(x0, gx0)
        diffs_x0.append(float((ax - bx).norm() / bx.norm()))
    for d in (diffs, diffs_x0):
        order = math.log2(d[1] / d[2])
        assert d[-1] < 1e-3 and 3.5 <= order <= 5.0, (diffs, diffs_x0)


def test_rollout_integrates_the_model_ode():
    m = Model(beta=2.0, QK=gauss(D, D, seed=1), V=gauss(D, D, seed=2, scale=0.5),
              feedforward=FeedForward(gauss(D, P, seed=3), gauss(P, D, seed=4), gauss(P, seed=5), activation="tanh"))
    # tanh, not ReLU: RK4's order needs a smooth field (ReLU's kinks lower it, measured ≈ 2.5)
    x0 = sphere(2, 6, D, seed=6)
    ref = simulate(x0, model=m, solver=Solver("dopri5", rtol=1e-12, atol=1e-13), t_max=1.0, save_at=[0.0, 1.0])
    errs = []
    for steps in (16, 32, 64):
        x = rollout(x0, m, 1.0, steps)
        assert float((x.norm(dim=-1) - 1).abs().max()) < 1e-14
        errs.append(float((x - ref.positions[-1]).abs().max()))
    # RK4 on the projected field with renormalisation keeps order 4: the error falls ≈ 16-fold per halving
    assert 3.5 <= math.log2(errs[1] / errs[2]) <= 4.6, errs


def test_piecewise_and_smooth_parametrisations():
    pw = Piecewise(4, 2.0, (2,), init=0.0)
    with torch.no_grad():
        pw.values.copy_(torch.arange(8, dtype=torch.float64).reshape(4, 2))
    t = torch.tensor([0.0, 0.49, 0.5, 1.999, 2.0], dtype=torch.float64)
    assert pw(t)[:, 0].tolist() == [0.0, 0.0, 2.0, 6.0, 6.0]  # layer k on [k/2, (k+1)/2); the last one closed at T
    assert pw.breakpoints(2.0) == [0.5, 1.0, 1.5]
    s = torch.linspace(-1, 1, 7, dtype=torch.float64)
    ref = np.stack([np.polynomial.legendre.legval(s.numpy(), np.eye(5)[k]) for k in range(5)], -1)
    assert np.allclose(legendre(s, 5).numpy(), ref, atol=1e-14)
    sm = Smooth(3, 2.0, (2,), init=[1.0, -1.0])
    assert torch.equal(sm(torch.tensor(0.7, dtype=torch.float64)), torch.tensor([1.0, -1.0], dtype=torch.float64))
    # per-system times (the adaptive driver's): one layer per system, canonical (B, H = 1, r, c)
    pv = Piecewise(4, 2.0, (3, 3), generator=torch.Generator().manual_seed(1))
    v = ControlSchedule({"V": pv}).matrices(torch.tensor([0.1, 1.2], dtype=torch.float64), 1, torch.float64,
                                             torch.device("cpu"))["v"]
    assert v.shape == (2, 1, 3, 3) and torch.equal(v[0, 0], pv.values[0]) and torch.equal(v[1, 0], pv.values[2])
    with pytest.raises(ValueError, match="multiple of the number of layers"):
        step_grid(2.0, 6, pw.breakpoints(2.0))
    with pytest.raises(ValueError, match="Q and K"):
        ControlSchedule({"Q": Constant((2, 2))})
    with pytest.raises(ValueError, match="w, a and b"):
        ControlSchedule({"w": Constant((2, 2))})
    with pytest.raises(ValueError, match="activation must be one of"):  # at construction, not at .model()
        Controls({"V": Constant((2, 2))}, activation="foo")


def test_losses_against_closed_forms():
    # one dimension: the optimal matching of equal-size uniform clouds is the sorted one
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 1, generator=g, dtype=torch.float64)
    y = torch.randn(9, 1, generator=g, dtype=torch.float64) + 0.5
    exact = float(((x.sort(0).values - y.sort(0).values) ** 2).mean())
    assert abs(float(wasserstein2(x, y)) - exact) < 1e-12
    z = sphere(1, 7, 3, seed=3)[0]
    assert float(wasserstein2(z, z[torch.randperm(7, generator=g)])) < 1e-14
    assert abs(float(mmd2(z, z))) < 1e-14
    one, other = z[:1], z[1:2]
    # single points: MMD² = 2 − 2 e^{−|x−y|²/(2s²)}
    s = 0.7
    sq = float((one - other).pow(2).sum())
    assert abs(float(mmd2(one, other, bandwidth=s)) - (2 - 2 * math.exp(-sq / (2 * s * s)))) < 1e-14
    assert abs(float(matching_loss(one, other)) - float((one - other).pow(2).sum())) < 1e-15
    with pytest.raises(ValueError, match="bandwidth"):
        mmd2(z, z, bandwidth=0.0)


@pytest.mark.parametrize("task", ["transport", "classify",
                                  pytest.param("interpolate", marks=pytest.mark.slow)])
def test_training_reduces_the_loss(task):
    demo = run_demo(task, seed=0)
    m = demo.metrics
    assert m["reduction"] >= REQUIRED_REDUCTION[task], m
    if task == "classify":
        assert m["test_accuracy"] >= required_accuracy(len(demo.labels)), m


def test_train_cli_writes_the_run_folder(tmp_path):
    out = tmp_path / "run"
    res = invoke("train", "interpolate", "--steps", 3, "--seed", 2, "--out", out)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["clouds.png", "loss.png", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["seed"] == 2 and len(summary["losses"]) == 4
    assert_one_line_error(invoke("train", "classify", "--time-form", "wavy", "--out", tmp_path / "x"), 2, "time_form")
    assert_one_line_error(invoke("train", "classify", "--out", out), 2, "exists")


def test_same_seed_same_training():
    a, b = run_demo("interpolate", seed=4, steps=3), run_demo("interpolate", seed=4, steps=3)
    assert a.losses == b.losses and torch.equal(a.after, b.after)
    c = run_demo("interpolate", seed=5, steps=3)
    assert c.losses[0] != a.losses[0]


@pytest.mark.parametrize("seed", [-1, 1.5, 2**64])
def test_run_demo_refuses_a_bad_seed_naming_it(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        run_demo("interpolate", seed=seed, steps=1)


def test_bad_inputs_of_the_control_api_name_the_parameter():
    with pytest.raises(ValueError, match=r"init must broadcast to shape \(2,\), got shape \(3,\)"):
        Constant((2,), init=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="init must broadcast"):
        Smooth(3, 1.0, (2,), init=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="shape must be a sequence of integers >= 1"):
        Piecewise(2, 1.0, (-1,))
    c = _controls("piecewise", seed=3)
    x0, y = _problem(seed=9)
    with pytest.raises(ValueError, match="x0 must hold finite coordinates"):
        rollout(torch.full_like(x0, float("nan")), c.model(), T, 8)
    with pytest.raises(ValueError, match="x0 must be a floating-point tensor of shape"):
        rollout(x0[0], c.model(), T, 8)
    with pytest.raises(ValueError, match="loss_fn must return a scalar tensor"):
        adjoint_gradients(x0, c.model, list(c.parameters()), lambda x: (x - y) ** 2, T, 8)


def test_gradient_check_and_matching_loss_refuse_bad_input():
    from tokensphere.experiments.control import gradient_check

    with pytest.raises(ValueError, match="at least two step counts"):
        gradient_check(steps=(8,))
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        gradient_check(n=0)
    with pytest.raises(ValueError, match="x and y must have the same shape"):
        matching_loss(torch.zeros(2, 4, 3), torch.zeros(3, 4, 3))


def test_losses_and_basis_validate_their_inputs():
    with pytest.raises(ValueError, match="degree"):
        legendre(torch.zeros(3, dtype=torch.float64), 0)
    x = torch.zeros(4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="one dtype"):
        wasserstein2(x, x.float())
    with pytest.raises(ValueError, match="one dtype"):
        mmd2(x, x.float())


def test_trainable_beta_with_usa_builds_its_model_without_a_warning():
    """The model's β check reads a trainable β detached: no torch warning on every Controls.model() call."""
    import warnings

    from tokensphere.control import Constant, Controls

    c = Controls({"V": Constant((2, 2), init=torch.eye(2))}, beta=1.0, train_beta=True, normalization="uniform")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = c.model()
    assert m.beta.requires_grad


def test_run_demo_follows_the_thread_policy_and_restores_the_setting(monkeypatch):
    """From Python too the demos run on the package's policy (one thread for their few hundred tokens), or on
    the count asked for, and leave torch's setting as they found it."""
    from tokensphere.experiments import control as demos

    seen: list[int] = []
    real = demos.DEMOS["interpolate"]

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setitem(demos.DEMOS, "interpolate", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_demo("interpolate", seed=0, steps=1)
        run_demo("interpolate", seed=0, steps=1, threads=2)
        assert seen == [1, 2]
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="threads"):
            run_demo("interpolate", seed=0, steps=1, threads=0)
    finally:
        torch.set_num_threads(before)
