"""Kuramoto and self-attention on the circle, in angles.

Left: the Kuramoto model (7.2) with natural frequencies ω_i ~ N(0, 1); the time-averaged order parameter r
against the coupling K rises from ~0 near Kuramoto's threshold K_c = 2/(π g(0)) = 2√(2π)/π ≈ 1.60 (g the
density of ω). All couplings run as one batch. Right: r(t) for the angle form (7.1) of (SA) from one start,
for several β (β = 0 is Kuramoto with ω = 0, K = 1): at larger β the tokens stall in several clusters
(metastability, Problem 1) and r stays low.

Run: python examples/kuramoto.py [--out kuramoto.png] [--n 200] [--t-max 40]
"""

import argparse
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from tokensphere.circle import simulate_angles, simulate_kuramoto  # noqa: E402

K_C = 2 * math.sqrt(2 * math.pi) / math.pi  # 2/(π g(0)) for standard normal frequencies


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="kuramoto.png")
    p.add_argument("--n", type=int, default=200, help="oscillators / tokens")
    p.add_argument("--t-max", type=float, default=40.0)
    p.add_argument("--couplings", type=int, default=16)
    args = p.parse_args(argv)

    gen = torch.Generator().manual_seed(0)
    omega = torch.randn(args.n, generator=gen, dtype=torch.float64)
    theta0 = 2 * math.pi * torch.rand(args.n, generator=gen, dtype=torch.float64)
    K = torch.linspace(0.0, 4.0, args.couplings, dtype=torch.float64)
    kur = simulate_kuramoto(theta0, omega, K, t_max=args.t_max, save_at=81, rtol=1e-7, atol=1e-9)
    r, _ = kur.order_parameter()  # (T, B)
    r_mean = r[r.shape[0] // 2:].mean(0)  # averaged over the second half of the run

    betas = torch.tensor([0.0, 1.0, 4.0, 9.0], dtype=torch.float64)
    sa = simulate_angles(theta0, betas, t_max=args.t_max, save_at=81, rtol=1e-7, atol=1e-9)
    r_sa, _ = sa.order_parameter()

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(K, r_mean, "o-")
    ax1.axvline(K_C, color="gray", ls="--", label="K_c = 2√(2π)/π")
    ax1.set_xlabel("coupling K")
    ax1.set_ylabel("time-averaged r")
    ax1.set_title(f"Kuramoto (7.2), n = {args.n}, ω ~ N(0, 1)")
    ax1.legend()
    for k, beta in enumerate(betas.tolist()):
        ax2.plot(sa.times, r_sa[:, k], label=f"β = {beta:g}")
    ax2.set_xlabel("t")
    ax2.set_ylabel("r(t)")
    ax2.set_title("SA in angles (7.1)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"time-averaged r at K = {K[0]:g}, {K[-1]:g}: {r_mean[0]:.3f}, {r_mean[-1]:.3f}; "
          f"final r of SA per β: {[round(float(v), 3) for v in r_sa[-1]]}")
    print(f"wrote {args.out}")
    return kur, sa


if __name__ == "__main__":
    main()
