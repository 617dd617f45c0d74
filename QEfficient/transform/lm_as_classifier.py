"""A causal LM as a sequence classifier scored by the logits of a few of its tokens (Qwen3-Reranker's "no" and "yes"),
as vLLM converts one given ``classifier_from_token`` in its ``hf_overrides``: the classifier's head is the LM head's
rows for those tokens ("no_post_processing": one label per token) or, for two tokens, the second row minus the first
("from_2_way_softmax": one label whose sigmoid is the softmax probability of the second token against the first,
which is how Qwen3-Reranker scores)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

METHODS = ("from_2_way_softmax", "no_post_processing")


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
    """transformers' sequence classifier for ``causal_lm``'s architecture sharing its base model and config, with the
    head ``method`` builds from the LM head's rows ``ids`` (and bias). The config gets ``use_pad_token`` False (unless
    it says otherwise): a pair is scored as its two texts joined, as vLLM scores an LM as reranker."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)} (vLLM's names), got {method!r}.")
    if method == "from_2_way_softmax" and len(ids) != 2:
        raise ValueError(f"from_2_way_softmax takes two tokens (the 'no' and the 'yes' one), got {len(ids)}.")
    config = causal_lm.config  # shared: the base model reads it too (eager attention is switched on it at export)
    architectures = getattr(config, "architectures", None) or []
    if not architectures or not all(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        raise ValueError(
            f"classifier_from_token takes a causal LM's checkpoint (...ForCausalLM); this one is {architectures or 'unnamed'}, "
            "whose LM head would be untrained."
        )
    if getattr(config.get_text_config(), "final_logit_softcapping", None):
        raise ValueError(
            "This model soft-caps its logits (final_logit_softcapping, as Gemma 2 and 3): a linear head cannot give its "
            "tokens' scores, so it is not served as a classifier from classifier_from_token."
        )
    if config.model_type not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES:
        raise ValueError(f"transformers has no sequence classifier for '{config.model_type}' models: it cannot be scored as one.")
    lm_head = causal_lm.get_output_embeddings()
    if not isinstance(lm_head, nn.Linear):
        raise ValueError(f"{type(causal_lm).__name__} has no linear LM head to take the tokens' rows from.")
    config.num_labels = 1 if method == "from_2_way_softmax" else len(ids)
    config.use_pad_token = getattr(config, "use_pad_token", False)
    with torch.device("meta"):  # the base model and head are the LM's: nothing to allocate
        classifier = AutoModelForSequenceClassification.from_config(config)
    if not isinstance(getattr(classifier, "score", None), nn.Linear):
        raise ValueError(f"{type(classifier).__name__} has no 'score' head to take the LM head's rows.")
    config.architectures = [type(classifier).__name__]
    classifier.config = config
    setattr(classifier, classifier.base_model_prefix, causal_lm.base_model)
    classifier.score = _head(lm_head, ids, method)
    _check_scores(causal_lm, classifier.eval(), ids, method)
    return classifier


def _head(lm_head: nn.Linear, ids: list[int], method: str) -> nn.Linear:
    """The LM head's rows (and bias) for ``ids``; for from_2_way_softmax the second minus the first, taken in float32
    (as vLLM takes it) and stored in the head's dtype."""
    rows = lm_head.weight.detach()[ids].float()
    bias = lm_head.bias.detach()[ids].float() if lm_head.bias is not None else None
    if method == "from_2_way_softmax":
        rows, bias = rows[1:] - rows[:1], (bias[1:] - bias[:1] if bias is not None else None)
    head = nn.Linear(rows.shape[1], rows.shape[0], bias=bias is not None, dtype=lm_head.weight.dtype, device=lm_head.weight.device)
    with torch.no_grad():
        head.weight.copy_(rows)
        if bias is not None:
            head.bias.copy_(bias)
    return head


def _check_scores(causal_lm: PreTrainedModel, classifier: PreTrainedModel, ids: list[int], method: str) -> None:
    """The head on the last hidden state against the LM's own logits on a few tokens: an LM whose logits are not one
    linear map of its last hidden state (a scale or cap transformers applies after the head) is refused rather than
    scored otherwise."""
    vocab = causal_lm.config.get_text_config().vocab_size
    probe = torch.arange(1, 9, device=causal_lm.device).remainder(vocab)[None]
    with torch.no_grad():
        lm = causal_lm(input_ids=probe, use_cache=False).logits[0, -1, ids].float()
        hidden = causal_lm.base_model(input_ids=probe, use_cache=False).last_hidden_state  # what the classifier's head reads
        got = classifier.score(hidden[:, -1])[0].float()
    want = (lm[1] - lm[0])[None] if method == "from_2_way_softmax" else lm
    tolerance = 1e-4 if classifier.score.weight.dtype == torch.float32 else 2e-2
    if not torch.allclose(got, want, rtol=tolerance, atol=tolerance):
        raise ValueError(
            f"This model's logits are not its LM head's rows times the last hidden state (off by {float((got - want).abs().max()):.3g}): "
            "it is not served as a classifier from classifier_from_token."
        )
