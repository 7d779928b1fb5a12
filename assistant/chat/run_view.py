"""The chat's live view of a run: one message and one loss chart, updated a few times a second from the run's
shared follower (assistant.chat.run_feed) while it trains, then a summary with what to do next. What each event
shows is training/jobs/presentation.py's (RunView); this module draws it in Chainlit.

    cl.user_session.set("training_job", asyncio.create_task(watch(run, "local LoRA, epochs **2**", "uk")))
    await resume_watching(learner)     # a chat opened while runs are active (the app restarted, say)
"""

from __future__ import annotations

import asyncio
import time

import chainlit as cl

from assistant.chat.run_feed import feed
from assistant.i18n import CATALOG, session_language, text
from assistant.web.accounts import Learner
from training.backends.registry import backend_of
from training.base.records import Run
from training.base.registry import ACTIVE, registry_for
from training.base.settings import get_settings
from training.evaluation.charts import loss_chart
from training.jobs.presentation import RunView
from training.local.estimate import GB
from training.local.estimate import PHRASES as ESTIMATE_PHRASES

UPDATE_EVERY = 0.4  # seconds between screen updates: a few a second, not one per event


async def resume_watching(learner: Learner) -> None:
    """Follow, in this chat, every run of the learner still queued or training (e.g. after a restart)."""
    registry = registry_for(get_settings())
    active = await asyncio.to_thread(registry.runs, learner.scope, ACTIVE)
    language = session_language()
    cl.user_session.set("watching", [asyncio.create_task(watch(run, text("train.picked_up", language), language))
                                     for run in active])


async def watch(run: Run, what: str, language: str = "en") -> None:
    """Show a run's progress, chart and summary in one message, from the run's shared follower."""
    settings = get_settings()
    registry = registry_for(settings)
    message = cl.Message(content=text("train.heading", language, run=run.id, what=what) + " "
                         + text("train.starting", language),
                         actions=[cl.Action(name="cancel_run", payload={"run_id": run.id},
                                            label=text("train.cancel", language)),
                                  explain_action(run.id, language)])  # the curve so far
    await message.send()
    view = RunView()
    events = feed.subscribe(run, registry, settings)
    shown_at, pending = 0.0, False
    try:
        while True:
            wait = max(0.0, UPDATE_EVERY - (time.monotonic() - shown_at)) if pending else None
            try:
                event = await asyncio.wait_for(events.get(), timeout=wait)
            except TimeoutError:
                event = ...  # nothing new for a while: show what has arrived
            if event is None:
                break
            if event is not ...:
                view.add(event)
                pending = True
                if time.monotonic() - shown_at < UPDATE_EVERY or not events.empty():
                    continue
            await show(message, view, run, what, language)
            shown_at, pending = time.monotonic(), False
    finally:
        feed.unsubscribe(run.id, events)
    await show(message, view, run, what, language)
    await message.remove_actions()
    finished = await asyncio.to_thread(registry.run, run.id)
    callable_now = any(m.run_id == run.id for m in await asyncio.to_thread(registry.models))
    actions = model_actions(run.id, language) if finished.status == "succeeded" and callable_now else []
    await cl.Message(content=summary(finished, language),
                     actions=actions + [explain_action(run.id, language)]).send()



def model_actions(run_id: str, language: str = "en") -> list[cl.Action]:
    return [cl.Action(name="chat_with_model", payload={"run_id": run_id}, label=text("train.chat_with_it", language)),
            cl.Action(name="compare_model", payload={"run_id": run_id}, label=text("train.compare", language))]


def explain_action(run_id: str, language: str = "en") -> cl.Action:
    return cl.Action(name="explain_run", payload={"run_id": run_id}, label=text("explain.button", language))


def status_word(status: str | None, language: str = "en") -> str:
    """A run's status in `language` (a provider's own status word as it is)."""
    return text(f"status.{status}", language) if f"status.{status}" in CATALOG["en"] else str(status)



async def show(message: cl.Message, view: RunView, run: Run, what: str, language: str = "en") -> None:
    """The progress message and its chart, as the view stands."""
    heading = text("train.heading", language, run=run.id, what=what)
    message.content = "\n\n".join([heading, *view.lines(language, lambda status: status_word(status, language))])
    await message.update()
    if view.steps:
        chart = cl.Plotly(name="loss", figure=loss_chart(view.steps, view.evals, view.total, language),
                          display="inline", id=f"loss-{run.id}")
        chart.updatable = True  # same id: the chart is replaced in place as it grows
        await chart.send(for_id=message.id)


METRICS = {  # a finished run's metrics, as the summary shows them (named by the catalog's "metric.KEY"; a shape
    # that is a catalog key is one with words in it)
    "fine_tuned_model": "`{}`", "deployment": "`{}`", "final_loss": "{:.4f}", "val_loss": "{:.4f}",
    "val_token_accuracy": "{:.1%}", "val_f1": "{:.3f}", "train_seconds": "metric.seconds", "tokens_trained": "{:,}",
    "trained_tokens": "{:,}"}


def summary(run: Run, language: str = "en") -> str:
    """A finished run in a few lines: its metrics as a table, then what its backend says of its result."""
    backend = backend_of(run, get_settings(), language)
    note = backend.describe_result(run)
    status = status_word(run.status, language)
    if run.status == "cancelled":
        return text("summary.cancelled", language, run=run.id, note=note).rstrip()
    if run.status != "succeeded":
        return text("summary.ended_note" if note else "summary.ended", language, run=run.id, status=status,
                    note=note)
    shapes = {key: text(shape, language) if shape in CATALOG["en"] else shape for key, shape in METRICS.items()}
    rows = [(text(f"metric.{key}", language), shape.format(run.metrics[key])) for key, shape in shapes.items()
            if run.metrics.get(key) is not None]
    table = (text("summary.table", language) + "\n| --- | --- |\n"
             + "\n".join(f"| {label} | {value} |" for label, value in rows))
    return text("summary.title", language, run=run.id, label=backend.label) + f"\n\n{table}\n\n" + \
        "".join(f"{line}\n\n" for line in [against_estimate(run.metrics, language)] if line) + note


def against_estimate(metrics: dict, language: str = "en") -> str | None:
    """A local run's measured peak memory and training time beside what was estimated before Start."""
    if not metrics.get("peak_memory_bytes") or not metrics.get("estimated_peak_memory_bytes"):
        return None
    estimated_seconds = metrics.get("estimated_train_seconds")
    return ESTIMATE_PHRASES("measured" if estimated_seconds else "measured_memory", language,
                            peak=metrics["peak_memory_bytes"] / GB,
                            estimate=metrics["estimated_peak_memory_bytes"] / GB, seconds=metrics["train_seconds"], estimated_seconds=estimated_seconds)


