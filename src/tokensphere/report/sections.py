"""Turning saved results into report sections.

Inputs (:func:`input_kind` tells them apart, :func:`sections_for` dispatches):

* a run folder (``tokensphere demo``/``simulate`` output): summary.json, PNG figures, zarr stores inside;
* a trajectory zarr store (:meth:`tokensphere.Trajectory.save`);
* a phase-diagram zarr store (:func:`tokensphere.sweep.phase.run_phase_diagram`; attrs "spec" present);
* a folder of figures: PNG files, each with an optional ``<stem>.json`` of data next to it (or one PNG file).

Trajectories get settings/metadata tables, final cluster counts, the energy monotonicity of (3.6) and
Lemma 3.7 (:func:`energy_verdicts`), the unit-norm invariant (:func:`norm_verdict`), and the 3-D viewer when
d = 3 (or d = 2, on the equator). Phase diagrams get their spec, a heat map per d with the Γ curve, and a
comparison of the t = 0 column with the exact probability for independent uniform points.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..analysis import cluster_count, energy_monotonicity, energy_series
from ..experiments.describe import describe_model
from ..experiments.layout import system_betas, systems_by_beta
from ..experiments.reproduction import preset_difference
from ..io.atomic import open_zarr_store
from ..plot import Panel, frame_indices, phase_difference_figure, phase_figure, save_figure, series_figure
from ..plot.series import ENERGY_LABEL
from ..theory import uniform_pair_probability
from ..trajectory import Trajectory
from .elements import Figure, Section, Verdict, png_bytes
from .viewer import MAX_FRAMES, viewer_fragment

__all__ = [
    "CLUSTER_DELTA",
    "describe_inputs",
    "ENERGY_RTOL",
    "MAX_VIEWERS",
    "energy_verdicts",
    "figure_sections",
    "input_kind",
    "norm_verdict",
    "phase_sections",
    "preset_comparison_section",
    "run_folder_sections",
    "sections_for",
    "theorem_section",
    "trajectory_sections",
]

ENERGY_RTOL = 1e-8  # largest relative step of Ē against its monotone trend accepted (the demo's rtol)
CLUSTER_DELTA = 1e-3  # cluster threshold ⟨x_i, x_j⟩ > 1 − δ of Figure 3
MAX_VIEWERS = 4  # 3-D views per trajectory (one per β by default): each holds a WebGL context
NORM_ULPS = 100  # | |x_i| − 1 | allowed, in units of the dtype's machine epsilon
BIAS_Z = 3.0  # anchor − adaptive beyond this many standard errors: a bias of the Euler scheme, not noise
KINDS = ("run folder", "trajectory", "phase diagram", "sweep", "figures")


# ----------------------------------------------------------------------------------------------------
# what an input is
def _is_zarr(p: Path) -> bool:
    return p.is_dir() and any((p / m).exists() for m in ("zarr.json", ".zgroup", ".zattrs"))


def _zarr_attrs(p: Path) -> dict[str, Any]:
    try:
        with open_zarr_store(p) as ds:
            return dict(ds.attrs)
    except Exception as exc:  # a corrupt or foreign store: say so in one line
        raise ValueError(f"cannot read the zarr store {p}: {' '.join(str(exc).split())[:200]}") from None


def input_kind(path: str | Path) -> str:
    """"run folder", "trajectory", "phase diagram", "sweep" or "figures" for a report input; ValueError otherwise."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ValueError(f"run path does not exist: {p}")
    if p.is_file():
        if p.suffix.lower() == ".png":
            return "figures"
        raise ValueError(f"run must be a run folder, a zarr store or a folder of PNG figures, got the file {p}")
    if _is_zarr(p):
        attrs = _zarr_attrs(p)
        if "spec" in attrs:
            return "phase diagram"
        if "sweep_config" in attrs:
            return "sweep"
        if "model" in attrs and "solver" in attrs:
            return "trajectory"
        raise ValueError(f"zarr store {p} is neither a tokensphere trajectory, a phase diagram nor a sweep "
                         "(no model/spec/sweep_config attrs)")
    children = list(p.iterdir())
    if (p / "summary.json").is_file() or any(_is_zarr(c) for c in children):
        return "run folder"
    if any(c.suffix.lower() == ".png" and c.is_file() for c in children):
        return "figures"
    raise ValueError(
        f"run folder {p} holds no summary.json, zarr store or PNG figure; "
        "expected a run folder, a trajectory or phase-diagram store, or a folder of PNG figures"
    )


def sections_for(path: str | Path, *, systems: Sequence[int] | None = None) -> list[Section]:
    """The sections describing one input (see the module docstring); systems: viewer systems for trajectories."""
    p = Path(path).expanduser()
    kind = input_kind(p)
    if kind == "run folder":
        return run_folder_sections(p, systems=systems)
    if kind == "trajectory":
        return trajectory_sections(Trajectory.load(p), p.name, systems=systems)
    if kind == "phase diagram":
        return phase_sections(p)
    if kind == "sweep":
        return sweep_sections(p)
    return figure_sections(p)


# ----------------------------------------------------------------------------------------------------
# folders
def _pngs(folder: Path) -> list[Path]:
    return sorted(c for c in folder.iterdir() if c.is_file() and c.suffix.lower() == ".png" and not c.name.startswith("."))


def _read_json(p: Path) -> Any:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read JSON file {p}: {exc}") from None


def run_folder_sections(folder: Path, *, systems: Sequence[int] | None = None) -> list[Section]:
    """A run folder: one section with summary.json's tables and the folder's PNGs, then one per zarr store."""
    summary = _read_json(folder / "summary.json") if (folder / "summary.json").is_file() else {}
    if not isinstance(summary, dict):
        summary = {"summary": summary}
    described = summary.get("files", {}) if isinstance(summary.get("files"), dict) else {}
    pngs = _pngs(folder)
    order = {name: i for i, name in enumerate(described)}
    pngs.sort(key=lambda q: (order.get(q.name, len(order)), q.name))
    figures = [Figure(path=q, caption=f"{q.name}: {described[q.name]}" if q.name in described else q.name) for q in pngs]
    scalars = {k: v for k, v in summary.items() if not isinstance(v, dict)}
    tables: dict[str, Any] = {"summary": scalars} if scalars else {}
    tables.update({k: v for k, v in summary.items() if isinstance(v, dict) and k not in ("files", "metadata")})
    if "metadata" in summary and isinstance(summary["metadata"], dict):
        tables["metadata"] = summary["metadata"]
    command = summary.get("command", "")
    text = f"Run folder {folder} ({command})." if command else f"Run folder {folder}."
    if described:
        text += " Files: " + "; ".join(f"{k} — {v}" for k, v in described.items()) + "."
    stores, other = [], []
    for store in sorted(c for c in folder.iterdir() if _is_zarr(c)):
        try:
            stores.append((store, input_kind(store)))
        except ValueError:  # a store of another kind (e.g. probe positions): listed, not rendered
            other.append(store.name)
    if other:
        text += " Other zarr stores in the folder (not rendered here): " + ", ".join(other) + "."
    out = [Section(f"Run {folder.name}", text, figures=figures, tables=tables)]
    for store, kind in stores:
        if kind == "trajectory":
            out += trajectory_sections(Trajectory.load(store), f"{folder.name}/{store.name}",
                                       figures=not pngs, systems=systems)
        elif kind == "phase diagram":
            out += phase_sections(store)
    return out


def figure_sections(path: Path) -> list[Section]:
    """A folder of PNG figures (or one PNG): one section per figure, its ``<stem>.json`` data as a table."""
    pngs = [path] if path.is_file() else _pngs(path)
    out = []
    for png in pngs:
        data = png.with_suffix(".json")
        tables, text = {}, ""
        if data.is_file():
            content = _read_json(data)
            if isinstance(content, dict):
                text = str(content.get("caption") or content.get("description") or content.get("title") or "")
                tables[data.name] = content
            else:
                tables[data.name] = {"data": content}
        out.append(Section(f"Figure {png.stem}", text or f"{png}", figures=[Figure(path=png, caption=png.name)],
                           tables=tables))
    return out


# ----------------------------------------------------------------------------------------------------
# trajectories
def _sphere(d: int) -> str:
    """"S²" for d = 3, "S¹" for d = 2, "S^{d−1}" beyond."""
    sup = str(d - 1).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"S{sup}"


def _beta_groups(traj: Trajectory) -> dict[float, list[int]]:
    return systems_by_beta(system_betas(traj.model, traj.shape[1]))


def energy_verdicts(traj: Trajectory, rtol: float = ENERGY_RTOL) -> list[Verdict]:
    """Energy monotonicity ((3.6), Lemma 3.7): Ē(t) non-decreasing (V = I) or non-increasing (V = −I), one row
    per β.

    Measured: :func:`tokensphere.analysis.energy_monotonicity`, the largest step between consecutive saved times
    against the trend relative to the system's largest |energy| along the run (Ē; the finite part of E_β at
    β = 0). Passes
    when ≤ rtol. Models other than Q = K = I, V = ±I, one head, no mask, with the projection, get one "n/a"
    row: no monotone energy is claimed for them.
    """
    m = traj.model
    repulsive = m.sign < 0
    word = "non-increasing" if repulsive else "non-decreasing"
    name = f"(3.6), Lemma 3.7: energy Ē(t) {word} ({'V = −I' if repulsive else 'V = I'}, {m.normalization})"
    if not (m.is_sa_toy and m.projection and m.noise == 0):
        return [Verdict(name, "not measured", "needs the deterministic flow (no noise), Q = K = I, V = ±I, one "
                        "head, no mask, with projection", None, f"model: {describe_model(m)}")]
    per_system = energy_monotonicity(traj.positions, m)  # (B,)
    rows = []
    for beta, idx in _beta_groups(traj).items():
        values = per_system[idx]
        values = values[torch.isfinite(values)]
        if values.numel() == 0:
            rows.append(Verdict(f"{name}, β = {beta:g}", "no finite energies", f"≤ {rtol:g} relative", None))
            continue
        worst = float(values.max())
        rows.append(Verdict(
            f"{name}, β = {beta:g}",
            f"largest relative step against the trend {worst:.2e}",
            f"≤ {rtol:g} relative",
            worst <= rtol,
            f"{len(idx)} system(s), {traj.shape[0]} saved times; solver {traj.solver.method}"
            + ("; β = 0: finite part of E_β" if beta == 0 else ""),
        ))
    return rows


def norm_verdict(traj: Trajectory) -> Verdict:
    """Invariant: tokens stay on the unit sphere (max over times, systems and tokens of | |x_i| − 1 |)."""
    name = "invariant: tokens on the unit sphere, | |x_i(t)| − 1 |"
    if not traj.model.projection:
        return Verdict(name, "not measured", "pure SA (no projection) leaves the sphere by design", None)
    err = (traj.positions.norm(dim=-1) - 1).abs()
    err = err[torch.isfinite(err)]
    tol = NORM_ULPS * torch.finfo(traj.positions.dtype).eps
    worst = float(err.max()) if err.numel() else float("nan")
    return Verdict(name, f"max {worst:.2e}", f"≤ {tol:.1e} ({NORM_ULPS} ε, {str(traj.positions.dtype).split('.')[-1]})",
                 bool(worst <= tol))


def _energy_png(traj: Trajectory) -> bytes | None:
    if not (traj.model.is_sa_toy and traj.model.projection):
        return None
    e = energy_series(traj.positions.to(torch.float64), traj.model)
    betas = system_betas(traj.model, traj.shape[1])
    panel = Panel(e, ENERGY_LABEL, "normalised energy (1 = consensus)")
    return png_bytes(series_figure(traj.times, [panel], betas, title="Energy along the flow"))


def _viewer_systems(traj: Trajectory, systems: Sequence[int] | None) -> list[int]:
    B = traj.shape[1]
    if systems:
        bad = [s for s in systems if not 0 <= s < B]
        if bad:
            raise ValueError(f"system must be an integer in [0, {B - 1}] for this run, got {bad[0]}")
        return list(dict.fromkeys(systems))[:MAX_VIEWERS]
    return [idx[0] for idx in _beta_groups(traj).values()][:MAX_VIEWERS]


def trajectory_sections(
    traj: Trajectory, name: str, *, figures: bool = True, systems: Sequence[int] | None = None,
) -> list[Section]:
    """Sections of one trajectory: settings, verdicts and cluster counts; then the 3-D view when d ∈ {2, 3}.

    figures: also draw Ē(t) (set False when a run folder already holds its figures). systems: which systems
    the viewer shows (default: the first system of each β, at most MAX_VIEWERS).
    """
    T, B, n, d = traj.shape
    m = traj.model
    groups = _beta_groups(traj)
    t0, t1 = float(traj.times[0]), float(traj.times[-1])
    text = (
        f"{B} system(s), n = {n} tokens on {_sphere(d)} (d = {d}), {describe_model(m)}, β ∈ {{"
        + ", ".join(f"{b:g}" for b in groups) + f"}}; {T} saved times in [{t0:g}, {t1:g}]; solver "
        f"{traj.solver.method}. Verdicts: "
        + ("the energy E_β of (3.5) is monotone along exact flows ((3.6), Lemma 3.7) and "
           if m.is_sa_toy and m.projection and m.noise == 0 else
           "no monotone energy is claimed for this model (only for Q = K = I, V = ±I, one head, no mask, no noise); ")
        + "the tokens stay on the sphere."
    )
    steps = traj.steps.tolist()
    run = {
        "T (saved times)": T, "B (systems)": B, "n (tokens)": n, "d (dimension)": d,
        "time range": f"[{t0:g}, {t1:g}]", "dtype": str(traj.positions.dtype).split(".")[-1],
        "steps per system": f"{min(steps)}–{max(steps)}" if steps else "—",
        "rejected steps (total)": int(traj.rejected.sum()),
        "systems stopped by an event": int(torch.isfinite(traj.event_time).sum()),
    }
    tables: dict[str, Any] = {"run": run}
    if m.projection:
        final = traj.final()
        ok = torch.isfinite(final).all(-1).all(-1)
        counts = torch.full((B,), -1, dtype=torch.long)
        if bool(ok.any()):
            counts[ok] = cluster_count(final[ok], CLUSTER_DELTA).cpu()
        tables[f"clusters at t = {t1:g} (δ = {CLUSTER_DELTA:g})"] = {
            f"β = {b:g}": " ".join(str(int(counts[s])) if counts[s] >= 0 else "NaN" for s in idx)
            for b, idx in groups.items()
        }
    tables["model"] = m.describe()
    tables["solver"] = traj.solver.describe()
    tables["metadata"] = traj.metadata
    figs = []
    if figures:
        png = _energy_png(traj)
        if png is not None:
            figs.append(Figure(data=png, caption="normalised energy Ē(t) per system, coloured by β"))
    verdicts = energy_verdicts(traj) + [norm_verdict(traj)]
    out = [Section(f"Trajectory {name}", text, figures=figs, tables=tables, verdicts=verdicts)]
    if d in (2, 3) and m.projection:
        chosen = _viewer_systems(traj, systems)
        betas = system_betas(m, B)
        frags = [viewer_fragment(traj.positions, traj.times, s, title=f"system {s}, β = {betas[s]:g}") for s in chosen]
        where = "on S²" if d == 3 else "on the circle S¹, drawn as the equator of S²"
        out.append(Section(
            f"3-D view — {name}",
            f"Tokens {where}, one system per view (coloured by token index, grey dots: positions at t = {t0:g}). "
            f"Drag to rotate, scroll to zoom; the slider and play button step through {_frames_text(T)}.",
            html=frags,
        ))
    return out


def _frames_text(T: int) -> str:
    """"all 11 saved times" when the viewer shows every saved time, else "60 of the 301 saved times"."""
    shown = len(frame_indices(T, 1, MAX_FRAMES))
    return f"all {T} saved times" if shown == T else f"{shown} of the {T} saved times"


# ----------------------------------------------------------------------------------------------------
# phase diagrams
def _phase_png(ds: Any) -> bytes:
    return png_bytes(phase_figure(ds))  # Figure 3 panels: one per d, with the curve Γ


def _sweep_store(path: Path, key: str, what: str) -> tuple[Any, dict, dict, np.ndarray]:
    """A phase-diagram or sweep store loaded: (dataset, its ``key`` attribute and its metadata as dicts, the
    done flags of its work units). ValueError naming the store when the attributes are unreadable."""
    with open_zarr_store(path) as handle:
        ds = handle.load()
    try:
        spec = json.loads(ds.attrs[key])
        meta = json.loads(ds.attrs.get("metadata", "{}"))
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what} store {path} has unreadable {key}/metadata attrs: {exc}") from None
    done = ds["done"].values.astype(bool) if "done" in ds else np.zeros((0,), bool)
    return ds, spec, meta, done


def phase_sections(path: Path) -> list[Section]:
    """A phase-diagram store: spec and metadata tables, heat maps per d with the Γ curve, and verdicts."""
    ds, spec, meta, done = _sweep_store(path, "spec", "phase-diagram")
    n, batch, delta = int(spec.get("n", 0)), int(spec.get("batch", 0)), float(spec.get("delta", CLUSTER_DELTA))
    preset = spec.get("preset", "adaptive")
    verdicts = [Verdict(
        "sweep complete: every (d, β) work unit done", f"{int(done.sum())} of {done.size}", f"{done.size}",
        bool(done.size and done.all()), "an interrupted sweep resumes with the same command",
    )]
    if preset == "anchor":
        verdicts.append(Verdict("t = 0 column vs independent uniform points", "not measured",
                                "anchor preset: the t = 0 column holds the state after the first Euler step, as in "
                                "the authors' phase-diagrams.py", None))
    else:
        for i, d in enumerate(int(v) for v in ds["d"].values):
            col = ds["clustered_fraction"].isel(d=i, t=0).values[done[i]] if done.size else np.array([])
            if col.size == 0:
                continue
            p = uniform_pair_probability(d, delta)
            pairs = col.size * batch * n * (n - 1) / 2  # pair indicators are pairwise independent (rotation invariance)
            tol = 5 * math.sqrt(p * (1 - p) / pairs) + 1 / pairs
            measured = float(col.mean())
            verdicts.append(Verdict(
                f"t = 0: clustered fraction = P(⟨x, y⟩ > 1 − δ) for independent uniform points, d = {d}",
                f"{measured:.3e}", f"{p:.3e} ± {tol:.1e} (5σ, {int(pairs)} pairs)", abs(measured - p) <= tol,
                "exact value I_{δ/2}((d−1)/2, (d−1)/2)",
            ))
    figs = [Figure(data=_phase_png(ds), caption=(
        "clustered fraction P(⟨x_i(t), x_j(t)⟩ > 1 − δ) over (t, β), one panel per d; black: the curve Γ of "
        "(6.12) from the equiangular ODE (6.9)"))] if "clustered_fraction" in ds else []
    dims = ", ".join(str(int(v)) for v in ds["d"].values)
    text = (
        f"Phase diagram (Figures 3 and 5): fraction of ordered pairs i ≠ j with ⟨x_i(t), x_j(t)⟩ > 1 − δ, "
        f"δ = {delta:g}, averaged over {batch} uniform random starts per (d, β); n = {n}, d ∈ {{{dims}}}, "
        f"{len(ds['beta'])} values of β in [{float(ds['beta'].min()):g}, {float(ds['beta'].max()):g}], "
        f"{spec.get('normalization', 'softmax')}, preset {preset}. Store: {path}."
    )
    return [Section(f"Phase diagram {path.name}", text, figures=figs,
                    tables={"spec": spec, "metadata": meta}, verdicts=verdicts)]


def sweep_sections(path: Path) -> list[Section]:
    """A sweep store (``tokensphere sweep``): its config and metadata tables, the summarised statistics over time
    per grid point, and whether every work unit is done."""
    from ..plot.sweep import sweep_figure

    ds, config, meta, done = _sweep_store(path, "sweep_config", "sweep")
    verdicts = [Verdict("sweep complete: every work unit done", f"{int(done.sum())} of {done.size}", f"{done.size}",
                        bool(done.size and done.all()), "an interrupted sweep resumes with the same command")]
    grid = " × ".join(f"{name} ({len(values)})" for name, values in config.get("grid", []))
    figs = []
    if any(v.endswith("_mean") for v in ds.data_vars):
        figs.append(Figure(data=png_bytes(sweep_figure(ds), dpi=90), caption=(
            "each summarised statistic over time: the mean over seeds per grid point, band ± one standard error")))
    text = (f"Parameter sweep over {grid or 'one point'}, {ds.sizes.get('seed', 1)} seeds per point; variables: "
            f"{', '.join(v for v in ds.data_vars if v != 'done')}. Store: {path}.")
    return [Section(f"Sweep {path.name}", text, figures=figs, tables={"config": config, "metadata": meta},
                    verdicts=verdicts)]


# ----------------------------------------------------------------------------------------------------
def theorem_section(results: Iterable[Any], title: str = "Theorem checks (seeded experiments)") -> Section:
    """A section of theorem checks from :func:`tokensphere.experiments.run_checks` results (or Verdicts): the table
    of verdicts, and one figure per check that recorded plot data (:func:`tokensphere.plot.checks.check_figure`)."""
    from ..plot.checks import check_figure

    results = list(results)
    rows = [r if isinstance(r, Verdict) else Verdict.from_result(r) for r in results]
    figs = []
    for r in results:
        data = getattr(r, "plot", None)
        if data and data.get("series"):
            fig = check_figure(r.name, data, passed=bool(r.passed))
            figs.append(Figure(data=png_bytes(fig, dpi=90), caption=r.name))
    seconds = sum(float(getattr(r, "seconds", 0.0) or 0.0) for r in results)
    return Section(
        title,
        "Each row simulates a small seeded experiment with the library and compares a measured quantity with a "
        "prediction that does not come from the code under test: a closed form (β = 0, the equiangular ODEs (6.9)/"
        "(6.10), two tokens, the linear case QᵀK = 0), a direct row-by-row evaluation of (2.3)/(2.7), the gradient-"
        "flow identities (3.11)/(3.12), a theorem's bound with its constant (Lemma 6.4, (D.15)), the linearised "
        "rate at consensus, or a Monte-Carlo confidence interval (Wendel, Theorems 4.1, 4.3, Proposition 3.4). "
        "The checks use general Q, K, V, several heads, masks, causal masking and both time scales of (USA); each "
        f"runs under a time limit. Total time {seconds:.0f} s.",
        figures=figs,
        verdicts=rows,
    )


def describe_inputs(paths: Sequence[Path]) -> dict[str, str]:
    """{path: kind} for the inputs (raises on the first bad one): used to validate before any work."""
    return {str(p): input_kind(p) for p in paths}


def preset_comparison_section(anchor: Any, adaptive: Any, folder: Path) -> Section:
    """The authors' Euler scheme (anchor preset) against adaptive integration on the same initial states:
    the difference figure (written to ``folder``), the largest difference per d, and an informational row."""
    diff = preset_difference(anchor, adaptive)
    fig = phase_difference_figure(anchor, adaptive, labels=("anchor (Euler 0.1)", "adaptive (dopri5)"))
    path = save_figure(fig, folder / "anchor_minus_adaptive.png")
    text = (
        "The same initial states integrated by the authors' scheme (Euler, step 0.1, renormalisation) and by the "
        "default adaptive solver. "
    )
    # the conclusion is read off the measured difference, not assumed: z > BIAS_Z standard errors is a bias
    z, largest = diff["max_z"], diff["max_abs"]
    if (math.isfinite(z) and z > BIAS_Z) or (not math.isfinite(z) and largest > 0):
        text += (f"Here the clustered fraction differs by up to {largest:.3f}, "
                 + (f"{z:.1f} Monte-Carlo standard errors" if math.isfinite(z) else "where its standard error is 0")
                 + ": the fixed Euler step moves the transition, a bias of the scheme, not noise.")
    else:
        within = f"{z:.1f} Monte-Carlo standard errors, ≤ {BIAS_Z:g}" if math.isfinite(z) else "identical"
        text += (f"Here the clustered fraction differs by at most {largest:.3f} ({within}): no bias of the scheme "
                 "is visible at these settings.")
    return Section(
        "Anchor preset against adaptive integration (same initial states)",
        text,
        figures=[path],
        tables={"largest |anchor − adaptive| of the clustered fraction":
                {k: f"{v:.3f}" for k, v in diff["by_d"].items()}},
        verdicts=[
            Verdict(
                "adaptive integration error ≪ Monte-Carlo error (rtol 1e-6 vs 1e-10 is tested in "
                "tests/test_phase.py)",
                f"anchor − adaptive: max |Δ| = {diff['max_abs']:.3f}, max |Δ|/SE = {diff['max_z']:.1f}",
                "|Δ|/SE ≲ 3 would mean no visible bias",
                None,
                "informational: this row measures the authors' scheme, it is not a pass/fail test",
            )
        ],
    )
