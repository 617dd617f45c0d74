"""vLLM's late-interaction API over a document retriever: ``serve --model_name`` on tiny ColPali, ColQwen2, ColQwen2.5
and ColModernVBert folders
(tests/test_retrieval.py builds them), on loopback. Queries as ``input`` and pages as ``image_url`` parts of ``messages``
get transformers' per-token embeddings within 1e-4 (/pooling, as floats and base64); /score and /rerank give the
processor's MaxSim scores of those embeddings; bad requests get a 400 that says what to do."""

from __future__ import annotations

import base64
import functools
import io
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, ColModernVBertForRetrieval, ColPaliForRetrieval, ColQwen2ForRetrieval

from QEfficient.cloud.serve import build_from_args, build_server
from QEfficient.cloud.serve_args import parse_args
from tests.helpers import serve_on_loopback
from tests.loopback import loopback_http
from tests.test_retrieval import tiny_colmodernvbert, tiny_colpali, tiny_colqwen2

QUERIES = ["what is the cat", "a dog ran home"]
CTX_LEN = 40  # the longest query the server takes, in tokens (prefix and augmentation tokens included)


def page(seed: int) -> Image.Image:
    """Pages of two shapes: ColQwen2's patch grids and ColModernVBert's tiles (1x2 and 2x2) differ between them."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, [(12, 60, 3), (50, 50, 3)][seed], dtype=np.uint8))


def image_part(seed: int) -> dict:
    buffer = io.BytesIO()
    page(seed).save(buffer, format="PNG")
    return {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()}}


BUILDERS = {
    "colpali": (tiny_colpali, ColPaliForRetrieval),
    "qwen2_vl": (tiny_colqwen2, ColQwen2ForRetrieval),
    "qwen2_5_vl": (functools.partial(tiny_colqwen2, base="qwen2_5_vl"), ColQwen2ForRetrieval),
    "colmodernvbert": (tiny_colmodernvbert, ColModernVBertForRetrieval),
}


@pytest.fixture(scope="module", params=list(BUILDERS))
def server(request, tmp_path_factory):
    """A served tiny ColPali, ColQwen2, ColQwen2.5 (over Qwen2.5-VL) or ColModernVBert, transformers' model and the
    processor."""
    folder = tmp_path_factory.mktemp(request.param)
    build, hf_class = BUILDERS[request.param]
    build(folder)
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--num_cores", "1", "--ctx_len", str(CTX_LEN)]))
    with serve_on_loopback(app, log_level="critical") as url:
        yield url, folder, hf_class.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)
    runner.stop()


def post(url: str, route: str, body: dict) -> httpx.Response:
    return loopback_http.post(f"{url}{route}", json=body, timeout=120)


def hf_rows(hf, inputs) -> list[np.ndarray]:
    """transformers' embeddings of each row at its real tokens."""
    with torch.no_grad():
        out = hf(**inputs).embeddings.numpy()
    return [row[mask.astype(bool)] for row, mask in zip(out, inputs["attention_mask"].numpy(), strict=True)]


def test_queries_and_pages_equal_transformers(server):
    url, _, hf, processor = server
    expected_queries = [hf_rows(hf, processor.process_queries([q]))[0] for q in QUERIES]
    expected_pages = [hf_rows(hf, processor.process_images([page(s)]))[0] for s in (0, 1)]

    reply = post(url, "/pooling", {"input": QUERIES})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["object"] == "list" and [d["object"] for d in body["data"]] == ["pooling"] * 2
    for item, expected in zip(body["data"], expected_queries, strict=True):
        np.testing.assert_allclose(np.array(item["data"]), expected, atol=1e-4)
    assert body["usage"]["prompt_tokens"] == sum(len(e) for e in expected_queries)
    embedded = post(url, "/v1/embeddings", {"input": QUERIES}).json()["data"]  # vLLM 0.34: a matrix per query
    for item, expected in zip(embedded, expected_queries, strict=True):
        np.testing.assert_allclose(np.array(item["embedding"]), expected, atol=1e-4)

    # a page's message may repeat its prompt (vLLM's ColQwen example sends it); each image is one page
    content = [image_part(0), {"type": "text", "text": "Describe the image."}, image_part(1)]
    reply = post(url, "/pooling", {"messages": [{"role": "user", "content": content}], "encoding_format": "base64"})
    assert reply.status_code == 200, reply.text
    for item, expected in zip(reply.json()["data"], expected_pages, strict=True):
        rows = np.frombuffer(base64.b64decode(item["data"]), "<f4").reshape(-1, expected.shape[1])
        np.testing.assert_allclose(rows, expected, atol=1e-4)
    image_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    firsts = [e[(processor.process_images([page(s)])["input_ids"][0] == image_id)[-len(e) :]][:4] for s, e in zip((0, 1), expected_pages)]
    assert np.abs(firsts[0] - firsts[1]).max() > 0.1  # the page decides: its first image tokens' embeddings differ

    # /score: one query against each page, then pairwise; the processor's MaxSim of transformers' embeddings
    def expected_score(q: int, p: int) -> float:
        as_tensors = [torch.from_numpy(expected_queries[q])], [torch.from_numpy(expected_pages[p])]
        return float(processor.score_retrieval(*as_tensors)[0, 0])

    reply = post(url, "/score", {"text_1": QUERIES[0], "text_2": {"content": [image_part(0), image_part(1)]}})
    assert reply.status_code == 200, reply.text
    scores = [d["score"] for d in reply.json()["data"]]
    np.testing.assert_allclose(scores, [expected_score(0, 0), expected_score(0, 1)], atol=1e-3)
    reply = post(url, "/v1/score", {"text_1": QUERIES, "text_2": [image_part(0), image_part(1)]})
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose([d["score"] for d in reply.json()["data"]], [expected_score(0, 0), expected_score(1, 1)], atol=1e-3)

    reply = post(url, "/rerank", {"query": QUERIES[0], "documents": [image_part(0), image_part(1)], "top_n": 1, "return_documents": False})
    assert reply.status_code == 200, reply.text
    (best,) = reply.json()["results"]
    assert best["index"] == int(np.argmax(scores)) and "document" not in best
    assert best["relevance_score"] == pytest.approx(max(scores), abs=1e-3)
    reply = post(url, "/v1/rerank", {"query": QUERIES[0], "documents": {"content": [image_part(0), image_part(1)]}})  # vLLM's form
    assert reply.status_code == 200, reply.text
    ranked = reply.json()["results"]
    assert [r["index"] for r in ranked] == list(np.argsort(scores)[::-1]) and reply.json()["usage"]["prompt_tokens"] > 0
    assert ranked[0]["document"] == {"text": None, "multi_modal": image_part(int(np.argmax(scores)))}


@pytest.mark.parametrize(
    ("route", "body", "status", "says"),
    [
        ("/pooling", {"input": [[5, 6, 7]]}, 400, "token ids are not taken"),
        ("/pooling", {"input": "x", "messages": [{"role": "user", "content": [image_part(0)]}]}, 400, "one of the two"),
        ("/pooling", {"input": "x", "task": "embed"}, 400, "token_embed"),
        ("/pooling", {"input": "x", "dimensions": 8}, 400, "24 dimensions"),
        ("/pooling", {"input": "x", "mm_processor_kwargs": {"max_pixels": 784}}, 400, "'mm_processor_kwargs' is not supported"),
        ("/pooling", {"input": " ".join(["word"] * 60)}, 400, "--ctx_len"),
        ("/pooling", {"messages": [{"role": "user", "content": [{"type": "text", "text": "a caption"}]}]}, 400, "is text; a page is read"),
        ("/pooling", {"input": ["q"] * 257}, 400, "At most 256 texts"),
        ("/score", {"text_1": "q", "text_2": ["a text document"]}, 400, "documents are pages"),
        (
            "/rerank",
            {"query": "q", "documents": [{"type": "text", "text": "Describe the image."}, image_part(0)]},
            400,
            "documents are pages",
        ),
        ("/pooling", {"input": []}, 400, "non-empty list"),
        ("/pooling", {"input": ["ok", "a IMAGE_TOKEN here"]}, 400, "input[1] holds the image token"),
        ("/pooling", {"messages": ["not an object"]}, 400, "messages[0] must be an object"),
        (
            "/pooling",
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]},
            400,
            "messages[0].content[0]",
        ),
        (
            "/score",
            {"text_1": "q", "text_2": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            400,
            "text_2[0]",
        ),
        ("/pooling", {"input": "x", "normalize": 1}, 400, "'normalize' is not supported"),
        ("/score", {"text_1": ["a", "b", "c"], "text_2": [image_part(0), image_part(1)]}, 400, "one per page"),
        ("/rerank", {"query": "q", "documents": "not a list"}, 400, "image_url"),
        ("/v1/embeddings", {"input": "x", "encoding_format": "base64"}, 400, "POST /pooling for base64"),
        ("/v1/embeddings", {"messages": [{"role": "user", "content": [image_part(0)]}]}, 400, "pages go to /pooling"),
        ("/pooling", {"input": "x", "model": "another"}, 404, "another"),
    ],
)
def test_bad_requests_say_what_to_do(server, route, body, status, says):
    body = json.loads(json.dumps(body).replace("IMAGE_TOKEN", server[3].image_token))  # the processor's own
    reply = post(server[0], route, body)
    assert reply.status_code == status and says in reply.json()["error"]["message"], reply.text


def test_generation_options_are_refused(tmp_path):
    from QEfficient import QEFFAutoModelForCausalLM
    from QEfficient.loading.hf_loader import NotACausalLMError

    tiny_colpali(tmp_path)
    with pytest.raises(NotACausalLMError, match="late-interaction document retriever.*/pooling, /score, /rerank"):  # infer's way in
        QEFFAutoModelForCausalLM.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="--lora do not apply"):
        build_server(str(tmp_path), None, 8, 64, 1, 1, lora={"a": str(tmp_path)})
    with pytest.raises(ValueError, match="--task do not apply"):
        build_server(str(tmp_path), None, 8, 64, 1, 1, task="score")
    from QEfficient.distributed.ray_serve import application_from_args

    with pytest.raises(ValueError, match="--task do not apply"):  # on Ray too, before anything is compiled
        application_from_args(parse_args(["--ray", "--model_name", str(tmp_path), "--task", "score", "--ship_artifact", "off"]))
    with pytest.raises(ValueError, match=r"--ctx_len 100000 is more than .* reads \(\d+ tokens: its language model's positions\)"):
        build_server(str(tmp_path), None, 8, 100000, 1, 1)  # not clamped without a word
    app, runner = build_server(str(tmp_path), None, 8, 64, 1, 1, max_num_images=1)  # the pages a request may hold
    with serve_on_loopback(app, log_level="critical") as url:
        reply = post(url, "/pooling", {"messages": [{"role": "user", "content": [image_part(0), image_part(1)]}]})
    runner.stop()
    assert reply.status_code == 400 and "At most 1 inputs per request" in reply.json()["error"]["message"]


@pytest.mark.parametrize("kind", ["colpali", "qwen2_vl", "colmodernvbert"])
def test_the_artifacts_served_alone_answer_as_the_folder(kind, tmp_path):
    """``serve --qpc_path`` on the text artifact (which names the vision artifact and keeps the processor) answers
    queries, pages and scores as the server on the folder does, after the folder is gone."""
    from starlette.testclient import TestClient

    folder = tmp_path / kind
    BUILDERS[kind][0](folder)
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--num_cores", "1", "--ctx_len", str(CTX_LEN)]))
    pages = {"content": [image_part(0), image_part(1)]}
    bodies = [
        ("/pooling", {"input": QUERIES}),
        ("/pooling", {"messages": [{"role": "user", "content": [image_part(1)]}]}),
        ("/score", {"text_1": QUERIES[0], "text_2": pages}),
        ("/rerank", {"query": QUERIES[1], "documents": pages}),
    ]
    expected = [TestClient(app).post(route, json=body).json() for route, body in bodies]
    qpc = str(app.state.qpc_path)
    runner.stop()
    shutil.rmtree(folder)
    served = ["--qpc_path", qpc, "--num_cores", "1", "--ctx_len", str(CTX_LEN), "--model_name", "pages"]
    app, runner = build_from_args(parse_args(served))
    client = TestClient(app)
    for (route, body), answer in zip(bodies, expected, strict=True):
        got = client.post(route, json={**body, "model": "pages"}).json()
        key = "results" if route == "/rerank" else "data"
        assert got[key] == answer[key] and got["usage"] == answer["usage"], route
    long_query = client.post("/pooling", json={"input": "word " * CTX_LEN})  # --ctx_len bounds the queries, as on the folder
    assert long_query.status_code == 400 and "more than this server's" in long_query.json()["error"]["message"]
    runner.stop()
    vision = str((Path(qpc) / json.loads((Path(qpc) / "qconfig.json").read_text())["vision_artifact"]).resolve())
    with pytest.raises(ValueError, match="served from its text artifact"):  # the vision graph's own artifact
        build_from_args(parse_args(["--qpc_path", vision, "--num_cores", "1"]))
    with pytest.raises(ValueError, match="--task score does not apply"):
        build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--task", "score"]))
    with pytest.raises(ValueError, match="max_num_images"):  # checked with an artifact as with a folder
        build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--max_num_images", "0"]))
    with pytest.raises(ValueError, match=r"--ctx_len 100000 is more than .*language model's positions"):  # likewise
        build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--ctx_len", "100000"]))
    with pytest.raises(ValueError, match=r"--full_batch_size does not apply"):
        build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--full_batch_size", "2"]))
