"""Document models (LayoutLM, LiLT, Bros, LayoutLMv3 with and without its page image): each token's box (bbox) is a
graph input, and LayoutLMv3's page image too. Tiny random models' outputs through the exported graph equal
transformers' on a padded batch of two with boxes (real tokens, within 1e-4) for their token classifiers, sequence
classifiers, QA heads (QEFFAutoModelForDocumentQuestionAnswering's too) and base models; the boxes decide; a document
artifact is refused by the servers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForDocumentQuestionAnswering,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from QEfficient import (
    QEFFAutoModel,
    QEFFAutoModelForDocumentQuestionAnswering,
    QEFFAutoModelForQuestionAnswering,
    QEFFAutoModelForSequenceClassification,
    QEFFAutoModelForTokenClassification,
)
from QEfficient.serving.encoder_artifact import is_encoder_artifact

_TEXT = dict(vocab_size=320, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96, pad_token_id=0)
_TEXT |= dict(max_position_embeddings=130)
_V3 = dict(_TEXT, coordinate_size=10, shape_size=12, rel_pos_bins=8, max_rel_pos=32, rel_2d_pos_bins=8, max_rel_2d_pos=64)
DOCUMENT_MODELS = {
    "layoutlm": ("layoutlm", _TEXT),
    "lilt": ("lilt", dict(_TEXT, hidden_size=48, channel_shrink_ratio=4)),  # its box embeddings: hidden_size / 6 each
    "bros": ("bros", _TEXT),
    "layoutlmv3-text": ("layoutlmv3", dict(_V3, visual_embed=False)),
    "layoutlmv3": ("layoutlmv3", dict(_V3, input_size=32, patch_size=16)),  # its page image: 4 patches
}
HEADS = {
    "tokens": (AutoModelForTokenClassification, QEFFAutoModelForTokenClassification),
    "sequence": (AutoModelForSequenceClassification, QEFFAutoModelForSequenceClassification),
    "qa": (AutoModelForQuestionAnswering, QEFFAutoModelForQuestionAnswering),
    "document-qa": (AutoModelForDocumentQuestionAnswering, QEFFAutoModelForDocumentQuestionAnswering),
    "base": (AutoModel, QEFFAutoModel),
}
CASES = [(name, "tokens") for name in DOCUMENT_MODELS]
CASES += [("layoutlm", "sequence"), ("layoutlmv3", "sequence"), ("lilt", "qa"), ("layoutlmv3", "qa"), ("bros", "base")]
CASES += [("layoutlmv3", "base"), ("layoutlm", "document-qa"), ("layoutlmv3", "document-qa")]


def _inputs(with_image: bool) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 320, (2, 9), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    corners = torch.randint(0, 1000, (2, 9, 2, 2), generator=generator)
    bbox = torch.sort(corners, dim=2).values.reshape(2, 9, 4)  # x0 <= x1, y0 <= y1
    inputs = {"input_ids": ids * mask, "attention_mask": mask, "bbox": bbox * mask[..., None]}
    if with_image:
        inputs["pixel_values"] = torch.rand(2, 3, 32, 32, generator=generator)
    return inputs


@pytest.mark.parametrize("name, head", CASES)
def test_document_models_equal_transformers(name, head, tmp_path):
    model_type, values = DOCUMENT_MODELS[name]
    auto, qeff = HEADS[head]
    torch.manual_seed(0)
    qa = head in ("qa", "document-qa")
    model = auto.from_config(AutoConfig.for_model(model_type, **values, num_labels=2 if qa else 3))
    with torch.no_grad():  # LiLT's layout stream and Bros' box projection start too small for the boxes to show
        for weight_name, weight in model.named_parameters():
            if any(part in weight_name for part in ("layout_query", "layout_key", "box_linear", "bbox_projection")):
                weight.mul_(100.0)
    model.save_pretrained(tmp_path)
    hf = auto.from_pretrained(tmp_path).eval()
    inputs = _inputs(name == "layoutlmv3")
    if model_type == "bros":  # its boxes are fractions of the page
        inputs["bbox"] = inputs["bbox"] / 1000.0
    with torch.no_grad():
        expected = hf(**inputs)
        moved = hf(**{**inputs, "bbox": inputs["bbox"].flip(1)})
    model = qeff.from_pretrained(tmp_path)
    model.compile(seq_len=16, batch_size=2, num_cores=1)  # longer than the input: padded columns
    got = model.generate(inputs)
    real = inputs["attention_mask"].numpy().astype(bool)
    if qa:
        pairs = [(got["start_logits"], expected.start_logits), (got["end_logits"], expected.end_logits)]
    elif head == "base":
        pairs = [(got["output"], expected.last_hidden_state)]
    else:
        pairs = [(got["logits"], expected.logits)]
    for ours, theirs in pairs:
        ours, theirs = np.asarray(ours), theirs.numpy()
        assert ours.shape == theirs.shape
        if head == "sequence":
            np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)
            continue
        text = real.shape[1]  # the text tokens' outputs; LayoutLMv3's QA head and base model also its image patches after them
        np.testing.assert_allclose(ours[:, :text][real], theirs[:, :text][real], atol=1e-4, rtol=0)
        np.testing.assert_allclose(ours[:, text:], theirs[:, text:], atol=1e-4, rtol=0)
    theirs_moved = (moved.start_logits if qa else moved.last_hidden_state if head == "base" else moved.logits).numpy()
    assert float(np.abs(theirs_moved - pairs[0][1].numpy()).max()) > 1e-3  # the boxes decide
    if head == "tokens" and name == "layoutlm":
        assert not is_encoder_artifact_servable(model.qpc_path)


def is_encoder_artifact_servable(qpc_path) -> bool:
    import json

    qconfig = json.loads((qpc_path / "qconfig.json").read_text())
    with pytest.raises(ValueError, match="document model's artifact"):
        is_encoder_artifact(qconfig)
    return False


def test_document_inputs_are_checked(tmp_path):
    torch.manual_seed(0)
    AutoModelForTokenClassification.from_config(AutoConfig.for_model("layoutlmv3", **DOCUMENT_MODELS["layoutlmv3"][1])).save_pretrained(
        tmp_path
    )
    model = QEFFAutoModelForTokenClassification.from_pretrained(tmp_path)
    inputs = _inputs(True)
    with pytest.raises(ValueError, match="reads each page's image"):
        model.generate({k: v for k, v in inputs.items() if k != "pixel_values"}, runtime_ai100=False)
    with pytest.raises(ValueError, match="a page per text"):
        model.generate({**inputs, "pixel_values": inputs["pixel_values"][:1]}, runtime_ai100=False)
    with pytest.raises(ValueError, match="bbox must be"):
        model.generate({**inputs, "bbox": inputs["bbox"][:, :4]}, runtime_ai100=False)
    with pytest.raises(ValueError, match="integers on a 0-1000 page"):
        model.generate({**inputs, "bbox": inputs["bbox"] / 1000.0}, runtime_ai100=False)
    with pytest.raises(ValueError, match="without pooling"):
        QEFFAutoModel.from_pretrained(tmp_path, pooling="mean")
