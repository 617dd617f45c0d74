"""QEFFAutoModelForCTC: logits equal transformers' to 1e-4 and greedy CTC text equals theirs, for every
audio encoder with a CTC head (tiny random models)."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest
import torch
from transformers import (
    AutoProcessor,
    Data2VecAudioConfig,
    Data2VecAudioForCTC,
    HubertConfig,
    HubertForCTC,
    OmniASRCTCConfig,
    OmniASRCTCProcessor,
    OmniASRFeatureExtractor,
    OmniASRForCTC,
    ParakeetCTCConfig,
    ParakeetFeatureExtractor,
    ParakeetForCTC,
    ParakeetProcessor,
    ParakeetTokenizer,
    SeamlessM4TFeatureExtractor,
    SEWConfig,
    SEWDConfig,
    SEWDForCTC,
    SEWForCTC,
    UniSpeechConfig,
    UniSpeechForCTC,
    UniSpeechSatConfig,
    UniSpeechSatForCTC,
    Wav2Vec2BertConfig,
    Wav2Vec2BertForCTC,
    Wav2Vec2BertProcessor,
    Wav2Vec2Config,
    Wav2Vec2ConformerConfig,
    Wav2Vec2ConformerForCTC,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2Processor,
    WavLMConfig,
    WavLMForCTC,
    pipeline,
)

from QEfficient import QEFFAutoModelForCTC
from tests.test_ctranslate2_whisper import DATA, read_wav

VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONISRHDLUCMFWGYPBVKXJQZ'"]
SMALL = dict(
    vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=40,
    conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, pad_token_id=0,
)  # fmt: skip
ARCHITECTURES = {
    "wav2vec2": (Wav2Vec2Config, Wav2Vec2ForCTC, {}),
    "wav2vec2-layer-norm": (Wav2Vec2Config, Wav2Vec2ForCTC, dict(feat_extract_norm="layer", do_stable_layer_norm=True)),
    "hubert": (HubertConfig, HubertForCTC, {}),
    "wavlm": (WavLMConfig, WavLMForCTC, dict(num_buckets=32, max_bucket_distance=100)),
    "data2vec-audio": (Data2VecAudioConfig, Data2VecAudioForCTC, dict(num_conv_pos_embeddings=5, conv_pos_kernel_size=5)),
    "wav2vec2-conformer-rel-pos": (Wav2Vec2ConformerConfig, Wav2Vec2ConformerForCTC, dict(position_embeddings_type="relative")),
    "wav2vec2-conformer-rope": (Wav2Vec2ConformerConfig, Wav2Vec2ConformerForCTC, dict(position_embeddings_type="rotary")),
    "unispeech": (UniSpeechConfig, UniSpeechForCTC, {}),
    "unispeech-sat": (UniSpeechSatConfig, UniSpeechSatForCTC, {}),
    "sew": (SEWConfig, SEWForCTC, dict(conv_dim=(16,) * 13)),
    "sew-d": (SEWDConfig, SEWDForCTC, dict(conv_dim=(16,) * 13)),
    "omniasr_ctc": (OmniASRCTCConfig, OmniASRForCTC, {}),  # its audio a [B, 1, samples] tensor in transformers
    # spectrogram models: their processor's input_features and attention_mask
    "parakeet_ctc": (ParakeetCTCConfig, ParakeetForCTC, {}),
    "wav2vec2-bert": (Wav2Vec2BertConfig, Wav2Vec2BertForCTC, {}),
}
# CTC types not swept here, and why
NOT_SWEPT = {
    "granite_speech5_ctc": "its feature extractor needs torchaudio, not installed here: the test below reads features",
    "lasr_ctc": "its processor is not built here (its logits were compared by hand: equal to 1e-6, padded rows too)",
}


def _config(arch: str):
    config_cls, _, extra = ARCHITECTURES[arch]
    if config_cls is OmniASRCTCConfig:  # its audio encoder is a nested config
        audio = {k: v for k, v in SMALL.items() if k not in ("vocab_size", "pad_token_id")}
        return OmniASRCTCConfig(vocab_size=len(VOCAB), pad_token_id=0, audio_config=audio)
    if config_cls is ParakeetCTCConfig:  # a nested FastConformer encoder
        encoder = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, subsampling_conv_channels=16)
        return ParakeetCTCConfig(vocab_size=len(VOCAB), pad_token_id=0, encoder_config=encoder)
    if config_cls is Wav2Vec2BertConfig:
        return Wav2Vec2BertConfig(**{k: v for k, v in SMALL.items() if not k.startswith(("conv_", "num_conv"))})
    return config_cls(**{**SMALL, **extra})


def _reference(hf, inputs) -> np.ndarray:
    """transformers' logits for a processor's output: a spectrogram and its mask, or [B, samples] audio (with the
    channel axis Omnilingual ASR's model reads, where its processor did not write it)."""
    with torch.no_grad():
        if "input_features" in inputs:
            return hf(input_features=inputs["input_features"], attention_mask=inputs.get("attention_mask")).logits.numpy()
        values = inputs["input_values"]
        return hf(values[:, None] if hf.config.model_type == "omniasr_ctc" and values.dim() == 2 else values).logits.numpy()


def _folder(tmp_path, arch: str):
    torch.manual_seed(0)
    hf = ARCHITECTURES[arch][1](_config(arch)).eval()
    with torch.no_grad():  # a head that prefers letters over the blank, so the text is not empty
        head = hf.lm_head if hasattr(hf, "lm_head") else hf.ctc_head  # Omnilingual ASR's and Parakeet's: ctc_head
        head.bias[0] -= 2.0
        head.weight.mul_(4.0)
    hf.save_pretrained(tmp_path)
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    tokenizer = Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"))
    if arch in PROCESSORS:  # the family's own processor: its feature extractor (and Parakeet's tokenizer)
        PROCESSORS[arch](tmp_path, tokenizer).save_pretrained(tmp_path)
        return hf, AutoProcessor.from_pretrained(tmp_path)
    Wav2Vec2Processor(Wav2Vec2FeatureExtractor(), tokenizer).save_pretrained(tmp_path)
    return hf, Wav2Vec2Processor.from_pretrained(tmp_path)


def _parakeet_processor(folder, tokenizer):
    from tokenizers import Tokenizer, models

    vocab = Tokenizer(models.WordLevel({t: i for i, t in enumerate(VOCAB)}, unk_token="<unk>"))
    return ParakeetProcessor(ParakeetFeatureExtractor(), ParakeetTokenizer(tokenizer_object=vocab, pad_token="<pad>", unk_token="<unk>"))


PROCESSORS = {
    "omniasr_ctc": lambda folder, tokenizer: OmniASRCTCProcessor(OmniASRFeatureExtractor(), tokenizer),  # [B, 1, samples], torch
    "parakeet_ctc": _parakeet_processor,
    "wav2vec2-bert": lambda folder, tokenizer: Wav2Vec2BertProcessor(SeamlessM4TFeatureExtractor(), tokenizer),
}


def _audio() -> list[np.ndarray]:
    speech = read_wav(DATA / "speech16k.wav")
    return [speech[:24000], speech[40000:64000]]  # two 1.5 s clips of the test recording


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_ctc_logits_and_text_equal_transformers(tmp_path, arch):
    hf, processor = _folder(tmp_path, arch)
    model = QEFFAutoModelForCTC.from_pretrained(tmp_path)
    model.compile(seq_len=32000, batch_size=1, num_cores=1)
    inputs = processor(_audio(), sampling_rate=16000, return_tensors="pt")
    expected = _reference(hf, inputs)
    got = model.logits(inputs)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    short = processor(_audio()[0][:9000], sampling_rate=16000, return_tensors="pt")  # another length than the export's
    np.testing.assert_allclose(model.logits(short), _reference(hf, short), atol=1e-4, rtol=0)
    texts = model.generate(processor, _audio())
    if "input_features" in inputs and hasattr(hf, "_get_output_attention_mask"):  # generate() reads frames past the audio as blanks
        # and a padded batch as the processor writes it: 25600 samples (160 frames, then one output frame past the
        # audio) and 10000
        speech = read_wav(DATA / "speech16k.wav")
        padded = processor([speech[:25600], speech[30000:40000]], sampling_rate=16000, return_tensors="pt")
        frames = model._outputs(padded, True)[1]  # the graph's output frames that hold audio: transformers' mask
        with torch.no_grad():
            expected_frames = hf._get_output_attention_mask(padded["attention_mask"], target_length=frames.shape[1])
        assert frames.astype(bool).tolist() == expected_frames.tolist() and not frames.all()
        for given in (inputs, padded):
            with torch.no_grad():
                reference = hf.generate(**{k: v for k, v in given.items() if k in ("input_features", "attention_mask")})
            got = texts if given is inputs else model.generate(processor, given)
            assert got == processor.batch_decode(reference, skip_special_tokens=True)
    else:
        assert texts == processor.batch_decode(expected.argmax(-1))
    assert any(texts)


def test_granite_speech5_ctc_equals_transformers_on_features(tmp_path):
    """Granite Speech 5's CTC model over its stacked feature frames (4 x 80 wide; its encoder attends in blocks and pools
    frame pairs twice): logits within 1e-4 and the frames that hold audio as transformers', lengths on and off its
    blocks, padded batches on 3 compiled rows; generate() the ids of transformers' generate, decoded without special
    tokens by its tokenizer; a block size the export example would fill is refused."""
    from transformers import GraniteSpeech5CTCConfig, GraniteSpeech5ForCTC

    def config(block: int) -> GraniteSpeech5CTCConfig:
        sizes = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, vocab_size=len(VOCAB))
        return GraniteSpeech5CTCConfig(vocab_size=len(VOCAB), pad_token_id=0, encoder_config=dict(sizes, context_size=block))

    torch.manual_seed(0)
    hf = GraniteSpeech5ForCTC(config(16)).eval()
    with torch.no_grad():  # a head that prefers letters over the blank
        hf.ctc_head.bias[0] -= 2.0
        hf.ctc_head.weight.mul_(4.0)
    hf.save_pretrained(tmp_path)
    tokenizer = _parakeet_processor(tmp_path, None).tokenizer  # the type's tokenizer class
    model = QEFFAutoModelForCTC.from_pretrained(tmp_path)
    model.compile(seq_len=32000, batch_size=3, num_cores=1)
    generator = torch.Generator().manual_seed(1)
    for rows, frames in ((3, 64), (3, 70), (1, 23)):  # four blocks of 16, then off the blocks
        features = torch.randn(rows, frames, 320, generator=generator)
        mask = torch.ones(features.shape[:2], dtype=torch.int64)
        mask[1:, frames // 2 :] = 0
        mask[2:, frames // 3 :] = 0
        inputs = {"input_features": features, "attention_mask": mask}
        with torch.no_grad():
            expected, ids = hf(**inputs).logits.numpy(), hf.generate(**inputs)
            holds = hf._get_output_attention_mask(mask, target_length=expected.shape[1]).numpy()
        logits, frames_out = model._outputs(inputs, True)
        np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
        assert frames_out.astype(bool).tolist() == holds.tolist()
        texts = model.generate(tokenizer, inputs)
        assert texts == tokenizer.batch_decode(ids, skip_special_tokens=True) and any(texts)
    with pytest.raises(NotImplementedError, match="context_size=25: its layer 0 would see"):
        QEFFAutoModelForCTC(GraniteSpeech5ForCTC(config(25)))


def test_every_ctc_type_runs_or_is_refused(tmp_path):
    """Every CTC type of transformers is swept above, or listed with the reason it is not."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CTC_MAPPING_NAMES

    swept = {_config(arch).model_type for arch in ARCHITECTURES}
    assert set(MODEL_FOR_CTC_MAPPING_NAMES) == swept | set(NOT_SWEPT)


def test_audios_of_other_lengths_are_each_read_at_their_own(tmp_path):
    """The graph reads no padding mask: generate() runs audios of different lengths one by one, each as transformers
    reads it alone (Omnilingual ASR's processor writes torch tensors only, and its model pads with a mask)."""
    hf, processor = _folder(tmp_path, "omniasr_ctc")
    model = QEFFAutoModelForCTC.from_pretrained(tmp_path)
    model.compile(seq_len=32000, batch_size=2, num_cores=1)
    audio = [_audio()[0], _audio()[1][:15000]]
    alone = [processor(a, sampling_rate=16000, return_tensors="pt") for a in audio]
    expected = [processor.batch_decode(_reference(hf, inputs).argmax(-1))[0] for inputs in alone]
    assert model.generate(processor, audio) == expected


def test_a_relative_position_table_bounds_the_compiled_audio(tmp_path):
    _folder(tmp_path, "wav2vec2-conformer-rel-pos")
    model = QEFFAutoModelForCTC.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="relative position table"):
        model.compile(seq_len=320 * model.config.max_source_positions + 16000, num_cores=1)


def test_ctc_bad_inputs_say_what_to_do(tmp_path):
    _, processor = _folder(tmp_path, "wav2vec2")
    from QEfficient import QEFFCommonLoader

    assert QEFFCommonLoader.model_class(tmp_path) is QEFFAutoModelForCTC
    model = QEFFAutoModelForCTC.from_pretrained(tmp_path)
    with pytest.raises(TypeError, match="compile"):
        model.generate(processor, _audio()[0])
    with pytest.raises(TypeError, match="compile"):
        model.transcribe(processor, _audio()[0])
    model.compile(seq_len=16000, num_cores=1)
    with pytest.raises(ValueError, match="compiled for at most 16000"):
        model.generate(processor, _audio()[0])
    with pytest.raises(ValueError, match="seq_len must be a number of samples"):
        model.compile(seq_len=0)
    with pytest.raises(ValueError, match="windows of 32000 samples, but the model was compiled for at most 16000"):
        model.transcribe(processor, _audio()[0], chunk_length_s=2)
    with pytest.raises(ValueError, match=r"longer than its strides together \(0.5 s on the left, 0.5 s on the right\)"):
        model.transcribe(processor, _audio()[0], chunk_length_s=1, stride_length_s=0.5)
    with pytest.raises(ValueError, match="'word' or 'char'"):
        model.transcribe(processor, _audio()[0], return_timestamps="segment")
    with pytest.raises(ValueError, match="one audio"):
        model.transcribe(processor, np.stack(_audio() * 3))
    with pytest.raises(ValueError, match=r"pass chunk_length_s \(at most 1\) to read it in windows"):
        model.transcribe(processor, _audio()[0])
    clip = _audio()[0][:16000]  # 0 reads it in one pass, and two equal channels are the one, as the pipeline reads them
    assert model.transcribe(processor, np.stack([clip, clip]), chunk_length_s=0) == model.transcribe(processor, clip)
    # audio shorter than one frame's span, a [samples, channels] array: said before the graph runs; numbers: one audio
    from QEfficient.generation.audio_inputs import first_frame_samples

    shortest = first_frame_samples(model.config)
    for short in (clip[: shortest - 1], np.stack([clip[:3000], clip[:3000]], 1)):
        with pytest.raises(ValueError, match=f"reads at least {shortest} "):
            model.generate(processor, short)
    assert model.generate(processor, list(clip[:4000].astype(float))) == model.generate(processor, clip[:4000])
    with pytest.raises(ValueError, match="No audio given"):
        model.generate(processor, [])


def test_what_windows_and_times_count_frames_in(tmp_path):
    """LASR's ratio counts spectrogram frames (times the feature extractor's hop, as the pipeline counts them); a
    phoneme tokenizer gives character offsets but no word offsets."""
    from transformers import LasrCTCConfig, LasrFeatureExtractor, LasrForCTC, Wav2Vec2PhonemeCTCTokenizer

    encoder = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    lasr = QEFFAutoModelForCTC(LasrForCTC(LasrCTCConfig(vocab_size=len(VOCAB), pad_token_id=0, encoder_config=encoder)))
    extractor = LasrFeatureExtractor()
    assert lasr.samples_per_frame(extractor) == lasr.config.inputs_to_logits_ratio * extractor.hop_length > 4
    _, processor = _folder(tmp_path, "wav2vec2")
    model = QEFFAutoModelForCTC.from_pretrained(tmp_path)
    phonemes = Wav2Vec2PhonemeCTCTokenizer(str(tmp_path / "vocab.json"), do_phonemize=False)
    assert "(Wav2Vec2PhonemeCTCTokenizer) gives no word offsets" in model.timestamps_refusal(phonemes, "word")
    assert model.timestamps_refusal(phonemes, "char") is None and model.timestamps_refusal(processor) is None


@pytest.mark.parametrize("arch", ["wav2vec2", "wav2vec2-bert"])
def test_transcribe_reads_long_audio_in_windows_as_the_pipeline(tmp_path, arch):
    """transcribe() with chunk_length_s reads audio longer than the compiled length in overlapping windows; its text and
    character or word times are transformers' speech-recognition pipeline's with the same arguments (raw samples, and a
    spectrogram model whose config names its samples per frame)."""
    hf, processor = _folder(tmp_path, arch)
    model = QEFFAutoModelForCTC.from_pretrained(tmp_path)
    model.compile(seq_len=16000, num_cores=1)
    asr = pipeline("automatic-speech-recognition", model=hf, tokenizer=processor.tokenizer, feature_extractor=processor.feature_extractor)
    speech = read_wav(DATA / "speech16k.wav")  # 7.8 s: windows of 1 s
    cases = [
        (speech[:16000], dict(return_timestamps="word")),  # one pass
        (speech, dict(chunk_length_s=1.0)),
        (speech, dict(chunk_length_s=1.0, stride_length_s=(0.3, 0.1), return_timestamps="char")),
        (speech, dict(chunk_length_s=1.0, return_timestamps="word")),
    ]
    for audio, kwargs in cases:
        expected = asr(audio.copy(), **kwargs)
        got = model.transcribe(processor, audio, **kwargs)
        assert got == expected, kwargs
    assert len(expected["chunks"]) > 3 and expected["chunks"][-1]["timestamp"][1] > 6  # words from every window


def test_infer_audio_path_with_a_ctc_model(tmp_path, capsys, monkeypatch):
    from QEfficient.cloud import infer

    hf, processor = _folder(tmp_path, "wav2vec2")
    audio = read_wav(DATA / "speech16k.wav")
    texts = infer.main(model_name=str(tmp_path), audio_path=str(DATA / "speech16k.wav"), num_cores=1)
    with torch.no_grad():
        expected = processor.batch_decode(
            hf(torch.from_numpy(processor(audio, sampling_rate=16000).input_values[0])[None]).logits.argmax(-1)
        )
    assert texts == expected
    assert f"Transcription : {texts[0]}" in capsys.readouterr().out
    with pytest.raises(ValueError, match="is a CTC model, which prints its transcript without --language, --timestamps"):
        infer.main(model_name=str(tmp_path), audio_path=str(DATA / "speech16k.wav"), num_cores=1, language="en", timestamps=True)
    long = tmp_path / "long.wav"  # 39 s, past the 30 s window: read in windows, as the pipeline with chunk_length_s=30
    with wave.open(str(long), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.tile(audio, 5) * 32767).astype("<i2").tobytes())
    asr = pipeline("automatic-speech-recognition", model=hf, tokenizer=processor.tokenizer, feature_extractor=processor.feature_extractor)
    assert infer.main(model_name=str(tmp_path), audio_path=str(long), num_cores=1) == [asr(read_wav(long), chunk_length_s=30)["text"]]
    home = tmp_path / "home"  # --mxfp6 reaches a CTC model's compile: its artifact holds int8 GEMMs
    monkeypatch.setenv("QEFF_HOME", str(home))
    infer.main(model_name=str(tmp_path), audio_path=str(DATA / "speech16k.wav"), num_cores=1, mxfp6=True)
    params = [json.loads(p.read_text())["compile_params"] for p in home.rglob("qconfig.json")]
    assert [(p["mxfp6_matmul"], p["seq_len"]) for p in params] == [(True, [480000])]


@pytest.mark.parametrize("arch", ["wav2vec2", "parakeet_ctc"])
def test_mxfp6_matmul_runs_int8_gemms_near_float32(tmp_path, arch):
    """``compile(mxfp6_matmul=True)``: the encoder's MatMuls as int8 GEMMs (int8 weights per channel, activations
    quantised as they come), raw audio and spectrogram models alike; the logits stay near float32's, the text alike."""
    import onnx

    hf, processor = _folder(tmp_path, arch)
    model = QEFFAutoModelForCTC.from_pretrained(tmp_path)
    inputs = processor(_audio(), sampling_rate=16000, return_tensors="pt")
    model.compile(seq_len=32000, batch_size=1, num_cores=1)
    exact = model.logits(inputs)
    path = model.compile(seq_len=32000, batch_size=1, num_cores=1, mxfp6_matmul=True)
    ops = {node.op_type for node in onnx.load(next(path.glob("*.onnx")), load_external_data=False).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
    quantized = model.logits(inputs)
    assert np.abs(quantized - exact).max() < 0.1 * (exact.max(-1) - exact.min(-1)).mean()
    assert (quantized.argmax(-1) == exact.argmax(-1)).mean() > 0.9


# transformers' audio classification types that read raw samples, as the CTC sweep above builds them
AUDIO_CLASSIFIERS = {
    "wav2vec2": "wav2vec2",
    "hubert": "hubert",
    "wavlm": "wavlm",
    "data2vec-audio": "data2vec-audio",
    "wav2vec2-conformer": "wav2vec2-conformer-rel-pos",
    "unispeech": "unispeech",
    "unispeech-sat": "unispeech-sat",
    "sew": "sew",
    "sew-d": "sew-d",
    "wav2vec2-bert": "wav2vec2-bert",  # a spectrogram of any length and its mask
}


@pytest.mark.parametrize("model_type", list(AUDIO_CLASSIFIERS))
def test_audio_classifiers_equal_transformers_on_each_audio(tmp_path, model_type):
    """QEFFAutoModelForAudioClassification: each audio's logits (the model pools its frames) equal transformers' for
    that audio alone, within 1e-4, audios of different lengths in one call; Wav2Vec2 also with its weighted layer sum;
    Wav2Vec2-BERT also a padded batch with its mask (its rows pooled by the mask)."""
    from transformers import AutoModelForAudioClassification

    from QEfficient import QEFFAutoModelForAudioClassification

    _, processor = _folder(tmp_path, AUDIO_CLASSIFIERS[model_type])
    config = _config(AUDIO_CLASSIFIERS[model_type])
    config.num_labels = 4
    config.use_weighted_layer_sum = model_type == "wav2vec2"
    torch.manual_seed(0)
    hf = AutoModelForAudioClassification.from_config(config)
    with torch.no_grad():  # logits of a few units, not hundredths: differences in the encoder show
        hf.projector.weight.mul_(10.0)
        hf.classifier.weight.mul_(10.0)
    hf.save_pretrained(tmp_path)
    hf = AutoModelForAudioClassification.from_pretrained(tmp_path).eval()
    audio = [_audio()[0], _audio()[1][:15000]]
    with torch.no_grad():
        expected = [hf(**processor(a, sampling_rate=16000, return_tensors="pt")).logits[0].numpy() for a in audio]
    model = QEFFAutoModelForAudioClassification.from_pretrained(tmp_path)
    model.compile(seq_len=32000, batch_size=1, num_cores=1)
    got = model.generate(processor, audio)["logits"]
    assert got.shape == (2, 4)
    np.testing.assert_allclose(got.numpy(), np.stack(expected), atol=1e-4, rtol=0)
    if model_type == "wav2vec2-bert":  # a padded batch with its mask in one run, as transformers reads it
        padded = processor(audio, sampling_rate=16000, return_tensors="pt", padding=True)
        assert not padded["attention_mask"].all()
        with torch.no_grad():
            reference = hf(**padded).logits.numpy()
        np.testing.assert_allclose(model.logits(padded), reference, atol=1e-4, rtol=0)


def test_every_audio_classification_type_runs_or_is_refused():
    from transformers.models.auto.modeling_auto import MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES

    from QEfficient.models.ctc import FIXED_SPECTROGRAM_CLASSIFIERS, UNSUPPORTED_AUDIO_CLASSIFICATION

    swept = set(AUDIO_CLASSIFIERS) | set(FIXED_SPECTROGRAM_CLASSIFIERS)  # the second: the test below
    assert set(MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES) == swept | set(UNSUPPORTED_AUDIO_CLASSIFICATION)


def test_audio_classifier_padded_batches_loader_and_infer(tmp_path, capsys, monkeypatch):
    """A processor's padded batch with its attention mask (a layer-norm Wav2Vec2, whose extractor writes one): each
    row's real samples run alone, as transformers answers a masked batch; CTC's logits() refuses such a batch and its
    generate() decodes each row; QEFFCommonLoader and infer pick the classifier class by the saved head, and a
    checkpoint of the other head is refused; a Wav2Vec2-Conformer classifier's position table bounds seq_len."""
    from transformers import AutoModelForAudioClassification, Wav2Vec2FeatureExtractor

    from QEfficient import QEFFAutoModelForAudioClassification, QEFFCommonLoader
    from QEfficient.cloud import infer

    ctc, processor = _folder(tmp_path / "ctc", "wav2vec2-layer-norm")
    config = _config("wav2vec2-layer-norm")
    config.num_labels, config.id2label = 2, {0: "no", 1: "yes"}
    torch.manual_seed(0)
    AutoModelForAudioClassification.from_config(config).save_pretrained(tmp_path / "cls")
    extractor = Wav2Vec2FeatureExtractor(return_attention_mask=True)
    extractor.save_pretrained(tmp_path / "cls")
    hf = AutoModelForAudioClassification.from_pretrained(tmp_path / "cls").eval()
    audio = [_audio()[0], _audio()[1][:9000]]
    padded = extractor(audio, sampling_rate=16000, return_tensors="pt", padding=True)
    assert not padded["attention_mask"].all()
    with torch.no_grad():
        expected = hf(**padded).logits.numpy()
    assert QEFFCommonLoader.model_class(tmp_path / "cls") is QEFFAutoModelForAudioClassification
    model = QEFFAutoModelForAudioClassification.from_pretrained(tmp_path / "cls")
    model.compile(seq_len=32000, num_cores=1)
    np.testing.assert_allclose(model.generate(extractor, padded)["logits"].numpy(), expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(model.logits(padded), expected, atol=1e-4, rtol=0)

    ctc_model = QEFFAutoModelForCTC.from_pretrained(tmp_path / "ctc")
    ctc_model.compile(seq_len=32000, num_cores=1)
    batch = processor(audio, sampling_rate=16000, return_tensors="pt", padding=True, return_attention_mask=True)
    with pytest.raises(ValueError, match="Call logits\\(\\) per audio"):
        ctc_model.logits(batch)
    assert ctc_model.generate(processor, batch) == ctc_model.generate(processor, audio)

    with pytest.raises(ValueError, match="Load it with QEFFAutoModelForCTC"):
        QEFFAutoModelForAudioClassification.from_pretrained(tmp_path / "ctc")
    with pytest.raises(ValueError, match="Load it with QEFFAutoModelForAudioClassification"):
        QEFFAutoModelForCTC.from_pretrained(tmp_path / "cls")
    monkeypatch.setenv("QEFF_HOME", str(tmp_path / "home"))
    label = infer.main(model_name=str(tmp_path / "cls"), audio_path=str(DATA / "speech16k.wav"), num_cores=1)
    assert label[0] in ("no", "yes") and f"Label : {label[0]}" in capsys.readouterr().out
    with pytest.raises(ValueError, match="is an audio classifier, which prints a label without --task: leave them out"):
        infer.main(model_name=str(tmp_path / "cls"), audio_path=str(DATA / "speech16k.wav"), num_cores=1, task="translate")

    config = _config("wav2vec2-conformer-rel-pos")
    config.max_source_positions = 20
    AutoModelForAudioClassification.from_config(config).save_pretrained(tmp_path / "conformer")
    with pytest.raises(ValueError, match="relative position table"):
        QEFFAutoModelForAudioClassification.from_pretrained(tmp_path / "conformer").compile(seq_len=48000, num_cores=1)


def test_fixed_size_spectrogram_classifiers_equal_transformers(tmp_path):
    """The Audio Spectrogram Transformer (its fbank features, named input_values) and Whisper's encoder classifier (its
    30 s log-mel features): each audio's features at the extractor's one size, logits equal transformers' within 1e-4;
    features of another size are refused."""
    from transformers import (
        ASTConfig,
        ASTFeatureExtractor,
        AutoModelForAudioClassification,
        WhisperConfig,
        WhisperFeatureExtractor,
    )

    from QEfficient import QEFFAutoModelForAudioClassification, QEFFCommonLoader

    cases = {
        "ast": (
            ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, max_length=64, num_mel_bins=32),
            ASTFeatureExtractor(num_mel_bins=32, max_length=64),
        ),
        "whisper": (
            WhisperConfig(
                d_model=32,
                encoder_layers=2,
                encoder_attention_heads=2,
                encoder_ffn_dim=37,
                classifier_proj_size=16,
                use_weighted_layer_sum=True,
            ),  # fmt: skip
            WhisperFeatureExtractor(),
        ),
    }
    audio = [_audio()[0], _audio()[1][:15000]]
    for name, (config, extractor) in cases.items():
        config.num_labels = 3
        folder = tmp_path / name
        torch.manual_seed(0)
        hf = AutoModelForAudioClassification.from_config(config)
        with torch.no_grad():  # logits of a few units
            head = hf.classifier.dense if name == "ast" else hf.classifier
            head.weight.mul_(10.0)
        hf.save_pretrained(folder)
        extractor.save_pretrained(folder)
        hf = AutoModelForAudioClassification.from_pretrained(folder).eval()
        with torch.no_grad():
            expected = np.concatenate([hf(**extractor(a, sampling_rate=16000, return_tensors="pt")).logits.numpy() for a in audio])
        assert QEFFCommonLoader.model_class(folder) is QEFFAutoModelForAudioClassification  # Whisper's too
        model = QEFFAutoModelForAudioClassification.from_pretrained(folder)
        model.compile(num_cores=1)
        np.testing.assert_allclose(model.generate(extractor, audio)["logits"].numpy(), expected, atol=1e-4, rtol=0)
        features = extractor(audio[0], sampling_rate=16000, return_tensors="np")
        short = {k: v[:, :, :10] if name == "whisper" else v[:, :10] for k, v in features.items() if k != "attention_mask"}
        with pytest.raises(ValueError, match="as this model's feature extractor writes them"):
            model.logits(short)


@pytest.mark.parametrize("arch", ["wav2vec2", "hubert", "wavlm", "wav2vec2-bert"])
def test_audio_encoders_hidden_states_equal_transformers(tmp_path, arch):
    """QEFFAutoModel on an audio encoder's folder (a CTC checkpoint's base model; Wav2Vec2-BERT's over its spectrogram and
    mask) gives a QEFFAutoModelForAudioFeatureExtraction: each audio's last hidden state equal to transformers' for that audio alone,
    within 1e-4, a shorter one's frames past its own zeros; pooling is refused, and the text encoder class given such a
    model says which class reads it."""
    from transformers import AutoModel

    from QEfficient import QEFFAutoModel, QEFFAutoModelForAudioFeatureExtraction

    _, processor = _folder(tmp_path, arch)
    hf = AutoModel.from_pretrained(tmp_path).eval()
    audio = [_audio()[0], _audio()[1][:15000]]
    with torch.no_grad():
        expected = [hf(**processor(a, sampling_rate=16000, return_tensors="pt")).last_hidden_state[0].numpy() for a in audio]
    model = QEFFAutoModel.from_pretrained(tmp_path)
    assert isinstance(model, QEFFAutoModelForAudioFeatureExtraction)
    model.compile(seq_len=32000, num_cores=1)
    got = model.generate(processor, audio)["output"]
    assert got.shape == (2, len(expected[0]), expected[0].shape[1])
    np.testing.assert_allclose(got[0], expected[0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(got[1][: len(expected[1])], expected[1], atol=1e-4, rtol=0)
    assert not got[1][len(expected[1]) :].any()
    with pytest.raises(ValueError, match="load it without pooling"):
        QEFFAutoModel.from_pretrained(tmp_path, pooling="mean")
    with pytest.raises(ValueError, match="QEFFAutoModelForAudioFeatureExtraction"):
        QEFFAutoModel(hf)
    if arch == "wav2vec2":  # an audio model that is not a CTC encoder over raw samples: refused, saying so
        from transformers import ASTConfig, ASTModel

        ASTModel(ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)).save_pretrained(
            tmp_path / "ast"
        )
        with pytest.raises(ValueError, match=r"reads audio \(input_values\)"):
            QEFFAutoModel.from_pretrained(tmp_path / "ast")
        with pytest.raises(NotImplementedError, match="not run here as an audio encoder"):
            QEFFAutoModelForAudioFeatureExtraction(ASTModel(ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2)))
