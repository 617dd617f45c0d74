"""Image-text types of a transformers release newer than CI's (``NEWER_TRANSFORMERS``): checked wherever that
release is installed, skipped elsewhere. Their greedy tokens are in tests/test_image_text_sweep.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

from QEfficient.transform.vision_adapters import NEWER_TRANSFORMERS, get_vision_adapter


def test_llava_onevision1_5_image_features_equal_hfs_for_two_images_of_different_grids(tmp_path):
    """The class tokens follow the patches here (HF prepends one to each image): the merged features of two
    images of different patch grids equal HF's."""
    if "llava_onevision1_5" not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        import transformers

        release = NEWER_TRANSFORMERS["llava_onevision1_5"]
        pytest.skip(f"transformers {transformers.__version__} has no llava_onevision1_5 (proven with {release})")
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from tests.image_text_sweep import image
    from tests.vlm_fixtures_a import QWEN_PROMPT, build_llava_onevision1_5

    folder = build_llava_onevision1_5(tmp_path / "model")
    processor = AutoProcessor.from_pretrained(folder)
    hf = AutoModelForImageTextToText.from_pretrained(folder).eval()
    inputs = processor(images=[image(2, (30, 30)), image(3, (64, 20))], text=[f"{QWEN_PROMPT} {QWEN_PROMPT}"], return_tensors="pt")
    adapter = get_vision_adapter(hf.config)
    vision = adapter.graph_inputs(adapter.vision_inputs({k: v.numpy() for k, v in inputs.items()}, 0, hf.config))
    assert len(np.unique(vision["image_segment"])) == 2
    with torch.no_grad():
        ref = torch.cat(list(hf.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"]).pooler_output))
        ours = adapter.image_features(hf, **{k: torch.as_tensor(v) for k, v in vision.items()})[0]
    assert ours.shape == ref.shape and torch.allclose(ours, ref, atol=1e-5)
