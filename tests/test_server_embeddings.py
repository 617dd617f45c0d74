"""POST /v1/embeddings over the real all-MiniLM-L6-v2 (a sentence-transformers folder): OpenAI's four input forms,
float and base64 encodings, each embedding equal to transformers' mean pooling + L2 norm; bad input gets a 400."""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from QEfficient.cloud.serve import build_from_args
from QEfficient.cloud.serve_args import parse_args
from QEfficient.serving.tasks import is_embedding_model
from tests.helpers import serve_on_loopback
from tests.loopback import loopback_http
from tests.test_encoder import minilm_folder

SENTENCES = ["The cat sits on the mat.", "A quick brown fox jumps over the lazy dog near the river bank.", "Hello"]


@pytest.fixture(scope="module")
def server():
    folder = minilm_folder()
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--ctx_len", "128", "--num_cores", "1"]))
    with serve_on_loopback(app, log_level="critical") as url:
        yield url, folder
    runner.stop()


def hf_embeddings(folder, texts: list[str]) -> np.ndarray:
    tok, hf = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = hf(**enc).last_hidden_state
    mask = enc["attention_mask"][..., None].float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).numpy()


def post(url: str, body: dict) -> httpx.Response:
    return loopback_http.post(f"{url}/v1/embeddings", json=body, timeout=120)


def test_embeddings_equal_transformers_in_every_input_form(server):
    url, folder = server
    r = post(url, {"input": SENTENCES, "model": str(folder)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [d["index"] for d in body["data"]] == [0, 1, 2] and body["object"] == "list"
    got = np.array([d["embedding"] for d in body["data"]], np.float32)
    np.testing.assert_allclose(got, hf_embeddings(folder, SENTENCES), atol=1e-4, rtol=0)
    tok = AutoTokenizer.from_pretrained(folder)
    ids = [tok(s)["input_ids"] for s in SENTENCES]
    assert body["usage"] == {"prompt_tokens": sum(map(len, ids)), "total_tokens": sum(map(len, ids))}
    one = post(url, {"input": SENTENCES[1]}).json()["data"][0]["embedding"]  # alone: no padding from the others
    np.testing.assert_allclose(one, got[1], atol=1e-5, rtol=0)
    by_ids = post(url, {"input": ids}).json()["data"]
    np.testing.assert_allclose(np.array([d["embedding"] for d in by_ids]), got, atol=1e-5, rtol=0)
    single_ids = post(url, {"input": ids[0]}).json()["data"][0]["embedding"]
    np.testing.assert_allclose(single_ids, got[0], atol=1e-5, rtol=0)
    packed = post(url, {"input": SENTENCES[:2], "encoding_format": "base64", "dimensions": 384}).json()["data"]
    decoded = np.array([np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in packed])
    np.testing.assert_array_equal(decoded, got[:2])


def test_an_embedding_model_scores_and_reranks_by_cosine_similarity(server):
    """vLLM's bi-encoder /score and /rerank: each pair's cosine similarity of transformers' embeddings; usage counts
    each text embedded once."""
    url, folder = server
    expected = hf_embeddings(folder, SENTENCES)
    cosine = expected @ expected.T  # (normalized rows)
    for route in ("/score", "/v1/score"):
        r = loopback_http.post(f"{url}{route}", json={"text_1": SENTENCES[0], "text_2": SENTENCES[1:]}, timeout=120)
        assert r.status_code == 200, r.text
        np.testing.assert_allclose([d["score"] for d in r.json()["data"]], cosine[0, 1:], atol=1e-5)
    r = loopback_http.post(f"{url}/score", json={"text_1": SENTENCES[:2], "text_2": SENTENCES[1:]}, timeout=120).json()
    np.testing.assert_allclose([d["score"] for d in r["data"]], [cosine[0, 1], cosine[1, 2]], atol=1e-5)
    tok = AutoTokenizer.from_pretrained(folder)
    counts = [len(tok(s)["input_ids"]) for s in SENTENCES]
    assert r["usage"]["prompt_tokens"] == counts[0] + 2 * counts[1] + counts[2] + 2  # both texts of every pair, a pad between
    for route in ("/rerank", "/v1/rerank", "/v2/rerank"):
        r = loopback_http.post(f"{url}{route}", json={"query": SENTENCES[2], "documents": SENTENCES[:2], "top_n": 1}, timeout=120)
        assert r.status_code == 200, r.text
        best = int(np.argmax(cosine[2, :2]))
        assert [(x["index"], x["document"]["text"]) for x in r.json()["results"]] == [(best, SENTENCES[best])]
        np.testing.assert_allclose(r.json()["results"][0]["relevance_score"], cosine[2, best], atol=1e-5)
    r = loopback_http.post(f"{url}/rerank", json={"query": "x", "documents": []}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "documents"
    # an empty text is embedded as its tokenizer gives it ([CLS] [SEP]), as vLLM embeds it
    with_empty = hf_embeddings(folder, [SENTENCES[0], ""])
    r = loopback_http.post(f"{url}/rerank", json={"query": SENTENCES[0], "documents": ["", SENTENCES[0]]}, timeout=120)
    assert r.status_code == 200, r.text
    assert [x["index"] for x in r.json()["results"]] == [1, 0]
    np.testing.assert_allclose(r.json()["results"][1]["relevance_score"], with_empty[0] @ with_empty[1], atol=1e-5)
    r = loopback_http.post(f"{url}/score", json={"text_1": "", "text_2": [""]}, timeout=120)
    assert r.status_code == 200 and abs(r.json()["data"][0]["score"] - 1) < 1e-5, r.text
    for route, body, message, param in (
        (
            "/rerank",
            {"query": "q", "documents": ["a"], "max_tokens_per_doc": 2},
            "'max_tokens_per_doc' is not applied",
            "max_tokens_per_doc",
        ),
    ):
        r = loopback_http.post(f"{url}{route}", json=body, timeout=60)
        assert r.status_code == 400 and message in r.json()["error"]["message"] and r.json()["error"]["param"] == param, r.text


def test_vllms_request_fields_as_vllm_applies_them(server):
    """use_activation false (the pooled vectors before normalization), truncate_prompt_tokens with and without
    truncation_side, add_special_tokens, and base64 packed as embed_dtype and endianness say (torch's casts: vLLM's)."""
    url, folder = server
    tok = AutoTokenizer.from_pretrained(folder)

    def vectors(body: dict) -> np.ndarray:
        r = post(url, body)
        assert r.status_code == 200, r.text
        return np.array([d["embedding"] for d in r.json()["data"]], np.float32)

    normalized = vectors({"input": SENTENCES})
    raw = vectors({"input": SENTENCES, "use_activation": False})
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), normalized, atol=1e-6, rtol=0)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1, atol=1e-3)
    np.testing.assert_array_equal(vectors({"input": SENTENCES, "use_activation": True}), normalized)

    long = " ".join(["the quick brown fox jumps"] * 40)  # 200 words: more than the 128 tokens served
    ids = tok(long)["input_ids"]
    for keep, side, expected in (
        (10, None, tok(long, truncation=True, max_length=10)["input_ids"]),  # the tokenizer's: [CLS] 8 words [SEP]
        (-1, None, tok(long, truncation=True, max_length=128)["input_ids"]),
        (10, "right", ids[:10]),  # a side given: the tokens cut as they are, special ones too
        (10, "left", ids[-10:]),
        (2, None, tok(long, truncation=True, max_length=2)["input_ids"]),  # [CLS] [SEP]: no room for the text
        (1, None, ids[:1]),  # no room for the specials: the tokenizer leaves the text uncut, vLLM keeps the first token
    ):
        body = {"input": long, "truncate_prompt_tokens": keep, "truncation_side": side}
        np.testing.assert_allclose(vectors(body), vectors({"input": expected}), atol=1e-6, rtol=0, err_msg=str((keep, side)))
    np.testing.assert_allclose(vectors({"input": ids, "truncate_prompt_tokens": 10}), vectors({"input": ids[:10]}), atol=1e-6, rtol=0)
    # a tokenizer that truncates on the left: text cut so (its specials kept), token ids too, as vLLM falls back to its side
    from QEfficient.serving.embed_fields import Truncation

    tok.truncation_side = "left"
    for keep in (10, 2, 1):
        want = tok(long, truncation=True, max_length=keep)["input_ids"] if keep > 1 else ids[-1:]
        assert Truncation(keep).apply(tok, long, ids) == want, keep
    assert Truncation(10).apply(tok, None, ids) == ids[-10:]
    bare = tok(SENTENCES[0], add_special_tokens=False)["input_ids"]
    np.testing.assert_allclose(vectors({"input": SENTENCES[0], "add_special_tokens": False}), vectors({"input": bare}), atol=1e-6, rtol=0)

    for dtype, torch_dtype, view in (
        ("float16", torch.float16, torch.int16),
        ("bfloat16", torch.bfloat16, torch.int16),
        ("fp8_e4m3", torch.float8_e4m3fn, torch.uint8),
        ("fp8_e5m2", torch.float8_e5m2, torch.uint8),
        ("float32", torch.float32, torch.int32),
    ):
        for order in ("little", "big", "native"):
            r = post(url, {"input": SENTENCES, "encoding_format": "base64", "embed_dtype": dtype, "endianness": order})
            bits = torch.from_numpy(normalized).to(torch_dtype).view(view).numpy()
            if order == "big":
                bits = bits.byteswap()
            assert [base64.b64decode(d["embedding"]) for d in r.json()["data"]] == [row.tobytes() for row in bits], (dtype, order)
    # vLLM's binary answers: the same bytes one row after another, with (bytes) or without (bytes_only) the metadata header
    r = post(url, {"input": SENTENCES, "encoding_format": "bytes", "embed_dtype": "float16", "endianness": "big"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    meta = json.loads(r.headers["metadata"])
    halves = torch.from_numpy(normalized).to(torch.float16).view(torch.int16).numpy().byteswap()
    assert [r.content[i["start"] : i["end"]] for i in meta["data"]] == [row.tobytes() for row in halves]
    assert [(i["index"], i["shape"], i["embed_dtype"], i["endianness"]) for i in meta["data"]] == [
        (i, [normalized.shape[1]], "float16", "big") for i in range(len(SENTENCES))
    ]
    assert meta["model"] and meta["id"].startswith("embd-") and meta["usage"]["prompt_tokens"] == meta["usage"]["total_tokens"] > 0
    bare = post(url, {"input": SENTENCES, "encoding_format": "bytes_only"})
    assert "metadata" not in bare.headers and bare.content == np.asarray(normalized, "<f4").tobytes()
    # vLLM's /pooling on an embedding model: the same vectors as pooling items; only its task, no dimensions
    pooled = loopback_http.post(f"{url}/pooling", json={"input": SENTENCES, "task": "embed"}, timeout=60).json()
    assert [d["object"] for d in pooled["data"]] == ["pooling"] * len(SENTENCES) and pooled["id"].startswith("pooling-")
    np.testing.assert_allclose([d["data"] for d in pooled["data"]], normalized, atol=1e-6, rtol=0)
    packed = loopback_http.post(f"{url}/pooling", json={"input": SENTENCES[0], "encoding_format": "base64"}, timeout=60).json()["data"][0]
    assert base64.b64decode(packed["data"]) == np.asarray(normalized[0], "<f4").tobytes()
    for body, words in (({"task": "token_embed"}, "pools for 'embed', not 'token_embed'"), ({"dimensions": 8}, "'dimensions' is not")):
        r = loopback_http.post(f"{url}/pooling", json={"input": SENTENCES[0], **body}, timeout=60)
        assert r.status_code == 400 and words in r.json()["error"]["message"], r.text


@pytest.mark.parametrize(
    "body, message",
    [
        ({"input": "hi", "truncate_prompt_tokens": 0}, "'truncate_prompt_tokens' must be a number of tokens from 1 to"),
        ({"input": "hi", "truncate_prompt_tokens": 129}, "this model's maximum of 128, or -1"),
        ({"input": "hi", "normalize": False}, "Parameter 'normalize' was removed (as in vLLM); use 'use_activation'"),
        ({"input": "hi", "padding": "max_length"}, "'padding' other than \"do_not_pad\" is not applied"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "This model has no chat template: send the texts as 'input'"),
        ({"input": "hi", "truncation_side": "middle"}, "'truncation_side' must be"),
        ({"input": "hi", "embed_dtype": "int8"}, "'embed_dtype' must be one of"),
        ({"input": "hi", "endianness": "middle"}, "'endianness' must be one of"),
        ({"input": "hi", "use_activation": "no"}, "'use_activation' must be true or false"),
        ({"input": "word " * 200}, "send 'truncate_prompt_tokens'"),
    ],
)
def test_bad_vllm_fields_get_a_400_that_says_what_to_send(server, body, message):
    r = post(server[0], body)
    assert r.status_code == 400 and message in r.json()["error"]["message"], r.text


@pytest.mark.parametrize(
    "body, message",
    [
        ({"input": []}, "'input' must be"),
        ({"input": [1, "a"]}, "'input' must be"),
        ({"input": "word " * 200}, "more than this model's maximum of 128"),
        ({"input": [[5, 10**9]]}, "outside this model's vocabulary"),
        ({"input": "hi", "encoding_format": "int8"}, "'encoding_format' must be one of"),
        ({"input": "hi", "dimensions": 100}, "have 384 dimensions"),
        ({"input": ["a"] * 2049}, "At most 2048 inputs"),
    ],
)
def test_bad_input_gets_a_400_that_says_what_to_send(server, body, message):
    r = post(server[0], body)
    assert r.status_code == 400 and message in r.json()["error"]["message"], r.text


def test_unknown_model_and_options_that_do_not_apply(server, tiny_model_dir):
    url, folder = server
    r = post(url, {"input": "hi", "model": "other"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert loopback_http.get(f"{url}/health").json()["status"] == "ok"
    ids = AutoTokenizer.from_pretrained(folder)("The cat sits")["input_ids"]
    assert loopback_http.post(f"{url}/tokenize", json={"prompt": "The cat sits"}, timeout=30).json()["tokens"] == ids  # vLLM's route
    assert is_embedding_model(str(folder)) and not is_embedding_model(str(tiny_model_dir("llama")))
    with pytest.raises(ValueError, match="served for embeddings .*--chat_template do not apply"):
        build_from_args(parse_args(["--model_name", str(folder), "--chat_template", "{{ messages }}"]))
    with pytest.raises(FileNotFoundError, match="is not a compiled QEfficient artifact"):  # a folder is not one
        build_from_args(parse_args(["--qpc_path", str(folder), "--task", "embed"]))
    ray = pytest.importorskip("ray", reason='Ray is optional: pip install "QEfficient[ray]"')
    assert ray
    from QEfficient.distributed.ray_serve import application_from_args

    for task in ("auto", "embed"):  # Ray's replicas serve it (tests/test_ray.py), refusing what the server refuses
        with pytest.raises(ValueError, match="served for embeddings .*--chat_template do not apply"):
            application_from_args(parse_args(["--ray", "--model_name", str(folder), "--task", task, "--chat_template", "{{ messages }}"]))


def test_models_the_server_would_get_wrong_are_told_apart(tmp_path):
    """Auto-detection takes text encoders' base checkpoints, sentence-transformers folders and contrastive image-text
    models (CLIP) only, and a folder whose modules or pooling this server does not run is refused at start instead of
    giving other vectors."""
    import json

    from transformers import AutoTokenizer, BertConfig, CLIPConfig, LlamaConfig, RobertaConfig

    from QEfficient.models.sentence_transformers import (
        check_sentence_transformers_folder,
        max_input_tokens,
        sentence_transformers_pooling,
        sentence_transformers_width,
        served_input_limit,
    )

    cases = {
        "bert-base": (BertConfig(architectures=["BertModel"]), True),
        "bert-mlm": (BertConfig(architectures=["BertForMaskedLM"]), False),
        "llama-base": (LlamaConfig(architectures=["LlamaModel"]), False),
        "clip": (CLIPConfig(architectures=["CLIPModel"]), True),  # texts and images (test_server_dual_embeddings.py)
    }
    for name, (config, expected) in cases.items():
        config.save_pretrained(tmp_path / name)
        assert is_embedding_model(str(tmp_path / name)) is expected, name

    folder = tmp_path / "st"
    (folder / "1_Pooling").mkdir(parents=True)
    modules = [
        {"path": "", "type": "sentence_transformers.models.Transformer"},
        {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    check_sentence_transformers_folder(folder)  # mean pooling: served
    unknown = {"pooling_mode_attention_tokens": True, "pooling_mode_mean_tokens": False}  # a mode of a later version, say
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(unknown))
    with pytest.raises(ValueError, match="pools with \\['pooling_mode_attention_tokens'\\]; QEfficient pools by"):
        check_sentence_transformers_folder(folder)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True, "pooling_mode_mean_tokens": False}))
    (folder / "modules.json").write_text(json.dumps([*modules, {"path": "2_CNN", "type": "sentence_transformers.models.CNN"}]))
    with pytest.raises(ValueError, match="has a CNN module"):
        check_sentence_transformers_folder(folder)
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "config.json").write_text(json.dumps({"activation_function": "torch.nn.modules.activation.Softmax"}))
    (folder / "modules.json").write_text(json.dumps([*modules, {"path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    with pytest.raises(ValueError, match="ends in torch.nn.modules.activation.Softmax; QEfficient runs Identity, Tanh"):
        check_sentence_transformers_folder(folder)
    (folder / "2_Dense" / "config.json").write_text(json.dumps({"activation_function": "torch.nn.modules.activation.Tanh"}))
    with pytest.raises(ValueError, match="neither model.safetensors nor pytorch_model.bin"):
        check_sentence_transformers_folder(folder)
    (folder / "2_Dense" / "config.json").write_text(json.dumps({"activation_function": None, "module_input_name": "token_embeddings"}))
    with pytest.raises(ValueError, match="reads or writes \\['sentence_embedding', 'token_embeddings'\\]"):
        check_sentence_transformers_folder(folder)
    (folder / "2_Dense" / "config.json").write_text(json.dumps({"in_features": 4}))
    with pytest.raises(ValueError, match="names no activation_function"):
        check_sentence_transformers_folder(folder)
    normalize = {"path": "3_Normalize", "type": "sentence_transformers.models.Normalize"}
    dense = {"path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    (folder / "modules.json").write_text(json.dumps([*modules, normalize, dense]))
    with pytest.raises(ValueError, match="runs Transformer -> Pooling -> Normalize -> Dense; QEfficient runs"):
        check_sentence_transformers_folder(folder)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    (folder / "modules.json").write_text(json.dumps(modules))
    check_sentence_transformers_folder(folder)
    # as sentence-transformers 6.3 reads it: the modes set true (5.3 added its default, mean)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True, "pooling_mode_max_tokens": True}))
    check_sentence_transformers_folder(folder)
    assert sentence_transformers_pooling(folder) == ["cls", "max"] and sentence_transformers_width(folder, 64) == 128
    assert sentence_transformers_width(folder, 64, pooled=True) == 64  # a graph that pooled: one mode
    named = {"pooling_mode": "LastToken", "pooling_mode_mean_tokens": True}  # the name wins over the booleans
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(named))
    assert sentence_transformers_pooling(folder) == ["lasttoken"]
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "attention"}))
    with pytest.raises(ValueError, match="names the mode 'attention'; sentence-transformers knows cls"):
        check_sentence_transformers_folder(folder)

    minilm = minilm_folder()
    tok = AutoTokenizer.from_pretrained(minilm)
    config = BertConfig.from_pretrained(minilm)
    assert max_input_tokens(minilm, config, tok, 128) == 128 and max_input_tokens(minilm, config, tok, 4096) == 256  # its max_seq_length
    roberta = RobertaConfig(max_position_embeddings=514, pad_token_id=1)
    assert max_input_tokens(tmp_path, roberta, tok, 4096) == 512  # RoBERTa's positions start past its padding id
    # a server's --ctx_len: None is 512 within the limits; one past them is refused naming the limit that binds
    assert served_input_limit(minilm, config, tok, None, "all-MiniLM-L6-v2") == 256
    assert served_input_limit(minilm, config, tok, 100, "all-MiniLM-L6-v2") == 100
    with pytest.raises(ValueError, match=r"--ctx_len 300 is more than 'all-MiniLM-L6-v2' reads \(256 tokens: its max_seq_length\)"):
        served_input_limit(minilm, config, tok, 300, "all-MiniLM-L6-v2")
