"""Unlimited OCR: DeepSeek-OCR's layout. A SAM-style tower (neck and two stride-2 convolutions) whose feature map is
the patch grid of a CLIP-style encoder; the encoder's outputs (class token dropped) beside the SAM features, a linear
projector, a learned newline after each row of the grid and a view separator after the image (the global view: a
fixed number of image tokens per image). Its MoE text model's layers use reference sliding-window attention
(R-SWA): the whole prompt stays visible, generated tokens only within the window.

The host gives the language graph each row's prompt length through the multimodal-positions input
(generation/mrope.py ``PromptLengthRope``: position minus prompt length); a wrapper of the text model adds the
R-SWA mask (the sliding window's, or a prompt slot) to the ones the static-KV path builds.
DeepSeek-OCR 2's host side: the processor's local crops are refused with that reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from QEfficient.transform.vision_adapters.deepseek_ocr2 import DeepseekOcr2Adapter


class _ReferenceSlidingText(nn.Module):
    """The text model with the R-SWA layers' mask: a slot in the window, or in the row's prompt (and causal)."""

    def __init__(self, text: nn.Module) -> None:
        super().__init__()
        self.text = text

    def get_input_embeddings(self) -> nn.Module:
        return self.text.get_input_embeddings()

    def forward(self, attention_mask=None, prompt_length=None, **kwargs):
        masks = dict(attention_mask)
        slots = torch.arange(masks["full_attention"].shape[-1], device=prompt_length.device)
        in_prompt = slots[None, None, None, :] < prompt_length[:, None, :, None]
        masks["reference_sliding_attention"] = masks["sliding_attention"] | (masks["full_attention"] & in_prompt)
        return self.text(attention_mask=masks, **kwargs)


@dataclass(frozen=True)
class UnlimitedOcrAdapter(DeepseekOcr2Adapter):
    local_crops_refusal = "Unlimited OCR's local crops are not supported: call the processor with crop_to_patches=False."
    reference_prompt: bool = True  # models/image_text.py: the positions input carries the prompt length

    def _grid(self, config) -> int:
        sam = config.vision_config.sam_config
        return sam.image_size // sam.patch_size // 4  # two stride-2 convolutions after the neck

    def tokens_per_unit(self, config) -> int:
        q = self._grid(config)
        return q * (q + 1) + 1  # a newline after each row, the view separator

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        tower = hf.model.vision_tower
        sam, clip = tower.sam_encoder, tower.vision_encoder
        # both position tables are resampled when traced (antialiased bicubic, not exportable); images here are the
        # tower's size and the SAM grid is the encoder's table, where those resamplings are the identity
        hidden = sam.patch_embed(pixel_values.to(sam.patch_embed.projection.weight.dtype))
        if sam.pos_embed is not None:
            hidden = hidden + sam.pos_embed
        for layer in sam.layers:
            hidden = layer(hidden)
        features = sam.proj(sam.neck(hidden))  # [N, C, q, q]
        units = features.shape[0]
        flat = features.flatten(2).transpose(1, 2)
        embed = clip.embeddings
        tokens = torch.cat([embed.class_embedding.expand(units, 1, -1), flat], dim=1)
        tokens = clip.pre_layrnorm(tokens + embed.position_embedding(embed.position_ids))
        encoded = clip.encoder(inputs_embeds=tokens).last_hidden_state
        projected = hf.model.multi_modal_projector(torch.cat([encoded[:, 1:], flat], dim=-1))
        q, width = features.shape[-1], projected.shape[-1]
        rows = torch.cat([projected.view(units, q, q, width), hf.model.image_newline.expand(units, q, 1, width)], dim=2)
        separator = hf.model.view_separator.expand(units, 1, width)
        return torch.cat([rows.reshape(units, q * (q + 1), width), separator], dim=1)

    # --- the language graph: R-SWA -----------------------------------------------------------------
    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        return _ReferenceSlidingText(hf.model.language_model), hf.lm_head, hf.config.text_config

    def decoder_example(self, batch: int, seq: int) -> dict[str, torch.Tensor]:
        return {"rope_position_ids": (torch.arange(seq) - seq)[None, None].repeat(3, batch, 1)}

    def decoder_axes(self) -> dict[str, dict[int, str]]:
        return {"rope_position_ids": {1: "batch_size", 2: "seq_len"}}

    def language_kwargs(self, position_ids: torch.Tensor, rope_position_ids: torch.Tensor) -> dict[str, Any]:
        return {"prompt_length": position_ids - rope_position_ids[0]}
