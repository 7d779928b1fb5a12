"""`tutor serve`'s files: `POST /v1/files` (a training file, streamed to disk and checked like OpenAI's data
checks before it is kept) and `GET /v1/files/{file_id}`. File ids are looked up, never made into paths.

    client.files.create(file=open("train.jsonl", "rb"), purpose="fine-tune")
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from openai.types import FileObject

from assistant.server.errors import APIError
from assistant.server.state import Server
from training.base import records
from training.base.registry import API_USER
from training.data.validate import validate_file

router = APIRouter(prefix="/files")


@router.post("")
async def upload(file: Annotated[UploadFile, File()], purpose: Annotated[str, Form()], server: Server):
    if purpose != "fine-tune":
        raise APIError(400, "Upload a `file` with purpose 'fine-tune'.", "invalid_request", "purpose")
    file_id = f"file-{secrets.token_hex(12)}"
    path = server.files_dir / f"{file_id}.jsonl"
    staging = path.with_suffix(".tmp")
    try:
        await asyncio.to_thread(_copy, file.file, staging)
        report = await asyncio.to_thread(validate_file, staging)  # format checks (tiktoken counts suffice)
        if not report.ok:
            problems = "; ".join(f"{key} on line(s) {found.shown()}" for key, found in report.errors.items())
            raise APIError(400, f"Invalid file format for fine-tuning: {problems or 'no examples'}.",
                           "invalid_file_format", "file")
        staging.replace(path)
    finally:
        staging.unlink(missing_ok=True)
    row = await asyncio.to_thread(server.registry.add_file, API_USER, file.filename or "upload.jsonl", path,
                                  "fine-tune", file_id)
    return file_object(row)


@router.get("/{file_id}")
async def retrieve(file_id: str, server: Server):
    return file_object(await server.file(file_id, "file_id"))


def _copy(source, target: Path) -> None:
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)


def file_object(row: records.File) -> dict:
    return FileObject.model_validate({"id": row.id, "object": "file", "bytes": row.bytes,
                                      "created_at": int(row.created_at), "filename": row.name,
                                      "purpose": "fine-tune", "status": "processed"}).model_dump(mode="json")
