"""QEFFColBERTModel: ColBERT text retrievers in both layouts, as tiny random models (weights widened so that the text
decides): a Stanford ColBERT checkpoint (``HF_ColBERT``: BERT whose checkpoint also holds ``linear.weight``, and
``artifact.metadata``) and PyLate folders (ModernBERT seeing 4 tokens either side in one layer, or LFM2-ColBERT's causal LFM2;
a ``1_Dense`` projection, ``config_sentence_transformers.json``). The graph's per-token vectors equal transformers' encoder through the
projection, L2-normalized, within 1e-5; ``encode`` tokenizes queries and documents as PyLate does (checked token by
token); MaxSim scores follow; QEFFAutoModel and QEFFAutoModelForRetrieval load these folders as QEFFColBERTModel, and what
is not run is refused saying why (tests/test_server_colbert.py serves them over HTTP)."""

from __future__ import annotations

import functools
import json
import string
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, BertModel, Lfm2Config, Lfm2Model, ModernBertConfig, ModernBertModel

from QEfficient import QEFFAutoModel, QEFFAutoModelForRetrieval, QEFFColBERTModel
from QEfficient.generation.late_interaction import maxsim_scores
from tests.tiny_models import build_wordpiece_tokenizer, tiny_bert_config

QUERIES = ["the cat sat", "a dog on the mat"]
DOCUMENTS = ["Late interaction scores each query token, then sums the best matches.", "The cat sat on the mat!", "a dog"]


def _widened(model: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if weight.dim() == 2:
                weight.normal_(0, 0.3)
            elif "norm" not in name.lower():
                weight.normal_(0, 0.1)
    return model.eval()


def tiny_stanford_colbert(folder: Path, dim: int = 16) -> Path:
    """colbert-ir/colbertv2.0's layout: ``bert.*`` and ``linear.weight`` in one checkpoint, marker tokens [unused0] and
    [unused1], lengths in artifact.metadata."""
    tok = build_wordpiece_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["[unused0]", "[unused1]"]})
    config = tiny_bert_config(tok, architectures=["HF_ColBERT"])
    bert = _widened(BertModel(config))
    state = {f"bert.{k}": v.contiguous() for k, v in bert.state_dict().items()}
    state["linear.weight"] = torch.randn(dim, 32) * 0.3
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"))
    config.save_pretrained(folder)
    tok.save_pretrained(folder)
    meta = {"query_token_id": "[unused0]", "doc_token_id": "[unused1]", "query_maxlen": 12, "doc_maxlen": 24, "dim": dim}
    (folder / "artifact.metadata").write_text(json.dumps(meta | {"attend_to_mask_tokens": False, "mask_punctuation": True}))
    return folder


def tiny_pylate_colbert(folder: Path, dim: int = 16, backbone: str = "modernbert", **settings) -> Path:
    """A PyLate folder: ModernBERT at the root (its middle layer sees 4 tokens either side), or LFM2 (LFM2-ColBERT's
    backbone: causal, short convolutions and attention), the added marker tokens "[Q] " and "[D] ", 1_Dense (no bias,
    Identity), config_sentence_transformers.json (``settings`` override it)."""
    tok = build_wordpiece_tokenizer()
    tok.add_tokens(["[Q] ", "[D] "])
    if backbone == "lfm2":
        config = Lfm2Config(
            vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
            num_key_value_heads=1, layer_types=["conv", "full_attention", "conv"], max_position_embeddings=64,
            pad_token_id=tok.pad_token_id,
        )  # fmt: skip
        encoder = Lfm2Model(config)
    else:
        config = ModernBertConfig(
            vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
            global_attn_every_n_layers=2, local_attention=8, max_position_embeddings=64,
            pad_token_id=tok.pad_token_id, cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
        )  # fmt: skip
        encoder = ModernBertModel(config)
    _widened(encoder).save_pretrained(folder)
    tok.save_pretrained(folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    dense = folder / "1_Dense"
    dense.mkdir()
    activation = "torch.nn.modules.linear.Identity"
    (dense / "config.json").write_text(
        json.dumps({"in_features": 32, "out_features": dim, "bias": False, "activation_function": activation})
    )
    save_file({"linear.weight": torch.randn(dim, 32) * 0.3}, str(dense / "model.safetensors"))
    config_st = {"query_prefix": "[Q] ", "document_prefix": "[D] ", "query_length": 12, "document_length": 24}
    config_st |= {"attend_to_expansion_tokens": False, "skiplist_words": [".", ",", "!"]} | settings
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config_st))
    return folder


def reference(folder: Path, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """transformers' encoder (its own load of the folder) through the folder's projection (a PyLate Dense's bias and
    Tanh read from its files), each token L2-normalized."""
    encoder = AutoModel.from_pretrained(folder).eval()
    dense = folder / "1_Dense"
    weights = load_file(str(dense / "model.safetensors" if dense.is_dir() else folder / "model.safetensors"))
    tanh = dense.is_dir() and "Tanh" in json.loads((dense / "config.json").read_text())["activation_function"]
    with torch.no_grad():
        hidden = encoder(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
        projected = hidden @ weights["linear.weight"].T + weights.get("linear.bias", 0)
        return torch.nn.functional.normalize(torch.tanh(projected) if tanh else projected, dim=-1).numpy()


BUILDERS = {
    "stanford-bert": tiny_stanford_colbert,
    "pylate-modernbert": tiny_pylate_colbert,
    "pylate-lfm2": functools.partial(tiny_pylate_colbert, backbone="lfm2"),
}


@pytest.fixture(scope="module", params=list(BUILDERS))
def colbert(request, tmp_path_factory):
    folder = BUILDERS[request.param](tmp_path_factory.mktemp(request.param) / "model")
    model = QEFFColBERTModel.from_pretrained(folder)
    model.compile(num_cores=1)
    return request.param, folder, model


def test_per_token_vectors_equal_transformers_through_the_projection(colbert):
    _, folder, model = colbert
    tok = model.tokenizer
    enc = tok(DOCUMENTS, padding=True, truncation=True, max_length=model.settings.document_length, return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
    ours = model.generate({"input_ids": ids, "attention_mask": mask})["embeddings"]
    ref = reference(folder, ids, mask)
    assert ours.shape == ref.shape == (*ids.shape, 16)
    real = mask.astype(bool)
    assert np.abs(ours[real] - ref[real]).max() < 1e-5
    assert np.allclose(np.linalg.norm(ours[real], axis=-1), 1, atol=1e-5)
    assert not np.allclose(ours[0, 1], ours[1, 1], atol=1e-2)  # the text decides


def test_encode_tokenizes_as_pylate_and_scores_by_maxsim(colbert):
    name, folder, model = colbert
    tok = model.tokenizer
    settings = model.settings
    q_marker, d_marker = ("[unused0]", "[unused1]") if name.startswith("stanford") else ("[Q] ", "[D] ")
    queries, documents = model.encode(QUERIES, is_query=True), model.encode(DOCUMENTS, is_query=False, batch_size=2)
    assert len(queries) == 2 and len(documents) == 3

    # a query: [CLS] marker text [SEP], then [MASK] up to query_length, attention on the real tokens only, all kept
    words = tok(QUERIES[0])["input_ids"]
    ids = np.array([words[:1] + [tok.convert_tokens_to_ids(q_marker)] + words[1:]], np.int64)
    ids = np.concatenate([ids, np.full((1, settings.query_length - ids.shape[1]), tok.mask_token_id)], axis=1)
    mask = (np.arange(settings.query_length) < len(words) + 1)[None].astype(np.int64)
    assert queries[0].shape == (settings.query_length, 16)
    assert np.abs(queries[0] - reference(folder, ids, mask)[0]).max() < 1e-5

    # a document (batched with a longer one): [CLS] marker text [SEP] without its skiplist tokens ("!", which this
    # tokenizer reads as [UNK], the skiplist's id for it too)
    words = tok(DOCUMENTS[1])["input_ids"]
    ids = np.array([words[:1] + [tok.convert_tokens_to_ids(d_marker)] + words[1:]], np.int64)
    skip = [tok.convert_tokens_to_ids(w) for w in settings.skiplist_words]
    keep = ~np.isin(ids[0], skip)
    assert keep.sum() < ids.shape[1] and len(ids[0]) <= settings.document_length
    assert np.abs(documents[1] - reference(folder, ids, np.ones_like(ids))[0][keep]).max() < 1e-5
    assert len(documents[0]) <= settings.document_length < len(tok(DOCUMENTS[0])["input_ids"])  # truncated

    scores = maxsim_scores(queries, documents)
    expected = [[float((q @ d.T).max(1).sum()) for d in documents] for q in queries]
    assert np.allclose(scores, expected, atol=1e-5) and scores.shape == (2, 3)
    assert model.encode(QUERIES[1]).shape == (settings.query_length, 16)  # one string, one array
    assert model.encode(DOCUMENTS[0] * 3).shape == (settings.query_length, 16)  # a long query: truncated


def test_the_auto_classes_load_colbert_folders(colbert):
    _, folder, _ = colbert
    assert type(QEFFAutoModel.from_pretrained(folder)) is QEFFColBERTModel
    assert type(QEFFAutoModelForRetrieval.from_pretrained(folder)) is QEFFColBERTModel
    with pytest.raises(ValueError, match="one vector per token"):
        QEFFAutoModel.from_pretrained(folder, pooling="mean")


@pytest.mark.parametrize("attend", [False, True])
def test_pylate_settings_are_read(tmp_path, attend):
    """Without query expansion a query is its own tokens; with it and attend_to_expansion_tokens the mask tokens are
    attended (PyLate's attention of ones)."""
    folder = tiny_pylate_colbert(tmp_path / "m", attend_to_expansion_tokens=attend, do_query_expansion=attend)
    model = QEFFColBERTModel.from_pretrained(folder)
    assert model.settings.attend_to_expansion_tokens is attend and model.settings.do_query_expansion is attend
    tok, length = model.tokenizer, model.settings.query_length
    words = tok("the cat")["input_ids"]
    query = model.encode(" the cat ", is_query=True)  # stripped, as sentence-transformers does
    if not attend:
        assert query.shape == (len(words) + 1, 16)
        return
    ids = np.array([words[:1] + [tok.convert_tokens_to_ids("[Q] ")] + words[1:]], np.int64)
    ids = np.concatenate([ids, np.full((1, length - ids.shape[1]), tok.mask_token_id)], axis=1)
    assert np.abs(query - reference(folder, ids, np.ones_like(ids))[0]).max() < 1e-5


def test_a_dense_with_bias_and_tanh_runs_in_the_graph(tmp_path):
    folder = tiny_pylate_colbert(tmp_path / "m")
    dense = folder / "1_Dense"
    config = json.loads((dense / "config.json").read_text()) | {"bias": True, "activation_function": "torch.nn.modules.activation.Tanh"}
    (dense / "config.json").write_text(json.dumps(config))
    weights = load_file(str(dense / "model.safetensors"))
    save_file(weights | {"linear.bias": torch.randn(16) * 0.5}, str(dense / "model.safetensors"))
    model = QEFFColBERTModel.from_pretrained(folder)
    model.compile(num_cores=1)
    ids = np.array([model.tokenizer(DOCUMENTS[1])["input_ids"]], np.int64)
    ours = model.generate({"input_ids": ids, "attention_mask": np.ones_like(ids)})["embeddings"]
    assert np.abs(ours - reference(folder, ids, np.ones_like(ids))).max() < 1e-5


def test_the_projection_is_part_of_the_export_key(tmp_path):
    """Two projections with the same weights but another activation are two exports (activations have no weights)."""
    from QEfficient.loading.sentence_transformers_files import DenseLayer
    from QEfficient.models.pooling_key import pooling_key
    from QEfficient.transform.colbert import ColBERTProjection

    weight = np.ones((4, 8), np.float32)
    keys = {pooling_key(ColBERTProjection((DenseLayer(weight, None, act),))) for act in ("Identity", "Tanh")}
    keys.add(pooling_key(ColBERTProjection((DenseLayer(weight * 2, None),))))
    assert len(keys) == 3


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda f: (f / "1_Dense" / "config.json").write_text(json.dumps({"activation_function": "torch.nn.GELU"})), "GELU"),
        (lambda f: (f / "1_Dense" / "config.json").write_text(json.dumps({"use_residual": True})), "use_residual"),
        (lambda f: (f / "config_sentence_transformers.json").write_text(json.dumps({"default_prompt_name": "query"})), "prompt"),
    ],
    ids=["activation", "residual", "prompt"],
)
def test_what_is_not_run_is_refused(tmp_path, change, says):
    folder = tiny_pylate_colbert(tmp_path / "m")
    change(folder)
    with pytest.raises(ValueError, match=says):
        QEFFColBERTModel.from_pretrained(folder)


def test_a_checkpoint_without_its_projection_is_refused(tmp_path):
    folder = tiny_stanford_colbert(tmp_path / "m")
    state = load_file(str(folder / "model.safetensors"))
    del state["linear.weight"]
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="linear.weight"):
        QEFFColBERTModel.from_pretrained(folder)


def test_stanford_metadata_is_read_as_pylate_reads_it(tmp_path):
    """PyLate's defaults where the metadata leaves a key out (document length 180) and its punctuation skiplist whatever
    mask_punctuation says; a pytorch_model.bin checkpoint is read too."""
    folder = tiny_stanford_colbert(tmp_path / "m")
    (folder / "artifact.metadata").write_text(json.dumps({"query_maxlen": 12, "mask_punctuation": False}))
    state = load_file(str(folder / "model.safetensors"))
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    model = QEFFColBERTModel.from_pretrained(folder)
    assert model.settings.skiplist_words == tuple(string.punctuation) and model.settings.document_length == 180
    assert np.array_equal(model.settings.layers[0].weight, state["linear.weight"].numpy())


def test_a_sharded_checkpoint_without_its_projection_says_so(tmp_path):
    from QEfficient.loading.colbert import read_colbert_folder

    folder = tiny_stanford_colbert(tmp_path / "m")
    (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
    index = {"weight_map": {"bert.embeddings.word_embeddings.weight": "model-00001-of-00001.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="holds no 'linear.weight'"):
        read_colbert_folder(folder)


def tiny_multi_vector_encoder(folder: Path, expansion: dict | None, dim: int = 16) -> Path:
    """A sentence-transformers 6 MultiVectorEncoder as it saves one: BERT at the root, 1_Dense (no bias), 2_MultiVectorMask
    (a skiplist for documents), 3_Normalize; prompts for queries and documents, a document length, ``expansion``."""
    tok = build_wordpiece_tokenizer()
    _widened(BertModel(tiny_bert_config(tok))).save_pretrained(folder)
    tok.save_pretrained(folder)
    kinds = (
        "base.modules.dense.Dense",
        "multi_vector_encoder.modules.multi_vector_mask.MultiVectorMask",
        "base.modules.normalize.Normalize",
    )
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"}]
    for i, kind in enumerate(kinds, start=1):
        name = f"{i}_{kind.rsplit('.', 1)[-1]}"
        (folder / name).mkdir()
        modules.append({"idx": i, "name": str(i), "path": name, "type": f"sentence_transformers.{kind}"})
    (folder / "modules.json").write_text(json.dumps(modules))
    dense = {"in_features": 32, "out_features": dim, "bias": False, "activation_function": "torch.nn.modules.linear.Identity"}
    (folder / "1_Dense" / "config.json").write_text(json.dumps(dense | {"module_input_name": "token_embeddings"}))
    save_file({"linear.weight": torch.randn(dim, 32) * 0.3}, str(folder / "1_Dense" / "model.safetensors"))
    mask = {"skiplist_words": [".", "!", "zzz"], "skiplist_tasks": ["document"], "keep_only_token_ids": None}
    (folder / "2_MultiVectorMask" / "config.json").write_text(json.dumps(mask))
    (folder / "3_Normalize" / "config.json").write_text(json.dumps({"module_input_name": "token_embeddings"}))
    transformer = {"transformer_task": "feature-extraction", "module_output_name": "token_embeddings", "document_length": 16}
    (folder / "sentence_bert_config.json").write_text(json.dumps(transformer | {"query_expansion": expansion}))
    prompts = {"query": "query: ", "document": "passage: "}
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"model_type": "MultiVectorEncoder", "prompts": prompts}))
    return folder


@pytest.mark.parametrize("expansion", [{"strategy": "fixed", "length": 12, "attend": False, "token": None}, None])
def test_a_sentence_transformers_multi_vector_encoder_encodes_as_it(tmp_path, expansion):
    """sentence-transformers 6's MultiVectorEncoder: each task's prompt before the text (as text), queries expanded to
    the expansion's length with the mask token (kept, not attended), documents cut at document_length without their
    skiplist tokens (words that are no single token, "!" and "zzz" here, are dropped from the skiplist, not matched as
    [UNK])."""
    folder = tiny_multi_vector_encoder(tmp_path / "mve", expansion)
    model = QEFFAutoModel.from_pretrained(folder)
    assert isinstance(model, QEFFColBERTModel)
    model.compile(num_cores=1)
    tok = model.tokenizer
    if expansion:
        enc = tok(["query: " + q for q in QUERIES], padding="max_length", truncation=True, max_length=12, return_tensors="np")
        ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
        kept = np.ones_like(mask, dtype=bool)
        ids[mask == 0] = tok.mask_token_id
    else:
        enc = tok(["query: " + q for q in QUERIES], padding=True, return_tensors="np")
        ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
        kept = mask.astype(bool)
    vectors = reference(folder, ids, mask)
    for got, want in zip(model.encode_query(QUERIES), [v[k] for v, k in zip(vectors, kept, strict=True)], strict=True):
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-5
    documents = [*DOCUMENTS, "a \u20ac dog"]  # (the euro sign is not in the tiny vocabulary: an [UNK] token, which stays)
    enc = tok(["passage: " + d for d in documents], padding=True, truncation=True, max_length=16, return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
    assert tok.convert_tokens_to_ids(["!", "zzz"]) == [tok.unk_token_id] * 2  # not single tokens here: off the skiplist
    kept = mask.astype(bool) & (ids != tok.convert_tokens_to_ids("."))
    assert (ids[kept] == tok.unk_token_id).any()
    vectors = reference(folder, ids, mask)
    for got, want in zip(model.encode_document(documents), [v[k] for v, k in zip(vectors, kept, strict=True)], strict=True):
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-5
    if expansion is None:  # a saved truncate_dim: each vector's first dimensions, normalized again; and what is refused
        saved = json.loads((folder / "config_sentence_transformers.json").read_text())
        (folder / "config_sentence_transformers.json").write_text(json.dumps(saved | {"truncate_dim": 8}))
        short = QEFFAutoModel.from_pretrained(folder)
        short.compile(num_cores=1)
        want = vectors[0][kept[0]][:, :8]
        assert np.abs(short.encode_document(documents[0]) - want / np.linalg.norm(want, axis=-1, keepdims=True)).max() < 1e-5
        (folder / "3_Normalize" / "config.json").write_text("{}")  # a Normalize of the pooled vector: a no-op here
        with pytest.raises(ValueError, match="Normalize module reads 'sentence_embedding', not the token embeddings"):
            QEFFAutoModel.from_pretrained(folder)
