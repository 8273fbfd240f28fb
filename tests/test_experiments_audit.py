"""Audit of the experiments, the theorem checks, the probe and the report: each test checks an independent truth
(the data a section shows, an invariance, a hand computation) and failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest

from tokensphere.report import preset_comparison_section
from tokensphere.sweep.phase import PhaseDiagram, run_phase_diagram


@pytest.fixture(scope="module")
def tiny_phase(tmp_path_factory):
    """A tiny phase diagram (d = 2, two β, 4 starts of 6 tokens, t ≤ 0.2): seconds."""
    out = tmp_path_factory.mktemp("phase") / "a.zarr"
    return run_phase_diagram(PhaseDiagram(dims=(2,), betas=(0.5, 1.0), batch=4, n=6, n_times=3, t_max=0.2), out)


def test_preset_comparison_text_follows_the_measured_difference(tiny_phase, tmp_path):
    """The section's conclusion must be read off the two datasets: identical data show no bias, and a difference of
    many standard errors is called a bias (before the fix the text claimed a bias whatever the data)."""
    same = preset_comparison_section(tiny_phase, tiny_phase.copy(deep=True), tmp_path)
    assert "bias of the scheme, not noise" not in same.text
    assert "no bias" in same.text
    shifted = tiny_phase.copy(deep=True)
    shifted["clustered_fraction"] = shifted["clustered_fraction"] + 0.3
    se = float(np.sqrt(2) * tiny_phase["clustered_fraction_se"].max())
    assert 0.3 > 3 * se  # the shift is many standard errors (independent of the code: the data's own SE)
    biased = preset_comparison_section(shifted, tiny_phase, tmp_path)
    assert "bias of the scheme, not noise" in biased.text
    assert "0.300" in biased.text


def test_optimal_section_describes_the_experiment_it_shows():
    """The repulsive-flow section must speak of the configuration in its data: for n = 4 points on S² (the
    tetrahedron) neither its text nor its verdicts may name the icosahedron of n = 12 (hard-coded before the fix)."""
    from tokensphere.experiments.optimal import OptimalExperiment, flow_arrival, known_table
    from tokensphere.optimal.designs import describe
    from tokensphere.optimal.known import simplex
    from tokensphere.optimal.search import search
    from tokensphere.report.optimal import optimal_section

    flow = flow_arrival(4, 3, 1.0, starts=2, seed=0)
    res = search(4, 3, 1.0, restarts=4, batch=4, seed=0)
    exp = OptimalExperiment(flow, res, describe(res.x, 1.0), known_table(5.0, restarts=4,
                                                                        configurations=(simplex(3),)))
    section = optimal_section(exp)
    words = section.text + " ".join(f"{v.name} {v.reference}" for v in section.verdicts)
    assert "icosahedron" not in words and "n = 12" not in words and "1/√5" not in words
    assert "n = 4, d = 3" in section.text
    # the tetrahedron's inner products seen from one point: 1 once, −1/3 three times (hand value)
    row = next(v for v in section.verdicts if v.name.startswith("the flow's arrival state"))
    assert "-0.3333 × 3" in row.reference


@pytest.mark.parametrize("call, word", [
    (lambda c, m, t: c.inner_product_histograms([]), "states"),
    (lambda c, m, t: c.simulate_layers(m, t, 0), "layers"),
    (lambda c, m, t: c.simulate_layers(m, t, -1), "layers"),
])
def test_probe_comparison_names_the_bad_argument(call, word):
    """No text or no layer is a ValueError naming the argument (before: IndexError, or an error naming t_max)."""
    import torch

    from tokensphere import Model
    from tokensphere.probe import compare

    with pytest.raises(ValueError, match=word):
        call(compare, Model(beta=1.0), torch.randn(4, 3, dtype=torch.float64))


@pytest.mark.parametrize("n_times", [2, 3, 5])
def test_metastability_runs_saves_up_to_t_max(n_times):
    """The saved times are 0 and log-spaced times ending at t_max, for every allowed n_times ≥ 2 (before the fix,
    n_times = 2 saved [0, 0.05] only: np.geomspace of one point is its start)."""
    from tokensphere.experiments import metastability_runs

    traj = metastability_runs(betas=(1.0,), starts=1, n=4, t_max=5.0, n_times=n_times)
    t = traj.times.numpy()
    assert len(t) == n_times and t[0] == 0.0 and t[-1] == pytest.approx(5.0, rel=1e-12)
    assert np.all(np.diff(t) > 0)


def test_trajectory_text_claims_a_monotone_energy_only_where_one_exists():
    """(3.6)/Lemma 3.7 give a monotone energy for Q = K = I, V = ±I only: for general QᵀK the text must not state
    that E_β is monotone (its verdict row says "not measured"); the toy model keeps the statement."""
    import torch

    from tokensphere import Model, simulate
    from tokensphere.init import sample_sphere
    from tokensphere.report import trajectory_sections

    x0 = sample_sphere(1, 4, 3, seed=0)
    qk = torch.tensor([[1.0, 0.5, 0.0], [-0.3, 0.8, 0.2], [0.0, 0.1, 1.2]], dtype=torch.float64)
    general = trajectory_sections(simulate(x0, model=Model(beta=1.0, QK=qk), t_max=0.5, save_at=3), "g")[0]
    assert general.verdicts[0].passed is None  # the energy row: not measured for this model
    assert "is monotone along exact flows" not in general.text
    toy = trajectory_sections(simulate(x0, model=Model(beta=1.0), t_max=0.5, save_at=3), "t")[0]
    assert "is monotone along exact flows" in toy.text


def test_gradient_check_order_is_a_slope_in_the_step_count():
    """The adjoint's measured order must be the slope of log difference against log step count, so step counts
    that do not double still give RK4's order 4 (before the fix, log₂ of the ratio: 6.5 for steps 8 and 24)."""
    import math

    from tokensphere.experiments.control import gradient_check

    r = gradient_check(steps=(8, 24))
    d0, d1 = r["adjoint_rel_difference"]
    assert r["adjoint_order"][0] == pytest.approx(math.log(d0 / d1) / math.log(3.0), rel=1e-12)  # hand slope
    assert abs(r["adjoint_order"][0] - 4.0) <= 0.5  # RK4
    with pytest.raises(ValueError, match="steps"):
        gradient_check(steps=(16, 8))


def test_empty_grids_and_repeated_steps_are_refused():
    from tokensphere.experiments.layers import splitting_orders
    from tokensphere.experiments.noise import noise_phase_diagram

    with pytest.raises(ValueError, match="at least one value"):
        noise_phase_diagram(sigmas=[])
    with pytest.raises(ValueError, match="at least one value"):
        noise_phase_diagram(betas=[])
    with pytest.raises(ValueError, match="all distinct"):
        splitting_orders(steps=(0.2, 0.1, 0.1))
