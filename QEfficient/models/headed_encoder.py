"""HeadedEncoder: the lifecycle of an encoder whose graph ends in its folder's own heads, not a pooling chosen by the
user: ColBERT's projection (models/colbert.py), BGE-M3's heads (models/bge_m3.py), SPLADE's pooling
(models/sparse_encoder.py). The folder is read with its heads (``_read_folder``: what ``__init__`` takes beside the
model), the tokenizer from the folder at first use; ``own_heads`` names the family in the artifact, which a server on
the artifact alone serves by that family's routes (ColBERT's, BGE-M3's token tasks, SPLADE's vectors), not as an embedding
model's pooled vectors."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn
from transformers import PreTrainedModel

from QEfficient.export.task_graph_specs import EMBEDDINGS
from QEfficient.loading.hf_loader import load_pretrained
from QEfficient.loading.model_path import resolve_model_path
from QEfficient.models.encoder import _QEFFEncoderBase
from QEfficient.utils.checks import check_strings


class HeadedEncoder(_QEFFEncoderBase):
    """An encoder with its folder's own heads in its graph (module docstring)."""

    own_heads = "headed"
    _output_name = EMBEDDINGS
    _no_pooling = "This model's outputs are its own heads': load it without pooling."

    def __init__(self, model: PreTrainedModel, head: nn.Module, **kwargs) -> None:
        if kwargs.pop("pooling", None) is not None:
            raise ValueError(self._no_pooling)
        super().__init__(model, pooling=head, **kwargs)

    @classmethod
    def _read_folder(cls, folder: Path):
        """What the folder says of the heads (loading/), which ``__init__`` takes beside the model."""
        raise NotImplementedError

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """The model's folder (local, or a hub id in the local HF cache); other keyword arguments go to transformers."""
        if kwargs.pop("pooling", None) is not None:
            raise ValueError(cls._no_pooling)
        folder, gguf_file = resolve_model_path(pretrained_model_name_or_path, kwargs.get("cache_dir"), kwargs.get("revision"))
        if gguf_file:
            raise ValueError(f"{cls.__name__} reads a model's folder (its encoder and heads), not a GGUF file.")
        settings = cls._read_folder(folder)
        subfolder = getattr(settings, "model_folder", "")  # an inference-free SparseEncoder's masked LM is in its own
        source = Path(folder) / subfolder if subfolder else pretrained_model_name_or_path
        root = Path(folder)
        model, folder = load_pretrained(cls._hf_auto, source, *args, owner=cls.__name__, **kwargs)
        obj = cls(model, settings, pretrained_model_name_or_path=str(pretrained_model_name_or_path))
        obj.local_model_dir, obj.heads_folder = folder, root  # the encoder's own folder; the folder of its heads
        return obj

    @staticmethod
    def _texts(sentences: list[str] | str) -> tuple[list[str], bool]:
        """(texts, whether one string was given) of an ``encode`` call's ``sentences``, checked."""
        single = isinstance(sentences, str)
        texts = [sentences] if single else sentences
        if not isinstance(texts, (list, tuple)) or not texts:
            raise ValueError(f"sentences must be a string or a non-empty list of strings, got {sentences!r:.60}.")
        check_strings("Sentence", texts)
        return list(texts), single

    @property
    def tokenizer(self):
        """The folder's tokenizer (a ColBERT's marker tokens included), read at first use."""
        if getattr(self, "_tokenizer", None) is None:
            if self.local_model_dir is None:
                raise ValueError("This model has no folder to read its tokenizer from: load it from its folder.")
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.local_model_dir)
        return self._tokenizer
