"""Chat handlers for fine-tuning: start a local LoRA or an OpenAI job, watch it live, cancel it, see its summary.

Thin: local jobs queue and run in their own process (training.jobs, training.queue); a chat watches a run
through the shared follower (assistant.run_feed) and updates one message and one loss chart a few times a
second. Buttons carry a dataset or run id and typed settings only; each id is looked up for the learner.
Runs still active when a chat opens (the app restarted, say) are picked up and followed again.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import chainlit as cl

from assistant.accounts import Learner
from assistant.actions import (
    HOSTED_SETTINGS,
    LOCAL_SETTINGS,
    HostedTrainRequest,
    LocalTrainRequest,
    RunRef,
    action,
    current_learner,
)
from assistant.contenders import fine_tuned, model_for_run, too_long
from assistant.generation import Usage
from assistant.run_feed import feed
from training import jobs
from training.backends import training_backend
from training.charts import loss_chart
from training.clients import server_label
from training.config import TrainConfig
from training.errors import TutorError
from training.evaluation import Case
from training.events import Checkpoint, Eval, Start, Status, Step
from training.events import parse as parse_event
from training.models import display_name
from training.openai_jobs import WIND_DOWN, OpenAIJobConfig
from training.registry import ACTIVE, registry_for
from training.settings import Settings, get_settings

UPDATE_EVERY = 0.4  # seconds between screen updates: a few a second, not one per event
_SETTING = re.compile(r"\b([a-z_]+)\s*=\s*(\S+)")
LOCAL_ALIASES = {"lr": "learning_rate", "r": "lora_r", "alpha": "lora_alpha", "dropout": "lora_dropout",
                 "grad_accum": "gradient_accumulation", "modules": "target_modules"}
HOSTED_ALIASES = {"epochs": "n_epochs", "lr_multiplier": "learning_rate_multiplier"}


def _typed(value: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def parse_settings(text: str, hosted: bool = False) -> dict:
    """Typed overrides from '/train epochs=2 lr=1e-3 r=16' (or '/train openai epochs=3 lr_multiplier=2');
    an unknown name is a TutorError that lists the known ones. Values are checked by the config."""
    aliases, known = (HOSTED_ALIASES, HOSTED_SETTINGS) if hosted else (LOCAL_ALIASES, LOCAL_SETTINGS)
    settings = {}
    for key, value in _SETTING.findall(text or ""):
        name = aliases.get(key, key)
        if name not in known:
            raise TutorError(f"I don't know the setting `{key}`. You can set: "
                             f"{', '.join(sorted(set(aliases) | known - set(aliases.values())))}.")
        settings[name] = _typed(value) if name not in ("model", "suffix", "base") else value
    return settings


def base_choices(settings: Settings) -> dict[str, str]:
    """The base models a learner may pick by name (`base=NAME`): the configured one and TUTOR_TRAIN_BASE_MODELS.
    A name is all a client ever sends; the server maps it to the model's id or folder."""
    return {display_name(model): model for model in [settings.base_model, *settings.train_base_models]}


def local_config(dataset: dict, overrides: dict, settings: Settings) -> TrainConfig:
    values = dict(overrides)
    choices = base_choices(settings)
    base = values.pop("base", None)
    if base is not None and base not in choices:
        raise TutorError(f"`{base}` is not a base model here; choose one of: {', '.join(choices)}.")
    return TrainConfig(train_file=dataset["files"].get("train", ""), validation_file=dataset["files"].get("validation"),
                       base_model=choices[base] if base else settings.base_model, **values)


def hosted_config(dataset: dict, overrides: dict) -> OpenAIJobConfig:
    return OpenAIJobConfig(train_file=dataset["files"].get("train", ""),
                           validation_file=dataset["files"].get("validation"), **overrides)


def describe(config: TrainConfig) -> str:
    modules = config.target_modules if isinstance(config.target_modules, str) else ",".join(config.target_modules)
    return (f"base **{display_name(config.base_model)}**, {config.epochs:g} epochs, lr {config.learning_rate:g}, LoRA r {config.lora_r} / "
            f"alpha {config.lora_alpha} / dropout {config.lora_dropout:g} on {modules}, max length "
            f"{config.max_length}, batch {config.batch_size} x {config.gradient_accumulation}, seed {config.seed}")


def describe_openai(config: OpenAIJobConfig) -> str:
    return (f"base **{config.model}**, suffix {config.suffix or '(none)'}, epochs {config.n_epochs}, batch size "
            f"{config.batch_size}, learning-rate multiplier {config.learning_rate_multiplier}")


def openai_ready() -> str | None:
    """None when OpenAI fine-tuning is configured, else how to configure it."""
    if (reason := training_backend("openai", get_settings()).unavailable_reason()) is None:
        return None
    return f"{reason}\n\n_{WIND_DOWN}_"


def training_actions(dataset_id: str) -> tuple[list[cl.Action], str]:
    """The buttons under a prepared dataset, and a note when OpenAI is not configured."""
    actions = [cl.Action(name="finetune_local", label="Fine-tune locally", payload={"dataset_id": dataset_id})]
    if (reason := openai_ready()) is None:
        actions.append(cl.Action(name="finetune_openai", label="Fine-tune with OpenAI",
                                 payload={"dataset_id": dataset_id}))
    return actions, reason or ""


async def _dataset(dataset_id: str, learner: Learner) -> dict:
    dataset = await asyncio.to_thread(registry_for(get_settings()).dataset, dataset_id, learner.scope)
    if dataset is None:
        raise TutorError("That dataset is not among yours (it may have been made in another account). "
                         "Type `/train` to pick one of yours.")
    return dataset


async def offer_training(text: str = "") -> None:
    """/train [settings]: check the settings, then pick one of the learner's prepared datasets."""
    learner = await current_learner()
    settings = get_settings()
    registry = registry_for(settings)
    hosted = re.match(r"/train\s+openai\b", text or "", flags=re.I) is not None
    if hosted and (reason := openai_ready()):
        raise TutorError(reason)
    overrides = parse_settings(text.split("openai", 1)[1] if hosted else text, hosted)
    datasets = [d for d in await asyncio.to_thread(registry.datasets, learner.scope)
                if Path(d["files"].get("train", "")).is_file()][:5]
    if not datasets:
        await cl.Message(content="No prepared dataset yet. Type `/prepare` first, then come back with `/train`.").send()
        return
    if hosted:
        intro = ("**Fine-tune with OpenAI.** Settings: " + describe_openai(hosted_config(datasets[0], overrides)) +
                 ". Change them like `/train openai model=gpt-4o-mini-2024-07-18 suffix=recipes epochs=3 "
                 "batch_size=auto lr_multiplier=auto` (or `model=ft:...` to continue a fine-tune). Pick a dataset:")
    else:
        intro = ("**Fine-tune locally with LoRA.** Settings: " + describe(local_config(datasets[0], overrides, settings))
                 + ". Change them like `/train epochs=2 lr=1e-3 r=16 alpha=32 dropout=0.1 modules=q_proj,v_proj "
                 f"max_length=256 batch_size=4 grad_accum=2 seed=7 base={next(iter(base_choices(settings)))}`. "
                 "Pick a dataset:")
    await cl.Message(content=intro, actions=[
        cl.Action(name="finetune_openai" if hosted else "finetune_local",
                  label=f"{d['name']} ({d['report'].get('written', {}).get('train', '?')} examples)",
                  payload={"dataset_id": d["id"], "settings": overrides}) for d in datasets]).send()


@action("finetune_local", LocalTrainRequest)
async def on_finetune_local(request, learner: Learner, _sent):
    settings = get_settings()
    config = local_config(await _dataset(request.dataset_id, learner), request.settings, settings).check()
    run = await asyncio.to_thread(training_backend("local", settings).start, config, registry_for(settings),
                                  learner.name)
    cl.user_session.set("training_job", asyncio.create_task(watch(run, describe(config))))


@action("finetune_openai", HostedTrainRequest)
async def on_finetune_openai(request, learner: Learner, _sent):
    """Show the settings and the cost estimate; the job starts only on "Start"."""
    from training.validate import validate_file

    if reason := openai_ready():
        raise TutorError(reason)
    config = hosted_config(await _dataset(request.dataset_id, learner), request.settings)
    await asyncio.to_thread(config.check)
    report = await asyncio.to_thread(validate_file, Path(config.train_file), model="gpt-4o-mini")
    await cl.Message(
        content=(f"**Fine-tune with OpenAI** at {server_label(get_settings())}: {describe_openai(config)}.\n\n"
                 f"Estimate from the dataset report: {report.tokens_in_dataset:,} tokens x {report.epochs} epochs = "
                 f"**{report.billed_tokens:,} billed tokens, about ${report.estimated_cost:.2f}** at "
                 f"${report.price_per_million:g} per 1M training tokens."
                 + ("" if get_settings().openai_base_url else f"\n\n_{WIND_DOWN}_") + "\n\nStart?"),
        actions=[cl.Action(name="start_openai", label="Start", payload=request.model_dump())]).send()


@action("start_openai", HostedTrainRequest)
async def on_start_openai(request, learner: Learner, sent: cl.Action):
    await sent.remove()
    settings = get_settings()
    config = hosted_config(await _dataset(request.dataset_id, learner), request.settings)
    run = await asyncio.to_thread(training_backend("openai", settings).start, config, registry_for(settings),
                                  learner.name)
    cl.user_session.set("training_job", asyncio.create_task(watch(run, describe_openai(config))))


@action("cancel_run", RunRef)
async def on_cancel_run(request: RunRef, learner: Learner, _sent):
    registry = registry_for(get_settings())
    run = await asyncio.to_thread(registry.run, request.run_id, learner.scope)
    if run is None:
        raise TutorError("That run is not among yours, so it was left alone.")
    if run["status"] not in ACTIVE:
        return
    await cl.Message(content=f"Stopping `{run['id']}`" + (" (it saves a checkpoint first)..."
                                                         if run["status"] == "running" and run["backend"] == "local"
                                                         else "...")).send()
    await asyncio.to_thread(jobs.cancel, run, registry, settings=get_settings())


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
    actions = ([cl.Action(name="chat_with_model", payload={"run_id": run["id"]}, label="Chat with it"),
                cl.Action(name="compare_model", payload={"run_id": run["id"]}, label="Compare with RAG baseline")]
               if finished["status"] == "succeeded" else [])
    await cl.Message(content=summary(finished), actions=actions).send()


def record(state: dict, event: dict) -> None:
    """Fold one event into the progress message's state, by the event's type."""
    event = parse_event(event)
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


def summary(run: dict) -> str:
    if run["status"] == "succeeded" and run["backend"] == "openai":
        m = run["metrics"]
        rows = [("fine-tuned model", f"`{m['fine_tuned_model']}`"), ("trained tokens", f"{m.get('trained_tokens') or 0:,}"),
                ("final training loss", f"{m['final_loss']:.4f}" if m.get("final_loss") is not None else "n/a"),
                ("validation loss", f"{m['val_loss']:.4f}" if m.get("val_loss") is not None else "n/a"),
                ("validation token accuracy",
                 f"{m['val_token_accuracy']:.1%}" if m.get("val_token_accuracy") is not None else "n/a")]
        return (f"### ✅ Fine-tuned `{run['id']}` with OpenAI\n\n| metric | value |\n| --- | --- |\n" +
                "\n".join(f"| {k} | {v} |" for k, v in rows) +
                f"\n\nContinue fine-tuning it with `/train openai model={m['fine_tuned_model']}`.")
    if run["status"] == "cancelled" and run["backend"] == "openai":
        return f"⏹️ `{run['id']}` was cancelled."
    if run["status"] == "succeeded":
        m = run["metrics"]
        f1 = f"{m['val_f1']:.3f}" if m.get("val_f1") is not None else "n/a"
        accuracy = f"{m['val_token_accuracy']:.1%}" if m.get("val_token_accuracy") is not None else "n/a"
        return (f"### ✅ Fine-tuned `{run['id']}`\n\n| metric | value |\n| --- | --- |\n"
                f"| final training loss | {m.get('final_loss', 0):.4f} |\n| validation loss | {m.get('val_loss', float('nan')):.4f} |\n"
                f"| validation token accuracy | {accuracy} |\n| validation F1 (ingredient lists) | {f1} |\n"
                f"| time | {m['train_seconds']:.0f} s |\n| tokens trained | {m['tokens_trained']:,} |\n\n"
                f"The adapter is saved in the standard PEFT format (it loads with peft or vLLM); "
                f"`tutor jobs export {run['id']}` on the server merges it into its base model.")
    if run["status"] == "cancelled":
        return f"⏹️ `{run['id']}` was cancelled. It kept a checkpoint: `tutor jobs resume {run['id']}` continues it."
    return f"⚠️ `{run['id']}` {run['status']}: {run.get('error') or 'see its train.log'}"


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
