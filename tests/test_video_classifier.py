"""QEFFAutoModelForVideoClassification: every type of transformers' video classification mapping (VideoMAE,
TimeSformer, ViViT, V-JEPA 2, VideoPrism) as a tiny random model (weights widened so that the logits follow the clip),
its logits equal to transformers' within 1e-4 at a batch other than the export's; a video processor's output runs as it
is, and clips of another shape are refused saying what to do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForVideoClassification, VideoMAEImageProcessor
from transformers.models.auto.modeling_auto import MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES

from QEfficient import QEFFAutoModelForVideoClassification
from tests.helpers import widen_weights

_VIT = dict(hidden_size=32, num_attention_heads=2, intermediate_size=37, image_size=32, num_frames=4, num_labels=3)
CLASSIFIERS = {
    "videomae": dict(_VIT, num_hidden_layers=2, patch_size=8, tubelet_size=2),
    "timesformer": dict(_VIT, num_hidden_layers=2, patch_size=8),
    "vivit": dict(_VIT, num_hidden_layers=2, tubelet_size=[2, 8, 8]),
    "vjepa2": dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2,
        crop_size=32,
        patch_size=8,
        frames_per_clip=4,
        tubelet_size=2,
        pred_hidden_size=16,
        pred_num_hidden_layers=1,
        pred_num_attention_heads=2,
        num_pooler_layers=1,
        num_labels=3,
    ),  # fmt: skip
    "videoprism_vision_model": dict(
        _VIT, tubelet_size=[1, 8, 8], num_spatial_layers=1, num_temporal_layers=1, num_auxiliary_layers=1
    ),  # fmt: skip
}


def tiny(model_type: str):
    torch.manual_seed(0)
    model = AutoModelForVideoClassification.from_config(AutoConfig.for_model(model_type, **CLASSIFIERS[model_type])).eval()
    widen_weights(model)
    return model


def test_every_video_classification_type_is_swept():
    assert set(MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES) == set(CLASSIFIERS)


@pytest.mark.parametrize("model_type", list(CLASSIFIERS))
def test_logits_equal_transformers(model_type):
    hf = tiny(model_type)
    clips = torch.rand(3, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(**{hf.main_input_name: clips}).logits.numpy()
    model = QEFFAutoModelForVideoClassification(hf)
    model.compile(batch_size=3, num_cores=1)  # the config's 4 frames of 32 x 32; not the export's batch of 2
    got = model.generate({hf.main_input_name: clips})["logits"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, float(np.abs(expected).max())), rtol=0)
    assert float(np.abs(expected[0] - expected[1]).max()) > 1e-2  # the clip decides


def test_processor_output_and_bad_clips(tmp_path):
    tiny("videomae").save_pretrained(tmp_path)
    processor = VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    frames = [np.random.default_rng(i).integers(0, 256, (40, 48, 3), dtype=np.uint8) for i in range(4)]
    inputs = processor(frames, return_tensors="pt")
    hf = AutoModelForVideoClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        expected = hf(**inputs).logits.numpy()
    model = QEFFAutoModelForVideoClassification.from_pretrained(tmp_path)
    model.compile(num_cores=1)
    np.testing.assert_allclose(model.generate(inputs)["logits"].numpy(), expected, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="compiled for 4 frames of 32x32"):
        model.generate({"pixel_values": torch.rand(1, 6, 3, 32, 32)})
    with pytest.raises(ValueError, match=r"must be \[videos, frames, 3, height, width\]"):
        model.generate({"pixel_values": torch.rand(2, 4, 1, 32, 32)})
    with pytest.raises(ValueError, match="position table is for 4 frames of 32x32"):
        model.compile(num_frames=8, num_cores=1)
    with pytest.raises(ValueError, match="reads its clips as 'pixel_values'"):
        model.generate({"pixel_values_videos": torch.rand(1, 4, 3, 32, 32)})
    vjepa2 = QEFFAutoModelForVideoClassification(tiny("vjepa2"))  # rotary positions: any number of frames
    vjepa2.compile(num_frames=6, num_cores=1)
    clips = torch.rand(1, 6, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = vjepa2.hf_model(pixel_values_videos=clips).logits.numpy()
    np.testing.assert_allclose(vjepa2.generate({"pixel_values_videos": clips})["logits"].numpy(), expected, atol=1e-4, rtol=0)
