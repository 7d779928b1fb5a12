"""The registry: one SQLite file in the data dir recording who owns what, and how every run stands.

Tables: users (accounts and roles), files (uploads, by opaque id), datasets, runs (the training
queue included), models, comparisons (A/B answers and votes), evaluations and quiz_answers (each learner's graded
checks of understanding: only ever read back for that learner). Every row but a user's
carries its owner; a query with `owner=None` spans every owner (admins, the operator's CLI). It
survives restarts and never holds secrets: settings, statuses, metrics, paths and error messages only.

Owners are account ids (`u-...`, stable: a name removed and added again is a new person), or the reserved
LOCAL_USER (no login; rows from before accounts) and API_USER (`tutor serve`). The schema and its migrations
are training/base/registry_schema.py: opening an older file migrates it in place and loses nothing.

    python -m training.base.registry            # lists runs
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from training.base.records import Dataset, Evaluation, File, Model, QuizAnswer, Record, Run, User
from training.base.registry_schema import API_USER, LOCAL_USER, OWNED, RESERVED, VERSION, migrate, new_user_id

__all__ = ["API_USER", "LOCAL_USER", "RESERVED", "Registry", "RegistryError", "new_id", "registry_for"]

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted", "timed_out")
FINISHED = ("succeeded", "failed", "cancelled", "timed_out")
ACTIVE = ("queued", "running")
ROLES = ("user", "admin")
VOTES = ("a", "b", "tie")
QUIZ_GRADES = ("right", "partly", "wrong")
_JSON_COLUMNS = ("files", "report", "config", "metrics", "stats", "summary")


class RegistryError(Exception):
    """The registry cannot be read or written; the message says why and what to do, for the learner."""


def new_id(prefix: str) -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _owned(owner: str | None) -> tuple[str, tuple]:
    """A WHERE clause for "rows of this owner", or for every row when owner is None."""
    return ("owner = ?", (owner,)) if owner is not None else ("1 = 1", ())


class Registry:
    def __init__(self, path: Path, timeout: float = 30.0):
        self.path = Path(path)
        self.timeout = timeout
        self._local = threading.local()  # the connection of an open `locked()` block, per thread
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as db:
            current = db.execute("PRAGMA user_version").fetchone()[0] == VERSION
        if not current:  # a new or older file: brought up to date once, by whoever opens it first
            with self._connection(write=True) as db:
                if migrate(db) < 2:
                    self._adopt_evaluations(db)

    # --- connections --------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)  # explicit transactions
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")  # concurrent readers while a trainer writes
        return db

    @contextlib.contextmanager
    def _connection(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """The open `locked()` transaction's connection, or a short-lived one (safe from any thread or
        process). SQLite's failures become one RegistryError sentence.

        A transaction that writes takes the write lock at BEGIN: a read transaction that later wrote would
        fail at once (SQLITE_BUSY, no waiting) whenever another process wrote since its read began."""
        held = getattr(self._local, "db", None)
        try:
            if held is not None:
                yield held
                return
            with contextlib.closing(self._open()) as db:
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:  # locked, damaged, unwritable
            raise self._explain(exc) from None

    def _adopt_evaluations(self, db: sqlite3.Connection) -> None:
        """Evaluations written before the registry listed them (DATA_DIR/evals/*/summary.json) join it."""
        for summary in sorted((self.path.parent / "evals").glob("*/summary.json")):
            try:
                systems = json.loads(summary.read_text()).get("systems", {})
            except (OSError, ValueError):
                continue  # unreadable: it stays on disk, unlisted
            db.execute("INSERT OR IGNORE INTO evaluations VALUES (?, ?, NULL, ?, ?, ?)",
                       (summary.parent.name, LOCAL_USER, json.dumps(systems), str(summary.parent),
                        summary.stat().st_mtime))

    @contextlib.contextmanager
    def locked(self) -> Iterator["Registry"]:
        """One write transaction for a block of calls on this thread: no other process writes meanwhile
        (the training queue takes it to count running jobs and start the next ones atomically)."""
        if getattr(self._local, "db", None) is not None:  # already inside: one transaction
            yield self
            return
        try:
            db = self._open()
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc) from None
        self._local.db = db
        try:
            yield self
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")
        finally:
            self._local.db = None
            db.close()

    def _explain(self, exc: sqlite3.DatabaseError) -> RegistryError:
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            return RegistryError(f"The registry is busy: another process held it for over {self.timeout:.0f} s. "
                                 "Try again in a moment.")
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return RegistryError("The registry file (registry.sqlite in the data dir) is damaged. Move it aside and "
                                 "restart to begin a new one; datasets and runs on disk are kept.")
        if "readonly" in text or "unable to open" in text or "disk" in text:
            return RegistryError("The registry file (registry.sqlite in the data dir) can't be written: check the "
                                 "data dir's permissions and free space.")
        return RegistryError(f"The registry failed ({exc}).")

    @staticmethod
    def _row(row: sqlite3.Row | None) -> dict | None:
        if row is None:
            return None
        data = dict(row)
        for column in _JSON_COLUMNS:
            if column in data and data[column] is not None:
                data[column] = json.loads(data[column])
        return data

    def _write(self, sql: str, params: tuple = ()) -> int:
        with self._connection(write=True) as db:
            return db.execute(sql, params).rowcount

    def _read(self, sql: str, params: tuple = (), record: type[Record] | None = None) -> list:
        """The rows, as `record`s (or dicts, for an aggregate)."""
        with self._connection() as db:
            rows = [self._row(r) for r in db.execute(sql, params).fetchall()]
        return rows if record is None else [record.model_validate(row) for row in rows]

    def _one(self, sql: str, params: tuple = (), record: type[Record] | None = None):
        found = self._read(sql, params, record)
        return found[0] if found else None

    # --- users --------------------------------------------------------------------------------------

    def add_user(self, name: str, password_hash: str | None, role: str = "user") -> User:
        """A new account (a new id, even for the name of a removed one); ValueError for a taken or reserved name."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        if name in RESERVED:
            raise ValueError(f"'{name}' is reserved for the app's own work.")
        user_id = new_user_id()
        with self._connection(write=True) as db:
            if db.execute("SELECT 1 FROM users WHERE name = ? AND removed_at IS NULL", (name,)).fetchone():
                raise ValueError(f"User '{name}' exists already.")
            db.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, NULL, NULL)",
                       (user_id, name, password_hash, role, time.time()))
        return self.account(user_id)

    def user(self, name: str) -> User | None:
        """The active account of this name."""
        return self._one("SELECT * FROM users WHERE name = ? AND removed_at IS NULL", (name,), record=User)

    def account(self, user_id: str) -> User | None:
        """The active account of this id (None once removed: its sessions stop at once)."""
        return self._one("SELECT * FROM users WHERE id = ? AND removed_at IS NULL", (user_id,), record=User)

    def users(self, removed: bool = False) -> list[User]:
        return self._read(f"SELECT * FROM users WHERE removed_at IS {'NOT ' if removed else ''}NULL "
                          "ORDER BY name, created_at", record=User)

    def remove_user(self, name: str) -> bool:
        """Retire the account: it can't log in, its sessions end, its work stays (for `transfer`)."""
        return self._write("UPDATE users SET removed_at = ? WHERE name = ? AND removed_at IS NULL",
                           (time.time(), name)) > 0

    def legacy_names(self) -> dict[str, str]:
        """{name: id} of accounts whose chat history is still kept under their name (from before ids)."""
        return {u["name"]: u["id"] for u in self._read("SELECT name, id FROM users WHERE legacy_name IS NOT NULL")}

    def forget_legacy_name(self, user_id: str) -> None:
        self._write("UPDATE users SET legacy_name = NULL WHERE id = ?", (user_id,))

    def transfer(self, from_owner: str, to_owner: str) -> dict[str, int]:
        """Hand every row of one owner to another (an admin's explicit choice); rows moved per table."""
        with self._connection(write=True) as db:
            return {table: db.execute(f"UPDATE {table} SET owner = ? WHERE owner = ?", (to_owner, from_owner)).rowcount
                    for table in OWNED}

    # --- uploaded files -----------------------------------------------------------------------------

    def add_file(self, owner: str, name: str, path: Path, purpose: str, file_id: str | None = None) -> File:
        file_id = file_id or new_id("file")
        self._write("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (file_id, owner, name, str(path), Path(path).stat().st_size, purpose, time.time()))
        return self.file(file_id)

    def file(self, file_id: str, owner: str | None = None) -> File | None:
        where, params = _owned(owner)
        return self._one(f"SELECT * FROM files WHERE id = ? AND {where}", (file_id, *params), record=File)

    def files(self, owner: str | None = None, purpose: str | None = None) -> list[File]:
        where, params = _owned(owner)
        if purpose is not None:
            where, params = f"{where} AND purpose = ?", (*params, purpose)
        return self._read(f"SELECT * FROM files WHERE {where} ORDER BY created_at DESC", params, record=File)

    # --- datasets -----------------------------------------------------------------------------------

    def add_dataset(self, name: str, files: dict[str, str], report: dict, owner: str = LOCAL_USER,
                    dataset_id: str | None = None) -> str:
        dataset_id = dataset_id or new_id("ds")
        self._write("INSERT INTO datasets (id, name, files, report, created_at, owner) VALUES (?, ?, ?, ?, ?, ?)",
                    (dataset_id, name, json.dumps(files), json.dumps(report), time.time(), owner))
        return dataset_id

    def dataset(self, dataset_id: str, owner: str | None = None) -> Dataset | None:
        where, params = _owned(owner)
        return self._one(f"SELECT * FROM datasets WHERE id = ? AND {where}", (dataset_id, *params), record=Dataset)

    def datasets(self, owner: str | None = None) -> list[Dataset]:
        where, params = _owned(owner)
        return self._read(f"SELECT * FROM datasets WHERE {where} ORDER BY created_at DESC", params, record=Dataset)

    # --- runs ---------------------------------------------------------------------------------------

    def create_run(self, backend: str, config: dict, run_dir: Path, status: str = "queued",
                   run_id: str | None = None, owner: str = LOCAL_USER) -> Run:
        run_id = run_id or new_id("run")
        now = time.time()
        self._write("INSERT INTO runs (id, backend, status, config, run_dir, created_at, updated_at, owner, queued_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, backend, status, json.dumps(config), str(run_dir), now, now, owner, now))
        return self.run(run_id)

    def update_run(self, run_id: str, *, only_if: tuple[str, ...] | None = None, **fields) -> Run | None:
        """Set fields of a run; with `only_if`, only while its status is one of those (then None if it was not)."""
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"unknown status {fields['status']}")
        for column in _JSON_COLUMNS:
            if column in fields:
                fields[column] = json.dumps(fields[column])
        fields["updated_at"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in fields)
        condition, params = "", ()
        if only_if is not None:
            condition, params = f" AND status IN ({', '.join('?' * len(only_if))})", only_if
        changed = self._write(f"UPDATE runs SET {assignments} WHERE id = ?{condition}",
                              (*fields.values(), run_id, *params))
        return self.run(run_id) if changed or only_if is None else None

    def run(self, run_id: str, owner: str | None = None) -> Run | None:
        where, params = _owned(owner)
        return self._one(f"SELECT * FROM runs WHERE id = ? AND {where}", (run_id, *params), record=Run)

    def runs(self, owner: str | None = None, status: tuple[str, ...] | None = None,
             backend: str | None = None) -> list[Run]:
        where, params = _owned(owner)
        if status is not None:
            where, params = f"{where} AND status IN ({', '.join('?' * len(status))})", (*params, *status)
        if backend is not None:
            where, params = f"{where} AND backend = ?", (*params, backend)
        return self._read(f"SELECT * FROM runs WHERE {where} ORDER BY created_at DESC", params, record=Run)

    # --- models -------------------------------------------------------------------------------------

    def add_model(self, run_id: str, kind: str, location: str, base_model: str, owner: str | None = None) -> str:
        """The run's result; it belongs to the run's owner unless told otherwise."""
        if owner is None:
            owner = run.owner if (run := self.run(run_id)) else LOCAL_USER
        model_id = new_id("model")
        self._write("INSERT INTO models (id, run_id, kind, location, base_model, created_at, owner) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", (model_id, run_id, kind, location, base_model, time.time(), owner))
        return model_id

    def put_model(self, run_id: str, kind: str, location: str, base_model: str) -> str:
        """The run's one result, now at `location` (a deployment renamed, a second follower finishing): the
        run's model row is updated, or made."""
        if self._write("UPDATE models SET location = ? WHERE run_id = ?", (location, run_id)):
            return next(m.id for m in self.models() if m.run_id == run_id)
        return self.add_model(run_id, kind, location, base_model)

    def models(self, owner: str | None = None) -> list[Model]:
        where, params = _owned(owner)
        return self._read(f"SELECT * FROM models WHERE {where} ORDER BY created_at DESC", params, record=Model)

    # --- A/B comparisons and the learner's votes ----------------------------------------------------

    def add_comparison(self, a_label: str, b_label: str, prompt: str, a_answer: str, b_answer: str,
                       stats: dict, owner: str = LOCAL_USER) -> str:
        comparison_id = new_id("ab")
        self._write("INSERT INTO comparisons (id, a_label, b_label, prompt, a_answer, b_answer, stats, vote, created_at, "
                    "owner) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                    (comparison_id, a_label, b_label, prompt, a_answer, b_answer, json.dumps(stats), time.time(), owner))
        return comparison_id

    def vote(self, comparison_id: str, vote: str, owner: str | None = None) -> dict:
        """Record (or change) the vote of one of the owner's comparisons; returns the owner's tally for its pair."""
        if vote not in VOTES:
            raise ValueError(f"vote must be one of {VOTES}")
        where, params = _owned(owner)
        with self._connection(write=True) as db:
            found = db.execute(f"SELECT a_label, b_label, owner FROM comparisons WHERE id = ? AND {where}",
                               (comparison_id, *params)).fetchone()
            if found is None:
                raise ValueError(f"No comparison '{comparison_id}' of yours: the vote was not recorded.")
            db.execute("UPDATE comparisons SET vote = ? WHERE id = ?", (vote, comparison_id))
        return self.tally(found["a_label"], found["b_label"], found["owner"])

    def tally(self, a_label: str, b_label: str, owner: str | None = None) -> dict:
        where, params = _owned(owner)
        rows = self._read(f"SELECT vote, COUNT(*) AS n FROM comparisons WHERE a_label = ? AND b_label = ? "
                          f"AND vote IS NOT NULL AND {where} GROUP BY vote", (a_label, b_label, *params))
        return {vote: next((r["n"] for r in rows if r["vote"] == vote), 0) for vote in VOTES}

    # --- evaluations --------------------------------------------------------------------------------

    def add_evaluation(self, owner: str, run_id: str | None, summary: dict, results_dir: Path) -> str:
        evaluation_id = new_id("eval")
        self._write("INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?)",
                    (evaluation_id, owner, run_id, json.dumps(summary), str(results_dir), time.time()))
        return evaluation_id

    def evaluations(self, owner: str | None = None) -> list[Evaluation]:
        where, params = _owned(owner)
        return self._read(f"SELECT * FROM evaluations WHERE {where} ORDER BY created_at DESC", params, record=Evaluation)

    # --- quiz answers -------------------------------------------------------------------------------

    def record_quiz_answer(self, owner: str, question: str, topic: str, grade: str, attempt: int,
                           language: str) -> None:
        """One graded answer of a learner's check of understanding (attempt 1, or 2 after the hint)."""
        if grade not in QUIZ_GRADES:
            raise ValueError(f"grade must be one of {QUIZ_GRADES}")
        self._write("INSERT INTO quiz_answers (owner, question, topic, language, grade, attempt, answered_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", (owner, question, topic, language, grade, attempt, time.time()))

    def quiz_progress(self, owner: str) -> list[QuizAnswer]:
        """One learner's graded answers, oldest first. Progress is never pooled: an admin reads their own too."""
        if not owner:
            raise ValueError("Quiz progress is one learner's: name them.")
        where, params = _owned(owner)
        return self._read(f"SELECT question, topic, language, grade, attempt, answered_at FROM quiz_answers "
                          f"WHERE {where} ORDER BY id", params, record=QuizAnswer)


def registry_for(settings) -> Registry:
    return Registry(settings.data_dir / "registry.sqlite")


if __name__ == "__main__":
    import sys

    for run in Registry(Path(sys.argv[1] if len(sys.argv) > 1 else ".tutor-data/registry.sqlite")).runs():
        print(run.id, run.owner, run.status, run.backend, run.metrics)
