"""Energies (§3 of the paper): both normalisations, their closed forms, the rate identities against autograd
and finite differences, the gradient-flow structure of USA (3.11) and SA (3.12), and Proposition 3.4 on the circle.

Independent truth: closed forms (consensus, polygons via Bessel functions, the tetrahedron), torch.autograd
of the energy, central finite differences along geodesics (the exponential map of the sphere), and direct
formulas evaluated here.

Tolerances (float64, u = 1.1e-16): energies are exp(log-sum-exp), whose relative error is about
u·max(1, |log E|) ≲ u·β, so closed forms are checked at 1e-13·max(1, β). Rate identities compare two
sums of n terms of size |∇E|·|ẋ|: 1e-12 relative. Central differences with step h have truncation error
O(h²·|D³E|) and rounding O(u·E/h): h = 1e-4 gives ≈ 1e-8 relative, checked at 1e-6.
"""

import math
import re

import numpy as np
import pytest
import scipy.special
import torch

from tokensphere import Model, energy, energy_normalized, energy_rate, energy_tilde, log_energy, velocity
from tokensphere.energy import energy_over_time

from helpers import gauss, sphere

B, N, D = 3, 6, 4


def circle(theta):
    return torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1)


def direct_energy(x, beta, form=None):
    """(1/(2βn²)) Σ_i Σ_j e^{β x_iᵀ form x_j} in NumPy, one β per system (normalisation A)."""
    x = x.detach().numpy()
    form = np.eye(x.shape[-1]) if form is None else np.asarray(form)
    beta = np.broadcast_to(np.asarray(beta, dtype=float).reshape(-1), (x.shape[0],))
    n = x.shape[1]
    return torch.tensor([np.exp(b * xb @ form @ xb.T).sum() / (2 * b * n * n) for xb, b in zip(x, beta)])


def exp_map(x, u, h):
    """Exp_x(h u) on each sphere factor: cos(h|u|) x + sin(h|u|) u/|u| (u tangent at x)."""
    r = u.norm(dim=-1, keepdim=True)
    return torch.cos(h * r) * x + torch.sin(h * r) * u / r


def random_tangent(x, seed):
    u = gauss(*x.shape, seed=seed)
    return u - (u * x).sum(-1, keepdim=True) * x


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


# ---------------------------------------------------------------------------------------------------
# closed forms of normalisation A


@pytest.mark.parametrize("beta", [0.1, 1.0, 10.0, 100.0, 500.0])
def test_consensus_energy_is_the_maximum(beta):
    """E_β = e^β/(2β) at consensus (Remark 3.8, Proposition 3.4 of the paper); any other configuration has less."""
    pole = sphere(B, 1, D, seed=1)
    x = pole.expand(B, N, D).contiguous()
    tol = 1e-13 * max(1.0, beta)
    expect = math.exp(beta) / (2 * beta)
    assert rel(energy(x, beta), torch.full((B,), expect, dtype=torch.float64)) <= tol
    assert float((log_energy(x, beta) - (beta - math.log(2 * beta))).abs().max()) <= tol
    assert float((energy_normalized(x, beta) - 1).abs().max()) <= tol
    y = sphere(B, N, D, seed=2)
    assert (energy(y, beta) < expect * (1 - 1e-6)).all()
    assert (energy_normalized(y, beta) < 1).all() and (energy_normalized(y, beta) > 0).all()


@pytest.mark.parametrize("beta", [0.3, 3.0, 30.0, 300.0])
def test_energy_matches_direct_formula_and_normalised_form(beta):
    x = sphere(B, N, D, seed=3)
    e = energy(x, beta)
    assert rel(e, direct_energy(x, beta)) <= 1e-13 * max(1.0, beta)
    assert rel(energy_normalized(x, beta) * math.exp(beta) / (2 * beta), e) <= 1e-13 * max(1.0, beta)
    assert rel(torch.exp(log_energy(x, beta)), e) <= 1e-13 * max(1.0, beta)
    assert float((log_energy(x, beta) - torch.log(e)).abs().max()) <= 1e-13 * max(1.0, beta)


def test_energy_with_query_key_matrices():
    """Normalisation A with scores ⟨Q x_i, K x_j⟩ (k ≠ d), and with a per-system β."""
    x = sphere(B, N, D, seed=4)
    Q, K = gauss(2, D, seed=5), gauss(2, D, seed=6)
    beta = torch.tensor([0.4, 1.0, 2.5], dtype=torch.float64)
    m = Model(beta=beta, Q=Q, K=K)
    assert rel(energy(x, m), direct_energy(x, beta, (Q.T @ K).numpy())) <= 1e-13
    assert rel(torch.exp(log_energy(x, m)), energy(x, m)) <= 1e-13
    s = torch.einsum("bid,de,bje->bij", x, Q.T @ K, x)
    top = float(np.linalg.svd((Q.T @ K).numpy(), compute_uv=False)[0])  # s* = ‖QᵀK‖₂
    expect_bar = torch.exp(beta.view(-1, 1, 1) * (s - top)).mean((1, 2))
    assert rel(energy_normalized(x, m), expect_bar) <= 1e-13


def test_normalized_energy_is_at_most_one_for_general_scores():
    """Ē ≤ 1 for any Q, K (it used to reach 40–88), and Ē = 1 at consensus on the top eigenvector of a
    symmetric positive semi-definite QᵀK."""
    Q, K = gauss(D, D, seed=11), gauss(D, D, seed=12)
    x = sphere(64, N, D, seed=13)
    bar = energy_normalized(x, Model(beta=3.0, Q=Q, K=K))
    assert bool((bar <= 1 + 1e-12).all()) and bool((bar > 0).all())
    g = gauss(D, D, seed=14)
    form = g @ g.T  # symmetric PSD
    evals, evecs = torch.linalg.eigh(form)
    top = evecs[:, -1].expand(1, N, D).contiguous()
    assert abs(float(energy_normalized(top, Model(beta=5.0, QK=form))) - 1) <= 1e-12


@pytest.mark.parametrize("beta", [1e3, 1e4, 1e6])
def test_large_beta_energies_stay_finite(beta):
    """E_β overflows beyond β ≈ 709, but Ē ∈ (0, 1] and log E_β = β − log 2β + log Ē do not (float64 overflow)."""
    x = torch.cat([sphere(1, N, D, seed=7), sphere(1, 1, D, seed=8).expand(1, N, D)])
    bar = energy_normalized(x, beta)
    assert torch.isfinite(bar).all() and (bar > 0).all() and (bar <= 1 + 1e-12).all()
    # only the diagonal survives for scattered points: Ē = n/n² = 1/n; consensus gives Ē = 1
    assert abs(float(bar[0]) - 1 / N) <= 1e-12 and abs(float(bar[1]) - 1) <= 1e-9
    logs = log_energy(x, beta)
    assert torch.isfinite(logs).all()
    assert float((logs - (beta - math.log(2 * beta) + torch.log(bar))).abs().max()) <= 1e-12 * beta


# ---------------------------------------------------------------------------------------------------
# β = 0: the finite part


def test_beta_zero_holds_the_finite_part():
    """E at β = 0 is (1/(2n²)) Σ_iΣ_j ⟨x_i, x_j⟩ = |Σ_i x_i|²/(2n²); a batch mixing β = 0 and β > 0 gets each."""
    x = sphere(B, N, D, seed=9)
    finite_part = (x.sum(1) ** 2).sum(-1) / (2 * N * N)
    assert rel(energy(x, 0.0), finite_part) <= 1e-14
    beta = torch.tensor([0.0, 0.7, 3.0], dtype=torch.float64)
    e = energy(x, Model(beta=beta))
    assert abs(float(e[0] - finite_part[0])) <= 1e-15
    assert rel(e[1:], direct_energy(x[1:], beta[1:])) <= 1e-13


def test_finite_part_is_the_small_beta_limit():
    """E_β − 1/(2β) = (1/(2n²)) Σ s_ij + (β/(4n²)) Σ s_ij² + O(β²): the β = 0 value is the limit."""
    x = sphere(B, N, D, seed=10)
    s = x @ x.transpose(1, 2)
    first = (s**2).sum((1, 2)) / (4 * N * N)
    for beta in (1e-2, 1e-3):
        diff = energy(x, beta) - 1 / (2 * beta) - energy(x, 0.0)
        # remainder β²/(12 n²) Σ s³ ≤ β²/12; rounding of E ≈ 1/(2β): u/(2β)
        assert float((diff - beta * first).abs().max()) <= beta**2 / 12 + 1e-15 / beta


# ---------------------------------------------------------------------------------------------------
# normalisation B


def test_energy_tilde_is_n_squared_energy_for_identity_value():
    x = sphere(B, N, D, seed=11)
    for beta in (0.5, 4.0, 40.0):
        assert rel(energy_tilde(x, beta), N * N * energy(x, beta)) <= 1e-13 * beta
        eye = torch.eye(D, dtype=torch.float64)
        assert rel(energy_tilde(x, Model(beta=beta, V=eye)), N * N * energy(x, beta)) <= 1e-13 * beta


@pytest.mark.parametrize("V", ["nonsymmetric", "repulsive", "per_system"])
def test_energy_tilde_direct_formula(V):
    """Ẽ_β = (1/(2β)) Σ_iΣ_j e^{β⟨V x_i, x_j⟩}, V inside, no 1/n² (§3.4 of the paper)."""
    x = sphere(B, N, D, seed=12)
    beta = 1.3
    if V == "nonsymmetric":
        mats, kw = gauss(D, D, seed=13).expand(B, D, D), {"V": gauss(D, D, seed=13)}
    elif V == "repulsive":
        mats, kw = -torch.eye(D, dtype=torch.float64).expand(B, D, D), {"V": "repulsive"}
    else:
        mats = gauss(B, D, D, seed=14)
        kw = {"V": mats}
    expect = torch.stack(
        [torch.exp(beta * (x[b] @ mats[b].T) @ x[b].T).sum() / (2 * beta) for b in range(B)]
    )  # ⟨V x_i, x_j⟩ = (V x_i)ᵀ x_j
    assert rel(energy_tilde(x, Model(beta=beta, **kw)), expect) <= 1e-13


# ---------------------------------------------------------------------------------------------------
# the rate identities ((3.6), Lemma 3.7 of the paper, particle form): energy_rate = ⟨∇E, ẋ⟩ = d/dt E along the flow


def autograd_rate(x, model, energy_fn=energy):
    """⟨∇_X E(X), v(X)⟩ with ∇ from torch.autograd (the velocity is tangent, so no projection is needed)."""
    xx = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy_fn(xx, model).sum(), xx)
    v = velocity(x, model)
    return (grad * v).sum((1, 2)), (grad.norm(dim=-1) * v.norm(dim=-1)).sum(1)


RATE_CASES = {
    "SA": dict(beta=2.0),
    "SA_large_beta": dict(beta=20.0),
    "USA": dict(beta=2.0, normalization="uniform"),
    "USA_beta5": dict(beta=5.0, normalization="uniform"),
    "SA_repulsive": dict(beta=2.0, V="repulsive"),
    "USA_repulsive": dict(beta=2.0, normalization="uniform", V="repulsive"),
    "SA_beta0": dict(beta=0.0),
    "USA_beta0": dict(beta=0.0, normalization="uniform"),
    "SA_beta_batch": dict(beta=torch.tensor([0.0, 0.7, 3.0], dtype=torch.float64)),
    "USA_beta_batch": dict(beta=torch.tensor([0.0, 0.7, 3.0], dtype=torch.float64), normalization="uniform"),
}


@pytest.mark.parametrize("name", list(RATE_CASES))
def test_energy_rate_equals_autograd_derivative(name):
    kw = RATE_CASES[name]
    x = sphere(B, N, D, seed=15)
    m = Model(**kw)
    rate = energy_rate(x, m)
    expect, size = autograd_rate(x, m)
    assert float((rate - expect).abs().max()) <= 1e-12 * float(size.max())
    sign = -1 if kw.get("V") == "repulsive" else 1
    assert (sign * rate > 0).all()  # E increases for V = I, decreases for V = −I ((3.6), Lemma 3.7)


@pytest.mark.parametrize("name", ["SA", "USA", "SA_repulsive", "SA_beta0"])
def test_energy_rate_equals_finite_difference_along_the_flow(name):
    """d/dt E(X(t)) at t = 0 by a central difference along the geodesic in the direction of ẋ."""
    kw = RATE_CASES[name]
    x = sphere(B, N, D, seed=16)
    m = Model(**kw)
    v = velocity(x, m)
    h = 1e-4
    fd = (energy(exp_map(x, v, h), m) - energy(exp_map(x, v, -h), m)) / (2 * h)
    assert rel(energy_rate(x, m), fd) <= 1e-6


@pytest.mark.parametrize("beta", [2.0, 50.0, 1e3])
def test_energy_rate_in_exp_beta_time(beta):
    """USA in s = e^β t: energy_rate returns dĒ/ds = ⟨∇Ē, dX/ds⟩ (Ē = energy_normalized)."""
    spread = 3 / math.sqrt(beta)  # keep the points within a few 1/√β so that the rate is not 0
    x = sphere(B, 1, D, seed=17) + spread * gauss(B, N, D, seed=18) / math.sqrt(D)
    x = x / x.norm(dim=-1, keepdim=True)
    m = Model(beta=beta, normalization="uniform", time_scale="exp_beta")
    rate = energy_rate(x, m)
    expect, size = autograd_rate(x, m, energy_normalized)
    assert float(size.max()) > 1e-6
    assert float((rate - expect).abs().max()) <= 1e-12 * float(size.max())
    if beta <= 50:  # the same in original time: dĒ/ds = e^{−β} (2β/e^β) dE/dt
        orig = energy_rate(x, Model(beta=beta, normalization="uniform"))
        assert rel(rate, orig * 2 * beta * math.exp(-2 * beta)) <= 1e-12


# ---------------------------------------------------------------------------------------------------
# gradient-flow structure


@pytest.mark.parametrize("beta", [0.5, 2.0, 8.0])
def test_usa_is_n_times_the_riemannian_gradient(beta):
    """(3.11) of the paper: Ẋ = n ∇E_β(X) in the product metric; ∇ = P⊥ of the Euclidean gradient (autograd)."""
    x = sphere(B, N, D, seed=19)
    xx = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy(xx, beta).sum(), xx)
    riem = grad - (grad * x).sum(-1, keepdim=True) * x
    v = velocity(x, Model(beta=beta, normalization="uniform"))
    assert rel(N * riem, v) <= 1e-13
    # SA is not this gradient (different metric): the same check fails for it
    assert rel(N * riem, velocity(x, Model(beta=beta))) > 1e-3


@pytest.mark.parametrize("beta", [0.5, 4.0])
def test_usa_gradient_by_finite_differences(beta):
    """DE_β(X)[u] = (1/n) Σ_i ⟨ẋ_i, u_i⟩ for random tangent u, by central differences along Exp_X(hu)."""
    x = sphere(B, N, D, seed=20)
    v = velocity(x, Model(beta=beta, normalization="uniform"))
    for seed in (21, 22):
        u = random_tangent(x, seed)
        h = 1e-4
        fd = (energy(exp_map(x, u, h), beta) - energy(exp_map(x, u, -h), beta)) / (2 * h)
        assert rel(fd, (v * u).sum((1, 2)) / N) <= 1e-6


def _sa_tilde_model(kind, beta):
    """SA with V = QᵀK symmetric ((3.12) of the paper), given either as QK = V = S or as Q = K = M, V = MᵀM."""
    if kind == "QK":
        S = gauss(D, D, seed=23, scale=0.6)
        S = S + S.T
        return Model(beta=beta, QK=S, V=S), S
    M = gauss(D + 1, D, seed=24, scale=0.5)  # k = d + 1 ≠ d
    return Model(beta=beta, Q=M, K=M, V=M.T @ M), M.T @ M


@pytest.mark.parametrize("kind", ["QK", "QandK"])
@pytest.mark.parametrize("beta", [0.5, 3.0])
def test_sa_is_a_gradient_flow_in_the_z_weighted_metric(kind, beta):
    """Σ_i Z_i ⟨ẋ_i, u_i⟩ = DẼ_β(X)[u] for random tangent u, Z_i = Σ_j e^{β⟨V x_i, x_j⟩} (3.12)."""
    model, S = _sa_tilde_model(kind, beta)
    x = sphere(B, N, D, seed=25)
    v = velocity(x, model)
    z = torch.exp(beta * x @ S @ x.transpose(1, 2)).sum(-1)  # S symmetric: ⟨S x_i, x_j⟩ = x_iᵀ S x_j
    xx = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy_tilde(xx, model).sum(), xx)
    for seed in (26, 27):
        u = random_tangent(x, seed)
        lhs = (z.unsqueeze(-1) * v * u).sum((1, 2))
        assert rel(lhs, (grad * u).sum((1, 2))) <= 1e-12
        h = 1e-4
        fd = (energy_tilde(exp_map(x, u, h), model) - energy_tilde(exp_map(x, u, -h), model)) / (2 * h)
        assert rel(lhs, fd) <= 1e-6
    # and the rate: energy_rate(which="tilde") = DẼ_β[ẋ] = Σ_i Z_i |ẋ_i|²
    rate = energy_rate(x, model, which="tilde")
    assert rel(rate, (grad * v).sum((1, 2))) <= 1e-12
    assert (rate > 0).all()


# ---------------------------------------------------------------------------------------------------
# refusals


@pytest.mark.parametrize(
    "call, word",
    [
        (lambda x: energy_rate(x, Model(heads=2, Q=gauss(2, 2, D, seed=1), K=gauss(2, 2, D, seed=2))), "head"),
        (lambda x: energy_rate(x, Model(mask=torch.zeros(N, N, dtype=torch.float64))), "mask"),
        (lambda x: energy_rate(x, Model(causal=True)), "mask"),
        (lambda x: energy_rate(x, Model(schedule=lambda t: {"V": torch.eye(D, dtype=torch.float64)})), "constant"),
        (lambda x: energy_rate(x, Model(QK=gauss(D, D, seed=3))), "which='tilde'"),
        (lambda x: energy_rate(x, Model(V=gauss(D, D, seed=3))), "which='tilde'"),
        (lambda x: energy_rate(x, Model(normalization="uniform"), which="tilde"), "softmax"),
        (lambda x: energy_rate(x, Model(V=gauss(D, D, seed=4), QK=gauss(D, D, seed=4)), which="tilde"), "symmetric"),
        (lambda x: energy_rate(x, Model(), which="B"), "which"),
        (lambda x: log_energy(x, 0.0), "beta"),
        (lambda x: log_energy(x, Model(beta=[1.0, 0.0, 2.0])), "beta"),
        (lambda x: energy_tilde(x, 0.0), "beta"),
        (lambda x: energy_normalized(x, Model(heads=2, QK=gauss(2, D, D, seed=5))), "head"),
        (lambda x: log_energy(x, Model(heads=2, QK=gauss(2, D, D, seed=5))), "head"),
        (lambda x: energy_tilde(x, Model(heads=2, QK=gauss(2, D, D, seed=5))), "head"),
    ],
)
def test_refusals(call, word):
    x = sphere(B, N, D, seed=28)
    with pytest.raises(ValueError, match=re.escape(word)):
        call(x)


def test_energy_refuses_multi_head():
    x = sphere(2, N, D, seed=29)
    m = Model(heads=2, Q=gauss(2, 2, D, seed=30), K=gauss(2, 2, D, seed=31))  # H = 2 = B
    with pytest.raises(ValueError, match="head"):
        energy(x, m)


@pytest.mark.parametrize("kind", ["mask", "causal"])
def test_energy_and_log_energy_agree_or_both_refuse(kind):
    x = sphere(B, N, D, seed=32)
    if kind == "mask":
        mask = torch.zeros(N, N, dtype=torch.float64)
        mask[1, 2] = -math.inf
        m = Model(beta=2.0, mask=mask)
    else:
        m = Model(beta=2.0, causal=True)
    try:
        e = energy(x, m)
    except ValueError:
        with pytest.raises(ValueError):
            log_energy(x, m)
        return
    assert rel(torch.exp(log_energy(x, m)), e) <= 1e-13


@pytest.mark.parametrize("kind", ["V_sym_QK_identity", "V_repulsive"])
def test_energy_rate_tilde_refuses_V_not_equal_QK(kind):
    x = sphere(B, N, D, seed=33)
    if kind == "V_repulsive":
        m = Model(beta=1.0, V="repulsive")  # V = −I but QᵀK = I
    else:
        S = gauss(D, D, seed=34)
        m = Model(beta=1.0, V=S + S.T)  # V symmetric, QᵀK = I
    with pytest.raises(ValueError, match="QK|QᵀK"):
        energy_rate(x, m, which="tilde")


# ---------------------------------------------------------------------------------------------------
# Proposition 3.4: σ_d is the unique minimiser, so every n-point configuration has E_β > E_β[σ_d]


@pytest.mark.parametrize("n", [3, 5, 12])
@pytest.mark.parametrize("beta", [0.5, 2.0, 10.0, 40.0])
def test_regular_polygon_energy_bessel_closed_form(n, beta):
    """Regular n-gon: E_β = (1/(2βn)) Σ_k e^{β cos(2πk/n)} = (1/(2β)) Σ_{m∈Z} I_{mn}(β) (Bessel series)."""
    theta = 0.4 + 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    x = circle(theta)[None]
    m = np.arange(1, 60)
    expect = (scipy.special.iv(0, beta) + 2 * scipy.special.iv(m * n, beta).sum()) / (2 * beta)
    assert abs(float(energy(x, beta)[0]) / expect - 1) <= 1e-13 * max(1.0, beta)
    excess = scipy.special.iv(m * n, beta).sum() / beta  # E − I_0(β)/(2β) > 0
    if excess > 1e-12 * expect:  # resolvable in float64 (not for n = 12, β = 0.5: I_12(0.5) ≈ 1e-17)
        assert float(energy(x, beta)[0]) > scipy.special.iv(0, beta) / (2 * beta)


@pytest.mark.parametrize("beta", [0.5, 2.0, 10.0, 40.0])
def test_every_configuration_on_the_circle_beats_the_uniform_measure(beta):
    """E_β[σ_2] = (1/(2β)) ∬ e^{β cos(θ−θ')} = I_0(β)/(2β) < E_β(X) for every n-point X (Prop. 3.4)."""
    floor = scipy.special.iv(0, beta) / (2 * beta)
    g = torch.Generator().manual_seed(35)
    for n in (1, 2, 5, 50, 400):
        theta = 2 * math.pi * torch.rand(64, n, generator=g, dtype=torch.float64)
        e = energy(circle(theta), beta)
        assert (e > floor).all(), (n, float(e.min()), floor)
    # near-minimisers: equally spaced points, excess Σ_{m≥1} I_{mn}(β)/β → 0 as n grows
    theta = 2 * math.pi * torch.arange(200, dtype=torch.float64) / 200
    assert abs(float(energy(circle(theta)[None], beta)[0]) / floor - 1) <= 1e-13 * max(1.0, beta)


@pytest.mark.parametrize("beta", [0.5, 3.0, 20.0])
def test_sphere_configurations_beat_the_uniform_measure_d3(beta):
    """d = 3: ⟨x, y⟩ is uniform on [−1, 1] for independent uniform x, y, so E_β[σ_3] = sinh(β)/(2β²).
    The regular tetrahedron (⟨x_i, x_j⟩ = −1/3) has E = (4e^β + 12e^{−β/3})/(32β), above that floor."""
    floor = math.sinh(beta) / (2 * beta**2)
    tet = torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64) / math.sqrt(3)
    e_tet = float(energy(tet[None], beta)[0])
    assert abs(e_tet / ((4 * math.exp(beta) + 12 * math.exp(-beta / 3)) / (32 * beta)) - 1) <= 1e-13 * beta
    assert e_tet > floor
    for n in (2, 10, 300):
        e = energy(sphere(32, n, 3, seed=36 + n), beta)
        assert (e > floor).all()


# ---------------------------------------------------------------------------------------------------
# energies along a saved run


@pytest.mark.parametrize("kind, fn", [("normalized", energy_normalized), ("log", log_energy), ("energy", energy)])
def test_energy_over_time_is_the_energy_of_each_slice(kind, fn):
    """positions (T, B, n, d) → (T, B); a per-system β of shape (B,) is matched to the B axis."""
    T = 4
    pos = torch.stack([sphere(B, N, D, seed=40 + t) for t in range(T)])
    beta = torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64)
    out = energy_over_time(pos, Model(beta=beta), kind=kind)
    assert out.shape == (T, B)
    for t in range(T):
        for b in range(B):
            assert rel(out[t, b : b + 1], fn(pos[t, b : b + 1], float(beta[b]))) <= 1e-14
    assert rel(energy_over_time(pos, 2.0, kind=kind), torch.stack([fn(p, 2.0) for p in pos])) <= 1e-14


@pytest.mark.parametrize(
    "args, word",
    [((sphere(B, N, D, seed=1), 1.0), "positions"), ((sphere(1, N, D, seed=1)[None], 1.0, "tilde"), "kind")],
)
def test_energy_over_time_bad_input(args, word):
    with pytest.raises(ValueError, match=word):
        energy_over_time(*args)


def test_tilde_rate_refuses_fields_that_are_not_the_gradient_of_the_energy():
    """Σ_i Z_i |ẋ_i|² is dẼ/dt only along the plain SA flow; with a feed-forward term, a centred value term or
    the nGPT norm it is not (a central difference of Ẽ along the model's own velocity shows it)."""
    from tokensphere.feedforward import FeedForward

    x = sphere(1, 5, 3, seed=31)
    a = gauss(3, 3, seed=32)
    s = a @ a.T / 3  # V = QᵀK symmetric
    plain = Model(beta=1.3, QK=s, V=s)
    v, h = velocity(x, plain), 1e-6
    fd = (energy_tilde(x + h * v, plain) - energy_tilde(x - h * v, plain)) / (2 * h)
    assert float(energy_rate(x, plain, "tilde")) == pytest.approx(float(fd), rel=1e-7)
    ff = FeedForward(gauss(3, 4, seed=33), gauss(4, 3, seed=34), gauss(4, seed=35), activation="tanh")
    for kw in ({"feedforward": ff}, {"centered": True}, {"norm": "ngpt"}):
        with pytest.raises(ValueError, match="plain SA flow"):
            energy_rate(x, Model(beta=1.3, QK=s, V=s, **kw), "tilde")


def test_energy_over_time_matches_the_model_batch():
    positions = sphere(6, 4, 3, seed=36).reshape(3, 2, 4, 3)
    with pytest.raises(ValueError, match="B = 3 systems but positions have B = 2"):
        energy_over_time(positions, Model(beta=torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)))
    with pytest.raises(ValueError, match="B = 1|B = 2"):
        energy_over_time(sphere(6, 4, 3, seed=37).reshape(2, 3, 4, 3),
                         Model(beta=torch.tensor([1.0, 2.0], dtype=torch.float64)))
