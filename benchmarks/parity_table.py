"""Parity of every supported architecture against Hugging Face transformers, as a table.

    .venv/bin/python benchmarks/parity_table.py

For each architecture: a tiny random-weight model (the test suite's), the largest logit difference
of the rewritten PyTorch module and of the ONNX Runtime graph against HF on a 21-token prompt
(prefill in chunks of 8, then one decode step), and whether 24 greedy tokens of generate() equal
HF's generate(do_sample=False) for three prompts.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QEFF_HOME", tempfile.mkdtemp(prefix="qeff-parity-"))


def main() -> None:
    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from QEfficient import QEFFAutoModelForCausalLM
    from QEfficient.generation.exec_kv import open_session
    from tests.helpers import hf_greedy
    from tests.test_parity import PROMPTS, run_static
    from tests.tiny_models import TINY_CONFIGS, build_tokenizer, save_tiny_model

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp())
    build_tokenizer().save_pretrained(work / "tok")
    print(f"{'architecture':12s} {'PyTorch vs HF':>14s} {'ORT vs HF':>10s} {'greedy tokens = HF':>19s}")
    for arch in sorted(TINY_CONFIGS):
        folder = save_tiny_model(arch, work / arch, work / "tok")
        hf = AutoModelForCausalLM.from_pretrained(folder).eval()
        tok = AutoTokenizer.from_pretrained(folder)
        ids = torch.randint(3, 300, (1, 21), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            ref = hf(ids).logits[0, -1]
            qeff = QEFFAutoModelForCausalLM.from_pretrained(folder)
            ours, _ = run_static(qeff.model, ids, chunk=8, ctx_len=32)
        torch_diff = float((ours[0, 0] - ref).abs().max())
        qpc = qeff.compile(prefill_seq_len=8, ctx_len=32, num_cores=2)
        session = open_session(qpc, 2)
        for start in range(0, 21, 8):
            piece = ids[0, start : start + 8].numpy()
            inp = np.zeros((1, 8), np.int64)
            pos = np.full((1, 8), -1, np.int64)
            inp[0, : len(piece)] = piece
            pos[0, : len(piece)] = np.arange(start, start + len(piece))
            logits = session.run(inp, pos)
        ort_diff = float(np.abs(logits[0] - ref.numpy()).max())
        model = QEFFAutoModelForCausalLM.from_pretrained(folder)
        model.compile(prefill_seq_len=8, ctx_len=96, batch_size=2, num_cores=2)
        with contextlib.redirect_stdout(io.StringIO()):  # generate() prints its perf stats
            info = model.generate(tok, PROMPTS, generation_len=24, stream=False)
        rows = [r for b in info.generated_ids for r in b]
        equal = sum(r[: len(h)].tolist() == h for r, h in zip(rows, (hf_greedy(hf, tok, p, 24) for p in PROMPTS)))
        print(f"{arch:12s} {torch_diff:14.1e} {ort_diff:10.1e} {equal:>15d}/{len(PROMPTS)}", flush=True)


if __name__ == "__main__":
    main()
