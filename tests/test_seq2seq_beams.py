"""Beam search for text encoder-decoders: the sequences of transformers' ``generate(num_beams=...)`` on the same tiny
random models, with its length penalty, each ``early_stopping`` mode, several returned sequences, the checkpoint's own
beam settings and generation rules, and inputs of different lengths in one batch; then the cache rows' reordering and
the errors."""

from __future__ import annotations

import warnings

import httpx
import numpy as np
import pytest
import torch
from transformers import AutoModelForSeq2SeqLM

from QEfficient import QEFFAutoModelForSeq2SeqLM
from QEfficient.generation.beam_search import BeamSettings, top_k
from QEfficient.runtime.ort_session import open_kv_session
from tests import test_seq2seq
from tests.loopback import loopback_http

PROMPTS = test_seq2seq.PROMPTS
seq2seq_dir = test_seq2seq.seq2seq_dir  # the fixture
GEN = 12


def reference(folder, tok, **options) -> torch.Tensor:
    hf = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    with torch.no_grad():
        return hf.generate(**tok(PROMPTS, padding=True, return_tensors="pt"), do_sample=False, **options)


def ending_early(folder, tok, tmp_path):
    """The model at ``folder`` with its end token's head row a copy (x1.02) of a token greedy decoding writes fifth:
    hypotheses then end at different lengths, which is where length penalty and early stopping matter."""
    hf = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    with torch.no_grad():
        fifth = hf.generate(**tok(PROMPTS[:1], return_tensors="pt"), max_new_tokens=6, do_sample=False, num_beams=1)[0, 5]
        head = hf.get_output_embeddings().weight
        head[tok.eos_token_id] = head[fifth] * 1.02
    hf.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.parametrize("kind", ["t5", "bart", "marian", "fsmt"])
def test_beam_search_equals_transformers(kind, seq2seq_dir, tmp_path):
    """T5 with hypotheses of different lengths; BART, Marian and FSMT (positions placed by the cache's length)
    with a repetition penalty, so that their beams differ."""
    folder, tok = seq2seq_dir(kind) if kind == "t5" else seq2seq_dir(kind, repetition_penalty=1.3)
    if kind == "t5":
        folder = ending_early(folder, tok, tmp_path)
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    model.compile(ctx_len=32, batch_size=2, num_cores=1)
    cases = [
        dict(num_beams=4),
        dict(num_beams=3, length_penalty=2.0, early_stopping=True, num_return_sequences=2),
        dict(num_beams=2, length_penalty=-0.5, early_stopping="never"),
    ]
    for options in cases:
        expected = reference(folder, tok, max_new_tokens=GEN, **options)
        info = model.generate(tok, PROMPTS, generation_len=GEN, **options)
        assert info.generated_ids[0].tolist() == expected.tolist(), options
        if kind == "t5":  # hypotheses that ended before the longest
            ends = [int((row == tok.eos_token_id).nonzero()[0, 0]) for row in expected if (row == tok.eos_token_id).any()]
            assert ends and min(ends) < expected.shape[1] - 1
        assert info.generated_texts[0] == tok.batch_decode(expected, skip_special_tokens=True)


def test_the_checkpoint_s_beams_and_rules(seq2seq_dir):
    """The checkpoint's num_beams / length_penalty / no_repeat_ngram_size / forced BOS apply as in transformers'
    generate without arguments; a batch of one input of two compiled rows, and a call that asks for greedy."""
    rules = dict(num_beams=3, length_penalty=1.5, no_repeat_ngram_size=2, forced_bos_token_id=77, min_new_tokens=6, max_length=10)
    folder, tok = seq2seq_dir("mbart", **rules)
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    model.compile(ctx_len=16, batch_size=2, num_cores=1)
    expected = reference(folder, tok)
    assert model.generate(tok, PROMPTS).generated_ids[0].tolist() == expected.tolist()
    one = model.generate(tok, PROMPTS[1:]).generated_ids[0]
    assert one.tolist() == reference(folder, tok)[1:, : one.shape[1]].tolist()
    greedy = model.generate(tok, PROMPTS, num_beams=1).generated_ids[0]
    assert greedy.tolist() == reference(folder, tok, num_beams=1)[:, : greedy.shape[1]].tolist()


def test_reorder_rows_moves_each_cache_row(seq2seq_dir):
    folder, _ = seq2seq_dir("t5")
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    paths = model.compile(ctx_len=16, batch_size=1, num_cores=1)
    session = open_kv_session(paths["decoder_qpc_path"], 1, rows=3)
    for index in range(len(session.names)):
        session.cache_view(index)[:] = np.arange(3)[:, None, None, None]
    session.reorder_rows(np.array([2, 0, 0]))
    assert [int(session.cache_view(i)[r].max()) for i in (0, len(session.names) - 1) for r in range(3)] == [2, 0, 0] * 2
    with pytest.raises(ValueError, match="one row index"):
        session.reorder_rows(np.array([0, 3, 1]))


def test_top_k_breaks_ties_by_the_lower_index():
    scores = np.array([[0.5, 2.0, 2.0, -np.inf, 2.0, 1.0]], np.float32)
    assert top_k(scores, 4).tolist() == [[1, 2, 4, 5]]
    many = np.random.default_rng(0).integers(0, 4, (50, 40)).astype(np.float32)  # rows full of ties
    for k in (1, 3, 8):
        expected = np.argsort(-many, axis=-1, kind="stable")[:, :k]
        assert top_k(many, k).tolist() == expected.tolist()
        assert top_k(many, k, floor=np.full(50, -1.0, np.float32)).tolist() == expected.tolist()


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(num_beams=0), "num_beams must be a positive integer"),
        (dict(num_beams=2, num_return_sequences=3), "num_return_sequences=3 must be between 1 and num_beams=2"),
        (dict(num_return_sequences=2), "needs beam search"),
        (dict(num_beams=2, early_stopping="sometimes"), "early_stopping must be True, False or 'never'"),
    ],
)
def test_bad_beam_settings_say_what_to_pass(options, message, seq2seq_dir):
    folder, tok = seq2seq_dir("bart")
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    model.compile(ctx_len=16, num_cores=1)
    with pytest.raises(ValueError, match=message):
        model.generate(tok, PROMPTS, generation_len=4, **options)
    with pytest.raises(ValueError):
        BeamSettings(2.5)


def test_sampling(seq2seq_dir):
    """do_sample=True draws with transformers' warpers: at a temperature this low, the greedy tokens (transformers'
    sampling too); reproducible with a seed and independent of the batch (one generator per input); beam sampling and
    a temperature of 0 are refused."""
    folder, tok = seq2seq_dir("bart")
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    model.compile(ctx_len=32, batch_size=2, num_cores=1)
    greedy = model.generate(tok, PROMPTS, generation_len=GEN).generated_ids[0]
    assert (model.generate(tok, PROMPTS, generation_len=GEN, do_sample=True, temperature=1e-5).generated_ids[0] == greedy).all()
    hf = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    with torch.no_grad():
        theirs = hf.generate(**tok(PROMPTS, padding=True, return_tensors="pt"), max_new_tokens=GEN, do_sample=True, temperature=1e-5)
    assert theirs[:, : greedy.shape[1]].tolist() == greedy.tolist()

    def sampled(prompts, seed):
        return model.generate(tok, prompts, generation_len=GEN, do_sample=True, top_k=0, seed=seed).generated_ids[0]

    first = sampled(PROMPTS, 3)
    assert sampled(PROMPTS, 3).tolist() == first.tolist() and sampled(PROMPTS, 4).tolist() != first.tolist()
    assert first.tolist() != greedy.tolist()
    alone = sampled(PROMPTS[:1], 3)[0]
    assert alone[: len(first[0])].tolist() == first[0][: len(alone)].tolist()
    # several samples of an input: rows of their own, each input's in turn
    three = model.generate(tok, PROMPTS, generation_len=GEN, do_sample=True, top_k=0, seed=3, num_return_sequences=3)
    rows = [row for batch in three.generated_ids for row in batch]
    assert len(rows) == 6 and len(three.texts) == 6
    model.hf.generation_config.num_beams = 4  # a checkpoint that asks for beams, sampled: one sequence per row, said once
    with warnings.catch_warnings():  # ...unless the call asks for num_beams=1: what it gets, as in transformers
        warnings.simplefilter("error")
        model.generate(tok, PROMPTS, generation_len=2, do_sample=True, num_beams=1)
    with pytest.warns(UserWarning, match="sampling draws one sequence per row"):
        model.generate(tok, PROMPTS, generation_len=2, do_sample=True)
    model.hf.generation_config.num_beams = 1
    with pytest.raises(NotImplementedError, match="(?i)beam sampling"):
        model.generate(tok, PROMPTS, generation_len=GEN, do_sample=True, num_beams=2)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        model.generate(tok, PROMPTS, generation_len=GEN, do_sample=True, temperature=0.0)
    with pytest.warns(UserWarning, match=r"\['temperature'\] apply when sampling"):
        model.generate(tok, PROMPTS, generation_len=2, temperature=0.5)


def test_warpers_are_transformers():
    """generation/sampling.warped (temperature, top-k, top-p, min-p) against transformers' warpers on the same scores."""
    from transformers.generation.logits_process import MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from QEfficient.generation.sampling import warped

    scores = torch.randn(3, 200, generator=torch.Generator().manual_seed(0)) * 3
    for temperature, k, p, min_p in ((0.7, 50, 1.0, None), (1.3, 0, 0.9, None), (1.0, 20, 0.8, 0.05), (0.5, 0, 1.0, 0.1)):
        expected = TemperatureLogitsWarper(temperature)(None, scores.clone())
        if k:
            expected = TopKLogitsWarper(k)(None, expected)
        if p < 1:
            expected = TopPLogitsWarper(p)(None, expected)
        if min_p:
            expected = MinPLogitsWarper(min_p)(None, expected)
        ours = warped(scores.numpy(), temperature, k, p, min_p)
        assert (np.isinf(ours) == torch.isinf(expected).numpy()).all()
        kept = ~np.isinf(ours)
        assert np.allclose(ours[kept], expected.numpy()[kept], rtol=1e-6)


def test_server_completes_with_the_encoder_decoder(seq2seq_dir):
    """``serve`` on a text encoder-decoder: /v1/completions gives generate()'s text (transformers' tokens), each
    request's options checked; chat is refused with where to go."""
    from QEfficient.cloud.serve import build_server
    from tests.helpers import serve_on_loopback

    folder, tok = seq2seq_dir("bart")
    app, runner = build_server(str(folder), None, prefill_seq_len=1, ctx_len=32, full_batch_size=1, num_cores=1)
    hf = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = hf.generate(**tok(PROMPTS, padding=True, return_tensors="pt"), max_new_tokens=GEN, do_sample=False)
    texts = tok.batch_decode(expected, skip_special_tokens=True)
    try:
        with serve_on_loopback(app) as url:

            def post(path="/v1/completions", **body) -> httpx.Response:
                return loopback_http.post(f"{url}{path}", json=body, timeout=120)

            r = post(prompt=PROMPTS, max_tokens=GEN, temperature=0)
            assert r.status_code == 200, r.text
            body = r.json()
            assert [c["text"] for c in body["choices"]] == texts and body["object"] == "text_completion"
            # transformers' tokens after the start token, up to each row's end (its padding uncounted)
            generated = [[t for t in row[1:] if t != tok.pad_token_id] for row in expected.tolist()]
            assert body["usage"]["completion_tokens"] == sum(len(g) for g in generated)
            assert [c["finish_reason"] for c in body["choices"]] == ["length" if len(g) >= GEN else "stop" for g in generated]
            # no max_tokens: transformers' default length (20 new tokens, BART's end token forced at the last): "length"
            with torch.no_grad(), pytest.warns(UserWarning, match="max_length"):
                default = hf.generate(**tok(PROMPTS[:1], return_tensors="pt"), do_sample=False)[0, 1:].tolist()
            default = [t for t in default if t != tok.pad_token_id]
            choice = post(prompt=PROMPTS[0], temperature=0).json()["choices"][0]
            assert choice["text"] == tok.decode(default, skip_special_tokens=True)
            assert choice["finish_reason"] == ("length" if len(default) == 20 else "stop")
            r = post(prompt=PROMPTS[0], max_tokens=33)
            assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens" and "at most 32" in r.json()["error"]["message"]
            r = post(prompt=PROMPTS[0], presence_penalty=0.5)
            assert r.status_code == 400 and r.json()["error"]["param"] == "presence_penalty"
            r = post(prompt=PROMPTS[0], max_tokens=GEN, temperature=1e-5, seed=1)  # sampled, as greedy as it gets
            assert r.status_code == 200 and r.json()["choices"][0]["text"] == texts[0]
            for bad, param in (
                (dict(stream_options={"include_usage": True}), "stream_options"),
                (dict(n=2), "n"),
                (dict(stop=[1]), "stop"),
                (dict(stop_token_ids=[5]), "stop_token_ids"),
                (dict(min_tokens=2), "min_tokens"),
                (dict(prompt=[1, 2]), "prompt"),
            ):
                r = post(**{"prompt": PROMPTS[0], **bad})
                assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
            r = post("/v1/chat/completions", messages=[{"role": "user", "content": "hi"}])
            assert r.status_code == 400 and "/v1/completions" in r.json()["error"]["message"]
            assert post(prompt="x", model="other").status_code == 404
    finally:
        runner.stop()
    with pytest.raises(ValueError, match="encoder-decoder, served one request at a time: --draft_model do not apply; leave them out"):
        build_server(str(folder), None, 1, 32, 1, 1, draft_model=str(folder))


def _events(response) -> list:
    """A server-sent event stream's data: each JSON payload, then "[DONE]"."""
    import json

    datas = [line[len("data: ") :] for line in response.text.split("\n\n") if line.startswith("data: ")]
    return [json.loads(d) for d in datas[:-1]] + [datas[-1]]


def _wordy(folder, tok):
    """The tiny model at ``folder`` made to write words: its head biased against every token that is not a space
    followed by letters (its text then streams in pieces, as a trained model's does)."""
    model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    pieces = {i: tok.decode([i]) for i in range(len(tok))}
    words = [i for i, p in pieces.items() if p.startswith(" ") and p[1:].isalpha() and p.isascii()]
    assert len(words) > 5
    with torch.no_grad():
        model.final_logits_bias.fill_(-1e4)
        model.final_logits_bias[0, words] = 0.0
        model.final_logits_bias[0, tok.eos_token_id] = -2.0
    model.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("num_beams", [1, 3])
def test_server_streams_completions(seq2seq_dir, num_beams):
    """``stream: true``: greedy or seeded sampled text in pieces as it is decoded (with beams, each completion whole),
    then each choice's finish reason and the usage: the same text, reasons and counts as the answer without streaming;
    the prompts share one generate() call, so their seeds are the same too."""

    from QEfficient.cloud.serve import build_server
    from tests.helpers import serve_on_loopback

    folder, tok = seq2seq_dir("bart", num_beams=num_beams)
    _wordy(folder, tok)
    app, runner = build_server(str(folder), None, prefill_seq_len=1, ctx_len=32, full_batch_size=2, num_cores=1)
    prompts = [*PROMPTS, PROMPTS[0]]  # three prompts: two batches of the compiled two rows
    cases = [{"temperature": 0}] + ([{"temperature": 0.8, "seed": 5}] if num_beams == 1 else [])
    try:
        with serve_on_loopback(app) as url:
            for options in cases:
                body = {"prompt": prompts, "max_tokens": GEN, **options}
                whole = loopback_http.post(f"{url}/v1/completions", json=body, timeout=120).json()
                stream = {"stream": True, "stream_options": {"include_usage": True}}
                r = loopback_http.post(f"{url}/v1/completions", json=body | stream, timeout=120)
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.text
                events = _events(r)
                assert events[-1] == "[DONE]" and events[-2]["choices"] == [] and events[-2]["usage"] == whole["usage"]
                pieces = [c for e in events[:-2] for c in e["choices"]]
                for i, choice in enumerate(whole["choices"]):
                    mine = [c for c in pieces if c["index"] == i]
                    assert "".join(c["text"] for c in mine) == choice["text"] and " " in choice["text"], options
                    assert [c["finish_reason"] for c in mine] == [None] * (len(mine) - 1) + [choice["finish_reason"]]
                    assert len(mine) == 1 if num_beams > 1 else len(mine) > 2  # beams: whole; else word by word
                assert all(e["object"] == "text_completion" and e["id"] == events[0]["id"] for e in events[:-1])
                assert all(e["usage"] is None for e in events[:-2])
                # vLLM's continuous_usage_stats: each chunk carries its choice's usage so far
                stream["stream_options"]["continuous_usage_stats"] = True
                events = _events(loopback_http.post(f"{url}/v1/completions", json=body | stream, timeout=120))
                assert events[-2]["usage"] == whole["usage"]
                counted = 0
                for i, prompt in enumerate(prompts):
                    usages = [e["usage"] for e in events[:-2] if e["choices"][0]["index"] == i]
                    assert {u["prompt_tokens"] for u in usages} == {len(tok(prompt)["input_ids"])}
                    generated = [u["completion_tokens"] for u in usages]
                    assert generated == sorted(generated) and generated[0] >= 1
                    counted += generated[-1]
                assert counted == whole["usage"]["completion_tokens"]
    finally:
        runner.stop()


def test_server_cuts_answers_at_stop_strings(seq2seq_dir):
    """``stop`` as vLLM applies it: each answer ends before the first stop string (with it, with
    include_stop_str_in_output), "stop" with the string as stop_reason, counting its tokens up to the one that completed
    it; logprobs for the tokens whose text begins before the cut; streamed, the same text and nothing past the cut ever
    sent (a stop string split across tokens included), then the same reasons and usage."""
    from QEfficient.cloud.serve import build_server
    from tests.helpers import serve_on_loopback

    folder, tok = seq2seq_dir("bart")
    _wordy(folder, tok)
    app, runner = build_server(str(folder), None, prefill_seq_len=1, ctx_len=32, full_batch_size=2, num_cores=1)
    try:
        with serve_on_loopback(app) as url:

            def post(**body) -> httpx.Response:
                body = {"prompt": PROMPTS, "max_tokens": GEN, "temperature": 0, "logprobs": 1} | body
                return loopback_http.post(f"{url}/v1/completions", json=body, timeout=120)

            plain = post().json()["choices"]
            words = plain[0]["text"].split(" ")
            assert len(words) > 4, plain[0]["text"]
            # the end of the fourth word, the space and the start of the fifth: a string split across tokens
            stop = f"{words[3][-1]} {words[4][:1]}"
            for include in (False, True):
                expected, counts = [], []
                for choice in plain:
                    tokens, offsets, text = choice["logprobs"]["tokens"], choice["logprobs"]["text_offset"], choice["text"]
                    if stop not in text:
                        expected.append((text, None, len(tokens)))
                        counts.append(len(tokens))
                        continue
                    at = text.index(stop)
                    cut = text[: at + len(stop) if include else at]
                    expected.append((cut, stop, sum(1 for o in offsets if o < len(cut))))
                    counts.append(next(k for k in range(1, len(tokens) + 1) if stop in "".join(tokens[:k])))
                assert expected[0][1] == stop
                options = {"stop": [stop, "never written"], "include_stop_str_in_output": include}
                body = post(**options).json()
                got = [(c["text"], c["stop_reason"], len(c["logprobs"]["tokens"])) for c in body["choices"]]
                assert got == expected
                assert [c["finish_reason"] for c in body["choices"]] == [
                    "stop" if reason else c["finish_reason"] for c, (_, reason, _) in zip(plain, expected)
                ]
                assert body["usage"]["completion_tokens"] == sum(counts)
                r = post(**options, stream=True, stream_options={"include_usage": True})
                events = _events(r)
                assert events[-2]["usage"] == body["usage"]
                for i, choice in enumerate(body["choices"]):
                    mine = [c for e in events[:-2] for c in e["choices"] if c["index"] == i]
                    assert "".join(c["text"] for c in mine) == choice["text"]
                    assert sum(len(c["logprobs"]["tokens"]) for c in mine if c["logprobs"]) == len(choice["logprobs"]["tokens"])
                    assert (mine[-1]["finish_reason"], mine[-1]["stop_reason"]) == (choice["finish_reason"], choice["stop_reason"])
                # without logprobs (text held to word ends) and with the usage in every chunk: it never goes down
                usage = {"include_usage": True, "continuous_usage_stats": True}
                events = _events(post(**options, logprobs=None, stream=True, stream_options=usage))
                for i, choice in enumerate(body["choices"]):
                    mine = [e for e in events[:-2] if e["choices"][0]["index"] == i]
                    assert "".join(e["choices"][0]["text"] for e in mine) == choice["text"]
                    generated = [e["usage"]["completion_tokens"] for e in mine]
                    assert generated == sorted(generated) and generated[-1] == counts[i]
    finally:
        runner.stop()


def test_server_gives_logprobs(seq2seq_dir):
    """``logprobs`` N on /v1/completions: each generated token (its end included) with its logprob, the N likeliest and
    where its text starts, as generate(top_logprobs=N) gives them; streamed, a chunk per token with the same entries;
    refused where the checkpoint decodes with beams and the request does not sample."""
    from transformers import GenerationConfig

    from QEfficient.cloud.serve import build_server
    from QEfficient.serving.errors import APIError
    from QEfficient.serving.seq2seq_app import sampling_options
    from tests.helpers import serve_on_loopback

    folder, tok = seq2seq_dir("bart")
    _wordy(folder, tok)
    app, runner = build_server(str(folder), None, prefill_seq_len=1, ctx_len=32, full_batch_size=2, num_cores=1)
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    model.compile(ctx_len=32, batch_size=2, num_cores=1)
    reference = model.generate(tok, PROMPTS, generation_len=GEN, top_logprobs=2)
    try:
        with serve_on_loopback(app) as url:
            body = {"prompt": PROMPTS, "max_tokens": GEN, "temperature": 0, "logprobs": 2}
            whole = loopback_http.post(f"{url}/v1/completions", json=body, timeout=120).json()
            for choice, entries in zip(whole["choices"], reference.logprobs):
                logprobs = choice["logprobs"]
                assert logprobs["token_logprobs"] == pytest.approx([e[0] for e in entries], abs=1e-6)
                assert [list(top)[:2] for top in logprobs["top_logprobs"]] == [[tok.decode([t]) for t in e[1]] for e in entries]
                assert logprobs["text_offset"][0] == 0 and logprobs["text_offset"] == sorted(logprobs["text_offset"])
                assert "".join(logprobs["tokens"][:-1]).strip() == choice["text"].strip() or choice["finish_reason"] == "length"
            assert sum(len(c["logprobs"]["tokens"]) for c in whole["choices"]) == whole["usage"]["completion_tokens"]
            r = loopback_http.post(f"{url}/v1/completions", json=body | {"stream": True}, timeout=120)
            pieces = [c for e in _events(r)[:-1] for c in e["choices"]]
            for i, choice in enumerate(whole["choices"]):
                mine = [c for c in pieces if c["index"] == i]
                assert "".join(c["text"] for c in mine) == choice["text"]
                # each token's text goes out with its logprobs (vLLM's chunks), not held back to a word's end
                tokens = [c for c in mine if c["logprobs"] and c["logprobs"]["tokens"][0] != tok.eos_token]
                assert all(c["text"] == c["logprobs"]["tokens"][0] for c in tokens)
                joined = {key: [v for c in mine if c["logprobs"] for v in c["logprobs"][key]] for key in choice["logprobs"]}
                assert joined == choice["logprobs"]
            r = loopback_http.post(f"{url}/v1/completions", json=body | {"logprobs": 6}, timeout=120)
            assert r.status_code == 400 and r.json()["error"]["param"] == "logprobs"
            # n samples per prompt: generate()'s num_return_sequences, each prompt's choices in turn
            sampled = {"prompt": PROMPTS, "max_tokens": GEN, "temperature": 0.8, "seed": 3, "n": 2}
            answer = loopback_http.post(f"{url}/v1/completions", json=sampled, timeout=120).json()
            options = sampling_options(sampled, model.hf.generation_config, 32, max_n=4)
            expected = model.generate(tok, PROMPTS, **options).texts
            assert [c["text"] for c in answer["choices"]] == expected and len(expected) == 4
            assert answer["usage"]["prompt_tokens"] == sum(len(ids) for ids in tok(PROMPTS)["input_ids"])
            r = loopback_http.post(f"{url}/v1/completions", json=sampled | {"temperature": 0}, timeout=120)
            assert r.status_code == 400 and "needs sampling" in r.json()["error"]["message"]
    finally:
        runner.stop()
    with pytest.raises(APIError, match="beam search"):
        sampling_options({"temperature": 0}, GenerationConfig(num_beams=3), 32, top_logprobs=1)
    assert sampling_options({"temperature": 1}, GenerationConfig(num_beams=3), 32, top_logprobs=1)["top_logprobs"] == 1


def test_streamed_usage_with_several_choices_per_prompt(seq2seq_dir):
    """A checkpoint that returns two sequences per prompt (beams, or samples): each streamed choice's usage counts its
    own prompt's tokens."""

    from QEfficient.cloud.serve import build_server
    from tests.helpers import serve_on_loopback

    folder, tok = seq2seq_dir("bart", num_beams=2, num_return_sequences=2)
    app, runner = build_server(str(folder), None, prefill_seq_len=1, ctx_len=32, full_batch_size=2, num_cores=1)
    prompts = ["hi", PROMPTS[1], PROMPTS[0]]
    stream = {"stream": True, "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    try:
        with serve_on_loopback(app) as url:
            for options in ({"temperature": 0}, {"temperature": 0.7, "seed": 1}):
                body = {"prompt": prompts, "max_tokens": 4, **options} | stream
                events = _events(loopback_http.post(f"{url}/v1/completions", json=body, timeout=120))
                assert events[-1] == "[DONE]" and events[-2]["choices"] == []
                for event in events[:-2]:
                    index = event["choices"][0]["index"]
                    assert event["usage"]["prompt_tokens"] == len(tok(prompts[index // 2])["input_ids"]), options
                assert {e["choices"][0]["index"] for e in events[:-2]} == set(range(6))
    finally:
        runner.stop()


def test_text_pieces_hold_back_split_characters_and_open_words(seq2seq_dir):
    """The server's pieces: the text as far as later tokens cannot change it (up to the last space, never a split
    character, as transformers' TextStreamer prints), the rest from the final text; one streamer over batches."""
    from QEfficient.serving.worker_stream import RowsStreamer, TextPieces

    _, tok = seq2seq_dir("bart")
    text = "Café au lait, s'il vous plaît: ünïcödé ✓ and more"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    pieces = []
    stream = TextPieces(lambda ids: tok.decode(ids, skip_special_tokens=True), pieces.append)
    for token in ids:
        stream.add([token])
    final = tok.decode(ids, skip_special_tokens=True)
    assert "".join(pieces) + stream.rest(final) == final and len(pieces) > 5
    assert all("\ufffd" not in p and p.endswith(" ") for p in pieces) and stream.rest(final) == "more"
    assert stream.rest("Café au lait, s'IL") == "IL"  # a final text that changed a sent word: what follows their common start
    rows = []
    streamer = RowsStreamer(lambda ids: tok.decode(ids, skip_special_tokens=True), lambda row, piece, _: rows.append((row, piece)))
    for batch in ([ids[:6], ids[:6]], [ids[:6]]):  # two batches of 2 and 1 rows
        streamer.put(np.zeros((len(batch), 1), np.int64))
        for step in range(6):
            streamer.put(np.array([b[step] for b in batch]))
    assert {row for row, _ in rows} == {0, 1, 2} and "".join(p for r, p in rows if r == 2) == "".join(p for r, p in rows if r == 0)


def test_generate_feeds_a_transformers_streamer(seq2seq_dir):
    """``generate(streamer=...)`` hands a streamer what transformers' generate hands it: the start token, then each
    step's token; beams are refused, as in transformers."""

    class Collect:
        def __init__(self) -> None:
            self.values, self.ended = [], False

        def put(self, value) -> None:
            self.values.append(np.asarray(value).tolist())

        def end(self) -> None:
            self.ended = True

    folder, tok = seq2seq_dir("bart")
    hf = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    theirs, mine = Collect(), Collect()
    with torch.no_grad():
        hf.generate(**tok(PROMPTS[:1], return_tensors="pt"), max_new_tokens=GEN, do_sample=False, num_beams=1, streamer=theirs)
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    model.compile(ctx_len=32, num_cores=1)
    model.generate(tok, PROMPTS[:1], generation_len=GEN, do_sample=False, num_beams=1, streamer=mine)
    assert mine.values == theirs.values and mine.ended and theirs.ended and len(mine.values) > 2
    with pytest.raises(ValueError, match="streamer cannot be used with beam search"):
        model.generate(tok, PROMPTS[:1], generation_len=GEN, num_beams=2, streamer=Collect())


def test_a_decoder_prompt_continues_as_in_transformers(seq2seq_dir):
    """``decoder_input_ids``: the start token put before a prompt that lacks it, as transformers' generate does; the
    tokens after it equal transformers', greedy and with beams."""
    folder, tok = seq2seq_dir("bart")
    hf = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    model = QEFFAutoModelForSeq2SeqLM.from_pretrained(folder)
    model.compile(ctx_len=32, batch_size=2, num_cores=1)
    inputs, prompt = tok(PROMPTS, padding=True, return_tensors="pt"), torch.tensor([[7, 9]] * len(PROMPTS))
    # min_new_tokens counts from the prompt's end, as transformers' processor does
    for options in ({"num_beams": 1}, {"num_beams": 2}, {"num_beams": 1, "min_new_tokens": GEN - 2}):
        with torch.no_grad():
            expected = hf.generate(**inputs, decoder_input_ids=prompt, max_new_tokens=GEN, do_sample=False, **options)
        info = model.generate(inputs=inputs, decoder_input_ids=prompt, generation_len=GEN, **options)
        rows = [row.tolist() for batch in info.generated_ids for row in batch]
        assert [r[: expected.shape[1]] for r in rows] == expected.tolist(), options
        assert rows[0][1:3] == [7, 9]
    with pytest.raises(ValueError, match="leaves no room for new tokens"):
        model.generate(inputs=inputs, decoder_input_ids=torch.ones(len(PROMPTS), 40, dtype=torch.long))
