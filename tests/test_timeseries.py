"""Merge events and plateaus on hand-built label sequences with known answers."""

import pytest
import torch

from tokensphere.analysis import Merge, merge_events, plateaus


def test_merge_events_known_sequence():
    times = torch.tensor([0.0, 1.0, 2.0, 3.0])
    # system 0: {0},{1},{2},{3} → {0,1},{2},{3} → {0,1,2,3} (three clusters at once) → unchanged
    # system 1: a relabelling without merging ({2,3} keeps its members) must not count
    lab = torch.tensor(
        [
            [[0, 1, 2, 3], [0, 1, 2, 2]],
            [[0, 0, 2, 3], [0, 1, 2, 2]],
            [[0, 0, 0, 0], [0, 1, 2, 2]],
            [[0, 0, 0, 0], [0, 1, 2, 2]],
        ]
    )
    ev = merge_events(times, lab)
    assert ev == [
        Merge(system=0, t_before=0.0, t_after=1.0, sizes=(1, 1)),
        Merge(system=0, t_before=1.0, t_after=2.0, sizes=(2, 1, 1)),
    ]
    assert ev[0].pairwise and not ev[1].pairwise


def test_split_is_not_a_merge():
    times = torch.tensor([0.0, 1.0])
    lab = torch.tensor([[[0, 0, 0]], [[0, 1, 1]]])  # one cluster falls apart into two
    assert merge_events(times, lab) == []


def test_plateaus_known_sequence():
    times = torch.tensor([0.0, 1.0, 2.0, 5.0, 9.0])
    counts = torch.tensor([[4, 1], [3, 1], [3, 1], [3, 1], [1, 1]])
    p0 = [p for p in plateaus(times, counts) if p.system == 0]
    assert [(p.count, p.t_start, p.t_end) for p in p0] == [(4, 0.0, 0.0), (3, 1.0, 5.0), (1, 9.0, 9.0)]
    assert p0[1].length == 4.0
    p1 = [p for p in plateaus(times, counts) if p.system == 1]
    assert [(p.count, p.t_start, p.t_end) for p in p1] == [(1, 0.0, 9.0)]


def test_metastability_summary_counts_the_merges():
    """The figure's data agree with merge_events on a real run (β = 9 on the circle: mostly pairwise merges)."""
    from tokensphere.analysis import cluster_labels
    from tokensphere.experiments import metastability_data, metastability_runs

    traj = metastability_runs(betas=(9.0,), starts=4, t_max=40.0, n_times=60)
    data = metastability_data(traj)
    stats = data["by_beta"]["9"]
    ev = merge_events(traj.times, cluster_labels(traj.positions, 1e-3))
    assert stats["merge_events"] == len(ev) > 0
    assert sum(stats["clusters_merged_at_once"].values()) == len(ev)
    assert stats["pairwise_fraction"] > 0.5


def test_times_must_match_the_saved_series():
    import pytest

    labels = torch.zeros(3, 1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="times must have shape"):
        merge_events(torch.tensor([0.0, 1.0]), labels)
    with pytest.raises(ValueError, match="times must have shape"):
        merge_events(torch.tensor([0.0, 1.0, 2.0, 3.0]), labels)
    with pytest.raises(ValueError, match="times must have shape"):
        plateaus(torch.tensor([0.0, 1.0]), torch.ones(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must have shape"):
        merge_events(torch.tensor([0.0, 1.0, 2.0]), labels[:, 0])


def test_diameter_of_a_tight_cluster_far_from_the_origin():
    """max |z_i − z_j| from the differences themselves: 30 points within 1e-8 of (1, 0, 0); the reference is
    the largest pairwise distance computed coordinate-wise in float64."""
    from tokensphere.analysis.geometry import diameter

    g = torch.Generator().manual_seed(0)
    z = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64) + 1e-8 * torch.randn(30, 3, generator=g, dtype=torch.float64)
    exact = max(float(torch.linalg.vector_norm(z[i] - z[j])) for i in range(30) for j in range(30))
    assert abs(float(diameter(z)) - exact) <= 1e-12 * exact


def test_a_stopped_systems_nan_tail_is_left_out_with_until():
    """After a terminal event the saved positions are NaN (read as n singleton clusters): with until=event_time
    the plateaus and merges cover only the times the system ran, so every plateau lies on finite positions."""
    from tokensphere import Uniform, simulate
    from tokensphere.analysis import ClusterCountChanged, cluster_count, cluster_labels

    traj = simulate(Uniform(batch=3, n=5, d=2, seed=4), 1.0, t_max=20.0, save_at=21,
                    events=[ClusterCountChanged(1e-3)])
    stopped = ~torch.isnan(traj.event_time)
    assert bool(stopped.any())  # the test needs a stopped system
    counts = cluster_count(traj.positions, 1e-3)
    finite = torch.isfinite(traj.positions).all(-1).all(-1)  # (T, B)
    for p in plateaus(traj.times, counts, until=traj.event_time):
        on = (traj.times >= p.t_start) & (traj.times <= p.t_end)
        assert bool(finite[on, p.system].all())
    # without it, a stopped system shows a plateau over its NaN tail
    assert any(not bool(finite[(traj.times >= p.t_start) & (traj.times <= p.t_end), p.system].all())
               for p in plateaus(traj.times, counts))
    merges = merge_events(traj.times, cluster_labels(traj.positions, 1e-3), until=traj.event_time)
    assert all(bool(finite[traj.times == m.t_after, m.system].all()) for m in merges)
    with pytest.raises(ValueError, match="one time per system"):
        plateaus(traj.times, counts, until=traj.event_time[:2])
