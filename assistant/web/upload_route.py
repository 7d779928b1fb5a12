"""Chainlit's upload route (`POST /project/file`) with the app's memory flat, whatever the file's size or shape.

Chainlit 2.12 reads a whole upload into memory (`await file.read()`) before it writes it to the session's folder, so
a 200 MB attachment held 200 MB of the app's memory and more while it was copied. Starlette has already spooled the
upload to a temporary file by then (python-multipart streams it, 1 MiB in memory at most). This twin, registered
ahead of Chainlit's, keeps Chainlit's checks (the session is the user's, the ask's file spec, the type and size) and
copies that temporary file to the session's folder in 1 MiB pieces in a worker thread, then records it exactly as
Chainlit's `persist_file` does. The size limit itself is enforced before the body is read (assistant.web.limits).

    stream_uploads()    # once, at start (assistant.chat.app does it)
"""

import asyncio  # no `from __future__ import annotations`: FastAPI reads the route's annotations as objects
import mimetypes
import shutil
import uuid
from pathlib import Path

from assistant.web.history import include_first

CHUNK = 1 << 20


def copy_upload(source, folder: Path, mime: str) -> tuple[str, Path]:
    """Copy an open upload into `folder` under a new id with the suffix Chainlit gives its MIME type (blocking: call
    it off the loop); returns (id, path). A failed copy leaves nothing behind."""
    folder.mkdir(parents=True, exist_ok=True)
    file_id = str(uuid.uuid4())
    target = folder / (file_id + (mimetypes.guess_extension(mime) or ""))
    try:
        source.seek(0)
        with open(target, "wb") as copy:
            shutil.copyfileobj(source, copy, CHUNK)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return file_id, target


def stream_uploads() -> None:
    """Register the streamed twin of Chainlit's upload route ahead of Chainlit's own."""
    from chainlit import server
    from chainlit.session import WebsocketSession
    from fastapi import APIRouter, HTTPException, UploadFile
    from fastapi.responses import JSONResponse

    router = APIRouter()

    @router.post("/project/file")
    async def upload_file(current_user: server.UserParam, session_id: str, file: UploadFile,
                          ask_parent_id: str | None = None):
        try:
            session = WebsocketSession.get_by_id(session_id)
            if not session:
                raise HTTPException(status_code=404, detail="Session not found")
            if current_user and (not session.user or session.user.identifier != current_user.identifier):
                raise HTTPException(status_code=401, detail="You are not authorized to upload files for this session")
            if not file.filename or not file.content_type:
                raise HTTPException(status_code=400, detail="An upload needs a file name and a content type")
            spec = session.files_spec.get(ask_parent_id, None)
            if not spec and ask_parent_id:
                raise HTTPException(status_code=404, detail="Parent message not found")
            try:
                server.validate_file_upload(file, spec=spec)
            except ValueError as error:
                raise HTTPException(status_code=400, detail=str(error)) from None
            file_id, path = await asyncio.to_thread(copy_upload, file.file, session.files_dir, file.content_type)
            session.files[file_id] = {"id": file_id, "path": path, "name": file.filename, "type": file.content_type,
                                      "size": path.stat().st_size}
            return JSONResponse(content={"id": file_id})
        finally:
            await file.close()

    include_first(router)
