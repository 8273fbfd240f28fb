"""Model: validation of every parameter at construction and at call time, and the small spec methods.

Every invalid input must raise ValueError with a message that names the parameter (STYLE.md, "Errors").
Numerical checks of the field itself live in test_field.py.
"""

import dataclasses
import json
import math
import re

import pytest
import torch

from tokensphere import Layerwise, Model, velocity
from tokensphere.validate import validate_choice, validate_int, validate_real, validate_unit_norm

D = 3
EYE = torch.eye(D, dtype=torch.float64)
ONES = lambda *s: torch.ones(*s, dtype=torch.float64)  # noqa: E731


def _mask_with_dead_row():
    m = torch.zeros(4, 4, dtype=torch.float64)
    m[2] = -math.inf  # token 2 attends to nobody
    return m


def _mask_with(value):
    m = torch.zeros(4, 4, dtype=torch.float64)
    m[1, 3] = value
    return m


# (keyword arguments of Model, word the ValueError message must contain)
BAD_MODELS = [
    ({"beta": -1.0}, "beta"),
    ({"beta": -1e-300}, "beta"),
    ({"beta": float("nan")}, "beta"),
    ({"beta": float("inf")}, "beta"),
    ({"beta": [1.0, float("nan")]}, "beta"),
    ({"beta": [0.5, -2.0]}, "beta"),
    ({"beta": [[1.0, 2.0]]}, "beta"),
    ({"beta": []}, "beta"),
    ({"beta": "hot"}, "beta"),
    ({"normalization": "sinkhorn-knopp"}, "normalization"),
    ({"normalization": "SA"}, "normalization"),
    ({"heads": 0}, "heads"),
    ({"heads": -2}, "heads"),
    ({"heads": 1.5}, "heads"),
    ({"heads": 2}, "heads"),  # H > 1 needs per-head Q, K
    ({"head_reduction": "max"}, "head_reduction"),
    ({"uniform_count": "i"}, "uniform_count"),
    ({"time_scale": "log"}, "time_scale"),
    ({"causal": 1}, "causal"),
    ({"projection": "yes"}, "projection"),
    ({"schedule": 3}, "schedule"),
    ({"Q": EYE}, "K"),  # Q without K
    ({"K": EYE}, "Q"),  # K without Q
    ({"Q": EYE, "K": EYE, "QK": EYE}, "QK"),
    ({"K": EYE, "QK": EYE}, "QK"),
    ({"QK": ONES(3, 2)}, "QK"),
    ({"QK": ONES(2, 3, 2)}, "QK"),
    ({"V": ONES(3, 2)}, "V"),
    ({"V": ONES(2, 3, 4)}, "V"),
    ({"V": "attractive"}, "V"),
    ({"Q": ONES(2, 3), "K": ONES(3, 3)}, "Q and K"),
    ({"Q": ONES(2, 3), "K": ONES(2, 4)}, "Q and K"),
    ({"Q": ONES(5), "K": ONES(5)}, "Q"),
    ({"Q": torch.full((3, 3), math.nan, dtype=torch.float64), "K": EYE}, "Q"),
    ({"Q": EYE, "K": torch.full((3, 3), math.inf, dtype=torch.float64)}, "K"),
    ({"QK": torch.full((3, 3), math.nan, dtype=torch.float64)}, "QK"),
    ({"V": torch.full((3, 3), -math.inf, dtype=torch.float64)}, "V"),
    # per-head shapes: H = 2 but 3 matrices given, or a single matrix where a stack is needed
    ({"heads": 2, "Q": ONES(3, 2, 3), "K": ONES(3, 2, 3)}, "Q"),
    ({"heads": 2, "Q": ONES(2, 3), "K": ONES(2, 3)}, "Q"),
    ({"heads": 2, "Q": ONES(2, 2, 3), "K": ONES(2, 2, 3), "V": ONES(3, 3, 3)}, "V"),
    ({"heads": 2, "QK": ONES(3, 3, 3)}, "QK"),
    ({"heads": 2, "Q": ONES(2, 2, 3), "K": ONES(2, 3, 3)}, "Q and K"),
    # masks
    ({"mask": _mask_with_dead_row()}, "mask"),
    ({"mask": _mask_with(math.nan)}, "mask"),
    ({"mask": _mask_with(math.inf)}, "mask"),
    ({"mask": ONES(4)}, "mask"),
    ({"mask": ONES(4, 5)}, "mask"),
    ({"mask": ONES(1, 1, 1, 4, 4)}, "mask"),
    # per-system batch sizes disagree (B = 2 for beta, B = 3 for the matrices)
    ({"beta": [1.0, 2.0], "Q": ONES(3, 3, 3), "K": ONES(3, 3, 3)}, "batch size"),
    ({"beta": [1.0, 2.0], "mask": torch.zeros(3, 4, 4, dtype=torch.float64)}, "batch size"),
    ({"V": ONES(2, 3, 3), "QK": ONES(4, 3, 3)}, "batch size"),
    # USA overflows e^beta in original time (float64 overflow of e^β beyond β ≈ 709)
    ({"normalization": "uniform", "beta": 700.5}, "beta"),
    ({"normalization": "uniform", "beta": [1.0, 1e3]}, "beta"),
    ({"normalization": "uniform", "beta": 1e4, "time_scale": "original"}, "exp_beta"),
    # exp_beta time is a USA notion
    ({"normalization": "softmax", "time_scale": "exp_beta"}, "time_scale"),
    ({"beta": 1e4, "time_scale": "exp_beta"}, "time_scale"),
]


@pytest.mark.parametrize("kwargs, word", BAD_MODELS, ids=[f"{i}-{w}" for i, (_, w) in enumerate(BAD_MODELS)])
def test_bad_model_raises_naming_the_parameter(kwargs, word):
    with pytest.raises(ValueError, match=re.escape(word)):
        Model(**kwargs)


def _x(B=2, n=4, d=D, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, n, d, generator=g, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


# mismatches that only the positions reveal: (model kwargs, x, call kwargs, word)
BAD_CALLS = [
    ({"Q": ONES(2, 4), "K": ONES(2, 4)}, _x(), {}, "Q"),
    ({"QK": torch.eye(4, dtype=torch.float64)}, _x(), {}, "QK"),
    ({"V": torch.eye(4, dtype=torch.float64)}, _x(), {}, "V"),
    ({"heads": 2, "Q": ONES(2, 1, 5), "K": ONES(2, 1, 5)}, _x(), {}, "Q"),
    ({"mask": torch.zeros(5, 5, dtype=torch.float64)}, _x(n=4), {}, "mask"),
    ({"mask": torch.zeros(5, 5, dtype=torch.float64)}, _x(n=4), {"chunk_size": 2}, "mask"),
    ({"beta": [1.0, 2.0, 3.0]}, _x(B=2), {}, "B ="),
    ({"QK": ONES(3, 3, 3)}, _x(B=2), {}, "B ="),
    ({"mask": torch.zeros(3, 4, 4, dtype=torch.float64)}, _x(B=2), {}, "B ="),
    ({}, _x()[0], {}, "x"),  # (n, d) instead of (B, n, d)
    ({}, _x()[None], {}, "x"),
    ({}, torch.ones(2, 4, 3, dtype=torch.int64), {}, "x"),
    ({}, _x(), {"chunk_size": 0}, "chunk_size"),
    ({"normalization": "uniform"}, _x(), {"chunk_size": -3}, "chunk_size"),
]


@pytest.mark.parametrize("kwargs, x, call, word", BAD_CALLS, ids=[f"{i}-{w}" for i, (*_, w) in enumerate(BAD_CALLS)])
def test_call_time_mismatch_raises_from_velocity(kwargs, x, call, word):
    model = Model(**kwargs)  # valid on its own
    with pytest.raises(ValueError, match=re.escape(word)):
        velocity(x, model, **call)


def test_causal_plus_mask_leaving_a_row_empty_is_refused():
    mask = torch.zeros(4, 4, dtype=torch.float64)
    mask[0, 0] = -math.inf  # fine alone (row 0 keeps columns 1..3) but causal removes those
    with pytest.raises(ValueError, match="mask"):
        Model(mask=mask, causal=True)


# ---------------------------------------------------------------------------------------------------
# accepted inputs


def test_usa_exp_beta_accepts_huge_beta():
    m = Model(normalization="uniform", beta=1e4, time_scale="exp_beta")
    assert float(m.beta_tensor()) == 1e4


def test_usa_original_time_limit_is_inclusive_at_700():
    Model(normalization="uniform", beta=700.0)  # e^700 ≈ 1e304 < max double: allowed
    Model(normalization="softmax", beta=1e6)  # SA has no such limit


def test_usa_limit_per_dtype_from_the_largest_finite_value():
    """⌊ln(max)⌋ − 9 for each floating dtype: 700 for float64 (the constructor's check), 79 for float32; a
    float32 β above it is refused already by the constructor, a float64 one when float32 weights are asked for."""
    from tokensphere.model import USA_ORIGINAL_TIME_MAX_BETA, usa_max_beta

    assert usa_max_beta(torch.float64) == USA_ORIGINAL_TIME_MAX_BETA == 700.0
    for dt in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        lim = usa_max_beta(dt)
        assert lim + 9 <= math.log(torch.finfo(dt).max) < lim + 10
    with pytest.raises(ValueError, match="beta must be <= 79 .* float32"):
        Model(normalization="uniform", beta=torch.tensor([1.0, 90.0], dtype=torch.float32))
    m = Model(normalization="uniform", beta=90.0)  # float64: fine
    with pytest.raises(ValueError, match="beta must be <= 79 .* float32"):
        m.to(torch.float32)
    Model(normalization="uniform", beta=90.0, time_scale="exp_beta").to(torch.float32)  # no limit there
    Model(normalization="softmax", beta=1e4).to(torch.float32)  # nor for SA


@pytest.mark.parametrize(
    "kwargs, batch",
    [
        ({}, 1),
        ({"beta": 2.0}, 1),
        ({"beta": [0.0, 1.0, 2.0]}, 3),
        ({"beta": torch.tensor([1.0])}, 1),
        ({"Q": ONES(2, 3), "K": ONES(2, 3)}, 1),
        ({"Q": ONES(4, 2, 3), "K": ONES(4, 2, 3), "beta": [1.0] * 4}, 4),
        ({"QK": ONES(5, 3, 3), "V": EYE}, 5),
        ({"heads": 2, "Q": ONES(2, 1, 3), "K": ONES(2, 1, 3)}, 1),
        ({"heads": 2, "Q": ONES(6, 2, 1, 3), "K": ONES(6, 2, 1, 3), "V": EYE}, 6),
        ({"heads": 3, "QK": ONES(3, 3, 3), "V": ONES(3, 3, 3)}, 1),
        ({"mask": torch.zeros(7, 4, 4, dtype=torch.float64)}, 7),
        ({"mask": torch.zeros(2, 1, 4, 4, dtype=torch.float64), "beta": [1.0, 3.0]}, 2),
    ],
)
def test_valid_models_and_their_batch_size(kwargs, batch):
    assert Model(**kwargs).batch_size == batch


def test_flags():
    assert Model().is_sa_toy and Model().is_identity_attention and Model().sign == 1.0
    assert Model(V="repulsive").is_sa_toy and Model(V="repulsive").sign == -1.0
    assert not Model(V=EYE).is_sa_toy  # a matrix V goes through the general path
    assert not Model(QK=EYE).is_identity_attention
    assert not Model(causal=True).is_identity_attention
    assert not Model(mask=torch.zeros(3, 3, dtype=torch.float64)).is_identity_attention


def test_model_is_frozen():
    m = Model(beta=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.beta = 2.0  # type: ignore[misc]


def test_describe_is_json_serialisable_and_records_the_options():
    m = Model(beta=[1.0, 2.0], normalization="uniform", Q=ONES(2, 1, 3), K=ONES(2, 1, 3), causal=True)
    desc = json.loads(json.dumps(m.describe()))
    assert desc["beta"] == [1.0, 2.0]
    assert desc["normalization"] == "uniform" and desc["causal"] is True
    assert desc["Q"] == "array(2, 1, 3)"


def test_to_changes_dtype_of_every_tensor():
    m = Model(beta=2.0, Q=ONES(2, 3), K=ONES(2, 3), V=EYE).to(torch.float32)
    assert m.beta_tensor().dtype == torch.float32
    w = m.weights()
    assert w.q.dtype == w.k.dtype == w.v.dtype == torch.float32
    same = Model(beta=2.0)
    assert same.to(torch.float64) is same


def test_take_indexes_per_system_parameters_only():
    qk = torch.randn(4, 3, 3, dtype=torch.float64)
    m = Model(beta=[0.1, 0.2, 0.3, 0.4], QK=qk, V=EYE)
    sub = m.take(torch.tensor([3, 1]))
    assert sub.batch_size == 2
    assert torch.equal(sub.beta_tensor(), torch.tensor([0.4, 0.2], dtype=torch.float64))
    assert torch.equal(sub.weights().qk[:, 0], qk[[3, 1]])
    assert torch.equal(sub.weights().v, m.weights().v)  # shared V is kept as is


def test_layerwise_schedule_selects_the_layer():
    vs = torch.stack([k * torch.eye(D, dtype=torch.float64) for k in (1.0, 2.0, 3.0)])
    sched = Layerwise(0.5, V=vs)
    m = Model(schedule=sched)
    assert [sched.layer(t) for t in (0.0, 0.49, 0.5, 1.0, 1.49, 7.0, -1.0)] == [0, 0, 1, 2, 2, 2, 0]
    assert torch.equal(m.at(0.75).weights().v[0, 0], vs[1])
    assert m.at(0.0).schedule is None
    assert Model().at(3.0) is not None
    # the field at time t is that of the frozen model (here V = 2I scales the unprojected field by 2)
    x = _x()
    assert torch.allclose(velocity(x, m, 0.6), 2 * velocity(x, Model()), rtol=1e-14, atol=0)


@pytest.mark.parametrize(
    "bad, word",
    [
        (lambda t: {"W": EYE}, "unknown"),
        (lambda t: {"V": ONES(3, 2)}, "V"),
    ],
)
def test_schedule_returning_bad_weights_raises(bad, word):
    with pytest.raises(ValueError, match=word):
        Model(schedule=bad).at(0.0)


@pytest.mark.parametrize(
    "args, kwargs, word",
    [
        ((0.0,), {"V": ONES(2, 3, 3)}, "layer_time"),
        ((1.0,), {}, "Layerwise"),
        ((1.0,), {"V": ONES(2, 3, 3), "QK": ONES(3, 3, 3)}, "layers"),
    ],
)
def test_layerwise_bad_input(args, kwargs, word):
    with pytest.raises(ValueError, match=word):
        Layerwise(*args, **kwargs)


# ---------------------------------------------------------------------------------------------------
# the shared checks


@pytest.mark.parametrize(
    "call, word",
    [
        (lambda: validate_int("n", 0, minimum=1), "n must be an integer >= 1, got 0"),
        (lambda: validate_int("n", True), "n must be an integer"),
        (lambda: validate_int("n", 2.5), "n must be"),
        (lambda: validate_real("h", math.nan), "h must be a finite number"),
        (lambda: validate_real("h", 0.0, minimum=0.0, strict_minimum=True), "h must be a finite number > 0"),
        (lambda: validate_real("h", 3.0, maximum=2.0), "h must be"),
        (lambda: validate_real("h", "x"), "h must be"),
        (lambda: validate_choice("method", "rk5", ("rk4",)), "method must be one of 'rk4'"),
        (lambda: validate_unit_norm("x0", torch.full((1, 2, 3), 0.5, dtype=torch.float64)), "x0 must hold unit"),
        (lambda: validate_unit_norm("x0", torch.full((1, 2, 3), math.nan, dtype=torch.float64)), "x0"),
    ],
)
def test_checks_raise_with_the_name(call, word):
    with pytest.raises(ValueError, match=re.escape(word)):
        call()


def test_checks_return_valid_values():
    assert validate_int("n", 3.0) == 3
    assert validate_real("h", "0.25", minimum=0.0) == 0.25
    x = _x()
    validate_unit_norm("x0", x)  # unit rows pass (default tolerance 1e-10 in float64)
    with pytest.raises(ValueError):
        validate_unit_norm("x0", x * (1 + 1e-9))


def test_take_remembers_the_index_object_but_not_its_old_values():
    """The driver passes one index tensor until its active set changes: the same object gives the same
    restriction without a comparison, and an index changed in place gives the new restriction."""
    model = Model(beta=torch.tensor([1.0, 2.0, 3.0]))
    idx = torch.tensor([0, 2])
    first = model.take(idx)
    assert model.take(idx) is first and first.beta_tensor().tolist() == [1.0, 3.0]
    idx[1] = 1
    assert model.take(idx).beta_tensor().tolist() == [1.0, 2.0]
