"""QEFFBGEM3Model: BGE-M3 (BAAI/bge-m3 and models saved the same way) with the three outputs FlagEmbedding's
``BGEM3FlagModel`` gives: dense vectors (the first token's hidden state), lexical weights (its sparse head's relu per
token, the largest per token id, special tokens left out) and multi-vector (ColBERT) vectors (its multi-vector head at
every token but the first, padding left out), from one graph (transform/bge_m3.py: BGEM3Heads).

``encode(sentences, return_dense=..., return_sparse=..., return_colbert_vecs=...)`` returns FlagEmbedding's dictionary
(``dense_vecs``, ``lexical_weights``, ``colbert_vecs``); ``encode_queries``, ``encode_corpus``, ``compute_score``,
``compute_lexical_matching_score``, ``colbert_score`` (a float) and ``convert_id_to_token`` are FlagEmbedding's.
FlagEmbedding's ``truncate_dim`` (shorter vectors) is not taken. QEFFAutoModel loads the same folder for its dense vectors alone, as
sentence-transformers does.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np
from transformers import PreTrainedModel

from QEfficient.export.graph_names import INPUT_IDS
from QEfficient.generation.encoder_run import right_padded
from QEfficient.generation.late_interaction import maxsim
from QEfficient.loading.bge_m3 import read_bge_m3_heads
from QEfficient.loading.sentence_transformers_files import DenseLayer
from QEfficient.models.base import usable_positions
from QEfficient.models.headed_encoder import HeadedEncoder
from QEfficient.models.sentence_transformers import l2_normalized
from QEfficient.transform.bge_m3 import BGEM3Heads
from QEfficient.utils.checks import check_positive

_SPECIAL = ("cls_token", "eos_token", "pad_token", "unk_token")  # left out of the lexical weights, as FlagEmbedding does
QUERY_MAX_LENGTH = PASSAGE_MAX_LENGTH = 512  # FlagEmbedding's defaults


class QEFFBGEM3Model(HeadedEncoder):
    """BGE-M3 (module docstring).

    >>> model = QEFFBGEM3Model.from_pretrained("path/to/bge-m3")
    >>> model.compile(num_cores=16)
    >>> out = model.encode(["What is BGE M3?"], return_dense=True, return_sparse=True, return_colbert_vecs=True)
    >>> out["dense_vecs"], out["lexical_weights"], out["colbert_vecs"]
    """

    own_heads = "BGE-M3"
    _no_pooling = "BGE-M3's outputs are its own (dense, sparse, multi-vector): load it without pooling."
    _read_folder = staticmethod(read_bge_m3_heads)

    def __init__(self, model: PreTrainedModel, heads: tuple[DenseLayer, DenseLayer], **kwargs) -> None:
        colbert, sparse = heads
        hidden = int(model.config.hidden_size)
        if colbert.weight.shape[1] != hidden:
            raise ValueError(f"BGE-M3's heads read {colbert.weight.shape[1]} features, but the encoder's hidden size is {hidden}.")
        super().__init__(model, BGEM3Heads(colbert, sparse), **kwargs)
        self.hidden_size, self.colbert_dim = hidden, int(colbert.weight.shape[0])

    def compile(
        self, onnx_path: str | os.PathLike | None = None, compile_dir: str | os.PathLike | None = None, *, seq_len=None, **kwargs
    ) -> Path:
        """As QEFFAutoModel's; ``seq_len`` defaults to lengths up to FlagEmbedding's passage length, 512 (within the
        encoder's positions): each batch runs at the shortest that holds it."""
        if seq_len is None:
            longest = min(PASSAGE_MAX_LENGTH, usable_positions(self.config) or PASSAGE_MAX_LENGTH)
            seq_len = sorted({n for n in (32, 64, 128, 256) if n < longest} | {longest})
        return super().compile(onnx_path, compile_dir, seq_len=seq_len, **kwargs)

    def encode(
        self,
        sentences: list[str] | str,
        batch_size: int = 256,
        max_length: int = PASSAGE_MAX_LENGTH,
        return_dense: bool = True,
        return_sparse: bool = False,
        return_colbert_vecs: bool = False,
        *,
        tokenizer=None,
    ) -> dict:
        """FlagEmbedding's ``BGEM3FlagModel.encode`` (its arguments in its order): {"dense_vecs": [texts, H]
        (L2-normalized), "lexical_weights": one defaultdict {token id (str): weight} per text, "colbert_vecs": one
        [tokens - 1, C] array per text (L2-normalized)}, each None unless asked for; one text's own for a string. Texts
        longer than ``max_length`` tokens are truncated; texts of similar length run together, ``batch_size`` at a time."""
        texts, single = self._texts(sentences)
        check_positive(batch_size=batch_size, max_length=max_length)
        if not (return_dense or return_sparse or return_colbert_vecs):
            raise ValueError("Choose one or more of return_dense, return_sparse and return_colbert_vecs.")
        tokenizer = tokenizer or self.tokenizer
        rows = tokenizer(list(texts), truncation=True, max_length=max_length)[INPUT_IDS]
        special = {tokenizer.convert_tokens_to_ids(tokenizer.special_tokens_map[t]) for t in _SPECIAL if t in tokenizer.special_tokens_map}
        dense = np.zeros((len(rows), self.hidden_size), np.float32)
        lexical: list = [None] * len(rows)
        colbert: list = [None] * len(rows)
        order = np.argsort([-len(row) for row in rows], kind="stable")  # FlagEmbedding's: the longest first, less padding
        pad = tokenizer.pad_token_id or 0
        for start in range(0, len(rows), batch_size):
            picked = order[start : start + batch_size]
            feed = right_padded([rows[r] for r in picked], pad)
            out = self.generate(feed, runtime_ai100=self.qpc_path is not None)[self._output_name]
            hidden, vectors, weights = BGEM3Heads.split(out, self.hidden_size, self.colbert_dim)
            dense[picked] = l2_normalized(hidden[:, 0])
            for i, r in enumerate(picked):
                n = len(rows[r])
                colbert[r] = l2_normalized(vectors[i, 1:n])  # every token but the first, the last one's included
                found = defaultdict(int)  # FlagEmbedding's: a missing id weighs 0
                for token, weight in zip(rows[r], weights[i, :n, 0], strict=True):
                    if token not in special and weight > 0 and weight > found[str(token)]:
                        found[str(token)] = weight
                lexical[r] = found
        answer = {
            "dense_vecs": dense if return_dense else None,
            "lexical_weights": lexical if return_sparse else None,
            "colbert_vecs": colbert if return_colbert_vecs else None,
        }
        return {k: v if v is None or not single else v[0] for k, v in answer.items()}

    def token_outputs(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One text's token ids (its special tokens included) through the compiled graph: every token's (hidden state,
        multi-vector head's output, sparse head's relu weight [tokens, 1]), nothing masked or normalized (the server's
        pooling tasks pick from them: serving/bge_m3_app.py)."""
        out = self.generate(right_padded([ids], 0), runtime_ai100=self.qpc_path is not None)[self._output_name]
        hidden, vectors, weights = BGEM3Heads.split(out[0, : len(ids)], self.hidden_size, self.colbert_dim)
        return hidden, vectors, weights

    def encode_queries(self, queries: list[str] | str, batch_size: int = 256, max_length: int = QUERY_MAX_LENGTH, **options) -> dict:
        """FlagEmbedding's: ``encode`` at the query length (512)."""
        return self.encode(queries, batch_size, max_length, **options)

    def encode_corpus(self, corpus: list[str] | str, batch_size: int = 256, max_length: int = PASSAGE_MAX_LENGTH, **options) -> dict:
        """FlagEmbedding's: ``encode`` at the passage length (512)."""
        return self.encode(corpus, batch_size, max_length, **options)

    def compute_score(
        self,
        sentence_pairs: list[tuple[str, str]] | tuple[str, str],
        batch_size: int = 256,
        max_query_length: int = QUERY_MAX_LENGTH,
        max_passage_length: int = PASSAGE_MAX_LENGTH,
        weights_for_different_modes: list[float] | None = None,
    ) -> dict:
        """FlagEmbedding's scores of (query, passage) pairs: {"colbert", "sparse", "dense", "sparse+dense",
        "colbert+sparse+dense"}, each a list (one pair: a number); the combined ones weighted by
        ``weights_for_different_modes`` (dense, sparse, colbert; 1 each by default). The multi-vector score is
        ``colbert_score`` of each pair's vectors (FlagEmbedding's batched one also counts the zero vectors of a batch's
        padding, which lifts a query token's best score to 0 where all its scores are negative)."""
        one_pair = isinstance(sentence_pairs, tuple) or (sentence_pairs and isinstance(sentence_pairs[0], str))
        pairs = [tuple(sentence_pairs)] if one_pair else list(sentence_pairs)
        if not pairs or any(len(p) != 2 for p in pairs):
            raise ValueError("sentence_pairs must be a (query, passage) pair or a non-empty list of them.")
        weights = list(weights_for_different_modes or (1.0, 1.0, 1.0))
        if len(weights) != 3:
            raise ValueError(f"weights_for_different_modes holds the dense, sparse and colbert weights: 3 numbers, got {weights}.")
        everything = {"return_dense": True, "return_sparse": True, "return_colbert_vecs": True}
        queries = self.encode([q for q, _ in pairs], batch_size, max_query_length, **everything)
        passages = self.encode([p for _, p in pairs], batch_size, max_passage_length, **everything)
        scores: dict[str, list[float]] = {"colbert": [], "sparse": [], "dense": [], "sparse+dense": [], "colbert+sparse+dense": []}
        for i in range(len(pairs)):
            dense = float(queries["dense_vecs"][i] @ passages["dense_vecs"][i])
            sparse = float(self.compute_lexical_matching_score(queries["lexical_weights"][i], passages["lexical_weights"][i]))
            colbert = self.colbert_score(queries["colbert_vecs"][i], passages["colbert_vecs"][i])
            scores["dense"].append(dense)
            scores["sparse"].append(sparse)
            scores["colbert"].append(colbert)
            scores["sparse+dense"].append((sparse * weights[1] + dense * weights[0]) / (weights[1] + weights[0]))
            scores["colbert+sparse+dense"].append((colbert * weights[2] + sparse * weights[1] + dense * weights[0]) / sum(weights))
        return {k: v[0] for k, v in scores.items()} if one_pair else scores

    @staticmethod
    def compute_lexical_matching_score(lexical_weights_1, lexical_weights_2):
        """FlagEmbedding's: the sum of the weight products over the token ids two texts share; a [n, m] array for two
        lists."""

        def one(first: dict, second: dict) -> float:
            return sum(weight * second[token] for token, weight in first.items() if token in second)

        if isinstance(lexical_weights_1, dict) and isinstance(lexical_weights_2, dict):
            return one(lexical_weights_1, lexical_weights_2)
        if isinstance(lexical_weights_1, list) and isinstance(lexical_weights_2, list):
            return np.array([[one(a, b) for b in lexical_weights_2] for a in lexical_weights_1])
        raise ValueError("Pass two lexical weight dictionaries, or two lists of them.")

    @staticmethod
    def colbert_score(q_reps: np.ndarray, p_reps: np.ndarray) -> float:
        """FlagEmbedding's multi-vector score: each query vector's best dot product over the passage's, averaged."""
        return maxsim(q_reps, p_reps) / len(q_reps)

    def convert_id_to_token(self, lexical_weights: list[dict] | dict, tokenizer=None) -> list[dict] | dict:
        """Lexical weights keyed by their tokens' text instead of ids (FlagEmbedding's)."""
        tokenizer = tokenizer or self.tokenizer
        items = [lexical_weights] if isinstance(lexical_weights, dict) else lexical_weights
        converted = [{tokenizer.decode([int(i)]): w for i, w in item.items()} for item in items]
        return converted[0] if len(converted) == 1 else converted
