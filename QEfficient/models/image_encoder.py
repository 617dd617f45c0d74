"""Image encoders and image classifiers: ``QEFFAutoModel.from_pretrained`` on a model that reads pixels (ViT, DINOv2,
ConvNeXt, SigLIP's vision tower, ...) gives a ``QEFFAutoModelForImageFeatureExtraction``; image classifiers are
``QEFFAutoModelForImageClassification``. One graph, the batch axis dynamic, at the size the model was trained at."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoModel,
    AutoModelForImageClassification,
    PreTrainedModel,
)

from QEfficient.compile.ort_cpu import read_artifact, warn_ignored_options, warn_once
from QEfficient.compile.weight_compression import quantize_dynamic_int8
from QEfficient.export.graph_names import IMAGE_ENCODER_KIND, LOGITS, PIXEL_VALUES
from QEfficient.export.media_graph_specs import ImageEncoderGraphSpec
from QEfficient.export.onnx_export import export_image_encoder_onnx
from QEfficient.generation.encoder_run import run_image_graph
from QEfficient.loading.hf_loader import load_pretrained
from QEfficient.models.base import QEFFBaseModel
from QEfficient.models.pooling_key import pooling_key
from QEfficient.models.processor_files import processor_files_key, save_processor_files
from QEfficient.runtime.ort_session import open_artifact_session
from QEfficient.transform.encoder import PoolingFn, resolve_pooling
from QEfficient.transform.image_encoder import QEffImageEncoder, image_size
from QEfficient.utils.checks import check_positive
from QEfficient.utils.onnx_files import graph_input_dims


def processor_image_size(folder: Path | None) -> tuple[int, int] | None:
    """(height, width) of the images the folder's image processor writes (its crop, or a fixed size), or None: the
    size a model is run at (DINOv2's config says 518, its processor crops 224)."""
    path = folder / "preprocessor_config.json" if folder is not None else None
    if path is None or not path.is_file():
        return None
    config = json.loads(path.read_text())
    for key, used in (("crop_size", config.get("do_center_crop", False)), ("size", config.get("do_resize", True))):
        size = config.get(key)
        if not used or size is None:
            continue
        if isinstance(size, int):
            return size, size
        if isinstance(size, dict) and "height" in size and "width" in size:
            return int(size["height"]), int(size["width"])
        convnext = str(config.get("image_processor_type", "")).startswith("ConvNext")
        if key == "size" and convnext and isinstance(size, dict) and "shortest_edge" in size:
            # ConvNeXt's: cropped to shortest_edge square after a crop_pct resize (warped to it from 384 on)
            return int(size["shortest_edge"]), int(size["shortest_edge"])
    return None


# image models whose transformers forward masks padding out with pixel_mask (others take none, or fill it with ones)
READS_PIXEL_MASK = frozenset({"detr", "conditional_detr", "dab-detr", "table-transformer", "deformable_detr"})


def _graph_image_size(onnx_path: Path) -> tuple[int, int] | None:
    """(height, width) an image graph was traced at (its pixel_values' last two axes), None where they are free."""
    dims = graph_input_dims(onnx_path, PIXEL_VALUES) if onnx_path.is_file() else None
    if not dims or len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims[2:]):
        return None
    return int(dims[2]), int(dims[3])


def keeps_aspect_ratio(folder: Path | None) -> bool:
    """Whether the folder's image processor resizes keeping each image's aspect ratio (DPT's, Depth Anything's,
    ZoeDepth's ``keep_aspect_ratio``; DETR's and YOLOS' shortest and longest edge, uncropped), so that the sizes it
    writes vary from image to image."""
    path = folder / "preprocessor_config.json" if folder is not None else None
    if path is None or not path.is_file():
        return False
    config = json.loads(path.read_text())
    size = config.get("size")
    # by edge: {"shortest_edge": ...}, or an older config's "size": 800 with "max_size": 1333 (DETR's, YOLOS')
    by_edge = (isinstance(size, dict) and ("shortest_edge" in size or "longest_edge" in size)) or (
        isinstance(size, int) and config.get("max_size") is not None
    )
    fixed_after = any(config.get(k) for k in ("do_center_crop", "crop_pct", "do_pad", "do_split_image"))  # cropped or padded
    return bool(config.get("keep_aspect_ratio")) or (by_edge and not fixed_after)


def pick_image_size(owner: QEFFBaseModel, img_size) -> tuple[int, int]:
    """The (height, width) a graph is compiled at: ``img_size``, else the size the folder's image processor writes, else
    the config's (a warning where the processor keeps each image's aspect ratio)."""
    if img_size is None:
        size = processor_image_size(owner.local_model_dir) or image_size(owner.config)
        if size is None:
            raise ValueError(
                f"Neither {type(owner.hf_model).__name__}'s config nor an image processor names its image size: pass compile(img_size=...)."
            )
        if keeps_aspect_ratio(owner.local_model_dir):
            warn_once(
                f"aspect-{owner.local_model_dir}",
                f"{owner.model_name}'s image processor keeps each image's aspect ratio, so the sizes it writes vary; this "
                f"graph runs {size[0]}x{size[1]}: call the processor with keep_aspect_ratio=False (and size={{'height': "
                f"{size[0]}, 'width': {size[1]}}}), or compile(img_size=...) for the size it writes.",
            )
        return size
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size) if isinstance(img_size, (tuple, list)) else ()
    if len(size) != 2 or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in size):
        raise ValueError(f"img_size must be a positive integer or (height, width), got {img_size!r}.")
    return size


class QEFFAutoModelForImageFeatureExtraction(QEFFBaseModel):
    """An image encoder (transformers' ``AutoModel`` of a model that reads pixels): ``generate(processor(images))``
    returns {"output": its last hidden state}, or the pooled states with ``pooling`` ("cls", "mean", "max")."""

    _hf_auto = AutoModel
    _output_name = "output"
    _head_output: str | None = None  # the attribute of transformers' output the graph returns (None: hidden states)
    _more_outputs: tuple[str, ...] = ()  # attributes it returns after that one (a detector's boxes)

    def __init__(self, model: PreTrainedModel, pooling: str | PoolingFn | None = None, **kwargs) -> None:
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None), pooling=pooling_key(pooling))
        head = (self._head_output, *self._more_outputs) if self._more_outputs else self._head_output
        self.model = QEffImageEncoder(model.eval(), resolve_pooling(pooling), head)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """A local folder or a hub id in the local HF cache; other keyword arguments go to transformers."""
        pooling = kwargs.pop("pooling", None)
        model, folder = load_pretrained(cls._hf_auto, pretrained_model_name_or_path, *args, owner=cls.__name__, **kwargs)
        obj = cls(model, pooling=pooling, pretrained_model_name_or_path=str(pretrained_model_name_or_path))
        obj.local_model_dir = folder
        return obj

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.model.hf

    def _size(self, img_size) -> tuple[int, int]:
        return pick_image_size(self, img_size)

    def export(self, export_dir: str | os.PathLike | None = None, img_size: int | tuple[int, int] | None = None, **kwargs) -> Path:
        """Export to ONNX at ``img_size`` (default: the image processor's size, else the config's; cached under
        QEFF_HOME); returns the path."""
        warn_ignored_options("export()", kwargs)
        height, width = self._size(img_size)
        name = self.model_name.replace("/", "_")
        self.onnx_path = self._export_graph(
            self.model,
            name,
            export_dir,
            export_fn=lambda tmp: export_image_encoder_onnx(self.model, tmp, name, self._output_name, height, width, self._more_outputs),
            hash_extra={"image_size": [height, width]},
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
        mxfp6_matmul: bool = False,
        **compiler_options,
    ) -> Path:
        """Export if needed, then build the artifact for images of ``img_size`` (by default the size the folder's image
        processor writes, else the config's), run
        ``batch_size`` at a time; ``mxfp6_matmul``: the MatMuls as int8 GEMMs."""
        exported = _graph_image_size(Path(onnx_path)) if onnx_path else None  # a graph given: traced at one size
        height, width = exported if exported and img_size is None else self._size(img_size)
        if exported and exported != (height, width):
            raise ValueError(
                f"'{onnx_path}' was exported for {exported[0]}x{exported[1]} images, not {height}x{width}: leave img_size out "
                f"(or give {exported}), or export at img_size=({height}, {width})."
            )
        check_positive(batch_size=batch_size, num_cores=num_cores)
        warn_ignored_options("compile()", {**compiler_options, "num_devices": num_devices > 1})
        onnx_path = Path(onnx_path) if onnx_path else self.export(img_size=(height, width))
        params = {"backend": "onnxruntime-cpu", "image_size": [height, width], "batch_size": batch_size, "mxfp6_matmul": mxfp6_matmul}
        manifest = {"model_name": self.model_name, "output_name": self._output_name, "num_cores": num_cores}
        manifest["kind"] = IMAGE_ENCODER_KIND  # not a text encoder's: a server takes an image classifier's alone
        classifier = self._hf_auto is AutoModelForImageClassification  # (not a detector's or a segmenter's: their heads differ)
        if classifier:  # the files such a server reads go in the artifact, and in its key (models/processor_files.py)
            params |= processor_files_key(self.local_model_dir, self.config)
            manifest["image_classifier"] = True
        self.qpc_path = self._build_artifact(
            onnx_path,
            compile_dir,
            manifest,
            params,
            ImageEncoderGraphSpec.specializations(batch_size, height, width),
            rewrite=quantize_dynamic_int8 if mxfp6_matmul else None,
            extra_files=(lambda tmp: save_processor_files(self.local_model_dir, tmp, self.config)) if classifier else None,
        )
        self._num_cores = num_cores
        return self.qpc_path

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> dict[str, Any]:
        """Run ``inputs`` (an image processor's output, or pixel_values [N, C, H, W]); returns {output name: array}."""
        if device_ids is not None and len(device_ids) > 1:
            warn_ignored_options("generate()", {"device_ids": device_ids})
        mask = inputs.get("pixel_mask") if hasattr(inputs, "keys") else None
        padded = mask is not None and not np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask).all()
        if padded and self.config.model_type in READS_PIXEL_MASK:
            raise ValueError(
                "The images are padded (pixel_mask holds zeros), which this model masks out and the graph reads as image: have "
                "the image processor write the compiled size without padding (do_pad=False, size={'height': H, 'width': W})."
            )
        pixels = inputs[PIXEL_VALUES] if isinstance(inputs, dict) or hasattr(inputs, "keys") else inputs
        pixels = pixels.detach().cpu().numpy() if isinstance(pixels, torch.Tensor) else np.asarray(pixels)
        pixels = np.ascontiguousarray(pixels[None] if pixels.ndim == 3 else pixels, dtype=np.float32)
        if pixels.ndim != 4 or pixels.shape[1] != self.model.num_channels or not len(pixels):
            raise ValueError(
                f"pixel_values must be [images, {self.model.num_channels}, height, width] (an image processor's output, "
                "one image or more), "
                f"got shape {list(pixels.shape)}."
            )
        names = (self._output_name, *self._more_outputs)
        if not runtime_ai100:
            with torch.no_grad():
                out = self.model(torch.from_numpy(pixels))
            return dict(zip(names, [v.numpy() for v in (out if isinstance(out, tuple) else (out,))]))
        return dict(zip(names, self._run(pixels)))

    def _run(self, pixels: np.ndarray) -> list[np.ndarray]:
        if self.qpc_path is None:
            raise TypeError("Please run compile() before generate(), or pass runtime_ai100=False to run PyTorch.")
        session = self._session(
            "image_encoder", (str(self.qpc_path), self._num_cores), lambda: open_artifact_session(self.qpc_path, self._num_cores)
        )
        return run_image_graph(session, read_artifact(self.qpc_path)["compile_params"], pixels)


class QEFFAutoModelForImageClassification(QEFFAutoModelForImageFeatureExtraction):
    """Image classifiers (ViT, ConvNeXt, DINOv2, Swin, ... ``ForImageClassification``); generate() returns
    {"logits": torch.Tensor [images, labels]}, as transformers' forward."""

    _hf_auto = AutoModelForImageClassification
    _output_name = LOGITS
    _head_output = LOGITS
    _unsupported: dict[str, str] = {}  # model type -> why this class does not run it

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        reason = self._unsupported.get(model.config.model_type)
        if reason is not None:
            raise NotImplementedError(f"{type(model).__name__} is not supported: {reason}.")
        if kwargs.get("pooling") is not None:
            raise ValueError(f"{type(self).__name__}'s graph ends in the head's output: load it without pooling.")
        super().__init__(model, **kwargs)

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(value) for name, value in super().generate(inputs, device_ids, runtime_ai100).items()}
