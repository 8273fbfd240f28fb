"""Parameter sweeps: TOML configurations (:mod:`.config`), statistics at save times (:mod:`.statistics`), work units
(:mod:`.units`), the resumable zarr store (:mod:`.store`), Dask execution (:mod:`.runner`); the phase diagram of
Figures 3 and 5 is one sweep with a built-in configuration (:mod:`.phase`). Random ensembles live in
:mod:`tokensphere.ensembles` (re-exported here). Guide: docs/sweeps.md."""

from ..ensembles import SCORES, SHARING, VALUES, Ensemble, RedrawSchedule
from .config import SweepConfig, load_config, parse_config
from .runner import run_sweep

__all__ = ["Ensemble", "RedrawSchedule", "SCORES", "SHARING", "VALUES", "SweepConfig", "load_config", "parse_config",
           "run_sweep"]
