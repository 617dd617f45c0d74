"""DPR's question and passage encoders through QEFFAutoModel: each checkpoint loads as its own class (transformers'
AutoModel would load a passage encoder as a question encoder, its weights unread), and the graph returns its embedding
(transformers' pooler_output) [texts, hidden], equal within 1e-5 on a padded batch; DPRReader and pooling are refused
saying why."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import DPRConfig, DPRContextEncoder, DPRQuestionEncoder, DPRReader

from QEfficient import QEFFAutoModel
from tests.loopback import loopback_http

TINY = dict(vocab_size=320, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, projection_dim=16)


@pytest.mark.parametrize("encoder", [DPRQuestionEncoder, DPRContextEncoder])
def test_dpr_embeddings_equal_transformers(encoder, tmp_path):
    torch.manual_seed(0)
    hf = encoder(DPRConfig(**TINY)).eval()
    hf.save_pretrained(tmp_path)
    ids = torch.randint(5, 320, (2, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with torch.no_grad():
        expected = hf(input_ids=ids * mask, attention_mask=mask).pooler_output.numpy()
    model = QEFFAutoModel.from_pretrained(tmp_path)
    assert type(model.hf_model) is encoder
    model.compile(seq_len=16, batch_size=2, num_cores=1)
    got = model.generate({"input_ids": ids * mask, "attention_mask": mask})["output"]
    assert got.shape == (2, 16)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="without pooling"):
        QEFFAutoModel.from_pretrained(tmp_path, pooling="mean")


def test_dpr_reader_is_refused(tmp_path):
    DPRReader(DPRConfig(**TINY)).save_pretrained(tmp_path)
    with pytest.raises(NotImplementedError, match="DPRReader scores passages"):
        QEFFAutoModel.from_pretrained(tmp_path)


def test_serve_answers_dpr_embeddings(tmp_path, tokenizer_dir):
    from transformers import AutoTokenizer

    from QEfficient.cloud.serve import build_from_args
    from QEfficient.cloud.serve_args import parse_args
    from tests.helpers import serve_on_loopback

    torch.manual_seed(0)
    hf = DPRContextEncoder(DPRConfig(**TINY)).eval()
    hf.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp_path)
    app, runner = build_from_args(parse_args(["--model_name", str(tmp_path), "--num_cores", "1"]))  # found on its own
    try:
        with serve_on_loopback(app, log_level="critical") as url:
            # two texts of different lengths: padded in one batch, the graph's one vector per text is not pooled again
            answer = loopback_http.post(f"{url}/v1/embeddings", json={"input": ["a passage about the sea", "sea"]}, timeout=60)
    finally:
        runner.stop()
    assert answer.status_code == 200, answer.text
    for text, row in zip(["a passage about the sea", "sea"], answer.json()["data"], strict=True):
        got = np.array(row["embedding"])
        with torch.no_grad():
            expected = hf(**AutoTokenizer.from_pretrained(tmp_path)([text], return_tensors="pt")).pooler_output[0].numpy()
        assert float(got @ expected / np.linalg.norm(got) / np.linalg.norm(expected)) > 1 - 1e-6, text
