"""How the encoder servers group a request's texts into model calls, and which encoders they take."""

from __future__ import annotations


def serving_lengths(limit: int) -> list[int]:
    """The lengths an encoder's server compiles for, up to ``limit`` tokens: a few, so that short inputs run short."""
    return sorted({n for n in (32, 64, 128, 256, 512) if n < limit} | {limit})


def length_batches(lengths: list[int], batch_size: int, same_length: bool = False) -> list[list[int]]:
    """The rows' indices in calls of at most ``batch_size``, shortest first, so that padding stays short; with
    ``same_length``, each call holds texts of one length only: a model whose outputs read padding columns (FNet's Fourier
    mixing, ConvBERT's convolutions) then answers each text as it would alone, whatever it is batched with."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    if not same_length:
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    for i in order:
        if not batches or len(batches[-1]) == batch_size or lengths[batches[-1][0]] != lengths[i]:
            batches.append([])
        batches[-1].append(i)
    return batches


def refuse_token_inputs(encoder, model_name: str) -> None:
    """A model that reads more per token than its text (transform/encoder.QEffEncoder: a document model's boxes,
    MarkupLM's XPaths) is refused by the text servers, saying why."""
    if encoder.layout:  # LayoutLM, LiLT, Bros, LayoutLMv3
        raise ValueError(f"'{model_name}' is a document model: it reads each token's box, which no server here takes. Run it from Python.")
    if encoder.xpath_depth:  # MarkupLM
        raise ValueError(f"'{model_name}' reads web pages: each token's XPath, which no server here takes. Run it from Python.")


def refuse_own_heads(model, model_name: str) -> None:
    """A ValueError for a model whose graph ends in its own heads (ColBERT's per-token vectors, SPLADE's sparse ones,
    BGE-M3's: models/headed_encoder.py) where one embedding per text is asked for."""
    family = getattr(model, "own_heads", None)
    if family:
        raise ValueError(
            f"'{model_name}' is a {family} model, whose outputs are its own heads' (not one embedding per text): run it "
            f"with {type(model).__name__}.encode (the README says which of these models a server serves)."
        )
