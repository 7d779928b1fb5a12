"""A real app (`chainlit run`) on a free 127.0.0.1 port and Debian's Chromium driven by Playwright.

These run in their own pytest invocation (`make test-browser`): Playwright's sync API runs its own
event loop, which clashes with the async tests of the main suite.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from assistant.web.accounts import add_user
from tests.app_process import AppProcess
from training.base.registry import Registry

USERS = ("alice", "bob")
PASSWORD = "correct horse battery"
# Debian's chromium on Linux (Playwright cannot download its own browser offline); elsewhere (macOS, Windows) the
# Chromium that `python make.py test` installs with `playwright install chromium`.
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
# Every wait in the browser suite is for something to appear; these are upper bounds, generous so that a machine
# half as fast, with the main suite running beside it, never fails where a fast one passes.
UI = 120_000  # a page's own reaction: a button, a message, a login (ms)
MODEL = 600_000  # what waits on a model: an answer, a dataset, an A/B pair
# Without these, Chromium keeps trying to reach Google's services on this offline machine.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def seed_a_fine_tuned_model(data_dir: Path, embedded_model_dir: Path, owner: str) -> None:
    """A succeeded run of `owner` in the app's registry: the sample dataset and a LoRA adapter on the embedded model
    (freshly initialised, so it answers like its base: enough to see both sides of the A/B chat)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from training.base.registry import Registry
    from training.data.prepare import prepare
    from training.data.recipes import SAMPLE_CSV

    files = prepare(SAMPLE_CSV, data_dir / "datasets" / "sample", train=40, validation=8, test=8).files
    adapter = data_dir / "runs" / "run-browser" / "adapter"
    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir)
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")).save_pretrained(adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "embedded"}))
    registry = Registry(data_dir / "registry.sqlite")
    registry.create_run("local", {"train_file": files["train"], "validation_file": files["validation"],
                                  "base_model": "embedded"}, adapter.parent, status="succeeded", run_id="run-browser",
                        owner=owner)
    registry.add_model("run-browser", "local-adapter", str(adapter), "embedded")


@pytest.fixture(scope="session")
def app(tmp_path_factory, embedded_model_dir, tiny_model_dir, indexed_data_dir):
    """The app as an instructor runs it for a class: password logins for alice and bob, chat history, and the tiny
    model offered as a base a learner can train quickly (`/train base=tiny-llama0`). Its data dir starts with the
    knowledge index built (the main suite's, kept in .test-data), so its warm-up does not embed the notes again."""
    data_dir = tmp_path_factory.mktemp("app-data")
    shutil.copytree(indexed_data_dir, data_dir, dirs_exist_ok=True)
    registry = Registry(data_dir / "registry.sqlite")
    ids = {name: add_user(registry, name, PASSWORD).id for name in USERS}
    seed_a_fine_tuned_model(data_dir, embedded_model_dir, owner=ids["alice"])
    log = tmp_path_factory.mktemp("logs") / "chainlit.log"
    _APP_LOG.append(log)
    with AppProcess(data_dir, log=log, TUTOR_AUTH="password", TUTOR_TRAIN_BASE_MODELS=str(tiny_model_dir),
                    TUTOR_MAX_EPOCHS="1000") as running:  # a run that keeps going while the test looks
        running.wait_until_warm()
        running.data_dir = data_dir
        yield running
    assert "Traceback" not in running.log_text(), running.log_text()[-3000:]


@pytest.fixture(scope="session")
def app_url(app):
    return app.url


_APP_LOG: list[Path] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test shows the app's log: the reason is usually there, not in the page."""
    outcome = yield
    report = outcome.get_result()
    if not (report.failed and report.when == "call"):
        return
    if _APP_LOG:
        report.sections.append(("app log (last 4000 characters)", _APP_LOG[0].read_text()[-4000:]))
    if "page" in item.funcargs:
        steps = item.funcargs["page"].locator(".step").all_inner_texts()
        report.sections.append(("last messages on the page", "\n---\n".join(steps[-3:])))


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if CHROMIUM is None and sys.platform.startswith("linux"):
        pytest.fail("Debian's chromium is missing: `make browser` installs it")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


def logged_in(browser, url: str, name: str, locale: str = "en-US"):
    """A browser context (its own cookies: another person's browser, speaking `locale`) logged in as `name`."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale)
    context.set_default_timeout(UI)  # every click and wait without its own bound
    page = context.new_page()
    page.goto(url)
    page.locator("#email").fill(name)
    page.locator("#password").fill(PASSWORD)
    page.locator('form button[type="submit"]').click()
    page.locator("#chat-input").wait_for(timeout=UI)
    return context, page


def say(page, text: str) -> None:
    """Type and send; the first message of a chat moves the page to the thread's address, which re-renders the
    composer and can clear what was typed just then: type again until it can be sent. On a loaded machine a click
    can time out after it sent the message: it is typed again only while no new message of the learner's shows
    (sent twice, a listing came twice and its buttons were no longer one each)."""
    sent = page.locator('[data-step-type="user_message"]')
    before = sent.count()
    deadline = time.time() + UI / 1000
    while True:
        page.locator("#chat-input").fill(text)
        try:
            page.locator("#chat-submit").click(timeout=1_000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: not enabled yet, or slow to say it clicked
            try:
                sent.nth(before).wait_for(timeout=1_000)
                return
            except Exception:  # noqa: BLE001 - not sent: type it again
                if time.time() > deadline:
                    raise


def click_until(button, shown, timeout: float = UI) -> None:
    """Click `button` until `shown` is on the page. On a loaded machine a click on a message still being re-rendered
    can be lost: the button is clicked again only while it is still there after 15 s without `shown` (a handled
    click removes it or brings `shown`), up to `timeout` ms in all."""
    deadline = time.time() + timeout / 1000
    button.click(timeout=timeout)
    while True:
        try:
            shown.wait_for(timeout=15_000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError
            if time.time() > deadline:
                raise
            if button.count():
                button.click(timeout=timeout)


@pytest.fixture
def page(browser, app_url):
    context, page = logged_in(browser, app_url, "alice")
    yield page
    context.close()
