"""QEFFSparseEncoder against sentence-transformers' SparseEncoder on the tiny SPLADE folders of
tests/test_sparse_encoder.py (max and sum pooling, relu and log1p_relu): encode, encode_query (its prompt),
max_active_dims and decode; and on its inference-free folder (a Router: a SparseStaticEmbedding for queries,
SPLADE for documents): encode_query, encode_document, encode; and on a bare masked LM's checkpoint (SparseEncoder's
defaults); prints the largest differences.

sentence-transformers is not a dependency: its pure-Python package goes into a folder of its own, on top of the
project's venv (as benchmarks/colbert_vs_pylate.py installs it, with PyLate):

    .venv/bin/pip install -q --target /tmp/pylate --no-deps sentence-transformers==5.3.0 scikit-learn scipy joblib \
        threadpoolctl cloudpickle narwhals
    PYTHONPATH=/tmp/pylate:. .venv/bin/python benchmarks/splade_vs_sentence_transformers.py /tmp/splade-folders
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np


def main(root: Path) -> None:
    from sentence_transformers import SparseEncoder

    from QEfficient import QEFFSparseEncoder
    from tests.test_sparse_encoder import TEXTS, tiny_inference_free, tiny_splade

    for strategy, activation in (("max", "relu"), ("sum", "relu"), ("max", "log1p_relu")):
        folder = tiny_splade(root / f"{strategy}-{activation}", strategy, activation)
        ours = QEFFSparseEncoder.from_pretrained(folder)
        ours.compile(num_cores=1)
        theirs = SparseEncoder(str(folder), device="cpu")
        a = ours.encode(TEXTS, convert_to_sparse_tensor=False)
        b = theirs.encode(TEXTS, convert_to_sparse_tensor=False, convert_to_tensor=True).numpy()
        q = ours.encode_query(TEXTS[:1], convert_to_sparse_tensor=False)
        r = theirs.encode_query(TEXTS[:1], convert_to_sparse_tensor=False, convert_to_tensor=True).numpy()
        k = ours.encode(TEXTS, max_active_dims=4, convert_to_sparse_tensor=False)
        m = theirs.encode(TEXTS, max_active_dims=4, convert_to_sparse_tensor=False, convert_to_tensor=True).numpy()
        same_tokens = [t for t, _ in ours.decode(a[0], top_k=5)] == [t for t, _ in theirs.decode(theirs.encode(TEXTS[0]), top_k=5)]
        print(
            f"{strategy}/{activation}: encode {np.abs(a - b).max():.2e}, encode_query {np.abs(q - r).max():.2e}, "
            f"max_active_dims=4 {np.abs(k - m).max():.2e}, decode's top 5 tokens the same: {same_tokens}"
        )
    bare = tiny_splade(root / "bare")  # a masked LM's checkpoint alone: SparseEncoder's defaults
    for name in ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json"):
        (bare / name).unlink()
    shutil.rmtree(bare / "1_SpladePooling")
    ours = QEFFSparseEncoder.from_pretrained(bare)
    ours.compile(num_cores=1)
    a = ours.encode(TEXTS, convert_to_sparse_tensor=False).numpy()
    b = SparseEncoder(str(bare), device="cpu").encode(TEXTS, convert_to_sparse_tensor=False, convert_to_tensor=True).numpy()
    print(f"bare masked LM: encode {np.abs(a - b).max():.2e}")
    folder, _ = tiny_inference_free(root / "inference-free")
    ours = QEFFSparseEncoder.from_pretrained(folder)
    ours.compile(num_cores=1)
    theirs = SparseEncoder(str(folder), device="cpu")
    texts = [*TEXTS, "  Padded  text, CASED "]
    dense = {"convert_to_sparse_tensor": False}
    for name in ("encode_query", "encode_document", "encode"):
        a = getattr(ours, name)(texts, **dense).numpy()
        b = getattr(theirs, name)(texts, convert_to_tensor=True, **dense).numpy()
        print(f"inference-free {name}: {np.abs(a - b).max():.2e} (nonzero {np.count_nonzero(a)} / {np.count_nonzero(b)})")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/splade-folders"))
