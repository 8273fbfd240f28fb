"""The benchmark harness runs (timings are not asserted: they are recorded in BENCHMARKS.md)."""

import torch

from helpers import load_benchmark as _load


def test_kernel_benchmark_quick_runs():
    rows = _load("bench_kernel").main(["--quick", "--repeats", "1"])
    assert {r["dtype"] for r in rows} == {"float64", "float32"}
    assert all(r["ns_ours"] > 0 and r["ns_base"] > 0 for r in rows)


def test_kernel_benchmark_spread_over_fresh_processes_runs():
    rows = _load("bench_kernel").main(["--quick", "--repeats", "1", "--runs", "2"])
    assert len(rows) == 6 and all(len(r["speedups"]) == 2 and min(r["speedups"]) > 0 for r in rows)


def test_step_benchmark_sync_comparison_quick_runs():
    rows = _load("bench_step").main(["--quick", "--sync"])
    assert len(rows) == 4
    for every in (5, 2):  # output times: the two schedules take the same steps
        a, b = rows[f"sync=step, {every} output times"], rows[f"sync=outputs, {every} output times"]
        assert (a["accepted"], a["rejected"]) == (b["accepted"], b["rejected"]) and b["syncs"] > 0


def test_device_benchmark_smoke_runs_on_the_cpu():
    out = _load("bench_device").main(["--device", "cpu", "--quick"])
    assert len(out["kernel"]) == 4 and all(r["err_vs_cpu"] == 0.0 for r in out["kernel"])
    assert out["loop"]["same"]


def test_baseline_step_is_the_authors_scheme():
    """The benchmark's baseline is one anchor Euler step of the library (independent code, same numbers)."""
    import tokensphere as ts

    bench = _load("bench_kernel")
    x = ts.sample_sphere(4, 10, 3, seed=2)
    ours = ts.simulate(x, 2.0, solver=ts.anchor_solver(ts.Model(beta=2.0)), t_max=0.1, save_at=[0.0, 0.1])
    torch.testing.assert_close(ours.final(), bench.baseline_step(x, 2.0), rtol=0, atol=1e-15)


def test_accuracy_benchmark_quick_runs_and_orders_solvers():
    """On the quick setting, the authors' first-order scheme is less accurate than RK4 at the same dt."""
    rows = _load("bench_accuracy").main(["--quick"])
    err = {(b, name): e for b, name, e, _, _ in rows}
    for beta in (1.0, 9.0):
        assert err[(beta, "rk4 dt 0.1")] < err[(beta, "anchor (authors' Euler, dt 0.1)")] / 100


def test_statistics_benchmark_quick_runs():
    rows = _load("bench_stats").main(["--quick", "--repeats", "1"])
    assert [r[0] for r in rows] == [2, 32] and all(min(r[1:]) > 0 for r in rows)


def test_model_benchmark_quick_runs_and_counts_draws():
    bench = _load("bench_model")
    rows = bench.main(["--quick"])
    assert len(rows) == 3 and all(r["ours"] > 0 and r["base"] > 0 for r in rows)
    assert bench.redraw_draws() == 18  # one matrix set per (system, layer): 6 systems × 3 layers


def test_circle_and_meanfield_benchmarks_quick_run():
    assert _load("bench_circle").main(["--quick"])
    assert _load("bench_meanfield").main(["--quick"]) is not None


def test_field_ab_benchmark_quick_runs_against_head():
    """The A/B of the field against a git revision: against HEAD (the same module) the fields agree exactly."""
    text = _load("bench_field_ab").main(["--rev", "HEAD", "--quick"])
    row = text.splitlines()[-1]
    assert row.startswith("| (64, 8, 4) |") and row.endswith("| 0.0e+00 |")


def test_product_rates_benchmark_quick_runs():
    rows = _load("bench_products").main(["--quick"])
    assert rows[0]["product"].startswith("square") and rows[0]["fraction"] == 1.0
    assert len(rows) >= 7 and all(r["gflops"] > 0 for r in rows)


def test_backends_benchmark_quick_runs():
    """Every toy back end on the same input (the script checks that their fields agree), and the plan's pick."""
    rows = _load("bench_backends").main(["--quick"])
    assert len(rows) == 2 and rows[0]["picked"] == "fused"
    assert all(set(r["ms"]) == {"fused", "symmetric", "sdpa"} and r["ratio"] >= 1.0 for r in rows)


def test_f32_ceiling_benchmark_quick_runs():
    """The floor of the symmetric scheme does the whole product S X from half of S (S = X Xᵀ symmetric), and the
    script times every row against the float64 baseline."""
    mod = _load("bench_f32_ceiling")
    x = torch.randn(1, 100, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for c, strip in ((16, 2), (32, 4), (100, 1)):
        got = mod.symmetric_products(x, c, strip)
        torch.testing.assert_close(got, x @ x.transpose(1, 2) @ x, rtol=1e-12, atol=1e-12)
    rows = mod.main(["--quick"])
    assert rows[0]["what"] == "baseline (float64)" and rows[0]["ratio_min"] == 1.0
    assert len(rows) == 7 and all(r["min_ms"] > 0 for r in rows)
