"""QEFFAutoModelForTextEncoding: transformers' AutoModelForTextEncoding (the text encoders of image and audio generators:
T5's, mT5's and UMT5's encoders, CLIP's text tower, BERT) as tiny random models: the last hidden state of a padded batch
equals transformers' within 1e-4 at the real tokens. CLIP's text tower makes its causal mask from the 2-D padding mask,
so QEFFAutoModel on a CLIPTextModel folder gives transformers' answer too."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForTextEncoding

from QEfficient import QEFFAutoModel, QEFFAutoModelForTextEncoding

SMALL = {
    "t5": dict(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2),
    "umt5": dict(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2),
    "mt5": dict(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2),
    "clip_text_model": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=40),
    "bert": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
}


@pytest.mark.parametrize("model_type", list(SMALL))
def test_text_encoders_equal_transformers(model_type, tmp_path):
    torch.manual_seed(0)
    hf = AutoModelForTextEncoding.from_config(AutoConfig.for_model(model_type, vocab_size=100, **SMALL[model_type])).eval()
    with torch.no_grad():
        for weight in hf.parameters():
            if weight.dim() > 1:
                weight.mul_(4.0)
    hf.save_pretrained(tmp_path)
    reference = AutoModelForTextEncoding.from_pretrained(tmp_path).eval()  # transformers' own, untouched
    ids = torch.randint(3, 100, (2, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()
    classes = [QEFFAutoModelForTextEncoding] + ([QEFFAutoModel] if model_type == "clip_text_model" else [])
    for qeff_class in classes:
        model = qeff_class.from_pretrained(tmp_path)
        assert type(model.hf_model).__name__ == type(reference).__name__  # T5's encoder alone, not T5Model
        model.compile(seq_len=[16], batch_size=2, num_cores=1)
        got = np.asarray(model.generate({"input_ids": ids, "attention_mask": mask})["output"])
        real = mask.numpy().astype(bool)
        np.testing.assert_allclose(got[real], expected[real], atol=1e-4 * max(1.0, np.abs(expected).max()), rtol=0)
    assert float(np.abs(expected[0] - expected[1]).max()) > 1e-2  # the tokens decide


def test_every_text_encoding_type_runs_or_is_refused(tmp_path):
    """A type of transformers' text-encoding mapping is tested here, swept as an encoder (tests/test_encoder_sweep.py),
    or refused saying why, before any weight is read."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES

    from QEfficient.transform.encoder import UNSUPPORTED_ENCODERS, UNSUPPORTED_TEXT_ENCODING
    from tests.test_encoder_sweep import TYPES

    assert set(MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES) <= set(SMALL) | set(TYPES) | set(UNSUPPORTED_TEXT_ENCODING) | set(
        UNSUPPORTED_ENCODERS
    )
    AutoConfig.for_model("t5gemma").save_pretrained(tmp_path)
    with pytest.raises(NotImplementedError, match="sliding-window"):
        QEFFAutoModelForTextEncoding.from_pretrained(tmp_path)
