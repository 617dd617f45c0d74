"""Speech encoder-decoders other than Whisper (QEFFAutoModelForSpeechEncoderDecoder): tiny random Moonshine, Moonshine
Streaming, Speech2Text, SpeechT5, Canary, Cohere ASR and transformers' SpeechEncoderDecoderModel (HuBERT + GPT-2,
Wav2Vec2 + mBART, Wav2Vec2 + BERT) models give the tokens of transformers' ``generate``, greedy and with beams, on padded
audio that spans two compiled batches; a processor's decoder prompt, the loaders, the spellings, ``infer --audio_path``
against transformers' pipeline, the server and the errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    CanaryConfig,
    CanaryForConditionalGeneration,
    CohereAsrConfig,
    CohereAsrForConditionalGeneration,
    GPT2Config,
    HubertConfig,
    MBartConfig,
    MoonshineConfig,
    MoonshineForConditionalGeneration,
    MoonshineStreamingConfig,
    MoonshineStreamingForConditionalGeneration,
    SeamlessM4TConfig,
    SeamlessM4TForSpeechToText,
    SeamlessM4Tv2Config,
    SeamlessM4Tv2ForSpeechToText,
    Speech2TextConfig,
    Speech2TextForConditionalGeneration,
    SpeechEncoderDecoderConfig,
    SpeechEncoderDecoderModel,
    SpeechT5Config,
    SpeechT5ForSpeechToText,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Processor,
    pipeline,
)

from QEfficient import QEFFAutoModelForSpeechEncoderDecoder, QEFFAutoModelForSpeechSeq2Seq
from QEfficient.base.common import QEFFCommonLoader
from tests.test_ctranslate2_whisper import DATA, read_wav

VOCAB = 320  # the local tokenizer's
TOKENS = dict(pad_token_id=1, bos_token_id=0, eos_token_id=2)
START = dict(decoder_start_token_id=0, **TOKENS)
WAV2VEC2 = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, conv_dim=(16, 16), conv_stride=(5, 4),
    conv_kernel=(10, 4), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, feat_extract_norm="layer", do_stable_layer_norm=True,
)  # fmt: skip
PARAKEET = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, num_mel_bins=16, subsampling_conv_channels=8,
    conv_kernel_size=3, dropout=0.0, layerdrop=0.0, activation_dropout=0.0, attention_dropout=0.0,
)  # fmt: skip
PROMPTED_DECODER = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, head_dim=8,
    max_position_embeddings=64, **TOKENS,
)  # fmt: skip
DECODERS = {
    # narrower than the encoder: the model's projection between them; untied: a random model's tokens then vary
    "bert": lambda: BertConfig(
        vocab_size=VOCAB, hidden_size=24, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, max_position_embeddings=64,
        is_decoder=True, add_cross_attention=True, tie_word_embeddings=False, **TOKENS,
    ),
    "gpt2": lambda: GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, is_decoder=True, add_cross_attention=True, **TOKENS
    ),
    "mbart": lambda: MBartConfig(
        vocab_size=VOCAB, d_model=32, decoder_layers=2, encoder_layers=2, decoder_attention_heads=4, encoder_attention_heads=4,
        decoder_ffn_dim=37, encoder_ffn_dim=37, max_position_embeddings=64, is_decoder=True, add_cross_attention=True, **TOKENS,
    ),
}  # fmt: skip
MODELS = {
    # heads of 9 padded to 16, as Moonshine's checkpoints pad theirs (pad_head_dim_to_multiple_of)
    "moonshine": lambda: MoonshineForConditionalGeneration(
        MoonshineConfig(
            vocab_size=VOCAB, hidden_size=36, intermediate_size=37, pad_head_dim_to_multiple_of=8, encoder_num_hidden_layers=2,
            decoder_num_hidden_layers=2, encoder_num_attention_heads=4, decoder_num_attention_heads=4, max_position_embeddings=64,
            **START,
        )
    ),
    # per-layer bands of frames in the encoder (16 back, 4 or 0 ahead), frames compressed by asinh
    "moonshine_streaming": lambda: MoonshineStreamingForConditionalGeneration(
        MoonshineStreamingConfig(
            encoder_config=dict(
                hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, head_dim=8,
                sliding_windows=[[16, 4], [16, 0]],
            ),
            vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
            head_dim=8, max_position_embeddings=64, **START,
        )
    ),
    # a 16-bin filter bank; untied, unscaled embeddings: a random model's tokens then vary
    "speech_to_text": lambda: Speech2TextForConditionalGeneration(
        Speech2TextConfig(
            vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
            encoder_ffn_dim=37, decoder_ffn_dim=37, input_feat_per_channel=16, input_channels=1, conv_channels=16,
            conv_kernel_sizes=[5, 5], max_source_positions=100, max_target_positions=64, tie_word_embeddings=False,
            scale_embedding=False, **START,
        )
    ),
    # SpeechT5's speech-to-text head: Wav2Vec2's feature encoder, relative positions, a text decoder with its prenet
    "speecht5": lambda: SpeechT5ForSpeechToText(
        SpeechT5Config(
            vocab_size=VOCAB, hidden_size=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
            encoder_ffn_dim=37, decoder_ffn_dim=37, conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2, max_text_positions=64, tie_word_embeddings=False, **START,
        )
    ),
    # Parakeet's FastConformer encoder (16 mel bins, 8x subsampling) with a decoder of its own (Cohere ASR's projects the
    # encoder's states first); their processors give a decoder prompt
    "canary": lambda: CanaryForConditionalGeneration(
        CanaryConfig(encoder_config=PARAKEET, decoder_config=PROMPTED_DECODER, vocab_size=VOCAB, **START)
    ),
    "cohere_asr": lambda: CohereAsrForConditionalGeneration(
        CohereAsrConfig(encoder_config=PARAKEET, **{**PROMPTED_DECODER, **START})  # its decoder's settings are its own
    ),
    # w2v-BERT's conformer over stacked log-mel frames, an adaptor that subsamples by 2, an NLLB-style text decoder (v2: its
    # encoder's chunk mask, which transformers' eager attention misreads, as its default attention reads it)
    **{
        name: (
            lambda model_class=model_class, config_class=config_class: model_class(
                config_class(
                    vocab_size=VOCAB, hidden_size=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                    decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, speech_encoder_layers=2,
                    speech_encoder_attention_heads=4, speech_encoder_intermediate_size=37, feature_projection_input_dim=16,
                    num_adapter_layers=1, adaptor_kernel_size=4, adaptor_stride=2, conv_depthwise_kernel_size=3,
                    max_position_embeddings=64, t2u_encoder_layers=1, t2u_decoder_layers=1, t2u_vocab_size=16, unit_embed_dim=16,
                    upsample_initial_channel=16, tie_word_embeddings=False, scale_embedding=False, **START,
                )
            )
        )
        for name, model_class, config_class in (
            ("seamless_m4t", SeamlessM4TForSpeechToText, SeamlessM4TConfig),
            ("seamless_m4t_v2", SeamlessM4Tv2ForSpeechToText, SeamlessM4Tv2Config),
        )
    },  # fmt: skip
    "hubert-gpt2": lambda: _paired(HubertConfig(**WAV2VEC2), DECODERS["gpt2"]()),
    "wav2vec2-mbart": lambda: _paired(Wav2Vec2Config(**WAV2VEC2), DECODERS["mbart"]()),
    # wav2vec2-base's layout: group norm in the feature encoder, post-norm layers
    "wav2vec2-bert": lambda: _paired(
        Wav2Vec2Config(**{**WAV2VEC2, "feat_extract_norm": "group", "do_stable_layer_norm": False}), DECODERS["bert"]()
    ),
}  # fmt: skip


def _paired(encoder, decoder) -> SpeechEncoderDecoderModel:
    config = SpeechEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 0, 1, 2
    return SpeechEncoderDecoderModel(config)


@pytest.fixture(scope="module")
def speech_models(tmp_path_factory, tokenizer_dir):
    """Factory: name -> (folder, transformers model); weights drawn wide (std 0.3) so that greedy tokens vary; a
    Moonshine folder also has its processor (Wav2Vec2's feature extractor and the local tokenizer)."""
    made = {}

    def make(name: str):
        if name not in made:
            torch.manual_seed(0)
            model = MODELS[name]().eval()
            with torch.no_grad():
                for key, weight in model.named_parameters():
                    if "norm" not in key and weight.dim() > 1:
                        weight.normal_(0, 0.3)
            model.generation_config.update(**START)
            if name == "seamless_m4t":  # its target languages' decoder tokens, as its checkpoints' generation config maps them
                model.generation_config.text_decoder_lang_to_code_id = {"eng": 17, "fra": 42}
            folder = tmp_path_factory.mktemp(name)
            model.save_pretrained(folder)
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
            if name == "moonshine":
                Wav2Vec2Processor(Wav2Vec2FeatureExtractor(return_attention_mask=True), tokenizer).save_pretrained(folder)
            else:
                tokenizer.save_pretrained(folder)
            made[name] = folder, model
        return made[name]

    return make


def _audio(model) -> dict[str, torch.Tensor]:
    """Three recordings (filter banks for Speech2Text), the second padded after two thirds, as a processor pads it."""
    generator = torch.Generator().manual_seed(3)
    if model.config.model_type in ("speech_to_text", "canary", "cohere_asr", "seamless_m4t", "seamless_m4t_v2"):  # 16-bin filter banks
        audio, name = torch.randn(3, 60, 16, generator=generator), "input_features"
    else:
        audio, name = torch.randn(3, 6000, generator=generator), "input_values"
    mask = torch.ones(audio.shape[:2], dtype=torch.int64)
    mask[1, 2 * audio.shape[1] // 3 :], audio[1, 2 * audio.shape[1] // 3 :] = 0, 0
    return {name: audio, "attention_mask": mask}


def _rows(info) -> list[list[int]]:
    return [row.tolist() for batch in info.generated_ids for row in batch]


@pytest.mark.parametrize("name", list(MODELS))
def test_tokens_are_transformers(speech_models, name):
    """Three recordings on batch_size=2: greedy and 3-beam tokens equal transformers' generate; without its mask the
    padded one's tokens change, as transformers' do (the encoder's subsampled mask reaches the cross-attention)."""
    folder, hf = speech_models(name)
    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
    assert isinstance(model, QEFFAutoModelForSpeechEncoderDecoder)
    model.compile(ctx_len=32, batch_size=2, num_cores=1)
    inputs = _audio(hf)
    unmasked = {**inputs, "attention_mask": torch.ones_like(inputs["attention_mask"])}
    for options, audio in (({"num_beams": 1}, inputs), ({"num_beams": 3}, inputs), ({"num_beams": 1}, unmasked)):
        with torch.no_grad():
            expected = hf.generate(**audio, max_new_tokens=12, do_sample=False, **options).tolist()
        rows = _rows(model.generate(audio, 12, **options))
        assert [row[: len(want)] for row, want in zip(rows, expected)] == expected, options
        assert len({tuple(row[1:]) for row in rows}) > 1  # not degenerate: the audio decides the tokens
        if audio is inputs and options["num_beams"] == 1:
            masked = rows[1]
    assert rows[1] != masked
    info = model.generate(inputs, 12)  # the texts: the checkpoint's tokenizer's
    assert info.texts == AutoTokenizer.from_pretrained(folder).batch_decode(_rows(info), skip_special_tokens=True)


@pytest.mark.parametrize("name", ["canary", "cohere_asr"])
def test_a_processors_decoder_prompt_is_transformers(speech_models, name):
    """Canary's and Cohere ASR's processors give a decoder prompt (task and language tokens, here made by hand) with the
    features: it starts the sequence as in transformers' generate, greedy and with beams."""
    folder, hf = speech_models(name)
    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
    model.compile(ctx_len=32, batch_size=2, num_cores=1)
    inputs = {**_audio(hf), "decoder_input_ids": torch.tensor([[0, 5, 17, 42]] * 3)}
    for options in ({"num_beams": 1}, {"num_beams": 3}):
        with torch.no_grad():
            expected = hf.generate(**inputs, max_new_tokens=8, do_sample=False, **options).tolist()
        rows = _rows(model.generate(inputs, 8, **options))
        assert [row[: len(want)] for row, want in zip(rows, expected)] == expected, options
        assert all(row[:4] == [0, 5, 17, 42] for row in rows)


def test_seamless_target_language_is_transformers(speech_models):
    """SeamlessM4T's ``tgt_lang``: its language token after the start token, as its generate puts it; an unknown one
    and a model without target languages are refused."""
    folder, hf = speech_models("seamless_m4t")
    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
    model.compile(ctx_len=32, batch_size=2, num_cores=1)
    inputs = _audio(hf)
    with torch.no_grad():
        expected = hf.generate(**inputs, tgt_lang="fra", max_new_tokens=8, do_sample=False).tolist()
    rows = _rows(model.generate(inputs, 8, tgt_lang="__fra__"))
    assert [row[: len(want)] for row, want in zip(rows, expected)] == expected and rows[0][:2] == [0, 42]
    with pytest.raises(ValueError, match=r"tgt_lang='deu' is not supported by this model: use one of \['eng', 'fra'\]"):
        model.generate(inputs, 8, tgt_lang="deu")


def test_spellings_loaders_and_the_pipeline(speech_models, tmp_path, capsys):
    """transformers' ``generate(input_values, attention_mask=..., max_new_tokens=...)`` and ``generate(**inputs)``;
    QEFFCommonLoader picks this class; ``infer --audio_path`` transcribes a WAV file as transformers' pipeline does."""
    from QEfficient.cloud import infer

    folder, hf = speech_models("moonshine")
    assert QEFFCommonLoader.model_class(str(folder)) is QEFFAutoModelForSpeechEncoderDecoder
    model = QEFFAutoModelForSpeechEncoderDecoder.from_pretrained(folder)
    model.compile(ctx_len=32, num_cores=1)
    inputs = _audio(hf)
    with torch.no_grad():
        expected = hf.generate(**inputs, max_new_tokens=8, do_sample=False).tolist()
    assert _rows(model.generate(inputs["input_values"], attention_mask=inputs["attention_mask"], max_new_tokens=8)) == expected
    assert _rows(model.generate(**inputs, max_new_tokens=8)) == expected
    processor = Wav2Vec2Processor.from_pretrained(folder)
    one = {"input_values": inputs["input_values"][0].numpy(), "attention_mask": inputs["attention_mask"][0].numpy()}  # 1-D
    info = model.generate(processor, one, max_new_tokens=8)  # a CTC model's spelling: the processor first
    assert _rows(info) == expected[:1] and info.texts == processor.batch_decode(expected[:1], skip_special_tokens=True)
    assert _rows(model.generate(processor, inputs=inputs, generation_len=8)) == expected
    asr = pipeline("automatic-speech-recognition", model=hf, tokenizer=processor.tokenizer, feature_extractor=processor.feature_extractor)
    want = asr(read_wav(DATA / "speech16k.wav"), generate_kwargs={"max_new_tokens": 20, "num_beams": 1})["text"]  # greedy
    texts = infer.main(model_name=str(folder), audio_path=str(DATA / "speech16k.wav"), generation_len=20, ctx_len=32, num_cores=1).texts
    assert texts == [want]
    assert f"Transcription : {want}" in capsys.readouterr().out


def test_bad_inputs_say_what_to_pass(speech_models):
    folder, hf = speech_models("moonshine")
    model = QEFFAutoModelForSpeechEncoderDecoder.from_pretrained(folder)
    with pytest.raises(ValueError, match="ctx_len .* exceeds the model's max_position_embeddings"):
        model.compile(ctx_len=65, num_cores=1)
    model.compile(ctx_len=32, num_cores=1)
    with pytest.raises(ValueError, match="reads audio, not prompts"):
        model.generate(AutoTokenizer.from_pretrained(folder), ["hello"])
    with pytest.raises(ValueError, match=r"input_values must be \[batch, samples\]"):
        model.generate(np.zeros((1, 2, 4000), np.float32))
    with pytest.raises(ValueError, match="input_values must be floats .* got int16"):
        model.generate(np.zeros(4000, np.int16))
    with pytest.raises(ValueError, match="recordings of different lengths; pad them with the processor"):
        model.generate([np.zeros(4000, np.float32), np.zeros(3000, np.float32)])
    with pytest.raises(ValueError, match="attention_mask was given without the audio"):
        model.generate(attention_mask=np.ones((1, 4000)))
    with pytest.raises(ValueError, match="processor= or tokenizer="):
        model.generate(
            np.zeros(4000, np.float32), processor=AutoTokenizer.from_pretrained(folder), tokenizer=AutoTokenizer.from_pretrained(folder)
        )
    with pytest.raises(ValueError, match="too short: 800 samples; Moonshine's encoder reads 895"):
        model.generate(np.zeros(800, np.float32))
    with pytest.raises(ValueError, match=r"attention_mask must be \[batch, samples\] \[1, 4000\]"):
        model.generate({"input_values": np.zeros((1, 4000), np.float32), "attention_mask": np.ones((1, 3000))})
    with pytest.raises(ValueError, match=r"\['language'\]: Whisper's options"):
        model.transcribe(np.zeros(4000, np.float32), Wav2Vec2Processor.from_pretrained(folder), language="en")
    folder, hf = speech_models("speech_to_text")
    model = QEFFAutoModelForSpeechEncoderDecoder.from_pretrained(folder)
    with pytest.raises(ValueError, match=r"ctx_len \(65\) exceeds the model's max_target_positions \(64\)"):
        model.compile(ctx_len=65, num_cores=1)
    model.compile(ctx_len=32, num_cores=1)
    with pytest.raises(ValueError, match=r"input_features must be \[batch, frames, 16\]"):
        model.generate(np.zeros((1, 60, 80), np.float32))
    longest = np.random.default_rng(0).standard_normal((1, 400, 16)).astype(np.float32)  # 100 frames: the table's last row
    with torch.no_grad():
        assert _rows(model.generate(longest, 8)) == hf.generate(input_features=torch.from_numpy(longest), max_new_tokens=8).tolist()
    with pytest.raises(ValueError, match="too long: 401 frames; the encoder's position table reads 400 at most"):
        model.generate(np.zeros((1, 401, 16), np.float32))
    with pytest.raises(TypeError, match="QEFFAutoModelForSpeechEncoderDecoder"):
        QEFFAutoModelForSpeechSeq2Seq(hf)
    unsupported = folder.parent / "kyutai_speech_to_text"  # an audio-LLM of transformers' speech auto class: refused before its weights
    unsupported.mkdir()
    (unsupported / "config.json").write_text(json.dumps({"model_type": "kyutai_speech_to_text"}))
    with pytest.raises(NotImplementedError, match="'kyutai_speech_to_text' is not supported .* whisper, moonshine, .*, voxtral"):
        QEFFAutoModelForSpeechSeq2Seq.from_pretrained(unsupported)
    folder, hf = speech_models("speecht5")
    model = QEFFAutoModelForSpeechEncoderDecoder.from_pretrained(folder)
    with pytest.raises(ValueError, match=r"ctx_len \(65\) exceeds the model's max_text_positions \(64\)"):
        model.compile(ctx_len=65, num_cores=1)
    folder, hf = speech_models("moonshine_streaming")
    model = QEFFAutoModelForSpeechEncoderDecoder.from_pretrained(folder)
    model.compile(ctx_len=32, num_cores=1)
    with pytest.raises(ValueError, match="reads whole 80-sample frames: pad the audio to a multiple of 80"):
        model.generate(np.zeros(4001, np.float32))
    tts = folder.parent / "speecht5-tts"  # SpeechT5's type also names its text-to-speech model: refused before its weights
    tts.mkdir()
    (tts / "config.json").write_text(json.dumps({"model_type": "speecht5", "architectures": ["SpeechT5ForTextToSpeech"]}))
    with pytest.raises(NotImplementedError, match=r"\(speecht5: SpeechT5ForTextToSpeech\) is not a speech-to-text encoder-decoder"):
        QEFFAutoModelForSpeechSeq2Seq.from_pretrained(tts)
    with pytest.raises(NotImplementedError, match="'data2vec-audio' encoder .* QEFF_ALLOW_ANY_ARCHITECTURE=1"):
        from transformers import Data2VecAudioConfig

        QEFFAutoModelForSpeechEncoderDecoder(_paired(Data2VecAudioConfig(**WAV2VEC2), DECODERS["gpt2"]()))


def test_server_transcribes_and_streams(speech_models, tmp_path):
    """``serve`` on a Moonshine folder whose generation config asks for 3 beams: /v1/audio/transcriptions answers the
    text of transformers' greedy generate, as long as Moonshine's model card bounds it (6.5 tokens a second; the
    checkpoint names no length), streams it token by token as vLLM does (the deltas add up to it; usage counts the
    encoder's frames and the generated tokens), and refuses times, Whisper's options and translations."""
    import shutil

    from QEfficient.cloud.serve import build_from_args
    from QEfficient.cloud.serve_args import parse_args
    from tests.helpers import serve_on_loopback
    from tests.test_server_ctc import transcribe, wav

    source, hf = speech_models("moonshine")
    folder = shutil.copytree(source, tmp_path / "moonshine-beams")
    settings = json.loads((folder / "generation_config.json").read_text())
    (folder / "generation_config.json").write_text(json.dumps({**settings, "num_beams": 3}))
    processor = Wav2Vec2Processor.from_pretrained(folder)
    clip = np.round(read_wav(DATA / "speech16k.wav")[:48000] * 32767) / 32767  # 3 s, as 16 bits hold them
    inputs = processor(clip, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        ids = hf.generate(**inputs, do_sample=False, num_beams=1, max_length=int(3 * 6.5))[0]
    expected = processor.tokenizer.decode(ids, skip_special_tokens=True)
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--num_cores", "1", "--ctx_len", "64"]))
    with serve_on_loopback(app, log_level="critical") as url:
        answer = transcribe(url, wav(clip))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"text": expected}
        streamed = transcribe(url, wav(clip), stream="true", stream_include_usage="true")
        events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")]
        deltas = [e["choices"][0]["delta"]["content"] for e in events if e["choices"]]
        assert len(deltas) > 2 and "".join(deltas) == expected
        ended = int(ids[-1]) == hf.generation_config.eos_token_id
        assert events[-2]["choices"][0]["finish_reason"] == ("stop" if ended else "length")  # the bound ended it, or the end token
        frames = int(hf.get_encoder()._get_feat_extract_output_lengths(torch.tensor(len(clip))))
        assert events[-1]["usage"] == {"prompt_tokens": frames, "completion_tokens": len(ids) - 1, "total_tokens": frames + len(ids) - 1}
        for fields, word in (
            ({"response_format": "srt"}, "carry no times"),
            ({"language": "en"}, "language"),
            ({"temperature": "0.5"}, "greedily"),
        ):
            refused = transcribe(url, wav(clip), **fields)
            assert refused.status_code == 400 and word in refused.json()["error"]["message"], refused.text
        translated = transcribe(url, wav(clip), route="/v1/audio/translations")
        assert translated.status_code == 400 and "/v1/audio/transcriptions only" in translated.json()["error"]["message"]
        short = transcribe(url, wav(clip[:400]), stream="true")  # refused before its first token: a 400, not a 200 stream
        assert short.status_code == 400 and "too short: 400 samples" in short.json()["error"]["message"], short.text
    runner.stop()
