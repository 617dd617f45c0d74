"""What the vision-language path needs to know about one architecture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.adapters import get_adapter
from QEfficient.transform.adapters.base import ArchAdapter, CacheGeometryAdapter
from QEfficient.transform.adapters.recurrent import RecurrentAdapter
from QEfficient.transform.adapters.sparse_attention import SparseAttentionAdapter


def two_image_patch_example(channels: int, patch_size: int, merge: int) -> dict[str, torch.Tensor]:
    """The export example of a tower fed the flattened patches of several images: two images of different grids,
    their position ids (transformers' ``get_vision_position_ids`` at spatial merge ``merge``) and each patch's image."""
    from transformers.vision_utils import get_vision_position_ids

    grid = torch.tensor([[1, 4, 4], [1, 2, 6]])
    n = int(grid.prod(-1).sum())
    return {
        "pixel_values": torch.zeros(n, channels * patch_size**2),
        "vision_position_ids": get_vision_position_ids(grid, merge),
        "image_segment": torch.repeat_interleave(torch.arange(2), grid.prod(-1)),
    }


@dataclass(frozen=True)
class VisionLanguageAdapter:
    """Per-architecture facts; the defaults fit models laid out like Llava
    (``model.vision_tower``, ``model.language_model``, ``lm_head``, square images of
    ``vision_config.image_size``, a fixed number of embeddings per image)."""

    model_type: str
    # Image tokens of one image attend to each other both ways (Gemma3): a prefill chunk must
    # hold a whole image block, so the runtime starts a block on a chunk boundary.
    bidirectional_images: bool = False
    # The whole prompt attends both ways at prefill, generated tokens causally (PaliGemma's prefix):
    # a prompt is prefilled in one chunk.
    bidirectional_prompt: bool = False
    # The text model reads the images through cross-attention layers (Mllama): each sequence's ``vision_embeds``
    # image slots stay bound for the whole generation, and image tokens keep their own embeddings.
    cross_attention: bool = False
    # Tokens of a bidirectional image block besides the image tokens (Molmo 2: the image's start, row and end
    # tokens), set by for_config; a block is a run of image tokens and these.
    block_token_ids: tuple[int, ...] = ()

    def for_config(self, config) -> VisionLanguageAdapter:
        """The adapter with what it needs of one model's config (most need nothing)."""
        return self

    # --- the vision graph -------------------------------------------------------------------
    def default_img_size(self, config) -> int:
        return int(config.vision_config.image_size)

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        """Trace-time inputs of the vision graph, by name (two images: no axis specialised on 1)."""
        return {"pixel_values": torch.zeros(2, 3, img_size, img_size)}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {"pixel_values": {0: "num_images"}, "vision_embeds": {0: "num_images"}}

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        """[num_images, tokens_per_image, text_hidden] for the inputs of vision_example."""
        return hf.model.get_image_features(pixel_values, return_dict=True).pooler_output

    # --- the language graph -----------------------------------------------------------------
    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        """(text base model, LM head, text config)."""
        return hf.model.language_model, hf.lm_head, hf.config.text_config

    def cache_adapter(self, text_config) -> ArchAdapter:
        """The language model's adapter: its recurrent mixers where it has them (hybrid text models), its sparse
        attention's indexer forward and cache width (DSA text models), else the KV cache's geometry only (the
        multimodal heads apply no logit post-processing of their own). The text adapter kept whole also post-processes
        logits by the text config's names: of the DSA text configs only Mistral Large 4's names one (a soft cap), which
        its multimodal head applies too."""
        adapter = get_adapter(text_config)
        if isinstance(adapter, (RecurrentAdapter, SparseAttentionAdapter)):
            return adapter
        return CacheGeometryAdapter(text_config.model_type)

    def embeds_example(self, batch: int, width: int) -> torch.Tensor:
        """Trace-time ``vision_embeds`` of the language graph for a batch of ``batch`` sequences."""
        return torch.zeros(2, 3, width)

    def image_token_id(self, config) -> int:
        return int(config.image_token_id)

    # Inputs of the language graph beyond ids, positions, embeddings and image_idx, as trace-time
    # examples for a [batch, seq] step, with their dynamic axes (Qwen2-VL: 3-D rotary positions).
    def decoder_example(self, batch: int, seq: int) -> dict[str, torch.Tensor]:
        return {}

    def decoder_axes(self) -> dict[str, dict[int, str]]:
        return {}

    def language_kwargs(self, position_ids: torch.Tensor, *extra: torch.Tensor) -> dict[str, Any]:
        """Keyword arguments for the text model made from the extra decoder inputs."""
        return {}

    def text_embeddings(self, hf: nn.Module, input_ids: torch.Tensor, embeds: torch.Tensor, with_images: torch.Tensor) -> torch.Tensor:
        """The input embeddings of the non-image tokens [B, S, hidden] (the text model's, unless the model gives
        some special tokens embeddings of its own: Ovis2's visual indicators). ``with_images`` [B, 1]: whether the
        step is a prefill of prompts that hold images (HF's steps that get ``pixel_values``)."""
        return embeds

    def text_kwargs(
        self,
        base: nn.Module,
        input_ids: torch.Tensor,
        is_image: torch.Tensor,
        takes_row: torch.Tensor,
        prefill: torch.Tensor,
        with_images: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for the text model made from the ids (Gemma 4's per-layer inputs); none by default.
        ``is_image``: every image token; ``takes_row``: those that take an image row (not one the model generated);
        ``prefill`` [B, 1]: whether the step is a prefill (HF's steps that get the processor's token type ids);
        ``with_images`` [B, 1]: whether it is the prefill of a call whose prompts hold images (HF's steps with pixels)."""
        return {}

    def image_token_text_id(self, config) -> int | None:
        """The id whose text embedding HF gives an image token that takes no image row (one the model generates:
        HF runs decode without images); None: the token's own."""
        return None

    def embedding_width(self, config, hidden_size: int) -> int:
        """Width of a ``vision_embeds`` row: the text hidden size, wider where an image token carries more (DeepStack)."""
        return hidden_size

    def image_token_rows(self, is_image: torch.Tensor, rows: torch.Tensor, hidden: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """Each position's input embedding from its ``vision_embeds`` row [B, S, width], and keyword arguments
        for the text model made from the image tokens' rows (none by default)."""
        return rows, {}

    # --- the host side ----------------------------------------------------------------------
    # the processor takes a batch's images nested per prompt ([[a], [b]]) rather than flat
    nested_images: bool = False
    # what generate(processor=...) asks the processor for: numpy, unless the processor gives dtypes numpy lacks
    # (Llama 4's bfloat16 pixels; IDEFICS' processor makes only torch tensors)
    processor_tensors = "np"

    takes_videos = False  # video frames in (``pixel_values_videos``): the Qwen-VL and LLaVA families
    takes_audio = False  # audio chunks in the place of images (``input_features``), no images: Voxtral
    audio_only_lora = False  # a LoRA adapter transformers turns on for prompts with audio only: Granite Speech

    def prompt_ids(self, inputs, config) -> np.ndarray:
        """The prompt ids the language graph reads, from the processor's outputs: its ``input_ids`` by default
        (Kosmos-2: the positions its mask marks as image tokens). Video tokens read as image tokens: both are
        placeholders of their unit's embeddings, which the language graph puts at image-token positions."""
        ids = np.asarray(inputs["input_ids"])
        if not self.takes_videos:
            return ids
        return np.where(ids == config.video_token_id, config.image_token_id, ids)

    def prompt_token_lists(self, inputs, config) -> list[list[int]]:
        """Each prompt's tokens as the language graph reads them (image tokens included): ``prompt_ids`` where the
        processor's attention mask keeps them."""
        ids = self.prompt_ids(inputs, config)
        mask = np.asarray(inputs["attention_mask"]) if "attention_mask" in inputs else np.ones_like(ids)
        return [[int(t) for t, m in zip(row, keep) if m] for row, keep in zip(ids, mask)]

    def image_placeholder(self, processor) -> str:
        """What a prompt writes where an image goes (the processor expands it to the image tokens)."""
        return processor.image_token

    def processor_images(self, images: list) -> list:
        """``images`` (one per prompt) in the form the processor takes for a batch."""
        return [[img] for img in images] if self.nested_images else list(images)

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        """The vision graph's inputs from the processor's output (keys starting with "_" are facts
        kept on the host); checks the image size."""
        pixels = np.asarray(inputs["pixel_values"], dtype=np.float32)
        if pixels.shape[-1] != img_size or pixels.shape[-2] != img_size:
            raise ValueError(
                f"pixel_values are {pixels.shape[-2]}x{pixels.shape[-1]} but the vision graph was compiled for "
                f"img_size={img_size}: let the processor resize, or compile with img_size={pixels.shape[-1]}."
            )
        return {"pixel_values": np.ascontiguousarray(pixels), "_tokens": np.full(len(pixels), self.tokens_per_unit(config), np.int64)}

    # Vision inputs come in units (an image, a tile); each unit gives a known number of image
    # tokens (``_tokens``), in prompt order.
    flat_embeddings = False  # the vision graph returns [1, tokens, hidden], not [units, tokens, hidden]
    vision_per_unit = False  # run the vision graph one unit at a time (units of different sizes)
    tiled_pages = False  # a retriever's pages come as [pages, tiles, ...] (ModernVBERT's Idefics3 tiles)

    def tokens_per_unit(self, config) -> int:
        """Image tokens one unit (image, tile) gives."""
        raise NotImplementedError

    def most_tokens_per_unit(self, config) -> int:
        """The most image tokens one unit gives (the default context's sizing): ``tokens_per_unit``."""
        return self.tokens_per_unit(config)

    def select_units(self, vision: dict[str, np.ndarray], units: np.ndarray) -> dict[str, np.ndarray]:
        return {name: value[units] for name, value in vision.items()}

    def prompt_positions(self, hf: nn.Module, tokens: list[int], vision: dict[str, np.ndarray]) -> tuple[np.ndarray, int] | None:
        """Rotary positions [k, len(tokens)] of one prompt whose own units are ``vision``, and the offset
        of decode positions from cache positions; None where rotary positions are the cache positions."""
        return None

    def host_rope(self, config) -> Any:
        """A rotary rule of the architecture's own for generation: numpy only, ``(tokens, vision) -> (positions
        [k, len], decode offset)``; None where it has none or follows Qwen2-VL's (``prompt_positions``)."""
        return None

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: value for name, value in vision.items() if not name.startswith("_")}
