"""The Chainlit app: thin handlers over the tutor (assistant.tutor) and the check (assistant.decision).

Run it with `make run` (http://127.0.0.1:8000), or `chainlit run assistant/app.py` from the repo root.
Everything slow (knowledge indexing, model loading, generation) runs off the event loop; errors reach
the learner as one clear sentence, details go to the server log (with secrets redacted).
"""

from __future__ import annotations

import asyncio
import logging
import time

import chainlit as cl
from chainlit.input_widget import Select, Slider

from assistant import ab_flow, dataset_flow, decision, training_flow
from assistant.backends import backend_names, create_backend
from assistant.errors import TutorError
from assistant.service import get_tutor, warm_up
from assistant.settings import get_settings
from assistant.tutor import Tutor, format_sources

log = logging.getLogger(__name__)

PROFILE = "Fine-Tuning Tutor"
WELCOME = """I teach LLM fine-tuning by explaining it and, step by step, by doing it.

- **Ask me anything about fine-tuning**: what it is, when it pays off, LoRA/PEFT, data, hyperparameters, evaluation, cost. \
Every answer is grounded in this project's notes and shows its **sources**.
- **Should I fine-tune?** A guided check of your use case, the alternatives you tried, costs and benefits, \
ending in a recommendation with reasons. Type `/check` or press the starter.
- **Prepare the recipe dataset** (`/prepare`): build train/validation/test chat JSONL from the bundled recipes \
or your RecipeNLG CSV, validated like OpenAI's data-prep checks, with token counts and a cost estimate. \
Attach a `.jsonl` to validate your own file.
- **Fine-tune locally** (`/train`): LoRA on the embedded model, with live loss, a chart, cancel and resume. \
Or **with OpenAI** (`/train openai`, when a key or base URL is configured): upload, start, follow and cancel the job.
- **Compare** (`/compare`): your fine-tuned model against a RAG baseline (the base model with retrieved \
examples), side by side with tokens and latency, and a held-out evaluation in numbers.

Model: **{model}**. Change it and the temperature in the settings next to the message box."""

STARTERS = [  # (label, message, command)
    ("What is fine-tuning?", "What is fine-tuning, and how is it different from prompting?", None),
    ("What is LoRA?", "What is LoRA?", None),
    ("Should I fine-tune?", "Should I fine-tune?", "check"),
    ("Fine-tuning or RAG?", "When should I use RAG instead of fine-tuning?", None),
    ("Prepare recipe dataset", "/prepare", "prepare"),
]
PASSAGES = "full passages"
COMMANDS = [
    {"id": "check", "icon": "list-checks", "description": "Should I fine-tune? A guided check", "button": False},
    {"id": "prepare", "icon": "database", "description": "Prepare the recipe dataset (train/validation/test JSONL)",
     "button": False},
    {"id": "train", "icon": "cpu", "description": "Fine-tune on a prepared dataset (locally with LoRA, or `/train openai`)",
     "button": False},
    {"id": "compare", "icon": "columns-2", "description": "A/B chat: a fine-tuned model vs the RAG baseline",
     "button": False},
]

_warmup: asyncio.Task | None = None


def start_warmup() -> asyncio.Task:
    """Build the tutor and load the model in the background, once per process (retried after a failure)."""
    global _warmup
    if _warmup is None or (_warmup.done() and (_warmup.cancelled() or _warmup.exception())):
        _warmup = asyncio.create_task(asyncio.to_thread(warm_up))
    return _warmup


async def ready_tutor() -> Tutor:
    await asyncio.shield(start_warmup())
    return await asyncio.to_thread(get_tutor)


@cl.on_app_startup
async def on_startup():
    start_warmup()


@cl.set_chat_profiles
async def chat_profiles(user=None, language=None):
    """One profile, so the welcome screen shows the welcome text above the starters (a welcome
    *message* would hide the starters: Chainlit shows them only in an empty thread)."""
    try:
        settings = get_settings()
        model = create_backend(settings.effective_backend, settings).label
    except TutorError as exc:
        model = f"not configured ({exc})"
    return [cl.ChatProfile(name=PROFILE, markdown_description=WELCOME.format(model=model), icon="/public/tutor.svg",
                           default=True)]


@cl.set_starters
async def starters(user=None, language=None):
    return [cl.Starter(label=label, message=message, command=command) for label, message, command in STARTERS]


@cl.on_chat_start
async def on_chat_start():
    start_warmup()
    try:
        settings = get_settings()
    except TutorError as exc:  # a bad .env: say so where the learner looks
        await cl.Message(content=f"⚠️ {exc}").send()
        return
    backends = {name: create_backend(name, settings) for name in backend_names() if name in ("local", "openai")}
    chosen = settings.effective_backend
    cl.user_session.set("backend", chosen)
    cl.user_session.set("temperature", settings.temperature)
    await cl.ChatSettings([
        Select(id="backend", label="Tutor model", items={b.label: name for name, b in backends.items()},
               initial_value=chosen, description="The offline model runs in this process; OpenAI-compatible needs "
                                                 "OPENAI_API_KEY or OPENAI_BASE_URL."),
        Slider(id="temperature", label="Temperature", initial=settings.temperature, min=0, max=1.5, step=0.1),
    ]).send()
    await cl.context.emitter.set_commands(COMMANDS)
    await training_flow.resume_watching()


@cl.on_settings_update
async def on_settings_update(values: dict):
    backend = values.get("backend", cl.user_session.get("backend"))
    reason = create_backend(backend, get_settings()).unavailable_reason()
    if reason:
        await cl.Message(content=f"⚠️ {reason}\n\nI keep using the current model until then.").send()
    else:
        cl.user_session.set("backend", backend)
    cl.user_session.set("temperature", float(values.get("temperature", cl.user_session.get("temperature"))))


@cl.on_message
async def on_message(message: cl.Message):
    text = message.content.strip()
    files = [e for e in message.elements or [] if getattr(e, "path", None)]
    if files:
        await dataset_flow.handle_uploads(files)
    elif message.command == "check" or text.lower() in {"/check", "should i fine-tune?"}:
        await start_check()
    elif message.command == "prepare" or text.lower().startswith("/prepare"):
        await dataset_flow.offer_prepare(text)
    elif message.command == "train" or text.lower().startswith("/train"):
        await training_flow.offer_training(text)
    elif message.command == "compare" or text.lower().startswith("/compare"):
        await ab_flow.offer_compare()
    elif text.lower() == "/tutor":
        cl.user_session.set("chat_model", None)
        cl.user_session.set("ab", None)
        await cl.Message(content="Back to the tutor: ask me anything about fine-tuning.").send()
    elif cl.user_session.get("ab"):
        await ab_flow.compare(message.content)
    elif cl.user_session.get("chat_model"):
        await training_flow.answer_with_model(text)
    else:
        await answer(message.content)


async def answer(question: str) -> None:
    """Stream the tutor's answer, then its sources (as a footer and as side panels with the passages)."""
    msg = cl.Message(content="")
    started = time.perf_counter()
    try:
        tutor = await ready_tutor()
        reply = await tutor.ask(question, backend=cl.user_session.get("backend"),
                                temperature=cl.user_session.get("temperature"))
        async for piece in reply:
            await msg.stream_token(piece)
    except TutorError as exc:
        await msg.stream_token(("\n\n" if msg.content else "") + f"⚠️ {exc}")
        await msg.send()
        return
    except Exception:
        log.exception("Answering failed")
        await msg.stream_token("\n\n⚠️ Something went wrong on my side (the details are in the server log). "
                               "Please try again.")
        await msg.send()
        return
    log.info("Answered in %.1f s with %d sources", time.perf_counter() - started, len(reply.sources))
    await msg.stream_token(format_sources(reply.sources))
    if reply.sources:  # one side panel with every passage (its name, in the footer, links to it)
        passages = "\n\n---\n\n".join(f"**[{i}] {p.path} › {p.heading}**\n\n{p.text}"
                                          for i, p in enumerate(reply.sources, 1))
        msg.elements = [cl.Text(name=PASSAGES, content=passages, display="side")]
    await msg.send()


# --- "Should I fine-tune?" -------------------------------------------------------------------

async def start_check() -> None:
    cl.user_session.set("check_answers", {})
    await cl.Message(content="**Should I fine-tune?** Eight quick questions about your use case, the alternatives "
                             "you tried, the costs and the benefits. Press the answer that fits best.").send()
    await ask_check_question(decision.QUESTIONS[0])


async def ask_check_question(question: decision.Question) -> None:
    number = decision.QUESTIONS.index(question) + 1
    msg = cl.Message(
        content=f"**{number}/{len(decision.QUESTIONS)} · {question.topic}**\n\n{question.text}",
        actions=[cl.Action(name="check_answer", payload={"question": question.key, "option": option.key},
                           label=option.label) for option in question.options])
    await msg.send()
    cl.user_session.set("check_message", msg)


@cl.action_callback("check_answer")
async def on_check_answer(action: cl.Action):
    answers = cl.user_session.get("check_answers")
    if answers is None:
        await cl.Message(content="That check was started in an earlier session. Type `/check` to start again.").send()
        return
    question = next((q for q in decision.QUESTIONS if q.key == action.payload.get("question")), None)
    if question is None or question.key in answers:
        return  # a stale or repeated click: the question was already answered
    option = question.option(action.payload["option"])
    answers[question.key] = option.key
    if asked := cl.user_session.get("check_message"):
        await asked.remove_actions()
        asked.content += f"\n\n➡️ **{option.label}**"
        await asked.update()
    if upcoming := decision.next_question(answers):
        await ask_check_question(upcoming)
    else:
        await cl.Message(content=decision.recommend(answers).as_markdown()).send()
        cl.user_session.set("check_answers", None)
