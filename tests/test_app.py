"""The Chainlit handlers, driven through Chainlit's context with a recording emitter (no browser)."""

import asyncio
import time

import chainlit as cl
import pytest

import assistant.chat.app as app
from assistant.tutor.answers import Tutor
from assistant.tutor.decision import QUESTIONS, phrase
from tests.chainlit_harness import open_chat, user_says
from training.local.config import TrainConfig


async def test_chat_start_welcomes_and_offers_settings_and_commands(app_env):
    chat = open_chat()
    await app.on_chat_start()
    assert chat.messages == [], "a message would hide the starters"
    [profile] = await app.chat_profiles()
    welcome = profile.markdown_description
    assert profile.icon and "sources" in welcome and "/check" in welcome and "LoRA" in welcome
    assert "tiny-llama" in welcome  # names the model in use
    fields = {w["id"]: w for w in chat.chat_settings}
    # The tutor's model, and a form for the one training backend configured here (local), pre-filled and explained.
    assert {"backend", "temperature"} | {f"train.local.{name}" for name in (
        "epochs", "learning_rate", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "max_length",
        "batch_size", "gradient_accumulation", "seed", "method", "gradient_checkpointing", "base")} == set(fields)
    assert fields["train.local.learning_rate"]["initial"] == str(TrainConfig().learning_rate)
    assert fields["train.local.lora_r"]["description"]
    assert [c["id"] for c in chat.commands] == ["check", "prepare", "models", "train", "deployed", "compare", "quiz"]
    starters = await app.starters()
    assert any(s.command == "check" for s in starters) and len(starters) >= 3


async def test_a_question_streams_an_answer_with_sources(app_env):
    chat = open_chat()
    await app.on_chat_start()
    await app.on_message(user_says("What is LoRA?"))
    answer = chat.messages[-1]
    assert len(chat.tokens[answer["id"]]) >= 3, "the answer was not streamed"
    assert "low-rank" in answer["output"].lower()
    assert "**Sources**" in answer["output"] and "knowledge/lora-qlora-peft.md" in answer["output"]
    [panel] = [e for e in chat.elements if e["forId"] == answer["id"]]
    assert panel["name"] == "full passages 1" and panel["display"] == "side"
    assert "**Sources** (full passages 1)" in answer["output"]
    passages = chat.session.files[panel["chainlitKey"]]["path"].read_text()
    assert passages.startswith("**[1] knowledge/lora-qlora-peft.md › What LoRA is")
    assert passages.count("\n\n---\n\n**[") == answer["output"].count("\n- [") - 1  # every source, in order

    # A follow-up is the next turn of the conversation, and its side panel holds its own passages.
    await app.on_message(user_says("How do I choose its rank?"))
    follow_up = chat.messages[-1]
    [second] = [e for e in chat.elements if e["forId"] == follow_up["id"]]
    assert second["name"] == "full passages 2" and "**Sources** (full passages 2)" in follow_up["output"]
    assert chat.session.files[second["chainlitKey"]]["path"].read_text().startswith(
        "**[1] knowledge/hyperparameters.md › LoRA rank")
    kept = cl.user_session.get("conversation")
    assert [t["question"] for t in kept["turns"]] == ["What is LoRA?", "How do I choose its rank?"]
    assert kept["turns"][1]["kind"] == "switch" and cl.user_session.get("answered") == 2


@pytest.mark.parametrize("text, expected", [
    ("", "Please type a question"),
    ("\x00\x07\x1b", "Please type a question"),
    ("fine-tuning " * 9000, "characters long"),
])
async def test_bad_input_gets_a_clear_reply(app_env, text, expected):
    chat = open_chat()
    await app.on_message(user_says(text))
    assert expected in chat.messages[-1]["output"]


async def test_an_unexpected_failure_shows_no_stack_trace(app_env, monkeypatch, caplog):
    async def broken(self, question, **options):
        raise RuntimeError("internal detail sk-live-0123456789abcdef")

    monkeypatch.setattr(Tutor, "ask", broken)
    chat = open_chat()
    await app.on_message(user_says("What is LoRA?"))
    shown = chat.messages[-1]["output"]
    assert "Something went wrong" in shown
    assert "RuntimeError" not in shown and "Traceback" not in shown and "sk-live" not in shown
    assert "Answering failed" in caplog.text and "RuntimeError" in caplog.text  # the details go to the log...
    assert "sk-live-0123456789abcdef" not in caplog.text  # ...without the key


async def test_a_broken_configuration_is_explained_in_chat(app_env, monkeypatch):
    monkeypatch.setenv("CHROMA_PORT", "not-a-port")
    chat = open_chat()
    await app.on_chat_start()
    assert "CHROMA_PORT" in chat.messages[-1]["output"]
    [profile] = await app.chat_profiles()
    assert "CHROMA_PORT" in profile.markdown_description


async def test_choosing_an_unconfigured_openai_backend_explains_and_keeps_the_model(app_env):
    chat = open_chat()
    await app.on_chat_start()
    await app.on_settings_update({"backend": "openai", "temperature": 0.7})
    assert "OPENAI_API_KEY" in chat.messages[-1]["output"]
    assert cl.user_session.get("backend") == "local"
    assert cl.user_session.get("temperature") == 0.7


async def test_a_dead_openai_compatible_server_is_a_clear_message(app_env, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    chat = open_chat()
    await app.on_chat_start()
    assert cl.user_session.get("backend") == "openai"
    await app.on_message(user_says("What is LoRA?"))
    assert "Can't reach the model server at 127.0.0.1:9" in chat.messages[-1]["output"]


async def test_the_should_i_fine_tune_check_walks_every_question_to_a_recommendation(app_env):
    chat = open_chat()
    await app.on_message(user_says("/check", command="check"))
    for question in QUESTIONS:
        asked = chat.messages[-1]
        assert question.text in asked["output"]
        buttons = chat.actions_for(asked["id"])
        assert [b["label"] for b in buttons] == [o.label for o in question.options]
        await app.on_check_answer(cl.Action(**{k: buttons[0][k] for k in ("name", "payload", "label", "id")}))
        assert chat.actions_for(asked["id"]) == [], "answered question still shows its buttons"
        assert f"➡️ **{question.options[0].label}**" in chat.steps[asked["id"]]["output"]
    verdict = chat.messages[-1]["output"]
    # Always the first option: "Fewer than 10" examples is a blocker, so the verdict is "Not yet".
    assert verdict.startswith("## Not yet") and "**Why:**" in verdict
    assert "First, fix these" in verdict and "Fewer than 10 examples" in verdict


async def test_a_stale_check_click_is_handled(app_env):
    chat = open_chat()
    await app.on_check_answer(cl.Action(name="check_answer", payload={"question": "use_case", "option": "format"}))
    [reply] = chat.messages  # one sentence on what to do, and no question asked
    assert reply["output"] == phrase("check.stale", "en") and chat.actions_for(reply["id"]) == []


async def test_answering_never_blocks_the_event_loop(app_env):
    chat = open_chat()
    gaps, last = [], time.perf_counter()

    async def ticker():
        nonlocal last
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await app.on_message(user_says("How do I pick a learning rate?"))  # first use: builds the tutor too
    ticking.cancel()
    assert "Sources" in chat.messages[-1]["output"]
    assert len(gaps) > 10 and max(gaps) < 0.5, f"the loop stalled for {max(gaps):.2f} s"
