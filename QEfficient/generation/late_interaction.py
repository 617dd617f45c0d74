"""ColBERT's late interaction (MaxSim) over per-token embeddings, on the host in numpy: what PyLate's ``colbert_scores``,
transformers' ``score_retrieval`` and vLLM's late-interaction /score compute."""

from __future__ import annotations

import numpy as np


def maxsim(query: np.ndarray, document: np.ndarray) -> float:
    """Each query token's best dot product over the document's tokens, summed (both [tokens, dim])."""
    return float((np.asarray(query, np.float32) @ np.asarray(document, np.float32).T).max(axis=1).sum())


def maxsim_scores(queries: list[np.ndarray], documents: list[np.ndarray]) -> np.ndarray:
    """[queries, documents] MaxSim scores."""
    return np.array([[maxsim(q, d) for d in documents] for q in queries], np.float32)


colbert_scores = maxsim_scores  # PyLate's name for it (pylate.scores.colbert_scores)
