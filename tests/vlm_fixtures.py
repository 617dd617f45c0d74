r"""Tiny random-weight vision-language models with matching processors, saved to a folder.

Nothing is downloaded: the tokenizer is `tests.tiny_models.build_tokenizer()` (pad 0, bos 1, eos 2) plus the
special tokens each architecture needs, weights come from `torch.manual_seed(0)`, every all-zero >1-dim weight
(Gemma3's `mm_input_projection_weight`) gets a normal(0, 0.02) init so images matter, and every >1-dim weight is
multiplied by 4.0 so greedy decoding is far from ties. Image processors are the PIL-backend classes (torchvision
is not installed); `AutoProcessor.from_pretrained(folder)` loads them back. Every tokenizer pads on the LEFT, so
`processor(..., padding=True)` batches go straight into `model.generate`. Each build takes well under a second.

Gemma3 -- `build_gemma3(folder)`: Gemma3ForConditionalGeneration + Gemma3Processor
    placeholder: "<start_of_image>" (the boi token), one per image, e.g. "<start_of_image> Describe it".
        The processor expands it to "\n\n<start_of_image>" + 4 x "<image_soft_token>" + "<end_of_image>\n\n".
    image token id: `config.image_token_id` (alias of `image_token_index`) == `tokenizer.image_token_id`, the
        soft token; `config.boi_token_id` / `config.eoi_token_id` are the wrappers.
    tokens per image: always 4 (`mm_tokens_per_image`): every image is resized to 28x28, SigLIP patch 7 ->
        4x4 patches, avg-pooled 2x2 -> 4. pixel_values [num_images, 3, 28, 28].
    quirks: the processor returns `token_type_ids` (1 on the soft tokens). HF uses them at prefill to let each
        image block attend to itself bidirectionally (full and sliding layers, `create_masks_for_vision_model`);
        dropping them changes the greedy tokens of this model after a few steps. A batch needs nested images,
        `images=[[img_a], [img_b]]` (a flat list means all images belong to one prompt). Text: 2 layers,
        layer_types [sliding_attention (window 8), full_attention], head_dim 16, query_pre_attn_scalar 16,
        embeddings scaled by sqrt(64), untied lm_head.

Qwen2-VL -- `build_qwen2_vl(folder)`: Qwen2VLForConditionalGeneration + TinyQwen2VLProcessor
    (a Qwen2VLProcessor without the video processor, which needs torchvision; it is registered on import of
    this module, so import `tests.vlm_fixtures` before `AutoProcessor.from_pretrained(folder)`.)
    placeholder: "<|vision_start|><|image_pad|><|vision_end|>" per image; the processor repeats "<|image_pad|>".
    image token id: `config.image_token_id` (also `video_token_id`, `vision_start_token_id`, `vision_end_token_id`).
    tokens per image: depends on size. patch 7, merge 2 -> resized to multiples of 14 px with
        784 <= H*W <= 3136 (min_pixels 14*14*4, max_pixels 14*14*16), tokens = (H/14)*(W/14), 4..16:
        (40, 50) -> 42x56 -> 12, (30, 30) -> 4, (64, 20) -> 70x14 -> 5, (20, 60) -> 14x56 -> 4, (100, 100) -> 16.
    quirks: the processor returns `image_grid_thw` [num_images, 3] = (1, H/7, W/7) (patch grid before the 2x2
        merge) and `mm_token_type_ids` (1 on image pads), which `get_rope_index` needs for the 3-D mrope positions.
        pixel_values are flattened patches [sum(t*h*w), 3*2*7*7 = 294]. A flat image list works for a batch.
        Text: head_dim 16, mrope_section [2, 3, 3]; vision: embed 32, 2 heads, depth 2, merger -> 64.

Idefics3 -- `build_idefics3(folder, split=True)`: Idefics3ForConditionalGeneration + Idefics3Processor
    (SmolVLMProcessor needs `num2words` and SmolVLM's video processor needs torchvision, neither is installed;
    SmolVLM v1 checkpoints are model_type idefics3 anyway.)
    placeholder: "<image>" per image. With splitting, each tile becomes
        "<fake_token_around_image><row_i_col_j>" + 4 x "<image>", rows end with "\n", then the global tile
        "\n<fake_token_around_image><global-img>" + 4 x "<image>" + "<fake_token_around_image>".
    image token id: `config.image_token_id` (== `processor.image_token_id`).
    tokens per image: 4 "<image>" per 28x28 tile (patch 7 -> 16 patches, pixel shuffle 2 -> 4). Splitting:
        the long edge is resized to 56, then cut into 28 px tiles plus one global tile: (40, 50), (30, 30),
        (28, 28), (100, 100) -> 2x2+1 = 5 tiles = 20 tokens; (64, 20), (20, 60) -> 2+1 = 3 tiles = 12 tokens.
        `split=False`: one 28x28 tile, 4 tokens, no row/col tokens.
    quirks: pixel_values [B, max_tiles, 3, 28, 28] and `pixel_attention_mask` [B, max_tiles, 28, 28] (int64);
        a sample with fewer tiles is padded with all-zero tiles (mask 0) that the model drops. Real tiles are
        never padded inside (mask all 1). Text model is Llama; no token_type_ids.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoProcessor,
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessorPil,
    Gemma3Processor,
    Gemma3TextConfig,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    Idefics3VisionConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
    SiglipVisionConfig,
)

from tests.tiny_models import _COMMON, PAD, build_tokenizer

_TEXT = {k: v for k, v in _COMMON.items() if k not in ("vocab_size", "tie_word_embeddings")}  # the decoders' tiny shape


def _tokenizer(special: list[str], named: dict[str, str] | None = None) -> PreTrainedTokenizerFast:
    """The tiny BPE tokenizer with `special` added as special tokens; `named` become attributes (tok.image_token...)."""
    base = build_tokenizer()
    base.add_special_tokens({"additional_special_tokens": special})
    return PreTrainedTokenizerFast(
        tokenizer_object=base.backend_tokenizer,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        padding_side="left",
        extra_special_tokens=dict(named or {}),
    )


# The image-text sweep also draws the 1-D parameters an initialisation leaves at zero (gates, sinks, scales, queries:
# Mistral Large 4's attention scales, Inkling's depth queries), so that their paths are in its comparison; the other
# tests keep the weights their expected tokens were found with. Set by tests/image_text_sweep.py around a build.
DRAW_ZERO_VECTORS = False


def _widen_and_save(model, folder: Path) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                if not p.any():  # e.g. Gemma3's mm_input_projection_weight starts at zero: images would not matter
                    p.normal_(0.0, 0.02)
                p.mul_(4.0)  # random init is small; widen it so logits are far from ties
            elif DRAW_ZERO_VECTORS and p.is_floating_point() and not p.any() and not name.endswith("bias"):
                p.normal_(0.0, 0.5)
    model.eval()
    model.save_pretrained(folder)


class TinyQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2VLProcessor without the video processor, which needs torchvision (not installed here).

    Same image/text behaviour. Saved as `"processor_class": "TinyQwen2VLProcessor"`; importing this module
    registers the class so `AutoProcessor.from_pretrained(folder)` finds it by that name.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)


# A string key: only lookups by class name (processor_config.json) reach it; Qwen2VLConfig keeps its own processor.
AutoProcessor.register("tiny_qwen2_vl_processor", TinyQwen2VLProcessor, exist_ok=True)


def build_gemma3(folder) -> Path:
    folder = Path(folder)
    tok = _tokenizer(
        ["<start_of_image>", "<end_of_image>", "<image_soft_token>"],
        {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"},
    )
    text = Gemma3TextConfig(
        **_TEXT,
        vocab_size=len(tok),
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention"],
    )
    vision = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=28,
        patch_size=7,
        vision_use_head=False,  # as in real Gemma3: the projector reads last_hidden_state
    )
    config = Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=4,
        boi_token_index=tok.boi_token_id,
        eoi_token_index=tok.eoi_token_id,
        image_token_index=tok.image_token_id,
        tie_word_embeddings=False,  # a tied head keeps predicting the last input token
    )
    torch.manual_seed(0)
    _widen_and_save(Gemma3ForConditionalGeneration(config), folder)
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(size={"height": 28, "width": 28}),
        tokenizer=tok,
        image_seq_length=4,
    )
    processor.save_pretrained(folder)
    return folder


def qwen2_vl_parts() -> tuple[PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLImageProcessorPil]:
    """The tiny Qwen2-VL's tokenizer, config and image processor (4-16 merged tokens an image)."""
    tok = _tokenizer(
        ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"],
        {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )
    ids = tok.convert_tokens_to_ids
    text = dict(
        **_TEXT,
        vocab_size=len(tok),
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
    )
    vision = dict(
        depth=2,
        embed_dim=32,
        hidden_size=64,  # merger output = text hidden size
        mlp_ratio=2,
        num_heads=2,
        patch_size=7,
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    config = Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=14 * 14 * 4, max_pixels=14 * 14 * 16, patch_size=7, temporal_patch_size=2, merge_size=2
    )
    return tok, config, image_processor


def build_qwen2_vl(folder) -> Path:
    folder = Path(folder)
    tok, config, image_processor = qwen2_vl_parts()
    torch.manual_seed(0)
    _widen_and_save(Qwen2VLForConditionalGeneration(config), folder)
    TinyQwen2VLProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


def build_idefics3(folder, *, split: bool = True) -> Path:
    folder = Path(folder)
    rows_cols = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    tok = _tokenizer(["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", *rows_cols])
    text = LlamaConfig(**_TEXT, vocab_size=len(tok))
    vision = Idefics3VisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7
    )
    config = Idefics3Config(
        text_config=text,
        vision_config=vision,
        scale_factor=2,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        pad_token_id=PAD,
    )
    torch.manual_seed(0)
    _widen_and_save(Idefics3ForConditionalGeneration(config), folder)
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 56 if split else 28},
        max_image_size={"longest_edge": 28},
        do_image_splitting=split,
    )
    Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=4).save_pretrained(folder)
    return folder


def build_smolvlm(folder) -> Path:
    """SmolVLM (model_type smolvlm): the Idefics3 layout under its own classes. Its processor needs
    `num2words`, so the folder keeps the Idefics3 processor, which gives the same tokens and tiles."""
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration

    folder = build_idefics3(folder)
    source = Idefics3Config.from_pretrained(folder)
    config = SmolVLMConfig(
        text_config=source.text_config.to_dict(),
        vision_config=source.vision_config.to_dict(),
        scale_factor=source.scale_factor,
        image_token_id=source.image_token_id,
        pad_token_id=PAD,
    )
    torch.manual_seed(0)
    _widen_and_save(SmolVLMForConditionalGeneration(config), folder)
    return folder


def build_llava(folder) -> Path:
    """Llava 1.5: CLIP tower (28 px, patch 7 -> 16 image tokens), Llama text model."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    folder = Path(folder)
    tok = build_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7, projection_dim=32
    )
    text = LlamaConfig(**_TEXT, vocab_size=len(tok))
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    _widen_and_save(LlavaForConditionalGeneration(config), folder)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}),
        tokenizer=tok,
        patch_size=7,
        vision_feature_select_strategy="default",
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    processor.save_pretrained(folder)
    return folder


# Qwen2.5-VL's tiny vision tower (also EXAONE 4.5's and the Qwen2.5-Omni thinker's): 2 blocks, patch 7, merge 2,
# windows of 2x2 tokens (28 px) in block 0, whole images in block 1
QWEN2_5_VL_VISION = dict(
    depth=2,
    hidden_size=32,
    out_hidden_size=64,
    intermediate_size=64,
    num_heads=2,
    patch_size=7,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=28,
    fullatt_block_indexes=[1],
)


def qwen2_5_vl_config(source: Qwen2VLConfig):
    """The tiny Qwen2.5-VL's config: the tiny Qwen2-VL's text side and token ids, Qwen2.5-VL's windowed tower."""
    from transformers import Qwen2_5_VLConfig

    return Qwen2_5_VLConfig(
        text_config=source.text_config.to_dict(),
        vision_config=dict(QWEN2_5_VL_VISION),
        image_token_id=source.image_token_id,
        video_token_id=source.video_token_id,
        vision_start_token_id=source.vision_start_token_id,
        vision_end_token_id=source.vision_end_token_id,
    )


def build_qwen2_5_vl(folder) -> Path:
    """Qwen2.5-VL: Qwen2-VL's text side and processor; the vision tower attends within 2x2-token windows
    (window_size 28 px) in block 0 and within whole images in block 1."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    folder = build_qwen2_vl(folder)  # tokenizer and processor; the model is replaced
    config = qwen2_5_vl_config(Qwen2VLConfig.from_pretrained(folder))
    torch.manual_seed(0)
    _widen_and_save(Qwen2_5_VLForConditionalGeneration(config), folder)
    return folder
