"""QEFFAutoModelForRetrieval: ColPali (late-interaction retrieval over PaliGemma), ColQwen2 (over Qwen2-VL and, as
ColQwen2.5, Qwen2.5-VL) and ColModernVBert (over ModernVBERT: SigLIP on Idefics3 tiles, a ModernBERT encoder) as tiny
random models saved with their processors (weights widened so that the page and the query decide). Pages and queries,
batched past the compiled batch size (ColQwen2's pages of three patch grids, ColModernVBert's of 3 and 5 tiles), give
transformers' embeddings within 1e-4 and the processor's MaxSim scores from them. Where transformers' SDPA leaves a
left-padded row that sees nothing NaN (ColPali without token types, ColQwen2), the real tokens match, padding is zero,
and the whole output equals its eager attention's; QEFFAutoModel routes a retriever here; bad inputs and the retrievers
not run here are refused saying why (tests/test_server_retrieval.py serves the four over HTTP)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    ColModernVBertConfig,
    ColModernVBertForRetrieval,
    ColModernVBertProcessor,
    ColPaliConfig,
    ColPaliForRetrieval,
    ColPaliProcessor,
    ColQwen2Config,
    ColQwen2ForRetrieval,
    ColQwen2Processor,
    Gemma2Config,
    GemmaConfig,
    Idefics3ImageProcessorPil,
    ModernBertConfig,
    ModernVBertConfig,
    PaliGemmaConfig,
    SiglipImageProcessorPil,
    SiglipVisionConfig,
)

from QEfficient import QEFFAutoModel, QEFFAutoModelForRetrieval
from tests.vlm_fixtures import _TEXT, _tokenizer, _widen_and_save, qwen2_5_vl_config, qwen2_vl_parts


def tiny_colpali(folder) -> None:
    """A tiny ColPali folder: SigLIP at 28 px (16 image tokens), Gemma text model, 24-wide embeddings."""
    tok = _tokenizer(["<image>"], {"image_token": "<image>"})
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7, projection_dim=64
    )
    text = GemmaConfig(**_TEXT, vocab_size=len(tok), head_dim=16, tie_word_embeddings=False)
    vlm = PaliGemmaConfig(vision_config=vision, text_config=text, image_token_index=tok.image_token_id, projection_dim=64)
    torch.manual_seed(0)
    _widen_and_save(ColPaliForRetrieval(ColPaliConfig(vlm_config=vlm, embedding_dim=24)), folder)
    image_processor = SiglipImageProcessorPil(size={"height": 28, "width": 28})
    image_processor.image_seq_length = 16
    ColPaliProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)


def tiny_colqwen2(folder, base: str = "qwen2_vl") -> None:
    """A tiny ColQwen2 folder over Qwen2-VL (patch 7, 2x2 merge, 16-64 patches a page), or ColQwen2.5's over Qwen2.5-VL
    (its tower attends within windows in one block, within the page in the other)."""
    tok, vlm, image_processor = qwen2_vl_parts()
    if base == "qwen2_5_vl":
        vlm = qwen2_5_vl_config(vlm)
    torch.manual_seed(0)
    _widen_and_save(ColQwen2ForRetrieval(ColQwen2Config(vlm_config=vlm, embedding_dim=24)), folder)
    ColQwen2Processor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)


def tiny_colmodernvbert(folder) -> None:
    """A tiny ColModernVBert folder: SigLIP at 28 px in Idefics3 tiles (a page cut into up to 2x2 tiles and a global
    view, 4 image tokens each), a three-layer ModernBERT whose middle layer sees 4 tokens either side."""
    rows_cols = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    tok = _tokenizer(["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", "<|begin_of_text|>", *rows_cols])
    text = ModernBertConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
        global_attn_every_n_layers=2, local_attention=8, pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2,
    )  # fmt: skip
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7
    )
    image_token = tok.convert_tokens_to_ids("<image>")
    vlm = ModernVBertConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), image_token_id=image_token, pixel_shuffle_factor=2)
    torch.manual_seed(0)
    _widen_and_save(ColModernVBertForRetrieval(ColModernVBertConfig(vlm_config=vlm, embedding_dim=24)), folder)
    tiles = Idefics3ImageProcessorPil(size={"longest_edge": 56}, max_image_size={"longest_edge": 28}, do_image_splitting=True)
    ColModernVBertProcessor(image_processor=tiles, tokenizer=tok, image_seq_len=4).save_pretrained(folder)


@pytest.fixture(scope="module")
def colpali(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-colpali")
    tiny_colpali(folder)
    return folder


@pytest.fixture(scope="module", params=["qwen2_vl", "qwen2_5_vl"])
def colqwen2(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"tiny-colqwen2-{request.param}")
    tiny_colqwen2(folder, request.param)
    return folder


def _pages(n: int, step: int = 10) -> list[Image.Image]:
    return [Image.fromarray(np.random.default_rng(i).integers(0, 256, (30 + step * i, 40, 3), dtype=np.uint8)) for i in range(n)]


QUERIES = ["what is the cat", "a dog ran home today quickly", "x"]


def test_embeddings_and_scores_equal_transformers(colpali):
    processor = ColPaliProcessor.from_pretrained(colpali)
    hf = ColPaliForRetrieval.from_pretrained(colpali).eval()  # transformers' own, untouched by the wrapper
    pages, queries = processor.process_images(_pages(3)), processor.process_queries(QUERIES)
    with torch.no_grad():
        expected_pages, expected_queries = hf(**pages).embeddings, hf(**queries).embeddings
    model = QEFFAutoModel.from_pretrained(colpali)  # QEFFAutoModel routes a retriever to its class
    assert isinstance(model, QEFFAutoModelForRetrieval)
    model.compile(batch_size=2, num_cores=1)  # a full batch, then a short one
    got_pages, got_queries = model.generate(pages).embeddings, model.generate(queries).embeddings
    torch.testing.assert_close(got_pages, expected_pages, atol=1e-4, rtol=0)
    torch.testing.assert_close(got_queries, expected_queries, atol=1e-4, rtol=0)
    assert (expected_pages[0] - expected_pages[1]).abs().max() > 0.1  # the page decides
    scores = processor.score_retrieval(got_queries, got_pages)
    torch.testing.assert_close(scores, processor.score_retrieval(expected_queries, expected_pages), atol=1e-3, rtol=0)
    torch.testing.assert_close(model.generate(pages, runtime_ai100=False).embeddings, expected_pages, atol=1e-4, rtol=0)

    # without token types transformers attends causally (and its padded rows see nothing: NaN); the real tokens match
    causal = {"input_ids": queries["input_ids"], "attention_mask": queries["attention_mask"]}
    with torch.no_grad():
        expected = hf(**causal).embeddings
    got = model.generate(causal).embeddings
    real = queries["attention_mask"].bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-4, rtol=0)
    assert (got[~real] == 0).all() and (~real).any()
    assert (got[real] - got_queries[real]).abs().max() > 1e-2  # the mask differs, so do the embeddings

    # a row's prefix (type 0) attends both ways and its suffix (type 1) causally; padding on the right
    processor.tokenizer.padding_side = "right"
    mixed = dict(processor.process_queries(QUERIES))
    mixed["token_type_ids"] = (torch.arange(mixed["input_ids"].shape[1]) >= 6).long().expand_as(mixed["input_ids"]).clone()
    with torch.no_grad():
        expected = hf(**mixed).embeddings
    torch.testing.assert_close(model.generate(mixed).embeddings, expected, atol=1e-4, rtol=0)

    int8 = QEFFAutoModelForRetrieval.from_pretrained(colpali)
    int8.compile(num_cores=1, mxfp6_matmul=True)
    int8_scores = processor.score_retrieval(int8.generate(queries).embeddings, int8.generate(pages).embeddings)
    np.testing.assert_allclose(int8_scores.numpy(), scores.numpy(), rtol=0.05)


def test_colqwen2_embeddings_equal_transformers(colqwen2):
    processor = ColQwen2Processor.from_pretrained(colqwen2)
    pages, queries = processor.process_images(_pages(3, step=20)), processor.process_queries(QUERIES)
    assert len(set(map(tuple, pages["image_grid_thw"].tolist()))) == 3  # three patch grids, padded to the longest
    model = QEFFAutoModel.from_pretrained(colqwen2)
    assert isinstance(model, QEFFAutoModelForRetrieval)
    model.compile(batch_size=2, num_cores=1)  # a batch of two grids (the tower runs page by page), then one
    got_pages, got_queries = model.generate(pages).embeddings, model.generate(queries).embeddings
    for attention in ("sdpa", "eager"):
        hf = ColQwen2ForRetrieval.from_pretrained(colqwen2, attn_implementation=attention).eval()
        with torch.no_grad():
            expected_pages, expected_queries = hf(**pages).embeddings, hf(**queries).embeddings
        for got, expected, mask in ((got_pages, expected_pages, pages), (got_queries, expected_queries, queries)):
            real = mask["attention_mask"].bool()
            torch.testing.assert_close(got[real], expected[real], atol=1e-4, rtol=0)
            assert (got[~real] == 0).all() and (~real).any()
    torch.testing.assert_close(got_pages, expected_pages, atol=1e-4, rtol=0)  # eager: padding rows are zero too
    torch.testing.assert_close(model.generate(pages, runtime_ai100=False).embeddings, expected_pages, atol=1e-4, rtol=0)
    assert type(model.generate(queries)).__name__ == "ColQwen2ForRetrievalOutput"
    scores = processor.score_retrieval(got_queries, got_pages)
    torch.testing.assert_close(scores, processor.score_retrieval(expected_queries, expected_pages), atol=1e-3, rtol=0)
    assert (expected_pages[0] - expected_pages[1]).abs().max() > 0.1  # the page decides


def test_colmodernvbert_embeddings_equal_transformers(tmp_path):
    """ColModernVBert: pages of 1x2, 2x2 and 2x1 tiles besides their global views (padded with empty tiles), queries
    padded on the left, ModernBERT's sliding layer windowed as transformers windows it."""
    tiny_colmodernvbert(tmp_path)
    processor = ColModernVBertProcessor.from_pretrained(tmp_path)
    hf = ColModernVBertForRetrieval.from_pretrained(tmp_path).eval()
    images = [
        Image.fromarray(np.random.default_rng(i).integers(0, 256, size, dtype=np.uint8))
        for i, size in enumerate([(12, 60, 3), (50, 50, 3), (60, 14, 3)])
    ]
    pages, queries = processor.process_images(images), processor.process_queries(QUERIES)
    real_tiles = (pages["pixel_values"].flatten(2) != 0).any(-1).sum(1).tolist()
    assert real_tiles == [3, 5, 3]
    with torch.no_grad():
        expected_pages, expected_queries = hf(**pages).embeddings, hf(**queries).embeddings
    model = QEFFAutoModel.from_pretrained(tmp_path)
    assert isinstance(model, QEFFAutoModelForRetrieval)
    model.compile(batch_size=2, num_cores=1)
    torch.testing.assert_close(model.generate(pages).embeddings, expected_pages, atol=1e-4, rtol=0)
    torch.testing.assert_close(model.generate(queries).embeddings, expected_queries, atol=1e-4, rtol=0)
    torch.testing.assert_close(model.generate(pages, runtime_ai100=False).embeddings, expected_pages, atol=1e-4, rtol=0)
    image = pages["input_ids"] == processor.image_token_id  # pages 0 and 2: 3 tiles' image tokens each
    assert (expected_pages[0][image[0]] - expected_pages[2][image[2]]).abs().max() > 0.1  # the page decides
    assert (queries["attention_mask"] == 0).any()
    scores = processor.score_retrieval(model.generate(queries).embeddings, model.generate(pages).embeddings)
    torch.testing.assert_close(scores, processor.score_retrieval(expected_queries, expected_pages), atol=1e-3, rtol=0)

    # the sliding layer's window matters here: without it (every position within reach) the pages' embeddings move
    unwindowed = ColModernVBertConfig.from_pretrained(tmp_path)
    unwindowed.vlm_config.text_config.sliding_window = unwindowed.vlm_config.text_config.local_attention = 4096
    with torch.no_grad():
        moved = ColModernVBertForRetrieval.from_pretrained(tmp_path, config=unwindowed).eval()(**pages).embeddings
    assert (moved - expected_pages).abs().max() > 1e-2

    int8 = QEFFAutoModelForRetrieval.from_pretrained(tmp_path)
    int8.compile(num_cores=1, mxfp6_matmul=True)
    int8_scores = processor.score_retrieval(int8.generate(queries).embeddings, int8.generate(pages).embeddings)
    np.testing.assert_allclose(int8_scores.numpy(), scores.numpy(), rtol=0.05)
    with pytest.raises(ValueError, match=r"pixel_values must be \[pages, tiles, channels, 28, 28\].*got \[3, 3, 28, 28\]"):
        model.generate({**pages, "pixel_values": pages["pixel_values"][:, 0]}, runtime_ai100=False)  # one tile each


def test_bad_inputs_and_other_retrievers_are_refused(colpali, colqwen2, tmp_path):
    processor = ColPaliProcessor.from_pretrained(colpali)
    model = QEFFAutoModelForRetrieval.from_pretrained(colpali)
    pages = processor.process_images(_pages(2))
    with pytest.raises(TypeError, match="compile"):
        model.generate(pages)
    with pytest.raises(ValueError, match="no pixel_values"):
        model.generate({"input_ids": pages["input_ids"]}, runtime_ai100=False)
    with pytest.raises(ValueError, match=r"must be \[2, 3, 28, 28\].*got \[1, 3, 28, 28\]; a batch holds pages or queries"):
        model.generate({**pages, "pixel_values": pages["pixel_values"][:1]}, runtime_ai100=False)
    with pytest.raises(ValueError, match=r"let processor.process_images resize them\), got \[2, 3, 20, 20\]\.$"):
        model.generate({**pages, "pixel_values": pages["pixel_values"][..., :20, :20]}, runtime_ai100=False)
    colqwen2_pages = ColQwen2Processor.from_pretrained(colqwen2).process_images(_pages(2))
    colqwen2_model = QEFFAutoModelForRetrieval.from_pretrained(colqwen2)
    with pytest.raises(ValueError, match="image_grid_thw"):
        colqwen2_model.generate({**colqwen2_pages, "image_grid_thw": None}, runtime_ai100=False)
    with pytest.raises(ValueError, match=r"got \[2, 36, 294\] and \[2, 2\]\.$"):
        colqwen2_model.generate({**colqwen2_pages, "image_grid_thw": colqwen2_pages["image_grid_thw"][:, 1:]}, runtime_ai100=False)
    cut = {**pages, "input_ids": pages["input_ids"][:, 1:], "attention_mask": pages["attention_mask"][:, 1:]}
    cut["token_type_ids"] = pages["token_type_ids"][:, 1:]
    with pytest.raises(ValueError, match=r"one image token per image embedding \(\[16, 16\]\), got \[15, 15\]"):
        model.generate(cut, runtime_ai100=False)
    with pytest.raises(ValueError, match="process_images"):
        model.generate(["a query"])
    with pytest.raises(ValueError, match="without pooling"):
        QEFFAutoModel.from_pretrained(colpali, pooling="mean")

    vlm = ModernVBertConfig(text_config=GemmaConfig(**_TEXT, vocab_size=64).to_dict())  # refused from its config
    ColModernVBertConfig(vlm_config=vlm).save_pretrained(tmp_path / "gemma-vbert")
    with pytest.raises(NotImplementedError, match=r"siglip_vision_model tower and a gemma text model is not supported"):
        QEFFAutoModelForRetrieval.from_pretrained(tmp_path / "gemma-vbert")
    vlm = PaliGemmaConfig(text_config=Gemma2Config(**_TEXT, vocab_size=64), vision_config=SiglipVisionConfig(image_size=28, patch_size=7))
    ColPaliConfig(vlm_config=vlm).save_pretrained(tmp_path / "paligemma2")
    with pytest.raises(NotImplementedError, match="sliding_attention"):
        QEFFAutoModelForRetrieval.from_pretrained(tmp_path / "paligemma2")
    GemmaConfig(**_TEXT, vocab_size=64).save_pretrained(tmp_path / "gemma")
    with pytest.raises(ValueError, match="not a late-interaction retrieval model"):
        QEFFAutoModelForRetrieval.from_pretrained(tmp_path / "gemma")
