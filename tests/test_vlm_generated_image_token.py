"""An image token the model generates is embedded as text, with the id HF uses: no image is given at decode, so HF
embeds the token itself (Mistral Large 4), the padding token (Gemma 4) or id 0 (Kimi K2.5). The graph used to take it
for an image placeholder. Likewise a visual indicator Ovis2 generates keeps its text embedding (HF gives the indicator
rows only in steps given images). Each case is a tiny model and prompt whose greedy tokens contain such a token, and
whose later tokens change when it is embedded otherwise."""

from __future__ import annotations

import pytest
from transformers import AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests.image_text_sweep import BUILDERS, hf_greedy, image

N = 8
CASES = {  # model type -> (prompt, image seed)
    "mistral_large4": ("Look: [IMG] Describe the picture in a few words", None),
    "gemma4": ("Look: <|image|> Tell me about this", 0),
    "kimi_k25": ("Look: <|media_pad|> Name it briefly", 0),
    "ovis2": ("Look: <image> Tell me about this the picture in a few words", 0),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory):
    model_type = request.param
    folder = BUILDERS[model_type][0](tmp_path_factory.mktemp(model_type))
    processor = AutoProcessor.from_pretrained(folder)
    prompt, seed = CASES[model_type]
    img = image(2, (30, 30)) if seed is None else image(seed)
    inputs = processor(images=img, text=prompt, return_tensors="pt")
    ref = hf_greedy(folder, inputs, N)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder)
    generated = getattr(model.config, "visual_indicator_token_ids", None) or [model.lang_model.image_token_id]
    assert set(generated) & set(ref[:-1])
    return folder, inputs, ref


@pytest.mark.parametrize("kv_offload", [True, False])
def test_a_generated_image_token_is_embedded_as_in_hf(case, kv_offload):
    folder, inputs, ref = case
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=5, ctx_len=96, num_cores=1)
    assert model.generate(inputs=inputs, generation_len=N, stream=False).generated_ids[0][0][:N].tolist() == ref
