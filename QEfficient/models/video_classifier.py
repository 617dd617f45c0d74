"""QEFFAutoModelForVideoClassification: video classifiers (VideoMAE, TimeSformer, ViViT, V-JEPA 2; transformers'
``AutoModelForVideoClassification``) as one graph at the frames and size they were trained at, the batch axis dynamic.

``generate(processor(videos))`` returns {"logits": torch.Tensor [videos, labels]}, as transformers' forward."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForVideoClassification, PreTrainedModel

from QEfficient.compile.ort_cpu import read_artifact, warn_ignored_options
from QEfficient.export.graph_names import LOGITS, VIDEO_CLASSIFIER_KIND
from QEfficient.export.media_graph_specs import VideoClassificationGraphSpec
from QEfficient.generation.encoder_run import run_in_batches
from QEfficient.models.base import QEFFBaseModel
from QEfficient.runtime.ort_session import open_artifact_session
from QEfficient.transform.video_classifier import QEffVideoClassifier, video_shape
from QEfficient.utils.checks import check_positive

# video classifiers whose positions follow the clip (V-JEPA 2's rotary ones): any frames and size
ANY_VIDEO_SHAPE = frozenset({"vjepa2"})


class QEFFAutoModelForVideoClassification(QEFFBaseModel):
    """A video classifier (module docstring).

    >>> model = QEFFAutoModelForVideoClassification.from_pretrained("path/to/videomae-base-finetuned-kinetics")
    >>> model.compile(num_cores=16)
    >>> model.generate(processor(list(frames), return_tensors="pt"))["logits"].argmax(-1)
    """

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.model = QEffVideoClassifier(model.eval())

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """A local folder or a hub id in the local HF cache; other keyword arguments go to transformers."""
        return cls._from_auto(AutoModelForVideoClassification, pretrained_model_name_or_path, *args, **kwargs)

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.model.hf

    def _shape(self, num_frames: int | None, img_size) -> tuple[int, int, int]:
        trained = video_shape(self.config)
        frames, height, width = trained
        if img_size is not None:
            height, width = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        frames = frames if num_frames is None else num_frames
        check_positive(num_frames=frames, height=height, width=width)
        if (frames, height, width) != trained and self.config.model_type not in ANY_VIDEO_SHAPE:
            raise ValueError(
                f"{type(self.hf_model).__name__}'s position table is for {trained[0]} frames of {trained[1]}x{trained[2]}: "
                "compile without num_frames and img_size, and sample and resize clips to that."
            )
        return frames, height, width

    def export(self, export_dir: str | os.PathLike | None = None, num_frames: int | None = None, img_size=None, **kwargs) -> Path:
        """Export to ONNX at ``num_frames`` frames of ``img_size`` (default: the config's; cached under QEFF_HOME)."""
        warn_ignored_options("export()", kwargs)
        shape = self._shape(num_frames, img_size)
        name = self.model_name.replace("/", "_")
        # the clips in at (frames, height, width), the logits out, batch dynamic
        spec = VideoClassificationGraphSpec(self.model.input_name)
        args = spec.dummy_inputs(shape[0], self.model.num_channels, shape[1], shape[2])
        extra = {"video_shape": list(shape)}
        self.onnx_path = self._export_spec_graph(self.model, spec, args, name, VIDEO_CLASSIFIER_KIND, export_dir, extra)
        return self.onnx_path

    def compile(
        self,
        onnx_path: str | os.PathLike | None = None,
        compile_dir: str | os.PathLike | None = None,
        *,
        num_frames: int | None = None,
        img_size: int | tuple[int, int] | None = None,
        batch_size: int = 1,
        num_devices: int = 1,
        num_cores: int = 16,
        mxfp6_matmul: bool = False,
        **compiler_options,
    ) -> Path:
        """Build the artifact for clips of ``num_frames`` frames of ``img_size`` (default: the config's), ``batch_size`` at
        a time; ``mxfp6_matmul``: the MatMuls as int8 GEMMs."""
        frames, height, width = self._shape(num_frames, img_size)
        return self._compile_graph(
            onnx_path,
            compile_dir,
            {"output_name": LOGITS, "kind": VIDEO_CLASSIFIER_KIND},
            {"video_shape": [frames, height, width]},
            VideoClassificationGraphSpec.specializations(batch_size, frames, height, width),
            batch_size=batch_size,
            num_devices=num_devices,
            num_cores=num_cores,
            mxfp6_matmul=mxfp6_matmul,
            compiler_options=compiler_options,
            export=lambda: self.export(num_frames=frames, img_size=(height, width)),
        )

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> dict[str, torch.Tensor]:
        """The logits of a video processor's output (or clips [videos, frames, channels, height, width])."""
        if device_ids is not None and len(device_ids) > 1:
            warn_ignored_options("generate()", {"device_ids": device_ids})
        name = self.model.input_name
        if hasattr(inputs, "keys") and name not in inputs:
            raise ValueError(f"{type(self.hf_model).__name__} reads its clips as {name!r}; the inputs hold {sorted(inputs)}.")
        clips = inputs[name] if hasattr(inputs, "keys") else inputs
        clips = clips.detach().cpu().numpy() if isinstance(clips, torch.Tensor) else np.asarray(clips)
        clips = np.ascontiguousarray(clips[None] if clips.ndim == 4 else clips, dtype=np.float32)
        if clips.ndim != 5 or clips.shape[2] != self.model.num_channels or not len(clips):
            raise ValueError(
                f"{name} must be [videos, frames, {self.model.num_channels}, height, width] (a video processor's output), got "
                f"shape {list(clips.shape)}."
            )
        if not runtime_ai100:
            with torch.no_grad():
                return {LOGITS: self.model(torch.from_numpy(clips))}
        if self.qpc_path is None:
            raise TypeError("Please run compile() before generate(), or pass runtime_ai100=False to run PyTorch.")
        params = read_artifact(self.qpc_path)["compile_params"]
        shape = tuple(params["video_shape"])
        if (clips.shape[1], *clips.shape[3:]) != shape:
            other = f", or compile(num_frames={clips.shape[1]}, img_size={tuple(clips.shape[3:])})"
            raise ValueError(
                f"The clips are {clips.shape[1]} frames of {clips.shape[3]}x{clips.shape[4]}, but the model was compiled for "
                f"{shape[0]} frames of {shape[1]}x{shape[2]}: sample and resize them as compiled"
                f"{other if self.config.model_type in ANY_VIDEO_SHAPE else ''}."
            )
        session = self._session(
            "video", (str(self.qpc_path), self._num_cores), lambda: open_artifact_session(self.qpc_path, self._num_cores)
        )
        return {LOGITS: torch.from_numpy(run_in_batches(session, {name: clips}, params["batch_size"])[0])}
