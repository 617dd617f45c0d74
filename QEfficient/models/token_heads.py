"""Encoders with a head per token or per span: token classifiers, masked LMs, next sentence prediction, multiple
choice and extractive question answering (over text, or a document's words and boxes); generate() returns torch
tensors named as transformers' forward names them."""

from __future__ import annotations

import torch
from transformers import (
    AutoModelForDocumentQuestionAnswering,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForNextSentencePrediction,
    AutoModelForQuestionAnswering,
    AutoModelForTokenClassification,
    PreTrainedModel,
)

from QEfficient.export.graph_names import ATTENTION_MASK, GLOBAL_ATTENTION_MASK, INPUT_IDS, LOGITS, TOKEN_TYPE_IDS
from QEfficient.models.encoder import _QEFFEncoderBase, _QEFFLogitsEncoder
from QEfficient.utils.arrays import as_numpy


class QEFFAutoModelForTokenClassification(_QEFFLogitsEncoder):
    """Token classifiers (NER: BERT, RoBERTa, DeBERTa-v2, ...); generate() returns {"logits": torch.Tensor [B, S, labels]},
    the input's columns, as transformers' forward."""

    _hf_auto = AutoModelForTokenClassification


class QEFFAutoModelForMaskedLM(_QEFFLogitsEncoder):
    """Masked language models (fill-mask: BERT, RoBERTa, DeBERTa-v2, ModernBERT, ...); generate() returns {"logits":
    torch.Tensor [B, S, vocab]}, the input's columns, as transformers' forward."""

    _hf_auto = AutoModelForMaskedLM


class QEFFAutoModelForNextSentencePrediction(_QEFFLogitsEncoder):
    """Next sentence prediction (BERT's pre-training head: ERNIE, MegatronBERT, MobileBERT, FNet): a tokenizer's
    output of sentence pairs in, {"logits": torch.Tensor [pairs, 2]} out (index 0: the second sentence follows the
    first), as transformers' forward."""

    _hf_auto = AutoModelForNextSentencePrediction


# multiple-choice types not run here, with why
UNSUPPORTED_MULTIPLE_CHOICE = {
    "longformer": "its head marks every token after the first separator for global attention by default, a rule not built here",
    "canine": "it reads characters through its own hashed embeddings; not proven here",
    "roc_bert": "it reads each token's shape and pronunciation ids beside input_ids",
    "xlnet": "a permutation language model with its own memory and masks; not proven here as an encoder",
    "funnel": "its blocks pool the sequence (block_sizes); not proven here",
    "xmod": "it needs a language per input (lang_ids)",
}


class QEFFAutoModelForMultipleChoice(_QEFFLogitsEncoder):
    """Multiple choice (SWAG-style heads: BERT, RoBERTa, DeBERTa-v2, ALBERT, ... ``ForMultipleChoice``): generate()
    takes a tokenizer's output of [questions, choices, tokens] (each question paired with each of its choices) and
    returns {"logits": torch.Tensor [questions, choices]}, as transformers' forward. Each row (one choice) is scored
    alone, so compile's ``batch_size`` counts rows.

    >>> enc = tokenizer([[prompt, choice] for choice in choices], return_tensors="pt", padding=True)
    >>> model.generate({name: value[None] for name, value in enc.items()})["logits"].argmax(-1)
    """

    _hf_auto = AutoModelForMultipleChoice

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        reason = UNSUPPORTED_MULTIPLE_CHOICE.get(model.config.model_type)
        if reason is not None:
            raise NotImplementedError(f"{type(model).__name__} is not supported: {reason}.")
        super().__init__(model, **kwargs)

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True, **kwargs) -> dict[str, torch.Tensor]:
        ids = as_numpy(inputs[INPUT_IDS])
        if ids.ndim != 3:
            raise ValueError(
                f"input_ids must be [questions, choices, tokens] (a tokenizer's output of the pairs with a question axis "
                f"added: value[None] for one question), got shape {list(ids.shape)}."
            )
        questions, choices = ids.shape[:2]
        names = (INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS, GLOBAL_ATTENTION_MASK)
        given = {name: as_numpy(v) for name, v in inputs.items() if name in names and v is not None}
        wrong = [f"{name} {list(v.shape)}" for name, v in given.items() if v.shape != ids.shape]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: each input must be [questions, choices, tokens] as input_ids {list(ids.shape)}.")
        rows = {name: v.reshape(questions * choices, -1) for name, v in given.items()}
        logits = super().generate(rows, device_ids, runtime_ai100, **kwargs)[LOGITS]
        return {LOGITS: logits.reshape(questions, choices)}


class QEFFAutoModelForQuestionAnswering(_QEFFEncoderBase):
    """Extractive question answering (SQuAD heads on BERT, RoBERTa, DeBERTa-v2, ...); generate() returns
    {"start_logits", "end_logits"} torch tensors [B, S], as transformers' forward (the graph outputs them stacked)."""

    _hf_auto = AutoModelForQuestionAnswering
    _output_name = LOGITS

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True, **kwargs) -> dict[str, torch.Tensor]:
        both = torch.from_numpy(super().generate(inputs, device_ids, runtime_ai100, **kwargs)[LOGITS])
        return {"start_logits": both[..., 0], "end_logits": both[..., 1]}


class QEFFAutoModelForDocumentQuestionAnswering(QEFFAutoModelForQuestionAnswering):
    """Extractive question answering over a document's words and their boxes (LayoutLM, LayoutLMv3 with or without its
    page image: transformers' ``AutoModelForDocumentQuestionAnswering``), the boxes (``bbox``) and page image as graph
    inputs; generate() returns {"start_logits", "end_logits"}, as transformers' forward."""

    _hf_auto = AutoModelForDocumentQuestionAnswering
