"""Image-text models whose text model carries recurrent state (LFM2's short convolutions; tests/vlm_fixtures_rec.py
for Qwen3.5's Gated DeltaNet and the rest): the conv/SSM states ride in the language graph after the KV cache, as
in the decoder graph, per cache row in a batch and per slot in continuous batching. Greedy tokens equal HF
``generate`` in both layouts; the sweep (tests/test_image_text_sweep.py) covers one prompt per type."""

from __future__ import annotations

import onnx
import pytest
from transformers import AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from QEfficient.export.graph_names import CONV_STATE, retained
from tests.image_text_sweep import hf_greedy, image
from tests.vlm_family_fixtures_more import PROMPTS, build_lfm2_vl


@pytest.fixture(scope="module")
def lfm2_vl_dir(tmp_path_factory):
    return build_lfm2_vl(tmp_path_factory.mktemp("lfm2_vl"))


def test_continuous_batching_with_a_conv_state_per_slot_matches_hf(lfm2_vl_dir):
    # one graph; three prompts, two slots: the third reuses a slot whose conv state another request left behind
    processor = AutoProcessor.from_pretrained(lfm2_vl_dir)
    model = QEFFAutoModelForImageTextToText.from_pretrained(lfm2_vl_dir, kv_offload=False, continuous_batching=True)
    model.compile(prefill_seq_len=5, ctx_len=96, full_batch_size=2, num_cores=1)
    graph = onnx.load(str(model.onnx_path), load_external_data=False).graph
    assert f"{CONV_STATE}.0" in {i.name for i in graph.input} and retained(f"{CONV_STATE}.0") in {o.name for o in graph.output}
    prompt = PROMPTS["lfm2_vl"]
    images = [image(2, (30, 30)), image(3, (64, 20)), image(4, (50, 40))]
    prompts = [prompt, prompt.replace("Describe", "Name"), prompt.replace("a few", "many")]
    info = model.generate(processor=processor, images=images, prompts=prompts, generation_len=6, stream=False)
    for img, text, row in zip(images, prompts, info.generated_ids):
        ref = hf_greedy(lfm2_vl_dir, processor(images=model.adapter.processor_images([img]), text=[text], return_tensors="pt"), 6)
        assert row[: len(ref)].tolist() == ref


def test_a_batch_of_prompts_of_different_lengths_matches_hf(lfm2_vl_dir):
    # two graphs; right-padded prefill chunks: padding leaves each row's conv state as its last real token left it
    processor = AutoProcessor.from_pretrained(lfm2_vl_dir)
    model = QEFFAutoModelForImageTextToText.from_pretrained(lfm2_vl_dir, kv_offload=True)
    model.compile(prefill_seq_len=5, ctx_len=96, batch_size=2, num_cores=1)
    images, prompts = [image(2, (30, 30)), image(3, (64, 20))], [PROMPTS["lfm2_vl"], "<image> Name it"]
    info = model.generate(processor=processor, images=images, prompts=prompts, generation_len=6, stream=False)
    for img, text, row in zip(images, prompts, info.generated_ids[0]):
        ref = hf_greedy(lfm2_vl_dir, processor(images=model.adapter.processor_images([img]), text=[text], return_tensors="pt"), 6)
        assert row[: len(ref)].tolist() == ref
