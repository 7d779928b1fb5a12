"""A chat session with the real app over its real protocol, without a browser: Chainlit's socket.io websocket for
messages, its HTTP routes for uploads and action clicks, as the page itself uses them.

    with AppProcess(data) as app, LiveChat(app) as chat:              # LiveChat(app, cookies) when logged in
        chat.say("/prepare")
        reply = chat.wait_for("Split")                                  # the first message containing the text
        file_id = chat.upload("mine.jsonl", path)                       # POST /project/file, as the page does
        chat.say("", files=[file_id])
        chat.click(chat.buttons("prepare_dataset")[0])                  # POST /project/action
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import socketio

from tests.app_process import AppProcess


class LiveChat:
    def __init__(self, app: AppProcess, cookies: dict[str, str] | None = None, thread_id: str | None = None):
        """`thread_id`: resume that chat thread, as the page does when a past chat is opened from the sidebar."""
        self.app, self.cookies, self.thread_id = app, cookies or {}, thread_id
        self.resumed: bool | None = None  # with a thread id: whether the app resumed it (its author) or refused
        self.session_id = str(uuid.uuid4())
        self.messages: dict[str, dict] = {}  # step id -> its latest version, in the order they came
        self.changed = threading.Condition()
        self.client = socketio.Client(reconnection=False)
        self.client.on("new_message", self._record)
        self.client.on("update_message", self._record)
        self.client.on("stream_start", self._record)
        self.client.on("stream_token", self._token)
        self.actions: list[dict] = []  # every button the app showed, in order
        self.client.on("action", self._action)
        self.client.on("resume_thread", lambda _thread: self._resume(True))
        self.client.on("resume_thread_error", lambda _error: self._resume(False))

    def __enter__(self) -> LiveChat:
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        self.client.connect(self.app.url, socketio_path="/ws/socket.io", transports=["websocket"], wait_timeout=60,
                            headers={"Cookie": cookie} if cookie else {},  # (its Origin is the app's own)
                            auth={"sessionId": self.session_id, "clientType": "webapp", "userEnv": "{}",
                                  **({"threadId": self.thread_id} if self.thread_id else {})})
        self.client.emit("connection_successful")
        if self.thread_id:  # resumed (no start of its own), or refused and then started afresh
            deadline = time.monotonic() + 120
            with self.changed:
                while self.resumed is None and time.monotonic() < deadline:
                    self.changed.wait(deadline - time.monotonic())
            if self.resumed:
                return self
        self._wait(lambda step: step.get("name") == "on_chat_start" and step.get("end"), "the chat's start", 120)
        return self

    def _resume(self, resumed: bool) -> None:
        with self.changed:
            self.resumed = resumed
            self.changed.notify_all()

    def __exit__(self, *exc) -> None:
        self.client.disconnect()

    def _record(self, step: dict) -> None:
        with self.changed:
            self.messages[step["id"]] = {**self.messages.get(step["id"], {}), **step}
            self.changed.notify_all()

    def _token(self, token: dict) -> None:
        with self.changed:
            step = self.messages.setdefault(token["id"], {"id": token["id"], "output": ""})
            step["output"] = token["token"] if token.get("isSequence") else (step.get("output") or "") + token["token"]
            self.changed.notify_all()

    def _action(self, action: dict) -> None:
        with self.changed:
            self.actions.append(action)
            self.changed.notify_all()

    def replies(self) -> list[dict]:
        with self.changed:
            return list(self.messages.values())

    def wait_for(self, text: str, timeout: float = 300) -> dict:
        """The first message whose text contains `text`, once the app has sent it (the app's log on a timeout)."""
        return self._wait(lambda message: text in (message.get("output") or ""), repr(text), timeout)

    def buttons(self, name: str, count: int = 1, timeout: float = 300) -> list[dict]:
        """The buttons named `name` the app has shown, once there are `count` of them."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(found := [a for a in self.actions if a["name"] == name]) < count:
                if time.monotonic() > deadline or self.app.process.poll() is not None:
                    shown = [m.get("output", "")[:200] for m in self.messages.values()]
                    raise AssertionError(f"fewer than {count} {name} buttons; messages: {shown}\n"
                                         f"{self.app.log_text()[-2000:]}")
                self.changed.wait(1)
            return found

    def _wait(self, wanted, what: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for message in self.messages.values():
                    if wanted(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0 or self.app.process.poll() is not None:
                    shown = [m.get("output", "")[:200] for m in self.messages.values()]
                    raise AssertionError(f"no message with {what} in {shown}\n{self.app.log_text()[-2000:]}")
                self.changed.wait(min(left, 1))

    def say(self, content: str, files: list[str] = ()) -> None:
        step = {"id": str(uuid.uuid4()), "name": "User", "type": "user_message", "output": content,
                "createdAt": datetime.now(UTC).isoformat()}
        self.client.emit("client_message", {"message": step, "fileReferences": [{"id": f} for f in files]})

    def upload(self, name: str, path: Path, mime: str = "application/jsonl", timeout: float = 300) -> str:
        """The file's id in the session, as the page gets it."""
        with path.open("rb") as content:
            answer = httpx.post(f"{self.app.url}/project/file", params={"session_id": self.session_id},
                                files={"file": (name, content, mime)}, cookies=self.cookies, timeout=timeout)
        answer.raise_for_status()
        return answer.json()["id"]

    def click(self, action: dict) -> httpx.Response:
        return httpx.post(f"{self.app.url}/project/action", json={"sessionId": self.session_id, "action": action},
                          cookies=self.cookies, headers={"Origin": self.app.url}, timeout=60)
