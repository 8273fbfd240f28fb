"""The mean-field limit on the circle (d = 2): the continuity equation (3.4) for SA (3.2) and USA (3.8), its
energy (3.5) and dissipation (3.6), the linear stability of the uniform state, Wasserstein distances between
particles and the PDE (Remark 3.3), and the BBGKY equation (8.1)."""

from .bbgky import BBGKYResidual, bbgky_residual, pair_difference_density
from .continuity import SCHEMES, MeanFieldSolution, resolution, solve_continuity
from .density import TrigonometricDensity
from .wasserstein import circle_wasserstein
from .stability import growth_rate, most_unstable_mode
from .kernel import (
    cell_centres,
    energy_dissipation,
    fourier_coefficients,
    mean_field_energy,
    mean_field_velocity,
    speed_bound,
)

__all__ = [
    "BBGKYResidual",
    "MeanFieldSolution",
    "SCHEMES",
    "TrigonometricDensity",
    "bbgky_residual",
    "cell_centres",
    "circle_wasserstein",
    "energy_dissipation",
    "fourier_coefficients",
    "growth_rate",
    "mean_field_energy",
    "mean_field_velocity",
    "most_unstable_mode",
    "pair_difference_density",
    "resolution",
    "solve_continuity",
    "speed_bound",
]
