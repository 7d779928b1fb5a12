"""Chat handlers for checks of understanding: `/quiz`, a "Check my understanding" button under the tutor's answers,
and the answers a learner types while a quiz is under way, graded by assistant/tutor/quiz.py.

Thin over assistant/tutor/quiz.py. The quiz under way is its plain dict in the user session ("quiz"), checked again on
every message; the learner is the chat's (assistant/chat/actions.py), and progress is read and written for that
learner's own id only, an admin's too. Buttons carry a topic and question keys, checked against the bank before any
work; never a learner, a path or an answer. A first answer short of right gets the hint and a Give up button; the
second try, or giving up, the model answer and its source; the last question, what the learner has covered and
what to do next.

    await quiz_command("/quiz lora")          # also /quiz (on what the last answer discussed), /quiz progress, stop
    offer_check(msg, reply.sources, reply.language)   # the button under an answer, before msg.send()
    if await answer_quiz(message.content): ...        # a quiz under way took the message as its answer
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated

import chainlit as cl
from pydantic import Field, StringConstraints, ValidationError, model_validator

from assistant.chat.actions import NoPayload, Payload, action, current_learner, guarded
from assistant.i18n import session_language
from assistant.tutor.quiz import (
    Bank,
    QuizSession,
    Turn,
    asked,
    feedback,
    load_bank,
    phrase,
    pick,
    places,
    progress_text,
    topic_about,
    what_next,
)
from assistant.web.accounts import Learner
from training.base.registry import registry_for
from training.base.settings import get_settings

QUESTIONS = 3  # per quiz
SESSION, MESSAGE, ABOUT = "quiz", "quiz_message", "quiz_about"  # the user session's keys: the quiz, its message
# with a Give up button, and the sources of the tutor's last answer
Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,47}$")]


class QuizRequest(Payload):
    """A topic, and the questions to ask first: keys of the bank (the same in every language)."""

    topic: Key | None = None
    questions: Annotated[list[Key], Field(max_length=QUESTIONS)] = []

    @model_validator(mode="after")
    def _in_bank(self) -> QuizRequest:
        bank = load_bank("en")
        if (self.topic is not None and self.topic not in bank.topics) \
                or not set(self.questions) <= {q.key for q in bank.questions}:
            raise ValueError("not a topic or question of the bank")
        return self


def _registry():
    return registry_for(get_settings())


def _quiz_on(bank: Bank, topic: str) -> cl.Action:
    return cl.Action(name="check_understanding", label=phrase("quiz_on", bank.language, title=bank.topics[topic]),
                     payload={"topic": topic})


def _give_up(language: str) -> cl.Action:
    return cl.Action(name="quiz_give_up", label=phrase("give_up", language), payload={})


def offer_check(message: cl.Message, sources: list, language: str) -> None:
    """Under a tutor's answer: a "Check my understanding" button on its sources' topic, the questions from their
    headings first (none when no source has questions); the sources are kept for a plain `/quiz`."""
    bank = load_bank(language)
    cl.user_session.set(ABOUT, [{"path": path, "heading": heading} for path, heading in places(sources)])
    if topic := topic_about(bank, sources):
        where = set(places(sources))
        first = [q.key for q in bank.questions if (q.source.path, q.source.heading) in where][:QUESTIONS]
        message.actions = [*message.actions, cl.Action(name="check_understanding", label=phrase("check", language),
                                                       payload={"topic": topic, "questions": first})]


async def quiz_command(said: str) -> None:
    """`/quiz` (on what the last answer discussed, else on what to do next), `/quiz TOPIC`, `/quiz progress`,
    `/quiz stop`."""
    argument = said.strip().removeprefix("/quiz").strip()
    if argument.lower() in ("progress", "прогрес"):
        await show_progress()
    elif argument.lower() in ("stop", "стоп"):
        await _forget()
        await cl.Message(content=phrase("stopped", session_language())).send()
    else:
        await start_quiz(argument or None, cl.user_session.get(ABOUT))


async def start_quiz(topic: str | None, about: list | None, first: Sequence[str] = (),
                     learner: Learner | None = None) -> None:
    """A quiz of QUESTIONS questions (`first` of them first) on `topic`, else on what `about` (passages) discussed,
    else on what the learner should do next."""
    learner = learner or await current_learner()
    language = session_language()
    bank = load_bank(language)
    rows = await asyncio.to_thread(_registry().quiz_progress, learner.id)
    picked = pick(bank, rows, topic, about or [], QUESTIONS, tuple(first))
    session = QuizSession(language=language, questions=[q.key for q in picked])
    await _forget()
    await cl.Message(content=phrase("intro", language, topic=bank.topics[picked[0].topic], count=len(picked))).send()
    await _ask(session)


async def answer_quiz(text: str) -> bool:
    """Grade `text` as the answer to the question asked, when a quiz is under way in this chat; True when it took
    the message (a command, starting with "/", it leaves to others)."""
    session = _session()
    if session is None or text.lstrip().startswith("/"):
        return False
    await guarded(_answer(session, text), "Grading a quiz answer")
    return True


async def show_progress(learner: Learner | None = None) -> None:
    """What the learner has covered, with a button for what to do next."""
    learner = learner or await current_learner()
    bank = load_bank(session_language())
    rows = await asyncio.to_thread(_registry().quiz_progress, learner.id)
    await cl.Message(content=progress_text(bank, rows), actions=[_quiz_on(bank, what_next(bank, rows))]).send()


@action("check_understanding", QuizRequest)
async def on_check_understanding(request: QuizRequest, learner: Learner, _sent):
    """A quiz on the button's topic (the one under an answer: on what it discussed)."""
    await start_quiz(request.topic, None, request.questions, learner)


@action("quiz_give_up", NoPayload)
async def on_give_up(_request: NoPayload, learner: Learner, _sent):
    """The model answer of the question asked, and on to the next."""
    session = _session()
    if session is None:
        await cl.Message(content=phrase("no_quiz", session_language())).send()
        return
    await _reply(session, session.give_up(), learner)


def _session() -> QuizSession | None:
    """The quiz under way, as the session keeps it; one that no longer fits the bank is dropped."""
    state = cl.user_session.get(SESSION)
    try:
        return QuizSession.model_validate(state) if state is not None else None
    except ValidationError:
        cl.user_session.set(SESSION, None)
        return None


async def _answer(session: QuizSession, text: str) -> None:
    learner = await current_learner()
    await _reply(session, await asyncio.to_thread(session.answer, text), learner)  # MiniLM: off the event loop


async def _ask(session: QuizSession) -> None:
    message = cl.Message(content=asked(session), actions=[_give_up(session.language)])
    await message.send()
    _keep(session, message)


def _keep(session: QuizSession | None, message: cl.Message | None) -> None:
    cl.user_session.set(SESSION, session.model_dump() if session else None)
    cl.user_session.set(MESSAGE, message)


async def _forget() -> None:
    """No quiz under way any more: its Give up button goes too."""
    if (shown := cl.user_session.get(MESSAGE)) is not None:
        await shown.remove_actions()
    _keep(None, None)


async def _reply(session: QuizSession, turn: Turn, learner: Learner) -> None:
    """Record the turn for the learner, then show it: the hint (Give up still offered), or the model answer and the
    next question, or, after the last, the score, what the learner has covered and what to do next."""
    await asyncio.to_thread(turn.record, _registry(), learner.id)
    await _forget()
    message = cl.Message(content=feedback(turn), actions=[] if turn.finished else [_give_up(session.language)])
    await message.send()
    if not turn.finished:
        _keep(session, message)
    elif not session.done:
        await _ask(session)
    else:
        bank = load_bank(session.language)
        rows = await asyncio.to_thread(_registry().quiz_progress, learner.id)
        await cl.Message(content=progress_text(bank, rows, session),
                         actions=[_quiz_on(bank, what_next(bank, rows))]).send()
