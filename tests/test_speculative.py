"""Speculative decoding: the target graph's per-position logits, and exact greedy output with
prompt lookup, a draft model and the compressed self-draft, on tiny random models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.generation.speculative import DraftLength, PromptLookupDrafter, SpeculativeUnsupportedError
from QEfficient.runtime.ort_session import SPIN_WITHIN_RUN, session_options

TARGET = {"speculative_model_type": "target"}
PROMPTS = [
    "hello world hello world hello world hello",
    "the cat sat on the mat",
    "one two three one two three one two three one two",
    "a b c d e f g",
]


def rows(info) -> list[list[int]]:
    """Generated ids row by row, across batches."""
    return [row.tolist() for batch in info.generated_ids for row in batch]


def compiled(folder, qaic_config=None, **compile_args):
    model = QEFFAutoModelForCausalLM.from_pretrained(folder, qaic_config=qaic_config)
    model.compile(prefill_seq_len=8, ctx_len=64, **compile_args)
    return model


@pytest.fixture(scope="module")
def draft(tiny_model_dir):
    """A different tiny model as the draft: its tokens often disagree, so rejections happen."""
    return compiled(tiny_model_dir("llama"), batch_size=2)


@pytest.mark.parametrize("arch", ["mistral", "qwen2", "gemma2"])
def test_speculative_output_equals_plain_greedy(tiny_model_dir, draft, arch):
    folder = tiny_model_dir(arch)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    plain = rows(compiled(folder, batch_size=2).generate(tokenizer, PROMPTS, generation_len=40, stream=False))
    target = compiled(folder, TARGET, batch_size=2, num_speculative_tokens=4, speculative_draft="mxfp6")

    lookup = target.generate(tokenizer, PROMPTS, generation_len=40, stream=False, prompt_lookup_num_tokens=4)
    assert rows(lookup) == plain
    assert lookup.speculative_stats["drafted"] > 0
    if arch == "qwen2":  # its greedy output repeats itself: lookup must get some drafts right
        assert lookup.speculative_stats["accepted"] > 0
    assisted = target.generate(tokenizer, PROMPTS, generation_len=40, stream=False, assistant_model=draft, num_assistant_tokens=3)
    assert rows(assisted) == plain
    assert assisted.speculative_stats["accepted"] < assisted.speculative_stats["drafted"]  # some rejected: rollback ran
    selfspec = target.generate(tokenizer, PROMPTS, generation_len=40, stream=False)  # the mxfp6 self-draft
    assert rows(selfspec) == plain
    assert selfspec.speculative_stats["accepted"] > 0


def test_generation_up_to_the_end_of_the_context(tiny_model_dir):
    """Verify chunks are cut short near ctx_len; the output still equals plain decoding's."""
    folder = tiny_model_dir("mistral")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    plain = QEFFAutoModelForCausalLM.from_pretrained(folder)
    plain.compile(prefill_seq_len=8, ctx_len=48)
    target = QEFFAutoModelForCausalLM.from_pretrained(folder, qaic_config=TARGET)
    target.compile(prefill_seq_len=8, ctx_len=48, num_speculative_tokens=5, speculative_draft="mxfp6")
    expected = rows(plain.generate(tokenizer, PROMPTS[:2], stream=False))
    assert rows(target.generate(tokenizer, PROMPTS[:2], stream=False, prompt_lookup_num_tokens=5)) == expected
    assert rows(target.generate(tokenizer, PROMPTS[:2], stream=False)) == expected
    assert rows(target.generate(tokenizer, PROMPTS[:2], stream=False, num_assistant_tokens_schedule="constant")) == expected
    assert rows(target.generate(tokenizer, PROMPTS[:2], stream=False, assistant_model=plain, num_assistant_tokens=5)) == expected
    # a half-width cache (mxint8_kv_cache) is a target graph of its own (it used to reuse the float32 one's export)
    half = QEFFAutoModelForCausalLM.from_pretrained(folder, qaic_config=TARGET)
    half.compile(prefill_seq_len=8, ctx_len=48, num_speculative_tokens=5, mxint8_kv_cache=True)
    assert half.onnx_path != target.onnx_path
    plain.compile(prefill_seq_len=8, ctx_len=48, mxint8_kv_cache=True)
    half_plain = rows(plain.generate(tokenizer, PROMPTS[:2], stream=False))
    assert rows(half.generate(tokenizer, PROMPTS[:2], stream=False, prompt_lookup_num_tokens=5)) == half_plain


def test_target_graph_scores_every_position(tiny_model_dir):
    """Logits of every chunk position equal transformers' (prefill chunk, then a verify chunk)."""
    folder = tiny_model_dir("gemma2")
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    target = compiled(folder, TARGET, num_speculative_tokens=3)
    target.generate(AutoTokenizer.from_pretrained(folder), PROMPTS[:1], generation_len=1, stream=False)  # opens the session
    session = target.qpc_session
    ids = np.arange(3, 15, dtype=np.int64)[None]
    session.reset()
    first = session.run_all(ids[:, :8], np.arange(8)[None]).copy()
    second = session.run_all(ids[:, 8:], np.arange(8, 12)[None]).copy()
    with torch.no_grad():
        expected = hf(torch.from_numpy(ids)).logits.numpy()
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), expected, atol=1e-4)


def test_prompt_lookup_takes_the_earliest_match_of_the_longest_ngram():
    drafter = PromptLookupDrafter(num_tokens=3)
    drafts, counts = drafter.propose([[5, 6, 7, 8, 9, 5, 6, 1, 2, 5, 6], [1, 2, 3]], np.array([True, True]), 3)
    assert drafts[0].tolist() == [7, 8, 9] and counts.tolist() == [3, 0]
    # min_ngram_size=2: a single-token match drafts nothing; a bigram match still does
    lookup = PromptLookupDrafter(num_tokens=2, min_ngram_size=2)
    _, counts = lookup.propose([[4, 1, 2, 3, 4], [1, 2, 3, 1, 2]], np.array([True, True]), 2)
    assert counts.tolist() == [0, 2]


def test_heuristic_draft_length_and_spinning_within_runs():
    length = DraftLength(3, budget=8)
    for kept, expected in [(3, 5), (5, 7), (7, 8), (8, 8), (2, 7), (0, 6)]:
        length.update(np.array([kept, -1]), np.array([True, False]), length.k)
        assert length.k == expected
    fixed = DraftLength(3, budget=8, schedule="constant")
    fixed.update(np.array([3]), np.array([True]), 3)
    assert fixed.k == 3
    with pytest.raises(ValueError, match="num_assistant_tokens_schedule"):
        DraftLength(3, 8, schedule="dynamic")
    opts = session_options(1, spin=SPIN_WITHIN_RUN)
    assert opts.get_session_config_entry("session.force_spinning_stop") == "1"
    assert session_options(1, spin=False).get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_speculative_errors(tiny_model_dir, tmp_path):
    folder = tiny_model_dir("llama")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with pytest.raises(TypeError, match="num_speculative_tokens"):
        QEFFAutoModelForCausalLM.from_pretrained(folder, qaic_config=TARGET).compile(prefill_seq_len=8, ctx_len=32)
    with pytest.raises(TypeError, match="speculative_model_type"):
        QEFFAutoModelForCausalLM.from_pretrained(folder).compile(prefill_seq_len=8, ctx_len=32, num_speculative_tokens=3)
    with pytest.raises(ValueError, match="gguf"):  # the GGUF self-draft needs a model loaded from a .gguf file
        QEFFAutoModelForCausalLM.from_pretrained(folder, qaic_config=TARGET).compile(
            prefill_seq_len=8, ctx_len=32, num_speculative_tokens=3, speculative_draft="gguf"
        )
    with pytest.raises(NotImplementedError, match="turbo"):
        QEFFAutoModelForCausalLM.from_pretrained(folder, qaic_config={"speculative_model_type": "turbo"})
    plain = compiled(folder)
    with pytest.raises(SpeculativeUnsupportedError, match="target"):
        plain.generate(tokenizer, PROMPTS[:1], stream=False, prompt_lookup_num_tokens=3)
    target = compiled(folder, TARGET, num_speculative_tokens=2)
    with pytest.raises(ValueError, match="exceeds"):
        target.generate(tokenizer, PROMPTS[:1], stream=False, prompt_lookup_num_tokens=3)
    with pytest.raises(SpeculativeUnsupportedError, match="greedy"):
        target.generate(tokenizer, PROMPTS[:1], stream=False, prompt_lookup_num_tokens=2, temperature=0.7)
    with pytest.raises(ValueError, match="batch size"):
        target.generate(tokenizer, PROMPTS[:1], stream=False, assistant_model=compiled(folder, batch_size=2))
    from tests.tiny_models import tiny_config

    wider = tiny_config("llama")
    wider.vocab_size += 80  # a draft of another tokenizer: it would draft ids the target has no embedding for
    AutoModelForCausalLM.from_config(wider).save_pretrained(tmp_path / "wider")
    with pytest.raises(ValueError, match=r"draft model's vocabulary \(\d+ tokens\) is larger than the target's"):
        target.generate(tokenizer, PROMPTS[:1], stream=False, assistant_model=compiled(tmp_path / "wider"))
    for given, message in (  # refused, not replaced by a default
        ({"assistant_model": plain, "num_assistant_tokens": 0}, "num_assistant_tokens must be a positive integer, got 0"),
        ({"prompt_lookup_num_tokens": 2, "max_matching_ngram_size": 0}, "max_matching_ngram_size must be a positive integer"),
        ({"prompt_lookup_num_tokens": 2, "max_matching_ngram_size": 1, "min_matching_ngram_size": 3}, "min_matching_ngram_size=3 is more"),
        ({"assistant_model": str(folder)}, "assistant_model must be a compiled QEFFAutoModelForCausalLM .* got str"),
    ):
        with pytest.raises((ValueError, TypeError), match=message):
            target.generate(tokenizer, PROMPTS[:1], stream=False, **given)
    with pytest.warns(UserWarning, match="num_assistant_tokens, num_assistant_tokens_schedule do not apply to prompt lookup"):
        target.generate(
            tokenizer,
            PROMPTS[:1],
            stream=False,
            prompt_lookup_num_tokens=2,
            num_assistant_tokens=1,
            num_assistant_tokens_schedule="constant",
        )
    with pytest.warns(UserWarning, match="max_matching_ngram_size do not apply to a draft model's"):
        target.generate(tokenizer, PROMPTS[:1], stream=False, assistant_model=plain, max_matching_ngram_size=3)
    with pytest.raises(ValueError, match="num_assistant_tokens_schedule must be one of"):  # (was read only by a draft model)
        target.generate(tokenizer, PROMPTS[:1], stream=False, prompt_lookup_num_tokens=2, num_assistant_tokens_schedule="bogus")
    one = target.generate(tokenizer, PROMPTS[:1], generation_len=6, stream=False, prompt_lookup_num_tokens=2, max_matching_ngram_size=1)
    assert rows(one) == rows(plain.generate(tokenizer, PROMPTS[:1], generation_len=6, stream=False))  # (min follows a max of 1)
    # plain generation on a target artifact is plain greedy
    assert rows(target.generate(tokenizer, PROMPTS[:2], generation_len=10, stream=False)) == rows(
        plain.generate(tokenizer, PROMPTS[:2], generation_len=10, stream=False)
    )


@pytest.mark.parametrize("arch", ["qwen2", "mistral"])
def test_continuous_batching_prompt_lookup_equals_plain_greedy(tiny_model_dir, arch):
    """Four prompts through two slots: each completion equals plain greedy decoding's."""
    folder = tiny_model_dir(arch)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    plain = rows(compiled(folder, batch_size=2).generate(tokenizer, PROMPTS, generation_len=40, stream=False))
    target = QEFFAutoModelForCausalLM.from_pretrained(folder, continuous_batching=True, qaic_config=TARGET)
    target.compile(prefill_seq_len=8, ctx_len=64, full_batch_size=2, num_speculative_tokens=4, speculative_draft="mxfp6")
    expected = [np.trim_zeros(np.array(p), "b").tolist() for p in plain]
    info = target.generate(tokenizer, PROMPTS, generation_len=40, stream=False, prompt_lookup_num_tokens=4)
    assert [np.trim_zeros(row, "b").tolist() for row in info.generated_ids] == expected
    assert info.speculative_stats["drafted"] > 0
    if arch == "qwen2":
        assert info.speculative_stats["accepted"] > 0
    selfspec = target.generate(tokenizer, PROMPTS, generation_len=40, stream=False, num_assistant_tokens=3)  # the mxfp6 draft
    assert [np.trim_zeros(row, "b").tolist() for row in selfspec.generated_ids] == expected
    assert selfspec.speculative_stats["accepted"] > 0
    other = QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"), continuous_batching=True)
    other.compile(prefill_seq_len=8, ctx_len=64, full_batch_size=2)
    assisted = target.generate(tokenizer, PROMPTS, generation_len=40, stream=False, assistant_model=other)
    assert [np.trim_zeros(row, "b").tolist() for row in assisted.generated_ids] == expected


@pytest.mark.parametrize("drafting", ["prompt_lookup", "draft_model"])
def test_server_with_prompt_lookup_equals_transformers(tiny_model_dir, drafting):
    """serve --prompt_lookup_num_tokens K (or --draft_model M --num_speculative_tokens K): concurrent
    greedy requests give transformers' greedy text."""
    from concurrent.futures import ThreadPoolExecutor

    from QEfficient.cloud.serve import build_server
    from tests.helpers import hf_greedy, serve_on_loopback
    from tests.test_server import complete

    folder = tiny_model_dir("qwen2")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    if drafting == "prompt_lookup":
        options = {"prompt_lookup_num_tokens": 4}
    else:  # another tiny model (same vocabulary) drafts: it often disagrees, so rejections happen
        options = {"draft_model": str(tiny_model_dir("llama")), "num_speculative_tokens": 3}
    app, runner = build_server(str(folder), None, 8, 96, 2, 1, **options)
    try:
        with serve_on_loopback(app) as url:
            with ThreadPoolExecutor(max_workers=4) as pool:
                bodies = list(pool.map(lambda p: complete(url, p, max_tokens=20), PROMPTS))
            for prompt, body in zip(PROMPTS, bodies):
                assert body["choices"][0]["text"] == tokenizer.decode(hf_greedy(hf, tokenizer, prompt, 20), skip_special_tokens=True)
            assert complete(url, PROMPTS[0], max_tokens=8, temperature=0.8, seed=3)["choices"][0]["text"]  # sampling: plain steps
            assert runner.engine.stats["accepted" if drafting == "prompt_lookup" else "drafted"] > 0
    finally:
        runner.stop()


def test_engine_mixes_sampling_and_greedy_requests(tiny_model_dir):
    """A sampling request takes plain steps beside speculating greedy ones (alone, too)."""
    from QEfficient.generation.continuous_batching import Request
    from QEfficient.generation.sampling import SamplingParams
    from QEfficient.generation.speculative_batching import SpeculativeBatchingEngine

    folder = tiny_model_dir("qwen2")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    target = QEFFAutoModelForCausalLM.from_pretrained(folder, continuous_batching=True, qaic_config=TARGET)
    target.compile(prefill_seq_len=8, ctx_len=64, full_batch_size=2, num_speculative_tokens=4)
    target.generate(tokenizer, PROMPTS[:1], generation_len=2, stream=False)  # opens the session
    ids = [tokenizer(p)["input_ids"] for p in PROMPTS[:3]]
    engine = SpeculativeBatchingEngine(target.qpc_session, 8, {2}, 0, 4)
    sampled = Request(ids[2], 12, SamplingParams(temperature=0.9, seed=1))
    greedy = [Request(t, 12) for t in ids[:2]]
    engine.run_all([greedy[0], sampled, greedy[1]])
    alone = Request(ids[2], 12, SamplingParams(temperature=0.9, seed=1))
    engine.run_all([alone])
    plain = rows(compiled(folder).generate(tokenizer, PROMPTS[:2], generation_len=12, stream=False))
    assert [np.trim_zeros(np.array(r.output), "b").tolist() for r in greedy] == [np.trim_zeros(np.array(p), "b").tolist() for p in plain]
    assert sampled.error is None and alone.error is None and len(sampled.output) == len(alone.output) == 12


def test_prompt_lookup_with_lora_adapters_equals_plain_lora_decoding(tiny_model_dir, tmp_path):
    """A LoRA target (adapter tables as graph inputs, logits for every position) drafts by prompt
    lookup; each row keeps its adapter's plain greedy tokens (tests/test_lora.py ties those to HF + PEFT)."""
    from QEfficient import QEffAutoLoraModelForCausalLM
    from tests.test_lora import ADAPTERS, make_adapter

    base = tiny_model_dir("llama")
    tokenizer = AutoTokenizer.from_pretrained(base)
    adapters = {name: make_adapter(base, tmp_path / name, seed, **ADAPTERS[name]) for seed, name in enumerate(("qv", "mlp"), start=1)}
    models = []
    for qaic_config, extra in ((None, {}), (TARGET, {"num_speculative_tokens": 4})):
        model = QEffAutoLoraModelForCausalLM.from_pretrained(base, qaic_config=qaic_config)
        for name, path in adapters.items():
            model.load_adapter(path, name)
        model.compile(prefill_seq_len=8, ctx_len=64, batch_size=2, num_cores=1, **extra)
        models.append(model)
    mapping = ["qv", "base", "mlp", "qv"]
    plain = rows(models[0].generate(tokenizer, PROMPTS, prompt_to_adapter_mapping=mapping, generation_len=20, stream=False))
    lookup = models[1].generate(
        tokenizer, PROMPTS, prompt_to_adapter_mapping=mapping, generation_len=20, stream=False, prompt_lookup_num_tokens=4
    )
    assert rows(lookup) == plain
    assert lookup.speculative_stats["drafted"] > 0
    with pytest.raises(NotImplementedError, match="prompt lookup"):
        models[1].generate(tokenizer, PROMPTS[:2], stream=False, assistant_model=models[0])
