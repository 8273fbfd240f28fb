"""Seeded control demonstrations (the controls of §10 of the paper): train time-dependent weights so that
the flow of (2.8) does a task, measured before and after training.

* :func:`transport_demo` — measure to measure: a cloud concentrated around the north pole of S² is steered to
  a two-lobed target measure (two caps on the equator); loss W₂² (exact optimal transport, POT).
* :func:`classify_demo` — classification by clustering: points of S² labelled "polar" (|x₃| > 1/2) or
  "equatorial" (|x₃| < 1/2) — two classes of equal area, not separable by a hyperplane — must end near two
  class poles ±e₁; loss (1/n) Σ_i (1 − ⟨x_i(T), p_{y_i}⟩); the prediction is the nearer pole. Accuracy is
  measured on a held-out cloud (a seeded train/test split) run as its own system.
* :func:`interpolate_demo` — n given points to n given targets; loss (1/n) Σ_i |x_i(T) − y_i|².

The model: ẋ_i = P⊥_{x_i}( Σ_j A_ij(t) V(t) x_j + w(t) σ(a(t) x_i + b(t)) ), SA with β = 1, the weights
piecewise constant on L layers (a discrete Transformer) or smooth in t (Legendre basis), integrated by
:func:`tokensphere.control.rollout` and trained by backpropagation through it (:func:`tokensphere.control.fit`).
Every random draw comes from a ``torch.Generator`` seeded by ``seed``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..control import Controls, Piecewise, Smooth, rollout
from ..control.losses import matching_loss, wasserstein2
from ..control.train import fit
from ..integrate.steps import retract
from ..runtime import choose_threads, torch_threads
from ..validate import validate_choice, validate_int

__all__ = ["ControlDemo", "DEMOS", "TASKS", "classify_demo", "gradient_check", "interpolate_demo", "required_accuracy",
           "run_demo", "transport_demo"]

D = 3  # S²: the figures show the sphere
T_MAX = 4.0  # final time (depth)
LAYERS = 4  # discrete Transformer layers (layer time T/L = 1)
STEPS_PER_LAYER = 1  # rk4 steps per layer (h = 1: one step per layer, as a Transformer)
WIDTH = 8  # hidden width p of the feed-forward layer
LR = {"transport": 0.03, "classify": 0.02, "interpolate": 0.03}  # Adam rates (cosine-decayed)
TASKS = ("transport", "classify", "interpolate")
DEFAULT_STEPS = {"transport": 60, "classify": 120, "interpolate": 200}
# stated success criteria (from the tasks' nature, not from observed values): see docs/control.md
REQUIRED_REDUCTION = {"transport": 2.0, "classify": 2.0, "interpolate": 10.0}
CHANCE = 0.5  # two classes of equal area


def required_accuracy(n_test: int) -> float:
    """chance + 3 binomial standard deviations of a coin-flip classifier on n_test points, 0.5 + 3·√(1/(4 n)):
    a random guess exceeds it with probability ≈ 0.1 %."""
    return CHANCE + 3.0 * (0.25 / n_test) ** 0.5


@dataclass
class ControlDemo:
    """One trained demonstration.

    task: the task name. losses: training losses (steps + 1). before / after: final positions x(T) with the
    initial and the trained weights, (n, d) (for classify: the held-out cloud). start: x(0), (n, d).
    target: the target cloud or points (n or m, d); labels: class labels (n,) for classify, else None.
    metrics: measured numbers (loss reduction, accuracy, ...). settings: the sizes and seed.
    """

    task: str
    losses: list[float]
    start: torch.Tensor
    before: torch.Tensor
    after: torch.Tensor
    target: torch.Tensor | None
    labels: torch.Tensor | None
    metrics: dict[str, Any]
    settings: dict[str, Any]
    paths: dict[str, torch.Tensor] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-able settings, metrics and the loss curve."""
        return {"task": self.task, "settings": self.settings, "metrics": self.metrics, "losses": self.losses}


def _cap(n: int, centre: torch.Tensor, spread: float, g: torch.Generator) -> torch.Tensor:
    """n points normalise(centre + spread·N(0, I)): a cap around the unit vector ``centre``, (n, d)."""
    return retract(centre + spread * torch.randn(n, centre.numel(), generator=g, dtype=torch.float64))


def _controls(g: torch.Generator, *, time_form: str, layers: int = LAYERS, value: float = 1.0) -> Controls:
    """V(t) and the feed-forward w(t), a(t), b(t), piecewise on L layers or smooth (Legendre, L coefficients).
    V starts at value·I (1: the paper's attractive (SA); 0: no motion); w at zero, so the untrained flow is
    pure attention; a, b random."""
    def make(shape, init=None, scale=1.0):
        if time_form == "piecewise":
            return Piecewise(layers, T_MAX, shape, init, generator=g, scale=scale)
        return Smooth(layers, T_MAX, shape, init, generator=g, scale=scale)

    parts = {"w": make((D, WIDTH), 0.0), "a": make((WIDTH, D), scale=1.0), "b": make((WIDTH,), scale=0.5)}
    parts["V"] = make((D, D), value * torch.eye(D, dtype=torch.float64))
    return Controls(parts, beta=1.0, activation="tanh")


def _run(controls: Controls, x: torch.Tensor) -> torch.Tensor:
    """x(T) of the cloud x (n, d) (one system), differentiable."""
    return rollout(x.unsqueeze(0), controls.model(), T_MAX, LAYERS * STEPS_PER_LAYER)[0]


def _finish(task, controls, losses, start, before, target, labels, metrics, settings, run_start) -> ControlDemo:
    with torch.no_grad():
        after = _run(controls, start)
    metrics = {"loss_before": losses[0], "loss_after": losses[-1],
               "reduction": losses[0] / max(losses[-1], 1e-300), "required_reduction": REQUIRED_REDUCTION[task],
               **metrics, "seconds": time.perf_counter() - run_start}
    return ControlDemo(task, losses, start, before, after, target, labels, metrics, settings)


def _settings(task: str, seed: int, steps: int, time_form: str, **extra: Any) -> dict[str, Any]:
    return {"task": task, "seed": seed, "training_steps": steps, "optimizer": f"Adam, lr {LR[task]:g}, cosine decay",
            "time_form": time_form, "d": D, "t_max": T_MAX, "layers": LAYERS,
            "integrator": f"rk4, {LAYERS * STEPS_PER_LAYER} steps", "feedforward_width": WIDTH, "activation": "tanh",
            "beta": 1.0, **extra}


def transport_demo(seed: int = 0, steps: int | None = None, *, n: int = 48, time_form: str = "piecewise",
                   progress: Callable[[int, float], None] | None = None) -> ControlDemo:
    """Steer a cap around e₃ (n points) to two caps around ±e₁ (n points); loss W₂² (exact OT)."""
    steps = DEFAULT_STEPS["transport"] if steps is None else steps
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    e = torch.eye(D, dtype=torch.float64)
    start = _cap(n, e[2], 0.3, g)
    target = torch.cat([_cap(n // 2, e[0], 0.2, g), _cap(n - n // 2, -e[0], 0.2, g)])
    controls = _controls(g, time_form=time_form)
    with torch.no_grad():
        before = _run(controls, start)
    losses = fit(controls, lambda: wasserstein2(_run(controls, start), target), steps, lr=LR["transport"],
                 progress=progress)
    settings = _settings("transport", seed, steps, time_form, n=n, loss="W2^2 (exact OT, POT ot.emd2)")
    return _finish("transport", controls, losses, start, before, target, None, {}, settings, t0)


def _poles() -> torch.Tensor:
    """The class poles p_0 = e₁ (equatorial), p_1 = −e₁ (polar), (2, d)."""
    e1 = torch.eye(D, dtype=torch.float64)[0]
    return torch.stack([e1, -e1])


def _labels(x: torch.Tensor) -> torch.Tensor:
    """1 for polar points (|x₃| > 1/2), 0 for equatorial ones: each class covers half of S² (Archimedes)."""
    return (x[:, 2].abs() > 0.5).long()


def _accuracy(x_final: torch.Tensor, labels: torch.Tensor) -> float:
    pred = (x_final @ _poles().T).argmax(-1)
    return float((pred == labels).double().mean())


def classify_demo(seed: int = 0, steps: int | None = None, *, n: int = 256, time_form: str = "piecewise",
                  value: float = 0.0, progress: Callable[[int, float], None] | None = None) -> ControlDemo:
    """Two classes (polar caps / equatorial band) of n uniform points, split half/half into train and
    held-out clouds (seeded); loss (1/n) Σ (1 − ⟨x_i(T), p_{y_i}⟩) on the training cloud."""
    steps = DEFAULT_STEPS["classify"] if steps is None else steps
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    pts = retract(torch.randn(n, D, generator=g, dtype=torch.float64))
    perm = torch.randperm(n, generator=g)
    train, test = pts[perm[: n // 2]], pts[perm[n // 2:]]
    y_train, y_test = _labels(train), _labels(test)
    poles = _poles()
    controls = _controls(g, time_form=time_form, value=value)

    def loss() -> torch.Tensor:
        return (1.0 - (_run(controls, train) * poles[y_train]).sum(-1)).mean()

    with torch.no_grad():
        before = _run(controls, test)
        acc_before = _accuracy(before, y_test)
    losses = fit(controls, loss, steps, lr=LR["classify"], progress=progress)
    with torch.no_grad():
        after_train = _run(controls, train)
    demo = _finish("classify", controls, losses, test, before, poles, y_test, {}, _settings(
        "classify", seed, steps, time_form, n_train=n // 2, n_test=n - n // 2,
        loss="mean 1 - <x_i(T), pole of class y_i>",
        classes="1: |x_3| > 1/2 (polar caps), 0: |x_3| < 1/2 (equatorial band)"), t0)
    after = demo.after
    sep = [float((after[y_test == c] @ poles[c]).mean()) for c in (0, 1)]
    demo.metrics.update(
        accuracy_before=acc_before, train_accuracy=_accuracy(after_train, y_train),
        test_accuracy=_accuracy(after, y_test), chance=CHANCE, required_accuracy=required_accuracy(n - n // 2),
        mean_cosine_to_class_pole={"equatorial": sep[0], "polar": sep[1]},
        test_class_counts={"equatorial": int((y_test == 0).sum()), "polar": int((y_test == 1).sum())},
    )
    return demo


def interpolate_demo(seed: int = 0, steps: int | None = None, *, n: int = 6, time_form: str = "piecewise",
                     progress: Callable[[int, float], None] | None = None) -> ControlDemo:
    """n uniform points to n uniform targets (matched by index); loss (1/n) Σ |x_i(T) − y_i|²."""
    steps = DEFAULT_STEPS["interpolate"] if steps is None else steps
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    start = retract(torch.randn(n, D, generator=g, dtype=torch.float64))
    target = retract(torch.randn(n, D, generator=g, dtype=torch.float64))
    # V = 0 at the start: (SA) with V = I would merge the n points into one cluster, a poor starting point for
    # sending them to n distinct targets
    controls = _controls(g, time_form=time_form, value=0.0)
    with torch.no_grad():
        before = _run(controls, start)
    losses = fit(controls, lambda: matching_loss(_run(controls, start), target), steps, lr=LR["interpolate"],
                  progress=progress)
    demo = _finish("interpolate", controls, losses, start, before, target, None, {}, _settings(
        "interpolate", seed, steps, time_form, n=n, loss="mean |x_i(T) - y_i|^2"), t0)
    ang = 2 * torch.arcsin((demo.after - target).norm(dim=-1).clamp(max=2.0) / 2)  # geodesic error, accurate near 0
    demo.metrics.update(max_angle_to_target_rad=float(ang.max()), mean_angle_to_target_rad=float(ang.mean()))
    return demo


DEMOS: dict[str, Callable[..., ControlDemo]] = {
    "transport": transport_demo, "classify": classify_demo, "interpolate": interpolate_demo,
}


def run_demo(task: str, seed: int = 0, steps: int | None = None, *, time_form: str = "piecewise",
             progress: Callable[[int, float], None] | None = None, threads: int | None = None) -> ControlDemo:
    """Run one of TASKS. steps: training steps (default DEFAULT_STEPS[task]). time_form: "piecewise" or
    "smooth". threads: torch threads for the run (default: the package's policy,
    :func:`tokensphere.runtime.choose_threads` — one thread for these systems of a few hundred tokens at most,
    which keeps a busy machine from slowing the many small operations of training several times over; the
    result is the same on 1 or 2 threads). Raises ValueError on an unknown task, form, a negative step count
    or threads < 1."""
    validate_choice("task", task, TASKS)
    validate_choice("time_form", time_form, ("piecewise", "smooth"))
    seed = validate_int("seed", seed, minimum=0, maximum=2**63 - 1)  # torch's generator takes a 64-bit seed
    if steps is not None:
        steps = validate_int("steps", steps, minimum=0)
    with torch_threads(choose_threads(256, threads)):
        return DEMOS[task](seed, steps, time_form=time_form, progress=progress)


def gradient_check(seed: int = 0, *, n: int = 5, steps: tuple[int, ...] = (8, 16, 32)) -> dict[str, Any]:
    """Measured accuracy of the two gradients on a small seeded problem (d = 3, T = 2, L = 4 piecewise layers of
    Q, K, V, w, a, b and a trainable β; loss Σ|x(T) − y|²).

    backprop: the largest relative error, over the parameters, of ⟨∇L, δ⟩ (random δ) against the five-point
    central difference with ε = 1e-4 (truth for the discrete scheme). adjoint: the relative difference
    |g_adjoint − g_backprop| / |g_backprop| at each step count, and the measured order between successive step
    counts, log(d_i/d_{i+1}) / log(k_{i+1}/k_i) (RK4: 4). Returns {"backprop_max_rel_error", "steps",
    "adjoint_rel_difference", "adjoint_order", "seconds"}. Raises ValueError unless the step counts increase.
    """
    from ..control import Constant, adjoint_gradients

    seed = validate_int("seed", seed, minimum=0, maximum=2**63 - 1)
    n = validate_int("n", n, minimum=2)
    steps = tuple(validate_int("steps", k, minimum=1) for k in steps)
    if len(steps) < 2 or any(k % 4 for k in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"steps must be at least two step counts, increasing, each a multiple of the 4 layers (for "
                         f"a measured order), got {steps}")
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    t_max, layers, width = 2.0, 4, 4
    parts = {k: Piecewise(layers, t_max, shape, generator=g, scale=0.5) for k, shape in
             (("Q", (D, D)), ("K", (D, D)), ("V", (D, D)), ("w", (D, width)), ("a", (width, D)))}
    parts["b"] = Constant((width,), generator=g, scale=0.5)
    controls = Controls(parts, beta=1.5, train_beta=True, activation="tanh")
    x0 = retract(torch.randn(1, n, D, generator=g, dtype=torch.float64))
    y = torch.randn(1, n, D, generator=g, dtype=torch.float64)
    params = list(controls.parameters())

    def loss_of(x: torch.Tensor) -> torch.Tensor:
        return (x - y).pow(2).sum()

    def loss(k: int) -> torch.Tensor:
        return loss_of(rollout(x0, controls.model(), t_max, k))

    loss(steps[0]).backward()
    worst, eps = 0.0, 1e-4
    for p in params:
        delta = torch.randn(p.shape, generator=g, dtype=torch.float64)
        vals = {}
        with torch.no_grad():
            for k in (-2, -1, 1, 2):
                p += k * eps * delta
                vals[k] = float(loss(steps[0]))
                p -= k * eps * delta
        fd = (8 * (vals[1] - vals[-1]) - (vals[2] - vals[-2])) / (12 * eps)
        worst = max(worst, abs(float((p.grad * delta).sum()) - fd) / max(abs(fd), 1e-300))
    diffs = []
    for k in steps:
        for p in params:
            p.grad = None
        loss(k).backward()
        bp = torch.cat([p.grad.reshape(-1) for p in params])
        _, grads, _ = adjoint_gradients(x0, controls.model, params, loss_of, t_max, k)
        ad = torch.cat([q.reshape(-1) for q in grads])
        diffs.append(float((ad - bp).norm() / bp.norm()))
    # the slope of log difference against log step: log(d_i/d_{i+1}) / log(k_{i+1}/k_i) (log₂ of the ratio only
    # when the step counts double)
    orders = [math.log(diffs[i] / diffs[i + 1]) / math.log(steps[i + 1] / steps[i]) for i in range(len(diffs) - 1)]
    return {"backprop_max_rel_error": worst, "steps": list(steps), "adjoint_rel_difference": diffs,
            "adjoint_order": orders, "seconds": time.perf_counter() - t0}
