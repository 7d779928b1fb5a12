"""Fine-tuning jobs: each local run is its own process, recorded in the registry, followed through its events.

A job outlives the app that started it (its own session): an app or CLI restarted later finds it in
the registry and keeps following events.jsonl. A job whose process died without a final event is
marked "interrupted" and can resume from its last checkpoint. OpenAI runs (training/openai_jobs.py)
go through the same follow/cancel/resume calls.

    tutor train --backend local --train train.jsonl --val validation.jsonl
    tutor jobs list | show RUN | cancel RUN | resume RUN
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from assistant.settings import get_settings
from training import openai_jobs
from training.config import TrainConfig
from training.lora import latest_checkpoint, process_alive
from training.registry import FINISHED, Registry, new_id

FINAL_EVENTS = ("done", "cancelled", "error")


def launch(run_dir: Path, registry: Registry, resume: bool = False) -> subprocess.Popen:
    """Start the trainer process for a run directory; it survives its parent (own session)."""
    command = [sys.executable, "-m", "training.lora", str(run_dir), "--registry", str(registry.path)]
    if resume:
        command.append("--resume")
    log = open(run_dir / "train.log", "ab")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True, cwd=Path(__file__).resolve().parent.parent)
    log.close()
    threading.Thread(target=process.wait, daemon=True).start()  # reap it when it ends: no zombie trainers
    registry.update_run(run_dir.name, status="running", pid=process.pid, error=None)
    deadline = time.time() + 10  # until the child has exec'd, it does not look like a trainer yet
    while not process_alive(process.pid) and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    return process


def start_local(config: TrainConfig, data_dir: Path, registry: Registry) -> dict:
    """Check the settings, create the run, start its process. Raises ConfigError on bad settings."""
    config.check()
    run_id = new_id("run")
    run_dir = data_dir / "runs" / run_id
    run_dir.mkdir(parents=True)
    config.save(run_dir / "config.json")
    registry.create_run("local", config.to_dict(), run_dir, status="queued", run_id=run_id)  # id = folder name
    launch(run_dir, registry)
    return registry.run(run_id)


def events(run_dir: Path, offset: int = 0) -> tuple[list[dict], int]:
    """Events written since byte `offset`, and the new offset (only whole lines are consumed)."""
    path = Path(run_dir) / "events.jsonl"
    if not path.exists():
        return [], offset
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    complete = data[:data.rfind(b"\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()], offset + len(complete)


def reconcile(registry: Registry) -> list[str]:
    """Mark local runs whose process is gone without a final event as interrupted; returns their ids."""
    interrupted = []
    for run in registry.runs():
        if run["backend"] == "local" and run["status"] in ("running", "queued") and not process_alive(run["pid"]):
            seen, _ = events(Path(run["run_dir"]))
            if not any(e["type"] in FINAL_EVENTS for e in seen):
                registry.update_run(run["id"], status="interrupted", pid=None,
                                    error="The training process stopped unexpectedly; resume it from its last checkpoint.")
                interrupted.append(run["id"])
    return interrupted


def follow(run: dict, registry: Registry, poll: float = 0.5, offset: int = 0, settings=None) -> Iterator[dict]:
    """Yield a run's events until it finishes (blocking; the app runs this in a thread)."""
    if run["backend"] == "openai":
        yield from openai_jobs.follow(run, registry, settings or get_settings(), poll=max(poll, 1.0))
        return
    run_dir = Path(run["run_dir"])
    while True:
        batch, offset = events(run_dir, offset)
        yield from batch
        if any(e["type"] in FINAL_EVENTS for e in batch):
            return
        current = registry.run(run["id"])
        if current["status"] in FINISHED or not process_alive(current["pid"]):
            batch, offset = events(run_dir, offset)
            yield from batch
            reconcile(registry)
            return
        time.sleep(poll)


def cancel(run: dict, registry: Registry, grace: float = 30.0, settings=None) -> dict:
    """Ask the trainer to stop (it checkpoints first); kill it if it does not stop within `grace` seconds."""
    if run["backend"] == "openai":
        return openai_jobs.cancel(run, registry, settings or get_settings())
    run_dir = Path(run["run_dir"])
    (run_dir / "cancel").touch()
    pid = run["pid"]
    if process_alive(pid):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.time() + grace
        while process_alive(pid) and time.time() < deadline:
            time.sleep(0.2)
        if process_alive(pid):
            os.killpg(pid, signal.SIGKILL)
    current = registry.run(run["id"])
    if current["status"] not in FINISHED:
        current = registry.update_run(run["id"], status="cancelled", pid=None)
    return current


def resume(run: dict, registry: Registry) -> dict:
    if run["backend"] == "openai":  # a hosted job can't be restarted; one still running is simply followed again
        if run["status"] in ("running", "queued"):
            return run
        raise ValueError(f"Run {run['id']} is {run['status']}: a hosted job can't be resumed. Start a new one, "
                         "continuing from a fine-tuned model with --model ft:... if you have one.")
    run_dir = Path(run["run_dir"])
    if run["status"] in ("running", "queued") and process_alive(run["pid"]):
        raise ValueError(f"Run {run['id']} is still running.")
    if run["status"] == "succeeded":
        raise ValueError(f"Run {run['id']} already finished.")
    if latest_checkpoint(run_dir) is None:
        raise ValueError(f"Run {run['id']} has no checkpoint yet; start a new run instead.")
    (run_dir / "cancel").unlink(missing_ok=True)
    launch(run_dir, registry, resume=True)
    return registry.run(run["id"])
