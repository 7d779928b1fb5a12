"""The registry's records: one typed row per table, what `Registry` (training/base/registry.py) returns.

Fields are the table's columns (training/base/registry_schema.py), JSON columns already decoded. A record is a
snapshot: change a run through `registry.update_run(...)`, which returns the new record, never by assigning to
the old one (records are frozen). For JSON output, `record.model_dump()`.

    run = registry.run(run_id, owner)
    if run.status == "succeeded": print(run.metrics.get("val_f1"), run.adapter_path)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)  # old files kept pids as ints


class User(Record):
    """An account: a stable id (`u-...`), its login name (reusable after removal: then a new id), a role."""

    id: str
    name: str
    password_hash: str | None = None  # Argon2; None for header and OAuth accounts
    role: str = "user"
    created_at: float
    removed_at: float | None = None
    legacy_name: str | None = None  # the name that owned its rows before owners became ids


class File(Record):
    """An upload, kept under an opaque id with its real suffix."""

    id: str
    owner: str
    name: str
    path: str
    bytes: int
    purpose: str
    created_at: float


class Dataset(Record):
    """A prepared or uploaded dataset: its files by split, and its validation report."""

    id: str
    name: str
    files: dict[str, str]
    report: dict
    created_at: float
    owner: str


class Run(Record):
    """A fine-tuning run on any backend, from queued to its end."""

    id: str
    backend: str
    status: str
    config: dict  # the backend's Config, as given (TrainConfig for `local`)
    metrics: dict = {}
    run_dir: str
    adapter_path: str | None = None
    error: str | None = None
    handle: str | None = None  # what the launcher knows the trainer by (a pid, locally)
    created_at: float
    updated_at: float
    owner: str
    queued_at: float | None = None
    started_at: float | None = None


class Model(Record):
    """A run's result: an adapter folder, or a provider's fine-tuned model or deployment."""

    id: str
    run_id: str | None
    kind: str
    location: str
    base_model: str
    created_at: float
    owner: str


class Comparison(Record):
    """One A/B answer pair and the learner's vote (None until they vote)."""

    id: str
    a_label: str
    b_label: str
    prompt: str
    a_answer: str
    b_answer: str
    stats: dict = {}
    vote: str | None = None
    created_at: float
    owner: str


class Evaluation(Record):
    """A held-out evaluation: its summary, and the folder with every answer."""

    id: str
    owner: str
    run_id: str | None
    summary: dict
    results_dir: str
    created_at: float


class QuizAnswer(Record):
    """One graded answer of a learner's check of understanding."""

    question: str
    topic: str
    language: str
    grade: str
    attempt: int
    answered_at: float
