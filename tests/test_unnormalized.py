"""Pure self-attention without normalisation ((9.1)–(9.3)) and the limit geometries of Table 1: the rescaling
against exact solutions, each geometry's measurement on hand-built cases with a known limit, and the separation
of the four rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tokensphere.analysis.geometry import (
    attention_booleanness,
    hull_distance,
    leader_count,
    order_parameter,
    rescale,
    value_gap_residual,
    vertex_fraction,
)
from tokensphere.experiments.unnormalized import (
    PREDICTED,
    TABLE1_CASES,
    hyperplane_levels,
    hyperplane_measure,
    origin_measure,
    paranormal_measure,
    polytope_measure,
    table1_case,
    table1_run,
    table1_table,
    three_level_case,
    three_level_run,
)
from tokensphere.field import attention
from tokensphere.model import Model
from tokensphere.simulate import simulate

TIGHT = {"rtol": 1e-10, "atol": 1e-12}


# --------------------------------------------------------------------------------------------------------
# the statistics on configurations with known answers


def test_geometry_statistics_known_answers():
    square = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    pts = torch.cat([square, torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)])
    dist = hull_distance(pts)
    # alone, a corner is √2 from the diagonal through its two neighbours; with the edge point (1, 0) present,
    # (1, 1) is 2/√5 from the segment (1, 0)–(−1, 1); the centre and the edge point are inside the hull
    assert float(hull_distance(square)[0]) == pytest.approx(math.sqrt(2), abs=1e-6)
    assert float(dist[0]) == pytest.approx(2 / math.sqrt(5), abs=1e-6)
    assert float(dist[4]) < 1e-6 and float(dist[5]) < 1e-6
    assert float(vertex_fraction(square)) == 1.0
    assert float(vertex_fraction(pts)) == pytest.approx(4 / 6)
    # coinciding tokens count as one point: two copies of each corner are still at vertices
    assert float(vertex_fraction(torch.cat([square, square + 1e-9]))) == 1.0
    assert float(value_gap_residual(torch.tensor([0.0, 0.0, 1.0, 1.0, 5.0]), 3)) == 0.0
    assert float(value_gap_residual(torch.tensor([0.0, 1.0, 2.0, 3.0]), 3)) == pytest.approx(1 / 3)
    n = 5
    assert float(attention_booleanness(torch.eye(n)[torch.tensor([1, 1, 2, 1, 2])])) == 0.0
    assert float(attention_booleanness(torch.full((n, n), 1 / n))) == pytest.approx(1 - 1 / n)
    assert int(leader_count(torch.eye(n)[torch.tensor([1, 1, 2, 1, 2])])) == 2
    assert float(order_parameter(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))) == 0.0


# --------------------------------------------------------------------------------------------------------
# the rescaling (9.2)–(9.3)


def test_rescaling_single_token_is_constant():
    """n = 1: A = 1 and (9.1) is ẋ = V x, so x(t) = e^{tV} x_0 and z(t) = e^{−tV} x(t) = x_0 for any V."""
    g = torch.Generator().manual_seed(0)
    V = torch.randn(3, 3, generator=g, dtype=torch.float64) / 2
    x0 = torch.tensor([[[0.3, -1.2, 0.7]]], dtype=torch.float64)
    traj = simulate(x0, model=Model(beta=2.0, V=V, projection=False), t_max=3.0, save_at=7, **TIGHT)
    z = rescale(traj.positions, traj.times, V)
    assert torch.allclose(z, x0.expand_as(z), atol=1e-8)
    assert not torch.allclose(traj.positions[-1], x0, atol=1e-2)  # x itself moved


def test_rescaling_uniform_attention_closed_form():
    """β = 0, V = I: ẋ_i = m (the mean), so m(t) = e^t m_0, x_i(t) = x_i(0) + (e^t − 1) m_0 and
    z_i(t) = e^{−t} x_i(0) + (1 − e^{−t}) m_0: every token tends to the initial mean."""
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 6, 3, generator=g, dtype=torch.float64) * 2 - 1
    V = torch.eye(3, dtype=torch.float64)
    traj = simulate(x0, model=Model(beta=0.0, V=V, projection=False), t_max=4.0, save_at=5, **TIGHT)
    z = rescale(traj.positions, traj.times, V)
    t = traj.times.view(-1, 1, 1, 1)
    m0 = x0.mean(1, keepdim=True)
    exact = torch.exp(-t) * x0 + (1 - torch.exp(-t)) * m0
    assert torch.allclose(z, exact, atol=1e-8)


def test_rescaled_velocity_is_9_3():
    """dz/dt from the rescaled run equals Σ_j A_ij V (z_j − z_i), A the attention of x(t) (9.3), for a general
    non-symmetric V and QᵀK: the rescaling and the field agree."""
    g = torch.Generator().manual_seed(2)
    d = 3
    V = torch.randn(d, d, generator=g, dtype=torch.float64) / 2
    QK = torch.randn(d, d, generator=g, dtype=torch.float64) / 2
    model = Model(beta=1.5, QK=QK, V=V, projection=False)
    x0 = torch.rand(1, 5, d, generator=g, dtype=torch.float64) * 2 - 1
    h, tm = 1e-4, 0.7
    traj = simulate(x0, model=model, t_max=tm + h, save_at=[tm - h, tm, tm + h], rtol=1e-13, atol=1e-14)
    z = rescale(traj.positions, traj.times, V)[:, 0]
    dz = (z[2] - z[0]) / (2 * h)
    a = attention(traj.positions[1], model)[0, 0]  # (n, n)
    rhs = (a[:, :, None] * (z[1][None, :, :] - z[1][:, None, :])).sum(1) @ V.T
    assert torch.allclose(dz, rhs, atol=1e-6)


# --------------------------------------------------------------------------------------------------------
# hand-built cases with a known limit


def test_polytope_hand_built_square():
    """V = I, QᵀK = I, β = 20: the corners of a square attend to themselves (the leaders) and every interior token
    converges to the corner c maximising ⟨z_i, c⟩; the attention matrix becomes Boolean with 4 leaders."""
    corners = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    inner = torch.tensor([[0.5, 0.2], [-0.3, 0.6], [0.1, -0.7], [-0.6, -0.2], [0.4, -0.1]], dtype=torch.float64)
    x0 = torch.cat([corners, inner])[None]
    V = torch.eye(2, dtype=torch.float64)
    model = Model(beta=20.0, V=V, projection=False)
    traj = simulate(x0, model=model, t_max=10.0, save_at=3, **TIGHT)
    z = rescale(traj.positions, traj.times, V)[-1, 0]
    predicted = corners[(x0[0] @ corners.T).argmax(-1)]
    assert torch.allclose(z, predicted, atol=1e-3)
    assert float(polytope_measure(z)) == 1.0
    a = attention(traj.positions[-1], model)[0, 0]
    assert float(attention_booleanness(a)) < 1e-9
    assert int(leader_count(a)) == 4
    # and the start was not a polytope's vertex set: the measurement moved from 4/9 to 1
    assert float(polytope_measure(x0[0])) == pytest.approx(4 / 9)


def test_hyperplanes_hand_built():
    """V = diag(1, 0), QᵀK = I, β = 20, small second coordinates: ż_i has no second component (frozen exactly),
    and the first coordinate α_i tends to max α(0) when α_i(0) > 0 and to min α(0) when α_i(0) < 0:
    two parallel lines, tokens spread along them."""
    g = torch.Generator().manual_seed(3)
    alpha = torch.tensor([1.0, 0.6, 0.35, 0.2, -0.15, -0.4, -0.8, -1.1], dtype=torch.float64)
    perp = (torch.rand(8, generator=g, dtype=torch.float64) - 0.5) * 0.2
    x0 = torch.stack([alpha, perp], -1)[None]
    V = torch.diag(torch.tensor([1.0, 0.0], dtype=torch.float64))
    traj = simulate(x0, model=Model(beta=20.0, V=V, projection=False), t_max=10.0, save_at=3, **TIGHT)
    z = rescale(traj.positions, traj.times, V)[-1, 0]
    assert torch.allclose(z[:, 1], perp, atol=1e-9)
    predicted = torch.where(alpha > 0, alpha.max(), alpha.min())
    assert torch.allclose(z[:, 0], predicted, atol=1e-3)
    assert float(hyperplane_measure(z, torch.tensor([1.0, 0.0], dtype=torch.float64))) < 1e-4
    assert float(polytope_measure(z)) < 0.75  # tokens along the lines are not vertices


def test_paranormal_polytope_times_subspace():
    """V = diag(1, 1, −0.3): the components on F = span(e₁, e₂) end on the vertices of a polygon, while the third
    components are pushed apart (not collapsed): a polytope × a subspace."""
    run = table1_run("paranormal", n=16, t_max=10.0, saves=3)
    z = run["z"][-1]
    assert float(paranormal_measure(z, run["F"])) == 1.0
    assert float(z[:, 2].std()) > float(run["z"][0][:, 2].std())


def test_origin_is_approached_like_inverse_square_root():
    """V = −I, QᵀK = I: x_i → 0 (no rescaling), at the derived rate |x| ~ (2βt)^{−1/2}."""
    run = table1_run("origin", n=16, beta=2.0, t_max=300.0, saves=16)
    t, r = run["times"].numpy(), run["origin"].numpy()
    late = t >= 30
    slope = np.polyfit(np.log(t[late]), np.log(r[late]), 1)[0]
    assert -0.55 <= slope <= -0.45
    assert r[-1] < 0.1


# --------------------------------------------------------------------------------------------------------
# the hyperplane row: which of the three hyperplanes {⟨ψ₁, z⟩ = a}, {… = 0}, {… = b} are occupied


def test_hyperplane_levels_known_answers():
    psi = torch.tensor([1.0, -0.5], dtype=torch.float64)
    # coordinates ⟨ψ, z⟩ = z₁ − z₂/2: 0, 2e−4, −1e−4 | 1, 1 | 5 (the second coordinates 2 shift them by −1)
    z = torch.tensor([[0.0, 0.0], [1.0002, 2.0], [-1e-4, 0.0], [2.0, 2.0], [1.0, 0.0], [5.0, 0.0]],
                     dtype=torch.float64)
    levels, counts = hyperplane_levels(z, psi, tol=1e-3)
    assert torch.allclose(levels, torch.tensor([1e-4 / 3, 1.0, 5.0], dtype=torch.float64), atol=1e-12)
    assert counts.tolist() == [3, 2, 1]
    levels, counts = hyperplane_levels(z, psi, tol=1e-5)  # a finer tolerance separates the first three
    assert counts.tolist() == [1, 1, 1, 2, 1]


def test_three_level_construction_is_reflection_invariant():
    """The matrices satisfy the hypotheses of the hyperplane row (λ₁ = 1 simple and larger than |λ₂|,
    ⟨Qφ₁, Kφ₁⟩ > 0), ψ₁ is the normalised left eigenvector, and the oblique reflection R = I − 2φ₁ψ₁ᵀ commutes with
    V, keeps the score form and maps the initial tokens onto themselves (mirror partners swapped, middle fixed)."""
    spec = three_level_case(pairs=4, middle=2, d=3, seed=5)
    V, QK, psi, phi, R = spec["V"], spec["QK"], spec["psi"], spec["phi"], spec["R"]
    eig = torch.linalg.eigvals(V)
    assert sorted(eig.real.tolist()) == pytest.approx([0.0, 0.0, 1.0], abs=1e-12)
    assert torch.allclose(V @ phi, phi) and torch.allclose(psi @ V, psi)
    assert float(psi @ phi) == pytest.approx(1.0) and float(phi @ QK @ phi) > 0
    assert bool((torch.linalg.eigvalsh(QK) > 0).all())  # QᵀK ≻ 0
    assert torch.allclose(R, torch.eye(3, dtype=torch.float64) - 2 * torch.outer(phi, psi))
    assert torch.allclose(R @ V, V @ R) and torch.allclose(R.T @ QK @ R, QK)
    assert torch.allclose(R @ R, torch.eye(3, dtype=torch.float64))
    x0, kinds = spec["x0"][0], spec["kinds"]
    mirrored = x0 @ R.T
    pos, neg, mid = (kinds == 1), (kinds == -1), (kinds == 0)
    assert torch.allclose(mirrored[pos], x0[neg], atol=1e-14) and torch.allclose(mirrored[mid], x0[mid], atol=1e-14)
    assert torch.allclose(x0[mid] @ psi, torch.zeros(2, dtype=torch.float64), atol=1e-15)
    assert bool((x0[pos] @ psi >= 0.1).all())
    assert spec["predicted"] == {"levels": 3, "counts": (4, 2, 4)}


@pytest.fixture(scope="module")
def level_runs():
    return {v: three_level_run(v) for v in ("symmetric", "perturbed", "generic")}


def _reduced_coordinates(x0, beta, t_max):
    """Independent of the package's solver, field and rescaling: in the coordinates y = S⁻¹x (S = I + ½e₁e₂ᵀ) the
    rescaled dynamics (9.3) is ȧ_i = Σ_j A_ij (a_j − a_i) with the other coordinates w frozen and
    A_i· = softmax(β(e^{2t} a_i a + W w_i)); integrated here with scipy's DOP853."""
    from scipy.integrate import solve_ivp
    from scipy.special import softmax

    S = np.eye(x0.shape[-1])
    S[0, 1] = 0.5
    y = np.linalg.solve(S, x0.T).T
    a0, w = y[:, 0], y[:, 1:]
    gram = w @ w.T

    def rhs(t, a):
        return softmax(beta * (np.exp(2 * t) * np.outer(a, a) + gram), axis=1) @ a - a

    return solve_ivp(rhs, (0.0, t_max), a0, method="DOP853", rtol=1e-12, atol=1e-14).y[:, -1]


def test_symmetric_tokens_occupy_all_three_hyperplanes(level_runs):
    """Mirror pairs plus tokens on a = 0 (three_level_case): the limit holds exactly three levels {−b, 0, b}
    with the pairs split evenly ((6, 3, 6) tokens), the middle tokens on a = 0 at all times, the reflection
    symmetry R z_i(t) = z_π(i)(t) kept along the run, max_j a_j non-increasing and min_j a_j non-decreasing
    (their limits are the outer levels), and every coordinate equal to the independent reduced integration."""
    run = level_runs["symmetric"]
    spec = three_level_case()
    a, kinds, z = run["coordinates"], run["kinds"], run["z"]
    levels, counts = run["levels"], run["counts"]
    assert counts.tolist() == [6, 3, 6] == [run["predicted"]["counts"][k] for k in range(3)]
    b = float(levels[2])
    assert float(levels[0]) == pytest.approx(-b, abs=1e-9) and abs(float(levels[1])) < 1e-12
    assert float(a[:, kinds == 0].abs().max()) < 1e-12  # on the middle hyperplane for every t
    assert torch.allclose(a[-1, kinds == 1], torch.full((6,), b, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(a[-1, kinds == -1], torch.full((6,), -b, dtype=torch.float64), atol=1e-3)
    assert bool((a[:, kinds == 1] > 0).all())  # a pair member never crosses 0
    n = kinds.numel()
    perm = torch.cat([torch.arange(6, 12), torch.arange(6), torch.arange(12, n)])
    assert torch.allclose(z @ spec["R"].T, z[:, perm], atol=1e-9)
    assert float(run["max"].diff().max()) <= 1e-9 and float(run["min"].diff().min()) >= -1e-9
    assert float(run["max"][-1]) <= float(a[0].max()) and b == pytest.approx(float(run["max"][-1]), abs=1e-4)
    assert float(run["max"][-1]) < float(a[0].max()) - 0.01  # the top level is below the top start
    reduced = _reduced_coordinates(run["x"][0].numpy(), run["settings"]["beta"], run["settings"]["t_max"])
    assert np.abs(reduced - a[-1].numpy()).max() < 1e-6
    assert float(hyperplane_measure(z[-1], run["psi"])) < 1e-4


def test_middle_hyperplane_is_unstable(level_runs):
    """The same configuration with the middle tokens moved to a = ε = 1e−3 > 0: they stay near ε while their
    scores are dominated by the other coordinates, then leave a = 0 and join the top level b."""
    run = level_runs["perturbed"]
    a, kinds = run["coordinates"], run["kinds"]
    assert run["departure"] is not None and run["departure"] > 1.0
    early = run["times"] < 1.0
    assert float((a[early][:, kinds == 0] - 1e-3).abs().max()) < 1e-4
    assert run["counts"].tolist() == [6, 9]
    assert torch.allclose(a[-1, kinds == 0], run["max"][-1].expand(3), atol=1e-3)


def test_limits_lie_on_min_zero_max(level_runs):
    """The theorem's three values: every final coordinate lies within 1e−3 of min_j a_j, 0 or max_j a_j (at most 3
    levels), for the symmetric, perturbed and random runs; random tokens here occupy two."""
    for variant, run in level_runs.items():
        a = run["coordinates"][-1]
        targets = torch.stack([run["min"][-1], torch.zeros((), dtype=a.dtype), run["max"][-1]])
        assert float((a[:, None] - targets).abs().amin(-1).max()) < 1e-3, variant
        assert len(run["levels"]) <= 3
    assert len(level_runs["generic"]["levels"]) == 2
    table1 = table1_run("hyperplanes", n=16, saves=3)
    assert len(table1["levels"]) <= 3 and int(table1["counts"].sum()) == 16


# --------------------------------------------------------------------------------------------------------
# the four rows of Table 1 side by side


def test_table1_rows_reach_their_predictions_and_only_them():
    table = table1_table(n=24)
    for case, (key, target) in PREDICTED.items():
        assert table[case][key] == pytest.approx(target, abs=1e-3 if case != "origin" else 0.06), (case, table[case])
        for other in TABLE1_CASES:
            value = table[other][key]
            if other != case and value is not None:
                assert abs(value - target) > 0.1, (case, other, value)
    assert table["polytope"]["booleanness"] < 1e-6
    assert table["origin"]["booleanness"] > 0.5


@pytest.mark.parametrize(
    ("make", "word"),
    [
        (lambda: table1_case("sphere"), "case"),
        (lambda: table1_case("paranormal", d=2), "d"),
        (lambda: rescale(torch.zeros(3, 1, 2, 2), torch.zeros(2), torch.eye(2)), "times"),
        (lambda: table1_run("polytope", n=1), "n"),
        (lambda: hyperplane_levels(torch.zeros(3, 2), torch.ones(2), tol=0.0), "tol"),
        (lambda: hyperplane_levels(torch.zeros(1, 3, 2), torch.ones(2)), "z"),
        (lambda: three_level_case(pairs=0), "pairs"),
        (lambda: three_level_run("mirror"), "variant"),
    ],
)
def test_bad_input(make, word):
    with pytest.raises(ValueError, match=word):
        make()


@pytest.mark.slow
def test_unnormalized_report_section():
    from tokensphere.report.unnormalized import unnormalized_section

    section = unnormalized_section(quick=True)
    assert section.figures and all(v.passed for v in section.verdicts)
