"""The registry's tables and their migrations: one SQLite schema, versioned in `PRAGMA user_version`.

Version 1 had no owners, users, files, evaluations or queue times; version 2 keyed accounts (and so every owner
column) by the account's name; version 3 keys them by a stable id, so a name removed and added again is a new
person who sees nothing of the old account's work; version 4 adds quiz_answers (each learner's graded checks of
understanding, assistant/tutor/quiz.py), made by its `CREATE TABLE IF NOT EXISTS` like any new table. Opening an older
file migrates it in place and loses nothing. Used by training/base/registry.py only:

    migrate(db)        # inside the connection's transaction
"""

from __future__ import annotations

import secrets
import sqlite3

VERSION = 4
LOCAL_USER = "local"  # the learner of a single-user install (no login), owner of rows from before accounts
API_USER = "api"  # the owner of what `tutor serve` makes
RESERVED = (LOCAL_USER, API_USER)  # owners that are not accounts: no login of any kind may become them
OWNED = ("files", "datasets", "runs", "models", "comparisons", "evaluations", "quiz_answers")  # with an owner column

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, password_hash TEXT, role TEXT NOT NULL DEFAULT 'user',
    created_at REAL NOT NULL, removed_at REAL, legacy_name TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS users_active_name ON users (name) WHERE removed_at IS NULL;
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL, bytes INTEGER NOT NULL,
    purpose TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, files TEXT NOT NULL, report TEXT NOT NULL, created_at REAL NOT NULL,
    owner TEXT NOT NULL DEFAULT 'local');
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, backend TEXT NOT NULL, status TEXT NOT NULL, config TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}', run_dir TEXT NOT NULL UNIQUE, adapter_path TEXT, error TEXT, handle TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, owner TEXT NOT NULL DEFAULT 'local', queued_at REAL,
    started_at REAL);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, run_id TEXT REFERENCES runs(id), kind TEXT NOT NULL, location TEXT NOT NULL,
    base_model TEXT NOT NULL, created_at REAL NOT NULL, owner TEXT NOT NULL DEFAULT 'local');
CREATE TABLE IF NOT EXISTS comparisons (
    id TEXT PRIMARY KEY, a_label TEXT NOT NULL, b_label TEXT NOT NULL, prompt TEXT NOT NULL, a_answer TEXT NOT NULL,
    b_answer TEXT NOT NULL, stats TEXT NOT NULL DEFAULT '{}', vote TEXT, created_at REAL NOT NULL,
    owner TEXT NOT NULL DEFAULT 'local');
CREATE TABLE IF NOT EXISTS evaluations (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, run_id TEXT, summary TEXT NOT NULL, results_dir TEXT NOT NULL,
    created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS runs_queue ON runs (status, queued_at);
CREATE TABLE IF NOT EXISTS quiz_answers (
    id INTEGER PRIMARY KEY, owner TEXT NOT NULL, question TEXT NOT NULL, topic TEXT NOT NULL, language TEXT NOT NULL,
    grade TEXT NOT NULL, attempt INTEGER NOT NULL, answered_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS quiz_answers_owner ON quiz_answers (owner, topic);
"""
_1_TO_2 = [
    *(f"ALTER TABLE {table} ADD COLUMN owner TEXT NOT NULL DEFAULT 'local'"
      for table in ("datasets", "runs", "models", "comparisons")),
    "ALTER TABLE runs RENAME COLUMN pid TO handle",  # what the launcher knows a trainer by (a pid, locally)
    "ALTER TABLE runs ADD COLUMN queued_at REAL",
    "ALTER TABLE runs ADD COLUMN started_at REAL",
    "UPDATE runs SET queued_at = created_at, started_at = CASE WHEN status = 'queued' THEN NULL ELSE created_at END",
]


def new_user_id() -> str:
    return f"u-{secrets.token_hex(8)}"


def migrate(db: sqlite3.Connection) -> int:
    """Bring the file to VERSION; returns the version it had (0 for a new file)."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "runs" in tables and version < 2:  # before accounts
        for statement in _1_TO_2:
            db.execute(statement)
    if "users" in tables and version < 3:
        _accounts_by_id(db)
    for statement in SCHEMA.split(";"):  # executescript would commit the caller's transaction
        db.execute(statement)
    db.execute(f"PRAGMA user_version = {VERSION}")
    return version if tables else 0


def _accounts_by_id(db: sqlite3.Connection) -> None:
    """Version 2 → 3: each account gets a stable id, and every row it owned is owned by that id. An account that
    was named like a reserved owner (a proxy could once send `local`) is retired; the rows stay the system's."""
    old = db.execute("SELECT name, password_hash, role, created_at FROM users").fetchall()
    db.execute("DROP TABLE users")
    db.execute(SCHEMA.split(";")[0])
    for name, password_hash, role, created_at in old:
        user_id = new_user_id()
        removed = created_at if name in RESERVED else None
        db.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?)",  # legacy_name: its chat history's key, until
                   (user_id, name, password_hash, role, created_at, removed, name))  # assistant/web/history.py moves it
        if removed is None:
            for table in OWNED:
                db.execute(f"UPDATE {table} SET owner = ? WHERE owner = ?", (user_id, name))
