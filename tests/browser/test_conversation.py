"""A conversation with the tutor in a real browser: the six turns a learner typed on 2026-12-06 (pronouns, a topic
switch, "why", "simpler", "an example"), each answered from the right section of the notes, and each answer's side
panel holding that answer's passages."""

import pytest

from tests.browser.conftest import MODEL, UI, click_until, say

pytestmark = pytest.mark.browser

CONVERSATION = [
    ("What is LoRA?", "knowledge/lora-qlora-peft.md › What LoRA is"),
    ("How do I choose its rank?", "knowledge/hyperparameters.md › LoRA rank"),
    ("And what does QLoRA add to it?", "knowledge/lora-qlora-peft.md › QLoRA"),
    ("Why does that save memory?", "knowledge/lora-qlora-peft.md › QLoRA"),
    ("Can you say that more simply?", "knowledge/lora-qlora-peft.md › QLoRA"),
    ("Give me an example with my recipe dataset.", "knowledge/recipe-assistant-walkthrough.md › An example recipe"),
]


def test_six_turns_each_from_the_right_section_with_its_own_side_panel(page):
    for number, (question, source) in enumerate(CONVERSATION, 1):
        say(page, question)
        answer = page.locator(".step").filter(has_text=f"full passages {number})").last
        answer.wait_for(timeout=MODEL)
        text = answer.inner_text()
        assert f"[1] {source}" in text, (question, text[-600:])
        assert "couldn't find" not in text

    # Each answer's panel shows that answer's passages: the first one's, then the last one's.
    for number, (_, source) in ((1, CONVERSATION[0]), (6, CONVERSATION[-1])):
        page.locator(".element-link").filter(has_text=f"full passages {number}").last.click()
        panel = page.locator("#side-view-content")
        panel.get_by_text(f"[1] {source}").first.wait_for(timeout=UI)
        assert panel.inner_text().count("[1] ") == 1, "one answer's passages, not another's"


def test_check_my_understanding_runs_a_three_question_quiz_with_hints(page):
    say(page, "What is LoRA?")
    page.locator(".step").filter(has_text="full passages 1)").last.wait_for(timeout=MODEL)
    click_until(page.get_by_role("button", name="Check my understanding").last, page.get_by_text("1/3").first)
    say(page, "I am not sure.")  # a wrong answer gets a hint first, not the answer
    page.get_by_text("Hint:").first.wait_for(timeout=UI)
    assert page.get_by_text("Model answer:").count() == 0
    say(page, "No idea, really.")  # the second try shows the answer and its source, then the next question
    page.get_by_text("Model answer:").first.wait_for(timeout=UI)
    page.get_by_text("2/3").first.wait_for(timeout=UI)
    give_up = page.get_by_role("button", name="Give up").last
    click_until(give_up, page.get_by_text("3/3").first)
    click_until(give_up, page.get_by_text("Quiz done: 0 of 3 right."))
    assert page.get_by_text("Source:").count() >= 3 and page.get_by_text("What next:").count() == 1
