"""Transformer blocks (2.8) in discrete time: each normalisation variant's block against an independent NumPy
step, the measured orders of Lie–Trotter (first) and Strang (second, exact sub-flows) splitting, the RMSNorm
ellipsoid's invariance, and pre-norm reproducing the post-norm directions to first order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tokensphere import Model
from tokensphere.feedforward import FeedForward
from tokensphere.layers import Block, block_field, block_flow, block_stack, block_step, directions
from tokensphere.norms import ellipsoid_defect, ellipsoid_retract, layer_norm, rms

from helpers import gauss, sphere  # noqa: E402

D, P = 3, 5
W, A, B_ = gauss(D, P, seed=1, scale=0.5), gauss(P, D, seed=2), gauss(P, seed=3, scale=0.3)
GAIN = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)


def _model(beta=2.0, ff=True):
    return Model(beta=beta, feedforward=FeedForward(W, A, B_, activation="tanh") if ff else None)


def _np_att(x, beta):
    s = beta * x @ x.T
    a = np.exp(s - s.max(1, keepdims=True))
    return (a / a.sum(1, keepdims=True)) @ x


def _np_ff(x):
    return np.tanh(x @ A.numpy().T + B_.numpy()) @ W.numpy().T


def _unit(v):
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _np_block(x, beta, h, norm, g=None):
    if norm == "post":
        y = _unit(x + h * _np_att(x, beta))
        return _unit(y + h * _np_ff(y))
    if norm == "pre":
        y = x + h * _np_att(_unit(x), beta)
        return y + h * _np_ff(_unit(y))
    if norm == "rms":
        def retract(z):
            u = z / g
            return g * u / np.sqrt((u ** 2).sum(1, keepdims=True) / len(g))
        y = retract(x + h * _np_att(x, beta))
        return retract(y + h * _np_ff(y))
    y = _unit(x + h * (_unit(_np_att(x, beta)) - x))  # ngpt
    return _unit(y + h * (_unit(_np_ff(y)) - y))


@pytest.mark.parametrize("norm", ["post", "pre", "rms", "ngpt"])
def test_one_block_against_numpy(norm):
    x = sphere(1, 6, D, seed=4)
    blk = Block(norm=norm, gain=GAIN if norm == "rms" else None)
    if norm == "rms":
        x = ellipsoid_retract(x, GAIN)
    got = block_step(x, _model(), 0.3, blk)[0].numpy()
    want = _np_block(x[0].numpy(), 2.0, 0.3, norm, GAIN.numpy())
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_norm_maps_by_hand():
    x = gauss(4, D, seed=5)
    xn = x.numpy()
    np.testing.assert_allclose(rms(x, GAIN, 1e-3).numpy(),
                               GAIN.numpy() * xn / np.sqrt((xn ** 2).mean(1, keepdims=True) + 1e-3), rtol=0, atol=1e-14)
    c = xn - xn.mean(1, keepdims=True)
    np.testing.assert_allclose(layer_norm(x, GAIN, GAIN, 0.0).numpy(),
                               GAIN.numpy() * c / c.std(1, keepdims=True) + GAIN.numpy(), rtol=0, atol=1e-14)


def _local_ratios(blk, hs=(0.1, 0.05, 0.025)):
    x = sphere(1, 5, D, seed=6)
    m = _model()
    if blk.norm == "rms":
        x = ellipsoid_retract(x, GAIN)
    err = np.array([float((block_step(x, m, h, blk) - block_flow(x, m, h, blk)[-1]).norm(dim=-1).max()) for h in hs])
    return np.log2(err[:-1] / err[1:])


def test_lie_trotter_is_first_order_and_strang_second():
    # local errors after one block: O(h^{p+1}) for a scheme of order p, so halving h divides them by 2^{p+1}
    lt = _local_ratios(Block())  # the literal layer (Euler sub-steps)
    assert abs(lt[-1] - 2.0) < 0.15, lt
    strang = _local_ratios(Block(splitting="strang", substeps="exact", rtol=1e-13), hs=(0.1, 0.05, 0.025))
    assert abs(strang[-1] - 3.0) < 0.2, strang


def test_lie_trotter_global_first_order_against_simulate_of_2_8():
    x = sphere(1, 5, D, seed=7)
    m = _model()
    ref = block_flow(x, m, 1.0, Block())[-1]  # simulate with dopri5 at rtol 1e-12
    e = [float((block_stack(x, m, L, 1.0) - ref).norm(dim=-1).max()) for L in (40, 80, 160)]
    r = np.log2(np.array(e[:-1]) / np.array(e[1:]))
    assert abs(r[-1] - 1.0) < 0.1, r


def test_rms_ellipsoid_is_invariant():
    y = ellipsoid_retract(sphere(2, 6, D, seed=8), GAIN)
    assert float(ellipsoid_defect(y, GAIN).max()) < 1e-15
    blk = Block(norm="rms", gain=GAIN)
    m = _model()
    f = block_field(y, m, blk)
    normal = y / GAIN ** 2
    assert float((normal * f).sum(-1).abs().max()) < 1e-14  # the field is tangent to E_g
    assert float(ellipsoid_defect(block_stack(y, m, 20, 2.0, blk), GAIN).max()) < 1e-14  # ε = 0: exactly on E_g
    flow = block_flow(y, m, 3.0, blk, save_at=4, rtol=1e-11)
    assert float(ellipsoid_defect(flow, GAIN).max()) < 1e-9  # dopri5 without retraction stays on E_g
    assert float(ellipsoid_defect(block_step(y, m, 0.1, Block(norm="rms", gain=GAIN, eps=1e-6)), GAIN).max()) > 1e-8


def test_pre_norm_reproduces_post_norm_directions_to_first_order():
    x = sphere(1, 6, D, seed=9)
    att = _model(ff=False)
    pre = Block(norm="pre")
    # attention only, from unit tokens: N(x + h F(x)) is the same point either way
    torch.testing.assert_close(directions(block_step(x, att, 0.2, pre)), block_step(x, att, 0.2), rtol=0, atol=1e-14)
    # two blocks with feed-forward: the directions differ by O(h²) (the stream's norm is 1 + O(h))
    m = _model()
    diff = [float((directions(block_stack(x, m, 2, 2 * h, pre)) - block_stack(x, m, 2, 2 * h)).norm(dim=-1).max())
            for h in (0.04, 0.02, 0.01)]
    r = np.log2(np.array(diff[:-1]) / np.array(diff[1:]))
    assert abs(r[-1] - 2.0) < 0.15, r


def test_block_options_validated():
    with pytest.raises(ValueError, match="norm"):
        Block(norm="post-ln")
    with pytest.raises(ValueError, match="splitting"):
        Block(splitting="yoshida")
    with pytest.raises(ValueError, match="gain"):
        Block(norm="post", gain=GAIN)
    with pytest.raises(ValueError, match="gain"):
        Block(norm="rms", gain=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="depth"):
        block_stack(sphere(1, 3, D, seed=0), _model(), 0, 1.0)


@pytest.mark.parametrize("norm", ["post", "pre", "rms", "ngpt"])
def test_model_norm_is_the_blocks_continuous_form(norm):
    gain = GAIN if norm == "rms" else None
    m = Model(beta=2.0, feedforward=FeedForward(W, A, B_, activation="tanh"), norm=norm,
              projection=norm in ("post", "ngpt"), norm_gain=gain)
    x = sphere(2, 6, D, seed=10)
    x = ellipsoid_retract(x, GAIN) if norm == "rms" else (1.7 * x if norm == "pre" else x)
    from tokensphere.field import velocity

    torch.testing.assert_close(velocity(x, m), block_field(x, _model(), Block(norm=norm, gain=gain)), rtol=0,
                               atol=1e-15)
    back = Model.from_spec(*m.to_spec())
    assert back.norm == norm
    torch.testing.assert_close(velocity(x, back), velocity(x, m), rtol=0, atol=0)


def test_simulate_runs_the_rms_form_on_its_ellipsoid():
    from tokensphere import simulate

    m = Model(beta=2.0, feedforward=FeedForward(W, A, B_, activation="tanh"), norm="rms", projection=False,
              norm_gain=GAIN)
    y0 = ellipsoid_retract(sphere(1, 6, D, seed=12), GAIN)
    run = simulate(y0, model=m, solver="dopri5", rtol=1e-11, atol=1e-13, t_max=2.0, save_at=3)
    assert float(ellipsoid_defect(run.positions, GAIN).max()) < 1e-9
    ref = block_flow(y0, _model(), 2.0, Block(norm="rms", gain=GAIN), save_at=3, rtol=1e-11)
    torch.testing.assert_close(run.positions, ref, rtol=0, atol=1e-8)


def test_model_norm_validated_and_cli(tmp_path):
    with pytest.raises(ValueError, match="norm"):
        Model(norm="post-ln")
    with pytest.raises(ValueError, match="projection=False"):
        Model(norm="pre")
    with pytest.raises(ValueError, match="projection=True"):
        Model(norm="ngpt", projection=False)
    with pytest.raises(ValueError, match="norm_gain"):
        Model(norm="rms", projection=False, norm_gain=[1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="norm_gain"):
        Model(norm_gain=[1.0, 1.0, 1.0])
    from helpers import assert_one_line_error, invoke

    from tokensphere.trajectory import Trajectory

    r = invoke("simulate", "--out", tmp_path / "rms", "--n", 5, "--norm", "rms", "--no-projection", "--norm-gain",
               "0.5,1,2", "--t-max", 0.5, "--save-at", 2)
    assert r.exit_code == 0, r.output
    run = Trajectory.load(tmp_path / "rms")
    assert run.model.norm == "rms" and float(ellipsoid_defect(run.positions, GAIN).max()) < 1e-7
    assert_one_line_error(invoke("simulate", "--out", tmp_path / "bad", "--n", 5, "--norm", "pre"), 2, "projection")


def test_variants_example_runs(tmp_path):
    import importlib.util
    from pathlib import Path

    import matplotlib.image

    path = Path(__file__).resolve().parent.parent / "examples" / "variants.py"
    spec = importlib.util.spec_from_file_location("variants_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "v.png"
    runs, res = mod.main(["--out", str(out), "--t-max", "2", "--n", "6", "--depth", "3", "--dt", "0.02"])
    assert matplotlib.image.imread(out).shape[0] > 100 and (tmp_path / "v_9_3.png").exists()
    assert [r.branch for r in runs] == ["midpoint", "z1", "z2"]


def test_the_model_norm_sets_the_block_when_none_is_given():
    """block_step/block_stack/block_flow default to a Block with the model's own norm (as documented), so a
    pre-norm or nGPT model runs without a Block and equals the explicit one."""
    x = sphere(2, 5, 3, seed=41)
    for norm in ("pre", "ngpt"):
        m = Model(beta=1.0, norm=norm, projection=norm != "pre")
        assert torch.equal(block_step(x, m, 0.1), block_step(x, m, 0.1, Block(norm=norm)))
        assert torch.equal(block_stack(x, m, 2, 0.2), block_stack(x, m, 2, 0.2, Block(norm=norm)))


def test_ngpt_feedforward_substep_without_a_feedforward_layer_is_the_identity():
    from tokensphere.layers import block_update

    x = sphere(1, 4, 3, seed=42)
    assert torch.equal(block_update(x, Model(norm="ngpt"), Block(norm="ngpt"), "feedforward", 0.1), x)


def test_norm_parameters_are_named_in_errors():
    x = sphere(1, 4, 3, seed=43)[0]
    with pytest.raises(ValueError, match=r"bias must have shape \(d,\) = \(3,\)"):
        layer_norm(x, bias=torch.zeros(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="gain must be a 1-D tensor"):
        Block(norm="rms", gain=[[1.0, 2.0, 3.0]])
