"""BGE-M3 served as vLLM serves its BgeM3EmbeddingModel (serving/bge_m3_app.py), for the tiny folder of tests/test_bge_m3.py:
with --hf_overrides naming that architecture, "token_classify" gives each token's sparse weight on /pooling (BOS and EOS
left out; paired with /tokenize's tokens as vLLM's recipe does, FlagEmbedding's lexical weights), "token_embed" the
multi-vector head's vectors (the first token left out) with MaxSim on /score and /rerank, "embed" (the default) the dense
vectors; each within 1e-5 of FlagEmbedding's formulas over transformers. Wrong combinations are refused saying what to do."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from QEfficient.cloud.serve import build_from_args, build_server
from QEfficient.cloud.serve_args import parse_args
from QEfficient.serving.tasks import resolve_pooler_task
from tests.helpers import serve_on_loopback
from tests.loopback import loopback_http
from tests.test_bge_m3 import TEXTS, flag_embedding, tiny_bge_m3

BGE_M3 = {"architectures": ["BgeM3EmbeddingModel"]}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_bge_m3(tmp_path_factory.mktemp("bge-m3") / "model")


def serve(folder, pooler_task: str | None):
    app, runner = build_server(str(folder), None, 8, 64, 1, 1, hf_overrides=dict(BGE_M3), pooler_task=pooler_task)
    return serve_on_loopback(app, log_level="critical"), runner


def post(url: str, route: str, body: dict) -> httpx.Response:
    return loopback_http.post(f"{url}{route}", json=body, timeout=120)


def alone(folder, texts: list[str]) -> list[dict]:
    """FlagEmbedding's outputs of each text alone, with its relu weights per token."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok, encoder = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    sparse = torch.nn.Linear(32, 1)
    sparse.load_state_dict(torch.load(folder / "sparse_linear.pt"))
    found = []
    for text in texts:
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            weights = torch.relu(sparse(encoder(**enc).last_hidden_state))[0, :, 0].numpy()
        found.append(
            {"ids": enc["input_ids"][0].tolist(), "weights": weights, **{k: v[0] for k, v in flag_embedding(folder, [text]).items()}}
        )
    return found


def test_token_classify_gives_each_tokens_sparse_weight(folder):
    from transformers import AutoTokenizer

    expected, unknown = alone(folder, TEXTS), str(AutoTokenizer.from_pretrained(folder).unk_token_id)
    server, runner = serve(folder, "token_classify")
    with server as url:
        reply = post(url, "/pooling", {"model": str(folder), "input": TEXTS, "task": "token_classify"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["usage"]["prompt_tokens"] == sum(len(e["ids"]) for e in expected)
        for item, want in zip(reply.json()["data"], expected, strict=True):
            assert len(item["data"]) == len(want["ids"]) - 2 and np.abs(np.array(item["data"]) - want["weights"][1:-1]).max() < 1e-5
            # vLLM's recipe: /tokenize's tokens, the BOS dropped, the largest weight per token: FlagEmbedding's lexical weights
            tokens = post(url, "/tokenize", {"prompt": TEXTS[item["index"]]}).json()["tokens"][1:]
            lexical: dict[str, float] = {}
            for token, weight in zip(tokens, item["data"]):  # zip leaves the EOS out
                if weight > lexical.get(str(token), 0):
                    lexical[str(token)] = weight
            lexical.pop(unknown, None)  # FlagEmbedding leaves the unknown token out too
            assert lexical.keys() == want["lexical_weights"].keys()
            assert all(abs(lexical[k] - want["lexical_weights"][k]) < 1e-5 for k in lexical)
        packed = post(url, "/pooling", {"input": TEXTS[1], "encoding_format": "base64"}).json()["data"][0]["data"]
        assert np.abs(np.frombuffer(base64.b64decode(packed), "<f4") - expected[1]["weights"][1:-1]).max() < 1e-5

        for route, body, words in (
            ("/pooling", {"input": TEXTS[0], "task": "token_embed"}, "'task'"),
            ("/pooling", {"input": TEXTS[0], "normalize": True}, "'normalize'"),
            ("/pooling", {"input": [1, 2]}, "token ids are not taken"),
            ("/pooling", {"input": " ".join(["cat"] * 70)}, "--ctx_len"),
            ("/v1/embeddings", {"input": TEXTS[0]}, '"task": "embed"'),
            ("/rerank", {"query": TEXTS[0], "documents": TEXTS[1:]}, "token_embed"),
        ):
            reply = post(url, route, body)
            assert reply.status_code == 400 and words in reply.json()["error"]["message"], (route, reply.text)
    runner.stop()


def test_token_embed_gives_the_multi_vector_heads_vectors_and_maxsim(folder):
    expected = alone(folder, TEXTS)
    server, runner = serve(folder, "token_embed")
    with server as url:
        reply = post(url, "/pooling", {"input": TEXTS, "task": "token_embed"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["usage"]["prompt_tokens"] == sum(len(e["ids"]) for e in expected)
        rows = [np.array(item["data"]) for item in reply.json()["data"]]
        for row, want in zip(rows, expected, strict=True):
            assert row.shape == want["colbert_vecs"].shape and np.abs(row - want["colbert_vecs"]).max() < 1e-5
        # vLLM's MaxSim sums over the query's tokens (FlagEmbedding's colbert_score averages)
        scores = [float((expected[0]["colbert_vecs"] @ e["colbert_vecs"].T).max(1).sum()) for e in expected[1:]]
        reply = post(url, "/score", {"text_1": TEXTS[0], "text_2": TEXTS[1:]})
        assert reply.status_code == 200, reply.text
        assert np.allclose([d["score"] for d in reply.json()["data"]], scores, atol=1e-5)
        ranked = post(url, "/rerank", {"query": TEXTS[0], "documents": TEXTS[1:]}).json()["results"]
        assert [r["index"] for r in ranked] == list(np.argsort(scores)[::-1])
        assert post(url, "/pooling", {"input": TEXTS[0], "task": "token_classify"}).status_code == 400
        assert post(url, "/pooling", {"input": TEXTS[0], "use_activation": False}).status_code == 400  # vLLM's raw vectors
    runner.stop()


def test_embed_is_the_default_and_gives_the_dense_vectors(folder):
    expected = flag_embedding(folder, TEXTS)["dense_vecs"]
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--hf_overrides", '{"architectures": ["BgeM3EmbeddingModel"]}']))
    with serve_on_loopback(app, log_level="critical") as url:
        reply = post(url, "/v1/embeddings", {"input": TEXTS})
        assert reply.status_code == 200, reply.text
        assert np.abs(np.array([d["embedding"] for d in reply.json()["data"]]) - expected).max() < 1e-5
    runner.stop()


def test_pooler_tasks_that_do_not_apply_are_refused(folder, tiny_model_dir):
    llama = str(tiny_model_dir("llama"))
    for model, pooler_task, task, overrides, words in (
        (str(folder), "token_classify", "auto", None, "add --hf_overrides"),
        (llama, None, "auto", BGE_M3, "not a BGE-M3 folder"),
        (llama, "token_embed", "auto", None, "is not one"),
        (str(folder), "embed&token_classify", "auto", BGE_M3, "IO processor plugin"),
        (str(folder), "token_embed", "embed", BGE_M3, "leave --task out"),
        (str(folder), "classify", "auto", BGE_M3, "no classifier"),
        (str(folder), "token_embed", "auto", {**BGE_M3, "max_position_embeddings": 8}, "do not apply"),
        (llama, "embed", "score", None, "leave --task out"),
    ):
        with pytest.raises(ValueError, match=words):
            resolve_pooler_task(model, None, pooler_task, task, overrides)
    assert resolve_pooler_task(llama, None, "classify", "auto", None) == (None, "score", None)
    assert resolve_pooler_task(str(folder), None, None, "auto", {**BGE_M3, "max_position_embeddings": 8})[2] == {
        "max_position_embeddings": 8
    }


def test_the_artifact_alone_serves_each_token_task(folder, qeff_home, tmp_path):
    """``serve --qpc_path`` on the BGE-M3 artifact with --pooler_config's token task (what a Ray replica runs): the same
    answers as the server on the folder, in a process that imports neither torch nor transformers' modeling code; the
    task must be named, and only a token task; --ray takes the folder and the artifact alike."""
    import json
    import shutil

    from QEfficient.distributed.ray_serve import application_from_args
    from tests.test_server_encoder_artifact import answers_both_ways

    copy = shutil.copytree(folder, tmp_path / "model")
    requests = {"token_embed": {"/pooling": {"input": TEXTS}, "/rerank": {"query": TEXTS[0], "documents": TEXTS[1:]}}}
    requests["token_classify"] = {"/pooling": {"input": TEXTS}, "/tokenize": {"prompt": TEXTS[1]}}
    for task, routes in requests.items():
        pooler = ("--pooler_config", json.dumps({"task": task}))
        from_folder, from_artifact = answers_both_ways(
            str(copy), routes, qeff_home, "--hf_overrides", json.dumps(BGE_M3), *pooler, artifact_options=pooler
        )
        assert from_artifact.pop("imported") == []
        for route in routes:
            assert any(from_folder[route].get(key) for key in ("data", "results", "tokens")), from_folder[route]
            for key in ("data", "results", "tokens", "usage"):
                assert from_artifact[route].get(key) == from_folder[route].get(key), (task, route, key)
    app, runner = build_server(str(copy), None, 8, 64, 1, 1, hf_overrides=dict(BGE_M3), pooler_task="token_embed")
    runner.stop()
    qpc, pooler = str(app.state.qpc_path), ["--pooler_config", '{"task": "token_embed"}']
    for options in ([], ["--pooler_config", '{"task": "embed"}']):
        with pytest.raises(ValueError, match="is a BGE-M3 artifact, served for one of its token tasks"):
            build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", *options]))
        with pytest.raises(ValueError, match="is a BGE-M3 artifact, served for one of its token tasks"):
            application_from_args(parse_args(["--ray", "--qpc_path", qpc, "--ship_artifact", "off", *options]))
    with pytest.raises(ValueError, match="--task score does not go with --pooler_config's task token_embed"):
        build_from_args(parse_args(["--qpc_path", qpc, "--task", "score", *pooler]))
    assert application_from_args(parse_args(["--ray", "--qpc_path", qpc, "--ship_artifact", "off", *pooler])) is not None
    ray_args = ["--ray", "--model_name", str(copy), "--hf_overrides", json.dumps(BGE_M3), "--ctx_len", "64", "--ship_artifact", "off"]
    assert application_from_args(parse_args([*ray_args, "--pooler_config.task", "token_embed"])) is not None
