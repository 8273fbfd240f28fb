"""The β × starts batch layout shared by every experiment that compares temperatures on the same starts.

System ``i·batch + k`` has β = betas[i] and starts from seeded start k of the initial-condition spec, so every
β sees the same initial states (start k is drawn from the stream (seed, k), whatever the batch size). The
helpers here build that batch and read it back: which β each system has, and which systems share a β.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from ..analysis import cluster_count
from ..model import Model

__all__ = ["BetaBatch", "beta_batch", "counts_by_beta", "group_by_beta", "system_betas", "systems_by_beta"]


class BetaBatch(NamedTuple):
    """x0: (len(betas)·batch, n, d) starts; beta: (len(betas)·batch,) float64; init: metadata of the starts."""

    x0: torch.Tensor
    beta: torch.Tensor
    init: dict[str, Any]


def beta_batch(spec: Any, betas: Sequence[float]) -> BetaBatch:
    """Every β of ``betas`` × every start of ``spec`` (an initial-condition spec: ``sample()`` gives the S starts
    (S, n, d), ``describe()`` its settings; e.g. :class:`~tokensphere.Uniform` or a start read from a file).

    Returns the starts (start k repeated once per β: (len(betas)·S, n, d)), the per-system β and the ``init``
    metadata to store with the run (the spec, marked as shared across β). Raises ValueError when ``betas`` is
    empty.
    """
    betas = [float(b) for b in betas]
    if not betas:
        raise ValueError("betas must list at least one value >= 0")
    starts = spec.sample()
    x0 = starts.repeat(len(betas), 1, 1)
    beta = torch.tensor(betas, dtype=torch.float64).repeat_interleave(starts.shape[0])
    return BetaBatch(x0, beta, {**spec.describe(), "shared_across_beta": True})


def system_betas(model: Model, systems: int) -> list[float]:
    """β of each of the B = ``systems`` systems run with ``model`` (a shared β is repeated): a list of B floats."""
    return [float(b) for b in model.beta_tensor().reshape(-1).expand(systems).tolist()]


def group_by_beta(values: Sequence[Any], betas: Sequence[float]) -> dict[float, list[Any]]:
    """Per-system values grouped by the systems' β: {β: [values of the systems with that β]}, the β in order of
    first appearance. values, betas: one entry per system (betas e.g. from :func:`system_betas`)."""
    if len(values) != len(betas):
        raise ValueError(f"values must have one entry per system ({len(betas)}), got {len(values)}")
    groups: dict[float, list[Any]] = {}
    for v, b in zip(values, betas):
        groups.setdefault(float(b), []).append(v)
    return groups


def systems_by_beta(betas: Sequence[float]) -> dict[float, list[int]]:
    """System indices grouped by β: {β: [systems]} (:func:`group_by_beta` of 0, 1, …, B − 1)."""
    return group_by_beta(range(len(betas)), betas)


def counts_by_beta(positions: torch.Tensor, betas: Sequence[float], delta: float) -> dict[float, list[int]]:
    """Cluster counts (:func:`~tokensphere.analysis.cluster_count`, threshold δ) of each system, grouped by β.

    positions: (B, n, d), e.g. ``Trajectory.final()``; betas: (B,) β per system. Returns {β: [count per system]}.
    """
    return group_by_beta([int(c) for c in cluster_count(positions, delta).tolist()], betas)
