"""Depth estimation, semantic segmentation and mask classification: QEFFAutoModelForDepthEstimation,
QEFFAutoModelForSemanticSegmentation and QEFFAutoModelForUniversalSegmentation on tiny random models of transformers'
three mappings (weights widened so that the maps follow the image), each equal to transformers' outputs within 1e-4 of
their largest value, at a batch other than the export's; every other type listed with why it is not swept. The outputs
are ones the image processors' post-processing takes as they are. Pyramid pooling at sizes that do not divide the input
(UperNet's, BEiT's) runs as the exact regions PyTorch averages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForDepthEstimation,
    AutoModelForSemanticSegmentation,
    AutoModelForUniversalSegmentation,
    DPTImageProcessor,
    Mask2FormerImageProcessor,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES,
    MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES,
    MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES,
)

from QEfficient import QEFFAutoModelForDepthEstimation, QEFFAutoModelForSemanticSegmentation, QEFFAutoModelForUniversalSegmentation
from QEfficient.models.image_heads import UNSUPPORTED_UNIVERSAL_SEGMENTATION
from QEfficient.transform.rewrites import fixed_size_adaptive_avg_pool
from tests.helpers import widen_weights

_VIT = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8)
_NECK = dict(neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16)
_DINOV2 = dict(_VIT, model_type="dinov2", out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False)
_DINOV3 = dict(_VIT, model_type="dinov3_vit", num_register_tokens=1, out_indices=[1, 2, 3, 4], return_class_token=True)
_MIX = dict(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], patch_sizes=[7, 3], strides=[4, 2])
_MIX |= dict(num_attention_heads=[1, 2], mlp_ratios=[2, 2], decoder_hidden_size=16)
_BEIT_SEG = dict(_VIT, out_indices=[0, 1, 2, 3], use_auxiliary_head=False, pool_scales=[1, 2])
_DPT = dict(_VIT, backbone_out_indices=[0, 1, 2, 3], head_in_index=-1, **_NECK)
DEPTH = {
    "depth_anything": dict(backbone_config=_DINOV2, head_hidden_size=8, reassemble_hidden_size=32, patch_size=8, **_NECK),
    "prompt_depth_anything": dict(backbone_config=_DINOV2, head_hidden_size=8, reassemble_hidden_size=32, patch_size=8, **_NECK),
    "chmv2": dict(backbone_config=_DINOV3, patch_size=8, post_process_channels=[8, 16, 32, 32], fusion_hidden_size=16),
    "dpt": _DPT,
    "glpn": _MIX,
    "zoedepth": dict(
        backbone_config=dict(_VIT, model_type="beit", out_indices=[0, 1, 2, 3], reshape_hidden_states=False),
        bottleneck_features=16,
        num_attractors=[4, 4, 4, 4],
        bin_embedding_dim=8,
        num_relative_features=8,
        patch_size=8,
        **_NECK,
    ),  # fmt: skip
}
SEGMENTATION = {
    "beit": _BEIT_SEG,
    "data2vec-vision": _BEIT_SEG,
    "dpt": dict(_DPT, use_auxiliary_head=False),
    "segformer": _MIX,
    "upernet": dict(
        backbone_config=dict(
            model_type="convnext", hidden_sizes=[8, 16, 32, 64], depths=[1] * 4, out_features=["stage1", "stage2", "stage3", "stage4"]
        ),
        hidden_size=16,
        auxiliary_in_channels=32,
        use_auxiliary_head=False,
        pool_scales=[1, 2, 3],
    ),  # fmt: skip
    "mobilenet_v2": dict(image_size=32, depth_multiplier=0.35),
    # MobileViT's and MobileViTV2's tiny maps stay near zero (batch norm and ReLU6) even widened: their entries prove less
    "mobilevit": dict(image_size=32, hidden_sizes=[16, 24, 32], neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64]),
    "mobilevitv2": dict(image_size=64, patch_size=2, width_multiplier=0.25),
}
_SWIN = dict(model_type="swin", image_size=64, patch_size=4, embed_dim=8, depths=[1] * 4, num_heads=[1, 1, 2, 2], window_size=2)
_SWIN["out_features"] = ["stage1", "stage2", "stage3", "stage4"]
# mask classification (semantic, instance and panoptic segmentation), at 64 x 64; group norms of 32 groups
UNIVERSAL = {
    "mask2former": dict(
        backbone_config=_SWIN,
        feature_size=32,
        mask_feature_size=32,
        hidden_dim=32,
        encoder_feedforward_dim=32,
        dim_feedforward=32,
        encoder_layers=1,
        decoder_layers=2,
        num_attention_heads=2,
        num_queries=5,
        common_stride=4,
    ),  # fmt: skip
    "maskformer": dict(
        backbone_config=_SWIN,
        fpn_feature_size=32,
        mask_feature_size=32,
        num_queries=5,
        decoder_config=dict(
            model_type="detr",
            d_model=32,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=32,
            decoder_ffn_dim=32,
            num_queries=5,
        ),
    ),  # fmt: skip
    "eomt": dict(_VIT, image_size=64, num_blocks=2, num_queries=5, num_upscale_blocks=1),
}
NOT_SWEPT = {
    "eomt_dinov3": "too large as its defaults build: needs a shape of its own",
    "depth_pro": "refused: its field-of-view head scales the depth, and its post-processing reads that output",
    "tipsv2_dpt": "its backbone's outputs do not fit this sweep's small shapes",
    "sapiens2": "its default config does not build in transformers itself (no head_config)",
}
# image sizes other than 32 (MobileViTV2's patches of 2 at a width of 0.25 need 64)
SIZES = {"mobilevitv2": 64}


def tiny(auto, model_type: str, shape: dict):
    labels = {"num_labels": 3} if auto is not AutoModelForDepthEstimation else {}
    config = AutoConfig.for_model(model_type, **shape, **labels)
    torch.manual_seed(0)
    model = auto.from_config(config).eval()
    widen_weights(model)
    return model


def test_every_type_is_swept_or_listed():
    swept = {("depth", t) for t in DEPTH} | {("segmentation", t) for t in SEGMENTATION} | {("universal", t) for t in UNIVERSAL}
    mapped = {("depth", t) for t in MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES} | {
        ("segmentation", t) for t in MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES
    }
    mapped |= {("universal", t) for t in MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES if t not in UNSUPPORTED_UNIVERSAL_SEGMENTATION}
    assert {t for _, t in mapped - swept} == set(NOT_SWEPT)
    with torch.device("meta"), pytest.raises(NotImplementedError, match="task prompt"):
        QEFFAutoModelForUniversalSegmentation(AutoModelForUniversalSegmentation.from_config(AutoConfig.for_model("oneformer")))


TASKS = {
    "depth": (AutoModelForDepthEstimation, QEFFAutoModelForDepthEstimation, DEPTH, ("predicted_depth",)),
    "segmentation": (AutoModelForSemanticSegmentation, QEFFAutoModelForSemanticSegmentation, SEGMENTATION, ("logits",)),
    "universal": (
        AutoModelForUniversalSegmentation,
        QEFFAutoModelForUniversalSegmentation,
        UNIVERSAL,
        ("class_queries_logits", "masks_queries_logits"),
    ),  # fmt: skip
}


@pytest.mark.sweep
@pytest.mark.parametrize("task, model_type", [(task, t) for task, spec in TASKS.items() for t in spec[2]], ids=lambda x: x)
def test_dense_outputs_equal_transformers(task, model_type):
    auto, qeff, shapes, names = TASKS[task]
    hf = tiny(auto, model_type, shapes[model_type])
    size = SIZES.get(model_type, 64 if task == "universal" else 32)
    pixels = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(pixel_values=pixels)
    model = qeff(hf)
    model.compile(img_size=size, batch_size=3, num_cores=1)  # not the export's batch of 2: the batch axis is free
    got = model.generate({"pixel_values": pixels})
    for name in names:
        want = getattr(expected, name).numpy()
        assert got[name].shape == want.shape
        np.testing.assert_allclose(got[name].numpy(), want, atol=1e-4 * max(1.0, float(np.abs(want).max())), rtol=0, err_msg=name)


def test_post_processing_takes_the_outputs(tmp_path):
    """A DPT depth model from a folder: the image processor's post_process_depth_estimation gives transformers' depth
    maps from ours; a segmenter refuses pooling."""
    tiny(AutoModelForDepthEstimation, "dpt", _DPT).save_pretrained(tmp_path)
    processor = DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False)
    processor.save_pretrained(tmp_path)
    hf = AutoModelForDepthEstimation.from_pretrained(tmp_path).eval()
    images = [np.random.default_rng(s).integers(0, 256, (40, 50, 3), dtype=np.uint8) for s in (1, 2)]
    inputs = processor(images=images, return_tensors="pt")
    with torch.no_grad():
        expected = processor.post_process_depth_estimation(hf(**inputs), target_sizes=[(40, 50)] * 2)
    model = QEFFAutoModelForDepthEstimation.from_pretrained(tmp_path)
    model.compile(num_cores=1)  # at the processor's 32 x 32
    got = processor.post_process_depth_estimation(model.generate(inputs), target_sizes=[(40, 50)] * 2)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(
            a["predicted_depth"].numpy(), b["predicted_depth"].numpy(), atol=1e-4 * float(b["predicted_depth"].abs().max())
        )
    with pytest.raises(ValueError, match="without pooling"):
        QEFFAutoModelForSemanticSegmentation(tiny(AutoModelForSemanticSegmentation, "segformer", _MIX), pooling="mean")
    with pytest.raises(ValueError, match="prompt_depth map is not taken"):
        model.generate({**inputs, "prompt_depth": torch.rand(2, 1, 8, 8)})
    with pytest.raises(ValueError, match=r"keep_aspect_ratio=False where it keeps"):
        model.generate({"pixel_values": torch.rand(1, 3, 32, 48)})
    with torch.device("meta"), pytest.raises(NotImplementedError, match="field-of-view"):  # refused by its config: no weights
        QEFFAutoModelForDepthEstimation(AutoModelForDepthEstimation.from_config(AutoConfig.for_model("depth_pro")))


def test_mask_classification_post_processing_takes_the_outputs():
    hf = tiny(AutoModelForUniversalSegmentation, "mask2former", UNIVERSAL["mask2former"])
    pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    processor = Mask2FormerImageProcessor()
    with torch.no_grad():
        expected = processor.post_process_semantic_segmentation(hf(pixel_values=pixels), target_sizes=[(40, 50)] * 2)
    model = QEFFAutoModelForUniversalSegmentation(hf)
    model.compile(img_size=64, num_cores=1)
    got = processor.post_process_semantic_segmentation(model.generate({"pixel_values": pixels}), target_sizes=[(40, 50)] * 2)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    mask = torch.ones(2, 64, 64, dtype=torch.int64)
    mask[:, 40:] = 0  # padding, which Mask2Former does not mask out either: the same answer
    masked = model.generate({"pixel_values": pixels, "pixel_mask": mask})
    assert torch.equal(masked.class_queries_logits, model.generate({"pixel_values": pixels}).class_queries_logits)
    offsets = [torch.tensor([0, 0, 64]), torch.tensor([1, 0, 64])]  # EoMT's processor's, which its post-processing reads
    assert model.generate({"pixel_values": pixels, "patch_offsets": offsets}).patch_offsets is offsets
    bins = [{"n_bins": 8, "min_depth": 0.001, "max_depth": 10.0, "name": n} for n in ("nyu", "kitti")]
    router = dict(num_patch_transformer_layers=1, patch_transformer_hidden_size=16, patch_transformer_intermediate_size=16)
    config = AutoConfig.for_model(
        "zoedepth", **DEPTH["zoedepth"], bin_configurations=bins, **router, patch_transformer_num_attention_heads=2
    )
    with torch.device("meta"), pytest.raises(NotImplementedError, match="picks a head for each image"):
        QEFFAutoModelForDepthEstimation(AutoModelForDepthEstimation.from_config(config))


@pytest.mark.parametrize("size, output", [((7, 9), (3, 2)), ((8, 8), (2, 4)), ((5, 6), (5, 1))])
def test_adaptive_pooling_regions_equal_torch(size, output):
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    pool = nn.AdaptiveAvgPool2d(output)
    torch.testing.assert_close(fixed_size_adaptive_avg_pool(pool, x), pool(x), atol=1e-6, rtol=0)
