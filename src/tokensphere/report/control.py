"""Report sections for control and training (the controls of §10 of the paper): the gradient check and the
three trained demonstrations of :mod:`tokensphere.experiments.control`, each with its figures, settings,
measured metrics and verdict rows. :func:`control_sections` runs everything (seconds to a minute on two cores)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..experiments.control import TASKS, ControlDemo, gradient_check, run_demo
from ..plot.control import clouds_figure, loss_figure
from .elements import Figure, Section, Verdict, png_bytes

__all__ = ["control_sections", "demo_section", "gradient_section"]

_TEXT = {
    "transport": "Measure-to-measure transport: n points concentrated around the north pole are steered to a "
    "two-lobed target measure (caps around ±e₁) by training V(t) and a feed-forward layer w(t) σ(a(t) x + b(t)) "
    "(2.8), piecewise constant on L layers; the loss is W₂² between the empirical measures (exact optimal "
    "transport). Untrained, the flow is the paper's (SA) with V = I and clusters the cloud at one point.",
    "classify": "Classification by clustering: uniform points of S² labelled polar (|x₃| > 1/2) or equatorial "
    "(|x₃| < 1/2) — two classes of equal area that no hyperplane through the origin separates — must end near "
    "two class poles ±e₁. Training uses one half of a seeded sample; the accuracy (nearer pole) is measured on "
    "the other half, run as its own system.",
    "interpolate": "Interpolation: n given points must reach n given targets at time T (loss (1/n) Σ |x_i(T) − y_i|²); "
    "V starts at 0, so the untrained flow does not move the points.",
}


def _number(v: Any) -> Any:
    return f"{v:.4g}" if isinstance(v, float) else v


def demo_section(demo: ControlDemo) -> Section:
    """One demonstration: loss curve, clouds before/after, settings and metrics, verdicts on the stated criteria."""
    m = demo.metrics
    verdicts = [Verdict(f"{demo.task}: training reduces the loss", f"÷{m['reduction']:.3g}",
                        f"÷ ≥ {m['required_reduction']:g}", m["reduction"] >= m["required_reduction"],
                        f"{m['loss_before']:.4g} → {m['loss_after']:.4g}, seed {demo.settings['seed']}")]
    if "test_accuracy" in m:
        verdicts.append(Verdict("classify: held-out accuracy above chance", f"{m['test_accuracy']:.3f}",
                                f"≥ {m['required_accuracy']:.3f} (chance {m['chance']:g} + 3 binomial s.d.)",
                                m["test_accuracy"] >= m["required_accuracy"],
                                f"untrained {m['accuracy_before']:.3f}, training set {m['train_accuracy']:.3f}"))
    figures = [Figure(data=png_bytes(loss_figure(demo.losses), dpi=90), caption="training loss"),
               Figure(data=png_bytes(clouds_figure(demo.task, demo.start, demo.before, demo.after, demo.target,
                                              demo.labels), dpi=90), caption="x(0), x(T) untrained, x(T) trained")]
    tables = {"settings": {k: _number(v) for k, v in demo.settings.items()},
              "measured": {k: _number(v) for k, v in m.items()}}
    return Section(f"Control: {demo.task}", _TEXT[demo.task] + f" Run time {m['seconds']:.1f} s.", figures=figures,
                   tables=tables, verdicts=verdicts)


def gradient_section(result: dict[str, Any]) -> Section:
    """The gradient check of :func:`tokensphere.experiments.control.gradient_check` as verdict rows."""
    diffs, orders = result["adjoint_rel_difference"], result["adjoint_order"]
    rows = [
        Verdict("backpropagation through RK4 = finite differences", f"{result['backprop_max_rel_error']:.2g}",
                "≤ 1e-6 (relative)", result["backprop_max_rel_error"] <= 1e-6,
                "β, Q(t), K(t), V(t), w(t), a(t), b; five-point central differences, ε = 1e-4, float64"),
        Verdict("adjoint → backprop at the order of RK4", f"order {orders[-1]:.2f}", "4 ± 0.5",
                abs(orders[-1] - 4.0) <= 0.5,
                "relative difference " + ", ".join(f"{d:.2g} ({k} steps)" for d, k in zip(diffs, result["steps"]))),
    ]
    return Section(
        "Control: gradients",
        "Gradients of a loss of x(T) with respect to β and time-dependent weights, by backpropagation through the "
        "integrator (the exact derivative of the discrete scheme) and by the adjoint method (the adjoint ODE "
        "integrated backward with vector–Jacobian products: the continuous gradient up to O(h⁴)). "
        f"Time {result['seconds']:.1f} s.",
        verdicts=rows,
    )


def control_sections(seed: int = 0, *, tasks: Sequence[str] = TASKS,
                     progress: Callable[[str], None] | None = None) -> list[Section]:
    """Run the gradient check and the demonstrations (default sizes, ``seed``) and return their sections."""
    if progress is not None:
        progress("gradients")
    out = [gradient_section(gradient_check(seed))]
    for task in tasks:
        if progress is not None:
            progress(task)
        out.append(demo_section(run_demo(task, seed)))
    return out
