"""Vision-language models in two graphs (QEfficient's ``kv_offload=True`` layout).

* ``QEffVisionEncoder``: pixel_values [B, 3, H, W] -> vision_embeds [B, n_image_tokens, hidden],
  the projected image features, run once per image.
* ``QEffImageTextDecoder``: the language model in retained-state form. Besides input_ids and
  position_ids it takes ``vision_embeds`` (every image of the batch, flattened to rows) and
  ``image_idx`` [B, 1], the row of the next unused image embedding for each sequence. Image-token
  positions take their embedding from ``vision_embeds``; ``image_idx_output`` carries the offset to
  the next chunk, so image tokens may span prefill chunks.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.static_kv import QEffCausalLM


class QEffVisionEncoder(nn.Module):
    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        self.hf = hf_model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # Llava's own get_image_features splits its output per image with sizes fixed at trace
        # time; the same steps without the split keep the batch dimension dynamic.
        cfg = self.hf.config
        hidden = self.hf.model.vision_tower(pixel_values, output_hidden_states=True).hidden_states
        layer = cfg.vision_feature_layer
        features = hidden[layer] if isinstance(layer, int) else torch.cat([hidden[i] for i in layer], dim=-1)
        if cfg.vision_feature_select_strategy == "default":
            features = features[:, 1:]  # drop the CLS position
        return self.hf.model.multi_modal_projector(features)


class QEffImageTextDecoder(nn.Module):
    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        self.hf = hf_model
        text = hf_model.model.language_model
        self.lm = QEffCausalLM(hf_model, base=text, lm_head=hf_model.lm_head, config=hf_model.config.text_config)
        self.image_token_id = hf_model.config.image_token_id

    @property
    def config(self):
        return self.lm.config

    @property
    def num_layers(self) -> int:
        return self.lm.num_layers

    def kv_shape(self, batch_size: int, ctx_len: int) -> tuple[int, int, int, int]:
        return self.lm.kv_shape(batch_size, ctx_len)

    def forward(self, input_ids, position_ids, vision_embeds, image_idx, *past):
        embeds = self.lm.base.get_input_embeddings()(input_ids)  # [B, S, H]
        is_image = input_ids == self.image_token_id
        rows = vision_embeds.reshape(-1, vision_embeds.shape[-1])  # every image of the batch, in order
        # the k-th image token of a row takes image row image_idx + k
        index = torch.cumsum(is_image.to(torch.int64), dim=1) - 1 + image_idx
        index = index.clamp(min=0, max=rows.shape[0] - 1)
        merged = torch.where(is_image.unsqueeze(-1), rows[index], embeds)
        logits, retained = self.lm.step(position_ids, list(past), inputs_embeds=merged)
        next_idx = image_idx + is_image.sum(dim=1, keepdim=True)
        return (logits, next_idx, *retained)
