"""A shared instance in a real browser: two learners in two browsers, forged button payloads, a page from
another origin, and chat history with feedback that survives a reload."""

import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.app_process import free_port
from tests.browser.conftest import MODEL, UI, logged_in, say
from training.base.registry import Registry

pytestmark = pytest.mark.browser


def last_step(page, text: str, timeout: float = UI):
    step = page.locator(".step").filter(has_text=text).last
    step.wait_for(timeout=timeout)
    return step


def forged(page, name: str, payload: dict):
    """Rewrite the next action the page posts: what any browser's devtools can do."""
    def rewrite(route, request):
        body = json.loads(request.post_data)
        body["action"].update(name=name, payload=payload)
        route.continue_(post_data=json.dumps(body))

    page.route("**/project/action", rewrite)
    return lambda: page.unroute("**/project/action")


def test_two_learners_see_and_touch_only_their_own_work(browser, app, tiny_model_dir):
    registry = Registry(app.data_dir / "registry.sqlite")
    alice_context, alice = logged_in(browser, app.url, "alice")
    bob_context, bob = logged_in(browser, app.url, "bob")
    try:
        say(alice, "/prepare train=16 validation=4 test=4 seed=9")
        alice.get_by_role("button", name="Use the bundled sample").click()
        last_step(alice, "Dataset ready", MODEL)
        say(alice, f"/train base={tiny_model_dir.name} epochs=300 batch_size=2")
        # .last: on a slow run the socket may reconnect and show the offer twice; either button starts the job.
        alice.get_by_role("button", name="sample-seed9 (16 examples)").last.click()
        last_step(alice, "it fits.", MODEL)  # the estimate, measured on this machine, before any work
        alice.get_by_role("button", name="Start", exact=True).last.click()
        last_step(alice, "training loss", MODEL)  # training
        [run] = registry.runs(registry.user("alice").id, ("running",))
        [dataset] = [d for d in registry.datasets(registry.user("alice").id) if d.name == "sample-seed9"]

        say(bob, "/train")
        last_step(bob, "No prepared dataset yet")
        say(bob, "/compare")
        last_step(bob, "no fine-tuned model yet")
        assert "/prepare" not in bob.locator("#thread-history").inner_text(), "bob's sidebar shows alice's chat"

        say(bob, "/prepare")
        for name, payload, refusal in (
                ("cancel_run", {"run_id": run.id}, "That run is not among yours"),
                ("finetune", {"backend": "local", "dataset_id": dataset.id}, "That dataset is not among yours"),
                ("prepare_dataset", {"source": "/etc/passwd", "train": 1, "validation": 0, "test": 0, "seed": 1},
                 "was not what this app sent"),
                ("chat_with_model", {"run_id": "run-browser"}, "among yours")):
            undo = forged(bob, name, payload)
            bob.get_by_role("button", name="Use the bundled sample").last.click()
            last_step(bob, refusal)
            undo()
        assert registry.run(run.id).status == "running" and not registry.datasets(registry.user("bob").id)
        assert not registry.runs(registry.user("bob").id)

        # Bob's browser calls Chainlit's feedback and element routes with the ids of alice's thread: refused.
        with sqlite3.connect(app.data_dir / "history.sqlite") as db:
            thread, step = db.execute(
                'SELECT s."threadId", s."id" FROM steps s JOIN threads t ON t."id" = s."threadId" '
                'WHERE t."userIdentifier" = ? LIMIT 1', (registry.user("alice").id,)).fetchone()
        calls = [("PUT", "/feedback", {"feedback": {"forId": step, "threadId": thread, "value": 0}, "sessionId": "x"}),
                 ("PUT", "/project/element", {"element": {"id": step, "threadId": thread, "type": "custom",
                                                          "name": "x", "display": "inline"}, "sessionId": "x"}),
                 ("DELETE", "/project/element", {"element": {"id": step, "threadId": thread, "type": "custom",
                                                             "name": "x", "display": "inline"}, "sessionId": "x"})]
        statuses = bob.evaluate("""async (calls) => Promise.all(calls.map(([method, path, body]) => fetch(path, {
            method, headers: {"content-type": "application/json"}, body: JSON.stringify(body)}).then(r => r.status)))""",
                                calls)
        assert statuses == [404, 404, 404], statuses

        alice.get_by_role("button", name="Cancel").last.click()
        last_step(alice, "was cancelled", MODEL)
    finally:
        for record in registry.runs(registry.user("alice").id, ("running", "queued")):
            from training.backends import local as jobs

            jobs.cancel(record, registry)
        alice_context.close()
        bob_context.close()


class _Attacker(BaseHTTPRequestHandler):
    page = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args):
        pass


def test_a_page_from_another_origin_can_neither_drive_nor_read_the_app(browser, app):
    """The learner is logged in; a page on 127.0.0.2 (another origin, same machine) tries the websocket and an
    action post with the learner's browser. Both are refused by the app itself, not only by the browser."""
    port = app.url.rsplit(":", 1)[1]
    _Attacker.page = f"""<script>
window.results = {{ws: "pending", post: "pending"}};
const ws = new WebSocket("ws://127.0.0.1:{port}/ws/socket.io/?EIO=4&transport=websocket");
ws.onopen = () => results.ws = "open";
ws.onclose = () => {{ if (results.ws === "pending") results.ws = "refused"; }};
fetch("http://127.0.0.1:{port}/project/action", {{method: "POST", credentials: "include", mode: "no-cors",
  headers: {{"content-type": "text/plain"}},
  body: JSON.stringify({{sessionId: "x", action: {{name: "prepare_dataset", payload: {{source: "sample"}}}}}})}})
  .then(() => results.post = "sent").catch(() => results.post = "failed");
</script>""".encode()
    attacker = ThreadingHTTPServer(("127.0.0.2", free_port()), _Attacker)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    context, page = logged_in(browser, app.url, "alice")
    try:
        statuses = []
        evil = context.new_page()
        evil.on("response", lambda response: statuses.append((response.url, response.status)))
        evil.goto(f"http://127.0.0.2:{attacker.server_address[1]}/")
        deadline = time.time() + UI / 1000
        while "pending" in (results := evil.evaluate("window.results")).values() and time.time() < deadline:
            time.sleep(0.2)
        assert results["ws"] == "refused", results
        assert (f"http://127.0.0.1:{port}/project/action", 403) in statuses, statuses
        assert "Refused a websocket request" in app.log_text() and "Refused a http request" in app.log_text()
    finally:
        attacker.shutdown()
        context.close()


def test_history_survives_a_reload_and_keeps_feedback(page, app):
    say(page, "What is catastrophic forgetting?")
    answer = last_step(page, "Sources", MODEL)
    answer.locator(".positive-feedback-off").first.click()
    page.get_by_role("button", name="Submit feedback").click()  # the comment is optional
    database = app.data_dir / "history.sqlite"
    deadline = time.time() + UI / 1000
    while time.time() < deadline:
        with sqlite3.connect(database) as db:
            if db.execute("SELECT value FROM feedbacks").fetchall() == [(1,)]:
                break
        time.sleep(0.3)
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT value FROM feedbacks").fetchall() == [(1,)]
    page.goto(app.url)  # a fresh page: a new chat, with the earlier one in the sidebar
    earlier = page.locator("#thread-history").get_by_text("What is catastrophic forgetting?")
    earlier.first.wait_for(timeout=UI)
    earlier.first.click()
    last_step(page, "knowledge/overfitting-and-forgetting.md", UI)
