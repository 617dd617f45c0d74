"""QEfficient's fine-tuning (``QEfficient.cloud.finetune``) on the CPU: LoRA on a tiny Llama from a local alpaca
file, the adapter it saves served here token-exact with transformers + peft, resuming from a saved step, a custom
dataset with its own collator (full fine-tuning, and sequence classification of a tiny BERT), the command line,
and the errors for bad options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from QEfficient.cloud.finetune import main
from tests.helpers import hf_greedy, real_tokens
from tests.tiny_models import tiny_config

RECORDS = [
    {"instruction": f"name animal number {i}", "input": "the farm" if i % 3 == 0 else "", "output": "the quick brown fox"}
    for i in range(40)
]  # 2 evaluate (the first 5 %), 38 train
FAST = dict(device="cpu", num_workers_dataloader=0)


def alpaca_folder(root: Path) -> Path:
    (root / "dataset").mkdir(parents=True, exist_ok=True)
    (root / "dataset" / "alpaca_data.json").write_text(json.dumps(RECORDS))
    return root


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    """(base folder, output folder, results) of two epochs of LoRA on the alpaca file, run from its folder."""
    base = tiny_model_dir("llama")
    root = alpaca_folder(tmp_path_factory.mktemp("alpaca"))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        results = main(model_name=str(base), num_epochs=2, lr=1e-2, intermediate_step_save=10, output_dir=str(root / "out"), **FAST)
    finally:
        os.chdir(cwd)
    return base, root / "out_node_rank_0", results


def test_lora_training_lowers_the_loss_and_saves_each_epoch(trained):
    _, out, results = trained
    metrics = json.loads(Path(results["metrics_filename"]).read_text())
    assert len(results["train_step_loss"]) == 2 * 38  # batch size 1, every training record once per epoch
    assert metrics["train_epoch_loss"][1] < metrics["train_epoch_loss"][0]
    assert metrics["val_epoch_loss"][1] < metrics["val_epoch_loss"][0]
    assert float(results["last_epoch_eval_metric"]) == pytest.approx(torch.exp(results["last_epoch_eval_loss"]).item())
    for folder in ("complete_epoch_1", "complete_epoch_2", "trained_weights/epoch_1/step_30", "trained_weights/epoch_2/step_10"):
        assert (out / folder / "adapter_config.json").is_file(), folder
    assert not [p for p in out.rglob("*") if ".partial-" in p.name]  # every save renamed into place
    (log,) = (out / "logs").glob("log-file-*.txt")  # dump_logs, QEfficient's default
    assert "INFO - QEfficient - finetune: epoch 2 eval loss" in log.read_text()
    weights = load_file(out / "complete_epoch_2" / "adapter_model.safetensors")
    assert {k.rsplit(".", 2)[-2] for k in weights if "lora_" in k} == {"lora_A", "lora_B"}
    assert all(w.abs().max() > 0 for k, w in weights.items() if "lora_B" in k)  # peft starts B at zero: it trained
    assert json.loads((out / "complete_epoch_2" / "adapter_config.json").read_text())["target_modules"] in (
        ["q_proj", "v_proj"],
        ["v_proj", "q_proj"],
    )  # QEfficient's LoRA defaults


def test_the_saved_adapter_runs_here_as_transformers_and_peft(trained):
    """The trained adapter served by this library gives transformers + peft's greedy tokens."""
    from peft import PeftModel

    from QEfficient import QEffAutoPeftModelForCausalLM

    base, out, _ = trained
    adapter = out / "complete_epoch_2"
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    prompt = "Below is an instruction that describes a task. Write a response"
    reference = hf_greedy(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval(), tokenizer, prompt, 10)
    model = QEffAutoPeftModelForCausalLM.from_pretrained(adapter, "trained")
    model.compile(prefill_seq_len=16, ctx_len=128, num_cores=1)
    tokens = model.generate(tokenizer, [prompt], generation_len=10, stream=False).generated_ids[0][0]
    assert real_tokens(tokens, tokenizer.pad_token_id, 10) == reference


def test_resume_from_a_saved_step_trains_the_rest(trained, tmp_path):
    """``from_peft_checkpoint=.../epoch_1/step_30`` continues that epoch at batch 31 (QEfficient's rule)."""
    base, out, _ = trained
    root = alpaca_folder(tmp_path)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        checkpoint = str(out / "trained_weights" / "epoch_1" / "step_30")
        results = main(model_name=str(base), from_peft_checkpoint=checkpoint, run_validation=False, output_dir="again", **FAST)
    finally:
        os.chdir(cwd)
    assert len(results["train_step_loss"]) == 38 - 30
    assert (root / "again_node_rank_0" / "complete_epoch_1" / "adapter_model.safetensors").is_file()
    os.chdir(root)
    try:
        with pytest.raises(ValueError, match="raise num_epochs"):  # a finished run: nothing to continue
            main(model_name=str(base), from_peft_checkpoint=str(out / "complete_epoch_2"), num_epochs=2, output_dir="done", **FAST)
        config = tiny_config("llama")
        config.hidden_size *= 2  # an adapter of another model's shapes
        AutoModelForCausalLM.from_config(config).save_pretrained(root / "wider")
        AutoTokenizer.from_pretrained(base).save_pretrained(root / "wider")
        with pytest.raises(ValueError, match=r"does not fit LlamaForCausalLM \(its adapter's shapes are another model's"):
            main(model_name=str(root / "wider"), from_peft_checkpoint=str(out / "complete_epoch_1"), output_dir="wide", **FAST)
        # max_train_step at an epoch's end: no second epoch starts
        results = main(model_name=str(base), num_epochs=2, max_train_step=38, run_validation=False, output_dir="bound", **FAST)
    finally:
        os.chdir(cwd)
    assert len(results["train_step_loss"]) == 38 and not (root / "bound_node_rank_0" / "complete_epoch_2").exists()


PREPROC = """
def rows(dataset_config, tokenizer, split, context_length=None):
    texts = ["the cat sat", "a dog ran far", "the quick brown fox", "one two three"] * dataset_config.repeat
    out = []
    for i, text in enumerate(texts):
        ids = tokenizer(text)["input_ids"]
        labels = [i % 2] if dataset_config.classify else ids
        out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return out if split == "train" else out[:3]


def collate(tokenizer):
    import torch
    from transformers import DataCollatorWithPadding

    pad = DataCollatorWithPadding(tokenizer)

    def collate_fn(rows):
        labels = [r["labels"] for r in rows]
        batch = pad([{k: v for k, v in r.items() if k != "labels"} for r in rows])
        width = max(len(x) for x in labels)
        batch["labels"] = torch.tensor([x + [-100] * (width - len(x)) for x in labels])
        return batch
    return collate_fn
"""


def custom_config(folder: Path, **values) -> Path:
    (folder / "preproc.py").write_text(PREPROC)
    config = {"preproc_file": f"{folder / 'preproc.py'}:rows", "collate_file": f"{folder / 'preproc.py'}:collate", "repeat": 2, **values}
    (folder / "custom.json").write_text(json.dumps(config))
    return folder / "custom.json"


def test_custom_dataset_full_fine_tuning(tiny_model_dir, tmp_path):
    """Without peft the whole model trains and is saved as a model transformers loads."""
    base = tiny_model_dir("llama")
    config = custom_config(tmp_path, classify=False)
    results = main(
        model_name=str(base), dataset="custom_dataset", custom_dataset_config=str(config), use_peft=False, train_batch_size=2,
        gradient_accumulation_steps=2, val_batch_size=2, lr=1e-3, output_dir=str(tmp_path / "full"), **FAST,
    )  # fmt: skip
    assert len(results["train_step_loss"]) == 4 and "last_epoch_eval_loss" in results  # 8 rows in batches of 2
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "full_node_rank_0" / "complete_epoch_1")
    before = AutoModelForCausalLM.from_pretrained(base)
    assert not torch.equal(saved.model.layers[0].mlp.up_proj.weight, before.model.layers[0].mlp.up_proj.weight)


def test_sequence_classification_trains_the_classifier_only(tmp_path, tokenizer_dir):
    """task_mode seq_classification (QEfficient's imdb mode) on a custom dataset with num_labels: the encoder
    stays as it was, the classifier trains, the metric is an accuracy."""
    folder = tmp_path / "bert"
    torch.manual_seed(3)
    common = dict(vocab_size=320, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48, pad_token_id=0)
    AutoModelForSequenceClassification.from_config(AutoConfig.for_model("bert", **common, num_labels=2)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    config = custom_config(tmp_path, classify=True, num_labels=2)
    results = main(
        model_name=str(folder), dataset="custom_dataset", custom_dataset_config=str(config), task_mode="seq_classification",
        use_peft=False, lr=1e-2, output_dir=str(tmp_path / "cls"), **FAST,
    )  # fmt: skip
    assert 0.0 <= float(results["last_epoch_train_metric"]) <= 1.0 and 0.0 <= float(results["last_epoch_eval_metric"]) <= 1.0
    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "cls_node_rank_0" / "complete_epoch_1")
    before = AutoModelForSequenceClassification.from_pretrained(folder)
    assert torch.equal(saved.bert.encoder.layer[0].output.dense.weight, before.bert.encoder.layer[0].output.dense.weight)
    assert not torch.equal(saved.classifier.weight, before.classifier.weight)


def test_sequence_classification_with_lora(tiny_model_dir, tmp_path):
    """QEfficient's defaults (use_peft) on a decoder's sequence classifier: peft's SEQ_CLS adapter, its score head
    trained beside the LoRA matrices and saved with them."""
    config = custom_config(tmp_path, classify=True, num_labels=2)
    results = main(
        model_name=str(tiny_model_dir("llama")), dataset="custom_dataset", custom_dataset_config=str(config),
        task_mode="seq_classification", lr=1e-2, output_dir=str(tmp_path / "lora-cls"), **FAST,
    )  # fmt: skip
    assert 0.0 <= float(results["last_epoch_train_metric"]) <= 1.0
    saved = tmp_path / "lora-cls_node_rank_0" / "complete_epoch_1"
    assert json.loads((saved / "adapter_config.json").read_text())["task_type"] == "SEQ_CLS"
    assert any("score" in k for k in load_file(saved / "adapter_model.safetensors"))


def test_command_line(tiny_model_dir, tmp_path):
    """QEfficient's command as written (its default device, qaic, trains on the CPU with a warning)."""
    base = tiny_model_dir("llama")
    alpaca_folder(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "QEfficient.cloud.finetune", "--model-name", str(base), "--max_train_step", "3", "--run-validation",
         "false", "--lora_r", "4", "--output_dir", "cli"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no Cloud AI 100 here" in done.stderr
    assert "train loss" in done.stdout and "is_gradient_checkpointing" not in done.stderr
    saved = tmp_path / "cli_node_rank_0" / "complete_epoch_1"
    assert json.loads((saved / "adapter_config.json").read_text())["r"] == 4
    # 3 batches of a group of 4 (gradient_accumulation_steps): the stop still applies them
    assert all(w.abs().max() > 0 for k, w in load_file(saved / "adapter_model.safetensors").items() if "lora_B" in k)


@pytest.mark.parametrize(
    "options, error, words",
    [
        (dict(dataset="squad"), ValueError, "not supported"),
        (dict(dataset="custom_dataset"), ValueError, "--custom_dataset_config"),
        (dict(enable_ddp=True), ValueError, "one process"),
        (dict(batching_strategy="packing"), ValueError, "only 'padding'"),
        (dict(device="tpu"), ValueError, "qaic, cpu or cuda"),
        (dict(device="mps"), ValueError, "qaic, cpu or cuda"),
        (dict(convergence_counter=0), ValueError, "at least 1"),
        (dict(log_level="LOUD"), ValueError, "logging level"),
        (dict(use_peft=False, from_peft_checkpoint="x"), ValueError, "use_peft"),
        (dict(gradient_accumulation_steps=0), ValueError, "at least 1"),
        (dict(target_modules=["not_a_layer"]), ValueError, "target_modules"),
        (dict(task_mode="seq_classification"), ValueError, "num_labels"),
        (dict(custom_dataset_config="/no/such.json"), ValueError, "applies with --dataset custom_dataset, not 'alpaca_dataset'"),
        (dict(context_length=8), ValueError, r"None of the \d+ training batches holds a label .*context_length=8"),
    ],
)
def test_bad_options_are_clear_errors(options, error, words, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(alpaca_folder(tmp_path))
    with pytest.raises(error, match=words):
        main(model_name=str(tiny_model_dir("llama")), output_dir=str(tmp_path / "o"), **{**FAST, **options})


def test_hub_datasets_need_the_finetune_extra_or_the_hub(tiny_model_dir, tmp_path, monkeypatch):
    """gsm8k comes from the hub through the datasets library: without it the error names the extra to install
    (the test environment has no datasets); with it and no hub, an error that says to use a custom dataset."""
    from QEfficient.utils.extras import MissingExtraError

    monkeypatch.chdir(tmp_path)
    with pytest.raises((MissingExtraError, RuntimeError), match=r"QEfficient\[finetune\]|custom_dataset"):
        main(model_name=str(tiny_model_dir("llama")), dataset="gsm8k_dataset", **FAST)


def test_missing_files_say_where_to_get_them(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="wget"):  # ./dataset/alpaca_data.json, as QEfficient reads it
        main(model_name=str(tiny_model_dir("llama")), **FAST)
    (tmp_path / "lora.json").write_text(json.dumps({"r": 4, "lora_alpha": 8}))
    with pytest.raises(ValueError, match="target_modules"):
        main(model_name=str(tiny_model_dir("llama")), peft_config_file=str(tmp_path / "lora.json"), **FAST)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="--device cpu"):
            main(model_name=str(tiny_model_dir("llama")), **{**FAST, "device": "cuda"})
    with pytest.warns(UserWarning, match="num_epoch"):
        with pytest.raises(FileNotFoundError):
            main(model_name=str(tiny_model_dir("llama")), num_epoch=3, **FAST)  # misspelt: QEfficient ignores it silently


def test_cli_bad_options_are_one_line_errors(capsys):
    from QEfficient.cloud.finetune import cli

    for argv, message in ((["--device", "foo"], "--device must be qaic, cpu or cuda"), (["--log_level", "BOGUS"], "log_level must be")):
        with pytest.raises(SystemExit):
            cli(argv)
        assert message in capsys.readouterr().err


def test_a_gguf_file_is_fine_tuned_on_its_de_quantized_weights(tiny_model_dir, tmp_path, monkeypatch):
    """A .gguf file as model_name (the loaders take one): trained as transformers loads it (it was a hub error)."""
    from tests.tiny_models import write_tiny_gguf

    path = write_tiny_gguf(tiny_model_dir("llama"), tmp_path / "tiny.gguf")
    monkeypatch.chdir(alpaca_folder(tmp_path))
    results = main(model_name=str(path), max_train_step=2, run_validation=False, output_dir=str(tmp_path / "o"), **FAST)
    assert len(results["train_step_loss"]) == 2
    assert (tmp_path / "o_node_rank_0" / "complete_epoch_1" / "adapter_model.safetensors").is_file()


def test_lora_options_beside_a_peft_config_file_are_said_to_be_unread(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(alpaca_folder(tmp_path))
    (tmp_path / "lora.json").write_text(json.dumps({"r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}))
    options = dict(peft_config_file=str(tmp_path / "lora.json"), max_train_step=1, run_validation=False, output_dir=str(tmp_path / "o"))
    with pytest.warns(UserWarning, match="r given beside peft_config_file: the file's LoRA settings apply"):
        main(model_name=str(tiny_model_dir("llama")), r=16, **options, **FAST)
    saved = tmp_path / "o_node_rank_0" / "complete_epoch_1" / "adapter_config.json"
    assert json.loads(saved.read_text())["r"] == 4
