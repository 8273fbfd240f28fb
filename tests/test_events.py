"""Stop conditions (events) against exact solutions: β = 0 two-particle dynamics, tan(θ/2) = tan(θ₀/2) e^{−t}."""

from __future__ import annotations

import math

import pytest
import torch

import tokensphere as ts
from tokensphere.analysis import ClusterCountChanged

DT = 0.01


def _pair(theta0: float, batch: int = 1) -> torch.Tensor:
    x = torch.tensor([[1.0, 0.0], [math.cos(theta0), math.sin(theta0)]], dtype=torch.float64)
    return x.expand(batch, 2, 2).clone()


def _time_to_angle(theta0: float, theta: float) -> float:
    """β = 0, n = 2 (SA = USA): the angle obeys tan(θ/2) = tan(θ₀/2) e^{−t}."""
    return math.log(math.tan(theta0 / 2) / math.tan(theta / 2))


@pytest.mark.parametrize("tol", [1e-2, 1e-4])
def test_stationary_stops_when_the_speed_falls_below_tol(tol):
    """|ẋ_i| = sin(θ)/2 for two tokens at angle θ (β = 0): the event fires at the first step end after
    sin θ(t) / 2 < tol."""
    theta0 = 2.5
    t_star = _time_to_angle(theta0, math.asin(2 * tol))
    tr = ts.simulate(_pair(theta0), 0.0, solver=ts.Solver("rk4", dt=DT), t_max=30.0, save_at=3,
                     events=[ts.Stationary(tol)])
    t_event = float(tr.event_time[0])
    assert t_star <= t_event <= t_star + DT * (1 + 1e-9)


def test_cluster_count_changed_stops_at_the_merge():
    """Two tokens are one δ-cluster once cos θ > 1 − δ: the event fires at the first step end after the exact
    merge time; a system that starts clustered does not stop."""
    delta, theta0 = 1e-3, 2.0
    t_merge = _time_to_angle(theta0, math.acos(1 - delta))
    x = torch.cat([_pair(theta0), _pair(0.01)])  # the second system is one cluster from the start
    tr = ts.simulate(x, 0.0, solver=ts.Solver("rk4", dt=DT), t_max=20.0, save_at=3,
                     events=[ClusterCountChanged(delta)])
    assert t_merge <= float(tr.event_time[0]) <= t_merge + DT * (1 + 1e-9)
    assert math.isnan(float(tr.event_time[1]))


def test_events_on_a_shrinking_batch_use_global_system_indices():
    """Systems stop at different times; the baseline of each later system is its own (global index)."""
    thetas = [2.0, 2.6, 1.5]
    x = torch.cat([_pair(t) for t in thetas])
    tr = ts.simulate(x, 0.0, solver=ts.Solver("rk4", dt=DT), t_max=20.0, save_at=3,
                     events=[ClusterCountChanged(1e-3)])
    expect = [_time_to_angle(t, math.acos(1 - 1e-3)) for t in thetas]
    got = tr.event_time.tolist()
    assert all(e <= g <= e + DT * (1 + 1e-9) for e, g in zip(expect, got))


def test_bad_event_parameters():
    with pytest.raises(ValueError, match="tol"):
        ts.Stationary(0.0)
    with pytest.raises(ValueError, match="delta"):
        ClusterCountChanged(3.0)
    with pytest.raises(ValueError, match="start"):
        ClusterCountChanged(1e-3)(torch.zeros(1), _pair(1.0), systems=torch.zeros(1, dtype=torch.long))


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_stopped_systems_leave_the_batch(method):
    """A system that meets an event is never evaluated again: every time at which the field sees system b
    lies at or before b's event time, and the evaluated batch shrinks as the systems stop (β = 0 pairs at
    different angles merge at the exact times tan(θ/2) = tan(θ₀/2) e^{−t})."""
    from tokensphere.integrate import integrate

    thetas = [2.0, 2.6, 1.5, 0.01]  # the last starts as one cluster and runs to the end
    x0 = torch.cat([_pair(t) for t in thetas])
    model = ts.Model(beta=0.0)
    seen = torch.full((4,), -1.0, dtype=torch.float64)  # the latest time at which the field saw each system
    sizes = []

    def field(t, x, idx):
        sizes.append(x.shape[0])
        seen.scatter_reduce_(0, torch.arange(x.shape[0]) if idx is None else idx, t, "amax")
        return ts.velocity(x, model)

    solver = ts.Solver(method, dt=0.02) if method == "rk4" else ts.Solver(method, rtol=1e-8, atol=1e-10)
    t_end = 8.0  # the last merge is at 5.1
    res = integrate(field, x0, torch.tensor([0.0, t_end], dtype=torch.float64), solver,
                    events=[ClusterCountChanged(1e-3)])
    et = res.event_time.tolist()
    expect = [_time_to_angle(t, math.acos(1 - 1e-3)) for t in thetas[:3]]
    for b in range(3):
        assert expect[b] <= et[b] + 1e-9 and float(seen[b]) <= et[b]  # never evaluated after its event
    assert math.isnan(et[3]) and float(seen[3]) == pytest.approx(t_end, abs=1e-12)
    assert sizes[0] == 4 and sizes[-1] == 1 and sizes == sorted(sizes, reverse=True)
