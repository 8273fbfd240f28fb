"""Cost of the mean-field field on the circle: the FFT midpoint-rule convolution against the direct O(N²) sum.

Ours: ``tokensphere.meanfield.mean_field_velocity`` (SA, at the faces), which samples the kernels and does
two FFT convolutions per call. Baseline: the same midpoint rule as dense matrix–vector products with the two
circulant kernel matrices precomputed (the cheapest direct evaluation; it costs O(N²) memory). Both give the
same numbers (checked here to 1e-12). Timed in the same process, interleaved; minimum over repeats, for a
batch of B densities.

    python benchmarks/bench_meanfield.py [--record] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from tokensphere.meanfield import TrigonometricDensity, mean_field_velocity

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernel import best_time, record  # noqa: E402


def baseline_matrices(n_cells: int, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Circulant matrices h·e^{β cos(θ_f − φ_j)} and h·sin(φ_j − θ_f) e^{β cos(θ_f − φ_j)}, (centres × faces)."""
    h = 2 * np.pi / n_cells
    u = (np.arange(n_cells)[:, None] - np.arange(n_cells)[None, :]) * h + h / 2
    k = h * np.exp(beta * (np.cos(u) - 1))
    return np.ascontiguousarray(k.T), np.ascontiguousarray((-np.sin(u) * k).T)  # transposed: rho @ matrix


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--record", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    sizes = (256, 1024) if args.quick else (256, 1024, 4096)
    batch, beta = 8, 4.0
    rows = []
    for n_cells in sizes:
        rho = np.broadcast_to(TrigonometricDensity(cos=(0.5, 0.3)).cell_averages(n_cells), (batch, n_cells)).copy()
        k, s = baseline_matrices(n_cells, beta)
        ours = mean_field_velocity(rho, beta, "softmax", at="faces")
        base = (rho @ s) / (rho @ k)
        assert np.abs(ours - base).max() < 1e-12
        t_ours = best_time(lambda: mean_field_velocity(rho, beta, "softmax", at="faces"), args.repeats)
        t_base = best_time(lambda: (rho @ s) / (rho @ k), args.repeats)
        rows.append(dict(n_cells=n_cells, us_ours=1e6 * t_ours, us_base=1e6 * t_base, ratio=t_base / t_ours))
    text = "| N | B | FFT field (µs) | direct O(N²) (µs) | direct / FFT |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {r['n_cells']} | {batch} | {r['us_ours']:.0f} | {r['us_base']:.0f} | {r['ratio']:.2f} |" for r in rows)
    print(text)
    if args.record:
        record("Mean-field field on the circle: FFT against the direct sum", "python benchmarks/bench_meanfield.py",
               f"SA, β = {beta:g}, minimum of {args.repeats} repeats", text)
    return rows


if __name__ == "__main__":
    main()
