"""Whisper's token timestamps (``generate(return_token_timestamps=True)``) and word timestamps: the alignment heads'
cross-attention from the decoder graph, warped onto the frames as transformers does it. The times equal transformers'
on tiny random Whisper models and on the real Whisper tiny.en (base's segment timestamps: test_speech.py); the numpy
helpers equal transformers' own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor
from transformers.models.whisper.generation_whisper import _dynamic_time_warping, _median_filter

from QEfficient import QEFFAutoModelForSpeechSeq2Seq
from QEfficient.generation.whisper_alignment import dynamic_time_warping, median_filter, word_timestamps
from QEfficient.loading.ctranslate2_whisper import convert_ctranslate2_whisper
from tests.test_ctranslate2_whisper import DATA, _ct2_folder, _real_whisper, _tiny_whisper, read_wav
from tests.test_whisper_longform import _compiled, _features, _long_batch


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    """(processor, HF model, compiled QEFF model: batch_size=2, ctx_len=64); its alignment heads (1, 0) and (1, 3)."""
    return _compiled(tmp_path_factory.mktemp("whisper"), _tiny_whisper(True))


def _times(out) -> list[np.ndarray]:
    """transformers' token times per audio, in audio time: its segments' (its padded ``token_timestamps`` restart at
    each window)."""
    return [np.concatenate([s["token_timestamps"].numpy() for s in audio]) for audio in out["segments"]]


def _both(hf, model, inputs, tokens: int = 16, **kwargs):
    """(transformers' output with segments, ours), asked for token timestamps; the tokens are checked equal."""
    features = inputs["input_features"] if hasattr(inputs, "keys") else inputs
    extra = {"attention_mask": inputs["attention_mask"]} if hasattr(inputs, "keys") and "attention_mask" in inputs else {}
    with torch.no_grad():
        out = hf.generate(features, max_new_tokens=tokens, return_token_timestamps=True, return_segments=True, **extra, **kwargs)
    ours = model.generate(inputs, generation_len=tokens, return_token_timestamps=True, return_segments=True, **kwargs)
    sequences = [np.concatenate([s["tokens"].numpy() for s in audio]) for audio in out["segments"]]
    generated = [row for batch in ours.generated_ids for row in batch]
    assert [g[: len(s)].tolist() for g, s in zip(generated, sequences)] == [s.tolist() for s in sequences]
    return out, ours


@pytest.mark.parametrize("kwargs", [{}, {"return_timestamps": True}, {"num_beams": 2}], ids=["plain", "timestamps", "beams"])
def test_token_timestamps_are_transformers(whisper, kwargs):
    """Two 30 s inputs on batch_size=2, with and without segment timestamps (then the window is read again from its
    last closed segment, in audio time) and with beams: every token's time, each segment's included."""
    _, hf, model = whisper
    out, ours = _both(hf, model, _features(2), language="en", **kwargs)
    expected = _times(out)
    assert [t.tolist() for t in ours.token_timestamps] == [t.tolist() for t in expected]
    assert [len(t) for t in expected] == [len(np.concatenate([s["tokens"] for s in a])) for a in ours.segments]
    for theirs, mine in zip(out["segments"], ours.segments):
        assert [s["token_timestamps"].tolist() for s in theirs] == [s["token_timestamps"].tolist() for s in mine]
    if not kwargs:  # one window: transformers' padded token_timestamps are the same numbers
        assert [t.tolist() for t in ours.token_timestamps] == out["token_timestamps"].numpy().tolist()


def test_long_audio_token_timestamps_read_each_window_to_its_frames(whisper):
    """Audio of 35, 61 and 12 s in one batch (batch_size=2): each window's attention read over the audio's frames left
    (transformers' num_frames - seek, from the attention mask), with the previous text before each window."""
    processor, hf, model = whisper
    out, ours = _both(hf, model, _long_batch(processor), language="en", return_timestamps=True, condition_on_prev_tokens=True)
    assert [t.tolist() for t in ours.token_timestamps] == [t.tolist() for t in _times(out)]
    assert max(t.max() for t in ours.token_timestamps) > 30  # later windows in audio time


def test_helpers_are_transformers():
    """The dynamic time warping (ties included) and the median filter equal transformers' functions."""
    rng = np.random.default_rng(0)
    for matrix in (rng.standard_normal((7, 40)), rng.standard_normal((1, 5)), np.round(rng.standard_normal((12, 4)))):
        for mine, theirs in zip(dynamic_time_warping(matrix), _dynamic_time_warping(matrix)):
            assert mine.tolist() == theirs.tolist()
    values = rng.standard_normal((2, 3, 9, 40)).astype(np.float32)
    for width in (1, 7):
        assert (median_filter(values, width) == _median_filter(torch.from_numpy(values), width).numpy()).all()
    with pytest.raises(ValueError, match="odd number"):
        median_filter(values, 4)


@pytest.mark.parametrize("heads", [None, [[1, 0], [7, 1]]], ids=["none", "a-teachers"])
def test_a_model_without_alignment_heads_of_its_own_says_so(tmp_path, heads, caplog):
    """No alignment heads, or a distilled model's teacher's (layers it does not have): it exports and transcribes, and
    token timestamps are refused with what to do."""
    import json

    folder = convert_ctranslate2_whisper(_ct2_folder(tmp_path, _tiny_whisper(True), True), tmp_path / "hf")
    config = json.loads((folder / "generation_config.json").read_text())
    config.pop("alignment_heads")
    (folder / "generation_config.json").write_text(json.dumps(config | ({"alignment_heads": heads} if heads else {})))
    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
    assert model.decoder.alignment_heads == () and ("layers or heads this model does not have" in caplog.text) == bool(heads)
    model.compile(ctx_len=32, num_cores=1)
    assert len(model.generate(_features(1), generation_len=4).generated_ids[0][0]) == 4
    with pytest.raises(ValueError, match="alignment heads"):
        model.generate(_features(1), generation_len=4, return_token_timestamps=True)


def test_real_whisper_token_and_word_timestamps_are_transformers():
    """Whisper tiny.en on 7.8 s of speech (one compile, batch_size=2): token times equal transformers' greedy, with segment
    timestamps and with 2 beams, and on a batch whose rows end apart; the words (grouped as transformers' pipeline
    groups them) start and end where its do."""
    folder = _real_whisper("whisper-tiny.en")
    processor = WhisperProcessor.from_pretrained(folder)
    hf = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
    model.compile(ctx_len=150, num_cores=2, batch_size=2)
    speech = read_wav(DATA / "speech16k.wav")
    inputs = processor(speech, sampling_rate=16000, return_tensors="pt", return_attention_mask=True)
    for kwargs in ({"num_beams": 2}, {"return_timestamps": True, "num_beams": 1}):
        out, ours = _both(hf, model, inputs, tokens=100, **kwargs)
        assert ours.token_timestamps[0].tolist() == _times(out)[0].tolist(), kwargs
    # words from the last (with segment timestamps, as the pipeline decodes for them)
    tokens = np.concatenate([s["tokens"].numpy() for s in out["segments"][0]])
    expected = processor.tokenizer._decode_asr(
        [{"tokens": tokens[None], "token_timestamps": _times(out)[0][None]}],
        return_timestamps="word",
        return_language=False,
        time_precision=0.02,
    )[1]["chunks"]
    words = word_timestamps(processor.tokenizer, ours.generated_ids[0][0][: len(tokens)], ours.token_timestamps[0], "en")
    assert words == [{"word": c["text"].strip(), "start": c["timestamp"][0], "end": c["timestamp"][1]} for c in expected]
    # tiny.en's reading (it misreads the middle: "The World The Wic Brown Fach ..."), its last sentence's words 6 s in
    assert [w["word"] for w in words][-6:] == ["is", "a", "test", "of", "speech", "recognition"] and words[-1]["end"] > 6
    spoken = model.transcribe(speech, processor, 100, word_timestamps=True, num_beams=1)
    assert spoken.words == [words]
    # greedy without timestamps, on a batch whose second audio (the first 3 s) ends first: transformers reads the
    # attention of the padding it feeds after that row's end token too, up to the batch's longest row, and so does this
    inputs = processor([speech, speech[: 3 * 16000]], sampling_rate=16000, return_tensors="pt", return_attention_mask=True)
    out, ours = _both(hf, model, inputs, tokens=100, num_beams=1)
    assert [len(t) for t in ours.token_timestamps] != [len(ours.token_timestamps[0])] * 2  # the rows end apart
    assert [t.tolist() for t in ours.token_timestamps] == [t.tolist() for t in _times(out)]
