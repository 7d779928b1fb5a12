"""Quotas on a shared server: what one learner may take of the machine, each with a setting and one sentence.

With logins on (TUTOR_AUTH), each learner has:
- a disk allowance (TUTOR_MAX_LEARNER_GB, default 5): their datasets, uploads, runs and chat-history files;
- a number of training jobs waiting or running at once (TUTOR_MAX_QUEUED_JOBS, default 3);
- settings that fit the machine: epochs (TUTOR_MAX_EPOCHS, 20), LoRA rank (TUTOR_MAX_LORA_R, 64) and example
  length in tokens (TUTOR_MAX_TRAIN_LENGTH, 4096).
Every install also has a wall time per run (TUTOR_MAX_RUN_HOURS; default 12 h with logins on, none without):
the trainer then stops as `timed_out` with its last checkpoint kept, so `resume` goes on from there.

A quota refuses before any work and keeps what is there: the refused upload, dataset or run is never written.

    check_disk(settings, registry, owner, adding=bytes, language="uk")    # raises Quota
    usage(settings, registry, owner)                                      # bytes, for `tutor users list --usage`
"""

from __future__ import annotations

import os
from pathlib import Path

from training.base.errors import TutorError
from training.base.phrases import Phrases
from training.base.registry import ACTIVE, Registry
from training.base.settings import Settings

GB = 1024**3
PHRASES = Phrases("quotas")


class Quota(TutorError):
    """A learner's quota is reached: the sentence says which and what to do."""


def size(count: float, language: str = "en") -> str:
    """Bytes as people read them: "1.50 GB", "3.0 MB" ("ГБ", "МБ" in Ukrainian)."""
    gb, mb = ("ГБ", "МБ") if language == "uk" else ("GB", "MB")
    return f"{count / GB:.2f} {gb}" if count >= GB / 10 else f"{count / 2**20:.1f} {mb}"


def shared(settings: Settings) -> bool:
    return settings.auth != "none"


def run_seconds(settings: Settings) -> float | None:
    """The wall time one run may take, in seconds (None: no limit)."""
    hours = settings.max_run_hours if settings.max_run_hours is not None else (12.0 if shared(settings) else None)
    return hours * 3600 if hours else None


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                continue
    return total


def usage(settings: Settings, registry: Registry, owner: str, history_bytes: int = 0) -> int:
    """Bytes the owner's datasets, uploads and runs take on disk (plus `history_bytes`, their chat files)."""
    total = sum(f.bytes for f in registry.files(owner)) + history_bytes
    folders = {Path(p).parent for d in registry.datasets(owner) for p in d.files.values()}
    folders |= {Path(r.run_dir) for r in registry.runs(owner) if r.backend == "local"}
    return total + sum(_folder_bytes(folder) for folder in folders if folder.is_dir())


def check_disk(settings: Settings, registry: Registry, owner: str, adding: int = 0, history_bytes: int = 0,
               language: str = "en") -> None:
    if not shared(settings):
        return
    used = usage(settings, registry, owner, history_bytes) + adding
    if used > settings.max_learner_gb * GB:
        raise Quota(PHRASES("disk", language, used=size(used, language), limit=size(settings.max_learner_gb * GB,
                                                                                  language)))


def check_queue(settings: Settings, registry: Registry, owner: str, language: str = "en") -> None:
    if shared(settings) and (count := len(registry.runs(owner, ACTIVE))) >= settings.max_queued_jobs:
        raise Quota(PHRASES("queued", language, count=count))


def check_ranges(settings: Settings, config, language: str = "en") -> None:
    """The run's settings within the server's ranges (fields a backend's config has)."""
    if not shared(settings):
        return
    for field, limit in (("epochs", settings.max_epochs), ("lora_r", settings.max_lora_r),
                         ("max_length", settings.max_train_length)):
        value = getattr(config, field, None)
        if isinstance(value, (int, float)) and value > limit:
            raise Quota(PHRASES("range", language, field=field, limit=limit, value=value))


def check_start(settings: Settings, registry: Registry, owner: str, config, history_bytes: int = 0,
                language: str = "en") -> None:
    """Everything a new run must fit: the learner's queue, their disk and the settings' ranges."""
    check_queue(settings, registry, owner, language)
    check_ranges(settings, config, language)
    check_disk(settings, registry, owner, history_bytes=history_bytes, language=language)
