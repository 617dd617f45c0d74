"""QEFFAutoModelForCTC: logits equal transformers' to 1e-4 and greedy CTC text equals theirs, for every
audio encoder with a CTC head (tiny random models)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import (
    Data2VecAudioConfig,
    Data2VecAudioForCTC,
    HubertConfig,
    HubertForCTC,
    OmniASRCTCConfig,
    OmniASRForCTC,
    SEWConfig,
    SEWDConfig,
    SEWDForCTC,
    SEWForCTC,
    UniSpeechConfig,
    UniSpeechForCTC,
    UniSpeechSatConfig,
    UniSpeechSatForCTC,
    Wav2Vec2Config,
    Wav2Vec2ConformerConfig,
    Wav2Vec2ConformerForCTC,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2Processor,
    WavLMConfig,
    WavLMForCTC,
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
}
# CTC types that read their feature extractor's spectrogram (input_features), not raw samples: refused, saying so
FEATURE_INPUT_TYPES = {"granite_speech5_ctc", "lasr_ctc", "parakeet_ctc", "wav2vec2-bert"}


def _config(arch: str):
    config_cls, _, extra = ARCHITECTURES[arch]
    if config_cls is OmniASRCTCConfig:  # its audio encoder is a nested config
        audio = {k: v for k, v in SMALL.items() if k not in ("vocab_size", "pad_token_id")}
        return OmniASRCTCConfig(vocab_size=len(VOCAB), pad_token_id=0, audio_config=audio)
    return config_cls(**{**SMALL, **extra})


def _reference(hf, values: torch.Tensor) -> np.ndarray:
    """transformers' logits for [B, samples] audio (with the channel axis Omnilingual ASR's model reads, where its
    processor did not write it)."""
    with torch.no_grad():
        return hf(values[:, None] if hf.config.model_type == "omniasr_ctc" and values.dim() == 2 else values).logits.numpy()


def _folder(tmp_path, arch: str):
    torch.manual_seed(0)
    hf = ARCHITECTURES[arch][1](_config(arch)).eval()
    with torch.no_grad():  # a head that prefers letters over the blank, so the text is not empty
        (hf.lm_head if hasattr(hf, "lm_head") else hf.ctc_head).bias[0] -= 2.0  # Omnilingual ASR's is ctc_head
    hf.save_pretrained(tmp_path)
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    tokenizer = Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"))
    if arch == "omniasr_ctc":  # its own processor: [B, 1, samples] torch tensors and a padding mask
        from transformers import AutoProcessor, OmniASRCTCProcessor, OmniASRFeatureExtractor

        OmniASRCTCProcessor(OmniASRFeatureExtractor(), tokenizer).save_pretrained(tmp_path)
        return hf, AutoProcessor.from_pretrained(tmp_path)
    Wav2Vec2Processor(Wav2Vec2FeatureExtractor(), tokenizer).save_pretrained(tmp_path)
    return hf, Wav2Vec2Processor.from_pretrained(tmp_path)


def _audio() -> list[np.ndarray]:
    speech = read_wav(DATA / "speech16k.wav")
    return [speech[:24000], speech[40000:64000]]  # two 1.5 s clips of the test recording


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_ctc_logits_and_text_equal_transformers(tmp_path, arch):
    hf, processor = _folder(tmp_path, arch)
    model = QEFFAutoModelForCTC.from_pretrained(tmp_path)
    model.compile(seq_len=32000, batch_size=1, num_cores=1)
    inputs = processor(_audio(), sampling_rate=16000, return_tensors="pt")
    expected = _reference(hf, inputs.input_values)
    got = model.logits(inputs)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    short = processor(_audio()[0][:9000], sampling_rate=16000, return_tensors="pt")  # another length than the export's
    np.testing.assert_allclose(model.logits(short), _reference(hf, short.input_values), atol=1e-4, rtol=0)
    texts = model.generate(processor, _audio())
    assert texts == processor.batch_decode(expected.argmax(-1))
    assert any(texts)


def test_every_ctc_type_runs_or_is_refused(tmp_path):
    """Every CTC type of transformers is swept above, or reads spectrogram features and is refused with the reason."""
    from transformers import Wav2Vec2BertConfig, Wav2Vec2BertForCTC
    from transformers.models.auto.modeling_auto import MODEL_FOR_CTC_MAPPING_NAMES

    swept = {_config(arch).model_type for arch in ARCHITECTURES}
    assert set(MODEL_FOR_CTC_MAPPING_NAMES) == swept | FEATURE_INPUT_TYPES
    shape = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=40, vocab_size=len(VOCAB))
    Wav2Vec2BertForCTC(Wav2Vec2BertConfig(**shape)).save_pretrained(tmp_path)
    with pytest.raises(NotImplementedError, match="reads input_features"):
        QEFFAutoModelForCTC.from_pretrained(tmp_path)


def test_audios_of_other_lengths_are_each_read_at_their_own(tmp_path):
    """The graph reads no padding mask: generate() runs audios of different lengths one by one, each as transformers
    reads it alone (Omnilingual ASR's processor writes torch tensors only, and its model pads with a mask)."""
    hf, processor = _folder(tmp_path, "omniasr_ctc")
    model = QEFFAutoModelForCTC.from_pretrained(tmp_path)
    model.compile(seq_len=32000, batch_size=2, num_cores=1)
    audio = [_audio()[0], _audio()[1][:15000]]
    alone = [processor(a, sampling_rate=16000, return_tensors="pt").input_values for a in audio]
    expected = [processor.batch_decode(_reference(hf, values).argmax(-1))[0] for values in alone]
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
    model.compile(seq_len=16000, num_cores=1)
    with pytest.raises(ValueError, match="compiled for at most 16000"):
        model.generate(processor, _audio()[0])
    with pytest.raises(ValueError, match="seq_len must be a number of samples"):
        model.compile(seq_len=0)


def test_infer_audio_path_with_a_ctc_model(tmp_path, capsys):
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
