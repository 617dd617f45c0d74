"""The speech models' rewrites that transform/rewrites.py lists (its docstring says why each is needed): Granite Speech 5's
frame pairs, Granite Speech's blocks and windows, Qwen3-ASR's windows, Wav2Vec2-BERT's x-vector pooling, Moonshine's
frame count, the banded and chunked encoder masks of Moonshine Streaming, SeamlessM4T v2 and Nemotron ASR, and Nemotron
ASR's attention over a whole clip."""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling, XVectorOutput


def granite_speech5_subsampling_forward(self, hidden_states, attention_mask=None, position_embeddings=None, **kwargs):
    """GraniteSpeech5EncoderSubsamplingBlock.forward with its pooling of frame pairs by reshape, not ``unfold`` (which
    does not export over a dynamic length); an odd last frame is dropped, as there."""
    hidden_states = hidden_states + 0.5 * self.feed_forward1(self.norm_feed_forward1(hidden_states))
    attn_output, _ = self.self_attn(
        hidden_states=self.norm_self_att(hidden_states),
        attention_mask=attention_mask,
        position_embeddings=position_embeddings,
        **kwargs,
    )
    hidden_states = hidden_states + attn_output
    conv_output = self.conv(self.norm_conv(hidden_states), attention_mask=attention_mask)
    batch, frames, width = hidden_states.shape
    pairs = frames // 2
    pooled = hidden_states[:, : 2 * pairs].reshape(batch, pairs, 2, width).mean(2)
    hidden_states = pooled + conv_output[:, :pairs]
    hidden_states = hidden_states + 0.5 * self.feed_forward2(self.norm_feed_forward2(hidden_states))
    return self.norm_out(hidden_states)


def granite_speech_attention_forward(self, hidden_states, attention_dists):
    """GraniteSpeechConformerAttention.forward with its blocks counted in tensor arithmetic (``math.ceil`` fixes them to
    the example's length): the frames right-padded to whole blocks of ``context_size``, the padding's keys masked. Rows
    of the padding see other keys than transformers' (it masks their whole rows); they are dropped after, as there."""
    hidden_states = self.pre_norm(hidden_states)
    batch, frames, _ = hidden_states.shape
    size = self.context_size
    blocks = (frames + size - 1) // size
    hidden_states = nn.functional.pad(hidden_states, (0, 0, 0, blocks * size - frames))
    query = self.to_q(hidden_states)
    key, value = self.to_kv(hidden_states).chunk(2, dim=-1)
    query, key, value = (s.reshape(batch * blocks, size, self.num_heads, -1).transpose(1, 2) for s in (query, key, value))
    scores = torch.einsum("b h c d, c r d -> b h c r", query, self.rel_pos_emb(attention_dists)) * self.scale
    slots = torch.arange(size, device=hidden_states.device)[None, :] + size * torch.arange(blocks, device=hidden_states.device)[:, None]
    padding = (slots >= frames).repeat(batch, 1)[:, None, None, :]  # [batch * blocks, 1, 1, keys]
    scores = scores.masked_fill(padding, -torch.finfo(scores.dtype).max)
    out = nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=scores, scale=self.scale)
    out = out.transpose(1, 2).reshape(batch, blocks * size, -1)
    return self.dropout(self.to_out(out[:, :frames, :]))


def granite_speech_projector_forward(self, hidden_states):
    """GraniteSpeechEncoderProjector.forward with its windows counted in tensor arithmetic (``math.ceil`` fixes them to
    the example's length): the frames right-padded with zeros to whole windows, each window's queries through the
    Q-Former, as there."""
    batch, frames, width = hidden_states.shape
    blocks = (frames + self.window_size - 1) // self.window_size
    hidden_states = nn.functional.pad(hidden_states, (0, 0, 0, blocks * self.window_size - frames))
    hidden_states = hidden_states.reshape(batch * blocks, self.window_size, width)
    out = self.qformer(query_embeds=self.query, encoder_hidden_states=hidden_states, encoder_attention_mask=None, return_dict=True)
    return self.linear(out.last_hidden_state.reshape(batch, blocks * self.num_queries, -1))


def qwen3_asr_encoder_forward(self, input_features, input_features_mask, **kwargs):
    """Qwen3ASREncoder.forward with its attention windows counted in tensor arithmetic (transformers lists them in
    Python, which tracing fixes to the example's): each chunk's frames through the convolutions; each audio's frames in
    windows of ``n_window_infer`` mel frames' worth from its start, attending within their window, the padding's keys
    masked; then the audios' own frames packed in order, as transformers packs them. The windows are transformers' where
    a chunk of the batch is whole (its window is the longest chunk's frames, times the windows' chunks); where none is,
    every audio fits in one window either way. A frame attends its window only, so the cost grows with the audio's
    length, not its square."""
    batch, mels, length = input_features.shape
    chunk = self.n_window * 2
    chunks = length // chunk
    pieces = input_features.reshape(batch, mels, chunks, chunk).permute(0, 2, 1, 3).reshape(batch * chunks, 1, mels, chunk)
    states = nn.functional.gelu(self.conv2d3(nn.functional.gelu(self.conv2d2(nn.functional.gelu(self.conv2d1(pieces))))))
    total, channels, bins, steps = states.shape
    states = self.conv_out(states.permute(0, 3, 1, 2).reshape(total, steps, channels * bins))
    states = states + self.positional_embedding.positional_embedding[:steps].to(states.dtype)
    lengths = self._post_cnn_length(input_features_mask.reshape(batch, chunks, chunk).sum(-1).reshape(-1).long())
    valid = (torch.arange(steps, device=states.device)[None, :] < lengths[:, None]).reshape(batch, chunks * steps).long()
    frames, window = chunks * steps, steps * (self.n_window_infer // chunk)
    padding = (frames + window - 1) // window * window - frames
    states = nn.functional.pad(states.reshape(batch, frames, -1), (0, 0, 0, padding))
    valid = nn.functional.pad(valid, (0, padding)).bool()  # an audio's frames come first in its row (a prefix mask)
    keys = valid.reshape(-1, window)  # [batch * windows, window]
    mask = torch.zeros(keys.shape, dtype=states.dtype, device=states.device).masked_fill(~keys, torch.finfo(states.dtype).min)
    hidden_states = states.reshape(-1, states.shape[-1])
    for layer in self.layers:
        hidden_states = layer(hidden_states, cu_seqlens=None, window_mask=mask[:, None, None, :])[0]
    kept = valid.reshape(-1).nonzero().squeeze(-1)
    return BaseModelOutputWithPooling(last_hidden_state=self.ln_post(hidden_states.index_select(0, kept)))


def qwen3_asr_attention_forward(self, hidden_states, cu_seqlens=None, window_mask=None, **kwargs):
    """Qwen3ASRAudioAttention.forward within windows: ``hidden_states`` [windows x window, width] and ``window_mask`` the
    windows' additive key mask [windows, 1, 1, window] (qwen3_asr_encoder_forward passes it through its layers, in the
    place of the lengths); the same products as transformers' attention per window."""
    windows, window = window_mask.shape[0], window_mask.shape[-1]
    query, key, value = (
        proj(hidden_states).reshape(windows, window, self.num_heads, -1).transpose(1, 2) for proj in (self.q_proj, self.k_proj, self.v_proj)
    )
    scores = torch.matmul(query, key.transpose(2, 3)) * self.scaling + window_mask
    out = torch.matmul(nn.functional.softmax(scores, dim=-1), value)
    return self.out_proj(out.transpose(1, 2).reshape(windows * window, -1))


def wav2vec2_bert_xvector_forward(self, input_features, attention_mask=None, labels=None, **kwargs):
    """Wav2Vec2BertForXVector.forward with its statistics pooling over each row's frames as masked sums, not a Python
    loop over the batch's rows (which tracing would unroll to the example's count)."""
    outputs = self.wav2vec2_bert(input_features, attention_mask=attention_mask, output_hidden_states=self.config.use_weighted_layer_sum)
    if self.config.use_weighted_layer_sum:
        weights = nn.functional.softmax(self.layer_weights, dim=-1)
        hidden_states = (torch.stack(outputs.hidden_states, dim=1) * weights.view(-1, 1, 1)).sum(dim=1)
    else:
        hidden_states = outputs.last_hidden_state
    hidden_states = self.projector(hidden_states)
    for tdnn_layer in self.tdnn:
        hidden_states = tdnn_layer(hidden_states)
    if attention_mask is None:
        lengths = torch.full(hidden_states.shape[:1], hidden_states.shape[1], device=hidden_states.device)
    else:
        lengths = self._get_tdnn_output_lengths(self._get_feat_extract_output_lengths(attention_mask.sum(dim=1)))
    frames = torch.arange(hidden_states.shape[1], device=hidden_states.device)
    keep = (frames[None, :] < lengths[:, None]).to(hidden_states.dtype)[..., None]
    count = keep.sum(dim=1)
    mean = (hidden_states * keep).sum(dim=1) / count
    std = ((((hidden_states - mean[:, None]) * keep) ** 2).sum(dim=1) / (count - 1)).sqrt()  # torch.std's n - 1
    embeddings = self.feature_extractor(torch.cat([mean, std], dim=-1))
    return XVectorOutput(logits=self.classifier(embeddings), embeddings=embeddings)


def moonshine_output_lengths(self, input_lengths):
    """MoonshinePreTrainedModel._get_feat_extract_output_lengths without ``int()``, which tracing turns into the
    example's length: the same whole numbers for any audio the model reads (895 samples or more)."""
    first = (input_lengths - 127) // 64 + 1
    second = (first - 7) // 3 + 1
    return (second - 3) // 2 + 1


def banded_keys(inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None, and_mask_function=None) -> torch.Tensor:
    """[B, 1, Q, K] booleans (True: attend; [B, 1, 1, K] without a band): the padding's keys and the band's rule
    (``and_mask_function``) evaluated on broadcast positions, which transformers evaluates with vmap (tracing does not
    take it)."""
    frames, device = inputs_embeds.shape[1], inputs_embeds.device
    keys = torch.ones(inputs_embeds.shape[:2], dtype=torch.bool, device=device) if attention_mask is None else attention_mask.bool()
    keys = keys[:, None, None, :]
    if and_mask_function is not None:
        positions = torch.arange(frames, device=device)
        keys = keys & and_mask_function(0, 0, positions[:, None], positions[None, :])[None, None]
    return keys


def banded_bidirectional_mask(config, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, and_mask_function=None, **_):
    """transformers' ``create_bidirectional_mask`` for an eager encoder whose layers attend within a band (Moonshine
    Streaming's per-layer sliding windows): ``banded_keys`` as an additive [B, 1, Q, K] mask. A 4-D boolean mask
    (SeamlessM4T v2's chunks) becomes additive too: transformers passes it through as it is, and its eager attention adds
    the booleans (1 and 0) to the scores, where its default (SDPA) attention masks them."""
    keys = attention_mask.bool() if attention_mask.dim() == 4 else banded_keys(inputs_embeds, attention_mask, and_mask_function)
    zeros = torch.zeros(keys.shape, dtype=inputs_embeds.dtype, device=inputs_embeds.device)
    return zeros.masked_fill(~keys, torch.finfo(inputs_embeds.dtype).min)


def banded_boolean_mask(config, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None, and_mask_function=None, **_):
    """transformers' ``create_bidirectional_mask`` for Nemotron ASR's SDPA encoder, whose chunks attend within a limited
    context: ``banded_keys`` as booleans, the form transformers gives it (the encoder finds its fully masked rows in it)."""
    return banded_keys(inputs_embeds, attention_mask, and_mask_function)


def nemotron_streaming_attention_forward(self, hidden_states, position_embeddings, attention_mask=None, cache=None, **kwargs):
    """NemotronAsrStreamingEncoderAttention.forward over a whole clip (no cache), its relative-position scores added and
    its boolean mask (``banded_boolean_mask``) applied before one softmax, a row with no key to attend giving zeros as
    torch's SDPA gives them (transformers leaves it to SDPA; ONNX's Softmax would give NaN, which the next layer would
    spread to every frame)."""
    if cache is not None:
        raise NotImplementedError("Nemotron ASR's encoder runs here over whole clips; streaming it with a cache is not supported.")
    if attention_mask is not None and attention_mask.dtype != torch.bool:  # transformers' additive mask (eager): 0 where kept
        attention_mask = attention_mask == 0
    batch, frames = hidden_states.shape[:2]
    heads, width = self.config.num_attention_heads, self.head_dim
    query, key, value = (
        proj(hidden_states).view(batch, frames, -1, width).transpose(1, 2) for proj in (self.q_proj, self.k_proj, self.v_proj)
    )
    relative = self.relative_k_proj(position_embeddings).view(batch, -1, heads, width).permute(0, 2, 3, 1)
    positional = self._rel_shift((query + self.bias_v.view(1, heads, 1, width)) @ relative)[..., :frames]
    scores = ((query + self.bias_u.view(1, heads, 1, width)) @ key.transpose(2, 3) + positional) * self.scaling
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    probs = nn.functional.softmax(scores, dim=-1)
    if attention_mask is not None:
        probs = probs * attention_mask.any(dim=-1, keepdim=True)
    out = (probs @ value).transpose(1, 2).reshape(batch, frames, -1)
    return self.o_proj(out), None
