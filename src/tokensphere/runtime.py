"""Process-level settings: the number of torch threads.

Small batched kernels (n ≲ 100) are faster with one intra-op thread and much faster when the machine is
busy (threads of tiny kernels oversubscribe the cores); large ones gain from more. The library does not
change torch's global setting by itself; the CLI does (``--threads``, default 1) and so do the theorem checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .validate import check_int

__all__ = ["torch_threads"]


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads (None: leave the setting alone), then restore the old value."""
    if n is None:
        yield
        return
    check_int("threads", n, minimum=1)
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
