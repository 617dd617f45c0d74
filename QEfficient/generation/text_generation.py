"""Stage 6: chunked prefill, greedy decode, batching, streaming and timing over a KVCacheSession."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterable

import numpy as np

from QEfficient.generation.metrics import CloudAI100ExecInfo, PerfMetrics
from QEfficient.generation.sampling import SamplingParams, check_rows, seeded_apart, token_chooser
from QEfficient.runtime.ort_session import KVCacheSession
from QEfficient.utils.checks import check_generation_len, check_strings

logger = logging.getLogger(__name__)


def tokenize_prompts(tokenizer, prompts: list[str], ctx_len: int, vocab: int | None = None, first_index: int = 0) -> list[list[int]]:
    """Each prompt's token ids, refused (named by its index from ``first_index``) where it is not text, empty, longer
    than ``ctx_len`` or (``vocab``) past the model's table; infer calls it before the model is loaded too."""
    check_strings("Prompt", prompts, first_index)
    token_lists = tokenizer(list(prompts))["input_ids"]
    for i, tokens in enumerate(token_lists, start=first_index):
        if not tokens:
            raise ValueError(f"Prompt {i} is empty after tokenization; give at least one token.")
        if len(tokens) > ctx_len:
            raise PromptTooLongError(
                f"Prompt {i} has {len(tokens)} tokens, which does not fit in ctx_len={ctx_len}. "
                f"Compile with ctx_len >= {len(tokens)} (plus room for the tokens to generate) or shorten the prompt."
            )
        if vocab is not None and max(tokens) >= vocab:  # another model's tokenizer: the graph would read past its table
            raise ValueError(
                f"Prompt {i} has the token id {max(tokens)}, outside this model's vocabulary [0, {vocab}): the tokenizer "
                "is not this model's. Pass the model's own tokenizer (AutoTokenizer.from_pretrained on its folder)."
            )
    return token_lists


class PromptTooLongError(ValueError):
    pass


def eos_token_ids(tokenizer, generation_config=None) -> set[int]:
    """The model's generation config decides, as in transformers' generate(); else the tokenizer's EOS."""
    source = getattr(generation_config, "eos_token_id", None)
    if source is None:
        source = tokenizer.eos_token_id
    if source is None:
        return set()
    return {int(source)} if isinstance(source, int) else {int(i) for i in source}


def warn_past_context(generation_len: int | None, ctx_len: int, token_lists: list[list[int]], stacklevel: int) -> None:
    """A warning where ``generation_len`` is more than ``ctx_len`` leaves after the longest prompt: the output will be
    shorter than asked for (shown by default: that is a surprise)."""
    room = ctx_len - max(len(t) for t in token_lists) + 1
    if generation_len is not None and generation_len > room:
        warnings.warn(
            f"generation_len={generation_len} is more than ctx_len={ctx_len} leaves after the longest prompt "
            f"({room} tokens): generation stops at ctx_len. Compile with a larger ctx_len for longer outputs.",
            stacklevel=stacklevel,
        )


class TextGeneration:
    """Greedy generation for prompts in batches of the compiled ``batch_size``."""

    rows_per_prompt = 1  # output rows per prompt (beam search's num_return_sequences)

    def __init__(
        self,
        session: KVCacheSession,
        tokenizer,
        prefill_seq_len: int,
        eos_ids: Iterable[int],
        sampling: SamplingParams | None = None,
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.batch_size = session.batch_size
        self.ctx_len = session.ctx_len
        self.prefill_seq_len = prefill_seq_len
        self.eos_ids = np.array(sorted(eos_ids), dtype=np.int64)
        self.sampling = sampling or SamplingParams()
        check_rows(self.sampling, self.batch_size, "batch rows")
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (self.eos_ids[0] if len(self.eos_ids) else 0))

    def tokenize(self, prompts: list[str], first_index: int = 0) -> list[list[int]]:
        """Token ids of each prompt; errors name a prompt by its index in the caller's list (``first_index`` + i)."""
        return tokenize_prompts(self.tokenizer, prompts, self.ctx_len, getattr(self.session, "vocab_size", None), first_index)

    def _prefill(self, token_lists: list[list[int]]) -> np.ndarray:
        return prefill(self.session.run, token_lists, self.batch_size, self.prefill_seq_len, self.ctx_len, self.pad_id)

    def _before_decode_step(self, position_ids: np.ndarray) -> None:
        """Bind what a decode step needs beyond ids and positions (multimodal rotary positions)."""

    def generate_batch(
        self,
        prompts: list[str],
        generation_len: int | None,
        streamer=None,
        token_lists: list[list[int]] | None = None,
        first_index: int = 0,
    ) -> tuple[list[str], np.ndarray, dict]:
        """One batch (exactly batch_size prompts, or their token lists; ``first_index``: the first
        prompt's index among all prompts). Returns texts, ids [B, n] and raw timings. ``streamer``: transformers'
        (its ``put`` gets the first row's prompt, then its tokens, as transformers' generate feeds it: ``skip_prompt``
        leaves the prompt out), or one with ``put_rows(tokens, active)`` that gets every row's each step and which rows
        were still generating."""
        start = time.perf_counter()
        token_lists = token_lists if token_lists is not None else self.tokenize(prompts, first_index)
        if streamer is not None and not hasattr(streamer, "put_rows"):
            streamer.put(np.asarray(token_lists[:1], dtype=np.int64))
        self.session.reset()
        lengths = np.array([len(t) for t in token_lists], dtype=np.int64)
        # Each row may fill the cache: its last generated token needs no slot of its own.
        capacity = self.ctx_len - lengths + 1
        limit = capacity if generation_len is None else np.minimum(capacity, generation_len)
        out = np.full((self.batch_size, int(limit.max())), self.pad_id, dtype=np.int64)

        choose = token_chooser(seeded_apart(self.sampling, first_index), self.batch_size, self.session.logits.shape()[-1])
        choose.prime(token_lists)
        next_tok = choose(self._prefill(token_lists))
        first_token_time = time.perf_counter()
        out[:, 0] = next_tok
        n_gen = np.ones(self.batch_size, dtype=np.int64)
        done = np.isin(next_tok, self.eos_ids) | (n_gen >= limit)
        rows_streamer = streamer if hasattr(streamer, "put_rows") else None
        if rows_streamer is not None:
            rows_streamer.put_rows(next_tok.copy(), np.ones(self.batch_size, bool))
        elif streamer is not None:
            streamer.put(next_tok[:1])

        position = lengths.copy()
        ids_step = np.empty((self.batch_size, 1), dtype=np.int64)
        pos_step = np.empty((self.batch_size, 1), dtype=np.int64)
        steps = 0
        while not done.all():
            ids_step[:, 0] = next_tok
            pos_step[:, 0] = np.where(done, -1, position)  # finished rows idle on a padding slot
            self._before_decode_step(pos_step)
            next_tok = choose(self.session.run(ids_step, pos_step))
            steps += 1
            active = ~done
            out[active, n_gen[active]] = next_tok[active]
            n_gen += active
            position += 1
            done |= active & (np.isin(next_tok, self.eos_ids) | (n_gen >= limit))
            if rows_streamer is not None:
                rows_streamer.put_rows(next_tok.copy(), active)
            elif streamer is not None and active[0]:
                streamer.put(next_tok[:1])
        end = time.perf_counter()
        if streamer is not None:
            streamer.end()
        texts = [self.tokenizer.decode(out[r, : n_gen[r]], skip_special_tokens=True) for r in range(self.batch_size)]
        timing = {"start": start, "first_token": first_token_time, "end": end, "decode_steps": steps}
        return texts, out, timing

    def generate(self, prompts: list[str], generation_len: int | None = None, stream: bool = True) -> CloudAI100ExecInfo:
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts:
            raise ValueError("No prompts given: pass at least one prompt string.")
        generation_len = check_generation_len(generation_len)
        # every prompt checked before the first is generated: a bad one at the end wastes no work
        token_lists = self.tokenize(prompts)
        warn_past_context(generation_len, self.ctx_len, token_lists, stacklevel=4)
        all_texts, all_ids, timings = [], [], []
        for first in range(0, len(prompts), self.batch_size):
            batch = prompts[first : first + self.batch_size]
            real = len(batch)
            batch = batch + [batch[-1]] * (self.batch_size - real)  # a short last batch is padded, then trimmed
            tokens = token_lists[first : first + self.batch_size]
            tokens = tokens + [tokens[-1]] * (self.batch_size - real)
            streamer = None
            if stream and self.batch_size == 1:
                print(f"\nPrompt : {batch[0]}\nCompletion :", flush=True)
                from transformers import TextStreamer  # here: transformers' package costs ~26 MB of RSS to import

                streamer = TextStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)  # (printed above)
            texts, ids, timing = self.generate_batch(batch, generation_len, streamer, token_lists=tokens, first_index=first)
            keep = real * self.rows_per_prompt
            all_texts.append(texts[:keep])
            all_ids.append(ids[:keep])
            timings.append(timing)
            if stream and self.batch_size > 1:
                for prompt, text in zip(batch[:real], texts[: keep : self.rows_per_prompt]):
                    print(f"\nPrompt : {prompt}\nCompletion : {text}", flush=True)
        return CloudAI100ExecInfo(
            batch_size=self.batch_size,
            generated_texts=all_texts,
            generated_ids=all_ids,
            perf_metrics=average_metrics(timings),
            prompts=prompts,
        )


def prefill(
    run, token_lists: list[list[int]], rows: int, chunk: int, ctx_len: int, pad_id: int, columns: list[np.ndarray] | None = None
) -> np.ndarray:
    """Run prompts through ``run(ids, pos)`` in chunks of ``chunk`` columns, right-padded; returns each
    row's next-token logits [rows, V].

    The last chunk is only as wide as the longest prompt needs: the graph's sequence axis is
    dynamic, so padding it to a full chunk would only add work. It also means that, without
    ``columns``, a prompt that fills the context has no padding after its last token (padding
    writes to the cache's last slot).
    ``columns[row]`` places a row's tokens on the grid when they must not simply follow each other
    (a block that has to stay inside one chunk); the skipped cells are padding.
    """
    lengths = np.array([len(t) for t in token_lists])
    if columns is None:
        columns = [np.arange(n) for n in lengths]
    last_col = np.array([int(c[-1]) for c in columns])
    width = int(last_col.max()) + 1
    ids = np.full((rows, width), pad_id, dtype=np.int64)
    pos = np.full((rows, width), -1, dtype=np.int64)
    for row, (tokens, cols) in enumerate(zip(token_lists, columns)):
        ids[row, cols] = tokens
        pos[row, cols] = np.arange(len(tokens))
    for row in np.flatnonzero(lengths == ctx_len):
        # Padding writes to the last slot: it must not share a chunk with this row's real write there.
        # Only a placed layout (columns) can put padding there; plain rows end the last chunk.
        first = int(last_col[row]) // chunk * chunk
        if (pos[row, first : first + chunk] < 0).any():
            raise PromptTooLongError(
                f"Prompt {row} fills ctx_len={ctx_len} exactly and another prompt's image block moved the chunk grid: "
                "compile with a larger ctx_len, or run it in a batch of its own."
            )
    last_logits = None
    for start in range(0, width, chunk):
        logits = run(ids[:, start : start + chunk], pos[:, start : start + chunk])
        if last_logits is None:
            last_logits = np.empty_like(logits)
        ends_here = (last_col >= start) & (last_col < start + chunk)
        last_logits[ends_here] = logits[ends_here]
    return last_logits


def average_metrics(timings: list[dict]) -> PerfMetrics:
    prefill, decode, total_perf, total = [], [], [], []
    for t in timings:
        ttft = t["first_token"] - t["start"]
        decode_time = t["end"] - t["first_token"]
        total_time = t["end"] - t["start"]
        prefill.append(ttft)
        decode.append(t["decode_steps"] / decode_time if t["decode_steps"] else 0.0)
        total_perf.append((t["decode_steps"] + 1) / total_time)
        total.append(total_time)
    return PerfMetrics(
        prefill_time=float(np.mean(prefill)),
        decode_perf=float(np.mean(decode)),
        total_perf=float(np.mean(total_perf)),
        total_time=float(np.sum(total)),
    )
