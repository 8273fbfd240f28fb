"""The mutation matrix: the theorem checks run against deliberately broken velocity fields, and each broken
field fails at least one check, while the correct field passes them all.

A mutant replaces internal functions of :mod:`tokensphere.field` (``_toy_dense``, ``_attention``, ``_scores``,
``_values``, ``_reduce_heads``, ``_bias``, ``_usa_shift``, ``_usa_count``, ``tangent_project``) so that every
path the checks use sees it; the streaming back end is routed through the (mutated) dense one.
"""

from __future__ import annotations

import math

import pytest
import torch

import tokensphere.field as field
from tokensphere.experiments.theorems import CHECKS, run_checks

REAL = {name: getattr(field, name) for name in (
    "_toy_dense", "_general_dense", "_attention", "_scores", "_values", "_reduce_heads", "_bias", "_usa_shift",
    "_usa_count", "tangent_project", "_streaming")}


def _toy(softmax=None, usa=None, scale=1.0):
    """A replacement of _toy_dense: logits = scale·β⟨x_i, x_j⟩; softmax(logits) → (B, n, n); usa(logits, w, x)."""

    def toy(x, w):
        logits = torch.bmm(x * (scale * w.beta).view(-1, 1, 1), x.transpose(1, 2))
        if w.normalization == "softmax":
            a = softmax(logits) if softmax else torch.softmax(logits, -1)
            return torch.bmm(a, x)
        if usa:
            return usa(logits, w, x)
        return torch.bmm(torch.exp(logits - REAL["_usa_shift"](w, x).view(-1, 1, 1)), x) / x.shape[1]

    return toy


def _attention_with(softmax=None, usa_count=None):
    def attention(logits, w, x):
        if w.normalization == "softmax":
            return softmax(logits) if softmax else torch.softmax(logits, dim=-1)
        count = usa_count(w, logits) if usa_count else REAL["_usa_count"](w, logits)
        return torch.exp(logits - field._usa_shift(w, x)) / count

    return attention


def _scaled_scores(scale):
    def scores(x, w):
        q, k = field._queries_keys(x, w)
        logits = torch.matmul(q * (scale(w.beta)).view(-1, 1, 1, 1), k.transpose(-1, -2))
        bias = field._bias(w, x.shape[1], x)
        return logits if bias is None else logits + bias

    return scores


def _columns(logits):
    return torch.softmax(logits, dim=-2)


def _over_n(logits):
    return torch.exp(logits - logits.amax((-1, -2), keepdim=True)) * 0 + torch.exp(logits) / logits.shape[-1]


def _causal_off_by_one(w, n, x, cols=None):
    bias = w.mask
    if w.causal:
        i = torch.arange(n, device=x.device).unsqueeze(1)
        j = torch.arange(n, device=x.device).unsqueeze(0)
        causal = torch.zeros((n, n), dtype=x.dtype).masked_fill(j > i + 1, -math.inf)
        bias = causal if bias is None else bias + causal
    return bias


def _mask_ignored(w, n, x, cols=None):
    return REAL["_bias"](type("W", (), {"mask": None, "causal": w.causal})(), n, x)


MUTANTS = {
    "softmax over columns": {"_toy_dense": _toy(softmax=_columns), "_attention": _attention_with(softmax=_columns)},
    "V applied as Vᵀ": {"_values": lambda x, w: x.unsqueeze(1) if w.v is None else torch.matmul(x.unsqueeze(1), w.v)},
    "heads averaged": {"_reduce_heads": lambda f, w: f.sum(1) / w.heads},
    "SA divided by n": {"_toy_dense": _toy(softmax=lambda lg: torch.exp(lg) / lg.shape[-1]),
                        "_attention": _attention_with(softmax=lambda lg: torch.exp(lg) / lg.shape[-1])},
    "β/2 in the scores": {"_toy_dense": _toy(scale=0.5), "_scores": _scaled_scores(lambda b: b / 2)},
    "projection dropped": {"tangent_project": lambda x, y: y},
    "V with the wrong sign": {"_toy_dense": lambda x, w: -REAL["_toy_dense"](x, w),
                              "_values": lambda x, w: -REAL["_values"](x, w)},
    "mask ignored": {"_bias": _mask_ignored},
    "causal off by one": {"_bias": _causal_off_by_one},
    "USA missing 1/n": {"_toy_dense": lambda x, w: REAL["_toy_dense"](x, w) * (x.shape[1] if w.normalization
                                                                               == "uniform" else 1),
                        "_usa_count": lambda w, logits: 1},
    "β applied twice": {"_toy_dense": lambda x, w: _toy(scale=float(w.beta.reshape(-1)[0]))(x, w)
                        if w.beta.numel() == 1 else REAL["_toy_dense"](x, w),
                        "_scores": _scaled_scores(lambda b: b * b)},
    "heads' V swapped": {"_values": lambda x, w: REAL["_values"](x, w).flip(1)},
    "time scale e^β dropped": {"_usa_shift": lambda w, x: torch.zeros((1, 1, 1, 1), dtype=x.dtype)},
    "field 100× too slow": {"_toy_dense": lambda x, w: 0.01 * REAL["_toy_dense"](x, w),
                            "_general_dense": lambda x, w: 0.01 * REAL["_general_dense"](x, w)},
}


def _inject(monkeypatch, patches):
    for name, fn in patches.items():
        monkeypatch.setattr(field, name, _signature(name, fn))
    # streaming goes through the (mutated) dense path, so every back end sees the mutant
    monkeypatch.setattr(field, "_streaming", lambda x, w, c: field._general_dense(x, w))


def _signature(name, fn):
    """A mutant written as f(x, w) (unprojected) or P(x, y) with the real function's full signature: the fused
    path asks ``_toy_dense`` for the projected field and projects in place with ``tangent_project(x, y, out, work)``,
    both through the (mutated) module functions."""
    if name == "_toy_dense":
        def toy(x, w, block=None, project=False):
            f = fn(x, w)
            return field.tangent_project(x, f) if project else f
        return toy
    if name == "tangent_project":
        return lambda x, y, out=None, work=None: fn(x, y) if out is None else out.copy_(fn(x, y))
    return fn


def test_mutants_change_the_field(monkeypatch):
    """Each mutant really changes the field somewhere the checks look (else the matrix would prove nothing)."""
    from tokensphere.experiments.theorems.kernel import _cases  # the kernel check's models
    import numpy as np
    from tokensphere import Model, velocity

    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 4))
    x = torch.as_tensor(x / np.linalg.norm(x, axis=1, keepdims=True))[None]
    models = [Model(beta=1.7, **kw) for _, kw, _ in _cases(rng, 7, 4)]
    clean = [velocity(x, m) for m in models]
    for name, patches in MUTANTS.items():
        with monkeypatch.context() as mp:
            _inject(mp, patches)
            diff = max(float((velocity(x, m) - c).abs().max()) for m, c in zip(models, clean))
        assert diff > 1e-6, name


@pytest.mark.parametrize("name", list(MUTANTS))
def test_every_mutant_is_caught(monkeypatch, name):
    """Run the checks (small sizes, cheap ones first) until one fails; at least one must."""
    _inject(monkeypatch, MUTANTS[name])
    results = run_checks(size="small", time_limit=10.0, stop_at_first_failure=True)
    assert not results[-1].passed, f"{name}: no check failed"


@pytest.mark.parametrize("name", list(MUTANTS))
def test_every_mutant_is_caught_by_a_dynamic_check(monkeypatch, name):
    """The same without the direct evaluation of the field: a theorem check on simulations catches it."""
    _inject(monkeypatch, MUTANTS[name])
    names = [c for c in CHECKS if c != "kernel_reference"]
    results = run_checks(names, size="small", time_limit=10.0, stop_at_first_failure=True)
    assert not results[-1].passed, f"{name}: only the direct evaluation catches it"


def test_correct_field_passes_every_check_at_small_size():
    failed = [r for r in run_checks(size="small") if not r.passed]
    assert not failed, failed


@pytest.mark.slow
def test_mutation_matrix_full_size(monkeypatch):
    """The whole matrix at default size: every check against every mutant (for the record)."""
    caught = {}
    for name, patches in MUTANTS.items():
        with monkeypatch.context() as mp:
            _inject(mp, patches)
            caught[name] = [r.name for r in run_checks(time_limit=20.0) if not r.passed]
    assert all(caught.values()), {k: v for k, v in caught.items() if not v}
