"""QEFFAutoModelForVisualQuestionAnswering: ViLT's question answering (and image-text retrieval) heads as one graph that
reads the question's tokens and the image together, the image at any size (its patch grid follows it).

``generate(processor(image, question, return_tensors="pt"))`` returns {"logits": torch.Tensor [pairs, labels]}, as
transformers' forward; ``model.config.id2label[logits.argmax(-1)]`` is the answer. A batch the processor padded
(``pixel_mask`` holding zeros) runs image by image, each cropped to itself, as transformers reads an image alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModelForVisualQuestionAnswering, PreTrainedModel

from QEfficient.compile.ort_cpu import warn_ignored_options
from QEfficient.export.graph_names import ATTENTION_MASK, INPUT_IDS, LOGITS, PIXEL_VALUES, TOKEN_TYPE_IDS
from QEfficient.export.task_graph_specs import VISUAL_QA_KIND, VisualQuestionAnsweringGraphSpec
from QEfficient.generation.encoder_run import encoder_inputs
from QEfficient.loading.hf_loader import load_config
from QEfficient.loading.model_path import resolve_model_path
from QEfficient.models.base import QEFFBaseModel
from QEfficient.transform.visual_qa import VILT_HEADS, QEffVisualQA
from QEfficient.utils.arrays import as_numpy


class QEFFAutoModelForVisualQuestionAnswering(QEFFBaseModel):
    """ViLT's image-text heads (module docstring).

    >>> model = QEFFAutoModelForVisualQuestionAnswering.from_pretrained("path/to/vilt-b32-finetuned-vqa")
    >>> model.compile(num_cores=16)
    >>> logits = model.generate(processor(image, "How many cats are there?", return_tensors="pt"))["logits"]
    >>> model.config.id2label[int(logits.argmax(-1))]
    """

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.model = QEffVisualQA(model.eval())

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """A local folder or a hub id in the local HF cache, with the head it was saved with (ViLT's retrieval head
        too); other keyword arguments go to transformers."""
        folder, _ = resolve_model_path(pretrained_model_name_or_path, kwargs.get("cache_dir"), kwargs.get("revision"))
        head = next((a for a in load_config(folder).architectures or [] if a in VILT_HEADS), None)
        auto = getattr(transformers, head) if head else AutoModelForVisualQuestionAnswering
        return cls._from_auto(auto, pretrained_model_name_or_path, *args, **kwargs)

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.model.hf

    def export(self, export_dir: str | os.PathLike | None = None, **kwargs) -> Path:
        """Export to ONNX (cached under QEFF_HOME); returns the path."""
        spec = VisualQuestionAnsweringGraphSpec()
        args = spec.dummy_inputs(self.config.vocab_size, self.config.patch_size)
        return self._export_one_graph(spec, args, VISUAL_QA_KIND, export_dir, kwargs)

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
    ) -> Path:
        """Build the artifact (images of any size, ``batch_size`` pairs of one size at a time); ``mxfp6_matmul``: the
        MatMuls as int8 GEMMs."""
        return self._compile_graph(
            onnx_path,
            compile_dir,
            {"output_name": LOGITS, "kind": VISUAL_QA_KIND},
            {},
            VisualQuestionAnsweringGraphSpec.specializations(batch_size),
            batch_size=batch_size,
            num_devices=num_devices,
            num_cores=num_cores,
            mxfp6_matmul=mxfp6_matmul,
            compiler_options=compiler_options,
        )

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> dict[str, torch.Tensor]:
        """The logits of a processor's output of questions and images (module docstring)."""
        if device_ids is not None and len(device_ids) > 1:
            warn_ignored_options("generate()", {"device_ids": device_ids})
        if not hasattr(inputs, "keys") or INPUT_IDS not in inputs or PIXEL_VALUES not in inputs:
            raise ValueError("Pass a processor's output for questions and images together: input_ids and pixel_values.")
        text = {k: as_numpy(v) for k, v in inputs.items() if k in (INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS) and v is not None}
        ids, mask, types = encoder_inputs(text)
        pixels = np.ascontiguousarray(as_numpy(inputs[PIXEL_VALUES]), dtype=np.float32)
        pixels = pixels[None] if pixels.ndim == 3 else pixels
        if pixels.ndim != 4 or pixels.shape[1] != 3 or len(pixels) != len(ids) or mask.shape != ids.shape:
            raise ValueError(
                f"Expected input_ids [pairs, tokens] and pixel_values [pairs, 3, height, width] for as many pairs, got "
                f"{list(ids.shape)} and {list(pixels.shape)}."
            )
        images = self._unpadded(pixels, inputs.get("pixel_mask"))
        run = self._runner(runtime_ai100)
        if isinstance(images, np.ndarray):  # one size: batch_size pairs at a time
            batch = self._graph_session("vilt", self.qpc_path)[1]["batch_size"] if runtime_ai100 else len(ids)
            parts = [
                run(ids[i : i + batch], mask[i : i + batch], types[i : i + batch], images[i : i + batch]) for i in range(0, len(ids), batch)
            ]
        else:  # each image at its own size
            parts = [run(ids[i : i + 1], mask[i : i + 1], types[i : i + 1], image[None]) for i, image in enumerate(images)]
        return {LOGITS: torch.from_numpy(np.concatenate(parts))}

    def _unpadded(self, pixels: np.ndarray, pixel_mask) -> np.ndarray | list[np.ndarray]:
        """The images, or (a padded batch) each cropped to the region its mask marks; each checked against the patches
        transformers would keep at random (``max_image_length``)."""
        images = pixels
        if pixel_mask is not None and as_numpy(pixel_mask).shape != (len(pixels), *pixels.shape[2:]):
            shape = [len(pixels), *pixels.shape[2:]]
            raise ValueError(f"pixel_mask must be {shape} (an image's pixels), got {list(as_numpy(pixel_mask).shape)}.")
        if pixel_mask is not None and not as_numpy(pixel_mask).all():
            images = []
            for image, valid in zip(pixels, as_numpy(pixel_mask).astype(bool)):
                height, width = int(valid.any(1).sum()), int(valid.any(0).sum())
                if not valid[:height, :width].all() or valid.sum() != height * width:
                    raise ValueError("pixel_mask must mark each image as a top-left rectangle, as ViLT's processor pads them.")
                images.append(image[:, :height, :width])
        patch, limit = self.config.patch_size, self.config.max_image_length
        for image in images:
            patches = (image.shape[-2] // patch) * (image.shape[-1] // patch)
            if isinstance(limit, int) and limit >= 0 and patches > limit:  # transformers' rule (a negative one: no limit)
                raise ValueError(
                    f"An image of {patches} patches: {type(self.hf_model).__name__} keeps {limit} of them, drawn at random "
                    f"(max_image_length), so its answers vary from call to call. Resize the image to at most {limit} patches."
                )
        return images

    def _runner(self, runtime_ai100: bool):
        """(ids, mask, types, pixels) -> logits: the compiled graph, or the PyTorch module."""
        if not runtime_ai100:

            def run_torch(*arrays):
                with torch.no_grad():
                    return self.model(*map(torch.from_numpy, arrays)).numpy()

            return run_torch
        session = self._graph_session("vilt", self.qpc_path)[0]

        def run_graph(ids, mask, types, pixels):
            feed = {INPUT_IDS: ids, ATTENTION_MASK: mask, TOKEN_TYPE_IDS: types, PIXEL_VALUES: np.ascontiguousarray(pixels)}
            return session.run([LOGITS], feed)[0]

        return run_graph
