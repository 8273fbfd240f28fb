"""Turning saved results into report sections.

Inputs (:func:`input_kind` tells them apart, :func:`sections_for` dispatches):

* a run folder (``tokensphere demo``/``simulate`` output): summary.json, PNG figures, zarr stores inside;
* a trajectory zarr store (:meth:`tokensphere.Trajectory.save`);
* a phase-diagram zarr store (:func:`tokensphere.sweep.phase.run_phase_diagram`; attrs "spec" present);
* a folder of figures: PNG files, each with an optional ``<stem>.json`` of data next to it (or one PNG file).

Trajectories get settings/metadata tables, final cluster counts, the energy check of SPEC §4.2 / §8.7
(:func:`energy_checks`), the unit-norm invariant, and the 3-D viewer when d = 3 (or d = 2, on the equator).
Phase diagrams get their spec, a heat map per d with the Γ curve, and a check of the t = 0 column against the
exact probability for independent uniform points.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..analysis import cluster_count
from ..energy import energy_over_time
from ..trajectory import Trajectory
from .html import Check, Figure, Section

__all__ = [
    "CLUSTER_DELTA",
    "describe_inputs",
    "ENERGY_RTOL",
    "MAX_VIEWERS",
    "energy_checks",
    "figure_sections",
    "input_kind",
    "norm_check",
    "phase_sections",
    "run_folder_sections",
    "sections_for",
    "theorem_section",
    "trajectory_sections",
    "uniform_pair_probability",
]

ENERGY_RTOL = 1e-8  # largest relative step of Ē against its monotone trend accepted (SPEC §8.7, demo's rtol)
CLUSTER_DELTA = 1e-3  # cluster threshold ⟨x_i, x_j⟩ > 1 − δ of Figure 3 (SPEC §6)
MAX_VIEWERS = 4  # 3-D views per trajectory (one per β by default): each holds a WebGL context
ENERGY_BLOCK = 2 * 10**7  # score entries per energy evaluation (memory bound for large runs)
NORM_ULPS = 100  # | |x_i| − 1 | allowed, in units of the dtype's machine epsilon
KINDS = ("run folder", "trajectory", "phase diagram", "figures")


# ----------------------------------------------------------------------------------------------------
# what an input is
def _is_zarr(p: Path) -> bool:
    return p.is_dir() and any((p / m).exists() for m in ("zarr.json", ".zgroup", ".zattrs"))


def _zarr_attrs(p: Path) -> dict[str, Any]:
    import xarray as xr

    try:
        with xr.open_zarr(p, consolidated=False) as ds:
            return dict(ds.attrs)
    except Exception as exc:  # a corrupt or foreign store: say so in one line
        raise ValueError(f"cannot read the zarr store {p}: {' '.join(str(exc).split())[:200]}") from None


def input_kind(path: str | Path) -> str:
    """"run folder", "trajectory", "phase diagram" or "figures" for a report input; ValueError otherwise."""
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
        if "model" in attrs and "solver" in attrs:
            return "trajectory"
        raise ValueError(f"zarr store {p} is neither a tokensphere trajectory nor a phase diagram (no model/spec attrs)")
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
    out = [Section(f"Run {folder.name}", text, figures=figures, tables=tables)]
    for store in sorted(c for c in folder.iterdir() if _is_zarr(c)):
        kind = input_kind(store)
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
def _describe(model: Any) -> str:
    parts = ["SA (softmax)" if model.normalization == "softmax" else "USA (1/n)"]
    v = model.V
    parts.append("V = −I (repulsive)" if v == "repulsive" else "V = I" if v == "identity" else "V given")
    if not model.is_identity_attention:
        parts.append("general Q, K or mask")
    if model.heads > 1:
        parts.append(f"{model.heads} heads")
    if not model.projection:
        parts.append("no projection (pure SA on R^d)")
    if model.time_scale != "original":
        parts.append("time s = e^β t")
    return ", ".join(parts)


def _sphere(d: int) -> str:
    """"S²" for d = 3, "S¹" for d = 2, "S^{d−1}" beyond."""
    sup = str(d - 1).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"S{sup}"


def _beta_groups(traj: Trajectory) -> dict[float, list[int]]:
    betas = traj.model.beta_tensor().expand(traj.shape[1]).tolist()
    groups: dict[float, list[int]] = {}
    for s, b in enumerate(betas):
        groups.setdefault(float(b), []).append(s)
    return groups


def _energy_series(positions: torch.Tensor, model: Any, kind: str) -> torch.Tensor:
    """:func:`energy_over_time` over blocks of saved times, so the (times, B, n, n) scores stay ≤ ~2·10⁷ entries."""
    T, B, n, _ = positions.shape
    block = max(1, ENERGY_BLOCK // max(B * n * n, 1))
    return torch.cat([energy_over_time(positions[k : k + block], model, kind=kind) for k in range(0, T, block)])


def energy_checks(traj: Trajectory, rtol: float = ENERGY_RTOL) -> list[Check]:
    """SPEC §4.2: Ē(t) non-decreasing (V = I) or non-increasing (V = −I), one row per β.

    Measured: the largest step between consecutive saved times against the trend, relative to |Ē| at the
    earlier time (normalised energy, :func:`energy_over_time` kind "normalized"; the finite part of E_β at
    β = 0). Passes when ≤ rtol. Models other than Q = K = I, V = ±I, one head, no mask, with the projection,
    get one "n/a" row: the monotonicity identity is not a theorem for them.
    """
    m = traj.model
    repulsive = m.sign < 0
    word = "non-increasing" if repulsive else "non-decreasing"
    name = f"§4.2: energy Ē(t) {word} ({'V = −I' if repulsive else 'V = I'}, {m.normalization})"
    if not (m.is_sa_toy and m.projection):
        return [Check(name, "not measured", "needs Q = K = I, V = ±I, one head, no mask, with projection", None,
                      f"model: {_describe(m)}")]
    pos = traj.positions.to(torch.float64)
    rows = []
    for beta, idx in _beta_groups(traj).items():
        model = m.take(torch.tensor(idx)) if m.batch_size > 1 else m
        kind = "energy" if beta == 0 else "normalized"
        e = _energy_series(pos[:, idx], model, kind)  # (T, b)
        step = (e[1:] - e[:-1]) * (-1.0 if repulsive else 1.0)
        against = -step / e[:-1].abs().clamp_min(torch.finfo(torch.float64).tiny)
        against = against[torch.isfinite(against)]
        if against.numel() == 0:
            rows.append(Check(f"{name}, β = {beta:g}", "no finite energies", f"≤ {rtol:g} relative", None))
            continue
        worst = float(against.max())
        worst = worst if worst > 0 else 0.0  # "−0" reads oddly: any step along the trend counts as 0
        rows.append(Check(
            f"{name}, β = {beta:g}",
            f"largest relative step against the trend {worst:.2e}",
            f"≤ {rtol:g} relative",
            worst <= rtol,
            f"{len(idx)} system(s), {traj.shape[0]} saved times; solver {traj.solver.method}"
            + ("; β = 0: finite part of E_β" if beta == 0 else ""),
        ))
    return rows


def norm_check(traj: Trajectory) -> Check:
    """Invariant: tokens stay on the unit sphere (max over times, systems and tokens of | |x_i| − 1 |)."""
    name = "invariant: tokens on the unit sphere, | |x_i(t)| − 1 |"
    if not traj.model.projection:
        return Check(name, "not measured", "pure SA (no projection) leaves the sphere by design", None)
    err = (traj.positions.norm(dim=-1) - 1).abs()
    err = err[torch.isfinite(err)]
    tol = NORM_ULPS * torch.finfo(traj.positions.dtype).eps
    worst = float(err.max()) if err.numel() else float("nan")
    return Check(name, f"max {worst:.2e}", f"≤ {tol:.1e} ({NORM_ULPS} ε, {str(traj.positions.dtype).split('.')[-1]})",
                 bool(worst <= tol))


def _energy_png(traj: Trajectory) -> bytes | None:
    if not (traj.model.is_sa_toy and traj.model.projection):
        return None
    from ..plot import Panel, series_figure

    e = _energy_series(traj.positions.to(torch.float64), traj.model, "normalized")
    betas = traj.model.beta_tensor().expand(traj.shape[1]).tolist()
    panel = Panel(e, r"$\bar E = 2\beta\, e^{-\beta} E_\beta$", "normalised energy (1 = consensus)")
    return _png(series_figure(traj.times, [panel], betas, title="Energy along the flow"))


def _png(fig: Any, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


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
    """Sections of one trajectory: settings, checks and cluster counts; then the 3-D view when d ∈ {2, 3}.

    figures: also draw Ē(t) (set False when a run folder already holds its figures). systems: which systems
    the viewer shows (default: the first system of each β, at most MAX_VIEWERS).
    """
    T, B, n, d = traj.shape
    m = traj.model
    groups = _beta_groups(traj)
    t0, t1 = float(traj.times[0]), float(traj.times[-1])
    text = (
        f"{B} system(s), n = {n} tokens on {_sphere(d)} (d = {d}), {_describe(m)}, β ∈ {{"
        + ", ".join(f"{b:g}" for b in groups) + f"}}; {T} saved times in [{t0:g}, {t1:g}]; solver "
        f"{traj.solver.method}. Checks: the energy of SPEC §4.1 (normalisation A) is monotone along exact flows "
        "(§4.2) and the tokens stay on the sphere."
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
    checks = energy_checks(traj) + [norm_check(traj)]
    out = [Section(f"Trajectory {name}", text, figures=figs, tables=tables, checks=checks)]
    if d in (2, 3) and m.projection:
        from .viewer import MAX_FRAMES, viewer_fragment

        chosen = _viewer_systems(traj, systems)
        betas = m.beta_tensor().expand(B).tolist()
        frags = [viewer_fragment(traj.positions, traj.times, s, title=f"system {s}, β = {betas[s]:g}") for s in chosen]
        where = "on S²" if d == 3 else "on the circle S¹, drawn as the equator of S²"
        out.append(Section(
            f"3-D view — {name}",
            f"Tokens {where}, one system per view (coloured by token index, grey dots: positions at t = {t0:g}). "
            f"Drag to rotate, scroll to zoom; the slider and play button step through up to {MAX_FRAMES} of the "
            f"{T} saved times.",
            html=frags,
        ))
    return out


# ----------------------------------------------------------------------------------------------------
# phase diagrams
def uniform_pair_probability(d: int, delta: float) -> float:
    """P(⟨x, y⟩ > 1 − δ) for independent x, y uniform on S^{d−1}: (1 + ⟨x, y⟩)/2 ~ Beta((d−1)/2, (d−1)/2),
    so the probability is I_{δ/2}((d−1)/2, (d−1)/2) (regularised incomplete beta function)."""
    from scipy.special import betainc

    a = (d - 1) / 2
    return float(betainc(a, a, delta / 2))


def _phase_png(ds: Any) -> bytes:
    from ..plot.phase import phase_figure  # Figure 3 panels: one per d, with the curve Γ

    return _png(phase_figure(ds))


def phase_sections(path: Path) -> list[Section]:
    """A phase-diagram store: spec and metadata tables, heat maps per d with the Γ curve, and checks."""
    import xarray as xr

    with xr.open_zarr(path, consolidated=False) as handle:
        ds = handle.load()
    try:
        spec = json.loads(ds.attrs["spec"])
        meta = json.loads(ds.attrs.get("metadata", "{}"))
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"phase-diagram store {path} has unreadable spec/metadata attrs: {exc}") from None
    done = ds["done"].values.astype(bool) if "done" in ds else np.zeros((0,), bool)
    n, batch, delta = int(spec.get("n", 0)), int(spec.get("batch", 0)), float(spec.get("delta", CLUSTER_DELTA))
    preset = spec.get("preset", "adaptive")
    checks = [Check(
        "sweep complete: every (d, β) work unit done", f"{int(done.sum())} of {done.size}", f"{done.size}",
        bool(done.size and done.all()), "an interrupted sweep resumes with the same command",
    )]
    if preset == "anchor":
        checks.append(Check("t = 0 column vs independent uniform points", "not measured",
                            "anchor preset: the t = 0 column holds the state after the first step (SPEC §7)", None))
    else:
        for i, d in enumerate(int(v) for v in ds["d"].values):
            col = ds["clustered_fraction"].isel(d=i, t=0).values[done[i]] if done.size else np.array([])
            if col.size == 0:
                continue
            p = uniform_pair_probability(d, delta)
            pairs = col.size * batch * n * (n - 1) / 2  # pair indicators are pairwise independent (rotation invariance)
            tol = 5 * math.sqrt(p * (1 - p) / pairs) + 1 / pairs
            measured = float(col.mean())
            checks.append(Check(
                f"t = 0: clustered fraction = P(⟨x, y⟩ > 1 − δ) for independent uniform points, d = {d}",
                f"{measured:.3e}", f"{p:.3e} ± {tol:.1e} (5σ, {int(pairs)} pairs)", abs(measured - p) <= tol,
                "exact value I_{δ/2}((d−1)/2, (d−1)/2)",
            ))
    figs = [Figure(data=_phase_png(ds), caption=(
        "clustered fraction P(⟨x_i(t), x_j(t)⟩ > 1 − δ) over (t, β), one panel per d; black: the curve Γ of "
        "(6.12) from the equiangular ODE (SPEC §5.10)"))] if "clustered_fraction" in ds else []
    dims = ", ".join(str(int(v)) for v in ds["d"].values)
    text = (
        f"Phase diagram (Figures 3 and 5): fraction of ordered pairs i ≠ j with ⟨x_i(t), x_j(t)⟩ > 1 − δ, "
        f"δ = {delta:g}, averaged over {batch} uniform random starts per (d, β); n = {n}, d ∈ {{{dims}}}, "
        f"{len(ds['beta'])} values of β in [{float(ds['beta'].min()):g}, {float(ds['beta'].max()):g}], "
        f"{spec.get('normalization', 'softmax')}, preset {preset}. Store: {path}."
    )
    return [Section(f"Phase diagram {path.name}", text, figures=figs,
                    tables={"spec": spec, "metadata": meta}, checks=checks)]


# ----------------------------------------------------------------------------------------------------
def theorem_section(results: Iterable[Any], title: str = "Theorem checks (seeded experiments)") -> Section:
    """A section of theorem checks from :func:`tokensphere.theory.verify.run_checks` results (or Checks)."""
    checks = [r if isinstance(r, Check) else Check.from_result(r) for r in results]
    return Section(
        title,
        "Each row simulates a small seeded experiment with the library and compares a measured quantity with "
        "the theorem's statement: a closed form, an inequality or a probability (SPEC §5).",
        checks=checks,
    )


def describe_inputs(paths: Sequence[Path]) -> dict[str, str]:
    """{path: kind} for the inputs (raises on the first bad one): used to validate before any work."""
    return {str(p): input_kind(p) for p in paths}
