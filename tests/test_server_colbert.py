"""A ColBERT text retriever served as vLLM serves one (serving/colbert_app.py), for the tiny Stanford (BERT) and PyLate
(ModernBERT, LFM2) folders of tests/test_colbert.py: /pooling gives every token's vector of each text (its special tokens
included, no marker), equal to transformers' encoder through the projection; /score and /rerank give MaxSim over them;
bad requests and options that do not apply are refused saying what to do."""

from __future__ import annotations

import base64
import json
import sys

import httpx
import numpy as np
import pytest

from QEfficient.cloud.serve import build_from_args, build_server
from QEfficient.cloud.serve_args import parse_args
from QEfficient.generation.late_interaction import maxsim
from tests.helpers import serve_on_loopback
from tests.loopback import loopback_http
from tests.test_colbert import BUILDERS, DOCUMENTS, reference

CTX_LEN = 32


@pytest.fixture(scope="module", params=list(BUILDERS))
def server(request, tmp_path_factory):
    folder = BUILDERS[request.param](tmp_path_factory.mktemp(request.param) / "model")
    app, runner = build_server(str(folder), None, 8, CTX_LEN, 1, 1)
    with serve_on_loopback(app, log_level="critical") as url:
        yield url, folder
    runner.stop()


def post(url: str, route: str, body: dict) -> httpx.Response:
    return loopback_http.post(f"{url}{route}", json=body, timeout=120)


def expected_rows(folder, texts: list[str]) -> list[np.ndarray]:
    """transformers' vectors of each text alone, at every token of its tokenizer's encoding."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    rows = []
    for text in texts:
        ids = np.array([tokenizer(text)["input_ids"]], np.int64)
        rows.append(reference(folder, ids, np.ones_like(ids))[0])
    return rows


def test_pooling_score_and_rerank_equal_transformers(server):
    url, folder = server
    texts = ["the cat sat", DOCUMENTS[1], DOCUMENTS[2]]
    expected = expected_rows(folder, texts)

    reply = post(url, "/pooling", {"input": texts})
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert [d["index"] for d in data] == [0, 1, 2] and reply.json()["usage"]["prompt_tokens"] == sum(len(e) for e in expected)
    for item, want in zip(data, expected, strict=True):
        assert np.abs(np.array(item["data"]) - want).max() < 1e-5
    vllm_034 = post(url, "/v1/embeddings", {"input": texts[:2]}).json()  # vLLM 0.34's answer for a token_embed model
    assert [d["object"] for d in vllm_034["data"]] == ["embedding"] * 2
    assert all(np.abs(np.array(d["embedding"]) - e).max() < 1e-5 for d, e in zip(vllm_034["data"], expected[:2], strict=True))
    assert post(url, "/tokenize", {"prompt": texts[0]}).json()["count"] == len(expected[0])  # vLLM's /tokenize, its tokenizer
    packed = post(url, "/pooling", {"input": texts[0], "encoding_format": "base64"}).json()["data"][0]["data"]
    assert np.abs(np.frombuffer(base64.b64decode(packed), "<f4").reshape(expected[0].shape) - expected[0]).max() < 1e-5
    halves = post(url, "/pooling", {"input": texts[0], "encoding_format": "base64", "embed_dtype": "float16", "endianness": "big"})
    halves = np.frombuffer(base64.b64decode(halves.json()["data"][0]["data"]), ">f2").reshape(expected[0].shape)  # vLLM's packing
    assert np.abs(halves - expected[0]).max() < 1e-3
    binary = post(url, "/pooling", {"input": texts[:2], "encoding_format": "bytes"})  # vLLM's binary answer: rows of tokens
    places = json.loads(binary.headers["metadata"])["data"]
    assert [p["shape"] for p in places] == [list(e.shape) for e in expected[:2]]
    for place, want in zip(places, expected[:2], strict=True):
        got = np.frombuffer(binary.content[place["start"] : place["end"]], "<f4" if sys.byteorder == "little" else ">f4")
        assert np.abs(got.reshape(want.shape) - want).max() < 1e-5

    scores = [maxsim(expected[0], e) for e in expected[1:]]
    reply = post(url, "/score", {"text_1": texts[0], "text_2": texts[1:]})
    assert reply.status_code == 200, reply.text
    assert np.allclose([d["score"] for d in reply.json()["data"]], scores, atol=1e-4)
    pairwise = post(url, "/v1/score", {"queries": texts[1:], "documents": [texts[0], texts[0]]}).json()["data"]
    assert np.allclose([d["score"] for d in pairwise], [maxsim(e, expected[0]) for e in expected[1:]], atol=1e-4)

    reply = post(url, "/rerank", {"query": texts[0], "documents": [texts[1], {"text": texts[2]}], "top_n": 1})
    assert reply.status_code == 200, reply.text
    (best,) = reply.json()["results"]
    assert best["index"] == int(np.argmax(scores)) and abs(best["relevance_score"] - max(scores)) < 1e-4
    assert best["document"] == {"text": texts[1 + best["index"]]}
    bare = post(url, "/v2/rerank", {"query": texts[0], "documents": texts[1:], "return_documents": False}).json()["results"]
    assert [r["index"] for r in bare] == list(np.argsort(scores)[::-1]) and "document" not in bare[0]


@pytest.mark.parametrize(
    ("route", "body", "says"),
    [
        ("/pooling", {"messages": [{"role": "user", "content": "hi"}]}, "This model reads text"),
        ("/pooling", {"input": [[5, 6, 7]]}, "token ids are not taken"),
        ("/pooling", {"input": " ".join(["word"] * 40)}, "--ctx_len"),
        ("/pooling", {"input": "x", "task": "embed"}, "token_embed"),
        ("/score", {"text_1": ["a", "b", "c"], "text_2": ["x", "y"]}, "send one text_1"),
        ("/rerank", {"query": "q", "documents": [{"image_url": "x"}]}, "documents[0]"),
        ("/v1/embeddings", {"input": "x", "dimensions": 8}, "'dimensions' does not apply"),
        ("/pooling", {"input": "x", "late_chunking_params": {"chunk_size": 4}}, "'late_chunking_params' is not supported"),
    ],
)
def test_bad_requests_say_what_to_do(server, route, body, says):
    reply = post(server[0], route, body)
    assert reply.status_code == 400 and says in reply.json()["error"]["message"], reply.text


def test_options_that_do_not_apply_are_refused(tmp_path):
    folder = BUILDERS["stanford-bert"](tmp_path / "model")
    with pytest.raises(ValueError, match="ColBERT retriever.*--max_num_images do not apply"):
        build_server(str(folder), None, 8, 64, 1, 1, max_num_images=2)


def test_the_artifact_alone_answers_as_the_folder(qeff_home, tmp_path):
    """``serve --qpc_path`` on a ColBERT's artifact (what a Ray replica runs): the late-interaction routes from the
    artifact's tokenizer and graph, in a process that imports neither torch nor transformers' modeling code, answering
    exactly as the server on the folder; pooled embeddings of it and other tasks are refused."""
    from QEfficient.serving.encoder_artifact import CompiledEncoder
    from tests.test_server_encoder_artifact import answers_both_ways

    folder = BUILDERS["pylate-modernbert"](tmp_path / "model")
    texts = ["the cat sat", DOCUMENTS[1], DOCUMENTS[2]]
    requests = {"/pooling": {"input": texts}, "/score": {"text_1": texts[0], "text_2": texts[1:]}}
    requests |= {"/rerank": {"query": texts[0], "documents": texts[1:]}, "/tokenize": {"prompt": texts[1]}}
    from_folder, from_artifact = answers_both_ways(str(folder), requests, qeff_home)
    assert from_artifact.pop("imported") == []
    for route in requests:  # (ids and times aside)
        assert any(from_folder[route].get(key) for key in ("data", "results", "tokens")), from_folder[route]
        for key in ("data", "results", "tokens", "usage"):
            assert from_artifact[route].get(key) == from_folder[route].get(key), (route, key)
    qpc = str(from_folder_path(folder))
    with pytest.raises(ValueError, match="compiled for --task embed, not score"):
        build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--task", "score"]))
    with pytest.raises(ValueError, match="is a ColBERT model's artifact, ending in its own heads: not pooled embeddings"):
        CompiledEncoder(qpc, 1).encode(texts)
    pooler = ["--pooler_config", '{"use_activation": false}']
    with pytest.raises(ValueError, match="ColBERT (retriever|model)'s artifact: --pooler_config's use_activation set pooled"):
        build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", *pooler]))
    from QEfficient.distributed.ray_serve import application_from_args

    with pytest.raises(ValueError, match="ColBERT (retriever|model)'s artifact: --pooler_config's use_activation set pooled"):
        application_from_args(parse_args(["--ray", "--qpc_path", qpc, "--ship_artifact", "off", *pooler]))


def from_folder_path(folder) -> str:
    """The artifact the server on ``folder`` compiled (cached: compiled again, found)."""
    app, runner = build_server(str(folder), None, 8, 64, 1, 1)
    runner.stop()
    return app.state.qpc_path
