"""Video for the LLaVA family (LLaVA-NeXT-Video, LLaVA-OneVision, Video-LLaVA), in both layouts: greedy tokens equal
HF ``generate`` for a batch of two videos, and for a batch of two prompts holding a video and an image in either order
(rows in prompt order, video tokens across prefill chunks); continuous batching of videos (LLaVA-NeXT-Video);
OneVision's bilinear frame pooling on an odd patch grid; clear errors for wrong frame sizes and token counts.

HF's video processors need torchvision (not installed), so the tiny processors get ``TinyVideoProcessor``: the same
steps on PIL/numpy (resize, rescale, normalize, frames stacked; square frames, where HF's shortest-edge resize and
center crop reduce to one resize), and the processor's own ``replace_video_token`` expands each ``<video>``
placeholder. HF's model is the reference on the very same ``pixel_values_videos``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.feature_extraction_utils import BatchFeature

from QEfficient import QEFFAutoModelForImageTextToText
from QEfficient.export.onnx_export import export_vision_onnx
from QEfficient.transform.image_text import QEffVisionEncoder
from QEfficient.transform.vision_adapters import get_vision_adapter
from tests.image_text_sweep import image
from tests.vlm_family_fixtures import build_llava_onevision
from tests.vlm_family_fixtures_more import build_llava_next_video
from tests.vlm_fixtures_b import build_video_llava

BUILDERS = {"llava_next_video": build_llava_next_video, "llava_onevision": build_llava_onevision, "video_llava": build_video_llava}
SIDE = 28  # the tiny towers' image size
NEW_TOKENS = 7


class TinyVideoProcessor:
    """A video processor's steps for square frames: each frame resized to ``size`` (bicubic), rescaled to [0, 1],
    normalized with the image processor's mean and std, channels first; a batch of videos stacked."""

    def __init__(self, size: int, mean, std) -> None:
        self.size, self.mean, self.std = size, np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def __call__(self, videos, return_tensors=None, **kwargs) -> BatchFeature:
        def frame(f) -> np.ndarray:  # a PIL image or an [H, W, 3] uint8 array
            f = f if isinstance(f, Image.Image) else Image.fromarray(f)
            f = np.asarray(f.convert("RGB").resize((self.size, self.size), Image.BICUBIC), np.float32) / 255.0
            return ((f - self.mean) / self.std).transpose(2, 0, 1)

        pixels = np.stack([np.stack([frame(f) for f in video]) for video in videos])
        return BatchFeature({"pixel_values_videos": pixels}, tensor_type=return_tensors)


def hf_tokens(hf, inputs) -> list[int]:
    """HF generate's greedy new tokens for one prompt."""
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, max_new_tokens=NEW_TOKENS, pad_token_id=0)
    return out[0, inputs["input_ids"].shape[1] :].tolist()


def video(seed: int, frames: int = 3) -> np.ndarray:
    return (np.random.default_rng(seed).random((frames, SIDE, SIDE, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def arch(request, tmp_path_factory):
    folder = BUILDERS[request.param](tmp_path_factory.mktemp(request.param))
    processor = AutoProcessor.from_pretrained(folder)
    images = processor.image_processor
    processor.video_processor = TinyVideoProcessor(SIDE, images.image_mean, images.image_std)
    hf = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    return request.param, folder, processor, hf, {}


@pytest.fixture(scope="module", params=[True, False], ids=["two_graphs", "one_graph"])
def compiled(request, arch):
    name, folder, processor, hf, refs = arch
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=request.param)
    model.compile(prefill_seq_len=7, ctx_len=160, batch_size=2, num_cores=1)

    def reference(key: tuple, **media) -> list[int]:
        """HF's greedy tokens for one prompt, computed once for both layouts."""
        if key not in refs:
            refs[key] = hf_tokens(hf, processor(**media, return_tensors="pt"))
        return refs[key]

    return model, processor, reference


def test_a_batch_of_two_videos_matches_hf(compiled):
    model, processor, reference = compiled
    videos, prompt = [video(1), video(2)], "Look: <video> Describe the clip in a few words"
    info = model.generate(processor=processor, videos=videos, prompts=[prompt, prompt], generation_len=NEW_TOKENS, stream=False)
    refs = [reference(("one video", seed), videos=[v], text=[prompt]) for seed, v in enumerate(videos)]
    assert refs[0] != refs[1]  # same words, different frames: the frames decide the tokens
    for ref, row in zip(refs, info.generated_ids[0]):
        assert row[: len(ref)].tolist() == ref


def test_videos_and_images_in_prompt_order_match_hf(compiled):
    # one batch: four frames before an image, then an image before four other frames; each row's video and image rows
    # reach their tokens in prompt order, across rows too
    model, processor, reference = compiled
    texts = ["Look at <video> then <image> and say", "Look at <image> then <video> and tell"]
    images, videos = [image(2, (30, 30)), image(3, (20, 40))], [video(7, 4), video(8, 4)]
    inputs = processor(images=images, videos=videos, text=texts, return_tensors="pt", padding=True)
    info = model.generate(inputs=inputs, processor=processor, generation_len=NEW_TOKENS, stream=False)
    for img, clip, text, row in zip(images, videos, texts, info.generated_ids[0]):
        ref = reference(("mixed", text), images=[img], videos=[clip], text=[text])
        assert row[: len(ref)].tolist() == ref


def test_bad_video_inputs_get_clear_errors(arch):
    name, folder, processor, hf, _ = arch
    adapter = get_vision_adapter(hf.config)
    inputs = processor(videos=[video(1)], text=["Look: <video> here"], return_tensors="np")
    with pytest.raises(ValueError, match="compiled for img_size=56"):
        adapter.vision_inputs(inputs, 56, hf.config)
    ids = inputs["input_ids"]
    keep = np.ones(ids.shape[1], bool)
    keep[np.flatnonzero(ids[0] == hf.config.video_token_id)[0]] = False
    inputs["input_ids"] = ids[:, keep]  # one video token short: an error, never rows shifted onto the wrong tokens
    with pytest.raises(ValueError, match="video tokens"):
        adapter.vision_inputs(inputs, SIDE, hf.config)


@pytest.fixture(scope="module")
def three_videos(tmp_path_factory):
    """LLaVA-NeXT-Video's tiny model, its processor, three videos, one prompt and HF's greedy tokens for each."""
    folder = build_llava_next_video(tmp_path_factory.mktemp("cb"))
    processor = AutoProcessor.from_pretrained(folder)
    processor.video_processor = TinyVideoProcessor(SIDE, processor.image_processor.image_mean, processor.image_processor.image_std)
    hf = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    videos, prompt = [video(1), video(2), video(3)], "Look: <video> Describe the clip in a few words"
    refs = [hf_tokens(hf, processor(videos=[clip], text=[prompt], return_tensors="pt")) for clip in videos]
    return folder, processor, videos, prompt, refs


@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
def test_continuous_batching_of_videos_matches_hf(three_videos, kv_offload):
    # three videos, two cache slots: the third waits for a free slot
    folder, processor, videos, prompt, refs = three_videos
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload, continuous_batching=True)
    model.compile(prefill_seq_len=7, ctx_len=96, full_batch_size=2, num_cores=1)
    info = model.generate(processor=processor, videos=videos, prompts=[prompt] * 3, generation_len=NEW_TOKENS, stream=False)
    for ref, row in zip(refs, info.generated_ids):
        assert list(row[: len(ref)]) == ref


def test_onevision_pools_an_odd_patch_grid_as_hf(tmp_path):
    # a 5x5 patch grid shrinks to 3x3 (bilinear, a ratio that is not an integer): the vision graph's video rows
    # equal HF's get_video_features
    import onnxruntime as ort
    from transformers import LlavaOnevisionConfig

    config = LlavaOnevisionConfig.from_pretrained(build_llava_onevision(tmp_path / "ov"))
    config.vision_config.image_size = 35
    torch.manual_seed(0)
    hf = AutoModelForImageTextToText.from_config(config).eval()
    encoder = QEffVisionEncoder(hf)
    frames = torch.randn(1, 3, 3, 35, 35)
    with torch.no_grad():
        ref = hf.model.get_video_features(frames, return_dict=True).pooler_output[0].numpy()
    ids = np.r_[[5], [config.video_token_id] * len(ref), [6]][None]
    vision = encoder.adapter.vision_inputs({"input_ids": ids, "pixel_values_videos": frames.numpy()}, 35, config)
    session = ort.InferenceSession(str(export_vision_onnx(encoder, tmp_path, "vision", 35)))
    np.testing.assert_allclose(session.run(None, encoder.adapter.graph_inputs(vision))[0][0], ref, atol=1e-5)
