"""``tokensphere simulate``: integrate a batch of systems (every β × ``--batch`` starts) and write a zarr store.

The command builds a :class:`~tokensphere.Model` (β, normalisation, heads, Q/K/QK/V and mask files, or a named
random ensemble), an initial state (a named sampler of :mod:`tokensphere.init`, an array file, or the final
state of a saved run) and a solver, calls :func:`~tokensphere.simulate` with a progress bar, writes the
:class:`~tokensphere.Trajectory` atomically and prints a one-paragraph summary.

Layout of the systems: system i = (β index i // batch, start i % batch); start k is the same for every β.

Continuing a run (``--from-run``): the saved run's final state, model and solver are kept; the model and solver
options given explicitly on the command line override the saved ones (and only those); ``--t-max`` is the
absolute final time. Options that describe a fresh start (``--n``, ``--d``, ``--seed``, ``--init``,
``--batch``, ``--cap-angle``, ``--gamma0``) are refused with it rather than ignored.

Every option given that would have no effect is refused, naming it and the option it needs (``--cap-angle``
without ``--init cap``, the Sinkhorn options without ``--normalization sinkhorn``, ...), and so is a run whose
positions and saved trajectory cannot fit in the free memory: before any state is sampled.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
from typer import Option

from ..blocks import NORMS
from ..ensembles import SCORES, VALUES, Ensemble
from ..experiments.describe import describe_model
from ..feedforward import FeedForward
from ..analysis.geometry import order_parameter
from ..experiments.layout import beta_batch, counts_by_beta, group_by_beta, system_betas
from ..init import INITIALS, FromFile, looks_like_array_file, make_initial, read_array
from ..integrate import METHODS, SDE_METHODS, anchor_solver
from ..integrate.sde import DEFAULT_SDE_METHOD
from ..integrate.solver import ADAPTIVE
from ..integrate.split import SplitSolver
from ..model import NORMALIZATIONS, Model
from ..runtime import available_memory
from ..simulate import simulate
from ..io import validate_output_path
from ..trajectory import Trajectory
from ..validate import validate_choice, validate_int, validate_real
from .options import split_values
from .progress import stderr_progress

__all__ = [
    "simulate_command",
    "parse_betas",
    "progress_bar",
    "format_counts",
    "SUMMARY_DELTA",
    "START_OPTIONS",
    "MODEL_OPTIONS",
    "SOLVER_OPTIONS",
]

SUMMARY_DELTA = 1e-3  # cluster threshold δ of the paper's Figure 3
ANCHOR_STEP = 0.1  # the step of the authors' phase-diagram code

# options that make a fresh start: refused together with --from-run
START_OPTIONS = ("n", "d", "seed", "init", "batch", "cap_angle", "gamma0")
# options that define the model / the solver: with --from-run, the explicitly given ones override the saved run
MODEL_OPTIONS = (
    "beta", "normalization", "time_scale", "repulsive", "causal", "projection", "heads", "head_reduction",
    "Q", "K", "QK", "V", "mask", "uniform_count", "score", "value", "share", "weights_seed",
    "noise", "sinkhorn_iters", "sinkhorn_tol", "ties", "tie_tol", "tie_seed", "centered", "feedforward",
    "activation", "norm", "norm_gain",
)
SOLVER_OPTIONS = ("solver", "dt", "rtol", "atol", "anchor", "noise_seed", "splitting", "substeps")
MATRIX_OPTIONS = ("Q", "K", "QK", "V")


def parse_betas(values: Sequence[str] | None) -> list[float]:
    """β values from repeated and/or comma-separated options: ``["1", "4,9"]`` → ``[1.0, 4.0, 9.0]``.

    None gives ``[1.0]``. Raises ValueError naming beta for a token that is not a number; the range (β ≥ 0,
    finite) is checked by :class:`~tokensphere.Model`.
    """
    if not values:
        return [1.0]
    return split_values(values, float, "beta must be a finite number >= 0")


@contextmanager
def progress_bar(description: str, t_max: float, t0: float = 0.0) -> Iterator[Callable[[float], None]]:
    """A rich progress bar on stderr, driven by the ``progress`` callback of :func:`~tokensphere.simulate`.

    Yields the callback (it receives the fraction of [t0, t_max] done by the slowest system). The bar appears
    at the first call, so input errors raised before the integration starts print no bar; on failure it is
    removed, leaving only the error line (:func:`~tokensphere.cli.progress.stderr_progress`).
    """
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("t = {task.fields[t]:.3g} / " + f"{t_max:g}"), TimeElapsedColumn())
    with stderr_progress(*columns) as bar:
        yield lambda f: bar(description=description, total=1.0, completed=f, t=t0 + f * (t_max - t0))


def format_counts(groups: dict[float, list[int]], limit: int = 8) -> str:
    """"β = 1: 1 1 1 1; β = 9: 3 4 3 3" (min/median/max when a β has more than ``limit`` systems)."""
    items = []
    for b, counts in groups.items():
        if len(counts) <= limit:
            items.append(f"β = {b:g}: " + " ".join(map(str, counts)))
        else:
            s = sorted(counts)
            items.append(f"β = {b:g}: median {s[len(s) // 2]} (min {s[0]}, max {s[-1]}, {len(s)} systems)")
    return "; ".join(items)


_FILE_HELP = "a .npy file (or .npz, PATH.npz:NAME, .csv)"


def simulate_command(
    ctx: typer.Context,
    out: Annotated[Path, Option(help="Output zarr store (a directory) for the Trajectory.")],
    n: Annotated[int, Option(help="Number of tokens n.")] = 32,
    d: Annotated[int, Option(help="Dimension d (tokens on S^{d-1}).")] = 3,
    batch: Annotated[
        int, Option(help="Systems per β; start k is the same seeded state for every β. A run whose positions and "
                    "saved times (--save-at) cannot fit in the free memory is refused before sampling.")
    ] = 1,
    beta: Annotated[
        list[str] | None,
        Option(help="Inverse temperature β ≥ 0; repeat the option or give a comma list (1,4,9).", show_default="1"),
    ] = None,
    normalization: Annotated[
        str, Option(help="softmax (SA, /Z, (2.3)), uniform (USA, /n), sinkhorn (doubly stochastic, Remark 3.5) or "
                    "hardmax (β → ∞, (9.5)–(9.6)).")
    ] = "softmax",
    sinkhorn_iters: Annotated[
        int, Option(help="Sinkhorn: at most this many column + row normalisations (0 = softmax); only with "
                    "--normalization sinkhorn.")
    ] = 100,
    sinkhorn_tol: Annotated[float, Option(help="Sinkhorn: stop when every column sums to 1 within this; only with "
                                              "--normalization sinkhorn.")] = 1e-9,
    ties: Annotated[
        str, Option(help="Hardmax tie policy: average (9.5), lowest (index), random (seeded by --tie-seed).")
    ] = "average",
    tie_tol: Annotated[float, Option(help="Hardmax: scores within this of the row maximum tie.")] = 1e-12,
    tie_seed: Annotated[int, Option(help="Hardmax: seed of the random tie policy (only with --ties random).")] = 0,
    centered: Annotated[
        bool, Option("--centered", help="Value term Σ_j A_ij V (x_j − x_i): with --no-projection the rescaled "
                     "dynamics (9.4) (hardmax: (9.5)).")
    ] = False,
    time_scale: Annotated[
        str, Option(help="original, or exp_beta (USA only: time s = e^β t; --t-max is then in s).")
    ] = "original",
    heads: Annotated[
        int, Option(help="Number of heads H (2.7); needs per-head --Q/--K or --QK of shape (H, ., d).")
    ] = 1,
    head_reduction: Annotated[str, Option(help="sum (the paper's (2.7)) or mean over the heads.")] = "sum",
    Q: Annotated[
        str | None, Option("--Q", help=f"Query matrices, {_FILE_HELP}: (k, d), (B, k, d); with heads (H, k, d), "
                           "(B, H, k, d). Give with --K; scores ⟨Q x_i, K x_j⟩.", show_default="I")
    ] = None,
    K: Annotated[str | None, Option("--K", help="Key matrices, same shapes as --Q.", show_default="I")] = None,
    QK: Annotated[
        str | None, Option("--QK", help=f"The bilinear form QᵀK directly, {_FILE_HELP}: (d, d), (B, d, d); with "
                           "heads (H, d, d), (B, H, d, d).", show_default="I")
    ] = None,
    V: Annotated[
        str | None, Option("--V", help=f"Value matrices (x ↦ V x), {_FILE_HELP}: (d, d), (B, d, d); with heads also "
                           "(H, d, d), (B, H, d, d).", show_default="I")
    ] = None,
    repulsive: Annotated[
        bool, Option("--repulsive", help="V = −I instead of V = I (shortcut; conflicts with --V).")
    ] = False,
    mask: Annotated[
        str | None, Option(help=f"Additive score bias b_ij, {_FILE_HELP}: (n, n), (B, n, n) or (B, H, n, n); "
                           "-inf masks the pair.")
    ] = None,
    causal: Annotated[bool, Option("--causal", help="Causal mask: token i attends to j ≤ i.")] = False,
    feedforward: Annotated[
        str | None, Option(help="Feed-forward term w σ(a x_i + b) of (2.8): an .npz file with arrays w (d, p), "
                           "a (p, d) and optionally b (p,); per-system (B, ...) stacks also accepted.")
    ] = None,
    activation: Annotated[str, Option(help="σ of --feedforward: relu, gelu or tanh.")] = "relu",
    uniform_count: Annotated[
        str, Option(help="USA with a mask: divide by n, or by the number of attended tokens (attended); only with "
                    "--normalization uniform.")
    ] = "n",
    score: Annotated[
        str | None, Option(help=f"Random score matrix QᵀK, the ensembles of Figure 5: {', '.join(SCORES)}.",
                           show_default="none")
    ] = None,
    value: Annotated[
        str | None, Option(help=f"Random value matrix V (Figure 5): {', '.join(VALUES)}.", show_default="none")
    ] = None,
    share: Annotated[
        str, Option(help="Random weights: one draw for all systems (shared: the matrices define the model), one per "
                    "β (per_beta), or one per system (independent).")
    ] = "shared",
    weights_seed: Annotated[int, Option(help="Seed of the random weights (--score/--value).")] = 0,
    projection: Annotated[
        bool, Option("--projection/--no-projection", help="Apply the tangent projection P⊥ (the paper's model).")
    ] = True,
    norm: Annotated[
        str, Option(help="Block normalisation, continuous form (docs/blocks.md): post (the paper's P⊥), pre "
                    "(ẏ = F(N(y)); with --no-projection), rms (ellipsoid of --norm-gain; with --no-projection), ngpt.")
    ] = "post",
    norm_gain: Annotated[
        str | None, Option(help="RMSNorm gain g > 0, d comma-separated numbers; only with --norm rms.",
                           show_default="ones")
    ] = None,
    noise: Annotated[
        float, Option(help="Noise strength σ ≥ 0: Brownian motion on the sphere added to every token (Problem 7); "
                      "needs --dt (fixed-step stochastic methods).")
    ] = 0.0,
    noise_seed: Annotated[
        int | None, Option(help="Seed of the Brownian increments, an integer in [0, 2^64 − 1]; only with "
                           "--noise > 0.", show_default="0")
    ] = None,
    t_max: Annotated[
        float, Option(help="Final time (time plays the role of depth). With --from-run the absolute final time; "
                      "default there: the saved run's final time plus its duration.")
    ] = 10.0,
    save_at: Annotated[
        int, Option(help="Number of equally spaced output times from t0 to --t-max (t0 = 0, or the saved run's "
                    "final time with --from-run). With a fixed-step --solver, --anchor, --noise or --splitting the "
                    "times lie on the step (layer) grid: every q-th step, at most this many, plus --t-max, so every "
                    "step is --dt.")
    ] = 101,
    solver: Annotated[
        str | None, Option(help=f"Method: {', '.join(METHODS)}; with --noise: {', '.join(SDE_METHODS)}.",
                           show_default=f"dopri5; {DEFAULT_SDE_METHOD} with --noise")
    ] = None,
    dt: Annotated[
        float | None, Option(help="Step (fixed-step methods), first step (adaptive), or the layer step h "
                             "(--splitting).")
    ] = None,
    rtol: Annotated[float | None, Option(help="Relative tolerance (adaptive).", show_default="1e-7")] = None,
    atol: Annotated[float | None, Option(help="Absolute tolerance (adaptive).", show_default="1e-9")] = None,
    anchor: Annotated[
        bool, Option("--anchor", help="The authors' scheme: Euler on the raw field, renormalised; step --dt or 0.1.")
    ] = False,
    splitting: Annotated[
        str | None, Option(help="Discrete Transformer layers instead of the flow: each step is one block of (2.8) "
                           "of step h = --dt (needed; --t-max/--dt layers, every saved time a layer boundary), "
                           "attention then feed-forward (lie-trotter) or half attention, feed-forward, half "
                           "attention (strang), normalised as --norm says (docs/blocks.md).",
                           show_default="none: the continuous flow")
    ] = None,
    substeps: Annotated[
        str | None, Option(help="--splitting's sub-steps: euler (the literal layer update) or exact (each term's "
                           "exact flow by dopri5 at --rtol, default 1e-12).", show_default="euler")
    ] = None,
    init: Annotated[
        str, Option(help="Start: uniform, orthonormal, cap, hemisphere, equiangular, or an array file: .npy, .npz "
                    "(PATH.npz:NAME, the only array, or the one named x0) or .csv (n rows of d numbers), holding "
                    "unit vectors of shape (n, d) or (B, n, d).")
    ] = "uniform",
    cap_angle: Annotated[float | None, Option(help="Cap half-angle in rad, in (0, π]; only with --init cap.",
                                                     show_default="π/2")] = None,
    gamma0: Annotated[
        float | None, Option(help="Pairwise ⟨x_i, x_j⟩ at t = 0; only with --init equiangular.", show_default="0")
    ] = None,
    from_run: Annotated[
        Path | None, Option(help="Continue a saved run from its final state and time, with its model and solver; "
                            "model and solver options given here override the saved ones.")
    ] = None,
    seed: Annotated[int, Option(help="Seed of the initial state (start k uses stream (seed, k)).")] = 0,
    dtype: Annotated[str, Option(help="float64 or float32 (--from-run: the saved run's unless given).")] = "float64",
    device: Annotated[str | None, Option(help="torch device, e.g. cpu or cuda.", show_default="cpu")] = None,
    chunk_size: Annotated[int | None, Option(help="Stream the field over key blocks of this size (O(n) memory).")] = (
        None
    ),
    overwrite: Annotated[bool, Option("--overwrite", help="Replace --out if it is a zarr store or an empty folder (anything else is refused, never deleted).")] = False,
) -> None:
    """Integrate the attention dynamics for every β × --batch starts and write a zarr store."""
    out_path = validate_output_path(out, overwrite=overwrite, create=False, replaces="zarr")  # the folder is made when saving
    _check_device(device)
    p = dict(ctx.params)
    given = {name for name in p if _given(ctx, name)}
    _check_option_conflicts(p, given)
    metadata: dict[str, Any] = {"cli": {"command": "simulate", "options": _jsonable(p)}}
    kwargs: dict[str, Any] = {"save_at": save_at, "device": device, "chunk_size": chunk_size}
    if from_run is None or "dtype" in given:  # a continued run keeps its dtype unless told otherwise
        kwargs["dtype"] = dtype
    threads = ctx.find_root().params.get("threads")
    if threads is not None:
        kwargs["threads"] = threads

    if from_run is not None:
        refused = [_flag(name) for name in START_OPTIONS if name in given]
        if refused:
            raise ValueError(
                f"--from-run continues the saved run's state; do not combine it with {', '.join(refused)}"
            )
        run = Trajectory.load(from_run)  # a clear ValueError for a path that is not a saved run
        B, n_run, d_run = run.final().shape
        t0 = float(run.times[-1])
        if "t_max" not in given:
            t_max = t0 + (t0 - float(run.times[0]))
        _check_noise_seed(p, p["noise"] if "noise" in given else run.model.noise)
        betas = _continued_betas(p, given, run.model, B)
        fixed, step = _step_grid(p, run.solver)
        _check_memory(
            f"B = {_count(len(betas), 'system')} of n = {n_run} tokens in d = {d_run} (the state of --from-run "
            f"{from_run})", "lower --save-at", systems=len(betas), n=n_run, d=d_run,
            itemsize=_itemsize(dtype) if "dtype" in given else run.final().element_size(), host=0,
            saves=_saves_at_least(save_at, t_max - t0, fixed, step), save_at=save_at, device=device,
        )
        model_kw, weights_meta = _model_options(p, given, betas=betas, n=n_run, d=d_run, saved=run.model)
        method, solver_kw = _continued_solver(p, given, run.model, model_kw, run.solver)
        saved_solver = run.solver
        x0: Any = run  # loaded once, here; simulate continues it
        overrides = [_flag(name) for name in MODEL_OPTIONS + SOLVER_OPTIONS if name in given]
        continued: tuple[str, float, list[str]] | None = (str(from_run), t0, overrides)
    else:
        spec, start_meta, (S, n_start, d_start) = _initial_state(p, given)
        _check_noise_seed(p, p["noise"])
        betas = parse_betas(beta)
        dup = next((b for i, b in enumerate(betas) if b in betas[:i]), None)
        if dup is not None:  # every β runs the same starts: a repeated β would repeat its systems bit for bit
            raise ValueError(f"beta holds the value {dup:g} twice; every β runs the same --batch starts, so its "
                             "systems would be repeated exactly: give distinct values (more starts: --batch)")
        systems = len(betas) * S
        if isinstance(spec, FromFile):
            what = (f"{_count(S, 'start')} from --init {init} × {_count(len(betas), 'β value')}) of n = {n_start} "
                    f"tokens in d = {d_start}")
            remedy = "use fewer β values or a lower --save-at (or a smaller start file)"
        else:
            what = (f"--batch {S} × {_count(len(betas), 'β value')}) of n = {n_start} tokens (--n) in "
                    f"d = {d_start} (--d)")
            remedy = "lower --batch, --n, --d, --save-at or the number of β values"
        fixed, step = _step_grid(p, None)
        _check_memory(
            f"B = {_count(systems, 'system')} ({what}", remedy, systems=systems, n=n_start, d=d_start,
            itemsize=_itemsize(dtype), host=8, saves=_saves_at_least(save_at, t_max, fixed, step), save_at=save_at,
            device=device,
        )
        batch = beta_batch(spec, betas)  # system (β_i, k) starts from start k
        x0, betas = batch.x0, batch.beta.tolist()
        metadata.update(start_meta, init=batch.init)
        model_kw, weights_meta = _model_options(p, given, betas=betas, n=x0.shape[1], d=x0.shape[2], saved=None)
        model_kw = {"model": Model(**model_kw)}
        method, solver_kw = _fresh_solver(p, model_kw["model"])
        t0, continued, saved_solver = 0.0, None, None
    if weights_meta:
        metadata["weights"] = weights_meta
    split = method if isinstance(method, SplitSolver) else saved_solver if method is None else None
    if isinstance(split, SplitSolver) and "save_at" not in given:  # default output times on layer boundaries
        kwargs["save_at"] = _layer_saves(t_max - t0, solver_kw.get("dt", split.dt), save_at)

    with progress_bar("integrating", t_max, t0) as update:
        traj = simulate(
            x0, t_max=t_max, progress=update, metadata=metadata, **kwargs, **solver_kw,
            **({"solver": method} if method is not None else {}), **model_kw,
            **({"seed": noise_seed} if noise_seed is not None else {}),
        )
    if continued is not None:  # simulate was handed the loaded run: name its store as the source
        for key, entry in (("continuation", "from"), ("init", "path")):
            if isinstance(traj.metadata.get(key), dict):
                traj.metadata[key][entry] = str(from_run)
        if isinstance(traj.metadata.get("init"), dict):
            traj.metadata["init"]["kind"] = "saved_run"
    traj.save(out_path, overwrite=overwrite)
    _print_summary(traj, out_path, continued)


# ---------------------------------------------------------------------------------------------------------------
# options


def _given(ctx: typer.Context, name: str) -> bool:
    """True when the user set option ``name`` (on the command line or through the environment), as opposed to
    its default. Compared by name: typer may ship its own copy of click's ``ParameterSource``."""
    source = ctx.get_parameter_source(name)
    return getattr(source, "name", None) in ("COMMANDLINE", "ENVIRONMENT")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_option_conflicts(p: dict[str, Any], given: set[str]) -> None:
    """Refuse option pairs that contradict each other, naming both."""

    def refuse(a: str, b: str, why: str) -> None:
        raise ValueError(f"{_flag(a)} conflicts with {_flag(b)}: {why}")

    if p["QK"] is not None and (p["Q"] is not None or p["K"] is not None):
        refuse("QK", "Q" if p["Q"] is not None else "K", "give either QᵀK (--QK) or the pair --Q, --K")
    if (p["Q"] is None) != (p["K"] is None):
        raise ValueError("--Q and --K must be given together (or give --QK)")
    if p["V"] is not None and p["repulsive"]:
        refuse("repulsive", "V", "--repulsive is the shortcut for V = −I; give one of them")
    if p["score"] is not None:
        for other in ("Q", "K", "QK"):
            if p[other] is not None:
                refuse("score", other, "the score matrix is either drawn or read from a file")
    if p["value"] is not None:
        for other in ("V", "repulsive"):
            if p[other]:
                refuse("value", other, "the value matrix is either drawn or given")
    random = p["score"] is not None or p["value"] is not None
    for name in ("share", "weights_seed"):
        if name in given and not random:
            raise ValueError(f"{_flag(name)} applies to random weights; give --score and/or --value with it")
    if random and p["heads"] != 1:
        refuse("heads", "score" if p["score"] is not None else "value",
               "the random ensembles draw one head; give per-head --Q/--K or --QK files for several heads")


def _initial_state(p: dict[str, Any], given: set[str]) -> tuple[Any, dict[str, Any], tuple[int, int, int]]:
    """The initial-condition spec of the starts (shared by every β), the metadata beside ``init`` and the shape
    (S, n, d) of the starts. A named start is not sampled here (a file is read): the memory check comes first."""
    init = p["init"]
    validate_int("batch", p["batch"], minimum=1)
    if init not in INITIALS and looks_like_array_file(init):
        for name in ("seed", "cap_angle", "gamma0"):
            if name in given:
                raise ValueError(f"--init {init} reads the start from a file; {_flag(name)} does not apply to it")
        spec: Any = FromFile(init, unit=p["projection"], name="--init")
        x = spec.sample()
        S, n, d = x.shape
        for name, have in (("n", n), ("d", d), ("batch", S)):
            if name in given and p[name] != have:
                raise ValueError(
                    f"{_flag(name)} {p[name]} does not match --init {init}, which holds {S} start(s) of shape "
                    f"(n, d) = ({n}, {d})"
                )
        return spec, {}, (S, n, d)
    if init not in INITIALS:
        raise ValueError(
            f"init must be one of {', '.join(map(repr, INITIALS))} or an array file (.npy, .npz, .csv), got {init!r}"
        )
    extra: dict[str, Any] = {}
    if p["cap_angle"] is not None:  # None: not given (its default, π/2, is the sampler's)
        if init != "cap":
            also = " (a hemisphere is the cap of half-angle π/2)" if init == "hemisphere" else ""
            raise ValueError(f"--cap-angle applies only with --init cap, got --init {init}{also}")
        extra["angle"] = validate_real("--cap-angle", p["cap_angle"], minimum=0.0, maximum=math.pi,
                                       strict_minimum=True)
    if p["gamma0"] is not None:
        if init != "equiangular":
            raise ValueError(f"--gamma0 applies only with --init equiangular, got --init {init}")
        extra["gamma0"] = p["gamma0"]
    spec = make_initial(init, batch=p["batch"], n=p["n"], d=p["d"], seed=p["seed"], **extra)
    return spec, {"seed": p["seed"]}, (spec.batch, spec.n, spec.d)


def _check_noise_seed(p: dict[str, Any], noise: float) -> None:
    """--noise-seed: only with noise > 0 (``noise``: the run's σ, given or saved), an integer in [0, 2^64 − 1]."""
    if p["noise_seed"] is None:  # None: not given (simulate's default seed is 0)
        return
    if not noise > 0:
        raise ValueError(f"--noise-seed applies only with --noise > 0 (it seeds the Brownian increments), got "
                         f"--noise {noise:g}")
    validate_int("--noise-seed", p["noise_seed"], minimum=0, maximum=2**64 - 1)


# the arrays of a run, in units of B·n·d elements, besides the saved trajectory (T of them): the integration
# state and at least one stage (velocity) buffer; every method holds more, so the estimate is a lower bound
WORKING_COPIES = 2


def _itemsize(dtype: str) -> int:
    """Bytes per element of the --dtype name (an unknown name is refused later, by simulate)."""
    return 4 if dtype == "float32" else 8


def _step_grid(p: dict[str, Any], saved: Any) -> tuple[bool, float | None]:
    """Whether the output times lie on a fixed step grid (a fixed-step or stochastic method, --anchor,
    --splitting; ``saved``: the solver of a continued run) and the step when known here (else None)."""
    step = p["dt"] if p["dt"] is not None else getattr(saved, "dt", None)
    if p["anchor"] and p["dt"] is None:
        step = None  # the anchor step depends on the model (USA: on β)
    if p["anchor"] or p["splitting"] is not None or p["substeps"] is not None or p["noise"] > 0:
        fixed = True
    elif p["solver"] is not None:
        fixed = p["solver"] not in ADAPTIVE
    else:
        fixed = saved is not None and getattr(saved, "kind", "adaptive") != "adaptive"
    if isinstance(step, torch.Tensor):
        step = float(step.reshape(-1)[0]) if step.numel() == 1 else None  # per-system steps: unknown here
    return fixed, (float(step) if isinstance(step, (int, float)) else None)


def _saves_at_least(save_at: int, span: float, fixed: bool, step: float | None) -> int:
    """A lower bound on the number T of saved times: --save-at for an adaptive method; on a step grid, the
    count :func:`~tokensphere.simulate.step_grid_times` keeps (every q-th step, at most --save-at), or 2 when
    the step is not known here."""
    most = max(int(save_at), 2)
    if not fixed:
        return most
    if step is None or not step > 0 or not math.isfinite(span) or not span > 0 or not span / step < 2.0**53:
        return 2
    steps = math.floor(span / step * (1 + 1e-12))
    return steps // max(1, math.ceil(steps / (most - 1))) + 1


def _check_memory(what: str, remedy: str, *, systems: int, n: int, d: int, itemsize: int, host: int, saves: int,
                  save_at: int, device: str | None) -> None:
    """Refuse, before any state is sampled, a run whose arrays cannot fit in the free memory.

    A lower bound on what the run holds at once: the saved trajectory (T, B, n, d) and WORKING_COPIES arrays
    (B, n, d) in the run's dtype (``itemsize`` bytes) plus the --save-at equally spaced times (float64; simulate
    lays them out before it moves them onto a step grid), on ``device``; and ``host`` bytes per element of the
    starts on the CPU (the float64 starts of a fresh run, sampled there). Compared with
    :func:`~tokensphere.runtime.available_memory`; raises ValueError naming the sizes and the options to lower."""
    elements = systems * n * d
    run_bytes = elements * itemsize * (saves + WORKING_COPIES) + 8 * max(save_at, saves)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    needs = {"cpu": elements * host} if dev.type != "cpu" else {}
    needs[str(dev)] = needs.get(str(dev), 0) + run_bytes + (elements * host if dev.type == "cpu" else 0)
    for where, need in needs.items():
        free = available_memory(where)
        if need > free:
            raise ValueError(
                f"the run is too large for the memory: {what}, with {_count(saves, 'saved time')} (--save-at "
                f"{save_at}), need at least {_size(need)} on {where} for the starts, the integration state, the "
                f"output times and the saved trajectory (T, B, n, d) in {8 * itemsize}-bit floats, but "
                f"{_size(free)} is available; {remedy}"
            )


def _count(k: int, noun: str) -> str:
    return f"{k} {noun}" + ("" if k == 1 else "s")


def _size(nbytes: int) -> str:
    """Bytes in binary units, three significant digits: 2.5 GiB, 72.8 TiB."""
    value, unit = float(nbytes), "bytes"
    for bigger in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.3g} {unit}"


def _continued_betas(p: dict[str, Any], given: set[str], saved: Model, B: int) -> list[float]:
    """β per system of a continued run: the saved ones, or --beta laid out over the run's B systems.

    k values of --beta with B = k·m systems give each β to m consecutive systems (the layout of a fresh run);
    one value applies to all; a run with one system is continued once per value."""
    if "beta" not in given:
        return system_betas(saved, B)
    values = parse_betas(p["beta"])
    k = len(values)
    if B % k == 0:
        return [b for b in values for _ in range(B // k)]
    if B == 1:
        return values
    raise ValueError(
        f"--beta gives {k} values but the saved run has B = {B} systems; give one value, or a number of values "
        f"that divides {B} (each β then continues B/k consecutive systems)"
    )


def _model_options(
    p: dict[str, Any], given: set[str], *, betas: list[float], n: int, d: int, saved: Model | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Model keyword arguments and the provenance of the weights (files, ensemble) for the metadata.

    A fresh run (``saved`` None) gets every model option; a continued one only those given explicitly (plus
    the ones an option implies: --repulsive sets V; --score sets QK and --value V). Replacing one form of
    the scores (Q, K or QK) drops the saved other form (:func:`~tokensphere.simulate`)."""
    fresh = saved is None
    heads = p["heads"] if fresh or "heads" in given else saved.heads
    validate_int("heads", heads, minimum=1)
    systems = len(betas)
    kw: dict[str, Any] = {}
    if fresh or "beta" in given:
        kw["beta"] = torch.tensor(betas, dtype=torch.float64)
    for name in ("normalization", "time_scale", "causal", "projection", "heads", "head_reduction", "uniform_count",
                 "noise", "sinkhorn_iters", "sinkhorn_tol", "ties", "tie_tol", "tie_seed", "centered", "norm"):
        if fresh or name in given:
            kw[name] = p[name]
    if p["norm_gain"] is not None:
        norm = p["norm"] if fresh or "norm" in given else saved.norm
        if norm in NORMS and norm != "rms":  # an unknown --norm is named by the model
            raise ValueError(f"--norm-gain applies only with --norm rms (the RMSNorm gain), got --norm {norm}")
        kw["norm_gain"] = _norm_gain(p["norm_gain"], d)
    if fresh or "repulsive" in given:
        kw["V"] = "repulsive" if p["repulsive"] else "identity"

    meta: dict[str, Any] = {}
    for name in MATRIX_OPTIONS:
        if p[name] is not None:
            kw[name], meta[name] = _read_matrix(name, p[name], heads=heads, d=d, systems=systems)
    if p["mask"] is not None:
        kw["mask"], meta["mask"] = _read_mask(p["mask"], heads=heads, n=n, systems=systems)
    if p["feedforward"] is not None:
        kw["feedforward"], meta["feedforward"] = _read_feedforward(p["feedforward"], p["activation"])
    elif "activation" in given:
        raise ValueError("--activation applies to --feedforward; give the feed-forward weights too")
    normalization = p["normalization"] if fresh or "normalization" in given else saved.normalization
    _check_normalization_options(p, given, normalization, saved)
    if p["score"] is not None or p["value"] is not None:
        ensemble = Ensemble(score=p["score"] or "identity", value=p["value"] or "identity", share=p["share"])
        validate_int("weights_seed", p["weights_seed"], minimum=0)
        first: dict[float, int] = {}
        beta_index = [first.setdefault(b, len(first)) for b in betas]  # β values in order of appearance
        seen: dict[int, int] = {}
        system = []  # index of the system among those with its β
        for k in beta_index:
            system.append(seen.get(k, 0))
            seen[k] = system[-1] + 1
        qk, v = ensemble.draw(d, ensemble.keys(p["weights_seed"], d, beta_index, system))
        if ensemble.share == "shared":  # one draw: store it once, shared by the batch
            qk, v = (None if qk is None else qk[0]), (None if v is None else v[0])
        if p["score"] is not None:
            kw["QK"] = qk  # None for the identity score: Q = K = I
        if p["value"] is not None:
            kw["V"] = "identity" if v is None else v
        meta["ensemble"] = {**ensemble.describe(), "seed": p["weights_seed"]}
    return kw, meta


def _check_normalization_options(
    p: dict[str, Any], given: set[str], normalization: str, saved: Model | None
) -> None:
    """Refuse the options of one normalisation given with another (they would be ignored), naming both flags.
    ``normalization``: the run's (given or saved); an unknown one is left to the model to name."""
    if normalization not in NORMALIZATIONS:
        return
    for name in ("ties", "tie_tol", "tie_seed"):
        if name in given and normalization != "hardmax":
            raise ValueError(f"{_flag(name)} applies to --normalization hardmax, got --normalization {normalization}")
    for name in ("sinkhorn_iters", "sinkhorn_tol"):
        if name in given and normalization != "sinkhorn":
            raise ValueError(f"{_flag(name)} applies only with --normalization sinkhorn, got --normalization "
                             f"{normalization}")
    if "uniform_count" in given and normalization != "uniform":
        validate_choice("uniform_count", p["uniform_count"], ("n", "attended"))  # a bad value is named first
        raise ValueError(f"--uniform-count applies only with --normalization uniform (USA), got --normalization "
                         f"{normalization}")
    ties = p["ties"] if saved is None or "ties" in given else saved.ties
    if "tie_seed" in given and ties in ("average", "lowest"):
        raise ValueError(f"--tie-seed applies only with --ties random (it seeds the random tie policy), got --ties "
                         f"{ties}")


def _norm_gain(spec: str, d: int) -> torch.Tensor:
    """The RMSNorm gain of --norm-gain: d comma-separated finite numbers > 0, as a (d,) float64 tensor."""
    allowed = f"--norm-gain must be d = {d} comma-separated finite numbers > 0 (the RMSNorm gain), got {spec!r}"
    try:
        gain = [float(v) for v in str(spec).split(",")]
    except ValueError:
        raise ValueError(allowed) from None
    if len(gain) != d or not all(math.isfinite(g) and g > 0 for g in gain):
        raise ValueError(allowed)
    return torch.tensor(gain, dtype=torch.float64)


def _read_matrix(name: str, spec: str, *, heads: int, d: int, systems: int) -> tuple[torch.Tensor, dict]:
    """A Q, K, QK or V array from a file, checked against the shapes :class:`Model` accepts (names --<name>)."""
    flag = _flag(name)
    array, info = read_array(spec, name=flag, default_key=name)
    t = torch.from_numpy(np.asarray(array, dtype=np.float64))
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{flag} {spec} must hold only finite values (found NaN or inf)")
    r = "d" if name in ("QK", "V") else "k"
    shapes = [f"({r}, d)", f"(B, {r}, d)"] if heads == 1 else [f"(H, {r}, d)", f"(B, H, {r}, d)"]
    if heads > 1 and name == "V":
        shapes.insert(0, "(d, d)")
    ok = t.ndim in ((2, 3) if heads == 1 else (2, 3, 4) if name == "V" else (3, 4))
    ok = ok and t.shape[-1] == d and (r == "k" or t.shape[-2] == d)
    if heads > 1 and t.ndim >= 3:
        ok = ok and t.shape[-3] == heads
    batched = t.ndim == (3 if heads == 1 else 4)
    if ok and batched and t.shape[0] not in (1, systems):
        raise ValueError(
            f"{flag} {spec} holds {t.shape[0]} per-system matrices but the run has B = {systems} systems "
            "(β values × starts)"
        )
    if not ok:
        where = f"d = {d}" + (f", H = heads = {heads}" if heads > 1 else "")
        raise ValueError(f"{flag} {spec} must have shape {' or '.join(shapes)} with {where}, got {tuple(t.shape)}")
    return t, {k: v for k, v in info.items() if k != "tolerance"}


def _read_feedforward(spec: str, activation: str) -> tuple[FeedForward, dict]:
    """The feed-forward layer of (2.8) from an .npz file with arrays w, a and optionally b."""
    path = Path(spec)
    if path.suffix != ".npz" or not path.is_file():
        raise ValueError(f"--feedforward must be an existing .npz file with arrays w, a (and b), got {spec}")
    try:
        with path.open("rb") as fh:
            if fh.read(2) != b"PK":  # np.load would take any other file for a pickle
                raise ValueError(f"--feedforward {spec}: cannot read it: not a NumPy .npz file (a zip archive)")
        with np.load(path, allow_pickle=False) as z:
            missing = {"w", "a"} - set(z.files)
            if missing:
                raise ValueError(f"--feedforward {spec} must hold arrays w and a (and optionally b); missing "
                                 f"{', '.join(sorted(missing))} (found {', '.join(z.files) or 'none'})")
            arrays = {k: torch.from_numpy(np.asarray(z[k], dtype=np.float64)) for k in ("w", "a", "b")
                      if k in z.files}
    except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as exc:
        if str(exc).startswith("--feedforward"):
            raise
        raise ValueError(f"--feedforward {spec}: cannot read it as an .npz file of numeric arrays w, a (and b): "
                         f"{_npz_problem(exc)}") from None
    try:
        ff = FeedForward(arrays["w"], arrays["a"], arrays.get("b"), activation=activation)
    except ValueError as exc:
        raise ValueError(f"--feedforward {spec}: {exc}") from None
    return ff, {"file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "activation": activation,
                "width": int(ff.w.shape[-1])}


def _npz_problem(exc: BaseException) -> str:
    """What is wrong with an .npz file NumPy refused, in one line (a pickled array is named as such)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "Object arrays cannot be loaded" in text:
        return "it holds pickled Python objects, which are never loaded (unpickling can run code); save plain arrays"
    return text


def _read_mask(spec: str, *, heads: int, n: int, systems: int) -> tuple[torch.Tensor, dict]:
    """An additive mask from a file: finite values or -inf, shape (n, n), (B, n, n) or (B, H, n, n)."""
    array, info = read_array(spec, name="--mask", default_key="mask")
    t = torch.from_numpy(np.asarray(array, dtype=np.float64))
    if bool(torch.isnan(t).any()) or bool((t == float("inf")).any()):
        raise ValueError(f"--mask {spec} must hold finite values or -inf (masked pairs), found NaN or +inf")
    ok = t.ndim in (2, 3, 4) and t.shape[-2:] == (n, n) and (t.ndim < 4 or t.shape[1] in (1, heads))
    if not ok:
        raise ValueError(
            f"--mask {spec} must have shape (n, n), (B, n, n) or (B, H, n, n) with n = {n}"
            + (f", H = {heads}" if heads > 1 else "") + f", got {tuple(t.shape)}"
        )
    if t.ndim >= 3 and t.shape[0] not in (1, systems):
        raise ValueError(
            f"--mask {spec} holds {t.shape[0]} per-system masks but the run has B = {systems} systems "
            "(β values × starts)"
        )
    return t, {k: v for k, v in info.items() if k != "tolerance"}


def _fresh_solver(p: dict[str, Any], model: Model) -> tuple[Any, dict[str, Any]]:
    if p["splitting"] is not None or p["substeps"] is not None:
        return _split_solver(p, None), {}
    if p["anchor"]:
        if p["solver"] is not None or p["rtol"] is not None or p["atol"] is not None:
            raise ValueError(
                "anchor sets the solver (Euler + renormalisation); do not combine --anchor with --solver/--rtol/--atol"
            )
        if p["dt"] is not None:
            validate_real("dt", p["dt"], minimum=0.0, strict_minimum=True)  # named as the user gave it
        return anchor_solver(model, step=ANCHOR_STEP if p["dt"] is None else p["dt"]), {}
    default = DEFAULT_SDE_METHOD if model.noise > 0 else "dopri5"
    return p["solver"] or default, {"dt": p["dt"], "rtol": p["rtol"], "atol": p["atol"]}


def _split_solver(p: dict[str, Any], saved: SplitSolver | None) -> SplitSolver:
    """The SplitSolver of --splitting/--substeps/--dt/--rtol (a continuation: the saved one's fields unless
    given), refusing the options that do not apply to discrete blocks (SplitSolver validates the values)."""
    splitting = p["splitting"] if p["splitting"] is not None else saved.splitting if saved else None
    if splitting is None:
        raise ValueError("--substeps applies to --splitting (the sub-steps of the discrete blocks); give --splitting")
    for name in ("anchor", "solver", "atol", "chunk_size", "noise"):
        if p[name]:
            raise ValueError(f"--splitting conflicts with {_flag(name)}: the discrete blocks of (2.8) are a "
                             "deterministic solver of their own (layer step --dt; exact sub-steps take --rtol)")
    substeps = p["substeps"] if p["substeps"] is not None else saved.substeps if saved else "euler"
    dt = p["dt"] if p["dt"] is not None else saved.dt if saved else None
    if dt is None:
        raise ValueError("--splitting needs --dt: the layer step h (the run has --t-max/--dt layers)")
    rtol = p["rtol"]
    if rtol is None and substeps == "exact" and saved is not None and saved.substeps == "exact":
        rtol = saved.rtol
    return SplitSolver(splitting=splitting, substeps=substeps, dt=dt, rtol=rtol)


def _layer_saves(span: float, h: float, most: int) -> int:
    """The number of equally spaced output times, at most ``most``, that fall on layer boundaries of a run of
    span/h layers (``most`` itself when span/h is not a whole number: simulate then names --t-max)."""
    layers = round(span / h)
    if layers < 1 or abs(span / h - layers) > 1e-9 * max(1.0, span / h):
        return most
    return next(q for q in range(min(layers, most - 1), 0, -1) if layers % q == 0) + 1


def _continued_solver(
    p: dict[str, Any], given: set[str], saved: Model, model_kw: dict[str, Any], saved_solver: Any = None
) -> tuple[Any, dict[str, Any]]:
    """Solver arguments for a continuation: only the explicitly given ones (None: keep the saved solver).
    --splitting/--substeps build a SplitSolver from the saved one's fields and the given ones."""
    split = saved_solver if isinstance(saved_solver, SplitSolver) else None
    if "splitting" in given or "substeps" in given:
        return _split_solver(p, split), {}
    if p["anchor"]:  # the anchor step depends on the model as continued (USA: on β)
        kw = dict(model_kw)
        if "QK" in kw:  # one form of the scores replaces the other (as simulate does)
            kw.setdefault("Q", None)
            kw.setdefault("K", None)
        elif "Q" in kw:
            kw.setdefault("QK", None)
        return _fresh_solver(p, replace(saved, **kw))
    if p["solver"] is not None:
        validate_choice("solver", p["solver"], METHODS + SDE_METHODS)
    return p["solver"], {name: p[name] for name in ("dt", "rtol", "atol") if name in given}


def _check_device(device: str | None) -> None:
    """Raise ValueError for a device string torch does not know, or a CUDA device on a machine without one."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} is not available: torch sees no CUDA device here")


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in params.items()}


# ---------------------------------------------------------------------------------------------------------------
# summary


def _print_summary(traj: Trajectory, path: Path, continued: tuple[str, float, list[str]] | None) -> None:
    T, B, n, d = traj.shape
    per_system = system_betas(traj.model, B)
    betas = ", ".join(f"{b:g}" for b in dict.fromkeys(per_system))
    s, meta, steps = traj.solver, traj.metadata, traj.steps.tolist()
    if s.kind == "split":
        how = f"{s.substeps} sub-steps" + (f" at rtol {s.rtol:g}" if s.rtol is not None else "")
    elif s.kind == "adaptive":
        how = f"rtol {s.rtol:g}, atol {s.atol:g}"
    else:
        how = f"dt {s.dt:g}" if isinstance(s.dt, (int, float)) else "dt per system"
    raw = "" if s.projected_field else " on the raw field"
    t_first, t_last = float(traj.times[0]), float(traj.times[-1])
    threads = f", {meta['threads']} thread(s)" if "threads" in meta else ""
    if s.kind == "split":  # discrete layers: one block of (2.8) per step
        solved = (f"solver {s.method} splitting of (2.8) ({how}, {traj.model.norm}-norm blocks): {max(steps)} "
                  f"layers of step h = {s.dt:g}; t ∈ [{t_first:g}, {t_last:g}], {T} saved times")
    else:
        solved = (f"solver {s.method}{raw} ({how}): {min(steps)}–{max(steps)} steps per system, "
                  f"{int(traj.rejected.sum())} rejected; t ∈ [{t_first:g}, {t_last:g}], {T} saved times")
    lines = [
        f"{B} systems (β ∈ {{{betas}}}), n = {n}, d = {d}, {describe_model(traj.model)}, "
        f"{meta.get('dtype')} on {meta.get('device')}",
        solved,
        f"wall time {meta.get('wall_seconds', float('nan')):.2f} s (integration{threads})",
    ]
    if continued is not None:
        source, t0, overrides = continued
        said = meta.get("continuation", {}).get("overrides")
        if isinstance(said, dict):  # the library's record of what it overrode
            overrides = sorted(said)
        what = f"overrides: {', '.join(overrides)}" if overrides else "model and solver as saved"
        lines.insert(0, f"continued from {source} at t = {t0:g}; {what}")
    if traj.model.noise > 0:  # noisy tokens never meet within δ: report the order parameter instead
        r = group_by_beta([f"{v:.3f}" for v in order_parameter(traj.final()).tolist()], per_system)
        lines.append(f"order parameter |(1/n) Σ x_i| at t = {t_last:g}: "
                     + "; ".join(f"β = {b:g}: {' '.join(v[:8])}{' …' if len(v) > 8 else ''}" for b, v in r.items()))
    elif traj.model.projection:  # pure SA (9.1) is a flow on R^d: a threshold on ⟨x_i, x_j⟩ is not a cluster test
        groups = counts_by_beta(traj.final(), per_system, SUMMARY_DELTA)
        lines.append(f"clusters at t = {t_last:g} (δ = {SUMMARY_DELTA:g}): {format_counts(groups)}")
    lines.append(f"wrote {path}")
    console = Console(highlight=False, soft_wrap=True)
    for line in lines:
        console.print(escape(line))
