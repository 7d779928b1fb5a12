"""A real app (`chainlit run`) on a free 127.0.0.1 port and Debian's Chromium driven by Playwright.

These run in their own pytest invocation (`make test-browser`): Playwright's sync API runs its own
event loop, which clashes with the async tests of the main suite.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from assistant.settings import PROJECT_ROOT
from tests.conftest import MODEL_CACHE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without these, Chromium keeps trying to reach Google's services on this offline machine.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed_a_fine_tuned_model(data_dir: Path, embedded_model_dir: Path) -> None:
    """A succeeded run in the app's registry: the sample dataset and a LoRA adapter on the embedded model
    (freshly initialised, so it answers like its base: enough to see both sides of the A/B chat)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from training.prepare import prepare
    from training.recipes import SAMPLE_CSV
    from training.registry import Registry

    files = prepare(SAMPLE_CSV, data_dir / "datasets" / "sample", train=40, validation=8, test=8).files
    adapter = data_dir / "runs" / "run-browser" / "adapter"
    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir)
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")).save_pretrained(adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "embedded"}))
    registry = Registry(data_dir / "registry.sqlite")
    registry.create_run("local", {"train_file": files["train"], "validation_file": files["validation"],
                                  "base_model": "embedded"}, adapter.parent, status="succeeded", run_id="run-browser")
    registry.add_model("run-browser", "local-adapter", str(adapter), "embedded")


@pytest.fixture(scope="session")
def app_url(tmp_path_factory, embedded_model_dir):
    port = free_port()
    data_dir = tmp_path_factory.mktemp("app-data")
    seed_a_fine_tuned_model(data_dir, embedded_model_dir)
    # Embedded defaults whatever the caller's shell holds. CI too: `chainlit run` with CI set exports a fake
    # OPENAI_API_KEY, which would switch the tutor to api.openai.com.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHROMA_", "TUTOR_")) and k != "CI"}
    env.update(TUTOR_DATA_DIR=str(data_dir), TUTOR_CACHE_DIR=str(MODEL_CACHE))
    log = tmp_path_factory.mktemp("logs") / "chainlit.log"
    with log.open("w") as out:
        process = subprocess.Popen([str(Path(sys.executable).parent / "chainlit"), "run", "assistant/app.py", "--host",
                                    "127.0.0.1", "--port", str(port), "--headless"],
                                   cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _APP_LOG.append(log)
    # Up and warmed up (knowledge indexed, model loaded): answers are then bounded by generation only.
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=2)
            if "Tutor ready" in log.read_text():
                break
        except OSError:
            pass
        time.sleep(0.5)
    else:
        process.kill()
        pytest.fail(f"the app did not start and warm up within 300 s:\n{log.read_text()[-3000:]}")
    yield url
    process.terminate()
    process.wait(timeout=20)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


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

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make browser` installs it")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(app_url)
    yield page
    context.close()
