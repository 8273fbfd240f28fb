"""The step loop's two host-read schedules (``sync``): "step" reads a flag vector every iteration, "outputs"
runs ahead on the device with the systems that landed or failed parked, and reads only at settle points. The
second must be the first run, bit for bit — same steps, states, counts, outputs and errors — with far fewer
reads; the reads are counted the way ``benchmarks/bench_step.py`` counts them."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tokensphere as ts
from tokensphere import IntegrationError, Model, Solver, simulate
from tokensphere.integrate import SaveAt
from tokensphere.integrate.driver import integrate
from tokensphere.schedule import Layerwise

from helpers import load_benchmark  # noqa: E402

f64 = torch.float64


def _bench_step():
    return load_benchmark("bench_step")


def _layers() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 3, 3, generator=g, dtype=f64) / math.sqrt(3) + torch.eye(3, dtype=f64)


BETAS = torch.linspace(0.5, 6.0, 6, dtype=f64)
SCENARIOS = {
    "dopri5, beta per system": dict(solver=Solver("dopri5", rtol=1e-8, atol=1e-10), beta=BETAS),
    "bosh3, dt_max": dict(solver=Solver("bosh3", rtol=1e-5, dt_max=0.05), beta=BETAS),
    "rk4, per-system dt": dict(solver=Solver("rk4", dt=torch.tensor([0.01, 0.02, 0.05, 0.1, 0.013, 0.3],
                                                                    dtype=f64)), beta=BETAS),
    "euler, the authors' unprojected step": dict(solver=Solver("euler", dt=0.03, projected_field=False), beta=BETAS),
    "midpoint": dict(solver=Solver("midpoint", dt=0.04), beta=2.0),
    "heun": dict(solver=Solver("heun", dt=0.04), beta=BETAS),
    "rk3": dict(solver=Solver("rk3", dt=0.04), beta=BETAS),
    "lie-euler": dict(solver=Solver("lie-euler", dt=0.02), beta=BETAS),
    "cg3": dict(solver=Solver("cg3", dt=0.05), beta=BETAS),
    "dopri5, USA exp_beta": dict(solver=Solver("dopri5", rtol=1e-7), beta=BETAS, normalization="uniform",
                                 time_scale="exp_beta"),
    "dopri5, layerwise V (breakpoints, FSAL refresh)": dict(solver=Solver("dopri5", rtol=1e-8),
                                                           model=Model(beta=1.0, schedule=Layerwise(0.7, V=_layers()))),
    "rk4, layerwise V": dict(solver=Solver("rk4", dt=0.05), model=Model(beta=1.0, schedule=Layerwise(0.7, V=_layers()))),
    "dopri5, R^d (no projection)": dict(solver=Solver("dopri5", rtol=1e-7), beta=0.5, projection=False),
    "dopri5, float32": dict(solver=Solver("dopri5", rtol=1e-4, atol=1e-6), beta=BETAS, dtype=torch.float32),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_outputs_sync_is_bitwise_the_step_sync(name):
    """Same outputs, final states, steps, rejections and hook calls (as sets) under both schedules."""
    opts = dict(SCENARIOS[name])
    x0 = ts.sample_sphere(6, 5, 3, seed=4)
    runs = {}
    for sync in ("step", "outputs"):
        seen = []
        runs[sync] = simulate(x0, t_max=2.1, save_at=[0.0, 0.35, 0.7, 1.3, 2.1], sync=sync,
                              on_save=lambda k, s, x: seen.extend(
                                  (int(kk), int(ss), xx.tobytes()) for kk, ss, xx in zip(k, s, x.numpy())),
                              **opts)
        runs[sync].metadata["seen"] = sorted(seen)
    a, b = runs["step"], runs["outputs"]
    assert torch.equal(a.positions, b.positions)
    assert torch.equal(a.steps, b.steps) and torch.equal(a.rejected, b.rejected)
    assert a.metadata["seen"] == b.metadata["seen"] and len(a.metadata["seen"]) == 5 * 6
    assert int(a.steps.min()) > 0


def _count_reads(sync: str, x0, model, saves, solver):
    counter = _bench_step().SyncCounter

    def f(t, x, idx):
        return ts.velocity(x, model if idx is None else model.take(idx))

    with counter() as sc:
        res = integrate(f, x0, saves, solver, sync=sync)
    return res, sc.count


@pytest.mark.parametrize("solver", [Solver("dopri5", rtol=1e-10, atol=1e-12), Solver("rk4", dt=0.005)],
                         ids=["dopri5", "rk4"])
def test_outputs_sync_reads_the_host_at_settle_points_only(solver):
    """Systems in lockstep (one β): the host is read a few times per output time, not once per iteration;
    with mixed β the settles follow the systems' own landings but stay far fewer than the iterations."""
    saves = torch.linspace(0.0, 3.0, 4, dtype=f64)
    x0 = ts.sample_sphere(8, 6, 3, seed=0)
    same = x0[:1].expand(8, -1, -1).clone()
    for lockstep, start, model in ((True, same, Model(beta=2.0)),
                                   (False, x0, Model(beta=torch.linspace(0.5, 6.0, 8, dtype=f64)))):
        step, n_step = _count_reads("step", start, model, saves, solver)
        ahead, n_ahead = _count_reads("outputs", start, model, saves, solver)
        iterations = int((step.steps + step.rejected).max())
        assert torch.equal(step.positions, ahead.positions)
        assert n_step >= iterations > 50
        if lockstep:  # a handful of settles per output time, however many iterations lie between
            assert n_ahead <= iterations / 4, (n_ahead, iterations)
        else:  # systems landing at their own iterations: settles follow them, at a bounded idle cost
            assert n_ahead <= 0.6 * n_step, (n_ahead, n_step)
        # the parked systems' idle attempts (target: a tenth): the batched evaluations grow by a bounded share
        assert ahead.evaluations <= 1.25 * step.evaluations


def _broken_field(when: float, system: int):
    """The SA field of β = 1, with a non-finite value for one system after a time: the step-size controller
    rejects, shrinks and underflows (adaptive), or the state turns non-finite (fixed steps)."""
    model = Model(beta=1.0)

    def f(t, x, idx):
        v = ts.velocity(x, model)
        rows = torch.arange(x.shape[0]) if idx is None else idx
        bad = (rows == system) & (t > when)
        return torch.where(bad.view(-1, 1, 1), torch.full_like(v, float("nan")), v)

    return f


@pytest.mark.parametrize("solver, message", [
    (Solver("dopri5", rtol=1e-6), "step size underflow in system 2"),
    (Solver("rk4", dt=0.01), "non-finite state in system 2"),
    (Solver("rk4", dt=0.01, max_steps=40), "max_steps = 40 reached"),
], ids=["underflow", "non-finite", "max_steps"])
def test_outputs_sync_raises_the_step_sync_error(solver, message):
    x0 = ts.sample_sphere(4, 5, 3, seed=1)
    saves = torch.tensor([0.0, 0.25, 1.0], dtype=f64)
    errors = {}
    for sync in ("step", "outputs"):
        with pytest.raises(IntegrationError, match=message) as info:
            integrate(_broken_field(0.6, 2), x0, saves, solver, sync=sync)
        errors[sync] = str(info.value)
    assert errors["step"] == errors["outputs"]


def test_sync_is_validated_and_auto_is_step_on_the_cpu():
    x0 = ts.sample_sphere(2, 4, 3, seed=0)
    with pytest.raises(ValueError, match="sync must be one of"):
        simulate(x0, 1.0, t_max=0.1, sync="never")
    with pytest.raises(ValueError, match='sync="outputs" cannot run with events'):
        simulate(x0, 1.0, t_max=0.1, sync="outputs", events=[ts.Clustered(1e-3)])
    from tokensphere.integrate.driver import _deferred

    assert not _deferred("auto", torch.device("cpu"), ())
    assert _deferred("auto", torch.device("meta"), ()) and not _deferred("auto", torch.device("meta"), [object()])
    assert _deferred("outputs", torch.device("cpu"), ())


def test_outputs_sync_with_a_save_hook_only_and_outputs_at_t0():
    """store=False (positions only through the hook) and an output time equal to t0."""
    x0 = ts.sample_sphere(3, 4, 3, seed=2)
    got = {}
    for sync in ("step", "outputs"):
        rows = []
        def hook(k, s, x, rows=rows):
            rows.append((k.clone(), s.clone(), x.clone()))

        times = torch.tensor([0.0, 0.5, 1.0], dtype=f64)
        simulate(x0, BETAS[:3], t_max=1.0, save_at=SaveAt(times, store=False, on_save=hook), sync=sync)
        got[sync] = {(int(k), int(s)): x.clone() for kk, ss, xx in rows for k, s, x in zip(kk, ss, xx)}
    assert got["step"].keys() == got["outputs"].keys() and len(got["step"]) == 9
    assert all(torch.equal(got["step"][key], got["outputs"][key]) for key in got["step"])


def test_device_schedule_reads_nothing_between_settles(monkeypatch):
    """The whole step as it runs on a device where reads synchronise — sync="outputs" and the field's device
    branch (no value read to decide the stabilisation) — counted over every module a step runs through
    (driver, steps, controller, field, model, weights): the reads are those of the settles, a few per output
    time, for 400 iterations. The field's device branch computes the same field (always stabilised) to
    round-off."""
    import tokensphere.field as field_mod

    bench = _bench_step()
    x0 = ts.sample_sphere(16, 24, 4, seed=5)  # B·n² above the tiny-batch cut: the fused blocked path
    model = Model(beta=torch.linspace(1.0, 3.0, 16, dtype=f64))
    host = ts.velocity(x0, model)
    monkeypatch.setattr(field_mod, "_reads_are_free", lambda x: False)
    torch.testing.assert_close(ts.velocity(x0, model), host, rtol=0, atol=1e-14)
    with bench.SyncCounter(bench.loop_files()) as sc:
        res = simulate(x0, model=model, solver=Solver("rk4", dt=0.005), t_max=2.0, save_at=3, sync="outputs")
    assert int(res.steps.max()) == 400 and torch.isfinite(res.positions).all()
    assert sc.count <= 4 * 3 + 12, sc.count
    with bench.SyncCounter(bench.loop_files()) as sc:
        simulate(x0, model=model, solver=Solver("rk4", dt=0.005), t_max=2.0, save_at=3, sync="step")
    assert sc.count >= 400


@settings(max_examples=12, deadline=None)
@given(method=st.sampled_from(["dopri5", "bosh3", "rk4", "heun", "cg3"]),
       betas=st.lists(st.floats(0.1, 9.0), min_size=1, max_size=5),
       cuts=st.lists(st.floats(0.05, 2.0), min_size=1, max_size=4, unique=True),
       seed=st.integers(0, 10_000))
def test_outputs_sync_equals_step_sync_on_random_batches(method, betas, cuts, seed):
    """Random β per system, output times and starts: the two schedules give the same bits."""
    B = len(betas)
    x0 = ts.sample_sphere(B, 4, 3, seed=seed)
    solver = Solver(method, rtol=1e-6) if method in ("dopri5", "bosh3") else Solver(method, dt=0.05)
    times = [0.0] + sorted(cuts)
    runs = [simulate(x0, torch.tensor(betas, dtype=f64), solver=solver, t_max=times[-1], save_at=times, sync=s)
            for s in ("step", "outputs")]
    assert torch.equal(runs[0].positions, runs[1].positions)
    assert torch.equal(runs[0].steps, runs[1].steps) and torch.equal(runs[0].rejected, runs[1].rejected)


@pytest.mark.parametrize("options", [
    dict(beta=torch.linspace(1.0, 3.0, 16, dtype=f64)),
    dict(beta=700.0),
    dict(beta=2.0, normalization="uniform"),
    dict(beta=2.0, normalization="uniform", time_scale="exp_beta"),
    dict(beta=900.0, normalization="uniform", time_scale="exp_beta"),
], ids=["SA", "SA beta 700", "USA", "USA exp_beta", "USA exp_beta beta 900"])
def test_field_device_branch_is_the_host_field(monkeypatch, options):
    """The fused path's device branch (always the shifted exponentials: the row maximum for SA, c for USA,
    1/n kept) gives the host branch's field to round-off, for SA and USA in both time scales."""
    import tokensphere.field as field_mod

    x = ts.sample_sphere(16, 24, 20, seed=6)  # d > 16 and B·n² above the tiny-batch cut: the blocked path
    model = Model(**options)
    host = ts.velocity(x, model)
    monkeypatch.setattr(field_mod, "_reads_are_free", lambda x: False)
    device = ts.velocity(x, model)
    assert torch.isfinite(host).all()
    torch.testing.assert_close(device, host, rtol=1e-12, atol=1e-14 * float(host.abs().max()))


@pytest.mark.parametrize("sync", ["step", "outputs"])
def test_finite_states_whose_sums_overflow_are_not_errors(sync):
    """The loop's cheap non-finite test (the sum of each state) also flags finite states whose sum overflows;
    those are tested exactly before anything is raised. A zero field on R^d from states holding 1e308 twice
    (sum: inf) integrates without error and keeps the states; a NaN state still raises (above)."""
    x0 = torch.zeros(3, 4, 2, dtype=f64)
    x0[:, 0, 0] = x0[:, 1, 1] = 1e308
    assert not torch.isfinite(x0.flatten(1).sum(1)).any() and torch.isfinite(x0).all()

    def zero(t, x, idx):
        return torch.zeros_like(x)

    res = integrate(zero, x0, torch.tensor([0.0, 0.5, 1.0], dtype=f64), Solver("rk4", dt=0.1), on_sphere=False,
                    sync=sync)
    assert torch.equal(res.positions, x0.unsqueeze(1).expand(-1, 3, -1, -1))
