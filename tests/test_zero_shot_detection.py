"""QEFFAutoModelForZeroShotObjectDetection: every type of transformers' zero-shot object detection mapping run as a tiny
random model (OWL-ViT, OWLv2; Grounding DINO and MM Grounding DINO with a Swin backbone and a BERT text tower, their
phrase masks rewritten) or refused saying why (OmDet-Turbo). Weights widened so that the scores follow the image and the
prompt; logits and boxes equal transformers' within 1e-4 at other numbers of images and queries and another prompt length
than the export's; the output goes through the processors' post-processing as it is."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForZeroShotObjectDetection,
    BertTokenizerFast,
    GroundingDinoImageProcessor,
    GroundingDinoProcessor,
    OwlViTImageProcessor,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_ZERO_SHOT_OBJECT_DETECTION_MAPPING_NAMES

from QEfficient import QEFFAutoModelForZeroShotObjectDetection
from QEfficient.transform.zero_shot_detection import UNSUPPORTED_ZERO_SHOT_DETECTORS
from tests.helpers import widen_weights

_TOWER = dict(hidden_size=32, intermediate_size=37, num_attention_heads=2, num_hidden_layers=2)
_OWL = dict(
    text_config=dict(_TOWER, vocab_size=99, max_position_embeddings=16),
    vision_config=dict(_TOWER, image_size=64, patch_size=16),
    projection_dim=32,
)  # fmt: skip
_SWIN = dict(
    model_type="swin", embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, image_size=128,
    out_features=["stage2", "stage3", "stage4"],
)  # fmt: skip
_GROUNDING = dict(
    backbone_config=_SWIN, text_config=dict(_TOWER, model_type="bert", num_hidden_layers=1, vocab_size=1100), d_model=32,
    encoder_layers=1, decoder_layers=2, encoder_ffn_dim=37, decoder_ffn_dim=37, encoder_attention_heads=2,
    decoder_attention_heads=2, num_queries=6, num_feature_levels=4, encoder_n_points=2, decoder_n_points=2, max_text_len=24,
)  # fmt: skip
DETECTORS = {"owlvit": _OWL, "owlv2": _OWL, "grounding-dino": _GROUNDING, "mm-grounding-dino": _GROUNDING}
IMAGE_SIZE = {"owlvit": 64, "owlv2": 64, "grounding-dino": 128, "mm-grounding-dino": 128}
# Grounding DINO's special tokens (BERT's [CLS], [SEP], "." and "?") split its prompt into phrases
CLS, SEP, DOT = 101, 102, 1012


def tiny(model_type: str):
    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, **DETECTORS[model_type])
    model = AutoModelForZeroShotObjectDetection.from_config(config).eval()
    widen_weights(model)
    return model


def prompts(model_type: str, images: int, width: int) -> dict[str, torch.Tensor]:
    """Token rows as the processors write them: OWL-ViT 3 queries per image, the last one padded; Grounding DINO one
    prompt of phrases per image."""
    generator = torch.Generator().manual_seed(2)
    if model_type.startswith("owl"):
        ids = torch.randint(1, 99, (3 * images, width), generator=generator)
        mask = torch.ones_like(ids)
        mask[2::3, width // 2 :] = 0
        return {"input_ids": ids * mask, "attention_mask": mask}
    ids = torch.randint(1000, 1100, (images, width), generator=generator)
    ids[:, 0], ids[:, -1], ids[:, 3], ids[:, -2] = CLS, SEP, DOT, DOT
    ids[-1, 5] = DOT
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_every_zero_shot_detection_type_runs_or_is_refused():
    assert set(MODEL_FOR_ZERO_SHOT_OBJECT_DETECTION_MAPPING_NAMES) == set(DETECTORS) | set(UNSUPPORTED_ZERO_SHOT_DETECTORS)
    config = AutoConfig.for_model("omdet-turbo", use_timm_backbone=False, backbone_config=_SWIN)  # timm is not installed
    with torch.device("meta"), pytest.raises(NotImplementedError, match="classes_input_ids"):
        QEFFAutoModelForZeroShotObjectDetection(AutoModelForZeroShotObjectDetection.from_config(config))


@pytest.mark.parametrize("model_type", list(DETECTORS))
def test_logits_and_boxes_equal_transformers(model_type):
    hf = tiny(model_type)
    size = IMAGE_SIZE[model_type]
    pixels = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    inputs = {**prompts(model_type, 3, 11), "pixel_values": pixels}  # not the export's 2 images nor its 8 tokens
    with torch.no_grad():
        expected = hf(**inputs)
    model = QEFFAutoModelForZeroShotObjectDetection(hf)
    model.compile(img_size=size, batch_size=2, num_cores=1)  # a full batch, then a short one
    out = model.generate(inputs)
    for name in ("logits", "pred_boxes"):
        want, got = getattr(expected, name).numpy(), getattr(out, name).numpy()
        assert got.shape == want.shape, name
        finite = np.isfinite(want)  # Grounding DINO's scores past the prompt are -inf
        assert (np.isfinite(got) == finite).all(), name
        np.testing.assert_allclose(got[finite], want[finite], atol=1e-4, rtol=0, err_msg=name)
    assert float(np.abs(np.nan_to_num(expected.logits[0] - expected.logits[1], posinf=0, neginf=0)).max()) > 1e-3  # the image decides


def test_owlvit_post_processing_and_bad_inputs():
    hf = tiny("owlvit")
    processor = OwlViTImageProcessor(size={"height": 64, "width": 64}, crop_size={"height": 64, "width": 64})
    images = [np.random.default_rng(s).integers(0, 256, (48, 80, 3), dtype=np.uint8) for s in (1, 2)]
    inputs = {**processor(images=images, return_tensors="pt"), **prompts("owlvit", 2, 16)}
    model = QEFFAutoModelForZeroShotObjectDetection(hf)
    model.compile(num_cores=1)  # the config's 64 x 64
    sizes = [(48, 80)] * 2
    with torch.no_grad():
        expected = processor.post_process_object_detection(hf(**inputs), threshold=0.0, target_sizes=sizes)
    got = processor.post_process_object_detection(model.generate(inputs), threshold=0.0, target_sizes=sizes)
    for a, b in zip(got, expected):
        assert a["labels"].tolist() == b["labels"].tolist()
        np.testing.assert_allclose(a["scores"].numpy(), b["scores"].numpy(), atol=1e-5)
        np.testing.assert_allclose(a["boxes"].numpy(), b["boxes"].numpy(), atol=1e-3)
    with pytest.raises(ValueError, match="the same number of queries for every image"):
        model.generate({**inputs, "input_ids": inputs["input_ids"][:5], "attention_mask": inputs["attention_mask"][:5]})
    with pytest.raises(ValueError, match="compiled for 64x64"):
        model.generate({**inputs, "pixel_values": torch.rand(2, 3, 32, 32)})
    with pytest.raises(ValueError, match="query_pixel_values"):
        model.generate({**inputs, "query_pixel_values": inputs["pixel_values"]})
    with pytest.raises(ValueError, match="longest prompt"):
        model.compile(seq_len=17, num_cores=1)
    model.compile(num_cores=1, mxfp6_matmul=True)  # int8 GEMMs: the scores move a little, their order stays
    with torch.no_grad():
        want = hf(**inputs).logits.numpy().ravel()
    assert np.corrcoef(model.generate(inputs).logits.numpy().ravel(), want)[0, 1] > 0.99


def test_owlv2_at_another_size_resizes_its_positions():
    hf = tiny("owlv2")
    inputs = {**prompts("owlv2", 1, 16), "pixel_values": torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(4))}
    with torch.no_grad():
        expected = hf(**inputs, interpolate_pos_encoding=True)
    model = QEFFAutoModelForZeroShotObjectDetection(hf)
    model.compile(img_size=96, num_cores=1)
    out = model.generate(inputs)
    for name in ("logits", "pred_boxes"):
        np.testing.assert_allclose(getattr(out, name).numpy(), getattr(expected, name).numpy(), atol=1e-4, rtol=0, err_msg=name)
    with pytest.raises(ValueError, match="attention_mask has the shape \\[3, 8\\], input_ids \\[3, 16\\]: pass one tokenizer output"):
        model.generate({**inputs, "attention_mask": inputs["attention_mask"][:, :8]})


def _bert_tokenizer(folder) -> BertTokenizerFast:
    """A BERT WordPiece tokenizer whose special tokens sit at BERT's ids (Grounding DINO's phrase rule reads them)."""
    vocab = [f"w{i}" for i in range(1100)]
    vocab[0], vocab[100], vocab[CLS], vocab[SEP], vocab[103], vocab[DOT], vocab[1029] = "[PAD] [UNK] [CLS] [SEP] [MASK] . ?".split()
    vocab[1000:1004] = ["a", "cat", "remote", "dog"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))


def test_grounding_dino_processor_round_trip(tmp_path):
    hf = tiny("grounding-dino")
    processor = GroundingDinoProcessor(GroundingDinoImageProcessor(size={"height": 128, "width": 128}), _bert_tokenizer(tmp_path))
    images = [np.random.default_rng(s).integers(0, 256, (96, 160, 3), dtype=np.uint8) for s in (1, 2)]
    inputs = processor(images=images, text=["a cat. a remote.", "a dog."], return_tensors="pt", padding=True)
    model = QEFFAutoModelForZeroShotObjectDetection(hf)
    model.compile(img_size=128, num_cores=1, mxfp6_matmul=False)
    options = dict(threshold=0.0, text_threshold=0.0, target_sizes=[(96, 160)] * 2)
    with torch.no_grad():
        expected = processor.post_process_grounded_object_detection(hf(**inputs), inputs["input_ids"], **options)
    got = processor.post_process_grounded_object_detection(model.generate(inputs), **options)  # its input_ids
    for a, b in zip(got, expected):
        assert a["text_labels"] == b["text_labels"]
        np.testing.assert_allclose(a["scores"].numpy(), b["scores"].numpy(), atol=1e-5)
        np.testing.assert_allclose(a["boxes"].numpy(), b["boxes"].numpy(), atol=1e-3)
    by_edge = GroundingDinoProcessor(GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}), processor.tokenizer)
    padded = by_edge(images=[images[0], images[1][:, :64]], text=["a cat.", "a dog."], return_tensors="pt", padding=True)
    with pytest.raises(ValueError, match="pixel_mask holds zeros"):
        model.generate(padded)
    with pytest.raises(ValueError, match="one prompt per image"):
        model.generate({**inputs, **{name: inputs[name][:1] for name in ("input_ids", "attention_mask", "token_type_ids")}})
