"""Pure self-attention without layer normalisation ((9.1)–(9.3)) and the limit geometries of Table 1.

Without the projection the tokens move in R^d by ẋ_i = Σ_j A_ij V x_j (9.1) (``Model(projection=False)``,
integrated by :func:`tokensphere.simulate`); they are read through the rescaling z_i(t) = e^{−tV} x_i(t) (9.2),
which solves ż_i = Σ_j A_ij(t) V (z_j − z_i) (9.3) with the same attention A(t) as x
(:func:`tokensphere.analysis.geometry.rescale`). Table 1 of the paper (from Geshkovski–Letrouit–Polyanskiy–
Rigollet, "The emergence of clusters in self-attention dynamics", NeurIPS 2023) lists the limits:

- polytope: V = I_d, QᵀK ≻ 0: z_i → vertices of a convex polytope and A(t) → a Boolean matrix;
  :func:`polytope_measure` → 1, :func:`~tokensphere.analysis.geometry.attention_booleanness` → 0.
- hyperplanes: simple top eigenvalue λ₁ > 0 of V with ⟨Qφ₁, Kφ₁⟩ > 0: the φ₁-coordinates ⟨ψ₁, z_i⟩ take at most
  3 values (parallel hyperplanes); :func:`hyperplane_measure` → 0, :func:`hyperplane_levels` lists the values.
  Which three: see "The three hyperplanes" below; :func:`three_level_run` shows all three occupied.
- paranormal: V = λ I on F, smaller spectrum on G, QᵀK ≻ 0: the F-components on the vertices of a polytope, the
  G-components free (polytope × subspace); :func:`paranormal_measure` → 1.
- origin: V = −I_d, QᵀK = I_d: x_i → 0 without rescaling; :func:`origin_measure` → 0.

Each case here is one seeded run of n tokens drawn uniformly from the cube [−1, 1]^d; :func:`table1_run` returns
the trajectories and every measurement over time, :func:`table1_table` the measurements of every case at the
final time (each geometry's own measurement reaches its prediction; the others' stay away from theirs).

The three hyperplanes (Geshkovski–Letrouit–Polyanskiy–Rigollet, arXiv:2305.05465v6, §4, proof in §9). The
hypothesis is that the eigenvalue of V of largest modulus is real, positive and simple (λ₁ > |λ₂| ≥ …) and
⟨Qφ₁, Kφ₁⟩ > 0. With ψ₁ the left eigenvector (ψ₁ᵀV = λ₁ψ₁ᵀ, ⟨ψ₁, φ₁⟩ = 1), the coordinates a_i = ⟨ψ₁, z_i⟩ obey
ȧ_i = λ₁ Σ_j A_ij (a_j − a_i) exactly, so max_j a_j(t) is non-increasing and min_j a_j(t) non-decreasing; call
their limits b and a. The proof shows every a_i(t) converges and every limit lies in {a, 0, b}: the hyperplanes
are {⟨ψ₁, z⟩ = a}, {⟨ψ₁, z⟩ = 0}, {⟨ψ₁, z⟩ = b}. The reason is that the scores are dominated by
β e^{2λ₁t}⟨Qφ₁, Kφ₁⟩ a_i a_j: a token whose coordinate stays away from 0 attends to the extreme token of its own
sign and is carried to b (a_i > 0) or a (a_i < 0). The middle hyperplane holds only tokens whose coordinate stays
0, and that level is unstable [derived]: a token at a_i = δ sees its scores shifted by β e^{2λ₁t}⟨Qφ₁, Kφ₁⟩ δ a_j,
which grows without bound, so any δ ≠ 0 is eventually amplified. Random tokens therefore end on two hyperplanes
(a and b; one if all end on one side); the middle one is occupied when a symmetry pins a_i ≡ 0 —
:func:`three_level_case` builds one, :func:`three_level_run` measures it, its perturbation and the generic case.
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
    "THREE_LEVEL_VARIANTS",
    "T_MAX",
    "hyperplane_levels",
    "hyperplane_measure",
    "origin_measure",
    "paranormal_measure",
    "polytope_measure",
    "table1_case",
    "table1_run",
    "table1_table",
    "three_level_case",
    "three_level_run",
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


def hyperplane_levels(z: torch.Tensor, psi: torch.Tensor, tol: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct values of the coordinates ⟨ψ₁, z_i⟩ and how many tokens hold each: the occupied hyperplanes
    {⟨ψ₁, z⟩ = c}. Sorted coordinates are cut where two neighbours differ by more than ``tol`` (absolute); each
    group's mean is its level. z: (n, d); psi: (d,). Returns (levels (k,) increasing, counts (k,) int64)."""
    if z.ndim != 2:
        raise ValueError(f"z must have shape (n, d) (one configuration), got {tuple(z.shape)}")
    tol = validate_real("tol", tol, minimum=0.0, strict_minimum=True)
    values = (z @ psi.to(z)).sort().values
    cuts = (torch.nonzero(values.diff() > tol).flatten() + 1).tolist()
    groups = torch.tensor_split(values, cuts)
    return torch.stack([g.mean() for g in groups]), torch.tensor([len(g) for g in groups], dtype=torch.int64)


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
    levels, counts = hyperplane_levels(y[-1], spec["psi"]) if case == "hyperplanes" else (None, None)
    return {
        "case": case, "times": traj.times, "x": x, "z": z, "V": V, "psi": spec["psi"], "F": spec["F"],
        "polytope": polytope_measure(y),
        "hyperplanes": hyperplane_measure(y, spec["psi"]),
        "paranormal": None if spec["F"] is None else paranormal_measure(y, spec["F"]),
        "origin": origin_measure(x, x[0]),
        "booleanness": attention_booleanness(a),
        "leaders": leader_count(a),
        "levels": levels, "counts": counts,
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


THREE_LEVEL_VARIANTS = ("symmetric", "perturbed", "generic")
_LEVEL_TOL = 1e-3


def three_level_case(pairs: int = 6, middle: int = 3, *, d: int = 2, seed: int = 0, middle_offset: float = 2.0,
                     perturbation: float = 0.0) -> dict[str, Any]:
    """A configuration of the hyperplane row of Table 1 whose limit occupies all three hyperplanes a < 0 < b.

    Matrices: with S = I + ½ e₁e₂ᵀ (the shear of :func:`table1_case`), V = S diag(1, 0, …, 0) S⁻¹ (λ₁ = 1 simple,
    all other eigenvalues 0, φ₁ = e₁, ψ₁ = S⁻ᵀe₁) and QᵀK = (S Sᵀ)⁻¹ ≻ 0 (⟨Qφ₁, Kφ₁⟩ = 1). In the coordinates
    y = S⁻¹ z = (a, w, …), a = ⟨ψ₁, z⟩, the score is β⟨Q x_i, K x_j⟩ = β(e^{2t} a_i a_j + ⟨w_i, w_j⟩) for
    x = e^{tV} z, and (9.3) reads ȧ_i = Σ_j A_ij (a_j − a_i) with every other y-coordinate frozen.

    Tokens (in y): ``pairs`` mirror pairs (a_p, w_p), (−a_p, w_p) with a_p uniform in [0.1, 1] and the other
    coordinates uniform in [−1, 1] (torch.Generator seeded ``seed``), then ``middle`` tokens
    (``perturbation``, middle_offset + 0.3 k, 0, …), k = 0 … middle − 1. x0 = S y.

    Why the middle tokens stay on a = 0 (``perturbation`` = 0) [derived]: the oblique reflection
    R = S diag(−1, 1, …, 1) S⁻¹ = I − 2φ₁ψ₁ᵀ commutes with V and keeps the score form (RᵀQᵀK R = QᵀK), so if X(t)
    solves (9.1) so does R X(t). The initial set is R-invariant (R swaps mirror partners, fixes middle tokens); by
    uniqueness and permutation equivariance R z_i(t) = z_π(i)(t) for all t. Hence a_i(t) = 0 for every middle token
    and a_π(i)(t) = −a_i(t) for every pair: the levels are symmetric (a = −b) and as many tokens end at b as at −b.
    A pair member never reaches 0 (it would coincide with its mirror, and tokens that meet at one time coincide at
    all times); for a_i > 0 the mirror terms pair up in Σ_j A_ij a_j = Σ_pairs g_j a_j (e^{s a_j} − e^{−s a_j}) / Z
    ≥ 0 (s = β e^{2t} a_i, g_j the common w-weight of the pair), so a_i(t) ≥ a_i(0) e^{−t}, s → ∞ and a_i → b.
    Predicted limit: the three levels {−b, 0, b} held by (pairs, middle, pairs) tokens.

    The middle level is unstable: a middle token at a = δ has its scores shifted by β e^{2t} δ a_j, which beats the
    gap G between its scores for the other middle tokens and for the pair tokens once β e^{2t} δ · 2b ≳ G. In
    float64 the mirror symmetry holds to about 1e−16 (the softmax sums are rounded in different orders), so with
    middle tokens placed among the pairs (``middle_offset`` = 0) they leave a = 0 by t ≈ 2; at ``middle_offset``
    = 2 the middle tokens attend to each other (G ≈ 20 at β = 6) and round-off would need t ≈ ½ ln(G/(2bβ·1e−16))
    ≈ 19 (measured: still at a = 0 to round-off at t = 20). ``perturbation`` = ε > 0 moves them off on purpose.

    Returns {"V", "QK", "psi", "phi", "R" (d, d), "x0" (1, n, d), "kinds" (n,) int64: +1 / −1 for the positive /
    negative pair member, 0 for a middle token, "predicted": {"levels": 3, "counts": (pairs, middle, pairs)}}.
    """
    pairs = validate_int("pairs", pairs, minimum=1)
    middle = validate_int("middle", middle, minimum=1)
    d = validate_int("d", d, minimum=2)
    middle_offset = validate_real("middle_offset", middle_offset)
    perturbation = validate_real("perturbation", perturbation)
    g = torch.Generator().manual_seed(validate_int("seed", seed, minimum=0))
    f64 = torch.float64
    eye = torch.eye(d, dtype=f64)
    S = eye.clone()
    S[0, 1] = 0.5
    S_inv = torch.linalg.inv(S)
    lam = torch.zeros(d, dtype=f64)
    lam[0] = 1.0
    flip = torch.ones(d, dtype=f64)
    flip[0] = -1.0
    a = 0.1 + 0.9 * torch.rand(pairs, generator=g, dtype=f64)
    rest = 2 * torch.rand(pairs, d - 1, generator=g, dtype=f64) - 1
    y_pos = torch.cat([a[:, None], rest], -1)
    y_mid = torch.zeros(middle, d, dtype=f64)
    y_mid[:, 0] = perturbation
    y_mid[:, 1] = middle_offset + 0.3 * torch.arange(middle, dtype=f64)
    y = torch.cat([y_pos, y_pos * flip, y_mid])
    kinds = torch.cat([torch.ones(pairs), -torch.ones(pairs), torch.zeros(middle)]).to(torch.int64)
    return {
        "V": S @ torch.diag(lam) @ S_inv, "QK": S_inv.T @ S_inv, "psi": S_inv[0].clone(), "phi": eye[:, 0].clone(),
        "R": S @ torch.diag(flip) @ S_inv, "x0": (y @ S.T)[None], "kinds": kinds,
        "predicted": {"levels": 3, "counts": (pairs, middle, pairs)},
    }


def three_level_run(variant: str = "symmetric", *, pairs: int = 6, middle: int = 3, d: int = 2, beta: float = 6.0,
                    t_max: float = 12.0, saves: int = 49, seed: int = 0, middle_offset: float = 2.0,
                    perturbation: float = 1e-3, rtol: float = 1e-9, atol: float = 1e-12) -> dict[str, Any]:
    """One run of (9.1) with the matrices of :func:`three_level_case` and the occupied hyperplanes it ends on.

    variant "symmetric": the mirror-symmetric tokens (all three hyperplanes occupied); "perturbed": the same with
    the middle tokens moved to a = ``perturbation`` (they leave the middle hyperplane); "generic": 2·pairs + middle
    tokens uniform in [−1, 1]^d (seeded ``seed``), the same V and QᵀK. dopri5 with ``rtol``/``atol`` to ``t_max``,
    ``saves`` equally spaced output times.

    Returns {"variant", "times" (T,), "x", "z" (T, n, d), "V", "QK", "psi", "F": None, "coordinates" (T, n) the
    a_i(t) = ⟨ψ₁, z_i(t)⟩, "kinds" (n,) (+1 / −1 / 0 as in three_level_case; the sign of a_i(0) for "generic"),
    "levels" (k,), "counts" (k,) from :func:`hyperplane_levels` at t_max (tolerance 1e−3), "hyperplanes" (T,)
    :func:`hyperplane_measure`, "max" and "min" (T,) the extreme coordinates, "middle" (T,) max |a_i| over the
    middle tokens (None for "generic"), "departure": the first output time with "middle" ≥ 0.01 (None if none),
    "predicted" (three_level_case's for "symmetric", None otherwise), "settings", "seconds"}.
    """
    validate_choice("variant", variant, THREE_LEVEL_VARIANTS)
    eps = perturbation if variant == "perturbed" else 0.0
    spec = three_level_case(pairs, middle, d=d, seed=seed, middle_offset=middle_offset, perturbation=eps)
    x0, kinds = spec["x0"], spec["kinds"]
    if variant == "generic":
        g = torch.Generator().manual_seed(seed)
        x0 = 2 * torch.rand(1, x0.shape[1], d, generator=g, dtype=torch.float64) - 1
        kinds = torch.sign(x0[0] @ spec["psi"]).to(torch.int64)
    validate_real("beta", beta, minimum=0.0)
    t_max = validate_real("t_max", t_max, minimum=0.0, strict_minimum=True)
    times = torch.linspace(0.0, t_max, validate_int("saves", saves, minimum=2), dtype=torch.float64)
    model = Model(beta=beta, QK=spec["QK"], V=spec["V"], projection=False)
    start = time.perf_counter()
    traj = simulate(x0, model=model, t_max=t_max, save_at=times, rtol=rtol, atol=atol)
    x = traj.positions[:, 0]
    z = rescale(x, traj.times, spec["V"])
    coords = z @ spec["psi"]  # (T, n)
    levels, counts = hyperplane_levels(z[-1], spec["psi"], _LEVEL_TOL)
    mid = None if variant == "generic" else coords[:, kinds == 0].abs().amax(-1)
    departure = None
    if mid is not None and bool((mid >= 0.01).any()):
        departure = float(traj.times[int(torch.nonzero(mid >= 0.01)[0])])
    return {
        "variant": variant, "times": traj.times, "x": x, "z": z, "V": spec["V"], "QK": spec["QK"],
        "psi": spec["psi"], "F": None, "coordinates": coords, "kinds": kinds, "levels": levels, "counts": counts,
        "hyperplanes": hyperplane_measure(z, spec["psi"]), "max": coords.amax(-1), "min": coords.amin(-1),
        "middle": mid, "departure": departure,
        "predicted": spec["predicted"] if variant == "symmetric" else None,
        "settings": {"pairs": pairs, "middle": middle, "d": d, "beta": beta, "t_max": t_max, "seed": seed,
                     "middle_offset": middle_offset, "perturbation": eps, "rtol": rtol, "atol": atol},
        "seconds": time.perf_counter() - start,
    }
