"""Cluster-level dynamics for metastable time scales (Problem 1 of the paper): predicted merge times.

Once the tokens have collapsed into K tight clusters, the slow part of the dynamics (SA) is that of K
particles x_k with masses m_k (the cluster sizes): the softmax over all n tokens,

    ẋ_k = P⊥_{x_k} ( Σ_l m_l e^{β⟨x_k, x_l⟩} x_l / Σ_l m_l e^{β⟨x_k, x_l⟩} ),

is the same kernel with an additive score bias b_kl = log m_l (a mask that is finite everywhere), so
:func:`cluster_model` builds it as a plain :class:`~tokensphere.Model` and nothing new is integrated. The
fast intra-cluster contraction, which bounds an explicit solver's step on the full system for the whole
plateau (≈ 14,600 dopri5 steps to t = 18,000 at β = 9), is gone: the reduced system is integrated with steps
set by the slow inter-cluster motion. :func:`predicted_merge_time` integrates it until the cluster count
changes (:class:`~tokensphere.analysis.ClusterCountChanged`); ``tests/test_reduced.py`` validates it against
the full system where both can run.

Measured (β = 4, n = 12 on the circle, a two-cluster plateau of length ≈ 2000): the full system needs about
3,300 dopri5 steps to its merge, the cluster-level model a few dozen, and the merge times agree to 1e-4.
"""

from __future__ import annotations

import math

import torch

from ..analysis import ClusterCountChanged, cluster_centers, cluster_labels
from ..field import velocity
from ..integrate import SaveAt, Solver, integrate
from ..integrate.steps import retract
from ..model import Model
from ..validate import validate_real

__all__ = ["reduce_to_clusters", "cluster_model", "predicted_merge_time"]


def reduce_to_clusters(x: torch.Tensor, delta: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """The δ-clusters of one system as (centres (K, d), sizes (K,)) (connected components of
    ⟨x_i, x_j⟩ > 1 − δ; centres are the normalised means). x: (n, d) unit vectors."""
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d) (one system), got {tuple(x.shape)}")
    labels = cluster_labels(x, delta)
    centres = cluster_centers(x, labels)  # at the slot of each label, NaN at empty slots
    slots = torch.unique(labels)
    sizes = torch.bincount(labels, minlength=x.shape[0])[slots]
    return centres[slots], sizes.to(x.dtype)


def cluster_model(beta: float, sizes: torch.Tensor, normalization: str = "softmax") -> Model:
    """SA dynamics of K clusters with masses ``sizes`` (K,): scores β⟨x_k, x_l⟩ + log m_l (see the module
    docstring). Only SA: USA's 1/n would become 1/K, a change of time scale the caller would have to undo."""
    if normalization != "softmax":
        raise ValueError("normalization must be 'softmax' for the cluster-level model (USA rescales time by n/K)")
    if sizes.ndim != 1 or bool((sizes <= 0).any()):
        raise ValueError("sizes must be a 1-D tensor of positive cluster masses")
    log_m = torch.log(sizes.to(torch.float64))
    return Model(beta=beta, mask=log_m.expand(log_m.numel(), -1).clone())


def predicted_merge_time(x: torch.Tensor, beta: float, *, delta: float = 1e-3, t0: float = 0.0,
                         t_max: float = 1e6, rtol: float = 1e-8, atol: float = 1e-10) -> dict[str, float]:
    """When will the δ-clusters of the state ``x`` (n, d) at time t0 next change? Integrates the cluster-level
    model from the clusters of x until their count changes.

    The field is evaluated at the stage points put back on the sphere, v(y) = P⊥F(y/|y|): on the sphere it
    is the model's field (same solution, same order), and off it it is constant along rays, so the radial
    mode of P⊥F (eigenvalue ≈ −2, which caps an explicit step near 1.6 whatever the tolerance) is gone and
    the steps follow the slow inter-cluster motion.

    Returns {"time": absolute merge time (inf if none before t_max), "clusters": K, "steps": steps of the
    reduced run, "evaluations": field evaluations}. One system; SA.
    """
    t0 = validate_real("t0", t0)
    t_max = validate_real("t_max", t_max, minimum=t0, strict_minimum=True)
    centres, sizes = reduce_to_clusters(x, delta)
    K = centres.shape[0]
    if K < 2:
        return {"time": math.inf, "clusters": K, "steps": 0, "evaluations": 0}
    model = cluster_model(beta, sizes)

    def field(t: torch.Tensor, y: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        return velocity(retract(y), model)

    res = integrate(field, centres.unsqueeze(0), SaveAt(torch.tensor([0.0, t_max - t0], dtype=torch.float64),
                                                        store=False),
                    Solver("dopri5", rtol=rtol, atol=atol), events=[ClusterCountChanged(delta)])
    te = float(res.event_time[0])
    return {"time": t0 + te if math.isfinite(te) else math.inf, "clusters": K, "steps": int(res.steps[0]),
            "evaluations": res.evaluations}
