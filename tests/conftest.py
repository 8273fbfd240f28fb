"""Shared test settings: one torch thread (small batched ops run faster single-threaded and are immune to
CPU oversubscription on the 2-core CI machine), hypothesis profile."""

import os

import torch
from hypothesis import HealthCheck, settings

torch.set_num_threads(1)

settings.register_profile(
    "default", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
