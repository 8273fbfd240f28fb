"""Noise on the sphere (Problem 7): where does one noisy cluster give way to spread tokens? The (β, σ) phase
diagram of the order parameter r = |(1/n) Σ x_i| with the mean-field threshold σ_c(β), and one noisy run.

Run: python examples/noise_phase.py [--out noise_phase.png] [--t-max 20] [--starts 4]
"""

import argparse

import matplotlib

matplotlib.use("Agg")

from tokensphere import Model, simulate  # noqa: E402
from tokensphere.analysis import order_parameter  # noqa: E402
from tokensphere.experiments.noise import noise_phase_diagram  # noqa: E402
from tokensphere.init import Uniform  # noqa: E402
from tokensphere.plot import save_figure  # noqa: E402
from tokensphere.plot.noise import noise_phase_figure  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="noise_phase.png")
    p.add_argument("--t-max", type=float, default=20.0)
    p.add_argument("--starts", type=int, default=4)
    args = p.parse_args(argv)

    # one run: β = 1, σ = 0.3 (below σ_c(1) ≈ 0.79): the tokens gather in one cluster that keeps trembling
    x0 = Uniform(batch=1, n=32, d=3, seed=0)
    traj = simulate(x0, model=Model(beta=1.0, noise=0.3), solver="geodesic", dt=0.02, t_max=args.t_max,
                    save_at=5, seed=1)
    print("r(t) at β = 1, σ = 0.3:", [round(float(r), 3) for r in order_parameter(traj.positions)[:, 0]])

    data = noise_phase_diagram(starts=args.starts, t_max=args.t_max)
    save_figure(noise_phase_figure(data), args.out)
    print(f"σ_c(β) for β = {data['betas']}: {[round(s, 3) for s in data['sigma_c']]}")
    print(f"wrote {args.out} ({data['seconds']:.1f} s)")
    return data


if __name__ == "__main__":
    main()
