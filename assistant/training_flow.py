"""Chat handlers for fine-tuning: start a job on any training backend, watch it live, cancel it, see its summary.

Thin, and the same for every backend (training.backends): a button per available backend, its settings from
the chat settings form or `/train BACKEND key=value`, its cost estimate to confirm where the job is billed.
A chat watches a run through the shared follower (assistant.run_feed) and updates one message and one loss
chart a few times a second. Buttons carry a backend's name, a dataset or run id and typed settings only; the
settings are checked by the backend's config, each id is looked up for the learner. Runs still active when a
chat opens (the app restarted, say) are picked up and followed again.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import chainlit as cl

from assistant.accounts import Learner
from assistant.actions import RunRef, TrainRequest, action, current_learner, typed_settings
from assistant.contenders import fine_tuned, model_for_run, too_long
from assistant.explain import explain
from assistant.generation import Usage
from assistant.run_feed import feed
from training.backends import backend_of, training_backend, training_backend_names
from training.charts import loss_chart
from training.errors import TutorError
from training.evaluation import Case
from training.events import Checkpoint, Eval, Event, Start, Status, Step
from training.registry import ACTIVE, registry_for
from training.settings import get_settings

UPDATE_EVERY = 0.4  # seconds between screen updates: a few a second, not one per event


def backend_for(name: str):
    """A training backend this server offers and has configured; else a TutorError saying how to configure it."""
    backend = training_backend(name, get_settings())
    if reason := backend.unavailable_reason():
        raise TutorError(reason + (f"\n\n_{notice}_" if (notice := backend.notice()) else ""))
    return backend


def form_values(backend: str) -> dict:
    """What the learner set in the settings form for this backend (checked when it was set)."""
    return (cl.user_session.get("training_form") or {}).get(backend, {})


def training_actions(dataset_id: str) -> tuple[list[cl.Action], str]:
    """A button per available training backend under a prepared dataset, and how to enable the others."""
    settings = get_settings()
    actions, notes = [], []
    for name in training_backend_names():
        backend = training_backend(name, settings)
        if (reason := backend.unavailable_reason()) is None:
            actions.append(cl.Action(name="finetune", label=backend.button,
                                     payload={"backend": name, "dataset_id": dataset_id}))
        else:
            notes.append(reason + (f"\n\n_{notice}_" if (notice := backend.notice()) else ""))
    return actions, "\n\n".join(notes)


async def _dataset(dataset_id: str, learner: Learner) -> dict:
    dataset = await asyncio.to_thread(registry_for(get_settings()).dataset, dataset_id, learner.scope)
    if dataset is None:
        raise TutorError("That dataset is not among yours (it may have been made in another account). "
                         "Type `/train` to pick one of yours.")
    return dataset


async def offer_training(text: str = "") -> None:
    """/train [backend] [key=value ...]: check the settings, then pick one of the learner's prepared datasets."""
    learner = await current_learner()
    words = re.sub(r"^/train\b", "", (text or "").strip(), flags=re.I).split()
    name = words.pop(0).lower() if words and "=" not in words[0] else "local"
    backend = backend_for(name)
    typed = typed_settings(words)
    datasets = [d for d in await asyncio.to_thread(registry_for(get_settings()).datasets, learner.scope)
                if Path(d["files"].get("train", "")).is_file()][:5]
    if not datasets:
        await cl.Message(content="No prepared dataset yet. Type `/prepare` first, then come back with `/train`.").send()
        return
    config, chosen = backend.learner_settings({**form_values(name), **typed}, datasets[0]["files"])
    example = " ".join(f"{field}={default}" for field, default, _ in backend.form()[:4] if default is not None)
    intro = (f"**{backend.button}.** Settings: {backend.describe(config)}. Change them in the chat settings (⚙️), "
             f"or type them, like `/train{'' if name == 'local' else ' ' + name} {example}`. Pick a dataset:")
    await cl.Message(content=intro, actions=[
        cl.Action(name="finetune", label=f"{d['name']} ({d['report'].get('written', {}).get('train', '?')} examples)",
                  payload={"backend": name, "dataset_id": d["id"], "settings": chosen}) for d in datasets]).send()


async def _config(request: TrainRequest, learner: Learner, check: bool = True):
    backend = backend_for(request.backend)
    dataset = await _dataset(request.dataset_id, learner)
    config, chosen = backend.learner_settings({**form_values(request.backend), **request.settings}, dataset["files"])
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
    await cl.Message(content=f"**{backend.button}**: {backend.describe(config)}.\n\n{estimate}{notice}\n\nStart?",
                     actions=[cl.Action(name="start_training", label="Start", payload=start)]).send()


@action("start_training", TrainRequest)
async def on_start_training(request: TrainRequest, learner: Learner, sent: cl.Action):
    await sent.remove()
    backend, config, _ = await _config(request, learner, check=False)  # start checks
    await _start(backend, config, learner)


async def _start(backend, config, learner: Learner) -> None:
    run = await asyncio.to_thread(backend.start, config, registry_for(get_settings()), learner.name)
    cl.user_session.set("training_job", asyncio.create_task(watch(run, backend.describe(config))))


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
    for name in training_backend_names():
        prefix = f"train.{name}."
        given = {key[len(prefix):]: value for key, value in values.items() if key.startswith(prefix)}
        if not given:
            continue
        given = {key: value for key, value in given.items() if value not in (None, "")}
        backend = training_backend(name, settings)
        if backend.unavailable_reason():  # no form is shown for it
            continue
        try:
            backend.learner_settings(given, {})
        except TutorError as exc:
            if not quiet:
                await cl.Message(content=f"⚠️ {exc} The other {name} settings stay as they were.").send()
            continue
        kept[name] = given
    cl.user_session.set("training_form", kept)


def form_widgets(settings, kept: dict | None = None) -> list:
    """One field per learner setting of each available backend, pre-filled with the learner's value (a resumed
    chat's) or its default, explained below."""
    from chainlit.input_widget import TextInput

    widgets = []
    for name in training_backend_names():
        backend = training_backend(name, settings)
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
    if run is None:
        raise TutorError("That run is not among yours, so it was left alone.")
    if run["status"] not in ACTIVE:
        return
    await cl.Message(content=f"Stopping `{run['id']}`...").send()
    await asyncio.to_thread(backend_of(run, get_settings()).cancel, run, registry)


async def resume_watching(learner: Learner) -> None:
    """Follow, in this chat, every run of the learner still queued or training (e.g. after a restart)."""
    registry = registry_for(get_settings())
    active = await asyncio.to_thread(registry.runs, learner.scope, ACTIVE)
    cl.user_session.set("watching", [asyncio.create_task(watch(run, "picked up after a restart")) for run in active])


async def watch(run: dict, what: str) -> None:
    """Show a run's progress, chart and summary in one message, from the run's shared follower."""
    settings = get_settings()
    registry = registry_for(settings)
    message = cl.Message(content=f"**Training `{run['id']}`**: {what}. Starting...",
                         actions=[cl.Action(name="cancel_run", payload={"run_id": run["id"]}, label="Cancel")])
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
            await show(message, state, run, what)
            shown_at, pending = time.monotonic(), False
    finally:
        feed.unsubscribe(run["id"], events)
    await show(message, state, run, what)
    await message.remove_actions()
    finished = await asyncio.to_thread(registry.run, run["id"])
    callable_now = any(m["run_id"] == run["id"] for m in await asyncio.to_thread(registry.models))
    actions = model_actions(run["id"]) if finished["status"] == "succeeded" and callable_now else []
    await cl.Message(content=summary(finished), actions=actions + [explain_action(run["id"])]).send()


def model_actions(run_id: str) -> list[cl.Action]:
    return [cl.Action(name="chat_with_model", payload={"run_id": run_id}, label="Chat with it"),
            cl.Action(name="compare_model", payload={"run_id": run_id}, label="Compare with RAG baseline")]


def explain_action(run_id: str) -> cl.Action:
    return cl.Action(name="explain_run", payload={"run_id": run_id}, label="Explain my run")


# --- "Explain my run" ---------------------------------------------------------------------------

async def _own_run(run_id: str, learner: Learner) -> dict:
    run = await asyncio.to_thread(registry_for(get_settings()).run, run_id, learner.scope)
    if run is None:
        raise TutorError("That run is not among yours.")
    return run


@action("explain_run", RunRef)
async def on_explain_run(request: RunRef, learner: Learner, _sent):
    """What the run's own curve and evaluation show, each finding quoting the notes, and a button for the
    run the most urgent finding recommends."""
    run = await _own_run(request.run_id, learner)
    report = await asyncio.to_thread(explain, run, registry_for(get_settings()), learner.scope)
    lines = [f"- {f['message']}\n  > {f['source']['quote']}\n  ({f['source']['path']} › {f['source']['heading']})"
             for f in report["findings"]] or ["No rule found a problem in this run's curve or evaluation."]
    if not report["curve"]:
        lines.append("_This app has no loss curve of this run (a hosted job's stays with its provider): only its "
                     "evaluation is read._")
    change = {key: value for key, value in report["next_settings"].items() if run["config"].get(key) != value}
    actions = []
    if change:
        lines.append("**Next run to try:** " + ", ".join(f"{key} **{value}**" for key, value in change.items()))
        actions = [cl.Action(name="start_recommended", payload={"run_id": run["id"]}, label="Start that run")]
    await cl.Message(content=f"**What `{run['id']}` shows**\n\n" + "\n".join(lines), actions=actions).send()


@action("start_recommended", RunRef)
async def on_start_recommended(request: RunRef, learner: Learner, sent: cl.Action):
    """The recommended run, its settings worked out again here from the server's own records of the run."""
    await sent.remove()
    run = await _own_run(request.run_id, learner)
    settings = get_settings()
    report = await asyncio.to_thread(explain, run, registry_for(settings), learner.scope)
    if not report["next_settings"]:
        raise TutorError("This run has no recommended next run any more.")
    backend = backend_of(run, settings)
    config = backend.config(report["next_settings"])
    await asyncio.to_thread(backend.check, config)
    await _start(backend, config, learner)


async def record_deployment(text: str) -> None:
    """/deployed [RUN] NAME: the deployment the learner made of a finished fine-tune (Azure's portal, say)."""
    learner = await current_learner()
    words = re.sub(r"^/deployed\b", "", (text or "").strip(), flags=re.I).split()
    if not 1 <= len(words) <= 2:
        raise TutorError("Name the deployment: `/deployed NAME`, or `/deployed RUN NAME` for an older run.")
    registry = registry_for(get_settings())
    if len(words) == 2:
        run = await asyncio.to_thread(registry.run, words[0], learner.scope)
    else:  # the learner's latest finished run that waits for a deployment
        waiting = [r for r in await asyncio.to_thread(registry.runs, learner.scope, ("succeeded",))
                   if r["metrics"].get("next_step")]
        run = waiting[0] if waiting else None
    if run is None:
        raise TutorError("I found no finished fine-tune of yours waiting for a deployment.")
    run = await asyncio.to_thread(backend_of(run, get_settings()).deployed, run, registry, words[-1])
    await cl.Message(content=f"Recorded: `{run['id']}` answers through the deployment `{words[-1]}`.",
                     actions=model_actions(run["id"])).send()


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


def status_line(event: Status) -> str:
    if event.status == "queued" and event.position:
        ahead = event.position - 1
        return (f"status **queued**: position **{event.position} of {event.queue_length}** "
                f"({'next' if not ahead else f'{ahead} ahead'}); it starts when a trainer is free")
    return f"status **{event.status}**"


async def show(message: cl.Message, state: dict, run: dict, what: str) -> None:
    last, evaluation = state["last"], state.get("eval")
    lines = [f"**Training `{run['id']}`**: {what}."]
    if state["status"]:
        lines.append(status_line(state["status"]))
    if last:
        lines.append(" · ".join(last.progress(bold="**")))
    if evaluation:
        lines.append(f"validation loss **{evaluation.val_loss:.4f}** · token accuracy "
                     f"**{(evaluation.val_token_accuracy or 0):.1%}** (step {evaluation.step})")
    if state["checkpoints"]:
        lines.append(f"checkpoints: {len(state['checkpoints'])}, latest `{state['checkpoints'][-1]}`")
    if state["log"]:
        lines.append("\n".join(f"> {line}" for line in state["log"]))
    message.content = "\n\n".join(lines)
    await message.update()
    if state["steps"]:
        chart = cl.Plotly(name="loss", figure=loss_chart(state["steps"], state["evals"], state["total"]),
                          display="inline", id=f"loss-{run['id']}")
        chart.updatable = True  # same id: the chart is replaced in place as it grows
        await chart.send(for_id=message.id)


METRICS = {  # a finished run's metrics, as the summary names and shows them
    "fine_tuned_model": ("fine-tuned model", "`{}`"), "deployment": ("deployment", "`{}`"),
    "final_loss": ("final training loss", "{:.4f}"), "val_loss": ("validation loss", "{:.4f}"),
    "val_token_accuracy": ("validation token accuracy", "{:.1%}"),
    "val_f1": ("validation F1 (ingredient lists)", "{:.3f}"), "train_seconds": ("time", "{:.0f} s"),
    "tokens_trained": ("tokens trained", "{:,}"), "trained_tokens": ("trained tokens", "{:,}")}


def summary(run: dict) -> str:
    """A finished run in a few lines: its metrics as a table, then what its backend says of its result."""
    backend = backend_of(run, get_settings())
    note = backend.describe_result(run)
    if run["status"] == "cancelled":
        return f"⏹️ `{run['id']}` was cancelled. {note}".rstrip()
    if run["status"] != "succeeded":
        return f"⚠️ `{run['id']}` {run['status']}: {note}" if note else f"⚠️ `{run['id']}` {run['status']}."
    rows = [(label, shape.format(run["metrics"][key])) for key, (label, shape) in METRICS.items()
            if run["metrics"].get(key) is not None]
    table = "| metric | value |\n| --- | --- |\n" + "\n".join(f"| {label} | {value} |" for label, value in rows)
    return f"### ✅ Fine-tuned `{run['id']}` with {backend.label}\n\n{table}\n\n{note}"


# --- "Chat with it" -----------------------------------------------------------------------------

@action("chat_with_model", RunRef)
async def on_chat_with_model(request: RunRef, learner: Learner, _sent):
    model = await asyncio.to_thread(model_for_run, registry_for(get_settings()), request.run_id, learner.scope)
    cl.user_session.set("chat_model", {"id": model["run_id"], "model": model})
    cl.user_session.set("ab", None)
    await cl.Message(content=(f"You are now chatting with the fine-tuned `{model['run_id']}`, a recipe assistant. Send "
                              "a recipe as it was trained, e.g.\n\n`Title: Pancakes\n\nIngredients: [\"1 c. flour\", "
                              "\"2 eggs\", \"1 c. milk\"]\n\nGeneric ingredients: `\n\nType `/tutor` to go back to the tutor.")).send()


async def answer_with_model(text: str) -> None:
    """Stream the fine-tuned model's answer to one message (the recipe task's system prompt)."""
    run = cl.user_session.get("chat_model")
    if problem := too_long(text):
        await cl.Message(content=problem).send()
        return
    message = cl.Message(content="", author=f"fine-tuned {run['id']}")
    contender = fine_tuned(run["model"], get_settings())
    try:
        async for piece in contender.stream(Case(prompt=text, gold=[]), Usage()):
            await message.stream_token(piece)
    except TutorError as exc:
        await message.stream_token(f"⚠️ {exc}")
    await message.send()
