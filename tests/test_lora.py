"""LoRA adapters made here with peft on tiny models: every row equals HF + PEFT with its adapter
(greedy tokens, logits to 1e-4), mixed with base rows, in static and continuous batching; adapters
are graph inputs, so switching or adding a compatible one never exports again."""

from __future__ import annotations

import contextlib
import functools
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaConfig, TextStreamer

from QEfficient import QEffAutoLoraModelForCausalLM, QEffAutoPeftModelForCausalLM
from QEfficient.export.graph_names import LORA_IDS
from QEfficient.runtime.ort_session import open_kv_session
from QEfficient.utils.extras import MissingExtraError
from tests.helpers import hf_greedy, real_tokens
from tests.loopback import loopback_http

PROMPTS = ["hello world the cat", "a b c d e f g h i j k", "the quick brown fox jumps", "one two"]
GEN = 12

# name -> LoraConfig options: target-module sets, ranks, alpha, rsLoRA, per-module rank and alpha
ADAPTERS = {
    "qv": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    "mlp": dict(r=8, lora_alpha=16, target_modules=["gate_proj", "up_proj", "down_proj"], use_rslora=True),
    "attn": dict(
        r=2, lora_alpha=4, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], rank_pattern={"o_proj": 6}, alpha_pattern={"k_proj": 1}
    ),
}


def make_adapter(base: Path, folder: Path, seed: int, **options) -> Path:
    """A PEFT adapter saved by peft itself, with random nonzero B (peft starts B at zero)."""
    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(**options))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.5)
    model.save_pretrained(folder)
    return folder


def hf_model(base: Path, adapter: Path | None):
    model = AutoModelForCausalLM.from_pretrained(base)
    return (PeftModel.from_pretrained(model, adapter) if adapter else model).eval()


@pytest.fixture(scope="module")
def llama(tiny_model_dir, tmp_path_factory):
    """(base folder, {name: adapter folder}, reference(name, prompt) -> HF+PEFT greedy tokens)."""
    base = tiny_model_dir("llama")
    root = tmp_path_factory.mktemp("llama-adapters")
    adapters = {name: make_adapter(base, root / name, seed, **opts) for seed, (name, opts) in enumerate(ADAPTERS.items(), start=1)}
    tokenizer = AutoTokenizer.from_pretrained(base)

    models = functools.cache(lambda name: hf_model(base, adapters.get(name)))

    @functools.cache
    def reference(name: str, prompt: str) -> list[int]:
        return hf_greedy(models(name), tokenizer, prompt, GEN)

    return base, adapters, reference


def check_rows(info, tokenizer, mapping, reference) -> None:
    # static batching: one [batch, n] array per batch; continuous batching: one row per prompt
    rows = [row for ids in info.generated_ids for row in (ids if np.ndim(ids) == 2 else [ids])]
    for prompt, name, row in zip(PROMPTS, mapping, rows):
        ref = reference(name, prompt)
        assert real_tokens(row, tokenizer.pad_token_id, len(ref)) == ref, (name, prompt)


@pytest.fixture(scope="module")
def llama_static(llama):
    base, adapters, _ = llama
    model = QEffAutoLoraModelForCausalLM.from_pretrained(base)
    for name, path in adapters.items():
        model.load_adapter(path, name)
    model.compile(prefill_seq_len=8, ctx_len=64, batch_size=4, num_cores=1)
    return model


def test_mixed_adapters_and_base_in_one_batch_match_hf_peft(llama, llama_static):
    base, _, reference = llama
    tokenizer = AutoTokenizer.from_pretrained(base)
    mapping = ["qv", "base", "mlp", "attn"]
    info = llama_static.generate(tokenizer, PROMPTS, prompt_to_adapter_mapping=mapping, generation_len=GEN, stream=False)
    check_rows(info, tokenizer, mapping, reference)
    # the adapters matter: each changes the base model's tokens for some prompt
    for name in ADAPTERS:
        assert any(reference(name, p) != reference("base", p) for p in PROMPTS), name
    # another assignment binds other ids: no new export, no new artifact
    onnx, qpc = llama_static.onnx_path, llama_static.qpc_path
    mapping = ["attn", "mlp", "base", "qv"]
    info = llama_static.generate(tokenizer, PROMPTS, prompt_to_adapter_mapping=mapping, generation_len=GEN, stream=False)
    check_rows(info, tokenizer, mapping, reference)
    assert (llama_static.onnx_path, llama_static.qpc_path) == (onnx, qpc)


def test_logits_match_hf_peft(llama, llama_static):
    base, adapters, _ = llama
    tokenizer = AutoTokenizer.from_pretrained(base)
    mapping = ["mlp", "attn", "base", "qv"]
    session = open_kv_session(llama_static.qpc_path, 1)
    ids = llama_static.adapter_ids(mapping, 4)
    session.bind_inputs(**llama_static.adapter_tables(), **{LORA_IDS: np.array(ids, dtype=np.int64)[:, None]})
    tokens = [tokenizer(p)["input_ids"][:4] for p in PROMPTS]
    logits = session.run(np.array(tokens), np.tile(np.arange(4), (4, 1)))
    for row, name in enumerate(mapping):
        with torch.no_grad():
            ref = hf_model(base, adapters.get(name))(torch.tensor([tokens[row]])).logits[0, -1].numpy()
        assert np.abs(logits[row] - ref).max() <= 1e-4, name


def test_an_adapter_in_memory_and_download_adapter(llama):
    """QEfficient's load_adapter(adapter_weight=, adapter_config=) takes an adapter in memory (numpy float16, as its
    download_adapter keeps them, or torch tensors) with nothing read, and download_adapter() reads one without giving
    it an id: both give the matrices of the adapter read from its folder."""
    from peft import PeftConfig
    from peft.utils import load_peft_weights

    base, adapters, _ = llama
    from_folder = QEffAutoLoraModelForCausalLM.from_pretrained(base)
    from_folder.load_adapter(adapters["qv"], "qv")
    in_memory = QEffAutoLoraModelForCausalLM.from_pretrained(base)
    weights = {k: v.numpy().astype("float16") for k, v in load_peft_weights(str(adapters["qv"])).items()}
    config = PeftConfig.from_pretrained(str(adapters["qv"]))
    assert in_memory.load_adapter("not/a/path", "qv", adapter_weight=weights, adapter_config=config) == 1
    in_memory.download_adapter(adapters["attn"], "attn")
    assert list(in_memory.adapters) == ["qv"]  # downloaded, not loaded yet
    assert in_memory.load_adapter("not/read/again", "attn") == 2
    for module, layers in from_folder.adapters["qv"].weights.items():
        for layer, (a, b) in layers.items():
            a16, b16 = in_memory.adapters["qv"].weights[module][layer]
            assert np.allclose(a, a16, atol=1e-3) and np.allclose(b, b16, atol=1e-3)
    # one of the two: read from the path instead, as QEfficient does
    assert in_memory.load_adapter(adapters["mlp"], "mlp", adapter_weight=weights) == 3


def test_continuous_batching_per_slot_adapters(llama):
    base, adapters, reference = llama
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = QEffAutoLoraModelForCausalLM.from_pretrained(base, continuous_batching=True)
    for name in ("attn", "mlp"):
        model.load_adapter(adapters[name], name)
    model.compile(prefill_seq_len=8, ctx_len=64, full_batch_size=2, num_cores=1)
    mapping = ["mlp", "attn", "base", "mlp"]  # four requests through two slots: slots change adapter
    info = model.generate(tokenizer, PROMPTS, prompt_to_adapter_mapping=mapping, generation_len=GEN, stream=False)
    check_rows(info, tokenizer, mapping, reference)


def test_peft_model_from_adapter_folder_switches_without_export(llama):
    base, adapters, reference = llama
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = QEffAutoPeftModelForCausalLM.from_pretrained(adapters["qv"], "qv")  # the base comes from adapter_config.json
    assert model.active_adapter == "qv"
    finite = QEffAutoPeftModelForCausalLM.from_pretrained(adapters["qv"], "qv", finite_adapters=True)  # QEfficient's
    assert type(finite) is QEffAutoLoraModelForCausalLM and list(finite.adapters) == ["qv"]
    model.compile(prefill_seq_len=8, ctx_len=64, num_cores=1)
    prompt = PROMPTS[2]

    def tokens() -> list[int]:
        return model.generate(tokenizer, [prompt], generation_len=GEN, stream=False).generated_ids[0][0]

    assert real_tokens(tokens(), tokenizer.pad_token_id, GEN) == reference("qv", prompt)
    # upstream QEfficient's transformers-like form: new token ids [batch, max_new_tokens]
    hf_like = model.generate(**tokenizer(PROMPTS[:2], return_tensors="pt", padding=True), max_new_tokens=GEN)
    for row, p in zip(hf_like, PROMPTS[:2]):
        assert real_tokens(row, tokenizer.pad_token_id, GEN) == reference("qv", p)
    for asked in (dict(num_beams=2), dict(do_sample=True)):  # refused, as upstream refuses them
        with pytest.raises(NotImplementedError, match="not supported currently"):
            model.generate(**tokenizer(PROMPTS[:1], return_tensors="pt"), generation_config=GenerationConfig(max_new_tokens=GEN, **asked))
        with pytest.raises(NotImplementedError, match="not supported currently"):  # given as keywords, as transformers takes them
            model.generate(**tokenizer(PROMPTS[:1], return_tensors="pt"), max_new_tokens=GEN, **asked)
    ids = tokenizer(PROMPTS[:1], return_tensors="pt")["input_ids"]  # the ids first, as transformers' generate(inputs)
    assert real_tokens(model.generate(ids, max_new_tokens=GEN)[0], tokenizer.pad_token_id, GEN) == reference("qv", PROMPTS[0])
    streamed = io.StringIO()  # transformers' TextStreamer gets the prompt first: skip_prompt leaves it out, not a new token
    with contextlib.redirect_stdout(streamed):
        model.generate(ids, max_new_tokens=GEN, streamer=TextStreamer(tokenizer, skip_prompt=True))
    assert streamed.getvalue() == tokenizer.decode(reference("qv", PROMPTS[0])) + "\n"
    onnx, qpc = model.onnx_path, model.qpc_path
    with pytest.warns(UserWarning, match="targets"):  # gate/up/down: the compiled graph has q/v tables only
        model.load_adapter(adapters["mlp"], "mlp")
    with pytest.raises(TypeError, match=r"Call compile\(\) again before generate\(\) \(or unload_adapter\(\) it\)"):
        tokens()
    assert model.unload_adapter("mlp") and model.qpc_path == qpc  # the compiled artifact takes the others again
    # same target modules, larger rank than compiled: likewise
    other = make_adapter(base, adapters["qv"].parent / "qv8", 9, r=8, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    with pytest.warns(UserWarning, match=r"rank 8, more than the compiled max_lora_rank=4"):
        model.load_adapter(other, "qv8")
    assert model.unload_adapter("qv8") and model.qpc_path == qpc
    small = make_adapter(base, adapters["qv"].parent / "qv2", 7, r=2, lora_alpha=3, target_modules=["v_proj"])
    model.load_adapter(small, "qv2")
    model.set_adapter("qv2")
    ref = hf_greedy(hf_model(base, small), tokenizer, prompt, GEN)
    assert real_tokens(tokens(), tokenizer.pad_token_id, GEN) == ref
    model.disable_adapter()
    assert real_tokens(tokens(), tokenizer.pad_token_id, GEN) == reference("base", prompt)
    assert model.unload_adapter("qv") and not model.unload_adapter("qv")
    assert model.active_adapter_to_id == {"qv2": 1}  # the later adapters move up
    model.set_adapter("qv2")
    assert real_tokens(tokens(), tokenizer.pad_token_id, GEN) == ref
    assert (model.onnx_path, model.qpc_path) == (onnx, qpc)


def test_second_architecture_qwen2(tiny_model_dir, tmp_path):
    base = tiny_model_dir("qwen2")  # q/k/v biases: the adapter adds to a biased Linear
    tokenizer = AutoTokenizer.from_pretrained(base)
    everything = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    adapter = make_adapter(base, tmp_path / "all", 5, r=4, lora_alpha=32, target_modules=everything)
    model = QEffAutoLoraModelForCausalLM.from_pretrained(AutoModelForCausalLM.from_pretrained(base))  # a loaded model as the base
    model.load_adapter(adapter, "all")
    model.compile(prefill_seq_len=8, ctx_len=64, batch_size=2, num_cores=1)
    info = model.generate(tokenizer, PROMPTS[:2], prompt_to_adapter_mapping=["all", "base"], generation_len=GEN, stream=False)
    refs = [hf_greedy(hf_model(base, adapter), tokenizer, PROMPTS[0], GEN), hf_greedy(hf_model(base, None), tokenizer, PROMPTS[1], GEN)]
    for row, ref in zip(info.generated_ids[0], refs):
        assert real_tokens(row, tokenizer.pad_token_id, len(ref)) == ref


def test_bad_input_gets_clear_errors(llama, llama_static, tmp_path, monkeypatch):
    base, adapters, _ = llama
    tokenizer = AutoTokenizer.from_pretrained(base)
    with pytest.raises(ValueError, match=r"Unknown adapter name\(s\) \['nope'\]; loaded: \['qv', 'mlp', 'attn'\]"):
        llama_static.generate(tokenizer, PROMPTS, prompt_to_adapter_mapping=["qv", "nope", "base", "qv"], stream=False)
    with pytest.raises(ValueError, match="one adapter name per prompt"):
        llama_static.generate(tokenizer, PROMPTS, prompt_to_adapter_mapping=["qv"], stream=False)
    # QEfficient's low-level call on a LoRA artifact: its adapters are not in the artifact here
    from QEfficient import cloud_ai_100_exec_kv

    with pytest.raises(ValueError, match=r"names adapter rows \[1, 2\], but no adapter tables were given.*adapter_tables\(\)"):
        cloud_ai_100_exec_kv(tokenizer, llama_static.qpc_path, prompt=PROMPTS, prompt_to_lora_id_mapping=[1, 2, 0, 1], stream=False)
    model = QEffAutoLoraModelForCausalLM.from_pretrained(base)
    with pytest.raises(ValueError, match="no adapter loaded"):
        model.compile(prefill_seq_len=8, ctx_len=64)
    with pytest.raises(ValueError, match="names the model without an adapter"):
        model.load_adapter(adapters["qv"], "base")
    with pytest.raises(FileNotFoundError, match="not a PEFT adapter"):
        model.load_adapter(tmp_path, "empty")
    # an adapter made on a base of another size
    wide = tmp_path / "wide"
    config = LlamaConfig(hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    AutoModelForCausalLM.from_config(config).save_pretrained(wide)
    foreign = make_adapter(wide, tmp_path / "foreign", 3, r=2, lora_alpha=2, target_modules=["q_proj"])
    with pytest.raises(ValueError, match=r"does not fit this base model \(it was made for .*wide\).*32 -> 32 features"):
        model.load_adapter(foreign, "foreign")
    dora = make_adapter(base, tmp_path / "dora", 4, r=2, lora_alpha=2, target_modules=["q_proj"], use_dora=True)
    with pytest.raises(NotImplementedError, match="DoRA"):
        model.load_adapter(dora, "dora")
    with pytest.raises(ValueError, match="max_lora_rank must be"):
        model.load_adapter(adapters["mlp"], "mlp")
        model.compile(prefill_seq_len=8, ctx_len=64, max_lora_rank=4)
    monkeypatch.setitem(__import__("sys").modules, "peft", None)
    with pytest.raises(MissingExtraError, match=r'pip install "QEfficient\[lora\]"'):
        QEffAutoLoraModelForCausalLM.from_pretrained(base)


def test_an_adapter_the_artifact_cannot_take_waits_for_compile(llama):
    """Loaded after compile(), an adapter of another target module is kept, with a warning: generate() asks for compile()
    again, which exports the graph for the new set; a name loaded twice keeps the first, saying so; beams refuse LoRA."""
    base, adapters, reference = llama
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = QEffAutoLoraModelForCausalLM.from_pretrained(base)
    model.load_adapter(adapters["qv"], "qv")
    model.compile(prefill_seq_len=8, ctx_len=64, batch_size=2, num_cores=1)
    with pytest.warns(UserWarning, match=r"Adapter 'mlp' targets \['down_proj', 'gate_proj', 'up_proj'\], which .* compile\(\) again"):
        model.load_adapter(adapters["mlp"], "mlp")
    with pytest.raises(TypeError, match=r"Adapter 'mlp' targets .* Call compile\(\) again before generate\(\)"):
        model.generate(tokenizer, PROMPTS[:2], prompt_to_adapter_mapping=["qv", "mlp"], stream=False)
    model.compile(prefill_seq_len=8, ctx_len=64, batch_size=2, num_cores=1)
    info = model.generate(tokenizer, PROMPTS[:2], prompt_to_adapter_mapping=["qv", "mlp"], generation_len=GEN, stream=False)
    check_rows(info, tokenizer, ["qv", "mlp"], reference)
    with pytest.warns(UserWarning, match="Adapter 'qv' is already loaded; unload_adapter"):
        assert model.load_adapter(adapters["attn"], "qv") == 1
    with pytest.raises(NotImplementedError, match="Beam search does not run LoRA adapters"):
        model.generate(tokenizer, PROMPTS[:2], num_beams=2, stream=False)


def test_server_serves_each_adapter_as_a_model(llama):
    """serve --lora: /v1/models lists each adapter; a request's model picks it (as vLLM); unknown -> 404."""
    from concurrent.futures import ThreadPoolExecutor

    from QEfficient.cloud.serve import build_server
    from tests.helpers import serve_on_loopback
    from tests.test_server import complete

    base, adapters, reference = llama
    tokenizer = AutoTokenizer.from_pretrained(base)
    lora = {"qv": str(adapters["qv"]), "attn": str(adapters["attn"])}
    app, runner = build_server(str(base), None, 8, 96, 2, 1, lora=lora)
    try:
        with serve_on_loopback(app) as url:
            models = loopback_http.get(f"{url}/v1/models").json()["data"]
            base_id = models[0]["id"]
            assert [m["id"] for m in models] == [base_id, "qv", "attn"]
            assert all(m["parent"] == base_id for m in models[1:])
            jobs = [(p, name) for p in PROMPTS for name in ("qv", "attn", "base")]  # 12 requests, mixed, on 2 slots
            with ThreadPoolExecutor(max_workers=6) as pool:
                bodies = list(pool.map(lambda j: complete(url, j[0], GEN, model=base_id if j[1] == "base" else j[1]), jobs))
            for (prompt, name), body in zip(jobs, bodies):
                assert body["choices"][0]["text"] == tokenizer.decode(reference(name, prompt), skip_special_tokens=True), name
                assert body["model"] == (base_id if name == "base" else name)
            r = loopback_http.post(f"{url}/v1/completions", json={"prompt": "hi", "model": "mlp"}, timeout=30)
            assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
            ids, scored = tokenizer(PROMPTS[0])["input_ids"], {}
            for name in ("qv", "base"):  # a prompt scored through its adapter (vLLM's prompt_logprobs) is HF+PEFT's
                body = complete(url, PROMPTS[0], 1, model=base_id if name == "base" else name, prompt_logprobs=0)
                with torch.no_grad():
                    reference = torch.log_softmax(hf_model(base, adapters.get(name))(torch.tensor([ids])).logits[0].double(), -1)
                got = [next(iter(entry.values()))["logprob"] for entry in body["choices"][0]["prompt_logprobs"][1:]]
                assert got == pytest.approx([reference[i - 1, ids[i]].item() for i in range(1, len(ids))], abs=1e-4), name
                scored[name] = got
            assert scored["qv"] != pytest.approx(scored["base"], abs=1e-3)
    finally:
        runner.stop()


def test_serve_cli_lora_option():
    from QEfficient.cloud.serve_args import parse_args

    assert parse_args(["--lora", "a=/x/a", "b=/y/b"]).lora == {"a": "/x/a", "b": "/y/b"}
    for bad in (["--lora", "a"], ["--lora", "a=/x", "a=/y"], ["--draft_model", "/d"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_a_half_width_cache_is_an_export_of_its_own(llama, llama_static):
    """mxint8_kv_cache's float16 cache is another graph: it used to reuse the float32 one's export (same adapters),
    and generate() failed on the cache's dtype."""
    base, adapters, reference = llama
    model = QEffAutoLoraModelForCausalLM.from_pretrained(base)
    for name, path in adapters.items():
        model.load_adapter(path, name)
    model.compile(prefill_seq_len=8, ctx_len=64, batch_size=4, num_cores=1, mxint8_kv_cache=True)
    assert model.onnx_path != llama_static.onnx_path
    tokenizer = AutoTokenizer.from_pretrained(base)
    mapping = ["qv", "base", "mlp", "attn"]
    info = model.generate(tokenizer, PROMPTS, prompt_to_adapter_mapping=mapping, generation_len=GEN, stream=False)
    check_rows(info, tokenizer, mapping, reference)
