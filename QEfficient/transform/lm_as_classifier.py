"""A causal LM as a sequence classifier scored by the logits of a few of its tokens (Qwen3-Reranker's "no" and "yes"),
as vLLM converts one given ``classifier_from_token`` in its ``hf_overrides``: the classifier's head is the LM head's
rows for those tokens ("no_post_processing": one label per token) or, for two tokens, the second row minus the first
("from_2_way_softmax": one label whose sigmoid is the softmax probability of the second token against the first,
which is how Qwen3-Reranker scores)."""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, PreTrainedModel

METHODS = ("from_2_way_softmax", "no_post_processing")


def default_method(tokens: list[str]) -> str:
    """vLLM's rule for an original Qwen3-Reranker (two tokens), else a label per token."""
    return METHODS[0] if len(tokens) == 2 else METHODS[1]


def token_ids(tokenizer, tokens: list[str]) -> list[int]:
    """Each token's id in ``tokenizer``'s vocabulary; one it does not hold is refused."""
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise ValueError(f"classifier_from_token must be a non-empty list of tokens, got {tokens!r}.")
    vocab = tokenizer.get_vocab()
    missing = [t for t in tokens if t not in vocab]
    if missing:
        raise ValueError(f"classifier_from_token: {missing} are not tokens of this model's tokenizer; name tokens of its vocabulary.")
    return [vocab[t] for t in tokens]


def lm_as_classifier(causal_lm: PreTrainedModel, ids: list[int], method: str) -> PreTrainedModel:
    """transformers' sequence classifier for ``causal_lm``'s architecture sharing its base model, with the head
    ``method`` builds from the LM head's rows ``ids``. Its config has ``use_pad_token`` False (unless the LM's says
    otherwise): a pair is scored as its two texts joined, as vLLM scores an LM as reranker."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if method == "from_2_way_softmax" and len(ids) != 2:
        raise ValueError(f"from_2_way_softmax takes two tokens (the 'no' and the 'yes' one), got {len(ids)}.")
    if getattr(causal_lm.config.get_text_config(), "final_logit_softcapping", None):
        raise ValueError(
            "This model soft-caps its logits (final_logit_softcapping, as Gemma 2 and 3): a linear head cannot give its "
            "tokens' scores, so it is not served as a classifier from classifier_from_token."
        )
    config = copy.deepcopy(causal_lm.config)
    if type(config) not in AutoModelForSequenceClassification._model_mapping:
        raise ValueError(f"transformers has no sequence classifier for '{config.model_type}' models: it cannot be scored as one.")
    config.num_labels = 1 if method == "from_2_way_softmax" else len(ids)
    config.use_pad_token = getattr(config, "use_pad_token", False)
    with torch.device("meta"):  # the base model and head are the LM's: nothing to allocate
        classifier = AutoModelForSequenceClassification.from_config(config)
    if not isinstance(getattr(classifier, "score", None), nn.Linear):
        raise ValueError(f"{type(classifier).__name__} has no 'score' head to take the LM head's rows.")
    config.architectures = [type(classifier).__name__]
    rows = causal_lm.get_output_embeddings().weight.detach()[ids]
    head = nn.Linear(rows.shape[1], config.num_labels, bias=False, dtype=rows.dtype)
    with torch.no_grad():
        head.weight.copy_(rows[1:] - rows[:1] if method == "from_2_way_softmax" else rows)
    setattr(classifier, classifier.base_model_prefix, causal_lm.base_model)
    classifier.score = head
    _check_scores(causal_lm, classifier.eval(), ids, method)
    return classifier


def _check_scores(causal_lm: PreTrainedModel, classifier: PreTrainedModel, ids: list[int], method: str) -> None:
    """The classifier's logits against the LM's own on a few tokens: an LM head that is not one linear map of the last
    hidden state (a scale or cap transformers applies after it) is refused rather than scored otherwise."""
    probe = torch.arange(1, 9).remainder(causal_lm.config.get_text_config().vocab_size)[None]
    with torch.no_grad():
        lm = causal_lm(input_ids=probe, use_cache=False).logits[0, -1, ids].float()
        got = classifier(input_ids=probe, use_cache=False).logits[0].float()
    want = (lm[1] - lm[0])[None] if method == "from_2_way_softmax" else lm
    tolerance = 1e-4 if classifier.score.weight.dtype == torch.float32 else 2e-2
    if not torch.allclose(got, want, rtol=tolerance, atol=tolerance):
        raise ValueError(
            f"This model's logits are not its LM head's rows times the last hidden state (off by {float((got - want).abs().max()):.3g}): "
            "it is not served as a classifier from classifier_from_token."
        )
