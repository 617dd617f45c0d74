"""The state-space and hybrid model types: each one's recurrent mixer class and how it runs on retained
conv/SSM states (transform/recurrent_state.py)."""

from __future__ import annotations

from QEfficient.transform.adapters.glm5_next import Glm5NextAdapter
from QEfficient.transform.adapters.hybrid_falcon_h1 import FALCON_H1_MIXER
from QEfficient.transform.adapters.hybrid_gated_deltanet import (
    KIMI_DELTA_ATTENTION,
    OLMO_HYBRID_DELTANET,
    QWEN3_5_DELTANET,
    QWEN3_NEXT_DELTANET,
)
from QEfficient.transform.adapters.hybrid_lfm2 import SHORT_CONV_MIXER
from QEfficient.transform.adapters.hybrid_minimax import LIGHTNING_ATTENTION, MiniMaxAdapter
from QEfficient.transform.adapters.hybrid_recurrent_gemma import RG_LRU_BLOCK, RecurrentGemmaAdapter
from QEfficient.transform.adapters.mamba import MAMBA_MIXER
from QEfficient.transform.adapters.mamba2 import MAMBA2_MIXER
from QEfficient.transform.adapters.qwen4_exp import Qwen4ExpAdapter
from QEfficient.transform.adapters.recurrent import RecurrentAdapter
from QEfficient.transform.adapters.rwkv import RWKV_BLOCK, RwkvAdapter
from QEfficient.transform.adapters.xlstm import MLSTM_LAYER, XLSTMAdapter
from QEfficient.transform.adapters.zamba import ZAMBA_MIXER
from QEfficient.transform.adapters.zaya import CCA_PROJECTION, ZayaAdapter

# model_type -> (mixer class name, Mixer)
_MIXERS = {
    "mamba": ("MambaMixer", MAMBA_MIXER),
    "falcon_mamba": ("FalconMambaMixer", MAMBA_MIXER),
    "jamba": ("JambaMambaMixer", MAMBA_MIXER),
    "mamba2": ("Mamba2Mixer", MAMBA2_MIXER),
    "bamba": ("BambaMixer", MAMBA2_MIXER),
    "granitemoehybrid": ("GraniteMoeHybridMambaLayer", MAMBA2_MIXER),
    "nemotron_h": ("NemotronHMamba2Mixer", MAMBA2_MIXER),
    "zamba": ("ZambaMambaMixer", ZAMBA_MIXER),
    "zamba2": ("Zamba2MambaMixer", MAMBA2_MIXER),
    "falcon_h1": ("FalconH1Mixer", FALCON_H1_MIXER),
    "lfm2": ("Lfm2ShortConv", SHORT_CONV_MIXER),
    "lfm2_moe": ("Lfm2MoeShortConv", SHORT_CONV_MIXER),
    "lfm3": ("Lfm3ShortConv", SHORT_CONV_MIXER),
    "qwen3_next": ("Qwen3NextGatedDeltaNet", QWEN3_NEXT_DELTANET),
    "qwen3_5_text": ("Qwen3_5GatedDeltaNet", QWEN3_5_DELTANET),
    "qwen3_5_moe_text": ("Qwen3_5MoeGatedDeltaNet", QWEN3_5_DELTANET),
    "lara_mini": ("LaraMiniGatedDeltaNet", QWEN3_5_DELTANET),
    "olmo_hybrid": ("OlmoHybridGatedDeltaNet", OLMO_HYBRID_DELTANET),
    "kimi_linear": ("KimiLinearDeltaAttention", KIMI_DELTA_ATTENTION),
    "bailing_hybrid": ("BailingHybridDeltaAttention", KIMI_DELTA_ATTENTION),
}

RECURRENT_ADAPTERS = [RecurrentAdapter(model_type, mixers={name: mixer}) for model_type, (name, mixer) in _MIXERS.items()] + [
    RecurrentGemmaAdapter("recurrent_gemma", mixers={"RecurrentGemmaRecurrentBlock": RG_LRU_BLOCK}),
    RwkvAdapter("rwkv", mixers={"RwkvBlock": RWKV_BLOCK}),
    XLSTMAdapter("xlstm", mixers={"xLSTMLayer": MLSTM_LAYER}),
    ZayaAdapter("zaya", mixers={"ZayaCCAProjection": CCA_PROJECTION}),
    MiniMaxAdapter("minimax", mixers={"MiniMaxLightningAttention": LIGHTNING_ATTENTION}),
    Qwen4ExpAdapter("qwen4_exp_text", mixers={"Qwen4ExpTextGatedDeltaNet": QWEN3_5_DELTANET}),
    # GLM-5.3-Flash's text model (no causal-LM class in transformers: proven by the image-text sweep's glm5_next)
    Glm5NextAdapter("glm5_next_text", mixers={"Glm5NextTextLinearAttention": KIMI_DELTA_ATTENTION}),
]
