"""Pure self-attention without layer normalisation ((9.1)–(9.3)) and the limit geometries of Table 1.

Without the projection the tokens move in R^d by ẋ_i = Σ_j A_ij V x_j (9.1) (``Model(projection=False)``,
integrated by :func:`tokensphere.simulate`); they are read through the rescaling z_i(t) = e^{−tV} x_i(t) (9.2),
which solves ż_i = Σ_j A_ij(t) V (z_j − z_i) (9.3) with the same attention A(t) as x
(:func:`tokensphere.analysis.geometry.rescale`). Table 1 of the paper (from Geshkovski–Letrouit–Polyanskiy–
Rigollet, "The emergence of clusters in self-attention dynamics", NeurIPS 2023) lists the limits:

- polytope: V = I_d, QᵀK ≻ 0: z_i → vertices of a convex polytope and A(t) → a Boolean matrix;
  :func:`polytope_measure` → 1, :func:`~tokensphere.analysis.geometry.attention_booleanness` → 0.
- hyperplanes: simple top eigenvalue λ₁ > 0 of V with ⟨Qφ₁, Kφ₁⟩ > 0: the φ₁-coordinates ⟨ψ₁, z_i⟩ take at most
  3 values (parallel hyperplanes); :func:`hyperplane_measure` → 0.
- paranormal: V = λ I on F, smaller spectrum on G, QᵀK ≻ 0: the F-components on the vertices of a polytope, the
  G-components free (polytope × subspace); :func:`paranormal_measure` → 1.
- origin: V = −I_d, QᵀK = I_d: x_i → 0 without rescaling; :func:`origin_measure` → 0.

Each case here is one seeded run of n tokens drawn uniformly from the cube [−1, 1]^d; :func:`table1_run` returns
the trajectories and every measurement over time, :func:`table1_table` the measurements of every case at the
final time (each geometry's own measurement reaches its prediction; the others' stay away from theirs).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from ..analysis.geometry import attention_booleanness, leader_count, rescale, value_gap_residual, vertex_fraction
from ..field import attention
from ..model import Model
from ..simulate import simulate
from ..validate import validate_choice, validate_int, validate_real

__all__ = [
    "PREDICTED",
    "TABLE1_CASES",
    "T_MAX",
    "hyperplane_measure",
    "origin_measure",
    "paranormal_measure",
    "polytope_measure",
    "table1_case",
    "table1_run",
    "table1_table",
]

TABLE1_CASES = ("polytope", "hyperplanes", "paranormal", "origin")
# final times: the rescaled cases freeze exponentially fast; the origin is approached like t^{−1/2} (see origin_measure)
T_MAX = {"polytope": 12.0, "hyperplanes": 12.0, "paranormal": 12.0, "origin": 400.0}
_EIG_TOL = 1e-9


def table1_case(case: str, d: int | None = None) -> dict[str, Any]:
    """The matrices of one row of Table 1: {"V": (d, d), "QK": (d, d), "psi": (d,) the left eigenvector of the
    simple top eigenvalue with ⟨ψ₁, φ₁⟩ = 1 (the coordinate of the hyperplanes; e₁ when V has none),
    "F": (d, k) the projection onto the top eigenspace along the others (paranormal; None otherwise),
    "rescaled": whether the limit is read on z (all but "origin")}. d defaults to 3 (paranormal) or 2.

    hyperplanes: V = S diag(1, 0, …) S⁻¹ with S = I + ½ e₁e₂ᵀ (non-normal, simple λ₁ = 1, φ₁ = e₁);
    paranormal: V = diag(1, 1, −0.3, …) (V = I on F = span(e₁, e₂)).
    """
    validate_choice("case", case, TABLE1_CASES)
    d = validate_int("d", d if d is not None else (3 if case == "paranormal" else 2), minimum=2)
    eye = torch.eye(d, dtype=torch.float64)
    psi = eye[0].clone()
    F = None
    if case == "polytope":
        V = eye
    elif case == "origin":
        V = -eye
    elif case == "hyperplanes":
        S = eye.clone()
        S[0, 1] = 0.5
        lam = torch.zeros(d, dtype=torch.float64)
        lam[0] = 1.0
        V = S @ torch.diag(lam) @ torch.linalg.inv(S)
        psi = _left_top_eigenvector(V)
    else:
        if d < 3:
            raise ValueError(f"d must be >= 3 for the paranormal case (a top eigenspace of dimension 2), got {d}")
        lam = torch.full((d,), -0.3, dtype=torch.float64)
        lam[:2] = 1.0
        V = torch.diag(lam)
        F = eye[:, :2]
    return {"V": V, "QK": eye, "psi": psi, "F": F, "rescaled": case != "origin"}


def _left_top_eigenvector(V: torch.Tensor) -> torch.Tensor:
    """ψ with ψᵀV = λ₁ψᵀ for the largest real eigenvalue λ₁ (simple), normalised so that ⟨ψ, φ₁⟩ = 1."""
    vals, right = torch.linalg.eig(V)
    k = int(torch.argmax(vals.real))
    vals_l, left = torch.linalg.eig(V.T)
    j = int(torch.argmin((vals_l - vals[k]).abs()))
    phi, psi = right[:, k].real, left[:, j].real
    return psi / torch.dot(psi, phi)


def polytope_measure(z: torch.Tensor) -> torch.Tensor:
    """Fraction of tokens at a vertex of the convex hull of all tokens (1 on a polytope's vertices, Table 1 row 1).
    z: (..., n, d). Returns (...)."""
    return vertex_fraction(z)


def hyperplane_measure(z: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """How far the coordinates ⟨ψ₁, z_i⟩ are from taking at most 3 values (0: tokens on 3 parallel hyperplanes
    {⟨ψ₁, z⟩ = c}, Table 1 row 2). z: (..., n, d); psi: (d,). Returns (...) in [0, 1]."""
    return value_gap_residual(z @ psi.to(z), 3)


def paranormal_measure(z: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
    """Fraction of tokens whose F-component (the coordinates z·F on the top eigenspace) is a vertex of the hull of
    all F-components (1: polytope × subspace, Table 1 row 3). z: (..., n, d); F: (d, k). Returns (...)."""
    return vertex_fraction(z @ F.to(z))


def origin_measure(x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """max_i |x_i| / max_i |x_i(0)| for the unrescaled tokens (0: one cluster at the origin, Table 1 row 4).

    The approach is slow [derived]: once the mean has decayed (ṁ = −m at uniform attention), expanding the softmax
    to first order in β|x|² gives ẋ_i ≈ −β C x_i with C = (1/n) Σ_j x_j x_jᵀ, hence Ċ ≈ −2β C² and
    |x_i| ~ (2βt)^{−1/2}: the measurement decays like t^{−1/2}. x, x0: (..., n, d). Returns (...)."""
    return torch.linalg.vector_norm(x, dim=-1).amax(-1) / torch.linalg.vector_norm(x0, dim=-1).amax(-1)


def table1_run(case: str, *, n: int = 32, d: int | None = None, beta: float = 6.0, t_max: float | None = None,
               saves: int = 13, seed: int = 0, rtol: float = 1e-9, atol: float = 1e-12) -> dict[str, Any]:
    """One seeded run of (9.1) for a row of Table 1 and every measurement along it.

    Tokens: n points uniform in [−1, 1]^d (torch.Generator seeded ``seed``); model
    ``Model(beta, QK, V, projection=False)``; dopri5 with ``rtol``/``atol`` to ``t_max`` (default
    ``T_MAX[case]``), ``saves`` output times (equally spaced; geometric for "origin", whose decay is algebraic).
    Returns {"case", "times" (T,), "x" (T, n, d), "z" (T, n, d) = e^{−tV} x (None for "origin", read unrescaled:
    e^{t} overflows), "V", "psi", "F", and the series (T,) "polytope", "hyperplanes", "paranormal" (None without
    F) measured on z (on x for "origin"), "origin", "booleanness", "leaders" (number of argmax columns of A(t)),
    "settings", "seconds"}.
    """
    spec = table1_case(case, d)
    V, QK = spec["V"], spec["QK"]
    d = V.shape[0]
    validate_real("beta", beta, minimum=0.0)
    g = torch.Generator().manual_seed(validate_int("seed", seed, minimum=0))
    x0 = 2 * torch.rand(1, validate_int("n", n, minimum=2), d, generator=g, dtype=torch.float64) - 1
    model = Model(beta=beta, QK=QK, V=V, projection=False)
    t_max = validate_real("t_max", T_MAX[case] if t_max is None else t_max, minimum=0.0, strict_minimum=True)
    validate_int("saves", saves, minimum=2)
    if spec["rescaled"]:
        times = torch.linspace(0.0, t_max, saves, dtype=torch.float64)
    else:
        times = torch.cat([torch.zeros(1, dtype=torch.float64),
                           torch.logspace(-1.0, math.log10(t_max), saves - 1, dtype=torch.float64)])
        times[-1] = t_max
    start = time.perf_counter()
    traj = simulate(x0, model=model, t_max=t_max, save_at=times, rtol=rtol, atol=atol)
    x = traj.positions[:, 0]  # (T, n, d)
    z = rescale(x, traj.times, V) if spec["rescaled"] else None
    y = x if z is None else z
    a = attention(x, model)[:, 0]  # (T, n, n): the attention of x(t), the same for z(t) (9.3)
    return {
        "case": case, "times": traj.times, "x": x, "z": z, "V": V, "psi": spec["psi"], "F": spec["F"],
        "polytope": polytope_measure(y),
        "hyperplanes": hyperplane_measure(y, spec["psi"]),
        "paranormal": None if spec["F"] is None else paranormal_measure(y, spec["F"]),
        "origin": origin_measure(x, x[0]),
        "booleanness": attention_booleanness(a),
        "leaders": leader_count(a),
        "settings": {"n": n, "d": d, "beta": beta, "t_max": t_max, "seed": seed, "rtol": rtol, "atol": atol},
        "seconds": time.perf_counter() - start,
    }


def table1_table(runs: dict[str, dict[str, Any]] | None = None, **kwargs: Any) -> dict[str, dict[str, float | None]]:
    """{case: {measurement: final value}} for every case of Table 1 (runs from :func:`table1_run`, made with
    ``kwargs`` when not given): each row's own measurement against its prediction, and the other rows'."""
    runs = runs if runs is not None else {c: table1_run(c, **kwargs) for c in TABLE1_CASES}
    out: dict[str, dict[str, float | None]] = {}
    for case, run in runs.items():
        out[case] = {key: (None if run[key] is None else float(run[key][-1]))
                     for key in ("polytope", "hyperplanes", "paranormal", "origin", "booleanness")}
        out[case]["leaders"] = float(run["leaders"][-1])
    return out


PREDICTED = {"polytope": ("polytope", 1.0), "hyperplanes": ("hyperplanes", 0.0), "paranormal": ("paranormal", 1.0),
             "origin": ("origin", 0.0)}
"""Each case's own measurement and its predicted limit."""
