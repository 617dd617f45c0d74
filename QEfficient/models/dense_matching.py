"""QEFFEfficientLoFTRForKeypointMatching: EfficientLoFTR (transformers' ``EfficientLoFTRForKeypointMatching``, what
``AutoModelForKeypointMatching`` loads for it; ``QEFFAutoModelForKeypointMatching.from_pretrained`` hands such a folder
here) as one graph at the compiled image size: its backbone, attention, coarse matching (dual softmax, threshold,
border removal, mutual nearest neighbours) and fine refinement, written by transformers with fixed-size tensors.

``generate(processor(pairs_of_images, return_tensors="pt"))`` returns transformers' EfficientLoFTRKeypointMatchingOutput
(``matches``, ``matching_scores``, ``keypoints``: one entry per coarse position of each image, -1 where none matched),
which the processor's ``post_process_keypoint_matching`` takes as it is. Pairs run one at a time: transformers' forward
concatenates a batch's match indices in an order that hands a pair another pair's indices (its scores stay in place),
and gathers the refined keypoints with them, so each pair's answer is transformers' on that pair alone. The graph reads
the images' first channel, as transformers does (the processor's grayscale, three times, or one channel).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForKeypointMatching, PreTrainedModel
from transformers.models.efficientloftr.modeling_efficientloftr import EfficientLoFTRKeypointMatchingOutput

from QEfficient.compile.ort_cpu import warn_ignored_options
from QEfficient.export.graph_names import PIXEL_VALUES
from QEfficient.export.onnx_export import dynamo_export
from QEfficient.export.task_graph_specs import KEYPOINT_MATCHER_KIND, MATCHES, DenseMatcherGraphSpec
from QEfficient.generation.encoder_run import run_in_batches
from QEfficient.models.base import QEFFBaseModel
from QEfficient.models.image_encoder import pick_image_size
from QEfficient.transform.keypoints import QEffDenseMatcher
from QEfficient.utils.arrays import as_numpy

KIND = f"{KEYPOINT_MATCHER_KIND}-dense"


class QEFFEfficientLoFTRForKeypointMatching(QEFFBaseModel):
    """EfficientLoFTR (module docstring).

    >>> model = QEFFAutoModelForKeypointMatching.from_pretrained("path/to/efficientloftr")  # this class
    >>> model.compile(num_cores=16)                       # at the processor's size (480 x 640), or img_size=(h, w)
    >>> out = model.generate(processor([[image_a, image_b]], return_tensors="pt"))
    >>> processor.post_process_keypoint_matching(out, [[image_a.size[::-1], image_b.size[::-1]]])
    """

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.model = QEffDenseMatcher(model.eval())
        self.img_size: tuple[int, int] | None = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """A local folder or a hub id in the local HF cache; other keyword arguments go to transformers."""
        return cls._from_auto(AutoModelForKeypointMatching, pretrained_model_name_or_path, *args, **kwargs)

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.model.hf

    def _size(self, img_size) -> tuple[int, int]:
        return pick_image_size(self, img_size)

    def export(self, export_dir: str | os.PathLike | None = None, img_size: int | tuple[int, int] | None = None, **kwargs) -> Path:
        """Export to ONNX at the image size (cached under QEFF_HOME; its coarse matching threshold is part of the key)."""
        warn_ignored_options("export()", kwargs)
        height, width = self._size(img_size)
        name = self.model_name.replace("/", "_")
        spec, config = DenseMatcherGraphSpec(), self.config
        self.onnx_path = self._export_graph(
            self.model,
            name,
            export_dir,
            export_fn=lambda tmp: dynamo_export(
                self.model,
                spec.dummy_inputs(1, height, width),
                tmp / f"{name}.onnx",
                list(spec.input_names),
                spec.output_names,
                f"{type(self).__name__}'s export (EfficientLoFTR's in-place matching needs the dynamo exporter)",
            ),
            # the config as it is now: its matching settings are constants of the graph
            hash_extra={"graph": KIND, "img_size": [height, width], "config": config.to_diff_dict()},
        )
        return self.onnx_path

    def compile(
        self,
        onnx_path: str | os.PathLike | None = None,
        compile_dir: str | os.PathLike | None = None,
        *,
        img_size: int | tuple[int, int] | None = None,
        batch_size: int = 1,
        num_devices: int = 1,
        num_cores: int = 16,
        **compiler_options,
    ) -> Path:
        """Build the artifact at ``img_size`` (default: the processor's size); pairs run one at a time (module
        docstring), so ``batch_size`` is 1."""
        if batch_size != 1:
            raise ValueError(
                "EfficientLoFTR's graph mixes the pairs of a batch (transformers' concatenation order): pairs run one at a "
                "time; compile with batch_size=1."
            )
        height, width = self._size(img_size)
        path = self._compile_graph(
            onnx_path,
            compile_dir,
            {"output_name": MATCHES, "kind": KIND},
            {"img_size": [height, width]},
            DenseMatcherGraphSpec.specializations(batch_size, height, width),
            batch_size=batch_size,
            num_devices=num_devices,
            num_cores=num_cores,
            mxfp6_matmul=False,  # a small network whose scores decide matches: float32
            compiler_options=compiler_options,
            export=lambda: self.export(img_size=(height, width)),
        )
        self.img_size = (height, width)
        return path

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> EfficientLoFTRKeypointMatchingOutput:
        """Matches for an image processor's output of image pairs (or pixel_values [pairs, 2, channels, height, width]
        at the compiled size), as transformers' forward returns them."""
        if device_ids is not None and len(device_ids) > 1:
            warn_ignored_options("generate()", {"device_ids": device_ids})
        pixels = np.asarray(as_numpy(inputs[PIXEL_VALUES] if hasattr(inputs, "keys") else inputs), dtype=np.float32)
        if pixels.ndim != 5 or pixels.shape[1] != 2 or not len(pixels):
            raise ValueError(f"pixel_values must be pairs of images [pairs, 2, channels, height, width], got {list(pixels.shape)}.")
        pixels = np.ascontiguousarray(pixels[:, :, :1])  # the first channel, which transformers reads
        if not runtime_ai100:
            with torch.no_grad():
                parts = [[t.numpy() for t in self.model(torch.from_numpy(pixels[i : i + 1]))] for i in range(len(pixels))]
            matches, scores, keypoints = (np.concatenate(outputs) for outputs in zip(*parts))
        else:
            if self.qpc_path is None:
                raise TypeError("Please run compile() before generate(), or pass runtime_ai100=False to run PyTorch.")
            if tuple(pixels.shape[-2:]) != self.img_size:
                raise ValueError(
                    f"The images are {pixels.shape[-2]} x {pixels.shape[-1]}; the graph was compiled for {self.img_size[0]} x "
                    f"{self.img_size[1]}: let the processor resize them, or compile with img_size=({pixels.shape[-2]}, {pixels.shape[-1]})."
                )
            session = self._graph_session("matcher", self.qpc_path)[0]
            matches, scores, keypoints = run_in_batches(session, {PIXEL_VALUES: pixels}, 1)  # a pair at a time
        return EfficientLoFTRKeypointMatchingOutput(
            matches=torch.from_numpy(matches), matching_scores=torch.from_numpy(scores), keypoints=torch.from_numpy(keypoints)
        )
