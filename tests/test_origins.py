"""Serving safely: only the app's own origins drive it (HTTP, socket.io polling and the websocket), foreign Hosts
are refused on loopback, uploads are limited before they are read, and a local app starts without logins on
127.0.0.1 and refuses beyond it without them (logins themselves: tests/test_logins.py)."""

import socket

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from assistant.web.origins import OriginGuard, OriginPolicy
from tests.app_process import AppProcess


def test_the_policy_allows_the_apps_own_origins_only():
    policy = OriginPolicy("127.0.0.1", 8000, ["https://tutor.example.edu"])
    for origin in ("http://127.0.0.1:8000", "http://localhost:8000", "https://tutor.example.edu"):
        assert policy.allows_origin(origin, "127.0.0.1:8000")
    for origin in ("http://127.0.0.2:8000", "http://127.0.0.1:9000", "http://evil.example", "null", None):
        assert not policy.allows_origin(origin, "127.0.0.1:8000")
    assert policy.allows_host("localhost:8000") and policy.allows_host("tutor.example.edu")
    assert not policy.allows_host("evil.example:8000"), "a DNS-rebinding page's Host"
    wildcard = OriginPolicy("0.0.0.0", 8000, [])  # behind logins, reached by any of the machine's names
    assert wildcard.allows_origin("http://10.1.2.3:8000", "10.1.2.3:8000")
    assert not wildcard.allows_origin("http://evil.example", "10.1.2.3:8000") and wildcard.allows_host("anything")


async def test_the_guard_refuses_foreign_origins_for_posts_and_websockets():
    calls = []

    async def app(scope, receive, send):
        calls.append(scope["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = OriginGuard(app, OriginPolicy("127.0.0.1", 8000, []))
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    def scope(kind, method, origin, host=b"127.0.0.1:8000"):
        headers = [(b"host", host)] + ([(b"origin", origin)] if origin else [])
        return {"type": kind, "method": method, "headers": headers, "path": "/"}

    for request, allowed in ((scope("http", "POST", b"http://127.0.0.2:8000"), False),
                             (scope("http", "POST", b"http://127.0.0.1:8000"), True),
                             (scope("http", "GET", b"http://127.0.0.2:8000"), True),  # reading is CORS's job
                             (scope("http", "POST", None), True),  # not a browser: logins protect it
                             (scope("websocket", "GET", b"http://127.0.0.2:8000"), False),
                             (scope("http", "GET", None, host=b"evil.example:8000"), False)):
        calls.clear()
        sent.clear()
        await guard(request, receive, send)
        assert bool(calls) == allowed, request
        if not allowed:
            assert sent[0].get("status") == 403 or sent[0] == {"type": "websocket.close", "code": 1008}


def test_a_local_app_needs_no_login_and_refuses_other_origins(tmp_path):
    with AppProcess(tmp_path / "data") as app:
        assert not httpx.get(f"{app.url}/auth/config").json()["requireLogin"]
        socket_url = app.url.replace("http", "ws") + "/ws/socket.io/?EIO=4&transport=websocket"
        with pytest.raises(InvalidStatus) as refused:
            connect(socket_url, origin="http://127.0.0.2:9999").close()
        assert refused.value.response.status_code == 403
        connect(socket_url, origin=app.url).close()  # the app's own page connects
        polling = httpx.get(f"{app.url}/ws/socket.io/?EIO=4&transport=polling", headers={"origin": "http://127.0.0.2"})
        assert polling.status_code == 400 and "not an accepted origin" in polling.text
        action = httpx.post(f"{app.url}/project/action", headers={"origin": "http://127.0.0.2:9999",
                                                                  "content-type": "text/plain"},
                            content='{"sessionId": "x", "action": {"name": "prepare_dataset", "payload": {}}}')
        assert action.status_code == 403
        assert httpx.get(app.url, headers={"host": "evil.example"}).status_code == 403
        cors = httpx.options(f"{app.url}/project/action", headers={"origin": "http://127.0.0.2:9999",
                                                                   "access-control-request-method": "POST"})
        assert "access-control-allow-origin" not in cors.headers
        with socket.create_connection(("127.0.0.1", app.port)) as raw:  # headers only: 900 MB announced
            raw.sendall(f"POST /project/file?session_id=x HTTP/1.1\r\nHost: 127.0.0.1:{app.port}\r\n"
                        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {900 * 2**20}\r\n\r\n"
                        .encode())
            status = raw.recv(200).split(b"\r\n")[0]
        assert status == b"HTTP/1.1 413 Request Entity Too Large", "refused before a byte of the body is read"


def test_a_shared_address_without_logins_is_refused_with_how_to_fix_it(tmp_path):
    code, output = AppProcess(tmp_path / "data", host="0.0.0.0").run_to_exit()
    assert code != 0 and "Set TUTOR_AUTH=password and add accounts with `tutor users add NAME`" in output
    assert "Traceback" not in output
