"""Chat handlers for fine-tuning: start a local LoRA or an OpenAI job, watch it live, cancel it, see its summary.

Thin: jobs run in their own process (training.jobs); this module follows their events in a thread
and updates one message and one loss chart a few times a second. Runs still training when a chat
opens (the app restarted, say) are picked up and followed again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

import chainlit as cl

from assistant.backends import server_label
from assistant.contenders import fine_tuned, model_for_run, too_long
from assistant.errors import TutorError
from assistant.generation import Usage
from assistant.settings import get_settings
from training import jobs, openai_jobs
from training.charts import loss_chart
from training.config import ConfigError, TrainConfig
from training.evaluation import Case
from training.openai_jobs import OpenAIJobConfig
from training.registry import registry_for

log = logging.getLogger(__name__)
UPDATE_EVERY = 0.4  # seconds between screen updates: a few a second, not one per event
_SETTING = re.compile(r"\b(epochs|lr|learning_rate|r|alpha|dropout|max_length|batch_size|grad_accum|seed|base|modules)"
                      r"\s*=\s*(\S+)")
_FIELDS = {"lr": "learning_rate", "r": "lora_r", "alpha": "lora_alpha", "dropout": "lora_dropout",
           "grad_accum": "gradient_accumulation", "base": "base_model", "modules": "target_modules"}


def parse_settings(text: str) -> dict:
    """Overrides from '/train epochs=2 lr=1e-3 r=16'; unknown words are ignored."""
    settings = {}
    for key, value in _SETTING.findall(text or ""):
        name = _FIELDS.get(key, key)
        try:
            if name in ("base_model", "target_modules"):
                settings[name] = value if name == "base_model" or value == "all-linear" else value.split(",")
            else:
                settings[name] = float(value) if name in ("learning_rate", "lora_dropout", "epochs") else int(float(value))
        except ValueError:
            continue  # a typo like lr=fast: keep the default; the settings line shows what is used
    return settings


def describe(config: TrainConfig) -> str:
    return (f"base **{config.base_model}**, {config.epochs:g} epochs, lr {config.learning_rate:g}, LoRA r {config.lora_r} / "
            f"alpha {config.lora_alpha} / dropout {config.lora_dropout:g} on {config.target_modules}, max length "
            f"{config.max_length}, batch {config.batch_size} x {config.gradient_accumulation}, seed {config.seed}")


def finetune_action(train_file: str, validation_file: str | None, label: str = "Fine-tune locally", **overrides) -> cl.Action:
    return cl.Action(name="finetune_local", label=label,
                     payload={"train_file": train_file, "validation_file": validation_file, **overrides})


def openai_ready() -> str | None:
    """None when OpenAI fine-tuning is configured, else how to configure it."""
    settings = get_settings()
    if settings.openai_api_key or settings.openai_base_url:
        return None
    return ("To fine-tune with OpenAI, set OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible server, such as "
            "this project's own `tutor serve`) in a `.env` file next to the app, then restart it.")


def training_actions(train_file: str, validation_file: str | None) -> tuple[list[cl.Action], str]:
    """The buttons under a prepared dataset, and a note when OpenAI is not configured."""
    actions = [finetune_action(train_file, validation_file)]
    if (reason := openai_ready()) is None:
        actions.append(cl.Action(name="finetune_openai", label="Fine-tune with OpenAI",
                                 payload={"train_file": train_file, "validation_file": validation_file}))
    return actions, reason or ""


_OPENAI_SETTING = re.compile(r"\b(model|suffix|epochs|batch_size|lr_multiplier|seed)\s*=\s*(\S+)")


def parse_openai_settings(text: str) -> dict:
    """Overrides from '/train openai model=ft:... epochs=3 batch_size=auto lr_multiplier=2 suffix=recipes'."""
    names = {"epochs": "n_epochs", "lr_multiplier": "learning_rate_multiplier"}
    settings = {}
    for key, value in _OPENAI_SETTING.findall(text or ""):
        name = names.get(key, key)
        if name in ("model", "suffix") or value == "auto":
            settings[name] = value
            continue
        try:
            settings[name] = float(value) if name == "learning_rate_multiplier" else int(value)
        except ValueError:
            continue
    return settings


def describe_openai(config: OpenAIJobConfig) -> str:
    return (f"base **{config.model}**, suffix {config.suffix or '(none)'}, epochs {config.n_epochs}, batch size "
            f"{config.batch_size}, learning-rate multiplier {config.learning_rate_multiplier}")


async def offer_training(text: str = "") -> None:
    """/train [settings]: pick one of the prepared datasets."""
    registry = registry_for(get_settings())
    datasets = [d for d in registry.datasets() if Path(d["files"].get("train", "")).is_file()][:5]
    if not datasets:
        await cl.Message(content="No prepared dataset yet. Type `/prepare` first, then come back with `/train`.").send()
        return
    hosted = re.match(r"/train\s+openai\b", text or "", flags=re.I) is not None
    if hosted and (reason := openai_ready()):
        await cl.Message(content=f"⚠️ {reason}").send()
        return
    if hosted:
        overrides = parse_openai_settings(text)
        intro = ("**Fine-tune with OpenAI.** Settings: " + describe_openai(OpenAIJobConfig(**overrides)) +
                 ". Change them like `/train openai model=gpt-4o-mini-2024-07-18 suffix=recipes epochs=3 "
                 "batch_size=auto lr_multiplier=auto` (or `model=ft:...` to continue a fine-tune). Pick a dataset:")
    else:
        overrides = parse_settings(text)
        intro = ("**Fine-tune locally with LoRA.** Settings: " + describe(TrainConfig(**overrides)) +
                 ". Change them like `/train epochs=2 lr=1e-3 r=16 alpha=32 dropout=0.1 modules=q_proj,v_proj "
                 "max_length=256 batch_size=4 grad_accum=2 seed=7 base=embedded`. Pick a dataset:")
    await cl.Message(content=intro, actions=[
        cl.Action(name="finetune_openai" if hosted else "finetune_local",
                  label=f"{d['name']} ({d['report'].get('written', {}).get('train', '?')} examples)",
                  payload={"train_file": d["files"]["train"], "validation_file": d["files"].get("validation"),
                           **overrides}) for d in datasets]).send()


@cl.action_callback("finetune_local")
async def on_finetune_local(action: cl.Action):
    payload = dict(action.payload)
    try:
        config = TrainConfig.from_dict(payload).check()
        settings = get_settings()
        run = await asyncio.to_thread(jobs.start_local, config, settings.data_dir, registry_for(settings))
    except (ConfigError, TutorError, OSError) as exc:
        await cl.Message(content=f"⚠️ {exc}").send()
        return
    cl.user_session.set("training_job", asyncio.create_task(watch(run, describe(config))))


@cl.action_callback("finetune_openai")
async def on_finetune_openai(action: cl.Action):
    """Show the settings and the cost estimate; the job starts only on "Start"."""
    from training.validate import validate_file

    if reason := openai_ready():
        await cl.Message(content=f"⚠️ {reason}").send()
        return
    try:
        config = OpenAIJobConfig(**action.payload)
        await asyncio.to_thread(config.check)
        report = await asyncio.to_thread(validate_file, Path(config.train_file), model="gpt-4o-mini")
    except (TutorError, TypeError, OSError) as exc:
        await cl.Message(content=f"⚠️ {exc}").send()
        return
    await cl.Message(
        content=(f"**Fine-tune with OpenAI** at {server_label(get_settings())}: {describe_openai(config)}.\n\n"
                 f"Estimate from the dataset report: {report.tokens_in_dataset:,} tokens x {report.epochs} epochs = "
                 f"**{report.billed_tokens:,} billed tokens, about ${report.estimated_cost:.2f}** at "
                 f"${report.price_per_million:g} per 1M training tokens. Start?"),
        actions=[cl.Action(name="start_openai", label="Start", payload=action.payload)]).send()


@cl.action_callback("start_openai")
async def on_start_openai(action: cl.Action):
    await action.remove()
    settings = get_settings()
    config = OpenAIJobConfig(**action.payload)
    try:
        run = await asyncio.to_thread(openai_jobs.start, config, settings, registry_for(settings))
    except (TutorError, OSError) as exc:
        await cl.Message(content=f"⚠️ {exc}").send()
        return
    cl.user_session.set("training_job", asyncio.create_task(watch(run, describe_openai(config))))


@cl.action_callback("cancel_run")
async def on_cancel_run(action: cl.Action):
    registry = registry_for(get_settings())
    run = registry.run(action.payload["run_id"])
    if run is None or run["status"] not in ("running", "queued"):
        return
    await cl.Message(content=f"Stopping `{run['id']}`" + (" (it saves a checkpoint first)..."
                                                         if run["backend"] == "local" else "...")).send()
    try:
        await asyncio.to_thread(jobs.cancel, run, registry)
    except TutorError as exc:
        await cl.Message(content=f"⚠️ {exc}").send()


async def resume_watching() -> None:
    """Follow, in this chat, every run still training (e.g. started before the app restarted)."""
    registry = registry_for(get_settings())
    await asyncio.to_thread(jobs.reconcile, registry)
    watching = [asyncio.create_task(watch(run, "picked up after a restart"))
                for run in registry.runs() if run["status"] in ("running", "queued")]
    cl.user_session.set("watching", watching)


async def watch(run: dict, what: str) -> None:
    """Follow a run's events in a thread; show progress, chart and summary in one message."""
    registry = registry_for(get_settings())
    message = cl.Message(content=f"**Training `{run['id']}`**: {what}. Starting...",
                         actions=[cl.Action(name="cancel_run", payload={"run_id": run["id"]}, label="Cancel")])
    await message.send()
    chart_id = f"loss-{run['id']}"
    state = {"steps": [], "evals": [], "last": None, "total": None, "final": None, "status": None, "log": [],
             "checkpoints": []}
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def pump():
        for event in jobs.follow(run, registry, poll=0.3):
            loop.call_soon_threadsafe(queue.put_nowait, event)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    follower = loop.run_in_executor(None, pump)
    shown_at = 0.0
    while (event := await queue.get()) is not None:
        record(state, event)
        if time.monotonic() - shown_at >= UPDATE_EVERY and queue.empty():
            await show(message, state, run, chart_id, what)
            shown_at = time.monotonic()
    await follower
    await show(message, state, run, chart_id, what)
    await message.remove_actions()
    finished = registry.run(run["id"])
    actions = ([cl.Action(name="chat_with_model", payload={"run_id": run["id"]}, label="Chat with it"),
                cl.Action(name="compare_model", payload={"run_id": run["id"]}, label="Compare with RAG baseline")]
               if finished["status"] == "succeeded" else [])
    await cl.Message(content=summary(finished), actions=actions).send()


def record(state: dict, event: dict) -> None:
    kind = event["type"]
    if kind == "start":
        state["total"] = event["total_steps"]
    elif kind == "step":
        state["steps"].append((event["step"], event["loss"]))
        state["last"] = event
    elif kind == "eval":
        state["evals"].append((event["step"], event["val_loss"]))
        state["eval"] = event
    elif kind == "status":
        state["status"] = event["status"]
    elif kind == "message":
        state["log"] = (state["log"] + [event["message"]])[-5:]
    elif kind == "checkpoint":
        state["checkpoints"].append(event.get("model") or f"step {event['step']}")
    elif kind in ("done", "cancelled", "error"):
        state["final"] = event


async def show(message: cl.Message, state: dict, run: dict, chart_id: str, what: str) -> None:
    last, evaluation = state["last"], state.get("eval")
    lines = [f"**Training `{run['id']}`**: {what}."]
    if state["status"]:
        lines.append(f"status **{state['status']}**")
    if last and "eta_seconds" in last:
        lines.append(f"step **{last['step']}/{last['total_steps']}** · training loss **{last['loss']:.4f}** · "
                     f"{last['tokens_per_second']:,.0f} tokens/s · ETA {last['eta_seconds']:.0f} s")
    elif last:  # a hosted job reports step and loss
        lines.append(f"step **{last['step']}/{last.get('total_steps') or '?'}** · training loss **{last['loss']:.4f}**")
    if evaluation:
        lines.append(f"validation loss **{evaluation['val_loss']:.4f}** · token accuracy "
                     f"**{(evaluation.get('val_token_accuracy') or 0):.1%}** (step {evaluation['step']})")
    if state["checkpoints"]:
        lines.append(f"checkpoints: {len(state['checkpoints'])}, latest `{state['checkpoints'][-1]}`")
    if state["log"]:
        lines.append("\n".join(f"> {line}" for line in state["log"]))
    message.content = "\n\n".join(lines)
    await message.update()
    if state["steps"]:
        chart = cl.Plotly(name="loss", figure=loss_chart(state["steps"], state["evals"], state["total"]),
                          display="inline", id=chart_id)
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
                f"Adapter (PEFT: loads with peft or vLLM): `{run['adapter_path']}`")
    if run["status"] == "cancelled":
        return f"⏹️ `{run['id']}` was cancelled. It kept a checkpoint: `tutor jobs resume {run['id']}` continues it."
    return f"⚠️ `{run['id']}` {run['status']}: {run.get('error') or 'see its train.log'}"


# --- "Chat with it" -----------------------------------------------------------------------------

@cl.action_callback("chat_with_model")
async def on_chat_with_model(action: cl.Action):
    try:
        model = model_for_run(registry_for(get_settings()), action.payload["run_id"])
    except TutorError:
        await cl.Message(content="That model is not available any more.").send()
        return
    run = {"id": model["run_id"], "model": model}
    cl.user_session.set("chat_model", run)
    cl.user_session.set("ab", None)
    await cl.Message(content=(f"You are now chatting with the fine-tuned `{run['id']}`, a recipe assistant. Send a "
                              "recipe as it was trained, e.g.\n\n`Title: Pancakes\n\nIngredients: [\"1 c. flour\", "
                              "\"2 eggs\", \"1 c. milk\"]\n\nGeneric ingredients: `\n\nType `/tutor` to go back to the tutor.")).send()


async def answer_with_model(text: str) -> None:
    """Stream the fine-tuned model's answer to one message (the recipe task's system prompt)."""
    from training.recipes import SYSTEM_PROMPT

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
