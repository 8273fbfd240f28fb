"""tokensphere: Transformers as interacting particles on the sphere.

Reference: Geshkovski, Letrouit, Polyanskiy, Rigollet, "A mathematical perspective on Transformers",
arXiv:2312.10794. Layers: ``model`` (what the dynamics are) → ``field`` (the one velocity kernel) →
``integrate`` (how to step) → ``simulate``/``trajectory`` (runs and their storage) → ``cli``.
"""

from .io import package_version

__version__ = package_version()  # pyproject.toml's version, read from the installed package metadata

from .energy import energy, energy_normalized, energy_over_time, energy_rate, energy_tilde, log_energy  # noqa: E402
from .field import attention, log_normalizer, scores, tangent_project, velocity  # noqa: E402
from .init import (  # noqa: E402
    Cap,
    Equiangular,
    FromArray,
    Hemisphere,
    OrthonormalFrame,
    Uniform,
    make_initial,
    normalize,
    sample_sphere,
)
from .integrate import METHODS, Clustered, IntegrationError, Solver, anchor_solver, anchor_usa_step  # noqa: E402
from .model import Layerwise, Model  # noqa: E402
from .simulate import save_times, simulate  # noqa: E402
from .trajectory import Trajectory  # noqa: E402

__all__ = [
    "__version__",
    "Cap", "Clustered", "Equiangular", "FromArray", "Hemisphere", "IntegrationError", "Layerwise", "METHODS",
    "Model", "OrthonormalFrame", "Solver", "Trajectory", "Uniform", "anchor_solver", "anchor_usa_step",
    "attention", "energy", "energy_normalized", "energy_over_time", "energy_rate", "energy_tilde", "log_energy", "log_normalizer",
    "make_initial", "normalize", "sample_sphere", "save_times", "scores", "simulate", "tangent_project", "velocity",
]
