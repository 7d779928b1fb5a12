"""The registry: one SQLite file in the data dir recording datasets, runs and models.

It survives restarts (the app re-reads it and keeps following running jobs) and never holds secrets:
what is stored is the run's settings, status, metrics, paths and error message.

    python -m training.registry            # lists runs
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from contextlib import closing
from pathlib import Path

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
FINISHED = ("succeeded", "failed", "cancelled")

SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, files TEXT NOT NULL, report TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, backend TEXT NOT NULL, status TEXT NOT NULL, config TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}', run_dir TEXT NOT NULL UNIQUE, adapter_path TEXT, error TEXT, pid INTEGER,
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, run_id TEXT REFERENCES runs(id), kind TEXT NOT NULL, location TEXT NOT NULL,
    base_model TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS comparisons (
    id TEXT PRIMARY KEY, a_label TEXT NOT NULL, b_label TEXT NOT NULL, prompt TEXT NOT NULL, a_answer TEXT NOT NULL,
    b_answer TEXT NOT NULL, stats TEXT NOT NULL DEFAULT '{}', vote TEXT, created_at REAL NOT NULL);
"""
_JSON_COLUMNS = ("files", "report", "config", "metrics", "stats")
VOTES = ("a", "b", "tie")


def new_id(prefix: str) -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


class Registry:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # A short-lived connection per call: safe from any thread or process, WAL for concurrent readers.
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        return db

    @staticmethod
    def _row(row: sqlite3.Row | None) -> dict | None:
        if row is None:
            return None
        data = dict(row)
        for column in _JSON_COLUMNS:
            if column in data and data[column] is not None:
                data[column] = json.loads(data[column])
        return data

    def _write(self, sql: str, params: tuple) -> None:
        with closing(self._connect()) as db, db:
            db.execute(sql, params)

    def _read(self, sql: str, params: tuple = ()) -> list[dict]:
        with closing(self._connect()) as db:
            return [self._row(r) for r in db.execute(sql, params).fetchall()]

    # datasets
    def add_dataset(self, name: str, files: dict[str, str], report: dict) -> str:
        dataset_id = new_id("ds")
        self._write("INSERT INTO datasets VALUES (?, ?, ?, ?, ?)",
                    (dataset_id, name, json.dumps(files), json.dumps(report), time.time()))
        return dataset_id

    def datasets(self) -> list[dict]:
        return self._read("SELECT * FROM datasets ORDER BY created_at DESC")

    # runs
    def create_run(self, backend: str, config: dict, run_dir: Path, status: str = "queued",
                   run_id: str | None = None) -> dict:
        run_id = run_id or new_id("run")
        now = time.time()
        self._write("INSERT INTO runs (id, backend, status, config, run_dir, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", (run_id, backend, status, json.dumps(config), str(run_dir), now, now))
        return self.run(run_id)

    def update_run(self, run_id: str, **fields) -> dict:
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"unknown status {fields['status']}")
        for column in _JSON_COLUMNS:
            if column in fields:
                fields[column] = json.dumps(fields[column])
        fields["updated_at"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._write(f"UPDATE runs SET {assignments} WHERE id = ?", (*fields.values(), run_id))
        return self.run(run_id)

    def run(self, run_id: str) -> dict | None:
        found = self._read("SELECT * FROM runs WHERE id = ?", (run_id,))
        return found[0] if found else None

    def runs(self) -> list[dict]:
        return self._read("SELECT * FROM runs ORDER BY created_at DESC")

    # models
    def add_model(self, run_id: str, kind: str, location: str, base_model: str) -> str:
        model_id = new_id("model")
        self._write("INSERT INTO models VALUES (?, ?, ?, ?, ?, ?)",
                    (model_id, run_id, kind, location, base_model, time.time()))
        return model_id

    def models(self) -> list[dict]:
        return self._read("SELECT * FROM models ORDER BY created_at DESC")

    # A/B comparisons and the learner's votes
    def add_comparison(self, a_label: str, b_label: str, prompt: str, a_answer: str, b_answer: str,
                       stats: dict) -> str:
        comparison_id = new_id("ab")
        self._write("INSERT INTO comparisons VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                    (comparison_id, a_label, b_label, prompt, a_answer, b_answer, json.dumps(stats), time.time()))
        return comparison_id

    def vote(self, comparison_id: str, vote: str) -> dict:
        """Record (or change) the vote of one comparison; returns the tally for its pair of systems."""
        if vote not in VOTES:
            raise ValueError(f"vote must be one of {VOTES}")
        found = self._read("SELECT a_label, b_label FROM comparisons WHERE id = ?", (comparison_id,))
        if not found:
            raise ValueError(f"No comparison '{comparison_id}' in this registry: the vote was not recorded.")
        self._write("UPDATE comparisons SET vote = ? WHERE id = ?", (vote, comparison_id))
        return self.tally(found[0]["a_label"], found[0]["b_label"])

    def tally(self, a_label: str, b_label: str) -> dict:
        rows = self._read("SELECT vote, COUNT(*) AS n FROM comparisons WHERE a_label = ? AND b_label = ? "
                          "AND vote IS NOT NULL GROUP BY vote", (a_label, b_label))
        return {vote: next((r["n"] for r in rows if r["vote"] == vote), 0) for vote in VOTES}


def registry_for(settings) -> Registry:
    return Registry(settings.data_dir / "registry.sqlite")


if __name__ == "__main__":
    from assistant.settings import get_settings

    for run in registry_for(get_settings()).runs():
        print(run["id"], run["status"], run["backend"], run["metrics"])
