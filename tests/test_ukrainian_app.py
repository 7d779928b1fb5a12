"""The whole app in Ukrainian: a chat whose browser speaks Ukrainian (uk-UA) gets every button label and every fixed
message of its flows (start, /prepare, /train, a run's progress and summary, Explain my run, /compare, the A/B chat
and its evaluation, refusals) in Ukrainian; an English chat of the same flows keeps its English texts. The
catalog's namespaces (training/base/texts/<language>.toml), and the inline `Phrases` tables still left in modules,
have the same keys and {fields} in both languages, and every Ukrainian text with words to translate is Ukrainian."""

import asyncio
import importlib
import json
import re
import string

import chainlit as cl
import pytest

import assistant.chat.app as app
from assistant.chat import ab_flow, dataset_flow, run_view, training_flow
from tests.chainlit_harness import open_chat, user_says
from tests.helpers import FakeJobConfig, finished_run, run_record
from training.backends.openai_api import OpenAIJobConfig
from training.backends.registry import TrainingBackend, register_training_backend, unregister_training_backend
from training.base.phrases import Phrases
from training.base.registry import registry_for
from training.base.settings import PROJECT_ROOT, get_settings
from training.base.texts import catalog
from training.local.config import PROBLEMS, SETTINGS, TrainConfig


def training_modules_with_texts() -> list[str]:
    """The training layer's modules that read a `Phrases` namespace of the catalog."""
    paths = sorted((PROJECT_ROOT / "training").rglob("*.py"))
    return [".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts) for path in paths
            if "Phrases(" in path.read_text() and path.name != "phrases.py"]


def prose(text: str) -> str:
    """What a reader reads as words: code, {fields}, URLs, file names, typed settings, environment variables,
    commands, ids, identifiers (table keys like `missing_content`) and lists of names left out: they are the same
    in every language."""
    for pattern in (r"```.*?```", r"`[^`]*`", r"\{[^{}]*\}", r"https?://\S+", r"[\w./-]+\.(?:jsonl|csv|json|md|log)\b",
                    r"\S+=\S*", r"\b\w*_\w*\b", r"(?<!\w)/\w+", r"\b(?:run|ds|file|ab)-[\w-]+", r"\b[\w.-]+-seed\d+",
                    r"\((?:local-adapter|openai|azure)\)",  # ids: runs, datasets (`sample-seed1`), a model's kind
                    r"\b[a-z][\w-]*(?:, [a-z][\w-]*)+\b"):  # a list of names: settings, backends
        text = re.sub(pattern, " ", text, flags=re.S)
    return text


def cyrillic_share(text: str) -> float:
    """Cyrillic letters as a share of all letters of the text's prose (1.0 when it has none)."""
    words = prose(text)
    cyrillic, latin = len(re.findall(r"[а-яіїєґ]", words, re.I)), len(re.findall(r"[a-z]", words, re.I))
    return cyrillic / (cyrillic + latin) if cyrillic + latin else 1.0


def assert_ukrainian(text: str, what: str) -> None:
    assert cyrillic_share(text) > 0.5, f"{what} is not in Ukrainian: {text!r}"


def assert_chat_in_ukrainian(chat) -> None:
    """Every message the chat got, every button it was offered, its progress lists and its charts' titles and
    axes: mostly in Ukrainian."""
    for message in chat.messages:
        assert_ukrainian(message["output"], "a message")
    for action in chat.actions:
        assert_ukrainian(action["label"], "a button")
    kinds = set()
    for element in chat.elements:
        if element["type"] not in ("tasklist", "plotly"):
            continue
        content = json.loads(chat.session.files[element["chainlitKey"]]["path"].read_text())
        if element["type"] == "tasklist":
            shown = [content["status"], *(task["title"] for task in content["tasks"])]
        else:
            layout = content["layout"]
            shown = [layout.get(axis, {}).get("title", {}).get("text", "") for axis in ("title", "xaxis", "yaxis")]
            shown += [trace.get("name", "") for trace in content["data"]]
            shown += [note.get("text", "") for note in layout.get("annotations", [])]
        kinds.add(element["type"])
        assert_ukrainian(" · ".join(shown), f"a {element['type']}")
    assert kinds == {"tasklist", "plotly"}


def fields(template: str) -> list[str]:
    return sorted(name for _, name, _, _ in string.Formatter().parse(template) if name is not None)


def forms(template: str | dict[str, str]) -> list[str]:
    """A text's forms: itself, or its plural forms."""
    return list(template.values()) if isinstance(template, dict) else [template]


def test_every_text_has_both_languages_with_the_same_fields():
    modules = training_modules_with_texts()
    assert len(modules) >= 10
    for module in modules:  # each training module's texts: a namespace of the catalog
        made = [value for value in vars(importlib.import_module(module)).values() if isinstance(value, Phrases)]
        assert made and all(phrases.namespace in catalog("en") for phrases in made), module
    tables = [Phrases(namespace) for namespace in catalog("en")]
    assert len(tables) >= len(modules)
    for table in tables:
        english, ukrainian = table["en"], table["uk"]
        assert set(english) == set(ukrainian), set(english) ^ set(ukrainian)
        for key, template in english.items():
            said = forms(template)[-1]  # English's `other` form
            for translated in forms(ukrainian[key]):
                assert fields(said) == fields(translated), key
                if re.search(r"[a-z]", prose(said), re.I):  # words to translate
                    assert translated != said and cyrillic_share(translated) > 0.5, key
    for config in (TrainConfig, OpenAIJobConfig):  # the settings form's explanations
        explained = {name for name in config.learner_fields if config.model_fields[name].description}
        explanations = {name: SETTINGS(f"{config.texts}.{name}", "uk") for name in config.learner_fields}
        assert explained == set(config.learner_fields)
        assert all(cyrillic_share(words) > 0.5 for words in explanations.values()), explanations
    assert all(cyrillic_share(problem) > 0.5 for problem in PROBLEMS["uk"].values())  # pydantic's, by type


class FakeService(TrainingBackend):
    """A provider that trains in two steps the moment it is followed, leaving a model the A/B chat can call."""

    name, label, Config = "fake-uk", "Fake service", FakeJobConfig
    location = base_model = ""

    def start(self, config, registry, owner):
        run_dir = self.settings.data_dir / "runs" / "run-fake-uk"
        run_dir.mkdir(parents=True)
        return registry.create_run(self.name, config.model_dump(), run_dir, status="queued", run_id="run-fake-uk",
                                   owner=owner)

    async def follow(self, run, registry, poll=0.5):
        yield {"type": "status", "status": "queued", "position": 2, "queue_length": 2}
        yield {"type": "status", "status": "running"}
        yield {"type": "step", "step": 1, "total_steps": 2, "loss": 0.5, "tokens_per_second": 900, "eta_seconds": 2}
        yield {"type": "eval", "step": 2, "val_loss": 0.4, "val_token_accuracy": 0.5}
        yield {"type": "checkpoint", "step": 2, "path": "checkpoint-2"}
        registry.update_run(run.id, status="succeeded",
                            metrics={"final_loss": 0.25, "val_loss": 0.4, "train_seconds": 3.0})
        registry.add_model(run.id, "local-adapter", self.location, self.base_model)
        yield {"type": "done", "final_loss": 0.25, "steps": 2}

    def cancel(self, run, registry):
        return registry.update_run(run.id, status="cancelled")


@pytest.fixture
def data_dir(monkeypatch, tmp_path, tiny_model_dir, tiny_adapter_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUTOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TUTOR_BASE_MODEL", str(tiny_model_dir))
    monkeypatch.setattr(app, "start_warmup", lambda: None)  # the tutor's model is not needed here
    monkeypatch.setattr(FakeService, "location", str(tiny_adapter_dir))
    monkeypatch.setattr(FakeService, "base_model", str(tiny_model_dir))
    get_settings.cache_clear()
    register_training_backend(FakeService)
    yield tmp_path / "data"
    unregister_training_backend(FakeService.name)
    get_settings.cache_clear()


def press(chat, message: dict, label_or_index, handler):
    """Press a button of a message (by its label or its place) through its handler, as Chainlit would."""
    buttons = chat.actions_for(message["id"])
    button = buttons[label_or_index] if isinstance(label_or_index, int) else next(
        b for b in buttons if b["label"] == label_or_index)
    return handler(cl.Action(**{key: button[key] for key in ("name", "payload", "label", "id")}))


async def test_a_ukrainian_chat_gets_every_flow_in_ukrainian(data_dir):
    chat = open_chat(language="uk-UA")
    await app.on_chat_start()
    assert all(re.search(r"[а-яі]", command["description"]) for command in chat.commands)
    labels = {widget["id"]: widget["label"] for widget in chat.chat_settings}
    assert (labels["backend"], labels["temperature"]) == ("Модель тьютора", "Температура")
    explained = [w for w in chat.chat_settings if w["id"] == "backend" or w["id"].startswith("train.local.")]
    assert len(explained) == 14 and all(cyrillic_share(w["description"]) > 0.5 for w in explained)
    [profile] = await app.chat_profiles(language="uk-UA")
    assert_ukrainian(profile.markdown_description, "the welcome")

    await app.on_message(user_says("/train", command="train"))
    await app.on_message(user_says("/compare", command="compare"))
    await app.on_message(user_says("/prepare train=16 val=4 test=4 seed=1", command="prepare"))
    offer = chat.messages[-1]
    assert chat.actions_for(offer["id"])[0]["label"] == "Взяти доданий зразок (239 рецептів)"
    await press(chat, offer, 0, dataset_flow.on_prepare_dataset)
    await cl.user_session.get("dataset_job")
    ready = chat.messages[-1]
    assert ready["output"].startswith("### Набір даних готовий: `sample-seed1`")
    assert "| навчальна | 16 |" in ready["output"] and "Помилок формату не знайдено." in ready["output"]
    assert [b["label"] for b in chat.actions_for(ready["id"])] == [
        "Тонке налаштування локально", "Тонке налаштування в Fake service", "Що саме навчається"]

    # /train: the settings, a dataset to pick, and the run followed to its summary (the fake service's).
    await app.on_message(user_says("/train epochs=1", command="train"))
    assert "епох 1" in chat.messages[-1]["output"]
    await app.on_message(user_says("/train fake-uk epochs=2", command="train"))
    await press(chat, chat.messages[-1], 0, training_flow.on_finetune)
    await asyncio.wait_for(cl.user_session.get("training_job"), 60)
    progress = next(m for m in chat.messages if m["output"].startswith("**Навчання `run-fake-uk`**"))
    assert "крок **1/2**" in progress["output"] and "втрати валідації **0.4000**" in progress["output"]
    summary = chat.messages[-1]
    assert summary["output"].startswith("### ✅ Тонке налаштування `run-fake-uk` завершено (Fake service)")
    assert "| кінцеві втрати навчання | 0.2500 |" in summary["output"]
    assert [b["label"] for b in chat.actions_for(summary["id"])] == [
        "Поговорити з нею", "Порівняти з базовим варіантом RAG", "Поясни мій запуск"]
    await press(chat, summary, "Поясни мій запуск", training_flow.on_explain_run)
    assert chat.messages[-1]["output"].startswith("**Що показує `run-fake-uk`**")

    # Chat with it, and its refusals.
    await press(chat, summary, "Поговорити з нею", training_flow.on_chat_with_model)
    await app.on_message(user_says("Title: Soup\n\nIngredients: " + "water " * 2_000))
    assert chat.messages[-1]["output"].startswith("Це повідомлення має 12,025 символів")
    await app.on_message(user_says("/tutor"))

    # /compare: A, then B, then a held-out recipe side by side, a vote and the evaluation.
    finished_run(data_dir, str(FakeService.base_model), str(FakeService.location))
    await app.on_message(user_says("/compare", command="compare"))
    await press(chat, chat.messages[-1], "run-ab (local-adapter)", ab_flow.on_pick)
    await press(chat, chat.messages[-1], "Базова модель без прикладів", ab_flow.on_start)
    intro = chat.messages[-1]
    assert "- **A**: тонко налаштована run-ab" in intro["output"]
    for text in ("   ", "Що таке LoRA?"):
        await app.on_message(user_says(text))
    await press(chat, intro, "Спробувати відкладений рецепт", ab_flow.on_heldout)
    votes = chat.messages[-1]
    assert [b["label"] for b in chat.actions_for(votes["id"])] == ["A краща", "B краща", "Нічия"]
    await press(chat, votes, "Нічия", ab_flow.on_vote)
    await press(chat, intro, "Оцінити на відкладених рецептах (20)", ab_flow.on_eval)
    await cl.user_session.get("eval_job")
    table = next(m for m in chat.messages if m["output"].startswith("### Оцінювання на відкладених рецептах (6)"))
    assert "| точний збіг |" in table["output"]

    # Uploads, mistyped commands, a forged button and someone else's run.
    tea = b'{"messages": [{"role": "user", "content": "Tea"}, {"role": "assistant", "content": "[]"}]}\n'
    for name, body in (("photo.png", b"\x89PNG"), ("mine.jsonl", tea + b"{oops\n")):
        (data_dir.parent / name).write_bytes(body)
        message = user_says("")
        message.elements = [cl.File(name=name, path=str(data_dir.parent / name))]
        await app.on_message(message)
    assert "| помилка формату | прикладів | рядки |" in chat.messages[-1]["output"]
    replies = []
    for command in ("/train learnin_rate=1", "/train epochs", "/deployed", "/prepare seed=lucky", "/train lr=fast"):
        await app.on_message(user_says(command))
        replies.append(chat.messages[-1]["output"])
    # Each mistake gets its own sentence, in Ukrainian, saying what to do.
    assert replies[0].startswith("⚠️ Я не знаю налаштування `learnin_rate`. Можна задати: alpha,")
    assert "learning_rate" in replies[0]
    assert replies[1].startswith("⚠️ Невідомий спосіб навчання 'epochs'. Виберіть один із: local,")
    assert replies[2] == "⚠️ Назвіть розгортання: `/deployed NAME` або `/deployed RUN NAME` для давнішого запуску."
    assert replies[3] == "⚠️ Ці розміри не підходять: seed має бути цілим числом. Розміри й seed — цілі числа."
    assert replies[4] == "⚠️ Недійсні налаштування local LoRA: learning_rate має бути числом."
    await app.on_settings_update({"train.local.epochs": "0"})
    assert chat.messages[-1]["output"].startswith("⚠️ Недійсні налаштування local LoRA: epochs має бути більше за 0.")
    await training_flow.on_finetune(cl.Action(name="finetune", payload={"backend": "local", "dataset_id": "../etc"}))
    assert chat.messages[-1]["output"] == "⚠️ Дані цієї кнопки не ті, що надіслав застосунок, тому я нічого не зробив."
    await training_flow.on_cancel_run(cl.Action(name="cancel_run", payload={"run_id": "run-not-yours"}))
    assert chat.messages[-1]["output"] == "⚠️ Цього запуску немає серед ваших, тож його не зачеплено."

    assert_chat_in_ukrainian(chat)
    for status in ("succeeded", "cancelled", "failed", "interrupted"):  # a local run's summary, as a chat shows it
        run = run_record(status=status, metrics={"final_loss": 0.5, "val_f1": 0.7, "train_seconds": 12.0,
                                                 "tokens_trained": 1234})
        assert_ukrainian(run_view.summary(run, "uk"), f"a {status} run's summary")


async def test_an_english_chat_keeps_its_english_texts(data_dir):
    chat = open_chat(language="en-US")
    await app.on_message(user_says("/train", command="train"))
    assert chat.messages[-1]["output"] == ("No prepared dataset yet. Type `/prepare` first, then come back with "
                                           "`/train`.")
    await app.on_message(user_says("/prepare train=16 val=4 test=4 seed=1", command="prepare"))
    offer = chat.messages[-1]
    assert chat.actions_for(offer["id"])[0]["label"] == "Use the bundled sample (239 recipes)"
    await press(chat, offer, 0, dataset_flow.on_prepare_dataset)
    await cl.user_session.get("dataset_job")
    ready = chat.messages[-1]["output"]
    assert ready.startswith("### Dataset ready: `sample-seed1`\n\nRead **239** rows from `the bundled sample`")
    assert "| train | 16 |" in ready and "No format errors found." in ready
    await app.on_message(user_says("/train fake-uk", command="train"))
    await press(chat, chat.messages[-1], 0, training_flow.on_finetune)
    await asyncio.wait_for(cl.user_session.get("training_job"), 60)
    summary = chat.messages[-1]
    assert summary["output"].startswith("### ✅ Fine-tuned `run-fake-uk` with Fake service\n\n| metric | value |")
    assert [b["label"] for b in chat.actions_for(summary["id"])] == [
        "Chat with it", "Compare with RAG baseline", "Explain my run"]
    assert any("step **1/2** · training loss **0.5000** · 900 tokens/s · ETA 2 s" in m["output"] for m in chat.messages)
    await training_flow.on_finetune(cl.Action(name="finetune", payload={"backend": "local", "dataset_id": "../etc"}))
    assert chat.messages[-1]["output"] == "⚠️ That button's data was not what this app sent, so I did nothing."
    assert registry_for(get_settings()).run("run-fake-uk").status == "succeeded"
