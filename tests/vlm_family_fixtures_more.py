"""More tiny random-weight vision-language families (Qwen3-VL, GLM-4V, Llama 4, LFM2-VL, BLIP-2, ...), built as
tests/vlm_family_fixtures.py builds its own: the tiny BPE tokenizer plus each architecture's special
tokens, seeded weights widened by 4.0, PIL image processors (tests/vlm_tiny_processors.py where HF's need
torchvision) saved next to the model. ``PROMPTS`` gives
each ``build_<model_type>``'s prompt with its image placeholder; tests/image_text_sweep.py picks both up."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoProcessor, Qwen2VLConfig

from tests.vlm_fixtures import _TEXT, _tokenizer, _widen_and_save, build_qwen2_5_vl, build_qwen2_vl
from tests.vlm_tiny_processors import (
    TinyAriaProcessor,
    TinyGlm4vProcessor,
    TinyGotOcr2Processor,
    TinyHyperClovaXVisionProcessor,
    TinyLlavaNextVideoProcessor,
)
from tests.vlm_tiny_processors_tiles import (
    TinyCohere2VisionImageProcessor,
    TinyCohere2VisionProcessor,
    TinyLfm2VlImageProcessor,
    TinyLfm2VlProcessor,
    TinyLlama4ImageProcessor,
    TinyLlama4Processor,
)

PROMPTS: dict[str, str] = {}
QWEN_PROMPT = "Look: <|vision_start|><|image_pad|><|vision_end|> Describe the picture in a few words"
# GOT-OCR2's tiny SAM-style tower (also DeepSeek-VL hybrid's high-resolution one): 32 px, patch 4, windows of
# 4 patches in layer 0, global attention in layer 1
TINY_SAM = dict(
    hidden_size=32,
    output_channels=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=32,
    patch_size=4,
    window_size=4,
    global_attn_indexes=[1],
    mlp_dim=64,
)
# Qwen3-VL's tiny vision tower (also Qwen3.5's, which has no DeepStack): 3 blocks, patch 7, merge 2, a 4x4 position table
QWEN3_VL_VISION = dict(
    depth=3,
    hidden_size=32,
    intermediate_size=64,
    num_heads=2,
    patch_size=7,
    spatial_merge_size=2,
    temporal_patch_size=2,
    out_hidden_size=64,
    num_position_embeddings=16,
)


def build_qwen3_vl(folder, *, model_type: str = "qwen3_vl") -> Path:
    """Qwen3-VL: Qwen2-VL's tiny tokenizer and processor; a 3-block vision tower (patch 7, merge 2) with a 4x4
    learned position table and DeepStack features from blocks 0 and 1; interleaved 3-D rotary in the text model.
    ``model_type``: qwen3_vl_moe (MoE text model), cosmos3_omni (Qwen3-VL's parts under another name)."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    folder = Path(folder)
    source = Qwen2VLConfig.from_pretrained(build_qwen2_vl(folder))
    text = {k: v for k, v in source.text_config.to_dict().items() if k not in ("model_type", "architectures")}
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3], "mrope_interleaved": True}
    text.update(head_dim=16, rope_parameters=rope)
    if model_type == "qwen3_vl_moe":
        text.update(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, decoder_sparse_step=1)
    vision = dict(**QWEN3_VL_VISION, deepstack_visual_indexes=[0, 1])
    ids = {k: getattr(source, k) for k in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")}
    config = AutoConfig.for_model(model_type, text_config=text, vision_config=vision, **ids)
    torch.manual_seed(0)
    _widen_and_save(AutoModelForImageTextToText.from_config(config), folder)
    return folder


def build_qwen3_vl_moe(folder) -> Path:
    return build_qwen3_vl(folder, model_type="qwen3_vl_moe")


def build_cosmos3_omni(folder) -> Path:
    return build_qwen3_vl(folder, model_type="cosmos3_omni")


PROMPTS["qwen3_vl"] = PROMPTS["qwen3_vl_moe"] = PROMPTS["cosmos3_omni"] = QWEN_PROMPT


def build_glm4v(folder, *, model_type: str = "glm4v") -> Path:
    """GLM-4.1V: a 2-block vision tower (patch 7, merge 2) with a 4x4 learned position table resampled bicubically
    to each image's grid, a 2x2 convolution downsample and a gated merger; GLM-4 text model with 3-D rotary over
    half the head dimension. ``model_type``: the variants with the same tiny shapes, GLM-4.6V (glm46v, glmga),
    GLM-4.5V (glm4v_moe: MoE text model) and GLM-OCR (glm_ocr: no position table, q/k norms in the tower)."""
    from transformers import AutoConfig, AutoModelForImageTextToText, Glm4vImageProcessorPil

    folder = Path(folder)
    tok = _tokenizer(
        ["<|begin_of_image|>", "<|end_of_image|>", "<|image|>", "<|begin_of_video|>", "<|end_of_video|>", "<|video|>"],
        {"image_token": "<|image|>", "video_token": "<|video|>"},
    )
    ids = tok.convert_tokens_to_ids
    text = dict(
        **_TEXT,
        vocab_size=len(tok),
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2], "partial_rotary_factor": 0.5},
    )
    if model_type == "glm4v_moe":
        text.update(n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, n_shared_experts=1, first_k_dense_replace=1)
    vision = dict(
        depth=2,
        hidden_size=32,
        out_hidden_size=64,
        intermediate_size=64,
        num_heads=2,
        patch_size=7,
        image_size=28,
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    config = AutoConfig.for_model(
        model_type,
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image|>"),
        video_token_id=ids("<|video|>"),
        image_start_token_id=ids("<|begin_of_image|>"),
        image_end_token_id=ids("<|end_of_image|>"),
        video_start_token_id=ids("<|begin_of_video|>"),
        video_end_token_id=ids("<|end_of_video|>"),
    )
    torch.manual_seed(0)
    _widen_and_save(AutoModelForImageTextToText.from_config(config), folder)
    image_processor = Glm4vImageProcessorPil(
        size={"shortest_edge": 14 * 14 * 4, "longest_edge": 14 * 14 * 16}, patch_size=7, temporal_patch_size=2, merge_size=2
    )
    TinyGlm4vProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


def build_glm46v(folder) -> Path:
    return build_glm4v(folder, model_type="glm46v")


def build_glmga(folder) -> Path:
    return build_glm4v(folder, model_type="glmga")


def build_glm4v_moe(folder) -> Path:
    return build_glm4v(folder, model_type="glm4v_moe")


def build_glm_ocr(folder) -> Path:
    return build_glm4v(folder, model_type="glm_ocr")


PROMPTS["glm4v"] = "Look: <|begin_of_image|><|image|><|end_of_image|> Describe the picture in a few words"
for _variant in ("glm46v", "glmga", "glm4v_moe", "glm_ocr"):
    PROMPTS[_variant] = PROMPTS["glm4v"]


def build_cohere2_vision(folder) -> Path:
    """Command A Vision: SigLIP tower (28 px tiles, patch 7), pixel-shuffle SwiGLU projector (downsample 2 -> 4
    tokens per tile), Cohere2 text model. Its image processor (tests/vlm_tiny_processors_tiles.py) tiles as HF's
    does: up to 4 tiles of 28 px on Cohere's canvas plus a thumbnail. "<|IMG_PATCH|>" becomes "<|START_OF_IMG|>" +
    per tile 4 x "<|IMG_PATCH|>" + "<|IMG_LINE_BREAK|>" ... + "<|END_OF_IMG|>"."""
    from transformers import (
        Cohere2Config,
        Cohere2VisionConfig,
        Cohere2VisionForConditionalGeneration,
        SiglipVisionConfig,
    )

    folder = Path(folder)
    specials = ["<image>", "<|START_OF_IMG|>", "<|END_OF_IMG|>", "<|IMG_PATCH|>", "<|IMG_LINE_BREAK|>"]
    tok = _tokenizer(
        specials,
        {
            "image_token": "<|IMG_PATCH|>",
            "boi_token": "<|START_OF_IMG|>",
            "eoi_token": "<|END_OF_IMG|>",
            "img_line_break_token": "<|IMG_LINE_BREAK|>",
        },
    )
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7
    )
    text = Cohere2Config(**_TEXT, vocab_size=len(tok), sliding_window=8, layer_types=["sliding_attention", "full_attention"])
    config = Cohere2VisionConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        downsample_factor=2,
        alignment_intermediate_size=64,
        image_token_id=tok.convert_tokens_to_ids("<|IMG_PATCH|>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    _widen_and_save(Cohere2VisionForConditionalGeneration(config), folder)
    TinyCohere2VisionProcessor(image_processor=TinyCohere2VisionImageProcessor(), tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["cohere2_vision"] = "Look: <|IMG_PATCH|> Describe the picture in a few words"


def build_llama4(folder) -> Path:
    """Llama 4: a 2-layer vision tower (28 px tiles, patch 7, 2-D rotary), pixel shuffle 0.5 -> 4 tokens per tile,
    linear projector; Llama 4 text model with chunked attention (chunks of 12), RoPE-free layers and a
    mixture-of-experts layer. Its image processor (tests/vlm_tiny_processors_tiles.py) tiles as HF's does: "<|image|>"
    becomes "<|image_start|>", for several tiles each tile's 4 x "<|patch|>" with "<|tile_x_separator|>" between
    columns and "<|tile_y_separator|>" after each row, then "<|image|>" + the global tile's 4 x "<|patch|>" +
    "<|image_end|>"."""
    from transformers import Llama4Config, Llama4ForConditionalGeneration

    folder = Path(folder)
    specials = ["<|image_start|>", "<|image_end|>", "<|image|>", "<|patch|>", "<|tile_x_separator|>", "<|tile_y_separator|>"]
    tok = _tokenizer(specials)
    ids = tok.convert_tokens_to_ids
    text = dict(
        **_TEXT,
        vocab_size=len(tok),
        head_dim=16,
        attention_chunk_size=12,
        num_local_experts=4,
        num_experts_per_tok=1,
        intermediate_size_mlp=96,
        interleave_moe_layer_step=2,
        no_rope_layers=[1, 0],
    )
    text["intermediate_size"] = 64
    vision = dict(
        hidden_size=32,
        intermediate_size=128,  # the pixel-shuffled width (32 / 0.5^2), which its MLP takes
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=28,
        patch_size=7,
        vision_output_dim=64,
        projector_input_dim=64,
        projector_output_dim=64,
        pixel_shuffle_ratio=0.5,
    )
    config = Llama4Config(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|patch|>"),
        boi_token_index=ids("<|image_start|>"),
        eoi_token_index=ids("<|image_end|>"),
    )
    torch.manual_seed(0)
    _widen_and_save(Llama4ForConditionalGeneration(config), folder)
    TinyLlama4Processor(image_processor=TinyLlama4ImageProcessor(), tokenizer=tok, patch_size=7).save_pretrained(folder)
    return folder


PROMPTS["llama4"] = "Look: <|image|> Describe the picture in a few words"


def llama4_greedy(folder: Path, inputs, n: int) -> list[int]:
    """Greedy tokens of HF's Llama 4 without its ``generate``: transformers 5.24's
    Llama4ForConditionalGeneration.forward fails at its return (it reads ``image_outputs`` from the text
    model's output), so this does what that forward does before it, with HF's own modules: the image
    features projected into the image-token embeddings, then the text model with its head; the whole
    sequence again at each step (no cache)."""
    from transformers import AutoModelForImageTextToText

    hf = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    ids = inputs["input_ids"]
    with torch.no_grad():
        pixels = inputs["pixel_values"].to(hf.dtype)  # HF's processor gives bfloat16 pixels
        features = hf.get_image_features(pixels, return_dict=True).last_hidden_state
        image_rows = hf.multi_modal_projector(features.reshape(-1, features.shape[-1]))
        out = []
        for _ in range(n):
            embeds = hf.get_input_embeddings()(ids)
            is_image = (ids == hf.config.image_token_id).unsqueeze(-1).expand_as(embeds)
            embeds = embeds.masked_scatter(is_image, image_rows)
            logits = hf.language_model(inputs_embeds=embeds, attention_mask=torch.ones_like(ids)).logits
            out.append(int(logits[0, -1].argmax()))
            ids = torch.cat([ids, torch.tensor([[out[-1]]])], dim=1)
    return out


def build_lfm2_vl(folder) -> Path:
    """LFM2-VL: a 2-layer SigLIP2 NaFlex tower (patch 7, a 4x4 position table resized to each image's grid),
    pixel unshuffle 2, MLP projector; LFM2 text model with a short-convolution layer (a retained conv state)
    and an attention layer, as real LFM2 models interleave them. Its processor (tests/vlm_tiny_processors_tiles.py)
    tiles as HF's does: "<image>" becomes "<|image_start|>" + (rows/2 x cols/2) x "<image>" + "<|image_end|>" for a
    small image; for a large one, per 28 px tile "<|img_row_R_col_C|>" + 4 x "<image>", then "<|img_thumbnail|>" and
    the thumbnail's tokens."""
    from transformers import Lfm2Config, Lfm2VlConfig, Lfm2VlForConditionalGeneration, Siglip2VisionConfig

    folder = Path(folder)
    grid = [f"<|img_row_{r}_col_{c}|>" for r in range(1, 7) for c in range(1, 7) if r * c <= TinyLfm2VlImageProcessor.max_tiles]
    tok = _tokenizer(["<image>", "<|image_start|>", "<|image_end|>", "<|img_thumbnail|>", *grid], {"image_token": "<image>"})
    vision = Siglip2VisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=7, num_patches=16
    )
    text = Lfm2Config(**_TEXT, vocab_size=len(tok), layer_types=["conv", "full_attention"])
    config = Lfm2VlConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        projector_hidden_size=64,
        downsample_factor=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    _widen_and_save(Lfm2VlForConditionalGeneration(config), folder)
    TinyLfm2VlProcessor(image_processor=TinyLfm2VlImageProcessor(), tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["lfm2_vl"] = "Look: <image> Describe the picture in a few words"


def build_hyperclovax_vision_v2(folder) -> Path:
    """HyperCLOVA X SEED Vision v2: Qwen2-VL's tiny tokenizer and processor (the same image tokens), the tiny
    Qwen2.5-VL vision tower (windows of 2x2 tokens in block 0), a linear projector, a HyperCLOVA X text model."""
    from transformers import AutoConfig, AutoModelForImageTextToText, HyperCLOVAXConfig

    folder = Path(folder)
    source = AutoConfig.from_pretrained(build_qwen2_5_vl(folder))  # its tokenizer, processor and vision tower
    vision = {**source.vision_config.to_dict(), "out_hidden_size": 48}  # the projector maps 48 -> the text width
    text = HyperCLOVAXConfig(**_TEXT, vocab_size=source.text_config.vocab_size).to_dict()
    config = AutoConfig.for_model(
        "hyperclovax_vision_v2",
        text_config=text,
        vision_config=vision,
        image_token_id=source.image_token_id,
        video_token_id=source.video_token_id,
    )
    torch.manual_seed(0)
    _widen_and_save(AutoModelForImageTextToText.from_config(config), folder)
    qwen = AutoProcessor.from_pretrained(folder)  # Qwen2-VL's; this model's processor gives no mm_token_type_ids
    TinyHyperClovaXVisionProcessor(image_processor=qwen.image_processor, tokenizer=qwen.tokenizer).save_pretrained(folder)
    return folder


PROMPTS["hyperclovax_vision_v2"] = QWEN_PROMPT


def build_got_ocr2(folder, *, model_type: str = "got_ocr2") -> Path:
    """GOT-OCR 2.0: a 2-layer SAM-style tower (32 px, patch 4, windows of 4 patches in layer 0, global in layer 1),
    two stride-2 convolutions -> 2x2 = 4 tokens per image, Qwen2 text model. The processor wraps the prompt's
    "<imgpad>" as "<img>" + 4 x "<imgpad>" + "</img>". ``model_type="pp_chart2table"``: the same layout."""
    from transformers import AutoConfig, AutoModelForImageTextToText, GotOcr2ImageProcessorPil, Qwen2Config

    folder = Path(folder)
    tok = _tokenizer(["<img>", "</img>", "<imgpad>"])
    vision = dict(TINY_SAM)
    text = Qwen2Config(**_TEXT, vocab_size=len(tok)).to_dict()
    config = AutoConfig.for_model(
        model_type,
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids("<imgpad>"),
        image_seq_length=4,
        tie_word_embeddings=False,  # tied, the tiny model repeats its image token
    )
    torch.manual_seed(0)
    _widen_and_save(AutoModelForImageTextToText.from_config(config), folder)
    image_processor = GotOcr2ImageProcessorPil(size={"height": 32, "width": 32}, crop_to_patches=False)
    TinyGotOcr2Processor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


def build_pp_chart2table(folder) -> Path:
    return build_got_ocr2(folder, model_type="pp_chart2table")


PROMPTS["got_ocr2"] = PROMPTS["pp_chart2table"] = "Look: <imgpad> Describe the picture in a few words"


def build_llava_next_video(folder) -> Path:
    """LLaVA-NeXT-Video, images only: LLaVA-NeXT's tiny model and any-resolution tiling (tests/vlm_family_fixtures.py)
    as LlavaNextVideoForConditionalGeneration; its video half needs torchvision (not installed)."""
    from transformers import LlavaNextConfig, LlavaNextVideoConfig, LlavaNextVideoForConditionalGeneration

    from tests.vlm_family_fixtures import build_llava_next

    folder = Path(folder)
    source = LlavaNextConfig.from_pretrained(build_llava_next(folder))
    old = AutoProcessor.from_pretrained(folder)
    tok = old.tokenizer
    tok.add_special_tokens({"additional_special_tokens": ["<image>", "<video>"]})
    config = LlavaNextVideoConfig(
        vision_config=source.vision_config.to_dict(),
        text_config={**source.text_config.to_dict(), "vocab_size": len(tok)},
        image_token_index=source.image_token_id,
        video_token_index=tok.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=source.image_grid_pinpoints,
        vision_feature_layer=source.vision_feature_layer,
        vision_feature_select_strategy=source.vision_feature_select_strategy,
    )
    torch.manual_seed(0)
    _widen_and_save(LlavaNextVideoForConditionalGeneration(config), folder)
    TinyLlavaNextVideoProcessor(
        image_processor=old.image_processor,
        tokenizer=tok,
        patch_size=old.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    ).save_pretrained(folder)
    return folder


PROMPTS["llava_next_video"] = "Look: <image> Describe the picture in a few words"


def build_blip_2(folder) -> Path:
    """BLIP-2: a 2-layer ViT (28 px, patch 7), a 2-layer Q-Former with 4 queries (cross-attention every layer),
    a linear projection, OPT text model. The processor adds "<image>" to the tokenizer and prepends 4 of them."""
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessorPil, OPTConfig

    folder = Path(folder)
    processor = Blip2Processor(BlipImageProcessorPil(size={"height": 28, "width": 28}), _tokenizer([]), num_query_tokens=4)
    tok = processor.tokenizer
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7)
    qformer = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, encoder_hidden_size=32)
    text = OPTConfig(
        vocab_size=len(tok),
        hidden_size=64,
        ffn_dim=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        word_embed_proj_dim=64,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    config = Blip2Config(
        vision_config=vision,
        qformer_config={**qformer, "cross_attention_frequency": 1},
        text_config=text.to_dict(),
        num_query_tokens=4,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(0)
    _widen_and_save(Blip2ForConditionalGeneration(config), folder)
    processor.save_pretrained(folder)
    return folder


PROMPTS["blip-2"] = "Describe the picture in a few words"


def build_instructblip(folder) -> Path:
    """InstructBLIP: BLIP-2's tiny shapes; the Q-Former (vocabulary: the tiny tokenizer's) also reads the prompt."""
    from transformers import (
        Blip2Config,
        BlipImageProcessorPil,
        InstructBlipConfig,
        InstructBlipForConditionalGeneration,
        InstructBlipProcessor,
    )

    folder = Path(folder)
    source = Blip2Config.from_pretrained(build_blip_2(folder))
    processor = InstructBlipProcessor(
        BlipImageProcessorPil(size={"height": 28, "width": 28}), _tokenizer([]), _tokenizer([]), num_query_tokens=4
    )
    config = InstructBlipConfig(
        vision_config=source.vision_config.to_dict(),
        qformer_config={**source.qformer_config.to_dict(), "vocab_size": len(processor.qformer_tokenizer)},
        text_config=source.text_config.to_dict(),
        num_query_tokens=4,
        image_token_index=processor.tokenizer.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(0)
    _widen_and_save(InstructBlipForConditionalGeneration(config), folder)
    processor.save_pretrained(folder)
    return folder


PROMPTS["instructblip"] = "Describe the picture in a few words"


def build_aria(folder) -> Path:
    """Aria: a 2-layer Idefics3-style tower (490 px, the processor's smallest size; patch 35 -> 196 patches), a
    projector of 4 learned queries cross-attending to them, an Aria MoE text model (4 experts, top 2, 1 shared).
    "<|img|>" becomes 4 x "<|img|>"."""
    from transformers import AriaConfig, AriaForConditionalGeneration, AriaImageProcessorPil

    folder = Path(folder)
    tok = _tokenizer(["<|img|>"], {"image_token": "<|img|>"})
    vision = dict(
        model_type="idefics3_vision",
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=490,
        patch_size=35,
    )
    text = dict(**_TEXT, vocab_size=len(tok), moe_num_experts=4, moe_topk=2, moe_num_shared_experts=1)
    config = AriaConfig(
        vision_config=vision,
        text_config=text,
        projector_patch_to_query_dict={196: 4},
        image_token_index=tok.convert_tokens_to_ids("<|img|>"),
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    _widen_and_save(AriaForConditionalGeneration(config), folder)
    image_processor = AriaImageProcessorPil(max_image_size=490, min_image_size=70)
    TinyAriaProcessor(image_processor=image_processor, tokenizer=tok, size_conversion={490: 4}).save_pretrained(folder)
    return folder


PROMPTS["aria"] = "Look: <|img|> Describe the picture in a few words"
