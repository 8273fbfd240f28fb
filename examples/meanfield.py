"""The mean-field PDE on the circle against particles: Wasserstein convergence (Remark 3.3), the Bessel growth
rates of the uniform state and the number of first clusters, and the BBGKY equation (8.1).

Panels: (a) the SA density of the PDE at three times with a histogram of n particles; (b) mean W_1 and W_2
between particles and the PDE at t_max against n, with the fitted slope (theory: −½); (c) growth rates λ_k(β)
of the uniform state (lines: k² I_k(β)/(β I_0(β)); dots: measured from the PDE); (d) the most unstable mode
k*(β) against the cluster count of n = 256 particles from uniform starts at t = 2 t₁, t₁ = ln(√n)/λ_{k*} (the
time for the fastest mode to grow from the sampling amplitude n^{−½} to O(1)); (e) ψ(t, ·) from USA ensembles
and (f) the residual of (8.1) per bin with its ±2 standard errors.

Run: python examples/meanfield.py [--out meanfield.png]
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import tokensphere as ts  # noqa: E402
from tokensphere.analysis import cluster_count, scale_aware_delta  # noqa: E402
from tokensphere.meanfield import (  # noqa: E402
    TrigonometricDensity,
    bbgky_residual,
    circle_wasserstein,
    fourier_coefficients,
    growth_rate,
    most_unstable_mode,
    solve_continuity,
)


def _points(theta):
    return torch.tensor(np.stack([np.cos(theta), np.sin(theta)], axis=-1))


def _angles(x):
    x = x.numpy()
    return np.arctan2(x[..., 1], x[..., 0])


def particles_against_pde(n_max, seeds, t_max=2.0, beta=1.0, n_cells=1024):
    density = TrigonometricDensity(cos=(0.5, 0.3))
    sol = solve_continuity(density.cell_averages(n_cells), beta, [0.0, t_max / 2, t_max])
    sizes = 2 ** np.arange(5, int(np.log2(n_max)) + 1)
    w1, w2, last = [], [], None
    for n in sizes:
        theta0 = density.sample(int(n), seeds, seed=int(n))
        x = ts.simulate(_points(theta0), beta, t_max=t_max, save_at=sol.t).positions
        th = _angles(x)  # (3, seeds, n)
        rho = np.broadcast_to(sol.rho[:, None], (3, seeds, n_cells))
        w1.append(circle_wasserstein(th, rho, 1).mean(axis=1))  # (3,): t = 0, t_max/2, t_max
        w2.append(circle_wasserstein(th[-1], rho[-1], 2).mean())
        last = th[-1]
    w1 = np.array(w1)  # (sizes, 3)
    slopes = [np.polyfit(np.log(sizes), np.log(w), 1)[0] for w in (w1[:, -1], w2)]
    growth = w1[:, -1] / w1[:, 0]  # W_1(t_max)/W_1(0): Remark 3.3 bounds it by e^{Ct}, whatever n
    return dict(sol=sol, sizes=sizes, w1=w1[:, -1], w1_over_time=w1, w2=np.array(w2), slope_w1=slopes[0],
                slope_w2=slopes[1], growth=growth, particles=last, t_max=t_max)


def stability(betas, seeds, n=256):
    ks = np.arange(1, 9)
    measured = {}
    for beta, modes in ((2.0, (1, 2, 3)), (8.0, (2, 4, 6))):  # growth of a 1e-6 cosine mode in the SA PDE
        for k in modes:
            rho0 = TrigonometricDensity(cos=[0.0] * (k - 1) + [1e-6]).cell_averages(128)
            rate = float(growth_rate(k, beta))
            t = np.linspace(0, 2 / rate, 5)
            amp = np.abs(fourier_coefficients(solve_continuity(rho0, beta, t).rho)[:, k])
            measured[(beta, k)] = np.polyfit(t, np.log(amp), 1)[0]
    k_star = most_unstable_mode(betas)
    counts = []
    for beta, k in zip(betas, k_star):
        t1 = np.log(np.sqrt(n)) / float(growth_rate(int(k), beta))
        theta0 = np.random.default_rng([11, int(100 * beta)]).uniform(0, 2 * np.pi, (seeds, n))
        x = ts.simulate(_points(theta0), float(beta), t_max=2 * t1, save_at=[2 * t1]).positions[-1]
        counts.append(cluster_count(x, float(scale_aware_delta(beta))).double().numpy())
    return dict(ks=ks, measured=measured, k_star=k_star, counts=np.array(counts), betas=np.asarray(betas))


def bbgky(systems, n=8, beta=1.0, t_max=3.0, n_bins=32):
    theta0 = np.random.default_rng([5, n, systems]).uniform(0, 2 * np.pi, (systems, n))
    t = np.linspace(0, t_max, 31)
    x = ts.simulate(_points(theta0), beta, normalization="uniform", t_max=t_max, save_at=t).positions
    return bbgky_residual(t, _angles(x), beta, n_bins)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="meanfield.png")
    p.add_argument("--n-max", type=int, default=2048, help="largest particle count of the W_p study (a power of 2)")
    p.add_argument("--seeds", type=int, default=16, help="systems per n and per β")
    p.add_argument("--betas", type=float, nargs="+", default=[4.0, 9.0, 16.0, 25.0, 49.0])
    p.add_argument("--systems", type=int, default=4096, help="USA systems of the BBGKY ensemble")
    args = p.parse_args(argv)

    wp = particles_against_pde(args.n_max, args.seeds)
    st = stability(args.betas, args.seeds)
    bb = bbgky(args.systems)

    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    ax = axes[0, 0]
    sol = wp["sol"]
    for i, color in enumerate(("tab:blue", "tab:orange", "tab:red")):
        ax.plot(sol.theta, sol.rho[i], color=color, label=f"PDE, t = {sol.t[i]:g}")
    ax.hist(np.mod(wp["particles"].reshape(-1), 2 * np.pi), bins=64, density=True, color="tab:red", alpha=0.3,
            label=f"particles, t = {wp['t_max']:g}")
    ax.set_xlabel("θ")
    ax.set_ylabel("ρ")
    ax.set_title("(a) SA, β = 1: PDE and particles")
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    ax.loglog(wp["sizes"], wp["w1"], "o-", label=f"W₁ (slope {wp['slope_w1']:.2f})")
    ax.loglog(wp["sizes"], wp["w2"], "s-", label=f"W₂ (slope {wp['slope_w2']:.2f})")
    ax.loglog(wp["sizes"], wp["w1"][0] * (wp["sizes"] / wp["sizes"][0]) ** -0.5, "k--", label="n^{-1/2}")
    ax.set_xlabel("n")
    ax.set_ylabel(f"mean distance at t = {wp['t_max']:g}")
    ax.set_title("(b) particles → PDE (Remark 3.3)")
    ax.legend(fontsize=7)

    ax = axes[0, 2]
    for beta, color in ((2.0, "tab:blue"), (8.0, "tab:red")):
        ax.plot(st["ks"], growth_rate(st["ks"], beta), color=color, label=f"λ_k, β = {beta:g}")
        ks = [k for (b, k) in st["measured"] if b == beta]
        ax.plot(ks, [st["measured"][(beta, k)] for k in ks], "o", color=color)
    ax.set_xlabel("mode k")
    ax.set_ylabel("growth rate (SA)")
    ax.set_title("(c) uniform state: Bessel rates, PDE dots")
    ax.legend(fontsize=7)

    ax = axes[1, 0]
    ax.plot(st["betas"], st["k_star"], "k-", label="k*(β) = argmax k² I_k(β)")
    ax.plot(st["betas"], np.sqrt(2 * st["betas"]), "k:", label="√(2β)")
    ax.errorbar(st["betas"], st["counts"].mean(1), yerr=st["counts"].std(1), fmt="o", label="clusters at 2t₁")
    ax.set_xlabel("β")
    ax.set_ylabel("number of clusters")
    ax.set_title("(d) first clusters, n = 256 (SA)")
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    order = np.argsort(bb.x)  # bins are held in the order x_b = bΔ, wrapped to [−π, π)
    for i in (0, len(bb.t) // 3, len(bb.t) - 1):
        ax.plot(bb.x[order], bb.psi[i, order], ".-", label=f"t = {bb.t[i]:.1f}")
    ax.set_xlabel("x = θ₂ − θ₁")
    ax.set_ylabel("ψ(t, x)")
    ax.set_title("(e) USA, n = 8, β = 1: pair law")
    ax.legend(fontsize=7)

    ax = axes[1, 2]
    ax.errorbar(bb.x, bb.residual, yerr=2 * bb.standard_error, fmt="o", ms=3)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("x")
    ax.set_ylabel("residual of (8.1) ± 2 s.e.")
    ax.set_title(f"(f) BBGKY residual, {args.systems} systems")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)

    chi2 = float(np.mean((bb.residual / bb.standard_error) ** 2))
    print(f"W1 slope {wp['slope_w1']:.3f}, W2 slope {wp['slope_w2']:.3f} (theory -0.5) for n = {wp['sizes'].tolist()}")
    print(f"mean W1 at t = 0, {wp['t_max'] / 2:g}, {wp['t_max']:g} per n: {np.round(wp['w1_over_time'], 4).tolist()}; "
          f"W1(t_max)/W1(0) = {np.round(wp['growth'], 2).tolist()}")
    print("beta, k*, mean clusters at 2 t1 (sd): " + "; ".join(
        f"{b:g}: {k}, {c.mean():.1f} ({c.std():.1f})" for b, k, c in zip(st["betas"], st["k_star"], st["counts"])))
    print(f"BBGKY: mean (residual / s.e.)^2 over bins = {chi2:.2f} (≈ 1 at Monte-Carlo level)")
    print(f"wrote {args.out}")
    return dict(wasserstein=wp, stability=st, bbgky=bb)


if __name__ == "__main__":
    main()
