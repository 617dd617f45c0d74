"""QEFFBGEM3Model: BGE-M3's dense, lexical (sparse) and multi-vector outputs, as FlagEmbedding's BGEM3FlagModel.encode
gives them, for a tiny random BGE-M3 folder (XLM-RoBERTa with weights widened so that the text decides,
colbert_linear.pt and sparse_linear.pt saved as FlagEmbedding saves them, sentence-transformers' CLS pooling and
normalization): each within 1e-5 of transformers' encoder through the heads, FlagEmbedding's formulas written out here;
QEFFAutoModel's dense vectors of the same folder equal; a folder without the heads is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, XLMRobertaConfig, XLMRobertaModel

from QEfficient import QEFFAutoModel, QEFFBGEM3Model
from tests.test_colbert import _widened
from tests.tiny_models import build_wordpiece_tokenizer

COLBERT_DIM = 16  # the multi-vector head narrower than the hidden size (32)
TEXTS = ["the cat sat on the mat", "a dog", "late interaction scores each query token, then sums the best matches"]


def tiny_bge_m3(folder: Path) -> Path:
    tok = build_wordpiece_tokenizer()
    tok.eos_token = "[SEP]"  # XLM-RoBERTa's </s> is both its separator and its end of text
    config = XLMRobertaConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=66, pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
    )  # fmt: skip
    encoder = _widened(XLMRobertaModel(config, add_pooling_layer=False))
    encoder.save_pretrained(folder)
    tok.save_pretrained(folder)
    torch.manual_seed(1)
    colbert, sparse = torch.nn.Linear(32, COLBERT_DIM), torch.nn.Linear(32, 1)
    with torch.no_grad():
        colbert.weight.normal_(0, 0.3)
        colbert.bias.normal_(0, 0.2)
        sparse.weight.normal_(0, 0.3)
        # the sparse head's bias in the middle third of its weights over the texts' tokens, at their widest gap: about
        # half of them relu to 0, none near 0 (whatever ids the trained tokenizer gives: its training breaks ties by chance)
        hidden = encoder(**tok(TEXTS, padding=True, return_tensors="pt")).last_hidden_state
        raw = (hidden @ sparse.weight.T).flatten().sort().values
        third = len(raw) // 3
        gap = int((raw[third + 1 : 2 * third] - raw[third : 2 * third - 1]).argmax()) + third
        sparse.bias.fill_(-float(raw[gap] + raw[gap + 1]) / 2)
    torch.save(colbert.state_dict(), folder / "colbert_linear.pt")
    torch.save(sparse.state_dict(), folder / "sparse_linear.pt")
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    (folder / "2_Normalize").mkdir()
    return folder


def flag_embedding(folder: Path, texts: list[str]) -> dict:
    """FlagEmbedding's M3 outputs, its formulas over transformers' encoder: the first token's state normalized, relu of
    the sparse head per token reduced to the largest weight per id (special tokens out), the multi-vector head at every
    token but the first, normalized."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    encoder = AutoModel.from_pretrained(folder).eval()
    colbert, sparse = torch.nn.Linear(32, COLBERT_DIM), torch.nn.Linear(32, 1)
    colbert.load_state_dict(torch.load(folder / "colbert_linear.pt"))
    sparse.load_state_dict(torch.load(folder / "sparse_linear.pt"))
    enc = tok(texts, padding=True, return_tensors="pt")
    special = {tok.cls_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id}
    with torch.no_grad():
        hidden = encoder(**enc).last_hidden_state
        weights = torch.relu(sparse(hidden)).squeeze(-1).numpy()
        vectors = torch.nn.functional.normalize(colbert(hidden[:, 1:]) * enc["attention_mask"][:, 1:, None], dim=-1).numpy()
    dense = torch.nn.functional.normalize(hidden[:, 0], dim=-1).numpy()
    lexical, multi = [], []
    for i, ids in enumerate(enc["input_ids"].tolist()):
        n = int(enc["attention_mask"][i].sum())
        found: dict[str, float] = {}
        for token, w in zip(ids, weights[i], strict=True):
            if token not in special and w > found.get(str(token), 0):
                found[str(token)] = float(w)
        lexical.append(found)
        multi.append(vectors[i, : n - 1])
    return {"dense_vecs": dense, "lexical_weights": lexical, "colbert_vecs": multi}


@pytest.fixture(scope="module")
def bge_m3(tmp_path_factory):
    folder = tiny_bge_m3(tmp_path_factory.mktemp("bge-m3"))
    model = QEFFBGEM3Model.from_pretrained(folder)
    model.compile(num_cores=1)
    return folder, model


def test_the_three_outputs_are_flag_embeddings(bge_m3):
    folder, model = bge_m3
    ours = model.encode(TEXTS, batch_size=2, return_dense=True, return_sparse=True, return_colbert_vecs=True)
    ref = flag_embedding(folder, TEXTS)
    assert np.abs(ours["dense_vecs"] - ref["dense_vecs"]).max() < 1e-5
    for a, b in zip(ours["colbert_vecs"], ref["colbert_vecs"], strict=True):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-5
    for a, b in zip(ours["lexical_weights"], ref["lexical_weights"], strict=True):
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-5 for k in a)
    weights = {k: w for lw in ours["lexical_weights"] for k, w in lw.items()}
    assert weights and not {str(t) for t in (model.tokenizer.cls_token_id, model.tokenizer.sep_token_id)} & weights.keys()
    real = {str(t) for ids in model.tokenizer(TEXTS)["input_ids"] for t in ids} - {
        str(model.tokenizer.cls_token_id),
        str(model.tokenizer.sep_token_id),
    }
    assert len(weights) < len(real)  # relu's zeros left out too
    assert ours["colbert_vecs"][0].shape == (len(model.tokenizer(TEXTS[0])["input_ids"]) - 1, COLBERT_DIM)
    assert not np.allclose(ours["dense_vecs"][0], ours["dense_vecs"][1], atol=1e-2)  # the text decides

    q, p = ours["colbert_vecs"][0], ours["colbert_vecs"][2]
    assert abs(model.colbert_score(q, p) - float((q @ p.T).max(1).mean())) < 1e-6
    lw = ours["lexical_weights"]
    shared = sum(lw[0][t] * lw[2][t] for t in lw[0] if t in lw[2])
    assert abs(model.compute_lexical_matching_score(lw[0], lw[2]) - shared) < 1e-6
    assert abs(model.compute_lexical_matching_score(lw[0], lw[0]) - sum(w * w for w in lw[0].values())) < 1e-5
    assert model.compute_lexical_matching_score(lw, lw).shape == (3, 3)
    tokens = model.convert_id_to_token(lw[1])
    assert sorted(tokens.values()) == sorted(lw[1].values()) and set(tokens) <= set(model.tokenizer.tokenize(TEXTS[1]))
    assert lw[1].copy()["not an id"] == 0  # FlagEmbedding's defaultdict

    one = model.encode(TEXTS[1], 8, 512, False, True)  # FlagEmbedding's positional order
    assert one["dense_vecs"] is None and one["colbert_vecs"] is None and one["lexical_weights"].keys() == lw[1].keys()
    assert model.encode(TEXTS[1])["dense_vecs"].shape == (32,)
    short = model.encode(TEXTS[2], max_length=8, return_colbert_vecs=True)["colbert_vecs"]
    assert short.shape == (7, COLBERT_DIM)  # truncated to 8 tokens, the first one's vector left out
    with pytest.raises(ValueError, match="one or more"):
        model.encode(TEXTS, return_dense=False)

    scores = model.compute_score([(TEXTS[0], TEXTS[2]), (TEXTS[1], TEXTS[0])], weights_for_different_modes=[0.4, 0.2, 0.4])
    dense = float(ref["dense_vecs"][0] @ ref["dense_vecs"][2])
    sparse = sum(w * ref["lexical_weights"][2][t] for t, w in ref["lexical_weights"][0].items() if t in ref["lexical_weights"][2])
    colbert = float((ref["colbert_vecs"][0] @ ref["colbert_vecs"][2].T).max(1).mean())
    assert np.allclose([scores["dense"][0], scores["sparse"][0], scores["colbert"][0]], [dense, sparse, colbert], atol=1e-5)
    assert abs(scores["colbert+sparse+dense"][0] - (0.4 * dense + 0.2 * sparse + 0.4 * colbert)) < 1e-5
    assert abs(scores["sparse+dense"][0] - (0.4 * dense + 0.2 * sparse) / 0.6) < 1e-5
    assert isinstance(model.compute_score((TEXTS[0], TEXTS[1]))["dense"], float)  # one pair: numbers


def test_qeff_auto_model_gives_the_same_dense_vectors(bge_m3):
    folder, model = bge_m3
    dense = QEFFAutoModel.from_pretrained(folder)
    dense.compile(num_cores=1, seq_len=64)
    assert np.abs(dense.encode(TEXTS, model.tokenizer) - model.encode(TEXTS)["dense_vecs"]).max() < 1e-5


def test_a_folder_without_the_heads_is_refused(tmp_path):
    folder = tiny_bge_m3(tmp_path / "m")
    (folder / "sparse_linear.pt").unlink()
    with pytest.raises(ValueError, match="colbert_linear.pt and sparse_linear.pt"):
        QEFFBGEM3Model.from_pretrained(folder)
