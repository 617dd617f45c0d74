"""The image encoder-decoders that are not transformers' VisionEncoderDecoderModel, in the same two exportable parts
(transform/vision_seq2seq.py):

* Pix2Struct (and its DePlot, MatCha, screen and chart checkpoints): a patch-sequence encoder over the processor's
  flattened patches, padding patches masked, and a T5-style text decoder (relative position bias: additive masks);
* Florence-2: a DaViT image tower whose projected features take the prompt's image placeholders, a BART encoder over
  that prompt, and the BART decoder (the text encoder-decoders' step, transform/seq2seq.py);
* BLIP captioning: a ViT whose patches a BERT-style text decoder reads by cross-attention (the image encoder-decoders'
  step, transform/vision_seq2seq.py);
* PP-FormulaNet: a SAM-style tower whose projected features an MBart-style decoder reads by cross-attention (the text
  encoder-decoders' step);
* T5Gemma 2: Gemma 3's SigLIP tower and projector into the prompt's placeholders, a Gemma-style encoder (sliding-window
  layers) and a decoder with merged self- and cross-attention (the text encoder-decoders' step).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.seq2seq import merged_attention_fill_masks, windowed_encoder_masks
from QEfficient.transform.vision_seq2seq import QEffVisionSeq2SeqEncoder


class QEffPix2StructEncoder(QEffVisionSeq2SeqEncoder):
    """forward(flattened_patches [B, P, 2 + patch values], attention_mask [B, P]) -> cross keys/values over the P
    patches, padding ones included (the decoder's cross mask hides them)."""

    def __init__(self, hf_model: PreTrainedModel, spec: type) -> None:
        super().__init__(hf_model, spec, hf_model.config.vision_config, hf_model.config.text_config)

    def dummy_inputs(self) -> tuple[torch.Tensor, ...]:
        return self.spec.dummy_inputs(self.encoder_config.patch_embed_hidden_size)

    def encoded(self, flattened_patches: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.hf.encoder(flattened_patches=flattened_patches, attention_mask=attention_mask).last_hidden_state


class QEffFlorence2Encoder(QEffVisionSeq2SeqEncoder):
    """forward(input_ids [B, S], attention_mask [B, S], pixel_values [B, C, H, W]) -> cross keys/values over the S
    prompt positions. Each row's k-th image placeholder takes its image's k-th feature (HF's ``masked_scatter`` over
    the batch, where every row holds one image's placeholders). The graph is traced at ``image_size`` (the
    processor's: the tower's window padding follows the size), a small one until the model sets it."""

    def __init__(self, hf_model: PreTrainedModel, spec: type, image_size: tuple[int, int] = (64, 64)) -> None:
        self.image_size = image_size
        super().__init__(hf_model, spec, hf_model.config.vision_config, hf_model.config.text_config)

    @torch.no_grad()
    def image_tokens(self) -> int:
        """The features of one image of ``image_size``: the placeholders its processor writes."""
        return self._features(torch.zeros(1, 3, *self.image_size)).shape[1]

    def dummy_inputs(self) -> tuple[torch.Tensor, ...]:
        return self.spec.dummy_inputs(self.hf.config.image_token_id, self.image_tokens(), 3, *self.image_size)

    def text_decoder(self) -> nn.Module:
        return self.hf.model.language_model.decoder

    def _features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.hf.model.get_image_features(pixel_values).pooler_output

    def encoded(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        embeds = self.hf.model.get_input_embeddings()(input_ids)
        merged = with_image_features(embeds, self._features(pixel_values), input_ids == self.hf.config.image_token_id)
        return self.hf.model.language_model.encoder(attention_mask=attention_mask, inputs_embeds=merged).last_hidden_state


class QEffT5Gemma2Encoder(QEffVisionSeq2SeqEncoder):
    """T5Gemma 2: forward(input_ids [B, S], attention_mask [B, S], pixel_values [B, C, H, W]) -> cross keys/values
    over the S prompt positions, each row's image placeholders taking its image's features (Gemma 3's tower and
    projector); the encoder's masks per layer type and the fill step's masks given (transformers builds them with
    vmap)."""

    def __init__(self, hf_model: PreTrainedModel, spec: type) -> None:
        encoder = hf_model.config.encoder
        size = encoder.vision_config.image_size
        self.image_size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        super().__init__(hf_model, spec, encoder, hf_model.config.decoder)

    def image_tokens(self) -> int:
        return int(self.encoder_config.mm_tokens_per_image)

    def dummy_inputs(self) -> tuple[torch.Tensor, ...]:
        channels = self.encoder_config.vision_config.num_channels
        return self.spec.dummy_inputs(self.encoder_config.image_token_id, self.image_tokens(), channels, *self.image_size)

    def text_decoder(self) -> nn.Module:
        return self.hf.get_decoder()

    def fill_masks(self, hidden: torch.Tensor) -> dict:
        return merged_attention_fill_masks(hidden)

    def encoded(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        encoder = self.hf.get_encoder()
        embeds = encoder.text_model.embed_tokens(input_ids)
        features = encoder.get_image_features(pixel_values, return_dict=True).pooler_output
        merged = with_image_features(embeds, features, input_ids == self.encoder_config.image_token_id)
        masks = windowed_encoder_masks(self.encoder_config.text_config.sliding_window, attention_mask)
        return encoder.text_model(inputs_embeds=merged, attention_mask=masks).last_hidden_state


class QEffBlipEncoder(QEffVisionSeq2SeqEncoder):
    """BLIP captioning: forward(pixel_values [B, C, H, W]) -> cross keys/values over the ViT's patches (and its class
    token), read by the BERT-style text decoder's cross-attention in every layer."""

    def __init__(self, hf_model: PreTrainedModel, spec: type) -> None:
        super().__init__(hf_model, spec, hf_model.config.vision_config, hf_model.config.text_config)

    def encoded(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.hf.vision_model(pixel_values=pixel_values).last_hidden_state

    def text_decoder(self) -> nn.Module:
        return self.hf.text_decoder


class QEffPPFormulaNetEncoder(QEffVisionSeq2SeqEncoder):
    """PP-FormulaNet: forward(pixel_values [B, C, H, W]) -> cross keys/values over its SAM-style tower's projected
    feature map (the pooled output its decoder reads)."""

    def __init__(self, hf_model: PreTrainedModel, spec: type) -> None:
        super().__init__(hf_model, spec, hf_model.config.vision_config, hf_model.config.text_config)

    def encoded(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.hf.model.encoder(pixel_values=pixel_values).pooler_output

    def text_decoder(self) -> nn.Module:
        return self.hf.model.decoder


def with_image_features(embeds: torch.Tensor, features: torch.Tensor, placeholders: torch.Tensor) -> torch.Tensor:
    """``embeds`` [B, S, D] with each row's k-th placeholder (``placeholders`` [B, S]) taking its image's k-th feature
    (``features`` [B, T, D]): HF's ``masked_scatter`` over the batch where every row holds its one image's T
    placeholders (the model classes check that)."""
    features = features.to(embeds.dtype)
    index = (placeholders.long().cumsum(1) - 1).clamp(0, features.shape[1] - 1)
    taken = torch.gather(features, 1, index[..., None].expand(-1, -1, features.shape[-1]))
    return torch.where(placeholders[..., None], taken, embeds)
