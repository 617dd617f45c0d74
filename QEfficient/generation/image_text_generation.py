"""Generation for vision-language models: image embeddings once per batch of prompts, then the
language graph's chunked prefill (image tokens may span chunks) and the usual decode loop.

Two layouts share this loop:

* two graphs (``vision_session`` given): the vision graph runs first, and its output is bound as
  the language graph's ``vision_embeds`` for the whole prefill;
* one graph: the first prefill chunk gets the pixels and the graph runs its vision branch; its
  ``vision_embeds_RetainedState`` output is fed back as ``vision_embeds`` to the later chunks,
  which get zero images, as does decode.

``image_idx`` (the first image embedding a chunk's image tokens use) is counted here from the
prompt itself rather than chained from the graph's ``image_idx_output``: chunks laid out with gaps
(Gemma3's image blocks) need no bookkeeping of their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from QEfficient.export.graph_names import CROSS_ATTENTION_MASK, IMAGE_IDX, RETAINED_EMBEDS, ROPE_POSITION_IDS, VISION_EMBEDS
from QEfficient.generation.metrics import CloudAI100ExecInfo
from QEfficient.generation.text_generation import PromptTooLongError, TextGeneration, average_metrics, prefill

# image_idx of a step without images, bound with one placeholder row: past it by one at decode, by two in the prefill
# of a call whose prompts hold none. An image token the model generates is then text (its row index is past the
# rows), and the graph tells such steps from a prefill with images (image_idx <= its rows: Ovis2's visual
# indicators) and decode from prefill (ERNIE-4.5-VL's token types)
DECODE_IMAGE_IDX = 2
TEXT_ONLY_PREFILL_IMAGE_IDX = 3

# A prompt's multimodal rotary positions [k, len] and decode offset, from its tokens and its own
# vision units (generation/mrope.py); None where rotary positions are the cache positions.
PromptRope = Callable[[list[int], dict[str, np.ndarray]], tuple[np.ndarray, int]]


def longest_image_run(tokens: list[int], image_token_id: int | list[int]) -> int:
    edges = np.diff(np.r_[0, np.isin(tokens, image_token_id).astype(np.int8), 0])
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max(initial=0))


def image_block_columns(tokens: list[int], image_token_id: int | list[int], chunk: int) -> np.ndarray:
    """Chunk-grid columns that keep each run of image tokens (``image_token_id``: one id or the ids of a
    block) inside one chunk (a run that would cross a chunk boundary starts the next chunk instead)."""
    cols = np.empty(len(tokens), dtype=np.int64)
    marks = np.isin(tokens, image_token_id)
    col, i = 0, 0
    while i < len(tokens):
        if marks[i] and (i == 0 or not marks[i - 1]):
            run = next((j for j in range(i, len(tokens)) if not marks[j]), len(tokens)) - i
            if col % chunk + run > chunk:
                col = -(-col // chunk) * chunk
        cols[i] = col
        col, i = col + 1, i + 1
    return cols


def rope_positions(rope: list[tuple[np.ndarray, int]], pos: np.ndarray, prefill: bool) -> np.ndarray:
    """[axes, B, S] multimodal rotary positions (3 axes for Qwen2-VL): a prompt's own table at prefill, the cache
    position plus the prompt's offset after it (HF generate's rule); 0 for padding."""
    out = np.zeros((max(table.shape[0] for table, _ in rope), *pos.shape), np.int64)
    for r, (table, delta) in enumerate(rope):
        real = pos[r] >= 0
        out[:, r, real] = table[:, pos[r, real]] if prefill else pos[r, real] + delta
    return out


@dataclass
class ImagePrefill:
    """Chunked prefill of rows that hold image tokens, on any ``target`` with ``bind_inputs``,
    ``bind_outputs`` and ``run(ids, pos)``: a whole batch (KVCacheSession) or one cache row
    (``KVCacheSession.slot``, continuous batching)."""

    adapter: Any  # the architecture's vision adapter (transform/vision_adapters): its host-side rules
    image_token_id: int
    hidden_size: int
    prefill_seq_len: int
    ctx_len: int
    pad_id: int
    one_graph: bool
    max_images: int = 1  # cross-attention models: image slots per sequence (compile(max_num_images=...))
    # one graph: its vision inputs holding zero images (its vision branch then passes vision_embeds through)
    no_images: dict[str, np.ndarray] = field(default_factory=dict)
    # rows of the text embedding table (the artifact records it; None in older ones): a prompt's other ids lie below
    embedding_rows: int | None = None
    # cross-attention models: the image rows the last call's sequences used, and the tiles their decode
    # steps attend (each prompt's last mask row, as HF generate repeats it), kept bound for decode
    cross_embeds: np.ndarray | None = field(default=None, init=False)
    cross_mask: np.ndarray | None = field(default=None, init=False)

    @property
    def placeholder(self) -> np.ndarray:
        return np.zeros((1, 1, self.hidden_size), np.float32)

    def chunking(self, token_lists: list[list[int]]) -> tuple[int, list[np.ndarray] | None]:
        if self.adapter.bidirectional_prompt:  # one chunk holds every prompt (the graph's sequence axis is dynamic)
            longest = max(len(t) for t in token_lists)
            return -(-longest // self.prefill_seq_len) * self.prefill_seq_len, None
        if not self.adapter.bidirectional_images:
            return self.prefill_seq_len, None
        # A whole image block must be in one chunk: widen the chunk to hold the longest block
        # (the ONNX graph's sequence axis is dynamic), and start blocks on chunk boundaries.
        block = [self.image_token_id, *self.adapter.block_token_ids]
        longest = max(longest_image_run(t, block) for t in token_lists)
        chunk = -(-max(longest, 1) // self.prefill_seq_len) * self.prefill_seq_len
        return chunk, [image_block_columns(t, block, chunk) for t in token_lists]

    def decode_inputs(
        self, rows: int, cross_embeds: np.ndarray | None = None, cross_mask: np.ndarray | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(inputs, outputs) that mean "text only" for decode steps: one zero embedding keeps the input bound.
        Cross-attention models keep each sequence's image rows and decode mask (``cross_embeds``,
        ``cross_mask``, by default the last call's) bound instead; with one graph the rows pass through in place."""
        if self.adapter.cross_attention:
            embeds = self.cross_embeds if cross_embeds is None else cross_embeds
            mask = self.cross_mask if cross_mask is None else cross_mask
            inputs = {VISION_EMBEDS: embeds, IMAGE_IDX: np.ones((rows, 1), np.int64), CROSS_ATTENTION_MASK: mask}
            outputs = {RETAINED_EMBEDS: embeds}
        else:
            inputs = {VISION_EMBEDS: self.placeholder, IMAGE_IDX: np.full((rows, 1), DECODE_IMAGE_IDX, np.int64)}
            outputs = {RETAINED_EMBEDS: np.zeros_like(self.placeholder)}
        if not self.one_graph:
            return inputs, {}
        return {**self.no_images, **inputs}, outputs

    def __call__(self, target, token_lists, rows_vision, embeds, rope) -> np.ndarray:
        """Next-token logits of each row. ``rows_vision``: each row's own vision units; ``embeds``: the
        rows' image embeddings in order, [1, n, hidden] (two graphs); ``rope``: per-row multimodal positions."""
        is_image = [np.equal(t, self.image_token_id) for t in token_lists]
        # A row's first image embedding follows all those of the rows before it.
        counts = np.array([m.sum() for m in is_image], dtype=np.int64)
        first_row = np.cumsum(counts) - counts
        seen_before = [np.r_[0, np.cumsum(m)] for m in is_image]  # image tokens before position p
        vision = _concat_units(rows_vision)
        n_units = len(vision["_tokens"])
        graph_vision = self.adapter.graph_inputs(vision) if self.one_graph and n_units else {}
        state = {"first": True, "out": None}
        cross_masks = None
        if self.adapter.cross_attention:  # HF's per-token image tiles of each prompt [len, images, tiles]
            cross_masks = [self.adapter.prompt_cross_mask(t, v, self.image_token_id) for t, v in zip(token_lists, rows_vision)]
            self.cross_mask = np.stack([m[-1:] for m in cross_masks])

        def run(ids: np.ndarray, pos: np.ndarray) -> np.ndarray:
            start = [int(p[p >= 0][0]) if (p >= 0).any() else 0 for p in pos]
            if cross_masks is not None:
                chunk_mask = np.stack([np.where((p >= 0)[:, None, None], m[np.maximum(p, 0)], 0) for p, m in zip(pos, cross_masks)])
                target.bind_inputs(**{CROSS_ATTENTION_MASK: chunk_mask})
            # cross-attention models: whether the sequence has seen its image; others: the row of the next image
            # embedding, or TEXT_ONLY_PREFILL_IMAGE_IDX where no prompt of the call holds an image
            if self.adapter.cross_attention:
                first = np.zeros_like(first_row)
            else:
                first = first_row if counts.sum() else np.full_like(first_row, TEXT_ONLY_PREFILL_IMAGE_IDX)
            idx = np.array([[first[r] + seen_before[r][s]] for r, s in enumerate(start)], dtype=np.int64)
            if rope is not None:
                target.bind_inputs(**{ROPE_POSITION_IDS: rope_positions(rope, pos, prefill=True)})
            if not self.one_graph:
                target.bind_inputs(**{VISION_EMBEDS: embeds, IMAGE_IDX: idx})
            elif state["first"] and n_units and counts.sum():
                # the graph's vision branch runs on this chunk; keep what it computed for the next ones
                total = int(counts.sum())
                shape = (1, total) if self.adapter.flat_embeddings else (n_units, total // n_units)
                shape = (n_units, 1) if self.adapter.cross_attention else shape  # one row per image slot
                state["out"] = np.zeros((*shape, self.hidden_size), np.float32)
                target.bind_inputs(**graph_vision, **{VISION_EMBEDS: self.placeholder, IMAGE_IDX: idx})
                target.bind_outputs(**{RETAINED_EMBEDS: state["out"]})
            else:
                fed_back = self.placeholder if state["out"] is None else state["out"].copy()
                if state["out"] is None and self.adapter.cross_attention:  # no image: every sequence's slots hold zeros
                    fed_back = np.zeros((len(token_lists) * self.max_images, 1, self.hidden_size), np.float32)
                state["out"] = np.zeros_like(fed_back)
                target.bind_inputs(**self.no_images, **{VISION_EMBEDS: fed_back, IMAGE_IDX: idx})
                target.bind_outputs(**{RETAINED_EMBEDS: state["out"]})
            state["first"] = False
            return target.run(ids, pos)

        chunk, columns = self.chunking(token_lists)
        logits = prefill(run, token_lists, len(token_lists), chunk, self.ctx_len, self.pad_id, columns)
        self.cross_embeds = embeds if not self.one_graph else state["out"]
        return logits


class ImageTextGeneration(TextGeneration):
    def __init__(
        self,
        session,
        tokenizer,
        eos_ids,
        prefiller: ImagePrefill,
        vision_session=None,
        rope: PromptRope | None = None,
        sampling=None,
    ):
        super().__init__(session, tokenizer, prefiller.prefill_seq_len, eos_ids, sampling)
        self.prefiller = prefiller
        self.vision_session = vision_session
        self.prompt_rope = rope  # host-side position rule (Qwen2-VL's get_rope_index)
        self._rows_vision: list[dict[str, np.ndarray]] = []  # each batch row's own vision units
        self._embeds: np.ndarray | None = None  # two graphs: the batch's image embeddings, [1, rows, hidden]
        self._rope: list[tuple[np.ndarray, int]] | None = None

    def _before_decode_step(self, position_ids: np.ndarray) -> None:
        if self._rope is not None:
            self.session.bind_inputs(**{ROPE_POSITION_IDS: rope_positions(self._rope, position_ids, prefill=False)})

    def _prefill(self, token_lists: list[list[int]]) -> np.ndarray:
        self._rope = prompt_rope(self.prompt_rope, token_lists, self._rows_vision)
        logits = self.prefiller(self.session, token_lists, self._rows_vision, self._embeds, self._rope)
        inputs, outputs = self.prefiller.decode_inputs(self.batch_size)
        self.session.bind_inputs(**inputs)
        if outputs:
            self.session.bind_outputs(**outputs)
        return logits

    def generate_images(
        self, token_lists: list[list[int]], vision_inputs: dict[str, np.ndarray], generation_len: int | None, streamer=None
    ) -> CloudAI100ExecInfo:
        for i, tokens in enumerate(token_lists):
            if len(tokens) > self.ctx_len:
                raise PromptTooLongError(f"Prompt {i} has {len(tokens)} tokens with its image, more than ctx_len={self.ctx_len}.")
        texts_all, ids_all, timings = [], [], []
        start = time.perf_counter()
        rows_vision, rows_embeds = prepare_images(self.prefiller, self.vision_session, token_lists, vision_inputs)
        ran_vision = self.vision_session is not None and len(vision_inputs["_tokens"])
        vision_time = time.perf_counter() - start if ran_vision else None
        for first in range(0, len(token_lists), self.batch_size):
            real = min(self.batch_size, len(token_lists) - first)
            rows = list(range(first, first + real)) + [first + real - 1] * (self.batch_size - real)  # pad with the last prompt
            self._rows_vision = [rows_vision[r] for r in rows]
            self._embeds = join_embeddings([rows_embeds[r] for r in rows], self.prefiller.hidden_size)
            batch_start = start if first == 0 else time.perf_counter()  # the first time to first token includes the vision graph
            texts, ids, timing = self.generate_batch(
                [],
                generation_len,
                streamer if self.batch_size == 1 else None,
                token_lists=[token_lists[r] for r in rows],
                first_index=first,
            )
            timing["start"] = batch_start
            texts_all.append(texts[:real])
            ids_all.append(ids[:real])
            timings.append(timing)
        return CloudAI100ExecInfo(self.batch_size, texts_all, ids_all, average_metrics(timings), vision_time=vision_time)


def prepare_images(
    prefiller: ImagePrefill, vision_session, token_lists: list[list[int]], vision_inputs: dict[str, np.ndarray]
) -> tuple[list[dict[str, np.ndarray]], list[np.ndarray | None]]:
    """Each prompt's own vision units, and (two graphs) its image embeddings [n, hidden], the vision
    graph run once for all prompts. Vision units (images, tiles) give their image tokens one after
    another in prompt order."""
    adapter = prefiller.adapter
    check_prompt_ids(token_lists, prefiller.embedding_rows, prefiller.image_token_id)
    image_tokens = np.array([sum(t == prefiller.image_token_id for t in row) for row in token_lists], dtype=np.int64)
    unit_tokens = vision_inputs["_tokens"]
    unit_end = np.cumsum(unit_tokens)
    if (int(unit_end[-1]) if len(unit_end) else 0) != image_tokens.sum():
        raise ValueError(
            f"The prompts hold {image_tokens.sum()} image tokens but the images give {unit_tokens.tolist()}: one image per placeholder."
        )
    row_units = np.r_[0, np.searchsorted(unit_end, np.cumsum(image_tokens), side="right")]  # units used up to each row's end
    if len(unit_tokens):
        rows_vision = [adapter.select_units(vision_inputs, np.arange(row_units[r], row_units[r + 1])) for r in range(len(token_lists))]
    else:  # no image in any prompt: each row takes the inputs that hold none as they are
        rows_vision = [vision_inputs] * len(token_lists)
    padded_vision = rows_vision
    if adapter.cross_attention:  # checked before any graph runs
        padded_vision = [adapter.pad_image_slots(v, prefiller.max_images, r) for r, v in enumerate(rows_vision)]
    if vision_session is None:
        if not prefiller.one_graph and len(unit_tokens):
            raise ValueError(
                "This model was compiled with skip_vision=True: it has no vision graph, so its prompts cannot hold images. "
                "Compile it without skip_vision, or send prompts without images."
            )
        if not prefiller.one_graph and adapter.cross_attention:  # every image slot of every row holds zeros, as below
            return padded_vision, [np.zeros((prefiller.max_images, prefiller.hidden_size), np.float32)] * len(token_lists)
        return padded_vision, [None] * len(token_lists)
    embeds_rows = np.zeros((0, prefiller.hidden_size), np.float32)
    if len(unit_tokens):
        # units of different sizes (Qwen2-VL's images) run one at a time: their attention then costs
        # the sum of the squares of their lengths, not the square of the sum
        groups = [[u] for u in range(len(unit_tokens))] if adapter.vision_per_unit else [list(range(len(unit_tokens)))]
        outputs = []
        for group in groups:
            embeds = vision_session.run(None, adapter.graph_inputs(adapter.select_units(vision_inputs, np.array(group))))[0]
            outputs.append(embeds.reshape(-1, embeds.shape[-1]))
        embeds_rows = np.concatenate(outputs)
    token_start = np.r_[0, np.cumsum(image_tokens)]
    rows_embeds = [embeds_rows[token_start[r] : token_start[r + 1]] for r in range(len(token_lists))]
    if adapter.cross_attention:  # every sequence holds max_images image slots; a padding slot's row is zeros
        rows_embeds = [np.pad(e, ((0, prefiller.max_images - len(e)), (0, 0))) for e in rows_embeds]
    return padded_vision, rows_embeds


def check_prompt_ids(token_lists: list[list[int]], embedding_rows: int | None, image_token_id: int | list[int]) -> None:
    """Every id of every prompt is an image token or a row of the text embedding table: ids from another model's
    processor would make the graph read past its table (image tokens may lie past it: GIT's, Kosmos-2's)."""
    if embedding_rows is None:
        return
    for i, tokens in enumerate(token_lists):
        ids = np.asarray(tokens, dtype=np.int64)
        outside = ids[((ids < 0) | (ids >= embedding_rows)) & ~np.isin(ids, image_token_id)]
        if outside.size:
            raise ValueError(
                f"Prompt {i} has the token id {int(outside[0])}, outside this model's embedding table [0, {embedding_rows}): "
                "its input_ids are not from this model's processor. Pass inputs=processor(images=..., text=...) made with "
                "the model's own processor (AutoProcessor.from_pretrained on its folder)."
            )


def join_embeddings(parts: list[np.ndarray | None], hidden_size: int) -> np.ndarray:
    """The rows' embeddings as the graph's ``vision_embeds`` [1, n, hidden] (one zero row when there are none)."""
    parts = [p for p in parts if p is not None and len(p)]
    return np.concatenate(parts)[None] if parts else np.zeros((1, 1, hidden_size), np.float32)


def prompt_rope(rope: PromptRope | None, token_lists, rows_vision) -> list[tuple[np.ndarray, int]] | None:
    """Each prompt's rotary positions and decode offset; None where the model has no such rule."""
    if rope is None:
        return None
    return [rope(t, v) for t, v in zip(token_lists, rows_vision)]


def _concat_units(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
