"""A run's events: the trainer appends JSON lines to RUN_DIR/events.jsonl, followers read on from an offset.

    {"type": "start" | "step" | "eval" | "checkpoint" | "status" | "done" | "cancelled" | "error", "time": ..., ...}

Each kind is a pydantic model below (`parse` turns a line into one; every line written is checked against
them), so the chat, the CLI and `tutor serve` render by type, never by which keys happen to be there: all three
through training/jobs/presentation.py, which also reads a hosted job's events back into these shapes, so one chat
view and one CLI serve both. Lines written before these kinds said "resumed" (a start from a checkpoint) or
"message" (a note): they read as Start and Status. A line that is not valid JSON (a disk that filled mid-write,
a hand edit) is skipped and reported as a warning: it never stops a follower.

    python -m training.jobs.events RUN_DIR        # print a run's events
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

FINAL = ("done", "cancelled", "error")
FILE = "events.jsonl"


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow")  # a backend may add details (a run's settings, its metrics)
    time: float | None = None


class Start(_Event):
    """Training began, or began again from a checkpoint (`resumed`)."""

    type: Literal["start"] = "start"
    total_steps: int | None = None
    step: int = 0
    resumed: bool = False


class Step(_Event):
    """One optimizer step; a hosted job reports step and loss, a local run speed and time left too."""

    type: Literal["step"] = "step"
    step: int
    total_steps: int | None = None
    loss: float
    tokens_per_second: float | None = None
    eta_seconds: float | None = None


class Eval(_Event):
    type: Literal["eval"] = "eval"
    step: int
    val_loss: float
    val_token_accuracy: float | None = None


class Checkpoint(_Event):
    """A saved checkpoint: a folder for a local run, a callable model id for a hosted job."""

    type: Literal["checkpoint"] = "checkpoint"
    step: int
    path: str | None = None
    model: str | None = None


class Status(_Event):
    """The run's state changed (`status`, with its place in the queue while queued), or a note (`message`)."""

    type: Literal["status"] = "status"
    status: str | None = None
    message: str | None = None
    level: Literal["info", "warning", "error"] = "info"
    position: int | None = None
    queue_length: int | None = None

    @field_validator("level", mode="before")
    @classmethod
    def _provider_level(cls, value):
        """Providers say "warn" (OpenAI) or other words: one of ours, never a reason to drop the note."""
        return {"warn": "warning"}.get(value, value) if value in ("info", "warning", "error", "warn") else "info"


class Done(_Event):
    """Finished; the backend's metrics ride along (final loss, validation scores, the fine-tuned model id)."""

    type: Literal["done"] = "done"


class Cancelled(_Event):
    """Stopped with a checkpoint: by the learner, or at the server's wall time per run."""

    type: Literal["cancelled"] = "cancelled"
    step: int | None = None
    reason: Literal["cancelled", "timed_out"] = "cancelled"


class Error(_Event):
    type: Literal["error"] = "error"
    message: str


Event = Annotated[Start | Step | Eval | Checkpoint | Status | Done | Cancelled | Error, Field(discriminator="type")]
_EVENT = TypeAdapter(Event)
_LEGACY = {"resumed": {"type": "start", "resumed": True}, "message": {"type": "status"}}


def parse(event: dict) -> Event:
    """The typed event for a line or a follower's dict (ValidationError when it fits no kind)."""
    return _EVENT.validate_python({**event, **_LEGACY.get(event.get("type"), {})})


class EventLog:
    """Append-only JSON lines, flushed per event so followers see them at once."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = path, enabled

    def write(self, kind: str, **data) -> None:
        event = {"type": kind, "time": time.time(), **data}
        parse(event)  # a malformed event is the writer's bug: caught here, not by a reader later
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(event) + "\n")


def read(run_dir: Path, offset: int = 0) -> tuple[list[dict], int]:
    """Events written since byte `offset`, and the new offset (only whole lines are consumed)."""
    path = Path(run_dir) / FILE
    if not path.exists():
        return [], offset
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    complete = data[:data.rfind(b"\n") + 1]
    found, position = [], offset
    for line in complete.splitlines(keepends=True):
        if line.strip():
            try:
                event = json.loads(line)
                parse(event if isinstance(event, dict) else {})
                found.append(event)
            except ValueError:  # not JSON, or JSON that is no event (pydantic's ValidationError is a ValueError)
                found.append({"type": "status", "level": "warning", "time": time.time(),
                              "message": f"Skipped a corrupt line in {FILE} (at byte {position})."})
        position += len(line)
    return found, offset + len(complete)


def ended(run_dir: Path) -> bool:
    """True when the run wrote its final event (done, cancelled or error)."""
    return any(event["type"] in FINAL for event in read(run_dir)[0])


if __name__ == "__main__":
    import sys

    for event in read(Path(sys.argv[1]))[0]:
        print(json.dumps(event))
