"""A run's events: the trainer appends JSON lines to RUN_DIR/events.jsonl, followers read on from an offset.

    {"type": "start" | "resumed" | "step" | "eval" | "checkpoint" | "done" | "cancelled" | "error", "time": ..., ...}

Hosted jobs are turned into the same shapes (training/openai_jobs.py), so one chat view and one CLI
serve both. A line that is not valid JSON (a disk that filled mid-write, a hand edit) is skipped and
reported as a warning message event: it never stops a follower.

    python -m training.events RUN_DIR        # print a run's events
"""

from __future__ import annotations

import json
import time
from pathlib import Path

FINAL = ("done", "cancelled", "error")
FILE = "events.jsonl"


class EventLog:
    """Append-only JSON lines, flushed per event so followers see them at once."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = path, enabled

    def write(self, kind: str, **data) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"type": kind, "time": time.time(), **data}) + "\n")


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
                if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                    raise ValueError("not an event object")
                found.append(event)
            except ValueError:
                found.append({"type": "message", "level": "warning", "time": time.time(),
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
