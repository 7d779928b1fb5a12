"""The local LoRA trainer: one run directory in, a PEFT adapter out, progress as JSON lines.

Run it as its own process (the app and `tutor train` do), alone or under accelerate for DDP:

    python -m training.local.lora RUN_DIR [--resume] [--registry DATA_DIR/registry.sqlite]
    accelerate launch --multi_gpu --num_processes 2 -m training.local.lora RUN_DIR   # DDP: NCCL on GPUs, gloo on CPU

RUN_DIR holds config.json (a TrainConfig). The trainer writes:
    events.jsonl          {"type": "start"|"step"|"eval"|"checkpoint"|"done"|"cancelled"|"error", ...} (training/jobs/events.py)
    checkpoints/step-N/   adapter + optimizer + scheduler + progress, every `save_every` steps (last 2 kept)
    adapter/              the final PEFT adapter (adapter_config.json + adapter_model.safetensors)
What it learns: loss on the assistant tokens only. Batches group examples of similar length, so
almost no compute goes to padding. A file RUN_DIR/cancel or SIGTERM stops it at the next step with
a checkpoint, so a cancelled or killed run can resume where it was.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import torch

from training.base.common import configure_process
from training.base.common import device as pick_device
from training.base.hardware import peak_memory, precision, release_memory, steady_heap
from training.base.models import resolve_base_model
from training.base.quotas import run_seconds
from training.base.settings import get_settings
from training.evaluation.metrics import named_items, parse_list, set_scores
from training.jobs.events import FILE as EVENTS_FILE
from training.jobs.events import EventLog
from training.jobs.events import read as read_events
from training.jobs.queue import NICENESS_VARIABLE, process_alive
from training.local.batches import IGNORE, chat_ids, collate, length_grouped_batches, load_examples, longest_first
from training.local.checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint
from training.local.config import ConfigError, TrainConfig
from training.local.estimate import ESTIMATE_FILE
from training.local.lora_model import AnswerLoss, add_lora, answer_logits, load_base, with_fast_dropout
from training.models.gguf_export import export_fine_tune


class RunBusy(Exception):
    """Another live trainer holds this run directory."""


class RunLock:
    """Only one trainer per run directory: a lock file holding the owner's pid."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "lock"

    def __enter__(self):
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            owner = int(self.path.read_text() or 0)
            if owner and process_alive(owner):
                raise RunBusy(f"Run directory {self.path.parent} is in use by process {owner}.") from None
            self.path.unlink(missing_ok=True)  # left by a killed trainer
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return self

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


# --- evaluation -------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model, examples: list[dict], pad_id: int, batch_size: int) -> dict:
    """Validation loss per assistant token and next-token accuracy on assistant tokens (the head on those
    tokens only, as in training)."""
    model.eval()
    device = next(model.parameters()).device
    loss_sum, correct, count = 0.0, 0, 0
    for start in range(0, len(examples), batch_size):
        batch = {key: value.to(device) for key, value in collate(examples[start:start + batch_size], pad_id).items()}
        if (found := answer_logits(model, **batch)) is None:  # a head that is more than a projection: all logits
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            keep = batch["labels"][:, 1:] != IGNORE
            found = logits[keep].float(), batch["labels"][:, 1:][keep]
        logits, targets = found
        loss_sum += torch.nn.functional.cross_entropy(logits, targets, reduction="sum").item()
        correct += (logits.argmax(-1) == targets).sum().item()
        count += len(targets)
    model.train()
    return {"val_loss": loss_sum / max(count, 1), "val_token_accuracy": correct / max(count, 1)}


@torch.no_grad()
def generate_answers(model, tokenizer, conversations: list[list[dict]], max_new_tokens: int = 128,
                     batch_size: int = 8) -> list[str]:
    """Greedy answers to each conversation's messages before its last, `batch_size` decoded together (left
    padding, so every row's answer starts at the same column); the same tokens as one at a time."""
    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers = []
    for start in range(0, len(conversations), batch_size):
        prompts = [chat_ids(tokenizer, messages[:-1], add_generation_prompt=True)
                   for messages in conversations[start:start + batch_size]]
        width = max(map(len, prompts))
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
        attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        # The adapters live inside the base model's layers: its own generate computes the prompt's logits for the
        # last position only (PeftModel's forward hides that option, and the whole prompt's logits cost 300 MB).
        causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        output = causal_lm.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                                    do_sample=False, pad_token_id=pad)
        answers += [tokenizer.decode(row[width:], skip_special_tokens=True) for row in output]
    model.train()
    return answers


def answer_budget(examples: list[dict]) -> int:
    """New tokens for a validation answer: 1.5 x the 99th percentile of the training answers' lengths (as the
    A/B chat and the evaluation budget theirs), so that a learnt answer fits and a runaway one stops early."""
    lengths = sorted(sum(label != IGNORE for label in example["labels"]) for example in examples) or [85]
    return max(16, min(256, math.ceil(1.5 * lengths[min(len(lengths) - 1, math.ceil(0.99 * len(lengths)) - 1)])))


def generation_f1(model, tokenizer, conversations: list[list[dict]], limit: int, budget: int = 128) -> float | None:
    """Mean set F1 of the generated ingredient lists against the gold answers (`budget` new tokens each at most)."""
    if not conversations or limit <= 0:
        return None
    chosen = conversations[:limit]
    answers = generate_answers(model, tokenizer, chosen, max_new_tokens=budget)
    scores = [set_scores(named_items(answer), parse_list(messages[-1]["content"]) or [])[2]
              for answer, messages in zip(answers, chosen)]
    return sum(scores) / len(scores)


# --- training ---------------------------------------------------------------------------------

class Stop:
    """Set by SIGTERM (when this process owns its signals), by a `cancel` file in the run directory, or by the
    server's wall time per run (`limit` seconds of this process's training: a resumed run gets its own)."""

    def __init__(self, run_dir: Path, handle_signals: bool, limit: float | None = None):
        self.file, self.flag = run_dir / "cancel", False
        self.deadline = time.monotonic() + limit if limit else None
        if handle_signals:
            signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, *_):
        self.flag = True

    @property
    def timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def requested(self) -> bool:
        return self.flag or self.file.exists() or self.timed_out


def train(run_dir: Path, resume: bool = False, registry=None, handle_signals: bool = False) -> dict:
    """Train the run in run_dir; returns the summary. Raises ConfigError before starting on bad settings."""
    from accelerate import Accelerator
    from transformers import get_linear_schedule_with_warmup

    config = TrainConfig.load(run_dir / "config.json")
    device = pick_device()
    chosen = precision(device, config.bf16)
    accelerator = Accelerator(mixed_precision=chosen.dtype if chosen.dtype == "bf16" else "no", cpu=device == "cpu")
    main = accelerator.is_main_process
    events = EventLog(run_dir / EVENTS_FILE, enabled=main)
    torch.manual_seed(config.seed)

    # The frozen base in the precision it computes in: autocast would cast fp32 weights again at every use (frozen
    # weights are not in its cache). The adapter stays fp32 (peft keeps it so).
    model, tokenizer = load_base(config.base_model, chosen.dtype, quantize=config.method == "qlora")
    release_memory()  # what loading freed (an fp32 file read into bf16, say) goes back to the system, not to the peak
    config.check(context_length=getattr(model.config, "max_position_embeddings", None))
    train_set, _ = load_examples(config.train_file, tokenizer, config.max_length)
    val_set, val_raw = (load_examples(config.validation_file, tokenizer, config.max_length)
                        if config.validation_file else ([], []))
    if not train_set:
        raise ConfigError(f"No usable training examples in {config.train_file} (each needs a final assistant message).")
    if config.init_adapter:  # continue a fine-tune: its adapter, trainable, instead of a fresh one
        from peft import PeftModel

        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model = with_fast_dropout(PeftModel.from_pretrained(model, config.init_adapter, is_trainable=True))
    else:
        model = add_lora(model, config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    objective = AnswerLoss(model)
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)

    world, rank = accelerator.num_processes, accelerator.process_index
    batches_per_epoch = len(length_grouped_batches([len(e["input_ids"]) for e in train_set], config.batch_size, 0)) // world
    if batches_per_epoch == 0:
        raise ConfigError(f"Too few training examples ({len(train_set)}) for {world} processes with batch size "
                          f"{config.batch_size}.")
    micro_total = math.ceil(batches_per_epoch * config.epochs)
    total_steps = math.ceil(micro_total / config.gradient_accumulation)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * config.warmup_ratio), total_steps)
    objective, optimizer = accelerator.prepare(objective, optimizer)  # DDP, when there is one, wraps the objective

    progress, resumed_from = {"step": 0, "micro_step": 0, "tokens": 0, "seconds": 0.0}, None
    if resume and (checkpoint := latest_checkpoint(run_dir)):
        progress = load_checkpoint(checkpoint, model, optimizer, scheduler)
        resumed_from = checkpoint.name
    if registry and main:
        registry.update_run(run_dir.name, status="running", handle=str(os.getpid()), error=None)
    events.write("start", total_steps=total_steps, train_examples=len(train_set), val_examples=len(val_set),
                 processes=world, bf16=chosen.dtype == "bf16", precision_reason=chosen.reason, device=device,
                 method=config.method, gradient_checkpointing=config.gradient_checkpointing,
                 attention=getattr(model.get_base_model().config, "_attn_implementation", None),
                 trainable_parameters=sum(p.numel() for p in trainable),
                 step=progress["step"], resumed=resumed_from is not None, checkpoint=resumed_from)

    stop = Stop(run_dir, handle_signals, run_seconds(get_settings()))
    eval_every = config.eval_every or max(1, batches_per_epoch // config.gradient_accumulation)
    window_tokens, window_started = 0, time.perf_counter()
    started_seconds = progress["seconds"]
    session_started = time.perf_counter()
    objective.train()
    micro = progress["micro_step"]
    while micro < micro_total:
        epoch, position = divmod(micro, batches_per_epoch)
        lengths = [len(e["input_ids"]) for e in train_set]
        batches = length_grouped_batches(lengths, config.batch_size, config.seed + epoch)
        batches = (longest_first(batches, lengths) if epoch == 0 else batches)[rank::world][:batches_per_epoch]
        for batch_indices in batches[position:]:
            if micro >= micro_total:
                break
            batch = {k: v.to(accelerator.device) for k, v in collate([train_set[i] for i in batch_indices],
                                                                     tokenizer.pad_token_id).items()}
            with accelerator.autocast():
                loss = objective(**batch) / config.gradient_accumulation
            accelerator.backward(loss)
            real_tokens = int(batch["attention_mask"].sum().item()) * world  # every process did a batch like it
            window_tokens += real_tokens
            progress["tokens"] += real_tokens
            micro += 1
            if micro % config.gradient_accumulation and micro < micro_total:
                continue
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            progress.update(step=progress["step"] + 1, micro_step=micro,
                            seconds=started_seconds + time.perf_counter() - session_started)
            step = progress["step"]
            elapsed = time.perf_counter() - window_started
            rate = window_tokens / elapsed if elapsed else 0.0
            per_step = progress["seconds"] / step
            events.write("step", step=step, total_steps=total_steps, epoch=round(micro / batches_per_epoch, 3),
                         loss=accelerator.reduce(loss.detach() * config.gradient_accumulation, "mean").item(),
                         learning_rate=scheduler.get_last_lr()[0], tokens_per_second=rate,
                         eta_seconds=per_step * (total_steps - step), tokens=progress["tokens"])
            window_tokens, window_started = 0, time.perf_counter()
            if val_set and (step % eval_every == 0 or step == total_steps):
                if main:
                    events.write("eval", step=step, **evaluate(model, val_set, tokenizer.pad_token_id,
                                                               config.batch_size))
                accelerator.wait_for_everyone()
            cancel = stop.requested()
            if main and (cancel or step % config.save_every == 0 or step == total_steps):
                saved = save_checkpoint(run_dir, model, optimizer, scheduler, progress)
                events.write("checkpoint", step=step, path=str(saved))
            accelerator.wait_for_everyone()
            if cancel:
                status = "timed_out" if stop.timed_out and not stop.flag else "cancelled"
                events.write("cancelled", step=step, reason=status)
                if registry and main:
                    registry.update_run(run_dir.name, status=status, handle=None)
                return {"status": status, "step": step}
    return finish(run_dir, accelerator, model, tokenizer, config, val_set, val_raw, progress, events, registry,
                  chosen.dtype, answer_budget(train_set))


def finish(run_dir, accelerator, model, tokenizer, config, val_set, val_raw, progress, events, registry,
           dtype: str, budget: int) -> dict:
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return {"status": "succeeded"}
    adapter_dir = run_dir / "adapter"
    model.save_pretrained(adapter_dir)
    adapter_config = adapter_dir / "adapter_config.json"
    saved = json.loads(adapter_config.read_text())
    saved["base_model_name_or_path"] = config.base_model  # portable: "embedded", an HF id, or the user's folder
    adapter_config.write_text(json.dumps(saved, indent=2))
    summary = {"status": "succeeded", "steps": progress["step"], "tokens_trained": progress["tokens"],
               "train_seconds": round(progress["seconds"], 1), "adapter": str(adapter_dir), "precision": dtype}
    logged = read_events(run_dir)[0]
    summary["final_loss"] = next((e["loss"] for e in reversed(logged) if e["type"] == "step"), None)
    if val_set:
        last_eval = next((e for e in reversed(logged) if e["type"] == "eval"), None)
        if last_eval is None or last_eval["step"] != progress["step"]:  # the last epoch's pass is this model's
            last_eval = evaluate(model, val_set, tokenizer.pad_token_id, config.batch_size)
        summary.update(val_loss=last_eval["val_loss"], val_token_accuracy=last_eval["val_token_accuracy"])
        summary["val_f1"] = generation_f1(model, tokenizer, val_raw, config.eval_generate_limit, budget)
    summary.update(peak_memory(accelerator.device.type))  # training's peak, beside what was estimated before Start
    with contextlib.suppress(OSError, ValueError):
        summary.update(json.loads((run_dir / ESTIMATE_FILE).read_text()))
    release_memory()  # training's freed activations back to the system before the export loads its own copy
    try:  # chat runs a fine-tune of a GGUF base on llama.cpp, merged: written now, not while a learner waits
        export_fine_tune(resolve_base_model(get_settings(), config.base_model), adapter_dir)
    except Exception as exc:  # noqa: BLE001 - the adapter is saved and usable: an export failure must not fail the run
        summary["llama_cpp"] = str(exc)
    events.write("done", **summary)
    if registry:
        registry.update_run(run_dir.name, status="succeeded", metrics=summary, adapter_path=str(adapter_dir), handle=None)
        registry.add_model(run_dir.name, "local-adapter", str(adapter_dir), config.base_model)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--registry", type=Path)
    args = parser.parse_args(argv)
    steady_heap()  # before torch allocates: a step's peak memory the same every run
    configure_process()
    from training.base.registry import Registry

    registry = Registry(args.registry) if args.registry else None
    lead = int(os.environ.get("RANK", "0")) == 0
    os.nice(int(os.environ.get(NICENESS_VARIABLE, "0")))  # set by the queue's launcher (training/jobs/queue.py)
    try:
        # Under accelerate every rank shares the run directory: the first one holds the lock for all.
        with RunLock(args.run_dir) if int(os.environ.get("LOCAL_RANK", "0")) == 0 else contextlib.nullcontext():
            try:
                train(args.run_dir, resume=args.resume, registry=registry, handle_signals=True)
                return 0
            except Exception as exc:  # the run's record says why, in words; the log keeps the traceback
                message = record_failure(args.run_dir, registry if lead else None, exc, lead)
                if not isinstance(exc, ConfigError):
                    raise
                print(message, file=sys.stderr)
                return 2
            finally:
                if registry is not None and lead:
                    start_next(registry)
    except RunBusy as exc:  # another trainer owns this run: its events and record are left alone
        print(exc, file=sys.stderr)
        return 3


def record_failure(run_dir: Path, registry, exc: Exception, lead: bool) -> str:
    """Write the failure's explanation to the events and the registry, each on its own: on a full disk the
    half-written checkpoint is removed first, so there is room to say so."""
    message = explain_failure(exc)
    for staging in (run_dir / "checkpoints").glob(".step-*.tmp"):
        shutil.rmtree(staging, ignore_errors=True)
    try:
        EventLog(run_dir / EVENTS_FILE, enabled=lead).write("error", message=message)
    except OSError as problem:
        print(f"Could not write the error event: {problem}", file=sys.stderr)
    if registry is not None:
        try:
            registry.update_run(run_dir.name, status="failed", error=message, handle=None)
        except Exception as problem:  # noqa: BLE001 - the registry's own failure must not hide the run's
            print(f"Could not record the failure in the registry: {problem}", file=sys.stderr)
    return message


def start_next(registry) -> None:
    """This trainer's slot is free: start the next queued run (a failure here never fails this run)."""
    from training.jobs.queue import dispatch

    try:
        dispatch(registry)
    except Exception as problem:  # noqa: BLE001
        print(f"Could not start the next queued run: {problem}", file=sys.stderr)


def explain_failure(exc: Exception) -> str:
    import errno

    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return "Out of memory: lower the batch size or max length, or use gradient accumulation."
    # torch.save reports a full disk as a RuntimeError naming it; plain writes as OSError(ENOSPC).
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "no space left on device" in str(exc).lower():
        return "The disk is full: free some space, then resume the run from its last checkpoint."
    return f"Training failed: {type(exc).__name__}: {exc}"


if __name__ == "__main__":
    sys.exit(main())
