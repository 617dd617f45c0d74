"""The image-text sweep: every model type in transformers' ``MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES``,
a tiny random model where tests/vlm_fixtures.py can build one (weights and a processor made locally), and
greedy tokens compared with HF ``generate`` in both layouts (``kv_offload=True`` / ``False``).

Statuses: ``token-exact`` (both layouts equal HF), ``differs`` (a layout ran but its tokens differ),
``export-fails`` (from_pretrained / export / compile / generate raised), ``hf-fails`` (HF itself cannot
run the tiny model), ``no-local-processor`` (the processor needs something not installed here),
``not-attempted`` (no tiny builder yet; the note says what stands in the way).

Run it (and rewrite docs/architectures_image_text.md) with ``python scripts/image_text_sweep.py``.
"""

from __future__ import annotations

import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

from tests import (
    vlm_family_fixtures,
    vlm_family_fixtures_more,
    vlm_fixtures,
    vlm_fixtures_a,
    vlm_fixtures_b,
    vlm_fixtures_dsa,
    vlm_fixtures_ernie,
    vlm_fixtures_hybrid,
    vlm_fixtures_inkling,
    vlm_fixtures_late,
    vlm_fixtures_mllama,
    vlm_fixtures_positions,
    vlm_fixtures_rec,
)

STATUSES = ("token-exact", "differs", "export-fails", "hf-fails", "no-local-processor", "not-attempted")

# model_type -> (tiny builder, prompt with the image placeholder)
BUILDERS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "llava": (vlm_fixtures.build_llava, "Look: <image> Describe the picture in a few words"),
    "gemma3": (vlm_fixtures.build_gemma3, "Look: <start_of_image> Describe the picture in a few words"),
    "idefics3": (vlm_fixtures.build_idefics3, "Look: <image> Describe the picture in a few words"),
    "smolvlm": (vlm_fixtures.build_smolvlm, "Look: <image> Describe the picture in a few words"),
    "qwen2_vl": (vlm_fixtures.build_qwen2_vl, "Look: <|vision_start|><|image_pad|><|vision_end|> Describe the picture in a few words"),
    "qwen2_5_vl": (
        vlm_fixtures.build_qwen2_5_vl,
        "Look: <|vision_start|><|image_pad|><|vision_end|> Describe the picture in a few words",
    ),
}
_FAMILY_MODULES = (
    vlm_family_fixtures,
    vlm_family_fixtures_more,
    vlm_fixtures_rec,
    vlm_fixtures_a,
    vlm_fixtures_b,
    vlm_fixtures_mllama,
    vlm_fixtures_dsa,
    vlm_fixtures_late,
    vlm_fixtures_positions,  # models whose positions follow a rule of their own
    vlm_fixtures_hybrid,  # recurrent layers beside indexed sparse attention
    vlm_fixtures_inkling,
    vlm_fixtures_ernie,  # modality-isolated MoE experts
)
for _module in _FAMILY_MODULES:  # the families added with the sweep
    for _type, _prompt in _module.PROMPTS.items():
        BUILDERS[_type] = (getattr(_module, f"build_{_type.replace('-', '_').replace('.', '_')}"), _prompt)

# Types whose model path another swept type already runs (same adapter, same layers, another name): the
# sweep script checks them, the CI's parity tests skip them to keep the suite short.
SAME_PATH_AS: dict[str, str] = {
    "cosmos3_omni": "qwen3_vl",
    "glm46v": "glm4v",
    "glmga": "glm4v",
    "pp_chart2table": "got_ocr2",
    "llava_next_video": "llava_next",  # and its video path: tests/test_vlm_video_llava.py (images too)
    "qwen3_5_moe": "qwen3_5",  # the same adapter and Gated DeltaNet states; its MoE text layers: the decoder sweep
    "minicpm_ocr": "minicpmv4_6",  # the same adapter in "4x" mode (the window merger skipped)
    "qwen3_omni_moe_thinker": "qwen3_vl_moe",  # Qwen3-VL's adapter, tower and MoE text model; its own placeholder
    "video_llava": "llava",  # a CLIP tower and Llava's projector; with videos: tests/test_vlm_video_llava.py (images too)
}

# Greedy references other than HF ``generate``, where transformers' generate itself fails (the note says why).
REFERENCES: dict[str, tuple[Callable, str]] = {
    "llama4": (
        vlm_family_fixtures_more.llama4_greedy,
        "HF generate fails in transformers 5.24 (Llama4ForConditionalGeneration.forward reads image_outputs from the text "
        "model's output); reference: HF's modules, the steps of that forward before it fails",
    ),
}

VIDEO_NOTE = (
    "video too: frames in, token-exact in both layouts in tests/test_vlm_video_llava.py (its video processor needs "
    "torchvision, not installed: a PIL stand-in)"
)

# What a tiny model stands in for, where it is not the architecture's own processor or layout.
_TILING_STAND_IN = (
    "its image processor has only a torchvision backend (not installed): a stand-in that does what HF's does (torchvision's "
    "kernels written in torch); multi-tile proven (tests/test_vlm_multitile.py)"
)
CAVEATS: dict[str, str] = {
    "granite_docling": "the processor's default coarse route; its fine route (fine_route=True, four times the tokens per "
    "tile, chosen by the density router) is refused with that reason",
    "cohere2_vision": f"{_TILING_STAND_IN}: tiles + thumbnail",
    "llama4": f"{_TILING_STAND_IN}: tiles with their separators + the global tile",
    "llava_onevision": VIDEO_NOTE,
    "llava_next_video": VIDEO_NOTE,
    "video_llava": VIDEO_NOTE,
    "minimax_m3_vl": "its image processor has only a torchvision backend (not installed): Qwen2-VL's PIL one (the same "
    "algorithm, its sizes given) stands in; images only",
    "perception_lm": "its Perception Encoder tower is a timm model (timm not installed): a CLIP tower stands in; its image "
    "processor has only a torchvision backend (not installed): a PIL one-tile processor stands in",
    "qwen2_5_omni_thinker": "images only: no audio, and its processor's video half needs torchvision (not installed)",
    "qwen3_omni_moe_thinker": "images only: no audio, and its processor's video half needs torchvision (not installed)",
    "video_llama_3": "images only: its processor's video half needs torchvision (not installed)",
    "minicpmv4_7": "images only: its processor's video half needs torchvision (not installed)",
    "ernie4_5_vl_moe": "images only: its processor's video half needs torchvision (not installed); the vision experts' rows "
    "(image tokens and their start/end tokens) are read from the ids, so a generated start/end token goes to the vision "
    "experts where HF's generate sends every generated token to the text experts",
    "hunyuan_vl": "the image-index rotary axis counts a prompt's own images (HF's get_rope_index counts on across the "
    "prompts of a batch, so HF's batched generate differs from its one-prompt generate)",
    "gemma4_unified": "its image processor has only a torchvision backend (not installed): Gemma 4's PIL patcher at the merged "
    "patch size stands in (the same patches)",
    "mllama": "several images per prompt up to compile(max_num_images=N) (tests/test_vlm_mllama_multi.py)",
    "lfm2_vl": f"{_TILING_STAND_IN}: tiles + thumbnail; text model: a short-convolution layer (retained conv state) and an attention layer",
    "step3p7": "the global view only (local crops refused, as DeepSeek-OCR 2's); its image processor has only a "
    "torchvision backend (not installed): a stand-in with HF's size plan and torch's antialiased resize; its text model "
    "(step3p5: not a causal-LM class in transformers, so not in the decoder sweep) is proven here",
    "muse_glimmer": "images only; its image processor has only a torchvision backend (not installed): a PIL stand-in with "
    "HF's grid rule and Lanczos resize",
    "muse_spark": "images only (its audio tower is left out of image prompts); Muse Glimmer's PIL processor stand-in",
    "idefics": "several images per prompt up to compile(max_num_images=N), interleaved with text "
    "(tests/test_vlm_idefics_multi.py); IdeficsConfig names no image "
    "token: the tiny config carries image_token_id (a real checkpoint without it is refused, saying how to set it)",
    "unlimited_ocr": "the global view only (local crops refused, as DeepSeek-OCR 2's); its image processor has only a "
    "torchvision backend (not installed): a stand-in with torch's antialiased resize and HF's square padding; reference "
    "sliding-window attention checked past its window (2 here: the tokens differ with a plain window or full attention)",
    "molmo2": "images, one per prompt (HF makes every image token of a prompt one bidirectional block; here each image is "
    "its own); its image processor's resize and normalise need torchvision (not installed): HF's processor with those "
    "two calls done by torch; the config names no '<im_col>' id: the tiny one carries image_col_id",
    "glm5_next": "images only: its processor's video half needs torchvision (not installed); its pooled DSA indexer "
    "chooses 2 pools of 4 keys and the tail in the graph (any ctx_len), a shared layer reusing the choice; "
    "its text model (glm5_next_text: no causal-LM class in "
    "transformers, so not in the decoder sweep) is proven here",
    "hy_v4_vl": "images only: its processor's video half needs torchvision (not installed); its DSA indexer chooses 8 keys "
    "in the graph (any ctx_len, as hy_v4's); its text model (hy_v4_vl_text: no causal-LM class in transformers, so not in the decoder "
    "sweep) is proven here",
    "qwen4_exp": "ctx_len up to indexer_budget + indexer_compress_ratio - 1 (the text model's QSA limit, as the decoder "
    "sweep's qwen4_exp_text; 131 here); Per-Layer Embeddings (ple_layer_ids) refused",
    "inkling_mm_model": "images only (its audio tower is left out of image prompts); its image processor has only a "
    "torchvision backend (not installed): a PIL stand-in with HF's patch cut (no rescale_image_frac resize)",
    "inkling2": "its image processor has only a torchvision backend (not installed): a PIL stand-in (HF's -1 padding to "
    "whole tokens, one block per token)",
    "inkling2_loop": "Inkling 2's tower and PIL processor stand-in; its loop passes have KV caches and conv states of their own",
    "nemotron_h_omni": "images only; its image processor has only a torchvision backend (not installed): a PIL patcher "
    "with HF's grid rule stands in",
}

# Why a type without a builder has none yet, where it is something other than "not built yet".
NOTES: dict[str, str] = {
    "instructblipvideo": "video only; its processor needs torchvision",
    "evolla": "protein-text model, no images",
    "diffusion_gemma": "block diffusion, not autoregressive greedy decoding",
    "pi0": "robot-action model (flow matching), not text generation",
    "pi05": "robot-action model (flow matching), not text generation",
    "udop": "its processor needs word boxes (LayoutLMv3's OCR through pytesseract, not installed, or boxes given)",
}


@dataclass
class Result:
    model_type: str
    hf_class: str
    status: str
    two_graphs: str = ""
    one_graph: str = ""
    note: str = ""


def image(seed: int, size=(40, 50)) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8))


def record_prefill_logits(monkeypatch) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """(tokens, first-step logits) of each request the image-text continuous-batching engine prefills from now on, as
    the engine computed them."""
    from QEfficient.generation.image_text_batching import ImageTextBatchingEngine

    recorded: list[tuple[tuple[int, ...], np.ndarray]] = []
    prefill_request = ImageTextBatchingEngine._prefill_request

    def recording(engine, slot, request):
        logits = prefill_request(engine, slot, request)
        recorded.append((tuple(request.tokens), np.array(logits, np.float32).reshape(-1)))
        return logits

    monkeypatch.setattr(ImageTextBatchingEngine, "_prefill_request", recording)
    return recorded


def _short(exc: BaseException) -> str:
    line = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {line[:240]}"


def text_model_note(model_type: str) -> str:
    """What the decoder path says of this type's default text model (config only, no weights)."""
    from QEfficient.transform.adapters.sweep_status import PROVEN

    try:
        config = CONFIG_MAPPING[model_type]()
    except Exception as exc:  # noqa: BLE001 - some configs cannot be built without arguments
        return f"default config does not build ({_short(exc)})"
    text = getattr(config, "text_config", None)
    text_type = getattr(text, "model_type", None)
    if text_type is None:
        return "no separate text_config"
    if text_type not in PROVEN:
        return f"text model '{text_type}' is not proven by the decoder sweep"
    return f"text model '{text_type}' is proven by the decoder sweep; needs a vision adapter + tiny builder"


def hf_greedy(folder: Path, inputs, n: int) -> list[int]:
    hf, info = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    if info["missing_keys"]:  # random weights on every load: no reference to match
        raise RuntimeError(f"transformers leaves {len(info['missing_keys'])} weights uninitialised, e.g. {sorted(info['missing_keys'])[0]}")
    hf.eval()
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, max_new_tokens=n, pad_token_id=0)
    if hf.config.is_encoder_decoder:  # generate returns the decoder's tokens: its prompt, or the start token
        return out[0, inputs["decoder_input_ids"].shape[1] if "decoder_input_ids" in inputs else 1 :].tolist()
    return out[0, inputs["input_ids"].shape[1] :].tolist()


# types another class runs (QEFFAutoModelForImageTextToText.from_pretrained returns it), with tests of their own
OTHER_CLASS = {
    "vision-encoder-decoder": "tests/test_vision_seq2seq.py",
    "pix2struct": "tests/test_image_seq2seq.py",
    "florence2": "tests/test_image_seq2seq.py",
    "t5gemma2": "tests/test_image_seq2seq.py",
    "blip": "tests/test_image_seq2seq.py",
    "pp_formulanet": "tests/test_image_seq2seq.py",
}


def check_type(model_type: str, workdir: Path | None = None, n: int = 10, chunk: int = 5) -> Result:
    """Build the tiny model of ``model_type`` and compare greedy tokens with HF in both layouts."""
    from QEfficient import QEFFAutoModelForImageTextToText
    from QEfficient.transform.vision_adapters import KNOWN_FAILURES

    hf_class = MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES.get(model_type, "?")
    if model_type in OTHER_CLASS:  # run and checked by its own class's tests
        return Result(model_type, hf_class, "not-attempted", note=KNOWN_FAILURES[model_type])
    if model_type not in BUILDERS:
        note = "; ".join(filter(None, [NOTES.get(model_type), KNOWN_FAILURES.get(model_type) or text_model_note(model_type)]))
        return Result(model_type, hf_class, "not-attempted", note=note)
    builder, prompt = BUILDERS[model_type]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(workdir or tmp) / model_type
        try:
            vlm_fixtures.DRAW_ZERO_VECTORS = True
            builder(folder)
        except Exception as exc:  # noqa: BLE001 - HF cannot build the tiny model
            return Result(model_type, hf_class, "hf-fails", note=f"building the tiny model: {_short(exc)}")
        finally:
            vlm_fixtures.DRAW_ZERO_VECTORS = False
        try:
            processor = AutoProcessor.from_pretrained(folder)
            inputs = processor(images=image(1), text=prompt, return_tensors="pt")
        except Exception as exc:  # noqa: BLE001 - a processor that cannot be built or run here
            return Result(model_type, hf_class, "no-local-processor", note=_short(exc))
        reference, reference_note = REFERENCES.get(model_type, (hf_greedy, ""))
        try:
            ref = reference(folder, inputs, n)
        except Exception as exc:  # noqa: BLE001 - the sweep records every failure
            return Result(model_type, hf_class, "hf-fails", note=_short(exc))
        verdicts, notes = [], []
        for kv_offload in (True, False):
            try:
                model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
                model.compile(prefill_seq_len=chunk, ctx_len=max(96, 2 * inputs["input_ids"].shape[1] + n), num_cores=1)
                got = model.generate(inputs=inputs, generation_len=n, stream=False).generated_ids[0][0][: len(ref)].tolist()
                verdicts.append("exact" if got == ref else "differs")
                if got != ref:
                    notes.append(f"kv_offload={kv_offload}: {got} != HF {ref}")
            except Exception as exc:  # noqa: BLE001
                verdicts.append("fails")
                notes.append(f"kv_offload={kv_offload}: {_short(exc)}")
                traceback.print_exc()
    if "fails" in verdicts:
        status = "export-fails"
    elif "differs" in verdicts:
        status = "differs"
    else:
        status = "token-exact"
    return Result(
        model_type, hf_class, status, verdicts[0], verdicts[1], "; ".join(filter(None, [CAVEATS.get(model_type), reference_note, *notes]))
    )


def table(results: list[Result]) -> str:
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    ran = sum(r.status in ("token-exact", "differs", "export-fails") for r in results)
    lines = [
        "# Image-text architectures (the sweep)",
        "",
        "Written by `python scripts/image_text_sweep.py` (tests/image_text_sweep.py): every model type in transformers'",
        "`MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES`, a tiny random model with a locally built processor, greedy",
        "tokens of `QEFFAutoModelForImageTextToText` compared with HF `generate` in both layouts",
        "(two graphs: `kv_offload=True`; one graph: `kv_offload=False`). Continuous batching and `mxfp6_matmul` of the",
        'families of issue 16: docs/performance.md, "Named image-text families" (tests/test_vlm_named_families.py).',
        "",
        "transformers 5.25 adds three types, which this table (written under CI's 5.24) cannot list. With 5.25 installed,",
        "llava_onevision1_5 and ovis2_5 are token-exact in both layouts (`NEWER_TRANSFORMERS` in",
        "QEfficient/transform/vision_adapters/__init__.py; adapters vision_adapters/llava_onevision1_5.py and ovis2_5.py; the",
        "image features of both equal HF's for two images of different grids, tests/test_vlm_newer_transformers.py).",
        "pi05 is a robot-action model.",
        "",
        "Prompts without an image (checked once, 2026-12-03, both layouts against HF `generate`; tests/test_vlm_text_only.py",
        "keeps eight types', a batch mixing prompts with and without an image, Mllama batches, continuous batching): the graphs get",
        "vision inputs holding zero images, as HF skips its vision tower. Equal to HF for 77 types: apertus1p5, aria,",
        "aya_vision, chameleon, cohere2_vision, cohere_compass, cosmos3_edge, cosmos3_omni, deepseek_ocr2, deepseek_vl,",
        "deepseek_vl_hybrid, dots3_note, emu3, ernie4_5_vl_moe, exaone4_5, fuyu, gemma3, gemma4, gemma4_unified, glm46v,",
        "glm4v, glm4v_moe, glm5_next, glm_ocr, glmga, granite4_vision, granite_docling, hunyuan_vl, hy_v4_vl,",
        "hyperclovax_vision_v2, idefics, idefics2, idefics3, inkling2, inkling2_loop, inkling_mm_model, internvl, janus,",
        "kimi_k25, kosmos-2, lfm2_vl, lfm3_vl, lighton_ocr, llava, llava_next, llava_next_video, llava_onevision,",
        "minicpm_ocr, minicpmv4_6, minicpmv4_7, minimax_m3_vl, mistral3, mistral_large4, mllama, molmo2, muse_glimmer,",
        "muse_spark, nemotron_h_omni, ovis2, paddleocr_vl, perception_lm, qianfan_ocr, qwen2_5_omni_thinker, qwen2_5_vl,",
        "qwen2_vl, qwen3_5, qwen3_5_moe, qwen3_omni_moe_thinker, qwen3_vl, qwen3_vl_moe, qwen4_exp, smolvlm, step3p7,",
        "unlimited_ocr, video_llama_3, video_llava and vipllava; with transformers 5.25 also llava_onevision1_5 and ovis2_5.",
        "HF's own model or processor takes no prompt without an image for blip-2, got_ocr2, instructblip, kosmos-2.5, paligemma",
        "and pp_chart2table (pix2struct and vision-encoder-decoder run in other classes),",
        "and HF fails on the tiny llama4, mistral4 and shieldgemma2: here those run such prompts with nothing to check them",
        "against.",
        "As in HF's batched `generate`, Ovis2's and Ovis2.5's visual indicator tokens take the indicator embeddings only in",
        "the prefill of a call with images, and ERNIE-4.5-VL's image and video start and end tokens and its video token go",
        "to the vision experts in any prefill (its processor marks them by id); generated, both are text",
        "(tests/test_vlm_generated_image_token.py, tests/test_vlm_text_only.py).",
        "",
        f"{len(results)} types; HF ran {ran} tiny models; token-exact in both layouts: {counts['token-exact']} "
        f"({100 * counts['token-exact'] // max(ran, 1)} % of those HF ran). " + ", ".join(f"{s}: {c}" for s, c in counts.items()),
        "",
        "| model_type | HF class | status | two graphs | one graph | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        note = r.note.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r.model_type} | {r.hf_class} | {r.status} | {r.two_graphs} | {r.one_graph} | {note} |")
    return "\n".join(lines) + "\n"


def all_types() -> list[str]:
    return sorted(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)
