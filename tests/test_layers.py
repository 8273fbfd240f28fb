"""Discrete layers (a stack of normalised attention layers) against a hand-written NumPy stack and against the
continuous flow (2.3): the distance at T = L h must fall at first order in h."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tokensphere import Model
from tokensphere.experiments.layers import layer_convergence, layer_stack
from tokensphere.schedule import Layerwise

from helpers import sphere  # noqa: E402


def _np_layers(x, beta, h, values):
    """x ← normalise(x + h Σ_j softmax_j(β⟨x_i, x_j⟩) V_k x_j), layer k using values[k]. x: (n, d)."""
    for V in values:
        s = beta * (x @ x.T)
        a = np.exp(s - s.max(axis=1, keepdims=True))
        a /= a.sum(axis=1, keepdims=True)
        y = x + h * (a @ (x @ V.T))
        x = y / np.linalg.norm(y, axis=1, keepdims=True)
    return x


def test_layer_stack_is_the_normalised_resnet_with_layerwise_weights():
    L, T, beta, n, d = 5, 2.0, 1.5, 7, 4
    rng = np.random.default_rng(3)
    values = rng.standard_normal((L, d, d)) / np.sqrt(d)
    x0 = sphere(1, n, d, seed=11)
    model = Model(beta=beta, schedule=Layerwise(T / L, V=torch.tensor(values)))
    got = layer_stack(x0, model, L, T)[0].numpy()
    want = _np_layers(x0[0].numpy(), beta, T / L, values)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_layers_converge_to_the_flow_at_first_order():
    res = layer_convergence((32, 64, 128, 256), n=12, d=3, batch=2, beta=2.0, t_max=3.0, seed=1)
    d = np.array(res.distances)
    assert np.all(np.diff(d) < 0)
    local = np.log2(d[:-1] / d[1:])  # halving h divides the error by 2^order
    assert abs(local[-1] - 1.0) < 0.05, local
    assert 0.85 < res.order < 1.1, res.order


def test_layer_convergence_rejects_bad_depths():
    with pytest.raises(ValueError, match="depths"):
        layer_convergence((16,))
    with pytest.raises(ValueError, match="depth"):
        layer_stack(sphere(1, 3, 2, seed=0), Model(beta=1.0), 0, 1.0)


def test_splitting_orders_need_two_steps_and_two_depths():
    """An order is a slope: one point gives none (np.polyfit would still return a made-up number)."""
    from tokensphere.experiments.layers import splitting_orders

    with pytest.raises(ValueError, match="depths must hold at least two distinct depths"):
        splitting_orders(depths=(2,))
    with pytest.raises(ValueError, match="steps must hold at least two"):
        splitting_orders(steps=(0.1,))
    with pytest.raises(ValueError, match="steps must be"):
        splitting_orders(steps=(0.1, -0.05))
