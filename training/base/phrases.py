"""The training layer's fixed texts in each language the app speaks: English (the default) and Ukrainian.

The training layer never imports the assistant (its catalog is assistant/i18n.py), so a module whose reports
the chat shows keeps its own few sentences in a table of its own, read through `Phrases`:

    PHRASES = Phrases(en={"rows": "Read {rows:,} rows"}, uk={"rows": "Прочитано рядків: {rows:,}"})
    PHRASES("rows", "uk", rows=1200)       # "Прочитано рядків: 1,200"; English where a language has none

A test keeps every table's languages complete, with the same {fields} per key.
"""

from __future__ import annotations

TABLES: list[Phrases] = []  # every table made, for that test


class Phrases(dict):
    """{language: {key: template}}; calling it gives one text in a language, with its fields filled in."""

    def __init__(self, **languages: dict[str, str]):
        super().__init__(languages)
        TABLES.append(self)

    def __call__(self, key: str, language: str = "en", **fields) -> str:
        template = self.get(language, {}).get(key) or self["en"][key]
        return template.format(**fields) if fields else template
