"""SAM, SAM 2 and SAM-HQ (transformers' ``SamModel``, ``Sam2Model``, ``SamHQModel``: ``AutoModelForMaskGeneration``) as
two modules: the image encoder (pixels -> image embeddings, SAM 2's at three resolutions, SAM-HQ's with its first
global attention block's ViT features; the expensive part, run once per image) and the prompt encoder with the mask
decoder (image embeddings and one kind of prompt -> masks and their predicted IoU, SAM 2's object score too), run once
per set of prompts.

transformers' mask decoder keeps mask tokens 1-3 (``multimask_output=True``) or token 0 (False) with a ``slice`` it
builds in Python; here the decoder returns all four (the name ``slice`` in its module answers every mask while our
forward runs) and the host keeps the ones asked for, so one graph serves both. SAM-HQ's decoder, run with one mask and
``hq_token_only`` under that patch, returns its four masks and its high-quality token's mask, and its four IoU scores:
the host sorts, picks and adds them as transformers' decoder does. The prompt kind decides the graph:
transformers pads a points-only prompt with one extra point, not a prompt with a box.
"""

from __future__ import annotations

import builtins
import contextlib
import sys
import threading
from collections.abc import Iterator

import torch
from torch import nn
from transformers import PreTrainedModel

# the transformers classes run here (SAM 2's checkpoints say "sam2_video", which transformers' mask generation mapping
# also loads as Sam2Model); types of that mapping not run here, with why
MASK_GENERATORS = ("SamModel", "Sam2Model", "SamHQModel")
UNSUPPORTED_MASK_GENERATORS = {
    **dict.fromkeys(("edgetam", "edgetam_video"), "its image encoder is a timm backbone, which the export does not trace"),
    **dict.fromkeys(("sam3_tracker", "sam3_video"), "it tracks objects through a video's frames with a memory"),
}
SAM2_LEVELS = 3  # SAM 2's decoder reads three image embedding maps (two narrowed by its conv_s0 / conv_s1)


def check_mask_generator(model: PreTrainedModel) -> None:
    name = type(model).__name__
    reason = UNSUPPORTED_MASK_GENERATORS.get(model.config.model_type)
    if reason is None and name not in MASK_GENERATORS:
        reason = f"the promptable segmenters run here are {', '.join(MASK_GENERATORS)} (SAM 2's video tracker is not)"
    if reason is None and is_sam2(model) and model.config.vision_config.num_feature_levels != SAM2_LEVELS:
        reason = f"its image encoder gives {model.config.vision_config.num_feature_levels} feature levels, not SAM 2's {SAM2_LEVELS}"
    if reason is not None:
        raise NotImplementedError(f"{name} ({model.config.model_type}) is not supported: {reason}.")


def is_sam2(model: PreTrainedModel) -> bool:
    """SAM 2's image model, whatever its config's type says (its checkpoints': "sam2_video")."""
    return type(model).__name__ == "Sam2Model"


def is_sam_hq(model: PreTrainedModel) -> bool:
    return type(model).__name__ == "SamHQModel"


def has_vit_features(model: PreTrainedModel) -> bool:
    """Whether SAM-HQ's decoder reads ViT features: where its encoder has a global attention block (transformers' rule)."""
    return is_sam_hq(model) and any(layer.window_size == 0 for layer in model.vision_encoder.layers)


def embedding_count(model: PreTrainedModel) -> int:
    """The image encoder's outputs the decoder reads: SAM's one map, SAM 2's three (high resolution first), SAM-HQ's map
    and its first global attention block's ViT features (none where it has no global block)."""
    return SAM2_LEVELS if is_sam2(model) else 2 if has_vit_features(model) else 1


_PATCH_LOCK = threading.Lock()
_patch_depth: dict[str, int] = {}  # per patched module (SAM's, SAM 2's)


@contextlib.contextmanager
def every_mask(model: PreTrainedModel) -> Iterator[None]:
    """While it runs, the mask decoder's ``slice(...)`` keeps every mask token (see the module docstring). Nested and
    concurrent uses of one module share one patch, removed when the last ends; a plain SamModel or Sam2Model run
    meanwhile in another thread would return every mask too, so the wrappers here are what such runs should use."""
    name = type(model.mask_decoder).__module__
    module = sys.modules[name]
    with _PATCH_LOCK:
        if _patch_depth.get(name, 0) == 0:
            module.slice = lambda *args: builtins.slice(None)
        _patch_depth[name] = _patch_depth.get(name, 0) + 1
    try:
        yield
    finally:
        with _PATCH_LOCK:
            _patch_depth[name] -= 1
            if _patch_depth[name] == 0:
                del module.slice


class QEffSamImageEncoder(nn.Module):
    """forward(pixel_values [B, 3, S, S]) -> image embeddings [B, C, h, w], SAM 2's a tuple of them (transformers'
    ``get_image_embeddings``), SAM-HQ's with its first global block's ViT features [B, h, w, width]."""

    def __init__(self, sam: PreTrainedModel) -> None:
        super().__init__()
        self.hf = sam

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if is_sam_hq(self.hf):  # its map and every global block's features, by name: the decoder reads the first block's
            out = self.hf.vision_encoder(pixel_values=pixel_values)
            intermediate = out.intermediate_embeddings
            return (out.last_hidden_state, intermediate[0]) if intermediate else out.last_hidden_state
        embeddings = self.hf.get_image_embeddings(pixel_values)
        return embeddings if isinstance(embeddings, torch.Tensor) else tuple(embeddings)


class QEffSamPromptDecoder(nn.Module):
    """forward(*image_embeddings, *the kind's prompts) -> (pred_masks [B, P, 4, h, w], iou_scores [B, P, 4]; SAM 2's
    object_score_logits [B, P, 1]; SAM-HQ's masks [B, P, 5, h, w], the high-quality token's last): every mask token's
    masks for each prompt of each image."""

    def __init__(self, sam: PreTrainedModel, prompt_names: tuple[str, ...]) -> None:
        super().__init__()
        self.hf = sam
        self.prompt_names = prompt_names  # transformers' keyword names of the graph's prompt inputs
        self.levels = embedding_count(sam)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        embeddings, prompts = inputs[: self.levels], inputs[self.levels :]
        given = dict(zip(self.prompt_names, prompts))
        if is_sam_hq(self.hf):  # one mask, the high-quality token's only: under the patch, every mask (module docstring)
            given |= {"multimask_output": False, "hq_token_only": True, "intermediate_embeddings": list(embeddings[1:])}
        else:
            given["multimask_output"] = True
        image_embeddings = list(embeddings) if is_sam2(self.hf) else embeddings[0]
        with every_mask(self.hf):
            out = self.hf(image_embeddings=image_embeddings, **given)
        if out.pred_masks.shape[2] != self.hf.mask_decoder.num_mask_tokens:  # the decoder no longer picks by slice()
            raise NotImplementedError(
                f"{type(self.hf).__name__}'s mask decoder returned {out.pred_masks.shape[2]} masks, not its "
                f"{self.hf.mask_decoder.num_mask_tokens} mask tokens': this transformers version chooses them otherwise."
            )
        object_scores = getattr(out, "object_score_logits", None)
        return (out.pred_masks, out.iou_scores) + ((object_scores,) if object_scores is not None else ())
