"""Choosing a Hub model in chat, through the fake Hub (tests/fake_hub.py) and the real huggingface_hub: the offer
with estimates, a download with progress, fine-tuning it, and an A/B chat against RAG; shared mode's list, forged
payloads, offline mode; a Hub dataset for /prepare."""

import asyncio
import json
import re
import socket

import chainlit as cl
import huggingface_hub.constants
import pytest

import assistant.chat.app as app
from assistant.chat import ab_flow, dataset_flow, models_flow, training_flow
from tests.chainlit_harness import open_chat, press_start, user_says
from tests.fake_hub import FakeHub
from training.base.errors import TutorError
from training.base.models import display_name
from training.base.registry import registry_for
from training.base.settings import get_settings
from training.local import catalog


def chat_rows(count: int) -> bytes:
    rows = [{"messages": [{"role": "system", "content": "List the generic ingredients as JSON."},
                          {"role": "user", "content": f"Title: Dish {n}\n\nIngredients: [\"{n} cups flour\"]"},
                          {"role": "assistant", "content": '["flour"]'}]} for n in range(count)]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


@pytest.fixture
async def hub_chat(monkeypatch, tmp_path, tiny_model_dir):
    """The app's environment with the fake Hub as HF_ENDPOINT (a tiny model and a chat dataset), the HF cache in
    tmp_path, the tiny model as the configured base; yields the fake Hub."""
    import assistant.tutor.service as service
    from tests.conftest import MODEL_CACHE

    with FakeHub() as hub:
        hub.add_repo("org/tiny-chat", {p.name: p.read_bytes() for p in tiny_model_dir.iterdir() if p.is_file()})
        hub.add_repo("org/recipes-chat", {"train.jsonl": chat_rows(40)}, kind="dataset")
        monkeypatch.chdir(tmp_path)
        for name, value in {"TUTOR_DATA_DIR": str(tmp_path / "data"), "TUTOR_CACHE_DIR": str(MODEL_CACHE),
                            "TUTOR_BASE_MODEL": str(tiny_model_dir), "HF_ENDPOINT": hub.endpoint,
                            "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        # This process's transformers reads the cache folder huggingface_hub found at import: the new one instead.
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
        get_settings.cache_clear()
        yield hub
        if app._warmup is not None:
            await asyncio.wait([app._warmup])
        app._warmup, service._tutor = None, None
        get_settings.cache_clear()


async def prepare_from_the_hub(chat) -> dict:
    await app.on_message(user_says("/prepare source=hub:org/recipes-chat train=24 val=4 test=4", command="prepare"))
    [button] = chat.actions_for(chat.messages[-1]["id"])
    assert button["payload"]["source"] == "hub:org/recipes-chat" and "org/recipes-chat" in button["label"]
    await dataset_flow.on_prepare_dataset(cl.Action(name="prepare_dataset", payload=button["payload"]))
    await asyncio.wait_for(cl.user_session.get("dataset_job"), 120)
    assert any(m["output"].startswith("Read `org/recipes-chat`: 40 chat examples") for m in chat.messages)
    [dataset] = registry_for(get_settings()).datasets()
    assert dataset.report["written"] == {"train": 24, "validation": 4, "test": 4}
    assert not list((get_settings().data_dir / "hub-datasets").iterdir()), "the download is removed once prepared"
    return dataset


@pytest.mark.timeout(600)
async def test_pick_a_hub_model_see_its_estimate_download_it_fine_tune_it_and_compare_it(hub_chat):
    chat = open_chat()
    dataset = await prepare_from_the_hub(chat)

    await app.on_message(user_says("/models", command="models"))
    listing = chat.messages[-1]
    assert "Or type any Hub model" in listing["output"]
    assert re.search(r"\*\*Qwen/Qwen2.5-0.5B-Instruct\*\*: 0.49 B parameters, apache-2.0, 1.0 GB to download\n  Peak "
                     r"memory about \*\*[\d.]+ GB\*\*", listing["output"]), listing["output"]
    assert "meta-llama/Llama-3.2-1B-Instruct**: 1.24 B parameters, llama3.2, gated 🔒" in listing["output"]
    labels = [a["label"] for a in chat.actions_for(listing["id"])]
    assert "Use HuggingFaceTB/SmolLM2-360M-Instruct" in labels and len(labels) >= 7

    await app.on_message(user_says("/models org/tiny-chat", command="models"))  # local mode: any Hub id
    downloading = next(m for m in chat.messages if m["output"].startswith("`org/tiny-chat` is downloaded"))
    shown = chat.outputs[downloading["id"]]
    assert shown[0].startswith("Downloading `org/tiny-chat`") and any("%" in line for line in shown)
    ready = chat.messages[-1]
    assert ready["output"].startswith("**`org/tiny-chat`** is ready")
    [finetune] = chat.actions_for(ready["id"])
    assert finetune["payload"] == {"backend": "local", "dataset_id": dataset.id, "settings": {"base": "org/tiny-chat"}}

    await training_flow.on_finetune(cl.Action(name="finetune", payload={
        **finetune, "settings": {**finetune["payload"]["settings"], "batch_size": 4}}["payload"]))
    confirm = await press_start(chat)
    assert "Peak memory about" in confirm["output"]
    await asyncio.wait_for(cl.user_session.get("training_job"), 300)
    [run] = registry_for(get_settings()).runs()
    assert run.status == "succeeded" and run.config["base_model"] == "org/tiny-chat", run.error

    await ab_flow.on_compare_model(cl.Action(name="compare_model", payload={"run_id": run.id}))
    await ab_flow.compare('Title: Cake\n\nIngredients: ["2 cups flour", "1 egg"]')
    sides = [e for e in chat.elements if e.get("name") == "ABCompare"][-1]["props"]["sides"]
    assert sides["b"]["kind"] == "rag" and "org/tiny-chat" in sides["b"]["label"], sides["b"]["label"]
    for side in sides.values():
        assert side["done"] and side["error"] is None and side["text"] and side["stats"]["completion_tokens"]


async def test_shared_mode_offers_only_the_instructors_models_and_refuses_others(hub_chat, monkeypatch,
                                                                                  tiny_model_dir):
    monkeypatch.setenv("TUTOR_AUTH", "password")
    monkeypatch.setenv("TUTOR_TRAIN_BASE_MODELS", "org/tiny-chat")
    get_settings.cache_clear()
    registry_for(get_settings()).add_user("alice", None)
    chat = open_chat("alice")
    await app.on_message(user_says("/models", command="models"))
    listing = chat.messages[-1]
    assert "the instructor chose these models" in listing["output"]
    labels = [a["payload"]["model"] for a in chat.actions_for(listing["id"])]
    assert labels == [display_name(str(tiny_model_dir)), "org/tiny-chat"]
    assert "Qwen" not in listing["output"]

    await app.on_message(user_says("/models Qwen/Qwen2.5-0.5B-Instruct", command="models"))
    assert "On a shared server only the instructor's models can be chosen" in chat.messages[-1]["output"]
    for forged in ({"model": "Qwen/Qwen2.5-0.5B-Instruct"}, {"model": "../../etc/passwd"}, {"model": 7},
                   {"model": "org/tiny-chat", "path": "/etc"}):
        await models_flow.on_choose_model(cl.Action(name="choose_model", payload=forged))
        if job := cl.user_session.get("model_job"):
            await job
            cl.user_session.set("model_job", None)
        assert chat.messages[-1]["output"].startswith("⚠️"), forged
    assert not hub_chat.gets("/resolve/main/config.json"), "nothing was downloaded"

    # Hub datasets too: only the instructor's (each download lands on the server's disk).
    await dataset_flow.on_prepare_dataset(cl.Action(name="prepare_dataset", payload={
        "source": "hub:org/recipes-chat", "train": 24, "validation": 4, "test": 4, "seed": 1}))
    await cl.user_session.get("dataset_job")
    assert "only the instructor's Hub datasets" in chat.messages[-1]["output"]
    assert not hub_chat.gets("train.jsonl") and not registry_for(get_settings()).datasets()


async def test_offline_only_cached_models_are_offered(hub_chat, monkeypatch):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed.getsockname()[1]}")  # bound, never listening
    chat = open_chat()
    await app.on_message(user_says("/models", command="models"))
    listing = chat.messages[-1]
    closed.close()
    assert "The Hugging Face Hub can't be reached from this server" in listing["output"]
    assert [a["payload"]["model"] for a in chat.actions_for(listing["id"])] == ["tiny-llama0"]
    await app.on_message(user_says("/models Qwen/Qwen2.5-0.5B-Instruct", command="models"))
    assert "can't be reached from it, so it can't be downloaded now" in chat.messages[-1]["output"]


async def test_a_typed_id_that_is_also_a_folder_here_is_refused(hub_chat, tmp_path):
    (tmp_path / "data" / "runs").mkdir(parents=True, exist_ok=True)  # the app's working directory is tmp_path
    with pytest.raises(TutorError, match="also a folder where the app runs"):
        catalog.allowed(get_settings(), "data/runs")  # transformers would load that folder, not a Hub model
    assert catalog.allowed(get_settings(), "org/tiny-chat") == "org/tiny-chat"
    assert not catalog.on_disk("data/runs")
