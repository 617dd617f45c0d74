"""An image token the model generates is embedded as text, with the id HF uses: no image is given at decode, so HF
embeds the token itself (Mistral Large 4), the padding token (Gemma 4) or id 0 (Kimi K2.5). The graph used to take it
for an image placeholder. Likewise, HF gives Ovis2's visual indicator rows only in a prefill with images, and
ERNIE-4.5-VL's vision experts to its image start and end and video tokens only in a prefill: generated, they are
text. Each case is a tiny model and prompt whose greedy tokens contain such a token, and whose later tokens change
when it is embedded otherwise."""

from __future__ import annotations

import pytest
from transformers import AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests.image_text_sweep import BUILDERS, hf_greedy, image

N = 10
CASES = {  # case -> (model type, prompt, image seed, image size, the config's name for the generated token ids)
    "mistral_large4": ("mistral_large4", "Look: [IMG] Describe the picture in a few words", 2, (30, 30), None),
    "gemma4": ("gemma4", "Look: <|image|> Tell me about this", 0, (40, 50), None),
    "kimi_k25": ("kimi_k25", "Look: <|media_pad|> Name it briefly", 0, (40, 50), None),
    "ovis2": ("ovis2", "Look: <image> Tell me about this the picture in a few words", 0, (40, 50), "visual_indicator_token_ids"),
    # ERNIE-4.5-VL: a generated image token goes to the text experts, and so do the other ids its processor sends to the
    # vision experts (image and video start and end tokens, the video token: here the model generates the video token)
    "ernie4_5_vl_moe": (
        "ernie4_5_vl_moe",
        "Look: <|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|> Describe the picture in a few words",
        0,
        (30, 30),
        None,
    ),
    "ernie4_5_vl_moe-video-token": (
        "ernie4_5_vl_moe",
        "Look: <|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|> Describe the picture in a few words",
        3,
        (40, 50),
        ("video_token_id",),
    ),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory):
    model_type, prompt, seed, size, generated = CASES[request.param]
    folder = BUILDERS[model_type][0](tmp_path_factory.mktemp(model_type))
    processor = AutoProcessor.from_pretrained(folder)
    inputs = processor(images=image(seed, size), text=prompt, return_tensors="pt")
    ref = hf_greedy(folder, inputs, N)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder)
    if generated is None:
        ids = {model.lang_model.image_token_id}
    elif isinstance(generated, str):
        ids = set(getattr(model.config, generated))
    else:
        ids = {getattr(model.config, name) for name in generated}
    assert ids & set(ref[:-1])
    return folder, inputs, ref


@pytest.mark.parametrize("kv_offload", [True, False])
def test_a_generated_image_token_is_embedded_as_in_hf(case, kv_offload):
    folder, inputs, ref = case
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=5, ctx_len=96, num_cores=1)
    assert model.generate(inputs=inputs, generation_len=N, stream=False).generated_ids[0][0][:N].tolist() == ref
