"""Late-interaction retrieval models (transformers' ``ColPaliForRetrieval``, ``ColQwen2ForRetrieval``,
``ColModernVBertForRetrieval``): a vision-language model whose last hidden states, projected and L2-normalized, are one
embedding per token; a query's and a page's embeddings are scored by ColBERT's MaxSim (the processor's
``score_retrieval``).

Two graphs, so that the language model's weights are held once for pages and queries:

* the page images' tower: the image-text path's vision graph of the retriever's own vision-language model
  (``QEffVisionEncoder`` with its vision adapter: PaliGemma's fixed-size pages, Qwen2-VL's patch grids, ModernVBERT's
  Idefics3 tiles);
* ``QEffRetrievalEmbeddings``: input_ids, attention_mask, token_type_ids and the image-token embeddings as rows
  [rows, hidden] -> the per-token embeddings [batch, seq, dim]. The k-th image token of the batch (row-major) takes
  row k, as HF's ``masked_scatter`` fills them; a query binds one placeholder row it never reads. The attention mask
  is written out here: causal, padding never seen, and tokens of type 0 (what PaliGemma's processor writes) see each
  other both ways; the host feeds type 1 where the retriever reads no token types. ModernVBERT's text model is
  ModernBERT, an encoder: every token sees every other one but padding, within a window in its sliding layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.encoder import bidirectional_masks, eager_attention
from QEfficient.transform.vision_adapters import VisionLanguageAdapter, get_vision_adapter
from QEfficient.transform.vision_adapters.idefics3 import ModernVBertAdapter


@dataclass(frozen=True)
class RetrieverRule:
    """What differs between the retrievers' language models."""

    vlm_types: tuple[str, ...]  # the vision-language models it is built on (the image-text path's vision adapters)
    first_position: int  # PaliGemma counts positions from 1 (over the padding too), Qwen2-VL from 0
    # PaliGemma's prefix attends both ways; ColQwen2's forward passes no token types, so the host feeds type 1 (causal)
    reads_token_types: bool
    encoder: bool = False  # the text model attends both ways (ModernBERT), its sliding layers within their window
    # the tower's adapter where the vision-language model is not an image-text model (none: the image-text path's)
    vision_adapter: VisionLanguageAdapter | None = None


RETRIEVERS = {
    "colpali": RetrieverRule(("paligemma",), first_position=1, reads_token_types=True),
    "colqwen2": RetrieverRule(("qwen2_vl", "qwen2_5_vl"), first_position=0, reads_token_types=False),  # ColQwen2, ColQwen2.5
    "colmodernvbert": RetrieverRule(
        ("modernvbert",), first_position=0, reads_token_types=False, encoder=True, vision_adapter=ModernVBertAdapter("modernvbert")
    ),
}


def retriever_rule(config) -> RetrieverRule:
    """The rule of a retriever's config, refused (before anything is traced) where this graph does not reproduce it."""
    model_type = config.model_type
    rule = RETRIEVERS.get(model_type)
    vlm = getattr(config, "vlm_config", None)
    if rule is None or getattr(vlm, "model_type", None) not in rule.vlm_types:
        known = ", ".join(f"{t} over {' or '.join(r.vlm_types)}" for t, r in RETRIEVERS.items())
        raise NotImplementedError(f"'{model_type}' over '{getattr(vlm, 'model_type', None)}' is not a retriever this graph runs ({known}).")
    towers = (vlm.vision_config.model_type, vlm.text_config.model_type)
    if rule.encoder and towers != ("siglip_vision_model", "modernbert"):  # the tiles' embeddings and masks are theirs
        raise NotImplementedError(
            f"'{model_type}' over a {towers[0]} tower and a {towers[1]} text model is not supported (SigLIP, ModernBERT)."
        )
    layer_types = set(getattr(vlm.text_config, "layer_types", None) or ["full_attention"])
    written = {"full_attention", "sliding_attention"} if rule.encoder else {"full_attention"}
    if not layer_types <= written:  # PaliGemma 2's Gemma 2: causal sliding windows, whose mask this graph does not write
        raise NotImplementedError(f"'{model_type}' over a text model with {sorted(layer_types)} layers is not supported.")
    return rule


class VisionLanguageView(nn.Module):
    """What the vision adapters read of an image-text model (``.model``, ``.config``), over a retriever's ``vlm``."""

    def __init__(self, vlm: PreTrainedModel) -> None:
        super().__init__()
        self.model = vlm
        self.config = vlm.config


def retriever_vision_adapter(hf_model: PreTrainedModel) -> VisionLanguageAdapter:
    """The image-text path's vision adapter of a retriever's vision-language model (``retriever_rule`` checks the type)."""
    return retriever_rule(hf_model.config).vision_adapter or get_vision_adapter(hf_model.config.vlm_config)


def prefix_mask(attention_mask: torch.Tensor, token_type_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive [B, 1, S, S] mask of transformers' ``create_causal_mask`` with PaliGemma's ``block_sequence_ids``
    (0 for type-0 tokens): causal, or both ways between type-0 tokens; padding keys hidden. A row that sees nothing (a
    padded position with only padding before it) attends evenly instead: its embedding is zeroed by the mask anyway."""
    seq = attention_mask.shape[1]
    positions = torch.arange(seq, device=attention_mask.device)
    causal = positions[None, :] <= positions[:, None]  # [query, key]
    prefix = token_type_ids == 0
    both_ways = prefix[:, :, None] & prefix[:, None, :]
    seen = (causal[None] | both_ways) & attention_mask.bool()[:, None, :]
    return torch.where(seen, 0.0, torch.finfo(dtype).min).to(dtype)[:, None]


class QEffRetrievalEmbeddings(nn.Module):
    """(input_ids, attention_mask, token_type_ids [B, S], vision_embeds [rows, hidden]) -> embeddings [B, S, dim]."""

    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        self.rule = retriever_rule(hf_model.config)
        self.hf = hf_model
        vlm_config = hf_model.config.vlm_config
        self.image_token_id = vlm_config.image_token_id
        self.hidden_size = vlm_config.text_config.hidden_size

    def forward(self, input_ids, attention_mask, token_type_ids, vision_embeds):
        vlm = self.hf.vlm
        is_image = input_ids == self.image_token_id
        # the k-th image token of the batch, row-major, takes row k (HF's masked_scatter order)
        index = (torch.cumsum(is_image.reshape(-1).to(torch.int64), dim=0) - 1).reshape(input_ids.shape)
        index = index.clamp(min=0, max=vision_embeds.shape[0] - 1)
        text_ids = torch.where(is_image, torch.zeros_like(input_ids), input_ids)  # the image token may be past the vocabulary
        embeds = vlm.get_input_embeddings()(text_ids)
        merged = torch.where(is_image.unsqueeze(-1), vision_embeds[index].to(embeds.dtype), embeds)
        first = self.rule.first_position
        positions = torch.arange(first, input_ids.shape[1] + first, device=input_ids.device).unsqueeze(0).expand_as(input_ids)
        if self.rule.encoder:
            hidden = self._encoder_hidden(merged, attention_mask, positions)
        else:
            mask = prefix_mask(attention_mask, token_type_ids, merged.dtype)
            hidden = vlm.language_model(
                inputs_embeds=merged, attention_mask=mask, position_ids=positions, use_cache=False
            ).last_hidden_state
        embeddings = self.hf.embedding_proj_layer(hidden)
        embeddings = embeddings / embeddings.norm(dim=-1, keepdim=True)
        return embeddings * attention_mask.unsqueeze(-1).to(embeddings.dtype)

    def _encoder_hidden(self, merged: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """ModernBERT over the merged embeddings: one mask per layer type (padding hidden; the sliding layers' window
        too), written here as the encoder graph writes them (transformers builds the windowed one with vmap)."""
        text_model = self.hf.vlm.text_model
        config = text_model.config
        sliding = "sliding_attention" in (getattr(config, "layer_types", None) or ())
        masks = bidirectional_masks(attention_mask, config.sliding_window if sliding else None, type(text_model).__module__)
        with eager_attention(config):
            return text_model(inputs_embeds=merged, attention_mask=masks, position_ids=positions).last_hidden_state
