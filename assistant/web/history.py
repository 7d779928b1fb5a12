"""Chat history: Chainlit's SQLAlchemy data layer keeps threads, messages, elements and feedback.

SQLite (aiosqlite) in the data dir by default; PostgreSQL (asyncpg) when DATABASE_URL is set. The
tables are Chainlit's documented schema, created on the first start. With logins on, a returning learner
finds their past chats in the sidebar and can resume one; thumbs up/down land in `feedbacks`.

Elements (charts, the dataset files a learner downloads) are copied into DATA_DIR/history-files by a small
storage client and served back at /history/files/... only to the learner whose thread holds them. Object
keys never become paths: a file's name on disk is the hash of its key.

    python -m assistant.web.history          # create the tables and print where the history lives
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.data.storage_clients.base import BaseStorageClient
from chainlit.data.utils import queue_until_user_message

from training.base.settings import Settings

log = logging.getLogger(__name__)

FILES_ROUTE = "/history/files"
# Thread ids come from the browser when it resumes one; in SQLite a CHECK keeps anything but a UUID out,
# since Chainlit builds one of its queries by pasting thread ids into the SQL text.
_UUID_SQLITE = "TEXT CHECK (length({0}) = 36 AND {0} NOT GLOB '*[^0-9a-f-]*')"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    "id" {uuid} PRIMARY KEY, "identifier" TEXT NOT NULL UNIQUE, "metadata" {json} NOT NULL, "createdAt" TEXT);
CREATE TABLE IF NOT EXISTS threads (
    "id" {thread_id} PRIMARY KEY, "createdAt" TEXT, "name" TEXT, "userId" {uuid}, "userIdentifier" TEXT,
    "tags" {array}, "metadata" {json}, FOREIGN KEY ("userId") REFERENCES users("id") ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS steps (
    "id" {uuid} PRIMARY KEY, "name" TEXT NOT NULL, "type" TEXT NOT NULL, "threadId" {uuid} NOT NULL,
    "parentId" {uuid}, "streaming" BOOLEAN NOT NULL, "waitForAnswer" BOOLEAN, "isError" BOOLEAN, "metadata" {json},
    "tags" {array}, "input" TEXT, "output" TEXT, "createdAt" TEXT, "command" TEXT, "start" TEXT, "end" TEXT,
    "generation" {json}, "showInput" TEXT, "language" TEXT, "indent" INT, "defaultOpen" BOOLEAN, "autoCollapse" BOOLEAN,
    "modes" {json},
    FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS elements (
    "id" {uuid} PRIMARY KEY, "threadId" {uuid}, "type" TEXT, "url" TEXT, "chainlitKey" TEXT, "name" TEXT NOT NULL,
    "display" TEXT, "objectKey" TEXT, "size" TEXT, "page" INT, "language" TEXT, "forId" {uuid}, "mime" TEXT,
    "props" {json}, "autoPlay" BOOLEAN, "playerConfig" {json},
    FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS feedbacks (
    "id" {uuid} PRIMARY KEY, "forId" {uuid} NOT NULL, "threadId" {uuid} NOT NULL, "value" INT NOT NULL,
    "comment" TEXT, FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE)
"""
_TYPES = {
    "sqlite": {"uuid": "TEXT", "json": "TEXT", "array": "TEXT", "thread_id": _UUID_SQLITE.format('"id"')},
    "postgresql": {"uuid": "UUID", "json": "JSONB", "array": "TEXT[]", "thread_id": "UUID"},
}
# SQLite has no arrays or JSON: Chainlit's tag lists and option dicts are stored as JSON text (read back below).
sqlite3.register_adapter(list, json.dumps)
sqlite3.register_adapter(dict, json.dumps)


def database_url(settings: Settings) -> str:
    """An async SQLAlchemy URL: DATABASE_URL (a plain postgres:// one gets the asyncpg driver), else SQLite."""
    if settings.database_url is None:
        path = (settings.data_dir / "history.sqlite").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{path}"
    url = settings.database_url.get_secret_value()
    scheme, rest = url.split("://", 1) if "://" in url else ("", url)
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+asyncpg://{rest}"
    return url


class LocalFiles(BaseStorageClient):
    """Element files in a folder of the data dir, named by the hash of their key, served by `serve_file`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, object_key: str) -> Path:
        digest = hashlib.sha256(object_key.encode()).hexdigest()
        return self.root / digest[:2] / digest

    async def upload_file(self, object_key, data, mime="application/octet-stream", overwrite=True,
                          content_disposition=None):
        content = data.encode() if isinstance(data, str) else data
        return await self.store(object_key, mime, lambda out: out.write(content))

    async def upload_path(self, object_key: str, path: Path, mime: str) -> dict:
        """A file on disk, copied in 1 MiB pieces (an attachment may be hundreds of MB)."""
        def copy(out) -> None:
            with open(path, "rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)

        return await self.store(object_key, mime, copy)

    async def store(self, object_key: str, mime: str, fill) -> dict:
        def write() -> None:
            # A chart that grows is stored again under the same key while its previous copy may still be on its
            # way: each write has its own staging file, and the last rename wins.
            target = self.path(object_key)
            target.parent.mkdir(parents=True, exist_ok=True)
            meta = json.dumps({"mime": mime, "name": object_key.rsplit("/", 1)[-1]}).encode()
            for final, writer in ((target.with_suffix(".json"), lambda out: out.write(meta)), (target, fill)):
                with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as staging:
                    writer(staging)
                os.replace(staging.name, final)

        await asyncio.to_thread(write)
        return {"object_key": object_key, "url": await self.get_read_url(object_key)}

    async def delete_file(self, object_key: str) -> bool:
        target = self.path(object_key)
        for path in (target, target.with_suffix(".json")):
            path.unlink(missing_ok=True)
        return True

    async def get_read_url(self, object_key: str) -> str:
        return f"{FILES_ROUTE}/{quote(object_key, safe='')}"

    async def close(self) -> None:
        return None


class HistoryLayer(SQLAlchemyDataLayer):
    """Chainlit's SQLAlchemy layer, reading SQLite's JSON text back into the lists and dicts it stored, and
    storing a file on disk without reading it whole."""

    @queue_until_user_message()
    async def create_element(self, element):
        """Chainlit's (2.12), except that a file on disk (a learner's attachment, up to TUTOR_MAX_UPLOAD_MB) is
        copied into the storage in pieces: Chainlit reads it whole into memory first."""
        if not (element.path and element.for_id and isinstance(self.storage_provider, LocalFiles)):
            return await super().create_element(element)
        owner = await self._get_user_id_by_thread(element.thread_id) or "unknown"
        key = f"{owner}/{element.id}" + (f"/{element.name}" if element.name else "")
        mime = element.mime or "application/octet-stream"
        stored = await self.storage_provider.upload_path(key, Path(element.path), mime)
        record = {name: value for name, value in {**element.to_dict(), "mime": mime, "url": stored["url"],
                                                   "objectKey": key}.items() if value is not None}
        if "props" in record:
            record["props"] = json.dumps(record["props"])
        updates = ", ".join(f'"{column}" = :{column}' for column in record if column != "id")
        columns, values = ", ".join(f'"{column}"' for column in record), ", ".join(f":{column}" for column in record)
        await self.execute_sql(f"INSERT INTO elements ({columns}) VALUES ({values}) ON CONFLICT (id) DO UPDATE SET "
                               f"{updates}", record)

    async def get_all_user_threads(self, user_id=None, thread_id=None):
        threads = await super().get_all_user_threads(user_id=user_id, thread_id=thread_id)
        if threads and self.engine.dialect.name == "sqlite":
            for thread in threads:
                _decode(thread, "tags", "metadata")
                for step in thread["steps"]:
                    _decode(step, "tags", "metadata", "generation", "modes")
                for element in thread["elements"]:
                    _decode(element, "props")
        return threads

    async def create_schema(self) -> None:
        from sqlalchemy import text

        types = _TYPES["sqlite" if self.engine.dialect.name == "sqlite" else "postgresql"]
        async with self.engine.begin() as connection:
            for statement in _SCHEMA.format(**types).split(";"):
                await connection.execute(text(statement))


    async def adopt_accounts(self, registry) -> int:
        """Chat history kept under an account's name (before accounts had ids) moves to its id; returns the users
        moved. Each account moves once: a name added again later is a new person and finds nothing."""
        from sqlalchemy import text

        moved = 0
        for name, user_id in (await asyncio.to_thread(registry.legacy_names)).items():
            values = {"id": user_id, "name": name}
            try:
                async with self.engine.begin() as connection:
                    # A history user for the id may exist already (a login before this ran): its threads join it.
                    kept = (await connection.execute(text('SELECT "id" FROM users WHERE "identifier" = :id'),
                                                     values)).scalar()
                    old = (await connection.execute(text('SELECT "id" FROM users WHERE "identifier" = :name'),
                                                    values)).scalar()
                    if old is not None and kept is not None:
                        await connection.execute(text('UPDATE threads SET "userId" = :kept WHERE "userId" = :old'),
                                                 {"kept": kept, "old": old})
                        await connection.execute(text('DELETE FROM users WHERE "id" = :old'), {"old": old})
                    elif old is not None:
                        await connection.execute(text('UPDATE users SET "identifier" = :id WHERE "id" = :old'),
                                                 {**values, "old": old})
                    await connection.execute(text('UPDATE threads SET "userIdentifier" = :id '
                                                  'WHERE "userIdentifier" = :name'), values)
            except Exception as exc:  # noqa: BLE001 - one account's history stays where it was; the rest move
                log.error("Chat history of one account could not be moved to its id (%s)", type(exc).__name__)
                continue
            moved += old is not None
            await asyncio.to_thread(registry.forget_legacy_name, user_id)
        return moved


def _decode(row: dict, *keys: str) -> None:
    for key in keys:
        if isinstance(row.get(key), str):
            try:
                row[key] = json.loads(row[key])
            except ValueError:
                pass


def data_layer(settings: Settings) -> HistoryLayer:
    return HistoryLayer(conninfo=database_url(settings), storage_provider=LocalFiles(settings.data_dir / "history-files"))


def files_bytes(settings: Settings, identifier: str) -> int:
    """Bytes of the element files in one user's chats (counted towards their disk quota; blocking). SQLite's
    history only: with PostgreSQL the files are the database's and count there."""
    database = settings.data_dir / "history.sqlite"
    if settings.database_url is not None or not database.is_file():
        return 0
    files = LocalFiles(settings.data_dir / "history-files")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        keys = db.execute('SELECT e."objectKey" FROM elements e JOIN threads t ON t."id" = e."threadId" '
                          'WHERE t."userIdentifier" = ? AND e."objectKey" IS NOT NULL', (identifier,)).fetchall()
    return sum(path.stat().st_size for (key,) in keys if (path := files.path(key)).is_file())


def describe(settings: Settings) -> str:
    """Where the history lives, for logs: never the URL's credentials."""
    parts = urlsplit(database_url(settings))
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"


def files_router(files: LocalFiles):
    """The element-file route: a file goes only to the learner whose thread holds it (404 for anyone else)."""
    from chainlit.auth import get_current_user
    from fastapi import APIRouter, Depends, HTTPException
    from fastapi.responses import FileResponse

    router = APIRouter()

    @router.get(f"{FILES_ROUTE}/{{key:path}}")
    async def serve_file(key: str, user=Depends(get_current_user)):
        object_key = unquote(key)
        # Keys begin with the id of the thread owner's history user (Chainlit's create_element).
        owner = object_key.split("/", 1)[0]
        if user is not None and owner != getattr(user, "id", None):
            raise HTTPException(status_code=404, detail="Not found")
        target = files.path(object_key)
        if not target.is_file():
            raise HTTPException(status_code=404, detail="Not found")
        meta = json.loads(target.with_suffix(".json").read_text())
        return FileResponse(target, media_type=meta["mime"], filename=meta["name"])

    return router


def include_first(router) -> None:
    """Add routes to Chainlit's server ahead of its own (its catch-all page route included)."""
    from chainlit.server import app

    routes = app.router.routes
    before = len(routes)
    app.include_router(router)  # one entry (FastAPI 0.165) or one per route (older): all of them go first
    routes[:0] = [routes.pop(before) for _ in range(len(routes) - before)]


def serve_files(settings: Settings) -> None:
    """Add the element-file route to Chainlit's server, ahead of its catch-all page route."""
    include_first(files_router(LocalFiles(settings.data_dir / "history-files")))

if __name__ == "__main__":
    from training.base.settings import get_settings

    current = get_settings()
    asyncio.run(data_layer(current).create_schema())
    print(describe(current))
