"""What a request must show before its body is read: a size within its route's limit, and (for `tutor serve`)
the key, a content type the API takes, and no foreign Origin.

A declared Content-Length over the limit is refused at once, and a body without one is counted as it streams in
and cut off past the limit (HTTP 413). The chat app limits every route (uploads get their own, larger limit, and
are streamed to disk: assistant.web.upload_route) and `tutor serve` every request, so neither a large
declared nor a large chunked body reaches memory or disk, logged in or not.

    app = BodyLimit(app, max_bytes=200 * 2**20, paths=("/project/file",))
    app = BodyLimit(app, max_bytes=2 * 2**20, exclude=("/project/file",))     # every other route
    app = RequestGate(app, key="sk-...", allowed_origins=[], refuse=error_body)
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable

API_TYPES = ("application/json", "multipart/form-data")  # a web page's plain-text or url-encoded POST never gets in


class BodyLimit:
    """ASGI middleware: 413 for request bodies over `max_bytes` on paths starting with one of `paths` (and not
    with one of `exclude`)."""

    def __init__(self, app, max_bytes: int, paths: tuple[str, ...] = ("/",), body: dict | None = None,
                 exclude: tuple[str, ...] = ()):
        self.app, self.max_bytes, self.paths, self.exclude = app, max_bytes, paths, exclude
        self.body = json.dumps(body or {"detail": f"The request is over the {max_bytes // 2**20} MB limit."}).encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(self.paths) or \
                (self.exclude and scope["path"].startswith(self.exclude)):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        seen, started, refused = 0, False, False

        async def counted_receive():
            # Past the limit: answer 413 now and tell the app the client left, so it stops reading (the app may
            # catch an error raised here and answer on its own; a disconnect it can only give up on).
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message):
            nonlocal started
            if refused:  # the 413 went out: whatever the app says after it is dropped
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, send) -> None:
        await answer(send, 413, self.body)


class RequestGate:
    """ASGI middleware for an API: 401 without the bearer key (when there is one), 403 for an Origin other than the
    request's own Host or `allowed_origins` (a page elsewhere, even with a form a browser sends without asking),
    415 for a POST that is not JSON or multipart; all before a byte of the body is read. `refuse(message, code)`
    is the error body."""

    def __init__(self, app, key: str | None, allowed_origins: list[str], refuse: Callable[[str, str], dict],
                 paths: tuple[str, ...] = ("/",)):
        self.app, self.key, self.paths, self.refuse = app, key, paths, refuse
        self.allowed = {origin.lower().rstrip("/") for origin in allowed_origins}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(self.paths):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        origin, host = headers.get("origin", "").lower().rstrip("/"), headers.get("host", "").lower()
        sent = headers.get("authorization", "").removeprefix("Bearer ").strip()
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if origin and origin not in self.allowed and origin not in (f"http://{host}", f"https://{host}"):
            problem = 403, "Requests from other sites' pages are refused.", "forbidden_origin"
        elif self.key is not None and not hmac.compare_digest(sent.encode(), self.key.encode()):
            problem = 401, "Incorrect API key provided.", "invalid_api_key"
        elif scope["method"] == "POST" and kind not in API_TYPES:
            problem = 415, "Send application/json (or multipart/form-data for file uploads).", "unsupported_media_type"
        else:
            await self.app(scope, receive, send)
            return
        status, message, code = problem
        await answer(send, status, json.dumps(self.refuse(message, code)).encode())


async def answer(send, status: int, body: bytes) -> None:
    """A JSON answer that closes the connection (the unread body stays unread)."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
