"""A module's fixed texts in each language, read through `Phrases`: its namespace of the catalog
(training/base/texts/<language>.toml, see training/base/texts.py), or a table of its own given inline.

    PHRASES = Phrases("prepare")           # the [prepare] table of every language's file
    PHRASES("read_done", "uk", rows=1200)  # "Прочитано рядків: 1,200"; English where a language has none
    PHRASES["uk"]                          # {key: template} of one language
    Phrases(en={"rows": "Read {rows:,} rows"}, uk={"rows": "Прочитано рядків: {rows:,}"})  # inline, until moved

A template may be a table of plural forms (`one`, `few`, `many`, `other`), picked for the `count` field.
tests/test_texts.py keeps the catalog complete; tests/test_ukrainian_app.py the inline tables still left.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from training.base.texts import Template, catalog, fill, languages

TABLES: list[Phrases] = []  # every inline table made, for that test


class Phrases(Mapping[str, dict[str, Template]]):
    """{language: {key: template}}; calling it gives one text in a language, with its fields filled in."""

    def __init__(self, namespace: str | None = None, **languages: dict[str, Template]):
        self.namespace, self.inline = namespace, languages
        if namespace is None:
            TABLES.append(self)

    def __getitem__(self, language: str) -> dict[str, Template]:
        if self.namespace is None:
            return self.inline[language]
        if language not in languages():
            raise KeyError(language)
        return catalog(language).get(self.namespace, {})

    def __iter__(self) -> Iterator[str]:
        return iter(self.inline if self.namespace is None else languages())

    def __len__(self) -> int:
        return len(self.inline if self.namespace is None else languages())

    def __call__(self, key: str, language: str = "en", /, **fields) -> str:
        found = self.get(language, {}).get(key)
        return fill(found if found is not None else self["en"][key], language, **fields)
