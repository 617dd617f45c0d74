"""Tiny random-weight image-text models for the sweep (model types apertus1p5 .. kosmos-2), built as
tests/vlm_fixtures.py builds its own: the tiny BPE tokenizer plus each architecture's special tokens, seeded
weights widened by 4.0, PIL image processors saved next to the model (tests/vlm_tiny_processors_a.py where HF's
cannot run here). ``PROMPTS`` gives each ``build_<model_type>``'s prompt with its image
placeholder; tests/image_text_sweep.py picks both up."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForImageTextToText

from tests.tiny_models import sweep_config
from tests.vlm_family_fixtures_more import TINY_SAM
from tests.vlm_fixtures import _TEXT, QWEN2_5_VL_VISION, _tokenizer, _widen_and_save
from tests.vlm_tiny_processors_a import (
    TinyApertus1p5ImageProcessor,
    TinyApertus1p5Processor,
    TinyCosmos3EdgeProcessor,
    TinyExaone4_5Processor,
    TinyFuyuImageProcessor,
    TinyFuyuProcessor,
    TinyKimiK25ImageProcessor,
    TinyKimiK25Processor,
)

PROMPTS: dict[str, str] = {}
QWEN_PROMPT = "Look: <|vision_start|><|image_pad|><|vision_end|> Describe the picture in a few words"


def _qwen_tokenizer():
    return _tokenizer(
        ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"],
        {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )


def _save(config, folder: Path) -> None:
    torch.manual_seed(0)
    _widen_and_save(AutoModelForImageTextToText.from_config(config), folder)


def _qwen_image_processor():
    from transformers import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(min_pixels=14 * 14 * 4, max_pixels=14 * 14 * 16, patch_size=7, temporal_patch_size=2, merge_size=2)


def build_exaone4_5(folder) -> Path:
    """EXAONE 4.5: Qwen2.5-VL's vision tower with grouped-query attention (2 heads, 1 key/value head; windows of
    2x2 tokens in block 0), EXAONE 4 text model with 1-D positions; Qwen2-VL's tiny tokenizer and image processor."""
    folder = Path(folder)
    tok = _qwen_tokenizer()
    ids = tok.convert_tokens_to_ids
    vision = dict(QWEN2_5_VL_VISION, num_key_value_heads=1)
    text = dict(**_TEXT, vocab_size=len(tok), model_type="exaone4")
    config = AutoConfig.for_model(
        "exaone4_5", text_config=text, vision_config=vision, image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>")
    )
    _save(config, folder)
    TinyExaone4_5Processor(image_processor=_qwen_image_processor(), tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["exaone4_5"] = QWEN_PROMPT


def build_llava_onevision1_5(folder) -> Path:
    """LLaVA-OneVision-1.5 (transformers 5.25): a RICE tower (Qwen2.5-VL's tiny sizes, Conv2d patches without
    temporal pairs, a class token per image), a Qwen3 text model; EXAONE 4.5's processor, as HF's mapping has it."""
    from transformers import Qwen2VLImageProcessorPil

    folder = Path(folder)
    tok = _qwen_tokenizer()
    ids = tok.convert_tokens_to_ids
    dropped = ("temporal_patch_size", "window_size", "fullatt_block_indexes")  # Qwen2.5-VL's, not RICE's
    vision = {k: v for k, v in QWEN2_5_VL_VISION.items() if k not in dropped}
    text = dict(**_TEXT, vocab_size=len(tok), model_type="qwen3")
    tokens = dict(image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"))
    config = AutoConfig.for_model("llava_onevision1_5", text_config=text, vision_config=vision, **tokens)
    _save(config, folder)
    pixels = dict(min_pixels=14 * 14 * 4, max_pixels=14 * 14 * 16)
    image_processor = Qwen2VLImageProcessorPil(**pixels, patch_size=7, temporal_patch_size=1, merge_size=2)
    TinyExaone4_5Processor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["llava_onevision1_5"] = QWEN_PROMPT


def build_ovis2_5(folder) -> Path:
    """Ovis2.5 (transformers 5.25): a 2-layer tower (patch 7, a 8x8 position table, windows of 2x2 merged tokens in
    layer 0, whole images in layer 1) and a visual vocabulary of 60 (+4 indicators), a Qwen3 text model; its PIL
    image processor, its processor without the video half (torchvision)."""
    from transformers.models.ovis2_5 import Ovis2_5ImageProcessorPil

    from tests.vlm_tiny_processors_a import tiny_ovis2_5_processor

    folder = Path(folder)
    names = {"image_token": "<ovis_image>", "video_token": "<ovis_video>", "image_start_token": "<ovis_image_start>"}
    names.update(image_end_token="<ovis_image_end>", video_start_token="<ovis_video_start>", video_end_token="<ovis_video_end>")
    tok = _tokenizer(list(names.values()), names)
    ids = tok.convert_tokens_to_ids
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=7, image_size=56)
    vision.update(window_size=28, spatial_merge_size=2, layer_types=["window_attention", "full_attention"], vocab_size=64)
    tokens = {f"{k[:-6]}_token_id": ids(v) for k, v in names.items()}  # image_token -> image_token_id, ...
    text = dict(**_TEXT, vocab_size=len(tok), model_type="qwen3")
    _save(AutoConfig.for_model("ovis2_5", text_config=text, vision_config=vision, **tokens), folder)
    size = {"shortest_edge": 14 * 14 * 4, "longest_edge": 14 * 14 * 16}
    image_processor = Ovis2_5ImageProcessorPil(size=size, patch_size=7, temporal_patch_size=1, merge_size=2)
    tiny_ovis2_5_processor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["ovis2_5"] = "Look: <ovis_image> Describe the picture in a few words"


def build_deepseek_vl_hybrid(folder) -> Path:
    """DeepSeek-VL hybrid: DeepSeek-VL's tiny SigLIP tower (28 px, patch 7 -> 16 tokens) plus a high-resolution
    SAM-style tower (32 px, patch 4, windows of 4 patches in layer 0, global in layer 1) whose features two
    stride-2 convolutions bring to the same 4x4 grid; the aligner joins both. Llama text model; the processor
    repeats "<image_placeholder>" 16 times."""
    from transformers import (
        DeepseekVLHybridConfig,
        DeepseekVLHybridForConditionalGeneration,
        DeepseekVLHybridImageProcessorPil,
        DeepseekVLHybridProcessor,
        LlamaConfig,
        SiglipVisionConfig,
    )

    folder = Path(folder)
    tok = _tokenizer(["<image_placeholder>"], {"image_token": "<image_placeholder>"})
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7
    )
    high_res = dict(model_type="sam_vision_model", **TINY_SAM)
    config = DeepseekVLHybridConfig(
        vision_config=vision.to_dict(),
        high_res_vision_config=high_res,
        text_config=LlamaConfig(**_TEXT, vocab_size=len(tok)).to_dict(),
        image_token_id=tok.image_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = DeepseekVLHybridForConditionalGeneration(config)
    with torch.no_grad():
        model.model.high_res_vision_alpha.fill_(0.5)  # starts at 0: the global-attention features would not count
    _widen_and_save(model, folder)
    image_processor = DeepseekVLHybridImageProcessorPil(size={"height": 28, "width": 28}, high_res_size={"height": 32, "width": 32})
    DeepseekVLHybridProcessor(image_processor=image_processor, tokenizer=tok, num_image_tokens=16).save_pretrained(folder)
    return folder


PROMPTS["deepseek_vl_hybrid"] = "Look: <image_placeholder> Describe the picture in a few words"


def build_cohere_compass(folder) -> Path:
    """Cohere Compass (North Vision): Qwen3-VL's tiny vision tower (tests/vlm_family_fixtures_more.py: 3 blocks,
    DeepStack features from blocks 0 and 1) and processor; a Cohere2-style text model (parallel attention and MLP,
    LayerNorm) with a sliding-window layer (3-D rotary, interleaved) and a full-attention layer without rotary."""
    from tests.vlm_family_fixtures_more import build_qwen3_vl

    folder = Path(folder)
    source = AutoConfig.from_pretrained(build_qwen3_vl(folder))  # its tokenizer, processor and vision tower
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3], "mrope_interleaved": True}
    text = dict(
        **_TEXT,
        vocab_size=source.text_config.vocab_size,
        head_dim=16,
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters={"sliding_attention": rope, "full_attention": None},
    )
    ids = {k: getattr(source, k) for k in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")}
    config = AutoConfig.for_model("cohere_compass", text_config=text, vision_config=source.vision_config.to_dict(), **ids)
    _save(config, folder)
    return folder


PROMPTS["cohere_compass"] = QWEN_PROMPT


def build_fast_vlm(folder) -> Path:
    """FastVLM: a FastViT-HD tower (a timm model: transformers wraps it with timm_wrapper), Llava's projector, Qwen2
    text model. timm is not installed here, so HF itself cannot build it: the sweep records hf-fails."""
    from transformers import Qwen2Config

    folder = Path(folder)
    tok = _tokenizer(["<image>"], {"image_token": "<image>"})
    vision = {"model_type": "timm_wrapper", "architecture": "fastvit_mci3", "num_classes": 0}
    text = Qwen2Config(**_TEXT, vocab_size=len(tok)).to_dict()
    _save(AutoConfig.for_model("fast_vlm", text_config=text, vision_config=vision, image_token_id=tok.image_token_id), folder)
    return folder


PROMPTS["fast_vlm"] = "Look: <image> Describe the picture in a few words"


def build_cosmos3_edge(folder) -> Path:
    """Cosmos3 Edge: a 2-layer SigLIP2 tower on packed patches (patch 7, attention within each image) whose 4x4
    learned position table is resized (bilinear, antialiased) to each image's grid, a 2x2 patch merger; a Llama-style
    text model (ReLU^2 MLP) with Qwen3-VL's interleaved 3-D rotary. Qwen2-VL's tiny tokenizer; Cosmos3 Edge's PIL
    image processor at 7 px patches (any size, 784..3136 pixels)."""
    from transformers import Cosmos3EdgeImageProcessorPil

    folder = Path(folder)
    tok = _qwen_tokenizer()
    ids = tok.convert_tokens_to_ids
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    text = dict(**_TEXT, vocab_size=len(tok), head_dim=16, rope_parameters=rope, hidden_act="relu2")
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=7, num_patches=16)
    config = AutoConfig.for_model(
        "cosmos3_edge",
        text_config=text,
        vision_config=vision,
        projector_hidden_size=64,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    _save(config, folder)
    image_processor = Cosmos3EdgeImageProcessorPil(
        size={"shortest_edge": 14 * 14 * 4, "longest_edge": 14 * 14 * 16}, patch_size=7, merge_size=2
    )
    TinyCosmos3EdgeProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["cosmos3_edge"] = QWEN_PROMPT


def build_kimi_k25(folder) -> Path:
    """Kimi K2.5: a 2-layer MoonViT tower (patch 7, 2-D rotary, a 4x4 position table resampled bicubically to each
    image's grid), 2x2 patches merged by a LayerNorm + MLP projector; DeepSeek-V3 text model (multi-latent attention,
    MoE; the decoder sweep's tiny shape). "<|media_pad|>" becomes one token per 2x2 patches."""
    folder = Path(folder)
    tok = _tokenizer(["<|media_begin|>", "<|media_content|>", "<|media_end|>", "<|media_pad|>"], {"image_token": "<|media_pad|>"})
    text = {**sweep_config("deepseek_v3").to_dict(), "vocab_size": len(tok), "tie_word_embeddings": False}
    vision = dict(
        patch_size=7, pos_emb_height=4, pos_emb_width=4, num_attention_heads=2, num_hidden_layers=2, hidden_size=32, intermediate_size=64
    )
    ids = tok.convert_tokens_to_ids
    config = AutoConfig.for_model(
        "kimi_k25",
        text_config=text,
        vision_config=vision,
        projection_hidden_size=32,
        image_token_id=ids("<|media_pad|>"),
        vision_start_token_id=ids("<|media_begin|>"),
        vision_end_token_id=ids("<|media_end|>"),
        tie_word_embeddings=False,
    )
    _save(config, folder)
    TinyKimiK25Processor(image_processor=TinyKimiK25ImageProcessor(), tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["kimi_k25"] = "Look: <|media_pad|> Describe the picture in a few words"


def build_fuyu(folder) -> Path:
    """Fuyu: no vision tower, each 7x7 patch of the (28 px, padded) image goes through one linear layer into the
    Persimmon text model (the decoder sweep's tiny shape). The processor writes a row of "|SPEAKER|" image tokens per
    patch row, each row ended by "|NEWLINE|", then "<s>", before the prompt."""
    folder = Path(folder)
    tok = _tokenizer(["|SPEAKER|", "|NEWLINE|", "▁"])
    text = {**sweep_config("persimmon").to_dict(), "vocab_size": len(tok)}
    config = AutoConfig.for_model(
        "fuyu",
        text_config=text,
        image_size=28,
        patch_size=7,
        image_token_id=tok.convert_tokens_to_ids("|SPEAKER|"),
        tie_word_embeddings=False,
    )
    _save(config, folder)
    image_processor = TinyFuyuImageProcessor(size={"height": 28, "width": 28}, patch_size={"height": 7, "width": 7})
    TinyFuyuProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["fuyu"] = "Describe the picture in a few words"


def _vq_image_tokens(count: int) -> list[str]:
    """Chameleon's names of the VQ codes' text tokens: "IMGIMG" + the code's digits as letters (0 -> A) + "Z"."""
    return ["IMGIMG" + "".join(chr(ord("A") + int(d)) for d in str(i)) + "Z" for i in range(count)]


def build_chameleon(folder) -> Path:
    """Chameleon: images become discrete tokens: a VQ-VAE encoder (32 px, 3 downsamplings -> 4x4 = 16 codes of a
    16-entry codebook), each code mapped to its text token ("IMGIMG..Z") and embedded by the text model's own table
    (qk-norm Llama-style layers). "<image>" becomes "<racm3:break>" + 16 x "<image>" + "<eoss>"; the head never
    predicts the image-code tokens (HF sets their logits to the dtype's minimum)."""
    from transformers import ChameleonConfig, ChameleonImageProcessorPil, ChameleonProcessor

    folder = Path(folder)
    codes = _vq_image_tokens(16)
    tok = _tokenizer(
        ["<image>", "<racm3:break>", "<eoss>", *codes], {"image_token": "<image>", "boi_token": "<racm3:break>", "eoi_token": "<eoss>"}
    )
    vq = dict(
        embed_dim=8,
        num_embeddings=16,
        latent_channels=8,
        resolution=32,
        base_channels=32,
        channel_multiplier=[1, 1, 1, 1],
        num_res_blocks=1,
    )
    vocabulary_map = {name: tok.convert_tokens_to_ids(name) for name in ["<image>", *codes]}
    config = ChameleonConfig(**_TEXT, vocab_size=len(tok), vq_config=vq, vocabulary_map=vocabulary_map, tie_word_embeddings=False)
    _save(config, folder)
    image_processor = ChameleonImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    ChameleonProcessor(image_processor=image_processor, tokenizer=tok, image_seq_length=16).save_pretrained(folder)
    return folder


PROMPTS["chameleon"] = "Look: <image> Describe the picture in a few words"


def build_emu3(folder) -> Path:
    """Emu3: images become discrete tokens. A 3-D-convolution VQ-VAE encoder (the image repeated over 4 frames,
    3 spatial downsamplings: 8 px per code, a 16-entry codebook), each row of codes followed by an end-of-line token,
    embedded by the Llama-style text model's table. The processor resizes each image to multiples of 8 px (576..1024
    pixels) and writes "<|image start|>{h}*{w}<|image token|>" + h*(w+1) x "<image>" + "<|extra_201|><|image end|>"."""
    from transformers import Emu3Config, Emu3ImageProcessor, Emu3Processor

    folder = Path(folder)
    codes = [f"<|visual token{i:06d}|>" for i in range(16)]
    named = {
        "image_token": "<image>",
        "boi_token": "<|image start|>",
        "eoi_token": "<|image end|>",
        "image_wrapper_token": "<|image token|>",
        "eof_token": "<|extra_201|>",
    }
    tok = _tokenizer([*named.values(), "<|extra_200|>", *codes], named)
    vq = dict(
        codebook_size=16,
        embed_dim=4,
        latent_channels=4,
        base_channels=32,
        channel_multiplier=[1, 1, 1, 1],
        num_res_blocks=1,
        attn_resolutions=[],
        hidden_size=32,
        temporal_downsample_factor=4,
    )
    vocabulary_map = {name: tok.convert_tokens_to_ids(name) for name in ["<image>", "<|extra_200|>", *codes]}
    text = dict(**_TEXT, vocab_size=len(tok))
    config = Emu3Config(vq_config=vq, text_config=text, vocabulary_map=vocabulary_map, tie_word_embeddings=False)
    _save(config, folder)
    image_processor = Emu3ImageProcessor(min_pixels=24 * 24, max_pixels=32 * 32, spatial_factor=8)
    Emu3Processor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["emu3"] = "Look: <image> Describe the picture in a few words"


def build_apertus1p5(folder) -> Path:
    """Apertus 1.5: images become discrete tokens, as Emu3's: a Chameleon-style VQGAN encoder (3 downsamplings: 8 px
    per code) with an inner-product codebook (16 entries), run on each image at its own size, codes offset into the
    vocabulary after the tokenizer's, embedded by the Apertus text model's table (the decoder sweep's tiny shape).
    The audio tokenizer (WavTokenizer's encoder) is shrunk and unused. "<image>" becomes
    "<boi>{h}*{w}<img>" + rows of w x "<image>" joined by "<eol>" + "<eoi>"."""
    from transformers import WavTokenizerFeatureExtractor

    from tests.tiny_models import sweep_config

    folder = Path(folder)
    named = {
        "image_token": "<image>",
        "audio_token": "<audio>",
        "boi_token": "<boi>",
        "eoi_token": "<eoi>",
        "image_wrapper_token": "<img>",
        "eol_token": "<eol>",
        "boa_token": "<boa>",
        "eoa_token": "<eoa>",
    }
    tok = _tokenizer(list(named.values()), named)
    codes = 16
    text = {**sweep_config("apertus1p5_text").to_dict(), "vocab_size": len(tok) + 2 * codes}
    vision = dict(
        codebook_size=codes,
        embed_dim=8,
        latent_channels=8,
        base_channels=32,
        channel_multiplier=[1, 1, 1, 1],
        num_res_blocks=1,
        attn_resolutions=[],
        resolution=32,
    )
    audio = dict(
        model_type="wavtokenizer_encoder",
        num_filters=4,
        upsampling_ratios=[2, 2],
        hidden_size=16,
        codebook_size=codes,
        codebook_dim=16,
        num_lstm_layers=1,
    )
    config = AutoConfig.for_model(
        "apertus1p5",
        text_config=text,
        vision_config=vision,
        audio_config=audio,
        image_token_id=tok.image_token_id,
        audio_token_id=tok.audio_token_id,
        image_token_offset=len(tok),
        audio_token_offset=len(tok) + codes,
    )
    _save(config, folder)
    TinyApertus1p5Processor(TinyApertus1p5ImageProcessor(), WavTokenizerFeatureExtractor(), tok).save_pretrained(folder)
    return folder


PROMPTS["apertus1p5"] = "Look: <image> Describe the picture in a few words"


def build_granite4_vision(folder) -> Path:
    """Granite 4 Vision: LLaVA-NeXT's tiny tiling (tests/vlm_family_fixtures.py: 28 px tiles, patch 7, pinpoints
    [[28, 56], [56, 28], [56, 56]]) with a 2-layer CLIP tower of width 64; no projector into the prompt: window
    Q-Former projectors (downsample 1/2: 2x2 tokens per tile) read vision layers 1 and 2 and four spatial-offset
    groups of the last layer, and each adds its features to the image tokens' hidden states before its own text
    layer (DeepStack; the image tokens' input embeddings are zero). Granite text model with 6 layers."""
    from transformers import CLIPVisionConfig, Granite4VisionConfig, GraniteConfig, LlavaNextImageProcessorPil
    from transformers.models.granite4_vision import Granite4VisionProcessor

    folder = Path(folder)
    tok = _tokenizer(["<image>"], {"image_token": "<image>"})
    vision = CLIPVisionConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7)
    text = {
        **GraniteConfig(**_TEXT, vocab_size=len(tok), embedding_multiplier=2.0, residual_multiplier=0.5).to_dict(),
        "num_hidden_layers": 6,
    }
    text.pop("model_type")
    pinpoints = [[28, 56], [56, 28], [56, 56]]
    config = Granite4VisionConfig(
        vision_config=vision.to_dict(),
        text_config=text,
        qformer_config=dict(
            num_hidden_layers=1,
            intermediate_size=64,
            vocab_size=32,
            max_position_embeddings=64,
            cross_attention_frequency=1,
            use_qformer_text_input=False,
        ),
        image_token_id=tok.image_token_id,
        image_grid_pinpoints=pinpoints,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        downsample_rate="1/2",
        deepstack_layer_map=[[1, 0], [2, 1]],
        spatial_vision_layer=-1,
        spatial_target_layers=[2, 3, 4, 5],
        projector_dropout=0.0,
        tie_word_embeddings=False,
    )
    _save(config, folder)
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}, image_grid_pinpoints=pinpoints
    )
    Granite4VisionProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=7,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        downsample_rate="1/2",
    ).save_pretrained(folder)
    return folder


PROMPTS["granite4_vision"] = "Look: <image> Describe the picture in a few words"


def build_granite_docling(folder) -> Path:
    """Granite Docling: Idefics3's tiles (the GOT-OCR2-style tiler: up to 4 tiles of 28 px plus a global one) through
    a 2-layer SigLIP-style tower (patch 7), a coarse connector (pixel shuffle 2 -> 4 tokens per tile, fixed 2-D sine
    positions) and DeepStack features of vision layer 0 added after text layer 0; Granite text model. The fine route
    (the processor's ``fine_route=True``) is not used."""
    from transformers import GraniteConfig, GraniteDoclingConfig, GraniteDoclingImageProcessorPil, GraniteDoclingProcessor

    folder = Path(folder)
    rows_cols = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    tok = _tokenizer(["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", *rows_cols], {"image_token": "<image>"})
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=28,
        patch_size=7,
        out_hidden_size=64,
        scale_factor=2,
        deepstack_visual_indexes=[0],
        use_fine_route=False,
    )
    text = GraniteConfig(**_TEXT, vocab_size=len(tok), embedding_multiplier=2.0, residual_multiplier=0.5).to_dict()
    text.pop("model_type")
    config = GraniteDoclingConfig(text_config=text, vision_config=vision, image_token_id=tok.image_token_id, tie_word_embeddings=False)
    _save(config, folder)
    image_processor = GraniteDoclingImageProcessorPil(size={"height": 28, "width": 28}, max_patches=4)
    GraniteDoclingProcessor(image_processor=image_processor, tokenizer=tok, image_seq_len=4).save_pretrained(folder)
    return folder


PROMPTS["granite_docling"] = "Look: <image> Describe the picture in a few words"


def build_deepseek_ocr2(folder) -> Path:
    """DeepSeek-OCR 2: a 2-layer SAM-style tower (192 px, patch 4, windows of 4 patches in layer 0, global in layer 1)
    whose neck and two stride-2 convolutions give 12x12 = 144 features, then a 2-layer Qwen2-style encoder over them
    and 144 learned queries (bidirectional over the image, causal over the queries: HF's query table for 144 patches);
    the queries' outputs, a linear projector and a view separator give 145 image tokens per image (the global view
    only: no local crops). DeepSeek-V2-style MoE text model with plain multi-head attention."""
    from transformers import DeepseekOcr2Config, DeepseekOcr2ImageProcessorPil, DeepseekOcr2Processor

    folder = Path(folder)
    tok = _tokenizer(["<image>"], {"image_token": "<image>"})
    sam = {**TINY_SAM, "image_size": 192, "downsample_channels": [32, 64]}
    encoder = dict(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512
    )
    text = dict(
        **_TEXT,
        vocab_size=len(tok),
        n_routed_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
        n_shared_experts=1,
        mlp_layer_types=["dense", "sparse"],
    )
    text["num_key_value_heads"] = text["num_attention_heads"]
    config = DeepseekOcr2Config(
        vision_config={"sam_config": sam, "encoder_config": encoder},
        text_config=text,
        image_token_id=tok.image_token_id,
        tie_word_embeddings=False,
    )
    _save(config, folder)
    image_processor = DeepseekOcr2ImageProcessorPil(size={"height": 192, "width": 192}, crop_to_patches=False)
    DeepseekOcr2Processor(image_processor=image_processor, tokenizer=tok, patch_size=4, downsample_ratio=4).save_pretrained(folder)
    return folder


PROMPTS["deepseek_ocr2"] = "Look: <image> Describe the picture in a few words"
