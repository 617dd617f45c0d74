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
    Wav2Vec2Config,
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
}


def _folder(tmp_path, arch: str):
    config_cls, model_cls, extra = ARCHITECTURES[arch]
    torch.manual_seed(0)
    hf = model_cls(config_cls(**{**SMALL, **extra})).eval()
    with torch.no_grad():  # a head that prefers letters over the blank, so the text is not empty
        hf.lm_head.bias[0] -= 2.0
    hf.save_pretrained(tmp_path)
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(VOCAB)}))
    tokenizer = Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"))
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
    with torch.no_grad():
        expected = hf(inputs.input_values).logits.numpy()
    got = model.logits(inputs)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    texts = model.generate(processor, _audio())
    assert texts == processor.batch_decode(expected.argmax(-1))
    assert any(texts)


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
