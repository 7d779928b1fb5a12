"""The app's own fixed texts in each language it speaks: English (the default) and Ukrainian.

    text("tutor.sources", "uk")                          # "**Джерела** (повні уривки)"
    text("tutor.not_covered", "uk", topics="LoRA; ...")  # fields filled with str.format

A text missing in a language falls back to English; a test keeps both catalogs complete.
"""

from __future__ import annotations

LANGUAGES = ("en", "uk")

CATALOG: dict[str, dict[str, str]] = {
    "en": {
        "tutor.not_covered": ("I couldn't find that in my notes, so I won't guess. I can explain these topics: "
                              "{topics}. Try asking, for example, “What is LoRA?”."),
        "tutor.english_only": ("_The offline model writes English only. For answers in your language, set "
                               "OPENAI_API_KEY or OPENAI_BASE_URL (see the README)._"),
        "tutor.also_in_notes": "Also in the notes:",
        "tutor.sources": "**Sources** (full passages)",
    },
    "uk": {
        "tutor.not_covered": ("Я не знайшов цього у своїх нотатках, тож не вгадуватиму. Я можу пояснити такі "
                              "теми: {topics}. Спробуйте запитати, наприклад: «Що таке LoRA?»."),
        "tutor.english_only": ("_Офлайн-модель пише лише англійською. Щоб отримувати відповіді своєю мовою, "
                               "задайте OPENAI_API_KEY або OPENAI_BASE_URL (див. README)._"),
        "tutor.also_in_notes": "Також у нотатках:",
        "tutor.sources": "**Джерела** (повні уривки)",
    },
}


def text(key: str, language: str = "en", **fields) -> str:
    """The text for `key` in `language` (English where it has none), with `fields` filled in."""
    template = CATALOG.get(language, {}).get(key) or CATALOG["en"][key]
    return template.format(**fields) if fields else template
