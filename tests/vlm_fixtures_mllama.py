"""Tiny random-weight models of the cross-attention and late image-text families (Mllama, ...), built as
tests/vlm_fixtures.py builds the first six: the tiny BPE tokenizer plus each architecture's special tokens,
seeded weights widened by 4.0, PIL image processors, processors saved next to the model. ``PROMPTS`` gives
each ``build_<model_type>``'s prompt with its image placeholder; tests/image_text_sweep.py picks both up."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.vlm_fixtures import _TEXT, _tokenizer, _widen_and_save

PROMPTS: dict[str, str] = {}


def build_mllama(folder) -> Path:
    """Llama 3.2 Vision: a tiled vision tower (28 px tiles, patch 7 -> 16 patches + CLS, up to 2 tiles:
    aspect ratios 1x1, 1x2, 2x1), 2 local layers + 1 gated global layer, features from layers 0 and 1 beside
    the last; a 3-layer text model whose layer 1 is a gated cross-attention layer over the image's
    2 x 17 positions. "<|image|>" stays one token; the processor adds the cross-attention mask and
    aspect-ratio ids. A (40, 50) image becomes 1x2 tiles."""
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessorPil, MllamaProcessor

    folder = Path(folder)
    tok = _tokenizer(["<|image|>", "<|python_tag|>"])
    image_token_id = tok.convert_tokens_to_ids("<|image|>")
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_global_layers=1,
        attention_heads=2,
        image_size=28,
        patch_size=7,
        max_num_tiles=2,
        supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]],
        intermediate_layers_indices=[0, 1],
        vision_output_dim=96,  # the last hidden state and the two intermediate layers side by side
    )
    text = dict(**_TEXT, vocab_size=len(tok), cross_attention_layers=[1])
    text["num_hidden_layers"] = 3
    config = MllamaConfig(vision_config=vision, text_config=text, image_token_index=image_token_id)
    torch.manual_seed(0)
    model = MllamaForConditionalGeneration(config)
    with torch.no_grad():  # the tanh gates start at zero (the image would not matter): open them
        for name, p in model.named_parameters():
            if name.endswith("_gate"):
                p.fill_(0.7)
    _widen_and_save(model, folder)
    image_processor = MllamaImageProcessorPil(size={"height": 28, "width": 28}, max_image_tiles=2)
    MllamaProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["mllama"] = "Look: <|image|> Describe the picture in a few words"  # the tokens before the image see no tile
