"""A shared instance through Chainlit's handlers: each learner sees and touches only their own work, every
action callback refuses forged payloads (paths, other users' ids, wrong types, huge numbers, NaN, Infinity)
without reading or writing a file, uploads are kept safely, and learners see names, never server paths."""

import asyncio
import json
import math
import sys
from pathlib import Path

import chainlit as cl
import pytest
from chainlit.config import config

import assistant.chat.app as app
from assistant.chat import dataset_flow, training_flow
from assistant.chat.actions import PrepareRequest
from assistant.web.accounts import Learner, add_user
from tests.chainlit_harness import open_chat, press_start, user_says
from tests.conftest import MODEL_CACHE
from training.backends import local as jobs
from training.base.registry import registry_for
from training.base.settings import get_settings
from training.jobs import queue

OPENED: list[str] = []
_recording = [False]


def _audit(event, args):
    if _recording[0] and event == "open" and args and isinstance(args[0], (str, bytes, Path)):
        OPENED.append(str(args[0]))


sys.addaudithook(_audit)  # cannot be removed; records only while a test turns it on


@pytest.fixture
async def shared(monkeypatch, tmp_path, indexed_data_dir, tiny_model_dir, tiny_adapter_dir):
    """A class instance: alice and bob are learners, carol an admin. Alice owns a dataset, a queued run, a
    finished run with its model, and a comparison. The knowledge index is already built (a copy of the
    session's), so the tutor's warm-up a chat starts does not embed knowledge/ again."""
    import shutil

    import assistant.tutor.service as service

    data_dir = tmp_path / "data"
    shutil.copytree(indexed_data_dir, data_dir)
    monkeypatch.chdir(tmp_path)
    for name, value in {"TUTOR_DATA_DIR": str(data_dir), "TUTOR_CACHE_DIR": str(MODEL_CACHE),
                        "TUTOR_BASE_MODEL": str(tiny_model_dir), "TUTOR_AUTH": "password"}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    registry = registry_for(get_settings())
    ids = {name: add_user(registry, name, "correct horse", admin=admin).id
           for name, admin in (("alice", False), ("bob", False), ("carol", True))}
    open_chat("alice")
    await dataset_flow.run_prepare(PrepareRequest(source="sample", train=12, validation=4, test=4, seed=1),
                                   Learner(ids["alice"], "alice"))
    [dataset] = registry.datasets(ids["alice"])
    queued = registry.create_run("local", {"train_file": dataset.files["train"]}, data_dir / "runs" / "run-q",
                                 run_id="run-alice-queued", owner=ids["alice"])
    done = registry.create_run("local", {"train_file": dataset.files["train"], "base_model": str(tiny_model_dir)},
                               data_dir / "runs" / "run-d", status="succeeded", run_id="run-alice-done",
                               owner=ids["alice"])
    registry.add_model(done.id, "local-adapter", str(tiny_adapter_dir), str(tiny_model_dir))
    comparison = registry.add_comparison("A", "B", "p", "a", "b", {}, owner=ids["alice"])
    yield {"registry": registry, "ids": ids, "dataset": dataset.id, "queued": queued.id, "done": done.id,
           "comparison": comparison, "data_dir": data_dir}
    if app._warmup is not None:
        await asyncio.wait([app._warmup])
    app._warmup, service._tutor = None, None
    get_settings.cache_clear()


def forged_payloads(ids: dict) -> list[dict]:
    """Payloads a rewritten browser could send: none fits any action, or it names someone else's record."""
    sizes = {"train": 10, "validation": 1, "test": 1, "seed": 1}
    return [
        {"source": "/etc/passwd", **sizes}, {"source": "../../.env", **sizes}, {"source": ".env", **sizes},
        {"source": str(ids["data_dir"] / "registry.sqlite"), **sizes},
        {"source": "sample", "train": math.inf, "validation": 1, "test": 1, "seed": 1},
        {"source": "sample", "train": math.nan, "validation": 1, "test": 1, "seed": 1},
        {"source": "sample", "train": 10**30, "validation": 1, "test": 1, "seed": 1},
        {"source": "sample", "train": "10", "validation": 1, "test": 1, "seed": 1},
        {"dataset_id": ids["dataset"]}, {"dataset_id": ids["dataset"], "settings": {"epochs": 1}},
        {"backend": "local", "dataset_id": ids["dataset"]},
        {"backend": "local", "dataset_id": ids["dataset"], "settings": {"epochs": 1}},
        {"backend": "local", "dataset_id": "../../etc/passwd"},
        {"backend": "local", "dataset_id": ids["dataset"], "settings": {"base": "/etc"}},
        {"backend": "local", "dataset_id": ids["dataset"], "settings": {"learning_rate": math.nan}},
        {"backend": "local", "dataset_id": ids["dataset"], "settings": {"train_file": "/etc/passwd"}},
        {"backend": "local", "dataset_id": ids["dataset"], "settings": {"base_model": "/etc"}},
        {"backend": "local", "dataset_id": ids["dataset"], "settings": {"init_adapter": "/tmp"}},
        {"backend": "../local", "dataset_id": ids["dataset"]}, {"backend": "nope", "dataset_id": ids["dataset"]},
        {"backend": "openai", "dataset_id": ids["dataset"]},
        {"dataset_id": 5}, {"run_id": ids["queued"]}, {"run_id": ids["done"]}, {"run_id": ids["done"], "baseline": "rag"},
        {"run_id": "/etc/passwd"}, {"run_id": ["run-x"]}, {"run_id": ids["done"], "baseline": "../x"},
        {"id": ids["comparison"], "vote": "a"}, {"id": ids["comparison"], "vote": "all"},
        {"question": {"$ne": 1}, "option": "x"}, {"extra": "key"}, {"seed": -math.inf},
    ]


def snapshot(folder: Path) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and "registry.sqlite" not in p.name}


async def test_every_action_refuses_forged_payloads_and_touches_nothing(shared):
    registry = shared["registry"]
    callbacks = config.code.action_callbacks
    assert set(callbacks) >= {"prepare_dataset", "finetune", "start_training", "cancel_run",
                              "chat_with_model", "compare_model", "ab_pick", "ab_start", "ab_heldout", "ab_eval",
                              "ab_vote", "check_answer"}
    before = (snapshot(shared["data_dir"]), registry.runs(), registry.datasets(), registry.files(),
              registry.tally("A", "B"))
    refusals = 0
    for name, callback in callbacks.items():
        for payload in forged_payloads(shared):
            chat = open_chat("bob")
            OPENED.clear()
            _recording[0] = True
            try:
                await callback(cl.Action(name=name, payload=payload))
                task = cl.user_session.get("dataset_job") or cl.user_session.get("training_job")
                if task is not None:
                    await task
            finally:
                _recording[0] = False
            shown = [m["output"] for m in chat.messages]
            assert shown and shown[-1].startswith("⚠️"), f"{name} {payload} was not refused: {shown}"
            assert not any(p for p in OPENED if "passwd" in p or ".env" in p), f"{name} {payload} opened {OPENED}"
            assert not any(str(shared["data_dir"]) in text for text in shown), "a server path reached the chat"
            refusals += 1
    after = (snapshot(shared["data_dir"]), registry.runs(), registry.datasets(), registry.files(),
             registry.tally("A", "B"))
    assert after == before, "a forged payload changed a file or a record"
    assert refusals == len(callbacks) * len(forged_payloads(shared))


async def test_a_learner_sees_none_of_another_learners_work(shared, monkeypatch):
    monkeypatch.setattr(queue, "dispatch", lambda *args, **kwargs: [])  # alice's queued run stays queued
    chat = open_chat("bob")
    await app.on_message(user_says("/train", command="train"))
    assert "No prepared dataset yet" in chat.messages[-1]["output"]
    await app.on_message(user_says("/compare", command="compare"))
    assert "no fine-tuned model yet" in chat.messages[-1]["output"]
    await app.on_chat_start()
    assert cl.user_session.get("watching") == [], "bob follows alice's queued run"
    await training_flow.on_cancel_run(cl.Action(name="cancel_run", payload={"run_id": shared["queued"]}))
    assert "not among yours" in chat.messages[-1]["output"]
    assert shared["registry"].run(shared["queued"]).status == "queued"

    admin = open_chat("carol")  # an admin sees everyone's
    await app.on_message(user_says("/train", command="train"))
    assert admin.actions_for(admin.messages[-1]["id"])[0]["payload"]["dataset_id"] == shared["dataset"]
    alice = open_chat("alice")
    await app.on_chat_start()
    [watching] = cl.user_session.get("watching")  # her queued run
    for _ in range(50):
        if alice.messages:
            break
        await asyncio.sleep(0.1)
    watching.cancel()
    assert alice.messages[-1]["output"].startswith("**Training `run-alice-queued`**")


async def test_a_removed_account_is_stopped_at_once(shared):
    chat = open_chat("bob")
    shared["registry"].remove_user("bob")
    await app.on_message(user_says("/train", command="train"))
    assert "account no longer exists" in chat.messages[-1]["output"]
    await dataset_flow.on_prepare_dataset(cl.Action(name="prepare_dataset", payload={
        "source": "sample", "train": 10, "validation": 1, "test": 1, "seed": 1}))
    assert "account no longer exists" in chat.messages[-1]["output"]
    assert len(shared["registry"].datasets()) == 1


def upload(tmp_path, name: str, body: bytes) -> cl.File:
    path = tmp_path / "chainlit-upload"  # where Chainlit keeps it: no suffix
    path.write_bytes(body)
    return cl.File(name=name, path=str(path))


async def test_uploads_are_kept_with_their_real_suffix_owned_and_limited(shared, tmp_path, monkeypatch):
    registry = shared["registry"]
    good = {"messages": [{"role": "user", "content": "Title: Tea"}, {"role": "assistant", "content": "[\"tea\"]"}]}
    chat = open_chat("alice")
    message = user_says("")
    message.elements = [upload(tmp_path, "../../mine.JSONL", (json.dumps(good) + "\n").encode() * 3)]
    await app.on_message(message)
    [kept] = registry.files(shared["ids"]["alice"])
    assert kept.name == "mine.JSONL" and kept.owner == shared["ids"]["alice"]
    assert Path(kept.path).parent == shared["data_dir"] / "uploads" and kept.path.endswith(".jsonl")
    assert "**mine.JSONL**: 3 examples" in chat.messages[-1]["output"]
    [split] = chat.actions_for(chat.messages[-1]["id"])
    assert split["payload"]["source"] == kept.id

    bob = open_chat("bob")  # alice's upload id is no use to bob
    await dataset_flow.on_prepare_dataset(cl.Action(name="prepare_dataset", payload=split["payload"]))
    await cl.user_session.get("dataset_job")
    assert "not among your files" in bob.messages[-1]["output"] and not registry.datasets(shared["ids"]["bob"])

    monkeypatch.setenv("TUTOR_MAX_UPLOAD_MB", "1")
    get_settings.cache_clear()
    limited = open_chat("alice")
    message = user_says("")
    message.elements = [upload(tmp_path, "big.csv", b"x" * (2 * 2**20))]
    await app.on_message(message)
    assert "`big.csv` is 2 MB; files up to 1 MB can be attached here" in limited.messages[-1]["output"]
    kept = registry.files(shared["ids"]["alice"])
    assert len(kept) == 1 and len(list((shared["data_dir"] / "uploads").iterdir())) == 1, "an oversized upload is kept"


async def test_a_learner_at_the_queue_quota_gets_its_sentence_and_no_run(shared, monkeypatch):
    monkeypatch.setenv("TUTOR_MAX_QUEUED_JOBS", "1")  # alice's queued run from the fixture is her one
    get_settings.cache_clear()
    chat = open_chat("alice")
    before = shared["registry"].runs(shared["ids"]["alice"])
    await training_flow.on_finetune(cl.Action(name="finetune", payload={
        "backend": "local", "dataset_id": shared["dataset"], "settings": {}}))
    await press_start(chat)
    assert "You have 1 training job waiting or running" in chat.messages[-1]["output"]
    assert shared["registry"].runs(shared["ids"]["alice"]) == before, "no run was made"


async def test_a_queued_run_shows_its_place_live(shared, monkeypatch, tiny_model_dir):
    monkeypatch.setenv("TUTOR_MAX_TRAINING_JOBS", "1")
    monkeypatch.setenv("TUTOR_MAX_EPOCHS", "1000")  # a run that keeps going while the test looks
    get_settings.cache_clear()
    registry = shared["registry"]
    registry.update_run(shared["queued"], status="cancelled")  # the fixture's record: out of the way
    chat = open_chat("alice")
    payload = {"backend": "local", "dataset_id": shared["dataset"], "settings": {"epochs": 300, "batch_size": 2}}
    await training_flow.on_finetune(cl.Action(name="finetune", payload=payload))
    await press_start(chat)
    first = cl.user_session.get("training_job")
    await training_flow.on_finetune(cl.Action(name="finetune", payload={**payload, "settings": {}}))
    await press_start(chat)
    second = cl.user_session.get("training_job")
    try:
        for _ in range(200):
            if any("position **1 of 1**" in m["output"] for m in chat.messages):
                break
            await asyncio.sleep(0.1)
        waiting = next(m for m in chat.messages if "position **1 of 1**" in m["output"])
        assert "status **queued**" in waiting["output"] and "next" in waiting["output"]
        queued = next(r for r in registry.runs(shared["ids"]["alice"]) if r.status == "queued")
        await training_flow.on_cancel_run(cl.Action(name="cancel_run", payload={"run_id": queued.id}))
        await asyncio.wait_for(second, 60)
        assert "was cancelled" in chat.messages[-1]["output"]
    finally:
        for record in registry.runs(shared["ids"]["alice"], ("queued", "running")):
            await asyncio.to_thread(jobs.cancel, record, registry)
        await asyncio.wait_for(first, 120)


async def test_two_starts_at_once_at_the_queue_quota_make_one_run(shared, monkeypatch):
    """A double click on Start (two pages of one learner, or a script) can't pass the queued-jobs quota twice: a
    learner's starts are checked and made one at a time."""
    monkeypatch.setenv("TUTOR_MAX_QUEUED_JOBS", "1")
    monkeypatch.setattr("training.jobs.queue.launcher.launch", lambda *args: "1")  # queued, not trained
    get_settings.cache_clear()
    registry = shared["registry"]
    registry.update_run(shared["queued"], status="cancelled")  # the fixture's record: out of the way
    chat = open_chat("alice")
    await training_flow.on_finetune(cl.Action(name="finetune", payload={
        "backend": "local", "dataset_id": shared["dataset"], "settings": {}}))
    [start] = chat.actions_for(chat.messages[-1]["id"])
    clicks = [training_flow.on_start_training(cl.Action(name="start_training", payload=start["payload"]))
              for _ in range(2)]
    await asyncio.gather(*clicks)
    active = registry.runs(shared["ids"]["alice"], ("queued", "running"))
    assert len(active) == 1, [(r.id, r.status) for r in registry.runs(shared["ids"]["alice"])]
    assert sum("You have 1 training job waiting or running" in m["output"] for m in chat.messages) == 1, [m["output"][:150] for m in chat.messages]
    for record in active:
        await asyncio.to_thread(jobs.cancel, record, registry)
