"""Local LoRA fine-tuning jobs (the `local` training backend), and following, cancelling and resuming any run
through its backend (training/backends/registry.py).

A local run joins the training queue (training/jobs/queue.py) and, when its turn comes, trains in its own
process, recorded in the registry and followed through its events.jsonl. It outlives the app that
started it: an app or CLI restarted later finds it in the registry and follows it again. A run whose
process died without a final event is marked "interrupted" and resumes from its last checkpoint.
Following is asynchronous and holds no thread while it waits: each poll reads the new events off the
loop and returns.

    tutor train --backend local --train train.jsonl --val validation.jsonl
    tutor jobs list | show RUN | cancel RUN | resume RUN
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

from training.backends.registry import TrainingBackend, backend_of, register_training_backend
from training.base.errors import TutorError
from training.base.models import display_name
from training.base.phrases import Phrases
from training.base.quotas import PHRASES as QUOTA_PHRASES
from training.base.quotas import run_seconds
from training.base.records import Run
from training.base.registry import ACTIVE, LOCAL_USER, Registry, new_id
from training.base.settings import Settings, get_settings
from training.jobs import events, queue
from training.local import catalog
from training.local.checkpoints import latest_checkpoint
from training.local.config import ConfigError, TrainConfig
from training.local.estimate import ESTIMATE_FILE, estimate, expected

PHRASES = Phrases("local")


def start_local(config: TrainConfig, data_dir: Path, registry: Registry, owner: str = LOCAL_USER,
                limit: int | None = None, settings: Settings | None = None, language: str = "en") -> dict:
    """Check the settings and that the run fits in memory, create the run and queue it (it starts at once when a
    slot is free). Raises ConfigError on bad settings and on a run estimated not to fit (saying what would)."""
    config.check()
    found = estimate(config, settings or get_settings(), measure="known",
                     reclaimable=queue.reclaimable_memory(registry, limit))
    if not found.fits:
        raise ConfigError(found.refusal(language))
    run_id = new_id("run")
    run_dir = data_dir / "runs" / run_id
    run_dir.mkdir(parents=True)
    config.save(run_dir / "config.json")
    (run_dir / ESTIMATE_FILE).write_text(json.dumps(expected(found)))  # beside the measured figures at its end
    registry.create_run("local", config.to_dict(), run_dir, status="queued", run_id=run_id, owner=owner)
    queue.dispatch(registry, limit)
    return registry.run(run_id)


async def follow(run: Run, registry: Registry, poll: float = 0.5,
                 settings: Settings | None = None) -> AsyncIterator[events.Event]:
    """Any run's events until it ends, through the backend it was started with, each as its typed model
    (training/jobs/events.py): what the chat and the CLI render, by type."""
    async for event in backend_of(run, settings or get_settings()).follow(run, registry, poll):
        yield events.parse(event)


def cancel(run: Run, registry: Registry, settings: Settings | None = None) -> dict:
    """Stop any run, through its backend."""
    return backend_of(run, settings or get_settings()).cancel(run, registry)


def resume(run: Run, registry: Registry, settings: Settings | None = None) -> dict:
    """Continue any stopped run, through its backend."""
    return backend_of(run, settings or get_settings()).resume(run, registry)


@register_training_backend
class LocalLoRA(TrainingBackend):
    """LoRA on this machine (training/local/lora.py in its own process), through the training queue."""

    name, label, Config = "local", "local LoRA", TrainConfig

    @property
    def button(self) -> str:
        return PHRASES("button", self.language)

    def base_choices(self) -> dict[str, str]:
        """The instructor's base models by name (`base=NAME`): the configured one and TUTOR_TRAIN_BASE_MODELS. A name
        is all a client ever sends; the server maps it to an id or folder (training/local/catalog.py)."""
        return {display_name(model): model for model in catalog.configured(self.settings)}

    def learner_settings(self, values: dict, files: dict) -> tuple[TrainConfig, dict]:
        """The base model is one of the instructor's, or in local mode a Hub model already downloaded (`/models`)."""
        values = dict(values)
        base, model = values.pop("base", None), self.settings.base_model
        if base is not None:
            try:
                model = catalog.allowed(self.settings, str(base), self.language)
            except TutorError:
                raise TutorError(PHRASES("not_a_base", self.language, base=base,
                                         choices=", ".join(self.base_choices()))) from None
            if not catalog.on_disk(model):
                raise TutorError(PHRASES("not_downloaded", self.language, base=base))
        config, chosen = super().learner_settings(values, files)
        return config.model_copy(update={"base_model": model}), {**chosen, **({"base": base} if base else {})}

    def form(self) -> list[tuple[str, object, str]]:
        return [*super().form(), ("base", next(iter(self.base_choices())),
                                  PHRASES("base_field", self.language, choices=", ".join(self.base_choices())))]

    def describe(self, config: TrainConfig) -> str:
        modules = config.target_modules if isinstance(config.target_modules, str) else ",".join(config.target_modules)
        return PHRASES("describe", self.language, base=display_name(config.base_model), epochs=config.epochs,
                       lr=config.learning_rate, r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout,
                       modules=modules, max_length=config.max_length, batch=config.batch_size,
                       accumulation=config.gradient_accumulation, seed=config.seed)

    def describe_result(self, run: Run) -> str:
        if run.status in ("succeeded", "cancelled"):
            return PHRASES(run.status, self.language, run=run.id)
        if run.status == "timed_out":
            return QUOTA_PHRASES("timed_out", self.language, run=run.id,
                                 hours=(run_seconds(self.settings) or 0) / 3600)
        return run.error or PHRASES("see_log", self.language)

    def estimate(self, config: TrainConfig) -> str:
        """Peak memory, training time (a few steps measured here, the first time) and whether it fits; a run that
        won't fit is refused here already, with the one change that makes it fit."""
        found = estimate(config, self.settings)
        if not found.fits:
            raise ConfigError(found.refusal(self.language))
        return found.describe(self.language)

    def start(self, config: TrainConfig, registry: Registry, owner: str = LOCAL_USER) -> dict:
        return start_local(config, self.settings.data_dir, registry, owner, self.settings.max_training_jobs,
                           self.settings, self.language)

    def follow(self, run: Run, registry: Registry, poll: float = 0.5) -> AsyncIterator[dict]:
        return _follow_local(run, registry, poll, self.settings.max_training_jobs)

    def cancel(self, run: Run, registry: Registry) -> dict:
        return _cancel_local(run, registry)

    def resume(self, run: Run, registry: Registry) -> dict:
        return _resume_local(run, registry, self.settings.max_training_jobs)


async def _follow_local(run: Run, registry: Registry, poll: float, limit: int | None) -> AsyncIterator[dict]:
    """A local run's events until it finishes; a queued run reports its place in the queue as it changes."""
    run_dir, offset, place = Path(run.run_dir), 0, None
    while True:
        batch, offset = await asyncio.to_thread(events.read, run_dir, offset)
        for event in batch:
            yield event
        if any(e["type"] in events.FINAL for e in batch):
            return
        current, found = await asyncio.to_thread(_refresh, registry, run.id, limit)
        if current.status == "queued":
            if found != place:
                place = found
                yield {"type": "status", "status": "queued", "position": found[0] if found else None,
                       "queue_length": found[1] if found else None}
        elif current.status != "running":  # finished, cancelled or interrupted without a final event
            batch, offset = await asyncio.to_thread(events.read, run_dir, offset)
            for event in batch:
                yield event
            if not any(e["type"] in events.FINAL for e in batch):
                yield {"type": "status", "status": current.status, "message": current.error}
            return
        await asyncio.sleep(poll)


def _refresh(registry: Registry, run_id: str, limit: int | None) -> tuple[Run, tuple[int, int] | None]:
    """The run's record now, and a queued run's (place, length) in line; the queue is moved along (a trainer
    killed without a word frees its slot here)."""
    current = registry.run(run_id)
    if current.status in ACTIVE:
        queue.dispatch(registry, limit)
        current = registry.run(run_id)
    return current, queue.positions(registry).get(run_id) if current.status == "queued" else None


def _cancel_local(run: Run, registry: Registry, grace: float = 30.0) -> dict:
    """A queued run leaves the queue; a running one checkpoints and stops (killed after `grace` seconds)."""
    if queue.cancel_queued(registry, run.id):
        return registry.run(run.id)
    (Path(run.run_dir) / "cancel").touch()
    current = registry.run(run.id)
    if current.handle:
        queue.launcher.stop(current.handle, grace)
    return registry.update_run(run.id, only_if=("queued", "running"), status="cancelled", handle=None) \
        or registry.run(run.id)


def _resume_local(run: Run, registry: Registry, limit: int | None) -> dict:
    """Queue an interrupted, cancelled or failed local run again; it continues from its last checkpoint."""
    queue.reconcile(registry)
    run = registry.run(run.id)
    if run.status in ACTIVE:
        raise TutorError(f"Run {run.id} is {run.status} already.")
    if run.status == "succeeded":
        raise TutorError(f"Run {run.id} already finished.")
    run_dir = Path(run.run_dir)
    if latest_checkpoint(run_dir) is None:
        raise TutorError(f"Run {run.id} has no checkpoint yet; start a new run instead.")
    (run_dir / "cancel").unlink(missing_ok=True)
    queue.enqueue(registry, run.id)
    queue.dispatch(registry, limit)
    return registry.run(run.id)

