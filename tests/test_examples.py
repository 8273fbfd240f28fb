"""Every example runs (at reduced size) and writes its figure."""

import importlib.util
from pathlib import Path

import matplotlib.image

ROOT = Path(__file__).resolve().parent.parent


def _run(name, argv):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main(argv)


def test_quickstart(tmp_path):
    out = tmp_path / "q.png"
    traj = _run("quickstart", ["--out", str(out), "--t-max", "3", "--seeds", "2"])
    assert matplotlib.image.imread(out).shape[0] > 100
    assert traj.positions.shape == (61, 6, 32, 2)


def test_phase_diagram_example(tmp_path):
    out = tmp_path / "pd.png"
    ds = _run("phase_diagram", ["--out", str(out), "--store", str(tmp_path / "pd.zarr"), "--batch", "4",
                                "--n-beta", "4", "--t-max", "6"])
    assert matplotlib.image.imread(out).shape[0] > 100
    assert ds["clustered_fraction"].shape == (2, 4, 61)
    again = _run("phase_diagram", ["--out", str(out), "--store", str(tmp_path / "pd.zarr"), "--batch", "4",
                                   "--n-beta", "4", "--t-max", "6"])  # resumes: nothing left to compute
    assert again["clustered_fraction"].equals(ds["clustered_fraction"])


def test_kuramoto_example(tmp_path):
    out = tmp_path / "k.png"
    kur, sa = _run("kuramoto", ["--out", str(out), "--n", "32", "--t-max", "10", "--couplings", "4"])
    assert matplotlib.image.imread(out).shape[0] > 100
    assert kur.theta.shape == (81, 4, 32) and sa.theta.shape == (81, 4, 32)


def test_meanfield_example(tmp_path):
    out = tmp_path / "mf.png"
    res = _run("meanfield", ["--out", str(out), "--n-max", "64", "--seeds", "4", "--betas", "4", "--systems", "128"])
    assert matplotlib.image.imread(out).shape[0] > 100
    assert res["wasserstein"]["w1"].shape == (2,)
