"""A numpy stand-in for transformers' Qwen2-VL video processor (``Qwen2VLVideoProcessor``, torchvision only, so it
cannot run here), and the Qwen-VL processors of the tiny models of tests/vlm_fixtures.py and
tests/vlm_family_fixtures_more.py with it plugged in, so ``processor(videos=..., text=...)`` runs HF's own
processor code: placeholder expansion (Qwen3-VL's per-frame timestamps), ``mm_token_type_ids``, Qwen2.5-VL's
``second_per_grid_ts``.

What it reproduces of ``Qwen2VLVideoProcessor._preprocess`` (transformers 5.24): every frame of a video resized to
one ``smart_resize`` size (multiples of patch x merge within the pixel bounds, bicubic), rescaled by 1/255 and
normalised with the CLIP mean/std; the frame count padded to a multiple of ``temporal_patch_size`` with copies of
the last frame; ``patchify``'s flatten order, rows (t, h-block, w-block, merge row, merge col) and columns
(channel, temporal, patch row, patch col); ``video_grid_thw`` (t / temporal_patch_size, h / patch, w / patch).
The frames are resized by PIL rather than torchvision (pixel values may differ in the last bits; the layout is
the same). Metadata: every frame sampled at ``fps``, as ``VideoMetadata`` (HF's ``return_metadata``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from transformers import AutoProcessor, Qwen2_5_VLProcessor, Qwen2VLProcessor, Qwen3VLProcessor
from transformers.image_processing_utils import BatchFeature
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize
from transformers.video_processing_utils import VideoProcessorMixin
from transformers.video_utils import VideoMetadata

import tests.vlm_fixtures  # noqa: F401  (registers the tiny Qwen2-VL processor that AutoProcessor loads)


class TinyQwen2VLVideoProcessor(VideoProcessorMixin):
    """Qwen2VLVideoProcessor's outputs for videos given as lists of PIL frames, with the image processor's settings."""

    def __init__(self, image_processor, fps: float = 2.0) -> None:
        super().__init__()
        self.image_processor = image_processor
        self.patch_size = image_processor.patch_size
        self.temporal_patch_size = image_processor.temporal_patch_size
        self.merge_size = image_processor.merge_size
        self.fps = fps

    def __call__(self, videos, **kwargs) -> BatchFeature:
        patches, grids, metadata = [], [], []
        for frames in videos:
            video, grid = self._video([np.asarray(f.convert("RGB")) for f in frames])
            patches.append(video)
            grids.append(grid)
            metadata.append(VideoMetadata(total_num_frames=len(frames), fps=self.fps, frames_indices=list(range(len(frames)))))
        grid_thw = np.array(grids, np.int64)
        return BatchFeature({"pixel_values_videos": np.concatenate(patches), "video_grid_thw": grid_thw, "video_metadata": metadata})

    def _video(self, frames: list[np.ndarray]) -> tuple[np.ndarray, list[int]]:
        ip, p, m, tp = self.image_processor, self.patch_size, self.merge_size, self.temporal_patch_size
        height, width = smart_resize(*frames[0].shape[:2], factor=p * m, min_pixels=ip.size.shortest_edge, max_pixels=ip.size.longest_edge)
        mean, std = np.array(ip.image_mean, np.float32), np.array(ip.image_std, np.float32)
        resized = [np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BICUBIC), np.float32) for f in frames]
        video = np.stack([((f * np.float32(ip.rescale_factor) - mean) / std).transpose(2, 0, 1) for f in resized])
        if pad := -len(video) % tp:
            video = np.concatenate([video, np.repeat(video[-1:], pad, axis=0)])
        t, h, w = len(video) // tp, height // p, width // p
        patches = video.reshape(t, tp, 3, h // m, m, p, w // m, m, p).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return patches.reshape(t * h * w, 3 * tp * p * p), [t, h, w]


def _image_and_text_only(processor_class):
    """``processor_class`` built from its image processor and tokenizer alone: transformers checks a video processor's
    class against ``transformers.VideoProcessorMixin``, a torchvision placeholder here, so the stand-in is set after."""

    class Tiny(processor_class):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)

    return Tiny


PROCESSOR_CLASSES = {
    "qwen2_vl": _image_and_text_only(Qwen2VLProcessor),
    "qwen2_5_vl": _image_and_text_only(Qwen2_5_VLProcessor),
    "qwen3_vl": _image_and_text_only(Qwen3VLProcessor),
}
PROCESSOR_CLASSES["qwen3_vl_moe"] = PROCESSOR_CLASSES["qwen3_vl"]


def video_processor(folder, model_type: str, fps: float = 2.0):
    """The model type's own HF processor for the tiny model in ``folder``, with the stand-in video processor."""
    saved = AutoProcessor.from_pretrained(folder)  # the tiny image processor and tokenizer
    processor = PROCESSOR_CLASSES[model_type](image_processor=saved.image_processor, tokenizer=saved.tokenizer)
    processor.video_processor = TinyQwen2VLVideoProcessor(saved.image_processor, fps=fps)
    return processor
