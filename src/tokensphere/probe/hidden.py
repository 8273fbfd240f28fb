"""Hidden states of every layer of a real model, for one text, and the inputs its attention layers saw.

For a text of n tokens the model returns L + 1 hidden states (``output_hidden_states=True``): the input of
layer 0 (the embeddings; ALBERT: after its embedding-to-hidden map) and the output of each layer. Normalising
every token to unit norm puts the residual stream on S^{d−1}, the paper's particles (Figure 1).

GPT-2 returns its last hidden state after the final layer norm ``ln_f``; here the last entry is the residual
stream *before* ``ln_f`` instead (read with a hook), so that all L + 1 entries are the same kind of vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .layers import attention_modules, deepened
from .load import Checkpoint

__all__ = ["Hidden", "hidden_states", "tokenize"]


@dataclass(frozen=True)
class Hidden:
    """One text through one model.

    tokens : the n token strings. states : (L + 1, n, d) float64 hidden states as the model computed them.
    attention_inputs : (L, n, d) float64, what layer ℓ's attention multiplied by W_Q, W_K, W_V (BERT, ALBERT:
    the hidden state itself, post-LN; GPT-2: ``ln_1`` of it). attentions : (L, H, n, n) the real attention
    probabilities. depth : L, the number of applied layers (trained depth unless extended).
    """

    tokens: list[str]
    states: torch.Tensor
    attention_inputs: torch.Tensor
    attentions: torch.Tensor

    @property
    def depth(self) -> int:
        return self.states.shape[0] - 1

    @property
    def unit(self) -> torch.Tensor:
        """(L + 1, n, d): every token normalised to the unit sphere, x = h / |h|."""
        return self.states / torch.linalg.vector_norm(self.states, dim=-1, keepdim=True)


def tokenize(ck: Checkpoint, text: str, max_tokens: int | None = None) -> dict[str, torch.Tensor]:
    """The model inputs of one text (batch of 1), truncated to ``max_tokens`` (default the model's limit).

    Raises ValueError naming ``text`` when the text yields fewer than 2 tokens, ``max_tokens`` when below 2.
    """
    limit = ck.max_tokens if max_tokens is None else min(int(max_tokens), ck.max_tokens)
    if limit < 2:
        raise ValueError(f"max_tokens must be >= 2, got {max_tokens}")
    enc = ck.tokenizer(text, return_tensors="pt", truncation=True, max_length=limit)
    if enc["input_ids"].shape[1] < 2:
        raise ValueError(f"text must give at least 2 tokens, got {enc['input_ids'].shape[1]} from {text[:40]!r}")
    return {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def hidden_states(ck: Checkpoint, text: str, *, depth: int | None = None, repeat: str = "last",
                  max_tokens: int | None = None) -> Hidden:
    """Run one text through ``ck`` (optionally deepened to ``depth`` layers, see :func:`.layers.deepened`).

    Returns a :class:`Hidden` with states (L + 1, n, d), attention inputs (L, n, d), attentions (L, H, n, n).
    """
    inputs = tokenize(ck, text, max_tokens)
    captured: list[torch.Tensor] = []
    final: list[torch.Tensor] = []

    def grab(module, args, kwargs):
        captured.append((args[0] if args else kwargs["hidden_states"]).detach())

    with deepened(ck, depth, repeat):
        hooks = [m.register_forward_pre_hook(grab, with_kwargs=True) for m in set(attention_modules(ck))]
        if ck.family == "gpt2":
            hooks.append(ck.model.ln_f.register_forward_pre_hook(lambda m, args: final.append(args[0].detach())))
        try:
            with torch.no_grad():
                extra = {"use_cache": False} if ck.family == "gpt2" else {}
                out = ck.model(**inputs, output_hidden_states=True, output_attentions=True, **extra)
        finally:
            for h in hooks:
                h.remove()
    states = torch.stack([h[0] for h in out.hidden_states]).to(torch.float64)
    if final:
        states[-1] = final[0][0].to(torch.float64)
    ids = inputs["input_ids"][0].tolist()
    return Hidden(
        tokens=ck.tokenizer.convert_ids_to_tokens(ids),
        states=states,
        attention_inputs=torch.stack([c[0] for c in captured]).to(torch.float64),
        attentions=torch.stack([a[0] for a in out.attentions]).to(torch.float64),
    )
