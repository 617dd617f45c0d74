"""Graph specs name what the exporter writes; the host-side rotary rule equals transformers'."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.export.graph_specs import DecoderGraphSpec
from QEfficient.generation.mrope import MultimodalRope


def test_decoder_graph_names_come_from_its_spec(tiny_model_dir):
    model = QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"))
    graph = onnx.load(str(model.export()), load_external_data=False).graph
    spec = DecoderGraphSpec(model.config.num_hidden_layers)
    assert [i.name for i in graph.input] == spec.input_names
    assert [o.name for o in graph.output] == spec.output_names


@pytest.mark.parametrize(
    "grids, layout",
    [
        ([[1, 4, 6]], [3, "img0", 5]),
        ([[1, 4, 4], [1, 8, 2]], [2, "img0", 4, "img1", 3]),
        ([[1, 2, 2]], ["img0", 2]),
        ([], [6]),
    ],
)
def test_multimodal_rope_equals_get_rope_index(grids, layout):
    config = Qwen2VLConfig(
        text_config=dict(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, intermediate_size=16, vocab_size=64
        ),
        vision_config=dict(depth=1, embed_dim=16, hidden_size=32, num_heads=2, spatial_merge_size=2),
        image_token_id=60,
        vision_start_token_id=61,
    )
    hf = Qwen2VLForConditionalGeneration(config).eval()
    rng = np.random.default_rng(0)
    tokens: list[int] = []
    for part in layout:
        if isinstance(part, str):
            t, h, w = grids[int(part[3:])]
            tokens += [61] + [60] * (t * h * w // 4)
        else:
            tokens += rng.integers(0, 50, part).tolist()
    ids = torch.tensor([tokens])
    grid = torch.tensor(grids) if grids else None
    with torch.no_grad():
        expected, delta = hf.model.get_rope_index(ids, (ids == 60).int(), image_grid_thw=grid, attention_mask=torch.ones_like(ids))
    positions, ours = MultimodalRope(60, 2)(tokens, {"_grid_thw": np.array(grids, np.int64).reshape(-1, 3)})
    np.testing.assert_array_equal(positions, expected[:, 0].numpy())
    assert ours == int(delta.reshape(-1)[0])
