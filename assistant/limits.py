"""Request size limits, enforced before a body is read: a declared Content-Length over the limit is refused
at once, and a body without one is counted as it streams in and cut off past the limit (HTTP 413).

The chat app uses it for uploads (Chainlit reads a whole upload before checking its size) and
`tutor serve` for every request, so neither a large declared nor a large chunked body reaches memory or disk.

    app = BodyLimit(app, max_bytes=200 * 2**20, paths=("/project/file",))
"""

from __future__ import annotations

import json


class BodyLimit:
    """ASGI middleware: 413 for request bodies over `max_bytes` on paths starting with one of `paths`."""

    def __init__(self, app, max_bytes: int, paths: tuple[str, ...] = ("/",), body: dict | None = None):
        self.app, self.max_bytes, self.paths = app, max_bytes, paths
        self.body = json.dumps(body or {"detail": f"The request is over the {max_bytes // 2**20} MB limit."}).encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(self.paths):
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
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                (b"content-length", str(len(self.body)).encode())]})
        await send({"type": "http.response.body", "body": self.body})
