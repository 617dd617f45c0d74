"""Whisper's long-form options (temperature fallback, silence detection, the previous text and a prompt before each
window) as transformers' Whisper generate applies them: the same tokens, on tiny random Whisper models and on the real
Whisper tiny.en; the helpers against transformers' own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor
from transformers.models.whisper.generation_whisper import WhisperGenerationMixin, _pad_to_max_length

from QEfficient import QEFFAutoModelForSpeechSeq2Seq
from QEfficient.generation.whisper_longform import compression_ratio, previous_text, token_logprobs, window_segments
from QEfficient.loading.ctranslate2_whisper import convert_ctranslate2_whisper
from tests.test_ctranslate2_whisper import DATA, _ct2_folder, _real_whisper, _tiny_whisper, read_wav

TS = 50365  # the tiny multilingual model's first timestamp token


def _compiled(tmp, tiny):
    folder = convert_ctranslate2_whisper(_ct2_folder(tmp, tiny, True), tmp / "hf")
    hf = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
    model.compile(ctx_len=64, batch_size=2, num_cores=1)
    return WhisperProcessor.from_pretrained(folder), hf, model


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    """(processor, HF model, compiled QEFF model: batch_size=2, ctx_len=64, the model's whole length)."""
    return _compiled(tmp_path_factory.mktemp("whisper"), _tiny_whisper(True))


@pytest.fixture(scope="module")
def confident_whisper(tmp_path_factory):
    """The same with its token embedding (so its head) and cross-attention outputs scaled up: its distributions are
    far from uniform, and the audio moves them (by little: its mean log-probabilities differ in the third decimal)."""
    tiny = _tiny_whisper(True)
    with torch.no_grad():
        tiny.model.decoder.embed_tokens.weight.mul_(10)
        for layer in tiny.model.decoder.layers:
            layer.encoder_attn.out_proj.weight.mul_(30)
    return _compiled(tmp_path_factory.mktemp("whisper"), tiny)


def _features(n: int, frames: int = 3000) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.stack([torch.randn(80, frames, generator=g) * (0.5 + i) for i in range(n)])


def _long_batch(processor):
    speech = read_wav(DATA / "speech16k.wav")
    audios = [np.tile(speech, 5)[: 16000 * 35], np.tile(speech, 8)[: 16000 * 61], np.tile(speech, 2)[: 16000 * 12]]
    return processor(audios, sampling_rate=16000, return_tensors="pt", truncation=False, padding="longest", return_attention_mask=True)


def _same(hf, model, inputs, tokens: int = 16, **kwargs) -> list[int]:
    ours = np.concatenate(model.generate(inputs, generation_len=tokens, **kwargs).generated_ids)
    features = inputs["input_features"] if isinstance(inputs, dict) or hasattr(inputs, "keys") else inputs
    extra = {"attention_mask": inputs["attention_mask"]} if hasattr(inputs, "keys") and "attention_mask" in inputs else {}
    with torch.no_grad():
        expected = hf.generate(features, max_new_tokens=tokens, **extra, **kwargs).numpy()
    assert ours.tolist() == expected.tolist()
    return ours.tolist()


def test_previous_text_prompts_each_window_as_in_transformers(whisper):
    """condition_on_prev_tokens=True: three audios of 35, 61 and 12 s on batch_size=2, the previous segments (a closing
    timestamp pair read as one, cut to max_target_positions // 2 - 1) before each window's start tokens."""
    processor, hf, model = whisper
    inputs = _long_batch(processor)
    conditioned = _same(hf, model, inputs, language="en", return_timestamps=True, condition_on_prev_tokens=True)
    plain = np.concatenate(model.generate(inputs, generation_len=16, language="en", return_timestamps=True).generated_ids)
    assert plain.tolist() != conditioned  # the previous text changed what the windows after the first read


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(condition_on_prev_tokens=True),
        dict(condition_on_prev_tokens=True, prompt_condition_type="all-segments"),
    ],
    ids=["every-window", "first-segment", "all-segments"],
)
def test_prompt_ids_as_in_transformers(whisper, kwargs):
    processor, hf, model = whisper
    prompt = processor.get_prompt_ids("fox", return_tensors="np")
    _same(hf, model, _features(3), language="en", prompt_ids=torch.from_numpy(prompt), **kwargs)  # short audio
    _same(hf, model, _long_batch(processor), language="en", return_timestamps=True, prompt_ids=torch.from_numpy(prompt), **kwargs)


def _mean_logprobs(hf, features, num_beams: int) -> np.ndarray:
    """transformers' mean log-probability of each audio's greedy (or beam) tokens, as its fallback reads it."""
    with torch.no_grad():
        out = hf.generate(features, max_new_tokens=16, language="en", num_beams=num_beams, return_dict_in_generate=True, output_scores=True)
    generated = out.sequences[:, -len(out.scores) :]
    means = []
    for i, row in enumerate(generated):
        ends = (row == hf.generation_config.eos_token_id).nonzero()
        tokens = row[: int(ends[0]) + 1] if len(ends) else row
        # with beams, Whisper's generate has already read each step's scores along the hypothesis' beams
        means.append(float(WhisperGenerationMixin._retrieve_avg_logprobs([s[i] for s in out.scores], tokens, 0.0)))
    return np.array(means)


@pytest.mark.parametrize("num_beams", [1, 2])
def test_silent_windows_are_skipped_as_in_transformers(confident_whisper, num_beams):
    """With no_speech_threshold 0 (every window's no-speech probability is above it), a window is skipped when its mean
    log-probability is below logprob_threshold: set between the audios' (transformers' own, computed here), the audios
    below it give no text, the others theirs."""
    _, hf, model = confident_whisper
    t, c = torch.arange(3000.0)[None, None], torch.arange(80.0)[None, :, None]
    features = torch.cat([torch.sin(t * 0.01 * (i + 1) + c * (i + 1)) * (i + 1) for i in range(3)])  # unlike noise, these differ
    means = np.sort(_mean_logprobs(hf, features, num_beams))
    assert means[1] - means[0] > 1e-3, means  # float32 differences between the two runs are ~1e-6
    threshold = float((means[0] + means[1]) / 2)
    # temperature=0.0: transformers' fallback fails on temperature=None (ours does not)
    kwargs = dict(language="en", num_beams=num_beams, temperature=0.0, logprob_threshold=threshold)
    ids = _same(hf, model, features, no_speech_threshold=0.0, **kwargs)
    lengths = [int((np.array(row) != hf.generation_config.pad_token_id).sum()) for row in ids]
    assert 0 in lengths and max(lengths) > 0, ids
    # a threshold no window's no-speech probability reaches: nothing is skipped
    _same(hf, model, features, no_speech_threshold=0.999, **kwargs)


def test_fallback_decodes_again_at_the_next_temperature(whisper):
    """A window below logprob_threshold is decoded again at the next temperature: with (0.0, 1e-5), as greedy as it
    gets, the tokens are transformers'; with (0.0, 1.0) they are those of temperature 1.0 alone (same seed)."""
    processor, hf, model = whisper
    features = _features(2)
    _same(hf, model, features, language="en", temperature=(0.0, 1e-5), logprob_threshold=0.0)
    kwargs = dict(language="en", return_timestamps=True, condition_on_prev_tokens=True)
    _same(hf, model, _long_batch(processor), temperature=(0.0, 1e-5), logprob_threshold=0.0, **kwargs)
    _same(
        hf, model, features, language="en", temperature=(0.0, 0.2), logprob_threshold=-1e9, compression_ratio_threshold=1e9
    )  # none falls back

    def ids(**kwargs):
        return np.concatenate(
            model.generate({"input_features": features}, generation_len=16, language="en", seed=7, **kwargs).generated_ids
        )

    sampled = ids(temperature=1.0)
    assert (ids(temperature=(0.0, 1.0), logprob_threshold=0.0) == sampled).all()
    assert (ids(temperature=(0.0, 1.0), compression_ratio_threshold=0.0) == sampled).all()
    assert (ids(temperature=1.0) == sampled).all()  # reproducible with a seed
    greedy = ids()
    assert not (greedy == sampled).all()
    # with beams, a window that falls back samples on each audio's first beam row: the same draws
    assert (ids(temperature=(0.0, 1.0), logprob_threshold=0.0, num_beams=2) == sampled).all()
    # each audio draws from its own generator: the first audio's tokens do not depend on its batch
    alone = model.generate({"input_features": features[:1]}, generation_len=16, language="en", seed=7, temperature=1.0)
    assert alone.generated_ids[0][0].tolist() == sampled[0][: len(alone.generated_ids[0][0])].tolist()


def test_no_speech_probability_is_transformers(whisper):
    """The no-speech probability of a window (return_segments), with a prompt before the start tokens: softmax of
    transformers' logits after the start token, at the token before <|notimestamps|>."""
    processor, hf, model = whisper
    features = _features(2)
    prompt = processor.get_prompt_ids("fox", return_tensors="np")
    info = model.generate({"input_features": features}, generation_len=8, language="en", prompt_ids=prompt, return_segments=True)
    g = hf.generation_config
    start = [g.decoder_start_token_id, g.lang_to_id["<|en|>"], g.task_to_id["transcribe"], g.no_timestamps_token_id]
    ids = torch.tensor([list(prompt) + start] * 2)
    with torch.no_grad():
        logits = hf(input_features=features, decoder_input_ids=ids).logits[:, len(prompt)]
    expected = logits.softmax(-1)[:, g.no_timestamps_token_id - 1].numpy()
    ours = [segments[0]["no_speech_prob"] for segments in info.segments]
    assert np.allclose(ours, expected, rtol=1e-4, atol=0), (ours, expected)


def test_sampled_tokens_follow_the_rules(whisper):
    """Sampling at temperature 1 draws among the tokens transformers' rules allow: no suppressed token, a timestamp
    first when timestamps are asked for."""
    _, hf, model = whisper
    suppressed = set(hf.generation_config.suppress_tokens)
    for seed, timestamps in ((0, True), (1, True), (2, False)):
        kwargs = dict(language="en", return_timestamps=timestamps, temperature=1.0, seed=seed)
        info = model.generate({"input_features": _features(2)}, generation_len=20, **kwargs)
        for row in np.concatenate(info.generated_ids):
            row = row[row != hf.generation_config.pad_token_id]
            assert not suppressed & set(row.tolist())
            assert row[0] >= TS or not timestamps  # (without timestamps, nothing stops a random model drawing one)


def test_segments_are_transformers(whisper):
    """return_segments=True: each audio's segments (start and end in seconds, tokens) as transformers' return_segments,
    with their text and their window's figures."""
    processor, hf, model = whisper
    inputs = _long_batch(processor)
    for kwargs in (dict(return_timestamps=True), dict(return_timestamps=True, condition_on_prev_tokens=True, num_beams=2)):
        info = model.generate(inputs, generation_len=16, language="en", processor=processor, return_segments=True, **kwargs)
        with torch.no_grad():
            mask = inputs.attention_mask
            out = hf.generate(inputs.input_features, attention_mask=mask, max_new_tokens=16, language="en", return_segments=True, **kwargs)
        assert len(info.segments) == len(out["segments"]) == 3
        for ours, theirs in zip(info.segments, out["segments"]):
            assert [s["tokens"].tolist() for s in ours] == [s["tokens"].tolist() for s in theirs]
            assert [(s["start"], s["end"]) for s in ours] == [(float(s["start"]), float(s["end"])) for s in theirs]
            for s in ours:
                assert s["text"] == processor.decode(s["tokens"], skip_special_tokens=True)
                assert s["avg_logprob"] < 0 and 0 <= s["no_speech_prob"] <= 1 and s["compression_ratio"] > 0 and s["temperature"] is None
    short = model.generate({"input_features": _features(1)}, generation_len=8, language="en", return_segments=True)
    assert len(short.segments[0]) == 1 and short.segments[0][0]["start"] == 0.0 and short.segments[0][0]["end"] == 30.0
    assert model.generate({"input_features": _features(1)}, generation_len=8, language="en").segments is None


def test_bad_long_form_options_say_what_to_do(whisper):
    _, _, model = whisper
    features = {"input_features": _features(1)}
    cases = [
        (dict(no_speech_threshold=0.6), "pass logprob_threshold too"),
        (dict(prompt_condition_type="all-segments", prompt_ids=[50361, 400]), "pass condition_on_prev_tokens=True"),
        (dict(prompt_condition_type="every"), "prompt_condition_type must be one of"),
        (dict(temperature=-0.5), "temperature must be >= 0"),
        (dict(temperature=[]), "non-empty list"),
        (dict(temperature=(0.0, float("nan"))), "finite number"),
        (dict(prompt_ids=[[50361, 400]]), "1-D sequence of token ids"),
        (dict(prompt_ids=[10**7]), "outside this model's vocabulary"),
        (dict(seed=-1), "non-negative integer"),
        (dict(logprob_threshold="low"), "finite number"),
        # the previous text may reach max_target_positions // 2 - 1 = 31 tokens: 1 + 31 + 3 start tokens + 40 > ctx_len 64
        (dict(condition_on_prev_tokens=True, return_timestamps=True, generation_len=40), r"needs ctx_len >= 74.*compile\(ctx_len=64\)"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            model.generate(features, **{"generation_len": 4, **kwargs})


@pytest.mark.parametrize(
    "tokens",
    [[7, 8, 9, 50257], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 50257], list(range(40, 80)), [51000] * 30 + [5]],
)
def test_compression_ratio_is_transformers(tokens):
    assert compression_ratio(np.array(tokens), 51865) == WhisperGenerationMixin._retrieve_compression_ratio(torch.tensor(tokens), 51865)


def test_mean_logprob_is_transformers():
    g = torch.Generator().manual_seed(0)
    scores = [torch.randn(1, 300, generator=g) for _ in range(6)]
    scores[2][0, :50] = -float("inf")  # suppressed tokens
    tokens = torch.tensor([3, 60, 70, 299, 12, 5])
    expected = float(WhisperGenerationMixin._retrieve_avg_logprobs([s[0] for s in scores], tokens, 0.0))
    ours = sum(float(token_logprobs(s.numpy(), t[None].numpy())[0]) for s, t in zip(scores, tokens)) / len(tokens)
    assert abs(ours - expected) < 1e-5


SEGMENT_CASES = [
    [5, 6, 7],  # no timestamps: one segment, the whole window
    [TS, 5, 6, TS + 10, TS + 10, 7, 8, TS + 20],  # a single timestamp at the end: everything, the whole window
    [TS, 5, 6, TS + 10, TS + 10, 7, 8, TS + 20, TS + 20, 9],  # cut after the last closed pair
    [TS, 5, TS + 4, TS + 4, 6, TS + 9, TS + 9, 7, TS + 12, TS + 12],  # ends on a closed pair
    [TS + 3, 5, 6, 7],  # an opening timestamp only
]


@pytest.mark.parametrize("tokens", SEGMENT_CASES)
def test_window_segments_and_previous_text_are_transformers(tokens):
    seq = torch.tensor(tokens)
    expected, expected_offset = WhisperGenerationMixin._retrieve_segment(
        seek_sequence=seq,
        seek_outputs=[None],
        time_offset=torch.zeros(1, dtype=torch.float64),
        timestamp_begin=TS,
        seek_num_frames=torch.tensor([3000]),
        time_precision=0.02,
        time_precision_features=0.01,
        input_stride=2,
        prev_idx=0,
        idx=0,
        return_token_timestamps=False,
        decoder_input_ids=torch.zeros(1, 4, dtype=torch.long),
    )
    segments, offset = window_segments(np.array(tokens), TS, 3000)
    assert [s.tokens.tolist() for s in segments] == [e["tokens"].tolist() for e in expected] and offset == int(expected_offset)
    assert [(s.start, s.end) for s in segments] == [(float(e["start"]), float(e["end"])) for e in expected]
    for cut_off in (3, 31):
        text = _pad_to_max_length([expected], 50257, "cpu", cut_off_length=cut_off, skip_ending_double_timestamps=True, timestamp_begin=TS)
        assert previous_text(segments, TS, cut_off).tolist() == text[0].tolist()


def test_real_whisper_long_form_options_equal_transformers():
    """Whisper tiny.en on 50 s of speech (the test sentence seven times): the previous text and a prompt before every
    window, with the usual thresholds for silence and fallback (one temperature: sampled tokens could not be
    compared), give transformers' tokens."""
    folder = _real_whisper("whisper-tiny.en")
    processor = WhisperProcessor.from_pretrained(folder)
    audio = np.tile(read_wav(DATA / "speech16k.wav"), 7)[: 16000 * 50]
    inputs = processor(audio, sampling_rate=16000, return_tensors="pt", truncation=False, padding="longest", return_attention_mask=True)
    hf = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
    model.compile(ctx_len=448)
    prompt = torch.from_numpy(processor.get_prompt_ids("The quick brown fox jumps over the lazy dog.", return_tensors="np"))
    kwargs = dict(
        return_timestamps=True,
        condition_on_prev_tokens=True,
        prompt_ids=prompt,
        temperature=0.0,
        logprob_threshold=-1.0,
        no_speech_threshold=0.6,
        compression_ratio_threshold=1.35,
    )
    info = model.generate(inputs=inputs, generation_len=120, processor=processor, **kwargs)
    with torch.no_grad():
        expected = hf.generate(inputs.input_features, attention_mask=inputs.attention_mask, max_new_tokens=120, **kwargs).numpy()
    assert info.generated_ids[0].tolist() == expected.tolist()
    assert info.texts[0].count("quick brown fox") >= 5, info.texts
