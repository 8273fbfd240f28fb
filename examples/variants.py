"""Attention variants and Transformer blocks: the three continuations of Example 9.3 under hardmax attention,
Sinkhorn attention against SA and USA from the same starts, and one Strang-split Transformer block stack.

Run: python examples/variants.py [--out variants.png] [--t-max 20] [--n 16] [--depth 12] [--dt 0.002]
"""

import argparse

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from tokensphere.experiments.layers import splitting_model  # noqa: E402
from tokensphere.experiments.variants import example_9_3_branches, normalization_clustering  # noqa: E402
from tokensphere.init import sample_sphere  # noqa: E402
from tokensphere.layers import Block, block_flow, block_stack  # noqa: E402
from tokensphere.plot import save_figure  # noqa: E402
from tokensphere.plot.variants import example_9_3_figure, normalization_clustering_figure  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="variants.png")
    p.add_argument("--t-max", type=float, default=20.0)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--depth", type=int, default=12, help="blocks in the Strang stack")
    p.add_argument("--dt", type=float, default=2e-3, help="Euler step of the hardmax runs")
    args = p.parse_args(argv)

    # Example 9.3: the tie policy picks the continuation of z_3 (hardmax, (9.5), Euler through simulate)
    runs = example_9_3_branches(dt=args.dt, t_max=3.0)
    for r in runs:
        print(f"{r.policy:>20} → {r.branch:8} max |z3 − closed form| = {r.error:.1e}")
    out_9_3 = args.out.replace(".png", "_9_3.png")
    save_figure(example_9_3_figure(runs), out_9_3)

    # Sinkhorn (doubly stochastic) attention against SA and USA, same seeded starts
    res = normalization_clustering(n=args.n, batch=2, beta=4.0, t_max=args.t_max, save=21, sinkhorn_iters=100)
    for name in res.names:
        print(f"{name:>8}: clusters at t = {args.t_max:g}: {res.clusters[name][-1].tolist()}")
    starts = res.clusters[res.names[0]].shape[1]
    title = (f"{len(res.names)} normalisations from the same {starts} seeded starts: n = {res.n}, d = {res.d}, "
             f"β = {res.beta:g}")
    save_figure(normalization_clustering_figure(res.times, res.clusters, res.pairs, delta=res.delta, title=title),
                args.out)

    # Strang-split blocks (exact sub-flows) against the continuous flow of (2.8)
    model = splitting_model()
    x0 = sample_sphere(1, 8, 3, seed=0)
    ref = block_flow(x0, model, 1.2)[-1]
    for blk in (Block(), Block(splitting="strang", substeps="exact")):
        err = float((block_stack(x0, model, args.depth, 1.2, blk) - ref).norm(dim=-1).max())
        print(f"{blk.splitting:>12} ({blk.substeps} sub-steps): distance to the flow at T = 1.2: {err:.2e}")
    print(f"wrote {args.out} and {out_9_3}")
    return runs, res


if __name__ == "__main__":
    with torch.no_grad():
        main()
