"""Chat handlers for choosing a base model: `/models` lists what this server offers (training/local/catalog.py) with each
model's size, license, gate and the estimate for this machine; a button (or `/models OWNER/NAME` in local mode)
picks one, downloads it with live progress when it isn't here yet (training/models/hub.py: a child process followed
asynchronously, so no learner waits on another's download), then offers to fine-tune it on the learner's dataset.

Thin: a button carries a model id only, checked again on the server (`catalog.allowed`): in shared mode only the
instructor's models, whatever a client sends.
"""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import aclosing
from pathlib import Path

import chainlit as cl

from assistant.chat.actions import ModelRequest, action, current_learner, guarded
from assistant.i18n import session_language, text
from assistant.web.accounts import Learner
from training.base.errors import TutorError
from training.base.registry import registry_for
from training.base.settings import get_settings
from training.local import catalog
from training.models.hub import Done, Failed, HubRequest, Progress, fetch

UPDATE_EVERY = 0.3  # seconds between progress redraws


async def latest_train_file(learner: Learner) -> str | None:
    datasets = await asyncio.to_thread(registry_for(get_settings()).datasets, learner.scope)
    return next((d.files["train"] for d in datasets if Path(d.files.get("train", "")).is_file()), None)


def describe(offer: catalog.Offer, language: str) -> str:
    """One line per model: size, license, gate, here or to download, and its estimate for this machine."""
    facts = [text("models.parameters", language, billions=offer.parameters / 1e9)] if offer.parameters else []
    facts += [offer.license] if offer.license else []
    facts += [text("models.gated", language)] if offer.gated else []
    facts.append(text("models.here", language) if offer.downloaded else
                 text("models.to_download", language, size=(offer.download_bytes or 0) / 1e9))  # as the Hub counts
    line = f"- **{offer.label}**: " + ", ".join(facts)
    if offer.estimate is not None:
        line += "\n  " + offer.estimate.describe(language)
    return line + (f"\n  _{offer.note}_" if offer.note else "")


async def offer_models(command: str = "") -> None:
    """/models [OWNER/NAME]: the list with a button each, or straight to the named model."""
    learner = await current_learner()
    language = session_language()
    typed = re.sub(r"^/models\b", "", (command or "").strip(), flags=re.I).strip()
    if typed:
        await choose(typed, learner)
        return
    settings = get_settings()
    online = await asyncio.to_thread(catalog.hub_reachable)
    train_file = await latest_train_file(learner)
    offers = await asyncio.to_thread(catalog.offered, settings, online, train_file, language)
    lines = [text("models.title", language)]
    if not online:
        lines.append(text("models.offline", language))
    if catalog.shared(settings):
        lines.append(text("models.shared", language))
    elif online:
        lines.append(text("models.type_any", language))
    if not train_file:
        lines.append(text("models.no_dataset", language))
    lines += [describe(offer, language) for offer in offers]
    await cl.Message(content="\n\n".join(lines), actions=[
        cl.Action(name="choose_model", payload={"model": offer.label}, label=text("models.use", language, name=offer.label))
        for offer in offers]).send()


@action("choose_model", ModelRequest)
async def on_choose_model(request: ModelRequest, learner: Learner, _sent):
    # An action runs inside an HTTP request: a download may take minutes, so it goes on in a task.
    cl.user_session.set("model_job", asyncio.create_task(guarded(choose(request.model, learner), "Choosing a model")))


async def choose(name: str, learner: Learner) -> None:
    """Check the choice, download it if needed (with progress), then offer to fine-tune it."""
    settings, language = get_settings(), session_language()
    model_id = catalog.allowed(settings, name, language)
    if not await asyncio.to_thread(catalog.on_disk, model_id):
        if not await asyncio.to_thread(catalog.hub_reachable):
            raise TutorError(text("models.cannot_download", language, model=model_id))
        await download(model_id, language)
    datasets = await asyncio.to_thread(registry_for(settings).datasets, learner.scope)
    ready = [d for d in datasets if Path(d.files.get("train", "")).is_file()][:3]
    actions = [cl.Action(name="finetune", label=text("models.finetune", language, name=d.name),
                         payload={"backend": "local", "dataset_id": d.id, "settings": {"base": name}})
               for d in ready]
    await cl.Message(content=text("models.ready" if ready else "models.ready_no_dataset", language, model=model_id),
                     actions=actions).send()


async def download(model_id: str, language: str) -> None:
    """The model into the HF cache, a progress line redrawn a few times a second; a failure is one sentence."""
    message = cl.Message(content=text("models.downloading", language, model=model_id, bar="", done=0, total=0))
    await message.send()
    shown = 0.0
    async with aclosing(fetch(HubRequest(kind="model", repo_id=model_id))) as events:
        async for event in events:
            if isinstance(event, Failed):  # the sentence is shown once, by the caller, in place of the progress
                await message.remove()
                raise TutorError(event.message(language))
            if isinstance(event, Progress) and (time.monotonic() - shown >= UPDATE_EVERY or event.downloaded == event.total):
                fraction = event.downloaded / event.total if event.total else 0.0
                message.content = text("models.downloading", language, model=model_id, bar=bar(fraction),
                                       done=event.downloaded / 1e6, total=(event.total or 0) / 1e6)
                await message.update()
                shown = time.monotonic()
            if isinstance(event, Done):
                message.content = text("models.downloaded", language, model=model_id)
                await message.update()


def bar(fraction: float, width: int = 20) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "▓" * filled + "░" * (width - filled) + f" {fraction:.0%}"
