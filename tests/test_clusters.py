"""Pair fraction and clusters as connected components of {⟨x_i, x_j⟩ > 1 − δ}, and the defect of the authors'
rank statistic.

Known answers are hand-built configurations on the circle and in R^3, and a breadth-first-search reference
on random configurations. Inner products of the hand-built points are far (≥ 1e-6) from the thresholds
1 − δ, so round-off (1e-16) cannot flip an edge, except in the one test built to sit exactly on it.
"""

import math
import warnings

import pytest
import torch

from tokensphere.analysis import (
    cluster_centers,
    cluster_count,
    cluster_labels,
    cluster_sizes,
    pair_fraction,
    pair_inner_products,
    rank_cluster_count,
    scale_aware_delta,
    span_dimension,
    threshold_stability,
)


def circle(*angles):
    t = torch.tensor(angles, dtype=torch.float64)
    return torch.stack([torch.cos(t), torch.sin(t)], dim=-1)


def bfs_components(x, delta):
    """Reference: labels = smallest index of the component of {⟨x_i, x_j⟩ > 1 − δ}, by breadth-first search."""
    g = (x @ x.T).tolist()
    n = len(g)
    labels = [-1] * n
    for s in range(n):
        if labels[s] >= 0:
            continue
        labels[s], queue = s, [s]
        while queue:
            i = queue.pop()
            for j in range(n):
                if labels[j] < 0 and g[i][j] > 1 - delta:
                    labels[j] = s
                    queue.append(j)
    return labels


def test_chain_is_one_component_although_the_thresholded_gram_has_rank_3():
    """The authors' rank statistic (phase-diagrams.py): tokens at 0, 0.01, 0.02 rad with δ = 1e-4: neighbours are linked (1 − cos 0.01 = 5e-5 < δ),
    the ends are not (1 − cos 0.02 = 2e-4 > δ). One cluster, but rank(1{Gram > 1 − δ}) = 3 — why the
    authors' rank statistic is not a cluster count."""
    x = circle(0.0, 0.01, 0.02)
    delta = 1e-4
    thresholded = (x @ x.T > 1 - delta).to(torch.float64)
    assert torch.equal(thresholded, torch.tensor([[1.0, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=torch.float64))
    assert int(torch.linalg.matrix_rank(thresholded)) == 3
    assert int(rank_cluster_count(x, 1 - delta)) == 3  # the authors' statistic, kept for the anchor preset
    assert int(cluster_count(x, delta)) == 1
    assert cluster_labels(x, delta).tolist() == [0, 0, 0]
    assert float(pair_fraction(x, delta)) == pytest.approx(4 / 6, abs=1e-15)  # 4 of 6 ordered pairs linked


def test_long_chain_in_scrambled_order_is_one_component():
    """A chain of 12 points visited in a scrambled order needs several propagation rounds."""
    order = [7, 2, 11, 0, 5, 9, 3, 10, 1, 8, 4, 6]
    x = circle(*[0.01 * k for k in order])
    assert int(cluster_count(x, 1e-4)) == 1
    assert cluster_labels(x, 1e-4).tolist() == [0] * 12
    assert float(pair_fraction(x, 1e-4)) == pytest.approx(2 * 11 / (12 * 11), abs=1e-15)  # only neighbours


def test_two_groups_and_singletons():
    # group A = {0, 2, 5} near angle 0, group B = {1, 4} near angle 2, singletons 3 (angle 4) and 6 (angle −2)
    x = circle(0.0, 2.0, 0.001, 4.0, 2.002, -0.0015, -2.0)
    delta = 1e-4  # within a group 1 − cos(≤ 0.0025) ≤ 3.2e-6; across groups ≥ 1 − cos 2
    assert cluster_labels(x, delta).tolist() == [0, 1, 0, 3, 1, 0, 6]
    assert int(cluster_count(x, delta)) == 4
    assert float(pair_fraction(x, delta)) == pytest.approx((3 * 2 + 2 * 1) / (7 * 6), abs=1e-15)
    # coarser: at δ = 1 − cos 0.5 the points at 4.0 and −2.0 (0.283 rad apart across 2π) join
    assert cluster_labels(x, 1 - math.cos(0.5)).tolist() == [0, 1, 0, 3, 1, 0, 3]
    # at δ = 1 − cos 2.1 every gap (≤ 2.0035 rad) is bridged: one cluster
    assert int(cluster_count(x, 1 - math.cos(2.1))) == 1
    assert cluster_labels(x, 1 - math.cos(2.1)).tolist() == [0] * 7


def test_all_distinct_and_all_equal():
    x = circle(*[2 * math.pi * k / 7 for k in range(7)])
    assert int(cluster_count(x, 1e-3)) == 7
    assert cluster_labels(x, 1e-3).tolist() == list(range(7))
    assert float(pair_fraction(x, 1e-3)) == 0.0
    y = circle(*[1.0] * 5)
    assert int(cluster_count(y, 1e-9)) == 1
    assert float(pair_fraction(y, 1e-9)) == 1.0


def test_threshold_is_strict():
    """⟨x, y⟩ = 0.6 exactly and 1 − δ = 0.6 exactly: not linked (the statistic uses > 1 − δ)."""
    x = torch.tensor([[1.0, 0.0], [0.6, 0.8]], dtype=torch.float64)
    assert float(x[0] @ x[1]) == 0.6 and 1 - 0.4 == 0.6
    assert float(pair_fraction(x, 0.4)) == 0.0 and int(cluster_count(x, 0.4)) == 2
    assert float(pair_fraction(x, 0.4 + 1e-12)) == 1.0 and int(cluster_count(x, 0.4 + 1e-12)) == 1


def test_delta_two_links_everything_but_antipodes():
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert int(cluster_count(x, 2.0)) == 1  # 0 – 2 – 1 through the orthogonal point
    assert float(pair_fraction(x, 2.0)) == pytest.approx(4 / 6, abs=1e-15)  # all but (0,1), (1,0)


def test_leading_batch_dimensions():
    """(T, B, n, d) is handled index by index: each slice equals the call on that slice."""
    chain = circle(0.0, 0.01, 0.02)
    groups = circle(0.0, 0.001, 2.0)
    apart = circle(0.0, 2.0, 4.0)
    x = torch.stack([torch.stack([chain, groups]), torch.stack([apart, chain])])  # (T=2, B=2, n=3, d=2)
    counts = cluster_count(x, 1e-4)
    assert counts.shape == (2, 2) and counts.tolist() == [[1, 2], [3, 1]]
    assert cluster_labels(x, 1e-4).tolist() == [[[0, 0, 0], [0, 0, 2]], [[0, 1, 2], [0, 0, 0]]]
    pf = pair_fraction(x, 1e-4)
    assert pf.shape == (2, 2)
    assert torch.allclose(pf, torch.tensor([[4 / 6, 2 / 6], [0.0, 4 / 6]], dtype=torch.float64), atol=1e-15)
    assert pf.dtype == torch.float64 and counts.dtype == torch.int64


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("d, delta", [(2, 0.02), (2, 0.2), (3, 0.1), (3, 0.5), (5, 0.8)])
def test_matches_breadth_first_search_on_random_points(seed, d, delta):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 25, d, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True)
    labels = cluster_labels(x, delta)
    for b in range(4):
        ref = bfs_components(x[b], delta)
        assert labels[b].tolist() == ref
        assert int(cluster_count(x[b], delta)) == len(set(ref))
        gram = x[b] @ x[b].T
        off = ~torch.eye(25, dtype=torch.bool)
        assert float(pair_fraction(x[b], delta)) == pytest.approx(float((gram[off] > 1 - delta).double().mean()))


def test_counts_are_permutation_invariant():
    g = torch.Generator().manual_seed(9)
    x = torch.randn(3, 30, 2, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True)
    perm = torch.randperm(30, generator=g)
    for delta in (0.01, 0.1, 0.5):
        assert torch.equal(cluster_count(x[:, perm], delta), cluster_count(x, delta))
        assert torch.allclose(pair_fraction(x[:, perm], delta), pair_fraction(x, delta), atol=1e-15)


@pytest.mark.parametrize("delta", [0.0, -1e-3, 2.0 + 1e-9, 3.0, math.nan, math.inf, "big"])
def test_invalid_delta_raises(delta):
    x = circle(0.0, 0.5, 1.0)
    for fn in (pair_fraction, cluster_labels, cluster_count):
        with pytest.raises(ValueError, match="delta"):
            fn(x, delta)


def test_pair_fraction_needs_two_tokens():
    with pytest.raises(ValueError, match="n >= 2"):
        pair_fraction(circle(0.3), 0.1)
    assert int(cluster_count(circle(0.3), 0.1)) == 1  # one token is one cluster


# ---------------------------------------------------------------------------------------------------
# the other statistics of the module


def test_cluster_sizes_and_centers():
    x = circle(0.0, 2.0, 0.001, 4.0, 2.002, -0.0015, -2.0)
    labels = cluster_labels(x, 1e-4)
    assert cluster_sizes(labels).tolist() == [3, 2, 1, 1, 0, 0, 0]
    centers = cluster_centers(x, labels)
    # group {0, 2, 5}: mean direction of angles 0, 0.001, −0.0015, computed from the angles
    a = torch.tensor([0.0, 0.001, -0.0015], dtype=torch.float64)
    phi = torch.atan2(torch.sin(a).sum(), torch.cos(a).sum())
    assert torch.allclose(centers[0], torch.stack([torch.cos(phi), torch.sin(phi)]), atol=1e-15)
    assert torch.allclose(centers[1], circle(2.001)[0], atol=1e-12)  # two points: the bisector
    assert torch.allclose(centers[3], x[3], atol=1e-15) and torch.allclose(centers[6], x[6], atol=1e-15)
    assert torch.isnan(centers[[2, 4, 5]]).all()  # slots that are nobody's label
    # batched: (T, B, n, d)
    xb = torch.stack([x, x.flip(0)])[None]
    lb = cluster_labels(xb, 1e-4)
    assert cluster_sizes(lb).shape == (1, 2, 7) and (cluster_sizes(lb)[..., :4] == torch.tensor([3, 2, 1, 1])).all()
    assert cluster_centers(xb, lb).shape == (1, 2, 7, 2)


def test_span_dimension_and_pair_inner_products():
    e = torch.eye(3, dtype=torch.float64)
    planar = torch.tensor([[1.0, 2.0, 0], [3, -1, 0], [-1, -1, 0], [0, 1, 0]], dtype=torch.float64)
    planar = planar / planar.norm(dim=-1, keepdim=True)
    consensus = e[:1].expand(4, 3)
    x = torch.stack([planar, consensus, torch.cat([e, e[:1]])])
    assert span_dimension(x).tolist() == [2, 1, 3]
    theta = torch.tensor([0.0, 0.5, 2.0, -1.0], dtype=torch.float64)
    p = pair_inner_products(circle(*theta.tolist()))
    i, j = torch.triu_indices(4, 4, offset=1)
    assert p.shape == (6,) and torch.allclose(p, torch.cos(theta[i] - theta[j]), atol=1e-15)


def test_threshold_stability_stacks_counts():
    x = circle(0.0, 2.0, 0.001, 4.0, 2.002, -0.0015, -2.0)
    deltas = [1e-4, 1 - math.cos(0.5), 1 - math.cos(2.1)]
    assert threshold_stability(x, deltas).tolist() == [4, 3, 1]
    xb = torch.stack([x, circle(*[0.0] * 7)])
    assert threshold_stability(xb, deltas).tolist() == [[4, 1], [3, 1], [1, 1]]


def test_scale_aware_delta_is_the_d2_root_for_every_d():
    """δ = 1 − cos(factor·τ*_β), β sin²τ* = cos τ* (d = 2, the peak of the pair force); large β: δ ≈ factor²/(2β)."""
    betas = torch.tensor([0.5, 4.0, 100.0, 1e4], dtype=torch.float64)
    delta = scale_aware_delta(betas, factor=1.0)
    assert delta.shape == (4,) and delta.dtype == torch.float64
    tau = torch.arccos(1 - delta)
    residual = betas * torch.sin(tau) ** 2 - torch.cos(tau)
    assert float(residual.abs().max()) <= 1e-8 * float(betas.max())
    assert abs(float(delta[-1]) / (1 / (2 * 1e4)) - 1) <= 1e-3
    # the pair force sin θ e^{β cos θ} peaks at τ*: its derivative (g of Figure 6) changes sign there
    for b, t in zip(betas.tolist(), tau.tolist()):
        force = lambda th: math.sin(th) * math.exp(b * (math.cos(th) - 1))  # noqa: E731
        assert force(t) >= max(force(t * (1 - 1e-4)), force(t * (1 + 1e-4)))
    half = scale_aware_delta(1e4, factor=0.5)
    assert abs(float(half) / float(delta[-1]) - 0.25) <= 1e-3  # δ ∝ factor² for small angles
    with pytest.raises(ValueError, match="factor"):
        scale_aware_delta(1.0, factor=0.0)


def test_scale_aware_delta_keeps_separated_clusters_apart_in_high_dimension():
    """d = 32, β = 4: two tight clusters 0.6 rad apart. The d-dependent root of Appendix B (√((d−1)/β)) links
    tokens up to τ*/2 ≈ 0.72 rad apart and merges them; the d = 2 scale (τ*/2 ≈ 0.24 rad) keeps two."""
    from tokensphere.theory import tau_star

    d, beta, sep = 32, 4.0, 0.6
    g = torch.Generator().manual_seed(0)
    e1, e2 = torch.eye(d, dtype=torch.float64)[:2]
    centres = [e1, math.cos(sep) * e1 + math.sin(sep) * e2]
    pts = torch.cat([c + 0.01 * torch.randn(8, d, generator=g, dtype=torch.float64) for c in centres])
    x = pts / pts.norm(dim=-1, keepdim=True)
    assert int(cluster_count(x, float(scale_aware_delta(beta)))) == 2
    old = 1 - math.cos(0.5 * tau_star(beta, d))  # the former, d-dependent threshold
    assert int(cluster_count(x, old)) == 1


def test_float32_thresholds_near_one_warn():
    """float32 precision: 1 − 1e-4 is only ~1700 float32 ulps below 1; float32 inner products carry O(d·eps) error."""
    x = circle(0.0, 0.01, 0.02).float()
    with pytest.warns(RuntimeWarning, match="float32"):
        pair_fraction(x, 1e-4)
    with pytest.warns(RuntimeWarning, match="float32"):
        cluster_labels(x, 1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pair_fraction(x.double(), 1e-4)  # float64: no warning
        pair_fraction(x, 0.1)  # a coarse float32 threshold: no warning


def test_pair_statistics_equals_the_separate_statistics():
    import tokensphere as ts
    from tokensphere.analysis import cluster_count, pair_fraction, pair_statistics

    x = ts.simulate(ts.Uniform(batch=16, n=12, d=2, seed=3), 6.0, t_max=4.0, save_at=5).positions
    f, c = pair_statistics(x, 1e-3)
    torch.testing.assert_close(f, pair_fraction(x, 1e-3), rtol=0, atol=0)
    assert torch.equal(c, cluster_count(x, 1e-3))


# ---------------------------------------------------------------------------------------------------------
# the chunked path (no n × n graph): same graph, same answers


def _clustered(seed, B, n, d, k, spread):
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(B, k, d, generator=g, dtype=torch.float64)
    lab = torch.randint(0, k, (B, n), generator=g)
    x = c.gather(1, lab[..., None].expand(B, n, d)) / c.norm(dim=-1, keepdim=True).gather(1, lab[..., None])
    x = x + spread * torch.randn(B, n, d, generator=g, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("seed", range(6))
def test_chunked_components_equal_the_dense_path_and_breadth_first_search(seed):
    """Random and clustered inputs, block sizes that cut clusters and windows at arbitrary places: the chunked
    labels and pair counts equal the dense path's and a breadth-first search's."""
    from tokensphere.analysis.clusters import _adjacency, _chunked_statistics, _fraction, _labels

    g = torch.Generator().manual_seed(100 + seed)
    n, d = int(torch.randint(2, 160, (), generator=g)), int(torch.randint(2, 7, (), generator=g))
    if seed % 2 == 0:
        x = torch.randn(3, n, d, generator=g, dtype=torch.float64)
        x = x / x.norm(dim=-1, keepdim=True)
    else:
        x = _clustered(seed, 3, n, d, k=1 + seed % 5, spread=0.02)
    for delta in (1e-3, 1e-2, 0.2):
        pairs, labels = _chunked_statistics(x, delta, True, row_block=7, col_block=5)
        adj = _adjacency(x, delta)
        assert torch.equal(labels, _labels(adj))
        assert torch.equal(pairs.to(x.dtype) / (n * (n - 1)), _fraction(adj, x.dtype))
        assert labels[0].tolist() == bfs_components(x[0], delta)


def test_large_n_takes_the_chunked_path_with_the_same_results():
    """Above CHUNKED_MIN_N the public functions never build the n × n graph (checked by forbidding the dense
    adjacency) and agree with it (computed here explicitly), on clustered points in d = 3."""
    from tokensphere.analysis import clusters as C

    n = C.CHUNKED_MIN_N + 53
    x = _clustered(7, 2, n, 3, k=40, spread=0.01)
    adj = C._adjacency(x, 1e-3)
    dense_labels, dense_fraction = C._labels(adj), C._fraction(adj, x.dtype)
    original = C._adjacency
    C._adjacency = None  # any call of the dense path would now fail
    try:
        labels = cluster_labels(x, 1e-3)
        f, c = C.pair_statistics(x, 1e-3)
        fraction = pair_fraction(x, 1e-3)
        count = cluster_count(x, 1e-3)
    finally:
        C._adjacency = original
    assert torch.equal(labels, dense_labels)
    assert torch.equal(f, dense_fraction) and torch.equal(fraction, dense_fraction)
    assert torch.equal(c, C._count(dense_labels)) and torch.equal(count, c)


def test_chunked_path_exact_answer_on_a_long_scrambled_chain():
    """2000 points 0.001 rad apart on an arc (δ = 1e-5 links neighbours up to 4 apart: 1 − cos 0.004 = 8e-6,
    1 − cos 0.005 = 1.25e-5) in scrambled order, plus 100 isolated points 0.03 rad apart: 101 clusters, the
    chain labelled by its smallest token index, 2·Σ_{k≤4}(2000 − k) = 15980 linked ordered pairs."""
    from tokensphere.analysis import clusters as C

    angles = torch.cat([0.001 * torch.arange(2000, dtype=torch.float64),
                        3.0 + 0.03 * torch.arange(100, dtype=torch.float64)])
    perm = torch.randperm(2100, generator=torch.Generator().manual_seed(0))
    x = torch.stack([torch.cos(angles[perm]), torch.sin(angles[perm])], dim=-1)
    assert x.shape[0] > C.CHUNKED_MIN_N
    labels = cluster_labels(x, 1e-5)
    chain = perm < 2000
    assert int(cluster_count(x, 1e-5)) == 101
    assert set(labels[chain].tolist()) == {int(torch.nonzero(chain)[0])}
    assert torch.equal(labels[~chain], torch.nonzero(~chain).reshape(-1))
    assert float(pair_fraction(x, 1e-5)) == pytest.approx(15980 / (2100 * 2099), rel=1e-12)


def test_large_n_example_quick_runs():
    """examples/large_n.py --quick: n above CHUNKED_MIN_N, an O(n)-memory kernel, tokens kept on the sphere,
    statistics from the chunked path equal to the dense path's on the final state."""
    import importlib.util
    from pathlib import Path

    from tokensphere.analysis import clusters as C

    path = Path(__file__).resolve().parent.parent / "examples" / "large_n.py"
    spec = importlib.util.spec_from_file_location("large_n", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.main(["--quick", "--dims", "3"])
    (r,) = rows
    assert r["n"] > C.CHUNKED_MIN_N and r["chunked"] and r["backend"] in ("symmetric", "sdpa", "streaming")
    assert r["unit_norm_error"] < 1e-12 and r["per_step"] > 0
    assert 1 <= r["clusters"][1] <= r["n"] and 0 <= r["fraction"][1] <= 1


def test_tokens_with_nan_are_their_own_clusters_on_both_paths():
    """A stored run holds NaN for a system's tokens after its terminal event: such a token links to none (its
    inner products are NaN) on the dense path; the chunked path must agree, not fail in its eigensolver."""
    from tokensphere.analysis import clusters as C

    for n in (C.CHUNKED_MIN_N, C.CHUNKED_MIN_N + 1):  # the dense path, then the chunked one
        x = _clustered(3, 1, n, 3, k=5, spread=0.01)
        x[0, :3] = float("nan")
        labels = cluster_labels(x, 1e-3)
        assert labels[0, :3].tolist() == [0, 1, 2]
        rest = cluster_labels(x[:, 3:], 1e-3) + 3  # the finite tokens alone, relabelled
        assert torch.equal(labels[0, 3:], rest[0])
        assert int(cluster_count(x, 1e-3)[0]) == 3 + int(cluster_count(x[:, 3:], 1e-3)[0])


def test_pair_fraction_in_half_precision_stays_in_range():
    """float16 holds counts only up to 65504: the fraction is formed in float64 and rounded once."""
    from tokensphere.analysis import clusters as C

    x = torch.zeros(1, C.CHUNKED_MIN_N, 3, dtype=torch.float16)
    x[..., 0] = 1  # one cluster: every pair linked
    assert float(pair_fraction(x, 1e-2)[0]) == 1.0


def test_scale_aware_delta_refuses_a_link_angle_beyond_pi():
    """δ = 1 − cos(factor·τ*) wraps around past π: a larger factor must never give a smaller δ silently."""
    assert float(scale_aware_delta(1e-3, 2.0)) > float(scale_aware_delta(1e-3, 1.0))
    with pytest.raises(ValueError, match="exceed π"):
        scale_aware_delta(1e-3, 4.0)


def test_cluster_functions_refuse_malformed_input():
    with pytest.raises(ValueError, match=r"shape \(\.\.\., n, d\)"):
        cluster_count(torch.ones(3, dtype=torch.float64), 0.1)
    with pytest.raises(ValueError, match=r"n >= 1"):
        cluster_count(torch.ones(2, 0, 3, dtype=torch.float64), 0.1)
    with pytest.raises(ValueError, match="at least one threshold"):
        threshold_stability(circle(0.0, 1.0)[None], [])
