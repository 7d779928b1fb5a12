"""The "Should I fine-tune?" check: verdicts follow the answers, and every answer gives a reason, in English and
in Ukrainian (the chat's browser language, or `tutor check --language uk`)."""

import itertools
import re

import chainlit as cl
import pytest
from typer.testing import CliRunner

import assistant.chat.app as app
from assistant.cli.main import app as cli
from assistant.i18n import LANGUAGES
from assistant.tutor.decision import PHRASES, QUESTIONS, WORDS, next_question, recommend
from tests.chainlit_harness import open_chat, user_says

STRONG_CASE = {"use_case": "format", "prompting": "yes_short", "few_shot": "few_long", "rag": "not_needed",
               "model": "available", "data": "hundreds", "effort": "moderate", "benefit": "cost"}


def test_questions_cover_use_case_alternatives_costs_and_benefits():
    topics = " ".join(q.topic for q in QUESTIONS).lower()
    for part in ("use case", "prompt", "few-shot", "rag", "model availability", "data", "effort", "benefit"):
        assert part in topics


def test_a_strong_case_recommends_fine_tuning_with_all_reasons():
    result = recommend(STRONG_CASE)
    assert result.verdict == "Yes, fine-tune"
    assert not result.blockers
    assert len(result.reasons) == len(QUESTIONS)
    assert any("tokens" in reason for reason in result.reasons)  # the few-shot cost argument


def test_no_baseline_blocks_a_yes():
    result = recommend({**STRONG_CASE, "prompting": "no"})
    assert result.verdict == "Not yet"
    assert any("baseline" in blocker for blocker in result.blockers)
    assert "First, fix these" in result.as_markdown()


def test_facts_problem_solved_by_rag_points_away_from_fine_tuning():
    result = recommend({**STRONG_CASE, "use_case": "facts", "rag": "rag_helps", "prompting": "yes_good"})
    assert result.verdict == "Probably not"
    assert any("retrieval" in reason.lower() for reason in result.reasons)


def test_too_little_data_and_unavailable_model_are_both_blockers():
    result = recommend({**STRONG_CASE, "data": "few", "model": "unavailable"})
    assert result.verdict == "Not yet" and len(result.blockers) == 2


def test_incomplete_or_invalid_answers_are_rejected():
    with pytest.raises(ValueError, match="unanswered"):
        recommend({"use_case": "format"})
    with pytest.raises(KeyError):
        recommend({**STRONG_CASE, "data": "a-million"})


def test_next_question_walks_in_order():
    answers = {}
    seen = []
    while question := next_question(answers):
        seen.append(question.key)
        answers[question.key] = question.options[0].key
    assert seen == [q.key for q in QUESTIONS]


# --- In Ukrainian --------------------------------------------------------------------------------

def is_ukrainian(text: str) -> bool:
    """Mostly Cyrillic letters, once file paths, `code` and {fields} are left out."""
    words = re.sub(r"`[^`]*`|knowledge/\S+|\{\w+\}", "", text)
    return len(re.findall(r"[а-яіїєґ]", words, re.I)) > len(re.findall(r"[a-z]", words, re.I))


def every_text(question) -> list[str]:
    return [question.topic, question.text, *(t for o in question.options for t in (o.label, o.reason))]


def test_every_question_and_option_has_its_own_ukrainian():
    expected = {f"{q.key}.{text}" for q in QUESTIONS for text in ("topic", "text")} | {
        f"{q.key}.{o.key}.{text}" for q in QUESTIONS for o in q.options for text in ("label", "reason")}
    assert set(WORDS["uk"]) == expected, "a question or option lacks its Ukrainian, or a translation lost its item"
    for question in QUESTIONS:
        english, ukrainian = every_text(question), every_text(question.in_language("uk"))
        for en, uk in zip(english, ukrainian):
            assert uk != en and is_ukrainian(uk), f"not Ukrainian: {uk!r}"


def test_every_fixed_sentence_has_its_own_ukrainian():
    assert set(LANGUAGES) == set(PHRASES)
    assert set(PHRASES["uk"]) == set(PHRASES["en"])
    for key, uk in PHRASES["uk"].items():
        assert uk != PHRASES["en"][key] and is_ukrainian(uk), f"{key} is not Ukrainian: {uk!r}"
        assert re.findall(r"\{\w+\}", uk) == re.findall(r"\{\w+\}", PHRASES["en"][key]), key


def test_a_translation_changes_texts_only():
    for question in QUESTIONS:
        shown = question.in_language("uk")
        assert shown.key == question.key
        assert [(o.key, o.score, o.blocker) for o in shown.options] == [
            (o.key, o.score, o.blocker) for o in question.options]
        assert question.in_language("en") == question == question.in_language("fr")  # English by default


def test_ukrainian_gets_the_same_verdict_for_every_set_of_answers():
    outcomes = set()
    for values in itertools.product(*([o.key for o in q.options] for q in QUESTIONS)):
        answers = dict(zip((q.key for q in QUESTIONS), values))
        english, ukrainian = recommend(answers), recommend(answers, language="uk")
        assert (ukrainian.outcome, ukrainian.score, len(ukrainian.reasons), len(ukrainian.blockers)) == (
            english.outcome, english.score, len(english.reasons), len(english.blockers))
        outcomes.add(english.outcome)
    assert outcomes == {"yes", "maybe", "no", "not_yet"}


@pytest.mark.parametrize("answers", [STRONG_CASE, {**STRONG_CASE, "prompting": "no", "data": "few"},
                                     {**STRONG_CASE, "use_case": "facts", "rag": "rag_helps"},
                                     {**STRONG_CASE, "benefit": "unclear", "effort": "low"}])
def test_the_ukrainian_recommendation_is_all_ukrainian(answers):
    result = recommend(answers, language="uk")
    assert result.verdict == PHRASES["uk"][f"verdict.{recommend(answers).outcome}"]
    markdown = result.as_markdown()
    for line in filter(None, markdown.splitlines()):
        assert is_ukrainian(line), f"not Ukrainian: {line!r}"
    assert not any(en in markdown for en in PHRASES["en"].values())
    assert ("Спершу розв'яжіть це" in markdown) == bool(result.blockers)


# --- In the chat and the CLI -----------------------------------------------------------------------

async def walk_the_check(chat, answers: dict[str, str]) -> list[tuple[dict, list[dict]]]:
    """Start the check as the app does, press the buttons it sent for `answers`; each question and its buttons."""
    await app.on_message(user_says("/check", command="check"))
    asked = []
    for _ in QUESTIONS:
        question = chat.messages[-1]
        buttons = chat.actions_for(question["id"])
        asked.append((question, buttons))
        [pressed] = [b for b in buttons if b["payload"]["option"] == answers[b["payload"]["question"]]]
        await app.on_check_answer(cl.Action(**{k: pressed[k] for k in ("name", "payload", "label", "id")}))
    return asked


async def test_a_ukrainian_chat_gets_the_check_in_ukrainian():
    chat = open_chat(language="uk-UA")
    answers = {**STRONG_CASE, "data": "few"}
    asked = await walk_the_check(chat, answers)
    assert chat.messages[0]["output"] == PHRASES["uk"]["check.intro"]
    for number, (question, (message, buttons)) in enumerate(zip(QUESTIONS, asked), 1):
        shown = question.in_language("uk")
        assert message["output"].startswith(f"**{number}/{len(QUESTIONS)} · {shown.topic}**\n\n{shown.text}")
        assert is_ukrainian(message["output"])
        assert [b["label"] for b in buttons] == [o.label for o in shown.options]
        assert all(is_ukrainian(b["label"]) for b in buttons)
        # Payloads carry keys only, the same in every language.
        keys = [{"question": question.key, "option": o.key} for o in question.options]
        assert [b["payload"] for b in buttons] == keys
        chosen = shown.option(answers[question.key]).label
        assert chat.steps[message["id"]]["output"].endswith(f"➡️ **{chosen}**")
    verdict = chat.messages[-1]["output"]
    assert verdict == recommend(answers, language="uk").as_markdown()
    assert verdict.startswith("## Ще ні") and "Спершу розв'яжіть це" in verdict and "Менше 10 прикладів" in verdict
    await app.on_check_answer(cl.Action(name="check_answer", payload={"question": "use_case", "option": "format"}))
    assert chat.messages[-1]["output"] == PHRASES["uk"]["check.stale"]


@pytest.mark.parametrize("language", [None, "en-US", "de-DE"])
async def test_other_chats_get_the_check_in_english(language):
    chat = open_chat(language=language)
    asked = await walk_the_check(chat, STRONG_CASE)
    assert chat.messages[0]["output"] == PHRASES["en"]["check.intro"]
    for question, (message, buttons) in zip(QUESTIONS, asked):
        assert question.topic in message["output"] and question.text in message["output"]
        assert [b["label"] for b in buttons] == [o.label for o in question.options]
    assert chat.messages[-1]["output"] == recommend(STRONG_CASE).as_markdown()
    assert chat.messages[-1]["output"].startswith("## Yes, fine-tune")


def test_the_cli_check_speaks_ukrainian_on_request_or_by_the_locale():
    runner, answers = CliRunner(), "1\n1\n1\n1\n1\n3\n2\n1\n"
    english_locale = {"LC_ALL": None, "LC_MESSAGES": None, "LANG": "en_GB.UTF-8"}
    ukrainian = runner.invoke(cli, ["check", "--language", "uk"], input=answers, env=english_locale)
    assert ukrainian.exit_code == 0, ukrainian.output
    assert "Сценарій використання: Що модель має робити краще?" in ukrainian.output
    assert "## Так, застосовуйте тонке налаштування" in ukrainian.output and "Ваша відповідь" in ukrainian.output
    english = runner.invoke(cli, ["check"], input=answers, env=english_locale)
    assert english.exit_code == 0 and "## Yes, fine-tune" in english.output
    by_locale = runner.invoke(cli, ["check"], input=answers, env={**english_locale, "LANG": "uk_UA.UTF-8"})
    assert by_locale.exit_code == 0 and by_locale.output == ukrainian.output, "LANG=uk_UA chooses Ukrainian"
    overridden = runner.invoke(cli, ["check", "--language", "en"], input=answers, env={"LC_ALL": "uk_UA.UTF-8"})
    assert overridden.output == english.output, "--language wins over the locale"
    assert runner.invoke(cli, ["check", "--language", "fr"]).exit_code == 2
