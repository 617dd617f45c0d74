"""QEFFAutoModelForRetrieval: late-interaction document retrieval (ColPali, ColQwen2 and ColModernVBert: transformers'
``ColPaliForRetrieval``, ``ColQwen2ForRetrieval``, ``ColModernVBertForRetrieval``) as two graphs, the page images'
tower and the language model (transform/retrieval.py).

``generate(processor.process_images(pages))`` and ``generate(processor.process_queries(queries))`` return what
transformers' forward returns: an output whose ``embeddings`` [batch, seq, dim] hold one L2-normalized vector per token
(zero at padding). ``processor.score_retrieval(query_embeddings, page_embeddings)`` then scores them (MaxSim), as with
transformers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from QEfficient.compile.ort_cpu import warn_ignored_options
from QEfficient.compile.weight_compression import quantize_dynamic_int8
from QEfficient.export.graph_names import ATTENTION_MASK, INPUT_IDS, PIXEL_VALUES, TOKEN_TYPE_IDS, VISION_EMBEDS
from QEfficient.export.graph_specs import VisionGraphSpec
from QEfficient.export.onnx_export import export_vision_onnx
from QEfficient.export.task_graph_specs import EMBEDDINGS, RETRIEVAL_KIND, RetrievalTextGraphSpec
from QEfficient.loading.colbert import is_colbert_folder
from QEfficient.loading.hf_loader import load_config, retrieval_class_name
from QEfficient.loading.model_path import resolve_model_path
from QEfficient.models.base import GraphArtifact, QEFFBaseModel, companion_record
from QEfficient.models.processor_files import save_whole_processor, whole_processor_key
from QEfficient.transform.image_text import QEffVisionEncoder
from QEfficient.transform.retrieval import QEffRetrievalEmbeddings, VisionLanguageView, retriever_rule, retriever_vision_adapter
from QEfficient.utils.arrays import as_numpy

IMAGE_GRID_THW = "image_grid_thw"  # Qwen2-VL's patch grid per page; ColQwen2's processor pads the patches per page
PIXEL_ATTENTION_MASK = "pixel_attention_mask"  # Idefics3's processor: the real pixels of each page's tiles


def _retrieval_class(config):
    """transformers' class of a retrieval checkpoint, refused (before any weight is read) where it is not run here."""
    name = retrieval_class_name(config.model_type)
    if name is None:
        raise ValueError(
            f"'{config.model_type}' is not a late-interaction retrieval model (ColPali, or a ColBERT folder). For text embeddings "
            "use QEFFAutoModel; for image-text similarity, QEFFAutoModelForZeroShotImageClassification."
        )
    retriever_rule(config)
    return getattr(transformers, name)


class QEFFAutoModelForRetrieval(QEFFBaseModel):
    """A ColPali-style retriever (module docstring).

    >>> model = QEFFAutoModelForRetrieval.from_pretrained("path/to/colpali-v1.3-hf")
    >>> model.compile(num_cores=16)
    >>> pages = model.generate(processor.process_images(images)).embeddings
    >>> queries = model.generate(processor.process_queries(["What is the revenue in 2024?"])).embeddings
    >>> processor.score_retrieval(queries, pages)
    """

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        self.rule = retriever_rule(model.config)
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.hf = model.eval()
        self.adapter = retriever_vision_adapter(model)
        self.vision = QEffVisionEncoder(VisionLanguageView(model.vlm), self.adapter)
        self.text = QEffRetrievalEmbeddings(self.hf)
        self.img_size = self.adapter.default_img_size(self.config.vlm_config)  # 0: any size (Qwen2-VL's grids)
        self.qpc_paths: dict[str, Path] = {}
        self._without_weights = False  # from_artifact: the modules on the meta device

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """A local folder or a hub id in the local HF cache; other keyword arguments go to transformers."""
        folder, _ = resolve_model_path(pretrained_model_name_or_path, kwargs.get("cache_dir"), kwargs.get("revision"))
        if is_colbert_folder(folder):  # a text retriever: ColBERT's own class
            from QEfficient.models.colbert import QEFFColBERTModel

            return QEFFColBERTModel.from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        return cls._from_hf(_retrieval_class(load_config(folder)), pretrained_model_name_or_path, *args, **kwargs)

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.hf

    def export(self, export_dir: str | os.PathLike | None = None, **kwargs) -> list[Path]:
        """Export the image tower and the language model (each cached under QEFF_HOME); returns [vision, text] .onnx paths."""
        if self._without_weights:
            raise TypeError(
                "This model was loaded from its artifacts, without weights: load it with from_pretrained() to export or compile it."
            )
        warn_ignored_options("export()", kwargs)
        name = self.model_name.replace("/", "_")
        text_config = self.config.vlm_config.text_config
        text_args = RetrievalTextGraphSpec.dummy_inputs(text_config.vocab_size, self.text.image_token_id, self.text.hidden_size)
        spec = RetrievalTextGraphSpec
        vision = self._export_graph(
            self.vision,
            f"{name}-vision",
            export_dir,
            export_fn=lambda tmp: export_vision_onnx(self.vision, tmp, f"{name}-vision", self.img_size),
            hash_extra={"graph": f"{RETRIEVAL_KIND}-vision", "img_size": self.img_size},
        )
        text = self._export_spec_graph(self.text, spec, text_args, f"{name}-text", f"{RETRIEVAL_KIND}-text", export_dir)
        self.onnx_path = [vision, text]
        return self.onnx_path

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
        """Build the two artifacts: {"vision_qpc_path": ..., "text_qpc_path": ...}. ``batch_size``: pages or queries per
        run (every input runs at its own length); ``mxfp6_matmul``: the MatMuls as int8 GEMMs, as the encoders'."""
        self._check_graphs_compile(onnx_path, num_devices, compiler_options, batch_size=batch_size, num_cores=num_cores)
        vision_onnx, text_onnx = self.export()
        rewrite = quantize_dynamic_int8 if mxfp6_matmul else None
        params = {"batch_size": batch_size, "mxfp6_matmul": mxfp6_matmul}
        vision = GraphArtifact(
            "vision",
            vision_onnx,
            {"kind": f"{RETRIEVAL_KIND}-vision", "output_name": VISION_EMBEDS},
            {**params, "img_size": self.img_size},
            VisionGraphSpec.specializations(self.img_size, batch_size),
            rewrite,
        )
        vision_path = self._compile_graphs([vision], compile_dir, num_cores, main="vision")["vision_qpc_path"]
        named, key = companion_record(vision_path, compile_dir, text_onnx)
        # the text artifact names its vision artifact and keeps the config and the processor: a server runs the two alone
        text = GraphArtifact(
            "text",
            text_onnx,
            {"kind": f"{RETRIEVAL_KIND}-text", "output_name": EMBEDDINGS, "vision_artifact": named, "vision_artifact_digest": key},
            {**params, **whole_processor_key(self.local_model_dir), "vision_artifact": key},
            RetrievalTextGraphSpec.specializations(batch_size),
            rewrite,
            lambda artifact_dir: save_whole_processor(self.local_model_dir, artifact_dir, self.config),
        )
        self._compile_graphs([text], compile_dir, num_cores, main="text")
        self.qpc_paths = {"vision_qpc_path": vision_path, "text_qpc_path": self.qpc_path}
        return self.qpc_paths

    @classmethod
    def from_artifact(
        cls, qpc_path: str | os.PathLike, num_cores: int | None = None, vision_qpc_path: str | os.PathLike | None = None
    ) -> QEFFAutoModelForRetrieval:
        """The compiled retriever from its text artifact (compile()'s ``text_qpc_path``, which names its vision artifact;
        ``vision_qpc_path``: a copy of that elsewhere): generate() runs the two graphs. No weights are read (the modules
        are built on the meta device, for their host-side rules), so export and compile are refused."""
        kind, build = f"{RETRIEVAL_KIND}-text", lambda config: _retrieval_class(config)(config)
        return cls._from_kept_files(qpc_path, num_cores, vision_qpc_path, kind, "vision", "a page retriever", build)

    def _pages(self, inputs, pages: int) -> list[dict[str, np.ndarray]]:
        """Each page's vision inputs, as a processor's output holds them for one page."""
        pixels = np.asarray(as_numpy(inputs[PIXEL_VALUES]), dtype=np.float32)
        mixed = "; a batch holds pages or queries, not both (the processor writes one kind at a time)"
        if self.adapter.tiled_pages:  # each page's tiles (Idefics3's splitting), padded with all-zero tiles
            if pixels.ndim != 5 or len(pixels) != pages or pixels.shape[-2:] != (self.img_size, self.img_size):
                raise ValueError(
                    f"pixel_values must be [pages, tiles, channels, {self.img_size}, {self.img_size}], one page per row of "
                    f"input_ids ({pages}), got {list(pixels.shape)}{mixed if len(pixels) != pages else ''}."
                )
            mask = inputs.get(PIXEL_ATTENTION_MASK)
            mask = None if mask is None else np.asarray(as_numpy(mask))
            return [
                {PIXEL_VALUES: pixels[i : i + 1], **({} if mask is None else {PIXEL_ATTENTION_MASK: mask[i : i + 1]})} for i in range(pages)
            ]
        if self.img_size:  # pages at the model's fixed size
            shape = (pages, self.config.vlm_config.vision_config.num_channels, self.img_size, self.img_size)
            if pixels.shape != shape:
                raise ValueError(
                    f"pixel_values must be {list(shape)}, one page per row of input_ids at the model's size (let "
                    f"processor.process_images resize them), got {list(pixels.shape)}{mixed if len(pixels) != pages else ''}."
                )
            return [{PIXEL_VALUES: pixels[i : i + 1]} for i in range(pages)]
        grid = inputs.get(IMAGE_GRID_THW)
        if grid is None:
            raise ValueError(f"pixel_values come with {IMAGE_GRID_THW} (each page's patch grid): pass the processor's whole output.")
        grid = np.asarray(as_numpy(grid), dtype=np.int64)
        width = self.adapter.patch_width(self.config.vlm_config)
        # the processor pads each page's patches to the longest page's: [pages, patches, values]
        if (
            pixels.ndim != 3
            or pixels.shape[2] != width
            or grid.shape != (len(pixels), 3)
            or len(pixels) != pages
            or (grid.prod(-1) > pixels.shape[1]).any()
        ):
            raise ValueError(
                f"pixel_values [pages, patches, {width}] and {IMAGE_GRID_THW} [pages, 3] must hold one page per row of "
                f"input_ids ({pages}), each page's patches its grid's count, got {list(pixels.shape)} and {list(grid.shape)}"
                f"{mixed if len(pixels) != pages else ''}."
            )
        return [{PIXEL_VALUES: pixels[i, : int(g.prod())], IMAGE_GRID_THW: g[None]} for i, g in enumerate(grid)]

    def _page_rows(self, pages: list[dict[str, np.ndarray]], runtime_ai100: bool) -> tuple[np.ndarray, np.ndarray]:
        """The image-token embeddings of ``pages`` as rows [tokens, hidden], and each page's count of them. Pages of
        any grid run one at a time (their attention is over one page's patches: joined, its mask would be pages² as
        large), and so do tiled pages (a real page is up to 17 tiles), pages of one size together."""
        one_at_a_time = self.adapter.vision_per_unit or self.adapter.tiled_pages
        groups = [[page] for page in pages] if one_at_a_time else [pages]
        rows, tokens = [], []
        for group in groups:
            joined = {name: np.concatenate([page[name] for page in group]) for name in group[0]}
            vision = self.adapter.vision_inputs(joined, self.img_size, self.config.vlm_config)
            feed = self.adapter.graph_inputs(vision)
            if runtime_ai100:
                out = self._graph_session("vision")[0].run([VISION_EMBEDS], feed)[0]
            else:
                with torch.no_grad():
                    out = self.vision(*map(torch.from_numpy, feed.values())).numpy()
            rows.append(out.reshape(-1, self.text.hidden_size))
            # each page's image tokens: pages run together are one unit each; a page run alone may be several (tiles)
            tokens.append(vision["_tokens"] if len(group) > 1 else vision["_tokens"].sum(keepdims=True))
        return np.concatenate(rows), np.concatenate(tokens)

    def _embed(self, ids, mask, types, rows, runtime_ai100: bool) -> np.ndarray:
        if not runtime_ai100:
            with torch.no_grad():
                return self.text(*map(torch.from_numpy, (ids, mask, types, rows))).numpy()
        session, _ = self._graph_session("text")
        feed = {INPUT_IDS: ids, ATTENTION_MASK: mask, TOKEN_TYPE_IDS: types, VISION_EMBEDS: rows}
        taken = {i.name for i in session.get_inputs()}  # an encoder's graph (ColModernVBert) reads no token types
        return session.run([EMBEDDINGS], {name: value for name, value in feed.items() if name in taken})[0]

    @property
    def output_class(self) -> type[ModelOutput]:
        """transformers' output class of this retriever (``ColPaliForRetrievalOutput``, ``ColQwen2ForRetrievalOutput``)."""
        return getattr(sys.modules[type(self.hf).__module__], f"{type(self.hf).__name__}Output")

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> ModelOutput:
        """The per-token embeddings of a processor's pages (``process_images``) or queries (``process_queries``)."""
        if device_ids is not None and len(device_ids) > 1:
            warn_ignored_options("generate()", {"device_ids": device_ids})
        if not hasattr(inputs, "keys") or INPUT_IDS not in inputs:
            raise ValueError("Pass a processor's output: processor.process_images(pages) or processor.process_queries(texts).")
        self._check_pytorch_run(runtime_ai100)
        ids = np.ascontiguousarray(as_numpy(inputs[INPUT_IDS]), dtype=np.int64)
        ids = ids[None] if ids.ndim == 1 else ids
        mask = inputs.get(ATTENTION_MASK)
        mask = np.ones_like(ids) if mask is None else np.ascontiguousarray(as_numpy(mask), dtype=np.int64).reshape(ids.shape)
        # type 1 attends causally: transformers' rule without token types, and ColQwen2's, which reads none
        types = inputs.get(TOKEN_TYPE_IDS) if self.rule.reads_token_types else None
        types = np.ones_like(ids) if types is None else np.ascontiguousarray(as_numpy(types), dtype=np.int64).reshape(ids.shape)
        image_tokens = (ids == self.text.image_token_id).sum(axis=1)
        pages = self._pages(inputs, len(ids)) if inputs.get(PIXEL_VALUES) is not None else None
        if pages is None and image_tokens.any():
            raise ValueError("The input_ids hold image tokens but no pixel_values were given: pass the processor's whole output.")
        batch = self._graph_session("text")[1]["batch_size"] if runtime_ai100 else len(ids)
        parts = []
        for i in range(0, len(ids), batch):
            if pages is None:
                rows = np.zeros((1, self.text.hidden_size), np.float32)  # a placeholder the queries never read
            else:
                rows, tokens = self._page_rows(pages[i : i + batch], runtime_ai100)
                if (image_tokens[i : i + batch] != tokens).any():
                    raise ValueError(
                        f"Each page's input_ids must hold one image token per image embedding ({tokens.tolist()}), got "
                        f"{image_tokens[i : i + batch].tolist()}: pass the processor's output unchanged."
                    )
            parts.append(self._embed(ids[i : i + batch], mask[i : i + batch], types[i : i + batch], rows, runtime_ai100))
        return self.output_class(embeddings=torch.from_numpy(np.concatenate(parts)))
