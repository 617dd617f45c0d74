"""Vision-language models as a vision graph and a language graph (QEfficient's ``kv_offload=True``
layout; export/one_graph.py joins the two for ``kv_offload=False``).

* ``QEffVisionEncoder``: the vision inputs (pixel_values, ...) -> vision_embeds
  [num_images, tokens_per_image, hidden], run once per image.
* ``QEffImageTextDecoder``: the language model in retained-state form. Besides input_ids and
  position_ids it takes ``vision_embeds`` (every image of the batch, flattened to rows) and
  ``image_idx`` [B, 1], the row of the first image embedding this chunk uses for each sequence.
  Image-token positions take their embedding from ``vision_embeds``, so image tokens may span
  prefill chunks; ``image_idx_output`` is where the next chunk starts. A recurrent or hybrid text model
  (LFM2, Qwen3.5's Gated DeltaNet, Nemotron-H) carries its conv/SSM states after the KV cache, exactly as
  the decoder graph does (transform/recurrent_state.py).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.rewrites import apply_rewrites
from QEfficient.transform.static_kv import QEffCausalLM
from QEfficient.transform.vision_adapters import VisionLanguageAdapter, get_vision_adapter


class QEffVisionEncoder(nn.Module):
    def __init__(self, hf_model: PreTrainedModel, adapter: VisionLanguageAdapter | None = None) -> None:
        super().__init__()
        self.hf = hf_model
        self.adapter = adapter or get_vision_adapter(hf_model.config)
        apply_rewrites(hf_model)  # the towers' own (Granite Speech's blocks, Qwen3-ASR's windows), also where no decoder wraps it

    def forward(self, *vision_inputs: torch.Tensor) -> torch.Tensor:
        return self.adapter.image_features(self.hf, *vision_inputs)


def image_blocks(is_image: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """([B,S], [B,S]): for an image token, the positions of the first and last tokens of its run of image
    tokens; for any other token, its own position twice. The runtime keeps every run inside one chunk."""
    previous = nn.functional.pad(is_image, (1, 0))[:, :-1]
    block = torch.cumsum((is_image & ~previous).to(torch.int64), dim=1)
    same = (block[:, :, None] == block[:, None, :]) & is_image[:, :, None] & is_image[:, None, :]
    others = position_ids[:, None, :]
    ends = torch.where(same, others, torch.full_like(others, -1)).amax(dim=-1)
    beyond = (position_ids.amax() + 1).expand_as(others)  # not an int64 extreme: the exporter passes fill values as floats
    starts = torch.where(same, others, beyond).amin(dim=-1)
    return torch.minimum(starts, position_ids), torch.maximum(ends, position_ids)


class QEffImageTextDecoder(nn.Module):
    def __init__(self, hf_model: PreTrainedModel, adapter: VisionLanguageAdapter | None = None) -> None:
        super().__init__()
        self.hf = hf_model
        self.vision_adapter = adapter or get_vision_adapter(hf_model.config)
        base, lm_head, text_config = self.vision_adapter.language(hf_model)
        arch = self.vision_adapter.cache_adapter(text_config)
        self.lm = QEffCausalLM(hf_model, arch, base=base, lm_head=lm_head, config=text_config)
        self.image_token_id = self.vision_adapter.image_token_id(hf_model.config)
        self.image_token_text_id = self.vision_adapter.image_token_text_id(hf_model.config)
        self.embedding_width = self.vision_adapter.embedding_width(hf_model.config, text_config.hidden_size)

    @property
    def config(self):
        return self.lm.config

    @property
    def embedding_rows(self) -> int | None:
        """Rows of the text embedding table (IDEFICS' extra rows included): the ids a prompt may hold besides image
        tokens, which never reach the table. None where the table is not a plain embedding."""
        table = self.lm.base.get_input_embeddings()
        if not isinstance(table, nn.Embedding):
            return None
        return int(table.num_embeddings) + int(getattr(table, "num_additional_embeddings", 0) or 0)

    @property
    def num_layers(self) -> int:
        return self.lm.num_layers

    def kv_shape(self, batch_size: int, ctx_len: int) -> tuple[int, int, int, int]:
        return self.lm.kv_shape(batch_size, ctx_len)

    @property
    def state_layers(self) -> tuple[bool, ...]:
        return self.lm.state_layers

    @property
    def state_shapes(self) -> list[tuple[int, ...]]:
        return self.lm.state_shapes

    @property
    def extra_input_names(self) -> list[str]:
        return list(self.vision_adapter.decoder_example(1, 1))

    def forward(self, input_ids, position_ids, vision_embeds, image_idx, *rest):
        n_extra = len(self.extra_input_names)
        extra, past = rest[:n_extra], rest[n_extra:]
        is_image = input_ids == self.image_token_id
        if self.vision_adapter.cross_attention:  # the image is read by cross-attention layers, not merged into embeddings
            kwargs = self.vision_adapter.cross_attention_kwargs(vision_embeds, is_image, *extra)
            logits, retained = self.lm.step(position_ids, list(past), input_ids=input_ids, **kwargs)
            return (logits, image_idx + is_image.sum(dim=1, keepdim=True), *retained)
        rows = vision_embeds.reshape(-1, vision_embeds.shape[-1])  # every image of the batch, in order
        # the k-th image token of a row takes image row image_idx + k; one past the rows given is text, as HF embeds an
        # image token the model generates. A step without images binds one placeholder row and image_idx past it: by
        # one at decode, by two in the prefill of a call whose prompts hold no image (generation's DECODE_IMAGE_IDX and
        # TEXT_ONLY_PREFILL_IMAGE_IDX); a prefill with images has image_idx <= the rows.
        index = torch.cumsum(is_image.to(torch.int64), dim=1) - 1 + image_idx
        with_images = image_idx <= rows.shape[0]
        prefill = image_idx != rows.shape[0] + 1
        takes_row = is_image & (index < rows.shape[0])
        # a prompt's image token may lie outside the text vocabulary (Gemma3): never look it up
        text_ids = torch.where(takes_row, torch.zeros_like(input_ids), input_ids)
        if self.image_token_text_id is not None:
            text_ids = torch.where(is_image & ~takes_row, torch.full_like(input_ids, self.image_token_text_id), text_ids)
        embeds = self.lm.base.get_input_embeddings()(text_ids)
        embeds = self.vision_adapter.text_embeddings(self.hf, input_ids, embeds, with_images)
        index = index.clamp(min=0, max=rows.shape[0] - 1)
        image_rows, image_kwargs = self.vision_adapter.image_token_rows(takes_row, rows[index].to(embeds.dtype), embeds.shape[-1])
        merged = torch.where(takes_row.unsqueeze(-1), image_rows, embeds)
        upto = start = None
        if self.vision_adapter.bidirectional_images:
            in_block = is_image
            for token in self.vision_adapter.block_token_ids:
                in_block = in_block | (input_ids == token)
            start, upto = image_blocks(in_block, position_ids)
        elif self.vision_adapter.bidirectional_prompt:  # a step sees its whole chunk (one token at decode: causal)
            upto = position_ids.amax(dim=1, keepdim=True).expand_as(position_ids)
        kwargs = {**self.vision_adapter.language_kwargs(position_ids, *extra), **image_kwargs}
        kwargs.update(self.vision_adapter.text_kwargs(self.lm.base, input_ids, is_image, takes_row, prefill, with_images))
        logits, retained = self.lm.step(position_ids, list(past), inputs_embeds=merged, visible_upto=upto, visible_from=start, **kwargs)
        next_idx = image_idx + is_image.sum(dim=1, keepdim=True)
        return (logits, next_idx, *retained)
