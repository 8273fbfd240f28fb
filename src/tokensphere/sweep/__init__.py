"""Sweeps over (d, β, seeds): random ensembles, phase diagrams, resumable zarr stores."""

from ..ensembles import SCORES, SHARING, VALUES, Ensemble, RedrawSchedule

__all__ = ["Ensemble", "RedrawSchedule", "SCORES", "SHARING", "VALUES"]
