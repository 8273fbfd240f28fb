"""Hardmax attention (β → ∞, (9.5)–(9.6)): tie sets and policies against hand computations, the three branches
of Example 9.3 against their closed forms, the tie flags, and the convergence of the β-dynamics (9.4) to the
hardmax dynamics uniformly on [0, T] at the exponential rate set by the score gap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tokensphere import Model
from tokensphere.experiments.variants import (
    example_9_3,
    example_9_3_branches,
    hardmax_limit,
    highest_other_index,
    tie_events,
)
from tokensphere.field import attention, plan, scores, velocity
from tokensphere.hardmax import hardmax_select

from helpers import sphere  # noqa: E402

Z0 = torch.tensor([[[1.0, 1.0], [-1.0, 1.0], [0.0, 0.0]]], dtype=torch.float64)


def test_argmax_sets_and_policies_by_hand():
    s = torch.tensor([[3.0, 1.0, 3.0, 2.0], [0.0, 5.0, 4.9, 5.0 - 1e-13], [1.0, 2.0, 3.0, 4.0], [7.0, 7.0, 7.0, 7.0]],
                     dtype=torch.float64)
    r = hardmax_select(s, tol=1e-12)
    want = torch.tensor([[0.5, 0, 0.5, 0], [0, 0.5, 0, 0.5], [0, 0, 0, 1.0], [0.25] * 4], dtype=torch.float64)
    torch.testing.assert_close(r.attention, want, rtol=0, atol=0)
    assert r.ties.tolist() == [True, True, False, True]
    low = hardmax_select(s, tol=1e-12, ties="lowest").attention.argmax(-1).tolist()
    assert low == [0, 1, 3, 0]
    assert hardmax_select(s, tol=0.0).ties.tolist() == [True, False, False, True]  # 5 − 1e-13 is no tie at tol 0
    picks = {tuple(hardmax_select(s, ties="random", seed=k).attention.argmax(-1).tolist()) for k in range(30)}
    assert all(p[0] in (0, 2) and p[1] in (1, 3) and p[2] == 3 for p in picks) and len(picks) > 2
    again = hardmax_select(s, ties="random", seed=4).attention
    torch.testing.assert_close(hardmax_select(s, ties="random", seed=4).attention, again, rtol=0, atol=0)


def test_hardmax_is_the_limit_of_softmax_attention_and_ignores_beta():
    x = sphere(2, 7, 3, seed=2)
    hard = attention(x, Model(beta=1.0, normalization="hardmax"))
    soft = attention(x, Model(beta=1e5))
    torch.testing.assert_close(soft, hard, rtol=0, atol=1e-12)  # generic points: no ties, gaps ≫ 1e-5
    torch.testing.assert_close(attention(x, Model(beta=7.0, normalization="hardmax")), hard, rtol=0, atol=0)
    assert plan(x, Model(normalization="hardmax")).backend == "dense"
    # on the sphere with Q = K = I each token attends only to itself: nothing moves
    assert float(velocity(x, Model(normalization="hardmax")).abs().max()) < 1e-15


def test_centered_value_term_is_9_4_by_hand():
    rng = np.random.default_rng(0)
    z = torch.tensor(rng.standard_normal((1, 5, 3)))
    V = rng.standard_normal((3, 3))
    beta = 0.7
    zn = z[0].numpy()
    s = beta * zn @ zn.T
    a = np.exp(s - s.max(1, keepdims=True))
    a /= a.sum(1, keepdims=True)
    want = np.einsum("ij,ijd->id", a, (zn[None, :, :] - zn[:, None, :]) @ V.T)  # Σ_j A_ij V (z_j − z_i)
    got = velocity(z, Model(beta=beta, V=torch.tensor(V), projection=False, centered=True))[0]
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="centered"):
        Model(normalization="uniform", centered=True)


def test_example_9_3_initial_velocities_by_policy():
    # at t = 0, C_3 = {1, 2, 3}; z_1, z_2 attend to themselves
    for ties, want in (("average", [0.0, 2.0 / 3.0]), ("lowest", [1.0, 1.0]), (highest_other_index, [-1.0, 1.0])):
        f = velocity(Z0, Model(normalization="hardmax", projection=False, centered=True, ties=ties))[0]
        np.testing.assert_allclose(f.numpy(), [[0, 0], [0, 0], want], rtol=0, atol=1e-15)


def test_example_9_3_three_branches_against_closed_forms():
    coarse, fine = example_9_3_branches(dt=4e-3, t_max=2.0), example_9_3_branches(dt=2e-3, t_max=2.0)
    assert [r.branch for r in fine] == ["midpoint", "z1", "z2"]
    for c, f in zip(coarse, fine):
        assert f.still == 0.0  # z_1, z_2 never move
        assert f.error < 0.3 * f.dt  # Euler against z_3(t) = c + (z_3(0) − c) e^{−t}: first order
        assert 1.7 < c.error / f.error < 2.3, (c.error, f.error)
    avg, low, high = fine
    assert (avg.ties == 1).all()  # z_3 sits on the exact tie between z_1 and z_2 all along
    assert low.ties[0] == 1 and (low.ties[1:] == 0).all()  # the tie at t = 0 only
    assert high.ties[0] == 1 and (high.ties[1:] == 0).all()


def test_example_9_3_random_policy_reaches_both_sides_and_is_reproducible():
    seen = {}
    for seed in range(40):
        r = example_9_3("random", tie_seed=seed, dt=1e-2, t_max=0.3, save=2)
        seen.setdefault(r.branch, (seed, r))
        if {"z1", "z2"} <= set(seen):
            break
    assert {"z1", "z2"} <= set(seen), set(seen)
    for _, r in seen.values():
        assert r.error < 0.3 * r.dt
    seed, r = seen["z2"]
    np.testing.assert_array_equal(example_9_3("random", tie_seed=seed, dt=1e-2, t_max=0.3, save=2).z3, r.z3)


def test_tie_events_count_the_flags():
    assert int(tie_events(Z0[0:1], Model(normalization="hardmax"))) == 1
    assert int(tie_events(sphere(1, 6, 3, seed=0), Model(normalization="hardmax"))) == 0
    eq = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)  # duplicates tie each other
    assert int(tie_events(eq, Model(beta=3.0))) == 2


def test_beta_dynamics_converge_to_hardmax_uniformly_on_0_T():
    res = hardmax_limit((10.0, 20.0, 30.0, 40.0), t_max=2.0, save=101)
    d = np.array(res.distances)
    assert np.all(np.diff(d) < 0) and d[-1] < 2e-6
    assert res.hardmax_error < 0.3 * 1e-3  # the hardmax run (Euler dt = 1e-3) follows its closed form
    # the softmax weights off the argmax are ~ e^{−β·gap}: the fitted exponential rate approaches the gap
    assert res.gap < res.rate < 1.4 * res.gap, (res.rate, res.gap)


def test_options_validated_and_stored():
    with pytest.raises(ValueError, match="ties"):
        Model(normalization="hardmax", ties="first")
    with pytest.raises(ValueError, match="tie_tol"):
        Model(normalization="hardmax", tie_tol=-1.0)
    with pytest.raises(ValueError, match="tie_seed"):
        Model(normalization="hardmax", tie_seed=-2)
    m = Model(normalization="hardmax", ties="random", tie_tol=1e-6, tie_seed=5, projection=False, centered=True)
    back = Model.from_spec(*m.to_spec())
    assert (back.normalization, back.ties, back.tie_tol, back.tie_seed, back.centered, back.projection) == (
        "hardmax", "random", 1e-6, 5, True, False)
    user = Model.from_spec(*Model(normalization="hardmax", ties=highest_other_index).to_spec())
    velocity(Z0[:, :2] * 2, user)  # no tie: the rule is not called
    with pytest.raises(ValueError, match="tie rule"):
        velocity(Z0, user)
    with pytest.raises(ValueError, match="ties rule"):
        velocity(Z0, Model(normalization="hardmax", ties=lambda c, s: torch.ones_like(s)))
    assert math.isfinite(float(scores(Z0, m).max()))


def test_cli_runs_example_9_3_lowest_branch_and_stores_the_options(tmp_path):
    from helpers import assert_one_line_error, invoke

    from tokensphere.trajectory import Trajectory

    start = tmp_path / "z0.npy"
    np.save(start, Z0[0].numpy())
    out = tmp_path / "run"
    r = invoke("simulate", "--out", out, "--init", start, "--normalization", "hardmax", "--no-projection",
               "--centered", "--ties", "lowest", "--tie-tol", "1e-10", "--solver", "euler", "--dt", 0.01,
               "--t-max", 1.0, "--save-at", 2)
    assert r.exit_code == 0, r.output
    run = Trajectory.load(out)
    m = run.model
    assert (m.normalization, m.ties, m.tie_tol, m.centered, m.projection) == ("hardmax", "lowest", 1e-10, True, False)
    z3 = run.final()[0, 2].numpy()
    np.testing.assert_allclose(z3, np.array([1.0, 1.0]) * (1 - 0.99 ** 100), rtol=0, atol=1e-12)  # Euler, exactly
    bad = invoke("simulate", "--out", tmp_path / "bad", "--n", 3, "--normalization", "hardmax", "--ties", "first")
    assert_one_line_error(bad, 2, "ties")


@pytest.mark.slow
def test_variants_report_sections_pass_their_verdicts():
    from tokensphere.report import Section
    from tokensphere.report.variants import variants_sections

    sections = variants_sections(quick=True)
    assert len(sections) == 4 and all(isinstance(s, Section) and s.figures for s in sections)
    outcomes = [v.outcome for s in sections for v in s.verdicts]
    assert "fail" not in outcomes and outcomes.count("pass") >= 12, outcomes


def test_energy_identities_are_not_claimed_for_the_variants():
    from tokensphere.energy import energy_rate

    x = sphere(1, 5, 3, seed=3)
    assert Model(beta=1.0).is_sa_toy
    for m in (Model(normalization="hardmax"), Model(normalization="sinkhorn"), Model(centered=True),
              Model(norm="ngpt")):
        assert not m.is_sa_toy
        with pytest.raises(ValueError):
            energy_rate(x, m, which="A")


def test_tie_rule_checked_at_the_precision_of_the_scores():
    """A correct rule (uniform weights over the argmax set) passes in float32 as in float64."""
    for dt in (torch.float32, torch.float64):
        s = torch.zeros(1, 11, 11, dtype=dt)  # every row a tie among 11
        res = hardmax_select(s, ties=lambda cand, scores: cand.to(scores.dtype) / cand.sum(-1, keepdim=True))
        assert torch.allclose(res.attention.sum(-1), torch.ones(1, 11, dtype=dt))


def test_hardmax_refuses_nan_and_rows_without_a_finite_score():
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        hardmax_select(torch.tensor([[float("nan"), 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="at least one finite entry"):
        hardmax_select(torch.tensor([[0.0, 1.0], [-math.inf, -math.inf]]))
