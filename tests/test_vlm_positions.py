"""Host-side position rules of vision adapters (numpy) against HF's own (torch), on prompts the real processors
make: several images per prompt, several sizes, slices in rows and columns. No model is built."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import MiniCPMV4_6ImageProcessorPil, MiniCPMV4_7Config
from transformers.models.minicpmv4_7.modeling_minicpmv4_7 import MiniCPMV4_7Model

from QEfficient.transform.vision_adapters.minicpmv4_7 import MiniCPMV4_7Adapter, torch_linspace_rounded
from tests.vlm_fixtures import _tokenizer
from tests.vlm_fixtures_positions import TinyMiniCPMV4_7Processor
from tests.vlm_fixtures_rec import _MINICPM_TOKENS


def test_linspace_rounds_as_torch():
    for end in range(0, 40):
        for steps in range(1, 25):
            expected = torch.linspace(0, end, steps).round().long().numpy()
            np.testing.assert_array_equal(torch_linspace_rounded(end, steps), expected, err_msg=f"{end=} {steps=}")


def assert_rule_matches_hf(rule, hf_rule, processor, prompts: list[tuple[str, list[tuple[int, int]]]], grids: str, vision_key: str) -> None:
    """For each (prompt, image sizes): the host rule's positions and decode offset equal HF's ``get_rope_index``."""
    rng = np.random.default_rng(0)
    for text, sizes in prompts:
        images = [(rng.random((*size, 3)) * 255).astype(np.uint8) for size in sizes]
        inputs = processor(images=images, text=text, return_tensors="pt")
        expected, delta = hf_rule.get_rope_index(
            inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"], **{grids: inputs[grids]}
        )
        got, got_delta = rule(inputs["input_ids"][0].tolist(), {vision_key: inputs[grids].numpy()})
        np.testing.assert_array_equal(got, expected[:, 0].numpy(), err_msg=text)
        assert got_delta == int(delta[0, 0])


class _HFCanvasRule:
    """HF's ``MiniCPMV4_7Model.get_rope_index`` with only the config it reads (no weights)."""

    _frame_end_idx = staticmethod(MiniCPMV4_7Model._frame_end_idx)
    _group_visual_frames = MiniCPMV4_7Model._group_visual_frames
    get_vision_position_ids = MiniCPMV4_7Model.get_vision_position_ids
    get_rope_index = MiniCPMV4_7Model.get_rope_index

    def __init__(self, config) -> None:
        self.config = config


@pytest.mark.parametrize("mode", ["16x", "4x"])
def test_minicpmv4_7_canvas_positions_match_hf(mode):
    tok = _tokenizer(list(_MINICPM_TOKENS.values()), _MINICPM_TOKENS)
    ids = tok.convert_tokens_to_ids
    markers = {"image_start_id": "<image>", "image_end_id": "</image>", "slice_start_id": "<slice>", "slice_end_id": "</slice>"}
    config = MiniCPMV4_7Config(
        image_token_id=ids("<|image_pad|>"), downsample_mode=mode, newline_id=ids("Ċ"), **{k: ids(v) for k, v in markers.items()}
    )
    rule = MiniCPMV4_7Adapter("minicpmv4_7").host_rope(config)
    image_processor = MiniCPMV4_6ImageProcessorPil(scale_resolution=56, patch_size=7, max_slice_nums=6, downsample_mode=mode)
    processor = TinyMiniCPMV4_7Processor(image_processor=image_processor, tokenizer=tok)
    prompts = [
        ("a <|image_pad|> b", [(40, 50)]),
        ("<|image_pad|><|image_pad|> two", [(120, 50), (50, 160)]),
        ("x <|image_pad|> y z <|image_pad|> w <|image_pad|>", [(30, 30), (90, 200), (170, 110)]),
    ]
    assert_rule_matches_hf(rule, _HFCanvasRule(config), processor, prompts, "target_sizes", "_target_sizes")


def test_hunyuan_vl_image_grid_positions_match_hf():
    from transformers import HunYuanVLConfig, HunYuanVLImageProcessorPil, HunYuanVLProcessor
    from transformers.models.hunyuan_vl.modeling_hunyuan_vl import HunYuanVLModel

    from QEfficient.transform.vision_adapters.hunyuan_vl import HunYuanVLAdapter
    from tests.vlm_fixtures_positions import _HUNYUAN_TOKENS

    class HFRule:
        get_vision_position_ids = HunYuanVLModel.get_vision_position_ids
        get_rope_index = HunYuanVLModel.get_rope_index

        def __init__(self, config) -> None:
            self.config = config

    tok = _tokenizer(list(_HUNYUAN_TOKENS.values()), _HUNYUAN_TOKENS)
    text = {"head_dim": 16, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 2, 2, 2]}}
    config = HunYuanVLConfig(text_config=text, image_token_id=tok.convert_tokens_to_ids("<image>"))
    rule = HunYuanVLAdapter("hunyuan_vl").for_config(config).host_rope(config)
    processor = HunYuanVLProcessor(
        image_processor=HunYuanVLImageProcessorPil(patch_size=7, merge_size=2, min_pixels=28 * 28, max_pixels=100 * 100), tokenizer=tok
    )
    image = "<img_start><image><img_end>"
    prompts = [(f"a {image} b", [(40, 50)]), (f"{image} x {image}{image} y", [(30, 90), (60, 40), (28, 28)])]
    assert_rule_matches_hf(rule, HFRule(config), processor, prompts, "image_grid_thw", "_grid_thw")


def test_hy_v4_vl_newline_grid_positions_match_hf():
    from transformers import HYV4VLConfig, HYV4VLImageProcessorPil
    from transformers.models.hy_v4_vl.modeling_hy_v4_vl import HYV4VLModel

    from QEfficient.transform.vision_adapters.hy_v4_vl import HYV4VLAdapter
    from tests.vlm_fixtures_dsa import TinyHYV4VLProcessor

    class HFRule:
        get_vision_position_ids = HYV4VLModel.get_vision_position_ids
        get_rope_index = HYV4VLModel.get_rope_index

        def __init__(self, config) -> None:
            self.config = config

    tok = _tokenizer(["<|image_pad|>", "<|video_pad|>"])
    text = {"qk_rope_head_dim": 8, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]}}
    config = HYV4VLConfig(text_config=text, image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"))
    rule = HYV4VLAdapter("hy_v4_vl").for_config(config).host_rope(config)
    image_processor = HYV4VLImageProcessorPil(patch_size=7, merge_size=2, min_pixels=28 * 28, max_pixels=100 * 100)
    processor = TinyHYV4VLProcessor(image_processor=image_processor, tokenizer=tok)
    image = "<|image_pad|>"
    # grids taller than wide (rows past the newline column) and wider: where the text resumes depends on both
    prompts = [(f"a {image} b", [(40, 50)]), (f"{image} x {image} y {image}", [(90, 30), (40, 60), (28, 28)])]
    assert_rule_matches_hf(rule, HFRule(config), processor, prompts, "image_grid_thw", "_grid_thw")
