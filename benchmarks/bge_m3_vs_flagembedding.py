"""QEFFBGEM3Model.encode against FlagEmbedding's BGEM3FlagModel.encode on the tiny BGE-M3 folder of tests/test_bge_m3.py:
dense vectors, lexical weights and multi-vector vectors, and the two scores; prints the largest differences.

FlagEmbedding is not a dependency: its pure-Python packages go into a folder of their own, on top of the project's venv
(with PyLate's, benchmarks/colbert_vs_pylate.py, which brings sentence-transformers and datasets):

    .venv/bin/pip install -q --target /tmp/pylate --no-deps flagembedding==1.4.2 ir-datasets
    PYTHONPATH=/tmp/pylate:. .venv/bin/python benchmarks/bge_m3_vs_flagembedding.py /tmp/bge-m3-folder
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np


def _without_llm_rerankers() -> None:
    """FlagEmbedding 1.4.2 imports its decoder rerankers at import, and they import transformers 4's attention-mask
    helpers, which transformers 5 removed: they are left out (this script runs its encoder-only M3 model)."""
    stub = types.ModuleType("FlagEmbedding.inference.reranker.decoder_only")
    stub.FlagLLMReranker = stub.LayerWiseFlagLLMReranker = stub.LightWeightFlagLLMReranker = None
    sys.modules[stub.__name__] = stub


def main(folder: Path) -> None:
    _without_llm_rerankers()
    from FlagEmbedding import BGEM3FlagModel

    from QEfficient import QEFFBGEM3Model
    from tests.test_bge_m3 import COLBERT_DIM, TEXTS, tiny_bge_m3

    if not folder.is_dir():
        folder.mkdir(parents=True)
        tiny_bge_m3(folder)
    ours = QEFFBGEM3Model.from_pretrained(folder)
    ours.compile(num_cores=1)
    theirs = BGEM3FlagModel(str(folder), use_fp16=False, devices="cpu", colbert_dim=COLBERT_DIM)
    options = {"return_dense": True, "return_sparse": True, "return_colbert_vecs": True}
    a, b = ours.encode(TEXTS, batch_size=2, **options), theirs.encode(TEXTS, batch_size=2, **options)
    print("dense max |diff|", f"{np.abs(a['dense_vecs'] - b['dense_vecs']).max():.2e}")
    same_ids = all(x.keys() == y.keys() for x, y in zip(a["lexical_weights"], b["lexical_weights"], strict=True))
    pairs = zip(a["lexical_weights"], b["lexical_weights"], strict=True)
    lexical = max(abs(float(x[k]) - float(y[k])) for x, y in pairs for k in x.keys() & y.keys())
    print("lexical weights: same token ids", same_ids, f"max |diff| {lexical:.2e}")
    shapes = all(x.shape == y.shape for x, y in zip(a["colbert_vecs"], b["colbert_vecs"], strict=True))
    multi = max(float(np.abs(x - y).max()) for x, y in zip(a["colbert_vecs"], b["colbert_vecs"], strict=True))
    print("multi-vector: same shapes", shapes, f"max |diff| {multi:.2e}")
    scores = [
        (
            ours.colbert_score(a["colbert_vecs"][0], a["colbert_vecs"][2]),
            float(theirs.colbert_score(b["colbert_vecs"][0], b["colbert_vecs"][2])),
        ),
        (
            ours.compute_lexical_matching_score(a["lexical_weights"][0], a["lexical_weights"][2]),
            float(theirs.compute_lexical_matching_score(b["lexical_weights"][0], b["lexical_weights"][2])),
        ),
    ]
    print("colbert score, lexical score (ours, FlagEmbedding):", scores)
    pairs = [(TEXTS[0], TEXTS[2]), (TEXTS[1], TEXTS[0])]
    ours_pairs, theirs_pairs = ours.compute_score(pairs), theirs.compute_score(pairs)
    print(
        "compute_score max |diff| per mode:",
        {k: max(abs(x - y) for x, y in zip(ours_pairs[k], theirs_pairs[k], strict=True)) for k in ours_pairs},
    )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/bge-m3-folder"))
