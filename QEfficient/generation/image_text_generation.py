"""Generation for vision-language models: image embeddings once per batch of prompts, then the
language graph's chunked prefill (image tokens may span chunks) and the usual decode loop.

Two layouts share this loop:

* two graphs (``vision_session`` given): the vision graph runs first, and its output is bound as
  the language graph's ``vision_embeds`` for the whole prefill;
* one graph: the first prefill chunk gets the pixels and the graph runs its vision branch; its
  ``vision_embeds_RetainedState`` output is fed back as ``vision_embeds`` to the later chunks,
  which get zero images, as does decode.

``image_idx`` (the first image embedding a chunk's image tokens use) is counted here from the
prompt itself rather than chained from the graph's ``image_idx_output``, so a chunk that is run
again (the last chunk of a prompt that fills the context) gets the right images.
"""

from __future__ import annotations

import time

import numpy as np
import onnxruntime as ort

from QEfficient.generation.metrics import CloudAI100ExecInfo
from QEfficient.generation.text_generation import PromptTooLongError, TextGeneration, average_metrics, prefill
from QEfficient.transform.vision_adapters import VisionLanguageAdapter

RETAINED_EMBEDS = "vision_embeds_RetainedState"


def longest_image_run(tokens: list[int], image_token_id: int) -> int:
    edges = np.diff(np.r_[0, np.equal(tokens, image_token_id).astype(np.int8), 0])
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max(initial=0))


def image_block_columns(tokens: list[int], image_token_id: int, chunk: int) -> np.ndarray:
    """Chunk-grid columns that keep each run of image tokens inside one chunk (a run that would
    cross a chunk boundary starts the next chunk instead)."""
    cols = np.empty(len(tokens), dtype=np.int64)
    col, i = 0, 0
    while i < len(tokens):
        if tokens[i] == image_token_id and (i == 0 or tokens[i - 1] != image_token_id):
            run = next((j for j in range(i, len(tokens)) if tokens[j] != image_token_id), len(tokens)) - i
            if col % chunk + run > chunk:
                col = -(-col // chunk) * chunk
        cols[i] = col
        col, i = col + 1, i + 1
    return cols


class ImageTextGeneration(TextGeneration):
    def __init__(
        self,
        session,
        tokenizer,
        prefill_seq_len: int,
        eos_ids,
        adapter: VisionLanguageAdapter,
        image_token_id: int,
        vision_session: ort.InferenceSession | None = None,
        hidden_size: int | None = None,
        sampling=None,
    ):
        super().__init__(session, tokenizer, prefill_seq_len, eos_ids, sampling)
        self.adapter = adapter
        self.image_token_id = image_token_id
        self.vision_session = vision_session
        self.hidden_size = hidden_size
        self._batch_vision: dict[str, np.ndarray] | np.ndarray | None = None

    def _chunking(self, token_lists: list[list[int]]) -> tuple[int, list[np.ndarray] | None]:
        if not self.adapter.bidirectional_images:
            return self.prefill_seq_len, None
        # A whole image block must be in one chunk: widen the chunk to hold the longest block
        # (the ONNX graph's sequence axis is dynamic), and start blocks on chunk boundaries.
        longest = max(longest_image_run(t, self.image_token_id) for t in token_lists)
        chunk = -(-max(longest, 1) // self.prefill_seq_len) * self.prefill_seq_len
        return chunk, [image_block_columns(t, self.image_token_id, chunk) for t in token_lists]

    def _prefill(self, token_lists: list[list[int]]) -> np.ndarray:
        is_image = [np.equal(t, self.image_token_id) for t in token_lists]
        # A row's first image embedding follows all those of the rows before it.
        counts = np.array([m.sum() for m in is_image], dtype=np.int64)
        first_row = np.cumsum(counts) - counts
        seen_before = [np.r_[0, np.cumsum(m)] for m in is_image]  # image tokens before position p
        one_graph = self.vision_session is None
        state = {"first": True}
        embeds_out = None

        def run(ids: np.ndarray, pos: np.ndarray) -> np.ndarray:
            nonlocal embeds_out
            start = [int(p[p >= 0][0]) if (p >= 0).any() else 0 for p in pos]
            idx = np.array([[first_row[r] + seen_before[r][s]] for r, s in enumerate(start)], dtype=np.int64)
            if not one_graph:
                self.session.bind_inputs(vision_embeds=self._batch_vision, image_idx=idx)
                return self.session.run(ids, pos)
            n_images = next(iter(self._batch_vision.values())).shape[0]
            if state["first"] and n_images:
                vision = self._batch_vision
                tokens = int(counts.sum()) // n_images
                embeds_out = np.zeros((n_images, tokens, self.hidden_size), np.float32)
                placeholder = np.zeros((1, 1, self.hidden_size), np.float32)
                self.session.bind_inputs(**vision, vision_embeds=placeholder, image_idx=idx)
                self.session.bind_outputs(**{RETAINED_EMBEDS: embeds_out})
                state["first"] = False
            else:  # later chunks read the embeddings the first chunk computed
                if embeds_out is None:  # no image in this batch
                    embeds_out = np.zeros((1, 1, self.hidden_size), np.float32)
                fed_back = embeds_out.copy()
                self.session.bind_inputs(**self.adapter.empty_vision_inputs(self._batch_vision), vision_embeds=fed_back, image_idx=idx)
                self.session.bind_outputs(**{RETAINED_EMBEDS: embeds_out})
            return self.session.run(ids, pos)

        chunk, columns = self._chunking(token_lists)
        logits = prefill(run, token_lists, self.batch_size, chunk, self.ctx_len, self.pad_id, columns)
        # decode feeds text tokens only: one zero embedding keeps the input bound
        hidden = self.hidden_size
        placeholder = np.zeros((1, 1, hidden), np.float32)
        extra = {} if not one_graph else self.adapter.empty_vision_inputs(self._batch_vision)
        self.session.bind_inputs(**extra, vision_embeds=placeholder, image_idx=np.zeros((self.batch_size, 1), np.int64))
        if one_graph:
            self.session.bind_outputs(**{RETAINED_EMBEDS: np.zeros((1, 1, hidden), np.float32)})
        return logits

    def generate_images(
        self, token_lists: list[list[int]], vision_inputs: dict[str, np.ndarray], generation_len: int | None, streamer=None
    ) -> CloudAI100ExecInfo:
        for i, tokens in enumerate(token_lists):
            if len(tokens) > self.ctx_len:
                raise PromptTooLongError(f"Prompt {i} has {len(tokens)} tokens with its image, more than ctx_len={self.ctx_len}.")
        texts_all, ids_all, timings = [], [], []
        start = time.perf_counter()
        vision_time = 0.0
        n_images = next(iter(vision_inputs.values())).shape[0]
        if self.vision_session is not None and n_images == 0:
            embeds = np.zeros((0, 1, self.hidden_size), np.float32)
        elif self.vision_session is not None:
            embeds = self.vision_session.run(None, vision_inputs)[0]
            vision_time = time.perf_counter() - start
            per_image = embeds.shape[1]
        else:
            per_image = sum(sum(t == self.image_token_id for t in row) for row in token_lists) // max(n_images, 1)
        images = [sum(t == self.image_token_id for t in row) // per_image for row in token_lists]  # images of each prompt
        first_image = np.concatenate([[0], np.cumsum(images)])
        for first in range(0, len(token_lists), self.batch_size):
            real = min(self.batch_size, len(token_lists) - first)
            rows = list(range(first, first + real)) + [first + real - 1] * (self.batch_size - real)  # pad with the last prompt
            take = np.concatenate([np.arange(first_image[r], first_image[r + 1]) for r in rows]).astype(np.int64)
            if self.vision_session is not None:
                self._batch_vision = embeds[take] if len(take) else np.zeros((1, 1, self.hidden_size), np.float32)
            else:
                self._batch_vision = {name: value[take] for name, value in vision_inputs.items()}
            batch_start = start if first == 0 else time.perf_counter()  # the first time to first token includes the vision graph
            texts, ids, timing = self.generate_batch(
                [], generation_len, streamer if self.batch_size == 1 else None, token_lists=[token_lists[r] for r in rows]
            )
            timing["start"] = batch_start
            texts_all.append(texts[:real])
            ids_all.append(ids[:real])
            timings.append(timing)
        return CloudAI100ExecInfo(self.batch_size, texts_all, ids_all, average_metrics(timings), vision_time=vision_time)
