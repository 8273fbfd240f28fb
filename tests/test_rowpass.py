"""The compiled last pass of the fused back end against the same formula in NumPy, row by row."""

import numpy as np
import pytest
import torch

from tokensphere.rowpass import as_array, finish_rows, scaled_transpose


def _reference(s, x, z, project):
    """(s_i − ⟨x_i, s_i⟩ x_i) / Z_i (or s_i / Z_i) in float64 NumPy."""
    s, x, z = (np.asarray(a, dtype=np.float64) for a in (s, x, z))
    if project:
        s = s - np.sum(x * s, axis=-1, keepdims=True) * x
    return s / z[..., None]


def _block(seed, B=7, n=5, d=3, k=3, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, n, d)).astype(dtype)
    e = rng.uniform(0.1, 3.0, (k, n, n)).astype(dtype)
    s = rng.standard_normal((k, n, d)).astype(dtype)
    return x, e, s


@pytest.mark.parametrize("project", [True, False])
@pytest.mark.parametrize("start", [0, 2, 4])
def test_row_sums_projection_and_offset(project, start):
    x, e, s = _block(0)
    out = np.full_like(x, np.nan)
    inv = np.full(x.shape[:2], np.nan)
    finish_rows(s, x, out, e=e, project=project, inv=inv, start=start)
    k = s.shape[0]
    rows = slice(start, start + k)
    z = e.sum(-1)
    np.testing.assert_allclose(out[rows], _reference(s, x[rows], z, project), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(inv[rows], 1.0 / z, rtol=1e-15)
    others = np.ones(x.shape[0], dtype=bool)
    others[rows] = False
    assert np.isnan(out[others]).all() and np.isnan(inv[others]).all()  # nothing outside the block is written


def test_given_normaliser_broadcast_and_strided_views():
    """``den`` as a broadcast (stride-0) view (the uniform normaliser) and as a column of a wider array; the
    sums as a strided view; all through torch tensors."""
    x, _, s = _block(1, d=4)
    k, n, d = s.shape
    wide = torch.from_numpy(np.concatenate([s, np.arange(1.0, k * n + 1).reshape(k, n, 1)], -1))
    out = torch.zeros(x.shape, dtype=torch.float64)
    finish_rows(wide[..., :d], torch.from_numpy(x), out, den=wide[..., d], start=1)
    np.testing.assert_allclose(out[1:1 + k].numpy(), _reference(s, x[1:1 + k], wide[..., d].numpy(), True),
                               rtol=1e-14)
    per_system = torch.tensor([2.0, 3.0, 5.0], dtype=torch.float64).view(-1, 1).expand(k, n)
    finish_rows(torch.from_numpy(s), torch.from_numpy(x), out, den=per_system, project=False)
    np.testing.assert_allclose(out[:k].numpy(), s / per_system.numpy()[..., None], rtol=1e-15)


def test_float32_blocks_accumulate_in_float64():
    """float32 in and out, the sums and products in float64: the one rounding is the write, so the output is
    the float64 result of the same float32 inputs rounded to float32 (a float32 sum of 4096 terms, or float32
    products in ⟨x_i, s_i⟩, leave a third or more of the entries 1–3 ulp away)."""
    x, e, s = _block(2, B=2, n=4096, d=8, k=2, dtype=np.float32)
    out = np.empty_like(x)
    finish_rows(s, x, out, e=e, project=True)
    rounded = _reference(s, x, e.astype(np.float64).sum(-1), True).astype(np.float32)
    assert out.dtype == np.float32
    off = out != rounded
    assert off.mean() < 0.01  # a float64 error may still tip a rounding where the projection cancels
    np.testing.assert_array_max_ulp(out, rounded, maxulp=1)


def test_overflowed_and_nan_rows_are_visible_to_the_check():
    """An infinite row sum gives 1/Z = 0 and a NaN gives NaN (the fast-math flags keep both), which the
    fused back end's check of all 1/Z_i ≥ e^{−margin} catches."""
    x, e, s = _block(3)
    e[0, 1, 2] = np.inf
    e[1, 0, 0] = np.nan
    out, inv = np.empty_like(x), np.empty(x.shape[:2])
    finish_rows(s, x, out, e=e, inv=inv)
    assert inv[0, 1] == 0.0 and np.isnan(inv[1, 0])
    assert np.isfinite(inv[2]).all() and (inv[2] > 0).all()


def test_exactly_one_normaliser():
    x, e, s = _block(4)
    out = np.empty_like(x)
    with pytest.raises(ValueError, match="exactly one of e"):
        finish_rows(s, x, out)
    with pytest.raises(ValueError, match="exactly one of e"):
        finish_rows(s, x, out, e=e, den=np.ones(e.shape[:2]))


def test_as_array_is_a_view():
    t = torch.zeros(3, requires_grad=True)
    a = as_array(t)
    with torch.no_grad():
        t += 1.0
    assert (a == 1.0).all()
    assert as_array(a) is a


def test_finish_rows_checks_its_arguments():
    """The checked wrapper refuses what the compiled loop would read or write out of bounds."""
    k, n, d, B = 2, 4, 3, 5
    s, e = np.ones((k, n, d)), np.ones((k, n, n))
    x, out = np.ones((B, n, d)), np.empty((B, n, d))
    with pytest.raises(ValueError, match="start must be"):
        finish_rows(s, x, out, e=e, start=B)
    with pytest.raises(ValueError, match="x and out must be"):
        finish_rows(s, np.ones((B, n, d + 1)), out, e=e)
    with pytest.raises(ValueError, match="e must be"):
        finish_rows(s, x, out, e=np.ones((k, n, n + 1)))
    with pytest.raises(ValueError, match="den must broadcast"):
        finish_rows(s, x, out, den=np.ones(n + 1))
    with pytest.raises(ValueError, match="one dtype"):
        finish_rows(s.astype(np.float32), x, out, e=e)
    finish_rows(s, x, out, e=e, start=B - k)  # in range: runs
    assert np.isfinite(out[B - k :]).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("beta", ["none", "scalar", "per-system"])
@pytest.mark.parametrize("start", [0, 3])
def test_scaled_transpose_is_beta_times_the_transpose(dtype, beta, start):
    """out[b] = β_b x_{start+b}ᵀ exactly (one product per value: no rounding beyond it), for β = 1, one β and
    one β per system of the batch; nothing of out is left unwritten."""
    B, n, d, k = 7, 5, 3, 4
    x = np.random.default_rng(2).standard_normal((B, n, d)).astype(dtype)
    b = {"none": None, "scalar": np.array([2.5]), "per-system": np.linspace(0.5, 3.5, B)}[beta]
    out = np.full((k, d, n), np.nan, dtype=dtype)
    scaled_transpose(torch.from_numpy(x), b, torch.from_numpy(out), start=start)
    scale = np.ones(B) if b is None else np.broadcast_to(b, (B,))
    want = (scale.astype(dtype)[:, None, None] * x).transpose(0, 2, 1)[start:start + k]
    np.testing.assert_array_equal(out, want)


def test_scaled_transpose_checks_its_arguments():
    x = np.ones((4, 5, 3))
    with pytest.raises(ValueError, match="x must be"):
        scaled_transpose(x, None, np.empty((2, 5, 3)))  # out must be (k, d, n)
    with pytest.raises(ValueError, match="start"):
        scaled_transpose(x, None, np.empty((2, 3, 5)), start=3)
    with pytest.raises(ValueError, match="beta must have 1 or B = 4"):
        scaled_transpose(x, np.ones(3), np.empty((2, 3, 5)))
    with pytest.raises(ValueError, match="one dtype"):
        scaled_transpose(x, None, np.empty((2, 3, 5), dtype=np.float32))
    read_only = np.empty((2, 3, 5))
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        scaled_transpose(x, None, read_only)
