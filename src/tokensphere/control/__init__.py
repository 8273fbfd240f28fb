"""Control and training of the particle system (the controls of §10 of the paper): differentiable simulation
with respect to β, Q(t), K(t), V(t) and the feed-forward weights of (2.8), by backpropagation through the
integrator (:func:`rollout`) or by the adjoint method (:func:`adjoint_gradients`); trainable time-dependent
parameters (:mod:`.params`); distances between point clouds (:mod:`.losses`); a training loop (:mod:`.train`).
"""

from .params import KEYS, Constant, Controls, ControlSchedule, Piecewise, Smooth, legendre
from .rollout import explicit_tableau, rollout, step_grid

__all__ = ["KEYS", "Constant", "Controls", "ControlSchedule", "Piecewise", "Smooth", "legendre", "explicit_tableau",
           "rollout", "step_grid"]

from .adjoint import adjoint_gradients  # noqa: E402

__all__ += ["adjoint_gradients"]

from .losses import matching_loss, mmd2, wasserstein2  # noqa: E402
from .train import fit  # noqa: E402

__all__ += ["fit", "matching_loss", "mmd2", "wasserstein2"]
