"""Quickstart: 32 tokens on the circle cluster faster at small β; at β = 9 they stall in several clusters.

Run: python examples/quickstart.py [--out quickstart.png]
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import tokensphere as ts  # noqa: E402
from tokensphere.analysis import cluster_count  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="quickstart.png")
    p.add_argument("--t-max", type=float, default=30.0)
    p.add_argument("--seeds", type=int, default=8)
    args = p.parse_args(argv)

    betas = torch.tensor([1.0, 4.0, 9.0]).repeat_interleave(args.seeds)  # one batch: 3 β × seeds
    x0 = ts.Uniform(batch=len(betas), n=32, d=2, seed=0)
    traj = ts.simulate(x0, betas, t_max=args.t_max, save_at=61, rtol=1e-8, atol=1e-10)
    k = cluster_count(traj.positions, delta=1e-3)  # (T, B)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for beta, color in zip((1.0, 4.0, 9.0), ("tab:blue", "tab:orange", "tab:red")):
        sel = traj.model.beta_tensor() == beta
        ax.plot(traj.times, k[:, sel].double().mean(1), color=color, label=f"β = {beta:g}")
    ax.set_xlabel("t")
    ax.set_ylabel("mean number of clusters (δ = 1e-3)")
    ax.set_title("SA on the circle, n = 32")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"final mean cluster count per β: {[round(float(k[-1, traj.model.beta_tensor() == b].double().mean()), 2) for b in (1.0, 4.0, 9.0)]}")
    print(f"wrote {args.out}")
    return traj


if __name__ == "__main__":
    main()
