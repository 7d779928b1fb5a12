"""Run events are typed: each line parses into its kind's model, older "resumed" and "message" lines read as Start
and Status, a line that fits no kind is skipped and reported (never a crash), a malformed event is refused when it
is written, and the chat, the CLI and `tutor serve` render local and hosted runs from the same models, through
training/jobs/presentation.py (tests/test_presentation.py: its two API directions)."""

import json
import sys

import pytest
from pydantic import ValidationError

from training.jobs import events, presentation
from training.jobs.events import Done, Error, Eval, Start, Status, Step, parse


def test_each_kind_parses_into_its_model_with_its_details():
    assert isinstance(parse({"type": "start", "total_steps": 12}), Start)
    local = parse({"type": "step", "step": 3, "total_steps": 12, "loss": 0.5, "tokens_per_second": 900.0,
                   "eta_seconds": 20.0, "epoch": 0.25})
    assert isinstance(local, Step) and local.epoch == 0.25, "a backend's extra details are kept"
    assert presentation.progress(local) == ["step 3/12", "training loss 0.5000", "900 tokens/s", "ETA 20 s"]
    hosted = parse({"type": "step", "step": 3, "loss": 0.5})
    assert presentation.progress(hosted, bold="**") == ["step **3/?**", "training loss **0.5000**"]
    assert presentation.progress(hosted, language="uk") == ["крок 3/?", "втрати навчання 0.5000"]
    hosted_checkpoint = parse({"type": "checkpoint", "step": 4, "model": "ft:m:ckpt-step-4"})
    assert presentation.checkpoint_label(hosted_checkpoint) == "ft:m:ckpt-step-4"
    local_checkpoint = parse({"type": "checkpoint", "step": 4, "path": "/runs/r/checkpoints/step-4"})
    assert presentation.checkpoint_label(local_checkpoint) == "step 4"
    assert presentation.checkpoint_label(local_checkpoint, "uk") == "крок 4"
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
    def api_event(index, event):
        return presentation.api_event("run-a", index, parse(event))

    step = api_event(1, {"type": "step", "time": 5.0, "step": 2, "total_steps": 4, "loss": 0.5})
    assert step["type"] == "metrics" and step["data"] == {"step": 2, "total_steps": 4, "train_loss": 0.5}
    resumed = api_event(2, {"type": "start", "time": 6.0, "step": 2, "resumed": True})
    assert resumed["message"] == "Fine-tuning job resumed" and resumed["created_at"] == 6
    note = api_event(3, {"type": "status", "time": 7.0, "level": "warning", "message": "Skipped a line."})
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
        print(presentation.cli_line(parse(event)) or "", end="", file=sys.stderr)
    shown = capsys.readouterr().err
    assert "step 2/8  training loss 0.2500  1,200 tokens/s  ETA 9 s" in shown
    assert "step 5/?  training loss 0.1250" in shown and "validation loss 0.5000" in shown
    assert "queued: position 2 of 3" in shown and "warning: Retrying in 4 s." in shown
    assert "checkpoint: ft:m:ckpt-step-5" in shown


def test_the_chat_folds_events_by_type():
    view = presentation.RunView()
    for event in ({"type": "start", "total_steps": 8},
                  {"type": "status", "status": "failed", "message": "The trainer stopped."},
                  {"type": "step", "step": 1, "loss": 0.5},
                  {"type": "checkpoint", "step": 1, "path": "/x/step-1"},
                  {"type": "message", "level": "warning", "message": "Skipped a corrupt line."}):
        view.add(parse(event))
    assert view.total == 8 and view.steps == [(1, 0.5)]
    assert [presentation.checkpoint_label(c) for c in view.checkpoints] == ["step 1"]
    assert view.status_line() == "status **failed**"
    assert view.notes == ["The trainer stopped.", "Skipped a corrupt line."]
    assert view.lines("uk", word={"failed": "не вдалося"}.get) == [
        "стан **не вдалося**", "крок **1/?** · втрати навчання **0.5000**", "контрольних точок: 1, остання `крок 1`",
        "> The trainer stopped.\n> Skipped a corrupt line."]


def test_the_chat_shows_a_queued_runs_place():
    view = presentation.RunView()
    view.add(parse({"type": "status", "status": "queued", "position": 3, "queue_length": 4}))
    assert view.status_line() == ("status **queued**: position **3 of 4** (2 ahead); it starts when a trainer is "
                                  "free")
    view.add(parse({"type": "status", "status": "queued", "position": 1, "queue_length": 4}))
    assert "(next)" in view.status_line() and "(наступний)" in view.status_line("uk")


def test_a_hosted_metric_without_a_step_is_a_note_not_a_broken_step():
    from types import SimpleNamespace

    stepless = SimpleNamespace(type="metrics", data={"train_loss": 0.5}, level="info", message="loss 0.5",
                               created_at=7)
    [note] = presentation.from_provider(stepless)
    assert isinstance(parse(note), Status) and note["message"] == "loss 0.5"
    counted = SimpleNamespace(type="metrics", data={"step": 3, "train_loss": 0.5, "valid_loss": 0.7}, level="info",
                              message="", created_at=8)
    assert [type(parse(e)) for e in presentation.from_provider(counted)] == [Step, Eval]
