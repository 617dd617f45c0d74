"""QEFFAutoModelForTDT and QEFFAutoModelForRNNT: transducer speech recognizers (transformers' ``AutoModelForTDT``,
``AutoModelForRNNT``: Parakeet's, and Nemotron ASR's over whole clips) as an encoder graph and a decoding-step graph
(transform/transducer.py), decoded greedily by the host as transformers' ``generate`` decodes them
(generation/transducer_decoding.py).

``generate(processor(audio, sampling_rate=16000, return_tensors="pt"))`` returns transformers'
ParakeetRNNTGenerateOutput: ``sequences`` (from the start token, blanks included) and ``durations`` (each step's frame
advance), which ``processor.batch_decode(out.sequences, skip_special_tokens=True)`` and ``processor.decode(...,
durations=...)`` read as they read transformers'. A batch is decoded together, as transformers decodes it: a row that
has walked past its audio goes on until every row has (or, where the generation config names an eos token, pads). The
step graph runs the whole batch at once, whatever ``compile(batch_size=...)`` says (that is the encoder's).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForRNNT, AutoModelForTDT, PreTrainedModel
from transformers.models.parakeet.generation_parakeet import ParakeetRNNTGenerateOutput

from QEfficient.compile.ort_cpu import warn_ignored_options
from QEfficient.compile.weight_compression import quantize_dynamic_int8
from QEfficient.export.graph_names import ATTENTION_MASK, DECODER_INPUT_IDS, INPUT_FEATURES
from QEfficient.export.task_graph_specs import (
    PROMPT_IDS,
    TRANSDUCER_KIND,
    PromptedTransducerEncoderGraphSpec,
    TransducerEncoderGraphSpec,
    TransducerStepGraphSpec,
)
from QEfficient.generation.encoder_run import run_in_batches
from QEfficient.generation.transducer_decoding import TransducerRule, greedy_transducer
from QEfficient.loading.hf_loader import load_config
from QEfficient.loading.model_path import resolve_model_path
from QEfficient.models.base import GraphArtifact, QEFFBaseModel
from QEfficient.transform.transducer import (
    NUM_LOOKAHEAD_TOKENS,
    PROMPTED_TRANSDUCERS,
    QEffTransducerEncoder,
    QEffTransducerStep,
    check_transducer,
    check_transducer_type,
    lookahead_kwargs,
)
from QEfficient.utils.arrays import as_numpy
from QEfficient.utils.audio import SAMPLING_RATE
from QEfficient.utils.checks import check_positive


def _generation_options(generation) -> dict[str, bool]:
    """The generation config's options that change transformers' greedy tokens, and whether each is set."""
    eos = generation.eos_token_id is not None
    return {
        "do_sample": bool(generation.do_sample),
        "num_beams": (generation.num_beams or 1) > 1,
        "suppress_tokens": bool(generation.suppress_tokens),
        "begin_suppress_tokens": bool(generation.begin_suppress_tokens),
        "bad_words_ids": bool(generation.bad_words_ids),
        "sequence_bias": bool(generation.sequence_bias),
        "repetition_penalty": generation.repetition_penalty not in (None, 1.0),
        "no_repeat_ngram_size": bool(generation.no_repeat_ngram_size),
        "forced_bos_token_id": generation.forced_bos_token_id is not None,
        "forced_eos_token_id": generation.forced_eos_token_id is not None,
        "min_length": eos and bool(generation.min_length),  # applied only with an eos token, as transformers does
        "min_new_tokens": eos and bool(generation.min_new_tokens),
    }


class QEFFAutoModelForRNNT(QEFFBaseModel):
    """An RNN-T transducer (``AutoModelForRNNT``: Parakeet's, Nemotron ASR's), and the base of QEFFAutoModelForTDT (module
    docstring).

    >>> model = QEFFAutoModelForRNNT.from_pretrained("path/to/parakeet-rnnt-0.6b")  # QEFFAutoModelForTDT: parakeet-tdt-0.6b-v3
    >>> model.compile(num_cores=16)
    >>> out = model.generate(processor(audio, sampling_rate=16000, return_tensors="pt"))
    >>> processor.batch_decode(out.sequences, skip_special_tokens=True)
    """

    auto_class: Any = AutoModelForRNNT

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        check_transducer(model)
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.hf = model.eval()
        self.encoder = QEffTransducerEncoder(self.hf)
        self.step = QEffTransducerStep(self.hf)
        self.qpc_paths: dict[str, Path] = {}

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """A local folder or a hub id in the local HF cache; other keyword arguments go to transformers."""
        folder, _ = resolve_model_path(pretrained_model_name_or_path, kwargs.get("cache_dir"), kwargs.get("revision"))
        check_transducer_type(load_config(folder).model_type)  # before any weight is read
        return cls._from_hf(cls.auto_class, pretrained_model_name_or_path, *args, **kwargs)

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.hf

    def decoding_rule(self) -> TransducerRule:
        """What the greedy loop needs of the config and generation config; raises for options the loop does not apply
        (transformers' logits processors, sampling, beams)."""
        config, generation = self.config, self.hf.generation_config
        refused = [name for name, value in _generation_options(generation).items() if value]
        if refused:
            raise NotImplementedError(
                f"{type(self.hf).__name__}'s generation config sets {', '.join(refused)}: only transformers' plain greedy "
                "decoding is run here; unset them (model.hf_model.generation_config) to decode greedily."
            )
        start = generation.decoder_start_token_id if generation.decoder_start_token_id is not None else generation.bos_token_id
        if start is None:
            raise ValueError(
                f"{type(self.hf).__name__}'s generation config names no decoder_start_token_id nor bos_token_id (transformers needs one)."
            )
        eos = generation.eos_token_id
        eos = () if eos is None else tuple(eos) if isinstance(eos, (list, tuple)) else (eos,)
        if eos and generation.pad_token_id is None:
            raise ValueError(f"{type(self.hf).__name__}'s generation config names an eos_token_id but no pad_token_id for finished rows.")
        durations = getattr(config, "durations", None)
        return TransducerRule(
            vocab_size=config.vocab_size,
            blank_token_id=config.blank_token_id,
            start_token_id=int(start),
            num_layers=config.num_decoder_layers,
            hidden_size=config.decoder_hidden_size,
            max_symbols_per_step=config.max_symbols_per_step,
            durations=tuple(durations) if durations is not None else None,
            eos_token_ids=tuple(int(e) for e in eos),
            pad_token_id=generation.pad_token_id,
        )

    def check_lookahead(self, given) -> None:
        """A streaming encoder's right context (Nemotron ASR's processor passes ``num_lookahead_tokens``) is fixed in its
        graph: another value is refused, saying how to export for it (serve and infer check the processor's at start)."""
        fixed = lookahead_kwargs(self.config).get(NUM_LOOKAHEAD_TOKENS)
        if fixed is None or given is None or int(as_numpy(given)) == fixed:
            return
        raise NotImplementedError(
            f"num_lookahead_tokens={int(as_numpy(given))}: this model's encoder graph attends {fixed} frames ahead (its config's "
            f"default_num_lookahead_tokens). Call processor.set_num_lookahead_tokens({fixed}), or load the model with "
            f"hf_overrides={{'encoder_config': {{'default_num_lookahead_tokens': {int(as_numpy(given))}}}}} and compile it again."
        )

    def _max_length(self, max_new_tokens: int | None, encoder_frames: int) -> int:
        """transformers' length limit: ``max_new_tokens`` (given, else the generation config's) after the start token,
        else the generation config's ``max_length``, else Parakeet's default: ``max_symbols_per_step`` per encoder frame."""
        generation = self.hf.generation_config
        new = max_new_tokens if max_new_tokens is not None else generation.max_new_tokens
        if new is not None:
            return 1 + new
        if generation.max_length is not None:
            return generation.max_length
        return self.config.max_symbols_per_step * encoder_frames

    def export(self, export_dir: str | os.PathLike | None = None, **kwargs) -> list[Path]:
        """Export the encoder and the decoding step (each cached under QEFF_HOME): [encoder, step] .onnx paths."""
        warn_ignored_options("export()", kwargs)
        name, config = self.model_name.replace("/", "_"), self.config
        step_args = TransducerStepGraphSpec.dummy_inputs(config.num_decoder_layers, config.decoder_hidden_size, config.decoder_hidden_size)
        encoder_spec = self._encoder_spec()
        parts = (
            ("encoder", self.encoder, encoder_spec, encoder_spec.dummy_inputs(config.encoder_config.num_mel_bins)),
            ("step", self.step, TransducerStepGraphSpec, step_args),
        )
        self.onnx_path = [  # (a streaming encoder's right context is in its config, so in the cache key)
            self._export_spec_graph(module, spec, args, f"{name}-{role}", f"{TRANSDUCER_KIND}-{role}", export_dir)
            for role, module, spec, args in parts
        ]
        return self.onnx_path

    def compile(
        self,
        onnx_path: str | os.PathLike | None = None,
        compile_dir: str | os.PathLike | None = None,
        *,
        batch_size: int = 1,
        num_devices: int = 1,
        num_cores: int = 16,
        mxfp6_matmul: bool = False,
        **compiler_options,
    ) -> dict[str, Path]:
        """Build the encoder's artifact (``batch_size`` clips at a time; ``mxfp6_matmul``: its MatMuls as int8 GEMMs) and
        the decoding step's (float32: it decides the tokens): {"encoder_qpc_path": ..., "step_qpc_path": ...}."""
        self._check_graphs_compile(onnx_path, num_devices, compiler_options, batch_size=batch_size, num_cores=num_cores)
        encoder_onnx, step_onnx = self.export()
        graphs = [
            GraphArtifact(
                "encoder",
                encoder_onnx,
                {"kind": f"{TRANSDUCER_KIND}-encoder", "output_name": self._encoder_spec().output_names[0]},
                {"batch_size": batch_size, "mxfp6_matmul": mxfp6_matmul},
                self._encoder_spec().specializations(batch_size),
                quantize_dynamic_int8 if mxfp6_matmul else None,
            ),
            GraphArtifact(
                "step",
                step_onnx,
                {"kind": f"{TRANSDUCER_KIND}-step", "output_name": TransducerStepGraphSpec.output_names[0]},
                {"batch_size": batch_size, "mxfp6_matmul": False},
                TransducerStepGraphSpec.specializations(batch_size),
            ),
        ]
        return self._compile_graphs(graphs, compile_dir, num_cores, main="step")

    @property
    def prompted(self) -> bool:
        """Whether the encoder reads a prompt per clip (Nemotron 3.5 ASR's language: its processor's ``language=``)."""
        return self.config.model_type in PROMPTED_TRANSDUCERS

    def _encoder_spec(self) -> type[TransducerEncoderGraphSpec]:
        return PromptedTransducerEncoderGraphSpec if self.prompted else TransducerEncoderGraphSpec

    def _prompt_ids(self, given, clips: int) -> np.ndarray | None:
        """A prompted encoder's ``prompt_ids`` [clips] (the processor's, from its ``language``), checked; transformers'
        default where none is given: the config's ``default_prompt_id`` (Nemotron 3.5 ASR's automatic language)."""
        if not self.prompted:
            if given is not None:
                raise ValueError(f"{PROMPT_IDS} is for a prompted transducer (Nemotron 3.5 ASR); this model takes none: leave it out.")
            return None
        if given is None:
            return np.full(clips, self.config.default_prompt_id, np.int64)
        prompts = np.ascontiguousarray(as_numpy(given), dtype=np.int64).reshape(-1)
        if prompts.shape != (clips,) or not ((prompts >= 0) & (prompts < self.config.num_prompts)).all():
            raise ValueError(
                f"{PROMPT_IDS} must be one prompt index per clip ({clips}), each below {self.config.num_prompts}: pass the "
                f"processor's (processor(audio, language=...)), got {as_numpy(given).tolist()}."
            )
        return prompts

    def _encode(
        self, features: np.ndarray, mask: np.ndarray, prompts: np.ndarray | None, runtime_ai100: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        arrays = (features, mask) if prompts is None else (features, mask, prompts)
        if not runtime_ai100:
            with torch.no_grad():
                states, valid = self.encoder(*map(torch.from_numpy, arrays))
            return states.numpy(), valid.numpy()
        session, params = self._graph_session("encoder")
        return tuple(run_in_batches(session, dict(zip(self._encoder_spec().input_names, arrays)), params["batch_size"]))

    def _step_fn(self, runtime_ai100: bool):
        if not runtime_ai100:

            def run_torch(*arrays):
                with torch.no_grad():
                    return tuple(t.numpy() for t in self.step(*map(torch.from_numpy, arrays)))

            return run_torch
        session = self._graph_session("step")[0]
        names = TransducerStepGraphSpec.input_names
        return lambda *arrays: tuple(session.run(None, dict(zip(names, map(np.ascontiguousarray, arrays)))))

    def generate(
        self,
        inputs=None,
        audio=None,
        device_ids: list[int] | None = None,
        runtime_ai100: bool = True,
        max_new_tokens: int | None = None,
        **given,
    ) -> ParakeetRNNTGenerateOutput | list[str]:
        """Greedy transcription of a processor's output (input_features [B, frames, mels], attention_mask; also as keyword
        arguments, as transformers' ``generate(**inputs)``), as transformers' generate gives it; ``max_new_tokens`` caps
        the steps (default: the generation config's, else the model's ``max_symbols_per_step`` times the encoder's
        frames). As QEFFAutoModelForCTC's, ``generate(processor, audio)`` (16 kHz audio: an array, or a list of them)
        returns the texts."""
        if device_ids is not None and len(device_ids) > 1:
            warn_ignored_options("generate()", {"device_ids": device_ids})
        if inputs is None and given:
            inputs, given = given, {}
        if given:
            raise TypeError(f"generate() got unexpected keyword arguments {sorted(given)}.")
        if max_new_tokens is not None:
            check_positive(max_new_tokens=max_new_tokens)
        if hasattr(inputs, "batch_decode"):  # (processor, audio): the texts
            if audio is None:
                raise ValueError("generate(processor, audio) needs the audio: a 16 kHz array, or a list of them.")
            if isinstance(audio, list) and audio and all(np.ndim(a) == 0 for a in audio):  # one audio's samples as numbers
                audio = [audio]
            if isinstance(audio, list) and not audio:
                raise ValueError("No audio given: pass 16 kHz samples (an array, or a list of arrays: one per audio).")
            clips = [np.asarray(a, dtype=np.float32) for a in (audio if isinstance(audio, list) else [audio])]
            features = inputs(clips, sampling_rate=SAMPLING_RATE, return_tensors="np")
            out = self.generate(features, runtime_ai100=runtime_ai100, max_new_tokens=max_new_tokens)
            return inputs.batch_decode(out.sequences, skip_special_tokens=True)
        if not hasattr(inputs, "keys") or inputs.get(INPUT_FEATURES) is None:
            raise ValueError("Pass the processor's output: processor(audio, sampling_rate=16000, return_tensors='pt').")
        if inputs.get(DECODER_INPUT_IDS) is not None:
            raise NotImplementedError("decoder_input_ids (a prompt for the prediction network) are not supported: leave them out.")
        rule = self.decoding_rule()  # refused options fail here, before the encoder runs
        self.check_lookahead(inputs.get(NUM_LOOKAHEAD_TOKENS))
        features = np.ascontiguousarray(as_numpy(inputs[INPUT_FEATURES]), dtype=np.float32)
        mels = self.config.encoder_config.num_mel_bins
        if features.ndim != 3 or features.shape[-1] != mels or not features.shape[1]:
            raise ValueError(f"input_features must be [clips, frames, {mels}] (the processor's), got {list(features.shape)}.")
        mask = inputs.get(ATTENTION_MASK)
        mask = np.ones(features.shape[:2], np.int64) if mask is None else np.ascontiguousarray(as_numpy(mask), dtype=np.int64)
        if mask.shape != features.shape[:2]:
            raise ValueError(f"attention_mask must be {list(features.shape[:2])} (one per frame), got {list(mask.shape)}.")
        if runtime_ai100 and "step_qpc_path" not in self.qpc_paths:
            raise TypeError("Please run compile() before generate(), or pass runtime_ai100=False to run PyTorch.")
        prompts = self._prompt_ids(inputs.get(PROMPT_IDS), len(features))
        states, valid = self._encode(features, mask, prompts, runtime_ai100)
        max_length = self._max_length(max_new_tokens, states.shape[1])
        sequences, durations = greedy_transducer(self._step_fn(runtime_ai100), states, valid.sum(-1), rule, max_length)
        return ParakeetRNNTGenerateOutput(sequences=torch.from_numpy(sequences), durations=torch.from_numpy(durations))


class QEFFAutoModelForTDT(QEFFAutoModelForRNNT):
    """A Parakeet TDT transducer (``AutoModelForTDT``): tokens and their durations (module docstring)."""

    auto_class = AutoModelForTDT
