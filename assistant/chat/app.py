"""The Chainlit app: thin handlers over the tutor (assistant.tutor.answers) and the check (assistant.tutor.decision).

Run it with `make run` (http://127.0.0.1:8000), or `chainlit run assistant/chat/app.py` from the repo root.
Everything slow (knowledge indexing, model loading, generation) runs off the event loop; errors reach
the learner as one clear sentence, details go to the server log (with secrets redacted).

Local by default: on 127.0.0.1 nobody logs in and the one learner owns everything. For a class, set
TUTOR_AUTH (password, header or oauth): each learner then owns their work, and the app refuses to listen
beyond loopback without it. Pages from other origins are refused (assistant.web.origins); chat history is
kept by Chainlit's data layer (assistant.web.history); uploads are size-limited before they are read and
streamed to disk (assistant.web.upload_route), all wired in at import by assistant/chat/serving.py.
"""

from __future__ import annotations

from training.base.common import configure_process

configure_process()  # the app's entry point: offline and sized to this machine before transformers loads

import asyncio  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import chainlit as cl  # noqa: E402
from chainlit.input_widget import Select, Slider  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from assistant.chat import (
    ab_flow,  # noqa: E402, F401
    dataset_flow,  # noqa: E402, F401
    models_flow,  # noqa: E402, F401
    quiz_flow,  # noqa: E402, F401
    run_view,  # noqa: E402
    token_flow,  # noqa: E402, F401
    training_flow,  # noqa: E402, F401
)
from assistant.chat.actions import CheckAnswer, action, current_learner, guarded  # noqa: E402
from assistant.chat.serving import configure_from_environment  # noqa: E402
from assistant.i18n import language_of, session_language, starters_for, text  # noqa: E402
from assistant.inference.backends import backend_names, create_backend  # noqa: E402
from assistant.tutor import decision  # noqa: E402, F401
from assistant.tutor.answers import Tutor, format_sources  # noqa: E402
from assistant.tutor.conversation import Conversation  # noqa: E402
from assistant.tutor.service import get_tutor, warm_up  # noqa: E402
from assistant.web import history  # noqa: E402, F401
from training.base.errors import TutorError  # noqa: E402
from training.base.registry import registry_for  # noqa: E402
from training.base.settings import get_settings  # noqa: E402
from training.jobs import queue  # noqa: E402

log = logging.getLogger(__name__)

PROFILE = "Fine-Tuning Tutor"
TUTOR_BACKENDS = ("local", "openai")  # the tutor's own model; Azure serves fine-tunes and their baselines
COMMANDS = (("check", "list-checks"), ("prepare", "database"), ("models", "boxes"), ("train", "cpu"),
            ("deployed", "rocket"), ("compare", "columns-2"), ("quiz", "graduation-cap"))  # (id, icon); each described by the catalog's "app.command.ID"


def commands(language: str) -> list[dict]:
    """The chat's commands, described in `language`."""
    return [{"id": name, "icon": icon, "description": text(f"app.command.{name}", language), "button": False}
            for name, icon in COMMANDS]

_warmup: asyncio.Task | None = None
_background: list[asyncio.Task] = []
# Retrieval and the grounding checks wait in `asyncio.to_thread` for the engine thread (the process's one torch
# thread), which serves them between two model steps. Those threads only wait; the default pool's size (CPUs + 4,
# 6 here) would queue a class's questions behind each other's waits (the `load` benchmark measured it).
WAITING_THREADS = 64
# What a resumed chat keeps (checked again): its settings, and its conversation with the tutor;
# buttons and jobs of the old one are gone.
SESSION_KEYS = ("backend", "temperature", "training_form", "conversation", "answered")


def start_warmup() -> asyncio.Task:
    """Build the tutor and load the model in the background, once per process (retried after a failure)."""
    global _warmup
    if _warmup is None or (_warmup.done() and (_warmup.cancelled() or _warmup.exception())):
        _warmup = asyncio.create_task(asyncio.to_thread(warm_up))
    return _warmup


async def ready_tutor() -> Tutor:
    await asyncio.shield(start_warmup())
    return await asyncio.to_thread(get_tutor)


configure_from_environment()


@cl.on_app_startup
async def on_startup():
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(WAITING_THREADS, thread_name_prefix="tutor"))
    start_warmup()
    try:
        settings = get_settings()
    except TutorError:
        return  # already logged; each chat explains it
    _background.append(asyncio.create_task(queue.keep_moving(registry_for(settings), settings.max_training_jobs)))
    from chainlit.data import get_data_layer

    if isinstance(layer := get_data_layer(), history.HistoryLayer):
        try:
            await layer.create_schema()
            await layer.adopt_accounts(registry_for(settings))
            log.info("Chat history in %s", history.describe(settings))
        except Exception as exc:  # noqa: BLE001 - the chat works without history; say why once
            log.error("Chat history is off: the database at %s can't be used (%s).", history.describe(settings),
                      type(exc).__name__)


@cl.set_chat_profiles
async def chat_profiles(user=None, language=None):
    """One profile, so the welcome screen shows the welcome text above the starters (a welcome
    *message* would hide the starters: Chainlit shows them only in an empty thread)."""
    language = language_of(language)
    try:
        settings = get_settings()
        model = create_backend(settings.effective_backend, settings).label
    except TutorError as exc:
        model = text("app.not_configured", language, error=exc)
    return [cl.ChatProfile(name=PROFILE, markdown_description=text("app.welcome", language, model=model,
                                                                      explain=text("explain.button", language)),
                           icon="/public/tutor.svg", default=True)]


@cl.set_starters
async def starters(user=None, language=None):
    return [cl.Starter(label=label, message=message, command=command)
            for label, message, command in starters_for(language_of(language))]


@cl.on_chat_start
async def on_chat_start():
    await open_session({})


@cl.on_chat_resume
async def on_chat_resume(thread: dict):
    """A past chat reopened from the sidebar: its messages are back; its model and temperature are kept, while
    its buttons, A/B pairing and running watchers belonged to the old session and start afresh."""
    metadata = thread.get("metadata") or {}
    await open_session({key: metadata[key] for key in SESSION_KEYS if key in metadata})


async def open_session(kept: dict) -> None:
    start_warmup()
    try:
        settings = get_settings()
    except TutorError as exc:  # a bad .env: say so where the learner looks
        await cl.Message(content=f"⚠️ {exc}").send()
        return
    learner = await guarded(current_learner(), "Opening the chat")
    if learner is None:
        return
    backends = {name: create_backend(name, settings) for name in backend_names() if name in TUTOR_BACKENDS}
    chosen = kept.get("backend") if kept.get("backend") in backends else settings.effective_backend
    temperature = kept.get("temperature", settings.temperature)
    language = session_language()
    for key in ("chat_model", "ab", "check_answers", "check_message", "quiz", "quiz_message", "quiz_about"):
        cl.user_session.set(key, None)
    cl.user_session.set("conversation", kept.get("conversation"))  # checked when the next question reads it
    cl.user_session.set("answered", kept.get("answered") if isinstance(kept.get("answered"), int) else 0)
    cl.user_session.set("backend", chosen)
    cl.user_session.set("temperature", temperature)
    cl.user_session.set("training_form", {})
    await training_flow.update_form(training_flow.form_fields(kept.get("training_form")), quiet=True)
    await cl.ChatSettings([
        Select(id="backend", label=text("app.setting.backend", language),
               items={b.label: name for name, b in backends.items()}, initial_value=chosen,
               description=text("app.setting.backend_help", language)),
        Slider(id="temperature", label=text("app.setting.temperature", language), initial=temperature, min=0, max=1.5,
               step=0.1),
        *training_flow.form_widgets(settings, cl.user_session.get("training_form"), language),
    ]).send()
    await cl.context.emitter.set_commands(commands(language))
    await run_view.resume_watching(learner)


@cl.on_settings_update
async def on_settings_update(values: dict):
    await training_flow.update_form(values)
    if "backend" not in values and "temperature" not in values:
        return
    backend = values.get("backend", cl.user_session.get("backend"))
    language = session_language()
    if backend not in TUTOR_BACKENDS:
        await cl.Message(content=text("app.bad_backend", language)).send()
        return
    reason = create_backend(backend, get_settings()).unavailable_reason()
    if reason:
        await cl.Message(content=text("app.keep_model", language, reason=reason)).send()
    else:
        cl.user_session.set("backend", backend)
    temperature = values.get("temperature", cl.user_session.get("temperature"))
    if isinstance(temperature, (int, float)) and 0 <= temperature <= 2:
        cl.user_session.set("temperature", float(temperature))


@cl.on_message
async def on_message(message: cl.Message):
    if await guarded(current_learner(), "Checking the account") is None:  # removed while the chat was open
        return
    said = message.content.strip()
    files = [e for e in message.elements or [] if getattr(e, "path", None)]
    if files:
        await dataset_flow.handle_uploads(files)
    elif message.command == "check" or said.lower() in {"/check", "should i fine-tune?"}:
        await start_check()
    elif message.command == "prepare" or said.lower().startswith("/prepare"):
        await guarded(dataset_flow.offer_prepare(said), "Offering to prepare")
    elif message.command == "models" or said.lower().startswith("/models"):
        await guarded(models_flow.offer_models(said), "Offering models")
    elif message.command == "train" or said.lower().startswith("/train"):
        await guarded(training_flow.offer_training(said), "Offering to train")
    elif message.command == "deployed" or said.lower().startswith("/deployed"):
        await guarded(training_flow.record_deployment(said), "Recording a deployment")
    elif message.command == "compare" or said.lower().startswith("/compare"):
        await guarded(ab_flow.offer_compare(), "Offering a comparison")
    elif message.command == "quiz" or said.lower().startswith("/quiz"):
        await guarded(quiz_flow.quiz_command(said), "Starting a quiz")
    elif said.lower() == "/tutor":
        cl.user_session.set("chat_model", None)
        cl.user_session.set("ab", None)
        await cl.Message(content=text("app.back_to_tutor", session_language())).send()
    elif await quiz_flow.answer_quiz(said):
        pass  # a quiz under way took the message as its answer
    elif cl.user_session.get("ab"):
        await ab_flow.compare(message.content)
    elif cl.user_session.get("chat_model"):
        await training_flow.answer_with_model(said)
    else:
        await answer(message.content)


def session_conversation() -> Conversation:
    """This chat's conversation with the tutor (kept as plain data in the session, so saved with the thread)."""
    try:
        return Conversation.model_validate(cl.user_session.get("conversation") or {})
    except ValidationError:  # saved by another version: the chat goes on without it
        return Conversation()


async def answer(question: str) -> None:
    """Stream the tutor's answer as the next turn of this chat's conversation, then its sources: as a footer and
    as this answer's own side panel of passages (numbered, so each answer's panel shows its own)."""
    msg = cl.Message(content="")
    started = time.perf_counter()
    conversation = session_conversation()
    try:
        tutor = await ready_tutor()
        reply = await tutor.ask(question, conversation=conversation, backend=cl.user_session.get("backend"),
                                temperature=cl.user_session.get("temperature"))
        first = None
        async for piece in reply:
            first = first or time.perf_counter() - started
            await msg.stream_token(piece)
    except TutorError as exc:
        await msg.stream_token(("\n\n" if msg.content else "") + f"⚠️ {exc}")
        await msg.send()
        return
    except Exception:
        log.exception("Answering failed")
        await msg.stream_token("\n\n" + text("app.failed", session_language()))
        await msg.send()
        return
    log.info("Answered in %.1f s (first words after %.1f s) with %d sources", time.perf_counter() - started,
             first or 0.0, len(reply.sources))
    reply.record(conversation)
    cl.user_session.set("conversation", conversation.model_dump(mode="json"))
    number = (cl.user_session.get("answered") or 0) + 1
    cl.user_session.set("answered", number)
    panel = text("app.passages_of", reply.language, number=number)
    await msg.stream_token(format_sources(reply.sources, reply.language, panel))
    if reply.sources:  # one side panel with every passage (its name, in the footer, links to it)
        passages = "\n\n---\n\n".join(f"**[{i}] {p.path} › {p.heading}**\n\n{p.text}"
                                          for i, p in enumerate(reply.sources, 1))
        msg.elements = [cl.Text(name=panel, content=passages, display="side")]
    quiz_flow.offer_check(msg, reply.sources, reply.language)  # "Check my understanding" on what it discussed
    await msg.send()


# --- "Should I fine-tune?" -------------------------------------------------------------------

async def start_check() -> None:
    cl.user_session.set("check_answers", {})
    await cl.Message(content=decision.phrase("check.intro", session_language())).send()
    await ask_check_question(decision.QUESTIONS[0])


async def ask_check_question(question: decision.Question) -> None:
    number = decision.QUESTIONS.index(question) + 1
    shown = question.in_language(session_language())  # the texts only: payloads carry keys, in no language
    msg = cl.Message(
        content=f"**{number}/{len(decision.QUESTIONS)} · {shown.topic}**\n\n{shown.text}",
        actions=[cl.Action(name="check_answer", payload={"question": question.key, "option": option.key},
                           label=option.label) for option in shown.options])
    await msg.send()
    cl.user_session.set("check_message", msg)


@action("check_answer", CheckAnswer)
async def on_check_answer(request: CheckAnswer, _learner, _sent):
    language = session_language()
    answers = cl.user_session.get("check_answers")
    if answers is None:
        await cl.Message(content=decision.phrase("check.stale", language)).send()
        return
    question = next((q for q in decision.QUESTIONS if q.key == request.question), None)
    if question is None or question.key in answers:
        return  # a stale or repeated click: the question was already answered
    try:
        option = question.in_language(language).option(request.option)
    except KeyError:
        raise TutorError(decision.phrase("check.not_an_answer", language)) from None
    answers[question.key] = option.key
    if asked := cl.user_session.get("check_message"):
        await asked.remove_actions()
        asked.content += f"\n\n➡️ **{option.label}**"
        await asked.update()
    if upcoming := decision.next_question(answers):
        await ask_check_question(upcoming)
    else:
        await cl.Message(content=decision.recommend(answers, language).as_markdown()).send()
        cl.user_session.set("check_answers", None)
