"""The names of graph inputs and outputs, written once.

The exporter, the runtime and generation all take names from here (and the graph specs beside it own which
of them a graph kind has); the task models' own names (mask generation, keypoints, detection, ...) live with their
specs in task_graph_specs.py. No torch: runtime/ and generation/ import it.
"""

from __future__ import annotations

from collections.abc import Sequence

INPUT_IDS = "input_ids"
POSITION_IDS = "position_ids"
ATTENTION_MASK = "attention_mask"
TOKEN_TYPE_IDS = "token_type_ids"  # encoders with segment embeddings (BERT): a pair's second text is type 1
BBOX = "bbox"  # document models (LayoutLM, LiLT, Bros, LayoutLMv3): each token's box on its page [B, S, 4]
# MarkupLM: each token's XPath in its HTML page, as tag ids and subscripts, one per level [B, S, max_depth]
XPATH_TAGS_SEQ = "xpath_tags_seq"
XPATH_SUBS_SEQ = "xpath_subs_seq"
GLOBAL_ATTENTION_MASK = "global_attention_mask"  # Longformer attention (Longformer, LED's encoder): tokens seen by all
LOGITS = "logits"
VISION_EMBEDS = "vision_embeds"
IMAGE_IDX = "image_idx"
IMAGE_IDX_OUTPUT = "image_idx_output"
INPUT_FEATURES = "input_features"
# Whisper's decoder: its alignment heads' cross-attention probabilities [audios, heads, rows * S, frames] (token times)
CROSS_ATTENTIONS = "cross_attentions"
ROPE_POSITION_IDS = "rope_position_ids"
CROSS_ATTENTION_MASK = "cross_attention_mask"  # Mllama: the image tiles each token attends [B, S, images, tiles]
RETAINED_SUFFIX = "_RetainedState"
CONV_STATE = "conv_state"
SSM_STATE = "ssm_state"
LORA_IDS = "lora_ids"
CTX_LEN_AXIS = "ctx_len"  # the symbolic length of the KV cache inputs and outputs (axis 2)
ENCODER_ATTENTION_MASK = "encoder_attention_mask"  # an encoder-decoder's decoder step: the encoder positions not padding
PIXEL_VALUES = "pixel_values"
FLATTENED_PATCHES = "flattened_patches"
# a processor's decoder prompt (Pix2Struct's text) and its mask, as transformers names them
DECODER_INPUT_IDS = "decoder_input_ids"
DECODER_ATTENTION_MASK = "decoder_attention_mask"
INPUT_VALUES = "input_values"
EMBEDDINGS = "embeddings"  # a speaker-verification model's x-vector [audios, D] (transformers' XVectorOutput)
OUTPUT = "output"  # an encoder's last hidden state (pooled where asked), as QEfficient's QEFFAutoModel names it
LOGITS_MASK = "logits_mask"  # a spectrogram CTC model's output frames that hold audio (its subsampled input mask)

# the "kind" in the manifest of these models' artifacts
IMAGE_ENCODER_KIND = "image_encoder"
VIDEO_CLASSIFIER_KIND = "video_classifier"
DUAL_ENCODER_KIND = "dual-encoder"  # the prefix of a contrastive image-text model's towers' kinds (-text, -image)


# every input a vision-language model's language graph may have besides its cache and recurrent states; in the
# one-graph layout the rest are the vision branch's
LANGUAGE_SIDE_INPUTS = frozenset({INPUT_IDS, POSITION_IDS, VISION_EMBEDS, IMAGE_IDX, ROPE_POSITION_IDS, CROSS_ATTENTION_MASK})


def lora_table_names(module: str) -> tuple[str, str]:
    """The graph inputs holding every adapter's A and B matrices for target module ``module``."""
    return f"lora_a.{module}", f"lora_b.{module}"


def retained(name: str) -> str:
    """The output a runtime binds to the same buffer as input ``name`` (updated in place)."""
    return name + RETAINED_SUFFIX


RETAINED_EMBEDS = retained(VISION_EMBEDS)


def past_names(num_layers: int, prefix: str = "past") -> list[str]:
    """``past_key.0, past_value.0, past_key.1, ...``: the per-layer cache inputs, key before value."""
    return [f"{prefix}_{kind}.{i}" for i in range(num_layers) for kind in ("key", "value")]


def recurrent_state_names(has_ssm: Sequence[bool]) -> list[str]:
    """``conv_state.0, ssm_state.0, conv_state.1, ...``: the states of the recurrent layers (Mamba-style mixers,
    numbered among those layers), retained in place like the KV cache. Every recurrent layer keeps a
    convolution state; ``has_ssm[i]`` says whether layer i also keeps an SSM state (LFM2's short
    convolutions do not)."""
    return [name for i, ssm in enumerate(has_ssm) for name in (f"{CONV_STATE}.{i}", f"{SSM_STATE}.{i}")[: 1 + bool(ssm)]]
