"""The authors' README movie: (SA), n = 64, d = 3, β = 1, T = 15, dt = 0.1 (151 frames), uniform start on S²,
the camera azimuth sweeping 30° ± 15° (their ``sphere.py``); an optional "half-sphere" start (points with a
negative last coordinate flipped). :func:`movie_run` simulates it; :func:`tokensphere.plot.animate` draws it.
"""

from __future__ import annotations

from ..init import Uniform
from ..integrate import anchor_solver
from ..model import Model
from ..simulate import simulate
from ..trajectory import Trajectory
from ..validate import validate_choice, validate_real

__all__ = ["MOVIE", "STARTS", "movie_run"]

# the authors' README movie (sphere.py)
MOVIE = {"n": 64, "d": 3, "beta": 1.0, "t_max": 15.0, "dt": 0.1, "azimuth": (30.0, 15.0), "elevation": 20.0}
STARTS = ("uniform", "half")


def movie_run(
    *,
    n: int = MOVIE["n"],
    d: int = MOVIE["d"],
    beta: float = MOVIE["beta"],
    t_max: float = MOVIE["t_max"],
    dt: float = MOVIE["dt"],
    start: str = "uniform",
    seed: int = 0,
    anchor: bool = False,
    normalization: str = "softmax",
) -> Trajectory:
    """Simulate the README movie setting: one system, saved every ``dt`` (t_max/dt + 1 frames: 151 by default).

    start: "uniform" (i.i.d. uniform on S^{d−1}) or "half" (the same points with the last coordinate made
    non-negative, i.e. the third on S², as in the authors' half-sphere option). anchor: integrate with the
    authors' scheme (Euler step dt on the raw field, renormalised, as in their code) instead of adaptive
    dopri5. Returns the :class:`Trajectory`. Raises ValueError when t_max is not a multiple of dt.
    """
    validate_choice("start", start, STARTS)
    validate_real("dt", dt, minimum=0.0, strict_minimum=True)
    validate_real("t_max", t_max, minimum=0.0, strict_minimum=True)
    frames = int(round(t_max / dt)) + 1
    if abs((frames - 1) * dt - t_max) > 1e-9 * max(1.0, t_max):
        raise ValueError(f"t_max must be a multiple of dt, got t_max = {t_max:g}, dt = {dt:g}")
    spec = Uniform(batch=1, n=n, d=d, seed=seed)
    x0 = spec.sample()
    if start == "half":
        x0[..., -1] = x0[..., -1].abs()
    model = Model(beta=beta, normalization=normalization)
    solver = anchor_solver(model, step=dt) if anchor else "dopri5"
    meta = {"seed": seed, "init": {**spec.describe(), "start": start}, "movie": "README setting (sphere.py)"}
    kw = {} if anchor else {"rtol": 1e-8, "atol": 1e-10}
    return simulate(x0, model=model, solver=solver, t_max=t_max, save_at=frames, metadata=meta, **kw)
