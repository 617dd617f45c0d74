"""Tiny random-weight models of the cross-attention and late image-text families (Mllama, ...), built as
tests/vlm_fixtures.py builds the first six: the tiny BPE tokenizer plus each architecture's special tokens,
seeded weights widened by 4.0, PIL image processors, processors saved next to the model. ``PROMPTS`` gives
each ``build_<model_type>``'s prompt with its image placeholder; tests/image_text_sweep.py picks both up."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoProcessor

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


def _gemma4_tokenizer():
    # audio tokens too: Gemma4Processor.validate_inputs refuses a tokenizer without them, even for images
    named = {"image_token": "<|image|>", "boi_token": "<boi>", "eoi_token": "<eoi>"}
    named.update(audio_token="<|audio|>", boa_token="<boa>", eoa_token="<eoa>")
    return _tokenizer(list(named.values()) + ["<|video|>"], named)


def _save_gemma4(folder, tok, config_class, model_class, processor_class, text: dict, vision: dict, image_processor) -> Path:
    """The Gemma 4 family's config (no audio), seeded widened weights and processor (70 soft tokens at most)."""
    folder = Path(folder)
    ids = tok.convert_tokens_to_ids
    specials = {f"{name}_token_id": ids(token) for name, token in [("image", "<|image|>"), ("boi", "<boi>"), ("eoi", "<eoi>")]}
    config = config_class(text_config=text, vision_config=vision, audio_config=None, video_token_id=ids("<|video|>"), **specials)
    torch.manual_seed(0)
    _widen_and_save(model_class(config), folder)
    processor_class(image_processor=image_processor, tokenizer=tok, image_seq_length=70).save_pretrained(folder)
    return folder


def build_gemma4(folder) -> Path:
    """Gemma 4: a 2-layer vision tower (patch 4, 2-D positions, 3x3 pooling) whose processor resizes each image,
    aspect ratio kept, to at most 630 patches (70 soft tokens) padded to 630; a 2-layer Gemma 4 text model with
    per-layer inputs; "<|image|>" becomes "<boi>" + soft tokens + "<eoi>"."""
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration
    from transformers.models.gemma4.image_processing_pil_gemma4 import Gemma4ImageProcessorPil

    tok = _gemma4_tokenizer()
    text = dict(**_TEXT, vocab_size=len(tok), head_dim=16, sliding_window=8, hidden_size_per_layer_input=8)
    text.update(vocab_size_per_layer_input=len(tok), layer_types=["sliding_attention", "full_attention"])
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2)
    vision.update(head_dim=16, patch_size=4, pooling_kernel_size=3, position_embedding_size=64)
    image_processor = Gemma4ImageProcessorPil(patch_size=4, max_soft_tokens=70, pooling_kernel_size=3)
    return _save_gemma4(folder, tok, Gemma4Config, Gemma4ForConditionalGeneration, TinyGemma4Processor, text, vision, image_processor)


def _gemma4_processor_class():
    from transformers import ProcessorMixin
    from transformers.models.gemma4.processing_gemma4 import Gemma4Processor

    class TinyGemma4Processor(Gemma4Processor):
        """Gemma4Processor without its video processor (torchvision) and audio feature extractor."""

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, image_seq_length: int = 280, **kwargs):
            # Gemma4Processor.__init__ without the two missing parts (ProcessorMixin takes this signature's)
            self.image_seq_length, self.audio_seq_length, self.audio_ms_per_token = image_seq_length, 750, 40
            self.image_token_id, self.image_token = tokenizer.image_token_id, tokenizer.image_token
            self.boi_token, self.eoi_token = tokenizer.boi_token, tokenizer.eoi_token
            self.video_token = "<|video|>"
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            self.audio_token, self.boa_token, self.eoa_token = tokenizer.audio_token, tokenizer.boa_token, tokenizer.eoa_token
            self.audio_token_id = tokenizer.audio_token_id
            ProcessorMixin.__init__(self, image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)

    return TinyGemma4Processor


TinyGemma4Processor = _gemma4_processor_class()
AutoProcessor.register("tiny_gemma4_processor", TinyGemma4Processor, exist_ok=True)
PROMPTS["gemma4"] = "Look: <|image|> Describe the picture in a few words"


def build_gemma4_unified(folder) -> Path:
    """Gemma 4 unified (encoder-free): raw 8 px patches (4 px patches merged 2x2) through LN -> Dense -> LN +
    2-D position table -> LN -> projection, at most 70 per image; a 2-layer Gemma 4 unified text model.
    Its image processor has only a torchvision backend: Gemma 4's PIL patcher at the merged patch size (8 px,
    no further pooling) gives the same patches, positions and padding (patches_merge of k x k patches of p px
    is the image cut into k*p px patches, in the same order)."""
    from transformers import Gemma4UnifiedConfig, Gemma4UnifiedForConditionalGeneration
    from transformers.models.gemma4.image_processing_pil_gemma4 import Gemma4ImageProcessorPil

    tok = _gemma4_tokenizer()
    # a window of 8, far shorter than an image's block of up to 70 tokens, which still sees itself whole
    text = dict(**_TEXT, vocab_size=len(tok), head_dim=16, sliding_window=8, layer_types=["sliding_attention", "full_attention"])
    vision = dict(patch_size=4, pooling_kernel_size=2, mm_embed_dim=64, mm_posemb_size=32, output_proj_dims=64)
    image_processor = Gemma4ImageProcessorPil(patch_size=8, max_soft_tokens=70, pooling_kernel_size=1)
    model_class = Gemma4UnifiedForConditionalGeneration
    return _save_gemma4(folder, tok, Gemma4UnifiedConfig, model_class, TinyGemma4UnifiedProcessor, text, vision, image_processor)


class TinyGemma4UnifiedProcessor(TinyGemma4Processor):
    """Gemma4UnifiedProcessor's text and image behaviour (the same as Gemma 4's) under a name of its own."""


AutoProcessor.register("tiny_gemma4_unified_processor", TinyGemma4UnifiedProcessor, exist_ok=True)
PROMPTS["gemma4_unified"] = PROMPTS["gemma4"]
