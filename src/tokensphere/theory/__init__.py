"""Closed forms and reduced ODEs of the paper: equiangular dynamics and the Γ curve, τ*_β and g, Wendel, the
regimes of Figure 2, the noise level that stops clustering (Problem 7). No simulations here: the theorem checks that simulate live in :mod:`tokensphere.experiments`."""

from .equiangular import equiangular_rhs, gamma_closed_form_beta0, gamma_curve, transition_curve
from .noise import uniform_stability_threshold
from .regimes import Regime, d_star_log10, large_beta_threshold_d2, regimes
from .thresholds import g_function, tau_star, uniform_pair_probability, wendel_probability

__all__ = [
    "Regime",
    "d_star_log10",
    "equiangular_rhs",
    "large_beta_threshold_d2",
    "regimes",
    "g_function",
    "gamma_closed_form_beta0",
    "gamma_curve",
    "tau_star",
    "transition_curve",
    "uniform_pair_probability",
    "uniform_stability_threshold",
    "wendel_probability",
]
