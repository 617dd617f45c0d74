"""QEFFSparseEncoder: SPLADE sparse encoders as sentence-transformers' SparseEncoder runs them (naver/splade-*,
opensearch-project/opensearch-neural-sparse-encoding-*, prithivida/Splade_PP_en_v1, ...): the masked LM with SPLADE's
pooling in one graph (transform/splade.py), one vocabulary-sized vector per text.

``encode(sentences)`` returns what ``SparseEncoder.encode`` does: a torch sparse COO tensor [texts, vocabulary] (one
text: [vocabulary]), or dense numpy rows with ``convert_to_sparse_tensor=False``; ``max_active_dims`` keeps each row's
largest values. ``encode_query`` and ``encode_document`` use the folder's "query" and "document" prompts where it has
them; ``similarity`` is the dot product (SparseEncoder's default); ``decode`` lists a vector's tokens by weight.
QEFFAutoModel loads such a folder as this class.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForMaskedLM, PreTrainedModel

from QEfficient.export.graph_names import ATTENTION_MASK, INPUT_IDS
from QEfficient.loading.sparse_encoder import SpladeSettings, read_splade_folder
from QEfficient.models.base import usable_positions
from QEfficient.models.colbert import PerTokenEncoder
from QEfficient.models.sentence_transformers import sentence_transformers_prompt
from QEfficient.transform.splade import SpladePooling
from QEfficient.utils.checks import check_positive


class QEFFSparseEncoder(PerTokenEncoder):
    """A SPLADE sparse encoder (module docstring).

    >>> model = QEFFSparseEncoder.from_pretrained("path/to/splade-v3")
    >>> model.compile(num_cores=16)
    >>> queries = model.encode_query(["what is splade?"])
    >>> documents = model.encode_document(["SPLADE learns sparse lexical expansions."])
    >>> model.similarity(queries, documents)
    """

    _hf_auto = AutoModelForMaskedLM
    late_interaction = False  # one (sparse) vector per text
    own_heads = "SPLADE"
    _no_pooling = "A SPLADE model pools its masked LM's logits itself: load it without pooling."
    _read_heads = staticmethod(read_splade_folder)

    def __init__(self, model: PreTrainedModel, settings: SpladeSettings, **kwargs) -> None:
        if kwargs.pop("pooling", None) is not None:
            raise ValueError(self._no_pooling)
        self.settings = settings
        super().__init__(model, pooling=SpladePooling(settings.pooling_strategy, settings.activation_function), **kwargs)
        if not self.model.token_head:
            raise ValueError(f"{type(model).__name__} is not a masked LM: SPLADE pools a masked LM's logits.")

    @property
    def max_seq_length(self) -> int:
        """The longest input: the folder's max_seq_length, else the tokenizer's and the encoder's positions."""
        limits = [self.settings.max_seq_length, usable_positions(self.config)]
        limits.append(self.tokenizer.model_max_length if 0 < (self.tokenizer.model_max_length or 0) < 1_000_000 else None)
        return int(min(n for n in limits if n) if any(limits) else 512)

    def compile(
        self, onnx_path: str | os.PathLike | None = None, compile_dir: str | os.PathLike | None = None, *, seq_len=None, **kwargs
    ) -> Path:
        """As QEFFAutoModel's; ``seq_len`` defaults to lengths up to ``max_seq_length`` (a batch runs at the shortest
        that holds it)."""
        if seq_len is None:
            seq_len = sorted({n for n in (32, 64, 128, 256) if n < self.max_seq_length} | {self.max_seq_length})
        return super().compile(onnx_path, compile_dir, seq_len=seq_len, **kwargs)

    def encode(
        self,
        sentences: list[str] | str,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        convert_to_sparse_tensor: bool = True,
        max_active_dims: int | None = None,
        *,
        tokenizer=None,
    ):
        """SparseEncoder's ``encode`` (module docstring): each text after its prompt (``prompt``, else the folder's named
        ``prompt_name``, else its default), stripped (lowercased where the folder says so), truncated to
        ``max_seq_length`` tokens."""
        texts, single = self._texts(sentences)
        check_positive(batch_size=batch_size)
        if max_active_dims is not None:
            check_positive(max_active_dims=max_active_dims)
        prefix = sentence_transformers_prompt(self.local_model_dir, prompt_name, prompt)
        texts = [(prefix + text).strip() for text in texts]  # sentence-transformers' Transformer strips each text
        texts = [text.lower() for text in texts] if self.settings.do_lower_case else texts
        tokenizer = tokenizer or self.tokenizer
        rows = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            enc = tokenizer(batch, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="np")
            feed = {INPUT_IDS: enc[INPUT_IDS].astype(np.int64), ATTENTION_MASK: enc[ATTENTION_MASK].astype(np.int64)}
            rows.append(self.generate(feed, runtime_ai100=self.qpc_path is not None)[self._output_name])
        vectors = np.concatenate(rows)
        if max_active_dims is not None and max_active_dims < vectors.shape[1]:  # each row's largest values (by magnitude)
            smallest = np.argpartition(np.abs(vectors), -max_active_dims, axis=1)[:, :-max_active_dims]
            np.put_along_axis(vectors, smallest, 0.0, axis=1)
        out = torch.from_numpy(vectors).to_sparse() if convert_to_sparse_tensor else vectors
        return out[0] if single else out

    def encode_query(self, sentences: list[str] | str, **options):
        """``encode`` with the folder's "query" prompt, where it has one."""
        return self.encode(sentences, **self._named_prompt("query", options))

    def encode_document(self, sentences: list[str] | str, **options):
        """``encode`` with the folder's "document" prompt, where it has one."""
        return self.encode(sentences, **self._named_prompt("document", options))

    def _named_prompt(self, name: str, options: dict) -> dict:
        if options.get("prompt") is None and options.get("prompt_name") is None:
            try:
                sentence_transformers_prompt(self.local_model_dir, name)
                options = {**options, "prompt_name": name}
            except ValueError:  # the folder has no such prompt: its default one, if any
                pass
        return options

    @staticmethod
    def similarity(a, b) -> torch.Tensor:
        """Dot products [len(a), len(b)] of two batches of vectors (sparse or dense), SparseEncoder's default."""
        a, b = (torch.as_tensor(x).to_dense() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x)) for x in (a, b))
        return torch.atleast_2d(a).float() @ torch.atleast_2d(b).float().T

    def decode(self, embeddings, top_k: int | None = None):
        """Each vector's (token, weight) pairs, the largest first (``top_k`` of them); one list for one vector."""
        dense = embeddings.to_dense().numpy() if isinstance(embeddings, torch.Tensor) else np.asarray(embeddings)
        single = dense.ndim == 1
        decoded = []
        for row in np.atleast_2d(dense):
            ids = np.nonzero(row)[0]
            ids = ids[np.argsort(-row[ids], kind="stable")][:top_k]
            decoded.append(list(zip(self.tokenizer.convert_ids_to_tokens(ids.tolist()), row[ids].tolist(), strict=True)))
        return decoded[0] if single else decoded
