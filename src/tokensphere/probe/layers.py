"""Where each family keeps its layers: the attention modules in the order they are applied, and depth extension.

Depth extension runs a model for ``depth`` layers instead of its trained L (the paper's 48-layer ALBERT run,
Figure 1, bottom row):

* ALBERT (``repeat`` ignored): its layer weights are shared, so running it deeper is the same model applied more
  times: ``config.num_hidden_layers = depth`` (ALBERT's own loop; with one hidden group, exactly what the paper
  did). With depth = L it is the model itself, bit for bit.
* BERT, GPT-2 (an experiment, **not** the paper's): the encoder's layer list is replaced by a longer one built
  from the same module objects: ``repeat="last"`` appends the last trained layer depth − L times,
  ``repeat="stack"`` cycles through the whole stack (layers 0, …, L−1, 0, 1, …).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

from ..validate import validate_choice, validate_int
from .load import Checkpoint

__all__ = ["REPEATS", "attention_modules", "deepened", "describe_depth", "layer_modules"]

REPEATS = ("last", "stack")


def layer_modules(ck: Checkpoint) -> list[nn.Module]:
    """The layer modules in the order the model applies them (length = the current depth).

    ALBERT: for layer i of ``num_hidden_layers``, its group's inner layers (ALBERT's group formula).
    """
    m = ck.model
    if ck.family == "bert":
        return list(m.encoder.layer)
    if ck.family == "gpt2":
        return list(m.h)
    cfg = ck.config
    groups = m.encoder.albert_layer_groups
    out: list[nn.Module] = []
    for i in range(cfg.num_hidden_layers):
        g = int(i / (cfg.num_hidden_layers / cfg.num_hidden_groups))
        out.extend(groups[g].albert_layers)
    return out


def attention_modules(ck: Checkpoint) -> list[nn.Module]:
    """The self-attention module of each applied layer, whose first input is the attention's input tokens y:
    BertSelfAttention (``attention.self``), AlbertAttention, GPT2Attention (after GPT-2's ``ln_1``)."""
    if ck.family == "bert":
        return [layer.attention.self for layer in layer_modules(ck)]
    if ck.family == "gpt2":
        return [block.attn for block in layer_modules(ck)]
    return [layer.attention for layer in layer_modules(ck)]


@contextmanager
def deepened(ck: Checkpoint, depth: int | None, repeat: str = "last") -> Iterator[Checkpoint]:
    """Run ``ck`` with ``depth`` applied layers inside the block (None or the trained depth: unchanged).

    Restores the checkpoint on exit. Raises ValueError naming ``depth`` (below the trained depth) or ``repeat``.
    """
    validate_choice("repeat", repeat, REPEATS)
    trained = ck.trained_depth
    if depth is None or depth == trained:
        yield ck
        return
    validate_int("depth", depth, minimum=trained)
    m = ck.model
    if ck.family == "albert":
        inner = int(ck.config.inner_group_num)
        if depth % inner:
            raise ValueError(f"depth must be a multiple of ALBERT's inner_group_num = {inner}, got {depth}")
        saved = ck.config.num_hidden_layers
        ck.config.num_hidden_layers = depth // inner
        try:
            yield ck
        finally:
            ck.config.num_hidden_layers = saved
        return
    owner, attr = (m.encoder, "layer") if ck.family == "bert" else (m, "h")
    trained_layers = list(getattr(owner, attr))
    extra = range(depth - trained)
    more = ([trained_layers[-1] for _ in extra] if repeat == "last"
            else [trained_layers[k % trained] for k in extra])
    setattr(owner, attr, nn.ModuleList(trained_layers + more))  # the same module objects, not copies
    try:
        yield ck
    finally:
        setattr(owner, attr, nn.ModuleList(trained_layers))


def describe_depth(ck: Checkpoint, depth: int, repeat: str) -> dict[str, Any]:
    """What depth extension did, for the output JSON."""
    trained = ck.trained_depth
    if depth == trained:
        how = "the model as trained"
    elif ck.family == "albert":
        how = "ALBERT's shared layer weights applied for more layers (exact: the paper's depth extension)"
    elif repeat == "last":
        how = f"layer {trained - 1} repeated {depth - trained} more times (an experiment, not the paper's)"
    else:
        how = "the whole trained stack cycled (an experiment, not the paper's)"
    return {"trained_depth": trained, "depth": depth, "repeat": repeat if ck.family != "albert" else "shared",
            "how": how}
