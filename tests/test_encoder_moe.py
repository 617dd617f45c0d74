"""OpenAI's privacy filter (``openai_privacy_filter``): a bidirectional encoder whose every layer attends within a window
of ``sliding_window`` tokens either side and whose MLPs are mixtures of experts (GPT-OSS's clamped SwiGLU, gate and up
concatenated). Its base model and token classifier (the checkpoint's head) as tiny random models (weights widened, a
window of 3 tokens over 12) equal transformers on a padded batch of two (real tokens, within 1e-4); each expert layer
is one ONNX Runtime MoE node, not transformers' loop over the experts a trace would freeze; the window decides."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification

from QEfficient import QEFFAutoModel, QEFFAutoModelForTokenClassification

CONFIG = dict(vocab_size=320, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16)
CONFIG |= dict(intermediate_size=96, max_position_embeddings=130, pad_token_id=0, eos_token_id=1, num_local_experts=4)
CONFIG |= dict(num_experts_per_tok=2, sliding_window=3, num_labels=5)
HEADS = {"base": (AutoModel, QEFFAutoModel), "tokens": (AutoModelForTokenClassification, QEFFAutoModelForTokenClassification)}


@pytest.mark.parametrize("head", list(HEADS))
def test_privacy_filter_equals_transformers(head, tmp_path):
    auto, qeff = HEADS[head]
    torch.manual_seed(0)
    model = auto.from_config(AutoConfig.for_model("openai_privacy_filter", **CONFIG))
    with torch.no_grad():  # widened, so that the routing and the window show in the outputs
        for weight in model.parameters():
            if weight.dim() > 1:
                weight.mul_(3.0)
    model.save_pretrained(tmp_path)
    hf = auto.from_pretrained(tmp_path).eval()
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 300, (2, 12), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask)
        hf.config.sliding_window = 12  # every token in sight: other outputs
        wide = hf(input_ids=ids, attention_mask=mask)
    name, field = ("output", "last_hidden_state") if head == "base" else ("logits", "logits")
    qeff_model = qeff.from_pretrained(tmp_path)
    qeff_model.compile(seq_len=16, batch_size=2, num_cores=1)  # longer than the input: padded columns
    got = np.asarray(qeff_model.generate({"input_ids": ids, "attention_mask": mask})[name])
    real = mask.numpy().astype(bool)
    reference = getattr(expected, field).numpy()
    np.testing.assert_allclose(got[real], reference[real], atol=1e-4, rtol=0)
    assert float(np.abs(getattr(wide, field).numpy()[real] - reference[real]).max()) > 1e-3  # the window decides
    nodes = [n.op_type for n in onnx.load(str(qeff_model.onnx_path), load_external_data=False).graph.node]
    assert nodes.count("MoE") == CONFIG["num_hidden_layers"]
