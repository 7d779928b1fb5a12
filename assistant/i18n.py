"""The app's own fixed texts in each language it speaks: English (the default) and Ukrainian.

    text("tutor.sources", "uk")                          # "**Джерела** (повні уривки)"
    language_of("uk-UA")                                 # "uk": Chainlit's browser language, to one of LANGUAGES
    text("tutor.not_covered", "uk", topics="LoRA; ...")  # fields filled with str.format

A text missing in a language falls back to English; a test keeps both catalogs complete.
"""

from __future__ import annotations

LANGUAGES = ("en", "uk")

CATALOG: dict[str, dict[str, str]] = {
    "en": {
        "app.welcome": """I teach LLM fine-tuning by explaining it and, step by step, by doing it.

- **Ask me anything about fine-tuning**: what it is, when it pays off, LoRA/PEFT, data, hyperparameters, evaluation, cost. \
Every answer is grounded in this project's notes and shows its **sources**.
- **Should I fine-tune?** A guided check of your use case, the alternatives you tried, costs and benefits, \
ending in a recommendation with reasons. Type `/check` or press the starter.
- **Prepare the recipe dataset** (`/prepare`): build train/validation/test chat JSONL from the bundled recipes \
or your RecipeNLG CSV, validated like OpenAI's data-prep checks, with token counts and a cost estimate. \
Attach a `.jsonl` to validate your own file.
- **Fine-tune locally** (`/train`): LoRA on the embedded model, with live loss, a chart, cancel and resume. \
Or on **Azure OpenAI** (`/train azure`) or **OpenAI** (`/train openai`) when configured: upload, start, follow and \
cancel the job; an Azure fine-tune is deployed for you, or you name your deployment with `/deployed NAME`. \
Set hyperparameters in the settings next to the message box.
- **Compare** (`/compare`): your fine-tuned model against a RAG baseline (the base model with retrieved \
examples), side by side with tokens and latency, and a held-out evaluation in numbers.

Model: **{model}**. Change it and the temperature in the settings next to the message box.""",
        "tutor.not_covered": ("I couldn't find that in my notes, so I won't guess. I can explain these topics: "
                              "{topics}. Try asking, for example, “What is LoRA?”."),
        "tutor.english_only": ("_The offline model writes English only. For answers in your language, set "
                               "OPENAI_API_KEY or OPENAI_BASE_URL (see the README)._"),
        "tutor.also_in_notes": "Also in the notes:",
        "tutor.sources": "**Sources** (full passages)",
    },
    "uk": {
        "app.welcome": """Я навчаю тонкого налаштування (fine-tuning) LLM: пояснюю його і крок за кроком проводжу вас через нього на практиці.

- **Питайте про тонке налаштування будь-що**: що це таке, коли воно окупається, LoRA/PEFT, дані, гіперпараметри, \
оцінювання, вартість. Кожна відповідь спирається на нотатки цього проєкту (`knowledge/uk/`) і показує **джерела**. \
Українською офлайн-відповідь складається з уривків нотаток, без підсумку моделі: вбудована модель пише лише англійською.
- **Чи варто мені донавчати модель?** Покрокова перевірка вашого випадку, альтернатив, які ви спробували, витрат і \
вигод, що завершується рекомендацією з обґрунтуванням. Введіть `/check` або натисніть кнопку-підказку (поки англійською).
- **Підготуйте набір даних рецептів** (`/prepare`): навчальна, валідаційна й тестова вибірки у форматі chat JSONL \
з доданих рецептів або вашого CSV RecipeNLG, перевірені як у перевірках підготовки даних OpenAI, з кількістю токенів \
і оцінкою вартості. Прикріпіть `.jsonl`, щоб перевірити власний файл.
- **Тонке налаштування локально** (`/train`): LoRA на вбудованій моделі з живими втратами, графіком, скасуванням і \
відновленням. Або в **Azure OpenAI** (`/train azure`) чи **OpenAI** (`/train openai`), якщо їх налаштовано. Під \
кожним завершеним запуском кнопка **«Explain my run»** пояснює, що показує саме ваша крива, з посиланнями на нотатки.
- **Порівняйте** (`/compare`): вашу тонко налаштовану модель із базовим варіантом RAG (базова модель із знайденими \
прикладами), поруч, з токенами й затримкою, а також оцінювання на відкладеній вибірці в числах.

Модель: **{model}**. Змінити її та температуру можна в налаштуваннях біля поля повідомлення.""",
        "tutor.not_covered": ("Я не знайшов цього у своїх нотатках, тож не вгадуватиму. Я можу пояснити такі "
                              "теми: {topics}. Спробуйте запитати, наприклад: «Що таке LoRA?»."),
        "tutor.english_only": ("_Офлайн-модель пише лише англійською. Щоб отримувати відповіді своєю мовою, "
                               "задайте OPENAI_API_KEY або OPENAI_BASE_URL (див. README)._"),
        "tutor.also_in_notes": "Також у нотатках:",
        "tutor.sources": "**Джерела** (повні уривки)",
    },
}

STARTERS = {  # per language: (label, message, command)
    "en": [
        ("What is fine-tuning?", "What is fine-tuning, and how is it different from prompting?", None),
        ("What is LoRA?", "What is LoRA?", None),
        ("Should I fine-tune?", "Should I fine-tune?", "check"),
        ("Fine-tuning or RAG?", "When should I use RAG instead of fine-tuning?", None),
        ("Prepare recipe dataset", "/prepare", "prepare"),
    ],
    "uk": [
        ("Що таке тонке налаштування?", "Чим тонке налаштування відрізняється від попереднього навчання?", None),
        ("Що додає QLoRA?", "Що QLoRA додає до LoRA?", None),
        ("Чи варто донавчати?", "Should I fine-tune?", "check"),
        ("Тонке налаштування чи RAG?", "Коли варто використовувати RAG замість тонкого налаштування?", None),
        ("Підготувати набір рецептів", "/prepare", "prepare"),
    ],
}


def language_of(tag: str | None) -> str:
    """One of LANGUAGES for a browser's language tag ("uk-UA", "en-US"); English for any other."""
    primary = (tag or "").split("-")[0].split("_")[0].lower()
    return primary if primary in LANGUAGES else "en"


def text(key: str, language: str = "en", **fields) -> str:
    """The text for `key` in `language` (English where it has none), with `fields` filled in."""
    template = CATALOG.get(language, {}).get(key) or CATALOG["en"][key]
    return template.format(**fields) if fields else template
