"""QEFFAutoModelForMaskGeneration: SAM, SAM 2 and SAM-HQ (Segment Anything; transformers' ``AutoModelForMaskGeneration``)
as an image encoder graph and a prompt decoder graph per kind of prompt (points, boxes, both).

``generate(processor(image, input_points=...))`` returns what transformers' forward does (``iou_scores``,
``pred_masks``; SAM 2's ``object_score_logits`` too), which the processor's ``post_process_masks`` takes as it is.
``get_image_embeddings`` runs the image encoder alone (SAM 2's: a list of three maps, as transformers'); ``generate``
takes its output (``image_embeddings``) instead of pixels, so that an image is encoded once and prompted many times,
as transformers allows. SAM 2 asked for one mask (``multimask_output=False``) keeps transformers' rule: the single-mask
token's, unless its stability score is low, then the best of the other three by predicted IoU.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForMaskGeneration, PreTrainedModel
from transformers.models.sam.modeling_sam import SamImageSegmentationOutput
from transformers.models.sam2.modeling_sam2 import Sam2ImageSegmentationOutput
from transformers.models.sam_hq.modeling_sam_hq import SamHQImageSegmentationOutput

from QEfficient.compile.ort_cpu import warn_ignored_options
from QEfficient.compile.weight_compression import quantize_dynamic_int8
from QEfficient.export.graph_names import PIXEL_VALUES
from QEfficient.export.media_graph_specs import ImageEncoderGraphSpec
from QEfficient.export.task_graph_specs import (
    IMAGE_EMBEDDINGS,
    INPUT_BOXES,
    INPUT_LABELS,
    INPUT_POINTS,
    INTERMEDIATE_EMBEDDINGS,
    MASK_GENERATOR_KIND,
    PRED_MASKS,
    PROMPT_KINDS,
    MaskDecoderGraphSpec,
    image_embedding_names,
)
from QEfficient.generation.encoder_run import run_in_batches
from QEfficient.models.base import GraphArtifact, QEFFBaseModel
from QEfficient.transform.mask_generation import (
    QEffSamImageEncoder,
    QEffSamPromptDecoder,
    check_mask_generator,
    embedding_count,
    has_vit_features,
    is_sam2,
    is_sam_hq,
)
from QEfficient.utils.arrays import as_numpy


def stable_single_mask(masks: np.ndarray, scores: np.ndarray, delta: float, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """SAM 2's one mask per prompt from every mask token's ([B, P, 4, h, w], [B, P, 4]), as transformers'
    ``_dynamic_multimask_via_stability``: token 0's where the share of its logits above ``delta`` among those above
    ``-delta`` reaches ``threshold``, else the best of tokens 1-3 by predicted IoU."""
    best = scores[:, :, 1:].argmax(-1)  # the first of equal scores, as torch's argmax
    best_masks = np.take_along_axis(masks[:, :, 1:], best[:, :, None, None, None], axis=2)
    best_scores = np.take_along_axis(scores[:, :, 1:], best[:, :, None], axis=2)
    single = masks[:, :, :1].reshape(*masks.shape[:2], 1, -1)
    inside, union = (single > delta).sum(-1).astype(np.float32), (single > -delta).sum(-1).astype(np.float32)
    stability = np.where(union > 0, inside / np.maximum(union, 1), np.float32(1.0))
    stable = stability >= threshold  # [B, P, 1]
    return np.where(stable[..., None, None], masks[:, :, :1], best_masks), np.where(stable, scores[:, :, :1], best_scores)


def high_quality_masks(masks: np.ndarray, scores: np.ndarray, multimask: bool, hq_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """SAM-HQ's masks from every token's ([B, P, 5, h, w]: four SAM tokens, then the high-quality one) and the SAM tokens'
    IoU [B, P, 4], as its decoder picks them: tokens 1-3 sorted by IoU (or token 0), plus the high-quality mask (or it
    alone)."""
    high = masks[:, :, -1:]
    if multimask:
        order = np.argsort(-scores[:, :, 1:], axis=-1, kind="stable")  # descending, as torch.sort
        picked = np.take_along_axis(masks[:, :, 1:-1], order[..., None, None], axis=2)
        scores = np.take_along_axis(scores[:, :, 1:], order, axis=-1)
    else:
        picked, scores = masks[:, :, :1], scores[:, :, :1]
    return np.ascontiguousarray(high if hq_only else picked + high), np.ascontiguousarray(scores)


class QEFFAutoModelForMaskGeneration(QEFFBaseModel):
    """SAM, SAM 2 and SAM-HQ (module docstring).

    >>> model = QEFFAutoModelForMaskGeneration.from_pretrained("path/to/sam-vit-base")
    >>> model.compile(num_cores=16)
    >>> inputs = processor(image, input_points=[[[450, 600]]], return_tensors="pt")
    >>> out = model.generate(inputs)
    >>> processor.post_process_masks(out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"])
    >>> # SAM 2 ("path/to/sam2.1-hiera-tiny"): processor.post_process_masks(out.pred_masks, inputs["original_sizes"])
    """

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        check_mask_generator(model)
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.hf = model.eval()
        self.image_encoder = QEffSamImageEncoder(self.hf)
        self.decoders = {kind: QEffSamPromptDecoder(self.hf, names) for kind, names in PROMPT_KINDS.items()}
        self.embedding_names = image_embedding_names(embedding_count(self.hf), has_vit_features(self.hf))
        self.is_sam2, self.is_sam_hq = is_sam2(self.hf), is_sam_hq(self.hf)
        self.qpc_paths: dict[str, Path] = {}

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """A local folder or a hub id in the local HF cache; other keyword arguments go to transformers."""
        return cls._from_auto(AutoModelForMaskGeneration, pretrained_model_name_or_path, *args, **kwargs)

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.hf

    @property
    def image_size(self) -> int:
        """The side of the square images SAM reads (its processor resizes the longest side to it and pads; SAM 2's
        resizes to it)."""
        return self.config.prompt_encoder_config.image_size if self.is_sam2 else self.config.vision_config.image_size

    @property
    def num_channels(self) -> int:
        vision = self.config.vision_config
        return vision.backbone_config.num_channels if self.is_sam2 else vision.num_channels

    def _embedding_shapes(self) -> list[tuple[int, int, int]]:
        """[channels, height, width] of each image embedding map the decoder reads (SAM-HQ's ViT features: [height,
        width, channels], as transformers gives them)."""
        prompt = self.config.prompt_encoder_config
        if not self.is_sam2:
            shapes = [(prompt.hidden_size, prompt.image_embedding_size, prompt.image_embedding_size)]
            if len(self.embedding_names) > 1:  # SAM-HQ's first global attention block's output
                vision = self.config.vision_config
                patches = vision.image_size // vision.patch_size
                shapes.append((patches, patches, vision.hidden_size))
            return shapes
        decoder_width = self.config.mask_decoder_config.hidden_size  # its conv_s0 / conv_s1 narrow the high-resolution maps
        channels = [decoder_width // 8, decoder_width // 4, self.config.vision_config.fpn_hidden_size]
        return [(c, *size) for c, size in zip(channels, self.config.vision_config.backbone_feature_sizes)]

    def export(self, export_dir: str | os.PathLike | None = None, **kwargs) -> dict[str, Path]:
        """Export the image encoder and a prompt decoder per kind of prompt (each cached under QEFF_HOME): {"image": path,
        "points": path, "boxes": path, "points_boxes": path}."""
        warn_ignored_options("export()", kwargs)
        name, size = self.model_name.replace("/", "_"), self.image_size
        first, *more = self.embedding_names
        image_spec = ImageEncoderGraphSpec(first, tuple(more))
        image_args = image_spec.dummy_inputs(self.num_channels, size, size)
        paths = {
            "image": self._export_spec_graph(
                self.image_encoder, image_spec, image_args, f"{name}-image", f"{MASK_GENERATOR_KIND}-image", export_dir
            )
        }
        for kind, decoder in self.decoders.items():
            spec = MaskDecoderGraphSpec(decoder.prompt_names, self.embedding_names, object_scores=self.is_sam2)
            args = spec.dummy_inputs(self._embedding_shapes(), size)
            paths[kind] = self._export_spec_graph(decoder, spec, args, f"{name}-{kind}", f"{MASK_GENERATOR_KIND}-{kind}", export_dir)
        self.onnx_path = paths
        return paths

    def compile(
        self,
        onnx_path: str | os.PathLike | None = None,
        compile_dir: str | os.PathLike | None = None,
        *,
        batch_size: int = 1,
        num_devices: int = 1,
        num_cores: int = 16,
        mxfp6_matmul: bool = False,
        **compiler_options,
    ) -> dict[str, Path]:
        """Build the image encoder's artifact (``batch_size`` images at a time) and the prompt decoders'; returns
        {"image_qpc_path": ..., "points_qpc_path": ..., ...}. ``mxfp6_matmul``: the MatMuls as int8 GEMMs (the image
        encoder's; the decoders, small, stay float32)."""
        self._check_graphs_compile(onnx_path, num_devices, compiler_options, batch_size=batch_size, num_cores=num_cores)
        paths = self.export()
        size = self.image_size
        image = GraphArtifact(
            "image",
            paths["image"],
            {"kind": f"{MASK_GENERATOR_KIND}-image", "output_name": self.embedding_names[0]},
            {"image_size": [size, size], "batch_size": batch_size, "mxfp6_matmul": mxfp6_matmul},
            ImageEncoderGraphSpec.specializations(batch_size, size, size),
            quantize_dynamic_int8 if mxfp6_matmul else None,
        )
        decoders = [
            GraphArtifact(
                kind,
                paths[kind],
                {"kind": f"{MASK_GENERATOR_KIND}-{kind}", "output_name": PRED_MASKS},
                {"batch_size": batch_size},
                MaskDecoderGraphSpec.specializations(batch_size),
            )
            for kind in PROMPT_KINDS
        ]
        return self._compile_graphs([image, *decoders], compile_dir, num_cores, main="image")

    def get_image_embeddings(
        self, pixel_values, runtime_ai100: bool = True
    ) -> torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The image encoder's output [images, C, h, w] for a processor's pixel_values (SAM 2's: a list of them, from the
        highest resolution; SAM-HQ's: (it, [its first global block's ViT features]), which its decoder reads), as
        transformers' method; ``generate`` takes it back as ``image_embeddings`` (SAM-HQ's: and ``intermediate_embeddings``)."""
        maps = [torch.from_numpy(m) for m in self._image_embeddings(pixel_values, runtime_ai100)]
        if self.is_sam2:
            return maps
        return (maps[0], maps[1:]) if self.is_sam_hq else maps[0]

    def _image_embeddings(self, pixel_values, runtime_ai100: bool) -> list[np.ndarray]:
        pixels = np.ascontiguousarray(as_numpy(pixel_values), dtype=np.float32)
        pixels = pixels[None] if pixels.ndim == 3 else pixels
        size, channels = self.image_size, self.num_channels
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != (channels, size, size):
            how = "resizes" if self.is_sam2 else "resizes and pads"  # SAM-HQ's processor: SAM's
            raise ValueError(
                f"pixel_values must be [images, {channels}, {size}, {size}] (the processor {how} every image to "
                f"{size}x{size}), got shape {list(pixels.shape)}."
            )
        if not runtime_ai100:
            with torch.no_grad():
                out = self.image_encoder(torch.from_numpy(pixels))
            return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]
        session, params = self._graph_session("image")
        return run_in_batches(session, {PIXEL_VALUES: pixels}, params["batch_size"])

    def _given_embeddings(self, given, intermediate=None) -> list[np.ndarray]:
        """``image_embeddings`` as get_image_embeddings returns them (SAM 2's: a list; SAM-HQ's with its
        ``intermediate_embeddings``, of which the decoder reads the first), checked."""
        maps = list(given) if isinstance(given, (list, tuple)) else [given]
        if self.is_sam_hq and len(self.embedding_names) > 1:
            if intermediate is None:
                raise ValueError("SAM-HQ's decoder reads its ViT features: pass intermediate_embeddings with image_embeddings.")
            maps += list(intermediate)[:1] if isinstance(intermediate, (list, tuple)) else [intermediate]
        maps = [np.ascontiguousarray(as_numpy(m), dtype=np.float32) for m in maps]
        shapes = self._embedding_shapes()
        if len(maps) != len(shapes) or any(m.ndim != 4 or m.shape[1:] != shape or len(m) != len(maps[0]) for m, shape in zip(maps, shapes)):
            expected = [f"[images, {', '.join(map(str, shape))}]" for shape in shapes]
            if self.is_sam_hq and len(shapes) > 1:  # its map, and its ViT features as intermediate_embeddings
                what = f"{expected[0]} with intermediate_embeddings [{expected[1]}]"
            else:
                what = ("a list of " if len(shapes) > 1 else "") + ", ".join(expected)
            raise ValueError(f"image_embeddings must be {what} (get_image_embeddings' output), got {[list(np.shape(m)) for m in maps]}.")
        return maps

    def generate(
        self,
        inputs,
        device_ids: list[int] | None = None,
        runtime_ai100: bool = True,
        multimask_output: bool = True,
        hq_token_only: bool = False,
    ) -> SamImageSegmentationOutput | Sam2ImageSegmentationOutput | SamHQImageSegmentationOutput:
        """Masks for a processor's output (pixel_values, or image_embeddings from get_image_embeddings, with input_points
        and input_labels, input_boxes, or both): ``pred_masks`` [images, prompts, masks, h, w] and ``iou_scores``, three
        masks per prompt with ``multimask_output`` (transformers' default), else one (module docstring); SAM-HQ's
        ``hq_token_only``: its high-quality token's mask alone, as transformers'."""
        if device_ids is not None and len(device_ids) > 1:
            warn_ignored_options("generate()", {"device_ids": device_ids})
        if not hasattr(inputs, "keys"):
            raise ValueError("Pass a processor's output (a mapping with pixel_values or image_embeddings, and the prompts).")
        if inputs.get("input_masks") is not None:
            raise ValueError("Mask prompts (input_masks) are not supported: prompt with points or boxes.")
        if (inputs.get(PIXEL_VALUES) is None) == (inputs.get(IMAGE_EMBEDDINGS) is None):
            raise ValueError("Pass either pixel_values or image_embeddings (from get_image_embeddings), not both or neither.")
        prompts = self._prompts(inputs)
        if not prompts and not self.is_sam2:
            raise ValueError("Pass a prompt: input_points (with input_labels), input_boxes, or both.")
        if inputs.get(IMAGE_EMBEDDINGS) is not None:
            embeddings = self._given_embeddings(inputs[IMAGE_EMBEDDINGS], inputs.get(INTERMEDIATE_EMBEDDINGS))
        else:
            embeddings = self._image_embeddings(inputs[PIXEL_VALUES], runtime_ai100)
        if not prompts:  # SAM 2 without a prompt: transformers' one padding point (label -1) per image
            images = len(embeddings[0])
            prompts = {INPUT_POINTS: np.zeros((images, 1, 1, 2), np.float32), INPUT_LABELS: -np.ones((images, 1, 1), np.int64)}
        if len(next(iter(prompts.values()))) != len(embeddings[0]):
            raise ValueError(f"The prompts are for {len(next(iter(prompts.values())))} images, the inputs hold {len(embeddings[0])}.")
        kind = "points_boxes" if len(prompts) == 3 else ("points" if INPUT_POINTS in prompts else "boxes")
        if not runtime_ai100:
            with torch.no_grad():
                outputs = [t.numpy() for t in self.decoders[kind](*map(torch.from_numpy, (*embeddings, *prompts.values())))]
        else:
            names = MaskDecoderGraphSpec(PROMPT_KINDS[kind], self.embedding_names, object_scores=self.is_sam2).output_names
            feed = dict(zip(self.embedding_names, embeddings)) | prompts
            outputs = self._graph_session(kind)[0].run(names, feed)
        masks, scores = outputs[0], outputs[1]
        decoder_config = self.config.mask_decoder_config
        if self.is_sam_hq:
            masks, scores = high_quality_masks(masks, scores, multimask_output, hq_token_only)
            return SamHQImageSegmentationOutput(iou_scores=torch.from_numpy(scores), pred_masks=torch.from_numpy(masks))
        if not multimask_output and self.is_sam2 and decoder_config.dynamic_multimask_via_stability:
            masks, scores = stable_single_mask(
                masks, scores, decoder_config.dynamic_multimask_stability_delta, decoder_config.dynamic_multimask_stability_thresh
            )
        else:
            keep = slice(1, None) if multimask_output else slice(0, 1)
            masks, scores = masks[:, :, keep], scores[:, :, keep]
        masks, scores = (torch.from_numpy(np.ascontiguousarray(x)) for x in (masks, scores))
        if not self.is_sam2:
            return SamImageSegmentationOutput(iou_scores=scores, pred_masks=masks)
        return Sam2ImageSegmentationOutput(
            iou_scores=scores,
            pred_masks=masks,
            object_score_logits=torch.from_numpy(outputs[2]),
            image_embeddings=[torch.from_numpy(m) for m in embeddings],
        )

    @staticmethod
    def _prompts(inputs) -> dict[str, np.ndarray]:
        """The prompts by graph input name, checked: points [images, prompts, points, 2] with labels (default: every
        point a foreground point, 1, as transformers), boxes [images, prompts, 4]; none given, none."""
        prompts = {}
        if inputs.get(INPUT_POINTS) is not None:
            points = np.ascontiguousarray(as_numpy(inputs[INPUT_POINTS]), dtype=np.float32)
            if points.ndim != 4 or points.shape[-1] != 2:
                raise ValueError(f"input_points must be [images, prompts, points, 2] (the processor's), got shape {list(points.shape)}.")
            labels = inputs.get(INPUT_LABELS)
            labels = np.ones(points.shape[:3], np.int64) if labels is None else np.ascontiguousarray(as_numpy(labels), dtype=np.int64)
            if labels.shape != points.shape[:3]:
                raise ValueError(f"input_labels must be {list(points.shape[:3])} (one per point), got {list(labels.shape)}.")
            prompts |= {INPUT_POINTS: points, INPUT_LABELS: labels}
        if inputs.get(INPUT_BOXES) is not None:
            boxes = np.ascontiguousarray(as_numpy(inputs[INPUT_BOXES]), dtype=np.float32)
            if boxes.ndim != 3 or boxes.shape[-1] != 4:
                raise ValueError(f"input_boxes must be [images, boxes, 4] (the processor's), got shape {list(boxes.shape)}.")
            if INPUT_POINTS in prompts and boxes.shape[:2] != prompts[INPUT_POINTS].shape[:2]:
                raise ValueError("With points and boxes together, give one box per prompt of points (as transformers).")
            prompts[INPUT_BOXES] = boxes
        return prompts
