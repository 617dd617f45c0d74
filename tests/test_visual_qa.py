"""QEFFAutoModelForVisualQuestionAnswering: ViLT's question answering and image-text retrieval heads as tiny random models
(weights widened so that the image and the question decide), equal to transformers within 1e-4 for images of sizes other
than the config's (the position table resized to each patch grid) and other than the export's; a processor's padded
batch runs image by image, each equal to transformers on that image alone; BLIP's generative heads, and images with more
patches than a max_image_length that transformers would sample at random, are refused saying why."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForVisualQuestionAnswering,
    BertTokenizerFast,
    ViltConfig,
    ViltForImageAndTextRetrieval,
    ViltForQuestionAnswering,
    ViltImageProcessor,
    ViltProcessor,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_VISUAL_QUESTION_ANSWERING_MAPPING_NAMES

from QEfficient import QEFFAutoModelForVisualQuestionAnswering
from QEfficient.transform.visual_qa import UNSUPPORTED_VISUAL_QA
from tests.helpers import widen_weights

TINY = dict(
    vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, image_size=64,
    patch_size=16, max_position_embeddings=40, num_labels=5,
)  # fmt: skip


def tiny(head=ViltForQuestionAnswering, **extra):
    torch.manual_seed(0)
    model = head(ViltConfig(**TINY, **extra)).eval()
    widen_weights(model)
    return model


def _pairs(images: int, height: int, width: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(height * width + images)
    ids = torch.randint(5, 120, (images, 7), generator=generator)
    mask = torch.ones_like(ids)
    mask[-1, 5:] = 0
    pixels = torch.rand(images, 3, height, width, generator=generator)
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids), "pixel_values": pixels}


def test_every_visual_qa_type_runs_or_is_refused():
    assert set(MODEL_FOR_VISUAL_QUESTION_ANSWERING_MAPPING_NAMES) == {"vilt"} | set(UNSUPPORTED_VISUAL_QA)
    with torch.device("meta"), pytest.raises(NotImplementedError, match="generating text"):
        QEFFAutoModelForVisualQuestionAnswering(AutoModelForVisualQuestionAnswering.from_config(AutoConfig.for_model("blip")))


@pytest.mark.parametrize("head", [ViltForQuestionAnswering, ViltForImageAndTextRetrieval])
def test_logits_equal_transformers(head):
    hf = tiny(head)
    model = QEFFAutoModelForVisualQuestionAnswering(hf)
    model.compile(batch_size=2, num_cores=1)  # a full batch, then a short one
    for height, width in ((64, 96), (32, 32)):  # not the config's 64 x 64, nor the export's 48 x 32
        inputs = _pairs(3, height, width)
        with torch.no_grad():
            expected = hf(**inputs).logits.numpy()
        got = model.generate(inputs)["logits"].numpy()
        np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, np.abs(expected).max()), rtol=0)
        assert float(np.abs(expected[0] - expected[1]).max()) > 1e-2  # the pair decides


def _bert_tokenizer(folder) -> BertTokenizerFast:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "how", "many", "cats", "are", "there", "?", "a", "dog"]
    (folder / "vocab.txt").write_text("\n".join(vocab + [f"w{i}" for i in range(120 - len(vocab))]) + "\n")
    return BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))


def test_padded_batch_runs_image_by_image(tmp_path):
    hf = tiny()
    processor = ViltProcessor(ViltImageProcessor(size={"shortest_edge": 32}, size_divisor=16), _bert_tokenizer(tmp_path))
    images = [np.random.default_rng(s).integers(0, 256, shape, dtype=np.uint8) for s, shape in ((1, (40, 80, 3)), (2, (60, 40, 3)))]
    questions = ["how many cats are there?", "a dog?"]
    batch = processor(images, questions, return_tensors="pt", padding=True)
    assert not batch["pixel_mask"].all()  # two sizes: the processor pads them
    model = QEFFAutoModelForVisualQuestionAnswering(hf)
    model.compile(num_cores=1)
    got = model.generate(batch)["logits"].numpy()
    for row, (image, question) in enumerate(zip(images, questions)):
        alone = processor(image, question, return_tensors="pt")
        with torch.no_grad():
            expected = hf(**alone).logits.numpy()
        np.testing.assert_allclose(got[row], expected[0], atol=1e-4 * max(1.0, np.abs(expected).max()), rtol=0)


def test_the_wrapped_model_keeps_its_own_method():
    hf = tiny()
    QEFFAutoModelForVisualQuestionAnswering(hf).generate(_pairs(1, 32, 32), runtime_ai100=False)
    assert "visual_embed" not in vars(hf.vilt.embeddings)  # transformers' method: a padded batch still reads pixel_mask


def test_images_sampled_at_random_are_refused():
    model = QEFFAutoModelForVisualQuestionAnswering(tiny(max_image_length=4))
    with pytest.raises(ValueError, match="drawn at random"):
        model.generate(_pairs(1, 64, 64), runtime_ai100=False)  # 16 patches, 4 kept
