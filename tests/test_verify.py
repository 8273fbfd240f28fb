"""The theorem checks: all pass on the library, each has a time limit and turns errors into failed results,
and the comparisons are not vacuous (a broken field fails; tests/test_mutations.py does this systematically)."""

import math
import time

import numpy as np
import pytest
import torch

from tokensphere import Model, velocity
from tokensphere.experiments import theorems
from tokensphere.experiments.theorems import CHECKS, reference_velocity, run_check, run_checks


@pytest.mark.slow  # ~40 s; the default suite runs them all at small size (tests/test_mutations.py)
def test_all_theorem_checks_pass_at_default_size():
    results = run_checks()
    assert len(results) == len(CHECKS)
    failed = [r for r in results if not r.passed]
    assert not failed, failed
    assert all(r.plot and r.plot["series"] for r in results)  # every check has data for its figure
    assert sum(r.seconds for r in results) < 120  # the report and `make demo` run them all


def test_unknown_check_and_bad_size_are_clear_errors():
    with pytest.raises(ValueError, match="unknown check"):
        run_checks(["nope"])
    with pytest.raises(ValueError, match="size"):
        run_checks(["tau_star"], size="huge")
    with pytest.raises(ValueError, match="time_limit"):
        run_check("tau_star", time_limit=0)


def test_a_check_that_raises_is_a_failed_result(monkeypatch):
    def broken(size, budget):
        raise RuntimeError("boom")

    monkeypatch.setitem(CHECKS, "broken", broken)
    (r,) = run_checks(["broken"])
    assert not r.passed and "RuntimeError: boom" in r.detail


def test_a_check_that_would_hang_fails_within_its_time_limit(monkeypatch):
    """A field that makes the integrator crawl (a huge stiff multiple) is stopped by the budget, not waited for."""
    import tokensphere.field as field

    real = field._toy_dense
    monkeypatch.setattr(field, "_toy_dense", lambda x, w, *a, **k: 1e6 * real(x, w, *a, **k))
    start = time.perf_counter()
    (r,) = run_checks(["two_particles"], time_limit=2.0)
    assert not r.passed and time.perf_counter() - start < 10
    assert "time limit" in r.detail or "exceeded" in r.detail or "max_steps" in r.detail


def test_reference_velocity_is_the_paper_formula_on_a_hand_case():
    """Two tokens at a right angle, β = 0: SA gives ẋ_1 = P⊥_{x_1}((x_1 + x_2)/2) = x_2/2."""
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(reference_velocity(x, 0.0), [[0.0, 0.5], [0.5, 0.0]], atol=1e-15)
    # causal: token 1 attends to itself only
    np.testing.assert_allclose(reference_velocity(x, 0.0, causal=True)[0], [0.0, 0.0], atol=1e-15)
    # USA at β = 0 in the time scale e^β t equals original time; with β > 0 it is e^{−β} × original time
    y = np.array([[1.0, 0.0], [math.cos(1.0), math.sin(1.0)]])
    orig = reference_velocity(y, 2.0, normalization="uniform")
    np.testing.assert_allclose(reference_velocity(y, 2.0, normalization="uniform", time_scale="exp_beta"),
                               orig * math.exp(-2.0), rtol=1e-14)
    lib = velocity(torch.as_tensor(y)[None], Model(beta=2.0, normalization="uniform"))[0].numpy()
    np.testing.assert_allclose(lib, orig, rtol=1e-14)


def test_checks_use_the_thread_policy(monkeypatch):
    """run_checks runs under tokensphere.runtime's choice for its largest system (one thread), or the given count."""
    seen = []

    def probe(size, budget):
        seen.append(torch.get_num_threads())
        return theorems.CheckResult("probe", "", "", True)

    monkeypatch.setitem(CHECKS, "probe", probe)
    run_checks(["probe"])
    run_checks(["probe"], threads=2)
    assert seen == [1, 2]


def test_check_command_prints_writes_figures_and_fails_on_a_broken_field(tmp_path, monkeypatch):
    import json

    import matplotlib.image as mpimg
    from typer.testing import CliRunner

    import tokensphere.field as field
    from tokensphere.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["check", "tau_star", "kernel_reference", "--out", str(tmp_path / "ok")])
    assert res.exit_code == 0, res.output
    assert "2 passed, 0 failed" in res.stdout
    for key in ("tau_star", "kernel_reference"):
        img = mpimg.imread(tmp_path / "ok" / f"{key}.png")
        assert img.ndim == 3 and float(img[..., :3].std()) > 0.02
        data = json.loads((tmp_path / "ok" / f"{key}.json").read_text())
        assert data["passed"] is True and data["data"]["series"]
    real = field._toy_dense
    monkeypatch.setattr(field, "_toy_dense", lambda x, w, *a, **k: 0.5 * real(x, w, *a, **k))
    res = runner.invoke(app, ["check", "gradient_flows", "--out", str(tmp_path / "bad")])
    assert res.exit_code == 1 and "0 passed, 1 failed" in res.stdout
    res = runner.invoke(app, ["check", "nope", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown check" in res.output


def test_theorem_section_shows_the_table_and_one_figure_per_check():
    from tokensphere.report import theorem_section

    results = run_checks(["tau_star", "gradient_flows"], size="small")
    sec = theorem_section(results)
    assert len(sec.verdicts) == 2 and len(sec.figures) == 2
    assert all(f.png_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in sec.figures)
