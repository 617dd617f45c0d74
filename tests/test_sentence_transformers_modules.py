"""sentence-transformers' Pooling with several modes at once (concatenated in its order: CLS, mean / sqrt(length),
position-weighted mean) and a LayerNorm module before a Dense one: QEFFAutoModel.encode, the server on the folder and the
server on the artifact each equal those modules written out in torch after transformers' encoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModel, AutoTokenizer

from QEfficient import QEFFAutoModel
from tests.tiny_models import build_wordpiece_tokenizer

TEXTS = ["The cat sits on the mat.", "A quick brown fox jumps over the lazy dog near the river bank.", "Hello"]
POOLING = {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False, "pooling_mode_mean_sqrt_len_tokens": True}
POOLING |= {"pooling_mode_weightedmean_tokens": True, "pooling_mode_max_tokens": False, "pooling_mode_lasttoken": False}
WIDTH = 3 * 64


@pytest.fixture(scope="module")
def st_folder(tmp_path_factory) -> Path:
    """A tiny BERT as sentence-transformers saves one: Transformer, Pooling (three modes), LayerNorm (a
    pytorch_model.bin, as its older versions write), Dense (Tanh), Normalize."""
    folder = tmp_path_factory.mktemp("st-modules") / "model"
    torch.manual_seed(4)
    config = AutoConfig.for_model(
        "bert",
        vocab_size=320,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=96,
        architectures=["BertModel"],
    )
    AutoModel.from_config(config).save_pretrained(folder)
    build_wordpiece_tokenizer().save_pretrained(folder)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    for i, kind in enumerate(("Pooling", "LayerNorm", "Dense", "Normalize"), start=1):
        (folder / f"{i}_{kind}").mkdir()
        modules.append({"idx": i, "name": str(i), "path": f"{i}_{kind}", "type": f"sentence_transformers.models.{kind}"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 64, **POOLING}))
    (folder / "2_LayerNorm" / "config.json").write_text(json.dumps({"dimension": WIDTH}))
    norm = {"norm.weight": 1 + 0.3 * torch.randn(WIDTH), "norm.bias": 0.2 * torch.randn(WIDTH)}
    torch.save(norm, folder / "2_LayerNorm" / "pytorch_model.bin")
    dense = {"in_features": WIDTH, "out_features": 32, "bias": True, "activation_function": "torch.nn.modules.activation.Tanh"}
    (folder / "3_Dense" / "config.json").write_text(json.dumps(dense))
    save_file(
        {"linear.weight": 0.2 * torch.randn(32, WIDTH), "linear.bias": 0.1 * torch.randn(32)}, folder / "3_Dense" / "model.safetensors"
    )
    return folder


def reference(
    folder: Path, texts: list[str], prompt_length: int = 0, order: tuple[int, ...] = (0, 1, 2), side: str = "right"
) -> np.ndarray:
    """sentence-transformers' modules, written out in torch over transformers' BERT (padded on ``side``); each row's first
    ``prompt_length`` real tokens left out of the pooling, as its Pooling with include_prompt false does; the poolings
    concatenated in ``order`` (of CLS, mean / sqrt(length), weighted mean), CLS the first token pooled and weights counted
    from the first real one, as sentence-transformers 6 pools; the Dense module's residual where its config adds one."""
    tok = AutoTokenizer.from_pretrained(folder)
    tok.padding_side = side
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = AutoModel.from_pretrained(folder).eval()(**enc).last_hidden_state
        start = enc["attention_mask"].argmax(1, keepdim=True)  # past the left padding
        columns = torch.arange(hidden.shape[1]).view(1, -1)
        mask = enc["attention_mask"] * (columns >= start + prompt_length)
        first = hidden[torch.arange(len(hidden)), mask.argmax(1)]
        mask = mask.unsqueeze(-1).float()
        total, count = (hidden * mask).sum(1), mask.sum(1).clamp(min=1e-9)
        positions = (columns + 1 - start).unsqueeze(-1).float() * mask
        weighted = (hidden * positions).sum(1) / positions.sum(1).clamp(min=1e-9)
        parts = [first, total / count.sqrt(), weighted]
        pooled = torch.cat([parts[i] for i in order], 1)
        norm = torch.nn.LayerNorm(WIDTH)
        norm.load_state_dict({k.removeprefix("norm."): v for k, v in torch.load(folder / "2_LayerNorm" / "pytorch_model.bin").items()})
        linear = torch.nn.Linear(WIDTH, 32)
        from safetensors.torch import load_file

        dense = load_file(folder / "3_Dense" / "model.safetensors")
        linear.load_state_dict({k.removeprefix("linear."): v for k, v in dense.items() if k.startswith("linear.")})
        out = torch.tanh(linear(norm(pooled)))
        if json.loads((folder / "3_Dense" / "config.json").read_text()).get("use_residual"):  # projected: the sizes differ
            out = out + norm(pooled) @ dense["residual.weight"].T
    return torch.nn.functional.normalize(out, dim=1).numpy()


def test_several_poolings_and_a_layer_norm_encode_as_sentence_transformers(st_folder):
    model = QEFFAutoModel.from_pretrained(st_folder)
    model.compile(seq_len=[8, 32], batch_size=2, num_cores=1)
    got = model.encode(TEXTS, AutoTokenizer.from_pretrained(st_folder))
    assert got.shape == (3, 32)
    np.testing.assert_allclose(got, reference(st_folder, TEXTS), atol=1e-5, rtol=0)


def test_the_layout_of_sentence_transformers_5_4_and_on(st_folder, tmp_path, caplog):
    """From 5.4: modules named by their new paths, Pooling's modes as one ``pooling_mode`` list (concatenated in its
    order), and a Dense module with a residual (projected, as its sizes differ)."""
    folder = shutil.copytree(st_folder, tmp_path / "model")
    paths = {"Transformer": "base.modules.transformer", "Pooling": "sentence_transformer.modules.pooling"}
    paths |= {"LayerNorm": "sentence_transformer.modules.layer_norm", "Dense": "base.modules.dense", "Normalize": "base.modules.normalize"}
    modules = json.loads((folder / "modules.json").read_text())
    for module in modules:
        kind = module["type"].rsplit(".", 1)[-1]
        module["type"] = f"sentence_transformers.{paths[kind]}.{kind}"
    (folder / "modules.json").write_text(json.dumps(modules))
    pooling = {"embedding_dimension": 64, "pooling_mode": ["weightedmean", "cls", "mean_sqrt_len_tokens"], "include_prompt": True}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    dense = json.loads((folder / "3_Dense" / "config.json").read_text()) | {"use_residual": True}
    (folder / "3_Dense" / "config.json").write_text(json.dumps(dense))
    from safetensors.torch import load_file

    weights = load_file(folder / "3_Dense" / "model.safetensors") | {"residual.weight": 0.1 * torch.randn(32, WIDTH)}
    save_file(weights, folder / "3_Dense" / "model.safetensors")
    model = QEFFAutoModel.from_pretrained(folder)
    model.compile(seq_len=[32], num_cores=1)
    expected = reference(folder, TEXTS, order=(2, 0, 1))
    np.testing.assert_allclose(model.encode(TEXTS, AutoTokenizer.from_pretrained(folder)), expected, atol=1e-5, rtol=0)
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"truncate_dim": 16}))  # the folder's default width
    tok = AutoTokenizer.from_pretrained(folder)  # cut after its Normalize module, normalized again where asked
    np.testing.assert_allclose(model.encode(TEXTS, tok), expected[:, :16], atol=1e-5, rtol=0)
    short = expected[:, :16] / np.linalg.norm(expected[:, :16], axis=1, keepdims=True)
    np.testing.assert_allclose(model.encode(TEXTS, tok, normalize=True), short, atol=1e-5, rtol=0)
    # a Transformer that takes chat messages (a tokenizer with a chat template, saved by 5.4 on): rendered through the
    # template (tests/test_decoder_embeddings.py), so a tokenizer without one is refused rather than run on plain text
    text = {"method": "forward", "method_output_name": "last_hidden_state"}
    (folder / "sentence_bert_config.json").write_text(json.dumps({"modality_config": {"text": text, "message": text | {"format": "auto"}}}))
    with pytest.raises(ValueError, match="takes its texts as chat messages .* has no chat template"):
        QEFFAutoModel.from_pretrained(folder).encode(TEXTS, AutoTokenizer.from_pretrained(folder))
    from QEfficient.cloud.serve import build_from_args
    from QEfficient.cloud.serve_args import parse_args

    with caplog.at_level("WARNING"):  # the server: plain text, as vLLM serves it, said once at start
        _, runner = build_from_args(parse_args(["--model_name", str(folder), "--ctx_len", "32", "--num_cores", "1"]))
        runner.stop()
    assert "served on plain text, as vLLM serves it" in caplog.text
    (folder / "sentence_bert_config.json").write_text("{}")
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"model_type": "MultiVectorEncoder"}))
    with pytest.raises(ValueError, match="is a sentence-transformers MultiVectorEncoder"):
        QEFFAutoModel.from_pretrained(folder).encode(TEXTS, AutoTokenizer.from_pretrained(folder))


def test_pooling_modes_where_the_config_leaves_keys_out(tmp_path):
    """As sentence-transformers 6.3 reads a Pooling config: the modes set true, mean where none is, a named mode alone."""
    from QEfficient.models.sentence_transformers import sentence_transformers_pooling

    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(json.dumps([{"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    for config, modes in (
        ({"pooling_mode_cls_token": True}, ["cls"]),
        ({"pooling_mode_cls_token": False}, ["mean"]),
        ({"pooling_mode_lasttoken": True, "pooling_mode_max_tokens": True}, ["max", "lasttoken"]),
        ({"pooling_mode": "lasttoken", "pooling_mode_cls_token": True}, ["lasttoken"]),
    ):
        (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(config))
        assert sentence_transformers_pooling(tmp_path) == modes, config


def test_the_server_on_the_folder_and_on_its_artifact(st_folder, qeff_home, tmp_path):
    from tests.test_server_encoder_artifact import answers_both_ways, vectors

    folder = tmp_path / "model"
    shutil.copytree(st_folder, folder)
    from_folder, from_artifact = answers_both_ways(str(folder), {"/v1/embeddings": {"input": TEXTS}}, qeff_home)
    assert from_artifact.pop("imported") == []
    np.testing.assert_allclose(vectors(from_folder["/v1/embeddings"]), reference(st_folder, TEXTS), atol=1e-5, rtol=0)
    np.testing.assert_array_equal(vectors(from_artifact["/v1/embeddings"]), vectors(from_folder["/v1/embeddings"]))


def test_prompts_as_sentence_transformers_puts_them(st_folder, tmp_path):
    """The folder's default prompt, one named, one given (which wins over a name, with a warning), an empty one;
    a name it does not have is refused. A Pooling that leaves the prompt out (include_prompt false) pools the
    sentence's tokens only: the prompt's tokens less one, as sentence-transformers counts them, are left out."""
    folder = tmp_path / "model"
    shutil.copytree(st_folder, folder)
    prompts = {"prompts": {"query": "query: ", "document": ""}, "default_prompt_name": "query"}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(prompts))
    model = QEFFAutoModel.from_pretrained(folder)
    model.compile(seq_len=[8, 64], batch_size=2, num_cores=1)  # a prompt makes them longer
    tok = AutoTokenizer.from_pretrained(folder)
    queries = reference(folder, ["query: " + t for t in TEXTS])
    np.testing.assert_allclose(model.encode(TEXTS, tok), queries, atol=1e-5, rtol=0)
    np.testing.assert_allclose(model.encode(TEXTS, tok, prompt_name="document"), reference(folder, TEXTS), atol=1e-5, rtol=0)
    # encode_document: the folder's "document" prompt, not the default one (sentence-transformers 6); "query" for queries
    np.testing.assert_allclose(model.encode_document(TEXTS, tok), reference(folder, TEXTS), atol=1e-5, rtol=0)
    np.testing.assert_allclose(model.encode_query(TEXTS, tok), queries, atol=1e-5, rtol=0)
    given = model.encode(TEXTS, tok, prompt="passage: ", prompt_name="query")
    np.testing.assert_allclose(given, reference(folder, ["passage: " + t for t in TEXTS]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="Prompt name 'title' is not among this model's prompts \\['document', 'query'\\]"):
        model.encode(TEXTS, tok, prompt_name="title")
    (folder / "config_sentence_transformers.json").write_text(json.dumps({**prompts, "default_prompt_name": "title"}))
    with pytest.raises(ValueError, match="default prompt name 'title' is not among its prompts"):
        model.encode(TEXTS, tok)
    (folder / "config_sentence_transformers.json").write_text(json.dumps(prompts))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 64, **POOLING, "include_prompt": False}))
    model = QEFFAutoModel.from_pretrained(folder)  # the folder read afresh
    model.compile(seq_len=[8, 64], batch_size=2, num_cores=1)
    length = len(tok("query: ")["input_ids"]) - 1  # [CLS] and the prompt's tokens
    assert length > 1
    np.testing.assert_allclose(model.encode(TEXTS, tok), reference(folder, ["query: " + t for t in TEXTS], length), atol=1e-5, rtol=0)
    tok.padding_side = "left"  # the padding skipped before the prompt, the weights counted from the first real token
    left = reference(folder, ["query: " + t for t in TEXTS], length, side="left")
    np.testing.assert_allclose(model.encode(TEXTS, tok), left, atol=1e-5, rtol=0)
    tok.padding_side = "right"
    np.testing.assert_allclose(model.encode(TEXTS, tok, prompt=""), reference(folder, TEXTS), atol=1e-5, rtol=0)
    pooled = QEFFAutoModel.from_pretrained(folder, pooling="mean")
    with pytest.raises(ValueError, match="include_prompt false.*load the model without pooling="):
        pooled.encode(TEXTS, tok)
    # a tokenizer that ends a text with no special token: the prompt's tokens are all left out (none dropped)
    from tokenizers.processors import TemplateProcessing

    tok._tokenizer.post_processor = TemplateProcessing(single="[CLS] $A", special_tokens=[("[CLS]", tok.cls_token_id)])
    tok.save_pretrained(folder)
    open_ended = AutoTokenizer.from_pretrained(folder)
    length = len(open_ended("query:")["input_ids"])  # [CLS] and the prompt's tokens (WordPiece drops the space)
    assert open_ended("query: ")["input_ids"][-1] not in open_ended.all_special_ids
    model = QEFFAutoModel.from_pretrained(folder)
    model.compile(seq_len=[8, 64], batch_size=2, num_cores=1)
    expected = reference(folder, ["query: " + t for t in TEXTS], length)
    np.testing.assert_allclose(model.encode(TEXTS, open_ended), expected, atol=1e-5, rtol=0)


def test_the_artifact_alone_encodes_as_the_model(st_folder, tmp_path):
    """serving's CompiledEncoder, what a Ray embedding actor runs without torch or the folder: the folder's default prompt
    left out of the pooling (include_prompt false), lowercasing, its max_seq_length and its Matryoshka cut, as
    QEFFAutoModel.encode computes them; a classifier's artifact is refused."""
    from QEfficient.serving.encoder_artifact import CompiledEncoder

    folder = tmp_path / "model"
    shutil.copytree(st_folder, folder)
    settings = {"prompts": {"query": "query: ", "document": ""}, "default_prompt_name": "query", "truncate_dim": 16}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(settings))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 12, "do_lower_case": True}))
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 64, **POOLING, "include_prompt": False}))
    model = QEFFAutoModel.from_pretrained(folder)
    model.compile(seq_len=[8, 64], batch_size=2, num_cores=1)
    tok = AutoTokenizer.from_pretrained(folder)
    texts = [t.upper() for t in TEXTS]
    artifact = CompiledEncoder(model.qpc_path, 1)
    expected = model.encode(texts, tok, batch_size=2)
    assert expected.shape == (3, 16)
    np.testing.assert_allclose(artifact.encode(texts, batch_size=2), expected, atol=1e-6, rtol=0)
    options = {"prompt_name": "document", "normalize": False, "truncate_dim": 8}
    np.testing.assert_allclose(artifact.encode(texts, **options), model.encode(texts, tok, **options), atol=1e-6, rtol=0)
    # a tokenizer that pads on the left: BERT's absolute positions move, in transformers and in the artifact alike
    AutoTokenizer.from_pretrained(folder, padding_side="left").save_pretrained(folder)
    model = QEFFAutoModel.from_pretrained(folder)
    model.compile(seq_len=[8, 64], batch_size=2, num_cores=1)
    left = AutoTokenizer.from_pretrained(folder)
    assert left.padding_side == "left" and CompiledEncoder(model.qpc_path, 1).tokenizer.padding_side == "left"
    expected = model.encode(texts, left, batch_size=3)  # ("HELLO" padded in the batch)
    assert np.abs(expected - model.encode(texts, tok, batch_size=3)).max() > 1e-3  # (the side matters here)
    np.testing.assert_allclose(CompiledEncoder(model.qpc_path, 1).encode(texts, batch_size=3), expected, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="non-empty list of strings"):
        artifact.encode([])
    # tokenizer arguments only transformers' tokenizers take: the model encodes, its artifact alone does not (a Ray
    # embedding job's actors then load the model from its folder)
    from QEfficient.distributed.ray_data import _why_not_from_artifact

    config = {"max_seq_length": 16, "processing_kwargs": {"text": {"pad_to_multiple_of": 8}}}
    (folder / "sentence_bert_config.json").write_text(json.dumps(config))
    model = QEFFAutoModel.from_pretrained(folder)
    model.compile(seq_len=[8, 64], batch_size=2, num_cores=1)
    assert model.encode(texts, tok).shape == (3, 16)
    with pytest.raises(ValueError, match="takes no pad_to_multiple_of .*Encode with QEFFAutoModel from the model's folder"):
        CompiledEncoder(model.qpc_path, 1).encode(texts)
    assert "pad_to_multiple_of" in _why_not_from_artifact(model.qpc_path)


def test_the_older_layout_with_the_transformer_below_the_top_says_what_to_do(st_folder, tmp_path):
    """sentence-transformers' first releases saved the transformer in 0_Transformer/: refused by the loader and the
    commands alike with the two ways out, not as a folder without config.json."""
    from QEfficient.cloud._cli import resolve_model_name
    from QEfficient.loading.model_path import ModelNotFoundError

    folder = tmp_path / "older"
    (folder / "0_Transformer").mkdir(parents=True)
    for item in st_folder.iterdir():
        target = folder / item.name if item.is_dir() or item.name == "modules.json" else folder / "0_Transformer" / item.name
        (shutil.copytree if item.is_dir() else shutil.copy)(item, target)
    modules = json.loads((folder / "modules.json").read_text())
    modules[0]["path"] = "0_Transformer"
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelNotFoundError, match=r"older layout, the transformer in '0_Transformer/'.*SentenceTransformer\(folder\)\.save"):
        QEFFAutoModel.from_pretrained(folder)
    with pytest.raises(ValueError, match="older layout"):
        resolve_model_name(str(folder), None)
    model = QEFFAutoModel.from_pretrained(folder / "0_Transformer", pooling="mean")  # the way out it names
    assert model.model.config.model_type == "bert"
