"""A prompt without an image: the Qwen2-VL and Qwen3-VL families run it as HF does (no vision units), in both layouts; a type whose
adapter needs images says so and what to do, instead of failing on the missing inputs."""

from __future__ import annotations

import pytest
from transformers import AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests.image_text_sweep import BUILDERS, hf_greedy

TEXT = "Describe the sea in a few words"


@pytest.mark.parametrize("kv_offload", [True, False])
@pytest.mark.parametrize("model_type", ["qwen2_vl", "qwen3_vl"])  # no grid: positions; no grid: position-table taps
def test_a_text_only_prompt_equals_hf(model_type, kv_offload, tmp_path):
    build, _ = BUILDERS[model_type]
    folder = build(tmp_path / model_type)
    processor = AutoProcessor.from_pretrained(folder)
    inputs = processor(text=[TEXT], return_tensors="pt")
    ref = hf_greedy(folder, inputs, 6)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=8, ctx_len=128, num_cores=1)
    info = model.generate(inputs={k: v.numpy() for k, v in inputs.items()}, processor=processor, generation_len=6, stream=False)
    assert info.generated_ids[0][0][: len(ref)].tolist() == ref


def test_a_type_that_needs_images_refuses_a_text_only_prompt_clearly(tmp_path):
    build, _ = BUILDERS["llava"]
    folder = build(tmp_path / "llava")
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=True)
    model.compile(prefill_seq_len=8, ctx_len=128, num_cores=1)
    inputs = {k: v.numpy() for k, v in processor(text=[TEXT], return_tensors="pt").items()}
    with pytest.raises(ValueError, match="'llava' takes prompts with images only here .*Pass images="):
        model.generate(inputs=inputs, processor=processor, generation_len=4, stream=False)
