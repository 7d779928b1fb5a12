"""Chat history in a real SQLite database through Chainlit's SQLAlchemy data layer: threads, messages, elements
and feedback persist per user; a resumed chat keeps its settings, not its stale buttons; keys never become paths."""

import asyncio
import uuid

import chainlit as cl
import chainlit.data
import pytest
from chainlit.types import Feedback, Pagination, ThreadFilter

import assistant.chat.app as app
from assistant.web import history
from assistant.web.accounts import add_user
from tests.chainlit_harness import open_chat, user_says
from tests.conftest import make_settings
from training.base.registry import registry_for
from training.base.settings import get_settings


@pytest.fixture
async def layer(app_env, monkeypatch):
    for name in ("alice", "bob"):
        add_user(registry_for(get_settings()), name, "correct horse")
    created = history.data_layer(get_settings())
    await created.create_schema()
    monkeypatch.setattr(chainlit.data, "_data_layer", created)
    yield created
    await created.engine.dispose()


async def test_a_chat_persists_with_its_elements_and_feedback_for_its_user_only(layer):
    alice = await layer.create_user(cl.User(identifier="alice"))
    bob = await layer.create_user(cl.User(identifier="bob"))
    chat = open_chat("alice")
    thread_id = chat.session.thread_id
    await layer.update_thread(thread_id, user_id=alice.id, name="What is LoRA?")
    await app.on_message(user_says("What is LoRA?"))
    answer = chat.messages[-1]
    await layer.upsert_feedback(Feedback(forId=answer["id"], threadId=thread_id, value=1, comment="clear"))

    for _ in range(50):  # Chainlit stores steps and elements in background tasks
        thread = await layer.get_thread(thread_id)
        if thread["elements"] and any(s["id"] == answer["id"] for s in thread["steps"]):
            break
        await asyncio.sleep(0.1)
    assert thread["userIdentifier"] == "alice" and thread["name"] == "What is LoRA?"
    [stored] = [s for s in thread["steps"] if s["id"] == answer["id"]]
    assert "low-rank" in stored["output"].lower() and stored["feedback"]["value"] == 1
    [element] = thread["elements"]
    assert element["name"] == "full passages 1" and element["url"].startswith(history.FILES_ROUTE)
    stored_file = history.LocalFiles(get_settings().data_dir / "history-files").path(element["objectKey"])
    assert stored_file.read_text().startswith("**[1] knowledge/lora-qlora-peft.md")

    mine = await layer.list_threads(Pagination(first=10), ThreadFilter(userId=alice.id))
    theirs = await layer.list_threads(Pagination(first=10), ThreadFilter(userId=bob.id))
    assert [t["id"] for t in mine.data] == [thread_id] and theirs.data == []


async def test_a_resumed_chat_keeps_its_settings_but_not_its_old_buttons(layer):
    chat = open_chat("alice")
    form = {"local": {"epochs": "2", "lora_r": "16"}, "openai": {"n_epochs": "1"}}
    thread = {"id": str(uuid.uuid4()), "metadata": {"backend": "local", "temperature": 0.9,
                                                     "ab": "stale A/B pairing", "chat_model": {"id": "run-x"},
                                                     "training_form": form}}
    cl.user_session.set("ab", "stale A/B pairing")
    await app.on_chat_resume(thread)
    assert cl.user_session.get("temperature") == 0.9 and cl.user_session.get("backend") == "local"
    assert cl.user_session.get("ab") is None and cl.user_session.get("chat_model") is None
    assert [c["id"] for c in chat.commands] == ["check", "prepare", "models", "train", "deployed", "compare", "quiz"]
    # The training form is kept, checked again like any value the client sends, and shown pre-filled.
    assert cl.user_session.get("training_form") == {"local": {"epochs": "2", "lora_r": "16"}}, "openai is off here"
    fields = {w["id"]: w["initial"] for w in chat.chat_settings}
    assert fields["train.local.epochs"] == "2" and fields["train.local.lora_r"] == "16"
    chat = open_chat("alice")
    await app.on_chat_resume({"id": str(uuid.uuid4()), "metadata": {"training_form": {"local": {"lora_r": "0"}}}})
    assert cl.user_session.get("training_form") == {} and chat.messages == [], "a bad kept value is dropped quietly"


async def test_a_thread_id_that_is_not_a_uuid_is_never_stored(layer):
    """Browsers choose the thread id they resume; Chainlit pastes stored ids into one SQL text."""
    forged = "x') OR 1=1 --"
    await layer.update_thread(forged, name="forged")
    assert await layer.get_thread(forged) is None


def test_object_keys_never_become_paths(tmp_path):
    files = history.LocalFiles(tmp_path / "files")
    for key in ("../../etc/passwd", "/abs/olute", "user/element/name.txt"):
        assert files.path(key).parent.parent == tmp_path / "files"


async def test_a_chats_files_are_served_to_its_owner_only(tmp_path):
    from types import SimpleNamespace
    from urllib.parse import quote

    import httpx
    from chainlit.auth import get_current_user
    from fastapi import FastAPI

    files = history.LocalFiles(tmp_path / "files")
    stored = await files.upload_file("alice-id/element-1/notes.txt", b"alice's notes", mime="text/plain")
    api = FastAPI()
    api.include_router(history.files_router(files))
    logged_in = {}
    api.dependency_overrides[get_current_user] = lambda: logged_in["user"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://127.0.0.1") as client:
        logged_in["user"] = SimpleNamespace(id="alice-id")
        mine = await client.get(stored["url"])
        assert mine.status_code == 200 and mine.content == b"alice's notes"
        logged_in["user"] = SimpleNamespace(id="bob-id")
        assert (await client.get(stored["url"])).status_code == 404
        for key in ("bob-id/../alice-id/element-1/notes.txt", "../../etc/passwd"):
            assert (await client.get(f"{history.FILES_ROUTE}/{quote(key, safe='')}")).status_code == 404


def test_database_url_defaults_to_sqlite_and_takes_postgres(tmp_path):
    assert history.database_url(make_settings(tmp_path)).startswith("sqlite+aiosqlite:///")
    postgres = make_settings(tmp_path, database_url="postgres://tutor:s3cret@db.internal/tutor")
    assert history.database_url(postgres) == "postgresql+asyncpg://tutor:s3cret@db.internal/tutor"
    assert history.describe(postgres) == "postgresql+asyncpg://db.internal/tutor", "no credentials in logs"


async def test_history_kept_under_a_name_moves_to_the_account_id_once(layer):
    """Before accounts had ids Chainlit kept each learner's chats under their name; at start they move to the id
    once, into a history user the id may have already (a login before the move), and a later start moves nothing."""
    import sqlite3

    registry = registry_for(get_settings())
    alice = registry.user("alice")
    with sqlite3.connect(registry.path) as db:
        db.execute("UPDATE users SET legacy_name = name WHERE name = 'alice'")
    old = await layer.create_user(cl.User(identifier="alice"))
    thread_id = str(uuid.uuid4())
    await layer.update_thread(thread_id, user_id=old.id, name="from before ids")
    new = await layer.create_user(cl.User(identifier=alice.id))  # she logged in before the move ran
    assert await layer.adopt_accounts(registry) == 1
    threads = await layer.list_threads(Pagination(first=10), ThreadFilter(userId=new.id))
    assert [t["id"] for t in threads.data] == [thread_id] and threads.data[0]["userIdentifier"] == alice.id
    assert await layer.get_user("alice") is None and registry.legacy_names() == {}
    assert await layer.adopt_accounts(registry) == 0
