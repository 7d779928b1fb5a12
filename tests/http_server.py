"""Serve an ASGI app for a test: uvicorn on a 127.0.0.1 port, in a daemon thread, with fault injection.

    with ServerThread(app) as server:        # server.base_url == "http://127.0.0.1:PORT/v1"
        server.fail_next = [429, 500]        # the next matching requests get these statuses, in order
        server.stall_next = [5.0]            # the next matching request hangs until its client gives up (at most
                                             # 5 s), then gets a 504 unserved
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time

import uvicorn


async def _until_gone(receive, limit: float) -> None:
    """Wait until the client hangs up, or `limit` seconds: a stall as long as the client's own timeout, whatever
    the machine's speed, so that its retry is answered while the client still waits for it."""
    async def gone():
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(gone(), limit)


class ServerThread:
    def __init__(self, app, port: int = 0, fail_paths: tuple[str, ...] = ("/v1/",)):
        self.fail_next: list[int] = []
        self.stall_next: list[float] = []
        self.fail_paths = fail_paths
        self.paths: list[str] = []  # every request's method and path, in order
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restarted server keeps its port
        self._sock.bind(("127.0.0.1", port))
        self.port = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._server = uvicorn.Server(uvicorn.Config(self._faulty(app), log_level="warning"))
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve(sockets=[self._sock])),
                                        daemon=True)

    def _faulty(self, app):
        async def wrapped(scope, receive, send):
            if scope["type"] == "http":
                self.paths.append(f"{scope['method']} {scope['path']}")
                faulty = scope["path"].startswith(self.fail_paths)
                if self.stall_next and faulty:  # a hung gateway: the request never reaches the app
                    await _until_gone(receive, self.stall_next.pop(0))
                    self.fail_next.insert(0, 504)
                if self.fail_next and faulty:
                    status = self.fail_next.pop(0)
                    body = json.dumps({"error": {"message": f"Simulated failure {status}", "type": "server_error",
                                                 "code": "simulated"}}).encode()
                    await send({"type": "http.response.start", "status": status,
                                "headers": [(b"content-type", b"application/json")]})
                    await send({"type": "http.response.body", "body": body})
                    return
            await app(scope, receive, send)
        return wrapped

    def __enter__(self):
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
