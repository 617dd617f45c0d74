"""Smoke test of an installed wheel, run by .ci/run from a folder outside the source tree, in a clean
venv that holds the core install only (no extras): QEfficient must import from that venv, print its
version, export + compile + generate a tiny model token-for-token equal to transformers, and name the
extra to install when a feature needs one. tiny_models.py and helpers.py are copied in from tests/.

usage: python smoke_installed.py VENV_DIR EXPECTED_VERSION
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

venv, expected_version = Path(sys.argv[1]).resolve(), sys.argv[2]
os.environ["QEFF_HOME"] = tempfile.mkdtemp(prefix="qeff-smoke-home-")
os.environ["HF_HUB_OFFLINE"] = "1"

import QEfficient  # noqa: E402

where = Path(QEfficient.__file__).resolve()
assert venv in where.parents, f"QEfficient was imported from {where}, not from the installed wheel in {venv}"
assert QEfficient.__version__ == expected_version, (QEfficient.__version__, expected_version)
out = subprocess.run([sys.executable, "-m", "QEfficient", "--version"], capture_output=True, text=True, check=True).stdout
assert out.startswith(f"QEfficient {expected_version} "), out
print("version:", out.strip())

# The core install is light: no extra's package came with it.
for module in ("fastapi", "uvicorn", "gguf", "PIL", "onnxscript", "matplotlib", "accelerate"):
    assert importlib.util.find_spec(module) is None, f"{module} is installed by the core install"

# A tiny random model: export, compile, generate, and compare with transformers' greedy generation.
from helpers import hf_greedy, real_tokens  # noqa: E402
from tiny_models import build_tokenizer, save_tiny_model  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from QEfficient import QEFFAutoModelForCausalLM  # noqa: E402

tmp = Path(tempfile.mkdtemp(prefix="qeff-smoke-"))
tokenizer = build_tokenizer()
tokenizer.save_pretrained(tmp / "tokenizer")
folder = save_tiny_model("llama", tmp / "llama", tmp / "tokenizer")
model = QEFFAutoModelForCausalLM.from_pretrained(folder)
model.compile(prefill_seq_len=8, ctx_len=64, num_cores=2)
prompt = "My name is Ada and"
info = model.generate(tokenizer, [prompt], generation_len=12, stream=False)
ref = hf_greedy(AutoModelForCausalLM.from_pretrained(folder).eval(), tokenizer, prompt, 12)
assert real_tokens(info.generated_ids[0][0], tokenizer.pad_token_id, len(ref)) == ref
print(f"export + compile + generate: {len(ref)} tokens equal to transformers")

# Features outside the core name their extra.
(tmp / "model.gguf").write_bytes(b"")
try:
    QEFFAutoModelForCausalLM.from_pretrained(tmp, gguf_file="model.gguf")
except ModuleNotFoundError as err:
    assert 'pip install "QEfficient[gguf]"' in str(err), err
else:
    raise AssertionError("a GGUF checkpoint loaded without the gguf package")
serve = subprocess.run([sys.executable, "-m", "QEfficient.cloud.serve"], capture_output=True, text=True)
assert serve.returncode == 2 and 'pip install "QEfficient[serve]"' in serve.stderr, (serve.returncode, serve.stderr[-2000:])
print("missing extras:", serve.stderr.strip().splitlines()[-1])
print("smoke test passed")
