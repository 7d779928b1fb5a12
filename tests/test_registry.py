"""The registry: owners on every row, an in-place upgrade that loses nothing, and one clear sentence when the
file is damaged or locked (in the library, the chat and the CLI)."""

import json
import sqlite3
import subprocess
import sys
import threading

import pytest

from training.base.registry import LOCAL_USER, Registry, RegistryError

# The schema before accounts (version 1), as an existing data dir has it.
V1 = """
CREATE TABLE datasets (id TEXT PRIMARY KEY, name TEXT NOT NULL, files TEXT NOT NULL, report TEXT NOT NULL,
    created_at REAL NOT NULL);
CREATE TABLE runs (id TEXT PRIMARY KEY, backend TEXT NOT NULL, status TEXT NOT NULL, config TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}', run_dir TEXT NOT NULL UNIQUE, adapter_path TEXT, error TEXT, pid INTEGER,
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE models (id TEXT PRIMARY KEY, run_id TEXT REFERENCES runs(id), kind TEXT NOT NULL, location TEXT NOT NULL,
    base_model TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE comparisons (id TEXT PRIMARY KEY, a_label TEXT NOT NULL, b_label TEXT NOT NULL, prompt TEXT NOT NULL,
    a_answer TEXT NOT NULL, b_answer TEXT NOT NULL, stats TEXT NOT NULL DEFAULT '{}', vote TEXT,
    created_at REAL NOT NULL);
INSERT INTO datasets VALUES ('ds-1', 'sample-seed42', '{"train": "t.jsonl"}', '{"rows_read": 239}', 1);
INSERT INTO runs VALUES ('run-1', 'local', 'succeeded', '{"epochs": 3}', '{"val_f1": 0.7}', '/r/run-1', '/r/run-1/adapter',
    NULL, NULL, 2, 3);
INSERT INTO runs VALUES ('run-2', 'local', 'running', '{}', '{}', '/r/run-2', NULL, NULL, 4242, 4, 4);
INSERT INTO models VALUES ('model-1', 'run-1', 'local-adapter', '/r/run-1/adapter', 'embedded', 3);
INSERT INTO comparisons VALUES ('ab-1', 'A', 'B', 'p', 'a', 'b', '{}', 'a', 5);
"""


def test_an_existing_data_dir_upgrades_in_place_and_loses_nothing(tmp_path):
    with sqlite3.connect(tmp_path / "registry.sqlite") as old:
        old.executescript(V1)
    (tmp_path / "evals" / "eval-old").mkdir(parents=True)
    (tmp_path / "evals" / "eval-old" / "summary.json").write_text(json.dumps({"systems": {"A": {"f1": 0.5}}}))

    registry = Registry(tmp_path / "registry.sqlite")
    [dataset] = registry.datasets(LOCAL_USER)
    assert dataset.report == {"rows_read": 239} and dataset.owner == LOCAL_USER
    assert {r.id: r.owner for r in registry.runs()} == {"run-1": LOCAL_USER, "run-2": LOCAL_USER}
    assert registry.run("run-1").metrics == {"val_f1": 0.7}
    assert registry.run("run-2").handle == "4242", "the trainer's pid is kept as its launcher handle (text)"
    assert registry.run("run-2").queued_at == 4 and registry.run("run-2").started_at == 4
    assert registry.models(LOCAL_USER)[0].location == "/r/run-1/adapter"
    assert registry.tally("A", "B", LOCAL_USER) == {"a": 1, "b": 0, "tie": 0}
    [evaluation] = registry.evaluations(LOCAL_USER)
    assert evaluation.id == "eval-old" and evaluation.summary == {"A": {"f1": 0.5}}
    Registry(tmp_path / "registry.sqlite")  # opening it again changes nothing
    assert len(Registry(tmp_path / "registry.sqlite").evaluations()) == 1


def test_accounts_keyed_by_name_move_to_stable_ids_and_keep_their_work(tmp_path):
    """Version 2 keyed owners by account name: each account gets an id that owns its rows; a name that was once
    a reserved owner (a proxy could send `local`) is retired and the system's rows stay the system's."""
    registry = Registry(tmp_path / "registry.sqlite")
    with sqlite3.connect(tmp_path / "registry.sqlite") as db:  # the version-2 users table, as a data dir has it
        db.executescript("""DROP TABLE users; DROP INDEX IF EXISTS users_active_name;
            CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT, role TEXT NOT NULL DEFAULT 'user',
                                created_at REAL NOT NULL);
            INSERT INTO users VALUES ('alice', '$argon2id$x', 'user', 1), ('local', NULL, 'user', 2);
            PRAGMA user_version = 2;""")
    registry.add_dataset("hers", {}, {}, owner="alice")
    registry.add_dataset("system", {}, {}, owner=LOCAL_USER)
    registry.create_run("local", {}, tmp_path / "r", run_id="run-a", owner="alice")

    upgraded = Registry(tmp_path / "registry.sqlite")
    alice = upgraded.user("alice")
    assert alice.id.startswith("u-") and alice.password_hash == "$argon2id$x"
    assert [d.name for d in upgraded.datasets(alice.id)] == ["hers"]
    assert upgraded.run("run-a", alice.id) and not upgraded.datasets("alice")
    assert [d.name for d in upgraded.datasets(LOCAL_USER)] == ["system"]
    assert upgraded.user("local") is None, "the account named like the system owner is retired"
    assert upgraded.legacy_names() == {"alice": alice.id, "local": upgraded.users(removed=True)[0].id}


def test_rows_belong_to_their_owner(tmp_path):
    registry = Registry(tmp_path / "registry.sqlite")
    mine = registry.add_dataset("a", {}, {}, owner="alice")
    registry.add_dataset("b", {}, {}, owner="bob")
    registry.create_run("local", {}, tmp_path / "r1", run_id="run-alice", owner="alice")
    assert [d.id for d in registry.datasets("alice")] == [mine] and len(registry.datasets()) == 2
    assert registry.dataset(mine, "bob") is None and registry.dataset(mine, "alice").name == "a"
    assert registry.run("run-alice", "bob") is None and registry.run("run-alice").owner == "alice"
    registry.add_model("run-alice", "local-adapter", "/x", "embedded")  # a model belongs to its run's owner
    assert registry.models("alice") and not registry.models("bob")
    comparison = registry.add_comparison("A", "B", "p", "a", "b", {}, owner="alice")
    with pytest.raises(ValueError, match="of yours"):
        registry.vote(comparison, "a", owner="bob")
    assert registry.vote(comparison, "b", owner="alice") == {"a": 0, "b": 1, "tie": 0}


def test_a_damaged_registry_is_one_clear_sentence(tmp_path):
    (tmp_path / "registry.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(RegistryError, match="damaged. Move it aside") as error:
        Registry(tmp_path / "registry.sqlite")
    assert str(tmp_path) not in str(error.value), "the learner sees what to do, not server paths"


def test_a_locked_registry_is_one_clear_sentence(tmp_path):
    registry = Registry(tmp_path / "registry.sqlite", timeout=0.3)
    holder = sqlite3.connect(tmp_path / "registry.sqlite")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RegistryError, match="busy: another process held it"):
            registry.add_dataset("x", {}, {})
    finally:
        holder.rollback()
        holder.close()
    assert registry.add_dataset("x", {}, {})  # free again: works


def test_locked_blocks_are_one_transaction(tmp_path):
    """Two threads counting and inserting inside `locked()` never interleave (the queue relies on it)."""
    registry = Registry(tmp_path / "registry.sqlite")
    seen = []

    def claim(name):
        with registry.locked():
            count = len(registry.datasets())
            seen.append(count)
            registry.add_dataset(name, {}, {})

    threads = [threading.Thread(target=claim, args=(f"d{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(6)), "each block saw the previous ones' writes, none saw a half"


def _open_and_update(path, times: int) -> int:
    """In another process: open the registry, update its run and add an account (a read, then a write, in one
    transaction) `times` times; returns the failures."""
    import os

    failures = 0
    for turn in range(times):
        try:
            registry = Registry(path)
            registry.update_run(registry.runs()[0].id, only_if=("queued", "running"), status="running")
            registry.add_user(f"learner-{os.getpid()}-{turn}", None)
        except RegistryError:
            failures += 1
    return failures


def test_processes_opening_and_writing_at_once_all_get_through(tmp_path):
    """The app, its trainers and the CLI open and write the registry at the same moments. Each waits its turn:
    a write that began as a read would fail at once (SQLITE_BUSY) whenever another process wrote meanwhile
    (a trainer died of it at start, on a loaded CI machine, and its run showed as interrupted)."""
    import multiprocessing

    path = tmp_path / "registry.sqlite"
    Registry(path).create_run("local", {}, tmp_path / "run")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        failures = pool.starmap(_open_and_update, [(path, 60)] * 4)
    assert failures == [0, 0, 0, 0]


def test_the_cli_says_one_line_on_a_damaged_registry(tmp_path):
    import os

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "registry.sqlite").write_bytes(b"garbage" * 500)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TUTOR_"))}
    env["TUTOR_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run([sys.executable, "-m", "assistant.cli.main", "jobs", "list"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 1 and "registry file" in result.stderr and "damaged" in result.stderr
    assert "Traceback" not in result.stderr


async def test_the_chat_says_one_sentence_on_a_damaged_registry(monkeypatch, tmp_path):
    from assistant.chat import app
    from tests.chainlit_harness import open_chat, user_says
    from training.base.settings import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUTOR_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "registry.sqlite").write_bytes(b"garbage" * 500)
    get_settings.cache_clear()
    try:
        chat = open_chat()
        await app.on_message(user_says("/train", command="train"))
        shown = chat.messages[-1]["output"]
        assert "registry file" in shown and "damaged" in shown and "Traceback" not in shown
    finally:
        get_settings.cache_clear()
