"""A module's fixed texts in each language, read through `Phrases`: its namespace of the catalog
(training/base/texts/<language>.toml, see training/base/texts.py).

    PHRASES = Phrases("prepare")           # the [prepare] table of every language's file
    PHRASES("read_done", "uk", rows=1200)  # "Прочитано рядків: 1,200"; English where a language has none
    PHRASES["uk"]                          # {key: template} of one language

A template may be a table of plural forms (`one`, `few`, `many`, `other`), picked for the `count` field.
tests/test_texts.py keeps the catalog complete.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from training.base.texts import Template, catalog, fill, languages


class Phrases(Mapping[str, dict[str, Template]]):
    """{language: {key: template}} of one namespace; calling it gives one text in a language, its fields filled in."""

    def __init__(self, namespace: str):
        self.namespace = namespace

    def __getitem__(self, language: str) -> dict[str, Template]:
        if language not in languages():
            raise KeyError(language)
        return catalog(language).get(self.namespace, {})

    def __iter__(self) -> Iterator[str]:
        return iter(languages())

    def __len__(self) -> int:
        return len(languages())

    def __call__(self, key: str, language: str = "en", /, **fields) -> str:
        found = self.get(language, {}).get(key)
        return fill(found if found is not None else self["en"][key], language, **fields)
