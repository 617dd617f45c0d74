"""QEfficient's training loop: gradient accumulation, an evaluation and a saved adapter per epoch, the metrics file,
intermediate saves, resuming from a saved adapter, stopping once the loss has converged."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch
from tqdm import tqdm  # a dependency of huggingface-hub, which the core install requires

from QEfficient.finetune.configs.dataset_config import IGNORE_INDEX
from QEfficient.finetune.configs.training import Task_Mode, TrainConfig

logger = logging.getLogger("QEfficient")
METRIC_KEYS = (
    "train_step_loss", "train_epoch_loss", "train_step_metric", "train_epoch_metric",
    "val_step_loss", "val_epoch_loss", "val_step_metric", "val_epoch_metric",
)  # fmt: skip
METRICS_EVERY_S = 1.0  # the metrics file is rewritten after a step at most this often (QEfficient: every step)


def perplexity(loss: float) -> float:
    """exp(loss), capped where float32 would overflow to infinity, which JSON cannot hold."""
    return math.exp(min(loss, 80.0))


def resume_point(checkpoint: str | None) -> tuple[int, int]:
    """(epoch index, batches done in it) from a folder this loop saved: ``.../epoch_E/step_S`` or
    ``.../complete_epoch_E`` (that epoch done); (0, 0) for any other folder."""
    if not checkpoint:
        return 0, 0
    parts = Path(checkpoint.rstrip("/")).parts
    step = re.fullmatch(r"step_(\d+)", parts[-1])
    epoch = re.fullmatch(r"epoch_(\d+)", parts[-2]) if step and len(parts) > 1 else None
    if step and epoch:
        return int(epoch[1]) - 1, int(step[1])
    done = re.fullmatch(r"complete_epoch_(\d+)", parts[-1])
    return (int(done[1]), 0) if done else (0, 0)


def save_folder(model, tokenizer, folder: Path) -> None:
    """``save_pretrained`` (the model or adapter, and the tokenizer) into a temporary folder renamed into place, the
    previous one set aside until then: an interrupted save leaves the old folder or the new one, never half of one."""
    partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(partial, folder)
    shutil.rmtree(old, ignore_errors=True)


def write_json(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


def has_labels(labels: torch.Tensor, causal: bool) -> bool:
    """Whether any row has a label the loss reads (a causal LM's first position predicts nothing)."""
    read = labels[:, 1:] if causal and labels.dim() > 1 else labels
    return bool((read != IGNORE_INDEX).any())


def class_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    labels = labels.reshape(labels.shape[0], -1)[:, 0]
    keep = labels != IGNORE_INDEX
    return int((logits.argmax(-1)[keep] == labels[keep]).sum()), int(keep.sum())


def amp_context(train_config: TrainConfig, device: torch.device):
    """float16 autocast on CUDA when use_autocast; the CPU trains in float32."""
    if device.type == "cuda" and train_config.use_autocast:
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def forward(model, batch: dict, train_config: TrainConfig, device: torch.device):
    if "labels" not in batch:
        raise ValueError("A training batch has no 'labels': a custom dataset's rows (or its collate_file) must give them.")
    with amp_context(train_config, device):
        return model(**{k: v.to(device) for k, v in batch.items()})


@dataclass
class Run:
    """What one call of ``train`` carries from batch to batch."""

    model: object
    tokenizer: object
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    out: Path
    metrics_file: Path
    device: torch.device
    classify: bool
    scaler: torch.amp.GradScaler | None
    metrics: dict = field(default_factory=lambda: {key: [] for key in METRIC_KEYS})
    pending: int = 0  # batches whose gradients wait for the optimizer
    converged: int = 0
    stopped: bool = False
    written: float = 0.0

    def optimizer_step(self) -> None:
        """One update from the batches accumulated since the last: their gradients are summed, so they are divided by
        how many there were (a group cut short by the epoch's end or a stop weighs its own batches)."""
        if not self.pending:
            return
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad /= self.pending
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad()
        self.pending = 0

    def save_metrics(self, force: bool = False) -> None:
        if self.config.save_metrics and (force or time.monotonic() - self.written >= METRICS_EVERY_S):
            write_json(self.metrics_file, self.metrics)
            self.written = time.monotonic()


class NothingToTrainError(ValueError):
    """A run with nothing to learn (no batch holds a label; a checkpoint past num_epochs): the user's input, said in one
    line by the command line, unlike a failure while training."""


def train_epoch(run: Run, loader, epoch: int, skip: int) -> tuple[float, float]:
    """One epoch from batch ``skip``: (mean loss over the batches with labels, perplexity or accuracy)."""
    config, model = run.config, run.model
    model.train()
    losses, correct, seen, ran = [], 0, 0, 0
    bar = tqdm(total=len(loader), desc=f"Training epoch {epoch + 1}/{config.num_epochs}", dynamic_ncols=True, disable=None)
    for step, batch in enumerate(loader):
        if step < skip:
            bar.update(1)
            continue
        if config.max_train_step > 0 and epoch * len(loader) + step >= config.max_train_step:  # counted from the run's start
            logger.info("finetune: max_train_step=%d reached; stopping.", config.max_train_step)
            run.stopped = True
            break
        outputs = forward(model, batch, config, run.device)
        ran += 1
        real = has_labels(batch["labels"], causal=not run.classify)
        loss = outputs.loss.float() if real else outputs.loss.float().nan_to_num(0.0)  # padding rows only: nothing to learn
        (run.scaler.scale(loss) if run.scaler else loss).backward()
        run.pending += 1
        if run.pending == config.gradient_accumulation_steps:
            run.optimizer_step()
        value = float(loss.detach())
        if real:
            losses.append(value)
            run.metrics["train_step_loss"].append(value)
            if run.classify:
                ok, n = class_accuracy(outputs.logits.detach(), batch["labels"].to(run.device))
                correct, seen = correct + ok, seen + n
            run.metrics["train_step_metric"].append(correct / max(seen, 1) if run.classify else perplexity(value))
            run.converged = run.converged + 1 if value <= config.convergence_loss else 0
        if (step + 1) % config.intermediate_step_save == 0:
            run.optimizer_step()  # the saved adapter holds every batch before it
            save_folder(model, run.tokenizer, run.out / "trained_weights" / f"epoch_{epoch + 1}" / f"step_{step + 1}")
        bar.set_postfix(loss=f"{value:.4f}")
        bar.update(1)
        run.save_metrics()
        if run.converged >= config.convergence_counter:
            logger.info("finetune: the loss stayed <= %g for %d steps; stopping.", config.convergence_loss, run.converged)
            run.stopped = True
            break
    bar.close()
    if ran and not run.metrics["train_step_loss"]:  # no batch of the run so far held a label: nothing learned at all
        raise NothingToTrainError(
            f"None of the {ran} training batches holds a label to learn from (every answer token masked, or cut off at "
            f"context_length={getattr(config, 'context_length', None)}): nothing is learned, and nothing was saved. Raise "
            "context_length, or check the dataset's labels."
        )
    run.optimizer_step()  # the epoch's last group, or the one a stop cut short
    mean = sum(losses) / len(losses) if losses else 0.0
    return mean, (correct / max(seen, 1) if run.classify else perplexity(mean))


def train(model, tokenizer, train_dataloader, eval_dataloader, optimizer, lr_scheduler, train_config: TrainConfig) -> dict:
    """Train for ``num_epochs`` and return QEfficient's results dictionary (losses, metrics, times). Outputs go under
    ``<output_dir>_node_rank_0/`` as QEfficient's: ``complete_epoch_E`` after each epoch, ``trained_weights/epoch_E/
    step_S`` every ``intermediate_step_save`` batches, ``metrics_data_node_0_rank_0-<time>.json``."""
    device = next(model.parameters()).device
    out = Path(f"{train_config.output_dir}_node_rank_0")
    train_config.output_dir = str(out)
    out.mkdir(parents=True, exist_ok=True)
    use_scaler = device.type == "cuda" and train_config.grad_scaler and train_config.use_autocast
    metrics_file = out / f"metrics_data_node_0_rank_0-{datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}.json"
    classify = train_config.task_mode == Task_Mode.SEQ_CLASSIFICATION.value
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    run = Run(model, tokenizer, optimizer, train_config, out, metrics_file, device, classify, scaler)
    resume_epoch, resume_step = resume_point(train_config.from_peft_checkpoint if train_config.use_peft else None)
    if resume_epoch >= train_config.num_epochs:
        raise NothingToTrainError(
            f"{train_config.from_peft_checkpoint} finished epoch {resume_epoch} and num_epochs is {train_config.num_epochs}: "
            "nothing is left to train; raise num_epochs."
        )
    batches = len(train_dataloader)
    epoch_times, results = [], {}
    train_loss = train_metric = 0.0
    eval_loss = eval_metric = None
    for epoch in range(resume_epoch, train_config.num_epochs):
        if run.stopped or 0 < train_config.max_train_step <= epoch * batches:
            break
        started = time.perf_counter()
        train_loss, train_metric = train_epoch(run, train_dataloader, epoch, resume_step if epoch == resume_epoch else 0)
        epoch_times.append(time.perf_counter() - started)
        run.metrics["train_epoch_loss"].append(train_loss)
        run.metrics["train_epoch_metric"].append(train_metric)
        lr_scheduler.step()
        if train_config.run_validation and eval_dataloader is not None:
            eval_loss, eval_metric, step_loss, step_metric = evaluation(model, train_config, eval_dataloader, device)
            run.metrics["val_step_loss"] += step_loss
            run.metrics["val_step_metric"] += step_metric
            run.metrics["val_epoch_loss"].append(float(eval_loss))
            run.metrics["val_epoch_metric"].append(float(eval_metric))
            logger.info("finetune: epoch %d eval loss %.4f, metric %.4f", epoch + 1, eval_loss, eval_metric)
        if train_config.save_model:
            save_folder(model, tokenizer, out / f"complete_epoch_{epoch + 1}")
        run.save_metrics(force=True)
        logger.info("finetune: epoch %d train loss %.4f, metric %.4f, %.1f s", epoch + 1, train_loss, train_metric, epoch_times[-1])
    results["last_epoch_train_loss"] = torch.tensor(train_loss)
    results["last_epoch_train_metric"] = torch.tensor(train_metric)
    results["train_step_loss"] = run.metrics["train_step_loss"]
    results["train_step_metric"] = run.metrics["train_step_metric"]
    if eval_loss is not None:
        results["last_epoch_eval_loss"] = eval_loss
        results["last_epoch_eval_metric"] = eval_metric
        results["eval_step_loss"] = run.metrics["val_step_loss"]
        results["eval_step_metric"] = run.metrics["val_step_metric"]
    results["avg_epoch_time"] = sum(epoch_times) / len(epoch_times) if epoch_times else 0.0
    results["avg_checkpoint_time"] = 0.0
    if train_config.save_metrics:
        run.save_metrics(force=True)
        results["metrics_filename"] = str(run.metrics_file)
    return results


@torch.no_grad()
def evaluation(model, train_config: TrainConfig, eval_dataloader, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, list, list]:
    """(mean loss, perplexity or accuracy, per-step losses, per-step metrics) over the evaluation batches that hold
    labels, at most ``max_eval_step`` of them."""
    model.eval()
    classify = train_config.task_mode == Task_Mode.SEQ_CLASSIFICATION.value
    step_loss, step_metric, correct, seen = [], [], 0, 0
    for step, batch in enumerate(eval_dataloader):
        if train_config.max_eval_step > 0 and step >= train_config.max_eval_step:
            break
        if "labels" in batch and not has_labels(batch["labels"], causal=not classify):
            continue  # padding rows only
        outputs = forward(model, batch, train_config, device)
        value = float(outputs.loss.float())
        step_loss.append(value)
        if classify:
            ok, n = class_accuracy(outputs.logits, batch["labels"].to(device))
            correct, seen = correct + ok, seen + n
            step_metric.append(ok / max(n, 1))
        else:
            step_metric.append(perplexity(value))
    loss = sum(step_loss) / len(step_loss) if step_loss else 0.0
    model.train()
    return torch.tensor(loss), torch.tensor(correct / max(seen, 1) if classify else perplexity(loss)), step_loss, step_metric
