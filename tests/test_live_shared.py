"""A class instance on 127.0.0.1 driven as learners' pages drive it (tests/live_chat.py): each quota hit with its
sentence and nothing lost, another learner's Azure deployment refused by name, and a name added again that sees
nothing of the old account's work. One app serves every test here (a start and a warm-up on the slower machine
cost half a minute); each test has learners of its own."""

import time
from pathlib import Path

import httpx
import pytest
import socketio

from assistant.web.accounts import add_user
from tests.app_process import AppProcess
from tests.fake_azure import FakeAzure
from tests.live_chat import LiveChat
from training.base.registry import Registry
from training.local.checkpoints import latest_checkpoint

PASSWORD = "correct horse"
SAMPLE = {"source": "sample", "train": 12, "validation": 4, "test": 4, "seed": 1}
KEY = "azure-key-0123456789abcdef"


@pytest.fixture(scope="module")
def azure():
    with FakeAzure(api_key=KEY, management_token="arm-token") as server:
        yield server


@pytest.fixture(scope="module")
def app(tmp_path_factory, indexed_data_dir, tiny_model_dir, azure):
    """Password logins; a 2 MB disk, one job at a time and 1e-6 h per run for each learner; the tiny model to
    train; Azure (the fake) with its control plane, where ann and bob each have a deployment of their fine-tune."""
    import shutil

    data = tmp_path_factory.mktemp("live-shared") / "data"
    shutil.copytree(indexed_data_dir, data)
    registry = Registry(data / "registry.sqlite")
    ids = {name: add_user(registry, name, PASSWORD).id for name in ("alice", "ann", "bob", "dana", "dora")}
    for name in ("ann", "bob"):
        run = registry.create_run("azure", {"model": "gpt-4.1-mini"}, data / "runs" / f"run-{name}",
                                  status="succeeded", run_id=f"run-{name}", owner=ids[name])
        registry.update_run(run.id, metrics={"fine_tuned_model": f"gpt-4.1-mini.ft-{name}"})
        azure.add_deployment(f"dep-{name}", f"gpt-4.1-mini.ft-{name}")
    env = {"TUTOR_AUTH": "password", "TUTOR_MAX_LEARNER_GB": str(2 / 1024), "TUTOR_MAX_QUEUED_JOBS": "1",
           "TUTOR_MAX_RUN_HOURS": "1e-6", "TUTOR_BASE_MODEL": str(tiny_model_dir),
           "AZURE_OPENAI_ENDPOINT": azure.endpoint, "AZURE_OPENAI_API_KEY": KEY,
           "OPENAI_API_VERSION": "2025-04-01-preview", "AZURE_SUBSCRIPTION_ID": "sub-1",
           "AZURE_RESOURCE_GROUP": "rg-course", "AZURE_RESOURCE_NAME": "tutor-aoai",
           "AZURE_MANAGEMENT_TOKEN": "arm-token", "AZURE_MANAGEMENT_URL": azure.endpoint}
    with AppProcess(data, **env) as process:
        process.registry, process.ids = registry, ids
        yield process


def login(app, name: str) -> dict[str, str]:
    answer = httpx.post(f"{app.url}/login", data={"username": name, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"access_token": answer.cookies["access_token"]}


def click(chat: LiveChat, name: str, payload: dict) -> None:
    answer = chat.click({"name": name, "payload": payload, "label": name, "id": f"{name}-{time.monotonic_ns()}"})
    assert answer.status_code == 200, answer.text


def threads(app, cookies: dict) -> list[dict]:
    """The chats in the sidebar of the account logged in with `cookies`."""
    answer = httpx.post(f"{app.url}/project/threads", json={"pagination": {"first": 20}, "filter": {}},
                        cookies=cookies, headers={"Origin": app.url})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def prepared_dataset(app, chat: LiveChat, learner: str) -> str:
    """Prepare the bundled sample in the learner's chat, as its button does; the dataset's id."""
    click(chat, "prepare_dataset", SAMPLE)
    chat.wait_for("### Dataset ready")
    [dataset] = app.registry.datasets(app.ids[learner])
    return dataset.id


def test_each_quota_is_hit_with_its_sentence_and_nothing_lost(app, tmp_path):
    with LiveChat(app, login(app, "alice")) as chat:
        dataset = prepared_dataset(app, chat, "alice")
        train = {"backend": "local", "dataset_id": dataset}

        # A setting beyond this server's range: refused at Start, no run made.
        click(chat, "finetune", {**train, "settings": {"epochs": 50}})
        [start] = chat.buttons("start_training")
        click(chat, "start_training", start["payload"])
        chat.wait_for("On this server epochs can be at most 20 (you asked for 50).")
        assert app.registry.runs(app.ids["alice"]) == []

        # One job at a time: the second Start, pressed while the first run is queued or running, makes nothing.
        for _ in range(2):
            click(chat, "finetune", {**train, "settings": {"epochs": 1}})
        first, second = chat.buttons("start_training", 3)[1:]
        click(chat, "start_training", first["payload"])
        click(chat, "start_training", second["payload"])
        chat.wait_for("You have 1 training job waiting or running")
        [run] = app.registry.runs(app.ids["alice"])

        # The wall time per run: it stops as timed_out with its last checkpoint, to be resumed.
        chat.wait_for(f"`tutor jobs resume {run.id}`")
        stopped = app.registry.run(run.id)
        assert stopped.status == "timed_out" and latest_checkpoint(Path(stopped.run_dir))

    # The disk: a second upload that would go past 2 MB is refused and the first one kept.
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    small.write_bytes(b"{}\n" * (2**20 // 3))
    big.write_bytes(b"{}\n" * (2**20 // 2))
    with LiveChat(app, login(app, "dana")) as chat:
        chat.say("", files=[chat.upload(small.name, small)])
        chat.wait_for("**small.jsonl**")
        chat.say("", files=[chat.upload(big.name, big)])
        chat.wait_for("of your 2.0 MB: delete some runs or datasets")
    [kept] = app.registry.files(app.ids["dana"])
    assert kept.name == "small.jsonl" and Path(kept.path).read_bytes() == small.read_bytes()


def test_a_learner_names_only_deployments_of_their_own_fine_tunes(app):
    with LiveChat(app, login(app, "bob")) as chat:
        chat.say("/deployed run-bob dep-ann")
        chat.wait_for("`dep-ann` is neither")
        assert "deployment" not in app.registry.run("run-bob").metrics
        chat.say("/deployed run-bob dep-bob")
        chat.wait_for("Recorded: `run-bob` answers through the deployment `dep-bob`.", timeout=60)
    assert app.registry.run("run-bob").metrics["deployment"] == "dep-bob"
    assert "deployment" not in app.registry.run("run-ann").metrics


def test_a_name_added_again_is_a_new_person_who_sees_nothing(app):
    old_cookies = login(app, "dora")
    with LiveChat(app, old_cookies) as chat:
        dataset = prepared_dataset(app, chat, "dora")
        chat.say("What is LoRA?")
        chat.wait_for("**Sources** (full passages 1)")
    assert len(threads(app, old_cookies)) == 1
    old = app.ids["dora"]
    app.registry.remove_user("dora")
    new = add_user(app.registry, "dora", "another person's password").id
    assert new != old
    answer = httpx.post(f"{app.url}/login", data={"username": "dora", "password": "another person's password"})
    cookies = {"access_token": answer.cookies["access_token"]}
    assert threads(app, cookies) == []
    with LiveChat(app, cookies) as chat:
        chat.say("/train local")
        chat.wait_for("No prepared dataset yet")
        click(chat, "finetune", {"backend": "local", "dataset_id": dataset, "settings": {}})
        chat.wait_for("That dataset is not among yours")
    assert app.registry.runs(new) == [] and app.registry.datasets(new) == []
    assert [d.id for d in app.registry.datasets(old)] == [dataset], "the old account's work is kept for a transfer"


def test_a_chat_resumed_keeps_its_conversation_and_a_forged_thread_id_brings_none(app):
    """The conversation is saved with the thread (when the page goes) and back for its author only: another learner
    who sends its thread id is refused, and their own chat has nothing said yet."""
    with LiveChat(app, login(app, "dana")) as chat:
        chat.say("What is catastrophic forgetting?")
        thread_id = chat.wait_for("**Sources** (full passages 1)")["threadId"]
    cookies = login(app, "dana")
    deadline = time.monotonic() + 120  # the app saves the session with the thread once the page has gone
    while not any((t.get("metadata") or {}).get("conversation") for t in threads(app, cookies) if t["id"] == thread_id):
        assert time.monotonic() < deadline, "the conversation was never saved with the thread"
        time.sleep(0.2)
    with LiveChat(app, cookies, thread_id=thread_id) as again:
        assert again.resumed, "her own thread is resumed"
        again.say("Why?")
        reply = again.wait_for("(full passages 2)")
    assert "Why, in the notes' words" in reply["output"] and "full passages 2" in reply["output"]
    with pytest.raises(socketio.exceptions.ConnectionError):  # another learner sending its id is refused at once
        LiveChat(app, login(app, "bob"), thread_id=thread_id).__enter__()
    with LiveChat(app, login(app, "bob")) as own:  # and their own chat holds nothing of it
        own.say("Why?")
        own.wait_for("Ask me about a topic first")
        assert not any("catastrophic" in (m.get("output") or "").lower() for m in own.replies())
