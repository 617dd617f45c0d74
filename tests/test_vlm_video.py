"""Video for the Qwen-VL family (qwen2_vl, qwen2_5_vl, qwen3_vl, qwen3_vl_moe): frames in, greedy tokens equal HF
``generate`` on the same processor outputs, in both layouts. Tiny random models (tests/vlm_fixtures.py,
tests/vlm_family_fixtures_more.py); videos processed by HF's own processors with the numpy stand-in video
processor of tests/vlm_tiny_video.py (torchvision is not installed). One batch holds a video-only prompt, an
image-only prompt and a prompt with an image and a video, with prefill chunks that cut through the vision tokens;
Qwen2.5-VL's frame groups are 2/3 s apart (temporal positions 0, 2, 5), Qwen3-VL's carry timestamps in the text."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText

from QEfficient import QEFFAutoModelForImageTextToText
from QEfficient.generation.mrope import MultimodalRope
from QEfficient.runtime.ort_session import open_artifact_session
from QEfficient.transform.vision_adapters import get_vision_adapter
from tests.vlm_family_fixtures_more import build_qwen3_vl, build_qwen3_vl_moe
from tests.vlm_fixtures import build_qwen2_5_vl, build_qwen2_vl
from tests.vlm_tiny_video import video_processor

BUILDERS = {"qwen2_vl": build_qwen2_vl, "qwen2_5_vl": build_qwen2_5_vl, "qwen3_vl": build_qwen3_vl, "qwen3_vl_moe": build_qwen3_vl_moe}
IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
NEW_TOKENS = 7


def frame(seed: int, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8))


def clip(seed: int, frames: int, size: tuple[int, int]) -> list[Image.Image]:
    return [frame(seed * 10 + i, size) for i in range(frames)]


def video_slot(arch: str) -> str:
    # Qwen3-VL's processor writes "<t seconds><|vision_start|>...<|vision_end|>" for each frame group itself
    return "<|video_pad|>" if arch.startswith("qwen3") else "<|vision_start|><|video_pad|><|vision_end|>"


def requests(arch: str):
    """(prompts, images, videos): a video alone, an image alone, an image and a video in one prompt."""
    video = video_slot(arch)
    prompts = [f"Watch: {video} What happens", f"Look: {IMAGE} Describe it", f"First {IMAGE} then {video} compare"]
    images = [frame(1, (40, 50)), frame(2, (30, 30))]
    videos = [clip(3, 6, (28, 28)), clip(4, 3, (28, 42))]  # 3 frames: the last is repeated to fill a frame group
    return prompts, images, videos


def per_prompt(prompts, images, videos):
    """Each prompt with its own images and videos, in the order the batch gives them."""
    images, videos = iter(images), iter(videos)
    for text in prompts:
        yield text, [next(images) for _ in range(text.count("<|image_pad|>"))], [next(videos) for _ in range(text.count("<|video_pad|>"))]


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def family(request, tmp_path_factory):
    """(arch, folder, processor, HF's greedy tokens for each request prompt)."""
    arch = request.param
    folder = BUILDERS[arch](tmp_path_factory.mktemp(arch))
    processor = video_processor(folder, arch, fps=3.0)
    hf = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    refs = []
    for text, images, videos in per_prompt(*requests(arch)):
        inputs = processor(text=[text], images=images or None, videos=videos or None, return_tensors="pt")
        with torch.no_grad():
            out = hf.generate(**inputs, do_sample=False, max_new_tokens=NEW_TOKENS, pad_token_id=0)
        refs.append(out[0, inputs["input_ids"].shape[1] :].tolist())
    return arch, folder, processor, hf, refs


@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
def test_video_image_and_both_in_one_batch_match_hf(family, kv_offload):
    arch, folder, processor, _, refs = family
    prompts, images, videos = requests(arch)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=8, ctx_len=96, batch_size=3, num_cores=1)
    info = model.generate(processor=processor, prompts=prompts, images=images, videos=videos, generation_len=NEW_TOKENS, stream=False)
    for row, ref in zip(info.generated_ids[0], refs):
        assert row[: len(ref)].tolist() == ref


def test_video_embeddings_equal_hf_get_video_features(family):
    """The vision graph on each video (frame groups attend within themselves; Qwen2.5-VL's windows span time
    steps; Qwen3-VL's position table repeats per frame group) against HF's ``get_video_features``."""
    arch, folder, processor, hf, _ = family
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=True)
    model.compile(prefill_seq_len=8, ctx_len=96, num_cores=1)
    session = open_artifact_session(model.qpc_paths["vision_qpc_path"], 1, spin=False)
    videos = requests(arch)[2]
    inputs = processor(text=[f"{video_slot(arch)} and {video_slot(arch)}"], videos=videos, return_tensors="pt")
    vision = model.adapter.vision_inputs(inputs, 0, hf.config)
    ours = [session.run(None, model.adapter.graph_inputs(model.adapter.select_units(vision, np.array([u]))))[0][0] for u in range(2)]
    with torch.no_grad():
        ref = hf.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"]).pooler_output
    hidden = hf.config.text_config.hidden_size
    np.testing.assert_allclose(np.concatenate(ours)[:, :hidden], torch.cat(list(ref)).numpy(), rtol=1e-4, atol=1e-4)


def test_host_rotary_positions_equal_get_rope_index(family):
    """The numpy rule (generation/mrope.py) against HF's ``get_rope_index`` on the batch's prompts, video units included."""
    arch, folder, processor, hf, _ = family
    adapter = get_vision_adapter(hf.config)
    for text, images, videos in per_prompt(*requests(arch)):
        inputs = processor(text=[text], images=images or None, videos=videos or None, return_tensors="pt")
        kwargs = {k: inputs[k] for k in ("image_grid_thw", "video_grid_thw", "second_per_grid_ts") if k in inputs}
        with torch.no_grad():
            expected, delta = hf.model.get_rope_index(inputs["input_ids"], inputs["mm_token_type_ids"], **kwargs)
        vision = adapter.vision_inputs(inputs, 0, hf.config)
        tokens = adapter.prompt_ids(inputs, hf.config)[0].tolist()
        ours, our_delta = MultimodalRope(hf.config.image_token_id, hf.config.vision_config.spatial_merge_size)(tokens, vision)
        np.testing.assert_array_equal(ours, expected[:, 0].numpy())
        assert our_delta == int(delta.reshape(-1)[0])


@pytest.mark.parametrize("family", ["qwen3_vl"], indirect=True)
@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
def test_continuous_batching_with_videos_matches_hf(family, kv_offload):
    arch, folder, processor, _, refs = family
    prompts, images, videos = requests(arch)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload, continuous_batching=True)
    model.compile(prefill_seq_len=8, ctx_len=96, full_batch_size=2, num_cores=1)
    info = model.generate(processor=processor, prompts=prompts, images=images, videos=videos, generation_len=NEW_TOKENS, stream=False)
    assert len(info.generated_ids) == len(refs)
    for row, ref in zip(info.generated_ids, refs):
        assert np.asarray(row).reshape(-1)[: len(ref)].tolist() == ref


@pytest.mark.parametrize("family", ["qwen2_vl"], indirect=True)
def test_a_prompt_with_more_video_tokens_than_videos_is_refused(family):
    arch, folder, processor, hf, _ = family
    adapter = get_vision_adapter(hf.config)
    text, _, videos = next(per_prompt(*requests(arch)))
    inputs = dict(processor(text=[text], videos=videos, return_tensors="np"))
    inputs["input_ids"] = np.concatenate([inputs["input_ids"], np.full((1, 20), hf.config.video_token_id)], 1)
    inputs["attention_mask"] = np.ones_like(inputs["input_ids"])
    with pytest.raises(ValueError, match="more video tokens than the videos give"):
        adapter.vision_inputs(inputs, 0, hf.config)


def test_video_for_a_model_without_video_support_is_refused(tmp_path):
    from tests.vlm_fixtures import build_llava

    model = QEFFAutoModelForImageTextToText.from_pretrained(build_llava(tmp_path / "llava"), kv_offload=True)
    inputs = {"input_ids": np.ones((1, 4), np.int64), "pixel_values_videos": np.zeros((8, 3), np.float32)}
    with pytest.raises(NotImplementedError, match="Video input is not supported for llava"):
        model.generate(inputs=inputs, generation_len=2, stream=False)
