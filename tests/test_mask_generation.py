"""QEFFAutoModelForMaskGeneration: SAM, SAM 2 and SAM-HQ (with and without hq_token_only) as tiny random models (weights
widened so that the masks follow the image and the prompts), their masks and IoU scores (and SAM 2's object scores)
equal to transformers' within 1e-4 of the largest for points (foreground, background and padding labels), boxes and
both, three masks or one (SAM 2's by the stability of the single-mask token, checked on masks built to fall either way;
SAM-HQ's sorted by IoU and added to its high-quality mask), from pixels or from image embeddings computed once; SAM's
processor's post-processing takes the output as it is (SAM 2's needs torchvision); the other types of the mask
generation mapping are refused saying why."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForMaskGeneration,
    Sam2Config,
    Sam2Model,
    SamConfig,
    SamHQConfig,
    SamHQModel,
    SamImageProcessor,
    SamModel,
    SamProcessor,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_MASK_GENERATION_MAPPING_NAMES

from QEfficient import QEFFAutoModel, QEFFAutoModelForMaskGeneration
from QEfficient.models.mask_generation import stable_single_mask
from QEfficient.transform.mask_generation import UNSUPPORTED_MASK_GENERATORS
from tests.helpers import widen_weights

SIZE = 64


@pytest.fixture(scope="module")
def sam():
    torch.manual_seed(0)
    config = SamConfig(
        vision_config=dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=SIZE, patch_size=8, output_channels=16,
            window_size=4, global_attn_indexes=[1], mlp_dim=37, num_pos_feats=8,
        ),
        prompt_encoder_config=dict(hidden_size=16, image_size=SIZE, patch_size=8, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_dim=32, iou_head_hidden_dim=16),
    )  # fmt: skip
    hf = SamModel(config).eval()
    widen_weights(hf)
    model = QEFFAutoModelForMaskGeneration(hf)
    model.compile(num_cores=1)  # images one at a time: two images run as two batches
    return hf, model


@pytest.fixture(scope="module")
def sam_hq():
    """A tiny SAM-HQ: SAM's tiny shape, its high-quality token reading the global attention block's features."""
    torch.manual_seed(0)
    config = SamHQConfig(
        vision_config=dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=SIZE, patch_size=8, output_channels=16,
            window_size=4, global_attn_indexes=[1], mlp_dim=37, num_pos_feats=8,
        ),
        prompt_encoder_config=dict(hidden_size=16, image_size=SIZE, patch_size=8, mask_input_channels=4),
        mask_decoder_config=dict(
            hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_dim=32, iou_head_hidden_dim=16, vit_dim=32
        ),
    )  # fmt: skip
    hf = SamHQModel(config).eval()
    widen_weights(hf)
    model = QEFFAutoModelForMaskGeneration(hf)
    model.compile(num_cores=1)
    return hf, model


def test_sam_hq_without_a_global_block(sam_hq):
    """Without a global attention block SAM-HQ's decoder reads no ViT features: the graph takes the image map alone."""
    hf, _ = sam_hq
    config = hf.config.to_dict()
    config["vision_config"]["global_attn_indexes"] = []
    torch.manual_seed(0)
    windowed = SamHQModel(SamHQConfig(**config)).eval()
    widen_weights(windowed)
    model = QEFFAutoModelForMaskGeneration(windowed)
    assert model.embedding_names == ("image_embeddings",)
    given = prompts()["points"]
    pixels = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = windowed(pixel_values=pixels, **given)
    got = model.generate({"pixel_values": pixels, **given}, runtime_ai100=False)
    np.testing.assert_allclose(got.pred_masks.numpy(), expected.pred_masks.numpy(), atol=1e-4 * expected.pred_masks.abs().max().item())


@pytest.fixture(scope="module")
def sam2():
    """A tiny SAM 2: Hiera at 64 px (4 stages, windowed and global attention), an FPN of three levels, SAM 2's decoder."""
    torch.manual_seed(0)
    hiera = dict(
        model_type="sam2_hiera_det_model",
        hidden_size=16,
        num_attention_heads=1,
        image_size=[SIZE, SIZE],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[4, 4, 2, 2],
        global_attention_blocks=[3],
        window_positional_embedding_background_size=[4, 4],
    )
    config = Sam2Config(
        vision_config=dict(
            backbone_config=hiera, backbone_channel_list=[128, 64, 32, 16], backbone_feature_sizes=[[16, 16], [8, 8], [4, 4]],
            fpn_hidden_size=32,
        ),
        prompt_encoder_config=dict(hidden_size=32, image_size=SIZE, patch_size=16, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32),
    )  # fmt: skip
    hf = Sam2Model(config).eval()
    widen_weights(hf)
    model = QEFFAutoModelForMaskGeneration(hf)
    model.compile(batch_size=2, num_cores=1)  # two images a run: three run as a full batch and a short one
    return hf, model


def prompts() -> dict[str, dict[str, torch.Tensor]]:
    """Prompts for 2 images, 3 prompts each, as the export's example; and for 1 or 3 images with other counts."""
    generator = torch.Generator().manual_seed(3)
    points = torch.rand(2, 3, 2, 2, generator=generator) * SIZE
    labels = torch.tensor([[[1, 0], [1, -10], [0, 1]], [[1, 1], [0, -1], [1, 0]]])
    corners = torch.sort(torch.rand(2, 3, 2, 2, generator=generator) * SIZE, dim=2).values
    boxes = corners.reshape(2, 3, 4)  # x0, y0, x1, y1
    return {
        "points": {"input_points": points, "input_labels": labels},
        "points, default labels": {"input_points": points},
        "boxes": {"input_boxes": boxes},
        "points and boxes": {"input_points": points, "input_labels": labels, "input_boxes": boxes},
        "one point": {"input_points": points[:1, :1, :1], "input_labels": labels[:1, :1, :1]},
        "one box": {"input_boxes": boxes[:1, :1]},
        "four points, one box, three images": {
            "input_points": torch.rand(3, 1, 4, 2, generator=generator) * SIZE,
            "input_labels": torch.tensor([[[1, 0, 1, -10]]] * 3),
            "input_boxes": boxes[:, :1].repeat(2, 1, 1)[:3],
        },
    }


@pytest.mark.parametrize("kind", ["sam", "sam2", "sam_hq"])
def test_qeff_auto_model_gives_the_mask_generator(kind, request, tmp_path):
    hf, _ = request.getfixturevalue(kind)
    hf.save_pretrained(tmp_path)
    assert type(QEFFAutoModel.from_pretrained(tmp_path)) is QEFFAutoModelForMaskGeneration  # AutoModel's SamModel, Sam2Model


def test_every_mask_generation_type_runs_or_is_refused():
    run = {"sam", "sam2", "sam2_video", "sam_hq"}
    assert set(MODEL_FOR_MASK_GENERATION_MAPPING_NAMES) == run | set(UNSUPPORTED_MASK_GENERATORS)
    with torch.device("meta"):  # SAM 2.1's checkpoints say "sam2_video": the mapping loads their image model
        assert QEFFAutoModelForMaskGeneration(AutoModelForMaskGeneration.from_config(AutoConfig.for_model("sam2_video"))).is_sam2
    with torch.device("meta"), pytest.raises(NotImplementedError, match="tracks objects"):
        QEFFAutoModelForMaskGeneration(AutoModelForMaskGeneration.from_config(AutoConfig.for_model("sam3_tracker")))


@pytest.mark.parametrize("kind", ["sam", "sam2", "sam_hq", "sam_hq-hq_token_only"])
@pytest.mark.parametrize("prompt", list(prompts()))
@pytest.mark.parametrize("multimask", [True, False])
def test_masks_equal_transformers(kind, prompt, multimask, request):
    hf, model = request.getfixturevalue(kind.split("-")[0])
    options = {"multimask_output": multimask} | ({"hq_token_only": True} if kind.endswith("hq_token_only") else {})
    given = prompts()[prompt]
    images = len(next(iter(given.values())))
    pixels = torch.rand(images, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(pixel_values=pixels, **options, **given)
        expected_embeddings = hf.get_image_embeddings(pixels)
    embeddings = model.get_image_embeddings(pixels)
    if kind.startswith("sam_hq"):  # (its map, its global blocks' ViT features: the decoder reads the first)
        embedded = {"image_embeddings": embeddings[0], "intermediate_embeddings": embeddings[1]}
        embeddings, expected_embeddings = [embeddings[0], embeddings[1][0]], [expected_embeddings[0], expected_embeddings[1][0]]
    else:
        embedded = {"image_embeddings": embeddings}
    for got, want in zip(*((e if isinstance(e, list) else [e]) for e in (embeddings, expected_embeddings)), strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-4, rtol=0)
    outputs = ("pred_masks", "iou_scores") + (("object_score_logits",) if kind == "sam2" else ())
    for source in ({"pixel_values": pixels}, embedded):
        out = model.generate({**source, **given}, **options)
        for name in outputs:
            want = getattr(expected, name).numpy()
            assert getattr(out, name).shape == want.shape, name
            np.testing.assert_allclose(getattr(out, name).numpy(), want, atol=1e-4 * max(1.0, np.abs(want).max()), rtol=0, err_msg=name)
    if images > 1:
        assert float((expected.pred_masks[0] - expected.pred_masks[1]).abs().max()) > 1e-2  # the image and prompts decide


def test_processor_round_trip_and_bad_inputs(sam):
    hf, model = sam
    processor = SamProcessor(SamImageProcessor(size={"longest_edge": SIZE}, pad_size={"height": SIZE, "width": SIZE}))
    image = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    inputs = processor(images=image, input_points=[[[20, 10], [30, 25]]], input_labels=[[1, 0]], return_tensors="pt")
    with torch.no_grad():
        expected = hf(**{k: v for k, v in inputs.items() if k not in ("original_sizes", "reshaped_input_sizes")})
    out = model.generate(inputs)
    sizes = (inputs["original_sizes"], inputs["reshaped_input_sizes"])
    got, want = processor.post_process_masks(out.pred_masks, *sizes), processor.post_process_masks(expected.pred_masks, *sizes)
    assert got[0].shape == want[0].shape == (1, 3, 40, 56)
    assert (got[0] == want[0]).float().mean() > 0.999  # binarized at 0: a logit within 1e-4 of 0 may fall either way
    with pytest.raises(ValueError, match="input_masks"):
        model.generate({**inputs, "input_masks": torch.zeros(1, 1, 16, 16)})
    with pytest.raises(ValueError, match="Pass a prompt"):
        model.generate({"pixel_values": inputs["pixel_values"]})
    with pytest.raises(ValueError, match="not both or neither"):
        model.generate({**inputs, "image_embeddings": model.get_image_embeddings(inputs["pixel_values"])})
    with pytest.raises(ValueError, match="resizes and pads every image"):
        model.generate({**inputs, "pixel_values": torch.rand(1, 3, 32, 32)})
    with pytest.raises(ValueError, match="for 1 images, the inputs hold 2"):
        model.generate({**inputs, "pixel_values": inputs["pixel_values"].repeat(2, 1, 1, 1)})
    with pytest.raises(ValueError, match="one per point"):
        model.generate({**inputs, "input_labels": torch.ones(1, 1, 3, dtype=torch.long)})
    int8 = QEFFAutoModelForMaskGeneration(hf)
    int8.compile(num_cores=1, mxfp6_matmul=True)  # the image encoder's MatMuls as int8 GEMMs: the masks move a little
    assert np.corrcoef(int8.generate(inputs).pred_masks.numpy().ravel(), expected.pred_masks.numpy().ravel())[0, 1] > 0.99


def test_sam2_single_mask_follows_the_stability_rule(sam2):
    """Masks built so that the single-mask token is stable in some prompts and not in others: the host's choice is
    transformers' ``_dynamic_multimask_via_stability``."""
    hf, model = sam2
    generator = torch.Generator().manual_seed(0)
    masks = torch.randn(2, 3, 4, 8, 8, generator=generator)
    masks[:, :2, 0] *= 100  # far from 0: few logits within the band, stable
    masks[0, 0, 0, :4] = 0.01  # a quarter inside the band: unstable
    scores = torch.rand(2, 3, 4, generator=generator)
    scores[1, 2, 2] = scores[1, 2, 3]  # a tie among the other three: the first wins
    decoder = hf.mask_decoder
    want_masks, want_scores = decoder._dynamic_multimask_via_stability(masks, scores)
    config = hf.config.mask_decoder_config
    got_masks, got_scores = stable_single_mask(
        masks.numpy(), scores.numpy(), config.dynamic_multimask_stability_delta, config.dynamic_multimask_stability_thresh
    )
    stability = decoder._get_stability_scores(masks[:, :, :1])
    assert (stability >= config.dynamic_multimask_stability_thresh).any() and (stability < config.dynamic_multimask_stability_thresh).any()
    np.testing.assert_array_equal(got_masks, want_masks.numpy())
    np.testing.assert_array_equal(got_scores, want_scores.numpy())


def test_sam2_bad_embeddings_are_refused(sam2):
    _, model = sam2
    points = {"input_points": torch.rand(1, 1, 1, 2) * SIZE}
    embeddings = model.get_image_embeddings(torch.rand(1, 3, SIZE, SIZE), runtime_ai100=False)
    with pytest.raises(ValueError, match=r"a list of \[images, 4, 16, 16\], \[images, 8, 8, 8\], \[images, 32, 4, 4\]"):
        model.generate({"image_embeddings": embeddings[-1], **points}, runtime_ai100=False)
    with pytest.raises(ValueError, match="resizes every image to 64x64"):
        model.generate({"pixel_values": torch.rand(1, 3, 32, 32), **points}, runtime_ai100=False)


def test_sam2_checkpoint_typed_as_its_video_model_and_no_prompt(sam2, tmp_path):
    """SAM 2.1's checkpoints name the video model's type: QEFFAutoModelForMaskGeneration runs their image model, and
    QEFFAutoModel (transformers' AutoModel gives the video tracker) says so. Without a prompt, transformers' padding point."""
    hf, model = sam2
    hf.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "sam2_video"}))
    loaded = QEFFAutoModelForMaskGeneration.from_pretrained(tmp_path)
    assert loaded.is_sam2 and loaded.config.model_type == "sam2_video"
    with pytest.raises(NotImplementedError, match="QEFFAutoModelForMaskGeneration"):
        QEFFAutoModel.from_pretrained(tmp_path)
    pixels = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = hf(pixel_values=pixels)
    for runner, runtime_ai100 in ((model, True), (loaded, False)):
        out = runner.generate({"pixel_values": pixels}, runtime_ai100=runtime_ai100)
        np.testing.assert_allclose(
            out.pred_masks.numpy(), expected.pred_masks.numpy(), atol=1e-4 * expected.pred_masks.abs().max().item(), rtol=0
        )
