"""The Ukrainian notes keep step with the English ones, and a question is answered from its own language."""

import re
from pathlib import Path

import pytest

from assistant.i18n import CATALOG
from assistant.retrieval.knowledge import KnowledgeBase, passage_language, question_language
from assistant.retrieval.lexical import LexicalIndex, grams
from tests.conftest import make_settings

KNOWLEDGE = Path(__file__).resolve().parents[1] / "knowledge"


def headings(path: Path) -> list[str]:
    """The heading levels of a markdown file, in order ('#', '##', ...), code blocks left out."""
    levels, in_code = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (match := re.match(r"(#+) ", line)):
            levels.append(match.group(1))
    return levels


def test_every_topic_has_a_ukrainian_counterpart_with_the_same_headings():
    english = sorted(path.name for path in KNOWLEDGE.glob("*.md"))
    ukrainian = sorted(path.name for path in (KNOWLEDGE / "uk").glob("*.md"))
    assert english and ukrainian == english, "a topic without its counterpart"
    for name in english:
        assert headings(KNOWLEDGE / "uk" / name) == headings(KNOWLEDGE / name), f"{name}: the headings diverge"
        text = (KNOWLEDGE / "uk" / name).read_text(encoding="utf-8")
        assert question_language(text) == "uk", f"{name} is not in Ukrainian"


def test_both_catalogs_have_every_text():
    assert set(CATALOG["uk"]) == set(CATALOG["en"])


@pytest.mark.parametrize("text, language", [
    ("Що таке LoRA?", "uk"), ("What is LoRA?", "en"), ("Скільки прикладів потрібно для fine-tuning?", "uk"),
    ("什么是 LoRA?", "en"), ("1234 ???", "en"), ("Що QLoRA додає до LoRA?", "uk"), ("Що таке fine-tuning і LoRA?", "uk"),
    ("Is «Що таке» the Ukrainian for what is?", "en"),
])
def test_a_question_is_ukrainian_when_enough_of_its_letters_are_cyrillic(text, language):
    assert question_language(text) == language


def test_passages_take_their_language_from_their_folder():
    assert passage_language("knowledge/uk/evaluation.md") == "uk"
    assert passage_language("knowledge/evaluation.md") == "en"
    assert passage_language("knowledge/ukraine-notes.md") == "en"


def test_character_ngrams_match_inflected_ukrainian_words():
    index = LexicalIndex(["Перенавчання видно з кривих втрат.", "Швидкість навчання задає крок."])
    scores = index.scores("Як помітити перенавчанням?")  # another case ending of the same noun
    assert scores[0] > 2 * scores[1] > 0  # "навчання" is in both; the stem "перенавч" only in the first
    assert grams("ab")[" ab"] == 1 and grams("ab")["ab "] == 1


@pytest.mark.parametrize("question, expected_file", [
    ("Що QLoRA додає до LoRA?", "lora-qlora-peft.md"),
    ("Що таке катастрофічне забування?", "overfitting-and-forgetting.md"),
    ("Скільки навчальних прикладів мені потрібно?", "what-you-need.md"),
    ("Як виглядає рядок навчальних даних у форматі chat JSONL?", "chat-jsonl-format.md"),
])
def test_a_ukrainian_question_retrieves_ukrainian_passages(indexed_data_dir, question, expected_file):
    kb = KnowledgeBase(make_settings(indexed_data_dir))
    passages = kb.search(question)
    assert passages[0].path == f"knowledge/uk/{expected_file}"
    assert all(p.path.startswith("knowledge/uk/") for p in passages)
    english = kb.search("What is LoRA?")
    assert all(not p.path.startswith("knowledge/uk/") for p in english), "English questions stay in English"


async def test_the_welcome_and_starters_follow_the_browser_language_and_chainlits_uk_strings_load():
    import json

    import chainlit

    import assistant.chat.app as app

    [english] = await app.chat_profiles(language="en-US")
    [ukrainian] = await app.chat_profiles(language="uk-UA")
    assert english.markdown_description.startswith("I teach LLM fine-tuning")
    assert ukrainian.markdown_description.startswith("Я навчаю тонкого налаштування")
    assert (await app.starters(language="de-DE"))[0].label == "What is fine-tuning?", "English is the default"
    labels = [starter.label for starter in await app.starters(language="uk-UA")]
    assert len(labels) == 5 and all(question_language(label) == "uk" for label in labels)

    shipped = Path(chainlit.__file__).parent / "translations" / "en-US.json"
    ours = KNOWLEDGE.parent / ".chainlit" / "translations" / "uk.json"

    def keys(tree, prefix=""):
        return {k for key, value in tree.items()
                for k in (keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key})}

    assert keys(json.loads(ours.read_text(encoding="utf-8"))) == keys(json.loads(shipped.read_text(encoding="utf-8")))
    assert (KNOWLEDGE.parent / "chainlit_uk-UA.md").read_text(encoding="utf-8").startswith("# ")
