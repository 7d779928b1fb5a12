"""Chat handlers for fine-tuning: start a job on any training backend, cancel it, explain it, chat with its model.

Thin, and the same for every backend (training.backends.registry): a button per available backend, its settings from
the chat settings form or `/train BACKEND key=value`, its cost estimate to confirm where the job is billed.
Buttons carry a backend's name, a dataset or run id and typed settings only; the settings are checked by the
backend's Config, each id is looked up for the learner. A started run is watched live by assistant/chat/run_view.py
(its watch, summary and buttons).
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from pathlib import Path

import chainlit as cl

from assistant.chat.actions import RunRef, TrainRequest, action, current_learner, typed_settings
from assistant.chat.run_view import model_actions, watch
from assistant.i18n import session_language, text
from assistant.inference.backends import create_backend
from assistant.inference.engine import Usage
from assistant.tutor.contenders import fine_tuned, model_for_run, too_long
from assistant.tutor.explain import explain, phrased
from assistant.web import history
from assistant.web.accounts import Learner
from training.backends.registry import backend_of, training_backend, training_backend_names
from training.base import quotas
from training.base.errors import TutorError
from training.base.records import Dataset, Run
from training.base.registry import ACTIVE, registry_for
from training.base.settings import get_settings
from training.evaluation.held_out import Case

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


async def _dataset(dataset_id: str, learner: Learner) -> Dataset:
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
                if Path(d.files.get("train", "")).is_file()][:5]
    if not datasets:
        await cl.Message(content=text("train.no_dataset", language)).send()
        return
    config, chosen = await asyncio.to_thread(backend.learner_settings, {**form_values(name), **typed},
                                             datasets[0].files)
    example = " ".join(f"{field}={default}" for field, default, _ in backend.form()[:4] if default is not None)
    intro = text("train.intro", language, button=backend.button, settings=backend.describe(config),
                 example=f"/train{'' if name == 'local' else ' ' + name} {example}")
    await cl.Message(content=intro, actions=[
        cl.Action(name="finetune", label=text("train.dataset_button", language, name=d.name,
                                              count=d.report.get("written", {}).get("train", "?")),
                  payload={"backend": name, "dataset_id": d.id, "settings": chosen}) for d in datasets]).send()


async def _config(request: TrainRequest, learner: Learner, check: bool = True):
    backend = backend_for(request.backend, session_language())
    dataset = await _dataset(request.dataset_id, learner)
    config, chosen = await asyncio.to_thread(backend.learner_settings,  # its checks may load torch: off the loop
                                             {**form_values(request.backend), **request.settings}, dataset.files)
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
    if run.status not in ACTIVE:
        return
    await cl.Message(content=text("train.stopping", language, run=run.id)).send()
    await asyncio.to_thread(backend_of(run, get_settings()).cancel, run, registry)


# --- "Explain my run" ---------------------------------------------------------------------------

async def _own_run(run_id: str, learner: Learner) -> Run:
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
    change = {key: value for key, value in report["next_settings"].items() if run.config.get(key) != value}
    actions = []
    if change:
        lines.append(text("explain.next", language,
                          settings=", ".join(f"{key} **{value}**" for key, value in change.items())))
        actions = [cl.Action(name="start_recommended", payload={"run_id": run.id},
                             label=text("explain.start", language))]
    await cl.Message(content=text("explain.title", language, run=run.id) + "\n\n" + "\n".join(lines),
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
                   if r.metrics.get("next_step")]
        run = waiting[0] if waiting else None
    if run is None:
        raise TutorError(text("deploy.none_waiting", language))
    run = await asyncio.to_thread(backend_of(run, get_settings(), language).deployed, run, registry, words[-1])
    await cl.Message(content=text("deploy.recorded", language, run=run.id, name=words[-1]),
                     actions=model_actions(run.id, language)).send()


# --- "Chat with it" -----------------------------------------------------------------------------

@action("chat_with_model", RunRef)
async def on_chat_with_model(request: RunRef, learner: Learner, _sent):
    language = session_language()
    model = await asyncio.to_thread(model_for_run, registry_for(get_settings()), request.run_id, learner.scope,
                                    language)
    cl.user_session.set("chat_model", {"id": model.run_id, "model": model})
    cl.user_session.set("ab", None)
    await cl.Message(content=text("chat.now", language, run=model.run_id)).send()


async def answer_with_model(prompt: str) -> None:
    """Stream the fine-tuned model's answer to one message (the recipe task's system prompt)."""
    chosen = cl.user_session.get("chat_model")
    language = session_language()
    if problem := too_long(prompt, language):
        await cl.Message(content=problem).send()
        return
    contender = fine_tuned(chosen["model"], get_settings(), language)
    message = cl.Message(content="", author=contender.label)
    try:
        async for piece in contender.stream(Case(prompt=prompt, gold=[]), Usage()):
            await message.stream_token(piece)
    except TutorError as exc:
        await message.stream_token(f"⚠️ {exc}")
    await message.send()
