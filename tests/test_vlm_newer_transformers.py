"""Image-text types of a transformers release newer than CI's (``NEWER_TRANSFORMERS``): checked wherever that
release is installed, skipped elsewhere. Their greedy tokens are in tests/test_image_text_sweep.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

from QEfficient.transform.vision_adapters import NEWER_TRANSFORMERS, get_vision_adapter


@pytest.mark.parametrize("model_type", sorted(NEWER_TRANSFORMERS))
def test_image_features_equal_hfs_for_two_images_of_different_grids(model_type, tmp_path):
    """What the vision graph computes, in PyTorch, against HF's ``get_image_features``. LLaVA-OneVision-1.5: the
    class tokens follow the patches here (HF prepends one to each image). Ovis2.5: the patches in window order (the
    second image spans several windows of 2x2 merged tokens)."""
    if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        import transformers

        pytest.skip(f"transformers {transformers.__version__} has no {model_type} (proven with {NEWER_TRANSFORMERS[model_type]})")
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from tests.image_text_sweep import BUILDERS, image

    build, prompt = BUILDERS[model_type]
    folder = build(tmp_path / "model")
    processor = AutoProcessor.from_pretrained(folder)
    hf = AutoModelForImageTextToText.from_pretrained(folder).eval()
    inputs = processor(images=[image(2, (30, 30)), image(3, (64, 48))], text=[f"{prompt} {prompt}"], return_tensors="pt")
    adapter = get_vision_adapter(hf.config)
    vision = adapter.graph_inputs(adapter.vision_inputs({k: v.numpy() for k, v in inputs.items()}, 0, hf.config))
    assert len(np.unique(vision["image_segment"])) == 2
    with torch.no_grad():
        ref = torch.cat(list(hf.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"]).pooler_output))
        ours = adapter.image_features(hf, *(torch.as_tensor(v) for v in vision.values()))[0]  # positional, as the graph
    assert ours.shape == ref.shape and torch.allclose(ours, ref, atol=1e-5)
