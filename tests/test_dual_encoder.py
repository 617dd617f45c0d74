"""QEFFAutoModelForZeroShotImageClassification: contrastive image-text models as two graphs (text tower, image tower).
Every type of transformers' zero-shot image classification mapping runs or is refused with a reason; each run one, a
tiny random model, gives transformers' forward outputs (logits_per_image, logits_per_text, the normalized embeddings)
within 1e-4 on padded texts and a batch of images, and its get_text_features / get_image_features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForZeroShotImageClassification, CLIPImageProcessor

from QEfficient import QEFFAutoModel, QEFFAutoModelForZeroShotImageClassification
from QEfficient.transform.dual_encoder import UNSUPPORTED_DUAL_ENCODERS

TEXT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=99, max_position_embeddings=40)
VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8)
EOS = 98  # the CLIP family pools the first end-of-text token
CONFIGS = {
    "clip": dict(text_config={**TEXT, "eos_token_id": EOS}),
    "metaclip_2": dict(text_config={**TEXT, "eos_token_id": EOS}),
    "clipseg": dict(text_config={**TEXT, "eos_token_id": EOS}),
    "altclip": dict(text_config={**TEXT, "project_dim": 16, "pad_token_id": 1}),
    "chinese_clip": {},
    "blip": {},
    "siglip": {},
    "tipsv2": dict(vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)),
    # an EfficientNet image tower: its image features are projection_dim wide
    "align": dict(vision_config=dict(image_size=32, width_coefficient=0.1, depth_coefficient=0.1, hidden_dim=64), projection_dim=32),
}


def tiny(model_type: str):
    config = AutoConfig.for_model(
        model_type, **({"text_config": TEXT, "vision_config": VISION, "projection_dim": 16} | CONFIGS[model_type])
    )
    torch.manual_seed(0)
    model = AutoModelForZeroShotImageClassification.from_config(config).eval()
    if model_type == "align":  # its convolutions' random init leaves features of 1e-30
        with torch.no_grad():
            for module in model.vision_model.modules():
                if isinstance(module, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(module.weight)
    return model


def texts_and_images() -> dict[str, torch.Tensor]:
    ids = torch.randint(3, 90, (3, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(3, 9, dtype=torch.int64)
    mask[1, 6:], mask[2, 3:] = 0, 0
    ids[0, -1], ids[1, 5], ids[2, 2] = EOS, EOS, EOS  # each text's last real token
    pixels = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))  # not the export's batch of 2
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels}


def test_every_zero_shot_type_runs_or_is_refused():
    from transformers.models.auto.modeling_auto import MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES

    assert set(MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES) == set(CONFIGS) | set(UNSUPPORTED_DUAL_ENCODERS)


@pytest.mark.parametrize("model_type", list(CONFIGS))
def test_outputs_equal_transformers(model_type):
    hf = tiny(model_type)
    inputs = texts_and_images()
    with torch.no_grad():
        expected = hf(**inputs)
        text_features = hf.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).pooler_output
        image_features = hf.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
    model = QEFFAutoModelForZeroShotImageClassification(hf)
    paths = model.compile(seq_len=16, img_size=32, batch_size=3, num_cores=1)
    assert set(paths) == {"text_qpc_path", "image_qpc_path"}
    out = model.generate(inputs)
    for name in ("logits_per_image", "logits_per_text", "text_embeds", "image_embeds"):
        np.testing.assert_allclose(out[name].numpy(), getattr(expected, name).numpy(), atol=1e-4, rtol=0, err_msg=name)
    text_scale, image_scale = np.abs(text_features.numpy()).max(), np.abs(image_features.numpy()).max()
    np.testing.assert_allclose(model.get_text_features(inputs) / text_scale, text_features.numpy() / text_scale, atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        model.get_image_features(inputs["pixel_values"]) / image_scale, image_features.numpy() / image_scale, atol=1e-5, rtol=0
    )
    texts_only = model.generate({k: v for k, v in inputs.items() if k != "pixel_values"})
    assert set(texts_only) == {"text_embeds"}


def test_loading_int8_and_bad_inputs(tmp_path):
    """QEFFAutoModel on a CLIP folder gives the dual encoder, compiled at its image processor's size; int8 towers keep
    the ranking; wrong inputs are refused, saying what to do; SigLIP 2's NaFlex tower is refused."""
    tiny("clip").save_pretrained(tmp_path / "clip")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path / "clip")
    model = QEFFAutoModel.from_pretrained(tmp_path / "clip")
    assert isinstance(model, QEFFAutoModelForZeroShotImageClassification)
    with pytest.raises(ValueError, match="without pooling"):
        QEFFAutoModel.from_pretrained(tmp_path / "clip", pooling="mean")
    model.compile(num_cores=1)  # seq_len: the text tower's 40 positions; the processor's 32x32 crop
    inputs = texts_and_images()
    exact = model.generate(inputs)["logits_per_image"].numpy()
    model.compile(num_cores=1, mxfp6_matmul=True)
    approx = model.generate(inputs)["logits_per_image"].numpy()
    assert np.abs(approx - exact).max() < 0.05 * np.abs(exact).max()
    with pytest.raises(ValueError, match="compiled for 32x32"):
        model.generate({"pixel_values": torch.rand(1, 3, 48, 48)})
    with pytest.raises(ValueError, match="token_type_ids"):
        model.generate({**inputs, "token_type_ids": torch.ones_like(inputs["input_ids"])})
    with pytest.raises(ValueError, match="input_ids .*pixel_values"):
        model.generate({"attention_mask": inputs["attention_mask"]})
    with pytest.raises(ValueError, match="longest compiled seq_len is 40"):
        model.generate({"input_ids": torch.ones(1, 41, dtype=torch.int64)})
    for ids in ([[1, -5, 6, 2]], [[1, 10**6]]):  # (a negative id wrapped round the table; a large one failed in ONNX Runtime)
        with pytest.raises(ValueError, match="outside this model's vocabulary"):
            model.get_text_features({"input_ids": ids})
    with pytest.raises(ValueError, match="a str"):  # not a tokenizer's output: said so
        model.get_text_features("a cat")

    config = AutoConfig.for_model("siglip2", text_config=TEXT, vision_config=VISION)
    with pytest.raises(NotImplementedError, match="NaFlex"):
        QEFFAutoModelForZeroShotImageClassification(AutoModelForZeroShotImageClassification.from_config(config))
