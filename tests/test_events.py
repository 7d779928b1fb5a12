"""Run events are typed: each line parses into its kind's model, older "resumed" and "message" lines read as Start
and Status, a line that fits no kind is skipped and reported (never a crash), a malformed event is refused when it
is written, and the chat and the CLI render local and hosted runs from the same models."""

import json

import pytest
from pydantic import ValidationError

from assistant.chat import training_flow
from assistant.cli import main as cli
from training.jobs import events
from training.jobs.events import Done, Error, Eval, Start, Status, Step, parse


def test_each_kind_parses_into_its_model_with_its_details():
    assert isinstance(parse({"type": "start", "total_steps": 12}), Start)
    local = parse({"type": "step", "step": 3, "total_steps": 12, "loss": 0.5, "tokens_per_second": 900.0,
                   "eta_seconds": 20.0, "epoch": 0.25})
    assert isinstance(local, Step) and local.epoch == 0.25, "a backend's extra details are kept"
    assert local.progress() == ["step 3/12", "training loss 0.5000", "900 tokens/s", "ETA 20 s"]
    hosted = parse({"type": "step", "step": 3, "loss": 0.5})
    assert hosted.progress(bold="**") == ["step **3/?**", "training loss **0.5000**"]
    assert parse({"type": "checkpoint", "step": 4, "model": "ft:m:ckpt-step-4"}).label == "ft:m:ckpt-step-4"
    assert parse({"type": "checkpoint", "step": 4, "path": "/runs/r/checkpoints/step-4"}).label == "step 4"
    assert isinstance(parse({"type": "eval", "step": 4, "val_loss": 1.0}), Eval)
    assert isinstance(parse({"type": "done", "fine_tuned_model": "ft:x"}), Done)
    assert isinstance(parse({"type": "error", "message": "out of memory"}), Error)


def test_older_lines_read_as_the_kinds_they_are():
    resumed = parse({"type": "resumed", "step": 8, "checkpoint": "step-8"})
    assert isinstance(resumed, Start) and resumed.resumed and resumed.step == 8
    note = parse({"type": "message", "level": "warning", "message": "Retrying in 4 s."})
    assert isinstance(note, Status) and (note.level, note.message, note.status) == ("warning", "Retrying in 4 s.", None)
    assert parse({"type": "status", "level": "warn", "message": "a provider's word"}).level == "warning"
    assert parse({"type": "status", "level": "notice", "message": "an unknown level"}).level == "info"


def test_tutor_serve_turns_them_into_the_apis_events():
    from assistant.server.app import _api_event

    step = _api_event("run-a", 1, {"type": "step", "time": 5.0, "step": 2, "total_steps": 4, "loss": 0.5})
    assert step["type"] == "metrics" and step["data"] == {"step": 2, "total_steps": 4, "train_loss": 0.5}
    resumed = _api_event("run-a", 2, {"type": "start", "time": 6.0, "step": 2, "resumed": True})
    assert resumed["message"] == "Fine-tuning job resumed" and resumed["created_at"] == 6
    note = _api_event("run-a", 3, {"type": "status", "time": 7.0, "level": "warning", "message": "Skipped a line."})
    assert (note["level"], note["message"], note["type"]) == ("warn", "Skipped a line.", "message")


def test_what_fits_no_kind_is_refused_on_write_and_skipped_on_read(tmp_path):
    with pytest.raises(ValidationError):
        parse({"type": "step", "step": 1})  # no loss
    with pytest.raises(ValidationError):
        parse({"type": "exploded"})
    with pytest.raises(ValidationError):
        events.EventLog(tmp_path / events.FILE).write("eval", step=1)  # no val_loss
    assert not (tmp_path / events.FILE).exists()
    (tmp_path / events.FILE).write_text(json.dumps({"type": "start", "time": 1.0, "total_steps": 2}) + "\n"
                                        + json.dumps({"type": "step", "step": 1}) + "\n"
                                        + json.dumps(["not", "an", "event"]) + "\n")
    found, _ = events.read(tmp_path)
    assert found[0]["type"] == "start" and [e["message"][:24] for e in found[1:]] == ["Skipped a corrupt line i"] * 2


def test_the_cli_renders_local_and_hosted_runs_by_type(capsys):
    for event in ({"type": "step", "step": 2, "total_steps": 8, "loss": 0.25, "tokens_per_second": 1200.0,
                   "eta_seconds": 9.0},
                  {"type": "step", "step": 5, "loss": 0.125},
                  {"type": "eval", "step": 5, "val_loss": 0.5},
                  {"type": "status", "status": "queued", "position": 2, "queue_length": 3},
                  {"type": "message", "level": "warning", "message": "Retrying in 4 s."},
                  {"type": "checkpoint", "step": 5, "model": "ft:m:ckpt-step-5"}):
        cli._print_event(parse(event))
    shown = capsys.readouterr().err
    assert "step 2/8  training loss 0.2500  1,200 tokens/s  ETA 9 s" in shown
    assert "step 5/?  training loss 0.1250" in shown and "validation loss 0.5000" in shown
    assert "queued: position 2 of 3" in shown and "warning: Retrying in 4 s." in shown
    assert "checkpoint: ft:m:ckpt-step-5" in shown


def test_the_chat_folds_events_by_type():
    state = {"total": None, "steps": [], "evals": [], "status": None, "log": [], "checkpoints": [], "last": None}
    for event in ({"type": "start", "total_steps": 8},
                  {"type": "status", "status": "failed", "message": "The trainer stopped."},
                  {"type": "step", "step": 1, "loss": 0.5},
                  {"type": "checkpoint", "step": 1, "path": "/x/step-1"},
                  {"type": "message", "level": "warning", "message": "Skipped a corrupt line."}):
        training_flow.record(state, parse(event))
    assert state["total"] == 8 and state["steps"] == [(1, 0.5)] and state["checkpoints"] == ["step 1"]
    assert training_flow.status_line(state["status"]) == "status **failed**"
    assert state["log"] == ["The trainer stopped.", "Skipped a corrupt line."]


def test_a_hosted_metric_without_a_step_is_a_note_not_a_broken_step():
    from types import SimpleNamespace

    from training.backends.openai_api import _as_events

    stepless = SimpleNamespace(type="metrics", data={"train_loss": 0.5}, level="info", message="loss 0.5",
                               created_at=7)
    [note] = _as_events(stepless)
    assert isinstance(parse(note), Status) and note["message"] == "loss 0.5"
    counted = SimpleNamespace(type="metrics", data={"step": 3, "train_loss": 0.5, "valid_loss": 0.7}, level="info",
                              message="", created_at=8)
    assert [type(parse(e)) for e in _as_events(counted)] == [Step, Eval]
