"""tokensphere probe: real Transformers (tiny random BERT, ALBERT and GPT-2 checkpoints built here, and the shipped
MiniLM) through the CLI; the extracted attention against transformers' own attention probabilities; ALBERT's
depth extension against ALBERT itself; the discrete-layer simulation against its formula."""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from tokensphere.field import attention  # noqa: E402
from tokensphere.probe import (  # noqa: E402
    attention_model,
    deepened,
    hidden_states,
    inner_product_histograms,
    layer_weights,
    load_checkpoint,
    measured_radius,
    read_texts,
    simulate_layers,
)

from helpers import assert_one_line_error, invoke  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ("bert", "albert", "gpt2")
D, HEADS, LAYERS = 32, 2, 2
INIT = 0.3  # weight scale of the tiny models: attention far from uniform, so the attention test can fail
TEXT = "The harbour town wakes before the sun does, and the bakers have lit their ovens."


def _tokenizer(kind: str, out: Path) -> int:
    """A tiny tokenizer trained on the shipped corpus (WordPiece for BERT/ALBERT, byte-level BPE for GPT-2)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = read_texts()
    if kind == "gpt2":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    else:
        special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=200, special_tokens=special))
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[(s, tok.token_to_id(s)) for s in ("[CLS]", "[SEP]")])
        tok.decoder = decoders.WordPiece()
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                       cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(out)
    return len(fast)


def _build(kind: str, out: Path) -> Path:
    """A seeded random checkpoint of the family with 2 layers, d = 32, 2 heads, saved with its tokenizer."""
    from transformers import AlbertConfig, AlbertModel, BertConfig, BertModel, GPT2Config, GPT2Model

    vocab = _tokenizer(kind, out)
    torch.manual_seed(0)
    if kind == "bert":
        model = BertModel(BertConfig(vocab_size=vocab, hidden_size=D, num_hidden_layers=LAYERS,
                                     num_attention_heads=HEADS, intermediate_size=64, initializer_range=INIT))
    elif kind == "albert":
        model = AlbertModel(AlbertConfig(vocab_size=vocab, embedding_size=16, hidden_size=D,
                                         num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                         intermediate_size=64, initializer_range=INIT))
    else:  # ε of the layer norms made negligible: ln_1 outputs then have norm √d to round-off
        model = GPT2Model(GPT2Config(vocab_size=vocab, n_embd=D, n_layer=LAYERS, n_head=HEADS, n_positions=512,
                                     layer_norm_epsilon=1e-12, initializer_range=INIT, bos_token_id=0,
                                     eos_token_id=0))
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {kind: _build(kind, root / kind) for kind in FAMILIES}


@pytest.fixture(scope="module")
def loaded(checkpoints):
    return {kind: load_checkpoint(path) for kind, path in checkpoints.items()}


# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", FAMILIES)
def test_cli_end_to_end(kind, checkpoints, tmp_path):
    out = tmp_path / "out"
    res = invoke("probe", checkpoints[kind], "--out", out, "--max-tokens", 40, "--depth", 3, "--max-texts", 3)
    assert res.exit_code == 0, res.output
    for name in ("fig1_probe.png", "probe_statistics.png", "fig1_probe.json", "probe_positions.zarr"):
        assert (out / name).exists(), name
    data = json.loads((out / "fig1_probe.json").read_text())
    assert data["model"]["family"] == kind and data["depth"]["depth"] == 3
    assert len(data["texts"]) == 3
    for hist in (data["histograms"], data["histograms_simulated"]):
        assert len(hist["edges"]) == 4  # layers 0..3
        for t, text in enumerate(data["texts"]):
            n = text["n_tokens"]
            assert n == 40
            for ell, counts in enumerate(hist["counts"][t]):
                assert sum(counts) == n * (n - 1), (t, ell)
                assert len(counts) == len(hist["edges"][ell]) - 1
        edges = np.concatenate([np.asarray(e) for e in hist["edges"]])
        assert edges.min() >= -1.0 and edges.max() <= 1.0
    rows = data["comparison"]["mean"]
    assert len(rows) == 4 and rows[0]["token_cosine"] == pytest.approx(1.0)  # same start
    for key in ("real", "simulated"):
        for stats in data["statistics"][key]:
            assert all(-1.0 <= v <= 1.0 for v in stats["mean_inner_product"])
            assert all(1 <= c <= 40 for c in stats["cluster_count"])


@pytest.mark.parametrize("kind", FAMILIES)
def test_extracted_attention_reproduces_the_models_attention(kind, loaded):
    """output_attentions (transformers' own softmax) against tokensphere.attention with the extracted weights.

    Un-normalised inputs: the attention inputs y of every layer with radius 1 give the real scores
    ⟨W_Q y_i, W_K y_j⟩/√k exactly (Q/K biases are zero in these checkpoints, as after init). Normalised inputs:
    x = y/|y| with the default radius √d, for a layer whose input leaves a layer norm of unit gain and zero bias
    (BERT, GPT-2: layer 0; ALBERT: layer 1, its layer 0 reads the embedding map's output, not a layer norm)."""
    ck = loaded[kind]
    hidden = hidden_states(ck, TEXT)
    _, scale = measured_radius(hidden)
    if kind == "gpt2":  # pre-LN: the attention reads ln_1(h), of another norm than h
        assert (scale - 1).abs().min() > 0.1
    else:  # post-LN: the attention reads the residual stream itself
        torch.testing.assert_close(scale, torch.ones(LAYERS, dtype=torch.float64), rtol=0, atol=1e-15)
    real = hidden.attentions  # (L, H, n, n)
    n = real.shape[-1]
    assert (real - 1.0 / n).abs().max() > 0.05  # far from uniform: the comparison can fail
    w = layer_weights(ck)
    assert w["dropped_bias_norms"][:, :2].abs().max() == 0  # b_Q, b_K are zero: the scores are exact
    raw = attention_model(ck, radius=1.0, weights=w)
    for ell in range(LAYERS):
        a = attention(hidden.attention_inputs[ell][None], raw, t=ell + 0.5)[0]
        torch.testing.assert_close(a, real[ell], rtol=0, atol=1e-12)
    ell = 1 if kind == "albert" else 0
    y = hidden.attention_inputs[ell]
    torch.testing.assert_close(y.norm(dim=-1), torch.full((n,), math.sqrt(D), dtype=torch.float64),
                               rtol=1e-9, atol=0)
    unit = attention_model(ck, weights=w)  # radius √d
    a = attention((y / y.norm(dim=-1, keepdim=True))[None], unit, t=ell + 0.5)[0]
    torch.testing.assert_close(a, real[ell], rtol=0, atol=1e-9)
    assert (attention((y / y.norm(dim=-1, keepdim=True))[None], raw, t=ell + 0.5)[0] - real[ell]).abs().max() > 1e-3


def test_albert_depth_extension_is_albert_itself(loaded, checkpoints):
    """depth = trained: the model's own hidden states, bit for bit; depth 5: the same as ALBERT loaded with
    num_hidden_layers = 5 (its shared layer applied 5 times), and the first 3 states unchanged."""
    from transformers import AlbertModel

    ck = loaded["albert"]
    inputs = ck.tokenizer(TEXT, return_tensors="pt")
    with torch.no_grad():
        own = ck.model(**inputs, output_hidden_states=True).hidden_states
    same = hidden_states(ck, TEXT, depth=LAYERS)
    assert same.states.shape[0] == LAYERS + 1
    assert torch.equal(same.states, torch.stack([h[0] for h in own]))
    deep = hidden_states(ck, TEXT, depth=5)
    assert ck.config.num_hidden_layers == LAYERS  # restored
    assert torch.equal(deep.states[: LAYERS + 1], same.states)
    ref = AlbertModel.from_pretrained(checkpoints["albert"], num_hidden_layers=5, dtype=torch.float64,
                                      attn_implementation="eager").eval()
    with torch.no_grad():
        ref_states = ref(**inputs, output_hidden_states=True).hidden_states
    assert torch.equal(deep.states, torch.stack([h[0] for h in ref_states]))


def test_bert_depth_extension_repeats_the_last_layer(loaded):
    ck = loaded["bert"]
    deep = hidden_states(ck, TEXT, depth=4, repeat="last")
    assert len(ck.model.encoder.layer) == LAYERS  # restored
    trained = hidden_states(ck, TEXT)
    assert torch.equal(deep.states[: LAYERS + 1], trained.states)
    with torch.no_grad():  # layer 3 = the last trained layer applied to layer 2's output
        again = ck.model.encoder.layer[-1](deep.states[2][None])
    again = again[0] if isinstance(again, tuple) else again
    torch.testing.assert_close(deep.states[3], again[0], rtol=0, atol=1e-12)
    with deepened(ck, 5, "stack"):
        assert [id(m) for m in ck.model.encoder.layer] == [id(ck.model.encoder.layer[k % 2]) for k in range(5)]


def test_euler_dynamics_is_the_residual_layer_update(loaded):
    """dynamics 'euler': x_{ℓ+1} = (x + Σ_h Σ_j A^h_ij V_h x_j)/|·| with layer ℓ's weights, for each layer."""
    ck = loaded["bert"]
    hidden = hidden_states(ck, TEXT)
    model = attention_model(ck)
    xs = simulate_layers(model, hidden.unit[0], LAYERS, "euler")
    x = hidden.unit[0]
    w = layer_weights(ck)
    for ell in range(LAYERS):
        a = attention(x[None], model, t=ell + 0.5)[0]  # (H, n, n)
        x = x + torch.einsum("hij,hde,je->id", a, w["V"][ell], x)
        x = x / x.norm(dim=-1, keepdim=True)
        torch.testing.assert_close(xs[ell + 1], x, rtol=0, atol=1e-12)


def test_histograms_count_ordered_pairs_on_freedman_diaconis_bins():
    g = torch.Generator().manual_seed(3)
    states = [torch.randn(2, n, 5, generator=g, dtype=torch.float64) for n in (7, 11)]
    states = [s / s.norm(dim=-1, keepdim=True) for s in states]
    h = inner_product_histograms(states)
    for t, n in enumerate((7, 11)):
        assert [sum(c) for c in h["counts"][t]] == [n * (n - 1)] * 2
    pooled = np.concatenate([(s[0] @ s[0].T)[np.triu_indices(s.shape[1], 1)].numpy() for s in states])
    iqr = np.subtract(*np.percentile(pooled, [75, 25]))
    width = np.diff(h["edges"][0])
    assert width.max() <= 2 * iqr / len(pooled) ** (1 / 3) + 1e-12
    assert width[0] == pytest.approx(width[-1])
    assert h["edges"][0][0] == pytest.approx(pooled.min()) and h["edges"][0][-1] == pytest.approx(pooled.max())


@pytest.mark.parametrize("case, word", [
    ("missing", "does not exist"), ("not_model", "config.json"), ("family", "unsupported model_type"),
    ("empty_text", "text file is empty"),
    ("missing_text", "text file does not exist"), ("shallow", "depth"), ("repeat", "repeat"),
    ("dynamics", "dynamics"), ("delta", "delta"),
])
def test_bad_input_is_one_error_line(case, word, checkpoints, tmp_path):
    bert = checkpoints["bert"]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n   \n")
    roberta = tmp_path / "roberta"
    roberta.mkdir()
    (roberta / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    args = {
        "missing": [tmp_path / "nowhere"],
        "not_model": [tmp_path],
        "family": [roberta],
        "empty_text": [bert, "--text", empty],
        "missing_text": [bert, "--text", tmp_path / "none.txt"],
        "shallow": [bert, "--depth", 1],
        "repeat": [bert, "--depth", 3, "--repeat", "middle"],
        "dynamics": [bert, "--dynamics", "leapfrog"],
        "delta": [bert, "--delta", 0],
    }[case]
    res = invoke("probe", *args, "--out", tmp_path / "out", "--max-tokens", 8, "--max-texts", 1)
    assert_one_line_error(res, 2, word)


def test_minilm_short_text(tmp_path):
    """The shipped all-MiniLM-L6-v2 (BERT, 6 layers, d = 384, 12 heads) on a short text, end to end."""
    text = tmp_path / "short.txt"
    text.write_text(TEXT + "\n\nA second, shorter paragraph about rivers and tables.\n")
    res = invoke("probe", "--text", text, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "out" / "fig1_probe.json").read_text())
    assert data["model"]["d"] == 384 and data["model"]["heads"] == 12 and data["model"]["family"] == "bert"
    assert len(data["histograms"]["edges"]) == 7
    assert data["comparison"]["mean"][0]["w1"] == pytest.approx(0.0, abs=1e-12)
    n = data["texts"][0]["n_tokens"]
    assert [sum(c) for c in data["histograms"]["counts"][0]] == [n * (n - 1)] * 7


def test_example_script(tmp_path):
    spec = importlib.util.spec_from_file_location("probe_minilm", ROOT / "examples" / "probe_minilm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    data = mod.main(["--out", str(tmp_path / "ex"), "--max-tokens", "24", "--max-texts", "1"])
    assert (tmp_path / "ex" / "fig1_probe.png").exists() and data["depth"]["depth"] == 6


@pytest.mark.slow
def test_minilm_full_corpus_deepened(tmp_path):
    """The whole shipped corpus (4 paragraphs, the first over 300 tokens), MiniLM run to 12 layers."""
    res = invoke("probe", "--out", tmp_path / "out", "--depth", 12)
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "out" / "fig1_probe.json").read_text())
    assert max(t["n_tokens"] for t in data["texts"]) > 300
    assert len(data["comparison"]["mean"]) == 13


def test_value_scale_is_validated(loaded):
    ck = loaded["bert"]
    with pytest.raises(ValueError, match="value_scale must be a positive number or 2 positive numbers"):
        attention_model(ck, value_scale=torch.ones(3))
    with pytest.raises(ValueError, match="value_scale must be a positive"):
        attention_model(ck, value_scale=[-1.0, 1.0])
    m = attention_model(ck, value_scale=2.0)
    torch.testing.assert_close(m.schedule.stacks["V"], 2.0 * attention_model(ck).schedule.stacks["V"])


def test_read_texts_splits_on_blank_lines_holding_spaces(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("first paragraph\nstill first\n   \nsecond paragraph\n\t\nthird\n", encoding="utf-8")
    assert read_texts(p) == ["first paragraph still first", "second paragraph", "third"]
