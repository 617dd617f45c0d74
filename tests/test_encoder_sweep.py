"""Every text encoder type in transformers (a masked-LM model type with a base model), as QEFFAutoModel runs it: a
tiny random model's last hidden state through the exported graph equals transformers' on a padded batch of two
(real tokens, within 1e-4), and so do its sequence classifier's logits (QEFFAutoModelForSequenceClassification: a
cross-encoder) where the type has one, and its masked LM's logits (QEFFAutoModelForMaskedLM); or the type is refused
with the reason
(transform/encoder.UNSUPPORTED_ENCODERS). Types that are not text encoders are listed with what they take instead."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    MODEL_MAPPING_NAMES,
)

from benchmarks.arch_sweep import causal_lm_types
from QEfficient import QEFFAutoModel, QEFFAutoModelForMaskedLM, QEFFAutoModelForSequenceClassification
from QEfficient.transform.adapters.sweep_status import PROVEN
from QEfficient.transform.decoder_encoder import STATIC_KV_DECODERS
from QEfficient.transform.encoder import UNSUPPORTED_DECODER_CLASSIFIERS, UNSUPPORTED_ENCODERS, mean_pooling

# the generic shrink: each attribute is set only where the type's config has it
SHRINK = dict(
    vocab_size=320,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    head_dim=16,
    intermediate_size=96,
    max_position_embeddings=130,
    pad_token_id=0,
    embedding_size=64,
    d_model=64,
    n_layers=2,
    n_heads=4,
    dim=64,
    hidden_dim=96,
    global_attn_every_n_layers=1,
    local_attention=16,
)
# a text model in a nested config beside a vision tower that text inputs leave unused (ModernVBERT, UltraVBERT):
# both shrunk, three layers, the middle one of the other attention kind
_TINY_TEXT = dict(vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4)
_TINY_TEXT |= dict(pad_token_id=0, max_position_embeddings=130)
_TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
_FULL_SLIDING_FULL = ["full_attention", "sliding_attention", "full_attention"]
_SLIDING_FULL_SLIDING = ["sliding_attention", "full_attention", "sliding_attention"]
# what the generic shrink cannot express
PER_TYPE = {
    "reformer": dict(axial_pos_shape=[4, 8], axial_pos_embds_dim=[32, 32], max_position_embeddings=32),
    "luke": dict(entity_vocab_size=16, entity_emb_size=16),  # its 500k-entity table is unused by text inputs
    "longformer": dict(attention_window=[4, 8]),  # windows of 2 and 4 tokens either side: the sentences span several
    "neomme": dict(num_hidden_layers=4, sliding_window=4),  # per-layer windows: 4, its long one, 4, none
    "modernvbert": dict(
        text_config=_TINY_TEXT | dict(local_attention=16, layer_types=_FULL_SLIDING_FULL),
        vision_config=_TINY_VISION,
        image_token_id=300,
    ),
    "ultravbert": dict(
        text_config=_TINY_TEXT
        | dict(num_key_value_heads=2, head_dim=16, sliding_window=8, prediction_head_size=64, layer_types=_SLIDING_FULL_SLIDING),
        vision_config=_TINY_VISION,
        image_token_id=300,
    ),
}
# not text encoders, or not run by a tiny test: what they take instead
NOT_SWEPT = {
    "bart": "an encoder-decoder model (BartModel's output is its decoder's)",
    "mbart": "an encoder-decoder model",
    "mvp": "an encoder-decoder model",
    "funnel": "its config sets blocks, not layers (block_sizes): no tiny config here",
    "perceiver": "takes 'inputs' through its preprocessors, not input_ids",
    "xmod": "needs a language per input (set_default_language)",
}
TYPES = sorted(set(MODEL_FOR_MASKED_LM_MAPPING_NAMES) & set(MODEL_MAPPING_NAMES))
SENTENCES = ["My name is Ada", "The sun rises over the quiet sea every morning"]


CASES = (
    [(t, "base") for t in TYPES if t not in NOT_SWEPT]
    + [
        (t, "classifier")
        for t in TYPES
        if t not in NOT_SWEPT and t not in UNSUPPORTED_ENCODERS and t in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES
    ]
    + [(t, "masked_lm") for t in TYPES if t not in NOT_SWEPT and t not in UNSUPPORTED_ENCODERS]
)  # every type has one


@pytest.mark.parametrize("model_type, head", CASES)
def test_every_text_encoder_type_runs_as_transformers_or_is_refused(model_type, head, tmp_path, tokenizer_dir):
    defaults = AutoConfig.for_model(model_type)
    values = {k: v for k, v in SHRINK.items() if hasattr(defaults, k)} | PER_TYPE.get(model_type, {})
    config = AutoConfig.for_model(model_type, **values, num_labels=2)
    auto, qeff = {
        "base": (AutoModel, QEFFAutoModel),
        "classifier": (AutoModelForSequenceClassification, QEFFAutoModelForSequenceClassification),
        "masked_lm": (AutoModelForMaskedLM, QEFFAutoModelForMaskedLM),
    }[head]
    torch.manual_seed(0)
    with_no_zero_weights(auto.from_config(config)).save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.save_pretrained(tmp_path)
    if model_type in UNSUPPORTED_ENCODERS:
        with pytest.raises(ValueError, match=f"'{model_type}' is not supported as an encoder here"):
            qeff.from_pretrained(tmp_path)
        return
    assert_runs_as_transformers(auto, qeff, tmp_path, tokenizer, head)


def with_no_zero_weights(model):
    """``model`` with each all-zero tensor of its initialisation drawn at random (NeoMME's output and down
    projections start at zero, which leaves attention out of its output, and so its masks out of the comparison)."""
    with torch.no_grad():
        for weight in model.parameters():
            if not weight.any():
                weight.normal_(0, 0.2)
    return model


def assert_runs_as_transformers(auto, qeff, folder, tokenizer, head: str) -> None:
    """The compiled graph against transformers on a padded batch of two: a classifier's logits, or the hidden states (a
    masked LM's logits) of the real tokens (padding columns are not compared: transformers' differ by model), within
    1e-4. The graph is compiled longer than the input, as users compile it (zero columns past the input's: a model whose
    outputs read neighbouring columns runs at the input's own width)."""
    enc = tokenizer(SENTENCES, padding=True, return_tensors="np")
    hf = auto.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = hf(input_ids=torch.as_tensor(enc["input_ids"]), attention_mask=torch.as_tensor(enc["attention_mask"]))
    model = qeff.from_pretrained(folder)
    model.compile(seq_len=enc["input_ids"].shape[1] + 5, batch_size=2, num_cores=1)
    if head == "classifier":
        np.testing.assert_allclose(np.asarray(model.generate(dict(enc))["logits"]), expected.logits.numpy(), atol=1e-4, rtol=0)
        return
    real = enc["attention_mask"].astype(bool)
    if head == "masked_lm":  # every token's vocabulary logits
        got = model.generate(dict(enc))["logits"].numpy()
        np.testing.assert_allclose(got[real], expected.logits.numpy()[real], atol=1e-4, rtol=0)
        return
    np.testing.assert_allclose(model.generate(dict(enc))["output"][real], expected.last_hidden_state.numpy()[real], atol=1e-4, rtol=0)


def test_the_swept_types_are_every_text_encoder_type():
    """A type transformers adds shows up here: swept, or listed with a reason."""
    assert set(NOT_SWEPT) <= set(TYPES)
    assert set(UNSUPPORTED_ENCODERS) <= set(TYPES)


def test_a_graph_traced_without_the_attention_mask_is_refused(monkeypatch, tmp_path, tokenizer_dir):
    """MRA's attention is traced without the mask: the export says so instead of giving other outputs for padding."""
    import QEfficient.transform.encoder as encoder

    monkeypatch.setattr(encoder, "UNSUPPORTED_ENCODERS", {})  # past the table, to the check on the exported graph
    defaults = AutoConfig.for_model("mra")
    AutoModel.from_config(AutoConfig.for_model("mra", **{k: v for k, v in SHRINK.items() if hasattr(defaults, k)})).save_pretrained(
        tmp_path
    )
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="does not read the attention mask"):
        QEFFAutoModel.from_pretrained(tmp_path).compile(seq_len=8, num_cores=1)


# decoders with a sequence classifier (rerankers and classifiers built on causal LMs), as tests/tiny_models.py shrinks them
# (with the causal LMs transformers' mapping leaves out: mistral4)
DECODER_TYPES = sorted((set(MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES) & set(causal_lm_types())) - set(TYPES))
DECODERS_NOT_SWEPT = {
    **dict.fromkeys(("axk1", "deepseek_v2", "deepseek_v3", "minicpm3", "mistral4"), "transformers' own classifier fails on a padded batch"),
    **dict.fromkeys(("bigbird_pegasus", "plbart"), "an encoder-decoder model"),
    "qwen3_5": "a multimodal model (its text type, qwen3_5_text, is swept)",
    "gemma3": "a multimodal model (its text type, gemma3_text, is swept; its tiny vision tower takes minutes)",
}
# refused by the rule, not the table: no 'score' head, or attention transformers does not mark causal
NOT_LAST_TOKEN_HEADS = ("ctrl", "modernbert-decoder")


@pytest.mark.parametrize("model_type, head", [(t, h) for t in DECODER_TYPES if t not in DECODERS_NOT_SWEPT for h in ("classifier", "base")])
def test_every_decoder_classifier_type_scores_as_transformers_or_is_refused(model_type, head, tmp_path):
    """A decoder's sequence classifier reads the last real token of each row (padding on the right, with id 0), as
    transformers does with the padding id: logits within 1e-4; its base model (an embedding model's, pooled by the
    caller) gives transformers' hidden states on the real tokens; or either is refused with the reason. The types of
    decoder_encoder.STATIC_KV_DECODERS (mixture-of-experts, linear attention, Mamba layers, ...) run the causal-LM
    graph; the others transformers' own modules."""
    from tests.tiny_models import build_tokenizer, sweep_config

    config = sweep_config(model_type)
    config.num_labels, config.pad_token_id = 2, 0
    auto, qeff = (
        (AutoModelForSequenceClassification, QEFFAutoModelForSequenceClassification) if head == "classifier" else (AutoModel, QEFFAutoModel)
    )
    torch.manual_seed(0)
    with_no_zero_weights(auto.from_config(config)).save_pretrained(tmp_path)
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    if model_type in UNSUPPORTED_DECODER_CLASSIFIERS or (head == "classifier" and model_type in NOT_LAST_TOKEN_HEADS):
        with pytest.raises(
            ValueError, match="is not supported as a decoder's classifier or base model here|is not run as a classifier here"
        ):
            qeff.from_pretrained(tmp_path)
        return
    assert_runs_as_transformers(auto, qeff, tmp_path, tokenizer, head)


def test_decoders_run_through_the_causal_lm_graph_are_proven_causal_lms():
    """A decoder runs the causal-LM graph as a classifier or embedding model only where the architecture sweep proves
    that graph token-exact."""
    assert set(STATIC_KV_DECODERS) <= PROVEN
    assert not set(STATIC_KV_DECODERS) & set(UNSUPPORTED_DECODER_CLASSIFIERS)


@pytest.mark.parametrize("model_type", ["qwen3_next", "mixtral"])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_an_embedding_model_on_the_causal_lm_graph_equals_transformers(model_type, padding_side, tmp_path):
    """A hybrid (linear attention) and a mixture-of-experts decoder as embedding models, at two compiled lengths, rows
    padded to the longer on either side (a recurrent layer scans from the first column, so rows padded on the left are
    realigned in the graph): mean-pooled in the graph, or the hidden states of the real tokens, within 1e-4 of
    transformers'."""
    from tests.tiny_models import build_tokenizer, sweep_config

    config = sweep_config(model_type)
    config.pad_token_id = 0
    torch.manual_seed(0)
    hf = AutoModel.from_config(config)
    with torch.no_grad():  # a padding token with an embedding of its own, as real checkpoints have (a tiny model's is 0)
        hf.get_input_embeddings().weight[0] = torch.randn(config.hidden_size)
    hf.save_pretrained(tmp_path)
    tokenizer = build_tokenizer()
    tokenizer.padding_side = padding_side
    tokenizer.save_pretrained(tmp_path)
    pooled = padding_side == "right"
    model = QEFFAutoModel.from_pretrained(tmp_path, pooling="mean" if pooled else None)
    assert model.model.static_kv is not None
    model.compile(seq_len=[8, 32], batch_size=3, num_cores=1)
    hf = AutoModel.from_pretrained(tmp_path).eval()
    for texts in (["a b", "c", "the sea"], ["My name is Ada", "The sun rises over the quiet sea every morning", "x"]):
        enc = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = hf(**enc).last_hidden_state
        got = model.generate({k: v.numpy() for k, v in enc.items()})["output"]
        if pooled:
            np.testing.assert_allclose(got, mean_pooling(hidden, enc["attention_mask"]).numpy(), atol=1e-4, rtol=0)
            continue
        real = enc["attention_mask"].numpy().astype(bool)
        np.testing.assert_allclose(got[:, : real.shape[1]][real], hidden.numpy()[real], atol=1e-4, rtol=0)


def test_a_bidirectional_gemma4_keeps_its_masks_by_layer_type(tmp_path, tokenizer_dir):
    """Gemma 4 as an embedding model (use_bidirectional_attention="all"): its config is heterogeneous for head_dim
    only, so its sliding window is one value and its masks stay keyed by layer type (as NeoMME's are not)."""
    config = AutoConfig.for_model(
        "gemma4_text",
        **{k: v for k, v in SHRINK.items() if k in ("vocab_size", "hidden_size", "intermediate_size", "head_dim", "pad_token_id")},
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
        use_bidirectional_attention="all",
        max_position_embeddings=130,
        vocab_size_per_layer_input=320,
        hidden_size_per_layer_input=16,
    )
    assert config.is_heterogeneous and "sliding_window" not in config.per_layer_attributes
    torch.manual_seed(0)
    with_no_zero_weights(AutoModel.from_config(config)).save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.save_pretrained(tmp_path)
    assert_runs_as_transformers(AutoModel, QEFFAutoModel, tmp_path, tokenizer, "base")
