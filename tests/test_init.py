"""Seeded initial conditions: reproducibility, chunking independence, exact geometry of the
structured starts, Monte-Carlo moments of the uniform law, positions from arrays and files, and input validation.

Tolerances: structured starts are built from an orthonormal factorisation, so Gram entries are exact to a few
ulps (1e-14). Monte-Carlo checks compare with the exact moments of σ_d within 5 standard errors computed from
the exact variances (a false alarm has probability < 1e-6 per statistic; the seeds are fixed anyway).
"""

import hashlib
import math
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import torch

from tokensphere import (
    Cap,
    Equiangular,
    FromArray,
    Hemisphere,
    OrthonormalFrame,
    Uniform,
    make_initial,
    normalize,
    sample_sphere,
)
from tokensphere.init import FromFile, looks_like_array_file, read_array, split_array_path

SPECS = [
    lambda **k: Uniform(n=6, d=3, **k),
    lambda **k: OrthonormalFrame(n=4, d=6, **k),
    lambda **k: Cap(n=6, d=3, angle=0.5, **k),
    lambda **k: Hemisphere(n=6, d=2, **k),
    lambda **k: Equiangular(n=4, d=5, gamma0=0.3, **k),
]
SPEC_IDS = ["uniform", "orthonormal", "cap", "hemisphere", "equiangular"]


def gram(x):
    return x @ x.transpose(-1, -2)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_shape_dtype_unit_norm(spec):
    x = spec(batch=4, seed=1).sample()
    assert x.shape[0] == 4 and x.ndim == 3 and x.dtype == torch.float64
    assert float((x.norm(dim=-1) - 1).abs().max()) <= 1e-15 * 4
    assert spec(batch=2, seed=1).sample(dtype=torch.float32).dtype == torch.float32


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_same_seed_same_tensor_different_seed_different(spec):
    a, b, c = spec(batch=3, seed=7).sample(), spec(batch=3, seed=7).sample(), spec(batch=3, seed=8).sample()
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # independent streams: systems of one batch differ from each other
    assert not torch.allclose(a[0], a[1]) and not torch.allclose(a[1], a[2])


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_chunking_independence(spec):
    """System b depends only on (seed, first_system + b): a batch can be drawn in chunks."""
    whole = spec(batch=5, seed=11).sample()
    assert torch.equal(whole[2:], spec(batch=3, seed=11, first_system=2).sample())
    assert torch.equal(whole[:2], spec(batch=2, seed=11).sample())
    assert torch.equal(whole[4:], spec(batch=1, seed=11, first_system=4).sample())


def test_sample_sphere_and_make_initial_are_the_uniform_spec():
    assert torch.equal(sample_sphere(3, 5, 4, seed=2), Uniform(batch=3, n=5, d=4, seed=2).sample())
    assert make_initial("cap", batch=2, n=3, d=3, angle=0.4, seed=5) == Cap(batch=2, n=3, d=3, angle=0.4, seed=5)
    assert make_initial("uniform", n=3, d=2).describe()["kind"] == "Uniform"


def test_describe_records_everything_needed_to_redraw():
    spec = Equiangular(batch=2, n=3, d=4, seed=9, first_system=1, gamma0=-0.25)
    desc = spec.describe()
    assert desc == {"kind": "Equiangular", "batch": 2, "n": 3, "d": 4, "seed": 9, "first_system": 1, "gamma0": -0.25}
    again = make_initial("equiangular", **{k: v for k, v in desc.items() if k != "kind"})
    assert torch.equal(again.sample(), spec.sample())


# ---------------------------------------------------------------------------------------------------
# geometry of the structured starts


@pytest.mark.parametrize("n, d", [(1, 2), (3, 3), (4, 9), (8, 8)])
def test_orthonormal_frame_gram_is_identity(n, d):
    x = OrthonormalFrame(batch=6, n=n, d=d, seed=3).sample()
    assert float((gram(x) - torch.eye(n, dtype=torch.float64)).abs().max()) <= 1e-14


def test_orthonormal_frame_is_randomly_rotated():
    """Haar-random frame: each vector is uniform on the sphere, so its mean over many systems is ≈ 0
    (each coordinate has variance 1/d: standard error 1/√(dB))."""
    Bn, d = 4000, 3
    x = OrthonormalFrame(batch=Bn, n=2, d=d, seed=4).sample()
    assert float(x[:, 0].mean(0).abs().max()) <= 5 / math.sqrt(d * Bn)
    assert float(x[:, 1].mean(0).abs().max()) <= 5 / math.sqrt(d * Bn)


@pytest.mark.parametrize("n, d", [(2, 2), (3, 3), (5, 5), (4, 7)])
@pytest.mark.parametrize("which", ["simplex", -0.1, 0.0, 0.3, 0.9, 0.999])
def test_equiangular_gram(n, d, which):
    """Gram = (1 − γ)I + γ11ᵀ, including γ = −1/(n − 1) (regular simplex: the points sum to 0)."""
    gamma = -1 / (n - 1) if which == "simplex" else which
    assert gamma >= -1 / (n - 1)  # every listed γ is a valid Gram parameter for these n
    x = Equiangular(batch=4, n=n, d=d, gamma0=gamma, seed=5).sample()
    expect = (1 - gamma) * torch.eye(n, dtype=torch.float64) + gamma
    assert float((gram(x) - expect).abs().max()) <= 1e-14
    if which == "simplex":
        assert float(x.sum(1).abs().max()) <= 1e-14


def test_equiangular_zero_is_an_orthonormal_frame():
    x = Equiangular(batch=2, n=4, d=4, gamma0=0.0, seed=6).sample()
    assert float((gram(x) - torch.eye(4, dtype=torch.float64)).abs().max()) <= 1e-14


@pytest.mark.parametrize("angle, d", [(0.05, 2), (0.05, 3), (0.3, 3), (0.3, 6), (math.pi / 5, 2), (math.pi / 5, 6)])
def test_cap_points_lie_in_a_cap_of_the_given_angle(angle, d):
    """All points within `angle` of a common centre ⇒ pairwise angles < 2·angle, i.e. ⟨x_i, x_j⟩ > cos(2·angle)
    (for angle ≤ π/2); and they fill it: with 300 points the widest pair spans more than 1.2·angle."""
    x = Cap(batch=4, n=300, d=d, angle=angle, seed=7).sample()
    g = gram(x)
    assert float(g.min()) > math.cos(2 * angle) - 1e-14
    widest = torch.arccos(g.clamp(-1, 1).amin((1, 2)))
    assert (widest > 1.2 * angle).all()


def test_cap_in_moderate_dimension_finishes():
    """A cone start in d = 64 (Figures 3 and 5 use d up to 1024; Lemma 6.4 starts) must take well under 3 s."""

    def alarm(*_):
        raise TimeoutError("Cap(d=64, angle=pi/4) did not finish within 3 s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(3)
    try:
        x = Cap(batch=1, n=4, d=64, angle=math.pi / 4, seed=0).sample()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert float(gram(x).min()) > math.cos(math.pi / 2) - 1e-14


def test_cap_is_uniform_in_the_cap():
    """For a uniform cap on S² of half-angle a, the polar angle φ to the centre has P(φ ≤ r) =
    (1 − cos r)/(1 − cos a) (Archimedes). The centre is estimated by the mean direction (error ~ a/√n);
    check the fraction within a/2 against (1 − cos(a/2))/(1 − cos a) within 5 standard errors."""
    a, n = 0.8, 20000
    x = Cap(batch=1, n=n, d=3, angle=a, seed=8).sample()[0]
    center = normalize(x.mean(0))
    inner = float((x @ center > math.cos(a / 2)).double().mean())
    p = (1 - math.cos(a / 2)) / (1 - math.cos(a))
    assert abs(inner - p) <= 5 * math.sqrt(p * (1 - p) / n) + 0.01  # + centre-estimation bias
    assert float((x @ center).min()) > math.cos(a) - 0.02


def _in_open_hemisphere(x):
    """LP feasibility: ∃ w with ⟨x_i, w⟩ ≥ 1 ∀ i (scale of '> 0'), i.e. 0 ∉ conv{x_i} (Lemma 6.4)."""
    x = np.asarray(x)
    n, d = x.shape
    res = scipy.optimize.linprog(
        c=np.zeros(d), A_ub=-x, b_ub=-np.ones(n), bounds=[(None, None)] * d, method="highs"
    )
    return res.status == 0


def test_hemisphere_check_itself_can_fail():
    e = np.array([[1.0, 0.0, 0.0]])
    assert _in_open_hemisphere(np.vstack([e, [[0.0, 1.0, 0.0]]]))
    assert not _in_open_hemisphere(np.vstack([e, -e]))  # antipodal pair: 0 in the hull
    tri = np.array([[1.0, 0.0], [-0.5, math.sqrt(3) / 2], [-0.5, -math.sqrt(3) / 2]])
    assert not _in_open_hemisphere(tri)


@pytest.mark.parametrize("d", [2, 3, 5])
def test_hemisphere_samples_lie_in_an_open_hemisphere(d):
    """Many points (n ≫ d, where uniform points almost never fit in a hemisphere: Wendel, Thm 6.7)."""
    x = Hemisphere(batch=10, n=60, d=d, seed=9).sample()
    assert all(_in_open_hemisphere(x[b].numpy()) for b in range(10))
    u = Uniform(batch=10, n=60, d=d, seed=9).sample()
    assert not any(_in_open_hemisphere(u[b].numpy()) for b in range(10))  # P = 2^{−59} Σ_{k<d} C(59,k) ≈ 0


def test_hemisphere_is_the_cap_of_angle_pi_over_2():
    assert torch.equal(Hemisphere(batch=2, n=5, d=3, seed=10).sample(), Cap(batch=2, n=5, d=3, seed=10).sample())
    assert torch.equal(
        Hemisphere(batch=2, n=5, d=3, seed=10).sample(), Cap(batch=2, n=5, d=3, seed=10, angle=math.pi / 2).sample()
    )


# ---------------------------------------------------------------------------------------------------
# the uniform law


@pytest.mark.parametrize("d", [2, 3, 7])
def test_uniform_first_and_second_moments(d):
    """E x = 0 and E xxᵀ = I/d on S^{d−1}. Exact variances: Var x_k = 1/d, Var x_k² = 3/(d(d+2)) − 1/d²,
    Var x_k x_l = 1/(d(d+2)) (k ≠ l). N = 60000 samples; 5 standard errors."""
    x = Uniform(batch=600, n=100, d=d, seed=12).sample().reshape(-1, d)
    N = x.shape[0]
    mean = x.mean(0)
    assert float(mean.abs().max()) <= 5 * math.sqrt(1 / (d * N))
    second = x.T @ x / N
    diag_se = math.sqrt((3 / (d * (d + 2)) - 1 / d**2) / N)
    off_se = math.sqrt(1 / (d * (d + 2)) / N)
    eye = torch.eye(d, dtype=torch.bool)
    assert float((second.diagonal() - 1 / d).abs().max()) <= 5 * diag_se
    assert float(second[~eye].abs().max()) <= 5 * off_se


def test_uniform_inner_products_d3_are_uniform_on_minus1_1():
    """Archimedes: for x, y independent uniform on S², ⟨x, y⟩ ~ U[−1, 1]; Kolmogorov–Smirnov at level 1e-4."""
    x = Uniform(batch=1, n=4001, d=3, seed=13).sample()[0]
    s = (x[0::2][:2000] * x[1::2][:2000]).sum(-1).numpy()  # disjoint pairs: independent
    assert scipy.stats.kstest(s, "uniform", args=(-1, 2)).pvalue > 1e-4


# ---------------------------------------------------------------------------------------------------
# user arrays


def test_from_array_unit_false_accepts_finite_points_of_r_d():
    """unit=False: pure self-attention on R^d (9.1) starts anywhere finite; NaN and inf are still refused."""
    a = np.array([[[2.0, 0.0], [0.0, -3.0]]])
    assert torch.equal(FromArray(a, unit=False).sample(), torch.from_numpy(a))
    with pytest.raises(ValueError, match="x0"):
        FromArray(a).sample()
    with pytest.raises(ValueError, match="x0"):
        FromArray(np.array([[np.nan, 1.0]]), unit=False).sample()


def test_from_array_accepts_unit_vectors_in_either_shape():
    x = Uniform(batch=2, n=3, d=4, seed=14).sample()
    assert torch.equal(FromArray(x).sample(), x)
    assert torch.equal(FromArray(x[0].numpy()).sample(), x[:1])
    assert FromArray(x.tolist()).sample(dtype=torch.float32).dtype == torch.float32
    assert FromArray(x).describe() == {"kind": "FromArray", "shape": [2, 3, 4]}


@pytest.mark.parametrize(
    "array",
    [
        np.ones((2, 3)),  # |x| = √3
        np.array([[1.0, 0.0], [0.0, 1.0 + 1e-8]]),
        np.array([[np.nan, 0.0]]),
        np.array([[np.inf, 0.0]]),
        np.array([1.0, 0.0]),  # 1-D
        np.ones((1, 1, 2, 2)) / math.sqrt(2),  # 4-D
        "not an array",
    ],
    ids=["not-unit", "almost-unit", "nan", "inf", "1-D", "4-D", "string"],
)
def test_from_array_rejects_bad_arrays(array):
    with pytest.raises(ValueError, match="x0"):
        FromArray(array).sample()


def _float32_sphere(shape, seed):
    """Unit vectors normalised in float32 (|x| − 1 is a few float32 ulps, far above float64's tolerance)."""
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_from_array_float32_normalised_in_float32_is_accepted_and_put_on_the_sphere(kind):
    x = _float32_sphere((2, 5, 3), seed=1)
    assert float(np.abs(np.linalg.norm(x.astype(np.float64), axis=-1) - 1).max()) > 1e-10  # fails a float64 test
    array = x if kind == "numpy" else torch.from_numpy(x)
    out = FromArray(array).sample()
    assert out.dtype == torch.float64 and out.shape == (2, 5, 3)
    assert float((out.norm(dim=-1) - 1).abs().max()) <= 4e-16  # projected onto the sphere in float64
    assert float((out - torch.from_numpy(x).double()).abs().max()) <= 1e-6  # by less than float32's rounding
    assert torch.equal(FromArray(array).sample(dtype=torch.float32), torch.from_numpy(x))  # same precision: as given
    with pytest.raises(ValueError, match="x0"):
        FromArray(2 * x).sample()  # still unit vectors at float32 precision


def test_from_array_float64_data_keep_the_float64_tolerance():
    x = Uniform(batch=1, n=4, d=3, seed=2).sample()
    with pytest.raises(ValueError, match="unit vectors"):
        FromArray(x * (1 + 1e-7)).sample()  # fine for float32 data, not for float64 data


def _write(path, x):
    """Write (n, d) or (B, n, d) positions in the format named by the suffix (npz: one array named x0)."""
    if path.suffix == ".npy":
        np.save(path, x)
    elif path.suffix == ".npz":
        np.savez(path, x0=x)
    else:
        np.savetxt(path, x, delimiter=",", fmt="%.17g")
    return path


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv"])
@pytest.mark.parametrize("shape", [(5, 3), (2, 5, 3)], ids=["n-d", "B-n-d"])
def test_from_file_reads_each_format(tmp_path, suffix, shape):
    if suffix == ".csv" and len(shape) == 3:
        pytest.skip("a CSV holds one (n, d) start")
    x = Uniform(batch=2, n=5, d=3, seed=4).sample().numpy()[: 1 if len(shape) == 2 else 2].reshape(shape)
    path = _write(tmp_path / f"start{suffix}", x)
    spec = FromFile(str(path))
    out = spec.sample()
    assert out.shape == (1, *shape) if len(shape) == 2 else out.shape == shape
    assert torch.allclose(out.reshape(shape), torch.from_numpy(x), atol=1e-15)
    info = spec.describe()
    assert info["kind"] == "FromFile" and info["shape"] == list(shape) and info["format"] == suffix[1:]
    assert info["path"] == str(path.resolve())
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_from_file_float32_npy_and_six_digit_csv_are_accepted(tmp_path):
    x = _float32_sphere((4, 3), seed=5)
    np.save(tmp_path / "x32.npy", x)
    out = FromFile(str(tmp_path / "x32.npy")).sample()
    assert float((out.norm(dim=-1) - 1).abs().max()) <= 4e-16
    assert FromFile(str(tmp_path / "x32.npy")).describe()["dtype"] == "float32"
    # printed with 3 decimals: rounding moves |x| by up to √d·5e-4, beyond float32's 1e-5 but within the digits
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", fmt="%.3f")
    out = FromFile(str(tmp_path / "x.csv")).sample()
    assert float((out.norm(dim=-1) - 1).abs().max()) <= 4e-16
    np.savetxt(tmp_path / "far.csv", 1.01 * x, delimiter=",", fmt="%.3f")  # 1 % off: not unit vectors
    with pytest.raises(ValueError, match="unit vectors"):
        FromFile(str(tmp_path / "far.csv")).sample()


def test_from_file_npz_array_choice(tmp_path):
    """PATH.npz:NAME picks an array; otherwise the only array, else the one named x0, else an error."""
    a, b = Uniform(n=3, d=2, seed=1).sample().numpy(), Uniform(n=4, d=2, seed=2).sample().numpy()
    np.savez(tmp_path / "two.npz", a=a, b=b)
    np.savez(tmp_path / "one.npz", anything=a)
    np.savez(tmp_path / "with_x0.npz", a=a, x0=b)
    assert FromFile(f"{tmp_path / 'two.npz'}:b").sample().shape == (1, 4, 2)
    assert FromFile(f"{tmp_path / 'two.npz'}:b").describe()["key"] == "b"
    assert FromFile(str(tmp_path / "one.npz")).sample().shape == (1, 3, 2)
    assert FromFile(str(tmp_path / "with_x0.npz")).sample().shape == (1, 4, 2)
    with pytest.raises(ValueError, match=r"holds 2 arrays \('a', 'b'\)"):
        FromFile(str(tmp_path / "two.npz")).sample()
    with pytest.raises(ValueError, match="no array 'c'"):
        FromFile(f"{tmp_path / 'two.npz'}:c").sample()


def test_from_file_unit_false_reads_points_of_r_d(tmp_path):
    np.save(tmp_path / "r.npy", np.array([[2.0, 0.0], [0.0, -3.0]]))
    out = FromFile(str(tmp_path / "r.npy"), unit=False).sample()
    assert torch.equal(out[0], torch.tensor([[2.0, 0.0], [0.0, -3.0]], dtype=torch.float64))


def test_looks_like_array_file_and_split(tmp_path):
    (tmp_path / "plain").write_text("1,0\n")
    assert looks_like_array_file(str(tmp_path / "plain")) and looks_like_array_file("missing.npy")
    assert looks_like_array_file("x.npz:first") and not looks_like_array_file("uniform")
    assert split_array_path("a/x.npz:first") == (Path("a/x.npz"), "first")
    assert split_array_path("a/x.npy") == (Path("a/x.npy"), None)


BAD_FILES = [
    ("missing.npy", None, "file not found"),
    ("x.txt", b"1,0\n", "not a .npy, .npz or .csv file"),
    ("garbage.npy", b"not numpy at all", "not a NumPy .npy file"),
    ("garbage.npz", b"not a zip", "not a NumPy .npz file"),
    ("ragged.csv", b"1,0\n0,1,0\n", "same number of values"),
    ("words.csv", b"a,b\n", "not a row of numbers"),
    ("empty.csv", b"# nothing\n", "no rows"),
    ("nan.csv", b"nan,0\n0,1\n", "finite"),
]


@pytest.mark.parametrize("name, content, word", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_from_file_bad_files_name_the_option(tmp_path, name, content, word):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError) as err:
        FromFile(str(tmp_path / name), name="--init").sample()
    msg = str(err.value)
    assert msg.startswith("--init") and word in msg and "\n" not in msg, msg


@pytest.mark.parametrize(
    "array, word",
    [
        (np.array([1.0, 0.0]), "shape (B, n, d) or (n, d)"),
        (np.ones((1, 1, 2, 2)) / math.sqrt(2), "shape (B, n, d) or (n, d)"),
        (np.array([[np.inf, 0.0]]), "finite"),
        (np.ones((2, 3)), "unit vectors"),
        (np.array(["a", "b"]), "real (float or integer) array"),
    ],
    ids=["1-D", "4-D", "inf", "not-unit", "strings"],
)
def test_from_file_bad_arrays_name_the_option(tmp_path, array, word):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(ValueError) as err:
        FromFile(str(tmp_path / "bad.npy"), name="--init").sample()
    assert str(err.value).startswith("--init") and word in str(err.value), str(err.value)


def test_read_array_default_key_for_matrices(tmp_path):
    np.savez(tmp_path / "w.npz", Q=np.eye(2), K=2 * np.eye(2))
    array, info = read_array(str(tmp_path / "w.npz"), name="--K", default_key="K")
    assert np.array_equal(array, 2 * np.eye(2)) and info["key"] == "K"


# ---------------------------------------------------------------------------------------------------
# validation


BAD_SPECS = [
    (Uniform, {"n": 0}, "n"),
    (Uniform, {"n": -3}, "n"),
    (Uniform, {"n": 2.5}, "n"),
    (Uniform, {"d": 1}, "d"),
    (Uniform, {"d": 0}, "d"),
    (Uniform, {"batch": 0}, "batch"),
    (Uniform, {"batch": 1.5}, "batch"),
    (Uniform, {"seed": -1}, "seed"),
    (Uniform, {"seed": 0.5}, "seed"),
    (Uniform, {"seed": "abc"}, "seed"),
    (Uniform, {"first_system": -1}, "first_system"),
    (OrthonormalFrame, {"n": 4, "d": 3}, "d"),
    (Cap, {"angle": 0.0}, "angle"),
    (Cap, {"angle": -0.1}, "angle"),
    (Cap, {"angle": 3.2}, "angle"),
    (Cap, {"angle": math.nan}, "angle"),
    (Equiangular, {"n": 3, "d": 3, "gamma0": -0.51}, "gamma0"),
    (Equiangular, {"n": 3, "d": 3, "gamma0": 1.0}, "gamma0"),
    (Equiangular, {"n": 3, "d": 3, "gamma0": math.inf}, "gamma0"),
    (Equiangular, {"n": 4, "d": 3, "gamma0": 0.0}, "d"),
]


@pytest.mark.parametrize(
    "cls, kwargs, word", BAD_SPECS, ids=[f"{c.__name__}-{w}-{i}" for i, (c, _, w) in enumerate(BAD_SPECS)]
)
def test_bad_spec_raises_naming_the_parameter(cls, kwargs, word):
    with pytest.raises(ValueError, match=rf"\b{re.escape(word)}\b"):
        cls(**kwargs).sample()


def test_make_initial_unknown_name():
    with pytest.raises(ValueError, match="init"):
        make_initial("gaussian", n=3, d=2)


def test_hemisphere_is_the_cap_of_half_angle_pi_over_2_only():
    assert Hemisphere(n=4, d=3).angle == math.pi / 2
    with pytest.raises(ValueError, match="angle of a hemisphere is π/2, got 0.2; use kind 'cap'"):
        Hemisphere(n=4, d=3, angle=0.2)


def test_equiangular_starts_are_uniformly_rotated():
    """Under a Haar rotation each token is uniform on the sphere: over 3000 systems the mean of x_1 is 0 to a few
    standard errors (1/√(3·3000) ≈ 0.011 per coordinate) and x_1 lies in each half-space half the time. QR
    without its sign fix gave a mean of about 0.34 along a fixed axis."""
    x = Equiangular(batch=3000, n=3, d=3, gamma0=0.2, seed=5).sample()
    first = x[:, 0]
    assert float(first.mean(0).abs().max()) < 5 / math.sqrt(3 * 3000)
    assert abs(float((first[:, 0] > 0).double().mean()) - 0.5) < 5 * 0.5 / math.sqrt(3000)
    gram = x @ x.transpose(1, 2)  # and the Gram matrix is still the equiangular one
    expected = 0.8 * torch.eye(3, dtype=torch.float64) + 0.2
    assert float((gram - expected).abs().max()) < 1e-12


def test_make_initial_names_an_option_the_kind_does_not_take():
    with pytest.raises(ValueError, match="init 'cap' takes the options"):
        make_initial("cap", batch=1, n=2, d=3, gamma0=0.1)
