"""Which decoder architectures run, and the few that need an adapter.

What runs is decided by the architecture sweep (benchmarks/arch_sweep.py), not by hand: the
registry it writes (sweep_status.py) lists the model types proven token-exact against HF and the
ones known to fail, with the reason. Any other causal LM runs with the default adapter and a
warning that says how to check it.

The table below keeps only real quirks: what an architecture's ``*ForCausalLM`` head computes
beyond ``lm_head(hidden)`` (the wrapper replaces that head), or a cache geometry that the config
does not state in the usual names.
"""

from __future__ import annotations

import os
import warnings

from QEfficient.transform.adapters.base import ArchAdapter
from QEfficient.transform.adapters.deepseek_v4 import DeepseekV4Adapter
from QEfficient.transform.adapters.doge import DogeAdapter
from QEfficient.transform.adapters.dory import DoryAdapter
from QEfficient.transform.adapters.ergo import ErgoAdapter
from QEfficient.transform.adapters.falcon import FalconAdapter
from QEfficient.transform.adapters.inkling import INKLING_ADAPTERS
from QEfficient.transform.adapters.llama4 import Llama4TextAdapter
from QEfficient.transform.adapters.mimo_v2_flash import SlidingLayersDoubleKVAdapter
from QEfficient.transform.adapters.mistral_large4 import MistralLarge4Adapter
from QEfficient.transform.adapters.modernbert_decoder import PredictionHeadAdapter
from QEfficient.transform.adapters.recurrent_models import RECURRENT_ADAPTERS
from QEfficient.transform.adapters.seq2seq_types import PROVEN_SEQ2SEQ_TYPES
from QEfficient.transform.adapters.sparse_attention import PerLayerMLASparseAttentionAdapter, SparseAttentionAdapter
from QEfficient.transform.adapters.sweep_status import KNOWN_FAILURES, NOT_DECODER, PROVEN

# Set to 1 to run a type the sweep recorded as failing (to check a fix); the sweep itself sets it.
ALLOW_ANY_ARCHITECTURE_ENV = "QEFF_ALLOW_ANY_ARCHITECTURE"
SWEEP_COMMAND = "PYTHONPATH=. python benchmarks/arch_sweep.py"

_QUIRKS: list[ArchAdapter] = [
    FalconAdapter("falcon", mask_kind="additive"),
    Llama4TextAdapter("llama4_text"),
    DogeAdapter("doge"),
    ArchAdapter("xglm", mask_kind="additive"),
    ArchAdapter("mpt", mask_kind="hidden"),
    ArchAdapter("bloom", mask_kind="additive"),
    ArchAdapter("gpt_neox_japanese", mask_kind="additive"),
    ArchAdapter("gpt_neo", mask_kind="additive"),
    PredictionHeadAdapter("modernbert-decoder"),
    DoryAdapter("dory"),  # a looped middle section with a KV cache per loop, a per-token logit scale
    # state-space and hybrid models: recurrent mixers whose conv/SSM states are retained like the KV cache
    *RECURRENT_ADAPTERS,
    SlidingLayersDoubleKVAdapter("mimo_v2_flash"),
    # sparse attention (DSA): the indexer chooses keys in the graph
    SparseAttentionAdapter("deepseek_v32", indexer_class="DeepseekV32Indexer"),
    SparseAttentionAdapter("glm_moe_dsa", indexer_class="GlmMoeDsaIndexer"),
    SparseAttentionAdapter("axk2", indexer_class="AXK2Indexer"),
    SparseAttentionAdapter("hy_v4", indexer_class="HYV4Indexer"),
    # HY-V4-VL's text model (no causal-LM class: proven by the image-text sweep through hy_v4_vl)
    SparseAttentionAdapter("hy_v4_vl_text", indexer_class="HYV4VLIndexer"),
    # attention with short convolutions (retained conv states), relative position biases, looped layers
    *INKLING_ADAPTERS,
    # compressed attention: compressor projections kept per token beside the key=value vector
    DeepseekV4Adapter("deepseek_v4"),
    PerLayerMLASparseAttentionAdapter("dots3_note_text", indexer_class="Dots3NoteTextIndexer"),
    # Mistral Large 4's text model (no causal-LM class: proven by the image-text sweep through mistral_large4)
    MistralLarge4Adapter("mistral_large4_text", indexer_class="MistralLarge4TextIndexer"),
    ErgoAdapter("ergo"),  # per-expert output norms over a width read from the traced tensor
]

ADAPTERS: dict[str, ArchAdapter] = {a.model_type: a for a in _QUIRKS}

# Proven token-exact by the sweep under a newer transformers than the one CI installs (constraints.txt), which
# lacks them: model_type -> the release. The registry above is written by the sweep under CI's release.
PROVEN_WITH_NEWER_TRANSFORMERS: dict[str, str] = {"ergo": "5.25.0", "minicpm5_moe": "5.25.0", "param2moe": "5.25.0"}


class UnsupportedArchitectureError(ValueError):
    pass


class UnprovenArchitectureWarning(UserWarning):
    pass


def supported_model_types() -> list[str]:
    """The model types the sweep proved token-exact."""
    return sorted(PROVEN)


def get_adapter(config) -> ArchAdapter:
    model_type = getattr(config, "model_type", None)
    return ADAPTERS.get(model_type) or ArchAdapter(model_type)


def check_architecture(config) -> None:
    """Proven: nothing to say. Known to fail: an error with the recorded reason. Anything else: a warning."""
    model_type = getattr(config, "model_type", None)
    if model_type in PROVEN or model_type in PROVEN_WITH_NEWER_TRANSFORMERS:
        return
    archs = ", ".join(getattr(config, "architectures", None) or []) or model_type
    how = f"Check it with `{SWEEP_COMMAND} {model_type}` (docs/architectures.md lists every type)."
    if model_type in KNOWN_FAILURES or model_type in NOT_DECODER:
        reason = KNOWN_FAILURES.get(model_type) or f"not a decoder-only language model: {NOT_DECODER[model_type]}"
        if model_type in PROVEN_SEQ2SEQ_TYPES:
            how = f"Load the whole model with QEFFAutoModelForSeq2SeqLM. {how}"
        message = (
            f"Architecture '{model_type}' ({archs}) is known not to run correctly with QEFFAutoModelForCausalLM: {reason}. "
            f"{how} Set {ALLOW_ANY_ARCHITECTURE_ENV}=1 to try it anyway."
        )
        if os.environ.get(ALLOW_ANY_ARCHITECTURE_ENV) != "1":
            raise UnsupportedArchitectureError(message)
        warnings.warn(message, UnprovenArchitectureWarning, stacklevel=3)
        return
    warnings.warn(
        f"Architecture '{model_type}' ({archs}) has not been proven token-exact by the architecture sweep; it runs with "
        f"the default adapter. {how}",
        UnprovenArchitectureWarning,
        stacklevel=3,
    )


__all__ = [
    "ADAPTERS",
    "ALLOW_ANY_ARCHITECTURE_ENV",
    "PROVEN_WITH_NEWER_TRANSFORMERS",
    "ArchAdapter",
    "UnprovenArchitectureWarning",
    "UnsupportedArchitectureError",
    "check_architecture",
    "get_adapter",
    "supported_model_types",
]
