"""The chat side's own texts in each language it speaks, read from the catalog (training/base/texts/<language>.toml,
its [chat] and [starters] tables; see training/base/texts.py):

    text("tutor.sources", "uk", panel="повні уривки")    # "**Джерела** (повні уривки)"
    text("train.dataset_button", "uk", name="sample-seed1", count=22)  # "sample-seed1 (22 приклади)": plural forms
    language_of("uk-UA")                                 # "uk": Chainlit's browser language, to one of LANGUAGES
    starters_for("uk")                                   # the chat's starter buttons, in Ukrainian

A text missing in a language falls back to English; tests/test_texts.py keeps every language complete.
"""

from __future__ import annotations

from typing import NamedTuple

from training.base.phrases import Phrases
from training.base.texts import language_of, languages

__all__ = ["CATALOG", "LANGUAGES", "STARTERS", "language_of", "session_language", "starters_for", "text"]

LANGUAGES = languages()
CATALOG = Phrases("chat")
STARTERS = Phrases("starters")  # "<starter>.label" and "<starter>.message" of each starter below
STARTER_COMMANDS = {"fine_tuning": None, "adapters": None, "check": "check", "rag": None, "prepare": "prepare"}


class Starter(NamedTuple):
    label: str
    message: str
    command: str | None  # the command it runs; None sends its message as a question


def starters_for(language: str) -> list[Starter]:
    """The chat's starter buttons in `language`, in order."""
    return [Starter(STARTERS(f"{name}.label", language), STARTERS(f"{name}.message", language), command)
            for name, command in STARTER_COMMANDS.items()]


def text(key: str, language: str = "en", **fields) -> str:
    """The text for `key` in `language` (English where it has none), with `fields` filled in."""
    return CATALOG(key, language, **fields)


def session_language() -> str:
    """The language of the current Chainlit chat: its browser's (Accept-Language), English outside a chat."""
    from chainlit.context import context_var

    context = context_var.get(None)
    return language_of(getattr(context.session, "language", None) if context else None)
