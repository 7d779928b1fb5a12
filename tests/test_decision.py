"""The "Should I fine-tune?" check: verdicts follow the answers, and every answer gives a reason."""

import pytest

from assistant.decision import QUESTIONS, next_question, recommend

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
