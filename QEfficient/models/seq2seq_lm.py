"""QEFFAutoModelForSeq2SeqLM: text encoder-decoders (T5, BART, Marian, mBART, Pegasus, M2M100, ...) as two graphs, the
encoder's cross keys/values bound to a retained-state decoder step (transform/seq2seq.py); greedy tokens equal to
transformers' ``generate`` with the checkpoint's generation rules (generation/seq2seq_generation.py).

QEfficient has no such class; this one follows its lifecycle (``from_pretrained`` -> ``compile`` -> ``generate``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSeq2SeqLM, GenerationConfig, PreTrainedModel

from QEfficient.compile.ort_cpu import read_artifact, warn_ignored_options, warn_once
from QEfficient.compile.weight_compression import compress_matmul_weights
from QEfficient.export.graph_names import ATTENTION_MASK, DECODER_ATTENTION_MASK, DECODER_INPUT_IDS, GLOBAL_ATTENTION_MASK, INPUT_IDS
from QEfficient.export.onnx_export import export_seq2seq_decoder_onnx, export_seq2seq_encoder_onnx
from QEfficient.export.seq2seq_graph_specs import GlobalAttentionSeq2SeqEncoderGraphSpec, Seq2SeqDecoderGraphSpec, Seq2SeqEncoderGraphSpec
from QEfficient.generation.beam_search import beam_settings
from QEfficient.generation.encoder_run import check_token_ids
from QEfficient.generation.exec_kv import print_perf
from QEfficient.generation.metrics import CloudAI100ExecInfo
from QEfficient.generation.sampling import SamplingParams
from QEfficient.generation.seq2seq_generation import UNAPPLIED, UNAPPLIED_WARPERS, Sampling, Seq2SeqGeneration, Seq2SeqRules
from QEfficient.models.base import EncoderDecoderModel, usable_positions
from QEfficient.runtime.ort_session import open_artifact_session, open_kv_session
from QEfficient.transform.adapters import longformer
from QEfficient.transform.adapters.seq2seq_types import PROVEN_SEQ2SEQ_TYPES
from QEfficient.transform.encoder_decoder import MODEL_TYPE as ENCODER_DECODER
from QEfficient.transform.encoder_decoder import QEffEncoderDecoderEncoder, two_vocabularies, unproven_halves
from QEfficient.transform.rewrites import apply_rewrites
from QEfficient.transform.seq2seq import GLOBAL_ATTENTION_TYPES, NESTED_DECODER_TYPES, QEffSeq2SeqDecoder, QEffSeq2SeqEncoder
from QEfficient.transform.vision_seq2seq import QEffVisionSeq2SeqDecoder
from QEfficient.utils.checks import check_generation_len, check_positive

SUPPORTED_TYPES = PROVEN_SEQ2SEQ_TYPES
ALLOW_ANY = "QEFF_ALLOW_ANY_ARCHITECTURE"


class QEFFAutoModelForSeq2SeqLM(EncoderDecoderModel):
    """>>> model = QEFFAutoModelForSeq2SeqLM.from_pretrained("path/to/t5-small")
    >>> model.compile(ctx_len=128)
    >>> model.generate(tokenizer, ["translate English to German: Hello"], generation_len=40).generated_texts
    """

    auto_class = AutoModelForSeq2SeqLM
    graph_kind = "seq2seq"
    export_graphs = (export_seq2seq_encoder_onnx, export_seq2seq_decoder_onnx)

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        kind = getattr(model.config, "model_type", None)
        if not getattr(model.config, "is_encoder_decoder", False):
            raise TypeError(f"{type(model).__name__} is not an encoder-decoder: load a causal LM with QEFFAutoModelForCausalLM.")
        unproven = unproven_halves(model.config) if kind == ENCODER_DECODER else None
        if unproven and os.environ.get(ALLOW_ANY) != "1":
            raise NotImplementedError(f"An EncoderDecoderModel with {unproven} is not proven here; {ALLOW_ANY}=1 tries it anyway.")
        if kind not in (*SUPPORTED_TYPES, ENCODER_DECODER) and os.environ.get(ALLOW_ANY) != "1":
            raise NotImplementedError(
                f"Encoder-decoder type {kind!r} is not proven here (supported: {', '.join(SUPPORTED_TYPES)}); "
                f"{ALLOW_ANY}=1 tries it anyway."
            )
        if kind == "bigbird_pegasus" and model.config.attention_type != "original_full":
            raise NotImplementedError(
                "BigBird-Pegasus's block-sparse attention is not exported: load it with "
                "hf_overrides={'attention_type': 'original_full'} (what transformers runs for inputs shorter than its blocks)."
            )
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.hf = model.eval()
        apply_rewrites(self.hf)  # methods that do not export as transformers writes them (transform/rewrites.py)
        if kind == ENCODER_DECODER:  # a text encoder and a causal-LM decoder: the image encoder-decoders' step
            self.encoder = QEffEncoderDecoderEncoder(self.hf, Seq2SeqEncoderGraphSpec)
            self.decoder = QEffVisionSeq2SeqDecoder(self.hf, self.encoder.num_layers, self.encoder.kv_shape())
        else:
            spec = GlobalAttentionSeq2SeqEncoderGraphSpec if kind in GLOBAL_ATTENTION_TYPES else Seq2SeqEncoderGraphSpec
            self.encoder = QEffSeq2SeqEncoder(self.hf, spec)
            with torch.no_grad():  # the cross keys' heads and width are the decoder cache's
                key = self.encoder(*self.encoder.dummy_inputs())[0]
            self.decoder = QEffSeq2SeqDecoder(self.hf, (key.shape[1], key.shape[-1]))
        self.qpc_paths: dict[str, Path] | None = None

    def _check_max_positions(self, name: str, length: int, config=None) -> None:
        """Where the halves keep their own configs (EncoderDecoderModel, T5Gemma), their position tables: the
        decoder's for ctx_len, the encoder's for inputs."""
        if config is None and self.config.model_type in GLOBAL_ATTENTION_TYPES:  # LED: a table per half
            half = "decoder" if name == "ctx_len" else "encoder"
            table = getattr(self.config, f"max_{half}_position_embeddings")
            if length > table:
                raise ValueError(f"{name} ({length}) exceeds the model's max_{half}_position_embeddings ({table}).")
            return
        if config is None:
            config = self._half_config("decoder" if name == "ctx_len" else "encoder")
        super()._check_max_positions(name, length, config)

    def _half_config(self, half: str):
        """The config of the encoder or decoder half where the model nests it (T5Gemma 2's encoder text config), else
        the model's."""
        nested = getattr(self.config, half, None) if self.config.model_type in (ENCODER_DECODER, *NESTED_DECODER_TYPES) else None
        return getattr(nested, "text_config", None) or nested or self.config

    def _vocab_size(self) -> int:
        """The rows of the decoder's logits (its output embeddings, where the model names them)."""
        head = self.hf.get_output_embeddings() or getattr(self.decoder, "text_decoder", self.hf).get_output_embeddings()
        return int(head.weight.shape[0])

    @property
    def generation_config(self) -> GenerationConfig:
        """The generation config generate() follows: the checkpoint's (BLIP's: what its own generate passes)."""
        return self.hf.generation_config

    def two_vocabularies(self) -> bool:
        """Whether the prompt's and the answer's tokens come from two vocabularies (an EncoderDecoderModel such as
        BERT2GPT-2): one tokenizer cannot write one and read the other."""
        return two_vocabularies(self.config)

    def max_input_positions(self) -> int | None:
        """The longest input the encoder's position table takes (None: no table)."""
        if self.config.model_type in GLOBAL_ATTENTION_TYPES:  # LED's inputs padded to its window must fit the table
            multiple = longformer.window_multiple(self.config)
            return self.config.max_encoder_position_embeddings // multiple * multiple
        return usable_positions(self._half_config("encoder"))

    def compile(
        self,
        onnx_path: str | os.PathLike | None = None,
        compile_dir: str | os.PathLike | None = None,
        *,
        ctx_len: int = 128,
        batch_size: int = 1,
        num_cores: int = 16,
        mxfp6_matmul: bool = False,
        **compiler_options,
    ) -> dict[str, Path]:
        """Build the encoder and decoder artifacts: {"encoder_qpc_path": ..., "decoder_qpc_path": ...}. ``ctx_len``: the
        decoder's cache slots (its start token and the generated tokens); inputs of any length go to the encoder.
        ``mxfp6_matmul``: the decoder's MatMul weights in 8-bit blocks, as for causal LMs."""
        check_positive(ctx_len=ctx_len, batch_size=batch_size, num_cores=num_cores)
        self._check_max_positions("ctx_len", ctx_len)
        warn_ignored_options("compile()", compiler_options)
        if onnx_path is not None:
            raise ValueError(f"{type(self).__name__} builds two graphs; call compile() without onnx_path (it exports them).")
        encoder_onnx, decoder_onnx = self.export()
        layers = self.decoder.num_layers
        encoder = self._build_artifact(
            encoder_onnx,
            compile_dir,
            {"kind": f"{self.graph_kind}-encoder", "num_layers": layers},
            {"backend": "onnxruntime-cpu", "batch_size": batch_size},
            self._encoder_specializations(batch_size),
        )
        manifest = {
            "num_layers": layers,
            "kv_shape": list(self.decoder.kv_shape(batch_size, ctx_len)),
            "continuous_batching": False,
            "kv_dtype": "float32",
            "shared_cross": self.decoder.shared_cross,  # one row of cross keys/values per input, whatever its beams
            "vocab_size": self._vocab_size(),
            "num_cores": num_cores,
            "model_name": self.model_name,
        }
        params = {"backend": "onnxruntime-cpu", "ctx_len": ctx_len, "batch_size": batch_size, "mxfp6_matmul": mxfp6_matmul}
        decoder = self._build_artifact(
            decoder_onnx,
            compile_dir,
            manifest,
            params,
            Seq2SeqDecoderGraphSpec.specializations(1, ctx_len, batch_size),
            rewrite=compress_matmul_weights if mxfp6_matmul else None,
        )
        return self._compiled(encoder, decoder, num_cores)

    def generate(
        self,
        tokenizer=None,
        prompts: str | list[str] | None = None,
        generation_len: int | None = None,
        *,
        inputs: dict | None = None,
        min_new_tokens: int | None = None,
        forced_bos_token_id: int | None = None,
        num_beams: int | None = None,
        length_penalty: float | None = None,
        early_stopping: bool | str | None = None,
        num_return_sequences: int | None = None,
        stream: bool = False,
        input_ids=None,
        attention_mask=None,
        max_new_tokens: int | None = None,
        token_type_ids=None,
        do_sample: bool | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        streamer=None,
        decoder_input_ids=None,
        top_logprobs: int | None = None,
        global_attention_mask=None,
    ) -> CloudAI100ExecInfo:
        """Outputs for ``prompts`` (tokenized by ``tokenizer``, padded) or ``inputs`` (a tokenizer's output: input_ids
        and attention_mask). ``generation_len``: the most new tokens (None: the checkpoint's maximum, within the
        compiled ctx_len); ``min_new_tokens`` and ``forced_bos_token_id`` (mBART's, NLLB's and M2M100's target
        language: ``tokenizer.convert_tokens_to_ids("de_DE")``) as transformers' generate takes them. Beam search where
        ``num_beams`` (else the checkpoint's) is above 1, with ``length_penalty``, ``early_stopping`` and
        ``num_return_sequences`` as in transformers (None: the checkpoint's); greedy otherwise, or sampled where
        ``do_sample`` (else the checkpoint's) is True, with ``temperature``, ``top_k`` and ``top_p`` (None: the
        checkpoint's, else transformers' 1.0, 50, 1.0) and ``seed`` (numpy's generators, one per input: not torch's draws).
        ``generated_ids[i]``: batch i's decoder sequences (start token first, padded; with beams, each input's
        ``num_return_sequences`` best in turn); ``generated_texts[i]``: their text, where a tokenizer is given.
        transformers' spelling works too: ``generate(**tokenizer(texts, return_tensors="pt", padding=True),
        max_new_tokens=40)`` (``token_type_ids``, which some tokenizers add, is not read: these models take none).
        ``streamer``: a transformers streamer (``TextStreamer``, ``TextIteratorStreamer``: one input), given the tokens as
        they are decoded, greedy or sampled (not with beams, as in transformers). ``decoder_input_ids`` [inputs, P]: the
        decoder's first tokens (a task prompt, as Donut's), the start token put before them where transformers puts it;
        the outputs begin with them. ``top_logprobs`` N (greedy or sampled): ``info.logprobs`` holds, per output row and
        new token, (its log-probability, the N likeliest ids, their log-probabilities), from the decoder's logits before
        the generation rules (vLLM's raw logprobs; transformers' ``output_logits`` log-softmaxed). ``global_attention_mask``
        [inputs, length] (LED only; or in ``inputs``): 1 where a token attends globally, as transformers' LED takes it
        (its model cards mark the first token); None: none does."""
        if self.qpc_paths is None:
            raise TypeError("Please run compile() before generate().")
        tokenizer, inputs = _transformers_spelling(tokenizer, prompts, inputs, input_ids, attention_mask)
        if decoder_input_ids is None and hasattr(inputs, "get"):  # a processor's decoder prompt (Pix2Struct's text)
            decoder_input_ids, padding = self._processor_decoder_prompt(inputs)
            if decoder_input_ids is not None and padding is not None and not np.asarray(padding).all():
                raise ValueError(
                    "The decoder prompts have different lengths (padded): generate the images with different texts one by one."
                )
        if max_new_tokens is not None:
            if generation_len is not None and generation_len != max_new_tokens:
                raise ValueError(f"generation_len={generation_len} and max_new_tokens={max_new_tokens} disagree: pass one of them.")
            generation_len = max_new_tokens
        generation_len = check_generation_len(generation_len)
        if top_logprobs is not None and (not isinstance(top_logprobs, int) or isinstance(top_logprobs, bool) or top_logprobs < 0):
            raise ValueError(f"top_logprobs must be a whole number >= 0 (the alternatives per token), got {top_logprobs!r}.")
        sampling = self._sampling(do_sample, temperature, top_k, top_p, seed)
        samples = 1
        if sampling is None:
            beams = beam_settings(self.generation_config, num_beams, length_penalty, early_stopping, num_return_sequences)
        else:  # several samples of an input are rows of their own, each with its own generator
            if (num_beams or 1) > 1:
                raise NotImplementedError(
                    "Beam sampling (do_sample with num_beams > 1) is not supported: pass num_beams=1 or do_sample=False."
                )
            if num_beams is None and (self.generation_config.num_beams or 1) > 1:  # (num_beams=1 given: what it asks for)
                warn_once(
                    f"seq2seq-sample-beams:{self.model_name}",
                    f"{self.model_name}'s generation config asks for num_beams={self.generation_config.num_beams}; sampling "
                    "draws one sequence per row instead (transformers would run beam sampling).",
                )
            beams = None
            samples = num_return_sequences or self.generation_config.num_return_sequences or 1
            check_positive(num_return_sequences=samples)
        encoder_inputs = self._encoder_inputs(tokenizer, prompts, inputs, global_attention_mask)
        count = len(next(iter(encoder_inputs.values())))
        if samples > 1:
            encoder_inputs = {name: np.repeat(value, samples, 0) for name, value in encoder_inputs.items()}
        self._warn_unapplied(sampling is not None)
        encoder_path, decoder_path = self.qpc_paths["encoder_qpc_path"], self.qpc_paths["decoder_qpc_path"]
        decoder_manifest = read_artifact(decoder_path)
        rows = decoder_manifest["kv_shape"][0] * (beams.num_beams if beams else 1)
        cores = (self._num_cores,)
        encoder = self._session(
            "encoder", (str(encoder_path), *cores), lambda: open_artifact_session(encoder_path, self._num_cores, spin=False)
        )
        decoder = self._session(
            "decoder", (str(decoder_path), *cores, rows), lambda: open_kv_session(decoder_path, self._num_cores, rows=rows)
        )
        cross_names = Seq2SeqEncoderGraphSpec(read_artifact(encoder_path)["num_layers"]).output_names
        rules = Seq2SeqRules.from_generation_config(self.generation_config, self.config, min_new_tokens, forced_bos_token_id)
        if rules.forced_bos_token_id is not None:  # (another tokenizer's language code: past the table, or wrapped round it)
            check_token_ids(np.asarray([rules.forced_bos_token_id]), self._vocab_size(), "forced_bos_token_id")
        decode = (lambda row: self.text_of(tokenizer, row)) if tokenizer is not None else None
        if decode is not None and self.two_vocabularies():
            decode = None
            warn_once(
                f"two-vocabularies:{self.model_name}",
                f"{self.model_name}'s decoder reads another vocabulary than its encoder: generated_texts are left empty; "
                "decode generated_ids with the decoder's tokenizer.",
            )
        shared = bool(decoder_manifest.get("shared_cross"))
        generation = Seq2SeqGeneration(encoder, decoder, rules, cross_names, beams, shared, sampling)
        prompt = self.decoder_prompt(decoder_input_ids, count, rules.decoder_start_token_id)
        if prompt is not None and samples > 1:
            prompt = np.repeat(prompt, samples, 0)
        info = generation.generate(encoder_inputs, generation_len, decode, streamer, prompt, top_logprobs)
        if stream:
            print_perf(info)
        return info

    @staticmethod
    def _processor_decoder_prompt(inputs) -> tuple:
        """(the decoder prompt a processor's output holds, its mask): ``decoder_input_ids`` (Pix2Struct's text)."""
        return inputs.get(DECODER_INPUT_IDS), inputs.get(DECODER_ATTENTION_MASK)

    def text_of(self, tokenizer, ids) -> str:
        """A decoder sequence's text, as transformers' examples decode this kind of model's output."""
        return tokenizer.decode(ids, skip_special_tokens=True)

    @staticmethod
    def _encoder_specializations(batch_size: int) -> dict:
        return Seq2SeqEncoderGraphSpec.specializations(batch_size, 0)  # inputs of any length

    def decoder_prompt(self, decoder_input_ids, inputs: int, start: int) -> np.ndarray | None:
        """``decoder_input_ids`` as transformers' generate starts from them: [inputs, P] int64, the start token put
        first where no row begins with it (not for Donut, whose task prompts begin the sequence themselves)."""
        if decoder_input_ids is None:
            return None
        ids = decoder_input_ids.detach().cpu().numpy() if isinstance(decoder_input_ids, torch.Tensor) else np.asarray(decoder_input_ids)
        ids = ids.astype(np.int64)
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2 or ids.shape[1] == 0 or len(ids) not in (1, inputs):
            raise ValueError(f"decoder_input_ids must be [{inputs} or 1, length >= 1], got {list(ids.shape)}.")
        ids = np.repeat(ids, inputs // len(ids), 0)
        check_token_ids(ids, self._vocab_size(), "decoder_input_ids")
        if not self._prompt_starts_sequence() and (ids[:, 0] != start).all():
            ids = np.concatenate([np.full((len(ids), 1), start, np.int64), ids], 1)
        return ids

    def _prompt_starts_sequence(self) -> bool:
        """Whether a decoder prompt is taken as it is (transformers' exception for Donut)."""
        return False

    def _warn_unapplied(self, sampling: bool = False) -> None:
        """The checkpoint's rules not restated here (and, when sampling, its warpers not restated) are named once."""
        g = self.generation_config
        neutral = {**UNAPPLIED, **(UNAPPLIED_WARPERS if sampling else {})}
        unapplied = [f"{key}={getattr(g, key)!r}" for key, value in neutral.items() if getattr(g, key, value) not in (value, None)]
        unapplied += [f"num_beam_groups={g.num_beam_groups}"] if (g.num_beam_groups or 1) > 1 else []
        if unapplied:
            warnings.warn(f"generate() does not apply the checkpoint's {', '.join(unapplied)}.", stacklevel=3)

    def _sampling(self, do_sample, temperature, top_k, top_p, seed) -> Sampling | None:
        """transformers' sampling where the call (else the checkpoint) sets do_sample, its warpers as transformers
        reads them; without it, warper settings are named in a warning, as transformers does."""
        g = self.generation_config
        sample = do_sample if do_sample is not None else bool(g.do_sample)
        given = {k: v for k, v in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p)) if v is not None}
        if not sample:
            if given:
                warnings.warn(f"{sorted(given)} apply when sampling: pass do_sample=True too (decoding greedily).", stacklevel=3)
            return None
        settings = Sampling(
            temperature=float(temperature if temperature is not None else (g.temperature if g.temperature is not None else 1.0)),
            top_k=top_k if top_k is not None else (g.top_k if g.top_k is not None else 50),
            top_p=top_p if top_p is not None else (g.top_p if g.top_p is not None else 1.0),
            min_p=getattr(g, "min_p", None),
            seed=seed,
        )
        # the same checks as the causal LM's
        SamplingParams(settings.temperature, settings.top_k, settings.top_p, seed=seed, min_p=settings.min_p)
        if settings.temperature <= 0:
            raise ValueError(f"temperature must be > 0 to sample, got {settings.temperature} (for greedy decoding leave do_sample out).")
        return settings

    def _encoder_inputs(self, tokenizer, prompts, inputs, global_attention_mask=None) -> dict[str, np.ndarray]:
        """The encoder graph's inputs by name, one row per input (``_inputs``); LED's also its global attention mask,
        all padded to a multiple of its window as transformers pads them."""
        encoder_inputs = self._inputs(tokenizer, prompts, inputs)
        if global_attention_mask is None and hasattr(inputs, "get"):
            global_attention_mask = inputs.get(GLOBAL_ATTENTION_MASK)
        if self.config.model_type in GLOBAL_ATTENTION_TYPES:
            return self._global_attention_inputs(encoder_inputs[INPUT_IDS], encoder_inputs[ATTENTION_MASK], global_attention_mask)
        if global_attention_mask is not None:
            raise ValueError(f"global_attention_mask is LED's (Longformer attention); {self.config.model_type} takes none.")
        return encoder_inputs

    def _inputs(self, tokenizer, prompts, inputs) -> dict[str, np.ndarray]:
        """The encoder graph's inputs by name, one row per input: here the token ids and their mask."""
        if inputs is None:
            if tokenizer is None or prompts is None:
                raise ValueError("generate() needs a tokenizer and prompts, or inputs (a tokenizer's input_ids and attention_mask).")
            prompts = [prompts] if isinstance(prompts, str) else list(prompts)
            if not prompts or not all(isinstance(p, str) for p in prompts):
                raise ValueError("prompts must be a string or a non-empty list of strings.")
            inputs = tokenizer(prompts, padding=True, return_tensors="np")
        ids = np.asarray(inputs[INPUT_IDS].cpu() if isinstance(inputs[INPUT_IDS], torch.Tensor) else inputs[INPUT_IDS], np.int64)
        given = inputs.get(ATTENTION_MASK)
        if given is None:  # as transformers builds it: the pad token masked where it is not also the end token
            pad, eos = self.generation_config.pad_token_id, self.generation_config.eos_token_id
            masked = pad is not None and pad not in (eos if isinstance(eos, (list, tuple)) else [eos]) and (ids == pad).any()
            mask = (ids != pad).astype(np.int64) if masked else np.ones_like(ids)
        else:
            mask = np.asarray(given.cpu() if isinstance(given, torch.Tensor) else given, np.int64)
        if ids.ndim != 2 or mask.shape != ids.shape or ids.shape[1] == 0:
            raise ValueError(
                f"input_ids and attention_mask must be [batch, length >= 1] alike, got {list(ids.shape)} and {list(mask.shape)}."
            )
        self._check_max_positions("the input's length", ids.shape[1])
        check_token_ids(ids, _table_rows(self.hf))
        return {INPUT_IDS: ids, ATTENTION_MASK: mask}

    def _global_attention_inputs(self, ids: np.ndarray, mask: np.ndarray, global_mask) -> dict[str, np.ndarray]:
        """LED's encoder inputs: padded to a multiple of the window with the pad token, masked; no global token by default."""
        if global_mask is None:
            global_mask = np.zeros_like(ids)
        global_mask = np.asarray(global_mask.cpu() if isinstance(global_mask, torch.Tensor) else global_mask, np.int64)
        if global_mask.shape != ids.shape:
            raise ValueError(f"global_attention_mask must be shaped as input_ids {list(ids.shape)}, got {list(global_mask.shape)}.")
        length = longformer.padded_length(self.config, ids.shape[1])
        self._check_max_positions("the input's length padded to the attention window", length)
        widths = ((0, 0), (0, length - ids.shape[1]))
        return {
            INPUT_IDS: np.pad(ids, widths, constant_values=self.config.pad_token_id),
            ATTENTION_MASK: np.pad(mask, widths),
            GLOBAL_ATTENTION_MASK: np.pad(global_mask * mask, widths),
        }


def _table_rows(model) -> int | None:
    """The rows of the model's input embedding table (None where it names no plain one)."""
    try:
        rows = getattr(model.get_input_embeddings(), "num_embeddings", None)
    except (NotImplementedError, AttributeError):
        return None
    return int(rows) if isinstance(rows, int) else None


def _transformers_spelling(tokenizer, prompts, inputs, input_ids, attention_mask) -> tuple:
    """(tokenizer, inputs) of a call in transformers' spelling: ``generate(input_ids, ...)`` or
    ``generate(input_ids=..., attention_mask=...)``; the inputs given one way only."""
    if tokenizer is not None and not callable(tokenizer):  # generate(input_ids, ...), as transformers' generate
        tokenizer, input_ids = None, tokenizer if input_ids is None else input_ids
    if input_ids is None and attention_mask is not None:
        raise ValueError("attention_mask was given without input_ids: pass both (or inputs=, a tokenizer's output).")
    if (input_ids is not None and (inputs is not None or prompts is not None)) or (inputs is not None and prompts is not None):
        raise ValueError("Pass the inputs one way: prompts (with a tokenizer), inputs=..., or input_ids=/attention_mask=.")
    if input_ids is not None:
        inputs = {INPUT_IDS: input_ids} | ({ATTENTION_MASK: attention_mask} if attention_mask is not None else {})
    return tokenizer, inputs


__all__ = ["QEFFAutoModelForSeq2SeqLM"]
