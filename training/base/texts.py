"""Every learner-facing text, in every language the app speaks, from one catalog: one TOML file per language in
training/base/texts/ (en.toml, uk.toml), each a table per namespace (the module that owns its texts).

    text("quotas.queued", "uk", count=3)    # a namespace, a key, fields filled with str.format
    language_of("uk-UA")                     # "uk": one of languages(), English for any other tag
    language_from_env()                      # the language of LC_ALL / LC_MESSAGES / LANG ("uk_UA.UTF-8" -> "uk")

A value is a template, or a table of plural forms by CLDR category (`one`, `few`, `many`, `other`), picked for
the `count` field with Babel's rules for the language:

    [validate]
    examples = { one = "{count} приклад", few = "{count} приклади", many = "{count} прикладів", other = "..." }

A key missing in a language falls back to English; tests/test_texts.py keeps every language complete (same keys,
same {fields}, the plural forms its language needs). Adding a language is one file here plus Chainlit's own
.chainlit/translations/<tag>.json.
"""

from __future__ import annotations

import os
import tomllib
from functools import cache
from pathlib import Path

DIRECTORY = Path(__file__).with_suffix("")  # training/base/texts/
DEFAULT = "en"

Template = str | dict[str, str]  # a text, or its plural forms by CLDR category


@cache
def languages() -> tuple[str, ...]:
    """The languages the catalog has, English first."""
    found = sorted(path.stem for path in DIRECTORY.glob("*.toml"))
    return (DEFAULT, *(language for language in found if language != DEFAULT))


@cache
def catalog(language: str) -> dict[str, dict[str, Template]]:
    """One language's texts: {namespace: {key: template}}, read once; empty for a language the catalog lacks."""
    path = DIRECTORY / f"{language}.toml"
    return tomllib.loads(path.read_text(encoding="utf-8")) if language in languages() else {}


def template(namespace: str, key: str, language: str = DEFAULT) -> Template:
    """The template of a key in a language, English where the language has none."""
    found = catalog(language).get(namespace, {}).get(key)
    return found if found is not None else catalog(DEFAULT)[namespace][key]


def plural(forms: dict[str, str], language: str, count: float) -> str:
    """The form of `forms` Babel's plural rules give `count` in `language` (`other` where a form is missing)."""
    from babel import Locale

    return forms.get(Locale.parse(language).plural_form(count)) or forms["other"]


def fill(found: Template, language: str, /, **fields) -> str:
    """A template with its fields filled in: a plural table picks its form by the `count` field first."""
    if isinstance(found, dict):
        found = plural(found, language, fields["count"])
    return found.format(**fields) if fields else found


def text(key: str, language: str = DEFAULT, /, **fields) -> str:
    """The text of "namespace.key" in `language` (English where it has none), with `fields` filled in."""
    namespace, _, name = key.partition(".")
    return fill(template(namespace, name, language), language, **fields)


def language_of(tag: str | None) -> str:
    """One of languages() for a language tag: a browser's ("uk-UA", "en-US") or a locale's ("uk_UA.UTF-8");
    English for any other."""
    primary = (tag or "").split("-")[0].split("_")[0].split(".")[0].lower()
    return primary if primary in languages() else DEFAULT


def language_from_env() -> str:
    """The language of the process's locale, as a command line tool reads it: the first of LC_ALL, LC_MESSAGES
    and LANG that is set."""
    return language_of(next((os.environ[name] for name in ("LC_ALL", "LC_MESSAGES", "LANG") if os.environ.get(name)),
                            None))
