"""QEFFAutoModelForMaskGeneration: SAM as a tiny random model (weights widened so that the masks follow the image and
the prompts), its masks and IoU scores equal to transformers' within 1e-4 for points (foreground, background and padding
labels), boxes and both, three masks or one, from pixels or from image embeddings computed once; the processor's
post-processing takes the output as it is; the other types of the mask generation mapping are refused saying why."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForMaskGeneration, SamConfig, SamImageProcessor, SamModel, SamProcessor
from transformers.models.auto.modeling_auto import MODEL_FOR_MASK_GENERATION_MAPPING_NAMES

from QEfficient import QEFFAutoModel, QEFFAutoModelForMaskGeneration
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


def test_qeff_auto_model_gives_the_mask_generator(sam, tmp_path):
    hf, _ = sam
    hf.save_pretrained(tmp_path)
    assert type(QEFFAutoModel.from_pretrained(tmp_path)) is QEFFAutoModelForMaskGeneration  # AutoModel's SamModel


def test_every_mask_generation_type_runs_or_is_refused():
    assert set(MODEL_FOR_MASK_GENERATION_MAPPING_NAMES) == {"sam"} | set(UNSUPPORTED_MASK_GENERATORS)
    with torch.device("meta"), pytest.raises(NotImplementedError, match="high-quality mask token"):
        QEFFAutoModelForMaskGeneration(AutoModelForMaskGeneration.from_config(AutoConfig.for_model("sam_hq")))


@pytest.mark.parametrize("prompt", list(prompts()))
@pytest.mark.parametrize("multimask", [True, False])
def test_masks_equal_transformers(sam, prompt, multimask):
    hf, model = sam
    given = prompts()[prompt]
    images = len(next(iter(given.values())))
    pixels = torch.rand(images, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(pixel_values=pixels, multimask_output=multimask, **given)
    embeddings = model.get_image_embeddings(pixels)
    np.testing.assert_allclose(embeddings.numpy(), hf.get_image_embeddings(pixels).detach().numpy(), atol=1e-4, rtol=0)
    for source in ({"pixel_values": pixels}, {"image_embeddings": embeddings}):
        out = model.generate({**source, **given}, multimask_output=multimask)
        for name in ("pred_masks", "iou_scores"):
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
