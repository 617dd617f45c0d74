"""Tiny random-weight vision-language models whose text model carries recurrent state (Qwen3.5's Gated
DeltaNet, ...), built as tests/vlm_family_fixtures_more.py builds its own: the tiny BPE tokenizer plus each
architecture's special tokens, seeded weights widened by 4.0, PIL image processors saved next to the model.
Each hybrid text model has one recurrent layer, then one attention layer. ``PROMPTS`` gives each
``build_<model_type>``'s prompt with its image placeholder; tests/image_text_sweep.py picks both up."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    BatchFeature,
    ProcessorMixin,
    Qwen2VLConfig,
    SiglipImageProcessorPil,
)
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from transformers.models.lfm3_vl.processing_lfm3_vl import Lfm3VlProcessor
from transformers.models.minicpmv4_6.processing_minicpmv4_6 import MiniCPMV4_6Processor
from transformers.models.nemotron_h_omni.processing_nemotron_h_omni import NemotronH_Omni_Reasoning_V3Processor

from tests.tiny_models import SWEEP_OVERRIDES, sweep_config
from tests.vlm_family_fixtures_more import QWEN3_VL_VISION, QWEN_PROMPT
from tests.vlm_fixtures import _TEXT, _tokenizer, _widen_and_save, build_qwen2_vl
from tests.vlm_tiny_processors import SubprocessorsFromArguments

PROMPTS: dict[str, str] = {}


def build_qwen3_5(folder, *, model_type: str = "qwen3_5") -> Path:
    """Qwen3.5: Qwen2-VL's tiny tokenizer and processor; Qwen3-VL's tiny vision tower without DeepStack (3 blocks,
    patch 7, merge 2, a 4x4 learned position table); a Gated DeltaNet layer then an attention layer, interleaved
    3-D rotary on half of each head. ``model_type="qwen3_5_moe"``: MoE layers (4 experts, top 2)."""
    folder = Path(folder)
    source = Qwen2VLConfig.from_pretrained(build_qwen2_vl(folder))
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1], "partial_rotary_factor": 0.5}
    text = dict(
        **_TEXT,
        **SWEEP_OVERRIDES["qwen3_5_text"],
        vocab_size=source.text_config.vocab_size,
        head_dim=16,
        rope_parameters=rope,
        layer_types=["linear_attention", "full_attention"],
    )
    if model_type == "qwen3_5_moe":
        text.update(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, shared_expert_intermediate_size=32)
    ids = {k: getattr(source, k) for k in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")}
    config = AutoConfig.for_model(model_type, text_config=text, vision_config=QWEN3_VL_VISION, **ids)
    torch.manual_seed(0)
    _widen_and_save(AutoModelForImageTextToText.from_config(config), folder)
    return folder


def build_qwen3_5_moe(folder) -> Path:
    return build_qwen3_5(folder, model_type="qwen3_5_moe")


PROMPTS["qwen3_5"] = PROMPTS["qwen3_5_moe"] = QWEN_PROMPT


class TinyLfm3VlProcessor(Lfm3VlProcessor):
    """Lfm3VlProcessor without its video processor (Qwen3-VL's, which needs torchvision, not installed here);
    registered by name, as TinyQwen2VLProcessor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)


AutoProcessor.register("tiny_lfm3_vl_processor", TinyLfm3VlProcessor, exist_ok=True)


def build_lfm3_vl(folder) -> Path:
    """LFM3-VL: Qwen2-VL's tiny tokenizer and PIL image processor (patch 7, merge 2); a 2-layer vision tower (a
    gated 3x3 short convolution, then grouped-query attention with axial rotary), LayerNorm + MLP projector; an
    LFM3 text model with a short-convolution layer and an attention layer."""
    from transformers import Lfm3Config, Lfm3VlConfig, Lfm3VlForConditionalGeneration, Qwen2VLImageProcessorPil

    folder = Path(folder)
    build_qwen2_vl(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        layer_types=["conv", "full_attention"],
        patch_size=7,
        spatial_merge_size=2,
        temporal_patch_size=2,
        rope_parameters={"rope_type": "axial", "rope_theta": 10000.0},
    )
    text = Lfm3Config(**{**_TEXT, **SWEEP_OVERRIDES["lfm3"]}, vocab_size=len(tok))
    ids = tok.convert_tokens_to_ids
    config = Lfm3VlConfig(
        vision_config=vision,
        text_config=text.to_dict(),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        projector_hidden_size=64,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    _widen_and_save(Lfm3VlForConditionalGeneration(config), folder)
    # Qwen2-VL's tiny image processor, saved by build_qwen2_vl
    TinyLfm3VlProcessor(image_processor=Qwen2VLImageProcessorPil.from_pretrained(folder), tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["lfm3_vl"] = QWEN_PROMPT


_MINICPM_TOKENS = {
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "image_start_token": "<image>",
    "image_end_token": "</image>",
    "slice_start_token": "<slice>",
    "slice_end_token": "</slice>",
    "image_id_start_token": "<image_id>",
    "image_id_end_token": "</image_id>",
}


class TinyMiniCPMVProcessor(MiniCPMV4_6Processor):
    """MiniCPMV4_6Processor without its video processor (torchvision, not installed here): its image half as is."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)
        self.slice_mode = self.image_processor.slice_mode
        self.default_use_image_id = self.image_processor.use_image_id
        self.image_token_divisor = 4 if self.image_processor.downsample_mode == "4x" else 16
        for name in _MINICPM_TOKENS:
            setattr(self, name, getattr(tokenizer, name))
        self.image_token_id, self.video_token_id = tokenizer.image_token_id, tokenizer.video_token_id


AutoProcessor.register("tiny_minicpmv_processor", TinyMiniCPMVProcessor, exist_ok=True)


def build_minicpmv4_6(folder, *, model_type: str = "minicpmv4_6", rope: dict | None = None, **config_extra) -> Path:
    """MiniCPM-V 4.6: a 2-layer SigLIP-style tower (patch 7, a 4x4 position table), the 2x2 window merger after
    layer 0 ("16x"), a 2x2 merging MLP; a Qwen3.5 text model (a Gated DeltaNet layer, an attention layer). The PIL
    processor slices an image larger than 28x28 px into a thumbnail plus slices, each its own unit.
    ``model_type="minicpm_ocr"``: MiniCPM-OCR, the same layout in "4x" mode (no window merger). ``rope`` and
    ``config_extra``: the text model's rotary parameters and more config fields (MiniCPM-V 4.7's)."""
    from transformers import MiniCPMV4_6ImageProcessorPil

    folder = Path(folder)
    tok = _tokenizer(list(_MINICPM_TOKENS.values()), _MINICPM_TOKENS)
    mode = "4x" if model_type == "minicpm_ocr" else "16x"
    rope = rope or {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5}
    text = dict(
        **_TEXT,
        **SWEEP_OVERRIDES["qwen3_5_text"],
        model_type="qwen3_5_text",
        vocab_size=len(tok),
        head_dim=16,
        rope_parameters=rope,
        layer_types=["linear_attention", "full_attention"],
    )
    vision = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7, insert_layer_id=0
    )
    ids = tok.convert_tokens_to_ids
    config = AutoConfig.for_model(
        model_type,
        text_config=text,
        vision_config=vision,
        image_token_id=ids(_MINICPM_TOKENS["image_token"]),
        video_token_id=ids(_MINICPM_TOKENS["video_token"]),
        downsample_mode=mode,
        insert_layer_id=0,
        tie_word_embeddings=False,
        **{k: ids(v) for k, v in config_extra.items()},  # token ids, by token
    )
    torch.manual_seed(0)
    _widen_and_save(AutoModelForImageTextToText.from_config(config), folder)
    image_processor = MiniCPMV4_6ImageProcessorPil(scale_resolution=28, patch_size=7, max_slice_nums=4, downsample_mode=mode)
    TinyMiniCPMVProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


def build_minicpm_ocr(folder) -> Path:
    return build_minicpmv4_6(folder, model_type="minicpm_ocr")


PROMPTS["minicpmv4_6"] = PROMPTS["minicpm_ocr"] = "Look: <|image_pad|> Describe the picture in a few words"


class TinyNemotronHOmniImageProcessor(SiglipImageProcessorPil):
    """Nemotron-H Omni's image processor has only a torchvision backend (not installed). This one keeps what the model
    sees: each image resized (PIL, bicubic) to its patch grid (HF's rule: about its own grid, within 16..64 patches of
    7 px, both sides even), normalised with CLIP's statistics, cut into row-major channel-major patches."""

    patch_size, downsample_ratio, min_num_patches, max_num_patches = 7, 0.5, 16, 64
    image_mean, image_std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    def __call__(self, images, **kwargs):
        return self.preprocess(images, **kwargs)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        rows, cols = round(height / self.patch_size + 0.5), round(width / self.patch_size + 0.5)
        factor = min(math.sqrt(self.max_num_patches / (rows * cols)), 1.0)
        rows, cols = math.floor(factor * rows), math.floor(factor * cols)
        if rows * cols < self.min_num_patches:
            factor = math.sqrt(self.min_num_patches / (rows * cols))
            rows, cols = math.ceil(factor * rows), math.ceil(factor * cols)
        return rows + rows % 2, cols + cols % 2

    def preprocess(self, images, **kwargs):
        from transformers.image_utils import make_flat_list_of_images

        patches, grids, p = [], [], self.patch_size
        for img in make_flat_list_of_images(images):
            img = img if hasattr(img, "resize") else Image.fromarray(np.asarray(img))
            rows, cols = self.grid(img.height, img.width)
            array = np.asarray(img.convert("RGB").resize((cols * p, rows * p), Image.BICUBIC), np.float32) / 255.0
            array = ((array - np.array(self.image_mean, np.float32)) / np.array(self.image_std, np.float32)).transpose(2, 0, 1)
            patches.append(array.reshape(3, rows, p, cols, p).transpose(1, 3, 0, 2, 4).reshape(rows * cols, 3 * p * p))
            grids.append([rows, cols])
        data = {"pixel_values": np.concatenate(patches), "image_grid_hw": np.array(grids, np.int64)}
        return BatchFeature(data=data, tensor_type=kwargs.get("return_tensors"))


class TinyNemotronHOmniProcessor(SubprocessorsFromArguments, NemotronH_Omni_Reasoning_V3Processor):
    """NemotronH_Omni_Reasoning_V3Processor with TinyNemotronHOmniImageProcessor and no video or audio processor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token, self.image_token_id = tokenizer.image_token, tokenizer.image_token_id
        self.image_start_token, self.image_end_token = "<img>", "</img>"
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        return [
            TinyNemotronHOmniImageProcessor.from_pretrained(pretrained_model_name_or_path),
            AutoTokenizer.from_pretrained(pretrained_model_name_or_path),
        ]


AutoProcessor.register("tiny_nemotron_h_omni_processor", TinyNemotronHOmniProcessor, exist_ok=True)


def build_nemotron_h_omni(folder) -> Path:
    """Nemotron-H Omni (images): a 2-layer RADIO tower (patch 7, a 4x4 position table, 3 class + 2 register tokens),
    2x2 pixel shuffle, MLP projector; the decoder sweep's tiny Nemotron-H text model (Mamba-2, MoE, attention and MLP
    layers). "<image>" becomes "<img>" + (rows/2 x cols/2) x "<image>" + "</img>"."""
    from transformers import NemotronH_Omni_Reasoning_V3, NemotronH_Omni_Reasoning_V3_Config

    folder = Path(folder)
    tok = _tokenizer(["<image>", "<img>", "</img>"], {"image_token": "<image>"})
    text = sweep_config("nemotron_h").to_dict() | {"vocab_size": len(tok), "moe_shared_expert_intermediate_size": 32}
    vision = dict(
        model_type="radio",
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2.0,
        patch_size=7,
        max_img_size=28,
        num_cls_tokens=3,
        num_registers=2,
        summary_idxs=[0],
        video_temporal_patch_size=2,
    )
    config = NemotronH_Omni_Reasoning_V3_Config(
        vision_config=vision,
        text_config=text,
        vision_hidden_size=32,
        projector_hidden_size=64,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(0)
    _widen_and_save(NemotronH_Omni_Reasoning_V3(config), folder)
    TinyNemotronHOmniProcessor(image_processor=TinyNemotronHOmniImageProcessor(), tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["nemotron_h_omni"] = "Look: <image> Describe the picture in a few words"
