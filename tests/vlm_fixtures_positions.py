"""Tiny random-weight vision-language models whose positions follow a rule of their own (MiniCPM-V 4.7's canvas
3-D rotary, ...), built as tests/vlm_fixtures_rec.py builds its own: the tiny BPE tokenizer plus each
architecture's special tokens, seeded weights widened by 4.0, PIL image processors saved next to the model.
``PROMPTS`` gives each ``build_<model_type>``'s prompt with its image placeholder; tests/image_text_sweep.py
picks both up."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoProcessor, AutoTokenizer, MiniCPMV4_6ImageProcessorPil
from transformers.models.minicpmv4_7.processing_minicpmv4_7 import MiniCPMV4_7Processor

from tests.vlm_fixtures import _TEXT, _tokenizer, _widen_and_save
from tests.vlm_fixtures_rec import TinyMiniCPMVProcessor, build_minicpmv4_6

PROMPTS: dict[str, str] = {}


class TinyMiniCPMV4_7Processor(MiniCPMV4_7Processor):
    """MiniCPMV4_7Processor without its video processor (torchvision, not installed here): its image half as is."""

    video_slice_mode = False
    __init__ = TinyMiniCPMVProcessor.__init__


AutoProcessor.register("tiny_minicpmv4_7_processor", TinyMiniCPMV4_7Processor, exist_ok=True)


def build_minicpmv4_7(folder) -> Path:
    """MiniCPM-V 4.7: MiniCPM-V 4.6's tiny model ("16x", a Qwen3.5 text model) with interleaved 3-D rotary on
    half of each head and the canvas markers' ids; the PIL processor slices the sweep's 40x50 image into a
    thumbnail plus a grid of slices, so the canvas rule sees rows of slices and their newlines."""
    folder = Path(folder)
    rope = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5, "mrope_section": [2, 1, 1]}
    markers = {"image_start_id": "<image>", "image_end_id": "</image>", "slice_start_id": "<slice>", "slice_end_id": "</slice>"}
    build_minicpmv4_6(folder, model_type="minicpmv4_7", rope=rope, newline_id="Ċ", **markers)  # "Ċ": the byte-level "\n"
    tok = AutoTokenizer.from_pretrained(folder)
    image_processor = MiniCPMV4_6ImageProcessorPil.from_pretrained(folder)
    TinyMiniCPMV4_7Processor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["minicpmv4_7"] = "Look: <|image_pad|> Describe the picture in a few words"


_HUNYUAN_TOKENS = {"image_token": "<image>", "image_start_token": "<img_start>", "image_end_token": "<img_end>"}


def build_hunyuan_vl(folder) -> Path:
    """HunYuanVL (HunyuanOCR): a 2-layer ViT (patch 7, a 4x4 learned position table resized bilinearly to each
    image's grid), the patch merger (a 2x2 convolution, a newline column, begin/end rows) and a HunYuan dense text
    model whose rotary positions have four axes (text, width, height, image index), half-head sections of 2."""
    from transformers import HunYuanVLConfig, HunYuanVLForConditionalGeneration, HunYuanVLImageProcessorPil, HunYuanVLProcessor

    folder = Path(folder)
    tok = _tokenizer(list(_HUNYUAN_TOKENS.values()), _HUNYUAN_TOKENS)
    ids = tok.convert_tokens_to_ids
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 2, 2, 2]}
    text = dict(**_TEXT, vocab_size=len(tok), head_dim=16, rope_parameters=rope)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=7, max_image_size=28)
    config = HunYuanVLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<image>"),
        im_start_id=ids("<img_start>"),
        im_end_id=ids("<img_end>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = HunYuanVLForConditionalGeneration(config)
    with torch.no_grad():  # sharper attention (queries and keys are normalised after the rotary) and logits
        for name, weight in model.model.language_model.named_parameters():
            if name.endswith("norm.weight"):
                weight.mul_(3.0)
    _widen_and_save(model, folder)
    image_processor = HunYuanVLImageProcessorPil(patch_size=7, merge_size=2, min_pixels=28 * 28, max_pixels=56 * 70)
    HunYuanVLProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["hunyuan_vl"] = "Look: <img_start><image><img_end> Describe the picture in a few words"


def build_kosmos_2(folder) -> Path:
    """Kosmos-2: a 2-layer CLIP-style tower (28 px, patch 7), the image-to-text projection (64 latent queries reading
    the tower's features by cross-attention), a 2-layer Kosmos-2 text model (sinusoidal positions counted from the
    padding id, as fairseq). The processor puts "<image>", 64 image positions (ids unk+1 .. unk+64, marked by
    ``image_embeds_position_mask``) and "</image>" before the prompt; it adds its tag and patch-index tokens to the
    tokenizer."""
    from transformers import CLIPImageProcessorPil, Kosmos2Config, Kosmos2ForConditionalGeneration, Kosmos2Processor

    folder = Path(folder)
    tok = _tokenizer([])
    tok.unk_token = "</s>"  # the image positions take ids unk+1 ..: ordinary text tokens (3 ..), as XLM-R's 4 ..
    processor = Kosmos2Processor(CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}), tok)
    tok = processor.tokenizer
    text = dict(
        vocab_size=len(tok),
        embed_dim=64,
        layers=2,
        ffn_dim=96,
        attention_heads=4,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,  # tied, a residual stream led by the scaled token embedding predicts that token again
    )
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7)
    config = Kosmos2Config(text_config=text, vision_config=vision, latent_query_num=64, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = Kosmos2ForConditionalGeneration(config)
    with torch.no_grad():  # without these the tiny model repeats one token whatever the image and the context
        projection = model.image_to_text_projection
        projection.dense.weight.mul_(10.0)  # the tower's features are normalised to unit length
        projection.latent_query.mul_(0.1)  # so that they, not the latent queries, lead the image embeddings
        projection.x_attn.out_proj.weight.mul_(3.0)
        text_model = model.text_model.model
        text_model.embed_tokens.weight.mul_(0.3)  # scaled by sqrt(embed_dim), the token embedding led the residual stream
        text_model.layer_norm.weight.mul_(3.0)
        for layer in text_model.layers:  # sharper attention
            layer.self_attn.q_proj.weight.mul_(3.0)
            layer.self_attn.k_proj.weight.mul_(3.0)
    _widen_and_save(model, folder)
    processor.save_pretrained(folder)
    return folder


PROMPTS["kosmos-2"] = "Describe the picture in a few words"


def build_git(folder) -> Path:
    """GIT: a 2-layer CLIP-style tower (28 px, patch 7: 16 patches and the class token), its projection, a 2-layer
    BERT-style text model with a learned position table; the processor (CLIP's image half, the tiny tokenizer) writes
    no image token: the image's 17 states come before the text."""
    from transformers import CLIPImageProcessorPil, GitConfig, GitForCausalLM, GitProcessor

    folder = Path(folder)
    tok = _tokenizer([])
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7)
    config = GitConfig(
        vision_config=vision,
        vocab_size=len(tok),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=96,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    _widen_and_save(GitForCausalLM(config), folder)
    GitProcessor(CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}), tok).save_pretrained(folder)
    return folder


PROMPTS["git"] = "Describe the picture in a few words"
