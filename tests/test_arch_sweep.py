"""The architecture sweep in the test suite: every type it proved stays token-exact, and the
registry that from_pretrained consults agrees with what the sweep finds.

The parametrized sweep is marked ``sweep`` (CI runs it; ``-m "not sweep"`` skips it locally).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from transformers import AutoConfig

from benchmarks.arch_sweep import (
    NEW_TOKENS,
    causal_lm_types,
    float64_logits,
    hf_reference,
    not_decoder_reason,
    prompt_ids,
    sweep_one,
    tiny_model,
)
from QEfficient.transform.adapters import (
    ALLOW_ANY_ARCHITECTURE_ENV,
    PROVEN_WITH_NEWER_TRANSFORMERS,
    UnprovenArchitectureWarning,
    UnsupportedArchitectureError,
    check_architecture,
)
from QEfficient.transform.adapters.sweep_status import KNOWN_FAILURES, NOT_DECODER, PROVEN


@pytest.mark.sweep
@pytest.mark.parametrize("model_type", sorted(PROVEN))
def test_proven_type_stays_token_exact(model_type, monkeypatch):
    monkeypatch.delenv(ALLOW_ANY_ARCHITECTURE_ENV, raising=False)
    result = sweep_one(model_type)
    assert result.status == "token-exact", f"{model_type}: {result.status}: {result.reason}"


@pytest.mark.sweep
@pytest.mark.parametrize("model_type", sorted(PROVEN_WITH_NEWER_TRANSFORMERS))
def test_type_proven_with_a_newer_transformers_stays_token_exact(model_type, monkeypatch):
    """Types of a transformers release newer than CI's: checked wherever that release is installed."""
    import transformers

    release = PROVEN_WITH_NEWER_TRANSFORMERS[model_type]
    if model_type not in causal_lm_types():
        pytest.skip(f"transformers {transformers.__version__} has no {model_type} (proven with {release})")
    monkeypatch.delenv(ALLOW_ANY_ARCHITECTURE_ENV, raising=False)
    result = sweep_one(model_type)
    assert result.status == "token-exact", f"{model_type}: {result.status}: {result.reason}"


def test_types_proven_with_a_newer_transformers_are_not_in_the_registry():
    """Once CI's transformers has them, the sweep writes them into the registry and they leave the list."""
    newer = set(PROVEN_WITH_NEWER_TRANSFORMERS)
    assert not newer & (PROVEN | set(KNOWN_FAILURES) | set(NOT_DECODER))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for model_type in newer:
            config = AutoConfig.for_model("llama")
            config.model_type = model_type  # check_architecture reads the type only (the release CI installs lacks it)
            check_architecture(config)


def test_ergos_norms_equal_torchs_rms_norm():
    """adapters/ergo.py restates Ergo's norms (transformers 5.25) without ``F.rms_norm``, which HF calls; checked
    here against ``F.rms_norm`` as HF calls it, in float32 and for a bfloat16 input (float32 inside, cast back)."""
    from types import SimpleNamespace

    import torch
    import torch.nn.functional as F

    from QEfficient.transform.adapters.ergo import expert_norm_forward, rms_norm_forward

    torch.manual_seed(0)
    norm, experts = SimpleNamespace(weight=torch.randn(16), eps=1e-12), SimpleNamespace(weight=torch.randn(4, 16), eps=1e-12)
    ids = torch.tensor([0, 3, 1, 1, 2, 0])
    for x in (torch.randn(6, 16) * 3, (torch.randn(6, 16) * 3).bfloat16()):
        ref = F.rms_norm(x.float(), norm.weight.shape, norm.weight.float(), norm.eps).to(x.dtype)
        ours = rms_norm_forward(norm, x)
        assert ours.dtype == x.dtype and torch.allclose(ours.float(), ref.float(), atol=1e-5)
        ref = (F.rms_norm(x.float(), (16,), eps=experts.eps) * experts.weight[ids]).to(x.dtype)
        ours = expert_norm_forward(experts, x, ids)
        assert ours.dtype == x.dtype and torch.allclose(ours.float(), ref.float(), atol=1e-5)


def test_float64_reference_follows_hf_greedy_steps():
    """The allowance for HF's own float32 rounding: a float64 run of the same weights along HF's tokens."""
    from tests.tiny_models import sweep_config

    config = sweep_config("llama")
    ids = prompt_ids()
    tokens, logits = hf_reference(tiny_model(config), ids)
    exact = float64_logits(config, ids, tokens)
    assert exact.shape == logits.shape == (NEW_TOKENS, logits.shape[1])
    assert np.abs(exact - logits).max() < 1e-4  # a transformer's float32 rounding is far below the tolerance


def test_registry_covers_only_types_in_the_mapping():
    mapping = set(causal_lm_types())
    assert PROVEN <= mapping and set(KNOWN_FAILURES) <= mapping and set(NOT_DECODER) <= mapping
    assert not (PROVEN & set(KNOWN_FAILURES)) and not (PROVEN & set(NOT_DECODER))


def test_every_type_of_the_pinned_transformers_is_classified(monkeypatch):
    """Each causal-LM type of the transformers release constraints.txt pins is proven, a known failure, or refused with
    its reason (a byte-level BLT among them): none reaches a user as an unproven type that fails deep in the export. A
    newer release's new types fail this test until benchmarks/arch_sweep.py classifies them."""
    import re
    from pathlib import Path

    import transformers

    pinned = re.search(r"^transformers==(\S+)$", (Path(__file__).parents[1] / "constraints.txt").read_text(), re.M)
    if pinned is None or transformers.__version__ != pinned.group(1):
        pytest.skip(f"transformers {transformers.__version__} is not the pinned release")
    monkeypatch.delenv(ALLOW_ANY_ARCHITECTURE_ENV, raising=False)
    classified = PROVEN | set(KNOWN_FAILURES) | set(NOT_DECODER) | set(PROVEN_WITH_NEWER_TRANSFORMERS)
    assert set(causal_lm_types()) <= classified
    with pytest.raises(UnsupportedArchitectureError, match="not a decoder-only language model: byte-level model"):
        check_architecture(AutoConfig.for_model("blt"))


def test_an_image_text_type_whose_class_is_a_text_only_causal_lm():
    """mistral4's image-text entry is Mistral4ForCausalLM, which the causal-LM mapping leaves out: a decoder, swept;
    Fuyu's is FuyuForCausalLM, mapped as a causal LM but reading images: not one."""
    from tests.tiny_models import sweep_config

    assert "mistral4" in causal_lm_types() and not_decoder_reason("mistral4", sweep_config("mistral4")) is None
    assert "multimodal" in not_decoder_reason("fuyu", AutoConfig.for_model("fuyu"))


def test_proven_type_runs_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_architecture(AutoConfig.for_model("llama"))


@pytest.mark.skipif(not KNOWN_FAILURES, reason="the sweep recorded no failing type")
def test_known_failure_raises_with_the_reason(monkeypatch):
    monkeypatch.delenv(ALLOW_ANY_ARCHITECTURE_ENV, raising=False)
    model_type, reason = sorted(KNOWN_FAILURES.items())[0]
    config = AutoConfig.for_model(model_type)
    with pytest.raises(UnsupportedArchitectureError, match="arch_sweep.py") as err:
        check_architecture(config)
    assert reason.split(":")[0] in str(err.value)
    monkeypatch.setenv(ALLOW_ANY_ARCHITECTURE_ENV, "1")
    with pytest.warns(UnprovenArchitectureWarning):
        check_architecture(config)


def test_type_that_is_not_a_decoder_is_refused_with_the_reason(monkeypatch):
    monkeypatch.delenv(ALLOW_ANY_ARCHITECTURE_ENV, raising=False)
    with pytest.raises(UnsupportedArchitectureError, match="not a decoder-only language model: permutation language model"):
        check_architecture(AutoConfig.for_model("xlnet"))


def test_unproven_type_warns_and_names_the_sweep_command():
    config = AutoConfig.for_model("llama")
    config.model_type = "my_new_llama"  # a type the sweep has never seen
    with pytest.warns(UnprovenArchitectureWarning, match="benchmarks/arch_sweep.py my_new_llama"):
        check_architecture(config)


def test_encoders_and_multimodal_types_are_not_decoders():
    assert "encoder" in not_decoder_reason("bert", AutoConfig.for_model("bert"))
    assert "multimodal" in not_decoder_reason("gemma3", AutoConfig.for_model("gemma3"))
    assert not_decoder_reason("llama", AutoConfig.for_model("llama")) is None


def test_configurations_the_graph_does_not_reproduce_are_refused_with_the_reason():
    """Falcon-RW's ALiBi and Falcon-40B's grouped key/value heads are refused (they failed deep in the export); Llama 4's
    attention temperature, which its NoPE layers apply from floor_scale on, bounds ctx_len (tokens past it differed), and
    so does Doge's keep_window_size (its logits past it differed by 0.8)."""
    from QEfficient.transform.adapters import ADAPTERS

    falcon = ADAPTERS["falcon"]
    assert falcon.context_limit(AutoConfig.for_model("falcon", alibi=True))[0] == 0
    grouped = AutoConfig.for_model("falcon", new_decoder_architecture=True, num_attention_heads=4, num_kv_heads=2, hidden_size=64)
    assert "2 key/value heads of 4" in falcon.context_limit(grouped)[1]
    for kv_heads in (1, 4):
        assert (
            falcon.context_limit(
                AutoConfig.for_model("falcon", new_decoder_architecture=True, num_attention_heads=4, num_kv_heads=kv_heads, hidden_size=64)
            )
            is None
        )
    llama4 = AutoConfig.for_model("llama4_text", floor_scale=4, num_hidden_layers=4)
    assert ADAPTERS["llama4_text"].context_limit(llama4)[0] == 3
    assert ADAPTERS["llama4_text"].context_limit(AutoConfig.for_model("llama4_text", attn_temperature_tuning=False)) is None
    doge = AutoConfig.for_model("doge", keep_window_size=6)  # its dynamic mask keeps the window's strongest keys past it
    assert ADAPTERS["doge"].context_limit(doge)[0] == 6
