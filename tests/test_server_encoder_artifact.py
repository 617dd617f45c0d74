"""`serve --qpc_path` on an encoder's artifact: the embeddings or scores server starts from what compile() kept in
the artifact (tokenizer, config, sentence-transformers modules), in a process that imports neither torch nor
transformers' modeling code, and answers exactly as the server started from the model's folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoModel, AutoTokenizer

from QEfficient.cloud.serve import build_from_args
from QEfficient.cloud.serve_args import parse_args
from tests.test_decoder_embeddings import sentence_transformers_folder
from tests.test_encoder import minilm_folder
from tests.test_server_scores import DOCS, QUERY, classifier, decoder_classifier, qwen3_reranker
from tests.tiny_models import build_tokenizer, tiny_config

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["The cat sits on the mat.", "A quick brown fox jumps over the lazy dog near the river bank.", "Hello"]

# the server on the artifact, in a process of its own: the answers, and which heavy modules it imported
_ON_ARTIFACT = """
import json, sys
from fastapi.testclient import TestClient
from QEfficient.cloud.serve import build_from_args
from QEfficient.cloud.serve_args import parse_args
app, runner = build_from_args(parse_args(["--qpc_path", sys.argv[1], "--num_cores", "1", *json.loads(sys.argv[3])]))
client = TestClient(app)
out = {route: client.post(route, json=body).json() for route, body in json.loads(sys.argv[2]).items()}
out["imported"] = [m for m in ("torch", "transformers.modeling_utils") if m in sys.modules]
print(json.dumps(out))
"""


def answers_both_ways(
    model_dir: str, requests: dict, qeff_home: Path, *options: str, artifact_options: tuple[str, ...] = (), ctx_len: int = 64
) -> tuple[dict, dict]:
    """The same requests to the server started from the folder with ``options`` (this process) and from its artifact
    with ``artifact_options`` (another)."""
    app, runner = build_from_args(parse_args(["--model_name", model_dir, "--ctx_len", str(ctx_len), "--num_cores", "1", *options]))
    try:
        client = TestClient(app)
        from_folder = {route: client.post(route, json=body).json() for route, body in requests.items()}
    finally:
        runner.stop()
    env = {**os.environ, "QEFF_HOME": str(qeff_home), "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", _ON_ARTIFACT, str(app.state.qpc_path), json.dumps(requests), json.dumps(list(artifact_options))],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return from_folder, json.loads(run.stdout.strip().splitlines()[-1])


def vectors(answer: dict) -> np.ndarray:
    return np.array([d["embedding"] for d in answer["data"]], np.float32)


def test_minilm_embeddings_from_its_artifact(qeff_home):
    folder, artifact = answers_both_ways(str(minilm_folder()), {"/v1/embeddings": {"input": TEXTS}}, qeff_home)
    assert artifact.pop("imported") == []
    np.testing.assert_array_equal(vectors(artifact["/v1/embeddings"]), vectors(folder["/v1/embeddings"]))
    assert artifact["/v1/embeddings"]["usage"] == folder["/v1/embeddings"]["usage"]


def test_pooler_config_defaults_on_an_artifact(tmp_path):
    """vLLM's --pooler_config pooling_type and use_activation apply to a server on an encoder's artifact too (a
    replica's, with --ray); a classifier's artifact refuses them."""
    artifacts = {}
    for name, folder in (("embed", str(minilm_folder())), ("score", classifier(tmp_path / "ce", "bert", 1))):
        app, runner = build_from_args(parse_args(["--model_name", folder, "--ctx_len", "64", "--num_cores", "1"]))
        runner.stop()
        artifacts[name] = str(app.state.qpc_path)
    pooler = ["--num_cores", "1", "--pooler_config", '{"use_activation": false, "pooling_type": "CLS"}']
    app, runner = build_from_args(parse_args(["--qpc_path", artifacts["embed"], *pooler]))
    try:
        raw = vectors(TestClient(app).post("/v1/embeddings", json={"input": TEXTS}).json())
    finally:
        runner.stop()
    tok, hf = AutoTokenizer.from_pretrained(minilm_folder()), AutoModel.from_pretrained(minilm_folder()).eval()
    with torch.no_grad():
        cls = torch.stack([hf(**tok(t, return_tensors="pt")).last_hidden_state[0, 0] for t in TEXTS]).numpy()
    np.testing.assert_allclose(raw, cls, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="is a classifier's artifact: --pooler_config's pooling_type, use_activation set embeddings"):
        build_from_args(parse_args(["--qpc_path", artifacts["score"], *pooler]))


def test_a_decoder_embedding_model_with_dense_modules_from_its_artifact(tmp_path, qeff_home):
    """Last-token pooling and two Dense modules (one in bfloat16) read back from the artifact's copy; as a Matryoshka model
    (--hf_overrides, kept in the artifact's config), the vectors' first dimensions."""
    base = tmp_path / "qwen3"
    torch.manual_seed(3)
    AutoModel.from_config(tiny_config("qwen3")).save_pretrained(base)
    build_tokenizer().save_pretrained(base)
    st = sentence_transformers_folder(base, tmp_path / "st", "pooling_mode_lasttoken")
    # (the route twice: a query string, which it does not read, tells the two requests apart)
    requests = {"/v1/embeddings": {"input": TEXTS}, "/v1/embeddings?short": {"input": TEXTS, "dimensions": 8}}
    overrides = ("--hf_overrides", '{"matryoshka_dimensions": [8]}')
    folder, artifact = answers_both_ways(str(st), requests, qeff_home, *overrides, ctx_len=48)  # the folder's max_seq_length
    assert artifact.pop("imported") == []
    assert vectors(artifact["/v1/embeddings"]).shape == (3, 24) and vectors(artifact["/v1/embeddings?short"]).shape == (3, 8)
    for route in requests:
        np.testing.assert_array_equal(vectors(artifact[route]), vectors(folder[route]))
    first = vectors(folder["/v1/embeddings"])[:, :8]  # the full vectors' first 8, normalized again
    np.testing.assert_allclose(vectors(folder["/v1/embeddings?short"]), first / np.linalg.norm(first, axis=1, keepdims=True), atol=1e-6)


def test_a_cross_encoder_scores_from_its_artifact(tmp_path, qeff_home):
    """BERT pairs (token types from the run-time tokenizer), /score, /rerank and /classify."""
    model_dir = classifier(tmp_path / "ce", "bert", 1)
    requests = {
        "/score": {"text_1": QUERY, "text_2": DOCS},
        "/rerank": {"query": QUERY, "documents": DOCS, "top_n": 2},
        "/classify": {"input": DOCS},
        "/tokenize": {"prompt": QUERY},
    }
    folder, artifact = answers_both_ways(model_dir, requests, qeff_home)
    assert artifact.pop("imported") == []
    for route in ("/score", "/classify"):
        values = [[d.get("score", d.get("probs")) for d in answer[route]["data"]] for answer in (artifact, folder)]
        assert values[0] == values[1], route
    assert artifact["/rerank"]["results"] == folder["/rerank"]["results"]
    assert artifact["/tokenize"]["tokens"] == AutoTokenizer.from_pretrained(model_dir)(QUERY)["input_ids"]


def test_a_decoder_reranker_scores_from_its_artifact(tmp_path, qeff_home):
    """A Qwen2 sequence classifier whose padding token is not id 0: its head reads each pair's last real token."""
    model_dir = decoder_classifier(tmp_path / "qwen2", "qwen2", 1, pad_token="</s>")
    requests = {"/score": {"text_1": QUERY, "text_2": DOCS}, "/rerank": {"query": QUERY, "documents": DOCS}}
    folder, artifact = answers_both_ways(model_dir, requests, qeff_home)
    assert artifact.pop("imported") == []
    assert artifact["/score"]["data"] == folder["/score"]["data"]
    assert artifact["/rerank"]["results"] == folder["/rerank"]["results"]


def test_a_causal_lm_made_a_reranker_scores_from_its_artifact(tmp_path, qeff_home):
    """Qwen3-Reranker's hf_overrides: the artifact keeps the converted head and that pairs are joined (use_pad_token)."""
    model_dir, tokens = qwen3_reranker(tmp_path / "lm")
    overrides = {"classifier_from_token": tokens, "is_original_qwen3_reranker": True}
    requests = {"/score": {"text_1": "My na", "text_2": ["me is Ada", "me is Bob"]}}  # joined: "name" is one token
    folder, artifact = answers_both_ways(model_dir, requests, qeff_home, "--hf_overrides", json.dumps(overrides))
    assert artifact.pop("imported") == []
    assert artifact["/score"]["data"] == folder["/score"]["data"]
    assert artifact["/score"]["usage"] == folder["/score"]["usage"]
    # the pairs tokenized apart: another artifact (the same weights, another serving config)
    apart = json.dumps({**overrides, "use_pad_token": True})
    paired, paired_artifact = answers_both_ways(model_dir, requests, qeff_home, "--hf_overrides", apart)
    assert paired["/score"]["usage"]["prompt_tokens"] == folder["/score"]["usage"]["prompt_tokens"] + 2
    assert paired_artifact["/score"]["usage"] == paired["/score"]["usage"]


def test_distilbert_whose_config_names_its_sizes_otherwise(tmp_path, qeff_home):
    """DistilBERT's config says dim, not hidden_size, and leaves two default labels out of config.json: the artifact
    keeps the values transformers resolves (an embeddings width, LABEL_0 / LABEL_1)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    sizes = dict(vocab_size=320, dim=64, n_layers=2, n_heads=4, hidden_dim=96, max_position_embeddings=130, pad_token_id=0)
    for kind, auto in (("base", AutoModel), ("classifier", AutoModelForSequenceClassification)):
        torch.manual_seed(4)
        auto.from_config(AutoConfig.for_model("distilbert", **sizes)).save_pretrained(tmp_path / kind)
        build_tokenizer().save_pretrained(tmp_path / kind)
    folder, artifact = answers_both_ways(str(tmp_path / "base"), {"/v1/embeddings": {"input": TEXTS, "dimensions": 64}}, qeff_home)
    np.testing.assert_array_equal(vectors(artifact["/v1/embeddings"]), vectors(folder["/v1/embeddings"]))
    folder, artifact = answers_both_ways(str(tmp_path / "classifier"), {"/classify": {"input": TEXTS}}, qeff_home)
    assert [d["label"] for d in artifact["/classify"]["data"]] == [d["label"] for d in folder["/classify"]["data"]]
    assert {d["label"] for d in folder["/classify"]["data"]} <= {"LABEL_0", "LABEL_1"}


def test_what_an_encoder_artifact_is_not_served_with(tmp_path, qeff_home):
    model_dir = classifier(tmp_path / "ce", "bert", 1)
    app, runner = build_from_args(parse_args(["--model_name", model_dir, "--ctx_len", "32", "--num_cores", "1"]))
    runner.stop()
    qpc = str(app.state.qpc_path)
    for extra, message in [
        (["--task", "generate"], "--task generate does not apply"),
        (["--chat_template", "{{ messages }}"], "--chat_template does not apply"),
    ]:
        with pytest.raises(
            ValueError, match=rf"encoder's artifact \(embeddings, scores, pages, speech\), served as it was compiled: {message}"
        ):
            build_from_args(parse_args(["--qpc_path", qpc, *extra]))
    with pytest.raises(ValueError, match="was compiled for --task score, not embed"):
        build_from_args(parse_args(["--qpc_path", qpc, "--task", "embed"]))
    for extra, message in [  # what compile() fixed: not ignored
        (["--full_batch_size", "4"], r"served as it was compiled: --full_batch_size does not apply; leave it out"),
        (["--prefill_seq_len", "8", "--mxint8"], r"--prefill_seq_len, --mxint8_kv_cache do not apply; leave them out"),
        (["--mxfp6"], r"was compiled with mxfp6_matmul=False, which it keeps: leave --mxfp6_matmul out"),
        (["--ctx_len", "64"], r"--ctx_len 64 is more than .* reads \(32 tokens: its compiled length\); give at most 32"),
    ]:
        with pytest.raises(ValueError, match=message):
            build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", *extra]))
    app, runner = build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--ctx_len", "12", "--model_name", "reranker"]))
    client = TestClient(app)  # --ctx_len: a lower input limit; --model_name: the model's id, as vLLM's --served-model-name
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["reranker"]
    short = client.post("/score", json={"model": "reranker", "text_1": "Paris", "text_2": ["France"]})
    assert short.status_code == 200, short.text
    long = client.post("/score", json={"text_1": QUERY, "text_2": DOCS[:1]})
    assert long.status_code == 400 and "more than this model's maximum of 12" in long.text, long.text
    with pytest.raises(FileNotFoundError, match="is not a compiled QEfficient artifact"):
        build_from_args(parse_args(["--qpc_path", model_dir, "--task", "score"]))
    tokenizer_file = Path(model_dir) / "tokenizer.json"  # the artifact holds the tokenizer: a changed one is a new artifact
    tokenizer_file.write_text(tokenizer_file.read_text().replace('"lowercase": true', '"lowercase": false', 1))
    again, runner = build_from_args(parse_args(["--model_name", model_dir, "--ctx_len", "32", "--num_cores", "1"]))
    runner.stop()
    assert str(again.state.qpc_path) != qpc
