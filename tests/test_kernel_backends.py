"""The back ends of the velocity kernel (fused toy path, torch's fused attention, dense, streaming) and the one
place that chooses between them (``field.plan``).

Independent truth: ``ref_field`` of tests/test_field.py, a NumPy loop over systems, heads and rows that evaluates
(2.3)-(2.7) of the paper literally with the row maximum subtracted. Every back end that can run a variant is
forced on it and compared with that reference at 1e-12 relative to the size of the field (float64), the bound
argued in test_field.py's docstring. The plan itself is tested for what it picks (model, shapes, gradients,
free memory) and for refusing, with a MemoryError, inputs that fit no back end.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tokensphere.field as field
from tokensphere import Layerwise, Model, velocity
from tokensphere.field import KernelPlan, plan, weights_at
from tokensphere.runtime import available_memory, memory_budget

from helpers import gauss, sphere
from test_field import B, D, N, VARIANTS, close, random_mask, ref_field, variant_kwargs

# "fused": the fused toy path proper (products, in-place exponentials, the compiled row pass); "fused_tiny": its branch for
# a few thousand scores (three plain torch calls), which these small test inputs take by default
BACKENDS = ["fused", "fused_tiny", "symmetric", "sdpa", "dense", "streaming"]


def run_backend(backend, x, model, t=0.0, project=True):
    """velocity(x, model, t) with the back end forced (bypassing the plan); the same post-processing."""
    w = weights_at(model, x, t)
    p = {
        "fused": KernelPlan("fused"),
        "fused_tiny": KernelPlan("fused"),
        # blocks of 2 tokens in strips of 2·SYMMETRIC_STRIP columns: several of each, partial last ones
        "symmetric": KernelPlan("symmetric", chunk_size=2),
        "sdpa": KernelPlan("sdpa"),
        "dense": KernelPlan("dense"),
        "streaming": KernelPlan("streaming", chunk_size=3),
    }[backend]
    tiny = field._TINY
    field._TINY = tiny if backend == "fused_tiny" else -1
    try:
        f = field._run(p, x, w) * w.sign
    finally:
        field._TINY = tiny
    return field.tangent_project(x, f) if project else f


def runs_on(backend, model, x=None, t=0.0):
    """Whether a back end handles the model at time t: the fused and the symmetric paths only the toy model
    (Q = K = V = ±I, one head, no mask), the symmetric one in SA and USA without gradients."""
    w = weights_at(model, sphere(B, N, D, seed=0) if x is None else x, t)
    if backend == "symmetric":
        return w.toy and w.normalization in ("softmax", "uniform") and not any(p.requires_grad for p in w._tensors())
    return not backend.startswith("fused") or w.toy


CASES = [(v, b) for v in VARIANTS for b in BACKENDS if runs_on(b, Model(**variant_kwargs(v)))]


@pytest.mark.parametrize("name, backend", CASES)
def test_every_backend_matches_the_reference(name, backend):
    kw = variant_kwargs(name)
    x = sphere(B, N, D, seed=1)
    got = run_backend(backend, x, Model(**kw))
    close(got, ref_field(x, kw))
    got_raw = run_backend(backend, x, Model(**kw), project=False)
    close(got_raw, ref_field(x, kw, project=False))


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_dependent_weights(backend):
    """A Layerwise QK and V: at t = 0.7 with layer time 0.5 the second layer's matrices act."""
    qk, v = gauss(3, D, D, seed=30), gauss(3, D, D, seed=31, scale=0.5)
    model = Model(beta=1.3, schedule=Layerwise(0.5, QK=qk, V=v))
    x = sphere(B, N, D, seed=2)
    if not runs_on(backend, model, t=0.7):
        pytest.skip("not a toy model")
    close(run_backend(backend, x, model, t=0.7), ref_field(x, dict(beta=1.3, QK=qk[1], V=v[1])))


@pytest.mark.parametrize("beta", [1e2, 1e3, 1e4])
@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_large_beta_finite_and_correct(beta, normalization, backend):
    """β up to 1e4: no overflow or NaN. SA is compared with the reference; USA in the "exp_beta" time scale
    (e^{β(s − 1)} ≤ 1 for unit vectors) likewise."""
    kw = dict(beta=beta, normalization=normalization)
    if normalization == "uniform":
        kw["time_scale"] = "exp_beta"
    x = sphere(2, 9, 3, seed=3)
    x[:, 1] = x[:, 0] + 1e-3 * x[:, 2]  # a near pair, so the field is not just round-off
    x = x / x.norm(dim=-1, keepdim=True)
    got = run_backend(backend, x, Model(**kw))
    assert torch.isfinite(got).all()
    close(got, ref_field(x, kw))


@pytest.mark.parametrize(
    "kw",
    [
        dict(beta=3.0),  # |β⟨x_i, x_j⟩| ≤ 12: exponentials without a shift
        dict(beta=400.0),  # bound 1600 > the float64 margin: the row maximum is subtracted
        dict(beta=torch.tensor([0.5, 250.0], dtype=torch.float64)),  # one system over the margin
        dict(beta=torch.tensor([0.5, 2.0], dtype=torch.float64), normalization="uniform", time_scale="exp_beta"),
        dict(beta=700.0, normalization="uniform", time_scale="exp_beta"),  # e^{−β} alone would be risky
    ],
)
def test_fused_path_on_non_unit_inputs_on_both_sides_of_the_margin(kw):
    """The fused path's bound |β⟨x_i, x_j⟩| ≤ β max|x_j|² holds for any input, not only unit vectors; on
    either side of the margin the field equals the reference (unprojected, since x is off the sphere)."""
    x = sphere(2, 6, 3, seed=4) * torch.linspace(0.5, 2.0, 6, dtype=torch.float64).view(1, 6, 1)
    if kw.get("time_scale") == "exp_beta":
        x = x / 2.0  # norms in [0.25, 1]: the USA exponents stay representable
    assert plan(x, Model(**kw)).backend == "fused"
    for backend in ("fused", "fused_tiny"):
        got = run_backend(backend, x, Model(**kw), project=False)
        assert torch.isfinite(got).all()
        close(got, ref_field(x, kw, project=False))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["SA", "USA_exp_beta", "heads_sum", "mask", "causal_USA_attended"])
def test_float32_close_to_float64(backend, name):
    kw = variant_kwargs(name)
    model = Model(**kw)
    if not runs_on(backend, model):
        pytest.skip("not a toy model")
    x = sphere(B, N, D, seed=5)
    got = run_backend(backend, x.float(), model.to(torch.float32))
    assert got.dtype == torch.float32
    close(got.double(), ref_field(x, kw), rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# property test: random shapes and parameters, every applicable back end agrees with the reference


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 3), n=st.integers(1, 9), d=st.integers(2, 5), beta=st.floats(0.0, 50.0),
    uniform=st.booleans(), heads=st.integers(1, 2), general=st.booleans(), seed=st.integers(0, 10**6),
)
def test_property_backends_agree_with_reference(b, n, d, beta, uniform, heads, general, seed):
    kw = dict(beta=beta, normalization="uniform" if uniform else "softmax", heads=heads)
    if uniform:
        kw["time_scale"] = "exp_beta"
    if general or heads > 1:
        kw["QK"] = gauss(heads, d, d, seed=seed, scale=1 / d) if heads > 1 else gauss(d, d, seed=seed, scale=1 / d)
        kw["V"] = gauss(heads, d, d, seed=seed + 1, scale=1 / d) if heads > 1 else gauss(d, d, seed=seed + 1)
    x = sphere(b, n, d, seed=seed)
    model = Model(**kw)
    want = ref_field(x, kw)
    for backend in BACKENDS:
        if runs_on(backend, model, x):
            close(run_backend(backend, x, model), want)
    close(velocity(x, model), want)


# ---------------------------------------------------------------------------------------------------------
# gradients (training Q, K, V, β by backpropagation through the integrator)


def _gradcheck(model_fn, x, params, backend=None):
    def f(x_, *ps):
        model = model_fn(*ps)
        if backend is None:
            return velocity(x_, model)
        return run_backend(backend, x_, model)

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("backend", [None, "fused", "fused_tiny", "sdpa", "dense", "streaming"])
def test_gradcheck_toy_in_x_and_beta(backend):
    x = sphere(2, 5, 3, seed=6).requires_grad_()
    beta = torch.tensor([0.7, 2.0], dtype=torch.float64, requires_grad=True)
    _gradcheck(lambda b: Model(beta=b), x, (beta,), backend)


@pytest.mark.parametrize("backend", [None, "sdpa", "dense", "streaming"])
@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_gradcheck_general_weights(backend, normalization):
    """Gradients in Q, K, V (two heads) and x: the plan keeps a differentiable path (USA never takes the fused
    attention, whose log-sum-exp output carries no gradient)."""
    if backend == "sdpa" and normalization == "uniform":
        pytest.skip("the plan never sends a USA gradient through the fused attention")
    x = sphere(1, 4, 3, seed=7).requires_grad_()
    q, k = gauss(2, 2, 3, seed=8).requires_grad_(), gauss(2, 2, 3, seed=9).requires_grad_()
    v = gauss(2, 3, 3, seed=10, scale=0.5).requires_grad_()
    _gradcheck(lambda q_, k_, v_: Model(beta=1.1, heads=2, Q=q_, K=k_, V=v_, normalization=normalization),
               x, (q, k, v), backend)


def test_usa_with_gradients_is_not_planned_on_the_fused_attention():
    x = sphere(1, 300, 32, seed=11)
    usa = Model(beta=1.0, normalization="uniform", causal=True)  # not the toy model (fused below FUSED_MAX_N)
    assert plan(x, usa).backend == "sdpa"
    assert plan(x.clone().requires_grad_(), usa).backend != "sdpa"
    with torch.no_grad():
        assert plan(x.clone().requires_grad_(), usa).backend == "sdpa"


# ---------------------------------------------------------------------------------------------------------
# the plan


def test_plan_picks_by_model_and_size():
    small, mid = sphere(4, 16, 3, seed=12), sphere(1, field.SDPA_MIN_N, 3, seed=12)
    assert plan(small, Model(beta=1.0)).backend == "fused"
    assert plan(small, Model(beta=1.0, normalization="uniform")).backend == "fused"
    assert plan(small, Model(beta=1.0, QK=torch.eye(3, dtype=torch.float64))).backend == "dense"
    assert plan(mid, Model(beta=1.0)).backend == "fused"  # the toy model: the fused path below FUSED_MAX_N
    top = sphere(1, field.FUSED_MAX_N - 1, 32, seed=12)
    assert plan(top, Model(beta=1.0)).backend == "fused"
    assert plan(top.float(), Model(beta=1.0).to(torch.float32)).backend == "fused"
    edge = sphere(1, field.FUSED_MAX_N, 32, seed=12)
    assert plan(edge, Model(beta=1.0)).backend == "symmetric"  # float64 from FUSED_MAX_N on
    assert plan(edge.float(), Model(beta=1.0).to(torch.float32)).backend == "sdpa"
    assert plan(sphere(1, field.SDPA_MIN_N, 3, seed=12), Model(beta=1.0, QK=torch.eye(3))).backend == "sdpa"
    assert plan(sphere(1, field.SDPA_MIN_N - 1, 3, seed=12), Model(beta=1.0, QK=torch.eye(3))).backend == "dense"
    assert plan(mid, Model(beta=1.0, causal=True, V="repulsive")).backend == "sdpa"
    assert plan(mid, Model(beta=1.0, QK=torch.eye(3, dtype=torch.float64))).backend == "sdpa"
    large = sphere(1, field.SYMMETRIC_MIN_N, 3, seed=12)
    p = plan(large, Model(beta=1.0))
    assert (p.backend, p.describe()) == ("symmetric", f"symmetric (blocks of {field.SYMMETRIC_BLOCK})")
    assert plan(large, Model(beta=1.0, normalization="uniform")).backend == "symmetric"
    assert plan(large, Model(beta=1.0, V="repulsive")).backend == "symmetric"
    assert plan(large, Model(beta=1.0, causal=True)).backend == "sdpa"  # not the toy model
    assert plan(large.clone().requires_grad_(), Model(beta=1.0)).backend == "sdpa"  # gradients
    assert plan(large.float(), Model(beta=1.0).to(torch.float32)).backend == "sdpa"  # float32: sdpa is faster
    p = plan(small, Model(beta=1.0), chunk_size=5)
    assert (p.backend, p.chunk_size, p.describe()) == ("streaming", 5, "streaming (chunk 5)")
    with pytest.raises(ValueError, match="chunk_size"):
        velocity(small, Model(beta=1.0), chunk_size=0)


def test_memory_probe():
    free = available_memory("cpu")
    assert free > 0 and 0 < memory_budget("cpu") <= free


def _tight_memory(monkeypatch, nbytes):
    monkeypatch.setattr(field, "SMALL_BYTES", 0)
    monkeypatch.setattr(field, "memory_budget", lambda device: nbytes)


def test_plan_sizes_blocks_and_chunks_to_the_memory(monkeypatch):
    """With 64 KiB allowed: the fused path runs in blocks of systems, the general path streams (no CPU fused
    attention on a non-CPU-eligible dtype aside), and the results still equal the reference."""
    x = sphere(40, 16, 3, seed=13)
    _tight_memory(monkeypatch, 64 * 1024)
    p = plan(x, Model(beta=2.0))
    assert p.backend == "fused" and p.block == 64 * 1024 // (2 * 16 * 16 * 8)
    close(velocity(x, Model(beta=2.0)), ref_field(x, dict(beta=2.0)))
    kw = dict(beta=1.0, normalization="uniform", QK=gauss(3, 3, seed=14))
    xg = x.clone().requires_grad_()  # USA with gradients: not the fused attention, and dense does not fit
    p = plan(xg, Model(**kw))
    assert p.backend == "streaming" and 1 <= p.chunk_size <= 16
    assert 3 * 40 * 16 * p.chunk_size * 8 <= 64 * 1024
    close(velocity(xg, Model(**kw)).detach(), ref_field(x, kw))
    assert plan(x, Model(**kw)).backend == "sdpa"  # without gradients: the O(n·d) fused attention


def test_plan_sizes_the_symmetric_blocks_to_the_memory(monkeypatch):
    """Many large systems at once: the symmetric back end's (B, c, SYMMETRIC_STRIP·c) score strip is halved
    until it fits; when not even the back ends' few (B, n, d) arrays fit, the plan refuses at once with a
    MemoryError that names them, before allocating anything."""
    x = torch.zeros(4, 2048, 3, dtype=torch.float64)  # plan only
    assert plan(x, Model(beta=1.0)).chunk_size == field.SYMMETRIC_BLOCK
    strip = field.SYMMETRIC_STRIP
    _tight_memory(monkeypatch, strip * 4 * 256 * 256 * 8)
    assert (plan(x, Model(beta=1.0)).backend, plan(x, Model(beta=1.0)).chunk_size) == ("symmetric", 256)
    _tight_memory(monkeypatch, strip * 4 * 256 * 256 * 8 - 1)
    p = plan(x, Model(beta=1.0))
    assert (p.backend, p.chunk_size) == ("symmetric", 128)
    linear = field.LINEAR_ARRAYS * 4 * 2048 * 3 * 8
    _tight_memory(monkeypatch, linear)
    assert plan(x, Model(beta=1.0)).backend in ("symmetric", "sdpa")
    _tight_memory(monkeypatch, linear - 1)
    for kw in (dict(beta=1.0), dict(beta=1.0, QK=torch.eye(3))):
        with pytest.raises(MemoryError, match=r"O\(B·H·n·d\) arrays .* \(4, 1, 2048, 3\)"):
            plan(x, Model(**kw))
    assert plan(x[:, :100], Model(beta=1.0)).backend == "fused"  # its blocks need no more than the output


def test_plan_refuses_what_fits_nowhere(monkeypatch):
    x = sphere(2, 16, 3, seed=15).requires_grad_()
    _tight_memory(monkeypatch, 100)
    with pytest.raises(MemoryError, match="GiB"):
        velocity(x, Model(beta=1.0, normalization="uniform", QK=gauss(3, 3, seed=16)))


def test_plan_never_materialises_scores_that_do_not_fit():
    """n = 2**16 tokens: the dense scores would need 3 · n² · 8 bytes = 96 GiB; the plan must pick an O(n·d)
    path (whatever this machine's free memory) and say so."""
    x = torch.zeros(1, 2**16, 3, dtype=torch.float64)  # plan only: nothing is evaluated
    for kw in (dict(beta=1.0), dict(beta=1.0, normalization="uniform")):
        assert plan(x, Model(**kw)).backend == "symmetric"  # O(n·d + block²)
    assert plan(x, Model(beta=1.0, QK=torch.eye(3))).backend == "sdpa"
    p = plan(x.requires_grad_(), Model(beta=1.0, normalization="uniform", QK=torch.eye(3)))
    assert p.backend == "streaming" and 3 * 2**16 * p.chunk_size * 8 <= memory_budget("cpu")
    assert not math.isnan(p.chunk_size)


def test_n_by_n_outputs_refuse_what_does_not_fit_and_log_normalizer_streams(monkeypatch):
    """scores/attention return (B, H, n, n) matrices: beyond the memory they raise MemoryError before
    allocating; log_normalizer then comes from the fused attention's log-sum-exp and equals the dense one."""
    from tokensphere import attention, log_normalizer, scores

    kw = dict(beta=1.7, heads=2, QK=gauss(2, 3, 3, seed=17), mask=random_mask(2, 12, seed=18))
    x = sphere(2, 12, 3, seed=19)
    want = log_normalizer(x, Model(**kw))
    _tight_memory(monkeypatch, 1000)
    for fn in (scores, attention):
        with pytest.raises(MemoryError, match="GiB"):
            fn(x, Model(**kw))
    close(log_normalizer(x, Model(**kw)), want)


@pytest.mark.parametrize(
    "kw",
    [
        dict(beta=2.0),
        dict(beta=gauss(130, seed=20).abs() * 3, normalization="uniform", time_scale="exp_beta"),
        dict(beta=700.0, V="repulsive"),
    ],
)
def test_fused_path_in_cache_sized_blocks(kw):
    """130 systems of 32 tokens: the fused path runs in blocks of systems (58, 58, 14 with 640 KiB per block)
    written into one output; every block equals the reference."""
    x = sphere(130, 32, 3, seed=21)
    assert 130 // 2 >= field.block_systems(32, 3, 8) > 130 // 3
    close(run_backend("fused", x, Model(**kw)), ref_field(x, kw))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("top", ["beyond", "window"])
def test_fused_softmax_overflow_is_caught_and_evaluated_again_with_the_row_maximum(dtype, top, monkeypatch):
    """SA with β below the margin takes its exponentials unshifted and checks all row sums once at the end.
    One system with large norms in a batch of 130 (three blocks): up to 30 (β|x|² = 900, beyond e^{±709}: the
    sums overflow), or just below the overflow of the largest term (β|x|² = 709.5 in float64, 88.5 in float32:
    the sums stay finite but Σ_j e_ij x_j overflows). The check — every row sum at most e^margin — sees both,
    and the batch is evaluated again with the row maximum subtracted: finite and equal to the reference.
    Inputs on the sphere pass the check at once, with the bits of the shifted path."""
    x = sphere(130, 32, 3, seed=22)
    big = 30.0 if top == "beyond" else math.sqrt(709.5 if dtype == torch.float64 else 88.5)
    x[77] *= torch.linspace(1.0, big, 32, dtype=torch.float64).view(32, 1)
    calls = []
    inner = field._toy_dense

    def spy(*args, **kwargs):
        calls.append(kwargs.get("stable", False))
        return inner(*args, **kwargs)

    monkeypatch.setattr(field, "_toy_dense", spy)
    kw = dict(beta=1.0)
    got = run_backend("fused", x.to(dtype), Model(**kw), project=False)
    assert calls == [False, True]  # the optimistic sweep, then the shifted one
    assert torch.isfinite(got).all()
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    close(got.double(), ref_field(x, kw, project=False), rtol=tol)
    calls.clear()
    y = sphere(130, 32, 3, seed=23).to(dtype)
    w = weights_at(Model(beta=2.0), y)
    assert torch.equal(inner(y, w, project=True), inner(y, w, project=True, stable=True))
    assert calls == []


@pytest.mark.parametrize("normalization", ["softmax", "uniform"])
def test_symmetric_back_end_hands_over_beyond_the_margin(normalization):
    """The symmetric back end takes no row maximum (it would break e_ij = e_ji): with β max|x_j|² beyond the
    dtype's margin (norms up to 26, β = 1: 676 > 600, while e^676 and the USA field stay finite) it declines and
    the plan's call runs the fused attention, which shifts; the field still equals the reference. Within the
    margin it runs itself."""
    kw = dict(beta=1.0, normalization=normalization)
    x = sphere(2, 7, 3, seed=40) * torch.linspace(1.0, 26.0, 7, dtype=torch.float64).view(1, 7, 1)
    w = weights_at(Model(**kw), x)
    assert field._symmetric(x, w, 3) is None
    got = field._run(KernelPlan("symmetric", chunk_size=3), x, w)
    assert torch.isfinite(got).all()
    close(got, ref_field(x, kw, project=False))
    small = x / 26.0
    close(field._symmetric(small, w, 3), ref_field(small, kw, project=False))


@pytest.mark.parametrize("c", [1, 2, 3, 5])
@pytest.mark.parametrize("normalization", ["softmax", "uniform", "uniform_exp_beta"])
def test_symmetric_strips_cover_every_pair_once(c, normalization):
    """The symmetric back end's block rows against strips of SYMMETRIC_STRIP·c columns: with n = 23 and these
    block sizes, rows have one to several strips and partial last blocks and strips; every pair of tokens must
    be counted once (a pair missed or doubled moves the field by ~1/n of its scale). Per-system β, SA and USA
    (with time_scale "exp_beta" each system has its own shift e^{−β})."""
    kw = dict(beta=torch.tensor([0.5, 3.0], dtype=torch.float64), normalization=normalization)
    if normalization == "uniform_exp_beta":
        kw.update(normalization="uniform", time_scale="exp_beta")
    x = sphere(2, 23, 4, seed=41)
    w = weights_at(Model(**kw), x)
    close(field._symmetric(x, w, c), ref_field(x, kw, project=False))


# ---------------------------------------------------------------------------------------------------------
# layouts, half precision, masks per head, autograd under a memory budget, chunk_size


def test_fused_attention_does_not_depend_on_the_memory_layout():
    """torch's fused CPU attention reads the feature axis as contiguous: x stored transposed, or a strided
    slice of a wider tensor, must give the reference field (general model, n = 256: the `sdpa` back end)."""
    kw = dict(beta=1.0, QK=gauss(3, 3, seed=21))
    x = sphere(2, 256, 3, seed=22)
    assert plan(x, Model(**kw)).backend == "sdpa"
    ref = ref_field(x, kw)
    transposed = x.transpose(1, 2).contiguous().transpose(1, 2)  # the same values, feature stride n
    assert transposed.stride(-1) != 1
    close(velocity(transposed, Model(**kw)), ref)
    wide = torch.zeros(2, 256, 6, dtype=torch.float64)
    wide[..., ::2] = x
    close(velocity(wide[..., ::2], Model(**kw)), ref)


@pytest.mark.parametrize("beta", [12.0, 60.0])
def test_half_precision_fused_path_stays_finite(beta):
    """e^11.1 overflows float16: the fused path must shift its exponentials there (SA is shift-invariant).
    B·n² above the few thousand scores that go to torch's own softmax."""
    x = sphere(64, 16, 3, seed=23)
    assert 64 * 16 * 16 > field._TINY
    m = Model(beta=beta)
    assert plan(x.half(), m).backend == "fused"
    f = velocity(x.half(), m).double()
    assert bool(torch.isfinite(f).all())
    close(f, ref_field(x, dict(beta=beta)), rtol=1e-2)


def test_mask_heads_must_match_the_model():
    n = 5
    with pytest.raises(ValueError, match="H = heads = 1"):
        Model(mask=torch.zeros(1, 2, n, n, dtype=torch.float64))
    with pytest.raises(ValueError, match="H = heads = 3"):
        Model(heads=3, QK=gauss(3, 3, 3, seed=24), mask=torch.zeros(1, 2, n, n, dtype=torch.float64))
    Model(heads=3, QK=gauss(3, 3, 3, seed=24), mask=torch.zeros(1, 3, n, n, dtype=torch.float64))


def test_plan_with_gradients_never_picks_blocks_the_fused_path_would_ignore(monkeypatch):
    """With autograd the fused path takes the whole batch in one block: a plan that only fits in blocks must
    not choose it (it would allocate all the scores), but another back end within the budget."""
    x = sphere(40, 16, 3, seed=25)
    _tight_memory(monkeypatch, 64 * 1024)
    assert plan(x, Model(beta=2.0)).block is not None
    xg = x.clone().requires_grad_()
    p = plan(xg, Model(beta=2.0))
    assert p.backend != "fused"
    close(velocity(xg, Model(beta=2.0)).detach(), ref_field(x, dict(beta=2.0)))


@pytest.mark.parametrize("bad", ["abc", float("inf"), [2], 2.5, 0])
def test_chunk_size_is_validated(bad):
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1"):
        velocity(sphere(1, 8, 3, seed=26), Model(), chunk_size=bad)
