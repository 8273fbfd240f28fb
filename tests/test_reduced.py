"""Cluster-level dynamics (metastable time scales, Problem 1): exact on exactly clustered states, and the
predicted merge time against the full system where both can run."""

from __future__ import annotations

import pytest
import torch

import tokensphere as ts
from tokensphere.analysis import ClusterCountChanged
from tokensphere.experiments.reduced import cluster_model, predicted_merge_time, reduce_to_clusters


def test_cluster_model_is_the_full_field_on_exactly_clustered_states():
    """Tokens stacked exactly on K points with multiplicities m_k: every token's velocity equals the
    cluster-level field of its point (the softmax over n tokens = masses in the scores)."""
    centres = ts.sample_sphere(1, 3, 4, seed=2)[0]
    masses = [4, 1, 2]
    x = torch.cat([c.expand(m, 4) for c, m in zip(centres, masses)]).unsqueeze(0)
    full = ts.velocity(x, ts.Model(beta=3.0))[0]
    c, m = reduce_to_clusters(x[0])
    reduced = ts.velocity(c.unsqueeze(0), cluster_model(3.0, m))[0]
    order = [int(torch.argmin((c - centre).norm(dim=-1))) for centre in centres]
    expect = torch.cat([reduced[k].expand(mk, 4) for k, mk in zip(order, masses)])
    assert torch.allclose(full, expect, rtol=0, atol=1e-14)
    assert sorted(m.tolist()) == [1.0, 2.0, 4.0]


@pytest.mark.parametrize("beta, seed", [(3.0, 1), (4.0, 0)])
def test_predicted_merge_time_matches_the_full_system(beta, seed):
    """From a two-cluster state at t = 30 (n = 12 on the circle), the full system and the cluster-level model
    reach the next merge at the same time (within 1 %), the reduced run with far fewer steps."""
    start = ts.simulate(ts.Uniform(batch=1, n=12, d=2, seed=seed), beta, t_max=30.0, save_at=2, rtol=1e-10,
                        atol=1e-12)
    full = ts.simulate(start, t_max=5030.0, save_at=2, events=[ClusterCountChanged(1e-3)], store=False)
    t_full = float(full.event_time[0])
    pred = predicted_merge_time(start.final()[0], beta, t0=30.0, t_max=5030.0)
    assert pred["clusters"] == 2
    assert abs(pred["time"] - t_full) <= 0.01 * (t_full - 30.0)
    assert pred["steps"] * 5 < int(full.steps[0])


def test_reduced_model_rejects_usa_and_bad_masses():
    with pytest.raises(ValueError, match="softmax"):
        cluster_model(1.0, torch.ones(3), normalization="uniform")
    with pytest.raises(ValueError, match="sizes"):
        cluster_model(1.0, torch.tensor([1.0, 0.0]))
    single = predicted_merge_time(ts.sample_sphere(1, 1, 3, seed=0)[0].expand(5, 3).clone(), 2.0)
    assert single["clusters"] == 1 and single["time"] == float("inf")


def test_reduced_and_metastability_name_bad_times():
    import pytest
    import torch

    from tokensphere.experiments.metastability import metastability_runs
    from tokensphere.experiments.reduced import predicted_merge_time

    with pytest.raises(ValueError, match="t_max"):
        metastability_runs(t_max=0.01, starts=1, n=3)
    x = torch.nn.functional.normalize(torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), dim=-1)
    with pytest.raises(ValueError, match="t_max"):
        predicted_merge_time(x, 1.0, t0=5.0, t_max=1.0)
