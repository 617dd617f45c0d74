"""The one static-KV path shared by every decoder architecture.

A Hugging Face causal LM is wrapped, not copied: its own modules (embeddings, projections,
norms, rotary tables, MLPs) run unchanged. Three things are swapped in for the duration of a
forward pass:

* the cache object handed to every attention layer (:class:`StaticKVCache`) writes the new
  keys/values into fixed ``[B, n_kv_heads, ctx_len, head_dim]`` tensors at ``position_ids``
  with one scatter per layer, and hands the whole fixed-size tensor back;
* the attention function (registered with transformers' ``AttentionInterface``) attends over
  every slot of the cache it is given, with grouped-query attention done by a reshape (no
  ``repeat_kv`` copy). The cache length is a dynamic axis: the runtime hands the graph only the
  prefix of slots the sequence has reached (see runtime/ort_session.py), so attention costs what
  the sequence uses, not what ``ctx_len`` allows;
* the attention mask is built here from ``position_ids`` (slot ``j`` is visible to a query at
  position ``p`` iff ``0 <= j <= p``, and ``j > p - window`` for sliding-window layers), so a
  right-padded chunk (padding marked by ``position_ids == -1``) is safe.

The scatter output is the graph output ``*_RetainedState`` and nothing reads the ``past_*``
input after it, so a runtime may bind one buffer as both and update the cache in place.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AttentionInterface, PreTrainedModel

from QEfficient.transform import moe_op, onnx_symbolics
from QEfficient.transform.adapters import ArchAdapter, get_adapter
from QEfficient.transform.recurrent_state import RecurrentStateCache, swapped_forwards
from QEfficient.transform.rewrites import apply_rewrites, rewritten_functions

STATIC_KV_ATTENTION = "qeff_static_kv"


def static_kv_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention over the full static cache. query [B,H,S,D]; key/value [B,Hkv,T,D]; mask bool [B,1,S,T]. Returns
    (output [B,S,H,Dv], None), or with ``keep_probs=True`` (output, the probabilities as computed: [B,Hkv,H/Hkv,S,T]; no
    reshape, so that a graph that outputs a few of them adds few nodes).

    Keys and values with fewer rows than the query (an encoder-decoder's cross keys/values, one row per input, read
    by its beams' adjacent rows) are read once: each input's rows become query positions of one product."""
    if key.shape[0] != query.shape[0]:
        return _rows_folded(module, query, key, value, attention_mask, scaling, dropout, **kwargs)
    bsz, n_heads, seq, head_dim = query.shape
    n_kv = key.shape[1]
    if scaling is None:
        scaling = head_dim**-0.5
    # Query head h reads kv head h // group, exactly like transformers' repeat_kv.
    q = query.reshape(bsz, n_kv, n_heads // n_kv, seq, head_dim)
    scores = torch.matmul(q, key.unsqueeze(2).transpose(-1, -2)) * scaling
    softcap = kwargs.get("softcap")
    if softcap:
        scores = torch.tanh(scores / softcap) * softcap
    # One mask for every head [B,1,S,T], or one per query head [B,H,S,T] (Doge's dynamic mask); None: every key, for
    # a cross-attention its model gives no mask (PP-FormulaNet's), never for a causal one over the static cache
    if attention_mask is None and getattr(module, "is_causal", False):
        raise ValueError(f"{type(module).__name__} is causal and was given no mask: the static cache's unwritten slots would be read.")
    if attention_mask is not None:
        mask = (
            attention_mask.unsqueeze(2)
            if attention_mask.shape[1] == 1
            else attention_mask.reshape(bsz, n_kv, -1, *attention_mask.shape[2:])
        )
        scores = torch.where(mask, scores, torch.finfo(scores.dtype).min) if mask.dtype == torch.bool else scores + mask
    indices = kwargs.get("indices")
    if indices is not None:  # sparse attention (DSA): each query sees the keys its indexer selected [B, S, k], if visible
        selected = torch.zeros(scores.shape[0], *scores.shape[-2:], dtype=torch.bool, device=scores.device)
        selected = selected.scatter(-1, indices.long(), torch.ones_like(indices, dtype=torch.bool))
        scores = torch.where(selected[:, None, None], scores, torch.finfo(scores.dtype).min)
    sinks = kwargs.get("s_aux")
    if sinks is None:
        sinks = kwargs.get("sinks")
    if sinks is not None:
        # Attention sinks (GPT-OSS, Granite-SWA): one learned logit per head joins the softmax and
        # takes its share of the probability mass, then is dropped.
        sink = sinks.reshape(1, n_kv, n_heads // n_kv, 1, 1).expand(bsz, -1, -1, seq, 1).to(scores.dtype)
        probs = torch.softmax(torch.cat([scores, sink], dim=-1).float(), dim=-1)[..., :-1].to(value.dtype)
    else:
        probs = torch.softmax(scores.float(), dim=-1).to(value.dtype)
    out = torch.matmul(probs, value.unsqueeze(2))  # B, Hkv, group, S, Dv
    # contiguous like transformers' own attention functions: some models .view() the result
    out = out.reshape(bsz, n_heads, seq, value.shape[-1]).transpose(1, 2).contiguous()
    return out, probs if kwargs.get("keep_probs") else None


def _rows_folded(module, query, key, value, attention_mask, scaling, dropout, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
    """static_kv_attention with query [rows, H, S, D] over key/value [inputs, Hkv, T, D], ``rows / inputs`` adjacent
    rows per input: [inputs, H, rows/inputs * S, D] queries, the mask folded alike; returns ([rows, S, H, Dv], the
    probabilities where kept: [inputs, Hkv, H/Hkv, rows/inputs * S, T])."""
    rows, heads, seq, dim = query.shape
    inputs = key.shape[0]
    q = query.reshape(inputs, -1, heads, seq, dim).transpose(1, 2).reshape(inputs, heads, -1, dim)
    mask = attention_mask
    if mask is not None:
        mask = mask.expand(rows, -1, seq, -1)
        mask = (
            mask.reshape(inputs, -1, mask.shape[1], seq, mask.shape[-1]).transpose(1, 2).reshape(inputs, mask.shape[1], -1, mask.shape[-1])
        )
    # out [inputs, per_input * S, H, Dv]; probs (where kept) [inputs, Hkv, H/Hkv, per_input * S, T], left folded
    out, probs = static_kv_attention(module, q, key, value, mask, scaling, dropout, **kwargs)
    return out.reshape(rows, seq, heads, out.shape[-1]), probs


AttentionInterface.register(STATIC_KV_ATTENTION, static_kv_attention)
onnx_symbolics.register()


def _pad_to(t: torch.Tensor, heads: int, width: int) -> torch.Tensor:
    return nn.functional.pad(t, (0, width - t.shape[-1], 0, 0, 0, heads - t.shape[1]))


class StaticKVCache:
    """Duck-typed transformers cache: scatter new entries into fixed tensors at ``position_ids``."""

    def __init__(self, past: list[torch.Tensor], position_ids: torch.Tensor) -> None:
        self.keys = list(past[0::2])
        self.values = list(past[1::2])
        ctx_len = past[0].shape[2]
        # Padding (-1) writes to the last slot: no real query can see it before a real write
        # lands there (writes happen before reads in every step).
        self.slots = torch.where(position_ids < 0, ctx_len - 1, position_ids)
        self._indices: dict[str, torch.Tensor] = {}
        self._value_rows: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _index(self, role: str, like: torch.Tensor) -> torch.Tensor:
        # Every layer writes the same slots with the same shapes: build the scatter index once
        # per step, not once per layer (each build is Shape + Expand in the graph).
        if role not in self._indices:
            self._indices[role] = self.slots[:, None, :, None].expand_as(like)
        return self._indices[role]

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        # The cache may be stored narrower than the compute dtype (compile(mxint8_kv_cache=True)):
        # new entries are rounded on the way in, the cache widened on the way out.
        stored = self.keys[layer_idx].dtype
        heads, width = self.keys[layer_idx].shape[1], self.keys[layer_idx].shape[-1]
        # Keys and values narrower than the cache (multi-latent attention's latent and rotary key
        # share one width), or with fewer heads (MiMo-V2-Flash's full-attention layers), are
        # zero-padded on the way in and cut back on the way out.
        key_in, value_in = (t if t.shape[1] == heads and t.shape[-1] == width else _pad_to(t, heads, width) for t in (key, value))
        self._value_rows[layer_idx] = (self.values[layer_idx], value, value_in)  # what update_indexer writes beside
        self.keys[layer_idx] = self.keys[layer_idx].scatter(2, self._index("key", key_in), key_in.to(stored))
        self.values[layer_idx] = self.values[layer_idx].scatter(2, self._index("value", value_in), value_in.to(stored))
        keys, values = self.keys[layer_idx].to(key.dtype), self.values[layer_idx].to(value.dtype)
        if key.shape[1] != heads:
            keys, values = keys[:, : key.shape[1]], values[:, : value.shape[1]]
        if key.shape[-1] != width:
            keys = keys[..., : key.shape[-1]]
        if value.shape[-1] != width:
            values = values[..., : value.shape[-1]]
        return keys, values

    def update_indexer(self, index_keys: torch.Tensor, layer_idx: int) -> torch.Tensor:
        """Sparse attention's (DSA) indexer keys [B, S, D] for the positions ``update`` just wrote, stored in the
        multi-latent value slot past its rotary key (adapters/sparse_attention.py widens the cache where they do not
        fit); returns every slot's [B, T, D]. The value rows are written again from the cache as it came in, so
        the retained cache is one scatter of the whole row. A layer that reads another layer's cache (KV sharing)
        but runs its own indexer keeps the keys in its own, otherwise unused, value slot."""
        pending = self._value_rows.pop(layer_idx, None)
        if pending is None:
            past, used, row = self.values[layer_idx], 0, index_keys.unsqueeze(1)
        else:
            past, value, value_in = pending
            used = value.shape[-1]
            row = torch.cat([value_in[..., :used], index_keys.unsqueeze(1).to(value_in.dtype)], dim=-1)
        row = _pad_to(row, past.shape[1], past.shape[-1])
        self.values[layer_idx] = past.scatter(2, self._index("value", row), row.to(past.dtype))
        return self.values[layer_idx][:, 0, :, used : used + index_keys.shape[-1]].to(index_keys.dtype)

    def get_seq_length(self, layer_idx: int = 0) -> int:  # only used when position_ids is None
        return 0

    @property
    def is_initialized(self) -> bool:  # the fixed-size tensors exist from the first step
        return True

    def retained(self) -> list[torch.Tensor]:
        return [t for pair in zip(self.keys, self.values) for t in pair]


def visibility_mask(
    position_ids: torch.Tensor, slots: torch.Tensor, sliding: int | None = None, upper=None, chunk: int | None = None, lower=None
) -> torch.Tensor:
    """bool [B,1,S,len(slots)]: slot j is visible to the query at position p iff 0 <= j <= p (and j > p - sliding,
    and j in p's chunk of ``chunk`` positions for chunked attention).

    ``upper`` [B,S] replaces p as the last visible slot (bidirectional image blocks see to their end); with
    ``lower`` [B,S] too, a query sees its block [lower, upper] whole even past a sliding window (HF's rule:
    causal and in the window, or in the same block).
    """
    slots = slots[None, None, :]
    pos = position_ids[:, :, None]
    visible = slots <= (pos if upper is None else upper[:, :, None])
    if sliding is not None:
        visible = visible & (slots > pos - sliding)
        if lower is not None:
            visible = visible | ((slots >= lower[:, :, None]) & (slots <= upper[:, :, None]))
    if chunk is not None:
        visible = visible & (torch.div(slots, chunk, rounding_mode="floor") == torch.div(pos, chunk, rounding_mode="floor"))
    return visible[:, None]


def attention_masks(config, position_ids: torch.Tensor, slots: torch.Tensor, upper: torch.Tensor | None = None, lower=None):
    """The mask argument in the form the HF model expects: one tensor, or a per-layer-type dict."""
    sliding = getattr(config, "sliding_window", None)
    if isinstance(getattr(config, "layer_types", None), (list, tuple)):
        masks = {"full_attention": visibility_mask(position_ids, slots, upper=upper)}
        if sliding is not None:
            masks["sliding_attention"] = visibility_mask(position_ids, slots, sliding, upper, lower=lower)
        chunk = getattr(config, "attention_chunk_size", None)
        if chunk is not None:  # Llama 4: attention within fixed chunks of positions
            masks["chunked_attention"] = visibility_mask(position_ids, slots, upper=upper, chunk=chunk)
        if "indexed_attention" in config.layer_types:  # sparse attention: the indexer narrows the causal mask itself
            masks["indexed_attention"] = masks["full_attention"]
        return masks
    return visibility_mask(position_ids, slots, sliding, upper, lower=lower)


def as_mask_kind(masks, kind: str, dtype: torch.dtype):
    """Boolean visibility masks in the form a model's own attention expects: "additive" 0 (visible) /
    dtype-min (hidden) floats, or "hidden" booleans (True where a slot is hidden)."""
    if isinstance(masks, dict):
        return {k: as_mask_kind(v, kind, dtype) for k, v in masks.items()}
    if kind == "hidden":
        return ~masks
    return torch.where(masks, torch.zeros((), dtype=dtype), torch.tensor(torch.finfo(dtype).min, dtype=dtype))


class QEffCausalLM(nn.Module):
    """Retained-state form of a HF causal LM.

    forward(input_ids [B,S] int64, position_ids [B,S] int64 (-1 = padding),
            past_key.0, past_value.0, ... [B, n_kv_heads, ctx_len, head_dim])
    -> (logits [B,1,V] float32 at each row's last real position,
        past_key.0_RetainedState, past_value.0_RetainedState, ...)
    """

    def __init__(
        self,
        hf_model: PreTrainedModel,
        adapter: ArchAdapter | None = None,
        *,
        base: nn.Module | None = None,
        lm_head: nn.Module | None = None,
        config=None,
    ) -> None:
        super().__init__()
        self.hf = hf_model
        apply_rewrites(hf_model)
        # A multimodal model passes its language model's parts explicitly (base, head, text config).
        self._config = config if config is not None else hf_model.config
        self.adapter = adapter or get_adapter(self._config)
        if base is None:  # a head whose base_model_prefix does not name its decoder (Llama 4 text) is its own base_model
            base = hf_model.base_model if hf_model.base_model is not hf_model else hf_model.model
        self.base = base
        self.lm_head = lm_head if lm_head is not None else hf_model.get_output_embeddings()
        # Recurrent (Mamba-style) layers of a state-space or hybrid model: their conv/SSM states follow the KV cache.
        self.recurrent_layers = self.adapter.recurrent_layers(hf_model)

    @property
    def config(self):
        return self._config

    @property
    def state_layers(self) -> tuple[bool, ...]:
        """Per recurrent layer: whether it keeps an SSM state beside its conv state (the graph spec's ``state_layers``)."""
        return tuple(layer.ssm_shape is not None for layer in self.recurrent_layers)

    @property
    def state_shapes(self) -> list[tuple[int, ...]]:
        """Per-row shapes of the recurrent states, in graph order (conv_state.0, ssm_state.0, conv_state.1, ...)."""
        return [shape for layer in self.recurrent_layers for shape in layer.shapes]

    def kv_shape(self, batch_size: int, ctx_len: int) -> tuple[int, int, int, int]:
        _, n_kv, head_dim = self.adapter.kv_geometry(self.config)
        return (batch_size, n_kv, ctx_len, head_dim)

    @property
    def num_layers(self) -> int:
        return self.adapter.kv_geometry(self.config)[0]

    @property
    def vocab_size(self) -> int:
        """Width of the graph's logits: the LM head's rows, less any the adapter's post-processing drops (Inkling's
        head is padded past its checkpoint's vocabulary and HF slices the logits)."""
        rows = self.lm_head.weight.shape[0]
        return int(self.adapter.postprocess_logits(torch.zeros(1, rows), self.config).shape[-1])

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype (an additive mask's)."""
        return self.lm_head.weight.dtype if self.lm_head is not None else next(self.base.parameters()).dtype

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, *past: torch.Tensor):
        logits, retained = self.step(position_ids, list(past), input_ids=input_ids)
        return (logits, *retained)

    def step(self, position_ids: torch.Tensor, past: list[torch.Tensor], **inputs):
        """(logits [B,1,V] at each row's last real position, updated caches) for token ids or embeddings (``inputs``:
        those of ``hidden_states``)."""
        hidden, cache = self.hidden_states(position_ids, past, **inputs)
        # Only the last real position of each row reaches the LM head: prefill cost stays O(1) in S.
        last = position_ids.argmax(dim=1)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        hidden_last = self.adapter.head_input(self.hf, hidden[rows, last])  # [B, hidden]
        # A 2-D linear with a bias exports as Gemm(transB=1) over the weight itself: a tied embedding is
        # stored once (without a bias the exporter folds in a transposed copy), and ONNX Runtime's
        # Gemm over [V, H] rows measured 2.5x faster than MatMul over a [H, V] copy at batch 1.
        weight = self.lm_head.weight
        bias = self.lm_head.bias if self.lm_head.bias is not None else torch.zeros(weight.shape[0], dtype=weight.dtype)
        logits = nn.functional.linear(hidden_last, weight, bias)
        logits = self.adapter.postprocess_logits(self.adapter.head_output(self.hf, logits), self.config)
        return logits.float().unsqueeze(1), cache.retained()

    def hidden_states(
        self,
        position_ids: torch.Tensor,
        past: list[torch.Tensor],
        input_ids=None,
        inputs_embeds=None,
        visible_upto=None,
        visible_from=None,
        rotary_position_ids=None,
        **base_kwargs,
    ):
        """(the base model's last hidden states [B,S,H], the cache holding the step's keys, values and states) for token
        ids or embeddings: ``step`` without the head, for a decoder's sequence classifier or embedding model.

        ``visible_upto`` [B,S]: the last slot each query sees, when it is not its own position; ``visible_from``
        [B,S]: the first slot of the block (with ``visible_upto``) it sees whole, window or not.
        ``rotary_position_ids``: what the model's rotary tables read, when they are not the cache
        positions (Qwen2-VL's [3,B,S] multimodal positions).
        """
        kv, states = past[: 2 * self.num_layers], past[2 * self.num_layers :]
        cache, masks = None, None
        if kv:
            cache = StaticKVCache(kv, position_ids)
            slots = torch.arange(kv[0].shape[2], device=position_ids.device)
            masks = attention_masks(self.config, position_ids, slots, visible_upto, visible_from)
            if self.adapter.mask_kind != "visible":
                masks = as_mask_kind(masks, self.adapter.mask_kind, self.dtype)
        if self.recurrent_layers:
            cache = RecurrentStateCache(cache, self.adapter.attention_layers(self.config), self.recurrent_layers, states, position_ids)
            masks = self.adapter.recurrent_masks(masks)
        forwards = self.adapter.module_forwards
        with (
            moe_op.traced_implementations(self.config, STATIC_KV_ATTENTION),
            rewritten_functions(self.hf),
            swapped_forwards(self.hf, forwards),
        ):
            out = self.base(
                input_ids=input_ids,
                inputs_embeds=inputs_embeds,
                attention_mask=masks,
                # learned/rotary tables must not see -1
                position_ids=position_ids.clamp(min=0) if rotary_position_ids is None else rotary_position_ids,
                cache=cache,
                use_cache=True,
                **base_kwargs,  # what a multimodal text model takes besides (Qwen3-VL's DeepStack features)
            )
        return out.last_hidden_state, cache
