"""Continuous batching for vision-language models: each request is prefilled alone into a free cache
row with its own images (``ImagePrefill`` on that row's binding), and every decode step advances all
busy rows, as for text (generation/continuous_batching.py).

The vision graph (two graphs) runs once for all prompts before the engine starts; with one graph
each request's first prefill chunk runs the vision branch on that request's images.
"""

from __future__ import annotations

import numpy as np

from QEfficient.export.graph_names import ROPE_POSITION_IDS
from QEfficient.generation.continuous_batching import ContinuousBatchingEngine, Request
from QEfficient.generation.image_text_generation import ImagePrefill, join_embeddings, rope_positions
from QEfficient.runtime.ort_session import KVCacheSession


class ImageTextBatchingEngine(ContinuousBatchingEngine):
    """``Request.extra``: ``vision`` (the request's own vision units), ``embeds`` (its image
    embeddings, two graphs) and ``rope`` (its multimodal positions, Qwen2-VL), as made by
    ``prepare_images`` / ``prompt_rope``."""

    supports_beams = False

    def __init__(self, session: KVCacheSession, prefiller: ImagePrefill, eos_ids, pad_id: int) -> None:
        super().__init__(session, prefiller.prefill_seq_len, eos_ids, pad_id)
        self.prefiller = prefiller
        self.rope: list[tuple[np.ndarray, int]] = [(np.zeros((3, 1), np.int64), 0)] * session.batch_size
        self.uses_rope = False
        self._decode_bound = False
        # cross-attention models: each cache row's image slots and decode mask, bound for decode
        self.cross_rows = self.cross_masks = None
        if prefiller.adapter.cross_attention:
            self.cross_rows = np.zeros((session.batch_size, prefiller.max_images, prefiller.hidden_size), np.float32)
            self.cross_masks = np.zeros((session.batch_size, 1, prefiller.max_images, prefiller.adapter.max_tiles), np.int64)

    def submit(self, request: Request) -> None:
        if request.prompt_logprobs is not None:
            raise ValueError("An image-text prompt is not scored (prompt_logprobs); leave them out.")
        super().submit(request)

    def _prefill_request(self, slot: int, request: Request) -> np.ndarray:
        vision = request.extra["vision"]
        if not self._decode_bound and self.cross_rows is None:  # decode runs on the whole-cache binding: text only, bound once
            inputs, outputs = self.prefiller.decode_inputs(self.session.batch_size)
            self.session.bind_inputs(**inputs)
            if outputs:
                self.session.bind_outputs(**outputs)
            self._decode_bound = True
        rope = request.extra.get("rope")
        embeds = join_embeddings([request.extra.get("embeds")], self.prefiller.hidden_size)
        logits = self.prefiller(self.session.slot(slot), [request.tokens], [vision], embeds, None if rope is None else [rope])
        if self.cross_rows is not None:  # this row's images, for every later decode step
            self.cross_rows[slot] = self.prefiller.cross_embeds.reshape(self.cross_rows.shape[1:])
            self.cross_masks[slot] = self.prefiller.cross_mask[0]
            inputs, outputs = self.prefiller.decode_inputs(self.session.batch_size, self.cross_rows, self.cross_masks)
            self.session.bind_inputs(**inputs)
            self.session.bind_outputs(**outputs)
        if rope is not None:
            if not self.uses_rope:  # idle rows' placeholders get the model's number of position axes (GIT's one, Qwen2-VL's three)
                self.rope = [(np.zeros((len(rope[0]), 1), np.int64), 0)] * self.session.batch_size
            self.rope[slot], self.uses_rope = rope, True
        return logits

    def _before_decode(self) -> None:
        if self.uses_rope:
            self.session.bind_inputs(**{ROPE_POSITION_IDS: rope_positions(self.rope, self.positions[:, None], prefill=False)})
