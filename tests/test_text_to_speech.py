"""QEFFAutoModelForTextToWaveform: VITS (MMS-TTS) as one graph, a tiny random model. With both noise scales 0 the
waveform and lengths equal transformers' within 1e-4 for a padded batch at other lengths than the export's, at another
speaking rate, and for a multi-speaker model's speakers; with noise (the model's defaults) each call draws its own, as
transformers' does; the autoregressive speech models are refused saying why."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForTextToWaveform, VitsConfig, VitsModel
from transformers.models.auto.modeling_auto import MODEL_FOR_TEXT_TO_WAVEFORM_MAPPING_NAMES

from QEfficient import QEFFAutoModel, QEFFAutoModelForTextToWaveform
from QEfficient.transform.text_to_speech import UNSUPPORTED_TEXT_TO_WAVEFORM

TINY = dict(
    vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=64, flow_size=16, spectrogram_bins=33,
    upsample_initial_channel=32, upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8], resblock_kernel_sizes=[3],
    resblock_dilation_sizes=[[1, 3]], prior_encoder_num_flows=2, prior_encoder_num_wavenet_layers=2,
    posterior_encoder_num_wavenet_layers=2, duration_predictor_num_flows=2, duration_predictor_filter_channels=32,
    depth_separable_num_layers=2, window_size=4,
)  # fmt: skip


def tiny(**extra) -> VitsModel:
    torch.manual_seed(0)
    return VitsModel(VitsConfig(**TINY, **extra)).eval()


def transformers_waveform(hf, inputs, noise_scale=0.0, noise_scale_duration=0.0, speaking_rate=1.0, **call):
    """transformers' forward with the model's sampling controls set as given (it reads them from the model)."""
    hf.noise_scale, hf.noise_scale_duration, hf.speaking_rate = noise_scale, noise_scale_duration, speaking_rate
    with torch.no_grad():
        return hf(**inputs, **call)


def _padded(rows: int, width: int) -> dict[str, torch.Tensor]:
    ids = torch.randint(1, 40, (rows, width), generator=torch.Generator().manual_seed(rows * width))
    mask = torch.ones_like(ids)
    mask[-1, width - 3 :] = 0
    return {"input_ids": ids * mask, "attention_mask": mask}


def test_every_text_to_waveform_type_runs_or_is_refused():
    assert set(MODEL_FOR_TEXT_TO_WAVEFORM_MAPPING_NAMES) == {"vits"} | set(UNSUPPORTED_TEXT_TO_WAVEFORM)
    with torch.device("meta"), pytest.raises(NotImplementedError, match="autoregressive speech model"):
        QEFFAutoModelForTextToWaveform(AutoModelForTextToWaveform.from_config(AutoConfig.for_model("musicgen")))


@pytest.mark.parametrize("stochastic", [True, False])
def test_waveform_equals_transformers_without_noise(stochastic):
    # a deterministic duration predictor reads no duration noise (its graph has no such input)
    hf = tiny(use_stochastic_duration_prediction=stochastic)
    model = QEFFAutoModelForTextToWaveform(hf)
    model.compile(num_cores=1)
    # padded batches at other lengths than the export's; 3 tokens: shorter than the relative-position window
    for rows, width in ((3, 11), (1, 5), (2, 3)) if stochastic else ((2, 9),):
        inputs = _padded(rows, width)
        for rate in (1.0, 1.7):
            expected = transformers_waveform(hf, inputs, speaking_rate=rate)
            got = model.generate(inputs, noise_scale=0.0, noise_scale_duration=0.0, speaking_rate=rate)
            assert got["sequence_lengths"].tolist() == expected.sequence_lengths.tolist()
            np.testing.assert_allclose(got["waveform"].numpy(), expected.waveform.numpy(), atol=1e-4, rtol=0)
        assert len(set(expected.sequence_lengths.tolist())) > 1 or rows == 1 or not stochastic  # the texts decide the lengths


def test_noise_and_loading(tmp_path):
    hf = tiny()
    hf.save_pretrained(tmp_path)
    model = QEFFAutoModelForTextToWaveform.from_pretrained(tmp_path)
    assert type(QEFFAutoModel.from_pretrained(tmp_path)) is QEFFAutoModelForTextToWaveform  # AutoModel's VitsModel
    model.compile(num_cores=1)
    inputs = _padded(1, 8)  # (transformers' VitsTokenizer needs the phonemizer package, not installed here)
    expected = transformers_waveform(hf, inputs)
    got = model.generate(inputs, noise_scale=0, noise_scale_duration=0)["waveform"].numpy()
    np.testing.assert_allclose(got, expected.waveform.numpy(), atol=1e-4, rtol=0)
    noisy = [model.generate(inputs)["waveform"].numpy() for _ in range(2)]  # the config's noise scales, as transformers'
    assert noisy[0].shape != noisy[1].shape or not np.allclose(noisy[0], noisy[1])
    assert model.sampling_rate == hf.config.sampling_rate
    with pytest.raises(ValueError, match="speaking_rate"):
        model.generate(inputs, speaking_rate=0)
    with pytest.raises(ValueError, match="finite number"):
        model.generate(inputs, noise_scale=float("nan"))
    again = model.generate(inputs, noise_scale=np.float32(0), noise_scale_duration=torch.tensor(0.0))  # numpy and torch scalars
    np.testing.assert_allclose(again["waveform"].numpy(), got)
    with pytest.raises(ValueError, match="one speaker"):
        model.generate(inputs, speaker_id=1)


def test_multi_speaker():
    hf = tiny(num_speakers=3, speaker_embedding_size=8)
    model = QEFFAutoModelForTextToWaveform(hf)
    model.compile(num_cores=1)
    inputs = _padded(2, 9)
    waves = []
    for speaker in (0, 2):
        expected = transformers_waveform(hf, inputs, speaker_id=speaker)
        got = model.generate(inputs, noise_scale=0, noise_scale_duration=0, speaker_id=speaker)
        np.testing.assert_allclose(got["waveform"].numpy(), expected.waveform.numpy(), atol=1e-4, rtol=0)
        waves.append(expected.waveform.numpy())
    assert waves[0].shape != waves[1].shape or not np.allclose(waves[0], waves[1])  # the speaker decides
    with pytest.raises(ValueError, match="pass speaker_id"):
        model.generate(inputs)
