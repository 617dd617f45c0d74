"""Graph specs of the task models: text-prompted detection, SAM's prompt decoder, SuperPoint, SuperGlue's and
EfficientLoFTR's matchers, ViLT, VITS, the time-series models (TimesFM 2.5 too), late-interaction retrieval (ColPali)
and the transducers' encoder and decoding step. As graph_specs.py's, each owns its graph's input and output names,
dynamic axes, the dummy inputs the exporter traces with and the specializations the compile step records; no torch at
import time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from QEfficient.export.graph_names import (
    ATTENTION_MASK,
    DECODER_INPUT_IDS,
    EMBEDDINGS,
    INPUT_FEATURES,
    INPUT_IDS,
    LOGITS,
    PIXEL_VALUES,
    TOKEN_TYPE_IDS,
    VISION_EMBEDS,
)

PRED_BOXES = "pred_boxes"  # a detector's boxes [images, boxes, 4]: centre x, centre y, width, height, relative
ZERO_SHOT_DETECTOR_KIND = "zero_shot_detector"  # a text-prompted detector's artifact


@dataclass(frozen=True)
class ZeroShotDetectionGraphSpec:
    """Text-prompted detectors (OWL-ViT, OWLv2, Grounding DINO): the prompts' tokens [texts, seq_len] (``texts_per_image``
    rows per image: OWL-ViT's queries, one prompt for Grounding DINO) and the images at the compiled size in; the scores
    of each box against each query or prompt token, and the boxes, out."""

    texts_per_image: int

    input_names = (INPUT_IDS, ATTENTION_MASK, PIXEL_VALUES)
    output_names = [LOGITS, PRED_BOXES]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        text, images = {0: "texts", 1: "seq_len"}, {0: "batch_size"}
        return {INPUT_IDS: text, ATTENTION_MASK: text, PIXEL_VALUES: images, LOGITS: images, PRED_BOXES: images}

    def dummy_inputs(self, vocab_size: int, seq_len: int, channels: int, height: int, width: int) -> tuple:
        import torch

        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(1, max(2, min(vocab_size, 1000)), (2 * self.texts_per_image, seq_len), generator=generator)
        mask = torch.ones_like(ids)
        mask[-1, seq_len // 2 :] = 0
        return ids, mask, torch.rand(2, channels, height, width, generator=generator)

    @staticmethod
    def specializations(batch_size: int, seq_len: int, height: int, width: int) -> dict[str, Any]:
        symbols = {"batch_size": str(batch_size), "seq_len": str(seq_len), "height": str(height), "width": str(width)}
        return {"specializations": [{"name": "ZeroShotDetector", "symbols": symbols}]}


IMAGE_EMBEDDINGS = "image_embeddings"  # SAM's image encoder's output [images, channels, height, width]
INTERMEDIATE_EMBEDDINGS = "intermediate_embeddings"  # SAM-HQ's: its first global attention block's [images, h, w, width]
INPUT_POINTS, INPUT_LABELS, INPUT_BOXES = "input_points", "input_labels", "input_boxes"  # SAM's prompts, as its processor
PRED_MASKS, IOU_SCORES, OBJECT_SCORE_LOGITS = "pred_masks", "iou_scores", "object_score_logits"
MASK_GENERATOR_KIND = "mask_generator"  # the prefix of a promptable segmenter's artifact kinds (-image, -points, ...)


# a promptable segmenter's prompt kinds, each one decoder graph: name -> the graph's prompt inputs
PROMPT_KINDS = {
    "points": (INPUT_POINTS, INPUT_LABELS),
    "boxes": (INPUT_BOXES,),
    "points_boxes": (INPUT_POINTS, INPUT_LABELS, INPUT_BOXES),
}


def image_embedding_names(count: int, vit_features: bool = False) -> tuple[str, ...]:
    """The image encoder's outputs: SAM's one map; SAM-HQ's map and its ViT features (``vit_features``); or SAM 2's maps
    from the highest resolution to the lowest (the list transformers' ``get_image_embeddings`` returns),
    ``image_embeddings.0``, ``.1``, ..."""
    if vit_features:
        return IMAGE_EMBEDDINGS, INTERMEDIATE_EMBEDDINGS
    return (IMAGE_EMBEDDINGS,) if count == 1 else tuple(f"{IMAGE_EMBEDDINGS}.{level}" for level in range(count))


@dataclass(frozen=True)
class MaskDecoderGraphSpec:
    """A promptable segmenter's (SAM's, SAM 2's, SAM-HQ's) prompt encoder and mask decoder: the image embeddings (SAM 2's
    at each resolution, SAM-HQ's with its ViT features) and one kind of prompt in (points [images, prompts, points, 2]
    with their labels [images, prompts, points], or boxes [images, prompts, 4], or both), every mask token's
    low-resolution masks [images, prompts, masks, h, w] and predicted IoU [images, prompts, masks] out (and SAM 2's
    object score [images, prompts, 1]); the host keeps the ones asked for (multimask_output)."""

    prompts: tuple[str, ...]
    embeddings: tuple[str, ...] = (IMAGE_EMBEDDINGS,)  # SAM's one map, SAM 2's three, SAM-HQ's and its ViT features
    object_scores: bool = False

    @property
    def input_names(self) -> tuple[str, ...]:
        return (*self.embeddings, *self.prompts)

    @property
    def output_names(self) -> list[str]:
        return [PRED_MASKS, IOU_SCORES, *([OBJECT_SCORE_LOGITS] if self.object_scores else [])]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        prompt = {0: "batch_size", 1: "prompts"}
        axes = {name: {0: "batch_size"} for name in self.embeddings}
        axes |= {PRED_MASKS: prompt, IOU_SCORES: prompt, OBJECT_SCORE_LOGITS: prompt, INPUT_BOXES: prompt}
        axes |= {name: {**prompt, 2: "points"} for name in (INPUT_POINTS, INPUT_LABELS)}
        return {name: axes[name] for name in (*self.input_names, *self.output_names)}

    def dummy_inputs(self, embedding_shapes: list[tuple[int, int, int]], image_size: int) -> tuple:
        import torch

        generator = torch.Generator().manual_seed(0)
        values = {name: torch.rand(2, *shape, generator=generator) for name, shape in zip(self.embeddings, embedding_shapes)}
        values |= {
            INPUT_POINTS: torch.rand(2, 3, 2, 2, generator=generator) * image_size,
            INPUT_LABELS: torch.tensor([[[1, 0], [1, 1], [1, -10]]] * 2),
            INPUT_BOXES: torch.sort(torch.rand(2, 3, 2, 2, generator=generator) * image_size, dim=2).values.reshape(2, 3, 4),
        }
        return tuple(values[name] for name in self.input_names)

    @staticmethod
    def specializations(batch_size: int) -> dict[str, Any]:
        return {"specializations": [{"name": "MaskDecoder", "symbols": {"batch_size": str(batch_size)}}]}


WAVEFORM, SEQUENCE_LENGTHS = "waveform", "sequence_lengths"  # a text-to-speech graph's audio [B, samples], real lengths [B]
# VITS' sampling controls, scalar inputs of its graph (transformers reads them from the model: noise_scale, ...)
NOISE_SCALE, NOISE_SCALE_DURATION, SPEAKING_RATE, SPEAKER_ID = "noise_scale", "noise_scale_duration", "speaking_rate", "speaker_id"
TEXT_TO_WAVEFORM_KIND = "text_to_waveform"


@dataclass(frozen=True)
class TextToWaveformGraphSpec:
    """Non-autoregressive text-to-speech (VITS, MMS-TTS): the text's ids and mask, the noise scales and speaking rate
    (scalars), and a multi-speaker model's speaker ([1]: one per call, as transformers takes it) in; the waveform
    [B, samples] and each row's real length out. The noise is drawn inside the graph."""

    speakers: bool = False

    @property
    def input_names(self) -> tuple[str, ...]:
        controls = (NOISE_SCALE, NOISE_SCALE_DURATION, SPEAKING_RATE) + ((SPEAKER_ID,) if self.speakers else ())
        return (INPUT_IDS, ATTENTION_MASK, *controls)

    output_names = [WAVEFORM, SEQUENCE_LENGTHS]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        text = {0: "batch_size", 1: "seq_len"}
        axes = {INPUT_IDS: text, ATTENTION_MASK: text, WAVEFORM: {0: "batch_size", 1: "samples"}, SEQUENCE_LENGTHS: {0: "batch_size"}}
        return axes

    def dummy_inputs(self, vocab_size: int) -> tuple:
        """Two rows of 7 tokens, the second's last two padding; no noise (the traced sizes follow the durations)."""
        import torch

        ids = torch.randint(1, max(2, vocab_size), (2, 7), generator=torch.Generator().manual_seed(0))
        mask = torch.ones_like(ids)
        mask[1, 5:] = 0
        scalars = (torch.tensor(0.0), torch.tensor(0.0), torch.tensor(1.0))
        return (ids, mask, *scalars) + ((torch.zeros(1, dtype=torch.int64),) if self.speakers else ())  # one speaker per call

    @staticmethod
    def specializations(batch_size: int) -> dict[str, Any]:
        return {"specializations": [{"name": "TextToWaveform", "symbols": {"batch_size": str(batch_size)}}]}


PAST_VALUES, PAST_OBSERVED_MASK = "past_values", "past_observed_mask"  # a time series' context [B, context, channels]
TIME_SERIES_KIND = "time_series"


@dataclass(frozen=True)
class TimeSeriesGraphSpec:
    """Time-series models (PatchTST, PatchTSMixer: forecasting, regression, classification): the context window [B,
    context_length, channels] (and which of its values were observed, where the model reads that) in, the head's output
    out (a forecast [B, prediction_length, channels], regression targets or class logits)."""

    output_name: str
    observed_mask: bool = True

    @property
    def input_names(self) -> tuple[str, ...]:
        return (PAST_VALUES, PAST_OBSERVED_MASK) if self.observed_mask else (PAST_VALUES,)

    @property
    def output_names(self) -> list[str]:
        return [self.output_name]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {name: {0: "batch_size"} for name in (*self.input_names, self.output_name)}

    def dummy_inputs(self, context_length: int, channels: int) -> tuple:
        import torch

        values = torch.randn(2, context_length, channels, generator=torch.Generator().manual_seed(0))
        observed = torch.ones_like(values)
        observed[1, :2] = 0  # a few unobserved values
        return (values, observed) if self.observed_mask else (values,)

    @staticmethod
    def specializations(batch_size: int, context_length: int) -> dict[str, Any]:
        symbols = {"batch_size": str(batch_size), "context_length": str(context_length)}
        return {"specializations": [{"name": "TimeSeries", "symbols": symbols}]}


VISUAL_QA_KIND = "visual_question_answering"


@dataclass(frozen=True)
class VisualQuestionAnsweringGraphSpec:
    """Image-text classifiers that read both in one transformer (ViLT's question answering and retrieval heads): the
    question's tokens [B, S] and an image [B, 3, H, W] of any size in (its patch grid follows it), the logits out."""

    input_names = (INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS, PIXEL_VALUES)
    output_names = [LOGITS]

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        text = {0: "batch_size", 1: "seq_len"}
        image = {0: "batch_size", 2: "height", 3: "width"}
        return {INPUT_IDS: text, ATTENTION_MASK: text, TOKEN_TYPE_IDS: text, PIXEL_VALUES: image, LOGITS: {0: "batch_size"}}

    @staticmethod
    def dummy_inputs(vocab_size: int, patch_size: int) -> tuple:
        import torch

        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(1, max(2, min(vocab_size, 1000)), (2, 7), generator=generator)
        mask = torch.ones_like(ids)
        mask[1, 5:] = 0
        return ids, mask, torch.zeros_like(ids), torch.rand(2, 3, 3 * patch_size, 2 * patch_size, generator=generator)

    @staticmethod
    def specializations(batch_size: int) -> dict[str, Any]:
        return {"specializations": [{"name": "VisualQuestionAnswering", "symbols": {"batch_size": str(batch_size)}}]}


PAST_VALUES_PADDING, FREQ, PATCH_FORECASTS = "past_values_padding", "freq", "patch_forecasts"


@dataclass(frozen=True)
class TimesFmGraphSpec:
    """TimesFM's decoder and forecast head, one pass: the context [B, context_length] (left-padded by the host, as
    transformers' preprocessing), its padding [B, context_length] and each series' frequency class [B, 1] in; every
    patch's forecast [B, patches, horizon_length, 1 + quantiles] (the mean, then the quantiles) out."""

    input_names = (PAST_VALUES, PAST_VALUES_PADDING, FREQ)
    output_names = [PATCH_FORECASTS]

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        return {name: {0: "batch_size"} for name in (PAST_VALUES, PAST_VALUES_PADDING, FREQ, PATCH_FORECASTS)}

    @staticmethod
    def dummy_inputs(context_length: int) -> tuple:
        import torch

        values = torch.randn(2, context_length, generator=torch.Generator().manual_seed(0))
        padding = torch.zeros(2, context_length)
        padding[1, : context_length // 2] = 1  # a shorter series, padded in front
        values[1, : context_length // 2] = 0
        return values, padding, torch.tensor([[0], [1]], dtype=torch.int32)

    @staticmethod
    def specializations(batch_size: int, context_length: int) -> dict[str, Any]:
        symbols = {"batch_size": str(batch_size), "context_length": str(context_length)}
        return {"specializations": [{"name": "TimesFm", "symbols": symbols}]}


POINT_FORECAST, QUANTILE_SPREADS = "point_forecast", "quantile_spreads"


@dataclass(frozen=True)
class TimesFm2_5GraphSpec:
    """TimesFM 2.5's decoder and output heads, one pass: the normalized context [B, context] (left-padded by the host,
    as transformers' preprocessing; any multiple of the patch length) and its padding [B, context] in; the last patch's
    point forecast [B, horizon, 1 + quantiles] and quantile spreads [B, quantile horizon, 1 + quantiles] out."""

    input_names = (PAST_VALUES, PAST_VALUES_PADDING)
    output_names = [POINT_FORECAST, QUANTILE_SPREADS]

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        series = {0: "batch_size", 1: "context_length"}
        return {PAST_VALUES: series, PAST_VALUES_PADDING: series, POINT_FORECAST: {0: "batch_size"}, QUANTILE_SPREADS: {0: "batch_size"}}

    @staticmethod
    def dummy_inputs(patch_length: int) -> tuple:
        import torch

        context = 4 * patch_length
        values = torch.randn(2, context, generator=torch.Generator().manual_seed(0))
        padding = torch.zeros(2, context)
        padding[1, : context // 2 + 1] = 1  # a shorter series, padded in front (a patch partly)
        values[1, : context // 2 + 1] = 0
        return values, padding

    @staticmethod
    def specializations(batch_size: int) -> dict[str, Any]:
        return {"specializations": [{"name": "TimesFm2_5", "symbols": {"batch_size": str(batch_size)}}]}


KEYPOINT_SCORES, DENSE_DESCRIPTORS = "keypoint_scores", "dense_descriptors"
KEYPOINT_DETECTOR_KIND = "keypoint_detector"


@dataclass(frozen=True)
class KeypointGraphSpec:
    """SuperPoint's dense part: the image's first channel [B, 1, H, W] (its gray) of any size in; each pixel's keypoint
    score after non-maximum suppression [B, H, W] and the L2-normalized descriptor map [B, D, H / 8, W / 8] out (the
    host picks the keypoints and samples their descriptors, as transformers does per image)."""

    input_names = (PIXEL_VALUES,)
    output_names = [KEYPOINT_SCORES, DENSE_DESCRIPTORS]

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        image = {0: "batch_size", 2: "height", 3: "width"}
        return {PIXEL_VALUES: image, KEYPOINT_SCORES: {0: "batch_size", 1: "height", 2: "width"}, DENSE_DESCRIPTORS: {0: "batch_size"}}

    @staticmethod
    def dummy_inputs(channels: int) -> tuple:
        import torch

        gray = torch.rand(2, 1, 64, 48, generator=torch.Generator().manual_seed(0))
        return (gray.expand(-1, channels, -1, -1).contiguous(),)

    @staticmethod
    def specializations(batch_size: int) -> dict[str, Any]:
        return {"specializations": [{"name": "KeypointDetector", "symbols": {"batch_size": str(batch_size)}}]}


RETRIEVAL_KIND = "retrieval"  # the prefix of a retrieval model's artifact kinds (-vision: graph_specs.VisionGraphSpec, -text)


@dataclass(frozen=True)
class RetrievalTextGraphSpec:
    """A late-interaction retriever's language model: the tokens of pages or queries [B, S] (their types: PaliGemma's
    prefix) and the image-token embeddings as rows [rows, hidden] in (a query binds one row it does not read), the
    per-token embeddings [B, S, dim] out. Its image tower is the image-text path's vision graph."""

    input_names = (INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS, VISION_EMBEDS)
    output_names = [EMBEDDINGS]

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        text = {0: "batch_size", 1: "seq_len"}
        return {INPUT_IDS: text, ATTENTION_MASK: text, TOKEN_TYPE_IDS: text, VISION_EMBEDS: {0: "rows"}, EMBEDDINGS: text}

    @staticmethod
    def dummy_inputs(vocab_size: int, image_token_id: int, hidden_size: int) -> tuple:
        import torch

        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(1, max(2, min(vocab_size, 1000)), (2, 7), generator=generator)
        ids[ids == image_token_id] = 0
        ids[0, :3] = image_token_id  # a page of three image tokens, then a query padded on the left
        mask = torch.ones_like(ids)
        mask[1, :2] = 0
        types = torch.zeros_like(ids)
        types[0, -1] = 1
        return ids, mask, types, torch.rand(3, hidden_size, generator=generator)

    @staticmethod
    def specializations(batch_size: int) -> dict[str, Any]:
        return {"specializations": [{"name": "RetrievalText", "symbols": {"batch_size": str(batch_size)}}]}


KEYPOINTS, DESCRIPTORS, SCORES, MASK = "keypoints", "descriptors", "scores", "mask"  # as transformers' outputs name them
MATCHES, MATCHING_SCORES = "matches", "matching_scores"
KEYPOINT_MATCHER_KIND = "keypoint_matcher"


@dataclass(frozen=True)
class KeypointMatcherGraphSpec:
    """SuperGlue's matcher: image pairs' keypoints normalized to their image [pairs, 2, N, 2], their descriptors
    [pairs, 2, N, D], scores and mask [pairs, 2, N] (padded to the batch's most keypoints) in; each keypoint's match in
    the other image (-1 for none) and its score [pairs, 2, N] out."""

    input_names = (KEYPOINTS, DESCRIPTORS, SCORES, MASK)
    output_names = [MATCHES, MATCHING_SCORES]

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        points = {0: "pairs", 2: "keypoints"}
        return {name: points for name in (KEYPOINTS, DESCRIPTORS, SCORES, MASK, MATCHES, MATCHING_SCORES)}

    @staticmethod
    def dummy_inputs(descriptor_dim: int) -> tuple:
        import torch

        generator = torch.Generator().manual_seed(0)
        keypoints = torch.rand(2, 2, 5, 2, generator=generator) - 0.5
        descriptors = torch.nn.functional.normalize(torch.randn(2, 2, 5, descriptor_dim, generator=generator), dim=-1)
        mask = torch.ones(2, 2, 5, dtype=torch.int32)
        mask[1, 0, 3:] = 0  # an image with fewer keypoints
        return keypoints, descriptors, torch.rand(2, 2, 5, generator=generator), mask

    @staticmethod
    def specializations(batch_size: int) -> dict[str, Any]:
        return {"specializations": [{"name": "KeypointMatcher", "symbols": {"pairs": str(batch_size)}}]}


# a transducer's encoder outputs and its decoding step's state (transform/transducer.py)
ENCODER_STATES, ENCODER_MASK = "encoder_states", "encoder_mask"
HIDDEN_STATE, CELL_STATE, DECODER_OUTPUT = "hidden_state", "cell_state", "decoder_output"
KEEP_DECODER_STATE, ENCODER_FRAME = "keep_decoder_state", "encoder_frame"
PROMPT_IDS = "prompt_ids"  # a transducer's prompt per clip (Nemotron 3.5 ASR's language), as its processor names it
TRANSDUCER_KIND = "transducer"  # the prefix of a transducer's artifact kinds (-encoder, -step)


@dataclass(frozen=True)
class TransducerEncoderGraphSpec:
    """A transducer's encoder: the spectrogram [B, frames, mels] and its mask [B, frames] in; the encoder states
    projected for the joint network [B, T, H] and the frames that hold audio [B, T] out."""

    input_names = (INPUT_FEATURES, ATTENTION_MASK)
    output_names = [ENCODER_STATES, ENCODER_MASK]

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        frames, encoded = {0: "batch_size", 1: "frames"}, {0: "batch_size", 1: "encoder_frames"}
        return {INPUT_FEATURES: frames, ATTENTION_MASK: frames, ENCODER_STATES: encoded, ENCODER_MASK: encoded}

    @staticmethod
    def dummy_inputs(mels: int) -> tuple:
        import torch

        features = torch.randn(2, 64, mels, generator=torch.Generator().manual_seed(0))
        mask = torch.ones(2, 64, dtype=torch.int64)
        mask[1, 40:] = 0  # a shorter clip, padded
        return features, mask

    @staticmethod
    def specializations(batch_size: int) -> dict[str, Any]:
        return {"specializations": [{"name": "TransducerEncoder", "symbols": {"batch_size": str(batch_size)}}]}


@dataclass(frozen=True)
class PromptedTransducerEncoderGraphSpec(TransducerEncoderGraphSpec):
    """A transducer's encoder conditioned on a prompt per clip (Nemotron 3.5 ASR's language, ``prompt_ids`` [B]) too."""

    input_names = (INPUT_FEATURES, ATTENTION_MASK, PROMPT_IDS)

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        return TransducerEncoderGraphSpec.dynamic_axes() | {PROMPT_IDS: {0: "batch_size"}}

    @staticmethod
    def dummy_inputs(mels: int) -> tuple:
        import torch

        return (*TransducerEncoderGraphSpec.dummy_inputs(mels), torch.tensor([1, 0]))


@dataclass(frozen=True)
class TransducerStepGraphSpec:
    """A transducer's decoding step: each row's last token [B, 1], the prediction network's LSTM state [layers, B, H]
    twice and last output [B, 1, H], whether to keep them [B, 1], and the encoder frame it reads [B, H] in; the joint
    network's logits [B, vocab (+ durations)] and the state to carry out."""

    input_names = (DECODER_INPUT_IDS, HIDDEN_STATE, CELL_STATE, DECODER_OUTPUT, KEEP_DECODER_STATE, ENCODER_FRAME)
    output_names = [LOGITS, f"{HIDDEN_STATE}_out", f"{CELL_STATE}_out", f"{DECODER_OUTPUT}_out"]

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        rows, state = {0: "batch_size"}, {1: "batch_size"}
        axes = {DECODER_INPUT_IDS: rows, DECODER_OUTPUT: rows, KEEP_DECODER_STATE: rows, ENCODER_FRAME: rows, LOGITS: rows}
        axes |= {HIDDEN_STATE: state, CELL_STATE: state, f"{HIDDEN_STATE}_out": state, f"{CELL_STATE}_out": state}
        return axes | {f"{DECODER_OUTPUT}_out": rows}

    @staticmethod
    def dummy_inputs(layers: int, hidden: int, encoder_width: int) -> tuple:
        import torch

        generator = torch.Generator().manual_seed(0)
        state = (torch.randn(layers, 2, hidden, generator=generator) for _ in range(2))
        output = torch.randn(2, 1, hidden, generator=generator)
        return (torch.tensor([[1], [0]]), *state, output, torch.tensor([[0], [1]]), torch.randn(2, encoder_width, generator=generator))

    @staticmethod
    def specializations(batch_size: int) -> dict[str, Any]:
        return {"specializations": [{"name": "TransducerStep", "symbols": {"batch_size": str(batch_size)}}]}


@dataclass(frozen=True)
class DenseMatcherGraphSpec:
    """A semi-dense matcher (EfficientLoFTR): image pairs at the compiled size [pairs, 2, 1, height, width] (their first
    channel, which it reads) in;
    for each coarse position of each image its match in the other (-1 for none), its score and its refined keypoint
    [pairs, 2, positions(, 2)] out."""

    input_names = (PIXEL_VALUES,)
    output_names = [MATCHES, MATCHING_SCORES, KEYPOINTS]

    @staticmethod
    def dummy_inputs(channels: int, height: int, width: int) -> tuple:
        import torch

        return (torch.rand(2, 2, channels, height, width, generator=torch.Generator().manual_seed(0)),)

    @staticmethod
    def specializations(batch_size: int, height: int, width: int) -> dict[str, Any]:
        symbols = {"batch_size": str(batch_size), "height": str(height), "width": str(width)}
        return {"specializations": [{"name": "DenseMatcher", "symbols": symbols}]}
