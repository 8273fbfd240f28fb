"""`tokensphere simulate` inputs: starts from array files (--init), the model options that mirror the Model
API (--heads, --Q/--K/--QK/--V files, --mask, --uniform-count, random --score/--value ensembles), continuing a
run (--from-run: conflicts, overrides, the clock), and the thread policy (--threads). Each option is checked by
reading the saved run back; each bad input gives one error line naming the option and exit code 2."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from tokensphere import Trajectory
from tokensphere.ensembles import Ensemble

from helpers import assert_one_line_error, invoke  # noqa: E402

SHORT = ["--t-max", "0.5", "--save-at", "3"]


def unit_rows(shape, seed, dtype=np.float64):
    """Random unit vectors of the given shape, normalised in ``dtype``."""
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def run_ok(*args):
    res = invoke("simulate", *args)
    assert res.exit_code == 0, res.output
    return res


# ---------------------------------------------------------------------------------------------------------------
# --init PATH


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv"])
def test_init_from_n_by_d_file_is_the_start_of_every_system(tmp_path, suffix):
    x = unit_rows((5, 3), seed=1)
    path = tmp_path / f"start{suffix}"
    if suffix == ".npy":
        np.save(path, x)
    elif suffix == ".npz":
        np.savez(path, x0=x, other=np.zeros(2))  # two arrays: the one named x0 is the start
    else:
        np.savetxt(path, x, delimiter=",", fmt="%.17g")
    out = tmp_path / "run.zarr"
    run_ok(*SHORT, "--init", path, "--beta", "1,4", "--out", out)
    run = Trajectory.load(out)
    assert run.shape == (3, 2, 5, 3)
    for b in range(2):
        assert torch.allclose(run.positions[0, b], torch.from_numpy(x), atol=1e-15)
    init = run.metadata["init"]
    assert init["kind"] == "FromFile" and init["shape"] == [5, 3] and init["path"] == str(path.resolve())
    assert init["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_init_from_batch_file_and_npz_name(tmp_path):
    x = unit_rows((2, 4, 3), seed=2)
    np.savez(tmp_path / "starts.npz", first=x[:1], both=x)
    out = tmp_path / "run.zarr"
    run_ok(*SHORT, "--init", f"{tmp_path / 'starts.npz'}:both", "--beta", "1,9", "--out", out)
    run = Trajectory.load(out)
    assert run.shape == (3, 4, 4, 3)  # 2 β × 2 starts; start k shared by every β
    assert run.model.beta_tensor().tolist() == [1.0, 1.0, 9.0, 9.0]
    x0 = run.positions[0]
    assert torch.allclose(x0[0], torch.from_numpy(x[0]), atol=1e-15) and torch.equal(x0[0], x0[2])
    assert torch.allclose(x0[1], torch.from_numpy(x[1]), atol=1e-15) and torch.equal(x0[1], x0[3])
    assert run.metadata["init"]["key"] == "both"


def test_init_float32_normalised_npy_is_accepted(tmp_path):
    x = unit_rows((6, 3), seed=3, dtype=np.float32)
    assert float(np.abs(np.linalg.norm(x.astype(np.float64), axis=-1) - 1).max()) > 1e-10
    np.save(tmp_path / "x32.npy", x)
    out = tmp_path / "run.zarr"
    run_ok(*SHORT, "--init", tmp_path / "x32.npy", "--out", out)
    run = Trajectory.load(out)
    assert float((run.positions[0].norm(dim=-1) - 1).abs().max()) <= 4e-16  # put on the sphere in float64
    assert float((run.positions[0, 0] - torch.from_numpy(x).double()).abs().max()) < 1e-6
    assert run.metadata["init"]["dtype"] == "float32"


def test_init_file_agreeing_n_d_batch_are_accepted(tmp_path):
    np.save(tmp_path / "x.npy", unit_rows((2, 4, 3), seed=4))
    run_ok(*SHORT, "--init", tmp_path / "x.npy", "--n", "4", "--d", "3", "--batch", "2", "--out", tmp_path / "r.zarr")


@pytest.fixture
def bad_files(tmp_path):
    np.save(tmp_path / "ok.npy", unit_rows((4, 3), seed=5))
    np.save(tmp_path / "flat.npy", unit_rows((3,), seed=5))
    np.save(tmp_path / "four.npy", unit_rows((1, 1, 4, 3), seed=5))
    bad = unit_rows((4, 3), seed=5)
    bad[1, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    np.save(tmp_path / "long.npy", 2 * unit_rows((4, 3), seed=5))
    (tmp_path / "garbage.npy").write_bytes(b"definitely not numpy")
    (tmp_path / "ragged.csv").write_text("1,0,0\n0,1\n")
    np.savez(tmp_path / "two.npz", a=unit_rows((4, 3), seed=5), b=unit_rows((4, 3), seed=6))
    (tmp_path / "notes.txt").write_text("1,0,0\n")
    (tmp_path / "folder").mkdir()
    return tmp_path


BAD_INIT = [
    (["--init", "{tmp}/missing.npy"], "file not found"),
    (["--init", "{tmp}/garbage.npy"], "not a NumPy .npy file"),
    (["--init", "{tmp}/ragged.csv"], "same number of values"),
    (["--init", "{tmp}/two.npz"], "holds 2 arrays"),
    (["--init", "{tmp}/two.npz:c"], "no array 'c'"),
    (["--init", "{tmp}/notes.txt"], "not a .npy, .npz or .csv file"),
    (["--init", "{tmp}/folder"], "init must be one of"),
    (["--init", "{tmp}/flat.npy"], "shape (B, n, d) or (n, d)"),
    (["--init", "{tmp}/four.npy"], "shape (B, n, d) or (n, d)"),
    (["--init", "{tmp}/nan.npy"], "finite"),
    (["--init", "{tmp}/long.npy"], "unit vectors"),
    (["--init", "{tmp}/ok.npy", "--n", "5"], "--n 5 does not match"),
    (["--init", "{tmp}/ok.npy", "--batch", "2"], "--batch 2 does not match"),
    (["--init", "{tmp}/ok.npy", "--seed", "3"], "--seed"),
    (["--init", "{tmp}/ok.npy", "--gamma0", "0.1"], "--gamma0"),
]


@pytest.mark.parametrize("args, word", BAD_INIT, ids=[" ".join(a).replace("{tmp}/", "") for a, _ in BAD_INIT])
def test_bad_init_file_one_line_naming_init(bad_files, args, word):
    args = [a.replace("{tmp}", str(bad_files)) for a in args]
    res = invoke("simulate", *SHORT, *args, "--out", bad_files / "out.zarr")
    assert_one_line_error(res, 2, word)
    assert "--init" in res.stderr or "init must be" in res.stderr
    assert not (bad_files / "out.zarr").exists()


# ---------------------------------------------------------------------------------------------------------------
# model options


def test_heads_qk_and_head_reduction_reach_the_model(tmp_path):
    qk = np.random.default_rng(7).standard_normal((2, 3, 3))
    np.save(tmp_path / "qk.npy", qk)
    out = tmp_path / "run.zarr"
    run_ok(*SHORT, "--n", "5", "--heads", "2", "--head-reduction", "mean", "--QK", tmp_path / "qk.npy", "--out", out)
    model = Trajectory.load(out).model
    assert model.heads == 2 and model.head_reduction == "mean"
    assert torch.allclose(torch.as_tensor(model.QK).reshape(2, 3, 3), torch.from_numpy(qk))
    meta = Trajectory.load(out).metadata["weights"]["QK"]
    assert meta["shape"] == [2, 3, 3]
    assert meta["sha256"] == hashlib.sha256((tmp_path / "qk.npy").read_bytes()).hexdigest()


def test_q_k_v_mask_and_uniform_count_reach_the_model(tmp_path):
    rng = np.random.default_rng(8)
    q, k, v = rng.standard_normal((2, 3)), rng.standard_normal((2, 3)), rng.standard_normal((3, 3))
    mask = np.zeros((5, 5))
    mask[0, 4] = -np.inf
    mask[2, 3] = 0.5
    for name, a in (("q", q), ("k", k), ("v", v), ("mask", mask)):
        np.save(tmp_path / f"{name}.npy", a)
    out = tmp_path / "run.zarr"
    run_ok(*SHORT, "--n", "5", "--Q", tmp_path / "q.npy", "--K", tmp_path / "k.npy", "--V", tmp_path / "v.npy",
           "--mask", tmp_path / "mask.npy", "--causal", "--normalization", "uniform", "--uniform-count", "attended",
           "--out", out)
    model = Trajectory.load(out).model
    for got, want in ((model.Q, q), (model.K, k), (model.V, v), (model.mask, mask)):
        assert torch.equal(torch.as_tensor(got).reshape(want.shape), torch.from_numpy(want))
    assert model.causal and model.normalization == "uniform" and model.uniform_count == "attended"


def test_per_system_matrices_follow_the_system_layout(tmp_path):
    v = np.stack([np.eye(3), -np.eye(3), 2 * np.eye(3), np.eye(3)])  # B = 2 β × 2 starts
    np.save(tmp_path / "v.npy", v)
    out = tmp_path / "run.zarr"
    run_ok(*SHORT, "--n", "4", "--beta", "1,2", "--batch", "2", "--V", tmp_path / "v.npy", "--out", out)
    assert torch.equal(torch.as_tensor(Trajectory.load(out).model.V).reshape(4, 3, 3), torch.from_numpy(v))


def test_random_ensemble_shared_by_default_and_recorded(tmp_path):
    out = tmp_path / "run.zarr"
    run_ok(*SHORT, "--n", "4", "--d", "3", "--beta", "1,4", "--batch", "2", "--score", "goe", "--value", "psd",
           "--weights-seed", "11", "--out", out)
    run = Trajectory.load(out)
    ens = Ensemble(score="goe", value="psd", share="shared")
    qk, v = ens.draw(3, ens.keys(11, 3, [0], [0]))
    assert torch.allclose(torch.as_tensor(run.model.QK).reshape(3, 3), qk[0])  # one draw for every system
    assert torch.allclose(torch.as_tensor(run.model.V).reshape(3, 3), v[0])
    assert run.metadata["weights"]["ensemble"] == {"score": "goe", "value": "psd", "share": "shared", "redraw": None,
                                                   "seed": 11}


def test_random_ensemble_independent_draws_per_system(tmp_path):
    out = tmp_path / "run.zarr"
    run_ok(*SHORT, "--n", "4", "--beta", "1,4", "--batch", "2", "--score", "ginibre_product", "--share",
           "independent", "--weights-seed", "3", "--out", out)
    run = Trajectory.load(out)
    ens = Ensemble(score="ginibre_product", share="independent")
    qk, _ = ens.draw(3, ens.keys(3, 3, [0, 0, 1, 1], [0, 1, 0, 1]))
    got = torch.as_tensor(run.model.QK).reshape(4, 3, 3)
    assert torch.allclose(got, qk) and not torch.allclose(got[0], got[1])
    assert run.model.V == "identity"


@pytest.fixture
def weight_files(tmp_path):
    rng = np.random.default_rng(9)
    np.save(tmp_path / "q.npy", rng.standard_normal((2, 3)))
    np.save(tmp_path / "q4.npy", rng.standard_normal((2, 4)))  # d = 4, the run has d = 3
    np.save(tmp_path / "m3.npy", rng.standard_normal((3, 3)))
    np.save(tmp_path / "m32.npy", rng.standard_normal((3, 2)))
    np.save(tmp_path / "b5.npy", rng.standard_normal((5, 3, 3)))  # 5 per-system matrices, the run has 1 or 2
    np.save(tmp_path / "h3.npy", rng.standard_normal((3, 3, 3)))  # 3 heads
    np.save(tmp_path / "nan.npy", np.full((3, 3), np.nan))
    np.save(tmp_path / "mask5.npy", np.zeros((5, 5)))
    np.save(tmp_path / "mask4.npy", np.zeros((4, 4)))
    np.save(tmp_path / "maskb.npy", np.zeros((3, 4, 4)))
    np.save(tmp_path / "masknan.npy", np.full((4, 4), np.nan))
    row = np.zeros((4, 4))
    row[0] = -np.inf  # token 0 attends to none
    np.save(tmp_path / "maskrow.npy", row)
    (tmp_path / "garbage.npy").write_bytes(b"nope")
    return tmp_path


BAD_MODEL = [
    (["--Q", "{tmp}/missing.npy", "--K", "{tmp}/q.npy"], "--Q: file not found"),
    (["--Q", "{tmp}/garbage.npy", "--K", "{tmp}/q.npy"], "--Q: cannot read"),
    (["--Q", "{tmp}/q.npy", "--K", "{tmp}/q4.npy"], "--K"),
    (["--Q", "{tmp}/q.npy"], "--Q and --K must be given together"),
    (["--beta", "3", "--beta", "2"], "beta holds the value 2 twice"),  # with the 1,2 every case passes
    (["--QK", "{tmp}/m32.npy"], "--QK"),
    (["--QK", "{tmp}/nan.npy"], "--QK"),
    (["--QK", "{tmp}/b5.npy"], "--QK"),
    (["--QK", "{tmp}/m3.npy", "--Q", "{tmp}/q.npy", "--K", "{tmp}/q.npy"], "--QK conflicts with --Q"),
    (["--V", "{tmp}/m32.npy"], "--V"),
    (["--V", "{tmp}/b5.npy"], "--V"),
    (["--V", "{tmp}/missing.npy"], "--V: file not found"),
    (["--V", "{tmp}/m3.npy", "--repulsive"], "--repulsive conflicts with --V"),
    (["--heads", "2", "--QK", "{tmp}/h3.npy"], "--QK"),
    (["--heads", "2"], "heads"),
    (["--heads", "0"], "heads"),
    (["--head-reduction", "max"], "head_reduction"),
    (["--mask", "{tmp}/mask5.npy"], "--mask"),
    (["--mask", "{tmp}/maskb.npy"], "--mask"),
    (["--mask", "{tmp}/masknan.npy"], "--mask"),
    (["--mask", "{tmp}/maskrow.npy"], "mask"),
    (["--mask", "{tmp}/garbage.npy"], "--mask: cannot read"),
    (["--uniform-count", "some"], "uniform_count"),
    (["--score", "wishart"], "score"),
    (["--value", "wishart"], "value"),
    (["--score", "goe", "--share", "sometimes"], "share"),
    (["--score", "goe", "--QK", "{tmp}/m3.npy"], "--score conflicts with --QK"),
    (["--value", "psd", "--repulsive"], "--value conflicts with --repulsive"),
    (["--weights-seed", "3"], "--weights-seed applies to random weights"),
    (["--share", "per_beta"], "--share applies to random weights"),
    (["--score", "goe", "--weights-seed", "-1"], "weights_seed"),
    (["--score", "goe", "--heads", "2"], "--heads conflicts with --score"),
]


@pytest.mark.parametrize("args, word", BAD_MODEL, ids=[" ".join(a).replace("{tmp}/", "") for a, _ in BAD_MODEL])
def test_bad_model_option_one_line_naming_it(weight_files, args, word):
    args = [a.replace("{tmp}", str(weight_files)) for a in args]
    res = invoke("simulate", *SHORT, "--n", "4", "--d", "3", "--beta", "1,2", *args, "--out", weight_files / "o.zarr")
    assert_one_line_error(res, 2, word)
    assert not (weight_files / "o.zarr").exists()


# ---------------------------------------------------------------------------------------------------------------
# --from-run


@pytest.fixture
def saved(tmp_path):
    """A saved run: 3 β × 2 starts, n = 5, d = 3, t ∈ [0, 1] (3 saved times)."""
    path = tmp_path / "first.zarr"
    run_ok("--n", "5", "--d", "3", "--batch", "2", "--beta", "1,4,9", "--t-max", "1", "--save-at", "3",
           "--seed", "2", "--out", path)
    np.save(tmp_path / "x.npy", unit_rows((5, 3), seed=1))
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "data.txt").write_text("not a run")
    return path


@pytest.mark.parametrize("target, word", [("x.npy", "x.npy"), ("plain", "plain"), ("missing.zarr", "missing.zarr")])
def test_from_run_not_a_run_is_one_line(saved, target, word):
    res = invoke("simulate", "--from-run", saved.parent / target, "--out", saved.parent / "out.zarr")
    assert_one_line_error(res, 2, word)
    assert not (saved.parent / "out.zarr").exists()


@pytest.mark.parametrize(
    "extra, names",
    [
        (["--n", "6"], "--n"),
        (["--d", "4", "--seed", "1"], "--d, --seed"),
        (["--init", "cap", "--cap-angle", "0.5"], "--init, --cap-angle"),
        (["--batch", "2"], "--batch"),
        (["--gamma0", "0.1"], "--gamma0"),
        (["--init", "{tmp}/x.npy"], "--init"),
    ],
)
def test_from_run_refuses_start_options(saved, extra, names):
    extra = [a.replace("{tmp}", str(saved.parent)) for a in extra]
    res = invoke("simulate", "--from-run", saved, *extra, "--out", saved.parent / "out.zarr")
    assert_one_line_error(res, 2, f"do not combine it with {names}")


def test_from_run_keeps_beta_per_system_and_continues_the_clock(saved):
    out = saved.parent / "second.zarr"
    res = run_ok("--from-run", saved, "--t-max", "2", "--save-at", "3", "--out", out)
    assert f"continued from {saved} at t = 1; model and solver as saved" in res.stdout
    a, b = Trajectory.load(saved), Trajectory.load(out)
    assert b.model.beta_tensor().tolist() == [1.0, 1.0, 4.0, 4.0, 9.0, 9.0]
    assert b.times.tolist() == [1.0, 1.5, 2.0]
    assert torch.equal(b.positions[0], a.positions[-1])
    assert b.solver.method == a.solver.method and b.solver.rtol == a.solver.rtol
    cont = b.metadata["continuation"]
    assert cont["t0"] == 1.0 and not cont["overrides"]


def test_from_run_default_t_max_runs_the_saved_duration_again(saved):
    out = saved.parent / "second.zarr"
    run_ok("--from-run", saved, "--save-at", "3", "--out", out)
    assert Trajectory.load(out).times.tolist() == [1.0, 1.5, 2.0]


def test_from_run_explicit_model_and_solver_options_override(saved, tmp_path):
    out = tmp_path / "second.zarr"
    np.save(tmp_path / "v.npy", -np.eye(3))
    res = run_ok("--from-run", saved, "--t-max", "1.5", "--save-at", "3", "--beta", "2,3,5", "--solver", "rk4",
                 "--dt", "0.05", "--V", tmp_path / "v.npy", "--out", out)
    assert "overrides:" in res.stdout and "beta" in res.stdout
    b = Trajectory.load(out)
    assert b.model.beta_tensor().tolist() == [2.0, 2.0, 3.0, 3.0, 5.0, 5.0]
    assert b.solver.method == "rk4" and b.solver.dt == 0.05
    assert torch.equal(torch.as_tensor(b.model.V).reshape(3, 3), -torch.eye(3, dtype=torch.float64))
    assert set(b.metadata["continuation"]["overrides"]) >= {"beta", "solver", "V"}  # solver: method and dt


def test_from_run_beta_must_fit_the_systems(saved):
    res = invoke("simulate", "--from-run", saved, "--beta", "1,2,3,4", "--out", saved.parent / "o.zarr")
    assert_one_line_error(res, 2, "--beta gives 4 values but the saved run has B = 6 systems")


# ---------------------------------------------------------------------------------------------------------------
# --threads


def _capture(monkeypatch):
    seen: dict = {}

    def fake(*args, **kwargs):
        seen.update(kwargs)
        raise ValueError("captured")

    monkeypatch.setattr("tokensphere.cli.simulate.simulate", fake)
    return seen


def test_threads_default_is_the_library_policy(monkeypatch, tmp_path):
    seen = _capture(monkeypatch)
    before = torch.get_num_threads()
    invoke("simulate", *SHORT, "--out", tmp_path / "r.zarr")
    assert "threads" not in seen or seen["threads"] is None  # auto: simulate applies choose_threads
    assert torch.get_num_threads() == before


def test_threads_explicit_is_passed_to_simulate(monkeypatch, tmp_path):
    seen = _capture(monkeypatch)
    before = torch.get_num_threads()
    try:
        invoke("--threads", "2", "simulate", *SHORT, "--out", tmp_path / "r.zarr")
    finally:
        torch.set_num_threads(before)
    assert seen["threads"] == 2


def test_threads_help_says_auto():
    res = invoke("--help")
    assert "auto" in res.stdout and "512" in res.stdout


def test_feedforward_file_is_the_model_of_the_run(tmp_path):
    """--feedforward FILE.npz (w, a, b) and --activation build the term w σ(a x + b) of (2.8): the stored run's
    field equals a hand-computed attention + feed-forward field (NumPy) at its first saved state."""
    rng = np.random.default_rng(5)
    w, a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 3)), rng.standard_normal(4)
    np.savez(tmp_path / "ff.npz", w=w, a=a, b=b)
    out = tmp_path / "r.zarr"
    run_ok("--out", str(out), "--n", "5", "--d", "3", "--feedforward", str(tmp_path / "ff.npz"),
           "--activation", "tanh", *SHORT)
    traj = Trajectory.load(out)
    from tokensphere import velocity
    x = traj.positions[0, 0].numpy()
    s = x @ x.T
    att = np.exp(s - s.max(1, keepdims=True))
    att /= att.sum(1, keepdims=True)
    f = att @ x + np.tanh(x @ a.T + b) @ w.T
    want = f - (f * x).sum(1, keepdims=True) * x
    got = velocity(traj.positions[0], traj.model)[0].numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert traj.metadata["weights"]["feedforward"]["activation"] == "tanh"


@pytest.mark.parametrize(("arrays", "extra", "word"), [
    ({"w": np.ones((3, 4))}, [], "--feedforward"),
    ({"w": np.ones((3, 4)), "a": np.ones((4, 3))}, ["--activation", "sigmoid"], "activation"),
    (None, ["--activation", "gelu"], "--activation"),
])
def test_bad_feedforward_one_line(tmp_path, arrays, extra, word):
    args = ["--out", str(tmp_path / "r.zarr"), "--n", "4", "--d", "3", *SHORT, *extra]
    if arrays is not None:
        np.savez(tmp_path / "ff.npz", **arrays)
        args += ["--feedforward", str(tmp_path / "ff.npz")]
    assert_one_line_error(invoke("simulate", *args), 2, word)


@pytest.mark.parametrize("extra", [["--ties", "lowest"], ["--tie-tol", "1e-9"], ["--tie-seed", "3"]])
def test_hardmax_tie_options_are_refused_for_other_normalizations(tmp_path, extra):
    args = ["--out", str(tmp_path / "r.zarr"), "--n", "4", "--d", "3", *SHORT, *extra]
    assert_one_line_error(invoke("simulate", *args), 2, extra[0])
    assert not (tmp_path / "r.zarr").exists()


def test_refused_input_leaves_no_empty_output_folder(tmp_path):
    """The early check of --out does not create its folder: a later refusal leaves nothing behind, and a good
    run creates it when it saves."""
    assert_one_line_error(invoke("simulate", "--n", "-5", "--out", str(tmp_path / "new" / "r.zarr")), 2, "n must be")
    assert not (tmp_path / "new").exists()
    res = invoke("simulate", "--n", "4", "--d", "3", *SHORT, "--out", str(tmp_path / "new" / "deeper" / "r.zarr"))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "new" / "deeper" / "r.zarr").is_dir()
