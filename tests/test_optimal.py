"""Optimal configurations (V = −I): known configurations against their literature inner-product distributions and
closed-form energies, Gegenbauer polynomials against SciPy, design strengths against the definition (monomial
moments of the sphere), the gradient against autograd, the optimiser and the repulsive flow against the known
optima (Cohn–Kumar: nothing goes below them), the flow's convergence rate against the linearisation, the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special as sp
import torch
from typer.testing import CliRunner

from tokensphere import Model, sample_sphere, velocity
from tokensphere.cli import app
from tokensphere.energy import log_energy
from tokensphere.experiments.optimal import flow_arrival
from tokensphere.field import tangent_project
from tokensphere.integrate.steps import retract
from tokensphere.optimal import (
    KNOWN,
    cross_polytope,
    describe,
    design_strength,
    design_sums,
    gegenbauer,
    inner_products,
    is_sharp,
    known_for,
    lbfgs,
    normalized_gegenbauer,
    polygon,
    riemannian_gradient,
    search,
    simplex,
)

ICOSAHEDRON, CELL600, E8 = KNOWN
ALL_KNOWN = [*KNOWN, simplex(2), simplex(3), simplex(6), cross_polytope(2), cross_polytope(3), cross_polytope(5),
             polygon(5), polygon(8)]


# --------------------------------------------------------------------------------- known configurations
@pytest.mark.parametrize("k", ALL_KNOWN, ids=lambda k: k.name)
def test_coordinates_have_the_literature_distribution(k):
    x = k.points()
    assert x.shape == (k.n, k.d)
    torch.testing.assert_close(torch.linalg.vector_norm(x, dim=1), torch.ones(k.n, dtype=x.dtype))
    found = inner_products(x)
    expected = sorted(k.distribution, reverse=True)
    assert len(found) == len(expected)
    for (t, m), (t0, m0) in zip(found, expected):
        assert t == pytest.approx(t0, abs=1e-12) and m == m0
    assert sum(m for _, m in expected) == k.n


@pytest.mark.parametrize("k", ALL_KNOWN, ids=lambda k: k.name)
@pytest.mark.parametrize("beta", [0.5, 5.0, 40.0])
def test_exact_energy_closed_form_equals_library_energy_of_coordinates(k, beta):
    assert k.log_energy(beta) == pytest.approx(float(log_energy(k.points().unsqueeze(0), beta)[0]), rel=1e-13,
                                               abs=1e-13)


def test_icosahedron_energy_by_hand():
    # E_β = (1/(2·12β))(e^β + 5e^{β/√5} + 5e^{−β/√5} + e^{−β}) = (cosh β + 5 cosh(β/√5)) / (12β)
    beta = 2.0
    by_hand = (math.cosh(beta) + 5 * math.cosh(beta / math.sqrt(5))) / (12 * beta)
    assert ICOSAHEDRON.energy(beta) == pytest.approx(by_hand, rel=1e-14)


def test_known_for_dispatch():
    assert known_for(4, 3).name.startswith("simplex")
    assert known_for(6, 3).name.startswith("cross")
    assert known_for(12, 3) is ICOSAHEDRON and known_for(120, 4) is CELL600 and known_for(240, 8) is E8
    assert known_for(7, 2).name == "regular 7-gon"
    assert known_for(7, 3) is None


# --------------------------------------------------------------------------------- Gegenbauer and designs
@pytest.mark.parametrize("lam", [0.5, 1.0, 2.5])
def test_gegenbauer_matches_scipy(lam):
    s = torch.linspace(-1, 1, 41, dtype=torch.float64)
    for k in range(0, 12):
        np.testing.assert_allclose(gegenbauer(k, lam, s).numpy(), sp.eval_gegenbauer(k, lam, s.numpy()),
                                   rtol=1e-10, atol=1e-10)


def test_normalized_gegenbauer_is_chebyshev_on_circle_and_legendre_on_s2():
    s = torch.linspace(-1, 1, 41, dtype=torch.float64)
    for k in range(0, 12):
        np.testing.assert_allclose(normalized_gegenbauer(k, 2, s).numpy(), sp.eval_chebyt(k, s.numpy()), atol=1e-12)
        np.testing.assert_allclose(normalized_gegenbauer(k, 3, s).numpy(), sp.eval_legendre(k, s.numpy()), atol=1e-12)
        assert float(normalized_gegenbauer(k, 6, torch.ones((), dtype=torch.float64))) == pytest.approx(1.0)


def _sphere_moment(alpha: tuple[int, ...]) -> float:
    """∫ x^α dσ on S^{d−1}: 0 unless every α_i is even; else Π (α_i − 1)!! / (d (d+2) ⋯ (d + |α| − 2))."""
    if any(a % 2 for a in alpha):
        return 0.0
    d, total = len(alpha), sum(alpha)
    num = math.prod(math.prod(range(a - 1, 0, -2)) for a in alpha)
    den = math.prod(d + 2 * j for j in range(total // 2))
    return num / den


def _moment_strength(x: torch.Tensor, max_degree: int = 8) -> int:
    """Largest t such that the average of every monomial of degree ≤ t over x equals its sphere average."""
    import itertools

    n, d = x.shape
    for deg in range(1, max_degree + 1):
        for alpha in itertools.product(range(deg + 1), repeat=d):
            if sum(alpha) != deg:
                continue
            mean = float(torch.prod(x ** torch.tensor(alpha, dtype=x.dtype), dim=1).mean())
            if abs(mean - _sphere_moment(alpha)) > 1e-10:
                return deg - 1
    return max_degree


@pytest.mark.parametrize("k,t", [(ICOSAHEDRON, 5), (simplex(3), 2), (cross_polytope(3), 3), (cross_polytope(4), 3),
                                 (simplex(4), 2), (polygon(6), 5)], ids=lambda v: getattr(v, "name", str(v)))
def test_design_strength_agrees_with_the_definition_by_moments(k, t):
    x = k.points()
    assert design_strength(x) == _moment_strength(x) == t == k.design


@pytest.mark.parametrize("k", [CELL600, E8], ids=lambda k: k.name)
def test_design_strength_large_configurations(k):
    assert design_strength(k.points()) == k.design  # 600-cell: 11, E8 roots: 7
    assert float(design_sums(k.points(), k.design + 1)[k.design]) > 1e-3  # and not one more


@pytest.mark.parametrize("k", ALL_KNOWN, ids=lambda k: k.name)
def test_sharpness_of_known_configurations(k):
    s = describe(k.points(), 5.0)
    assert s.sharp == k.sharp  # all sharp except the 600-cell (8 inner products, an 11-design < 15)
    assert s.matches and abs(s.gap) < 1e-12


def test_is_sharp_definition_and_a_random_set_is_nothing():
    assert is_sharp(3, 5) and not is_sharp(8, 11) and is_sharp(1, 2) and not is_sharp(2, 2)
    x = sample_sphere(1, 12, 3, seed=3)[0]
    s = describe(x, 1.0)
    assert s.strength == 0 and not s.sharp and not s.matches and s.gap > 0


def test_rotated_and_permuted_configuration_still_matches():
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    x = CELL600.points() @ q.T
    x = x[torch.randperm(120, generator=torch.Generator().manual_seed(2))]
    s = describe(x, 5.0)
    assert s.matches and s.strength == 11


# --------------------------------------------------------------------------------- gradient and optimiser
@pytest.mark.parametrize("beta", [0.3, 5.0, 200.0])
def test_riemannian_gradient_matches_autograd(beta):
    x = sample_sphere(3, 9, 4, seed=4).requires_grad_(True)
    (g,) = torch.autograd.grad(log_energy(x, beta).sum(), x)
    torch.testing.assert_close(riemannian_gradient(x.detach(), beta), tangent_project(x.detach(), g), rtol=1e-10,
                               atol=1e-12)


def test_riemannian_gradient_is_the_repulsive_usa_velocity():
    # (3.11): Ẋ = −n grad E_β for USA with V = −I; grad log E = grad E / E
    x = sample_sphere(2, 7, 3, seed=5)
    beta = 1.5
    v = velocity(x, Model(beta=beta, V="repulsive", normalization="uniform"))
    e = torch.exp(log_energy(x, beta)).view(-1, 1, 1)
    torch.testing.assert_close(v, -7 * e * riemannian_gradient(x, beta), rtol=1e-10, atol=1e-12)


def test_lbfgs_descends_and_stops_at_critical_points():
    x0 = sample_sphere(6, 10, 3, seed=6)
    r = lbfgs(x0, 2.0, gtol=1e-9)
    assert bool((r.log_energy < log_energy(x0, 2.0)).all())
    assert bool((r.grad_norm < 1e-7).all())
    torch.testing.assert_close(torch.linalg.vector_norm(r.x, dim=-1), torch.ones(6, 10, dtype=r.x.dtype))


def test_antipodal_lbfgs_returns_antipodal_critical_points():
    r = lbfgs(sample_sphere(4, 6, 3, seed=7), 5.0, gtol=1e-10, antipodal=True)
    assert r.x.shape == (4, 12, 3)
    torch.testing.assert_close(r.x[:, 6:], -r.x[:, :6])
    # a critical point of the symmetric problem is a critical point of the full one (E is invariant under x ↦ −x)
    assert float(torch.linalg.vector_norm(riemannian_gradient(r.x, 5.0).flatten(1), dim=1).max()) < 1e-8


@pytest.mark.parametrize("n,d,beta", [(4, 3, 5.0), (5, 4, 2.0), (6, 3, 5.0), (8, 4, 1.0), (12, 3, 1.0), (12, 3, 8.0),
                                      (7, 2, 3.0)])
def test_search_finds_the_known_optimum_from_random_starts(n, d, beta):
    res = search(n, d, beta, restarts=8, batch=8, seed=0)
    s = describe(res.x, beta)
    assert s.matches, (s.known.name, s.gap)
    assert s.strength == s.known.design and s.sharp
    # Cohn–Kumar in the correct direction: no local minimum below the universally optimal energy
    assert float(res.minima.min()) >= s.known.log_energy(beta) - 1e-12


def test_search_free_restarts_also_find_the_icosahedron_and_seed_reproduces():
    a = search(12, 3, 1.0, restarts=6, batch=6, seed=3, symmetry="none")
    b = search(12, 3, 1.0, restarts=6, batch=6, seed=3, symmetry="none")
    assert describe(a.x, 1.0).matches
    torch.testing.assert_close(a.x, b.x)
    torch.testing.assert_close(a.minima, b.minima)


@pytest.mark.parametrize("kwargs,word", [
    ({"n": 1}, "n"), ({"d": 1}, "d"), ({"beta": 0.0}, "beta"), ({"restarts": 0}, "restarts"), ({"hops": -1}, "hops"),
    ({"batch": 0}, "batch"), ({"sigma": 0.0}, "sigma"), ({"symmetry": "mirror"}, "symmetry"), ({"seed": -1}, "seed"),
    ({"n": 5, "symmetry": "antipodal"}, "symmetry"), ({"time_limit": 0.0}, "time_limit"),
])
def test_search_bad_input_names_the_parameter(kwargs, word):
    args = {"n": 6, "d": 3, "beta": 1.0, **kwargs}
    with pytest.raises(ValueError, match=word):
        search(args.pop("n"), args.pop("d"), args.pop("beta"), **args)


# --------------------------------------------------------------------------------- the repulsive flow
def test_repulsive_flow_arrives_at_the_icosahedron_at_the_linearised_rate():
    """The V = −I flow (SA, β = 1) from a random start stops (max_i |ẋ_i| < 1e-7) at the icosahedron, its energy
    decreases to the exact optimum, and the field norm falls from 1e-6 to 1e-7 in ln 10 / λ, λ the slowest decay
    rate of the field linearised at the icosahedron (eigenvalues of its Jacobian, computed here by autograd)."""
    model = Model(beta=1.0, V="repulsive")
    f = lambda z: velocity(retract(z.view(1, 12, 3)), model).flatten()  # noqa: E731
    ev = torch.linalg.eigvals(torch.autograd.functional.jacobian(f, ICOSAHEDRON.points().flatten())).real
    assert bool((ev < 1e-12).all())  # a stable equilibrium (zero: rotations and the normal directions)
    lam = -float(ev[ev < -1e-9].max())
    r = flow_arrival(12, 3, 1.0, starts=1, seed=1, tol=1e-7, t_max=4000.0, saves=401, dt_max=5.0)
    arrival = float(r.arrival_time[0])
    assert math.isfinite(arrival)
    s = describe(r.final[0], 1.0, tol=1e-3)  # positions are within ≈ tol/λ ≈ 3e-5 of the icosahedron
    assert s.known is ICOSAHEDRON and len(s.inner_products) == 4 and 0 <= s.gap < 1e-9
    gap = r.log_gap[:, 0][~r.log_gap[:, 0].isnan()]
    assert bool((gap[1:] <= gap[:-1] + 1e-12).all()) and bool((gap >= -1e-12).all())
    norm = r.field_norm[:, 0]
    t6 = float(r.times[torch.nonzero(norm < 1e-6).flatten()[0]])  # saved every 10 time units
    assert arrival - t6 == pytest.approx(math.log(10) / lam, rel=0.05)


# --------------------------------------------------------------------------------- command line
def test_cli_optimal_writes_the_configuration_and_picture(tmp_path):
    out = tmp_path / "best.npy"
    r = CliRunner().invoke(app, ["optimal", "--n", "6", "--d", "3", "--beta", "5", "--restarts", "4",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "cross-polytope" in r.output and "matches" in r.output
    x = torch.from_numpy(np.load(out))
    assert x.shape == (6, 3) and describe(x, 5.0).matches
    assert (tmp_path / "best.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("args,word", [
    (["--n", "1"], "n"), (["--d", "1"], "d"), (["--beta", "0"], "beta"), (["--restarts", "0"], "restarts"),
    (["--symmetry", "mirror"], "symmetry"), (["--d", "4", "--figure", "x.png"], "figure"), (["--seed", "-2"], "seed"),
    (["--out", "best.txt"], ".npy"), (["--seed", "99999999999999999999"], "seed"), (["--figure", "x.txt"], "figure"),
])
def test_cli_optimal_bad_input(args, word, tmp_path):
    r = CliRunner().invoke(app, ["optimal", *args])
    assert r.exit_code == 2
    assert "error:" in r.output and word in r.output.split("error:")[1]


def test_cli_refuses_to_overwrite(tmp_path):
    out = tmp_path / "x.npy"
    out.write_bytes(b"")
    r = CliRunner().invoke(app, ["optimal", "--n", "4", "--d", "3", "--out", str(out)])
    assert r.exit_code == 2 and "exists" in r.output


# --------------------------------------------------------------------------------- slow: the 600-cell
@pytest.mark.slow
def test_600_cell_found_from_random_starts():
    res = search(120, 4, 5.0, restarts=64, batch=16, seed=0)
    s = describe(res.x, 5.0)
    assert res.found_seconds is not None and s.matches and s.strength == 11 and not s.sharp
    assert float(res.minima.min()) >= CELL600.log_energy(5.0) - 1e-12


def test_basin_hopping_runs_its_budget_and_never_gets_worse():
    res = search(12, 3, 8.0, restarts=4, hops=8, batch=4, sigma=0.3, seed=2, symmetry="none", stop_at_known=False)
    assert res.restarts == 4 and res.hops == 8 and res.minima.numel() == 12
    assert [h[1] for h in res.history] == [4, 8, 12]
    best = [h[2] for h in res.history]
    assert all(b1 <= b0 for b0, b1 in zip(best, best[1:]))  # greedy: the pool's best never rises
    assert res.log_energy <= float(res.minima.min()) + 1e-12


def test_report_section_from_a_small_experiment():
    from tokensphere.experiments.optimal import OptimalExperiment, known_table
    from tokensphere.report import Section
    from tokensphere.report.optimal import optimal_section

    flow = flow_arrival(12, 3, 1.0, starts=1, seed=0, t_max=50.0, saves=11)  # far too short to arrive
    res = search(12, 3, 1.0, restarts=4, batch=4, seed=0)
    table = known_table(5.0, restarts=4, configurations=(cross_polytope(3),))
    sec = optimal_section(OptimalExperiment(flow, res, describe(res.x, 1.0), table, 1.0))
    assert isinstance(sec, Section) and len(sec.figures) == 2
    outcome = {v.name: v.passed for v in sec.verdicts}
    assert outcome["V = −I flow arrives (field below tolerance)"] is False  # not arrived by t = 50
    assert outcome["the optimiser finds the known configuration from random starts"] is True
    assert all(v.passed for v in sec.verdicts if v.name.startswith("cross-polytope"))
    assert sec.tables["flow arrival"]["start 0"].startswith("not arrived")


@pytest.mark.slow
def test_benchmark_quick_runs():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_optimal.py"
    spec = importlib.util.spec_from_file_location("bench_optimal", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert "Found in 1/1 seeds" in mod.main(["--quick"])


def test_describe_refuses_non_finite_points():
    """NaN passes no "<= tol" test but fails every "> tol" one: without the check it was reported a 20-design."""
    with pytest.raises(ValueError, match="finite"):
        describe(torch.full((12, 3), float("nan")), 5.0)


def test_api_bad_inputs_name_the_parameter():
    from tokensphere.experiments.optimal import flow_arrival
    from tokensphere.optimal import lbfgs

    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        flow_arrival(n=1)
    with pytest.raises(ValueError, match="x0 must be a float64 or float32 tensor"):
        lbfgs(torch.ones((1, 4, 3), dtype=torch.long), 1.0)


def test_lbfgs_refuses_starts_it_cannot_project():
    y = sample_sphere(1, 4, 3, seed=0)
    for bad, match in ((y.clone().index_fill_(1, torch.tensor([0]), 0.0), "nonzero"),
                       (y.clone().index_fill_(1, torch.tensor([1]), float("nan")), "finite"),
                       (y.half(), "float64 or float32")):
        with pytest.raises(ValueError, match=match):
            lbfgs(bad, 1.0)


def test_antipodal_lbfgs_reports_the_gradient_norm_of_the_full_configuration():
    """The half variable's gradient is 2 ∂_{x_i}: √2 times the norm of the full X = (y, −y) it returns. The norm is
    that of the objective minimised, log F_β = log(E_β − e^β/(2βn)) (log E_β's gradient vanishes for large β)."""
    from tokensphere.optimal import interaction_gradient

    y = sample_sphere(1, 6, 3, seed=0)
    r = lbfgs(y, 1.0, antipodal=True, max_iter=3)
    full = interaction_gradient(r.x, 1.0).flatten(1).norm(dim=1)
    torch.testing.assert_close(r.grad_norm, full, rtol=1e-12, atol=0.0)


def test_design_functions_validate_degrees():
    x = simplex(3).points()
    with pytest.raises(ValueError, match="max_degree"):
        design_strength(x, max_degree=0)
    with pytest.raises(ValueError, match="k must be"):
        normalized_gegenbauer(-1, 2, torch.tensor(0.3, dtype=torch.float64))
