"""QEFFColBERTModel: ColBERT text retrievers (PyLate folders such as lightonai/GTE-ModernColBERT-v1, Stanford ColBERT
checkpoints such as colbert-ir/colbertv2.0, and sentence-transformers 6 MultiVectorEncoder folders): the encoder with its
projection and L2 norm in one graph (transform/colbert.py), one vector per token.

``encode(texts, is_query=...)`` returns what PyLate's ``ColBERT.encode`` does: a query after its marker token, padded
with the mask token to ``query_length`` (query expansion, every position kept); a document after its marker, without
its padding and skiplist (punctuation) tokens; a MultiVectorEncoder's ``encode_query`` and ``encode_document`` as
sentence-transformers 6 gives them (multi_vector_inputs). ``generation.late_interaction.maxsim_scores`` then scores queries against
documents (ColBERT's MaxSim, PyLate's ``colbert_scores``). QEFFAutoModelForRetrieval and QEFFAutoModel load such folders as this class.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from transformers import PreTrainedModel

from QEfficient.export.graph_names import ATTENTION_MASK, INPUT_IDS
from QEfficient.generation.encoder_run import right_padded
from QEfficient.loading.colbert import ColBERTSettings, read_colbert_folder
from QEfficient.models.base import usable_positions
from QEfficient.models.headed_encoder import HeadedEncoder
from QEfficient.transform.colbert import ColBERTProjection
from QEfficient.utils.checks import check_positive


def _token_id(tokenizer, token: str, what: str) -> int:
    found = tokenizer.convert_tokens_to_ids(token)
    if found is None or (found == tokenizer.unk_token_id and token != tokenizer.unk_token):
        raise ValueError(f"The tokenizer has no {what} token {token!r}: save the ColBERT model's own tokenizer with it.")
    return int(found)


def colbert_inputs(tokenizer, texts: list[str], settings: ColBERTSettings, is_query: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids, attention_mask, kept) [texts, width] as PyLate tokenizes queries or documents: the marker token after
    the first (special) token, ``query_length`` / ``document_length`` tokens at most; queries padded with the mask token
    to ``query_length`` (attended where ``attend_to_expansion_tokens``) and kept whole; documents kept at their attended,
    non-skiplist tokens."""
    if settings.multi_vector is not None:
        return multi_vector_inputs(tokenizer, texts, settings, "query" if is_query else "document")
    prefix = settings.query_prefix if is_query else settings.document_prefix
    length = settings.query_length if is_query else settings.document_length
    prefix_id = _token_id(tokenizer, prefix, "query marker" if is_query else "document marker") if prefix else None
    texts = [text.strip().lower() if settings.do_lower_case else text.strip() for text in texts]  # sentence-transformers' Transformer
    rows = tokenizer(texts, truncation=True, max_length=length - (prefix_id is not None))[INPUT_IDS]
    if prefix_id is not None:
        rows = [row[:1] + [prefix_id] + row[1:] for row in rows]
    expand = is_query and settings.do_query_expansion
    width = length if expand else max(len(row) for row in rows)
    if expand:  # PyLate's padding token: the mask token, else the end-of-text one, else the padding one
        pad = next((t for t in (tokenizer.mask_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None), None)
        if pad is None:
            raise ValueError("Query expansion pads with the tokenizer's mask, end-of-text or padding token: it has none of them.")
    else:
        pad = tokenizer.pad_token_id or 0
    batch = right_padded(rows, pad, width)
    ids, mask = batch[INPUT_IDS], batch[ATTENTION_MASK]
    if expand:
        kept = np.ones_like(mask, dtype=bool)
        if settings.attend_to_expansion_tokens:
            mask[:] = 1
    elif is_query:
        kept = mask.astype(bool)
    else:  # PyLate's skiplist: each word's token id, as convert_tokens_to_ids gives it
        skip = [tokenizer.convert_tokens_to_ids(word) for word in settings.skiplist_words]
        kept = mask.astype(bool) & ~np.isin(ids, [s for s in skip if s is not None])
    return ids, mask, kept


def multi_vector_inputs(
    tokenizer, texts: list[str], settings: ColBERTSettings, task: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids, attention_mask, kept) [texts, width] as sentence-transformers 6's MultiVectorEncoder makes them for
    ``task`` ("query", "document", or None: a document without its prompt and length): the task's prompt before each
    text, truncated at the task's length; a query's expansion positions (the padding within the expansion length) set
    to the expansion token (its own, else the mask token, else the end-of-text one), attended where it says, and kept;
    the skiplist's tokens dropped for the tasks it names; a document's tokens outside keep_only_token_ids dropped."""
    tokenization = settings.multi_vector
    prompt = {"query": tokenization.query_prompt, "document": tokenization.document_prompt}.get(task, "")
    texts = [(prompt + text).lower() if settings.do_lower_case else prompt + text for text in texts]
    # the task's length, else the tokenizer's within the positions (loading/colbert.py resolved it: what compile() covers)
    length = settings.query_length if task == "query" else settings.document_length
    given = tokenization.query_length if task == "query" else tokenization.document_length
    expansion = tokenization.expansion if task == "query" else None
    padding = True
    if expansion is not None and expansion["strategy"] == "fixed":  # every query exactly the expansion's length
        length, padding = expansion["length"], "max_length"
    elif expansion is not None and given is not None:
        length = max(given, expansion["length"])
    enc = tokenizer(texts, padding=padding, truncation=True, max_length=length, return_tensors="np")
    ids, mask = enc[INPUT_IDS].astype(np.int64), enc[ATTENTION_MASK].astype(np.int64)
    kept = mask.astype(bool)
    if expansion is not None:
        floor = expansion["length"]
        if ids.shape[1] < floor:  # "min": at least the expansion's length
            ids, mask = (np.pad(a, ((0, 0), (0, floor - a.shape[1]))) for a in (ids, mask))
        positions = (mask == 0) & (np.arange(ids.shape[1]) < floor)
        token = expansion.get("token")
        fill = tokenizer.convert_tokens_to_ids(token) if token is not None else tokenizer.mask_token_id
        if token is not None and (fill is None or (fill == tokenizer.unk_token_id and token != tokenizer.unk_token)):
            raise ValueError(f"The query expansion's token {token!r} is not a token of this tokenizer.")
        fill = tokenizer.eos_token_id if fill is None else fill
        if fill is not None:
            ids[positions] = fill
        if expansion.get("attend"):
            mask[positions] = 1
        kept = mask.astype(bool) | positions
    if (task or "document") in tokenization.skiplist_tasks and settings.skiplist_words:
        skip = [tokenizer.convert_tokens_to_ids(word) for word in settings.skiplist_words]
        unknown = tokenizer.unk_token_id
        skip = [i for i, word in zip(skip, settings.skiplist_words) if i is not None and (i != unknown or word == tokenizer.unk_token)]
        kept &= ~np.isin(ids, skip)
    if task != "query" and tokenization.keep_only_token_ids:
        kept &= np.isin(ids, tokenization.keep_only_token_ids)
    return ids, mask, kept


class QEFFColBERTModel(HeadedEncoder):
    """A ColBERT text retriever (module docstring).

    >>> model = QEFFColBERTModel.from_pretrained("path/to/GTE-ModernColBERT-v1")
    >>> model.compile(num_cores=16)
    >>> queries = model.encode(["What is late interaction?"], is_query=True)
    >>> documents = model.encode(["ColBERT scores each query token against every document token."], is_query=False)
    >>> from QEfficient.generation.late_interaction import maxsim_scores
    >>> maxsim_scores(queries, documents)
    """

    own_heads = "ColBERT"
    _no_pooling = "A ColBERT model gives one vector per token (late interaction): load it without pooling."
    _read_folder = staticmethod(read_colbert_folder)

    def __init__(self, model: PreTrainedModel, settings: ColBERTSettings, **kwargs) -> None:
        hidden = int(model.config.hidden_size)
        if settings.layers[0].weight.shape[1] != hidden:
            raise ValueError(
                f"The ColBERT projection reads {settings.layers[0].weight.shape[1]} features, but the encoder's hidden size is {hidden}."
            )
        self.settings = settings
        super().__init__(model, ColBERTProjection(settings.layers), **kwargs)

    @property
    def reads_padding(self) -> bool:
        """True: a query's expansion tokens are unattended columns whose vectors count, so every column runs."""
        return True

    def compile(
        self, onnx_path: str | os.PathLike | None = None, compile_dir: str | os.PathLike | None = None, *, seq_len=None, **kwargs
    ) -> Path:
        """As QEFFAutoModel's; ``seq_len`` (the longest input: every batch runs at its own width, since a query's
        expansion tokens are unattended columns that count) defaults to the longer of the query and document lengths,
        within the encoder's positions."""
        if seq_len is None:
            seq_len = max(self.settings.query_length, self.settings.document_length)
            seq_len = min(seq_len, usable_positions(self.config) or seq_len)
        return super().compile(onnx_path, compile_dir, seq_len=seq_len, **kwargs)

    def encode_query(self, sentences: list[str] | str, tokenizer=None, **options) -> list[np.ndarray] | np.ndarray:
        """``encode`` of queries (sentence-transformers' name: is_query=True)."""
        return self.encode(sentences, is_query=True, tokenizer=tokenizer, **options)

    def encode_document(self, sentences: list[str] | str, tokenizer=None, **options) -> list[np.ndarray] | np.ndarray:
        """``encode`` of documents (sentence-transformers' name: is_query=False)."""
        return self.encode(sentences, is_query=False, tokenizer=tokenizer, **options)

    def encode(
        self, sentences: list[str] | str, *, is_query: bool = True, batch_size: int = 32, tokenizer=None
    ) -> list[np.ndarray] | np.ndarray:
        """Each text's L2-normalized token vectors [tokens, dim], as PyLate's ``encode(sentences, is_query=...)`` gives
        them, or a sentence-transformers MultiVectorEncoder's ``encode_query`` / ``encode_document`` (module docstring);
        one array for one string."""
        texts, single = self._texts(sentences)
        check_positive(batch_size=batch_size)
        tokenizer = tokenizer or self.tokenizer
        out = []
        for start in range(0, len(texts), batch_size):
            ids, mask, kept = colbert_inputs(tokenizer, list(texts[start : start + batch_size]), self.settings, is_query)
            rows = self.generate({INPUT_IDS: ids, ATTENTION_MASK: mask}, runtime_ai100=self.qpc_path is not None)[self._output_name]
            out += [row[keep] for row, keep in zip(rows, kept, strict=True)]
        cut = self.settings.multi_vector.truncate_dim if self.settings.multi_vector is not None else None
        if cut:  # a Matryoshka MultiVectorEncoder's saved width: each vector's first dimensions, normalized again
            out = [row[:, :cut] / np.clip(np.linalg.norm(row[:, :cut], axis=-1, keepdims=True), 1e-12, None) for row in out]
        return out[0] if single else out
