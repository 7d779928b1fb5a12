"""How fast this machine trains a setup, in real (unpadded) tokens per second, for the estimate before Start
(training/local/estimate.py): the last finished local run of the same setup, else a cached probe, else a probe now
of a few real training steps in a child process (the app's memory and threads stay its own). One probe per setup
however many learners ask at once; results are cached in the model cache dir (throughput.json).

    python -m training.local.throughput < CONFIG.json      # the probe: a few real steps, tokens/s as JSON
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path

from training.local.config import TrainConfig

log = logging.getLogger(__name__)

PROBE_STEPS = 4  # the first (the largest batch) warms up; the next ones are timed


def _setup(config: TrainConfig, dtype: str) -> str:
    """What a throughput depends on: the machine's CPU or GPU, the model, precision, method and batch."""
    from training.base.hardware import machine

    here = machine()
    where = here.gpus[0].name if here.gpus else here.cpu_name
    return "|".join(map(str, (where, config.base_model, dtype, config.method, config.gradient_checkpointing,
                              config.batch_size)))


def throughput(config: TrainConfig, settings, dtype: str, probe: bool = True) -> tuple[str, float] | None:
    """(source, real tokens per second) of this setup here: the last finished run's, else a cached probe's, else
    (with `probe`) a new probe's; None when none is known and none may run."""
    from training.base.registry import registry_for

    for run in registry_for(settings).runs(status=("succeeded",)):
        metrics, same = run.metrics, run.backend == "local"
        for key in ("base_model", "method", "gradient_checkpointing", "batch_size"):
            same = same and run.config.get(key, TrainConfig.model_fields[key].default) == getattr(config, key)
        if same and metrics.get("train_seconds") and metrics.get("tokens_trained") and metrics.get("precision", dtype) == dtype:
            return "previous", metrics["tokens_trained"] / metrics["train_seconds"]
    cache = Path(settings.model_cache_dir) / "throughput.json"
    key = _setup(config, dtype)
    from filelock import FileLock

    from training.base.common import write_atomic

    cache.parent.mkdir(parents=True, exist_ok=True)
    # One probe per setup however many learners ask at once; other setups are probed (or read) meanwhile.
    with FileLock(cache.parent / f"throughput-{hashlib.sha256(key.encode()).hexdigest()[:16]}.lock"):
        known = json.loads(cache.read_text()) if cache.is_file() else {}
        if key not in known:
            if not probe or (measured := measure_steps(config)) is None:
                return None
            with FileLock(cache.with_suffix(".lock")):  # the file itself: read again, add, write whole
                known = json.loads(cache.read_text()) if cache.is_file() else {}
                known[key] = measured
                write_atomic(cache, json.dumps(known, indent=1).encode())
    return "measured", known[key]


def measure_steps(config: TrainConfig, timeout: float = 600) -> float | None:
    """Real tokens/s over a few training steps of this run, measured in a child process (the app's memory and
    threads stay its own); None when the probe fails (the estimate then says the time is unknown, the log why)."""
    from training.base.settings import PROJECT_ROOT

    try:
        done = subprocess.run([sys.executable, "-m", "training.local.throughput"], input=config.model_dump_json(), text=True,
                              capture_output=True, cwd=PROJECT_ROOT, timeout=timeout)
        if done.returncode == 0:
            return float(json.loads(done.stdout.strip().splitlines()[-1])["tokens_per_second"])
        log.warning("Measuring a few training steps failed: %s", (done.stderr.strip().splitlines() or ["?"])[-1])
    except (subprocess.TimeoutExpired, OSError, IndexError, ValueError, KeyError, TypeError) as exc:
        log.warning("Measuring a few training steps failed: %s", exc)
    return None


def _measure(config: TrainConfig) -> float:
    """In the child: PROBE_STEPS real steps of the run (its largest batch first, then the next ones); the tokens/s
    of those after the first."""
    import time

    import torch

    from training.base.common import device as this_device
    from training.base.hardware import precision
    from training.local.batches import collate, length_grouped_batches, load_examples, longest_first
    from training.local.lora_model import AnswerLoss, add_lora, load_base

    device = this_device()
    dtype = precision(device, config.bf16).dtype
    model, tokenizer = load_base(config.base_model, dtype, quantize=config.method == "qlora")
    objective = AnswerLoss(add_lora(model, config)).to(device)
    objective.train()
    optimizer = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=config.learning_rate)
    examples, _ = load_examples(config.train_file, tokenizer, config.max_length)
    lengths = [len(e["input_ids"]) for e in examples]
    timed = []  # (real tokens, seconds) per step
    for chosen in longest_first(length_grouped_batches(lengths, config.batch_size, config.seed), lengths)[:PROBE_STEPS]:
        batch = {k: v.to(device) for k, v in collate([examples[i] for i in chosen], tokenizer.pad_token_id).items()}
        started = time.perf_counter()
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=dtype == "bf16"):
            loss = objective(**batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        timed.append((int(batch["attention_mask"].sum()), time.perf_counter() - started))
    timed = timed[1:] or timed  # the first step warms up, unless it is the only one
    return sum(tokens for tokens, _ in timed) / sum(seconds for _, seconds in timed)


if __name__ == "__main__":
    from training.base.common import configure_process
    from training.base.hardware import steady_heap

    steady_heap()  # as the trainer does
    configure_process()
    print(json.dumps({"tokens_per_second": _measure(TrainConfig.model_validate_json(sys.stdin.read()))}))
