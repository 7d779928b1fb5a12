"""How a run's typed events (training/jobs/events.py) are shown, in one place: the CLI's line, the chat's live
view and OpenAI's fine-tuning job event; and the inverse, a provider's job event (OpenAI, Azure) read back as ours.

    from training.jobs import presentation
    presentation.cli_line(event)              # "\\rstep 2/8  training loss 0.2500  ...", for stderr
    view = presentation.RunView()             # the chat's message: view.add(event), then view.lines("uk")
    presentation.api_event("run-1", 3, event) # a FineTuningJobEvent's fields, as `tutor serve` lists them
    presentation.from_provider(job_event)     # a provider's FineTuningJobEvent -> our events (events.jsonl's)

The two API directions are each other's inverse for what the API carries: a step's and an evaluation's metrics
and a note (a status with a message) come back as they went (tests/test_presentation.py). Lifecycle events
(start, checkpoint, done, cancelled, error) go out as notes: a hosted job's follower reads those from the job's
status and checkpoints instead. Texts for the learner are in English and Ukrainian; the API speaks English.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from training.base.phrases import Phrases
from training.jobs.events import Cancelled, Checkpoint, Done, Error, Eval, Event, Start, Status, Step

PHRASES = Phrases("jobs")
NOTES = 5  # the chat shows a run's last few notes


def progress(step: Step, bold: str = "", language: str = "en") -> list[str]:
    """A step's facts, each a short phrase; `bold` marks the numbers that matter ("**" in chat)."""
    return [PHRASES("step", language, bold=bold, step=step.step, total=step.total_steps or "?"),
            PHRASES("loss", language, bold=bold, loss=step.loss),
            *([PHRASES("speed", language, speed=step.tokens_per_second)] if step.tokens_per_second is not None else []),
            *([PHRASES("eta", language, eta=step.eta_seconds)] if step.eta_seconds is not None else [])]


def checkpoint_label(checkpoint: Checkpoint, language: str = "en") -> str:
    """A checkpoint as a learner calls it: a hosted job's callable model id, or a local run's step."""
    return checkpoint.model or PHRASES("checkpoint", language, step=checkpoint.step)


# --- the CLI ----------------------------------------------------------------------------------------------

def cli_line(event: Event) -> str | None:
    """What `tutor train` and `tutor jobs resume` print on stderr for an event: a step rewrites its own line
    ("\\r"), anything else gets a line of its own; None for what the CLI leaves out (a start, done)."""
    if isinstance(event, Step):
        return "\r" + "  ".join(progress(event)) + "   "
    if isinstance(event, Eval):
        accuracy = f", token accuracy {event.val_token_accuracy:.1%}" if event.val_token_accuracy is not None else ""
        line = f"  validation loss {event.val_loss:.4f}{accuracy}"
    elif isinstance(event, Status) and event.position:
        line = f"queued: position {event.position} of {event.queue_length}"
    elif isinstance(event, Status):
        line = f"{event.level if event.message else 'status'}: {event.message or event.status}"
    elif isinstance(event, Start) and event.resumed:
        line = f"resumed from step {event.step}"
    elif isinstance(event, Checkpoint):
        line = f"checkpoint: {checkpoint_label(event)}"
    elif isinstance(event, Error | Cancelled):
        line = f"{event.type}: {getattr(event, 'message', '') or ''}".rstrip(": ")
    else:
        return None
    return f"\n{line}\n"


# --- the chat -------------------------------------------------------------------------------------------

@dataclass
class RunView:
    """What the chat draws of a run as its events arrive: the latest of each kind, the loss chart's points and
    the last few notes. `add` folds an event in; `lines` is the progress message's body."""

    total: int | None = None
    steps: list[tuple[int, float]] = field(default_factory=list)  # the chart: (step, training loss)
    evals: list[tuple[int, float]] = field(default_factory=list)  # the chart: (step, validation loss)
    last: Step | None = None
    evaluation: Eval | None = None
    status: Status | None = None
    notes: list[str] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)

    def add(self, event: Event) -> None:
        if isinstance(event, Start):
            self.total = event.total_steps or self.total
        elif isinstance(event, Step):
            self.steps.append((event.step, event.loss))
            self.last = event
        elif isinstance(event, Eval):
            self.evals.append((event.step, event.val_loss))
            self.evaluation = event
        elif isinstance(event, Status):
            self.status = event if event.status else self.status
            self.notes = (self.notes + [event.message])[-NOTES:] if event.message else self.notes
        elif isinstance(event, Checkpoint):
            self.checkpoints.append(event)

    def status_line(self, language: str = "en", word: Callable[[str | None], str] = str) -> str | None:
        """The run's state; `word` names a status in the learner's language (the chat's catalog has them)."""
        event = self.status
        if event is None:
            return None
        if event.status == "queued" and event.position:
            ahead = event.position - 1
            return PHRASES("queued", language, position=event.position, length=event.queue_length,
                           ahead=PHRASES("ahead", language, count=ahead) if ahead else PHRASES("next", language))
        return PHRASES("status", language, status=word(event.status))

    def lines(self, language: str = "en", word: Callable[[str | None], str] = str) -> list[str]:
        """The progress message's paragraphs: status, the latest step, validation, checkpoints, notes."""
        found = [self.status_line(language, word)]
        if self.last:
            found.append(" · ".join(progress(self.last, bold="**", language=language)))
        if self.evaluation:
            found.append(PHRASES("validation", language, loss=self.evaluation.val_loss, step=self.evaluation.step,
                                 accuracy=self.evaluation.val_token_accuracy or 0))
        if self.checkpoints:
            found.append(PHRASES("checkpoints", language, count=len(self.checkpoints),
                                 latest=checkpoint_label(self.checkpoints[-1], language)))
        if self.notes:
            found.append("\n".join(f"> {note}" for note in self.notes))
        return [line for line in found if line]


# --- the OpenAI-shaped API, both ways -------------------------------------------------------------------

def api_event(run_id: str, index: int, event: Event) -> dict:
    """An event as an OpenAI fine-tuning job event (metrics carry the dashboard's field names)."""
    level, data = "info", {}
    if isinstance(event, Step):
        message = f"Step {event.step}/{event.total_steps or '?'}: training loss={event.loss:.4f}"
        data = {"step": event.step, "total_steps": event.total_steps, "train_loss": event.loss}
        if (accuracy := getattr(event, "token_accuracy", None)) is not None:
            data["train_mean_token_accuracy"] = accuracy
    elif isinstance(event, Eval):
        message = f"Step {event.step}: validation loss={event.val_loss:.4f}"
        data = {"step": event.step, "valid_loss": event.val_loss, "valid_mean_token_accuracy": event.val_token_accuracy}
    elif isinstance(event, Checkpoint):
        message = f"Checkpoint created at step {event.step}"
    elif isinstance(event, Done):
        message = "The job has successfully completed"
    elif isinstance(event, Error):
        message, level = f"The job failed: {event.message}", "error"
    elif isinstance(event, Cancelled):
        message = "The job was cancelled"
    elif isinstance(event, Status):
        message, level = event.message or f"Status: {event.status}", {"warning": "warn"}.get(event.level, event.level)
    else:
        message = "Fine-tuning job resumed" if event.resumed else "Fine-tuning job started"
    return {"id": f"ftevent-{run_id}-{index}", "object": "fine_tuning.job.event", "created_at": int(event.time or 0),
            "level": level, "message": message, "type": "metrics" if data else "message", "data": data}


def from_provider(event) -> list[dict]:
    """A provider's job event (an `openai` FineTuningJobEvent: type, data, level, message, created_at) as our
    events: a metrics event with a step is a step and/or an evaluation, anything else a note."""
    data, when = event.data or {}, event.created_at
    if event.type == "metrics" and isinstance(data, dict) and isinstance(data.get("step"), int):
        found = []
        if data.get("train_loss") is not None:
            accuracy = data.get("train_mean_token_accuracy")
            found.append({"type": "step", "step": data["step"], "total_steps": data.get("total_steps"),
                          "loss": data["train_loss"], "time": when,
                          **({"token_accuracy": accuracy} if accuracy is not None else {})})
        if data.get("valid_loss") is not None:
            found.append({"type": "eval", "step": data["step"], "val_loss": data["valid_loss"],
                          "val_token_accuracy": data.get("valid_mean_token_accuracy"), "time": when})
        if found:
            return found
    return [{"type": "status", "level": event.level, "message": event.message, "time": when}]
