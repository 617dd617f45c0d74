"""IDEFICS (Flamingo-style): gated cross-attention blocks, one before every ``cross_layer_interval``-th decoder
layer, read the image (a CLIP tower's states, resampled by a Perceiver to fixed latents where the config says so).
Mllama's cross-attention support: the vision graph computes every cross block's keys and values (and key norm) once
per image, one ``vision_embeds`` row per image; the language graph runs the blocks over a sequence's image slots
(``compile(max_num_images=N)``) at every prefill chunk and decode step. Which image a token attends is HF's
``image_attention_mask`` (one tile per image), made on the host: the last image before the token, none after an
end-of-sequence token until the next image; a token that sees no image gets a zero cross-attention output (HF's
``cross_attention_gate``); decode repeats the prompt's last row. The decoupled embedding and head (extra tokens
beside the vocabulary) run as one table and one head."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPast

from QEfficient.transform.adapters.base import CacheGeometryAdapter
from QEfficient.transform.vision_adapters.mllama import MllamaAdapter


def _gated_cross_block(
    block: nn.Module, hidden: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor, seen: torch.Tensor
) -> torch.Tensor:
    """IdeficsGatedCrossAttentionLayer over retained keys/values [B, heads, images x L, hd]; ``mask`` [B, 1, S, images x L]
    (additive), ``seen`` [B, S, 1]: the token sees an image."""
    attn = block.cross_attn
    bsz, seq, _ = hidden.shape
    query = attn.q_proj(block.input_layernorm(hidden)).view(bsz, seq, attn.num_heads, attn.head_dim).transpose(1, 2)
    if attn.qk_layer_norms:
        query = attn.q_layer_norm(query)
    weights = torch.softmax(torch.matmul(query, key.transpose(-1, -2)) * attn.scaling + mask, dim=-1, dtype=torch.float32).to(query.dtype)
    out = attn.o_proj(torch.matmul(weights, value).transpose(1, 2).reshape(bsz, seq, -1)) * seen
    hidden = hidden + block.act_cross_attn(block.alpha_cross_attn) * out
    return hidden + block.act_dense(block.alpha_dense) * block.mlp(block.post_attention_layernorm(hidden))


class _IdeficsText(nn.Module):
    """IdeficsModel's text half with the images' retained cross keys/values (``cross_kv``), the additive image mask
    and ``seen`` [B, S, 1]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        embed = model.embed_tokens
        extra = [embed.additional_embedding.weight] if embed.num_additional_embeddings else []
        self.table = nn.Embedding.from_pretrained(torch.cat([embed.weight, *extra]), freeze=True)

    def get_input_embeddings(self) -> nn.Module:
        return self.table

    def forward(
        self,
        input_ids=None,
        inputs_embeds=None,
        attention_mask=None,
        position_ids=None,
        cache=None,
        cross_kv=(),
        image_mask=None,
        seen=None,
        **_,
    ):
        hidden = self.table(input_ids) if inputs_embeds is None else inputs_embeds
        interval = self.model.cross_layer_interval
        for i, layer in enumerate(self.model.layers):
            if i % interval == 0:
                j = i // interval
                hidden = _gated_cross_block(
                    self.model.gated_cross_attn_layers[j], hidden, cross_kv[2 * j], cross_kv[2 * j + 1], image_mask, seen
                )
            hidden = layer(hidden, attention_mask=attention_mask, position_ids=position_ids, cache=cache)
        return BaseModelOutputWithPast(last_hidden_state=self.model.norm(hidden))


def _head(lm_head: nn.Module) -> nn.Linear:
    """IdeficsDecoupledLinear as one linear layer: the vocabulary's rows, then the additional tokens'."""
    extra = [lm_head.additional_fc.weight] if getattr(lm_head, "out_additional_features", 0) else []
    weight = torch.cat([lm_head.weight, *extra])
    head = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    head.weight = nn.Parameter(weight, requires_grad=False)
    return head


@dataclass(frozen=True)
class IdeficsAdapter(MllamaAdapter):
    nested_images: bool = False
    n_cross: int = 0
    eod_token_id: int = -1  # HF's processor: a token after the end of a sequence sees no image until the next one
    processor_tensors = "pt"  # IdeficsProcessor builds its batch with torch only

    def for_config(self, config) -> IdeficsAdapter:
        vision = config.vision_config
        patches = (vision.image_size // vision.patch_size) ** 2 + 1
        return replace(
            self,
            n_cross=config.num_hidden_layers // config.cross_layer_interval,
            n_kv=config.num_attention_heads,
            head_dim=config.hidden_size // config.num_attention_heads,
            positions=config.perceiver_config.resampler_n_latents if config.use_resampler else patches,
            max_tiles=1,  # an image is one unit (the host's mask is [S, images, 1])
            eod_token_id=eos if isinstance(eos := config.eos_token_id, int) else -1,
        )

    # --- the vision graph: every cross block's keys/values of the image, one row per image ------------
    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.zeros(2, 3, img_size, img_size)}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {"pixel_values": {0: "num_images"}, "vision_embeds": {0: "num_images"}}

    def image_features(self, hf: nn.Module, pixel_values) -> torch.Tensor:
        model = hf.model
        states = model.vision_model(pixel_values=pixel_values).last_hidden_state
        if hf.config.use_resampler:
            states = model.perceiver_resampler(states)
        units = states.shape[0]
        kv = []
        for block in model.gated_cross_attn_layers:
            attn = block.cross_attn
            key = attn.k_proj(states).view(units, -1, self.n_kv, self.head_dim).transpose(1, 2)
            value = attn.v_proj(states).view(units, -1, self.n_kv, self.head_dim).transpose(1, 2)
            kv += [attn.k_layer_norm(key) if attn.qk_layer_norms else key, value]
        return torch.stack(kv, dim=1).reshape(units, 1, -1)

    def embedding_width(self, config, hidden_size: int) -> int:
        return 2 * self.n_cross * self.n_kv * self.positions * self.head_dim

    # --- the language graph ----------------------------------------------------------------------
    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        return _IdeficsText(hf.model), _head(hf.lm_head), hf.config

    def cache_adapter(self, text_config) -> CacheGeometryAdapter:
        return CacheGeometryAdapter(text_config.model_type)

    def cross_attention_kwargs(
        self, vision_embeds: torch.Tensor, is_image: torch.Tensor, cross_attention_mask: torch.Tensor
    ) -> dict[str, Any]:
        """Each sequence's image slots' keys/values, and HF's masks from the host's per-token mask [B, S, images, 1]."""
        batch, width = is_image.shape[0], vision_embeds.shape[-1]
        rows = vision_embeds.reshape(batch, -1, width)  # [B, images, width]
        images = rows.shape[1]
        kv = rows.reshape(batch, images, 2 * self.n_cross, self.n_kv, self.positions, self.head_dim)
        kv = kv.permute(2, 0, 3, 1, 4, 5).reshape(2 * self.n_cross, batch, self.n_kv, images * self.positions, self.head_dim)
        attends = cross_attention_mask.flatten(2) > 0  # [B, S, images]
        attends = attends[..., None].expand(*attends.shape, self.positions).reshape(batch, 1, -1, images * self.positions)
        minimum = torch.tensor(torch.finfo(rows.dtype).min, dtype=rows.dtype)
        zero = torch.zeros((), dtype=rows.dtype)
        seen = (cross_attention_mask > 0).flatten(2).any(dim=-1)[..., None].to(rows.dtype)  # HF's cross_attention_gate
        return {"cross_kv": kv.unbind(0), "image_mask": torch.where(attends, zero, minimum), "seen": seen}

    def image_token_id(self, config) -> int:
        token = getattr(config, "image_token_id", None)
        if token is None:  # IdeficsConfig does not name it: only the processor's tokenizer knows "<image>"
            raise ValueError(
                "IDEFICS' config does not name its image token: set config.image_token_id to "
                "processor.tokenizer.convert_tokens_to_ids('<image>') (save the config, or pass it to from_pretrained)."
            )
        return int(token)

    # --- the host side ---------------------------------------------------------------------------
    def image_placeholder(self, processor) -> str:
        return ""  # the processor puts each prompt's image before its text

    def processor_images(self, images: list) -> list:
        """One image per prompt (the processor puts it before the text), or a list per prompt (HF puts them after it)."""
        nested = any(isinstance(img, (list, tuple)) for img in images)
        return [list(img) if isinstance(img, (list, tuple)) else [img] for img in images] if nested else list(images)

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        pixels, keep = self.prompt_images(inputs, img_size, config)  # pixels [prompts, images, 3, H, W]
        pixels = pixels.reshape(-1, *pixels.shape[-3:])[keep]
        return {"pixel_values": np.ascontiguousarray(pixels), "_tokens": np.ones(len(pixels), np.int64)}

    def prompt_cross_mask(self, tokens: list[int], vision: dict[str, np.ndarray], image_token_id: int) -> np.ndarray:
        """[len(tokens), images, 1]: the image each token attends, as HF's processor makes image_attention_mask
        (image_attention_mask_for_packed_input_ids): the last image at or before it, none after an end-of-sequence
        token until the next image."""
        out = np.zeros((len(tokens), len(vision["_tokens"]), 1), np.int64)
        image, after_eod = -1, False
        for pos, token in enumerate(tokens):
            if token == image_token_id:
                image, after_eod = image + 1, False
            if 0 <= image < out.shape[1] and not after_eod:
                out[pos, image, 0] = 1
            after_eod = after_eod or token == self.eod_token_id
        return out
