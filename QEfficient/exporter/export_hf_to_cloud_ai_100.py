"""QEfficient's legacy ``QEfficient.export(model_name, ...)`` (``qualcomm_efficient_converter``)."""

from __future__ import annotations

import warnings
from pathlib import Path


def qualcomm_efficient_converter(
    model_name: str,
    model_kv=None,
    local_model_dir: str | None = None,
    tokenizer=None,
    cache_dir: str | None = None,
    onnx_dir_path: str | None = None,
    hf_token: str | None = None,
    seq_length: int = 32,
    kv: bool = True,
    form_factor: str = "cloud",
    full_batch_size: int | None = None,
    mxint8_kv_cache: bool = False,
) -> tuple[str, str]:
    """Export a causal LM to the retained-state ONNX graph; returns (the graph's folder, the graph's path).

    ``model_kv`` (a ``QEFFAutoModelForCausalLM``) is exported as is; otherwise the model is loaded
    from ``local_model_dir`` or ``model_name``, and its tokenizer must be there (as QEfficient checks).
    ``onnx_dir_path`` becomes the cached entry ``<onnx_dir_path>-<hash>``. ``seq_length`` is accepted
    and not needed: the graph's sequence axis is dynamic. ``mxint8_kv_cache=True`` exports a float16
    KV cache (what ``compile(mxint8=True)`` runs).
    """
    warnings.warn(
        "`QEfficient.export` (qualcomm_efficient_converter) is deprecated in QEfficient; use QEFFAutoModelForCausalLM.export.",
        DeprecationWarning,
        stacklevel=2,
    )
    if not kv:
        raise NotImplementedError("kv=False (BERT-style export) is not supported; use QEFFAutoModel for encoders.")
    if form_factor != "cloud":
        raise NotImplementedError(f"form_factor='{form_factor}' is not supported; only 'cloud' is.")
    from QEfficient.base.common import QEFFCommonLoader
    from QEfficient.models.causal_lm import QEFFAutoModelForCausalLM
    from QEfficient.utils.tokenizer import tokenizer_folder

    source = local_model_dir or model_name
    if model_kv is None:
        if tokenizer is None:
            tokenizer_folder(source, cache_dir)  # a missing tokenizer fails here, before the export
        model_kv = QEFFCommonLoader.from_pretrained(source, cache_dir=cache_dir, full_batch_size=full_batch_size)
    if not isinstance(model_kv, QEFFAutoModelForCausalLM):
        raise TypeError(f"QEfficient.export exports causal LMs; '{model_name}' loads as {type(model_kv).__name__}: use its export().")
    onnx_path = Path(model_kv.export(onnx_dir_path, kv_cache_dtype="float16" if mxint8_kv_cache else None))
    return str(onnx_path.parent), str(onnx_path)
