"""Checks of understanding: a short quiz on the notes, graded offline, with a hint before the model answer.

The question banks are knowledge/quiz/en.toml and knowledge/quiz/uk.toml (TOML, not markdown: the knowledge base
indexes every *.md), with the same question keys. Each question has a topic (the stem of a notes file), a hint, a
model answer, its key facts (a short phrase and keywords or synonyms that name it: assistant/tutor/quiz_grading.py grades
an answer by them) and its source (a notes file and one of its headings).

A first answer short of right gets the hint; the second try, or giving up, gets the model answer and its source. A
quiz of a few questions is a `QuizSession`, a plain dict for the chat's session; each graded answer goes to the
learner's own rows in the registry, from which `covered` and `what_next` tell what they have done and what to do
next. The chat (assistant/chat/quiz_flow.py) and `tutor quiz` (assistant/cli/quiz.py) are thin layers over this module.

    python -m assistant.tutor.quiz lora-how "LoRA freezes W and trains two low-rank matrices"   # grades one answer
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from assistant.i18n import LANGUAGES
from assistant.tutor.quiz_grading import Fact, Grade, Graded, grade
from training.base.errors import TutorError
from training.base.phrases import Phrases
from training.base.registry import QUIZ_GRADES
from training.base.settings import PROJECT_ROOT

QUIZ_DIR = PROJECT_ROOT / "knowledge" / "quiz"


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(Record):
    path: str
    heading: str

    def __str__(self) -> str:
        return f"{self.path} › {self.heading}"


class Question(Record):
    key: str = Field(pattern=r"^[a-z][a-z0-9-]{0,47}$")
    topic: str
    question: str
    hint: str
    answer: str
    facts: tuple[Fact, ...] = Field(min_length=1)
    source: Source


class Bank(Record):
    """One language's questions, and its topics ({key: title}) in the order a learner meets them."""

    language: str
    topics: dict[str, str]
    questions: tuple[Question, ...]

    @model_validator(mode="after")
    def _consistent(self) -> Bank:
        keys = [q.key for q in self.questions]
        if len(set(keys)) != len(keys):
            raise ValueError("two questions share a key")
        if unknown := {q.topic for q in self.questions} ^ set(self.topics):
            raise ValueError(f"topics without questions, or questions without a topic: {sorted(unknown)}")
        return self

    def question(self, key: str) -> Question:
        return next(q for q in self.questions if q.key == key)

    def topic_of(self, value: str) -> str | None:
        """A topic key from a key, a notes path (knowledge/uk/hyperparameters.md) or a unique part of a key or
        title ("lora", "перенавчання"); None when nothing, or more than one topic, fits."""
        value = value.strip().lower()
        if (stem := Path(value).stem) in self.topics:
            return stem
        fits = [key for key, title in self.topics.items() if value and (value in key or value in title.lower())]
        return fits[0] if len(fits) == 1 else None


@functools.cache
def load_bank(language: str = "en") -> Bank:
    if language not in LANGUAGES:
        raise ValueError(f"no question bank in '{language}'")
    return Bank.model_validate(tomllib.loads((QUIZ_DIR / f"{language}.toml").read_text(encoding="utf-8")))


# --- a quiz of a few questions ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Turn:
    """What one answer (or giving up) led to: with `finished`, the model answer is shown and the quiz moves on;
    without, the hint."""

    question: Question
    language: str
    attempt: int
    graded: Graded | None  # None: the learner gave up
    finished: bool

    def record(self, registry, owner: str) -> None:
        if self.graded is not None:
            registry.record_quiz_answer(owner, self.question.key, self.question.topic, self.graded.grade,
                                        self.attempt, self.language)

    def as_json(self) -> dict:
        graded = self.graded or Graded("wrong", (), tuple(f.fact for f in self.question.facts))
        shown = {"answer": self.question.answer} if self.finished else {"hint": self.question.hint}
        return {"question": self.question.key, "text": self.question.question, "attempt": self.attempt,
                "grade": graded.grade if self.graded else "gave_up", "found": list(graded.found),
                "missing": list(graded.missing), **shown, "source": str(self.question.source)}


class QuizSession(BaseModel):
    """The quiz under way: its questions, the one asked, the tries at it (0, or 1 after the hint) and each finished
    question's outcome. `model_dump()` is the plain dict a chat keeps; `model_validate` refuses one that doesn't fit."""

    model_config = ConfigDict(extra="forbid", strict=True)
    language: str
    questions: list[str] = Field(min_length=1, max_length=20)
    position: int = 0
    tries: Literal[0, 1] = 0
    results: list[Literal["right", "partly", "wrong", "gave_up"]] = []

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        if value not in LANGUAGES:
            raise ValueError(f"no question bank in '{value}'")
        return value

    @model_validator(mode="after")
    def _known(self) -> QuizSession:
        known = {q.key for q in load_bank(self.language).questions}
        if not set(self.questions) <= known or not 0 <= self.position <= len(self.questions) \
                or len(self.results) != self.position:
            raise ValueError("not a quiz of this bank")
        return self

    @property
    def done(self) -> bool:
        return self.position >= len(self.questions)

    def current(self) -> Question:
        return load_bank(self.language).question(self.questions[self.position])

    def answer(self, text: str) -> Turn:
        question, attempt = self.current(), self.tries + 1
        graded = grade(question.question, question.facts, text, self.language)
        finished = graded.grade == "right" or attempt > 1
        self._advance(graded.grade if finished else None)
        return Turn(question, self.language, attempt, graded, finished)

    def give_up(self) -> Turn:
        question, attempt = self.current(), self.tries + 1
        self._advance("gave_up")
        return Turn(question, self.language, attempt, None, True)

    def _advance(self, result: str | None) -> None:
        if result is None:
            self.tries = 1
        else:
            self.results.append(result)
            self.position, self.tries = self.position + 1, 0


def places(about: list) -> list[tuple[str, str]]:
    """(path, heading) of each passage (a Passage, or a dict with path and heading), its top heading only."""
    return [(getattr(p, "path", None) or p["path"], (getattr(p, "heading", None) or p["heading"]).split(" › ")[0])
            for p in about]


def topic_about(bank: Bank, about: list) -> str | None:
    """The topic of the first passage whose notes file has questions."""
    return next((topic for path, _ in places(about) if (topic := bank.topic_of(path))), None)


def pick(bank: Bank, rows: list[dict], topic: str | None = None, about: list = (), count: int = 3,
         first: tuple[str, ...] = ()) -> list[Question]:
    """`count` questions: `first` (keys), then those on `topic` (a key, path or title) or on what `about` discussed
    (passages: their headings' questions first), else on `what_next`; questions the learner got right before go
    last, and other topics fill up a short topic."""
    where = places(about)
    wanted = bank.topic_of(topic) if topic else topic_about(bank, about)
    if topic and wanted is None:
        raise TutorError(phrase("unknown_topic", bank.language, topic=topic[:40], topics=", ".join(bank.topics)))
    wanted = wanted or what_next(bank, rows)
    right = {row.question for row in rows if row.grade == "right"}

    def order(q: Question) -> tuple:
        return (q.key not in first, q.topic != wanted, (q.source.path, q.source.heading) not in where,
                q.key in right, list(bank.topics).index(q.topic))

    return sorted(bank.questions, key=order)[:count]


# --- progress ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TopicProgress:
    topic: str
    title: str
    questions: int  # in the bank
    answered: int  # of them, answered at least once
    right: int  # of them, answered right at least once
    best: Grade


def covered(bank: Bank, rows: list[dict]) -> list[TopicProgress]:
    """The topics a learner has answered questions on, in the bank's order."""
    progress = []
    for topic, title in bank.topics.items():
        mine = [row for row in rows if row.topic == topic]
        if mine:
            grades = {row.grade for row in mine}
            progress.append(TopicProgress(topic, title, sum(q.topic == topic for q in bank.questions),
                                          len({row.question for row in mine}),
                                          len({row.question for row in mine if row.grade == "right"}),
                                          next(g for g in QUIZ_GRADES if g in grades)))
    return progress


def what_next(bank: Bank, rows: list[dict]) -> str:
    """The first topic not covered yet, else the one with the smallest share of its questions answered right."""
    done = {p.topic: p.right / p.questions for p in covered(bank, rows)}
    return next((t for t in bank.topics if t not in done), None) or min(done, key=done.__getitem__)


# --- texts ------------------------------------------------------------------------------------------------

PHRASES = Phrases("quiz")


def phrase(key: str, language: str = "en", **fields) -> str:
    return PHRASES(key, language, **fields)


def feedback(turn: Turn) -> str:
    """The reply to an answer: its grade, then the hint, or the model answer with what was missing and its source."""
    language, graded, question = turn.language, turn.graded, turn.question
    lines = [phrase("gave_up", language) if graded is None else phrase(graded.grade, language,
                                                                        found="; ".join(graded.found))]
    if not turn.finished:
        return "\n\n".join([*lines, phrase("hint", language, hint=question.hint), phrase("try_again", language)])
    if graded is not None and graded.grade != "right":
        lines.append(phrase("missing", language, missing="; ".join(graded.missing)))
    return "\n\n".join([*lines, phrase("answer", language, answer=question.answer),
                        phrase("source", language, source=question.source)])


def asked(session: QuizSession) -> str:
    question = session.current()
    return phrase("question", session.language, number=session.position + 1, count=len(session.questions),
                  question=question.question)


def progress_text(bank: Bank, rows: list[dict], score: QuizSession | None = None) -> str:
    """The quiz's score (when one just ended), what the learner has covered, and what to do next."""
    language = bank.language
    lines = [phrase("score", language, right=score.results.count("right"), count=len(score.questions))] if score \
        else []
    topics = [phrase("covered_topic", language, title=p.title, right=p.right, questions=p.questions,
                     answered=p.answered, best=phrase(f"best.{p.best}", language)) for p in covered(bank, rows)]
    lines.append("\n".join([phrase("covered", language), *topics]) if topics else phrase("nothing", language))
    lines.append(phrase("next", language, title=bank.topics[what_next(bank, rows)]))
    return "\n\n".join(lines)


if __name__ == "__main__":
    import json
    import sys

    from training.base.common import configure_process

    configure_process()
    key, text = sys.argv[1], " ".join(sys.argv[2:])
    language = "uk" if re.search(r"[а-яіїєґ]", text.lower()) else "en"
    question = load_bank(language).question(key)
    print(json.dumps(vars(grade(question.question, question.facts, text, language)), ensure_ascii=False, indent=2))
