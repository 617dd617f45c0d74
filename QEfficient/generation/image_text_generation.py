"""Generation for two-graph vision-language models: the vision graph once per image, then the
language graph's chunked prefill (image tokens may span chunks) and the usual decode loop."""

from __future__ import annotations

import time

import numpy as np
import onnxruntime as ort

from QEfficient.generation.metrics import CloudAI100ExecInfo
from QEfficient.generation.text_generation import PromptTooLongError, TextGeneration, average_metrics, prefill


class ImageTextGeneration(TextGeneration):
    def __init__(
        self, session, vision_session: ort.InferenceSession, tokenizer, prefill_seq_len: int, eos_ids, image_token_id: int, sampling=None
    ):
        super().__init__(session, tokenizer, prefill_seq_len, eos_ids, sampling)
        self.vision_session = vision_session
        self.image_token_id = image_token_id
        self.vision_embeds: np.ndarray | None = None

    def _prefill(self, token_lists: list[list[int]]) -> np.ndarray:
        vision = self.vision_embeds
        # Image embeddings are in prompt order: a row's first one follows all those of the rows before it
        # (a prompt may hold several images).
        counts = np.array([sum(t == self.image_token_id for t in row) for row in token_lists], dtype=np.int64)
        state = {"idx": (np.cumsum(counts) - counts)[:, None]}

        def run(ids: np.ndarray, pos: np.ndarray) -> np.ndarray:
            self.session.bind_inputs(vision_embeds=vision, image_idx=state["idx"])
            logits = self.session.run(ids, pos)
            state["idx"] = self.session.image_idx_out.numpy().copy()
            return logits

        logits = prefill(run, token_lists, self.batch_size, self.prefill_seq_len, self.ctx_len, self.pad_id)
        # decode feeds text tokens only: a one-row placeholder keeps the graph's input bound
        self.session.bind_inputs(
            vision_embeds=np.zeros((1, 1, vision.shape[2]), vision.dtype), image_idx=np.zeros((self.batch_size, 1), np.int64)
        )
        return logits

    def generate_images(
        self, token_lists: list[list[int]], pixel_values: np.ndarray, generation_len: int | None, streamer=None
    ) -> CloudAI100ExecInfo:
        for i, tokens in enumerate(token_lists):
            if len(tokens) > self.ctx_len:
                raise PromptTooLongError(f"Prompt {i} has {len(tokens)} tokens with its image, more than ctx_len={self.ctx_len}.")
        texts_all, ids_all, timings = [], [], []
        start = time.perf_counter()
        vision = self.vision_session.run(None, {"pixel_values": np.ascontiguousarray(pixel_values, np.float32)})[0]
        vision_time = time.perf_counter() - start
        per_image = vision.shape[1]
        images = [sum(t == self.image_token_id for t in row) // per_image for row in token_lists]  # images of each prompt
        first_image = np.concatenate([[0], np.cumsum(images)])
        for first in range(0, len(token_lists), self.batch_size):
            real = min(self.batch_size, len(token_lists) - first)
            rows = list(range(first, first + real)) + [first + real - 1] * (self.batch_size - real)  # pad with the last prompt
            self.vision_embeds = np.concatenate([vision[first_image[r] : first_image[r + 1]] for r in rows])
            batch_start = start if first == 0 else time.perf_counter()  # the first time to first token includes the vision graph
            texts, ids, timing = self.generate_batch(
                [], generation_len, streamer if self.batch_size == 1 else None, token_lists=[token_lists[r] for r in rows]
            )
            timing["start"] = batch_start
            texts_all.append(texts[:real])
            ids_all.append(ids[:real])
            timings.append(timing)
        return CloudAI100ExecInfo(self.batch_size, texts_all, ids_all, average_metrics(timings), vision_time=vision_time)
