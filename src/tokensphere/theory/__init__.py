"""Closed forms and reduced ODEs of the paper: equiangular dynamics and the Γ curve, τ*_β and g, Wendel."""

from .equiangular import gamma_closed_form_beta0, equiangular_rhs, gamma_curve, transition_curve
from .thresholds import g_function, tau_star, wendel_probability

__all__ = [
    "equiangular_rhs",
    "g_function",
    "gamma_closed_form_beta0",
    "gamma_curve",
    "tau_star",
    "transition_curve",
    "wendel_probability",
]
