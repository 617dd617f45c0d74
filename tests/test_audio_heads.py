"""QEFFAutoModelForAudioFrameClassification (speaker diarization) and QEFFAutoModelForAudioXVector (speaker
verification): every type of transformers' two mappings as a tiny random model (raw samples, and Wav2Vec2-BERT's
spectrogram with its mask), each audio's outputs equal to transformers' for that audio alone within 1e-4, audios of
different lengths in one call; the streamed diarization model refused saying why; a checkpoint of another head refused
at load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForAudioFrameClassification, AutoModelForAudioXVector
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_AUDIO_FRAME_CLASSIFICATION_MAPPING_NAMES,
    MODEL_FOR_AUDIO_XVECTOR_MAPPING_NAMES,
)

from QEfficient import (
    QEFFAutoModelForAudioClassification,
    QEFFAutoModelForAudioFrameClassification,
    QEFFAutoModelForAudioXVector,
    QEFFCommonLoader,
)
from QEfficient.models.audio_heads import UNSUPPORTED_AUDIO_HEADS
from tests.test_ctc import _audio, _config, _folder

# model type -> the CTC test's architecture whose tiny config and processor serve
AUDIO_TYPES = {
    "wav2vec2": "wav2vec2",
    "wavlm": "wavlm",
    "data2vec-audio": "data2vec-audio",
    "unispeech-sat": "unispeech-sat",
    "wav2vec2-conformer": "wav2vec2-conformer-rel-pos",
    "wav2vec2-bert": "wav2vec2-bert",  # a spectrogram of any length and its mask
}
XVECTOR = dict(tdnn_dim=(16, 16, 16, 16, 24), tdnn_kernel=(5, 3, 3, 1, 1), tdnn_dilation=(1, 2, 3, 1, 1), xvector_output_dim=12)


def test_every_type_runs_or_is_refused():
    for mapping in (MODEL_FOR_AUDIO_FRAME_CLASSIFICATION_MAPPING_NAMES, MODEL_FOR_AUDIO_XVECTOR_MAPPING_NAMES):
        assert set(mapping) <= set(AUDIO_TYPES) | set(UNSUPPORTED_AUDIO_HEADS)
    with torch.device("meta"), pytest.raises(NotImplementedError, match="speaker cache"):
        config = AutoConfig.for_model("nemotron3_diarization")
        QEFFAutoModelForAudioFrameClassification(AutoModelForAudioFrameClassification.from_config(config))


def test_a_refused_type_is_refused_before_its_weights_load(tmp_path):
    architecture = MODEL_FOR_AUDIO_FRAME_CLASSIFICATION_MAPPING_NAMES["nemotron3_diarization"]
    AutoConfig.for_model("nemotron3_diarization", architectures=[architecture]).save_pretrained(tmp_path)  # no weights
    with pytest.raises(NotImplementedError, match="speaker cache"):
        QEFFAutoModelForAudioFrameClassification.from_pretrained(tmp_path)


def _saved(tmp_path, model_type: str, auto_class, **extra):
    _, processor = _folder(tmp_path, AUDIO_TYPES[model_type])
    config = _config(AUDIO_TYPES[model_type])
    config.num_labels = 3
    for name, value in extra.items():
        setattr(config, name, value)
    torch.manual_seed(0)
    hf = auto_class.from_config(config)
    with torch.no_grad():  # outputs of a few units, not hundredths: differences in the encoder show
        for module in hf.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d)) and module is not hf.base_model:
                module.weight.mul_(3.0)
    hf.save_pretrained(tmp_path)
    return auto_class.from_pretrained(tmp_path).eval(), processor


@pytest.mark.parametrize("model_type", list(AUDIO_TYPES))
def test_frame_logits_equal_transformers_on_each_audio(tmp_path, model_type):
    hf, processor = _saved(tmp_path, model_type, AutoModelForAudioFrameClassification, use_weighted_layer_sum=model_type == "wav2vec2")
    audio = [_audio()[0], _audio()[1][:15000]]
    with torch.no_grad():
        expected = [hf(**processor(a, sampling_rate=16000, return_tensors="pt")).logits[0].numpy() for a in audio]
    model = QEFFCommonLoader.from_pretrained(tmp_path)  # by the saved head
    assert type(model) is QEFFAutoModelForAudioFrameClassification
    model.compile(seq_len=32000, num_cores=1)
    got = model.generate(processor, audio)["logits"].numpy()
    assert got.shape == (2, len(expected[0]), 3) and len(expected[1]) < len(expected[0])
    np.testing.assert_allclose(got[0], expected[0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(got[1, : len(expected[1])], expected[1], atol=1e-4, rtol=0)
    assert not got[1, len(expected[1]) :].any()  # a shorter audio's frames past its own: zeros
    assert float(np.abs(expected[0][0] - expected[0][-1]).max()) > 1e-2  # the frames differ


@pytest.mark.parametrize("model_type", list(AUDIO_TYPES))
def test_xvectors_equal_transformers_on_each_audio(tmp_path, model_type):
    """Wav2Vec2-BERT also through its adapter (which subsamples the mask), and a padded batch of 3 rows on 3 compiled
    rows (the export's example has 2: its pooling is no loop over them)."""
    bert = model_type == "wav2vec2-bert"
    adapter = dict(add_adapter=True, num_adapter_layers=1) if bert else {}
    hf, processor = _saved(
        tmp_path, model_type, AutoModelForAudioXVector, **XVECTOR, **adapter, use_weighted_layer_sum=model_type == "wavlm"
    )
    audio = [_audio()[0], _audio()[1][:15000]]
    with torch.no_grad():
        expected = [hf(**processor(a, sampling_rate=16000, return_tensors="pt")) for a in audio]
    model = QEFFAutoModelForAudioXVector.from_pretrained(tmp_path)
    model.compile(seq_len=32000, batch_size=3 if bert else 2, num_cores=1)
    got = model.generate(processor, audio)

    def assert_close(got: np.ndarray, want: np.ndarray, name: str) -> None:
        assert got.shape == want.shape
        scale = np.abs(want).max()  # x-vectors of a random model are small: compared relative to their size
        np.testing.assert_allclose(got / scale, want / scale, atol=1e-4, rtol=0, err_msg=name)

    for name in ("logits", "embeddings"):
        assert_close(got[name].numpy(), np.concatenate([getattr(e, name).numpy() for e in expected]), name)
    if bert:
        padded = processor([*audio, _audio()[1][:20000]], sampling_rate=16000, return_tensors="pt", padding=True)
        assert not padded["attention_mask"].all()
        with torch.no_grad():
            reference = hf(**padded)
        logits, embeddings = model._outputs(padded, True)
        assert_close(logits, reference.logits.numpy(), "padded logits")
        assert_close(embeddings, reference.embeddings.numpy(), "padded embeddings")
    vectors = [e.embeddings[0] for e in expected]
    assert float((vectors[0] - vectors[1]).abs().max() / vectors[0].abs().max()) > 1e-2  # the audio decides
    with pytest.raises(ValueError, match="QEFFAutoModelForAudioXVector"):
        QEFFAutoModelForAudioClassification.from_pretrained(tmp_path)
    assert type(QEFFCommonLoader.from_pretrained(tmp_path)) is QEFFAutoModelForAudioXVector
