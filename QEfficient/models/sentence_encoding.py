"""sentence-transformers' ``encode()`` over any embedding function: the prompt, the folder's tokenization
(sentence_inputs.py), batches of texts of like length, the folder's Normalize module, the Matryoshka cut and
``normalize_embeddings``. QEFFAutoModel.encode runs it on the model's session,
serving's CompiledEncoder on an artifact alone (no torch, no model folder: what a Ray embedding actor runs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from QEfficient.models.sentence_inputs import SentenceInputs
from QEfficient.models.sentence_transformers import (
    l2_normalized,
    sentence_transformers_normalizes,
    sentence_transformers_pools_prompt,
    sentence_transformers_prompt,
    sentence_transformers_truncate_dim,
)
from QEfficient.utils.checks import check_flags, check_positive, check_strings

# (inputs, prompt_length) -> pooled vectors [B, D], not normalized
EmbedFn = Callable[[dict[str, np.ndarray], int], np.ndarray]


def encode_sentences(
    folder: Path | None,
    read_inputs: Callable[[], SentenceInputs],
    embed: EmbedFn,
    sentences: list[str] | str,
    graph_pools: bool,
    normalize: bool | None = None,
    batch_size: int = 32,
    prompt_name: str | None = None,
    prompt: str | None = None,
    truncate_dim: int | None = None,
    task: str | None = None,
) -> np.ndarray:
    """QEFFAutoModel.encode's embeddings of ``sentences`` (its docstring says how), with ``folder``'s sentence-transformers
    settings, ``read_inputs`` giving its tokenization (read once the arguments are checked) and ``embed`` the graph with
    the folder's pooling and Dense modules; ``graph_pools``: the graph gives one vector per input, so it cannot leave a
    prompt's tokens out."""
    one_text = isinstance(sentences, str)  # one vector [D], as sentence-transformers answers a string
    if one_text:
        sentences = [sentences]
    if not isinstance(sentences, (list, tuple)) or not sentences:
        raise ValueError(f"sentences must be a string or a non-empty list of strings, got {sentences!r:.60}.")
    check_strings("Sentence", sentences)
    check_positive(batch_size=batch_size)
    if normalize is not None:
        check_flags(normalize=normalize)  # (a string such as "no" would read as True)
    for name, value in (("prompt_name", prompt_name), ("prompt", prompt), ("task", task)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string (or None), got {value!r:.60}.")
    truncate_dim = sentence_transformers_truncate_dim(folder) if truncate_dim is None else truncate_dim
    if truncate_dim is not None:
        check_positive(truncate_dim=int(truncate_dim) if isinstance(truncate_dim, np.integer) else truncate_dim)
    prefix = sentence_transformers_prompt(folder, prompt_name, prompt)
    inputs = read_inputs()
    prompt_length = inputs.prompt_length(prefix) if not sentence_transformers_pools_prompt(folder) else 0
    if prompt_length and graph_pools:
        raise ValueError(
            "This model pools without its prompt's tokens (include_prompt false), and this graph gives one vector per input "
            "(pooled inside with pooling=, or a model whose output is its embedding), the prompt's tokens in: load the model "
            "without pooling= (and compile it again) so that the folder's pooling runs after the graph."
        )
    # longest first, as sentence-transformers batches them: a model that reads its padding (FNet) gives its vectors
    order = np.argsort([-len(sentence) for sentence in sentences])
    chunks = [
        embed(inputs([sentences[i] for i in order[start : start + batch_size]], prefix, task), prompt_length)
        for start in range(0, len(sentences), batch_size)
    ]
    emb = np.concatenate(chunks)[np.argsort(order)]
    module_normalizes = sentence_transformers_normalizes(folder)
    if module_normalizes:  # the folder's Normalize module runs whatever normalize says, before the cut
        emb = l2_normalized(emb)
    emb = emb[:, :truncate_dim]  # (None keeps every dimension; a larger one too, as sentence-transformers)
    if normalize is None:  # outside a sentence-transformers folder: normalized, as the embeddings server
        normalize = module_normalizes is None
    emb = l2_normalized(emb) if normalize else emb
    return emb[0] if one_text else emb
