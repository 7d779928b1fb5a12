"""End to end in a real browser: starters, a streamed grounded answer with sources, the check."""

import time

import pytest

from assistant.tutor.decision import QUESTIONS
from tests.browser.conftest import MODEL, UI, logged_in, say

pytestmark = pytest.mark.browser


def test_a_starter_gets_a_streamed_answer_with_sources(page):
    page.locator('[id="starter-what-is-lora?"]').click()
    answer = page.locator(".step").filter(has_text="Low-Rank Adaptation").last
    answer.wait_for(timeout=MODEL)
    # Streaming: the passage is on screen before the answer has finished (its sources come last).
    seen_before_sources = False
    deadline = time.time() + MODEL / 1000
    while time.time() < deadline:
        text = answer.inner_text()
        if "Sources" in text:
            break
        seen_before_sources = True
        time.sleep(0.05)
    assert seen_before_sources, "the answer appeared all at once"
    text = answer.inner_text()
    assert "knowledge/lora-qlora-peft.md" in text and "low-rank" in text.lower()


def test_the_check_starter_asks_questions_with_buttons(page):
    page.locator('[id="starter-should-i-fine-tune?"]').click()
    page.get_by_text("What should the model do better?").wait_for(timeout=UI)
    page.get_by_role("button", name="Follow a fixed output format or style").click()
    page.get_by_text("Have you tried careful prompt engineering").wait_for(timeout=UI)
    answered = page.locator(".step").filter(has_text="What should the model do better?").last
    assert "➡️" in answered.inner_text()  # the answer is recorded under its question


def test_typing_a_question_in_the_composer(page):
    say(page, "What is catastrophic forgetting?")
    answer = page.locator(".step").filter(has_text="Sources").last
    answer.wait_for(timeout=MODEL)
    assert "knowledge/overfitting-and-forgetting.md" in answer.inner_text()


def test_prepare_the_recipe_dataset_from_the_sample(page):
    page.locator('[id="starter-prepare-recipe-dataset"]').click()
    page.get_by_role("button", name="Use the bundled sample").click()
    ready = page.locator(".step").filter(has_text="Dataset ready").last
    ready.wait_for(timeout=MODEL)
    text = ready.inner_text()
    assert "train" in text and "No format errors found" in text and "epochs" in text
    assert page.get_by_text("validation.jsonl").count() >= 1  # the downloads

    page.get_by_role("button", name="See what is trained").click()  # the custom element renders its tokens
    view = page.locator("#token-view").last
    view.wait_for(timeout=UI)
    trained = "".join(view.locator('[data-kind="trained"]').all_inner_texts())
    assert trained.startswith('["') and "<|im_end|>" in trained
    assert "Title:" in "".join(view.locator('[data-kind="context"]').all_inner_texts())
    page.get_by_role("button", name="Next example ▶").wait_for()


def open_ab_chat(page):
    say(page, "/compare")
    page.get_by_role("button", name="run-browser (local-adapter)").click()
    page.get_by_role("button", name="RAG baseline (base model + 3 retrieved examples)").click()
    page.get_by_role("button", name="Try a held-out recipe").wait_for(timeout=MODEL)


def try_a_held_out_recipe(page):
    page.get_by_role("button", name="Try a held-out recipe").click()
    return page.locator("#ab-compare").last


def test_ab_chat_shows_two_answers_side_by_side(page):
    open_ab_chat(page)
    compare = try_a_held_out_recipe(page)
    compare.wait_for(timeout=UI)
    stats = compare.locator(".ab-stats")
    stats.nth(1).wait_for(timeout=MODEL)  # both sides finished
    assert stats.count() == 2
    answers = compare.locator(".ab-answer").all_inner_texts()
    assert len(answers) == 2 and all(a.strip() for a in answers)
    a_stats, b_stats = stats.all_inner_texts()
    assert "F1" in a_stats and "F1" in b_stats and "prompt" in a_stats
    page.get_by_role("button", name="A is better").click()
    page.get_by_text("Vote recorded").wait_for(timeout=UI)


def streaming_sides(compare) -> int:
    """Sides that have shown some text and are still going (the cursor ▍ is there until a side is done)."""
    return sum(text.strip() not in ("", "▍") and "▍" in text for text in compare.locator(".ab-answer").all_inner_texts())


def test_two_sessions_ab_at_the_same_time(browser, app_url):
    """Two learners share one engine, queued fairly: both sessions stream at the same time."""
    contexts, pages = zip(*(logged_in(browser, app_url, "alice") for _ in range(2)))
    try:
        for page in pages:
            open_ab_chat(page)
        first, second = (try_a_held_out_recipe(page) for page in pages)
        # A side's display lags by at most one refresh (0.25 s): served one after the other, both
        # sessions would look busy at most around a hand-over, not for many polls in a row.
        both_streaming = polls = 0
        deadline = time.time() + MODEL / 1000
        while time.time() < deadline and sum(c.locator(".ab-stats").count() for c in (first, second)) < 4:
            both_streaming += streaming_sides(first) > 0 and streaming_sides(second) > 0
            polls += 1
            time.sleep(0.1)
        for compare in (first, second):
            assert compare.locator(".ab-stats").count() == 2
            assert all(a.strip() for a in compare.locator(".ab-answer").all_inner_texts())
        assert both_streaming >= 10, f"both sessions streamed together in only {both_streaming} of {polls} polls"
    finally:
        for context in contexts:
            context.close()


def test_a_ukrainian_browser_gets_the_app_in_ukrainian(browser, app_url):
    """Accept-Language uk-UA: Chainlit's own UI (uk.json), the starters, the check and the app's buttons."""
    context, page = logged_in(browser, app_url, "alice", locale="uk-UA")
    try:
        page.get_by_text("Чи варто донавчати?").click()
        page.get_by_text("Що модель має робити краще?").last.wait_for(timeout=UI)
        page.get_by_role("button", name=QUESTIONS[0].in_language("uk").option("format").label).wait_for()
        say(page, "/prepare")
        page.get_by_role("button", name="Взяти доданий зразок").wait_for(timeout=UI)
        assert page.locator("#chat-input").get_attribute("placeholder") == "Введіть повідомлення..."
    finally:
        context.close()
