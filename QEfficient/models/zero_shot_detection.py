"""QEFFAutoModelForZeroShotObjectDetection: text-prompted object detectors (OWL-ViT, OWLv2, Grounding DINO, MM Grounding
DINO; transformers' ``AutoModelForZeroShotObjectDetection``) as one graph: the prompts' tokens and the images in, the
scores and boxes out. The images run at the compiled size; the prompts at their own length.

``generate(processor(text=..., images=...))`` returns ZeroShotObjectDetectionOutput (``logits``, ``pred_boxes``,
``input_ids``), which the processor's ``post_process_grounded_object_detection`` takes as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForZeroShotObjectDetection, PreTrainedModel
from transformers.utils import ModelOutput

from QEfficient.compile.ort_cpu import read_artifact, warn_ignored_options
from QEfficient.export.graph_names import ATTENTION_MASK, INPUT_IDS, LOGITS, PIXEL_VALUES, TOKEN_TYPE_IDS
from QEfficient.export.task_graph_specs import PRED_BOXES, ZERO_SHOT_DETECTOR_KIND, ZeroShotDetectionGraphSpec
from QEfficient.generation.encoder_run import encoder_inputs
from QEfficient.models.base import QEFFBaseModel
from QEfficient.models.image_encoder import pick_image_size
from QEfficient.runtime.ort_session import open_artifact_session
from QEfficient.transform.zero_shot_detection import PROMPT_PER_IMAGE, QEffZeroShotDetector, text_limit
from QEfficient.utils.arrays import as_numpy
from QEfficient.utils.checks import check_positive


@dataclass
class ZeroShotObjectDetectionOutput(ModelOutput):
    """The scores of each box [images, boxes, queries] (OWL-ViT: against each text query; Grounding DINO: against each
    token of the prompt, up to ``max_text_len``), the boxes [images, boxes, 4] (centre x, centre y, width, height,
    relative to the image) and the prompts' tokens, which Grounding DINO's post-processing reads the labels from."""

    logits: torch.Tensor | None = None
    pred_boxes: torch.Tensor | None = None
    input_ids: torch.Tensor | None = None


class QEFFAutoModelForZeroShotObjectDetection(QEFFBaseModel):
    """A text-prompted object detector (module docstring).

    >>> model = QEFFAutoModelForZeroShotObjectDetection.from_pretrained("path/to/owlvit-base-patch32")
    >>> model.compile(num_cores=16)
    >>> inputs = processor(text=[["a cat", "a remote"]], images=image, return_tensors="pt")
    >>> processor.post_process_grounded_object_detection(model.generate(inputs), threshold=0.1, target_sizes=[image.size[::-1]])
    """

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.model = QEffZeroShotDetector(model.eval())

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """A local folder or a hub id in the local HF cache; other keyword arguments go to transformers."""
        return cls._from_auto(AutoModelForZeroShotObjectDetection, pretrained_model_name_or_path, *args, **kwargs)

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.model.hf

    def export(self, export_dir: str | os.PathLike | None = None, img_size: int | tuple[int, int] | None = None, **kwargs) -> Path:
        """Export to ONNX at ``img_size`` (default: the size the image processor writes, else the config's; cached under
        QEFF_HOME); returns the path."""
        warn_ignored_options("export()", kwargs)
        height, width = pick_image_size(self, img_size)
        name = self.model_name.replace("/", "_")
        # the prompts and images in at height x width, logits and boxes out; the numbers of texts and images and the
        # prompts' length dynamic
        spec = ZeroShotDetectionGraphSpec(self.model.texts_per_image)
        vocab = (getattr(self.config, "text_config", None) or self.config).vocab_size
        args = spec.dummy_inputs(vocab, min(8, text_limit(self.config)), self.model.num_channels, height, width)
        extra = {"image_size": [height, width]}
        self.onnx_path = self._export_spec_graph(self.model, spec, args, name, ZERO_SHOT_DETECTOR_KIND, export_dir, extra)
        return self.onnx_path

    def compile(
        self,
        onnx_path: str | os.PathLike | None = None,
        compile_dir: str | os.PathLike | None = None,
        *,
        seq_len: int | None = None,
        img_size: int | tuple[int, int] | None = None,
        batch_size: int = 1,
        num_devices: int = 1,
        num_cores: int = 16,
        mxfp6_matmul: bool = False,
        **compiler_options,
    ) -> Path:
        """Build the artifact for images of ``img_size`` (default: the size the image processor writes, else the
        config's), ``batch_size`` images at a time, prompts of up to ``seq_len`` tokens (default: the longest the model
        reads); ``mxfp6_matmul``: the MatMuls as int8 GEMMs."""
        limit = text_limit(self.config)
        seq_len = limit if seq_len is None else seq_len
        check_positive(seq_len=seq_len, batch_size=batch_size, num_cores=num_cores)
        if seq_len > limit:
            raise ValueError(f"seq_len ({seq_len}) exceeds the longest prompt {type(self.hf_model).__name__} reads ({limit} tokens).")
        height, width = pick_image_size(self, img_size)
        return self._compile_graph(
            onnx_path,
            compile_dir,
            {"output_name": LOGITS, "kind": ZERO_SHOT_DETECTOR_KIND},
            {"image_size": [height, width], "seq_len": seq_len},
            ZeroShotDetectionGraphSpec.specializations(batch_size, seq_len, height, width),
            batch_size=batch_size,
            num_devices=num_devices,
            num_cores=num_cores,
            mxfp6_matmul=mxfp6_matmul,
            compiler_options=compiler_options,
            export=lambda: self.export(img_size=(height, width)),
        )

    def _checked_inputs(self, inputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not hasattr(inputs, "keys") or INPUT_IDS not in inputs or PIXEL_VALUES not in inputs:
            raise ValueError("Pass a processor's output for texts and images together: input_ids and pixel_values.")
        if inputs.get("query_pixel_values") is not None:
            raise ValueError("Image-guided detection (query_pixel_values) is not supported: describe the objects in text.")
        text = {k: as_numpy(v) for k, v in inputs.items() if k in (INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS) and v is not None}
        ids, mask, types = encoder_inputs(text)
        if ids.ndim != 2 or mask.shape != ids.shape or types.shape != ids.shape:
            raise ValueError(
                f"input_ids, attention_mask and token_type_ids must be [texts, tokens] alike, got shapes {list(ids.shape)}, "
                f"{list(mask.shape)} and {list(types.shape)}."
            )
        if types.any():
            raise ValueError("token_type_ids other than 0: the graph reads one prompt per row, as the processor writes it.")
        pixel_mask = inputs.get("pixel_mask")
        if pixel_mask is not None and not as_numpy(pixel_mask).all():
            raise ValueError(
                "The images are padded (pixel_mask holds zeros), which this model masks out and the graph reads as image: have "
                "the image processor write the compiled size (size={'height': H, 'width': W}), so that nothing is padded."
            )
        pixels = np.ascontiguousarray(as_numpy(inputs[PIXEL_VALUES]), dtype=np.float32)
        pixels = pixels[None] if pixels.ndim == 3 else pixels
        if pixels.ndim != 4 or pixels.shape[1] != self.model.num_channels or not len(pixels):
            raise ValueError(f"pixel_values must be [images, {self.model.num_channels}, height, width], got shape {list(pixels.shape)}.")
        per_image = len(ids) // len(pixels)
        if len(ids) % len(pixels) or (self.config.model_type in PROMPT_PER_IMAGE and per_image != 1):
            what = "one prompt per image" if self.config.model_type in PROMPT_PER_IMAGE else "the same number of queries for every image"
            raise ValueError(f"{len(ids)} prompts for {len(pixels)} images: {type(self.hf_model).__name__} reads {what}.")
        return ids, mask, pixels

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> ZeroShotObjectDetectionOutput:
        """The scores and boxes for a processor's output of prompts and images (see ZeroShotObjectDetectionOutput)."""
        if device_ids is not None and len(device_ids) > 1:
            warn_ignored_options("generate()", {"device_ids": device_ids})
        ids, mask, pixels = self._checked_inputs(inputs)
        if not runtime_ai100:
            with torch.no_grad():
                logits, boxes = self.model(*(torch.from_numpy(a) for a in (ids, mask, pixels)))
            return ZeroShotObjectDetectionOutput(logits=logits, pred_boxes=boxes, input_ids=torch.from_numpy(ids))
        if self.qpc_path is None:
            raise TypeError("Please run compile() before generate(), or pass runtime_ai100=False to run PyTorch.")
        params = read_artifact(self.qpc_path)["compile_params"]
        size = tuple(params["image_size"])
        if tuple(pixels.shape[2:]) != size:
            raise ValueError(
                f"The images are {pixels.shape[2]}x{pixels.shape[3]} but the model was compiled for {size[0]}x{size[1]}: have the "
                f"image processor write that size (size={{'height': {size[0]}, 'width': {size[1]}}}), or compile(img_size="
                f"{tuple(pixels.shape[2:])})."
            )
        if ids.shape[1] > params["seq_len"]:
            raise ValueError(f"The prompts are {ids.shape[1]} tokens, longer than the compiled seq_len ({params['seq_len']}).")
        session = self._session(
            "detector", (str(self.qpc_path), self._num_cores), lambda: open_artifact_session(self.qpc_path, self._num_cores)
        )
        per_image, batch = len(ids) // len(pixels), params["batch_size"]
        parts = []
        for start in range(0, len(pixels), batch):
            rows = slice(start * per_image, (start + batch) * per_image)
            feed = {INPUT_IDS: ids[rows], ATTENTION_MASK: mask[rows], PIXEL_VALUES: pixels[start : start + batch]}
            parts.append(session.run([LOGITS, PRED_BOXES], feed))
        logits, boxes = (torch.from_numpy(np.concatenate(column)) for column in zip(*parts))
        return ZeroShotObjectDetectionOutput(logits=logits, pred_boxes=boxes, input_ids=torch.from_numpy(ids))
