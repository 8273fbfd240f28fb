"""Audit of ``tokensphere optimal``, each defect checked against independent truth:

1. at β = 1000, E_β = (1/(2βn²)) Σ_i Σ_j e^{β⟨x_i,x_j⟩} ≈ e^{991} overflows float64: what is printed must be finite
   and equal to the value computed by hand in 50-digit decimal arithmetic;
2. at β = 30 the constant self term e^β/(2βn) swamps the differences of E_β (the tetrahedron's off-diagonal terms
   are e^{−40} of it), so an energy-gap stopping rule declared the simplex found on other configurations: the
   search must end at the simplex (every ⟨x_i, x_j⟩ = −1/(n − 1)) and never call anything else found;
3. ``--time-limit`` was checked between batches only (≈ 10× overrun): the command must end within the limit plus a
   margin that is generous for a loaded 2-core machine and far below the old overrun.
"""

from __future__ import annotations

import math
import re
import time
from decimal import Decimal, localcontext

import pytest
import torch

from tokensphere.optimal import search

from helpers import invoke  # noqa: E402


# --------------------------------------------------------------------------------- 1. no overflow at β = 1000
def _tetrahedron_energy_by_hand(beta: int) -> tuple[Decimal, Decimal]:
    """(E_β, F_β = E_β − e^β/(2βn)) of the regular tetrahedron, n = 4, ⟨x_i,x_j⟩ = −1/3 for i ≠ j, in 50 digits:
    E_β = (4 e^β + 12 e^{−β/3}) / (2β·16)."""
    with localcontext() as ctx:
        ctx.prec = 50
        b = Decimal(beta)
        off = 12 * (-b / 3).exp()
        return (4 * b.exp() + off) / (32 * b), off / (32 * b)


def _row(output: str, label: str) -> str:
    """The value printed in the table row whose quantity is exactly ``label``."""
    m = re.search(r"[│|]\s*" + re.escape(label) + r"\s*[│|]\s*(\S+)", output)
    assert m, output
    return m.group(1)


def test_cli_prints_the_energy_at_beta_1000_finite_and_exact():
    energy, interaction = _tetrahedron_energy_by_hand(1000)
    r = invoke("optimal", "--n", "4", "--d", "3", "--beta", "1000")
    assert r.exit_code == 0, r.output
    assert "inf" not in r.output.replace("info", "")
    assert "simplex (4 points): matches" in r.output
    printed = Decimal(_row(r.output, "E_β"))  # e.g. 2.46258889252e+430
    assert abs(printed / energy - 1) < Decimal("1e-11")
    assert float(_row(r.output, "log E_β")) == pytest.approx(float(energy.ln()), rel=0, abs=1e-11)
    assert float(_row(r.output, "log F_β, F_β = E_β − e^β/(2βn)")) == pytest.approx(float(interaction.ln()), rel=0,
                                                                                   abs=1e-11)


def test_energies_at_beta_1000_in_log_form_by_hand():
    from tokensphere.cli.optimal import exp_text
    from tokensphere.optimal import describe, simplex

    energy, interaction = _tetrahedron_energy_by_hand(1000)
    x = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64) / math.sqrt(3)
    s = describe(x, 1000.0)
    assert s.matches
    assert s.log_energy == pytest.approx(float(energy.ln()), rel=0, abs=1e-11)
    assert s.log_interaction == pytest.approx(float(interaction.ln()), rel=0, abs=1e-11)
    assert simplex(3).log_interaction_energy(1000.0) == pytest.approx(float(interaction.ln()), rel=0, abs=1e-11)
    assert abs(Decimal(exp_text(s.log_energy)) / energy - 1) < Decimal("1e-11")
    assert exp_text(1.5) == f"{math.exp(1.5):.15g}"  # float64 range: the plain value
    assert Decimal(exp_text(-2000.0)) == pytest.approx(Decimal(-2000).exp(), rel=Decimal("1e-11"))
    res = search(4, 3, 1000.0, restarts=4, batch=4, seed=0)  # what a search reports is finite too
    assert math.isfinite(res.log_energy) and math.isfinite(res.log_interaction)
    assert all(math.isfinite(h[2]) for h in res.history) and bool(torch.isfinite(res.minima).all())


# --------------------------------------------------------------------------------- 2. the simplex at β = 30
def _is_simplex(x: torch.Tensor, tol: float = 1e-6) -> bool:
    """Every ⟨x_i, x_j⟩ (i ≠ j) equals −1/(n − 1): the regular simplex (the only such n-point set)."""
    n = x.shape[0]
    gram = x @ x.T
    off = gram[~torch.eye(n, dtype=torch.bool)]
    return bool(((off + 1.0 / (n - 1)).abs() < tol).all())


@pytest.mark.parametrize("n,d", [(4, 3), (5, 4), (3, 2)])
def test_search_at_beta_30_reaches_the_simplex(n, d):
    res = search(n, d, 30.0, restarts=8, batch=8, seed=0)
    assert _is_simplex(res.x), res.x @ res.x.T
    assert res.found_seconds is not None


def test_search_at_beta_30_never_calls_another_configuration_found():
    for seed in range(4):
        res = search(4, 3, 30.0, restarts=2, batch=2, seed=seed, symmetry="none")
        if res.found_seconds is not None:
            assert _is_simplex(res.x), (seed, res.x @ res.x.T)


def test_cli_at_beta_30_prints_the_simplex():
    r = invoke("optimal", "--n", "4", "--d", "3", "--beta", "30", "--restarts", "8", "--batch", "8")
    assert r.exit_code == 0, r.output
    assert "simplex (4 points): matches" in r.output
    assert "-0.333333 × 3" in r.output


# --------------------------------------------------------------------------------- 3. the time limit
LIMIT = 2.0
MARGIN = 3.0  # seconds on top of limit × 1.1 (polish grace): a loaded machine; the old overrun was ≈ 17 s


def test_cli_time_limit_is_honoured():
    # free restarts of 120 points in 4 dimensions: one batch of 32 takes ≈ 18 s on the 2-core machine
    t0 = time.perf_counter()
    r = invoke("optimal", "--n", "120", "--d", "4", "--beta", "5", "--symmetry", "none", "--time-limit", str(LIMIT))
    wall = time.perf_counter() - t0
    assert r.exit_code == 0, r.output
    assert wall < 1.1 * LIMIT + MARGIN, wall


def test_lbfgs_deadline_stops_the_batch():
    from tokensphere.init import sample_sphere
    from tokensphere.optimal import lbfgs

    x0 = sample_sphere(32, 120, 4, seed=0)
    t0 = time.perf_counter()
    r = lbfgs(x0, 5.0, gtol=1e-6, deadline=t0 + 0.5)
    wall = time.perf_counter() - t0
    assert wall < 0.5 + MARGIN, wall
    assert not bool(r.converged.all())  # stopped by the deadline, reported as not converged
    assert bool((r.log_interaction <= lbfgs(x0, 5.0, max_iter=1).log_interaction + 1e-12).all())  # still descended


@pytest.mark.parametrize("beta", [0.3, 30.0, 1000.0])
def test_interaction_objective_gradient_matches_autograd(beta):
    """The objective log F_β = log(E_β − e^β/(2βn)): its closed-form gradient against autograd, and F_β against the
    direct sum over pairs i ≠ j (in float64 where that sum is representable)."""
    from tokensphere.init import sample_sphere
    from tokensphere.optimal import interaction_gradient, log_interaction_energy

    x = sample_sphere(3, 7, 4, seed=4).requires_grad_(True)
    (g,) = torch.autograd.grad(log_interaction_energy(x, beta).sum(), x)
    xd = x.detach()
    torch.testing.assert_close(interaction_gradient(xd, beta), g - (g * xd).sum(-1, keepdim=True) * xd,
                               rtol=1e-9, atol=1e-12)
    gram = xd @ xd.transpose(1, 2)
    off = ~torch.eye(7, dtype=torch.bool)
    if beta < 700:
        direct = torch.exp(beta * gram[:, off]).sum(1) / (2 * beta * 49)
        torch.testing.assert_close(log_interaction_energy(xd, beta), direct.log(), rtol=1e-13, atol=1e-13)
    else:  # the largest term by hand: log F ≥ β max_{i≠j} ⟨x_i,x_j⟩ − log(2βn²), within log(n(n − 1))
        top = beta * gram[:, off].amax(1) - math.log(2 * beta * 49)
        lf = log_interaction_energy(xd, beta)
        assert bool((lf >= top - 1e-9).all()) and bool((lf <= top + math.log(42) + 1e-9).all())
