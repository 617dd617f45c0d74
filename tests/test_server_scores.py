"""vLLM's /score, /rerank and /classify over sequence classifiers: a BERT cross-encoder (its pairs' token types
matter), an XLM-RoBERTa one with an Identity activation, and a three-label classifier; each answer equal to
transformers' logits through the activation sentence-transformers' CrossEncoder applies."""

from __future__ import annotations

import base64
import json
import sys

import httpx
import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from QEfficient import QEFFAutoModelForSequenceClassification
from QEfficient.cloud.serve import build_from_args
from QEfficient.cloud.serve_args import parse_args
from QEfficient.serving.tasks import is_embedding_model, is_sequence_classifier
from tests.helpers import serve_on_loopback
from tests.loopback import loopback_http
from tests.tiny_models import build_wordpiece_tokenizer

QUERY = "What is the capital of France?"
DOCS = ["Paris is the capital of France.", "The sun rises over the quiet sea every morning.", "My name is Ada", "France"]
_TINY = dict(vocab_size=320, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96, max_position_embeddings=130)


def classifier(folder, model_type: str, num_labels: int, **config) -> str:
    torch.manual_seed(11)
    cfg = AutoConfig.for_model(model_type, **_TINY, num_labels=num_labels, pad_token_id=0, **config)
    if num_labels > 1:
        cfg.id2label = {0: "negative", 1: "neutral", 2: "positive"}
        cfg.label2id = {v: k for k, v in cfg.id2label.items()}
    model = AutoModelForSequenceClassification.from_config(cfg)
    with torch.no_grad():  # random init is small; widen it so scores spread
        for p in model.parameters():
            p.mul_(4.0)
    model.save_pretrained(folder)
    build_wordpiece_tokenizer().save_pretrained(folder)
    return str(folder)


def hf_logits(folder: str, first: list[str], second: list[str] | None = None, special: bool = True) -> np.ndarray:
    tok = AutoTokenizer.from_pretrained(folder)
    hf = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    options = dict(padding=True, return_tensors="pt", add_special_tokens=special)
    enc = tok(first, second, **options) if second else tok(first, **options)
    if hf.config.type_vocab_size < 2:  # XLM-RoBERTa's own tokenizer gives no token types
        enc.pop("token_type_ids")
    with torch.no_grad():
        return hf(**enc).logits.numpy()


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory):
    folder = classifier(tmp_path_factory.mktemp("bert-ce"), "bert", 1)
    app, runner = build_from_args(parse_args(["--model_name", folder, "--ctx_len", "64", "--num_cores", "1"]))
    with serve_on_loopback(app, log_level="critical") as url:
        yield url, folder
    runner.stop()


def post(url: str, route: str, body: dict) -> httpx.Response:
    return loopback_http.post(f"{url}{route}", json=body, timeout=120)


def test_pairs_keep_their_token_types(tmp_path):
    """QEFFAutoModelForSequenceClassification on (query, document) pairs: BERT's second text is token type 1."""
    folder = classifier(tmp_path / "bert", "bert", 1)
    tok = AutoTokenizer.from_pretrained(folder)
    enc = tok([QUERY] * len(DOCS), DOCS, padding=True, return_tensors="np")
    assert enc["token_type_ids"].any()
    model = QEFFAutoModelForSequenceClassification.from_pretrained(folder)
    model.compile(seq_len=[16, 32], batch_size=2, num_cores=1)
    expected = hf_logits(folder, [QUERY] * len(DOCS), DOCS)
    np.testing.assert_allclose(model.generate(enc)["logits"].numpy(), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(model.generate(enc, runtime_ai100=False)["logits"].numpy(), expected, atol=1e-5, rtol=0)
    without = {k: v for k, v in enc.items() if k != "token_type_ids"}  # all type 0: what a graph without them computes
    assert np.abs(model.generate(without)["logits"].numpy() - expected).max() > 1e-3


def test_score_and_rerank_equal_transformers_through_a_sigmoid(cross_encoder):
    url, folder = cross_encoder
    expected = 1 / (1 + np.exp(-hf_logits(folder, [QUERY] * len(DOCS), DOCS)[:, 0]))
    r = post(url, "/score", {"text_1": QUERY, "text_2": DOCS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and [d["index"] for d in body["data"]] == [0, 1, 2, 3]
    np.testing.assert_allclose([d["score"] for d in body["data"]], expected, atol=1e-5, rtol=0)
    tok = AutoTokenizer.from_pretrained(folder)
    tokens = sum(len(tok(QUERY, d)["input_ids"]) for d in DOCS)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0}
    pairwise = post(url, "/v1/score", {"text_1": [QUERY, DOCS[0]], "text_2": [DOCS[0], DOCS[1]]}).json()["data"]
    swapped = 1 / (1 + np.exp(-hf_logits(folder, [QUERY, DOCS[0]], [DOCS[0], DOCS[1]])[:, 0]))
    np.testing.assert_allclose([d["score"] for d in pairwise], swapped, atol=1e-5, rtol=0)

    for route in ("/rerank", "/v1/rerank", "/v2/rerank"):
        r = post(url, route, {"query": QUERY, "documents": DOCS, "top_n": 3, "model": folder})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        order = list(np.argsort(-expected)[:3])
        assert [x["index"] for x in results] == order
        assert [x["document"]["text"] for x in results] == [DOCS[i] for i in order]
        np.testing.assert_allclose([x["relevance_score"] for x in results], expected[order], atol=1e-5, rtol=0)
    bare = post(url, "/rerank", {"query": QUERY, "documents": [{"text": d} for d in DOCS], "return_documents": False}).json()
    assert len(bare["results"]) == 4 and all("document" not in x for x in bare["results"])
    assert bare["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert len(post(url, "/rerank", {"query": QUERY, "documents": DOCS, "top_n": -1}).json()["results"]) == 4  # vLLM: all
    ignored = {"text_1": QUERY, "text_2": DOCS, "instruction": "x", "chat_template_kwargs": {"tokenize": True}}  # no template
    np.testing.assert_allclose([d["score"] for d in post(url, "/score", ignored).json()["data"]], expected, atol=1e-5, rtol=0)
    raw = post(url, "/score", {"queries": QUERY, "documents": DOCS, "use_activation": False}).json()["data"]  # vLLM's other names
    np.testing.assert_allclose([d["score"] for d in raw], hf_logits(folder, [QUERY] * len(DOCS), DOCS)[:, 0], atol=1e-5, rtol=0)
    ids = AutoTokenizer.from_pretrained(folder)(DOCS[0])["input_ids"]
    by_ids = post(url, "/classify", {"input": [ids]}).json()["data"][0]["probs"]  # one label: a sigmoid, as vLLM
    np.testing.assert_allclose(by_ids, 1 / (1 + np.exp(-hf_logits(folder, [DOCS[0]])[0])), atol=1e-5, rtol=0)
    pooled = post(url, "/pooling", {"input": [ids]}).json()["data"]  # vLLM's /pooling: the same, as pooling items
    assert pooled[0]["object"] == "pooling" and np.allclose(pooled[0]["data"], by_ids, atol=1e-6)
    r = post(url, "/pooling", {"input": "a", "task": "embed"})
    assert r.status_code == 400 and "pools for 'classify', not 'embed'" in r.json()["error"]["message"], r.text


def vllm_cut(tok, text: str, limit: int) -> str:
    """vLLM's truncate_text_to_tokens, written again with transformers' offsets: the text before the first token past
    ``limit`` (or after the last one kept), until it tokenizes within the limit."""
    while limit and text:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        if len(enc["input_ids"]) <= limit:
            break
        text = text[: min(enc["offset_mapping"][limit - 1][1], enc["offset_mapping"][limit][0], len(text) - 1)]
    return text


def test_queries_and_documents_cut_to_vllms_token_limits(cross_encoder):
    """vLLM's max_tokens_per_query and max_tokens_per_doc on /score and /rerank: each side cut to that many tokens at a
    character boundary before it is paired."""
    url, folder = cross_encoder
    tok = AutoTokenizer.from_pretrained(folder)
    query, docs = vllm_cut(tok, QUERY, 4), [vllm_cut(tok, d, 3) for d in DOCS]
    assert query != QUERY and docs[0] != DOCS[0] and docs[3] == DOCS[3]
    expected = 1 / (1 + np.exp(-hf_logits(folder, [query] * len(docs), docs)[:, 0]))
    limits = {"max_tokens_per_query": 4, "max_tokens_per_doc": 3}
    r = post(url, "/rerank", {"query": QUERY, "documents": DOCS, **limits})
    assert r.status_code == 200, r.text
    got = sorted((x["index"], x["relevance_score"]) for x in r.json()["results"])
    np.testing.assert_allclose([score for _, score in got], expected, atol=1e-5, rtol=0)
    r = post(url, "/score", {"text_1": QUERY, "text_2": DOCS, **limits})
    np.testing.assert_allclose([d["score"] for d in r.json()["data"]], expected, atol=1e-5, rtol=0)
    r = post(url, "/score", {"text_1": QUERY, "text_2": DOCS, "max_tokens_per_doc": 64})
    assert r.status_code == 400 and "'max_tokens_per_doc' must be a number of tokens from 0" in r.json()["error"]["message"]


def test_truncate_prompt_tokens_cuts_pairs_as_vllm(cross_encoder):
    """vLLM's truncate_prompt_tokens on /score, /rerank and /classify: the tokenizer truncates each pair (its longer side
    first, the special tokens kept), or with truncation_side the tokens are cut from that side; a long pair then fits."""
    url, folder = cross_encoder
    tok = AutoTokenizer.from_pretrained(folder)
    hf = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    long_doc = " ".join(DOCS * 6)  # more than the server's 64 tokens with the query

    def expected(encodings: list[dict]) -> np.ndarray:
        with torch.no_grad():
            logits = [hf(**{k: torch.tensor([v]) for k, v in e.items()}).logits[0, 0].item() for e in encodings]
        return 1 / (1 + np.exp(-np.array(logits)))

    docs = [DOCS[0], long_doc]
    truncated = [dict(tok(QUERY, d, truncation=True, max_length=20)) for d in docs]
    assert [len(e["input_ids"]) for e in truncated] == [17, 20]  # the short pair whole
    for route, body in (("/score", {"text_1": QUERY, "text_2": docs}), ("/rerank", {"query": QUERY, "documents": docs})):
        r = post(url, route, {**body, "truncate_prompt_tokens": 20})
        assert r.status_code == 200, r.text
        got = (
            [d["score"] for d in r.json()["data"]]
            if route == "/score"
            else [x["relevance_score"] for x in sorted(r.json()["results"], key=lambda x: x["index"])]
        )
        np.testing.assert_allclose(got, expected(truncated), atol=1e-5, rtol=0)
    whole = [dict(tok(QUERY, d)) for d in docs]
    for side in ("left", "right"):
        cut = [{k: v[-20:] if side == "left" else v[:20] for k, v in e.items()} for e in whole]
        r = post(url, "/score", {"text_1": QUERY, "text_2": docs, "truncate_prompt_tokens": 20, "truncation_side": side})
        np.testing.assert_allclose([d["score"] for d in r.json()["data"]], expected(cut), atol=1e-5, rtol=0)
    r = post(url, "/classify", {"input": long_doc, "truncate_prompt_tokens": -1})  # -1: the longest input served (64)
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == 64, r.text
    # with max_tokens_per_doc the document alone is cut (only_second), to the query, that limit and the special tokens
    query, doc = " ".join([QUERY] * 3), vllm_cut(tok, long_doc, 30)
    special = tok.num_special_tokens_to_add(pair=True)
    limit = min(len(tok(query, add_special_tokens=False)["input_ids"]) + 30 + special, 40)
    only_doc = dict(tok(query, doc, truncation="only_second", max_length=limit))
    assert only_doc != dict(tok(query, doc, truncation=True, max_length=40))  # the longer side first would cut the query too
    r = post(url, "/score", {"text_1": query, "text_2": long_doc, "max_tokens_per_doc": 30, "truncate_prompt_tokens": 40})
    np.testing.assert_allclose([d["score"] for d in r.json()["data"]], expected([only_doc]), atol=1e-5, rtol=0)
    # a limit below the special tokens: the tokenizer leaves the text whole, then its first tokens are kept (vLLM's)
    r = post(url, "/classify", {"input": DOCS[0], "truncate_prompt_tokens": 1, "use_activation": False})
    first = {"input_ids": tok(DOCS[0])["input_ids"][:1], "token_type_ids": [0], "attention_mask": [1]}
    with torch.no_grad():
        logit = hf(**{k: torch.tensor([v]) for k, v in first.items()}).logits[0, 0].item()
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == 1, r.text
    np.testing.assert_allclose(r.json()["data"][0]["probs"], [logit], atol=1e-5)


@pytest.mark.parametrize(
    "route, body, message",
    [
        ("/score", {"text_1": QUERY}, "'text_2' must be a string or a non-empty list"),
        ("/score", {"text_1": ["a", "b"], "text_2": ["c", "d", "e"]}, "send one text_1, or as many as text_2"),
        ("/score", {"text_1": "a", "text_2": "word " * 80}, "more than this model's maximum of 64"),
        ("/rerank", {"query": 3, "documents": ["a"]}, "'query' must be a string"),
        ("/rerank", {"query": "q", "documents": []}, "'documents' must be a non-empty list"),
        ("/rerank", {"query": "q", "documents": [{"title": "a"}]}, "documents[0] must be a string or an object with a 'text'"),
        ("/rerank", {"query": "q", "documents": ["a"], "top_n": 1.5}, "'top_n' must be an integer"),
        ("/rerank", {"query": "q", "documents": ["a"], "truncate_prompt_tokens": 65}, "'truncate_prompt_tokens' must be a number"),
        ("/score", {"text_1": "a", "text_2": "b", "truncate_prompt_tokens": 4, "truncation_side": "top"}, "'truncation_side' must"),
        ("/score", {"text_1": "a", "text_2": "b", "use_activation": "no"}, "'use_activation' must be true or false"),
        ("/rerank", {"query": "q", "documents": ["a"], "return_documents": "yes"}, "'return_documents' must be true or false"),
        ("/classify", {"input": 5}, "'input' must be a string, a list of strings, a list of token ids"),
        ("/classify", {"input": [[3, 10**6]]}, "outside this model's vocabulary"),
    ],
)
def test_bad_requests_get_a_400_that_says_what_to_send(cross_encoder, route, body, message):
    r = post(cross_encoder[0], route, body)
    assert r.status_code == 400 and message in r.json()["error"]["message"], r.text


def test_models_options_and_detection(cross_encoder, tiny_model_dir):
    url, folder = cross_encoder
    r = post(url, "/score", {"text_1": "a", "text_2": "b", "model": "other"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert is_sequence_classifier(folder) and not is_embedding_model(folder)
    import QEfficient

    assert loopback_http.get(f"{url}/version").json() == {"version": QEfficient.__version__}
    ids = AutoTokenizer.from_pretrained(folder)(QUERY)["input_ids"]
    assert loopback_http.post(f"{url}/tokenize", json={"prompt": QUERY}, timeout=30).json() == {
        "count": len(ids),
        "max_model_len": 64,
        "tokens": ids,
        "token_strs": None,
    }
    assert loopback_http.post(f"{url}/detokenize", json={"tokens": ids}, timeout=30).json()["prompt"] == AutoTokenizer.from_pretrained(
        folder
    ).decode(ids)
    assert not is_sequence_classifier(str(tiny_model_dir("llama")))
    with pytest.raises(ValueError, match=r"served for scores \(/score, /rerank, /classify\): --chat_template do not apply"):
        build_from_args(parse_args(["--model_name", folder, "--chat_template", "{{ messages }}"]))
    with pytest.raises(FileNotFoundError, match="is not a compiled QEfficient artifact"):  # a folder is not one
        build_from_args(parse_args(["--qpc_path", folder, "--task", "score"]))


SCORE_TEMPLATE = "{% if instruction %}{{ instruction }} {% endif %}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }} {% endfor %}"


def test_a_cross_encoder_that_scores_chat_messages_renders_each_pair(cross_encoder, tmp_path):
    """sentence-transformers 5.4 and later save a CrossEncoder whose tokenizer has a chat template with a 'message'
    modality: vLLM scores each pair as a "query" and a "document" message through it, with the folder's saved arguments
    under the request's chat_template_kwargs (and instruction), then tokenizes the render as a prompt; the server on the
    folder and on its artifact do the same."""
    import shutil

    folder = shutil.copytree(cross_encoder[1], tmp_path / "chat-ce")
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = SCORE_TEMPLATE
    tok.save_pretrained(folder)
    (folder / "modules.json").write_text(
        json.dumps([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"}])
    )
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"model_type": "CrossEncoder"}))
    text = {"method": "forward", "method_output_name": "logits"}
    config = {"transformer_task": "sequence-classification", "modality_config": {"text": text, "message": text}}
    saved = {"chat_template": {"instruction": "Judge the passage.", "restore_suffix": True}}
    (folder / "sentence_bert_config.json").write_text(json.dumps(config | {"processing_kwargs": saved}))

    def expected(instruction: str) -> np.ndarray:
        rendered = [f"{instruction} query: {QUERY} document: {d} " for d in DOCS]
        assert (
            tok.apply_chat_template(
                [{"role": "query", "content": QUERY}, {"role": "document", "content": DOCS[0]}], tokenize=False, instruction=instruction
            )
            == rendered[0]
        )
        return 1 / (1 + np.exp(-hf_logits(str(folder), rendered)[:, 0]))

    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--ctx_len", "64", "--num_cores", "1"]))
    artifact = app.state.qpc_path
    try:
        with serve_on_loopback(app, log_level="critical") as url:
            r = post(url, "/score", {"text_1": QUERY, "text_2": DOCS})
            assert r.status_code == 200, r.text
            np.testing.assert_allclose([d["score"] for d in r.json()["data"]], expected("Judge the passage."), atol=1e-5, rtol=0)
            r = post(url, "/rerank", {"query": QUERY, "documents": DOCS, "instruction": "Rank it."})
            by_index = sorted(r.json()["results"], key=lambda x: x["index"])
            np.testing.assert_allclose([x["relevance_score"] for x in by_index], expected("Rank it."), atol=1e-5, rtol=0)
            body = {"text_1": QUERY, "text_2": DOCS, "instruction": "Rank it.", "chat_template_kwargs": {"instruction": "Weigh it."}}
            np.testing.assert_allclose([d["score"] for d in post(url, "/score", body).json()["data"]], expected("Weigh it."), atol=1e-5)
            kept = {"text_1": QUERY, "text_2": DOCS, "chat_template_kwargs": {"instruction": None}}  # null: the folder's
            np.testing.assert_allclose(
                [d["score"] for d in post(url, "/score", kept).json()["data"]], expected("Judge the passage."), atol=1e-5
            )
            for bad, words in (
                ({"chat_template_kwargs": {"messages": 1}}, "The chat template rejected this pair"),
                ({"chat_template_kwargs": {"tokenize": True}}, "may not set ['tokenize']"),
                ({"chat_template_kwargs": "x"}, "must be an object"),
                ({"instruction": 3}, "'instruction' must be a string"),
            ):
                r = post(url, "/score", {"text_1": QUERY, "text_2": DOCS[0], **bad})
                assert r.status_code == 400 and words in r.json()["error"]["message"], r.text
        app, runner2 = build_from_args(parse_args(["--qpc_path", str(artifact), "--num_cores", "1"]))
        with serve_on_loopback(app, log_level="critical") as url:  # the artifact keeps the folder's files and the template
            r = post(url, "/score", {"text_1": QUERY, "text_2": DOCS})
            np.testing.assert_allclose([d["score"] for d in r.json()["data"]], expected("Judge the passage."), atol=1e-5, rtol=0)
            r = post(url, "/score", {"text_1": QUERY, "text_2": DOCS, "truncate_prompt_tokens": 12})  # the render truncated
            rendered = [f"Judge the passage. query: {QUERY} document: {d} " for d in DOCS]
            enc = tok(rendered, truncation=True, max_length=12, return_tensors="pt")
            with torch.no_grad():
                cut = AutoModelForSequenceClassification.from_pretrained(folder).eval()(**enc).logits[:, 0].numpy()
            np.testing.assert_allclose([d["score"] for d in r.json()["data"]], 1 / (1 + np.exp(-cut)), atol=1e-5, rtol=0)
        runner2.stop()
    finally:
        runner.stop()
    saved["chat_template"]["chat_template"] = "rerank"  # a named template the tokenizer does not have
    (folder / "sentence_bert_config.json").write_text(json.dumps(config | {"processing_kwargs": saved}))
    with pytest.raises(ValueError, match="its tokenizer has no 'rerank' chat template"):
        build_from_args(parse_args(["--model_name", str(folder), "--ctx_len", "64", "--num_cores", "1"]))


def test_an_identity_cross_encoder_and_a_three_label_classifier(tmp_path):
    """XLM-RoBERTa (no token types) whose config asks for raw logits, as sentence-transformers saves it; a
    classifier's /classify gives softmax probabilities and its label, and refuses /score."""
    reranker = classifier(
        tmp_path / "xlmr", "xlm-roberta", 1, type_vocab_size=1, sbert_ce_default_activation_function="torch.nn.modules.linear.Identity"
    )
    # (a declared Softmax: not run by /score, which a three-label model has not; it stopped the server)
    labels = classifier(tmp_path / "labels", "bert", 3, sbert_ce_default_activation_function="torch.nn.modules.activation.Softmax")
    for folder in (reranker, labels):
        app, runner = build_from_args(parse_args(["--model_name", folder, "--ctx_len", "64", "--num_cores", "1"]))
        try:
            with serve_on_loopback(app, log_level="critical") as url:
                if folder == reranker:
                    r = post(url, "/score", {"text_1": QUERY, "text_2": DOCS})
                    expected = hf_logits(folder, [QUERY] * len(DOCS), DOCS)[:, 0]
                    np.testing.assert_allclose([d["score"] for d in r.json()["data"]], expected, atol=1e-5, rtol=0)
                    raw = hf_logits(folder, DOCS)  # /classify and /pooling: the declared activation too (vLLM's get_act_fn)
                    np.testing.assert_allclose([d["probs"] for d in post(url, "/classify", {"input": DOCS}).json()["data"]], raw, atol=1e-5)
                    pooled = post(url, "/pooling", {"input": DOCS, "encoding_format": "base64"}).json()["data"]
                    got = [np.frombuffer(base64.b64decode(d["data"]), "<f4" if sys.byteorder == "little" else ">f4") for d in pooled]
                    np.testing.assert_allclose(got, raw, atol=1e-5)
                    continue
                r = post(url, "/classify", {"input": DOCS})
                assert r.status_code == 200, r.text
                logits = hf_logits(folder, DOCS)
                probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
                data = r.json()["data"]
                np.testing.assert_allclose([d["probs"] for d in data], probs, atol=1e-5, rtol=0)
                names = ["negative", "neutral", "positive"]
                assert [d["label"] for d in data] == [names[i] for i in probs.argmax(1)] and data[0]["num_classes"] == 3
                r = post(url, "/rerank", {"query": QUERY, "documents": DOCS})
                assert r.status_code == 400 and "this model has 3 labels: use /classify" in r.json()["error"]["message"]
                bare = post(url, "/classify", {"input": DOCS, "add_special_tokens": False})  # vLLM's field (was not read)
                logits = hf_logits(folder, DOCS, special=False)
                probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
                np.testing.assert_allclose([d["probs"] for d in bare.json()["data"]], probs, atol=1e-5, rtol=0)
                counts = [len(AutoTokenizer.from_pretrained(folder)(d, add_special_tokens=False)["input_ids"]) for d in DOCS]
                assert bare.json()["usage"]["prompt_tokens"] == sum(counts)
        finally:
            runner.stop()


def test_what_decides_the_activation_the_task_and_the_graphs_inputs(tmp_path, tiny_model_dir):
    """/classify's probabilities follow problem_type (vLLM's rule); a cross-encoder saved by sentence-transformers 5.4+
    (a modules.json beside it, its activation in config_sentence_transformers.json) is scored, not embedded; a base
    encoder is not scored; a graph exported without token types (before they were inputs) still compiles and runs."""
    from types import SimpleNamespace

    from QEfficient.export.onnx_export import export_encoder_onnx
    from QEfficient.serving.scores_app import classify_probabilities, cross_encoder_activation
    from QEfficient.serving.tasks import pooling_task

    logits = np.array([[0.5, -1.0, 2.0]], np.float32)
    sigmoid = 1 / (1 + np.exp(-logits))
    for problem, expected in [
        ("multi_label_classification", sigmoid),
        ("regression", logits),
        ("single_label_classification", np.exp(logits) / np.exp(logits).sum()),
    ]:
        np.testing.assert_allclose(classify_probabilities(logits, SimpleNamespace(problem_type=problem)), expected, rtol=1e-6)

    folder = classifier(tmp_path / "st54", "bert", 1)
    (tmp_path / "st54" / "modules.json").write_text(json.dumps([{"path": "", "type": "sentence_transformers.base.modules.Transformer"}]))
    (tmp_path / "st54" / "config_sentence_transformers.json").write_text(
        json.dumps({"model_type": "CrossEncoder", "activation_fn": "torch.nn.modules.linear.Identity"})
    )
    assert pooling_task(folder, None, "auto") == "score" and not is_embedding_model(folder)
    assert cross_encoder_activation(AutoConfig.from_pretrained(folder), tmp_path / "st54") == "Identity"

    base = tmp_path / "base"
    AutoConfig.for_model("bert", **_TINY, architectures=["BertModel"]).save_pretrained(base)
    torch.manual_seed(0)
    from transformers import AutoModel

    AutoModel.from_config(AutoConfig.from_pretrained(base)).save_pretrained(base)
    build_wordpiece_tokenizer().save_pretrained(base)
    with pytest.raises(ValueError, match="is not a sequence classifier .*--task embed"):
        build_from_args(parse_args(["--model_name", str(base), "--task", "score", "--num_cores", "1"]))

    model = QEFFAutoModelForSequenceClassification.from_pretrained(folder)
    model.model.token_types = False  # as graphs were exported before token types were an input
    (tmp_path / "old").mkdir()
    old_graph = export_encoder_onnx(model.model, tmp_path / "old", "old", "logits")
    model.model.token_types = True
    model.compile(onnx_path=old_graph, seq_len=16, num_cores=1)
    enc = AutoTokenizer.from_pretrained(folder)(DOCS[:2], padding=True, return_tensors="np")  # one text each: type 0
    np.testing.assert_allclose(model.generate(enc)["logits"].numpy(), hf_logits(folder, DOCS[:2]), atol=1e-5, rtol=0)


def decoder_classifier(folder, model_type: str, num_labels: int, pad_token: str | None) -> str:
    """A decoder saved as a sequence classifier (Qwen2ForSequenceClassification), padding with ``pad_token``, or
    without a padding token at all (as Llama's tokenizer)."""
    from tests.tiny_models import build_tokenizer, tiny_config

    tok = build_tokenizer()
    tok.pad_token = pad_token
    cfg = tiny_config(model_type)
    cfg.num_labels, cfg.pad_token_id = num_labels, tok.pad_token_id
    torch.manual_seed(5)
    model = AutoModelForSequenceClassification.from_config(cfg)
    with torch.no_grad():
        model.score.weight.mul_(8.0)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def hf_rows(folder: str, items: list) -> np.ndarray:
    """transformers' logits, one text or pair at a time (a decoder without a padding token takes no batch)."""
    tok = AutoTokenizer.from_pretrained(folder)
    hf = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        return np.concatenate(
            [hf(**tok(*item if isinstance(item, tuple) else (item,), return_tensors="pt")).logits.numpy() for item in items]
        )


def test_decoder_classifiers_score_their_last_real_token_as_transformers(tmp_path):
    """A decoder's classification head reads the last real token, for padding on either side and whatever the padding
    token's id (transformers finds it by pad_token_id, which the graph's zero padding would break); such a folder is
    served for scores, not generation (vLLM's rule), on /score and /rerank (a one-label reranker) or /classify."""
    from QEfficient.serving.tasks import pooling_task

    reranker = decoder_classifier(tmp_path / "qwen2", "qwen2", 1, pad_token="</s>")  # a padding id other than 0
    labels = decoder_classifier(tmp_path / "llama", "llama", 3, pad_token=None)
    tok = AutoTokenizer.from_pretrained(reranker)
    assert tok.pad_token_id != 0 and AutoTokenizer.from_pretrained(labels).pad_token_id is None
    model = QEFFAutoModelForSequenceClassification.from_pretrained(reranker)
    model.compile(seq_len=[8, 48], batch_size=2, num_cores=1)
    hf = AutoModelForSequenceClassification.from_pretrained(reranker).eval()
    for side in ("right", "left"):
        tok.padding_side = side
        enc = tok(DOCS, padding=True, return_tensors="np")
        with torch.no_grad():
            expected = hf(input_ids=torch.as_tensor(enc["input_ids"]), attention_mask=torch.as_tensor(enc["attention_mask"])).logits
        np.testing.assert_allclose(model.generate(enc)["logits"].numpy(), expected.numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(model.generate(enc, runtime_ai100=False)["logits"].numpy(), expected.numpy(), atol=1e-5, rtol=0)

    for folder in (reranker, labels):
        assert is_sequence_classifier(folder) and pooling_task(folder, None, "auto") == "score"
        app, runner = build_from_args(parse_args(["--model_name", folder, "--ctx_len", "64", "--num_cores", "1"]))
        try:
            with serve_on_loopback(app, log_level="critical") as url:
                if folder == reranker:
                    expected = 1 / (1 + np.exp(-hf_rows(folder, [(QUERY, d) for d in DOCS])[:, 0]))
                    r = post(url, "/score", {"text_1": QUERY, "text_2": DOCS})
                    assert r.status_code == 200, r.text
                    np.testing.assert_allclose([d["score"] for d in r.json()["data"]], expected, atol=1e-5, rtol=0)
                    results = post(url, "/rerank", {"query": QUERY, "documents": DOCS}).json()["results"]
                    assert [x["index"] for x in results] == list(np.argsort(-expected))
                    continue
                r = post(url, "/classify", {"input": ["hi", ""]})  # a decoder's tokenizer gives "" no token (it was a 500)
                assert r.status_code == 400 and "The input at index 1 gives no tokens" in r.json()["error"]["message"], r.text
                r = post(url, "/classify", {"input": DOCS})
                assert r.status_code == 200, r.text
                logits = hf_rows(folder, DOCS)
                probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
                np.testing.assert_allclose([d["probs"] for d in r.json()["data"]], probs, atol=1e-5, rtol=0)
        finally:
            runner.stop()


def qwen3_reranker(folder) -> tuple[str, list[str]]:
    """A causal LM scored as Qwen3-Reranker is, by two tokens' logits (the tiny vocabulary has no "no" and "yes": two
    of its tokens stand in)."""
    from transformers import AutoModelForCausalLM

    from tests.tiny_models import build_tokenizer, tiny_config

    torch.manual_seed(9)
    AutoModelForCausalLM.from_config(tiny_config("qwen3")).save_pretrained(folder)
    tok = build_tokenizer()
    tok.save_pretrained(folder)
    return str(folder), tok.convert_ids_to_tokens([200, 201])


def test_a_causal_lm_scored_by_two_tokens_as_qwen3_reranker(tmp_path):
    """vLLM's hf_overrides for Qwen3-Reranker: the score is the second token's softmax probability against the first at
    the last position of "query + document" (one text, as vLLM joins them), which is what Qwen3-Reranker computes."""
    from transformers import AutoModelForCausalLM

    folder, (no, yes) = qwen3_reranker(tmp_path / "lm")
    overrides = {
        "architectures": ["Qwen3ForSequenceClassification"],
        "classifier_from_token": [no, yes],
        "is_original_qwen3_reranker": True,
    }
    tok = AutoTokenizer.from_pretrained(folder)
    lm = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = tok.convert_tokens_to_ids([no, yes])
    with torch.no_grad():
        pairs = [torch.softmax(lm(**tok(QUERY + d, return_tensors="pt")).logits[0, -1, ids], -1)[1] for d in DOCS]
    expected = np.array([float(p) for p in pairs])
    app, runner = build_from_args(
        parse_args(["--model_name", folder, "--ctx_len", "64", "--num_cores", "1", "--hf-overrides", json.dumps(overrides)])
    )
    try:
        with serve_on_loopback(app, log_level="critical") as url:
            r = post(url, "/score", {"text_1": QUERY, "text_2": DOCS})
            assert r.status_code == 200, r.text
            np.testing.assert_allclose([d["score"] for d in r.json()["data"]], expected, atol=1e-5, rtol=0)
            tokens = sum(len(tok(QUERY + d)["input_ids"]) for d in DOCS)
            assert r.json()["usage"]["prompt_tokens"] == tokens  # joined, not paired
            results = post(url, "/rerank", {"query": QUERY, "documents": DOCS}).json()["results"]
            assert [x["index"] for x in results] == list(np.argsort(-expected))
    finally:
        runner.stop()

    # a label per token (vLLM's no_post_processing): /classify's softmax over those tokens' logits
    model = QEFFAutoModelForSequenceClassification.from_pretrained(folder, classifier_from_token=[no, yes], method="no_post_processing")
    model.compile(seq_len=[16, 48], batch_size=2, num_cores=1)
    enc = tok(DOCS, padding=True, return_tensors="np")
    with torch.no_grad():
        hidden = lm(input_ids=torch.as_tensor(enc["input_ids"]), attention_mask=torch.as_tensor(enc["attention_mask"])).logits
    last = enc["attention_mask"].sum(1) - 1
    expected = hidden.numpy()[np.arange(len(DOCS)), last][:, ids]
    np.testing.assert_allclose(model.generate(enc)["logits"].numpy(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "overrides, extra, message",
    [
        # a key of the config is applied to the causal LM before it is converted (tests/test_hf_overrides.py)
        ({"model_type": "llama", "classifier_from_token": [0, 1], "is_original_qwen3_reranker": True}, [], "model_type cannot change"),
        (
            {"classifier_from_token": ["nope-not-a-token", "yes"], "is_original_qwen3_reranker": True},
            [],
            "are not tokens of this model's tokenizer",
        ),
        ({"is_original_qwen3_reranker": True}, [], "'classifier_from_token' goes with 'method'"),
        ({"classifier_from_token": [0, 1]}, [], "'classifier_from_token' goes with 'method'"),  # vLLM needs a method too
        ({"classifier_from_token": [0, 1], "is_original_qwen3_reranker": "yes"}, [], "must be true or false"),
        ({"classifier_from_token": [0, 1], "is_original_qwen3_reranker": True, "method": "no_post_processing"}, [], "means the method"),
        ({"use_pad_token": False}, [], "name the tokens it scores by in --hf_overrides"),  # a causal LM, no tokens named
        ({"use_pad_token": False}, ["--task", "embed"], "served for scores: leave out --task or use --task score"),
        ({"classifier_from_token": [0, 1, 2], "method": "from_2_way_softmax"}, [], "from_2_way_softmax takes two tokens"),
    ],
)
def test_hf_overrides_that_are_not_taken_are_refused(tmp_path_factory, overrides, extra, message):
    """Refused with what to do; an integer in classifier_from_token stands for the tokenizer's token of that id + 200."""
    folder = tmp_path_factory.getbasetemp() / "reranker-refusals"
    if not folder.is_dir():
        qwen3_reranker(folder)
    tokens = AutoTokenizer.from_pretrained(folder).convert_ids_to_tokens([200, 201, 202])
    given = overrides.get("classifier_from_token") or []
    if given and isinstance(given[0], int):
        overrides = {**overrides, "classifier_from_token": [tokens[i] for i in given]}
    with pytest.raises(ValueError, match=message):
        build_from_args(parse_args(["--model_name", str(folder), "--num_cores", "1", "--hf_overrides", json.dumps(overrides), *extra]))


def test_models_that_are_not_made_or_run_as_classifiers(tmp_path):
    """A model whose logits are soft-capped, or with a head that has no LM rows to take, is not converted; a decoder
    classifier whose attention transformers does not mark causal (BLOOM) is refused, not run with a padding mask only."""
    from transformers import AutoModelForCausalLM

    from tests.tiny_models import build_tokenizer, tiny_config

    config = tiny_config("gemma3_text")
    assert config.final_logit_softcapping
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "gemma")
    tok = build_tokenizer()
    tok.save_pretrained(tmp_path / "gemma")
    tokens = tok.convert_ids_to_tokens([200, 201])
    with pytest.raises(ValueError, match="soft-caps its logits"):
        QEFFAutoModelForSequenceClassification.from_pretrained(
            tmp_path / "gemma", classifier_from_token=tokens, method="from_2_way_softmax"
        )
    with pytest.raises(ValueError, match="go together"):
        QEFFAutoModelForSequenceClassification.from_pretrained(tmp_path / "gemma", classifier_from_token=tokens)
    classifier_dir = decoder_classifier(tmp_path / "qwen2-cls", "qwen2", 1, pad_token="</s>")  # its lm_head would be random
    with pytest.raises(ValueError, match=r"takes a causal LM's checkpoint \(...ForCausalLM\)"):
        QEFFAutoModelForSequenceClassification.from_pretrained(classifier_dir, classifier_from_token=tokens, method="no_post_processing")
    xlnet = AutoConfig.for_model("xlnet", vocab_size=320, d_model=64, n_layer=2, n_head=4, d_inner=96, num_labels=2, pad_token_id=0)
    AutoModelForSequenceClassification.from_config(xlnet).save_pretrained(tmp_path / "xlnet")
    tok.save_pretrained(tmp_path / "xlnet")
    with pytest.raises(ValueError, match="'xlnet' is not supported as a decoder's classifier or base model here"):
        QEFFAutoModelForSequenceClassification.from_pretrained(tmp_path / "xlnet")
    with pytest.raises(SystemExit):  # not JSON: argparse's usage error
        parse_args(["--hf_overrides", "{not json"])


def test_an_lm_head_bias_is_kept_in_the_head():
    """Phi's LM head has a bias: the classifier's carries the tokens' (their difference for from_2_way_softmax)."""
    from transformers import AutoModelForCausalLM

    from QEfficient.transform.lm_as_classifier import lm_as_classifier

    config = AutoConfig.for_model("phi", **_TINY, architectures=["PhiForCausalLM"])
    torch.manual_seed(2)
    lm = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        lm.lm_head.bias.normal_()
    ids = torch.tensor([[5, 9, 30, 41, 7]])
    with torch.no_grad():
        expected = torch.softmax(lm(input_ids=ids).logits[0, -1, [200, 201]], -1)[1]
        classifier = lm_as_classifier(lm, [200, 201], "from_2_way_softmax")
        got = torch.sigmoid(classifier.score(classifier.base_model(input_ids=ids).last_hidden_state[:, -1]))[0, 0]
    assert classifier.score.bias is not None and float(got) == pytest.approx(float(expected), abs=1e-6)
