"""Logins under attack, against the real app on 127.0.0.1: throttled passwords (429 + Retry-After) with the app's
memory bounded, bodies refused before they are read without a cookie, a removed account's cookie refused on HTTP
and on the websocket, a private data dir; header logins only from the trusted proxy with its secret, never as
the app's own owners, and no header mode beyond loopback without a trusted proxy."""

import socket
import threading

import httpx
import psutil
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from assistant.web.accounts import add_user
from assistant.web.logins import trusted_proxy
from tests.app_process import AppProcess, peak_growth
from training.base.registry import Registry
from training.base.settings import Settings

MB = 2**20


def socket_url(app: AppProcess) -> str:
    return app.url.replace("http", "ws") + "/ws/socket.io/?EIO=4&transport=websocket"


def modes(folder) -> set[tuple[str, str]]:
    """(kind, mode) of the folder and everything in it."""
    found = {("dir", oct(folder.stat().st_mode & 0o777))}
    for path in folder.rglob("*"):
        if not path.is_symlink():
            found.add(("dir" if path.is_dir() else "file", oct(path.stat().st_mode & 0o777)))
    return found


def test_password_logins_are_throttled_bounded_revocable_and_private(tmp_path):
    data = tmp_path / "data"
    registry = Registry(data / "registry.sqlite")
    alice = add_user(registry, "alice", "correct horse")
    (data / "uploads").mkdir()
    (data / "uploads" / "old.jsonl").write_text("{}\n")
    for path in (data, data / "uploads", data / "uploads" / "old.jsonl", data / "registry.sqlite"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # as a data dir made before this release is
    with AppProcess(data, TUTOR_AUTH="password") as app:
        config = httpx.get(f"{app.url}/auth/config").json()
        assert config["requireLogin"] and config["passwordAuth"]
        login = f"{app.url}/login"
        assert httpx.post(login, data={"username": "alice", "password": "wrong one"}).status_code == 401

        # A flood of wrong passwords: five tries per name, then 429 with Retry-After before any hash is computed.
        flood = [httpx.post(login, data={"username": "bob", "password": f"guess-{n}"}) for n in range(20)]
        assert [r.status_code for r in flood] == [401] * 5 + [429] * 15
        waits = [int(r.headers["retry-after"]) for r in flood[5:]]  # the time left of the 30 s backoff, each time
        assert 20 <= waits[0] and all(0 < wait <= 30 for wait in waits) and waits == sorted(waits, reverse=True), waits
        assert "Failed login for 'bob' from 127.0.0.1" in app.log_text() and "guess-" not in app.log_text()
        # Concurrent wrong logins for many names: Argon2's 64 MiB each, but at most one hash per core at a time.
        def concurrent_logins():
            threads = [threading.Thread(target=httpx.post, args=(login,), kwargs={
                "data": {"username": f"user{n}", "password": "x" * 12}, "timeout": 120}) for n in range(12)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        grown = peak_growth(app, concurrent_logins)
        assert grown < 64 * MB * (min(4, psutil.cpu_count()) + 3), f"logins grew the app by {grown / MB:.0f} MB"

        ok = httpx.post(login, files={"username": (None, "alice"), "password": (None, "correct horse")})
        assert ok.status_code == 200 and "access_token" in ok.cookies, "multipart, as Chainlit's page posts it"
        me = httpx.get(f"{app.url}/user", cookies=ok.cookies).json()
        assert me["identifier"] == alice.id and me["display_name"] == "alice"
        connect(socket_url(app), origin=app.url, additional_headers={"Cookie": f"access_token={ok.cookies['access_token']}"}).close()

        # Bodies are refused before they are read, logged in or not: a declared 150 MB and a streamed one.
        with socket.create_connection(("127.0.0.1", app.port), timeout=60) as raw:
            raw.sendall(f"POST /project/threads HTTP/1.1\r\nHost: 127.0.0.1:{app.port}\r\nContent-Type: "
                        f"application/json\r\nContent-Length: {150 * MB}\r\n\r\n".encode())
            assert raw.recv(200).split(b"\r\n")[0] == b"HTTP/1.1 413 Request Entity Too Large"
        streamed = []
        grown = peak_growth(app, lambda: streamed.append(httpx.post(
            f"{app.url}/project/threads", headers={"content-type": "application/json"},
            content=(b"[" + b"1," * (MB // 2) for _ in range(150)), timeout=60)))
        assert streamed[0].status_code == 413 and grown < 50 * MB, f"{grown / MB:.0f} MB"

        # A second username can't steer the throttle away from the name Chainlit logs in.
        twice = httpx.post(login, content="username=decoy&username=alice&password=x",
                           headers={"content-type": "application/x-www-form-urlencoded"})
        assert twice.status_code == 400
        assert httpx.post(login, files={"username": (None, "decoy"), "password": (None, "x"),
                                        "x": (None, "y")}).status_code == 401  # one name, multipart: checked

        # Removing the account ends its sessions at once: HTTP and the websocket refuse its cookie.
        registry.remove_user("alice")
        assert httpx.get(f"{app.url}/user", cookies=ok.cookies).status_code == 401
        token = ok.cookies["access_token"]
        for extra in ({"authorization": "Bearer not-a-token"}, {"cookie": f"x=\"a; access_token={token}"}):
            sneaky = httpx.get(f"{app.url}/user", headers={"cookie": f"access_token={token}", **extra})
            assert sneaky.status_code == 401, extra
        page = httpx.get(app.url, cookies=ok.cookies)  # the page itself still loads, to offer the login again
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        with pytest.raises(InvalidStatus) as refused:
            connect(socket_url(app), origin=app.url,
                    additional_headers={"Cookie": f"access_token={ok.cookies['access_token']}"}).close()
        assert refused.value.response.status_code == 403

        # The data dir and everything in it is its owner's only, old files tightened at start, new ones made so.
        assert modes(data) == {("dir", "0o700"), ("file", "0o600")}
        assert "readable by their owner only" in app.log_text()
    assert (data / "history.sqlite").is_file() and (data / "auth-secret").is_file()


def test_header_logins_come_only_from_the_trusted_proxy_with_its_secret(tmp_path):
    with AppProcess(tmp_path / "data", TUTOR_AUTH="header", TUTOR_AUTH_HEADER="X-Remote-User",
                    TUTOR_TRUSTED_PROXIES="127.0.0.1", TUTOR_PROXY_SECRET="proxy-secret-123") as app:
        header = f"{app.url}/auth/header"
        spoofed = httpx.post(header, headers={"X-Remote-User": "prof"})
        assert spoofed.status_code == 403, "a client that is not the proxy names no user"
        assert httpx.post(header, headers={"X-Remote-User": "prof", "X-Proxy-Secret": "wrong"}).status_code == 403
        proxied = {"X-Proxy-Secret": "proxy-secret-123"}
        assert httpx.post(header, headers=proxied).status_code == 401
        ok = httpx.post(header, headers={**proxied, "X-Remote-User": "bob"})
        assert ok.status_code == 200
        assert httpx.get(f"{app.url}/user", cookies=ok.cookies).json()["display_name"] == "bob"
        for name in ("../admin", "local", "api", "LOCAL"):
            assert httpx.post(header, headers={**proxied, "X-Remote-User": name}).status_code == 401, name

        # Chainlit's feedback and sharing routes, closed in front: bob can't touch carol's thread by its ids.
        carol = httpx.post(header, headers={**proxied, "X-Remote-User": "carol"})
        ids = seed_thread(tmp_path / "data" / "history.sqlite", carol_id := httpx.get(
            f"{app.url}/user", cookies=carol.cookies).json()["identifier"])
        forged = {"forId": ids["step"], "threadId": ids["thread"], "value": 0, "id": ids["feedback"]}
        assert httpx.put(f"{app.url}/feedback", cookies=ok.cookies,
                         json={"feedback": forged, "sessionId": "x"}).status_code == 404
        assert httpx.request("DELETE", f"{app.url}/feedback", cookies=ok.cookies,
                             json={"feedbackId": ids["feedback"]}).status_code == 404
        for element in ({"id": ids["element"], "threadId": ids["thread"], "type": "custom", "name": "x",
                         "display": "inline"}, {"id": ids["element"], "type": "custom", "name": "x", "display": "inline"}):
            for method in ("PUT", "DELETE"):
                assert httpx.request(method, f"{app.url}/project/element", cookies=ok.cookies,
                                     json={"element": element, "sessionId": "x"}).status_code == 404
        assert httpx.put(f"{app.url}/project/thread/share", cookies=carol.cookies,
                         json={"threadId": ids["thread"], "isShared": True}).status_code == 403, "sharing is off"
        mine = httpx.put(f"{app.url}/feedback", cookies=carol.cookies,
                         json={"feedback": {**forged, "value": 1}, "sessionId": "x"})
        assert mine.status_code == 200, "the thread's own user still gives feedback"
        assert feedback_value(tmp_path / "data" / "history.sqlite", ids["feedback"]) == 1 and carol_id
        assert "proxy-secret-123" not in app.log_text()
    registry = Registry(tmp_path / "data" / "registry.sqlite")
    assert registry.user("bob").role == "user" and registry.user("local") is None


def seed_thread(database, identifier: str) -> dict[str, str]:
    """A thread of the user with this identifier, with a step, an element and a feedback, straight in the app's
    history database; their ids."""
    import sqlite3
    import uuid

    ids = {kind: str(uuid.uuid4()) for kind in ("thread", "step", "element", "feedback")}
    with sqlite3.connect(database) as db:
        [(user_id,)] = db.execute('SELECT "id" FROM users WHERE "identifier" = ?', (identifier,)).fetchall()
        db.execute('INSERT INTO threads ("id", "userId", "userIdentifier", "name") VALUES (?, ?, ?, ?)',
                   (ids["thread"], user_id, identifier, "carol's"))
        db.execute('INSERT INTO steps ("id", "name", "type", "threadId", "streaming", "output") '
                   "VALUES (?, 'tutor', 'assistant_message', ?, 0, 'an answer')", (ids["step"], ids["thread"]))
        db.execute('INSERT INTO elements ("id", "threadId", "type", "name") VALUES (?, ?, \'custom\', \'x\')',
                   (ids["element"], ids["thread"]))
        db.execute('INSERT INTO feedbacks ("id", "forId", "threadId", "value") VALUES (?, ?, ?, 1)',
                   (ids["feedback"], ids["step"], ids["thread"]))
    return ids


def feedback_value(database, feedback_id: str) -> int:
    import sqlite3

    with sqlite3.connect(database) as db:
        return db.execute('SELECT "value" FROM feedbacks WHERE "id" = ?', (feedback_id,)).fetchone()[0]


def test_only_the_configured_proxies_are_trusted():
    loopback = Settings(auth="header")
    assert trusted_proxy(loopback, "127.0.0.1", {}) and trusted_proxy(loopback, "::1", {})
    assert not trusted_proxy(loopback, "10.1.2.3", {}), "another machine on the network"
    network = Settings(auth="header", trusted_proxies=["10.0.0.0/8"], proxy_secret="s3cret-value")
    assert trusted_proxy(network, "10.9.9.9", {"x-proxy-secret": "s3cret-value"})
    assert not trusted_proxy(network, "10.9.9.9", {}) and not trusted_proxy(network, "127.0.0.1",
                                                                            {"x-proxy-secret": "s3cret-value"})
    secret_only = Settings(auth="header", trusted_proxies=[], proxy_secret="s3cret-value")
    assert trusted_proxy(secret_only, "192.0.2.1", {"x-proxy-secret": "s3cret-value"})
    assert not trusted_proxy(secret_only, "192.0.2.1", {"x-proxy-secret": "s3cret-valuf"})
    assert not trusted_proxy(Settings(auth="header", trusted_proxies=[]), "127.0.0.1", {}), "nothing configured"


def test_header_mode_beyond_loopback_needs_a_trusted_proxy(tmp_path):
    code, output = AppProcess(tmp_path / "data", host="0.0.0.0", TUTOR_AUTH="header").run_to_exit()
    assert code != 0 and "Set TUTOR_TRUSTED_PROXIES to your proxy's address" in output and "Traceback" not in output
