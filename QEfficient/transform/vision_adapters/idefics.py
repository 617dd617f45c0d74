"""IDEFICS (Flamingo-style): gated cross-attention blocks, one before every ``cross_layer_interval``-th decoder
layer, read the image (a CLIP tower's states, resampled by a Perceiver to fixed latents where the config says so).
Mllama's cross-attention support: the vision graph computes every cross block's keys and values (and key norm) once
per image, one ``vision_embeds`` row per image; the language graph runs the blocks over that row at every prefill
chunk and decode step. A token before the image sees no image (HF zeroes its cross-attention output); at or after
it, the image, as decode does. The decoupled embedding and head (extra tokens beside the vocabulary) run as one
table and one head."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPast

from QEfficient.transform.adapters.base import CacheGeometryAdapter
from QEfficient.transform.vision_adapters.mllama import MllamaAdapter


def _gated_cross_block(block: nn.Module, hidden: torch.Tensor, key: torch.Tensor, value: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """IdeficsGatedCrossAttentionLayer over retained keys/values [B, heads, L, hd]; ``seen`` [B, S, 1]: the token sees the image."""
    attn = block.cross_attn
    bsz, seq, _ = hidden.shape
    query = attn.q_proj(block.input_layernorm(hidden)).view(bsz, seq, attn.num_heads, attn.head_dim).transpose(1, 2)
    if attn.qk_layer_norms:
        query = attn.q_layer_norm(query)
    weights = torch.softmax(torch.matmul(query, key.transpose(-1, -2)) * attn.scaling, dim=-1, dtype=torch.float32).to(query.dtype)
    out = attn.o_proj(torch.matmul(weights, value).transpose(1, 2).reshape(bsz, seq, -1)) * seen
    hidden = hidden + block.act_cross_attn(block.alpha_cross_attn) * out
    return hidden + block.act_dense(block.alpha_dense) * block.mlp(block.post_attention_layernorm(hidden))


class _IdeficsText(nn.Module):
    """IdeficsModel's text half with the image's retained cross keys/values (``cross_kv``) and ``seen`` [B, S, 1]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        embed = model.embed_tokens
        extra = [embed.additional_embedding.weight] if embed.num_additional_embeddings else []
        self.table = nn.Embedding.from_pretrained(torch.cat([embed.weight, *extra]), freeze=True)

    def get_input_embeddings(self) -> nn.Module:
        return self.table

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, position_ids=None, cache=None, cross_kv=(), seen=None, **_):
        hidden = self.table(input_ids) if inputs_embeds is None else inputs_embeds
        interval = self.model.cross_layer_interval
        for i, layer in enumerate(self.model.layers):
            if i % interval == 0:
                j = i // interval
                hidden = _gated_cross_block(self.model.gated_cross_attn_layers[j], hidden, cross_kv[2 * j], cross_kv[2 * j + 1], seen)
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

    def cross_attention_kwargs(self, vision_embeds: torch.Tensor, image_idx: torch.Tensor, is_image: torch.Tensor) -> dict[str, Any]:
        rows = vision_embeds.reshape(-1, vision_embeds.shape[-1])
        kv = rows.reshape(rows.shape[0], 2 * self.n_cross, self.n_kv, self.positions, self.head_dim)
        seen = (image_idx + torch.cumsum(is_image.to(torch.int64), dim=1)) > 0
        return {"cross_kv": kv.unbind(1), "seen": seen[:, :, None].to(rows.dtype)}

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

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        ids = np.asarray(inputs["input_ids"])
        mask = np.asarray(inputs["attention_mask"]) if "attention_mask" in inputs else np.ones_like(ids)
        per_prompt = ((ids == self.image_token_id(config)) & (mask > 0)).sum(axis=1)
        if (per_prompt != 1).any():
            raise ValueError(
                f"IDEFICS here takes one image per prompt; the prompts have {per_prompt.tolist()}: run prompts with several "
                "images, or none, with transformers' generate."
            )
        pixels = np.asarray(inputs["pixel_values"], dtype=np.float32)
        pixels = pixels.reshape(-1, *pixels.shape[-3:])
        if pixels.shape[-1] != img_size or pixels.shape[-2] != img_size:
            raise ValueError(
                f"pixel_values are {pixels.shape[-2]}x{pixels.shape[-1]} but the vision graph was compiled for img_size={img_size}."
            )
        return {"pixel_values": np.ascontiguousarray(pixels), "_tokens": np.ones(len(pixels), np.int64)}
