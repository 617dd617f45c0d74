"""Methods of transformers modules replaced (on the instance) where the original cannot be exported
or assumes a cache that grows with the sequence.

* Mixture-of-experts layers that transformers runs with a data-dependent loop over experts: DBRX and
  LongCat-Flash export as ONNX Runtime's fused MoE node (moe_op.py); JetMoE's experts and its mixture
  of attention heads gather each token's selected experts' weights (``W[expert_ids]``) and multiply
  them in one batched matmul. No loop, no ``nonzero``, so the graph exports, and a decode step reads
  only the selected experts' weights. Layers built with transformers' ``use_experts_implementation``
  need no rewrite: static_kv selects moe_op's implementation for them.
* BLOOM builds its ALiBi bias from a 2-D padding mask; here it is built from the static cache's slots.
* GPT-Neo's attention reads causality and its local window from a buffer sliced by cache length.
* T5Gemma 2's embedding writes its end-of-image vector by boolean index assignment: here with ``where``.
* Longformer's self-attention gathers its global tokens with ``nonzero`` and Python counts: here by blocks of its
  window and compacted global slots (adapters/longformer.py); its model's padding mask is built [B, 1, 1, L], not
  [B, 1, L, L] (it reads one row of it).
* FNet's token mixing is torch.fft, which has no ONNX export: here the real part of the same DFT by MatMuls.
* MobileViTV2 folds its patches back with ``fold`` (col2im, no ONNX export at opset 17): here by reshape and permute.
* Wav2Vec2-Conformer's relative positions slice their table and skew their scores with sizes tracing keeps: here
  by indices from the frames' count.
* Llama 4 and DeepSeek-V2 rotate queries and keys with complex numbers (``torch.polar``,
  ``view_as_complex``), which ONNX cannot express: their rotary tables become (cos, sin) pairs and the
  rotation is written out in real arithmetic (the module functions are swapped only while our forward runs).
* PatchTST's and PatchTSMixer's patches are ``unfold`` over the time axis, which exports with a wrong shape when the
  batch is dynamic: here a gather of each patch's positions.
* SuperPoint's non-maximum suppression max-pools a 3-D [B, H, W] tensor as an unbatched image, which exports as a 1-D
  pool: here over [B, 1, H, W].
* ViLT picks its image patches with ``nonzero``, Python lists and a random order (which its output does not see): here
  every patch in order, for unpadded images.
* Wav2Vec2-BERT's x-vector head pools each row's frames in a Python loop over the batch, which tracing unrolls to the
  example's rows: here by masked sums (this and the speech models' replacements below, up to SeamlessM4T v2's, live in
  speech_rewrites.py).
* Granite Speech 5's encoder pools pairs of frames with ``unfold``, which does not export over a dynamic length: here by
  reshape.
* Granite Speech's conformer attends within blocks of its context and its projector reads windows of frames, both
  counted with ``math.ceil`` on sizes, which tracing fixes to the example's: here in tensor arithmetic.
* Qwen3-ASR's encoder packs every audio's frames into one sequence and attends within windows listed by Python
  (``tolist`` of its cumulative lengths): here each audio's frames in a batch of windows counted in tensor arithmetic,
  the padding's keys masked, then packed.
* Moonshine's encoder counts its frames with ``int()``, which tracing turns into the example's count: here in tensor
  arithmetic.
* Moonshine Streaming's encoder masks each layer's band with transformers' vmap-built mask: here from the band's rule on
  broadcast positions; SeamlessM4T v2's speech encoder's boolean chunk mask, which eager attention would add as 1s and
  0s, becomes additive; Nemotron ASR's chunked limited-context mask is built the same way, as the booleans its encoder
  reads, and its attention over a whole clip gives a row with no key zeros, as torch's SDPA does (ONNX's Softmax would
  give NaN).
* Grounding DINO splits its prompt into phrases with ``isin`` and running maxima, which have no ONNX export: here by
  comparisons over positions (adapters/grounding_dino.py).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from collections.abc import Iterator

import torch
from torch import nn
from transformers.activations import SiLUActivation

from QEfficient.transform.adapters import longformer
from QEfficient.transform.adapters.grounding_dino import text_masks_and_positions
from QEfficient.transform.adapters.openai_gpt import openai_gpt_model_forward
from QEfficient.transform.moe_op import fused_moe, longcat_flash_experts_forward, step3p7_experts_forward
from QEfficient.transform.speech_rewrites import (
    banded_bidirectional_mask,
    banded_boolean_mask,
    granite_speech5_subsampling_forward,
    granite_speech_attention_forward,
    granite_speech_projector_forward,
    moonshine_output_lengths,
    nemotron_streaming_attention_forward,
    qwen3_asr_attention_forward,
    qwen3_asr_encoder_forward,
    wav2vec2_bert_xvector_forward,
)


def dbrx_experts_forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor) -> torch.Tensor:
    """DbrxExperts: w1/v1/w2 stored as [E * ffn, H]; out = sum_k weight_k * (act(x w1_k^T) * (x v1_k^T)) w2_k."""
    batch_size = hidden_states.shape[0]
    x = hidden_states.reshape(-1, self.hidden_size)  # [T, H]
    shape = (self.num_experts, self.ffn_hidden_size, self.hidden_size)
    w1 = self.mlp.w1.view(shape)[top_k_index]  # [T, k, F, H]
    v1 = self.mlp.v1.view(shape)[top_k_index]
    w2 = self.mlp.w2.view(shape)[top_k_index]
    xk = x[:, None, None, :]  # [T, 1, 1, H]
    gate = torch.matmul(xk, w1.transpose(-1, -2))  # [T, k, 1, F]
    up = torch.matmul(xk, v1.transpose(-1, -2))
    down = torch.matmul(self.mlp.activation_fn(gate) * up, w2).squeeze(-2)  # [T, k, H]
    out = (down * top_k_weights[..., None].to(down.dtype)).sum(dim=1)
    if torch.jit.is_tracing() and isinstance(self.mlp.activation_fn, (SiLUActivation, nn.SiLU)):
        # exported: one MoE node (moe_op.py), gate/up rows interleaved as ONNX Runtime reads them
        fc1 = torch.stack((self.mlp.w1.view(shape), self.mlp.v1.view(shape)), dim=2).reshape(shape[0], 2 * shape[1], shape[2])
        fc2 = self.mlp.w2.view(shape).transpose(1, 2)
        weights = top_k_weights.to(x.dtype)
        out = fused_moe(out, x, top_k_index, weights, fc1, fc2, num_choices=self.num_experts)
    return out.view(batch_size, -1, self.hidden_size)


def _jetmoe_route(router, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """JetMoeTopKGating's decision without its sort/split bookkeeping: (expert ids [T,k], gates [T,k], logits)."""
    logits = router.layer(x).float()
    top_logits, top_index = logits.topk(router.top_k, dim=1)
    return top_index, torch.softmax(top_logits, dim=1).type_as(x), logits


def _experts_linear(weight: torch.Tensor, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [T, k, In] through each token's selected experts of weight [E, Out, In] -> [T, k, Out]."""
    return torch.matmul(x.unsqueeze(-2), weight[index].transpose(-1, -2)).squeeze(-2)


def jetmoe_moe_forward(self, layer_input: torch.Tensor) -> torch.Tensor:
    bsz, length, emb_size = layer_input.size()
    x = layer_input.reshape(-1, emb_size)
    index, gates, _ = _jetmoe_route(self.router, x)
    hidden = _experts_linear(self.input_linear.weight, x[:, None, :].expand(-1, index.shape[1], -1), index)
    gate, up = hidden.chunk(2, dim=-1)
    out = _experts_linear(self.output_linear.weight, self.activation(gate) * up, index)  # [T, k, H]
    return ((out * gates[..., None]).sum(dim=1).view(bsz, length, self.input_size)) + self.bias


def jetmoe_moa_map(self, layer_input: torch.Tensor):
    bsz, length, emb_size = layer_input.size()
    x = layer_input.reshape(-1, emb_size)
    index, gates, logits = _jetmoe_route(self.router, x)
    queries = _experts_linear(self.input_linear.weight, x[:, None, :].expand(-1, self.top_k, -1), index)
    return queries.view(bsz, length, self.top_k, -1), logits, (index, gates)


def jetmoe_moa_reduce(self, layer_input: torch.Tensor, topo_info) -> torch.Tensor:
    bsz, length, k, hidden_size = layer_input.size()
    index, gates = topo_info
    out = _experts_linear(self.output_linear.weight, layer_input.reshape(-1, k, hidden_size), index)
    return (out * gates[..., None]).sum(dim=1).view(bsz, length, self.input_size) + self.bias


def gpt_neo_attn(self, query, key, value, attention_mask=None):
    """GPTNeoSelfAttention._attn over the static cache. The original slices a causal buffer as if the queries
    were the last keys; here visibility comes from the (additive) mask, and a local layer keeps the slots
    within ``window_size`` of the query, whose position is its last visible slot."""
    scores = torch.matmul(query.float(), key.float().transpose(-1, -2))  # GPT-Neo does not scale the scores
    visible = attention_mask == 0
    if self.attention_type == "local":
        slots = torch.arange(key.shape[-2], device=key.device)
        position = visible.sum(dim=-1, keepdim=True) - 1
        visible = visible & (slots > position - self.config.window_size)
    scores = torch.where(visible, scores, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    return torch.matmul(probs, value), probs


def bloom_build_alibi_tensor(self, attention_mask: torch.Tensor, num_heads: int, dtype: torch.dtype) -> torch.Tensor:
    """[B * H, 1, T]: slope_h * slot. ALiBi is slope * (key position - query position); the query term is
    constant along each softmax row, so slope * key slot gives the same probabilities (as HF's own
    mask-free path does). Hidden slots are masked separately."""
    from transformers.models.bloom.modeling_bloom import _get_alibi_slopes

    batch_size, slots = attention_mask.shape[0], attention_mask.shape[-1]
    slopes = _get_alibi_slopes(num_heads, attention_mask.device)
    alibi = slopes[:, None, None] * torch.arange(slots, device=attention_mask.device)
    return alibi.repeat(batch_size, 1, 1).to(dtype)


def real_rotary_forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
    """The complex rotary table cis(position * inv_freq) * scaling as real (cos, sin) pairs [B, S, D/2, 2]."""
    freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
    return torch.stack([freqs.cos(), freqs.sin()], dim=-1) * self.attention_scaling


def _rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """(x[2i] + i x[2i+1]) * (cos + i sin), written back interleaved, as view_as_complex/view_as_real do."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    real, imag = pairs[..., 0], pairs[..., 1]
    return torch.stack([real * cos - imag * sin, real * sin + imag * cos], dim=-1).flatten(-2).type_as(x)


def llama4_apply_rotary_emb(xq: torch.Tensor, xk: torch.Tensor, freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    cos, sin = freqs[..., 0][:, :, None, :], freqs[..., 1][:, :, None, :]  # q/k are [B, S, H, D] here
    return _rotate_pairs(xq, cos, sin), _rotate_pairs(xk, cos, sin)


def deepseek_v2_apply_rotary_emb(xq: torch.Tensor, xk: torch.Tensor, freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    cos, sin = freqs[..., 0].unsqueeze(1), freqs[..., 1].unsqueeze(1)  # q/k are [B, H, S, D] here
    return _rotate_pairs(xq, cos, sin), _rotate_pairs(xk, cos, sin)


def t5gemma2_embedding_forward(self, input_ids: torch.Tensor) -> torch.Tensor:
    """T5Gemma2TextScaledWordEmbedding: its end-of-image token takes a learned vector, written with ``where`` instead
    of a boolean index assignment (which traces to a scatter of the traced inputs' count)."""
    embeds = nn.functional.embedding(input_ids, self.weight, self.padding_idx) * self.embed_scale.to(self.weight.dtype)
    return torch.where((input_ids == self.eoi_token_index)[..., None], self.eoi_embedding.to(embeds.dtype), embeds)


def _dft_parts(n: torch.Tensor | int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) of the n-point DFT matrix, exp(-2 pi i j k / n) = cos - i sin, in ``dtype`` (float32 or float64);
    j k taken modulo n first, so that the angles stay below 2 pi (float32 keeps them to its own precision at any n)."""
    index = torch.arange(n, dtype=torch.int64)
    angle = torch.remainder(index[:, None] * index[None, :], n).to(dtype) * (2 * torch.pi / n)
    return torch.cos(angle), torch.sin(angle)


def fnet_fourier_forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor]:
    """FNetBasicFourierTransform: the real part of the 2-D DFT over (tokens, hidden), Re(F_S X F_H) = C_S X C_H -
    S_S X S_H for real X, as four MatMuls (torch.fft has no ONNX export); the tokens' matrices are built from the
    input's length, so the graph takes any length, as transformers' FFT does."""
    x = hidden_states if hidden_states.dtype == torch.float64 else hidden_states.float()  # sums of S x H terms
    cos_seq, sin_seq = _dft_parts(x.shape[1], x.dtype)
    cos_hidden, sin_hidden = _dft_parts(x.shape[2], x.dtype)
    real = torch.matmul(torch.matmul(cos_seq, x), cos_hidden) - torch.matmul(torch.matmul(sin_seq, x), sin_hidden)
    return (real.to(hidden_states.dtype),)


def mobilevitv2_folding(self, patches: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
    """MobileViTV2Layer.folding: transformers' ``nn.functional.fold`` of non-overlapping patches (col2im, which has no
    ONNX export at opset 17) as the reshape it is: [B, C, ph*pw, patches] -> [B, C, H, W]; rows and columns past the
    last whole patch are zeros, as ``fold`` leaves them (``unfold`` dropped them)."""
    batch, channels = patches.shape[0], patches.shape[1]
    height, width = output_size
    rows, cols = height // self.patch_height, width // self.patch_width
    grid = patches.reshape(batch, channels, self.patch_height, self.patch_width, rows, cols)
    folded = grid.permute(0, 1, 4, 2, 5, 3).reshape(batch, channels, rows * self.patch_height, cols * self.patch_width)
    return nn.functional.pad(folded, (0, width - cols * self.patch_width, 0, height - rows * self.patch_height))


def zoedepth_reassemble_forward(self, hidden_states: list[torch.Tensor], patch_height: int, patch_width: int) -> list[torch.Tensor]:
    """ZoeDepthReassembleStage.forward, each stage on its own: transformers stacks the stages along the batch axis and
    splits them back by the batch size, which tracing keeps as a constant (a graph of one batch size); every step is
    per image, so the result is the same."""
    out = []
    for stage_idx, hidden_state in enumerate(hidden_states):
        cls_token, hidden_state = hidden_state[:, 0], hidden_state[:, 1:]
        channels = hidden_state.shape[-1]
        hidden_state = hidden_state.reshape(-1, patch_height, patch_width, channels).permute(0, 3, 1, 2).contiguous()
        if self.readout_type == "project":
            hidden_state = hidden_state.flatten(2).permute((0, 2, 1))
            readout = cls_token.unsqueeze(dim=1).expand_as(hidden_state)
            hidden_state = self.readout_projects[stage_idx](torch.cat((hidden_state, readout), -1))
        elif self.readout_type == "add":
            hidden_state = hidden_state + cls_token.unsqueeze(-1)
        hidden_state = hidden_state.permute(0, 2, 1).reshape(hidden_state.shape[0], -1, patch_height, patch_width)
        out.append(self.layers[stage_idx](hidden_state))
    return out


def fixed_size_adaptive_avg_pool(self, x: torch.Tensor) -> torch.Tensor:
    """nn.AdaptiveAvgPool2d for an input whose height and width tracing keeps as constants (an image graph compiled for
    one size): the TorchScript exporter takes only outputs that divide the input (or 1 x 1), and loses the input's size
    where shape inference is off. Each output cell is the mean of PyTorch's region for it, rows floor(i H / h) to
    ceil((i + 1) H / h), columns likewise: exact."""
    height, width = int(x.shape[-2]), int(x.shape[-1])
    size = tuple(self.output_size) if isinstance(self.output_size, (tuple, list)) else (self.output_size, self.output_size)
    out_h, out_w = (height if size[0] is None else size[0]), (width if size[1] is None else size[1])
    if height % out_h == 0 and width % out_w == 0:
        return nn.functional.avg_pool2d(x, (height // out_h, width // out_w))
    rows = [(i * height // out_h, -(-(i + 1) * height // out_h)) for i in range(out_h)]
    cols = [(j * width // out_w, -(-(j + 1) * width // out_w)) for j in range(out_w)]
    return torch.stack([torch.stack([x[..., a:b, c:d].mean((-2, -1)) for c, d in cols], -1) for a, b in rows], -2)


def fix_adaptive_pools(model: nn.Module) -> int:
    """Use fixed_size_adaptive_avg_pool for every nn.AdaptiveAvgPool2d of ``model`` whose output is not 1 x 1 (those
    export as a global pool): only for a graph compiled for one image size. Returns how many."""
    count = 0
    for module in model.modules():
        size = module.output_size if isinstance(module, nn.AdaptiveAvgPool2d) else None
        if size is not None and (tuple(size) if isinstance(size, (tuple, list)) else (size, size)) != (1, 1):
            module.forward = types.MethodType(fixed_size_adaptive_avg_pool, module)
            count += 1
    return count


def conformer_relative_positions_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """Wav2Vec2ConformerRelPositionalEmbedding: the 2T - 1 rows of its table around the centre for T frames, by an
    index from the frames' count (its slice bounds are Python ints, which tracing keeps at the example's length)."""
    length = hidden_states.shape[1]
    index = torch.arange(2 * length - 1, device=hidden_states.device) + (self.pe.shape[1] // 2 - length + 1)
    return self.pe.index_select(1, index).to(hidden_states.dtype)


def conformer_relative_scores(module, query, key, relative_position_embeddings):
    """transformers' ``_apply_relative_position_encoding`` (Wav2Vec2-Conformer, relative positions): the position
    scores shifted by a gather, score[i, j] = raw[i, T - 1 - i + j], instead of its pad-and-view skew, whose view sizes
    tracing keeps at the example's length."""
    proj = module.linear_pos(relative_position_embeddings)
    proj = proj.view(*relative_position_embeddings.shape[:2], -1, module.head_size).permute(0, 2, 3, 1)
    raw = torch.matmul(query + module.pos_bias_v[None, :, None, :], proj)  # [B, H, T, 2T - 1]
    frames = query.shape[2]
    rows, columns = torch.arange(frames, device=query.device), torch.arange(key.shape[2], device=query.device)
    index = (frames - 1) - rows[:, None] + columns[None, :]
    scores = torch.gather(raw, -1, index.expand(*raw.shape[:2], -1, -1))
    return query + module.pos_bias_u[None, :, None, :], scores * module.scaling


def patchify_forward(self, past_values: torch.Tensor) -> torch.Tensor:
    """PatchTST's and PatchTSMixer's patches [B, channels, patches, patch_length] by a gather of window positions:
    ``unfold`` over a middle axis exports with a wrong shape for a dynamic batch."""
    if past_values.shape[-2] != self.sequence_length:
        raise ValueError(f"Input sequence length ({past_values.shape[-2]}) doesn't match model configuration ({self.sequence_length}).")
    starts = torch.arange(self.num_patches, device=past_values.device) * self.patch_stride + self.sequence_start
    positions = starts[:, None] + torch.arange(self.patch_length, device=past_values.device)[None, :]
    patches = past_values[:, positions, :]  # [B, patches, patch_length, channels]
    return patches.permute(0, 3, 1, 2).contiguous()


def vilt_visual_embed(self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor, max_image_length: int = 200):
    """ViLT's image tokens for unpadded images (every patch valid; the host runs a padded image alone, cropped): its
    patches in order with the position table resized to the image's patch grid, and its [CLS]. transformers draws the
    patches' order at random (``multinomial`` over all of them), which its attention and [CLS] pooling do not see, and
    selects them with ``nonzero`` and Python lists, which tracing would freeze."""
    x = self.patch_embeddings(pixel_values)
    batch, channels, height, width = x.shape
    grid = self.config.image_size // self.config.patch_size
    table = self.position_embeddings[:, 1:, :].transpose(1, 2).view(1, channels, grid, grid)
    positions = nn.functional.interpolate(table, size=(height, width), mode="bilinear", align_corners=True)
    positions = positions.flatten(2).transpose(1, 2).expand(batch, -1, -1)
    x = x.flatten(2).transpose(1, 2)
    rows, columns = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    patch_index = torch.stack([rows, columns], dim=-1).flatten(0, 1)[None].expand(batch, -1, -1).to(x.device)
    x = torch.cat((self.cls_token.expand(batch, -1, -1), x), dim=1)
    x = x + torch.cat((self.position_embeddings[:, :1, :].expand(batch, -1, -1), positions), dim=1)
    x = self.dropout(x)
    x_mask = torch.ones(x.shape[:2], dtype=torch.long, device=x.device)
    return x, x_mask, (patch_index, (height, width))


def superpoint_simple_nms(scores: torch.Tensor, nms_radius: int) -> torch.Tensor:
    """SuperPoint's non-maximum suppression with its max pools over [B, 1, H, W]: transformers pools the 3-D [B, H, W]
    as an unbatched image, which exports as a 1-D pool with 2-D attributes."""
    if nms_radius < 0:
        raise ValueError("Expected positive values for nms_radius")

    def max_pool(x):
        return nn.functional.max_pool2d(x[:, None], kernel_size=nms_radius * 2 + 1, stride=1, padding=nms_radius)[:, 0]

    zeros = torch.zeros_like(scores)
    max_mask = scores == max_pool(scores)
    for _ in range(2):
        suppressed = max_pool(max_mask.float()) > 0
        suppressed_scores = torch.where(suppressed, zeros, scores)
        max_mask = max_mask | ((suppressed_scores == max_pool(suppressed_scores)) & ~suppressed)
    return torch.where(max_mask, scores, zeros)


# class name -> {method name: replacement}
REWRITES = {
    "MoonshineEncoder": {"_get_feat_extract_output_lengths": moonshine_output_lengths},
    "Wav2Vec2BertForXVector": {"forward": wav2vec2_bert_xvector_forward},
    "GraniteSpeech5EncoderSubsamplingBlock": {"forward": granite_speech5_subsampling_forward},
    **{f"{name}ConformerAttention": {"forward": granite_speech_attention_forward} for name in ("GraniteSpeech", "GraniteSpeechPlus")},
    **{f"{name}EncoderProjector": {"forward": granite_speech_projector_forward} for name in ("GraniteSpeech", "GraniteSpeechPlus")},
    "Qwen3ASREncoder": {"forward": qwen3_asr_encoder_forward},
    "NemotronAsrStreamingEncoderAttention": {"forward": nemotron_streaming_attention_forward},
    "Qwen3ASRAudioAttention": {"forward": qwen3_asr_attention_forward},
    "PatchTSTPatchify": {"forward": patchify_forward},
    "PatchTSMixerPatchify": {"forward": patchify_forward},
    "T5Gemma2TextScaledWordEmbedding": {"forward": t5gemma2_embedding_forward},
    "DbrxExperts": {"forward": dbrx_experts_forward},
    "JetMoeMoE": {"forward": jetmoe_moe_forward},
    "JetMoeMoA": {"map": jetmoe_moa_map, "reduce": jetmoe_moa_reduce},
    "LongcatFlashExperts": {"forward": longcat_flash_experts_forward},
    "Step3p7Experts": {"forward": step3p7_experts_forward},
    "OpenAIGPTModel": {"forward": openai_gpt_model_forward},
    "BloomModel": {"build_alibi_tensor": bloom_build_alibi_tensor},
    "GPTNeoSelfAttention": {"_attn": gpt_neo_attn},
    "Llama4TextRotaryEmbedding": {"forward": real_rotary_forward},
    "DeepseekV2RotaryEmbedding": {"forward": real_rotary_forward},
    "LongformerSelfAttention": {"forward": longformer.self_attention_forward},
    "FNetBasicFourierTransform": {"forward": fnet_fourier_forward},
    "MobileViTV2Layer": {"folding": mobilevitv2_folding},
    "ZoeDepthReassembleStage": {"forward": zoedepth_reassemble_forward},
    "Wav2Vec2ConformerRelPositionalEmbedding": {"forward": conformer_relative_positions_forward},
}


# transformers module -> {function name: replacement}, swapped in while our forward runs
FUNCTION_REWRITES = {
    "transformers.models.llama4.modeling_llama4": {"apply_rotary_emb": llama4_apply_rotary_emb},
    "transformers.models.deepseek_v2.modeling_deepseek_v2": {"apply_rotary_emb": deepseek_v2_apply_rotary_emb},
    "transformers.models.longformer.modeling_longformer": {"create_bidirectional_mask": longformer.padding_mask},
    "transformers.models.wav2vec2_conformer.modeling_wav2vec2_conformer": {"_apply_relative_position_encoding": conformer_relative_scores},
    "transformers.models.superpoint.modeling_superpoint": {"simple_nms": superpoint_simple_nms},
    **{
        f"transformers.models.{name}.modeling_{name}": {"create_bidirectional_mask": banded_bidirectional_mask}
        for name in ("moonshine_streaming", "seamless_m4t_v2")
    },
    "transformers.models.nemotron_asr_streaming.modeling_nemotron_asr_streaming": {"create_bidirectional_mask": banded_boolean_mask},
    **{
        f"transformers.models.{name}.modeling_{name}": {"generate_masks_with_special_tokens_and_transfer_map": text_masks_and_positions}
        for name in ("grounding_dino", "mm_grounding_dino")
    },
}


@contextlib.contextmanager
def rewritten_functions(model: nn.Module) -> Iterator[None]:
    """Swap the module functions listed for ``model``'s modeling module, and restore them after."""
    name = type(model).__module__
    replacements = FUNCTION_REWRITES.get(name, {})
    module = sys.modules.get(name) or (importlib.import_module(name) if replacements else None)
    originals = {fn: getattr(module, fn) for fn in replacements}
    try:
        for fn, replacement in replacements.items():
            setattr(module, fn, replacement)
        yield
    finally:
        for fn, original in originals.items():
            setattr(module, fn, original)


def apply_rewrites(model: nn.Module) -> int:
    """Replace the methods listed in REWRITES on every matching module instance; returns how many modules."""
    count = 0
    for module in model.modules():
        for name, method in REWRITES.get(type(module).__name__, {}).items():
            setattr(module, name, types.MethodType(method, module))
            count += 1
    return count
