"""Continuous batching of the image-text types with a sparse-attention text model: Mistral Large 4 and Dots 3 Note
(DSA; tests/vlm_fixtures_b.py, tests/vlm_fixtures_dsa.py), Qwen4-Exp (Gated DeltaNet + QSA) and GLM-5.3-Flash
(Kimi delta attention + pooled DSA; tests/vlm_fixtures_hybrid.py). Three prompts of different lengths with images
of different sizes go through two slots, so the third reuses a slot whose KV cache, indexer keys and (for the
hybrids) recurrent states another request left behind; greedy tokens equal HF's one-prompt ``generate`` in both
layouts. The DSA indexers of Mistral Large 4, Dots 3 Note and GLM-5.3-Flash choose 8 keys in the graph (2 pools of
4 and the tail for GLM-5.3-Flash); ctx_len 96 stays inside Qwen4-Exp's context limit (131: tests/vlm_fixtures_hybrid.py)."""

from __future__ import annotations

import pytest
from transformers import AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests import vlm_fixtures_b, vlm_fixtures_dsa, vlm_fixtures_hybrid
from tests.image_text_sweep import hf_greedy, image

N = 6
MODULES = {
    "mistral_large4": vlm_fixtures_b,
    "dots3_note": vlm_fixtures_dsa,
    "qwen4_exp": vlm_fixtures_hybrid,
    "glm5_next": vlm_fixtures_hybrid,
}
IMAGES = [image(2, (30, 30)), image(3, (64, 20)), image(4, (50, 40))]


@pytest.fixture(scope="module", params=sorted(MODULES))
def built(request, tmp_path_factory):
    module = MODULES[request.param]
    folder = getattr(module, f"build_{request.param}")(tmp_path_factory.mktemp(request.param))
    prompt = module.PROMPTS[request.param]
    prompts = [prompt, prompt.replace("Describe", "Name"), prompt.replace("in a few words", "briefly")]
    processor = AutoProcessor.from_pretrained(folder)
    # HF's references once per type, shared by both layouts
    refs = [hf_greedy(folder, processor(images=[img], text=[text], return_tensors="pt"), N) for img, text in zip(IMAGES, prompts)]
    return folder, processor, prompts, refs


@pytest.mark.parametrize("kv_offload", [True, False])
def test_continuous_batching_reuses_slots_and_matches_hf(built, kv_offload):
    folder, processor, prompts, refs = built
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload, continuous_batching=True)
    model.compile(prefill_seq_len=5, ctx_len=96, full_batch_size=2, num_cores=1)
    info = model.generate(processor=processor, images=IMAGES, prompts=prompts, generation_len=N, stream=False)
    assert [row[: len(ref)].tolist() for row, ref in zip(info.generated_ids, refs)] == refs


def test_glm5_next_without_the_tail_pool_is_refused(tmp_path):
    model = QEFFAutoModelForImageTextToText.from_pretrained(vlm_fixtures_hybrid.build_glm5_next(tmp_path))
    model.lang_model.config.index_kpool_always_select_tail = False
    reason = r"not supported: index_kpool_always_select_tail=False \(the indexer leaves out each query's incomplete pool\)\.$"
    with pytest.raises(ValueError, match=reason):
        model.compile(prefill_seq_len=5, ctx_len=96, num_cores=1)
