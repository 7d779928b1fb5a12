"""`tutor quiz`: a check of understanding in the terminal (assistant/tutor/quiz.py), the local learner's progress kept.

Each answer is one line: a first answer short of right gets the hint and a second try, then the model answer and
its source; an empty line gives up. The quiz ends with what the learner has covered and what to do next.

    tutor quiz [--topic lora] [--lang uk] [--questions 3]      # interactive
    printf 'first answer\\nsecond answer\\n' | tutor quiz --json  # a JSON object per answer, then {"summary": ...}

assistant/cli/main.py registers it: `app.command("quiz")(quiz_command)`.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict
from typing import Optional

import typer

from assistant.cli.common import LANGUAGE, fail, language_of_option, open_registry
from training.base.errors import TutorError
from training.base.registry import LOCAL_USER, RegistryError


def plain(markdown: str) -> str:
    """A reply as terminal text: no bold, no italic line."""
    return re.sub(r"(?m)^_(.*)_$", r"\1", markdown.replace("**", ""))


def quiz_command(
    topic: Optional[str] = typer.Option(None, help="A topic (lora, overfitting, jsonl, ...: a key, a notes file "
                                                   "or part of a title); default: what to do next."),
    language: Optional[str] = LANGUAGE,
    questions: int = typer.Option(3, min=1, max=20, help="How many questions."),
    as_json: bool = typer.Option(False, "--json", help="Read one answer a line; print one JSON object a line."),
):
    """Check your understanding: questions on the notes, answered in your own words, graded offline."""
    from assistant.tutor.quiz import (
        QuizSession,
        asked,
        covered,
        feedback,
        load_bank,
        phrase,
        pick,
        progress_text,
        what_next,
    )

    language = language_of_option(language)
    registry = open_registry()
    try:
        bank = load_bank(language)
        picked = pick(bank, registry.quiz_progress(LOCAL_USER), topic=topic, count=questions)
    except (TutorError, RegistryError) as exc:
        fail(str(exc), as_json)
    session = QuizSession(language=language, questions=[q.key for q in picked])
    if not as_json:
        typer.echo(plain(phrase("intro", language, topic=bank.topics[picked[0].topic], count=len(picked))))
    while not session.done:
        if not as_json and session.tries == 0:
            typer.echo("\n" + plain(asked(session)))
        line = sys.stdin.readline()
        if not line:
            break  # the end of the input: the quiz stops where it is
        turn = session.answer(line.strip()) if line.strip() else session.give_up()
        try:
            turn.record(registry, LOCAL_USER)
        except RegistryError as exc:
            fail(str(exc), as_json)
        typer.echo(json.dumps(turn.as_json(), ensure_ascii=False) if as_json else "\n" + plain(feedback(turn)))
    try:
        rows = registry.quiz_progress(LOCAL_USER)
    except RegistryError as exc:
        fail(str(exc), as_json)
    if as_json:
        typer.echo(json.dumps({"summary": {"right": session.results.count("right"), "asked": session.position,
                                           "covered": [asdict(p) for p in covered(bank, rows)],
                                           "next": what_next(bank, rows)}}, ensure_ascii=False))
    else:
        typer.echo("\n" + plain(progress_text(bank, rows, session if session.done else None)))
