"""``simulate``: one call from an initial state, a model and a solver to a :class:`Trajectory`."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import time as _time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .validate import as_tensor, check_choice, check_int, check_real, check_unit_norm
from .field import velocity
from .init import FromArray
from .integrate.driver import integrate
from .integrate.solver import METHODS, Solver
from .model import Model
from .trajectory import Trajectory

__all__ = ["simulate", "save_times", "run_metadata"]

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def save_times(t_max: float, save_at: int | Sequence[float] | torch.Tensor = 101) -> torch.Tensor:
    """Output times: ``save_at`` equally spaced points in [0, t_max] (an int ≥ 2), or explicit sorted times.

    Returns a (T,) float64 tensor. Raises ValueError for t_max ≤ 0 or unsorted / out-of-range times.
    """
    t_max = check_real("t_max", t_max, minimum=0.0, strict_minimum=True)
    if isinstance(save_at, (int,)) and not isinstance(save_at, bool):
        check_int("save_at", save_at, minimum=2)
        return torch.linspace(0.0, t_max, save_at, dtype=torch.float64)
    ts = as_tensor("save_at", save_at).to(torch.float64).reshape(-1)
    if ts.numel() == 0 or not bool(torch.isfinite(ts).all()):
        raise ValueError("save_at must be a non-empty list of finite times")
    if bool((ts < 0).any()) or bool((ts > t_max * (1 + 1e-12)).any()):
        raise ValueError(f"save_at times must lie in [0, t_max] = [0, {t_max:g}]")
    if bool((ts[1:] < ts[:-1]).any()):
        raise ValueError("save_at times must be sorted in increasing order")
    return ts


def simulate(
    x0: Any,
    beta: Any = None,
    *,
    model: Model | None = None,
    solver: Solver | str = "dopri5",
    t_max: float = 10.0,
    save_at: int | Sequence[float] = 101,
    dt: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
    events: Sequence[Callable] = (),
    dtype: torch.dtype | str = torch.float64,
    device: torch.device | str | None = None,
    chunk_size: int | None = None,
    progress: Callable[[float], None] | None = None,
    metadata: dict | None = None,
    store: bool = True,
    on_save: Callable | None = None,
    **model_options: Any,
) -> Trajectory:
    """Integrate the attention dynamics from ``x0`` and return the saved :class:`Trajectory`.

    x0: positions (B, n, d) or (n, d) (unit vectors), an initial-condition spec from :mod:`tokensphere.init`,
        a :class:`Trajectory` or the path of a saved run (its final state is used).
    beta: inverse temperature, a number or a (B,) array (one batch over temperatures). Either ``beta`` and
        model options (``normalization``, ``Q``, ``K``, ``V``, ``heads``, ``mask``, ``causal``, ...; see
        :class:`Model`) or a ready ``model``.
    solver: a :class:`Solver` or a method name (``dt``, ``rtol``, ``atol`` then apply).
    t_max, save_at: final time and output times (a count of equally spaced times or explicit times); in
        time_scale "exp_beta" times are in s = e^β t.
    events: callables ``(t, x) -> (B,) bool`` that stop a system (see :mod:`tokensphere.integrate.events`).
    dtype: float64 (default) or float32. device: "cpu", "cuda", ... (the same code runs on both).
    chunk_size: stream the field over key blocks (O(n) memory) instead of materialising attention.
    store: keep the positions (T, B, n, d) (False: positions is None, e.g. when on_save computes statistics).
    on_save: hook(k, systems, x) called with output indices (S,), system indices (S,) and positions (S, n, d)
        each time systems reach an output time.
    When x0 has one system and the model several (e.g. β of shape (B,)), x0 is shared by all of them.

    Raises ValueError naming the parameter for every invalid input.
    """
    dtype = _check_dtype(dtype)
    device = _check_device(device)
    if model is not None and (beta is not None or model_options):
        raise ValueError("give either model=Model(...) or beta and model options, not both")
    if model is None:
        model = Model(beta=1.0 if beta is None else beta, **model_options)
    solver = _as_solver(solver, dt=dt, rtol=rtol, atol=atol)
    times = save_times(t_max, save_at)

    init_meta: dict[str, Any]
    if isinstance(x0, (str, os.PathLike)):
        run = Trajectory.load(x0)
        x = run.final()
        if bool(torch.isnan(x).any()):
            raise ValueError(f"x0: the saved run {x0} has systems that stopped early (NaN final state)")
        init_meta = {"kind": "saved_run", "path": str(x0), "time": float(run.times[-1])}
        x = x.to(dtype=dtype, device=device)
        check_unit_norm("x0", x.double())
    elif isinstance(x0, Trajectory):
        x = x0.final().to(dtype=dtype, device=device)
        init_meta = {"kind": "trajectory", "time": float(x0.times[-1])}
        check_unit_norm("x0", x.double())
    elif hasattr(x0, "sample") and hasattr(x0, "describe"):
        x = x0.sample(dtype=dtype, device=device)
        init_meta = x0.describe()
    else:
        spec = FromArray(x0, unit=model.projection)
        x = spec.sample(dtype=dtype, device=device)
        init_meta = spec.describe()
    if solver.kind == "lie" and not model.projection:
        raise ValueError(f"solver {solver.method!r} moves tokens on the sphere; projection=False (R^d) needs an RK method")

    B, n, d = x.shape
    if n < 1:
        raise ValueError(f"n (number of tokens) must be >= 1, got {n}")
    if d < 2:
        raise ValueError(f"d (dimension) must be >= 2, got {d}")
    if B == 1 and model.batch_size > 1:
        x = x.expand(model.batch_size, n, d).clone()
        B = model.batch_size
    if model.batch_size not in (1, B):
        raise ValueError(f"beta/model has {model.batch_size} systems but x0 has B = {B}; they must match or x0 have B = 1")
    if chunk_size is not None:
        check_int("chunk_size", chunk_size, minimum=1)
    if solver.dt is not None:
        dts = as_tensor("dt", solver.dt).reshape(-1)
        if dts.numel() not in (1, B):
            raise ValueError(f"dt must be a number or have shape (B,) = ({B},), got {dts.numel()} values")
    m = model.to(dtype, x.device)
    velocity(x[:1], m.take(torch.zeros(1, dtype=torch.long)), 0.0)  # shape checks before any work

    # the authors' scheme steps with the unprojected field (SPEC §7); every other method with P⊥F
    project = None if solver.projected_field else False

    def f(t, xx, idx):
        mm = m if idx is None else m.take(idx)
        tt = t if m.schedule is not None else 0.0
        return velocity(xx, mm, tt, project=project, chunk_size=chunk_size)

    start = _time.perf_counter()
    # steps land on the jumps of piecewise-constant weights, so no step straddles a discontinuity
    bps = None
    if m.schedule is not None and hasattr(m.schedule, "breakpoints"):
        bps = torch.as_tensor(m.schedule.breakpoints(float(times[-1])), dtype=torch.float64)
    res = integrate(
        f, x, times, solver, events=events, progress=progress, breakpoints=bps, autonomous=m.schedule is None,
        store=store, on_save=on_save, on_sphere=model.projection,
    )
    elapsed = _time.perf_counter() - start
    meta = run_metadata(dtype=dtype, device=x.device)
    meta.update({"init": init_meta, "wall_seconds": elapsed, "field_evaluations": res.evaluations})
    if metadata:
        meta.update(metadata)
    return Trajectory(
        times=times,
        positions=res.positions,
        model=model,
        solver=solver,
        steps=res.steps.cpu(),
        rejected=res.rejected.cpu(),
        event_time=res.event_time.cpu(),
        metadata=meta,
    )


def run_metadata(*, dtype: torch.dtype, device: torch.device | str) -> dict[str, Any]:
    """Provenance: package version, git commit (if the source is a checkout), torch, dtype, device, time."""
    return {
        "tokensphere_version": __version__,
        "git_commit": _git_commit(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "dtype": str(dtype).replace("torch.", ""),
        "device": str(device),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        if out.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, timeout=5, check=False,
            ).stdout.strip()
            return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def _check_device(device: torch.device | str | None) -> torch.device | None:
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA device is available; use device='cpu'")
    try:
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError) as exc:
        raise ValueError(f"device {str(dev)!r} cannot be used: {str(exc).splitlines()[0]}") from None
    return dev


def _check_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, str):
        check_choice("dtype", dtype, tuple(DTYPES))
        return DTYPES[dtype]
    if dtype not in DTYPES.values():
        raise ValueError(f"dtype must be one of 'float64', 'float32', got {dtype!r}")
    return dtype


def _as_solver(solver: Solver | str, *, dt, rtol, atol) -> Solver:
    if isinstance(solver, Solver):
        if dt is not None or rtol is not None or atol is not None:
            raise ValueError("dt/rtol/atol go into Solver(...) when a Solver object is given")
        return solver
    if not isinstance(solver, str):
        raise ValueError(f"solver must be a Solver or one of {', '.join(METHODS)}, got {type(solver).__name__}")
    check_choice("solver", solver, METHODS)
    kw: dict[str, Any] = {"method": solver, "dt": dt}
    if rtol is not None:
        kw["rtol"] = rtol
    if atol is not None:
        kw["atol"] = atol
    return Solver(**kw)
