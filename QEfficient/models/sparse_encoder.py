"""QEFFSparseEncoder: SPLADE sparse encoders as sentence-transformers' SparseEncoder runs them (naver/splade-*, the
opensearch-project/opensearch-neural-sparse-encoding-v1/v2 bi-encoders, prithivida/Splade_PP_en_v1, ...): the masked LM
with SPLADE's pooling in one graph (transform/splade.py), one vocabulary-sized vector per text.

``encode(sentences)`` returns what ``SparseEncoder.encode`` does: a torch sparse COO tensor [texts, vocabulary] (one
text: [vocabulary]); a dense torch tensor with ``convert_to_sparse_tensor=False``, numpy rows with
``convert_to_tensor=False`` too; ``max_active_dims`` keeps each row's largest values. ``encode_query`` and
``encode_document`` use the "query" and "document" prompts (empty unless the folder sets them); ``similarity`` is the
folder's (dot product by default, or cosine); ``decode`` lists a vector's tokens by weight. QEFFAutoModel loads such a
folder as this class; a bare masked LM's checkpoint loads too, with SparseEncoder's defaults (max pooling of relu). An
inference-free SparseEncoder (opensearch's doc-* models: a Router) runs its query route on the
host, each token of a query at its static weight (no model), and its document route, SPLADE, in the graph.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForMaskedLM, PreTrainedModel

from QEfficient.export.graph_names import INPUT_IDS
from QEfficient.generation.encoder_run import right_padded
from QEfficient.loading.sparse_encoder import SpladeSettings, read_splade_folder, read_static_weights, serving_settings
from QEfficient.models.headed_encoder import HeadedEncoder
from QEfficient.models.sentence_transformers import l2_normalized, max_input_tokens
from QEfficient.transform.splade import SpladePooling
from QEfficient.utils.checks import check_positive


class QEFFSparseEncoder(HeadedEncoder):
    """A SPLADE sparse encoder (module docstring).

    >>> model = QEFFSparseEncoder.from_pretrained("path/to/splade-v3")
    >>> model.compile(num_cores=16)
    >>> queries = model.encode_query(["what is splade?"])
    >>> documents = model.encode_document(["SPLADE learns sparse lexical expansions."])
    >>> model.similarity(queries, documents)
    """

    _hf_auto = AutoModelForMaskedLM
    own_heads = "SPLADE"
    _no_pooling = "A SPLADE model pools its masked LM's logits itself: load it without pooling."
    _read_folder = staticmethod(read_splade_folder)

    def __init__(self, model: PreTrainedModel, settings: SpladeSettings, **kwargs) -> None:
        self.settings = settings
        super().__init__(model, SpladePooling(settings.pooling_strategy, settings.activation_function), **kwargs)
        if not self.model.token_head:
            raise ValueError(f"{type(model).__name__} is not a masked LM: SPLADE pools a masked LM's logits.")

    @property
    def heads_settings(self) -> dict:
        """What a server on the artifact alone reads of the folder's SPLADE modules and config (serving/encoder_artifact.py)."""
        return serving_settings(self.settings, self.config)

    @property
    def max_seq_length(self) -> int:
        """The longest input: the folder's max_seq_length, within the tokenizer's and the encoder's positions."""
        return max_input_tokens(self.local_model_dir, self.config, self.tokenizer, self.settings.max_seq_length or 1 << 30)

    def compile(
        self, onnx_path: str | os.PathLike | None = None, compile_dir: str | os.PathLike | None = None, *, seq_len=None, **kwargs
    ) -> Path:
        """As QEFFAutoModel's; ``seq_len`` defaults to lengths up to ``max_seq_length`` (a batch runs at the shortest
        that holds it)."""
        if seq_len is None:
            seq_len = sorted({n for n in (32, 64, 128, 256) if n < self.max_seq_length} | {self.max_seq_length})
        return super().compile(onnx_path, compile_dir, seq_len=seq_len, **kwargs)

    def _prompt(self, prompt_name: str | None, prompt: str | None) -> str:
        """SparseEncoder's: ``prompt``, else the prompt named ``prompt_name``, else the folder's default one, else none."""
        prompts = dict(self.settings.prompts)
        if prompt is not None:
            return prompt
        name = prompt_name if prompt_name is not None else self.settings.default_prompt_name
        if name is not None and name not in prompts:
            raise ValueError(f"Prompt name '{name}' is not among this model's prompts {sorted(prompts)}.")
        return prompts.get(name, "") if name is not None else ""

    def encode(
        self,
        sentences: list[str] | str,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        *,
        convert_to_tensor: bool = True,
        convert_to_sparse_tensor: bool = True,
        max_active_dims: int | None = None,
        task: str | None = None,
        **ignored,
    ):
        """SparseEncoder's ``encode`` (module docstring): each text after its prompt, as sent (lowercased where the folder
        says so; sentence-transformers 5.3 stripped it, 5.4 and later do not), truncated to ``max_seq_length`` tokens;
        texts of similar length run together. What only changes SparseEncoder's speed or display (``show_progress_bar``,
        ``chunk_size``, ``device``) is taken and has no effect. ``task`` picks an inference-free model's route (its
        Router's: the query one weighs each token of the text, without the model; the default route where none is
        named), and has no effect on a model without a Router."""
        unknown = set(ignored) - {"show_progress_bar", "chunk_size", "device", "save_to_cpu"}
        if unknown:
            raise TypeError(f"encode() got unexpected keyword arguments {sorted(unknown)}.")
        texts, single = self._texts(sentences)
        check_positive(batch_size=batch_size)
        max_active_dims = self.settings.max_active_dims if max_active_dims is None else max_active_dims  # the folder's default
        if max_active_dims is not None:
            check_positive(max_active_dims=max_active_dims)
        prefix = self._prompt(prompt_name, prompt)
        route = self._route(task)
        if route is not None and route == self.settings.query_route:
            vectors = self._static_vectors([prefix + text for text in texts])  # as sent: this module neither strips nor lowercases
        else:
            vectors = self._model_vectors([prefix + text for text in texts], batch_size)
        if max_active_dims is not None and max_active_dims < vectors.shape[1]:  # each row's largest values (by magnitude)
            smallest = np.argpartition(np.abs(vectors), -max_active_dims, axis=1)[:, :-max_active_dims]
            np.put_along_axis(vectors, smallest, 0.0, axis=1)
        out = vectors[0] if single else vectors
        if not convert_to_tensor and not convert_to_sparse_tensor:
            return out
        out = torch.from_numpy(out)
        return out.to_sparse() if convert_to_sparse_tensor else out

    def _route(self, task: str | None) -> str | None:
        """The Router's route for ``task`` (its default one for None), as sentence-transformers picks it; None without a Router."""
        if self.settings.query_route is None:
            return None
        routes = [self.settings.query_route, self.settings.document_route]
        if task is None and self.settings.default_route is None:
            raise ValueError(f"You must provide a `task` argument ({' or '.join(routes)}): this model's Router has no default route.")
        route = self.settings.default_route if task is None else task
        if route not in routes:
            raise ValueError(f"No route found for task type '{route}'. Available routes: {routes}.")
        return route

    def _static_vectors(self, texts: list[str]) -> np.ndarray:
        """An inference-free model's query vectors: each token of the text (its tokenizer's, no special tokens) at its
        static weight, as SparseStaticEmbedding weighs them."""
        tokenizer, weights = self._static_module()
        vectors = np.zeros((len(texts), len(weights)), np.float32)
        for row, ids in enumerate(tokenizer(texts, add_special_tokens=False, truncation=True)[INPUT_IDS]):
            vectors[row, ids] = weights[ids]
        return vectors

    def _static_module(self):
        """(tokenizer, static weights) of an inference-free model's query route, read once."""
        if getattr(self, "_static", None) is None:
            from transformers import AutoTokenizer

            where = Path(self.heads_folder) / self.settings.query_folder
            self._static = AutoTokenizer.from_pretrained(where), read_static_weights(Path(self.heads_folder), self.settings)
        return self._static

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """As HeadedEncoder's; an inference-free model's query module is read now (a broken one fails here, not at the
        first query)."""
        obj = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if obj.settings.query_route is not None:
            obj._static_module()
        return obj

    def _model_vectors(self, texts: list[str], batch_size: int) -> np.ndarray:
        """SPLADE's vectors of ``texts``: the masked LM through the pooling, longest texts first."""
        texts = [text.lower() for text in texts] if self.settings.do_lower_case else texts
        tokenizer = self.tokenizer
        rows = tokenizer(texts, truncation=True, max_length=self.max_seq_length)[INPUT_IDS]
        order = np.argsort([-len(row) for row in rows], kind="stable")  # SparseEncoder's: the longest first, less padding
        vectors = None
        for start in range(0, len(texts), batch_size):
            picked = order[start : start + batch_size]
            feed = right_padded([rows[i] for i in picked], tokenizer.pad_token_id or 0)
            out = self.generate(feed, runtime_ai100=self.qpc_path is not None)[self._output_name]
            vectors = np.zeros((len(texts), out.shape[1]), np.float32) if vectors is None else vectors
            vectors[picked] = out
        return vectors

    def embed(self, inputs: dict, normalize: bool = False) -> np.ndarray:
        """The vectors [B, vocabulary] of tokenized ``inputs`` (input_ids and attention_mask, right-padded), as they are
        (SPLADE's, which vLLM serves unnormalized) or L2-normalized: what the embeddings server asks of a model."""
        out = np.asarray(self.generate(inputs, runtime_ai100=self.qpc_path is not None)[self._output_name], np.float32)
        return l2_normalized(out) if normalize else out

    def encode_query(self, sentences: list[str] | str, **options):
        """``encode`` with the "query" prompt (SparseEncoder's: empty unless the folder sets one) and task (an inference-free
        model's query route)."""
        return self.encode(sentences, **({"prompt_name": "query", "task": "query"} | options))

    def encode_document(self, sentences: list[str] | str, **options):
        """``encode`` with the "document" prompt (SparseEncoder's: empty unless the folder sets one) and task (an
        inference-free model's document route)."""
        return self.encode(sentences, **({"prompt_name": "document", "task": "document"} | options))

    def similarity(self, a, b) -> torch.Tensor:
        """The folder's similarity [len(a), len(b)] of two batches of vectors (sparse or dense): dot products, or cosines."""
        a, b = (x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x)) for x in (a, b))
        a, b = (x.unsqueeze(0).float() if x.dim() == 1 else x.float() for x in (a, b))
        if self.settings.similarity_fn_name == "cosine":
            a, b = (x.to_dense() if x.is_sparse else x for x in (a, b))
            a, b = torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(b, dim=-1)
        with warnings.catch_warnings():  # torch multiplies two sparse tensors through its (beta) CSR support
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
            product = torch.sparse.mm(a, b.T) if a.is_sparse else a @ (b.to_dense() if b.is_sparse else b).T
        return product.to_dense() if product.is_sparse else product

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
