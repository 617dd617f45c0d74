"""QEFFColBERTModel.encode against PyLate's ColBERT.encode on the tiny folders of tests/test_colbert.py: both layouts
(Stanford's HF_ColBERT, PyLate's over ModernBERT and LFM2), with and without query expansion, with attention on the
expansion tokens; prints each case's shapes and largest difference.

PyLate is not a dependency (1.6 pins sentence-transformers 5.3 and transformers <= 5.3): its pure-Python packages go
into a folder of their own, on top of the project's venv, without their dependencies' versions:

    .venv/bin/pip install -q --target /tmp/pylate --no-deps pylate==1.6.0 sentence-transformers==5.3.0 scikit-learn \
        scipy joblib threadpoolctl cloudpickle narwhals datasets multiprocess dill xxhash ujson
    PYTHONPATH=/tmp/pylate:. .venv/bin/python benchmarks/colbert_vs_pylate.py /tmp/colbert-folders
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np


def main(root: Path) -> None:
    from pylate.models import ColBERT

    from QEfficient import QEFFColBERTModel
    from tests.test_colbert import DOCUMENTS, QUERIES, tiny_pylate_colbert, tiny_stanford_colbert

    cases = {
        "stanford": tiny_stanford_colbert,
        "pylate": tiny_pylate_colbert,
        "pylate-lfm2": functools.partial(tiny_pylate_colbert, backbone="lfm2"),
        "pylate-attend": functools.partial(tiny_pylate_colbert, attend_to_expansion_tokens=True),
        "pylate-no-expansion": functools.partial(tiny_pylate_colbert, do_query_expansion=False),
    }
    for name, build in cases.items():
        folder = build(root / name)
        ours = QEFFColBERTModel.from_pretrained(folder)
        ours.compile(num_cores=1)
        theirs = ColBERT(model_name_or_path=str(folder), device="cpu")
        for is_query, texts in ((True, [*QUERIES, DOCUMENTS[0]]), (False, DOCUMENTS)):
            a, b = ours.encode(texts, is_query=is_query), theirs.encode(texts, is_query=is_query)
            same = all(x.shape == y.shape for x, y in zip(a, b, strict=True))
            diff = max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True)) if same else float("inf")
            shapes = [x.shape[0] for x in a]
            print(f"{name:20s} {'queries' if is_query else 'documents':9s} tokens {shapes} same shapes {same} max |diff| {diff:.2e}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/colbert-folders"))
