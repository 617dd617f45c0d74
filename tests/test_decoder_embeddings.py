"""Embedding models built on a decoder (Qwen3-Embedding, e5-mistral: a causal LM's base model pooled at
its last token; EmbeddingGemma: bidirectional, with sliding-window layers) and sentence-transformers' Dense modules:
QEFFAutoModel and POST /v1/embeddings against transformers, with padding on either side."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoTokenizer

from QEfficient import QEFFAutoModel
from QEfficient.cloud.serve import build_from_args
from QEfficient.cloud.serve_args import parse_args
from QEfficient.loading.sentence_transformers_files import sentence_bert_config
from QEfficient.serving.encoder_artifact import CompiledEncoder
from QEfficient.transform.encoder import cls_pooling, last_token_pooling, mean_pooling
from tests.helpers import serve_on_loopback
from tests.loopback import loopback_http
from tests.tiny_models import tiny_config

# the second is longer than the tiny models' sliding window (12): the windows shape its embedding
TEXTS = ["My name is Ada", "The sun rises over the quiet sea every morning and the robot paints it", "Paris"]
# (model type, bidirectional): Qwen3-Embedding's base, e5-mistral's (sliding window), EmbeddingGemma's, and ModernBERT
# (an encoder whose local layers see keys up to and including sliding_window away; Gemma 3's, strictly less)
DECODERS = [("qwen3", False), ("mistral", False), ("gemma3_text", True), ("modernbert", True)]
_MODERNBERT = dict(vocab_size=320, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96, pad_token_id=0)


@pytest.fixture(scope="module")
def decoder_dir(tmp_path_factory, tokenizer_dir):
    made = {}

    def make(model_type: str, bidirectional: bool) -> Path:
        if (model_type, bidirectional) not in made:
            folder = tmp_path_factory.mktemp(f"{model_type}-base")
            if model_type == "modernbert":  # windows of 4 keys each side, every third layer global
                config = AutoConfig.for_model(model_type, **_MODERNBERT, local_attention=8, global_attn_every_n_layers=3)
            else:
                config = tiny_config(model_type)
            if model_type == "gemma3_text":
                config.use_bidirectional_attention = True
            torch.manual_seed(3)
            AutoModel.from_config(config).save_pretrained(folder)
            AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
            made[(model_type, bidirectional)] = folder
        return made[(model_type, bidirectional)]

    return make


def hf_pooled(folder: Path, enc, pooling) -> np.ndarray:
    """transformers' base model on the 2-D mask (its own causal, window and bidirectional masks), then the pooling."""
    hf = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        hidden = hf(input_ids=torch.as_tensor(enc["input_ids"]), attention_mask=torch.as_tensor(enc["attention_mask"])).last_hidden_state
    return pooling(hidden, torch.as_tensor(enc["attention_mask"])).numpy()


@pytest.mark.parametrize("model_type, bidirectional", DECODERS)
def test_decoder_base_models_pool_as_transformers(model_type, bidirectional, decoder_dir):
    folder = decoder_dir(model_type, bidirectional)
    tok = AutoTokenizer.from_pretrained(folder)
    pooling = "mean" if bidirectional else "lasttoken"
    model = QEFFAutoModel.from_pretrained(folder, pooling=pooling)
    model.compile(seq_len=[8, 64], batch_size=2, num_cores=1)
    for side in ("right", "left"):
        tok.padding_side = side
        enc = tok(TEXTS, padding=True, return_tensors="np")
        expected = hf_pooled(folder, enc, mean_pooling if bidirectional else last_token_pooling)
        np.testing.assert_allclose(model.generate(enc)["output"], expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(model.generate(enc, runtime_ai100=False)["output"], expected, atol=1e-5, rtol=0)
    if model_type == "mistral":  # each text alone: the same vectors as in the padded batch
        alone = np.concatenate([model.generate(tok([t], return_tensors="np"))["output"] for t in TEXTS])
        np.testing.assert_allclose(alone, expected, atol=1e-5, rtol=0)


def test_cls_pooling_in_the_graph_takes_each_rows_first_real_token(decoder_dir):
    """pooling="cls" in the graph: the first real token of each row, past left padding too (vLLM's CLS pooler)."""
    folder = decoder_dir("modernbert", True)
    tok = AutoTokenizer.from_pretrained(folder)
    model = QEFFAutoModel.from_pretrained(folder, pooling="cls")
    model.compile(seq_len=[64], batch_size=3, num_cores=1)
    for side in ("right", "left"):
        tok.padding_side = side
        enc = tok(TEXTS, padding=True, return_tensors="np")
        first = enc["attention_mask"].argmax(1)
        with torch.no_grad():
            hidden = AutoModel.from_pretrained(folder).eval()(**{k: torch.as_tensor(v) for k, v in enc.items()}).last_hidden_state
        np.testing.assert_allclose(model.generate(enc)["output"], hidden[np.arange(3), first].numpy(), atol=1e-5, rtol=0)


DENSE = [(64, 40, "torch.nn.modules.activation.Tanh", True), (40, 24, "torch.nn.modules.linear.Identity", False)]


def sentence_transformers_folder(base: Path, folder: Path, pooling_key: str) -> Path:
    """``base`` as a sentence-transformers model: Transformer, Pooling, two Dense modules, Normalize, laid out as
    sentence-transformers saves them."""
    shutil.copytree(base, folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (folder / "1_Pooling").mkdir()
    modes = {key: key == pooling_key for key in ("pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens")}
    pooling = {"word_embedding_dimension": 64, **modes, pooling_key: True}  # every mode written, as sentence-transformers saves
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    generator = torch.Generator().manual_seed(5)
    for i, (n_in, n_out, activation, bias) in enumerate(DENSE, start=2):
        where = folder / f"{i}_Dense"
        where.mkdir()
        config = {"in_features": n_in, "out_features": n_out, "bias": bias, "activation_function": activation}
        (where / "config.json").write_text(json.dumps(config))
        weights = {"linear.weight": torch.randn(n_out, n_in, generator=generator) * 0.2}
        if bias:
            weights["linear.bias"] = torch.randn(n_out, generator=generator) * 0.1
        else:  # saved in bfloat16, as some models ship them (numpy has no such type)
            weights = {key: value.to(torch.bfloat16) for key, value in weights.items()}
        save_file(weights, where / "model.safetensors")
        modules.append({"idx": i, "name": str(i), "path": where.name, "type": "sentence_transformers.models.Dense"})
    modules.append({"idx": 4, "name": "4", "path": "4_Normalize", "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 48}))
    return folder


def sentence_transformers_reference(folder: Path, texts: list[str] | dict, pooling, normalized: bool = True) -> np.ndarray:
    """What sentence-transformers computes from these modules, with torch: pooling, Linear + activation, L2 norm where
    ``normalized`` (of ``texts``, or of their tokens given as input_ids and attention_mask)."""
    tok = AutoTokenizer.from_pretrained(folder)
    enc = texts if isinstance(texts, dict) else tok(texts, padding=True, return_tensors="np")
    out = torch.as_tensor(hf_pooled(folder, enc, pooling))
    for i, (n_in, n_out, activation, bias) in enumerate(DENSE, start=2):
        layer = torch.nn.Linear(n_in, n_out, bias=bias)
        weights = load_file(folder / f"{i}_Dense" / "model.safetensors")
        layer.load_state_dict({key.removeprefix("linear."): value for key, value in weights.items()})
        act = torch.nn.Tanh() if activation.endswith("Tanh") else torch.nn.Identity()
        with torch.no_grad():
            out = act(layer(out))
    return (torch.nn.functional.normalize(out, dim=1) if normalized else out).numpy()


@pytest.fixture(scope="module")
def qwen3_embedding(decoder_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("st") / "qwen3-embedding"
    return sentence_transformers_folder(decoder_dir("qwen3", False), folder, "pooling_mode_lasttoken")


def test_a_sentence_transformers_folder_encodes_through_its_dense_modules(qwen3_embedding):
    model = QEFFAutoModel.from_pretrained(qwen3_embedding)  # the folder's own pooling: last token
    model.compile(seq_len=[16, 48], num_cores=1)
    tok = AutoTokenizer.from_pretrained(qwen3_embedding)
    got = model.encode(TEXTS, tok)
    assert got.shape == (3, 24)
    expected = sentence_transformers_reference(qwen3_embedding, TEXTS, last_token_pooling)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(model.encode(TEXTS, tok, normalize=False), got)  # the Normalize module runs regardless
    # a Matryoshka model's shorter vectors (sentence-transformers' truncate_dim): cut after the Normalize module, and
    # normalized again only with normalize=True (sentence-transformers' normalize_embeddings)
    np.testing.assert_allclose(model.encode(TEXTS, tok, truncate_dim=8), expected[:, :8], atol=1e-5, rtol=0)
    short = torch.nn.functional.normalize(torch.as_tensor(expected[:, :8]), dim=1).numpy()
    np.testing.assert_allclose(model.encode(TEXTS, tok, normalize=True, truncate_dim=8), short, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="normalize must be True or False"):
        model.encode(TEXTS, tok, normalize="no")
    np.testing.assert_array_equal(model.encode(TEXTS, tok, truncate_dim=100), got)  # as sentence-transformers: all there is
    with pytest.raises(ValueError, match="truncate_dim must be a positive integer"):
        model.encode(TEXTS, tok, truncate_dim=0)
    long_text = " ".join(["word"] * 60)  # past max_seq_length (48): cut there, as sentence-transformers cuts it
    cut = sentence_transformers_reference(qwen3_embedding, dict(tok([long_text], truncation=True, max_length=48)), last_token_pooling)
    np.testing.assert_allclose(model.encode(long_text, tok), cut[0], atol=1e-5, rtol=0)  # a string: one vector
    np.testing.assert_allclose(model.encode([long_text], tok), cut, atol=1e-5, rtol=0)
    uncompiled = QEFFAutoModel.from_pretrained(qwen3_embedding)  # transformers' forward, before compile()
    np.testing.assert_allclose(uncompiled.encode(long_text, tok), cut[0], atol=1e-5, rtol=0)
    uncompiled.compile(seq_len=16, num_cores=1)  # a shorter graph cuts it sooner, and says so
    with pytest.warns(UserWarning, match="cut at 16 tokens, the longest compiled seq_len, where sentence-transformers reads up to 48"):
        uncompiled.encode([TEXTS[0], long_text], tok)
    # each text as sent, as sentence-transformers 5.4 and later (this byte-level tokenizer reads the spaces: " Hi" is not "Hi")
    assert tok(" " + TEXTS[0])["input_ids"] != tok(TEXTS[0])["input_ids"]
    spaced = [f"  {t} " for t in TEXTS]
    as_sent = sentence_transformers_reference(qwen3_embedding, spaced, last_token_pooling)
    np.testing.assert_allclose(model.encode(spaced, tok), as_sent, atol=1e-5, rtol=0)
    lowered = shutil.copytree(qwen3_embedding, qwen3_embedding.parent / "lowercased")  # and lowercases where the folder says so
    (lowered / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 48, "do_lower_case": True}))
    model = QEFFAutoModel.from_pretrained(lowered)
    model.compile(seq_len=[16, 48], num_cores=1)
    cased = [t.upper() for t in TEXTS]
    assert tok(cased[0])["input_ids"] != tok(TEXTS[0].lower())["input_ids"]
    want = sentence_transformers_reference(lowered, [t.lower() for t in TEXTS], last_token_pooling)
    np.testing.assert_allclose(model.encode(cased, tok), want, atol=1e-5, rtol=0)
    for args in (["--model_name", str(lowered), "--ctx_len", "48"], ["--qpc_path", str(model.qpc_path)]):
        app, runner = build_from_args(parse_args([*args, "--num_cores", "1"]))
        try:  # the servers too (from the folder, from the artifact), as vLLM reads do_lower_case (it does not strip)
            with serve_on_loopback(app, log_level="critical") as url:
                r = loopback_http.post(f"{url}/v1/embeddings", json={"input": cased}, timeout=120)
                np.testing.assert_allclose(np.array([d["embedding"] for d in r.json()["data"]]), want, atol=1e-5, rtol=0)
        finally:
            runner.stop()
    # the older names of that file, which sentence-transformers reads too
    (lowered / "sentence_bert_config.json").rename(lowered / "sentence_roberta_config.json")
    assert sentence_bert_config(lowered) == {"max_seq_length": 48, "do_lower_case": True}


def test_a_folder_without_normalize_encodes_unnormalized_as_sentence_transformers(qwen3_embedding, tmp_path):
    folder = shutil.copytree(qwen3_embedding, tmp_path / "unnormalized")
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps([m for m in modules if not m["type"].endswith("Normalize")]))
    model = QEFFAutoModel.from_pretrained(folder)
    model.compile(seq_len=48, num_cores=1)
    tok = AutoTokenizer.from_pretrained(folder)
    raw = sentence_transformers_reference(folder, TEXTS, last_token_pooling, normalized=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(model.encode(TEXTS, tok), raw, atol=1e-5, rtol=0)  # normalize_embeddings' default: False
    np.testing.assert_allclose(model.encode(TEXTS, tok, truncate_dim=8), raw[:, :8], atol=1e-5, rtol=0)
    unit = sentence_transformers_reference(folder, TEXTS, last_token_pooling)
    np.testing.assert_allclose(model.encode(TEXTS, tok, normalize=True), unit, atol=1e-5, rtol=0)
    # the artifact alone encodes the same, and so does the server, which normalizes as the folder does (vLLM too)
    np.testing.assert_allclose(CompiledEncoder(model.qpc_path, 1).encode(TEXTS), raw, atol=1e-5, rtol=0)
    app, runner = build_from_args(parse_args(["--qpc_path", str(model.qpc_path), "--num_cores", "1"]))
    try:
        with serve_on_loopback(app, log_level="critical") as url:
            r = loopback_http.post(f"{url}/v1/embeddings", json={"input": TEXTS}, timeout=120)
            np.testing.assert_allclose(np.array([d["embedding"] for d in r.json()["data"]]), raw, atol=1e-5, rtol=0)
    finally:
        runner.stop()


def test_the_server_serves_a_decoder_embedding_model(qwen3_embedding):
    app, runner = build_from_args(parse_args(["--model_name", str(qwen3_embedding), "--ctx_len", "48", "--num_cores", "1"]))
    try:
        with serve_on_loopback(app, log_level="critical") as url:
            r = loopback_http.post(f"{url}/v1/embeddings", json={"input": TEXTS, "dimensions": 24}, timeout=120)
            assert r.status_code == 200, r.text
            got = np.array([d["embedding"] for d in r.json()["data"]], np.float32)
            expected = sentence_transformers_reference(qwen3_embedding, TEXTS, last_token_pooling)
            np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
            for dimensions, message in ((64, "have 24 dimensions"), (8, "--hf_overrides '{\"is_matryoshka\": true}'")):
                r = loopback_http.post(f"{url}/v1/embeddings", json={"input": "hi", "dimensions": dimensions}, timeout=120)
                assert r.status_code == 400 and message in r.json()["error"]["message"], r.text
            r = loopback_http.post(f"{url}/v1/embeddings", json={"input": "word " * 60}, timeout=120)  # max_seq_length 48
            assert r.status_code == 400 and "maximum of 48" in r.json()["error"]["message"]
            empties = (({"input": ["hi", ""]}, "input[1] is empty"), ({"input": "", "add_special_tokens": False}, "input is empty"))
            for body, message in empties:  # a tokenizer that adds no token to ""
                r = loopback_http.post(f"{url}/v1/embeddings", json=body, timeout=120)
                assert r.status_code == 400 and message in r.json()["error"]["message"], r.text
            r = loopback_http.post(f"{url}/rerank", json={"query": "q", "documents": ["a", ""]}, timeout=120)
            assert r.status_code == 400 and r.json()["error"]["param"] == "documents", r.text
            assert "documents[1] is empty" in r.json()["error"]["message"]
    finally:
        runner.stop()
    # as a Matryoshka model (vLLM's --hf_overrides): 'dimensions' asks for the vectors' first ones, normalized after the cut
    short = torch.nn.functional.normalize(torch.as_tensor(expected[:, :8]), dim=1).numpy()
    for overrides in ({"matryoshka_dimensions": [8, 16]}, {"is_matryoshka": True}):
        args = ["--model_name", str(qwen3_embedding), "--ctx_len", "48", "--num_cores", "1", "--hf_overrides", json.dumps(overrides)]
        app, runner = build_from_args(parse_args(args))
        try:
            with serve_on_loopback(app, log_level="critical") as url:
                for dimensions, want in ((8, short), (24, expected), (None, expected)):
                    r = loopback_http.post(f"{url}/v1/embeddings", json={"input": TEXTS, "dimensions": dimensions}, timeout=120)
                    np.testing.assert_allclose(np.array([d["embedding"] for d in r.json()["data"]]), want, atol=1e-5, rtol=0)
                refused = [(25, "at most that, not 25")]
                if "is_matryoshka" not in overrides:
                    refused.append((12, "Matryoshka dimensions are [8, 16] (or all 24)"))
                for dimensions, message in refused:
                    r = loopback_http.post(f"{url}/v1/embeddings", json={"input": "hi", "dimensions": dimensions}, timeout=120)
                    assert r.status_code == 400 and message in r.json()["error"]["message"], r.text
        finally:
            runner.stop()
    for overrides, message in (
        ({"matryoshka_dimensions": 8}, "matryoshka_dimensions must be a list of widths from 1 to the model's 24"),
        ({"matryoshka_dimensions": [8, 32]}, "matryoshka_dimensions must be a list"),
        ({"is_matryoshka": "yes"}, "is_matryoshka must be true or false"),
    ):
        with pytest.raises(ValueError, match=message):  # at start, not at the first request
            build_from_args(parse_args(["--model_name", str(qwen3_embedding), "--num_cores", "1", "--hf_overrides", json.dumps(overrides)]))


def served_embeddings(args: list[str]) -> np.ndarray:
    """The server's embeddings of TEXTS, started with ``args``."""
    app, runner = build_from_args(parse_args([*args, "--ctx_len", "48", "--num_cores", "1"]))
    try:
        with serve_on_loopback(app, log_level="critical") as url:
            r = loopback_http.post(f"{url}/v1/embeddings", json={"input": TEXTS}, timeout=120)
            assert r.status_code == 200, r.text
            got = np.array([d["embedding"] for d in r.json()["data"]], np.float32)
    finally:
        runner.stop()
    return got


def test_an_encoders_base_checkpoint_is_served_pooled_at_its_cls_token(decoder_dir):
    """A folder that declares no pooling (no sentence-transformers Pooling module): vLLM pools an encoder at its first
    token (CLS), then L2 norm; encode() in Python pools the mean, as sentence-transformers does with such a folder."""
    folder = decoder_dir("modernbert", True)
    got = served_embeddings(["--model_name", str(folder)])
    enc = AutoTokenizer.from_pretrained(folder)(TEXTS, padding=True, return_tensors="np")
    expected = torch.nn.functional.normalize(torch.as_tensor(hf_pooled(folder, enc, cls_pooling)), dim=1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    model = QEFFAutoModel.from_pretrained(folder)
    model.compile(seq_len=[64], num_cores=1)
    raw_mean = torch.as_tensor(hf_pooled(folder, enc, mean_pooling))
    mean = torch.nn.functional.normalize(raw_mean, dim=1).numpy()
    np.testing.assert_allclose(model.encode(TEXTS, AutoTokenizer.from_pretrained(folder)), mean, atol=1e-5, rtol=0)
    # vLLM's --pooler_config sets another pooling and the norm for every request
    got = served_embeddings(["--model_name", str(folder), "--pooler_config", '{"pooling_type": "MEAN", "use_activation": false}'])
    np.testing.assert_allclose(got, raw_mean.numpy(), atol=1e-5, rtol=0)


CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)


def test_chats_are_embedded_through_the_chat_template(qwen3_embedding, tmp_path):
    """vLLM's chat embeddings: ``messages`` (one conversation, or a list of them) rendered by the chat template without a
    generation prompt unless asked, tokenized without the tokenizer's specials (the template writes them)."""
    folder = shutil.copytree(qwen3_embedding, tmp_path / "chat")
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(folder)
    chats = [[{"role": "user", "content": TEXTS[0]}], [{"role": "user", "content": TEXTS[2]}, {"role": "assistant", "content": "ok"}]]
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--ctx_len", "48", "--num_cores", "1"]))

    def post(body: dict) -> httpx.Response:
        return loopback_http.post(f"{url}/v1/embeddings", json=body, timeout=120)

    try:
        with serve_on_loopback(app, log_level="critical") as url:
            for body, chat_list, generation_prompt in (
                ({"messages": chats[0]}, chats[:1], False),
                ({"messages": chats}, chats, False),
                ({"messages": chats[0], "add_generation_prompt": True}, chats[:1], True),
            ):
                r = post(body)
                assert r.status_code == 200, r.text
                kwargs = dict(tokenize=True, add_generation_prompt=generation_prompt, return_dict=False)
                ids = [list(tok.apply_chat_template(chat, **kwargs)) for chat in chat_list]
                expected = post({"input": ids}).json()["data"]  # token ids: the route tested against transformers above
                assert r.json()["usage"]["prompt_tokens"] == sum(map(len, ids))
                np.testing.assert_allclose([d["embedding"] for d in r.json()["data"]], [d["embedding"] for d in expected], atol=1e-6)
            same = post({"input": chats}).json()["data"]  # vLLM takes chats in 'input' too
            np.testing.assert_allclose([d["embedding"] for d in same], [d["embedding"] for d in post({"messages": chats}).json()["data"]])
            for body, words in (
                ({"messages": chats[0], "input": "x"}, "not both"),
                ({"messages": chats[0], "chat_template": "{{ 1 }}"}, "'chat_template' is not taken from a request"),
                ({"messages": [{"role": "user", "content": "word " * 60}]}, "messages has"),  # named as sent
            ):
                r = post(body)
                assert r.status_code == 400 and words in r.json()["error"]["message"], r.text
    finally:
        runner.stop()


def test_pooler_config_fields_are_checked_where_they_do_not_apply(decoder_dir, qwen3_embedding, tiny_model_dir):
    for config, words in (
        ({"normalize": True}, "use 'use_activation' instead"),
        ({"pooling_type": "ALL"}, "pool per token"),
        ({"pooling_type": "MEAN", "seq_pooling_type": "CLS"}, "not both"),
        ({"use_activation": 1}, "'use_activation' must be true or false"),
        ({"dimensions": 0}, "'dimensions' must be a positive number"),
        ({"logit_sigma": 2}, "takes task, pooling_type"),
    ):
        with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as err:
            parse_args(["--model_name", "x", "--pooler_config", json.dumps(config)])
        assert words in err.getvalue(), err.getvalue()
    llama, args = str(tiny_model_dir("llama")), ["--num_cores", "1", "--ctx_len", "48"]
    for model, config, words in (
        (llama, {"use_activation": False}, "use_activation set an embedding model's vectors"),  # served for generation
        (
            str(qwen3_embedding),
            {"dimensions": 8},
            "--pooler_config's dimensions: This model's embeddings have 24 dimensions.*--hf_overrides",
        ),
    ):
        with pytest.raises(ValueError, match=words):
            build_from_args(parse_args(["--model_name", model, *args, "--pooler_config", json.dumps(config)]))
    short = served_embeddings(
        ["--model_name", str(qwen3_embedding), "--hf_overrides", '{"is_matryoshka": true}', "--pooler_config", '{"dimensions": 8}']
    )
    assert short.shape == (3, 8)


def test_task_embed_on_a_causal_lm_pools_its_last_token(tiny_model_dir):
    """A causal LM's checkpoint served with --task embed: its base model, the last token, L2 norm (vLLM's defaults)."""
    folder = tiny_model_dir("llama")
    got = served_embeddings(["--model_name", str(folder), "--task", "embed"])
    enc = AutoTokenizer.from_pretrained(folder)(TEXTS, padding=True, return_tensors="np")
    expected = torch.nn.functional.normalize(torch.as_tensor(hf_pooled(folder, enc, last_token_pooling)), dim=1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


# a chat template that reads a message's content as typed parts and the task, ending each turn with the end token
TYPED_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{% if task %} [{{ task }}]{% endif %} {{ m.content[0].text }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)


def chat_folder(qwen3_embedding: Path, where: Path, template: str, processing: dict, **extra) -> Path:
    """The folder as sentence-transformers 5.4 and later save a model whose tokenizer has a chat template: its Transformer's
    modality_config lists "message"; prompts for queries and documents."""
    folder = shutil.copytree(qwen3_embedding, where)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = template
    tok.save_pretrained(folder)
    modalities = {kind: {"method": "forward", "method_output_name": "last_hidden_state"} for kind in ("text", "message")}
    settings = {"transformer_task": "feature-extraction", "modality_config": modalities, "module_output_name": "token_embeddings"}
    settings |= {"processing_kwargs": processing, "max_seq_length": 48, **extra}
    (folder / "sentence_bert_config.json").write_text(json.dumps(settings))
    prompts = {"query": "Find the passage.", "document": ""}
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"prompts": prompts, "default_prompt_name": None}))
    return folder


def rendered_reference(folder: Path, texts: list[str], processing: dict, typed: bool, prompt="", task=None, limit=48):
    """sentence_transformers_reference over the chat template's renders: each text a user message (typed parts where the
    template reads them), the prompt a system message, cut at ``limit`` tokens with the template's text after the
    content tokenized back over the end."""
    tok = AutoTokenizer.from_pretrained(folder)

    def turn(role: str, text: str) -> dict:
        return {"role": role, "content": [{"type": "text", "text": text}] if typed else text}

    kwargs = {k: v for k, v in processing.get("chat_template", {}).items() if k != "max_length"}  # a length is the tokenizer's
    kwargs |= {"task": task} if task and typed else {}
    rows = []
    for text in texts:
        chat = ([turn("system", prompt)] if prompt else []) + [turn("user", text)]
        rendered = tok.apply_chat_template(chat, tokenize=False, **kwargs)
        ids = tok(rendered, add_special_tokens=False)["input_ids"]
        if len(ids) > limit:
            tail = tok(rendered[rendered.rindex(text) + len(text) :], add_special_tokens=False)["input_ids"]
            ids = ids[: limit - len(tail)] + tail
        rows.append(ids)
    width = max(map(len, rows))
    enc = {"input_ids": np.array([r + [0] * (width - len(r)) for r in rows])}
    enc["attention_mask"] = np.array([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return sentence_transformers_reference(folder, enc, last_token_pooling)


def test_a_folder_taking_chat_messages_encodes_each_text_through_the_chat_template(qwen3_embedding, tmp_path):
    """sentence-transformers 6's "message" modality: each text a user message (plain or typed as the template reads it), the
    prompt a system message before it, processing_kwargs' chat-template arguments (a length among them too), the task for
    a template that reads it, a task's own length (query_length), and the template's tail written back over the end of a
    row cut at the length; the same from the artifact alone (what a Ray embedding actor runs)."""
    from QEfficient.serving.encoder_artifact import CompiledEncoder

    long_text = " ".join(["word"] * 60)
    for name, template, processing, typed, lengths in (
        ("flat", CHAT_TEMPLATE, {"chat_template": {"add_generation_prompt": True}}, False, (48, 24)),
        ("typed", TYPED_TEMPLATE, {"chat_template": {"max_length": 40}}, True, (40, 40)),
    ):
        folder = chat_folder(qwen3_embedding, tmp_path / name, template, processing, **({} if typed else {"query_length": 24}))
        tok = AutoTokenizer.from_pretrained(folder)
        model = QEFFAutoModel.from_pretrained(folder)
        model.compile(seq_len=[16, 48], num_cores=1)

        texts = [*TEXTS, long_text]
        expected = rendered_reference(folder, texts, processing, typed, limit=lengths[0])
        np.testing.assert_allclose(model.encode(texts, tok), expected, atol=1e-5, rtol=0)
        query = rendered_reference(folder, texts, processing, typed, "Find the passage.", "query", lengths[1])
        np.testing.assert_allclose(model.encode_query(texts, tok), query, atol=1e-5, rtol=0)
        document = rendered_reference(folder, texts, processing, typed, "", "document", lengths[0])
        np.testing.assert_allclose(model.encode_document(texts, tok), document, atol=1e-5, rtol=0)
        artifact = CompiledEncoder(model.qpc_path, 1)  # the artifact alone: its run-time tokenizer renders the chats
        np.testing.assert_allclose(artifact.encode(texts), expected, atol=1e-5, rtol=0)
        np.testing.assert_allclose(artifact.encode(texts, prompt_name="query", task="query"), query, atol=1e-5, rtol=0)
    plain = AutoTokenizer.from_pretrained(qwen3_embedding)  # no chat template: it cannot render them
    with pytest.raises(ValueError, match="no chat template"):
        model.encode(TEXTS, plain)
