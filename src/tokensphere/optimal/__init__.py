"""Optimal point configurations: minimisers of E_β over n-point sets of S^{d−1} (the repulsive case V = −I, §9 of
the paper), their recognition (inner products, spherical designs, sharpness) and the known universally optimal
configurations (Cohn–Kumar 2007).

* :mod:`.optimize`: Riemannian L-BFGS on (S^{d−1})^n, batched over restarts, on log F_β = log(E_β − e^β/(2βn));
* :mod:`.search`: random restarts (free and antipodal) and basin hopping;
* :mod:`.designs`: inner-product distribution, Gegenbauer sums, design strength, sharpness, recognition;
* :mod:`.known`: simplex, cross-polytope, polygon, icosahedron, 600-cell, E8 roots with exact energies.
"""

from .designs import (Structure, describe, design_strength, design_sums, gegenbauer, inner_products, is_sharp,
                      match_known, normalized_gegenbauer)
from .known import KNOWN, Known, cross_polytope, known_for, polygon, simplex
from .optimize import (LBFGSResult, interaction_gradient, lbfgs, log_energy_from_interaction, log_energy_gradient,
                       log_interaction_energy, log_interaction_gradient, riemannian_gradient)
from .search import SYMMETRIES, SearchResult, search

__all__ = [
    "KNOWN", "Known", "LBFGSResult", "SYMMETRIES", "SearchResult", "Structure", "cross_polytope", "describe",
    "design_strength", "design_sums", "gegenbauer", "inner_products", "interaction_gradient", "is_sharp",
    "known_for", "lbfgs", "log_energy_from_interaction", "log_energy_gradient", "log_interaction_energy",
    "log_interaction_gradient", "match_known", "normalized_gegenbauer", "polygon", "riemannian_gradient", "search",
    "simplex",
]
