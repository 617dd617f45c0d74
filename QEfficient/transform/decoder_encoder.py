"""A decoder's sequence classifier or base model (what an embedding model runs) through the causal-LM path's graph.

transformers' own modules of some decoders do not export (mixture-of-experts routing with ``histc``, linear
attention, Mamba layers), or attend causally without marking it, so the encoder path, which runs those modules with a
padding mask, cannot take them. The causal-LM path rewrites them: here the whole sequence is one prefill step into an
empty cache as long as the sequence, so the graph is the one the architecture sweep proves token-exact, with the
classifier's ``score`` head (or none) in place of the LM head.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.static_kv import QEffCausalLM

_MOE = "its mixture-of-experts routing (torch.histc) has no ONNX export in transformers' own modules"
_UNMARKED = "transformers does not mark its attention causal, so a padding mask alone would let it attend both ways"

# Decoder types whose classifier and base model run through the causal-LM path, and why transformers' own modules do
# not serve (tests/test_encoder_sweep.py proves them; the other decoders run those modules, as encoders do)
STATIC_KV_DECODERS = {
    **dict.fromkeys(("gpt_oss", "hunyuan_v1_moe", "jamba", "minimax", "mixtral", "phimoe", "qwen2_moe", "qwen3_moe"), _MOE),
    "jetmoe": "its expert dispatch (ScatterElements) fails in ONNX Runtime on a padded batch",
    **dict.fromkeys(("qwen3_5_text", "qwen3_next"), "its linear-attention layers (torch.linalg.solve_triangular) have no ONNX export"),
    **dict.fromkeys(("zamba", "zamba2"), "its Mamba layers' graph does not load in ONNX Runtime"),
    "diffllama": "its differential attention's RMSNorm (aten::rms_norm) has no export at the graph's opset",
    **dict.fromkeys(("glm", "glm4"), "its partial rotary embedding does not trace with a padding mask"),
    "helium": "its attention reshapes to the traced length, so other lengths fail in ONNX Runtime",
    "axk2": "its cache scatter does not trace (a PyTorch JIT error)",
    "mistral4": "transformers' eager attention repeats its latent attention's keys by num_key_value_heads (a shape error)",
    **dict.fromkeys(("bloom", "doge", "mpt", "openai-gpt"), _UNMARKED),
}


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Each real token's position among its row's real tokens, -1 for padding: the causal-LM graph's ``position_ids``."""
    mask = attention_mask.to(torch.int64)
    return torch.where(mask.bool(), mask.cumsum(1) - 1, torch.full_like(mask, -1))


class QEffDecoderEncoder(nn.Module):
    """forward(input_ids [B,S], attention_mask [B,S]) -> the classifier's logits [B,L] at each row's last real token, or
    the base model's last hidden states [B,S,H]."""

    def __init__(self, hf_model: PreTrainedModel, classifier: bool) -> None:
        super().__init__()
        self.classifier = classifier  # its head is a 'score' Linear (QEffEncoder checks it)
        base = hf_model.base_model if classifier else hf_model
        self.lm = QEffCausalLM(hf_model, base=base, lm_head=hf_model.score if classifier else None)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        batch, length = input_ids.shape
        # Rows padded on the left are rolled so that their tokens start at 0: recurrent layers (Mamba, linear
        # attention) scan from the first column and take padding only at the end; rolled back afterwards.
        first = attention_mask.to(torch.int64).argmax(dim=1, keepdim=True)  # each row's first real token
        columns = torch.arange(length, device=input_ids.device)[None]
        rolled = (columns + first) % length
        input_ids, attention_mask = input_ids.gather(1, rolled), attention_mask.gather(1, rolled)
        position_ids = position_ids_from_mask(attention_mask)
        dtype = self.lm.dtype
        # an empty cache as long as the sequence: one prefill step writes every position
        past = [torch.zeros(self.lm.kv_shape(batch, length), dtype=dtype) for _ in range(2 * self.lm.num_layers)]
        past += [torch.zeros(batch, *shape, dtype=dtype) for shape in self.lm.state_shapes]
        hidden, _ = self.lm.hidden_states(position_ids, past, input_ids=input_ids)
        if self.classifier:
            rows = torch.arange(batch, device=hidden.device)
            return self.lm.lm_head(hidden[rows, position_ids.argmax(dim=1)])
        back = ((columns - first) % length).unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
        return hidden.gather(1, back)
