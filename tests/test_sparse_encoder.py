"""QEFFSparseEncoder: SPLADE sparse encoders as sentence-transformers' SparseEncoder runs them, for a tiny random folder
(BERT's masked LM with weights widened so that the text decides, MLMTransformer -> SpladePooling, a "query" prompt):
each vector within 1e-5 of transformers' masked LM through SPLADE's pooling (1e-4 for sum pooling and log1p_relu); the
sparse tensor, max_active_dims, the prompts, decode and similarity; QEFFAutoModel loads the folder as this class; an
inference-free one (a Router) weighs its queries' tokens and runs SPLADE for documents; the SparseEncoders not run (other
Routers, sparse autoencoders) are refused saying why; SPLADE served as vLLM serves it, from its folder or its artifact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer, BertForMaskedLM

from QEfficient import QEFFAutoModel, QEFFSparseEncoder
from QEfficient.loading.sparse_encoder import read_splade_folder
from tests.loopback import loopback_http
from tests.test_colbert import _widened
from tests.tiny_models import build_wordpiece_tokenizer, tiny_bert_config

TEXTS = ["the cat sat on the mat", "a dog", "late interaction scores each query token, then sums the best matches"]


def tiny_splade(folder: Path, pooling_strategy: str = "max", activation_function: str = "relu") -> Path:
    tok = build_wordpiece_tokenizer()
    _widened(BertForMaskedLM(tiny_bert_config(tok))).save_pretrained(folder)
    tok.save_pretrained(folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.sparse_encoder.models.MLMTransformer"},
        {"idx": 1, "name": "1", "path": "1_SpladePooling", "type": "sentence_transformers.sparse_encoder.models.SpladePooling"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_SpladePooling").mkdir()
    pooling = {"pooling_strategy": pooling_strategy, "activation_function": activation_function, "word_embedding_dimension": len(tok)}
    (folder / "1_SpladePooling" / "config.json").write_text(json.dumps(pooling))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 24, "do_lower_case": False}))
    st_config = {"model_type": "SparseEncoder", "prompts": {"query": "query: ", "document": ""}, "default_prompt_name": None}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(st_config | {"similarity_fn_name": "dot"}))
    return folder


def reference(folder: Path, texts: list[str], pooling_strategy: str = "max", activation_function: str = "relu") -> np.ndarray:
    """transformers' masked LM (its own load of the folder) through SPLADE's pooling, inputs truncated to 24 tokens."""
    tok = AutoTokenizer.from_pretrained(folder)
    enc = tok(texts, padding=True, truncation=True, max_length=24, return_tensors="pt")
    with torch.no_grad():
        logits = AutoModelForMaskedLM.from_pretrained(folder).eval()(**enc).logits
    values = torch.log1p(torch.relu(logits * enc["attention_mask"][..., None]))
    values = torch.log1p(values) if activation_function == "log1p_relu" else values
    return (values.amax(1) if pooling_strategy == "max" else values.sum(1)).numpy()


@pytest.fixture(scope="module")
def splade(tmp_path_factory):
    folder = tiny_splade(tmp_path_factory.mktemp("splade"))
    model = QEFFSparseEncoder.from_pretrained(folder)
    model.compile(num_cores=1)
    return folder, model


def test_vectors_are_the_masked_lm_through_splade_pooling(splade):
    folder, model = splade
    sparse = model.encode(TEXTS, batch_size=2)
    assert sparse.is_sparse and sparse.shape == (3, len(model.tokenizer))
    dense = sparse.to_dense().numpy()
    assert np.abs(dense - reference(folder, TEXTS)).max() < 1e-5
    assert 0 < (dense[1] > 0).sum() < dense.shape[1]  # sparse: not every token of the vocabulary
    assert not np.allclose(dense[0], dense[1], atol=1e-2)  # the text decides

    one = model.encode(TEXTS[1], convert_to_sparse_tensor=False)  # a dense tensor, as SparseEncoder's
    assert isinstance(one, torch.Tensor) and not one.is_sparse and np.abs(one.numpy() - dense[1]).max() < 1e-5
    assert model.encode(TEXTS[1]).is_sparse and model.encode(TEXTS[1]).shape == (len(model.tokenizer),)
    top = model.encode(TEXTS[:2], max_active_dims=3, convert_to_tensor=False, convert_to_sparse_tensor=False)
    assert isinstance(top, np.ndarray) and ((top > 0).sum(1) == 3).all() and np.array_equal(top.max(1), dense[:2].max(1))
    assert np.abs(model.encode(["  " + TEXTS[1] + " "], task="query", show_progress_bar=False).to_dense().numpy() - dense[1]).max() < 1e-5

    query = model.encode_query(TEXTS[1], convert_to_sparse_tensor=False).numpy()  # "query: " before the text
    assert np.abs(query - reference(folder, ["query: " + TEXTS[1]])[0]).max() < 1e-5
    document = model.encode_document(TEXTS[1], convert_to_sparse_tensor=False).numpy()  # the folder's "" prompt
    assert np.abs(document - dense[1]).max() < 1e-5

    scores = model.similarity(model.encode(TEXTS[:2]), sparse)
    assert scores.shape == (2, 3) and torch.allclose(scores, torch.from_numpy(dense[:2] @ dense.T), atol=1e-4)
    decoded = model.decode(sparse[1], top_k=2)
    best = np.argsort(-dense[1])[:2]
    assert [t for t, _ in decoded] == model.tokenizer.convert_ids_to_tokens(best.tolist())
    assert np.allclose([w for _, w in decoded], dense[1][best], atol=1e-5)


@pytest.mark.parametrize("pooling_strategy, activation_function", [("sum", "relu"), ("max", "log1p_relu")])
def test_sum_pooling_and_log1p_relu(tmp_path, pooling_strategy, activation_function):
    folder = tiny_splade(tmp_path / "m", pooling_strategy, activation_function)
    model = QEFFAutoModel.from_pretrained(folder)  # the folder says what it is
    assert type(model) is QEFFSparseEncoder
    model.compile(num_cores=1, seq_len=24)
    ours = model.encode(TEXTS, convert_to_sparse_tensor=False)
    assert np.abs(ours - reference(folder, TEXTS, pooling_strategy, activation_function)).max() < 1e-4


def test_the_layout_of_sentence_transformers_5_4_and_on(tmp_path):
    """From 5.4 a SparseEncoder saves its masked LM as a Transformer (task fill-mask) and names modules by their new
    modules' paths, and a Router as base.modules.router.Router: read by class name, the same vectors."""
    folder = tiny_splade(tmp_path / "m")
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
        {"idx": 1, "name": "1", "path": "1_SpladePooling", "type": "sentence_transformers.sparse_encoder.modules.SpladePooling"},
    ]
    modules[1]["type"] = modules[1]["type"].replace(".SpladePooling", ".splade_pooling.SpladePooling")
    (folder / "modules.json").write_text(json.dumps(modules))
    transformer = {"transformer_task": "fill-mask", "modality_config": {"text": {"method": "forward", "method_output_name": "logits"}}}
    (folder / "sentence_bert_config.json").write_text(json.dumps(transformer | {"module_output_name": "token_embeddings"}))
    tok = AutoTokenizer.from_pretrained(folder)  # the longest input: the tokenizer's, where 5.4 saves it
    tok.model_max_length = 24
    tok.save_pretrained(folder)
    model = QEFFAutoModel.from_pretrained(folder)
    assert type(model) is QEFFSparseEncoder
    model.compile(num_cores=1, seq_len=24)
    expected = reference(folder, TEXTS)
    assert np.abs(model.encode(TEXTS, convert_to_sparse_tensor=False) - expected).max() < 1e-4
    config = json.loads((folder / "config_sentence_transformers.json").read_text()) | {"max_active_dims": 3}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config))  # the folder's default: 3 values a row
    kept = QEFFAutoModel.from_pretrained(folder).encode(TEXTS, convert_to_sparse_tensor=False)
    assert (np.count_nonzero(kept, axis=1) == 3).all()
    top = np.sort(expected, axis=1)[:, -3:]
    assert np.abs(np.sort(kept, axis=1)[:, -3:] - top).max() < 1e-4
    free, _ = tiny_inference_free(tmp_path / "doc")
    config = json.loads((free / "router_config.json").read_text())
    config["types"] = {name: kind.replace(".models.", ".modules.") for name, kind in config["types"].items()}
    (free / "router_config.json").write_text(json.dumps(config))
    (free / "modules.json").write_text(
        json.dumps([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.router.Router"}])
    )
    assert read_splade_folder(free).query_route == "query"
    config["parameters"]["route_mappings"] = {"('query', 'text')": "query", "('document', 'text')": "document"}  # each its own
    (free / "router_config.json").write_text(json.dumps(config))
    assert read_splade_folder(free).document_route == "document"
    config["parameters"]["route_mappings"] = {"(None, 'text')": "document"}  # every text to the document route
    (free / "router_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="maps tasks or modalities to other routes"):
        read_splade_folder(free)


def test_sparse_encoders_not_run_are_refused(tmp_path):
    """A Router of other routes than an inference-free SparseEncoder's and a sparse autoencoder over a dense
    embedding are refused, through QEFFAutoModel too; a SPLADE folder is not served without vLLM's architecture override."""
    from QEfficient.cloud.serve import build_server

    router = tiny_splade(tmp_path / "router")
    (router / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Router"}]))
    with pytest.raises(ValueError, match="Router routes nothing; QEfficient runs an inference-free SparseEncoder's two routes"):
        QEFFAutoModel.from_pretrained(router)
    csr = tiny_splade(tmp_path / "csr")
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_SparseAutoEncoder", "type": "sentence_transformers.sparse_encoder.models.SparseAutoEncoder"},
    ]
    (csr / "modules.json").write_text(json.dumps(modules))
    (csr / "config_sentence_transformers.json").unlink()
    with pytest.raises(ValueError, match="Transformer -> Pooling -> SparseAutoEncoder"):
        QEFFAutoModel.from_pretrained(csr)

    folder = tiny_splade(tmp_path / "n")
    with pytest.raises(ValueError, match="pools its masked LM's logits itself"):
        QEFFSparseEncoder.from_pretrained(folder, pooling="mean")
    with pytest.raises(ValueError, match="sparse encoder.*serve it as vLLM does.*BertSpladeSparseEmbeddingModel.*QEFFSparseEncoder.encode"):
        build_server(str(folder), None, 8, 64, 1, 1)


def test_cosine_similarity_and_a_masked_lm_with_pooling_keeps_its_logits(tmp_path):
    """A folder scoring by cosine is scored so; QEFFAutoModelForMaskedLM given a pooling still answers every token's
    logits (only SPLADE's pooling reads them)."""
    from QEfficient import QEFFAutoModelForMaskedLM

    folder = tiny_splade(tmp_path / "m")
    config = json.loads((folder / "config_sentence_transformers.json").read_text()) | {"similarity_fn_name": "cosine"}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config))
    model = QEFFSparseEncoder.from_pretrained(folder)
    a = model.encode(TEXTS[:2], convert_to_tensor=False, convert_to_sparse_tensor=False)
    unit = a / np.linalg.norm(a, axis=1, keepdims=True)
    assert np.allclose(model.similarity(model.encode(TEXTS[:2]), a).numpy(), unit @ unit.T, atol=1e-5)

    masked_lm = QEFFAutoModelForMaskedLM.from_pretrained(folder, pooling="mean")
    masked_lm.compile(num_cores=1, seq_len=8)
    enc = model.tokenizer(["a dog"], return_tensors="pt")
    assert masked_lm.generate(enc)["logits"].shape == (*enc["input_ids"].shape, len(model.tokenizer))


def test_served_as_vllm_serves_splade(splade, tmp_path, tiny_model_dir, tokenizer_dir):
    """With vLLM's --hf_overrides naming BertSpladeSparseEmbeddingModel, /v1/embeddings gives each input's vocabulary-sized
    vector, as sentence-transformers computes it (vLLM's SPLADE pooling: the max of log(1 + relu), not normalized), each
    input alone within 1e-5 of transformers through SPLADE's pooling; what vLLM would answer otherwise is refused."""
    import base64

    from QEfficient.cloud.serve import build_server
    from QEfficient.serving.tasks import SPLADE_ARCHITECTURE, resolve_pooler_task
    from tests.helpers import serve_on_loopback

    folder, _ = splade
    override = {"architectures": [SPLADE_ARCHITECTURE]}
    expected = [reference(folder, [text])[0] for text in TEXTS[:2]]
    app, runner = build_server(str(folder), None, 8, 24, 1, 1, hf_overrides=dict(override), pooler_task="embed")
    with serve_on_loopback(app, log_level="critical") as url:
        reply = loopback_http.post(f"{url}/v1/embeddings", json={"input": TEXTS[:2]}, timeout=60)
        assert reply.status_code == 200, reply.text
        got = np.array([d["embedding"] for d in reply.json()["data"]])
        assert got.shape == (2, len(expected[0])) and np.abs(got - np.array(expected)).max() < 1e-5
        ids = AutoTokenizer.from_pretrained(folder)(TEXTS[1])["input_ids"]
        assert reply.json()["usage"]["prompt_tokens"] == len(AutoTokenizer.from_pretrained(folder)(TEXTS[0])["input_ids"]) + len(ids)
        packed = loopback_http.post(f"{url}/v1/embeddings", json={"input": [ids], "encoding_format": "base64"}, timeout=60).json()
        assert np.abs(np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), "<f4") - expected[1]).max() < 1e-5
        too_long = loopback_http.post(f"{url}/v1/embeddings", json={"input": "cat " * 30}, timeout=60)
        assert too_long.status_code == 400 and "--ctx_len" in too_long.json()["error"]["message"]
    runner.stop()
    # a bare masked LM's checkpoint (no sentence-transformers files): SPLADE with SparseEncoder's defaults, served too
    bare = tiny_splade(tmp_path / "bare")
    for name in ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json"):
        (bare / name).unlink()
    shutil.rmtree(bare / "1_SpladePooling")
    want = reference(bare, TEXTS[:2])
    model = QEFFSparseEncoder.from_pretrained(bare)
    model.compile(num_cores=1)
    assert np.abs(model.encode(TEXTS[:2], convert_to_sparse_tensor=False).numpy() - want).max() < 1e-5
    app, runner = build_server(str(bare), None, 8, 64, 1, 1, hf_overrides=dict(override))
    with serve_on_loopback(app, log_level="critical") as url:
        got = loopback_http.post(f"{url}/v1/embeddings", json={"input": TEXTS[:2]}, timeout=60).json()["data"]
        assert np.abs(np.array([d["embedding"] for d in got]) - want).max() < 1e-5
    runner.stop()
    summed = tiny_splade(tmp_path / "sum", pooling_strategy="sum")
    with pytest.raises(ValueError, match="pools sum of relu; vLLM's BertSpladeSparseEmbeddingModel pools the max"):
        build_server(str(summed), None, 8, 64, 1, 1, hf_overrides=dict(override))
    with pytest.raises(ValueError, match="serve it as vLLM does"):  # vLLM's needs the override alone
        build_server(str(folder), None, 8, 64, 1, 1, hf_overrides={**override, "vocab_size": 8})
    with pytest.raises(ValueError, match="'token_embed' is served here for BGE-M3 .* is not one"):
        build_server(str(folder), None, 8, 64, 1, 1, hf_overrides=dict(override), pooler_task="token_embed")
    with pytest.raises(ValueError, match="neither a SPLADE folder"):
        resolve_pooler_task(str(tiny_model_dir("llama")), None, None, "auto", override)
    # a folder's do_lower_case: its texts lowercased before a (cased) tokenizer, as vLLM does
    from QEfficient.serving.embeddings_app import parse_inputs

    cased = AutoTokenizer.from_pretrained(tokenizer_dir)
    lowered = parse_inputs("The CAT Sat", cased, 64, len(cased), lowercase=True)
    assert lowered == [cased("the cat sat")["input_ids"]] != parse_inputs("The CAT Sat", cased, 64, len(cased))


def test_the_artifact_alone_answers_as_the_folder(qeff_home, tmp_path):
    """``serve --qpc_path`` on a SPLADE model's artifact (what a Ray replica runs): its vectors on /v1/embeddings and
    /pooling from the artifact's tokenizer and graph (texts lowercased where the folder says so), in a process that
    imports neither torch nor transformers' modeling code, exactly the folder server's; what vLLM would not serve is
    refused from the artifact too."""
    from QEfficient.cloud.serve import build_from_args
    from QEfficient.cloud.serve_args import parse_args
    from QEfficient.compile.ort_cpu import read_artifact
    from QEfficient.distributed.ray_serve import application_from_args
    from QEfficient.serving.encoder_artifact import CompiledEncoder, check_servable
    from QEfficient.serving.tasks import SPLADE_ARCHITECTURE
    from tests.test_server_encoder_artifact import answers_both_ways

    folder = tiny_splade(tmp_path / "model")
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 24, "do_lower_case": True}))
    tokenizer_json = json.loads((folder / "tokenizer.json").read_text())
    tokenizer_json["normalizer"]["lowercase"] = False  # a cased tokenizer: the folder's do_lower_case lowercases the texts
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json))
    texts = ["The CAT Sat on the mat", TEXTS[1]]
    assert AutoTokenizer.from_pretrained(folder)(texts[0]) != AutoTokenizer.from_pretrained(folder)(texts[0].lower())
    requests = {"/v1/embeddings": {"input": texts}, "/pooling": {"input": texts[1]}, "/tokenize": {"prompt": texts[0]}}
    override = ["--hf_overrides", json.dumps({"architectures": [SPLADE_ARCHITECTURE]})]
    from_folder, from_artifact = answers_both_ways(str(folder), requests, qeff_home, *override, ctx_len=24)
    assert from_artifact.pop("imported") == []
    for route in requests:  # (ids and times aside)
        for key in ("data", "tokens", "usage"):
            assert from_artifact[route].get(key) == from_folder[route].get(key), (route, key)
    got = np.array([d["embedding"] for d in from_folder["/v1/embeddings"]["data"]])
    assert np.abs(got - reference(folder, [t.lower() for t in texts])).max() < 1e-5

    model = QEFFSparseEncoder.from_pretrained(folder)
    qpc = str(model.compile(num_cores=1, seq_len=24))
    with pytest.raises(ValueError, match="compiled for --task embed, not score"):
        build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--task", "score"]))
    with pytest.raises(ValueError, match="--pooler_config's use_activation do not apply to SPLADE's vectors"):
        build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--pooler_config", '{"use_activation": false}']))
    with pytest.raises(ValueError, match="SPLADE model's artifact: --pooler_config's use_activation set pooled embeddings"):
        application_from_args(parse_args(["--ray", "--qpc_path", qpc, "--pooler_config", '{"use_activation": false}']))
    with pytest.raises(ValueError, match="SPLADE model's artifact, ending in its own heads: not pooled embeddings"):
        CompiledEncoder(qpc, 1).encode(texts)
    with pytest.raises(ValueError, match="served as it was compiled: --chat_template does not apply"):
        application_from_args(parse_args(["--ray", "--qpc_path", qpc, "--chat_template", "{{ x }}"]))
    qconfig = read_artifact(Path(qpc))
    with pytest.raises(ValueError, match="SPLADE artifact compiled by an older version: compile it again"):
        check_servable(qpc, {key: value for key, value in qconfig.items() if key != "heads"})
    summed = QEFFSparseEncoder.from_pretrained(tiny_splade(tmp_path / "sum", pooling_strategy="sum"))
    summed_qpc = str(summed.compile(num_cores=1, seq_len=24))
    with pytest.raises(ValueError, match="pools sum of relu; vLLM's BertSpladeSparseEmbeddingModel pools the max"):
        build_from_args(parse_args(["--qpc_path", summed_qpc, "--num_cores", "1"]))
    with pytest.raises(ValueError, match="pools sum of relu"):  # in Ray's driver, not in each replica
        application_from_args(parse_args(["--ray", "--qpc_path", summed_qpc, "--ship_artifact", "off"]))


def tiny_inference_free(folder: Path) -> tuple[Path, np.ndarray]:
    """An inference-free SparseEncoder as sentence-transformers saves one (opensearch's doc-* models): a Router whose query
    route is a SparseStaticEmbedding (a weight per token id, some 0) and whose document route is MLMTransformer ->
    SpladePooling, each module in its own subfolder; (folder, the static weights)."""
    from safetensors.numpy import save_file

    document = tiny_splade(folder / "document_0_MLMTransformer")
    for name in ("modules.json", "config_sentence_transformers.json"):
        (document / name).unlink()
    (folder / "document_1_SpladePooling").mkdir()
    (folder / "document_1_SpladePooling" / "config.json").write_text(json.dumps({"pooling_strategy": "max", "activation_function": "relu"}))
    static = folder / "query_0_SparseStaticEmbedding"
    static.mkdir()
    AutoTokenizer.from_pretrained(document).save_pretrained(static)
    weights = np.random.default_rng(0).uniform(0.5, 3.0, len(AutoTokenizer.from_pretrained(document))).astype(np.float32)
    weights[::3] = 0  # tokens the static weights leave out
    save_file({"weight": weights}, str(static / "model.safetensors"))
    (static / "config.json").write_text(json.dumps({"frozen": False}))
    router = {
        "types": {
            # as sentence-transformers 5.3's Router.save writes them: each module's Python module, then its class
            "query_0_SparseStaticEmbedding": "sentence_transformers.sparse_encoder.models.SparseStaticEmbedding.SparseStaticEmbedding",
            "document_0_MLMTransformer": "sentence_transformers.sparse_encoder.models.MLMTransformer.MLMTransformer",
            "document_1_SpladePooling": "sentence_transformers.sparse_encoder.models.SpladePooling.SpladePooling",
        },
        "structure": {"query": ["query_0_SparseStaticEmbedding"], "document": ["document_0_MLMTransformer", "document_1_SpladePooling"]},
        "parameters": {"default_route": "document", "allow_empty_key": True},
    }
    (folder / "router_config.json").write_text(json.dumps(router))
    (folder / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Router"}]))
    st_config = {"model_type": "SparseEncoder", "prompts": {"query": "", "document": ""}, "similarity_fn_name": "dot"}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(st_config))
    return folder, weights


def test_inference_free_queries_weigh_their_tokens_and_documents_run_splade(tmp_path):
    """An inference-free SparseEncoder: encode_query gives each token of the query (no special tokens) its static weight,
    without the model, as SparseStaticEmbedding does; encode_document (and encode, its default route) the masked LM
    through SPLADE's pooling, within 1e-5 of transformers; an unknown task is refused as sentence-transformers refuses it,
    and so is serving it (vLLM has no such model), from its folder or its artifact."""
    from QEfficient.cloud.serve import build_from_args, build_server
    from QEfficient.cloud.serve_args import parse_args

    folder, weights = tiny_inference_free(tmp_path / "doc-v3")
    model = QEFFAutoModel.from_pretrained(folder)
    assert isinstance(model, QEFFSparseEncoder)
    model.compile(num_cores=1)
    tok = AutoTokenizer.from_pretrained(folder / "query_0_SparseStaticEmbedding")
    queries = model.encode_query(TEXTS[:2], convert_to_sparse_tensor=False).numpy()
    for row, text in zip(queries, TEXTS[:2], strict=True):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        want = np.zeros(len(weights), np.float32)
        want[ids] = weights[ids]
        assert np.array_equal(row, want) and np.count_nonzero(row) <= len(set(ids))
    # (the tiny vocabulary's ids differ from run to run, tokenizers' training breaks ties by hash order: a short query can
    # fall on zero weights alone, not both)
    assert np.count_nonzero(queries) > 0
    documents = model.encode_document(TEXTS, convert_to_tensor=False, convert_to_sparse_tensor=False)
    expected = reference(folder / "document_0_MLMTransformer", TEXTS)
    assert np.abs(documents - expected).max() < 1e-5
    assert np.array_equal(model.encode(TEXTS, convert_to_tensor=False, convert_to_sparse_tensor=False), documents)
    assert model.encode(TEXTS[0], task="query").to_dense().count_nonzero() == np.count_nonzero(queries[0])
    with pytest.raises(ValueError, match="No route found for task type 'passage'"):
        model.encode(TEXTS[0], task="passage")
    for overrides in ({"architectures": ["BertSpladeSparseEmbeddingModel"]}, None):
        with pytest.raises(ValueError, match="inference-free SparseEncoder.*encode_query and encode_document"):
            build_server(str(folder), None, 8, 64, 1, 1, hf_overrides=overrides)
    with pytest.raises(ValueError, match="inference-free SparseEncoder's artifact.*encode_query and encode_document"):
        build_from_args(parse_args(["--qpc_path", str(model.qpc_path), "--num_cores", "1"]))
    (folder / "query_0_SparseStaticEmbedding" / "model.safetensors").unlink()  # a broken query module fails on loading
    with pytest.raises(ValueError, match="holds no SparseStaticEmbedding weights"):
        QEFFSparseEncoder.from_pretrained(folder)
