"""Tiny random-weight models for every supported architecture, and a tokenizer trained here.

Nothing is downloaded: configs come from transformers, weights from a fixed seed, and the
tokenizer is a byte-level BPE trained on a few sentences.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, BertConfig, PreTrainedTokenizerFast

VOCAB = 320
PAD, BOS, EOS = 0, 1, 2

_CORPUS = [
    "My name is Ada and I like to paint robots.",
    "The sun rises over the quiet sea every morning.",
    "What is the capital of France? The capital of France is Paris.",
    "A small model runs fast on a small machine with two cores.",
    "Once upon a time a robot learned to paint the sky blue and the grass green.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20.",
] * 20

_COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=96,
    max_position_embeddings=512,
    pad_token_id=PAD,
    bos_token_id=BOS,
    eos_token_id=EOS,
    tie_word_embeddings=False,
)

# model_type -> config overrides; each exercises what makes that architecture different.
TINY_CONFIGS: dict[str, dict] = {
    "llama": dict(tie_word_embeddings=True),
    "mistral": dict(sliding_window=12),  # shorter than the test prompts: the window mask matters
    "qwen2": dict(),
    "qwen3": dict(head_dim=32),  # head_dim != hidden/heads, q/k norms (a multiple of 16: GroupQueryAttention's)
    "phi3": dict(),  # fused qkv and gate_up projections
    "gemma": dict(head_dim=16),  # sqrt(hidden) embedding scale, (1 + w) norms, tied head
    # attention and final-logit softcaps, sliding layers alternating with global ones
    "gemma2": dict(head_dim=16, sliding_window=12, final_logit_softcapping=3.0, attn_logit_softcapping=5.0, query_pre_attn_scalar=20),
    # q/k norms, two rotary bases, five sliding layers per global one (two of each here)
    "gemma3_text": dict(
        head_dim=16,
        sliding_window=12,
        num_hidden_layers=4,
        layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
        final_logit_softcapping=3.0,
    ),
    "granite": dict(embedding_multiplier=3.0, residual_multiplier=0.5, logits_scaling=2.5, attention_multiplier=0.3),
    "olmo2": dict(),  # post-norms, full-width q/k norms
    "starcoder2": dict(),  # LayerNorm, biases, GELU MLP
    "gpt2": dict(
        n_embd=64, n_layer=2, n_head=4, n_positions=512, vocab_size=VOCAB, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD
    ),  # learned positions, Conv1D, no rotary
}


def build_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer)
    assert tok.get_vocab_size() <= VOCAB
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def tiny_bert_config(tok, **extra) -> BertConfig:
    """A two-layer BERT of width 32 over ``tok``'s vocabulary (the retrievers' and SPLADE tests' encoder)."""
    return BertConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, pad_token_id=tok.pad_token_id, **extra,
    )  # fmt: skip


def build_wordpiece_tokenizer() -> PreTrainedTokenizerFast:
    """BERT's kind of tokenizer: WordPiece, [CLS] A [SEP] B [SEP] for a pair, the second text of token type 1."""
    from tokenizers import normalizers, processors

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(_CORPUS, trainers.WordPieceTrainer(vocab_size=VOCAB, special_tokens=special, show_progress=False))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def tiny_config(model_type: str):
    overrides = TINY_CONFIGS[model_type]
    base = {} if model_type == "gpt2" else dict(_COMMON)
    return AutoConfig.for_model(model_type, **{**base, **overrides})


def save_tiny_model(model_type: str, folder: Path, tokenizer_dir: Path) -> Path:
    torch.manual_seed(1234)
    model = AutoModelForCausalLM.from_config(tiny_config(model_type))
    with torch.no_grad():  # random init is small; widen it so logits are far from ties
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(4.0)
    model.save_pretrained(folder)
    PreTrainedTokenizerFast.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------------------------------
# Tiny configs for every model type in transformers' causal-LM mapping (the architecture sweep).
#
# Each type's config class is built with its own defaults, shrunk by the generic table below (an
# attribute is set only where the default config has it), then by the few per-type overrides
# that the generic shrink cannot express (kept as data).
# ---------------------------------------------------------------------------------------------

_SWEEP_SHRINK: dict[str, object] = {
    # sizes
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "d_model": 64,
    "n_embd": 64,
    "intermediate_size": 96,
    "ffn_dim": 96,
    "ffn_hidden_size": 96,
    "decoder_ffn_dim": 96,
    "num_hidden_layers": 2,
    "n_layer": 2,
    "n_layers": 2,
    "num_layers": 2,
    "decoder_layers": 2,
    "num_attention_heads": 4,
    "n_head": 4,
    "n_heads": 4,
    "num_heads": 4,
    "decoder_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_kv_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 512,
    "n_positions": 512,
    "n_ctx": 512,
    "max_seq_len": 512,
    # mixture of experts: 4 experts, top-2, small experts
    "num_experts": 4,
    "num_local_experts": 4,
    "n_routed_experts": 4,
    "moe_num_experts": 4,
    "num_experts_per_tok": 2,
    "num_experts_per_token": 2,
    "moe_topk": 2,
    "moe_k": 2,
    "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 32,
    "shared_intermediate_size": 32,
    "shared_experts_intermediate_size": 32,
    "expert_ffn_hidden_size": 32,
    "dense_intermediate_size": 96,
    "n_group": 1,
    "num_expert_group": 1,
    "topk_group": 1,
    "first_k_dense_replace": 1,  # layer 0 dense, layer 1 MoE
    "decoder_sparse_step": 1,
    # multi-latent attention
    "kv_lora_rank": 16,
    "qk_rope_head_dim": 8,
    "qk_nope_head_dim": 8,
    "qk_head_dim": 16,
    "v_head_dim": 16,
    "index_head_dim": 16,
    "index_n_heads": 2,
    # partial rotary (codegen, gptj)
    "rotary_dim": 8,
    # a sliding window shorter than the prompt, so that the window mask matters
    "sliding_window": 12,
    # per-layer inputs (Gemma 3n/4), sliding-window attention with its own head counts (Inkling)
    "vocab_size_per_layer_input": VOCAB,
    "hidden_size_per_layer_input": 16,
    "swa_num_attention_heads": 4,
    "swa_num_key_value_heads": 2,
    "swa_head_dim": 16,
    "unpadded_vocab_size": VOCAB,
    "intermediate_size_mlp": 96,
    # special tokens of the local tokenizer
    "pad_token_id": PAD,
    "bos_token_id": BOS,
    "eos_token_id": EOS,
}

# Sparse attention (DSA): the indexer chooses 8 keys (of up to 29 in the sweep); 16 indexer heads, since with 2 many
# scores are an exact 0 (every head's ReLU cut) and PyTorch and ONNX Runtime break such ties apart
_DSA = dict(index_topk=8, index_n_heads=16)
# Gated DeltaNet layers: 4 value heads sharing 2 key heads, small heads
_SMALL_DELTANET = dict(linear_num_value_heads=4, linear_num_key_heads=2, linear_key_head_dim=16, linear_value_head_dim=16)

# model_type -> overrides applied after the generic shrink (what each type needs to build small).
_INKLING = dict(
    sliding_window_size=12,
    rel_extent=10,
    log_scaling_n_floor=4,
    swa_num_attention_heads=8,
    swa_num_key_value_heads=4,
    swa_head_dim=8,
)

SWEEP_OVERRIDES: dict[str, dict] = {
    "gpt2": dict(n_inner=None),
    "dbrx": dict(
        attn_config=dict(kv_n_heads=2, rope_theta=10000.0, clip_qkv=8.0),
        ffn_config=dict(ffn_hidden_size=96, moe_num_experts=4, moe_top_k=2),
    ),
    "gpt_neo": dict(window_size=12),  # local layers: shorter than the prompt, so the window matters
    "llama4_text": dict(attention_chunk_size=12),  # shorter than the prompt: the chunk mask matters
    "zaya": dict(num_experts_per_tok=1),  # the only routing it supports
    "gemma3n_text": dict(num_kv_shared_layers=0),
    "dots1": dict(n_shared_experts=1),
    "ergo": dict(global_attention_scale=1.5),  # the full-attention layers' query/key scale (unset by default)
    # a gated short convolution (conv state only), then attention
    "lfm2": dict(layer_types=["conv", "full_attention"], num_hidden_layers=2),
    "lfm2_moe": dict(layer_types=["conv", "full_attention"], num_dense_layers=1),
    "lfm3": dict(layer_types=["conv", "full_attention"], num_hidden_layers=2),
    # state-space models: heads x head_dim must equal expand x hidden (2 x 64); small states
    "mamba2": dict(num_heads=8, head_dim=16, n_groups=2, state_size=16),
    # hybrids: one Mamba layer, then one attention layer
    "bamba": dict(attn_layer_indices=[1], mamba_n_heads=8, mamba_d_head=16, mamba_d_state=16),
    "granitemoehybrid": dict(layer_types=["mamba", "attention"], mamba_n_heads=8, mamba_d_head=16, mamba_d_state=16),
    "jamba": dict(
        attn_layer_period=2, attn_layer_offset=1, expert_layer_period=2, expert_layer_offset=1, mamba_dt_rank=8, mamba_d_state=16
    ),
    "nemotron_h": dict(mamba_num_heads=8, mamba_head_dim=16, n_groups=2, ssm_state_size=16),
    "qwen3_next": _SMALL_DELTANET,
    "qwen3_5_text": _SMALL_DELTANET,
    "qwen3_5_moe_text": _SMALL_DELTANET,
    "lara_mini": _SMALL_DELTANET,
    "kimi_linear": dict(linear_num_heads=4, linear_head_dim=16),
    # lightning attention first (layer 0: the steepest decays), then softmax attention, as MiniMax-Text-01 orders
    # them; blocks of 8 so transformers' prefill spans several blocks, the last one partial
    "minimax": dict(layer_types=["linear_attention", "full_attention"], block_size=8),
    "recurrent_gemma": dict(block_types=["recurrent", "attention"], lru_width=64),
    "falcon_h1": dict(mamba_d_ssm=128, mamba_n_heads=8, mamba_d_head=16, mamba_d_state=16),
    # multi-latent attention with a sparse-attention indexer (_DSA): a key/value head per query head, as in the real models
    "deepseek_v32": dict(num_key_value_heads=4, **_DSA),
    "glm_moe_dsa": dict(num_key_value_heads=4, **_DSA),
    "axk2": dict(num_key_value_heads=4, **_DSA),
    "hy_v4": _DSA,
    # Inkling: the sliding window, the relative-bias extent and the log scaling all act within the 29 tokens, and
    # the sliding layers' heads differ from the full layers' (the cache pads the narrower)
    "inkling_text": dict(_INKLING, mlp_layer_types=["dense", "sparse"]),
    "inkling2_text": dict(_INKLING, num_hidden_layers=4, layer_types=["hybrid_sliding", "hybrid"] * 2, n_layers_per_attn_res_block=2),
    # layers 2-3 (one sliding, one full) run twice, each pass with its own KV cache and conv states (more layers
    # or passes only make the graph, and ONNX Runtime's shape inference over it, longer)
    "inkling2_loop_text": dict(
        _INKLING,
        num_hidden_layers=4,
        layer_types=["hybrid_sliding", "hybrid"] * 2,
        n_layers_per_attn_res_block=2,
        loop_layer_index_start=2,
        loop_layer_index_end=4,
        loop_num_passes=2,
        loop_gate_rank=16,
    ),
    # compressed windows short enough to close inside the prompt, an indexer that must choose among them (with
    # 2 indexer heads many scores are an exact 0, all heads' ReLU cut, and PyTorch and ONNX Runtime break such ties apart)
    "deepseek_v4": dict(
        compress_rates={"compressed_sparse_attention": 4, "heavily_compressed_attention": 8}, index_topk=2, index_n_heads=16
    ),
    # NoPE full-attention layers beside rotary sliding ones: rotary parameters are per layer type (None = NoPE)
    "cohere_compass_text": dict(
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}, "full_attention": None},
        logit_scale=0.5,
    ),
    # one shared transformer block tied across two hybrid layers (one alone has nothing to tie to)
    "zamba": dict(num_hidden_layers=4, layers_block_type=["mamba", "hybrid", "mamba", "hybrid"]),
    # the mLSTM rounds its q/k width up to a multiple of 64: hidden * qk_dim_factor must be one (as in xLSTM-7B)
    "xlstm": dict(hidden_size=128),
    # input layer, two looped recurrent layers (run twice, a KV cache per loop), output layer
    "dory": dict(
        num_hidden_layers=4,
        layer_types=["sliding_attention", "sliding_attention", "full_attention", "full_attention"],
        n_input_layers=1,
        n_recurrent_layers=2,
        n_output_layers=1,
    ),
    # Gated DeltaNet layers, then an attention layer whose QSA indexer picks key blocks: a budget of the whole
    # context (it selects every key, as the released model does up to its budget), four residual streams
    # (transformers 5.25) sliding and indexed-attention layers, the second indexed layer reading the first's keys
    "kolibri1_1": dict(
        layer_types=["sliding_attention", "indexed_attention", "sliding_attention", "indexed_attention"],
        num_hidden_layers=4,
        index_layers=[1],
        kv_source_layers=[0, 1, 2, 1],
        mlp_only_layers=[0],
        num_key_value_heads=2,
        head_dim=16,
        index_num_heads=2,
        index_topk=8,
        index_pool_size=32,
        index_compression=4,
        index_num_local_tokens=4,
        index_num_sink_tokens=2,
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
        shared_expert_intermediate_size=32,
        mlp_only_intermediate_size=64,
    ),
    "qwen4_exp_text": dict(
        **_SMALL_DELTANET,
        indexer_n_heads=2,
        indexer_kv_heads=1,
        indexer_head_dim=16,
        indexer_budget=64,
        indexer_compress_ratio=4,
        hc_lowrank=16,
    ),
    # Byte Latent Transformer: an entropy patcher (a small byte LM), a local encoder whose patch queries
    # cross-attend to bytes, a global transformer over patches, a local decoder cross-attending back
    "blt": dict(
        encoder_hash_byte_group_vocab=1000,
        patcher_config=dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96),
        encoder_config=dict(vocab_size=VOCAB, hidden_size=32, hidden_size_global=64, num_attention_heads=4, intermediate_size=96),
        decoder_config=dict(
            vocab_size=VOCAB, hidden_size=32, hidden_size_global=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96
        ),
        global_config=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96),
    ),
    "mistral_large4_text": _DSA,
    # Mistral 4's head_dim is the whole query-key head (no-rope part + rotary part; the rotary fraction from it)
    "mistral4": dict(head_dim=16),
    # HY-V4's DSA layers with 3-D multimodal rotary: the (time, height, width) sections cover the 4 rotary pairs
    "hy_v4_vl_text": dict(_DSA, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]}),
    # multi-latent attention (a key/value head per query head) with DSA layers and sliding-window MLA layers
    "dots3_note_text": dict(
        _DSA,
        num_key_value_heads=4,
        swa_num_attention_heads=4,
        swa_num_key_value_heads=4,
        swa_q_lora_rank=24,
        swa_kv_lora_rank=32,  # wider than the DSA layers' latent, as released
        swa_head_dim=16,
        swa_qk_nope_head_dim=8,
        swa_v_head_dim=16,
    ),
}


def sweep_config(model_type: str):
    """A tiny config of ``model_type`` built from its config class's defaults (raises if it cannot be built)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    config_class = CONFIG_MAPPING[model_type]
    defaults = config_class().to_dict()
    kwargs = {k: v for k, v in _SWEEP_SHRINK.items() if k in defaults}
    kwargs.update(_per_layer_lists(defaults))
    if defaults.get("q_lora_rank") is not None:
        kwargs["q_lora_rank"] = 24
    if "qk_rope_head_dim" in defaults:  # multi-latent attention: head_dim is the rotary part
        kwargs["head_dim"] = kwargs["qk_rope_head_dim"]
    if defaults.get("sliding_window") is None:
        kwargs.pop("sliding_window", None)
    kwargs.update(SWEEP_OVERRIDES.get(model_type, {}))
    return config_class(**kwargs)


def _per_layer_lists(defaults: dict) -> dict:
    """Per-layer lists (layer_types, mlp_layer_types, ...) cut to one layer of each kind, two layers at least."""
    n_default = next((defaults[k] for k in ("num_hidden_layers", "n_layer", "num_layers", "n_layers") if k in defaults), None)
    lists = {
        k: v
        for k, v in defaults.items()
        if isinstance(v, list) and n_default and len(v) == n_default and v and all(isinstance(x, (str, int, bool)) for x in v)
    }
    # a list of layer indices (Llama 4's moe_layers: every layer) names layers, not kinds: it is rebuilt below
    indices = {k for k, v in lists.items() if v == list(range(n_default))}
    lists = {k: v for k, v in lists.items() if k not in indices}
    if not lists:
        return {}
    sizes = {k: [_SWEEP_SHRINK[k]] for k in lists if k in _SWEEP_SHRINK}  # per-layer sizes (Gemma 3n)
    kinds = {k: sizes.get(k) or list(dict.fromkeys(v)) for k, v in lists.items()}
    n_layers = max(2, *(len(k) for k in kinds.values()))
    out = {k: [ks[i % len(ks)] for i in range(n_layers)] for k, ks in kinds.items()}
    out.update({k: list(range(n_layers)) for k in indices})
    if n_layers != 2:
        for k in ("num_hidden_layers", "n_layer", "num_layers", "n_layers"):
            if k in defaults:
                out[k] = n_layers
    return out


def write_tiny_gguf(hf_folder: Path, path: Path, tied: bool = False, tokenizer: bool = True, scale: float = 1.0) -> Path:
    """A float32 GGUF of the tiny Llama with its byte-level BPE tokenizer (none unless ``tokenizer``), as llama.cpp lays
    it out (``tied``: without ``output.weight``, so the embedding table is the LM head too; ``scale``: its LM head
    scaled, other weights of the same size)."""
    import gguf

    hf = AutoModelForCausalLM.from_pretrained(hf_folder)
    cfg = hf.config
    vocab = json.loads(AutoTokenizer.from_pretrained(hf_folder).backend_tokenizer.to_str())["model"]
    tokens = [t for t, _ in sorted(vocab["vocab"].items(), key=lambda kv: kv[1])]
    tokens += [f"[PAD{i}]" for i in range(len(tokens), cfg.vocab_size)]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    if tokenizer:
        writer.add_tokenizer_model("gpt2")
        writer.add_token_list(tokens)
        writer.add_token_types([3 if i < 3 else 1 for i in range(len(tokens))])  # <pad> <s> </s> are control tokens
        writer.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in vocab["merges"]])
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_pad_token_id(0)
    else:  # (transformers takes the vocabulary's size from the token list, else from this field)
        writer.add_vocab_size(cfg.vocab_size)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    for name, tensor in hf.state_dict().items():
        if tied and name == "lm_head.weight":
            continue
        array = tensor.detach().float().numpy() * (scale if name == "lm_head.weight" else 1.0)
        heads = {"q_proj": cfg.num_attention_heads, "k_proj": cfg.num_key_value_heads}.get(name.split(".")[-2])
        if heads:  # llama.cpp's rotary layout for q and k; transformers undoes it on load
            array = array.reshape(heads, 2, -1, array.shape[-1]).swapaxes(1, 2).reshape(array.shape)
        writer.add_tensor(names.get_name(name, try_suffixes=(".weight", ".bias")), np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
