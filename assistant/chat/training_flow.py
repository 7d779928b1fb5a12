"""Chat handlers for fine-tuning: start a job on any training backend, watch it live, cancel it, see its summary.

Thin, and the same for every backend (training.backends.registry): a button per available backend, its settings from
the chat settings form or `/train BACKEND key=value`, its cost estimate to confirm where the job is billed.
A chat watches a run through the shared follower (assistant.chat.run_feed) and updates one message and one loss
chart a few times a second. Buttons carry a backend's name, a dataset or run id and typed settings only; the
settings are checked by the backend's config, each id is looked up for the learner. Runs still active when a
chat opens (the app restarted, say) are picked up and followed again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from pathlib import Path

import chainlit as cl

from assistant.chat.actions import RunRef, TrainRequest, action, current_learner, typed_settings
from assistant.chat.run_feed import feed
from assistant.i18n import CATALOG, session_language, text
from assistant.inference.backends import create_backend
from assistant.inference.engine import Usage
from assistant.tutor.contenders import fine_tuned, model_for_run, too_long
from assistant.tutor.explain import explain, phrased
from assistant.web import history
from assistant.web.accounts import Learner
from training.backends.registry import backend_of, training_backend, training_backend_names
from training.base import quotas
from training.base.errors import TutorError
from training.base.registry import ACTIVE, registry_for
from training.base.settings import get_settings
from training.evaluation.charts import loss_chart
from training.evaluation.held_out import Case
from training.jobs.events import Checkpoint, Eval, Event, Start, Status, Step
from training.local.estimate import GB
from training.local.estimate import PHRASES as ESTIMATE_PHRASES

UPDATE_EVERY = 0.4  # seconds between screen updates: a few a second, not one per event

log = logging.getLogger(__name__)


def backend_for(name: str, language: str = "en"):
    """A training backend this server offers and has configured, its texts in `language`; else a TutorError
    saying how to configure it."""
    backend = training_backend(name, get_settings(), language)
    if reason := backend.unavailable_reason():
        raise TutorError(reason + (f"\n\n_{notice}_" if (notice := backend.notice()) else ""))
    return backend


def form_values(backend: str) -> dict:
    """What the learner set in the settings form for this backend (checked when it was set)."""
    return (cl.user_session.get("training_form") or {}).get(backend, {})


def training_actions(dataset_id: str, language: str = "en") -> tuple[list[cl.Action], str]:
    """A button per available training backend under a prepared dataset, and how to enable the others."""
    settings = get_settings()
    actions, notes = [], []
    for name in training_backend_names():
        backend = training_backend(name, settings, language)
        if (reason := backend.unavailable_reason()) is None:
            actions.append(cl.Action(name="finetune", label=backend.button,
                                     payload={"backend": name, "dataset_id": dataset_id}))
        else:
            notes.append(reason + (f"\n\n_{notice}_" if (notice := backend.notice()) else ""))
    return actions, "\n\n".join(notes)


async def _dataset(dataset_id: str, learner: Learner) -> dict:
    dataset = await asyncio.to_thread(registry_for(get_settings()).dataset, dataset_id, learner.scope)
    if dataset is None:
        raise TutorError(text("train.not_your_dataset", session_language()))
    return dataset


async def offer_training(command: str = "") -> None:
    """/train [backend] [key=value ...]: check the settings, then pick one of the learner's prepared datasets."""
    learner = await current_learner()
    language = session_language()
    words = re.sub(r"^/train\b", "", (command or "").strip(), flags=re.I).split()
    name = words.pop(0).lower() if words and "=" not in words[0] else "local"
    backend = backend_for(name, language)
    typed = typed_settings(words, language)
    datasets = [d for d in await asyncio.to_thread(registry_for(get_settings()).datasets, learner.scope)
                if Path(d["files"].get("train", "")).is_file()][:5]
    if not datasets:
        await cl.Message(content=text("train.no_dataset", language)).send()
        return
    config, chosen = await asyncio.to_thread(backend.learner_settings, {**form_values(name), **typed},
                                             datasets[0]["files"])
    example = " ".join(f"{field}={default}" for field, default, _ in backend.form()[:4] if default is not None)
    intro = text("train.intro", language, button=backend.button, settings=backend.describe(config),
                 example=f"/train{'' if name == 'local' else ' ' + name} {example}")
    await cl.Message(content=intro, actions=[
        cl.Action(name="finetune", label=text("train.dataset_button", language, name=d["name"],
                                              count=d["report"].get("written", {}).get("train", "?")),
                  payload={"backend": name, "dataset_id": d["id"], "settings": chosen}) for d in datasets]).send()


async def _config(request: TrainRequest, learner: Learner, check: bool = True):
    backend = backend_for(request.backend, session_language())
    dataset = await _dataset(request.dataset_id, learner)
    config, chosen = await asyncio.to_thread(backend.learner_settings,  # its checks may load torch: off the loop
                                             {**form_values(request.backend), **request.settings}, dataset["files"])
    if check:  # the files read and validated (a big upload takes seconds): not again where `start` does it
        await asyncio.to_thread(backend.check, config)
    return backend, config, chosen


@action("finetune", TrainRequest)
async def on_finetune(request: TrainRequest, learner: Learner, _sent):
    """Start the job, or, where it is billed, show the settings and the estimate first: it starts on "Start"."""
    backend, config, chosen = await _config(request, learner)
    if (estimate := await asyncio.to_thread(backend.estimate, config)) is None:
        await _start(backend, config, learner)
        return
    notice = f"\n\n_{notice}_" if (notice := backend.notice()) else ""
    start = {"backend": request.backend, "dataset_id": request.dataset_id, "settings": chosen}
    language = backend.language
    await cl.Message(content=text("train.confirm", language, button=backend.button, settings=backend.describe(config),
                                  estimate=estimate, notice=notice),
                     actions=[cl.Action(name="start_training", label=text("train.start", language),
                                        payload=start)]).send()


@action("start_training", TrainRequest)
async def on_start_training(request: TrainRequest, learner: Learner, sent: cl.Action):
    await sent.remove()
    backend, config, _ = await _config(request, learner, check=False)  # start checks
    await _start(backend, config, learner)


# One lock per learner whose start is being checked and made now (held only then, so the map stays small): the
# queued-jobs quota is counted before the run is recorded, and two starts at once would both pass it.
_starting: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


async def _start(backend, config, learner: Learner) -> None:
    settings = get_settings()
    registry = registry_for(settings)

    def checked_start():  # the learner's quotas first: a refused run writes nothing
        quotas.check_start(settings, registry, learner.id, config, history.files_bytes(settings, learner.id),
                           backend.language)
        return backend.start(config, registry, learner.id)

    async with _starting.setdefault(learner.id, asyncio.Lock()):  # a double click can't pass the quota twice
        run = await asyncio.to_thread(checked_start)
    cl.user_session.set("training_job", asyncio.create_task(watch(run, backend.describe(config), backend.language)))


def form_fields(kept) -> dict:
    """A kept form (a resumed chat's) as the chat settings' values, `train.BACKEND.FIELD`."""
    if not isinstance(kept, dict):
        return {}
    return {f"train.{name}.{field}": value for name, values in kept.items() if isinstance(values, dict)
            for field, value in values.items()}


async def update_form(values: dict, quiet: bool = False) -> None:
    """The chat settings' training fields (`train.BACKEND.FIELD`): each backend's are checked as a whole and kept
    for its next job; a bad value is named (unless `quiet`) and the backend keeps its previous settings."""
    settings, kept = get_settings(), dict(cl.user_session.get("training_form") or {})
    language = session_language()
    for name in training_backend_names():
        prefix = f"train.{name}."
        given = {key[len(prefix):]: value for key, value in values.items() if key.startswith(prefix)}
        if not given:
            continue
        given = {key: value for key, value in given.items() if value not in (None, "")}
        backend = training_backend(name, settings, language)
        if backend.unavailable_reason():  # no form is shown for it
            continue
        try:
            await asyncio.to_thread(backend.learner_settings, given, {})
        except TutorError as exc:
            if not quiet:
                await cl.Message(content=text("train.bad_form", language, error=exc, backend=name)).send()
            continue
        kept[name] = given
    cl.user_session.set("training_form", kept)


def form_widgets(settings, kept: dict | None = None, language: str = "en") -> list:
    """One field per learner setting of each available backend, pre-filled with the learner's value (a resumed
    chat's) or its default, explained below."""
    from chainlit.input_widget import TextInput

    widgets = []
    for name in training_backend_names():
        backend = training_backend(name, settings, language)
        if backend.unavailable_reason() is None:
            values = (kept or {}).get(name, {})
            widgets += [TextInput(id=f"train.{name}.{field}", label=f"{backend.label}: {field}",
                                  initial=str(values.get(field, "" if default is None else default)),
                                  description=explanation)
                        for field, default, explanation in backend.form()]
    return widgets


@action("cancel_run", RunRef)
async def on_cancel_run(request: RunRef, learner: Learner, _sent):
    registry = registry_for(get_settings())
    run = await asyncio.to_thread(registry.run, request.run_id, learner.scope)
    language = session_language()
    if run is None:
        raise TutorError(text("train.run_left_alone", language))
    if run["status"] not in ACTIVE:
        return
    await cl.Message(content=text("train.stopping", language, run=run["id"])).send()
    await asyncio.to_thread(backend_of(run, get_settings()).cancel, run, registry)


async def resume_watching(learner: Learner) -> None:
    """Follow, in this chat, every run of the learner still queued or training (e.g. after a restart)."""
    registry = registry_for(get_settings())
    active = await asyncio.to_thread(registry.runs, learner.scope, ACTIVE)
    language = session_language()
    cl.user_session.set("watching", [asyncio.create_task(watch(run, text("train.picked_up", language), language))
                                     for run in active])


async def watch(run: dict, what: str, language: str = "en") -> None:
    """Show a run's progress, chart and summary in one message, from the run's shared follower."""
    settings = get_settings()
    registry = registry_for(settings)
    message = cl.Message(content=text("train.heading", language, run=run["id"], what=what) + " "
                         + text("train.starting", language),
                         actions=[cl.Action(name="cancel_run", payload={"run_id": run["id"]},
                                            label=text("train.cancel", language)),
                                  explain_action(run["id"], language)])  # the curve so far
    await message.send()
    state = {"steps": [], "evals": [], "last": None, "total": None, "status": None, "log": [], "checkpoints": []}
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
                record(state, event)
                pending = True
                if time.monotonic() - shown_at < UPDATE_EVERY or not events.empty():
                    continue
            await show(message, state, run, what, language)
            shown_at, pending = time.monotonic(), False
    finally:
        feed.unsubscribe(run["id"], events)
    await show(message, state, run, what, language)
    await message.remove_actions()
    finished = await asyncio.to_thread(registry.run, run["id"])
    callable_now = any(m["run_id"] == run["id"] for m in await asyncio.to_thread(registry.models))
    actions = model_actions(run["id"], language) if finished["status"] == "succeeded" and callable_now else []
    await cl.Message(content=summary(finished, language),
                     actions=actions + [explain_action(run["id"], language)]).send()


def model_actions(run_id: str, language: str = "en") -> list[cl.Action]:
    return [cl.Action(name="chat_with_model", payload={"run_id": run_id}, label=text("train.chat_with_it", language)),
            cl.Action(name="compare_model", payload={"run_id": run_id}, label=text("train.compare", language))]


def explain_action(run_id: str, language: str = "en") -> cl.Action:
    return cl.Action(name="explain_run", payload={"run_id": run_id}, label=text("explain.button", language))


# --- "Explain my run" ---------------------------------------------------------------------------

async def _own_run(run_id: str, learner: Learner) -> dict:
    run = await asyncio.to_thread(registry_for(get_settings()).run, run_id, learner.scope)
    if run is None:
        raise TutorError(text("train.not_your_run", session_language()))
    return run


async def guarded_phrasing(report: dict, chat, language: str) -> str | None:
    """The capable model's telling of the findings, or None (offline, refused or unreachable): the rules'
    own sentences are then the whole answer, so a dead server costs the learner nothing."""
    try:
        return await phrased(report, chat, language)
    except Exception as exc:  # noqa: BLE001 - any failure of the optional telling falls back to the rules
        log.warning("The chat model could not tell the run's findings: %s", type(exc).__name__)
        return None


@action("explain_run", RunRef)
async def on_explain_run(request: RunRef, learner: Learner, _sent):
    """What the run's own curve and evaluation show, each finding quoting the notes, and a button for the
    run the most urgent finding recommends."""
    run = await _own_run(request.run_id, learner)
    language = session_language()
    settings = get_settings()
    report = await asyncio.to_thread(explain, run, registry_for(settings), learner.scope, language)
    chat = create_backend(cl.user_session.get("backend") or settings.effective_backend, settings)
    told = await guarded_phrasing(report, chat, language)
    lines = [f"- {f['message']}\n  > {f['source']['quote']}\n  ({f['source']['path']} › {f['source']['heading']})"
             for f in report["findings"]] or [text("explain.nothing", language)]
    if told:  # the model's telling first; the rules' findings and quotes stay below it as its sources
        lines = [told, "", text("explain.sources", language)] + [
            f"[{i}] {line[2:]}" for i, line in enumerate(lines, 1)]
    if report["curve"]:
        lines = [report["curve"], ""] + lines
    else:
        lines.append(text("explain.no_curve", language))
    change = {key: value for key, value in report["next_settings"].items() if run["config"].get(key) != value}
    actions = []
    if change:
        lines.append(text("explain.next", language,
                          settings=", ".join(f"{key} **{value}**" for key, value in change.items())))
        actions = [cl.Action(name="start_recommended", payload={"run_id": run["id"]},
                             label=text("explain.start", language))]
    await cl.Message(content=text("explain.title", language, run=run["id"]) + "\n\n" + "\n".join(lines),
                     actions=actions).send()


@action("start_recommended", RunRef)
async def on_start_recommended(request: RunRef, learner: Learner, sent: cl.Action):
    """The recommended run, its settings worked out again here from the server's own records of the run."""
    await sent.remove()
    run = await _own_run(request.run_id, learner)
    settings = get_settings()
    language = session_language()
    report = await asyncio.to_thread(explain, run, registry_for(settings), learner.scope, language)
    if not report["next_settings"]:
        raise TutorError(text("explain.no_next", language))
    backend = backend_of(run, settings, language)
    config = backend.config(report["next_settings"])
    await asyncio.to_thread(backend.check, config)
    await _start(backend, config, learner)


async def record_deployment(command: str) -> None:
    """/deployed [RUN] NAME: the deployment the learner made of a finished fine-tune (Azure's portal, say)."""
    learner = await current_learner()
    language = session_language()
    words = re.sub(r"^/deployed\b", "", (command or "").strip(), flags=re.I).split()
    if not 1 <= len(words) <= 2:
        raise TutorError(text("deploy.usage", language))
    registry = registry_for(get_settings())
    if len(words) == 2:
        run = await asyncio.to_thread(registry.run, words[0], learner.scope)
    else:  # the learner's latest finished run that waits for a deployment
        waiting = [r for r in await asyncio.to_thread(registry.runs, learner.scope, ("succeeded",))
                   if r["metrics"].get("next_step")]
        run = waiting[0] if waiting else None
    if run is None:
        raise TutorError(text("deploy.none_waiting", language))
    run = await asyncio.to_thread(backend_of(run, get_settings(), language).deployed, run, registry, words[-1])
    await cl.Message(content=text("deploy.recorded", language, run=run["id"], name=words[-1]),
                     actions=model_actions(run["id"], language)).send()


def record(state: dict, event: Event) -> None:
    """Fold one typed event into the progress message's state, by its type."""
    if isinstance(event, Start):
        state["total"] = event.total_steps or state["total"]
    elif isinstance(event, Step):
        state["steps"].append((event.step, event.loss))
        state["last"] = event
    elif isinstance(event, Eval):
        state["evals"].append((event.step, event.val_loss))
        state["eval"] = event
    elif isinstance(event, Status):
        if event.status:
            state["status"] = event
        if event.message:
            state["log"] = (state["log"] + [event.message])[-5:]
    elif isinstance(event, Checkpoint):
        state["checkpoints"].append(event.label)
        state["checkpoint"] = event  # the latest, named in the chat's language


def status_word(status: str | None, language: str = "en") -> str:
    """A run's status in `language` (a provider's own status word as it is)."""
    return text(f"status.{status}", language) if f"status.{status}" in CATALOG["en"] else str(status)


def status_line(event: Status, language: str = "en") -> str:
    if event.status == "queued" and event.position:
        ahead = event.position - 1
        return text("train.queued", language, position=event.position, length=event.queue_length,
                    ahead=text("train.ahead", language, count=ahead) if ahead else text("train.next", language))
    return text("train.status", language, status=status_word(event.status, language))


async def show(message: cl.Message, state: dict, run: dict, what: str, language: str = "en") -> None:
    last, evaluation = state["last"], state.get("eval")
    lines = [text("train.heading", language, run=run["id"], what=what)]
    if state["status"]:
        lines.append(status_line(state["status"], language))
    if last:
        lines.append(" · ".join(last.progress(bold="**", language=language)))
    if evaluation:
        lines.append(text("train.validation", language, loss=evaluation.val_loss,
                          accuracy=evaluation.val_token_accuracy or 0, step=evaluation.step))
    if state["checkpoints"]:
        lines.append(text("train.checkpoints", language, count=len(state["checkpoints"]),
                          latest=state["checkpoint"].label_in(language)))
    if state["log"]:
        lines.append("\n".join(f"> {line}" for line in state["log"]))
    message.content = "\n\n".join(lines)
    await message.update()
    if state["steps"]:
        chart = cl.Plotly(name="loss", figure=loss_chart(state["steps"], state["evals"], state["total"], language),
                          display="inline", id=f"loss-{run['id']}")
        chart.updatable = True  # same id: the chart is replaced in place as it grows
        await chart.send(for_id=message.id)


METRICS = {  # a finished run's metrics, as the summary shows them (named by the catalog's "metric.KEY"; a shape
    # that is a catalog key is one with words in it)
    "fine_tuned_model": "`{}`", "deployment": "`{}`", "final_loss": "{:.4f}", "val_loss": "{:.4f}",
    "val_token_accuracy": "{:.1%}", "val_f1": "{:.3f}", "train_seconds": "metric.seconds", "tokens_trained": "{:,}",
    "trained_tokens": "{:,}"}


def summary(run: dict, language: str = "en") -> str:
    """A finished run in a few lines: its metrics as a table, then what its backend says of its result."""
    backend = backend_of(run, get_settings(), language)
    note = backend.describe_result(run)
    status = status_word(run["status"], language)
    if run["status"] == "cancelled":
        return text("summary.cancelled", language, run=run["id"], note=note).rstrip()
    if run["status"] != "succeeded":
        return text("summary.ended_note" if note else "summary.ended", language, run=run["id"], status=status,
                    note=note)
    shapes = {key: text(shape, language) if shape in CATALOG["en"] else shape for key, shape in METRICS.items()}
    rows = [(text(f"metric.{key}", language), shape.format(run["metrics"][key])) for key, shape in shapes.items()
            if run["metrics"].get(key) is not None]
    table = (text("summary.table", language) + "\n| --- | --- |\n"
             + "\n".join(f"| {label} | {value} |" for label, value in rows))
    return text("summary.title", language, run=run["id"], label=backend.label) + f"\n\n{table}\n\n" + \
        "".join(f"{line}\n\n" for line in [against_estimate(run["metrics"], language)] if line) + note


def against_estimate(metrics: dict, language: str = "en") -> str | None:
    """A local run's measured peak memory and training time beside what was estimated before Start."""
    if not metrics.get("peak_memory_bytes") or not metrics.get("estimated_peak_memory_bytes"):
        return None
    estimated_seconds = metrics.get("estimated_train_seconds")
    return ESTIMATE_PHRASES("measured" if estimated_seconds else "measured_memory", language,
                            peak=metrics["peak_memory_bytes"] / GB, estimate=metrics["estimated_peak_memory_bytes"] / GB,
                            seconds=metrics["train_seconds"], estimated_seconds=estimated_seconds)


# --- "Chat with it" -----------------------------------------------------------------------------

@action("chat_with_model", RunRef)
async def on_chat_with_model(request: RunRef, learner: Learner, _sent):
    language = session_language()
    model = await asyncio.to_thread(model_for_run, registry_for(get_settings()), request.run_id, learner.scope,
                                    language)
    cl.user_session.set("chat_model", {"id": model["run_id"], "model": model})
    cl.user_session.set("ab", None)
    await cl.Message(content=text("chat.now", language, run=model["run_id"])).send()


async def answer_with_model(prompt: str) -> None:
    """Stream the fine-tuned model's answer to one message (the recipe task's system prompt)."""
    run = cl.user_session.get("chat_model")
    language = session_language()
    if problem := too_long(prompt, language):
        await cl.Message(content=problem).send()
        return
    contender = fine_tuned(run["model"], get_settings(), language)
    message = cl.Message(content="", author=contender.label)
    try:
        async for piece in contender.stream(Case(prompt=prompt, gold=[]), Usage()):
            await message.stream_token(piece)
    except TutorError as exc:
        await message.stream_token(f"⚠️ {exc}")
    await message.send()
