"""One event presentation, two API directions: what `tutor serve` lists of a run (presentation.api_event) reads
back, through the same `openai` types a client sees, as the run's own events (presentation.from_provider, what the
OpenAI and Azure backends follow a hosted job with). Steps, evaluations and notes come back as they went; the
lifecycle events, which a hosted follower reads from the job's status and checkpoints, come back as notes."""

import pytest
from openai.types.fine_tuning import FineTuningJobEvent

from training.jobs import presentation
from training.jobs.events import Status, parse

CARRIED = [  # every kind the API carries whole, with what it carries
    {"type": "step", "time": 5.0, "step": 2, "total_steps": 4, "loss": 0.5},
    {"type": "step", "time": 5.0, "step": 3, "total_steps": None, "loss": 0.25, "token_accuracy": 0.75},
    {"type": "eval", "time": 6.0, "step": 2, "val_loss": 0.625, "val_token_accuracy": 0.5},
    {"type": "eval", "time": 6.0, "step": 4, "val_loss": 0.75},
    {"type": "status", "time": 7.0, "level": "warning", "message": "Retrying in 4 s."},
    {"type": "status", "time": 7.0, "level": "error", "message": "Lost track of the job."},
    {"type": "status", "time": 8.0, "message": "Validated the files."},
]
AS_NOTES = [  # (event, the note it reads back as)
    ({"type": "start", "time": 1.0, "total_steps": 8}, "Fine-tuning job started"),
    ({"type": "start", "time": 1.0, "step": 4, "resumed": True}, "Fine-tuning job resumed"),
    ({"type": "checkpoint", "time": 2.0, "step": 4, "path": "/runs/r/step-4"}, "Checkpoint created at step 4"),
    ({"type": "status", "time": 2.0, "status": "running"}, "Status: running"),
    ({"type": "done", "time": 3.0, "final_loss": 0.2}, "The job has successfully completed"),
    ({"type": "cancelled", "time": 3.0, "step": 4}, "The job was cancelled"),
    ({"type": "error", "time": 3.0, "message": "out of memory"}, "The job failed: out of memory"),
]


def round_trip(event: dict) -> list:
    """An event out through the API and back, as a client of `tutor serve` and a hosted follower see it."""
    sent = FineTuningJobEvent.model_validate(presentation.api_event("run-a", 0, parse(event)))
    return [parse(e) for e in presentation.from_provider(sent)]


@pytest.mark.parametrize("event", CARRIED, ids=lambda e: f"{e['type']}-{e.get('level', '')}")
def test_what_the_api_carries_reads_back_as_it_went(event):
    assert round_trip(event) == [parse(event)]


@pytest.mark.parametrize(("event", "note"), AS_NOTES, ids=lambda value: str(value)[:30])
def test_lifecycle_events_read_back_as_the_notes_the_api_lists(event, note):
    [back] = round_trip(event)
    assert isinstance(back, Status) and back.message == note and back.time == event["time"]
    assert back.level == ("error" if event["type"] == "error" else "info")


def test_every_kind_is_covered_here():
    kinds = {e["type"] for e in CARRIED} | {e["type"] for e, _ in AS_NOTES}
    assert kinds == {"start", "step", "eval", "checkpoint", "status", "done", "cancelled", "error"}


def test_the_cli_gives_each_shown_kind_its_own_line_and_a_step_rewrites_its_own():
    step = presentation.cli_line(parse(CARRIED[0]))
    assert step.startswith("\r") and "\n" not in step
    for event, _ in AS_NOTES[1:]:  # a resumed start onwards (but done): each on a line of its own
        if event["type"] == "done":
            continue
        line = presentation.cli_line(parse(event))
        assert line.startswith("\n") and line.endswith("\n"), event
    assert presentation.cli_line(parse(AS_NOTES[0][0])) is None, "a plain start is left to the step lines"
    assert presentation.cli_line(parse({"type": "done"})) is None
