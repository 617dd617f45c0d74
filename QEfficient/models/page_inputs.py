"""The inputs an encoder reads per token beside its text, checked and filled as transformers fills them: a document
model's boxes and page images (LayoutLM, LiLT, Bros, LayoutLMv3) and a web-page model's XPaths (MarkupLM). Host side:
numpy arrays, the graph's names; ``encoder`` is the transformed model (transform/encoder.QEffEncoder), read for what the
graph takes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from QEfficient.export.graph_names import BBOX, PIXEL_VALUES, XPATH_SUBS_SEQ, XPATH_TAGS_SEQ
from QEfficient.utils.arrays import as_numpy

if TYPE_CHECKING:
    from QEfficient.transform.encoder import QEffEncoder


def xpath_inputs(encoder: QEffEncoder, inputs: Mapping[str, Any], ids: np.ndarray) -> dict[str, np.ndarray]:
    """MarkupLM's XPaths [B, S, max_depth] (tag ids and subscripts, as its tokenizer writes them; where none are given,
    transformers' default: every level padding); {} for other models, which take none."""
    given = {name: inputs.get(name) for name in (XPATH_TAGS_SEQ, XPATH_SUBS_SEQ)}
    depth = encoder.xpath_depth
    if not depth:
        if any(v is not None for v in given.values()):
            raise ValueError(f"{type(encoder.hf).__name__} reads no web page: leave xpath_tags_seq and xpath_subs_seq out.")
        return {}
    config = encoder.config
    pads = {XPATH_TAGS_SEQ: config.tag_pad_id, XPATH_SUBS_SEQ: config.subs_pad_id}
    tables = {XPATH_TAGS_SEQ: config.max_xpath_tag_unit_embeddings, XPATH_SUBS_SEQ: config.max_xpath_subs_unit_embeddings}
    xpaths = {}
    for name, value in given.items():
        value = np.full((*ids.shape, depth), pads[name], np.int64) if value is None else as_numpy(value)
        if value.shape != (*ids.shape, depth) or not np.issubdtype(value.dtype, np.integer):
            raise ValueError(
                f"{name} must be integers [texts, tokens, {depth}] as input_ids {list(ids.shape)} (one id per level of "
                f"each token's XPath, as the MarkupLM tokenizer writes them), got {list(value.shape)} {value.dtype} values."
            )
        if value.size and (value.min() < 0 or value.max() >= tables[name]):
            raise ValueError(
                f"{name} holds ids from {value.min()} to {value.max()}; this model's table has 0 to {tables[name] - 1}: "
                "tokenize the page with the model's own MarkupLM tokenizer (its tags_dict, max_width)."
            )
        xpaths[name] = value.astype(np.int64)
    return xpaths


def layout_inputs(encoder: QEffEncoder, inputs: Mapping[str, Any], ids: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A document model's boxes [B, S, 4] (transformers' default where none are given: zeros) and LayoutLMv3's page
    images [B, 3, H, W]; (None, None) for other models, which take neither."""
    bbox, pixels = inputs.get(BBOX), inputs.get(PIXEL_VALUES)
    if not encoder.layout:
        if bbox is not None or pixels is not None:
            raise ValueError(f"{type(encoder.hf).__name__} reads text alone: leave bbox and pixel_values out of the inputs.")
        return None, None
    dtype = np.float32 if encoder.float_boxes else np.int64  # Bros' fractions of the page, or 0-1000 integers
    if bbox is None:
        if encoder.float_boxes:  # transformers' Bros asks for them too
            raise ValueError(f"{type(encoder.hf).__name__} needs each token's box: pass bbox [texts, tokens, 4].")
        bbox = np.zeros((*ids.shape, 4), dtype)  # transformers' default
    bbox = as_numpy(bbox)
    if bbox.shape != (*ids.shape, 4):
        raise ValueError(f"bbox must be [texts, tokens, 4] as input_ids {list(ids.shape)} (x0, y0, x1, y1), got {list(bbox.shape)}.")
    if not encoder.float_boxes and not np.issubdtype(bbox.dtype, np.integer):
        raise ValueError(f"{type(encoder.hf).__name__}'s boxes are integers on a 0-1000 page, got {bbox.dtype} values.")
    bbox = bbox.astype(dtype)
    size = encoder.image_size
    if size is None:
        if pixels is not None:
            raise ValueError(f"{type(encoder.hf).__name__} embeds no page image (visual_embed=False): leave pixel_values out.")
        return bbox, None
    if pixels is None:
        raise ValueError(f"{type(encoder.hf).__name__} reads each page's image: pass the processor's pixel_values with the text.")
    pixels = np.ascontiguousarray(as_numpy(pixels), dtype=np.float32)
    if pixels.shape != (len(ids), 3, *size):
        raise ValueError(f"pixel_values must be [{len(ids)}, 3, {size[0]}, {size[1]}] (a page per text), got {list(pixels.shape)}.")
    return bbox, pixels
