"""A prompt without an image runs as in HF, which skips its vision tower: every type's graphs take vision inputs
holding zero images (the Qwen2-VL and Qwen3-VL families build theirs on the host), in both layouts, alone, in a batch
with a prompt that has an image, and through continuous batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests.image_text_sweep import BUILDERS, hf_greedy, image

TEXT = "Describe the sea in a few words"
N = 6

# the host side each exercises: Qwen2-VL's and Qwen3-VL's own (no grid), the graphs' zero-image inputs read from the
# session for a plain tower (llava), tiles (llava_next), grids (kimi_k25), cross-attention (mllama; idefics, whose
# processor gives an all-zero image), and Ovis2's visual indicators, which keep their text embeddings without an image
TYPES = ["qwen2_vl", "qwen3_vl", "llava", "llava_next", "kimi_k25", "mllama", "idefics", "ovis2"]


@pytest.mark.parametrize("kv_offload", [True, False])
@pytest.mark.parametrize("model_type", TYPES)
def test_a_text_only_prompt_equals_hf(model_type, kv_offload, tmp_path):
    folder = BUILDERS[model_type][0](tmp_path / model_type)
    processor = AutoProcessor.from_pretrained(folder)
    inputs = processor(text=[TEXT], return_tensors="pt")
    ref = hf_greedy(folder, inputs, N)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=8, ctx_len=128, num_cores=1)
    info = model.generate(inputs={k: v.numpy() for k, v in inputs.items()}, processor=processor, generation_len=N, stream=False)
    assert info.generated_ids[0][0][: len(ref)].tolist() == ref
    # the same through processor= and prompts=, without images=
    info = model.generate(processor=processor, prompts=[TEXT], generation_len=N, stream=False)
    assert info.generated_ids[0][0][: len(ref)].tolist() == ref


def _hf_batch(folder, inputs) -> list[list[int]]:
    hf = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, max_new_tokens=N, pad_token_id=0)
    return out[:, inputs["input_ids"].shape[1] :].tolist()


@pytest.mark.parametrize("continuous_batching", [False, True])
@pytest.mark.parametrize("kv_offload", [True, False])
def test_a_batch_of_a_prompt_with_an_image_and_one_without(kv_offload, continuous_batching, tmp_path):
    folder = BUILDERS["llava"][0](tmp_path / "llava")
    processor = AutoProcessor.from_pretrained(folder)
    prompts = [BUILDERS["llava"][1], TEXT]
    inputs = processor(images=[image(0)], text=prompts, return_tensors="pt", padding=True)
    # each prompt alone in HF (a batch pads on the left there, on the right here)
    refs = [
        _hf_batch(folder, processor(images=[image(0)], text=[prompts[0]], return_tensors="pt"))[0],
        _hf_batch(folder, processor(text=[prompts[1]], return_tensors="pt"))[0],
    ]
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload, continuous_batching=continuous_batching)
    model.compile(prefill_seq_len=8, ctx_len=128, num_cores=1, batch_size=2, **({"full_batch_size": 2} if continuous_batching else {}))
    info = model.generate(inputs={k: v.numpy() for k, v in inputs.items()}, processor=processor, generation_len=N, stream=False)
    rows = [row for batch in info.generated_ids for row in np.atleast_2d(batch)]  # [batch, n] each, or one per prompt
    assert [row[:N].tolist() for row in rows] == refs


def test_a_prompt_with_an_image_token_and_no_image_is_refused_clearly(tmp_path):
    folder = BUILDERS["llava"][0](tmp_path / "llava")
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=128, num_cores=1)
    inputs = {k: v.numpy() for k, v in processor.tokenizer([BUILDERS["llava"][1]], return_tensors="pt").items()}
    with pytest.raises(ValueError, match="hold image tokens but no images were given: pass images="):
        model.generate(inputs=inputs, processor=processor, generation_len=N, stream=False)


@pytest.mark.parametrize("continuous_batching", [False, True])
@pytest.mark.parametrize("kv_offload", [True, False])
def test_cross_attention_prompts_without_an_image_in_batches(kv_offload, continuous_batching, tmp_path):
    # every sequence's image slots (two here) hold zeros, in a batch of two and in continuous batching's slots
    folder = BUILDERS["mllama"][0](tmp_path / "mllama")
    processor = AutoProcessor.from_pretrained(folder)
    prompts = [TEXT, "Name three colours"]
    refs = [hf_greedy(folder, processor(text=[p], return_tensors="pt"), N) for p in prompts]
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload, continuous_batching=continuous_batching)
    size = {"full_batch_size": 2} if continuous_batching else {}
    model.compile(prefill_seq_len=8, ctx_len=128, num_cores=1, batch_size=2, max_num_images=2, **size)
    info = model.generate(processor=processor, prompts=prompts, generation_len=N, stream=False)
    rows = [row for batch in info.generated_ids for row in np.atleast_2d(batch)]
    assert [row[: len(ref)].tolist() for row, ref in zip(rows, refs)] == refs


def test_images_with_no_placeholder_keep_their_error(tmp_path):
    # pixels that are not the processor's all-zero stand-in are never dropped: the adapter's error stands
    folder = BUILDERS["llava"][0](tmp_path / "llava")
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=128, num_cores=1)
    inputs = {k: v.numpy() for k, v in processor.tokenizer([TEXT], return_tensors="pt").items()}
    inputs["pixel_values"] = np.ones((1, 3, 56, 56), np.float32)
    with pytest.raises(ValueError, match="img_size=28"):
        model.generate(inputs=inputs, processor=processor, generation_len=N, stream=False)


@pytest.mark.parametrize("kv_offload", [True, False])
def test_ernie_sends_the_start_and_end_tokens_of_a_prompt_without_an_image_to_the_vision_experts(kv_offload, tmp_path):
    # HF's processor marks them by id in any prompt (only its decode gives no token types); this prompt's tokens change
    # when they go to the text experts, and it also generates the image token, which is text
    folder = BUILDERS["ernie4_5_vl_moe"][0](tmp_path / "ernie")
    processor = AutoProcessor.from_pretrained(folder)
    inputs = processor(text=["Look: <|IMAGE_START|><|IMAGE_END|> Count to five"], return_tensors="pt")
    ref = hf_greedy(folder, inputs, 8)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=8, ctx_len=128, num_cores=1)
    info = model.generate(inputs={k: v.numpy() for k, v in inputs.items()}, processor=processor, generation_len=8, stream=False)
    assert info.generated_ids[0][0][:8].tolist() == ref
