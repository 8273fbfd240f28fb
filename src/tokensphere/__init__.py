"""tokensphere: Transformers as interacting particles on the sphere.

Reference: Geshkovski, Letrouit, Polyanskiy, Rigollet, "A mathematical perspective on Transformers",
arXiv:2312.10794. The layers (docs/architecture.md): ``model`` (what the dynamics are) → ``field`` (the one
velocity kernel) → ``integrate`` (how to step) → ``simulate``/``trajectory`` (runs and their storage) →
``analysis``, ``sweep``, ``experiments`` → ``plot``, ``report`` → ``cli``.
"""

from .energy import energy, energy_normalized, energy_over_time, energy_rate, energy_tilde, log_energy
from .ensembles import Ensemble, RedrawSchedule  # (importing it registers the redraw schedule)
from .feedforward import FeedForward
from .field import attention, log_normalizer, plan, scores, tangent_project, velocity
from .init import (
    Cap,
    Equiangular,
    FromArray,
    FromFile,
    Hemisphere,
    OrthonormalFrame,
    Uniform,
    make_initial,
    normalize,
    sample_sphere,
)
from .integrate import (
    METHODS,
    Clustered,
    IntegrationError,
    SaveAt,
    Solver,
    SplitSolver,
    Stationary,
    StepController,
    anchor_solver,
    anchor_usa_step,
)
from .io import package_version
from .model import Layerwise, Model
from .runtime import choose_threads
from .schedule import Schedule
from .simulate import save_times, simulate
from .trajectory import Trajectory

__version__ = package_version()  # pyproject.toml's version, read from the installed package metadata

__all__ = [
    "FeedForward",
    "plan",
    "__version__",
    "Cap", "Clustered", "Ensemble", "Equiangular", "FromArray", "FromFile", "Hemisphere", "IntegrationError", "Layerwise",
    "METHODS", "Model", "OrthonormalFrame", "RedrawSchedule", "SaveAt", "Schedule", "Solver", "SplitSolver", "Stationary", "StepController", "Trajectory",
    "Uniform", "anchor_solver", "anchor_usa_step", "attention", "choose_threads", "energy", "energy_normalized",
    "energy_over_time", "energy_rate", "energy_tilde", "log_energy", "log_normalizer", "make_initial", "normalize",
    "sample_sphere", "save_times", "scores", "simulate", "tangent_project", "velocity",
]
