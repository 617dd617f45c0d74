"""QEFFAutoModelForZeroShotImageClassification: contrastive image-text models (CLIP, SigLIP, ALIGN, AltCLIP,
Chinese-CLIP, MetaCLIP 2, BLIP, CLIPSeg, TIPSv2; transformers' ``AutoModelForZeroShotImageClassification``) as two graphs,
the text tower's and the image tower's.

``generate(processor(text=..., images=...))`` returns what transformers' forward returns: ``logits_per_image``
[images, texts], ``logits_per_text``, and the L2-normalized ``text_embeds`` and ``image_embeds``; given only texts or
only images, their embeddings. ``get_text_features`` and ``get_image_features`` return the towers' features as
transformers' methods of those names do (projected, not normalized): what an image search stores.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForZeroShotImageClassification, PreTrainedModel

from QEfficient.compile.ort_cpu import read_artifact, warn_ignored_options
from QEfficient.compile.weight_compression import quantize_dynamic_int8
from QEfficient.export.graph_names import ATTENTION_MASK, DUAL_ENCODER_KIND, INPUT_IDS, PIXEL_VALUES, TOKEN_TYPE_IDS
from QEfficient.export.graph_specs import EncoderGraphSpec
from QEfficient.export.media_graph_specs import ImageEncoderGraphSpec
from QEfficient.export.onnx_export import export_encoder_onnx, export_image_encoder_onnx
from QEfficient.generation.encoder_run import encoder_inputs, run_encoder, run_image_encoder
from QEfficient.models.base import GraphArtifact, QEFFBaseModel, companion_record
from QEfficient.models.image_encoder import processor_image_size
from QEfficient.models.processor_files import save_whole_processor, whole_processor_key
from QEfficient.transform.dual_encoder import QEffImageFeatures, QEffTextFeatures, check_dual_encoder, similarity_rule
from QEfficient.transform.image_encoder import image_size
from QEfficient.utils.arrays import as_numpy
from QEfficient.utils.checks import check_positive

TEXT_EMBEDS, IMAGE_EMBEDS = "text_embeds", "image_embeds"


def l2_rows(x: np.ndarray) -> np.ndarray:
    """Each row over its L2 norm, as transformers normalizes the features in forward; scaled by its largest value
    first, so that tiny features (1e-31) do not underflow when squared, as torch's norm does not."""
    largest = np.abs(x).max(axis=-1, keepdims=True)
    scaled = x / np.where(largest > 0, largest, 1)
    return scaled / np.linalg.norm(scaled, axis=-1, keepdims=True)


def similarity_logits(text_embeds: np.ndarray, image_embeds: np.ndarray, scale: float, bias: float) -> dict[str, np.ndarray]:
    """transformers' logits_per_text [texts, images] and logits_per_image of normalized embeddings."""
    per_text = (text_embeds @ image_embeds.T) * np.float32(scale) + np.float32(bias)
    return {"logits_per_text": per_text, "logits_per_image": np.ascontiguousarray(per_text.T)}


class QEFFAutoModelForZeroShotImageClassification(QEFFBaseModel):
    """A contrastive image-text model (module docstring).

    >>> model = QEFFAutoModelForZeroShotImageClassification.from_pretrained("path/to/clip-vit-base-patch32")
    >>> model.compile(num_cores=16)
    >>> out = model.generate(processor(text=["a cat", "a dog"], images=image, return_tensors="pt", padding=True))
    >>> out["logits_per_image"].softmax(-1)
    """

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        check_dual_encoder(model)
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.hf = model.eval()
        self.text = QEffTextFeatures(self.hf)
        self.image = QEffImageFeatures(self.hf)
        self._without_weights = any(p.is_meta for p in self.hf.parameters())  # from_artifact: the modules on the meta device
        if not self._without_weights:
            similarity_rule(self.hf)  # a model without CLIP's similarity is refused now
        self.qpc_paths: dict[str, Path] = {}

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """A local folder or a hub id in the local HF cache; other keyword arguments go to transformers."""
        return cls._from_auto(AutoModelForZeroShotImageClassification, pretrained_model_name_or_path, *args, **kwargs)

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.hf

    def _text_config(self):
        return getattr(self.config, "text_config", None) or self.config

    def _image_size(self, img_size) -> tuple[int, int]:
        if img_size is None:
            size = processor_image_size(self.local_model_dir) or image_size(self.config)
            if size is None:
                raise ValueError(f"Neither {type(self.hf).__name__}'s config nor an image processor names its image size: pass img_size=.")
            return size
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size) if isinstance(img_size, (tuple, list)) else ()
        if len(size) != 2 or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in size):
            raise ValueError(f"img_size must be a positive integer or (height, width), got {img_size!r}.")
        return size

    def export(self, export_dir: str | os.PathLike | None = None, img_size: int | tuple[int, int] | None = None, **kwargs) -> list[Path]:
        """Export the text and image towers (each cached under QEFF_HOME); returns [text, image] .onnx paths."""
        if self._without_weights:
            raise TypeError(
                "This model was loaded from its artifacts, without weights: load it with from_pretrained() to export or compile it."
            )
        warn_ignored_options("export()", kwargs)
        height, width = self._image_size(img_size)
        name = self.model_name.replace("/", "_")
        text = self._export_graph(
            self.text,
            f"{name}-text",
            export_dir,
            export_fn=lambda tmp: export_encoder_onnx(self.text, tmp, f"{name}-text", TEXT_EMBEDS),
            hash_extra={"graph": f"{DUAL_ENCODER_KIND}-text"},
        )
        image = self._export_graph(
            self.image,
            f"{name}-image",
            export_dir,
            export_fn=lambda tmp: export_image_encoder_onnx(self.image, tmp, f"{name}-image", IMAGE_EMBEDS, height, width),
            hash_extra={"graph": f"{DUAL_ENCODER_KIND}-image", "image_size": [height, width]},
        )
        self.onnx_path = [text, image]
        return self.onnx_path

    def compile(
        self,
        onnx_path: str | os.PathLike | None = None,
        compile_dir: str | os.PathLike | None = None,
        *,
        seq_len: int | list[int] | None = None,
        img_size: int | tuple[int, int] | None = None,
        batch_size: int = 1,
        num_devices: int = 1,
        num_cores: int = 16,
        mxfp6_matmul: bool = False,
        **compiler_options,
    ) -> dict[str, Path]:
        """Build the two artifacts: {"text_qpc_path": ..., "image_qpc_path": ...}. ``seq_len``: the longest text (default
        the text tower's positions); ``img_size``: the images' size (default the image processor's, else the config's);
        ``mxfp6_matmul``: both towers' MatMuls as int8 GEMMs, as the encoders'."""
        if onnx_path is not None:
            raise ValueError(f"{type(self).__name__} builds two graphs; call compile() without onnx_path (it exports them).")
        if seq_len is None:
            seq_len = getattr(self._text_config(), "max_position_embeddings", None) or 77
        elif isinstance(seq_len, (list, tuple)) and seq_len:  # QEFFAutoModel's form: texts run at their own width
            seq_len = max(seq_len)
        check_positive(seq_len=seq_len, batch_size=batch_size, num_cores=num_cores)
        self._check_max_positions("seq_len", seq_len, self._text_config())
        warn_ignored_options("compile()", {**compiler_options, "num_devices": num_devices > 1})
        height, width = self._image_size(img_size)
        text_onnx, image_onnx = self.export(img_size=(height, width))
        rewrite = quantize_dynamic_int8 if mxfp6_matmul else None
        image = GraphArtifact(
            "image",
            image_onnx,
            {"kind": f"{DUAL_ENCODER_KIND}-image", "output_name": IMAGE_EMBEDS},
            {"image_size": [height, width], "batch_size": batch_size, "mxfp6_matmul": mxfp6_matmul},
            ImageEncoderGraphSpec.specializations(batch_size, height, width),
            rewrite,
        )
        image_path = self._compile_graphs([image], compile_dir, num_cores, main="image")["image_qpc_path"]
        named, key = companion_record(image_path, compile_dir, text_onnx)
        # the text artifact names the image artifact and keeps the config and processor: a server runs the two alone
        manifest = {"kind": f"{DUAL_ENCODER_KIND}-text", "output_name": TEXT_EMBEDS, "similarity": similarity_rule(self.hf)}
        text = GraphArtifact(
            "text",
            text_onnx,
            manifest | {"image_artifact": named, "image_artifact_digest": key},
            {"seq_len": [seq_len], "batch_size": batch_size, "mxfp6_matmul": mxfp6_matmul, **whole_processor_key(self.local_model_dir)}
            | {"image_artifact": key},
            EncoderGraphSpec(TEXT_EMBEDS, pooled=True).specializations([seq_len], batch_size),
            rewrite,
            lambda artifact_dir: save_whole_processor(self.local_model_dir, artifact_dir, self.config),
        )
        self._compile_graphs([text], compile_dir, num_cores, main="text")
        self.qpc_paths = {"text_qpc_path": self.qpc_path, "image_qpc_path": image_path}
        return self.qpc_paths

    @classmethod
    def from_artifact(
        cls, qpc_path: str | os.PathLike, num_cores: int | None = None, image_qpc_path: str | os.PathLike | None = None
    ) -> QEFFAutoModelForZeroShotImageClassification:
        """The compiled model from its text artifact (compile()'s ``text_qpc_path``, which names its image artifact;
        ``image_qpc_path``: a copy of that elsewhere): the towers' features and generate() run its graphs. No weights
        are read (the modules are built on the meta device), so export and compile are refused."""
        kind, what = f"{DUAL_ENCODER_KIND}-text", "a contrastive image-text model"
        build = AutoModelForZeroShotImageClassification.from_config
        return cls._from_kept_files(qpc_path, num_cores, image_qpc_path, kind, "image", what, build)

    @property
    def compiled_image_size(self) -> tuple[int, int]:
        """(height, width) of the compiled image graph."""
        return tuple(self._graph_session("image")[1]["image_size"])

    @property
    def embedding_width(self) -> int:
        """The width of the compiled towers' features (the text graph's output, a constant of its weights)."""
        width = self._graph_session("text")[0].get_outputs()[0].shape[-1]
        if not isinstance(width, int):
            raise ValueError("The text graph's output width is not fixed: compile the model again.")
        return width

    def get_text_features(self, inputs, runtime_ai100: bool = True) -> np.ndarray:
        """The text tower's features [texts, D] of a tokenizer's output (input_ids, attention_mask), not normalized."""
        self._check_pytorch_run(runtime_ai100)
        if hasattr(inputs, "keys"):  # (anything else: encoder_inputs says what to pass)
            inputs = {k: as_numpy(v) for k, v in dict(inputs).items() if k in (INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS)}
        ids, mask, types = encoder_inputs(inputs, getattr(self._text_config(), "vocab_size", None))
        if types.any():
            raise ValueError("token_type_ids other than 0 (a pair of texts): the text tower reads one text per row.")
        if not runtime_ai100:
            with torch.no_grad():
                return self.text(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        session, params = self._graph_session("text")
        params = {**params, "batch_size": min(params["batch_size"], len(ids))}  # the batch axis is free: no filler rows
        return run_encoder(session, params, False, ids, mask, types, reads_padding=True)

    def get_image_features(self, pixel_values, runtime_ai100: bool = True) -> np.ndarray:
        """The image tower's features [images, D] of an image processor's pixel_values, not normalized."""
        self._check_pytorch_run(runtime_ai100)
        pixels = np.ascontiguousarray(as_numpy(pixel_values), dtype=np.float32)
        pixels = pixels[None] if pixels.ndim == 3 else pixels
        if pixels.ndim != 4 or pixels.shape[1] != self.image.num_channels or not len(pixels):
            raise ValueError(f"pixel_values must be [images, {self.image.num_channels}, height, width], got shape {list(pixels.shape)}.")
        if not runtime_ai100:
            with torch.no_grad():
                return self.image(torch.from_numpy(pixels)).numpy()
        session, params = self._graph_session("image")
        return run_image_encoder(session, {**params, "batch_size": min(params["batch_size"], len(pixels))}, pixels)

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> dict[str, torch.Tensor]:
        """transformers' forward outputs for a processor's output: with texts and images, logits_per_image [images, texts],
        logits_per_text and both normalized embeddings; with one kind, its normalized embeddings."""
        if device_ids is not None and len(device_ids) > 1:
            warn_ignored_options("generate()", {"device_ids": device_ids})
        keys = set(dict(inputs))
        if INPUT_IDS not in keys and PIXEL_VALUES not in keys:
            raise ValueError("Pass a processor's output holding input_ids (texts), pixel_values (images), or both.")
        out = {}
        if INPUT_IDS in keys:
            out[TEXT_EMBEDS] = l2_rows(self.get_text_features(inputs, runtime_ai100))
        if PIXEL_VALUES in keys:
            out[IMAGE_EMBEDS] = l2_rows(self.get_image_features(inputs[PIXEL_VALUES], runtime_ai100))
        if len(out) == 2:  # the compiled model's numbers, or the PyTorch model's as they are now
            rule = read_artifact(self.qpc_paths["text_qpc_path"])["similarity"] if runtime_ai100 else similarity_rule(self.hf)
            out |= similarity_logits(out[TEXT_EMBEDS], out[IMAGE_EMBEDS], rule["scale"], rule["bias"])
        return {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in out.items()}
