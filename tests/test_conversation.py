"""The tutor holding a conversation: follow-ups of each kind offline in English and Ukrainian, the remote path's
condensing with a bounded history, a resumed chat's conversation, and `tutor chat --json`."""

import json

import chainlit as cl
import pytest

import assistant.chat.app as app
from assistant.retrieval.knowledge import KnowledgeBase, Passage
from assistant.tutor.answers import Tutor
from assistant.tutor.conversation import HISTORY_TOKENS, MAX_TURNS, Conversation, Understood
from tests.chainlit_harness import open_chat, user_says
from tests.conftest import make_settings
from tests.helpers import run_tutor


@pytest.fixture(scope="module")
def tutor(tmp_path_factory, indexed_data_dir):
    settings = make_settings(indexed_data_dir, chat_backend="local")
    return Tutor(settings, KnowledgeBase(settings))


async def talk(tutor: Tutor, *questions: str) -> list[dict]:
    """Each question as the next turn of one conversation: what it was taken as and answered from. Only requests
    about the last answer are read out (they are whole at once); the others' sources are known before streaming."""
    conversation, turns = Conversation(), []
    for question in questions:
        reply = await tutor.ask(question, conversation=conversation)
        if reply.understood.kind in ("simpler", "example", "why", "more", "shorter", "rephrase") or not reply.sources:
            async for _ in reply:
                pass
        reply.record(conversation)
        turns.append(reply.to_dict())
    return turns


def first(turn: dict) -> str:
    source = turn["sources"][0]
    return f"{source['path']} › {source['heading']}"


@pytest.mark.parametrize("questions, kind, expected", [
    (["What is LoRA?", "How do I choose its rank?"], "switch", "knowledge/hyperparameters.md › LoRA rank"),
    (["What is overfitting?", "How do I spot it in the loss curves?"], "switch",
     "knowledge/overfitting-and-forgetting.md › Spotting overfitting"),
    (["What is RAG?", "What are its limits?"], "follow_up", "knowledge/alternatives.md › Limits of RAG"),
    (["What learning rate should I use?", "And the batch size?"], "switch", "knowledge/hyperparameters.md › Batch size"),
    (["What is LoRA?", "And what does QLoRA add to it?"], "switch", "knowledge/lora-qlora-peft.md › QLoRA"),
    (["Що таке перенавчання?", "Як його помітити?"], "follow_up",
     "knowledge/uk/overfitting-and-forgetting.md › Як помітити"),
    (["Яку швидкість навчання обрати?", "А розмір батча?"], "switch", "knowledge/uk/hyperparameters.md › Розмір батча"),
    (["Що таке кероване тонке налаштування?", "А DPO?"], "switch",
     "knowledge/uk/supervised-vs-unsupervised.md › Налаштування на вподобаннях"),
], ids=["pronoun-its", "pronoun-it", "pronoun-limits", "ellipsis", "switch", "uk-pronoun",
        "uk-ellipsis", "uk-switch"])
async def test_a_follow_up_is_retrieved_with_the_conversation(tutor, questions, kind, expected):
    *_, turn = await talk(tutor, *questions)
    assert turn["understood_as"] == kind and turn["follow_up_of"] == len(questions) - 2
    assert first(turn).startswith(expected), turn["searched"]


async def test_a_new_topic_keeps_its_relation_to_the_last_one(tutor):
    *_, turn = await talk(tutor, "What is LoRA?", "And what does QLoRA add to it?")
    assert turn["searched"] == "And what does QLoRA add to LoRA?"


@pytest.mark.parametrize("questions, kind, expected, shows", [
    (["What learning rate should I use?", "And the batch size?", "Why does that matter?"], "why",
     "knowledge/hyperparameters.md › Batch size", "Why, in the notes' words"),
    (["What is LoRA?", "And what does QLoRA add to it?", "Why does that save memory?"], "why",
     "knowledge/lora-qlora-peft.md › QLoRA", "cuts the memory"),
    (["What is LoRA?", "How do I choose its rank?", "Can you say that more simply?"], "simpler",
     "knowledge/hyperparameters.md › LoRA rank", "**LoRA rank.** The LoRA rank"),
    (["What is LoRA?", "And what does QLoRA add to it?", "Give me an example with my recipe dataset."], "example",
     "knowledge/recipe-assistant-walkthrough.md › An example recipe", "A worked example from the notes"),
    (["How do I estimate the cost of fine-tuning?", "Give me an example."], "example",
     "knowledge/deployment-and-cost.md › Worked cost example", "A worked example"),
    (["What is catastrophic forgetting?", "Tell me more."], "more",
     "knowledge/overfitting-and-forgetting.md › Mitigating catastrophic forgetting", "Mitigating"),
    (["Which modules does LoRA target?", "Shorter, please."], "shorter",
     "knowledge/lora-qlora-peft.md › Which modules LoRA targets", "Which modules"),
    (["What is RAG?", "In other words?"], "rephrase", "knowledge/alternatives.md › Retrieval-augmented", "In other words"),
    (["Що таке катастрофічне забування?", "Поясни простіше."], "simpler", "knowledge/uk/overfitting-and-forgetting.md",
     "**"),
    (["Що таке RAG?", "Які в нього обмеження?", "Чому?"], "why", "knowledge/uk/alternatives.md › Обмеження RAG",
     "Чому — словами нотаток"),
    (["Скільки навчальних прикладів мені потрібно?", "У якому форматі їх подавати?", "Покажи приклад."], "example",
     "knowledge/uk/chat-jsonl-format.md › Приклад навчального рядка", "Розібраний приклад"),
    (["Яку швидкість навчання обрати?", "А розмір батча?", "Розкажи детальніше."], "more",
     "knowledge/uk/hyperparameters.md › Розігрів", "Нотатки продовжуються"),
], ids=["why", "why-memory", "simpler", "example-recipe", "example-cost", "more", "shorter", "rephrase", "uk-simpler", "uk-why",
        "uk-example", "uk-more"])
async def test_a_request_about_the_last_answer_is_answered_from_its_notes(tutor, questions, kind, expected, shows):
    *_, turn = await talk(tutor, *questions)
    assert turn["understood_as"] == kind, turn
    assert first(turn).startswith(expected) and shows in turn["answer"], (first(turn), turn["answer"][:300])
    assert "couldn't find" not in turn["answer"] and "не знайшов" not in turn["answer"]


async def test_a_request_with_nothing_said_yet_says_what_to_do(tutor):
    [turn] = await talk(tutor, "Can you say that more simply?")
    assert turn["sources"] == [] and turn["answer"].startswith("Ask me about a topic first")
    [turn] = await talk(tutor, "Поясни простіше.")
    assert turn["answer"].startswith("Спершу спитайте про тему")


def test_a_conversation_is_bounded_in_turns_and_in_what_a_model_sees_again():
    conversation = Conversation()
    passage = Passage("knowledge/glossary.md", "Adapter terms", "An adapter is small.")
    for number in range(3 * MAX_TURNS):
        understood = Understood(question=f"question {number} " + "word " * 400, kind="new", query="q", language="en",
                                topic="LoRA")
        conversation.add(understood, [passage] * 5, "answer " * 2000)
    assert len(conversation.turns) == MAX_TURNS and all(len(t.sources) == 3 for t in conversation.turns)
    history = conversation.history()
    assert history and sum(len(m["content"]) for m in history) <= HISTORY_TOKENS * 4
    assert history[-2]["content"].startswith(f"question {3 * MAX_TURNS - 1} "), "the latest turns are kept"
    assert Conversation.model_validate(conversation.model_dump(mode="json")) == conversation, "saved and restored whole"


async def test_a_capable_model_condenses_the_follow_up_from_the_bounded_history(tmp_path, indexed_data_dir, fake_openai):
    settings = make_settings(indexed_data_dir, openai_api_key=fake_openai.api_key, chat_backend="openai",
                             openai_base_url=fake_openai.base_url, openai_model=fake_openai.model)
    tutor = Tutor(settings, KnowledgeBase(settings))
    conversation = Conversation()
    understood = Understood(question="What is LoRA? " + "Tell me everything. " * 400, kind="new", query="LoRA",
                            language="en", topic="LoRA")
    for _ in range(4):
        conversation.add(understood, [Passage("knowledge/lora-qlora-peft.md", "What LoRA is", "LoRA...")], "A" * 1400)
    conversation.add(understood.model_copy(update={"question": "What is LoRA?"}), [], "LoRA learns a low-rank update.")
    fake_openai.replies = ["How do I choose the rank of LoRA?"]
    reply = await tutor.ask("How do I choose its rank?", conversation=conversation)
    async for _ in reply:
        pass
    condense, answer = fake_openai.requests[-2:]
    assert "standalone question" in condense["messages"][0]["content"]
    assert condense["messages"][-2] == {"role": "assistant", "content": "LoRA learns a low-rank update."}
    assert condense["messages"][-1]["content"].endswith("How do I choose its rank?")
    assert reply.to_dict()["searched"] == "How do I choose the rank of LoRA?", "retrieval used the condensed question"
    assert answer["messages"][-3:-1] == condense["messages"][-3:-1], "the answer sees the same history"
    for request in (condense, answer):
        history = request["messages"][1:-1]
        assert sum(len(m["content"]) for m in history) <= HISTORY_TOKENS * 4, "history is bounded"


async def test_a_resumed_chat_keeps_its_conversation(app_env):
    chat = open_chat("alice")
    conversation = Conversation()
    understood = Understood(question="What is catastrophic forgetting?", kind="new", language="en",
                            query="What is catastrophic forgetting?", topic="catastrophic forgetting")
    passage = Passage("knowledge/overfitting-and-forgetting.md", "Catastrophic forgetting",
                      "Catastrophic forgetting is when a fine-tuned model loses general abilities it had before. "
                      "It happens because fine-tuning updates weights that other skills relied on.")
    conversation.add(understood, [passage], "Catastrophic forgetting is ...")
    await app.on_chat_resume({"id": "7b0c1a52-55b2-4f4e-a9b1-0e3c2a9f1d10",
                              "metadata": {"conversation": conversation.model_dump(mode="json"), "answered": 1}})
    await app.on_message(user_says("Why?"))
    answer = chat.messages[-1]
    assert "because fine-tuning updates weights" in answer["output"] and "(full passages 2)" in answer["output"]
    assert [t["question"] for t in cl.user_session.get("conversation")["turns"]] == [
        "What is catastrophic forgetting?", "Why?"]

    chat = open_chat("alice")  # a conversation saved by another version is dropped quietly
    await app.on_chat_resume({"id": "7b0c1a52-55b2-4f4e-a9b1-0e3c2a9f1d11", "metadata": {"conversation": {"turns": 5}}})
    await app.on_message(user_says("Why?"))
    assert chat.messages[-1]["output"].startswith("Ask me about a topic first")


def test_tutor_chat_json_answers_each_line_in_one_conversation(tmp_path, embedded_model_dir, indexed):  # noqa: F811
    lines = "What is LoRA?\nHow do I choose its rank?\n\nCan you say that more simply?\n" + "x" * 5000 + "\n"
    result = run_tutor("chat", "--json", "--backend", "local", tmp_path=tmp_path, stdin=lines)
    assert result.returncode == 0, result.stderr
    turns = [json.loads(line) for line in result.stdout.splitlines()]
    assert [t.get("understood_as") for t in turns] == ["new", "switch", "simpler", None]
    assert [t.get("follow_up_of") for t in turns[:3]] == [None, 0, 1]
    assert turns[1]["sources"][0]["heading"].startswith("LoRA rank") and turns[2]["language"] == "en"
    assert "characters long" in turns[3]["error"], "a bad line is one sentence, and the conversation goes on"


def test_a_saved_source_path_never_reads_outside_the_notes(tutor):
    """A conversation comes back from the thread's saved metadata: its paths are looked up in knowledge/ only."""
    knowledge = tutor.knowledge
    assert knowledge.file_passages("knowledge/glossary.md"), "a real file of the notes is read"
    for path in ("knowledge/../README.md", "knowledge/uk/../../README.md", "/etc/passwd", "README.md",
                 "knowledge/quiz/en.toml"):
        assert knowledge.file_passages(path) == [], path
