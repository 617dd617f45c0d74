"""The run-time tokenizer of an artifact is built once per tokenizer folder (models/artifact_tokenizer.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import transformers
from transformers import AutoTokenizer

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.runtime.tokenizer import TOKENIZER_SUBDIR, load_tokenizer


def test_a_second_compile_reuses_the_run_time_tokenizer(tiny_model_dir, tmp_path, monkeypatch):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir("llama"), folder)
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    first = Path(model.compile(prefill_seq_len=8, ctx_len=32))

    def refuse(*args, **kwargs):
        raise AssertionError("transformers loaded the tokenizer again")

    with monkeypatch.context() as patch:
        patch.setattr(transformers.AutoTokenizer, "from_pretrained", refuse)
        second = Path(model.compile(prefill_seq_len=8, ctx_len=64))
    assert second != first
    names = sorted(p.name for p in (first / TOKENIZER_SUBDIR).iterdir())
    assert names == sorted(p.name for p in (second / TOKENIZER_SUBDIR).iterdir()) and "tokenizer.json" in names
    for name in names:
        assert (second / TOKENIZER_SUBDIR / name).read_bytes() == (first / TOKENIZER_SUBDIR / name).read_bytes()

    template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = template  # another tokenizer: another artifact, its tokenizer built again
    tokenizer.save_pretrained(folder)
    third = Path(model.compile(prefill_seq_len=8, ctx_len=64))
    assert third != second and load_tokenizer(third).chat_template == template
    assert load_tokenizer(second).chat_template != template

    model.model.hf.generation_config.eos_token_id = [1, 2]  # other EOS ids: built again, with them
    fourth = Path(model.compile(prefill_seq_len=8, ctx_len=128))
    assert load_tokenizer(fourth).generation_eos_token_ids == [1, 2]
    assert load_tokenizer(third).generation_eos_token_ids != [1, 2]


def test_pairs_token_types_and_limits_as_transformers(tmp_path):
    """What an encoder's server asks of the run-time tokenizer: a BERT pair's ids, token types and mask, padded in a
    batch, and model_max_length, equal to transformers' after a save and a load."""
    import numpy as np

    from QEfficient.runtime.tokenizer import RuntimeTokenizer
    from tests.tiny_models import build_wordpiece_tokenizer

    build_wordpiece_tokenizer().save_pretrained(tmp_path / "hf")
    hf = AutoTokenizer.from_pretrained(tmp_path / "hf", model_max_length=512)
    RuntimeTokenizer.from_hf(hf).save_pretrained(tmp_path / "runtime")
    runtime = RuntimeTokenizer.from_pretrained(tmp_path / "runtime")
    assert runtime.model_max_length == 512
    first, second = ["What is the capital of France?", "Hello"], ["Paris is the capital of France.", "A quick brown fox"]
    assert runtime(first[0], second[0]) == dict(hf(first[0], second[0]))
    ours, theirs = runtime(first, second, padding=True, return_tensors="np"), hf(first, second, padding=True, return_tensors="np")
    assert set(ours) == set(theirs) == {"input_ids", "token_type_ids", "attention_mask"}
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name])
    import pytest

    with pytest.raises(ValueError, match="text_pair must match text"):
        runtime(first, second[:1])


def test_chats_padded_and_cut_as_transformers(tmp_path):
    """apply_chat_template's tokenizer arguments (a sentence-transformers chat folder's encode() passes them): padding to
    the longest or to max_length and truncation equal transformers'; an argument given twice, or one the run-time
    tokenizer does not take, is refused."""
    import numpy as np
    import pytest

    from QEfficient.runtime.tokenizer import RuntimeTokenizer
    from tests.tiny_models import build_wordpiece_tokenizer

    hf = build_wordpiece_tokenizer()
    hf.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }} {% endfor %}"
    runtime = RuntimeTokenizer.from_hf(hf)
    system = {"role": "system", "content": "Be brief"}
    chats = [[{"role": "user", "content": "Hello"}], [system, {"role": "user", "content": "A quick brown fox"}]]
    for options in ({"padding": True}, {"padding": "max_length", "max_length": 40}, {"padding": True, "truncation": True, "max_length": 5}):
        ours = runtime.apply_chat_template(chats, return_tensors="np", **options)
        theirs = hf.apply_chat_template(chats, return_dict=True, return_tensors="np", **options)
        for name in ("input_ids", "attention_mask"):
            np.testing.assert_array_equal(ours[name], theirs[name])
    with pytest.raises(ValueError, match="repeat apply_chat_template's own padding"):
        runtime.apply_chat_template(chats, padding=True, tokenizer_kwargs={"padding": "longest"})
    with pytest.raises(ValueError, match="takes no pad_to_multiple_of \\(tokenizer_kwargs\\)"):
        runtime.apply_chat_template(chats, tokenizer_kwargs={"pad_to_multiple_of": 8})
    with pytest.raises(ValueError, match="does not take sanitize_control_tokens"):
        runtime.apply_chat_template(chats, sanitize_control_tokens=True)
