"""QEFFAutoModelForMaskGeneration: SAM (Segment Anything; transformers' ``AutoModelForMaskGeneration``) as an image
encoder graph and a prompt decoder graph per kind of prompt (points, boxes, both).

``generate(processor(image, input_points=...))`` returns what transformers' forward does (``iou_scores``,
``pred_masks``), which the processor's ``post_process_masks`` takes as it is. ``get_image_embeddings`` runs the image
encoder alone; ``generate`` takes its output (``image_embeddings``) instead of pixels, so that an image is encoded
once and prompted many times, as transformers allows.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForMaskGeneration, PreTrainedModel
from transformers.models.sam.modeling_sam import SamImageSegmentationOutput

from QEfficient.compile.ort_cpu import warn_ignored_options
from QEfficient.compile.weight_compression import quantize_dynamic_int8
from QEfficient.export.graph_specs import PIXEL_VALUES, ImageEncoderGraphSpec
from QEfficient.export.onnx_export import torchscript_export
from QEfficient.export.task_graph_specs import (
    IMAGE_EMBEDDINGS,
    INPUT_BOXES,
    INPUT_LABELS,
    INPUT_POINTS,
    IOU_SCORES,
    MASK_GENERATOR_KIND,
    PRED_MASKS,
    MaskDecoderGraphSpec,
)
from QEfficient.generation.encoder_run import run_in_batches
from QEfficient.models.base import QEFFBaseModel
from QEfficient.transform.mask_generation import PROMPT_KINDS, QEffSamImageEncoder, QEffSamPromptDecoder, check_mask_generator
from QEfficient.utils.arrays import as_numpy
from QEfficient.utils.checks import check_positive


class QEFFAutoModelForMaskGeneration(QEFFBaseModel):
    """SAM (module docstring).

    >>> model = QEFFAutoModelForMaskGeneration.from_pretrained("path/to/sam-vit-base")
    >>> model.compile(num_cores=16)
    >>> inputs = processor(image, input_points=[[[450, 600]]], return_tensors="pt")
    >>> out = model.generate(inputs)
    >>> processor.post_process_masks(out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"])
    """

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        check_mask_generator(model)
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.hf = model.eval()
        self.image_encoder = QEffSamImageEncoder(self.hf)
        self.decoders = {kind: QEffSamPromptDecoder(self.hf, kind) for kind in PROMPT_KINDS}
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
        """The side of the square images SAM reads (its processor resizes the longest side to it and pads)."""
        return self.config.vision_config.image_size

    def _embedding_shape(self) -> tuple[int, int, int]:
        prompt = self.config.prompt_encoder_config
        return prompt.hidden_size, prompt.image_embedding_size, prompt.image_embedding_size

    def export(self, export_dir: str | os.PathLike | None = None, **kwargs) -> dict[str, Path]:
        """Export the image encoder and a prompt decoder per kind of prompt (each cached under QEFF_HOME): {"image": path,
        "points": path, "boxes": path, "points_boxes": path}."""
        warn_ignored_options("export()", kwargs)
        name, size = self.model_name.replace("/", "_"), self.image_size
        image_spec = ImageEncoderGraphSpec(IMAGE_EMBEDDINGS)
        paths = {
            "image": self._export_graph(
                self.image_encoder,
                f"{name}-image",
                export_dir,
                export_fn=lambda tmp: torchscript_export(
                    self.image_encoder,
                    image_spec.dummy_inputs(self.config.vision_config.num_channels, size, size),
                    tmp / f"{name}-image.onnx",
                    list(image_spec.input_names),
                    image_spec.output_names,
                    image_spec.dynamic_axes(),
                ),
                hash_extra={"graph": f"{MASK_GENERATOR_KIND}-image"},
            )
        }
        for kind, decoder in self.decoders.items():
            spec = MaskDecoderGraphSpec(decoder.prompt_names)
            paths[kind] = self._export_graph(
                decoder,
                f"{name}-{kind}",
                export_dir,
                export_fn=lambda tmp, decoder=decoder, spec=spec, kind=kind: torchscript_export(
                    decoder,
                    spec.dummy_inputs(self._embedding_shape(), size),
                    tmp / f"{name}-{kind}.onnx",
                    list(spec.input_names),
                    spec.output_names,
                    spec.dynamic_axes(),
                ),
                hash_extra={"graph": f"{MASK_GENERATOR_KIND}-{kind}"},
            )
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
        if onnx_path is not None:
            raise ValueError(f"{type(self).__name__} builds several graphs; call compile() without onnx_path (it exports them).")
        check_positive(batch_size=batch_size, num_cores=num_cores)
        warn_ignored_options("compile()", {**compiler_options, "num_devices": num_devices > 1})
        paths = self.export()
        size = self.image_size
        common = {"model_name": self.model_name, "num_cores": num_cores}
        self.qpc_paths = {
            "image_qpc_path": self._build_artifact(
                paths["image"],
                compile_dir,
                {**common, "kind": f"{MASK_GENERATOR_KIND}-image", "output_name": IMAGE_EMBEDDINGS},
                {"backend": "onnxruntime-cpu", "image_size": [size, size], "batch_size": batch_size, "mxfp6_matmul": mxfp6_matmul},
                ImageEncoderGraphSpec.specializations(batch_size, size, size),
                rewrite=quantize_dynamic_int8 if mxfp6_matmul else None,
            )
        }
        for kind in PROMPT_KINDS:
            self.qpc_paths[f"{kind}_qpc_path"] = self._build_artifact(
                paths[kind],
                compile_dir,
                {**common, "kind": f"{MASK_GENERATOR_KIND}-{kind}", "output_name": PRED_MASKS},
                {"backend": "onnxruntime-cpu", "batch_size": batch_size},
                MaskDecoderGraphSpec.specializations(batch_size),
            )
        self.qpc_path = self.qpc_paths["image_qpc_path"]
        self._num_cores = num_cores
        return self.qpc_paths

    def get_image_embeddings(self, pixel_values, runtime_ai100: bool = True) -> torch.Tensor:
        """The image encoder's output [images, C, h, w] for a processor's pixel_values, as transformers' method."""
        pixels = np.ascontiguousarray(as_numpy(pixel_values), dtype=np.float32)
        pixels = pixels[None] if pixels.ndim == 3 else pixels
        size = self.image_size
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != (self.config.vision_config.num_channels, size, size):
            raise ValueError(
                f"pixel_values must be [images, {self.config.vision_config.num_channels}, {size}, {size}] (SAM's processor resizes "
                f"and pads every image to {size}x{size}), got shape {list(pixels.shape)}."
            )
        if not runtime_ai100:
            with torch.no_grad():
                return self.image_encoder(torch.from_numpy(pixels))
        session, params = self._graph_session("image")
        return torch.from_numpy(run_in_batches(session, PIXEL_VALUES, pixels, params["batch_size"])[0])

    def generate(
        self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True, multimask_output: bool = True
    ) -> SamImageSegmentationOutput:
        """Masks for a processor's output (pixel_values, or image_embeddings from get_image_embeddings, with input_points
        and input_labels, input_boxes, or both): ``pred_masks`` [images, prompts, masks, h, w] and ``iou_scores``, three
        masks per prompt with ``multimask_output`` (transformers' default), else one."""
        if device_ids is not None and len(device_ids) > 1:
            warn_ignored_options("generate()", {"device_ids": device_ids})
        if not hasattr(inputs, "keys"):
            raise ValueError("Pass a processor's output (a mapping with pixel_values or image_embeddings, and the prompts).")
        if inputs.get("input_masks") is not None:
            raise ValueError("Mask prompts (input_masks) are not supported: prompt with points or boxes.")
        if (inputs.get(PIXEL_VALUES) is None) == (inputs.get(IMAGE_EMBEDDINGS) is None):
            raise ValueError("Pass either pixel_values or image_embeddings (from get_image_embeddings), not both or neither.")
        prompts = self._prompts(inputs)
        if inputs.get(IMAGE_EMBEDDINGS) is not None:
            embeddings = np.ascontiguousarray(as_numpy(inputs[IMAGE_EMBEDDINGS]), dtype=np.float32)
            if embeddings.shape[1:] != self._embedding_shape():
                raise ValueError(
                    f"image_embeddings must be [images, {', '.join(map(str, self._embedding_shape()))}], got {list(embeddings.shape)}."
                )
        else:
            embeddings = self.get_image_embeddings(inputs[PIXEL_VALUES], runtime_ai100).numpy()
        if len(next(iter(prompts.values()))) != len(embeddings):
            raise ValueError(f"The prompts are for {len(next(iter(prompts.values())))} images, the inputs hold {len(embeddings)}.")
        kind = "points_boxes" if len(prompts) == 3 else ("points" if INPUT_POINTS in prompts else "boxes")
        if not runtime_ai100:
            with torch.no_grad():
                masks, scores = (
                    t.numpy() for t in self.decoders[kind](torch.from_numpy(embeddings), *map(torch.from_numpy, prompts.values()))
                )
        else:
            masks, scores = self._graph_session(kind)[0].run([PRED_MASKS, IOU_SCORES], {IMAGE_EMBEDDINGS: embeddings, **prompts})
        keep = slice(1, None) if multimask_output else slice(0, 1)
        return SamImageSegmentationOutput(
            iou_scores=torch.from_numpy(np.ascontiguousarray(scores[:, :, keep])),
            pred_masks=torch.from_numpy(np.ascontiguousarray(masks[:, :, keep])),
        )

    @staticmethod
    def _prompts(inputs) -> dict[str, np.ndarray]:
        """The prompts by graph input name, checked: points [images, prompts, points, 2] with labels (default: every
        point a foreground point, 1, as transformers), boxes [images, prompts, 4]."""
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
        if not prompts:
            raise ValueError("Pass a prompt: input_points (with input_labels), input_boxes, or both.")
        return prompts
