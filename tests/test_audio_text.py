"""Audio-text models through the image-text path, audio in the place of images (AUDIO_ADAPTERS): a tiny random
Voxtral (Whisper-style encoder of 16-frame chunks, two audio tokens per chunk, Llama text model) gives transformers'
greedy tokens in both layouts, for a batch of prompts with two chunks and one, audio tokens across prefill chunks; so
does a tiny random Qwen2-Audio (Whisper-style encoder over 30 s, Qwen2 text model) for two recordings of the test clip
of different lengths through its real processor (each audio's tokens as many as its length gives), and tiny random
AudioFlamingo 3 and GLM-ASR models (their own audio features masked per audio) through their real processors, long
audio in two windows; FunASR-Nano's stacked frames and OmniASR's raw samples of any length; the loaders pick them; bad
features say what to pass; a served chat with audio."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from transformers import (
    AudioFlamingo3Config,
    AudioFlamingo3ForConditionalGeneration,
    AudioFlamingo3Processor,
    GlmAsrConfig,
    GlmAsrForConditionalGeneration,
    GlmAsrProcessor,
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    VoxtralConfig,
    VoxtralForConditionalGeneration,
    WhisperFeatureExtractor,
)

from QEfficient import QEFFAutoModelForImageTextToText, QEFFAutoModelForSpeechSeq2Seq
from QEfficient.base.common import QEFFCommonLoader
from tests.loopback import loopback_http
from tests.test_ctranslate2_whisper import DATA, read_wav

AUDIO_TOKEN = 24
AUDIO = dict(num_mel_bins=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, max_source_positions=8)
TEXT = dict(
    model_type="llama", vocab_size=320, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    intermediate_size=37, max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=0,
)  # fmt: skip


def _both_layouts(folder, inputs: dict, expected: list[list[int]], **compile_options):
    """The model of ``folder`` in both layouts, loaded as QEFFAutoModelForSpeechSeq2Seq loads it, compiled for batches of
    2: each row's greedy tokens begin with ``expected``'s; returns the last model."""
    for kv_offload in (True, False):
        model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder, kv_offload=kv_offload)
        assert isinstance(model, QEFFAutoModelForImageTextToText)
        model.compile(batch_size=2, num_cores=1, **compile_options)
        rows = model.generate(inputs=inputs, generation_len=8, stream=False).generated_ids[0]
        assert [row[: len(want)].tolist() for row, want in zip(rows, expected)] == expected, kv_offload
    assert expected[0] != expected[1]
    return model


def _hand_made_prompts_are_transformers(hf, folder, prompts: list[list[int]], audio: list[dict], batch: dict, ctx_len: int):
    """Each prompt with its own audio (``audio[i]``: the model's inputs for it alone) through transformers' greedy
    generate; the right-padded prompts with the batch's audio (``batch``) through the loaders' class in both layouts.
    Returns the last model."""
    expected = []
    with torch.no_grad():
        for prompt, own in zip(prompts, audio):
            ids = torch.tensor([prompt])
            out = hf.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False, **own)
            expected.append(out[0, len(prompt) :].tolist())
    ids, attention = _right_padded(prompts)
    assert QEFFCommonLoader.model_class(str(folder)) is QEFFAutoModelForImageTextToText
    return _both_layouts(folder, {"input_ids": ids, "attention_mask": attention, **batch}, expected, prefill_seq_len=8, ctx_len=ctx_len)


def _audio_decides(hf, prompt: list[int], audio: dict, key: str = "input_features") -> None:
    """transformers' greedy tokens for ``prompt`` differ with ``audio``'s ``key`` (its features) and with zeros there."""
    ids = torch.tensor([prompt])
    with torch.no_grad():
        heard, silent = (
            hf.generate(input_ids=ids, **{**audio, key: f}, max_new_tokens=8, do_sample=False)[0].tolist()
            for f in (audio[key], torch.zeros_like(audio[key]))
        )
    assert heard != silent


def _right_padded(prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompts' ids right-padded with 0 to the longest, and their attention mask."""
    width = max(map(len, prompts))
    ids = torch.tensor([p + [0] * (width - len(p)) for p in prompts])
    return ids, torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in prompts])


def _widened(hf):
    """The model with weights drawn wide (std 0.3), so that greedy tokens vary."""
    torch.manual_seed(0)
    with torch.no_grad():
        for key, weight in hf.named_parameters():
            if "norm" not in key and weight.dim() > 1:
                weight.normal_(0, 0.3)
    return hf.eval()


@pytest.fixture(scope="module")
def voxtral(tmp_path_factory, tokenizer_dir):
    """(folder, transformers model)."""
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    hf = _widened(VoxtralForConditionalGeneration(VoxtralConfig(audio_config=AUDIO, text_config=TEXT, audio_token_id=AUDIO_TOKEN)))
    folder = tmp_path_factory.mktemp("voxtral")
    hf.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return folder, hf


def _inputs() -> dict[str, torch.Tensor]:
    """Two prompts as Voxtral's processor lays them out: the first reads two 16-frame chunks (four audio tokens), the
    second one chunk (two tokens); the chunks in prompt order."""
    ids = torch.tensor([[1, 5, *[AUDIO_TOKEN] * 4, 7, 8], [1, 6, *[AUDIO_TOKEN] * 2, 9, 10, 11, 12]])
    features = torch.randn(3, 8, 16, generator=torch.Generator().manual_seed(1))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "input_features": features}


def test_tokens_are_transformers_in_both_layouts(voxtral):
    folder, hf = voxtral
    inputs = _inputs()
    chunks = [inputs["input_features"][:2], inputs["input_features"][2:]]
    with torch.no_grad():
        expected = [
            hf.generate(input_ids=ids[None], input_features=audio, attention_mask=torch.ones(1, 8), max_new_tokens=8, do_sample=False)[
                0, 8:
            ]
            for ids, audio in zip(inputs["input_ids"], chunks)
        ]
    assert QEFFCommonLoader.model_class(str(folder)) is QEFFAutoModelForImageTextToText
    model = _both_layouts(folder, inputs, [want.tolist() for want in expected], prefill_seq_len=4, ctx_len=32)  # across chunks
    with pytest.raises(ValueError, match=r"input_features must be \[chunks, 8, 16\]"):
        model.generate(inputs={**inputs, "input_features": np.zeros((3, 8, 30), np.float32)}, generation_len=4, stream=False)
    with pytest.raises(ValueError, match="voxtral reads audio, not images: pass inputs="):
        model.generate(processor=object(), images=[object()], prompts=["hi"], generation_len=4, stream=False)


@pytest.fixture(scope="module")
def qwen2_audio(tmp_path_factory, tokenizer_dir):
    """(folder, transformers model, processor): a tiny Qwen2-Audio with its real processor (the local tokenizer with
    its audio tokens; the processor's default chat template)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]})
    config = Qwen2AudioConfig(
        audio_config=dict(num_mel_bins=8, d_model=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32),
        text_config={**TEXT, "model_type": "qwen2", "vocab_size": len(tokenizer), "max_position_embeddings": 512},
        audio_token_id=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(0)
    hf = _widened(Qwen2AudioForConditionalGeneration(config))
    folder = tmp_path_factory.mktemp("qwen2-audio")
    hf.save_pretrained(folder)
    Qwen2AudioProcessor(WhisperFeatureExtractor(feature_size=8, sampling_rate=16000), tokenizer).save_pretrained(folder)
    return folder, hf, Qwen2AudioProcessor.from_pretrained(folder)


def test_qwen2_audio_through_its_processor_is_transformers(qwen2_audio):
    """Two recordings of 3 s and 1.5 s (75 and 37 audio tokens) with prompts of different lengths, through
    Qwen2-Audio's processor (the local tokenizer with its audio tokens), in both layouts."""
    tmp_path, hf, processor = qwen2_audio
    audio_token = hf.config.audio_token_id
    clip = read_wav(DATA / "speech16k.wav")
    prompts, audios = (
        ["Say: <|audio_bos|><|AUDIO|><|audio_eos|> now", "Hi <|audio_bos|><|AUDIO|><|audio_eos|>"],
        [clip[:48000], clip[16000:40000]],
    )
    inputs = processor(text=prompts, audio=audios, sampling_rate=16000, return_tensors="pt", padding=True)
    assert (inputs["input_ids"] == audio_token).sum(-1).tolist() == [75, 37]
    expected = []
    for prompt, audio in zip(prompts, audios):
        one = processor(text=[prompt], audio=[audio], sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            expected.append(hf.generate(**one, max_new_tokens=8, do_sample=False)[0, one["input_ids"].shape[1] :].tolist())
    model = _both_layouts(tmp_path, inputs, expected, prefill_seq_len=32, ctx_len=128)
    with pytest.raises(ValueError, match=r"feature_attention_mask must be \[audios, 3000\]"):
        model.generate(
            inputs={**inputs, "feature_attention_mask": inputs["feature_attention_mask"][:, :100]}, generation_len=4, stream=False
        )


# tiny models whose own get_audio_features masks each audio's tokens: (config, model class, processor class, audio token)
MASKED_AUDIO = {
    "audioflamingo3": lambda tokens: (
        AudioFlamingo3Config(
            audio_config=dict(num_mel_bins=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
            text_config={**TEXT, "model_type": "qwen2", "vocab_size": tokens, "max_position_embeddings": 2048},
        ),
        AudioFlamingo3ForConditionalGeneration,
        AudioFlamingo3Processor,
        "<sound>",
    ),
    # a rotary encoder, every four frames' states merged
    "glmasr": lambda tokens: (
        GlmAsrConfig(
            audio_config=dict(num_mel_bins=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
            text_config={**TEXT, "vocab_size": tokens, "max_position_embeddings": 2048},
        ),
        GlmAsrForConditionalGeneration,
        GlmAsrProcessor,
        "<|pad|>",
    ),
}


def masked_audio_folder(model_type: str, folder, tokenizer_dir, chat_template: str | None = None):
    """(transformers' model, its processor, the audio token): a MASKED_AUDIO model saved to ``folder`` with its real
    processor over the local tokenizer (``chat_template``'s AUDIO written as the audio token)."""
    from transformers import AutoTokenizer, WhisperFeatureExtractor

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    audio_token = MASKED_AUDIO[model_type](0)[3]
    tokenizer.add_special_tokens({"additional_special_tokens": [audio_token]})
    config, model_class, processor_class, _ = MASKED_AUDIO[model_type](len(tokenizer))
    config.audio_token_id = tokenizer.convert_tokens_to_ids(audio_token)
    torch.manual_seed(0)
    hf = _widened(model_class(config))
    hf.save_pretrained(folder)
    template = {"chat_template": chat_template.replace("AUDIO", audio_token)} if chat_template else {}
    processor_class(WhisperFeatureExtractor(feature_size=8, sampling_rate=16000), tokenizer, **template).save_pretrained(folder)
    return hf, processor_class.from_pretrained(folder), audio_token


def hf_chat_answer(hf, processor, clip: np.ndarray, question: str = "What is said?") -> tuple[str, int]:
    """transformers' greedy answer (8 tokens) to a user turn of ``clip`` then ``question`` through the processor's chat
    template, and the prompt's token count."""
    messages = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": question}]}]
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[prompt], audio=[clip], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        ids = hf.generate(**inputs, max_new_tokens=8, do_sample=False)[0, inputs["input_ids"].shape[1] :]
    return processor.tokenizer.decode(ids, skip_special_tokens=True), inputs["input_ids"].shape[1]


@pytest.mark.parametrize("model_type", list(MASKED_AUDIO))
def test_masked_audio_models_through_their_processors_are_transformers(model_type, tmp_path, tokenizer_dir):
    """39 s of speech (two 30 s windows) and 3 s, in prompts of different lengths, through the model's real processor
    (the local tokenizer with its audio token; windows padded to 3000 frames, text padded on the left): greedy tokens
    equal transformers' in both layouts; the loaders pick the image-text class."""
    hf, processor, audio_token = masked_audio_folder(model_type, tmp_path, tokenizer_dir)
    clip = read_wav(DATA / "speech16k.wav")
    prompts = [f"Say: {audio_token} now", f"Hi {audio_token}"]
    audios = [np.tile(clip, 5)[: 39 * 16000], clip[16000:64000]]
    inputs = processor(text=prompts, audio=audios, sampling_rate=16000)
    assert tuple(inputs["input_features"].shape) == (3, 8, 3000)  # two windows and one
    expected = []
    for prompt, audio in zip(prompts, audios):
        one = processor(text=[prompt], audio=[audio], sampling_rate=16000)
        with torch.no_grad():
            expected.append(hf.generate(**one, max_new_tokens=8, do_sample=False)[0, one["input_ids"].shape[1] :].tolist())
    assert QEFFCommonLoader.model_class(str(tmp_path)) is QEFFAutoModelForImageTextToText
    model = _both_layouts(tmp_path, inputs, expected, prefill_seq_len=64, ctx_len=1024)
    with pytest.raises(ValueError, match="no input_features_mask: pass the processor's output whole"):
        model.generate(inputs={k: v for k, v in inputs.items() if k != "input_features_mask"}, generation_len=4, stream=False)


def test_a_served_chat_with_audio_is_transformers(qwen2_audio):
    """``serve`` on the Qwen2-Audio folder: a chat whose message holds OpenAI's ``input_audio`` part (base64 WAV) answers
    transformers' greedy text for the processor's chat template over that audio (``audio_url`` parts and the Responses
    API's ``input_audio`` parts too); image parts, other formats, a damaged WAV, another rate, a clip longer than the
    processor reads and audio tokens in a plain prompt are refused, saying what the model takes."""
    import base64

    from QEfficient.cloud.serve import build_from_args
    from QEfficient.cloud.serve_args import parse_args
    from QEfficient.utils.audio import decode_wav
    from tests.helpers import serve_on_loopback
    from tests.test_server_ctc import wav

    folder, hf, processor = qwen2_audio
    sent = wav(read_wav(DATA / "speech16k.wav")[:32000])  # 2 s as a 16-bit WAV file
    clip, data = decode_wav(sent), base64.b64encode(sent).decode()  # what the server reads from it
    expected, _ = hf_chat_answer(hf, processor, clip)
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--num_cores", "1", "--ctx_len", "256"]))
    try:
        with serve_on_loopback(app, log_level="critical") as url:
            for part in (
                {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}},
                {"type": "audio_url", "audio_url": {"url": f"data:audio/wav;base64,{data}"}},
            ):
                body = {"messages": [{"role": "user", "content": [part, {"type": "text", "text": "What is said?"}]}], "max_tokens": 8}
                answer = loopback_http.post(f"{url}/v1/chat/completions", json={**body, "temperature": 0}, timeout=120)
                assert answer.status_code == 200, answer.text
                assert answer.json()["choices"][0]["message"]["content"] == expected
            content = [
                {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}},
                {"type": "input_text", "text": "What is said?"},
            ]
            response = loopback_http.post(
                f"{url}/v1/responses",
                json={"input": [{"role": "user", "content": content}], "max_output_tokens": 8, "temperature": 0},
                timeout=120,
            )
            assert response.status_code == 200, response.text
            assert response.json()["output"][0]["content"][0]["text"] == expected  # the Responses API's input_audio part too

            def audio_part(samples: np.ndarray, rate: int = 16000) -> dict:
                return {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav(samples, rate)).decode(), "format": "wav"}}

            speech = read_wav(DATA / "speech16k.wav")
            for part, word in (
                ({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}, "takes 'text' and 'input_audio'"),
                ({"type": "input_audio", "input_audio": {"data": data, "format": "mp3"}}, "reads WAV"),
                ({"type": "input_audio", "input_audio": {"data": base64.b64encode(b"RIFF1234WAVE").decode()}}, "not a PCM WAV"),
                (audio_part(speech[:8000], 8000), "sampled at 8000 Hz"),
                (audio_part(np.tile(speech, 4)[: 31 * 16000]), "is 31.00 s; this model reads clips of 0.025 s to 30 s"),
            ):
                body = {"messages": [{"role": "user", "content": [part, {"type": "text", "text": "Hi"}]}], "max_tokens": 4}
                refused = loopback_http.post(f"{url}/v1/chat/completions", json=body, timeout=120)
                assert refused.status_code == 400 and word in refused.json()["error"]["message"], refused.text
            prompt = loopback_http.post(
                f"{url}/v1/completions", json={"prompt": "Hi <|audio_bos|><|AUDIO|><|audio_eos|>", "max_tokens": 4}, timeout=120
            )
            assert prompt.status_code == 400 and "send 'input_audio' parts of a chat" in prompt.json()["error"]["message"], prompt.text
    finally:
        runner.stop()


def test_fun_asr_nano_stacked_frames_are_transformers(tmp_path, tokenizer_dir):
    """FunASR-Nano: time-major stacked frames of any length (20, and 12 padded to 20), a token per frame through its
    adaptor, Qwen3 text; greedy tokens equal transformers' on the same padded features in both layouts."""
    from transformers import AutoTokenizer, FunAsrNanoConfig, FunAsrNanoForConditionalGeneration

    config = FunAsrNanoConfig(
        audio_config=dict(
            num_mel_bins=8, hidden_size=16, num_attention_heads=2, intermediate_size=32, num_hidden_layers=2, num_stacked_frames=7,
            num_timestamp_prediction_layers=1, max_position_embeddings=256,
        ),
        text_config={**TEXT, "model_type": "qwen3", "head_dim": 8},
        adaptor_config=dict(hidden_size=32, intermediate_size=8, num_attention_heads=2, num_hidden_layers=1, projector_hidden_size=24),
        audio_token_id=AUDIO_TOKEN,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = _widened(FunAsrNanoForConditionalGeneration(config))
    hf.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp_path)
    features = torch.randn(2, 20, 8 * 7, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 20, dtype=torch.int64)
    mask[1, 12:] = 0
    prompts = [[1, 5, *[AUDIO_TOKEN] * 20, 7, 8], [1, 6, *[AUDIO_TOKEN] * 12, 9, 10, 11, 12]]
    audio = [{"input_features": features[i : i + 1], "input_features_mask": mask[i : i + 1]} for i in range(2)]
    _audio_decides(hf, prompts[0], audio[0])
    _hand_made_prompts_are_transformers(hf, tmp_path, prompts, audio, {"input_features": features, "input_features_mask": mask}, 64)


def test_omniasr_raw_audio_is_transformers(tmp_path, tokenizer_dir):
    """OmniASR: raw samples of any length (2000, and 1200 padded to 2000) through Wav2Vec2-style convolutions, a token
    per frame (99 and 59), Llama text; greedy tokens equal transformers' on each recording alone, in both layouts."""
    from transformers import AutoTokenizer, OmniASRConfig, OmniASRForConditionalGeneration

    from QEfficient.transform.vision_adapters import AUDIO_ADAPTERS

    audio = dict(
        hidden_size=16, num_attention_heads=2, num_hidden_layers=1, intermediate_size=32, conv_dim=(8, 8), conv_kernel=(10, 4),
        conv_stride=(5, 4), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )  # fmt: skip
    config = OmniASRConfig(audio_config=audio, text_config={**TEXT, "max_position_embeddings": 256}, audio_token_id=AUDIO_TOKEN)
    torch.manual_seed(0)
    hf = _widened(OmniASRForConditionalGeneration(config))
    hf.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp_path)
    samples = torch.randn(2, 1, 2000, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 2000, dtype=torch.int64)
    mask[1, 1200:] = 0
    tokens = AUDIO_ADAPTERS["omniasr"].frames_of(config, mask.sum(-1).numpy()).tolist()
    assert tokens == [99, 59]
    prompts = [[1, 5, *[AUDIO_TOKEN] * tokens[0], 7, 8], [1, 6, *[AUDIO_TOKEN] * tokens[1], 9, 10, 11, 12]]
    audio = [{"input_values": samples[i : i + 1, :, :n], "padding_mask": mask[i : i + 1, :n]} for i, n in enumerate((2000, 1200))]
    _hand_made_prompts_are_transformers(hf, tmp_path, prompts, audio, {"input_values": samples, "padding_mask": mask}, 128)


def _granite_speech_config(model_type: str):
    """A tiny Granite Speech (Plus: the first layer's states joined to the last's): blocks of 8 frames, windows of 6."""
    from transformers import AutoConfig

    encoder = dict(
        input_dim=12, num_layers=2, hidden_dim=16, feedforward_mult=2, num_heads=2, dim_head=8, output_dim=10, context_size=8,
        max_pos_emb=16, conv_kernel_size=3, conv_expansion_factor=2,
    )  # fmt: skip
    joined = 2 if model_type == "granite_speech_plus" else 1
    if joined == 2:
        encoder["cat_hidden_layers"] = [1]
    projector = dict(
        model_type="blip_2_qformer", hidden_size=16, num_attention_heads=2, intermediate_size=32, num_hidden_layers=1,
        encoder_hidden_size=16 * joined, cross_attention_frequency=1,
    )  # fmt: skip
    text = {**TEXT, "model_type": "granite", "embedding_multiplier": 2.0, "logits_scaling": 0.5, "residual_multiplier": 0.7}
    return AutoConfig.for_model(
        model_type, encoder_config=encoder, projector_config=projector, text_config=text, window_size=6, downsample_rate=3,
        audio_token_id=AUDIO_TOKEN, has_lora_adapter=False,
    )  # fmt: skip


def _qwen3_asr_config(vocab_size: int = TEXT["vocab_size"], audio_token_id: int = AUDIO_TOKEN):
    """A tiny Qwen3-ASR: chunks of 100 log-mel frames (13 frames after its convolutions), windows of two chunks."""
    from transformers import Qwen3ASRConfig

    audio = dict(
        num_mel_bins=8, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=32, d_model=16, output_dim=32,
        n_window=50, n_window_infer=200, downsample_hidden_size=4, max_position_embeddings=13,
    )  # fmt: skip
    text = {**TEXT, "model_type": "qwen3", "head_dim": 8, "vocab_size": vocab_size, "max_position_embeddings": 256}
    return Qwen3ASRConfig(audio_config=audio, text_config=text, audio_token_id=audio_token_id)


def _vibevoice_asr_config(vocab_size: int = TEXT["vocab_size"], audio: int = AUDIO_TOKEN, bos: int = 25, eos: int = 26):
    """A tiny VibeVoice ASR: tokenizers with the real hop (3200 samples: 8 x 20 x 20), which its processor assumes."""
    from transformers import VibeVoiceAsrConfig

    acoustic = dict(hidden_size=8, num_filters=2, downsampling_ratios=[8, 20, 20], depths=[1, 1, 1, 1], kernel_size=3, ffn_expansion=2)
    return VibeVoiceAsrConfig(
        acoustic_tokenizer_encoder_config=acoustic, semantic_tokenizer_encoder_config={**acoustic, "hidden_size": 6},
        text_config={**TEXT, "model_type": "qwen2", "vocab_size": vocab_size, "max_position_embeddings": 256},
        audio_token_id=audio, audio_bos_token_id=bos, audio_eos_token_id=eos,
    )  # fmt: skip


def test_audio_rewrites_equal_transformers_at_edge_lengths():
    """The rewritten block, window and packed-window counts (transform/speech_rewrites.py) give transformers' audio
    features, in PyTorch, at lengths where counting goes wrong first: Granite Speech at 48 frames (whole blocks and
    windows), 5 (less than one block) and 17 with 40 (a batch); Qwen3-ASR at 30 frames (less than a chunk: one window),
    260 (a window and a part of one), 400 whole and a batch of 400, 130 and 0 frames."""
    import copy

    from transformers import AutoModelForMultimodalLM

    from QEfficient.transform.rewrites import apply_rewrites
    from QEfficient.transform.vision_adapters import AUDIO_ADAPTERS

    def same(hf, **audio):
        ours = copy.deepcopy(hf)
        assert apply_rewrites(ours) > 0
        with torch.no_grad():
            want, got = (m.model.get_audio_features(**audio, return_dict=True).pooler_output for m in (hf, ours))
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)

    generator = torch.Generator().manual_seed(1)
    for model_type in ("granite_speech", "granite_speech_plus"):
        torch.manual_seed(0)
        hf = _widened(AutoModelForMultimodalLM.from_config(_granite_speech_config(model_type)))
        for frames in ((48,), (5,), (17, 40)):
            same(hf, input_features=torch.randn(len(frames), max(frames), 12, generator=generator))
    torch.manual_seed(0)
    hf = _widened(AutoModelForMultimodalLM.from_config(_qwen3_asr_config()))
    for lengths in ((30,), (260,), (400,), (400, 130, 0)):
        width = -(-max(lengths) // 100) * 100
        mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
        same(hf, input_features=torch.randn(len(lengths), 8, width, generator=generator), input_features_mask=mask)
    torch.manual_seed(0)
    hf = _widened(AutoModelForMultimodalLM.from_config(_vibevoice_asr_config()))
    hf.config.acoustic_tokenizer_chunk_size = 6400  # transformers' chunks with their caches: two hops each
    values = torch.randn(2, 1, 5 * 3200, generator=generator)
    mask = (torch.arange(5 * 3200)[None, :] < torch.tensor([[16000], [7000]])).long()
    with torch.no_grad():
        want = hf.model.get_audio_features(values, padding_mask=mask, sample=False).pooler_output
        got = AUDIO_ADAPTERS["vibevoice_asr"].image_features(hf, values, mask)[0]  # one pass
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("model_type", ["granite_speech", "granite_speech_plus"])
def test_granite_speech_blocks_and_windows_are_transformers(model_type, tmp_path, tokenizer_dir):
    """Granite Speech (Plus: the first layer's states joined to the last's): stacked frames of any length (50, and 20
    padded to 50) through a conformer attending within blocks of 8 frames and a Q-Former reading windows of 6 (two
    queries each: 18 and 8 audio tokens), Granite text; greedy tokens equal transformers' on the same padded features,
    in both layouts; Granite Speech with a LoRA adapter, as its checkpoints, and a warning for a prompt without audio."""
    from transformers import AutoModelForMultimodalLM, AutoTokenizer

    config = _granite_speech_config(model_type)
    joined = 2 if model_type == "granite_speech_plus" else 1
    torch.manual_seed(0)
    hf = _widened(AutoModelForMultimodalLM.from_config(config))
    hf.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp_path)
    if joined == 1:  # as the real checkpoints, a LoRA adapter beside the weights, which transformers loads with them
        from peft import LoraConfig, get_peft_model
        from transformers import GenerationMixin

        get_peft_model(hf, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)).save_pretrained(tmp_path)
        hf = AutoModelForMultimodalLM.from_pretrained(tmp_path).eval()
        assert any("lora_A" in name for name, _ in hf.named_modules())
        # Its generate() turns the adapter on for audio (off for text alone) through peft 0.22's API; peft 0.21, the
        # index's newest, cannot: transformers' own generation loop, the adapter on as it is loaded.
        hf.generate = functools.partial(GenerationMixin.generate, hf)
    features = torch.randn(2, 50, 12, generator=torch.Generator().manual_seed(1))
    features[1, 20:] = 0  # the processor's padding: the encoder reads it (it takes no mask), as transformers' does
    tokens = [18, 8]  # 50 frames: 7 blocks, 9 windows of 6 (the export's example: 5 and 7); 20 frames: 4 windows
    mask = torch.arange(18)[None, :] < torch.tensor(tokens)[:, None]
    prompts = [[1, 5, *[AUDIO_TOKEN] * tokens[0], 7, 8], [1, 6, *[AUDIO_TOKEN] * tokens[1], 9, 10, 11, 12]]
    audio = [{"input_features": features[i : i + 1], "input_features_mask": mask[i : i + 1]} for i in range(2)]
    _audio_decides(hf, prompts[0], audio[0])
    batch = {"input_features": features, "input_features_mask": mask}
    model = _hand_made_prompts_are_transformers(hf, tmp_path, prompts, audio, batch, 64)
    ids, attention = _right_padded(prompts)
    if joined == 1:  # a prompt without audio: transformers would turn the adapter off, the graph cannot
        with pytest.warns(UserWarning, match="runs with the checkpoint's LoRA adapter on"):
            model.generate(inputs={"input_ids": ids[:, :2], "attention_mask": attention[:, :2]}, generation_len=2, stream=False)
    with pytest.raises(ValueError, match=r"input_features_mask must be \[audios, 18\] \(the projector's query tokens of 50 frames\)"):
        model.generate(inputs={**batch, "input_ids": ids, "attention_mask": attention, "input_features_mask": mask[:, :8]}, stream=False)


def test_qwen3_asr_packed_windows_are_transformers(tmp_path, tokenizer_dir):
    """Qwen3-ASR through its real processor (the local tokenizer with its audio tokens): 5.5 s and 1.25 s of the test
    clip (550 log-mel frames padded to 600, in chunks of 100; 125), each audio's own frames packed and attending within
    windows of two chunks' worth (26 frames), Qwen3 text; greedy tokens equal transformers' on each recording alone (its
    encoder is blind to the padding), in both layouts."""
    from transformers import AutoModelForMultimodalLM, AutoTokenizer, Qwen3ASRFeatureExtractor, Qwen3ASRProcessor

    names = {"audio_token": "<|audio_pad|>", "audio_bos_token": "<|audio_start|>", "audio_eos_token": "<|audio_end|>"}
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, extra_special_tokens=names)
    config = _qwen3_asr_config(len(tokenizer), tokenizer.convert_tokens_to_ids(names["audio_token"]))
    torch.manual_seed(0)
    hf = _widened(AutoModelForMultimodalLM.from_config(config))
    hf.save_pretrained(tmp_path)
    Qwen3ASRProcessor(Qwen3ASRFeatureExtractor(feature_size=8), tokenizer).save_pretrained(tmp_path)
    processor = Qwen3ASRProcessor.from_pretrained(tmp_path)
    clip = read_wav(DATA / "speech16k.wav")
    prompts, audios = ["Say: <|audio_pad|> now", "Hi <|audio_pad|>"], [np.tile(clip, 3)[:88000], clip[:20000]]
    inputs = processor(text=prompts, audio=audios, sampling_rate=16000)
    assert tuple(inputs["input_features"].shape) == (2, 8, 600) and inputs["input_features_mask"].sum(-1).tolist() == [550, 125]
    assert (inputs["input_ids"] == config.audio_token_id).sum(-1).tolist() == [72, 17]  # 13 a chunk, 7 for 50 frames; 13 + 4
    expected = []
    for prompt, clip_ in zip(prompts, audios):
        one = processor(text=[prompt], audio=[clip_], sampling_rate=16000)
        with torch.no_grad():
            expected.append(hf.generate(**one, max_new_tokens=8, do_sample=False)[0, one["input_ids"].shape[1] :].tolist())
    _audio_decides(hf, one["input_ids"][0].tolist(), {k: one[k] for k in ("input_features", "input_features_mask")})  # the short one's
    assert QEFFCommonLoader.model_class(str(tmp_path)) is QEFFAutoModelForImageTextToText
    model = _both_layouts(tmp_path, inputs, expected, prefill_seq_len=32, ctx_len=128)
    with pytest.raises(ValueError, match=r"input_features must be \[audios, 8, frames\], frames a multiple of 100"):
        model.generate(inputs={**inputs, "input_features": inputs["input_features"][..., :550]}, generation_len=4, stream=False)
    holes = inputs["input_features_mask"].clone()
    holes[0, 10] = 0  # not a prefix: the graph's windows and the prompt's audio tokens would disagree
    with pytest.raises(ValueError, match="input_features_mask must be the processor's: 1 for each audio's frames, then 0"):
        model.generate(inputs={**inputs, "input_features_mask": holes}, generation_len=4, stream=False)


def test_vibevoice_asr_raw_audio_is_transformers(tmp_path, tokenizer_dir):
    """VibeVoice ASR through its real processor (the local tokenizer with its audio tokens): 3 s and 1.2 s of the test
    clip read as 24 kHz samples, padded to whole hops of 3200 (23 and 9 audio tokens), through its acoustic and semantic
    causal convolutional tokenizers, Qwen2 text; greedy tokens equal transformers' without its latent noise
    (``sample=False``) on each recording alone, in both layouts."""
    from transformers import AutoModelForMultimodalLM, AutoTokenizer, VibeVoiceAcousticTokenizerFeatureExtractor, VibeVoiceAsrProcessor

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|box_start|>", "<|object_ref_start|>", "<|object_ref_end|>"]})
    ids = tokenizer.convert_tokens_to_ids
    names = ("<|box_start|>", "<|object_ref_start|>", "<|object_ref_end|>")
    config = _vibevoice_asr_config(len(tokenizer), *(ids(name) for name in names))
    torch.manual_seed(0)
    hf = _widened(AutoModelForMultimodalLM.from_config(config))
    hf.save_pretrained(tmp_path)
    VibeVoiceAsrProcessor(VibeVoiceAcousticTokenizerFeatureExtractor(), tokenizer).save_pretrained(tmp_path)
    processor = VibeVoiceAsrProcessor.from_pretrained(tmp_path)
    clip = read_wav(DATA / "speech16k.wav")
    prompts, audios = ["Say: <|box_start|> now", "Hi <|box_start|>"], [np.tile(clip, 2)[:72000], clip[:28800]]
    inputs = processor(text=prompts, audio=audios, return_tensors="pt")
    assert (inputs["input_ids"] == config.audio_token_id).sum(-1).tolist() == [23, 9]
    expected = []
    for prompt, audio in zip(prompts, audios):
        one = processor(text=[prompt], audio=[audio], return_tensors="pt")
        with torch.no_grad():
            expected.append(hf.generate(**one, sample=False, max_new_tokens=8, do_sample=False)[0, one["input_ids"].shape[1] :].tolist())
    audio = {"input_values": one["input_values"], "padding_mask": one["padding_mask"], "sample": False}
    _audio_decides(hf, one["input_ids"][0].tolist(), audio, key="input_values")  # the short one's
    assert QEFFCommonLoader.model_class(str(tmp_path)) is QEFFAutoModelForImageTextToText
    model = _both_layouts(tmp_path, inputs, expected, prefill_seq_len=32, ctx_len=128)
    with pytest.raises(ValueError, match=r"input_values must hold a whole number of the tokenizers' hops \(3200 samples\)"):
        cut = {"input_values": inputs["input_values"][..., :-5], "padding_mask": inputs["padding_mask"][:, :-5]}
        model.generate(inputs={**inputs, **cut}, generation_len=4, stream=False)
