"""Checks of understanding (assistant/tutor/quiz.py): the question banks, offline grading in English and Ukrainian, a hint
before the answer, progress kept per learner in the registry, `tutor quiz --json`, and the quiz in chat."""

import json
import os
import re
import sqlite3
import subprocess
import sys

import chainlit as cl
import pytest
from pydantic import ValidationError

from assistant.chat import quiz_flow
from assistant.i18n import text
from assistant.retrieval.knowledge import Passage
from assistant.tutor.quiz import (
    PHRASES,
    QuizSession,
    covered,
    feedback,
    load_bank,
    pick,
    what_next,
)
from assistant.tutor.quiz_grading import clauses, grade, says, words
from tests.chainlit_harness import open_chat
from tests.conftest import MODEL_CACHE
from training.base.records import QuizAnswer
from training.base.registry import LOCAL_USER, Registry, registry_for
from training.base.registry_schema import VERSION
from training.base.settings import PROJECT_ROOT, get_settings

EN, UK = load_bank("en"), load_bank("uk")
MAIN_TOPICS = {"lora-qlora-peft", "overfitting-and-forgetting", "hyperparameters", "chat-jsonl-format",
               "when-to-fine-tune", "evaluation", "what-is-fine-tuning", "what-you-need", "deployment-and-cost",
               "supervised-vs-unsupervised", "alternatives", "recipe-assistant-walkthrough"}


def graded(bank, key: str, answer: str):
    question = bank.question(key)
    return grade(question.question, question.facts, answer, bank.language)


def headings(path: str) -> list[str]:
    return re.findall(r"^#+ (.+)$", (PROJECT_ROOT / path).read_text(encoding="utf-8"), re.M)


# --- the banks --------------------------------------------------------------------------------------------

def test_both_banks_ask_the_same_questions_on_every_main_topic_with_sources_that_exist():
    assert [q.key for q in EN.questions] == [q.key for q in UK.questions]
    assert list(EN.topics) == list(UK.topics) and set(EN.topics) >= MAIN_TOPICS
    for topic in EN.topics:
        assert sum(q.topic == topic for q in EN.questions) >= 3, topic
    for english, ukrainian in zip(EN.questions, UK.questions):
        assert english.topic == ukrainian.topic and len(english.facts) == len(ukrainian.facts), english.key
        assert english.source.path == f"knowledge/{english.topic}.md", english.key
        assert ukrainian.source.path == f"knowledge/uk/{english.topic}.md", english.key
        for source in (english.source, ukrainian.source):
            assert source.heading in headings(source.path), f"{english.key}: no heading {source}"
        # the same section in both languages, as the notes keep their headings in step (a section may repeat its
        # file's title: the last heading of that name is the section)
        assert [max(i for i, h in enumerate(headings(s.path)) if h == s.heading)
                for s in (english.source, ukrainian.source)] in ([i, i] for i in range(50)), english.key


def test_every_model_answer_is_right_and_each_fact_is_itself_alone_and_no_hint_or_question_gives_it_away():
    from assistant.retrieval.embeddings import sentences

    # Every clause MiniLM will compare, embedded in one batch first (the same vectors; a hundred one-clause calls took
    # 30 s on a busy 2-core machine, one batch a few).
    sentences.encode([c for q in EN.questions for text in (q.hint, q.question, *(f.fact for f in q.facts))
                      for c in clauses(text)] + [f.fact for q in EN.questions for f in q.facts])
    for bank in (EN, UK):
        for question in bank.questions:
            assert graded(bank, question.key, question.answer).grade == "right", (bank.language, question.key)
            for fact in question.facts:  # saying one fact is credit for that one, not for a neighbour
                assert graded(bank, question.key, fact.fact).found == (fact.fact,), (bank.language, fact.fact)
            assert graded(bank, question.key, question.hint).grade != "right", (bank.language, question.key)
            assert graded(bank, question.key, question.question).grade == "wrong", (bank.language, question.key)


def test_the_quiz_texts_exist_in_both_languages_with_the_same_fields():
    def fields(template: str) -> set[str]:
        return set(re.findall(r"\{(\w+)", template))

    assert set(PHRASES["en"]) == set(PHRASES["uk"])
    for key, english in PHRASES["en"].items():
        assert fields(english) == fields(PHRASES["uk"][key]), key
        if re.search(r"[A-Za-z]{3}", re.sub(r"\{\w+\}", "", english)):
            assert re.search(r"[а-яіїєґ]{3}", PHRASES["uk"][key]), key


# --- grading ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bank, answer, verdict, found", [
    (EN, "The original weights are kept frozen; we only train two small low-rank matrices, scaled by alpha over r.",
     "right", 3),
    (EN, "It keeps W fixed and learns a small update made of two thin matrices; alpha sets its strength.", "right", 3),
    (EN, "LoRA trains a low rank update.", "partly", 1),
    (EN, "LoRA updates all the weights of the model.", "wrong", 0),
    (EN, "The weights are not frozen: every weight is updated.", "wrong", 0),
    (UK, "Базові ваги заморожені, а навчаються лише дві малі низькорангові матриці A і B; оновлення масштабують на "
         "alpha / r.", "right", 3),
    (UK, "Ваги W не змінюються, модель вчить дві матриці.", "partly", 2),
    (UK, "LoRA оновлює всі ваги моделі.", "wrong", 0),
    (UK, "Ваги не заморожені.", "wrong", 0),
])
def test_an_answer_is_graded_by_its_key_facts(bank, answer, verdict, found):
    result = graded(bank, "lora-how", answer)
    facts = [fact.fact for fact in bank.question("lora-how").facts]
    assert (result.grade, len(result.found)) == (verdict, found), result
    assert sorted(result.found + result.missing) == sorted(facts)


@pytest.mark.parametrize("bank, answer, verdict", [
    (EN, "The validation loss starts going up while the training loss keeps going down.", "right"),
    (EN, "The validation loss gets higher.", "partly"),
    (EN, "The training loss increases and the validation loss decreases.", "wrong"),
    (EN, "Training loss goes up and validation loss goes down.", "wrong"),
    (EN, "Validation loss goes down while training loss goes up.", "wrong"),
    (EN, "The training loss rises.", "wrong"),
    (UK, "Втрати на валідаційній вибірці починають зростати, а на навчальній продовжують падати.", "right"),
    (UK, "Валідаційні втрати зростають.", "partly"),
    (UK, "Втрати на навчальній зростають, на валідаційній падають.", "wrong"),
])
def test_the_loss_curves_the_wrong_way_round_are_wrong(bank, answer, verdict):
    assert graded(bank, "overfitting-curves", answer).grade == verdict


def test_a_keyword_is_said_in_order_in_one_clause_and_not_negated():
    assert says(words("Just lower the base learning rate."), "lower the learning rate")
    assert says(words("Зменште швидкість навчання."), "зменшити швидкість навчання")  # by stem: зменш-
    assert not says(words("Lower your costs. The learning rate stays."), "lower the learning rate")
    assert not says(words("The learning rate: lower"), "lower the learning rate")
    assert not says(words("Do not lower the learning rate."), "lower the learning rate")
    assert says(words("W is not changed"), "not changed") and not says(words("W is not small, it is changed"),
                                                                         "not changed")


def test_meaning_finds_a_paraphrase_but_not_its_opposite():
    assert graded(EN, "fixing-overfitting", "Use fewer epochs, get more diverse data and lower the learning rate."
                  ).grade == "right"
    assert graded(EN, "fixing-overfitting", "Raise the learning rate and train for more epochs.").grade == "wrong"
    assert graded(EN, "fixing-overfitting", "Use more epochs.").grade == "wrong"
    assert graded(EN, "rag-limits", "RAG brings in up-to-date facts but can't teach the model a new output format."
                  ).grade == "right"
    assert graded(EN, "rag-limits", "RAG teaches the model a new format.").grade == "wrong"
    assert graded(EN, "weight-field", "It weights the loss of that message by a float between 0 and 1."
                  ).grade == "wrong"


# --- a quiz: the hint first, then the answer --------------------------------------------------------------

def test_a_short_answer_gets_the_hint_first_and_the_model_answer_only_on_the_second_try():
    session = QuizSession(language="en", questions=["lora-how", "qlora"])
    question = EN.question("lora-how")
    first = session.answer("LoRA trains a low rank update")
    shown = feedback(first)
    assert not first.finished and session.tries == 1 and session.position == 0
    assert "🟡 **Partly right:** you named it trains two small low-rank matrices." in shown
    assert f"💡 **Hint:** {question.hint}" in shown and question.answer not in shown and "Source" not in shown
    assert first.as_json()["hint"] == question.hint and "answer" not in first.as_json()

    again = QuizSession.model_validate(session.model_dump())  # as a chat keeps it between messages
    second = again.answer("still no idea")
    shown = feedback(second)
    assert second.finished and second.attempt == 2 and again.position == 1 and again.tries == 0
    assert f"**Model answer:** {question.answer}" in shown
    assert "_Source: knowledge/lora-qlora-peft.md › What LoRA is and how it works_" in shown
    assert "**Missing:** the pre-trained weights stay frozen; it trains two small low-rank matrices; the update is " \
           "scaled by alpha over r." in shown
    gave_up = again.give_up()
    assert gave_up.finished and gave_up.graded is None and again.done and again.results == ["wrong", "gave_up"]


@pytest.mark.parametrize("state", [
    {"language": "en", "questions": ["not-a-question"]},
    {"language": "fr", "questions": ["lora-how"]},
    {"language": "en", "questions": ["lora-how"], "position": 5},
    {"language": "en", "questions": ["lora-how"], "tries": 2},
    {"language": "en", "questions": ["lora-how"], "owner": "u-alice"},
])
def test_a_quiz_state_that_does_not_fit_the_bank_is_refused(state):
    with pytest.raises(ValidationError):
        QuizSession.model_validate(state)


def answered(question: str, topic: str, grade: str) -> QuizAnswer:
    """A learner's graded answer, as the registry keeps it."""
    return QuizAnswer(question=question, topic=topic, grade=grade, language="en", attempt=1, answered_at=0.0)


def test_questions_follow_the_topic_or_what_was_discussed_and_what_next_follows_progress():
    assert [q.key for q in pick(EN, [], topic="lora")] == ["lora-how", "qlora", "lora-adapters"]
    assert [q.key for q in pick(UK, [], topic="перенавчання")][0] == "overfitting-curves"
    about = [Passage("knowledge/uk/evaluation.md", "Відкладіть тестову вибірку", "...")]
    assert [q.key for q in pick(UK, [], about=about)][:1] == ["test-split"]
    rows = [answered("lora-how", "lora-qlora-peft", "right"), answered("qlora", "lora-qlora-peft", "partly")]
    assert [q.key for q in pick(EN, rows, topic="lora-qlora-peft")] == ["qlora", "lora-adapters", "lora-how"]
    [lora] = covered(EN, rows)
    assert (lora.answered, lora.right, lora.questions, lora.best) == (2, 1, 3, "right")
    assert what_next(EN, []) == what_next(EN, rows) == "what-is-fine-tuning"
    everything = [answered(q.key, q.topic, "right") for q in EN.questions if q.key != "epochs"]
    assert what_next(EN, everything) == "hyperparameters", "all covered: the weakest topic next"


# --- progress per learner ---------------------------------------------------------------------------------

def test_progress_is_each_learners_own(tmp_path):
    registry = Registry(tmp_path / "registry.sqlite")
    registry.record_quiz_answer("u-alice", "lora-how", "lora-qlora-peft", "partly", 1, "en")
    registry.record_quiz_answer("u-alice", "lora-how", "lora-qlora-peft", "right", 2, "en")
    registry.record_quiz_answer("u-bob", "qlora", "lora-qlora-peft", "wrong", 1, "uk")
    assert [(r.question, r.grade, r.attempt) for r in registry.quiz_progress("u-alice")] == [
        ("lora-how", "partly", 1), ("lora-how", "right", 2)]
    assert [r.question for r in registry.quiz_progress("u-bob")] == ["qlora"]
    assert registry.quiz_progress("u-forged") == [] and registry.quiz_progress(LOCAL_USER) == []
    with pytest.raises(ValueError, match="one learner's"):
        registry.quiz_progress(None)  # no "everyone's" view, not even for an admin
    with pytest.raises(ValueError, match="grade"):
        registry.record_quiz_answer("u-bob", "qlora", "lora-qlora-peft", "brilliant", 1, "en")
    assert registry.transfer("u-alice", "u-carol")["quiz_answers"] == 2
    assert registry.quiz_progress("u-alice") == [] and len(registry.quiz_progress("u-carol")) == 2


def test_a_version_3_registry_gains_the_quiz_table_and_keeps_its_rows(tmp_path):
    registry = Registry(tmp_path / "registry.sqlite")
    registry.add_dataset("kept", {}, {}, owner="u-alice")
    with sqlite3.connect(tmp_path / "registry.sqlite") as db:
        db.executescript("DROP TABLE quiz_answers; PRAGMA user_version = 3;")
    upgraded = Registry(tmp_path / "registry.sqlite")
    upgraded.record_quiz_answer("u-alice", "sft", "supervised-vs-unsupervised", "right", 1, "en")
    assert len(upgraded.quiz_progress("u-alice")) == 1 and upgraded.datasets("u-alice")[0].name == "kept"
    with sqlite3.connect(tmp_path / "registry.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION == 4


# --- `tutor quiz --json` ----------------------------------------------------------------------------------

def test_quiz_json_grades_each_line_and_records_the_local_learners_progress(tmp_path):
    answers = ["LoRA trains a low rank update",  # partly: the hint
               "The weights stay frozen and two small low-rank matrices are trained, scaled by alpha over r",
               "",  # gives up on QLoRA
               "no idea", "still none"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHROMA_", "TUTOR_", "AZURE_"))}
    env.update({"TUTOR_DATA_DIR": str(tmp_path / "data"), "TUTOR_CACHE_DIR": str(MODEL_CACHE)})
    result = subprocess.run([sys.executable, "-m", "assistant.cli.main", "quiz", "--topic", "lora", "--json"],
                            input="\n".join(answers) + "\n", capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    *turns, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(t["question"], t["attempt"], t["grade"]) for t in turns] == [
        ("lora-how", 1, "partly"), ("lora-how", 2, "right"), ("qlora", 1, "gave_up"),
        ("lora-adapters", 1, "wrong"), ("lora-adapters", 2, "wrong")]
    assert turns[0]["hint"] == EN.question("lora-how").hint and "answer" not in turns[0]
    assert turns[0]["found"] == ["it trains two small low-rank matrices"] and len(turns[0]["missing"]) == 2
    assert turns[1]["answer"] == EN.question("lora-how").answer and "hint" not in turns[1]
    assert turns[1]["source"] == "knowledge/lora-qlora-peft.md › What LoRA is and how it works"
    assert summary["summary"]["right"] == 1 and summary["summary"]["next"] == "what-is-fine-tuning"
    registry = Registry(tmp_path / "data" / "registry.sqlite")
    assert [r.grade for r in registry.quiz_progress(LOCAL_USER)] == ["partly", "right", "wrong", "wrong"]


# --- the quiz in chat -------------------------------------------------------------------------------------

@pytest.fixture
def registry(chat_env):  # noqa: F811 - the app's settings from a fresh data dir (tests/test_compare.py)
    return registry_for(get_settings())


async def press(chat, message: dict, name: str) -> None:
    [button] = [a for a in chat.actions_for(message["id"]) if a["name"] == name]
    callback = {"quiz_give_up": quiz_flow.on_give_up, "check_understanding": quiz_flow.on_check_understanding}[name]
    await callback(cl.Action(name=name, payload=button["payload"], id=button["id"]))


async def test_a_three_question_quiz_in_chat_hints_then_answers_and_keeps_the_learners_progress(registry):
    alice = registry.add_user("alice", None).id
    chat = open_chat("alice")
    await quiz_flow.quiz_command("/quiz lora")
    intro, asked = chat.messages[-2:]
    assert intro["output"].startswith("**Check of understanding: LoRA, QLoRA and PEFT.** 3 questions")
    assert asked["output"] == "**1/3** · How does LoRA work: what is trained, and what stays unchanged?"

    assert await quiz_flow.answer_quiz("LoRA trains a low rank update")
    hint = chat.messages[-1]
    assert "Partly right" in hint["output"] and "💡 **Hint:**" in hint["output"]
    assert "Model answer" not in hint["output"] and not chat.actions_for(asked["id"]), "the old button is gone"
    assert await quiz_flow.answer_quiz("W stays frozen; two small low-rank matrices are trained, scaled by alpha")
    answered, second = chat.messages[-2:]
    assert answered["output"].startswith("✅ **Right!**") and "_Source: knowledge/lora-qlora-peft.md › " in \
        answered["output"]
    assert second["output"].startswith("**2/3** · What does QLoRA add to LoRA")

    await press(chat, second, "quiz_give_up")
    gave_up, third = chat.messages[-2:]
    assert gave_up["output"].startswith("You gave up") and EN.question("qlora").answer in gave_up["output"]
    assert await quiz_flow.answer_quiz("no idea") and "Hint" in chat.messages[-1]["output"]
    assert await quiz_flow.answer_quiz("still none")
    last, summary = chat.messages[-2:]
    assert EN.question("lora-adapters").answer in last["output"] and third["output"].startswith("**3/3**")
    assert summary["output"].startswith("**Quiz done: 1 of 3 right.**")
    assert "- LoRA, QLoRA and PEFT: 1 of 3 questions right, 2 answered (best: right)" in summary["output"]
    [next_topic] = chat.actions_for(summary["id"])
    assert next_topic["payload"] == {"topic": "what-is-fine-tuning"}
    assert not await quiz_flow.answer_quiz("what is LoRA?"), "after the quiz, the tutor answers again"
    assert [(r.question, r.grade) for r in registry.quiz_progress(alice)] == [
        ("lora-how", "partly"), ("lora-how", "right"), ("lora-adapters", "wrong"), ("lora-adapters", "wrong")]

    registry.add_user("bob", None)
    bob = open_chat("bob", language="uk-UA")  # another learner sees none of it, in his own language
    await quiz_flow.quiz_command("/quiz progress")
    assert bob.messages[-1]["output"].startswith("Поки що нічого не пройдено."), bob.messages[-1]["output"]
    for forged in ({"topic": "lora-qlora-peft", "learner": alice}, {"topic": "../../etc/passwd"},
                   {"questions": ["not-a-question"]}, {"topic": "evaluation", "questions": ["sft"] * 4}):
        await quiz_flow.on_check_understanding(cl.Action(name="check_understanding", payload=forged))
        assert bob.messages[-1]["output"] == text("actions.refused", "uk"), forged
    assert cl.user_session.get("quiz") is None and registry.quiz_progress(registry.user("bob").id) == []


async def test_the_button_under_an_answer_quizzes_on_what_it_discussed(registry):
    chat = open_chat(language="uk-UA")
    answer = cl.Message(content="...")
    quiz_flow.offer_check(answer, [Passage("knowledge/uk/overfitting-and-forgetting.md", "Як виправити перенавчання",
                                           "..."), Passage("knowledge/uk/glossary.md", "Терміни", "...")], "uk")
    [button] = answer.actions
    assert button.label == "Перевірити моє розуміння"
    assert button.payload == {"topic": "overfitting-and-forgetting", "questions": ["fixing-overfitting"]}
    await answer.send()
    await press(chat, chat.messages[-1], "check_understanding")
    assert chat.messages[-1]["output"] == "**1/3** · Назвіть три способи виправити перенавчання."
    assert await quiz_flow.answer_quiz("Менше епох, більше різноманітних даних і нижча швидкість навчання.")
    assert chat.messages[-2]["output"].startswith("✅ **Правильно!**")
    await quiz_flow.quiz_command("/quiz stop")
    assert chat.messages[-1]["output"].startswith("Перевірку зупинено") and cl.user_session.get("quiz") is None
    await quiz_flow.quiz_command("/quiz")  # a plain /quiz: on what the last answer discussed
    assert chat.messages[-1]["output"].startswith("**1/3** · Назвіть три способи")
