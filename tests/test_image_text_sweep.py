"""The image-text sweep (tests/image_text_sweep.py) as tests: the table in docs/architectures_image_text.md
covers transformers' whole image-text mapping and agrees with the adapter table; every adapter is proven
by a tiny model; unproven and unsupported types say so. The ``sweep`` part builds every tiny model and
compares greedy tokens with HF in both layouts (about 10 s a type)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from transformers import Gemma3nConfig, LlavaConfig, MllamaConfig
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

from QEfficient.transform.adapters import UnsupportedArchitectureError
from QEfficient.transform.adapters.sweep_status import PROVEN as PROVEN_DECODERS
from QEfficient.transform.vision_adapters import KNOWN_FAILURES, NEWER_TRANSFORMERS, VISION_ADAPTERS, WAITING_ON_DECODER, get_vision_adapter
from tests.image_text_sweep import BUILDERS, SAME_PATH_AS, check_type

DOC = Path(__file__).resolve().parents[1] / "docs" / "architectures_image_text.md"


def doc_rows() -> dict[str, str]:
    rows = re.findall(r"^\| ([\w.-]+) \| \S+ \| ([\w-]+) \|", DOC.read_text(), flags=re.M)
    return dict(rows)


# the types transformers 5.25 added, which the table (written under CI's 5.24) cannot list
NEWER_RELEASE_TYPES = {"llava_onevision1_5", "ovis2_5", "pi05"}


def test_the_table_covers_the_mapping_and_the_adapters():
    rows, mapping = doc_rows(), set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)
    assert set(rows) <= mapping and mapping - set(rows) <= NEWER_RELEASE_TYPES
    exact = {t for t, status in rows.items() if status == "token-exact"}
    runnable = {t for t in VISION_ADAPTERS if WAITING_ON_DECODER.get(t, "llama") in PROVEN_DECODERS}
    assert exact == runnable - set(NEWER_TRANSFORMERS), "rerun: PYTHONPATH=$PWD python scripts/image_text_sweep.py"
    assert set(NEWER_TRANSFORMERS) <= NEWER_RELEASE_TYPES and not set(NEWER_TRANSFORMERS) & set(rows)


def test_every_adapter_has_a_tiny_model():
    assert set(VISION_ADAPTERS) <= set(BUILDERS)


def test_types_without_a_builder_get_a_reason_without_building_anything():
    result = check_type("udop")
    assert result.status == "not-attempted" and "encoder-decoder" in result.note


def test_unsupported_and_unproven_types_say_why():
    with pytest.raises(UnsupportedArchitectureError, match="timm"):
        get_vision_adapter(Gemma3nConfig())
    assert get_vision_adapter(MllamaConfig()).cross_attention  # its cross-attention layers are supported now
    config = LlavaConfig()
    config.model_type = "llava_like_newcomer"  # Llava-shaped, not in the table
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        get_vision_adapter(config)
    assert any("not proven" in str(w.message) and "image_text_sweep.py --types llava_like_newcomer" in str(w.message) for w in caught)


@pytest.mark.sweep
# known failures raise their reason instead; a type whose path another one runs is left to the sweep script
@pytest.mark.parametrize("model_type", sorted(set(BUILDERS) - set(KNOWN_FAILURES) - set(SAME_PATH_AS)))
def test_sweep_type_is_token_exact_in_both_layouts(model_type, tmp_path):
    if model_type in NEWER_TRANSFORMERS and model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        import transformers

        pytest.skip(f"transformers {transformers.__version__} has no {model_type} (proven with {NEWER_TRANSFORMERS[model_type]})")
    if WAITING_ON_DECODER.get(model_type, "llama") not in PROVEN_DECODERS:
        pytest.skip(f"text model {WAITING_ON_DECODER[model_type]} is not in the decoder table yet")
    result = check_type(model_type, workdir=tmp_path)
    assert result.status == "token-exact", result.note


# the host-side rules these types added (each row's prompt length in the positions input: Unlimited OCR's reference
# sliding window; image blocks with their special tokens: Molmo 2) under continuous batching, rows of other lengths
@pytest.mark.parametrize("model_type", ["unlimited_ocr", "molmo2"])
def test_continuous_batching_keeps_the_host_rules(model_type, tmp_path):
    from transformers import AutoProcessor

    from QEfficient import QEFFAutoModelForImageTextToText
    from tests.image_text_sweep import hf_greedy, image

    build, prompt = BUILDERS[model_type]
    folder = build(tmp_path / model_type)
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=False, continuous_batching=True)
    model.compile(prefill_seq_len=7, ctx_len=160, full_batch_size=2, num_cores=1)
    images = [image(2, (30, 30)), image(3, (40, 50)), image(4, (50, 40))]
    prompts = [prompt, prompt.replace("Describe", "Name"), prompt.replace("a few", "many")]
    info = model.generate(processor=processor, images=images, prompts=prompts, generation_len=7, stream=False)
    for img, text, row in zip(images, prompts, info.generated_ids):
        ref = hf_greedy(folder, processor(images=[img], text=[text], return_tensors="pt"), 7)
        assert row[: len(ref)].tolist() == ref
