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
from datetime import datetime
from pathlib import Path

import torch
from tqdm import tqdm

from QEfficient.finetune.configs.training import Task_Mode, TrainConfig
from QEfficient.finetune.dataset.alpaca_dataset import IGNORE_INDEX

logger = logging.getLogger("QEfficient")
METRIC_KEYS = (
    "train_step_loss", "train_epoch_loss", "train_step_metric", "train_epoch_metric",
    "val_step_loss", "val_epoch_loss", "val_step_metric", "val_epoch_metric",
)  # fmt: skip


def resume_point(checkpoint: str | None) -> tuple[int, int]:
    """(epoch index, steps done in it) from a folder this loop saved: ``.../epoch_E/step_S`` or
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
    """``save_pretrained`` into a temporary folder renamed into place: an interrupted save leaves no half adapter."""
    partial = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, folder)


def write_json(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


def real_rows(labels: torch.Tensor) -> int:
    """Rows of the batch with at least one label (padding rows have none)."""
    return int((labels != IGNORE_INDEX).reshape(labels.shape[0], -1).any(-1).sum())


def class_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    labels = labels.reshape(labels.shape[0], -1)[:, 0]
    keep = labels != IGNORE_INDEX
    return int((logits.argmax(-1)[keep] == labels[keep]).sum()), int(keep.sum())


def amp_context(train_config: TrainConfig, device: torch.device):
    """float16 autocast on CUDA when use_autocast; the CPU trains in float32."""
    if device.type == "cuda" and train_config.use_autocast:
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def train(model, tokenizer, train_dataloader, eval_dataloader, optimizer, lr_scheduler, train_config: TrainConfig) -> dict:
    """Train for ``num_epochs`` and return QEfficient's results dictionary (losses, metrics, times). Adapters
    are saved under ``<output_dir>_node_rank_0/`` as QEfficient's: ``complete_epoch_E`` after each epoch,
    ``trained_weights/epoch_E/step_S`` every ``intermediate_step_save`` steps."""
    device = next(model.parameters()).device
    classify = train_config.task_mode == Task_Mode.SEQ_CLASSIFICATION.value
    out = Path(f"{train_config.output_dir}_node_rank_0")
    train_config.output_dir = str(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics_file = out / f"metrics_data_node_0_rank_0-{datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}.json"
    metrics = {key: [] for key in METRIC_KEYS}
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and train_config.grad_scaler and train_config.use_autocast else None
    resume_epoch, resume_step = resume_point(train_config.from_peft_checkpoint if train_config.use_peft else None)
    accumulate = train_config.gradient_accumulation_steps
    epoch_times, converged, steps_done, results = [], 0, 0, {}
    train_epoch_loss = train_epoch_metric = torch.tensor(0.0)
    eval_epoch_loss = eval_epoch_metric = None
    stop = False
    for epoch in range(train_config.num_epochs):
        if stop or epoch < resume_epoch:
            continue
        skip = resume_step if epoch == resume_epoch else 0
        started = time.perf_counter()
        model.train()
        losses, correct, seen = [], 0, 0
        batches = len(train_dataloader)
        bar = tqdm(total=batches, desc=f"Training epoch {epoch + 1}/{train_config.num_epochs}", dynamic_ncols=True, disable=None)
        for step, batch in enumerate(train_dataloader):
            if step < skip:
                bar.update(1)
                continue
            if train_config.max_train_step > 0 and steps_done >= train_config.max_train_step:
                logger.info("finetune: max_train_step=%d reached; stopping.", train_config.max_train_step)
                stop = True
                break
            batch = {k: v.to(device) for k, v in batch.items()}
            with amp_context(train_config, device):
                outputs = model(**batch)
            dummy = real_rows(batch["labels"]) == 0
            loss = outputs.loss.float().nan_to_num(0.0) if dummy else outputs.loss.float()
            # the last group of a epoch may hold fewer than `accumulate` batches: each batch weighs 1/its group's size
            group = min(accumulate, batches - (step // accumulate) * accumulate)
            (scaler.scale(loss / group) if scaler else loss / group).backward()
            if (step + 1) % accumulate == 0 or step == batches - 1:
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad()
            steps_done += 1
            value = float(loss.detach())
            if not dummy:
                losses.append(value)
                metrics["train_step_loss"].append(value)
                if classify:
                    ok, n = class_accuracy(outputs.logits.detach(), batch["labels"])
                    correct, seen = correct + ok, seen + n
                    metrics["train_step_metric"].append(correct / max(seen, 1))
                else:
                    metrics["train_step_metric"].append(math.exp(min(value, 80.0)))
            if (step + 1) % train_config.intermediate_step_save == 0:
                save_folder(model, tokenizer, out / "trained_weights" / f"epoch_{epoch + 1}" / f"step_{step + 1}")
            bar.set_postfix(loss=f"{value:.4f}")
            bar.update(1)
            converged = converged + 1 if not dummy and value <= train_config.convergence_loss else 0
            if converged >= train_config.convergence_counter:
                logger.info("finetune: the loss stayed <= %g for %d steps; stopping.", train_config.convergence_loss, converged)
                stop = True
                break
        bar.close()
        epoch_times.append(time.perf_counter() - started)
        train_epoch_loss = torch.tensor(sum(losses) / len(losses) if losses else 0.0)
        train_epoch_metric = torch.tensor(correct / max(seen, 1)) if classify else torch.exp(train_epoch_loss)
        metrics["train_epoch_loss"].append(float(train_epoch_loss))
        metrics["train_epoch_metric"].append(float(train_epoch_metric))
        lr_scheduler.step()
        if train_config.run_validation and eval_dataloader is not None:
            eval_epoch_loss, eval_epoch_metric, step_loss, step_metric = evaluation(model, train_config, eval_dataloader, device)
            metrics["val_step_loss"] += step_loss
            metrics["val_step_metric"] += step_metric
            metrics["val_epoch_loss"].append(float(eval_epoch_loss))
            metrics["val_epoch_metric"].append(float(eval_epoch_metric))
            logger.info("finetune: epoch %d eval loss %.4f, metric %.4f", epoch + 1, eval_epoch_loss, eval_epoch_metric)
        if train_config.save_model:
            save_folder(model, tokenizer, out / f"complete_epoch_{epoch + 1}")
        if train_config.save_metrics:
            write_json(metrics_file, metrics)
        logger.info(
            "finetune: epoch %d train loss %.4f, metric %.4f, %.1f s", epoch + 1, train_epoch_loss, train_epoch_metric, epoch_times[-1]
        )
    results["last_epoch_train_loss"] = train_epoch_loss
    results["last_epoch_train_metric"] = train_epoch_metric
    results["train_step_loss"] = metrics["train_step_loss"]
    results["train_step_metric"] = metrics["train_step_metric"]
    if train_config.run_validation and eval_epoch_loss is not None:
        results["last_epoch_eval_loss"] = eval_epoch_loss
        results["last_epoch_eval_metric"] = eval_epoch_metric
        results["eval_step_loss"] = metrics["val_step_loss"]
        results["eval_step_metric"] = metrics["val_step_metric"]
    results["avg_epoch_time"] = sum(epoch_times) / len(epoch_times) if epoch_times else 0.0
    results["avg_checkpoint_time"] = 0.0
    if train_config.save_metrics:
        write_json(metrics_file, metrics)
        results["metrics_filename"] = str(metrics_file)
    return results


@torch.no_grad()
def evaluation(model, train_config: TrainConfig, eval_dataloader, device: torch.device):
    """(mean loss, perplexity or accuracy, per-step losses, per-step metrics) over the evaluation batches that
    hold labels, at most ``max_eval_step`` of them."""
    model.eval()
    classify = train_config.task_mode == Task_Mode.SEQ_CLASSIFICATION.value
    step_loss, step_metric, correct, seen = [], [], 0, 0
    for step, batch in enumerate(eval_dataloader):
        if train_config.max_eval_step > 0 and step >= train_config.max_eval_step:
            break
        batch = {k: v.to(device) for k, v in batch.items()}
        if real_rows(batch["labels"]) == 0:
            continue
        with amp_context(train_config, device):
            outputs = model(**batch)
        value = float(outputs.loss.float())
        step_loss.append(value)
        if classify:
            ok, n = class_accuracy(outputs.logits, batch["labels"])
            correct, seen = correct + ok, seen + n
            step_metric.append(ok / max(n, 1))
        else:
            step_metric.append(math.exp(min(value, 80.0)))
    loss = torch.tensor(sum(step_loss) / len(step_loss) if step_loss else 0.0)
    metric = torch.tensor(correct / max(seen, 1)) if classify else torch.exp(loss)
    model.train()
    return loss, metric, step_loss, step_metric
