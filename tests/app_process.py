"""The real app for a test: `chainlit run assistant/chat/app.py` in its own process on a free 127.0.0.1 port.

    with AppProcess(data_dir, TUTOR_AUTH="password") as app:   # app.url, app.log_text()
        ...
    AppProcess(data_dir, host="0.0.0.0").run_to_exit()           # (returncode, output) of a refused start

The environment is the embedded defaults whatever the caller's shell holds, CI included: with CI set,
`chainlit run` exports a fake OPENAI_API_KEY, which would switch the tutor to api.openai.com. Each app runs in
a folder of its own that links to the project: Chainlit keeps (and on exit deletes) its session files and
translations beside its working directory, which must not be the checkout other tests use at the same time.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil

from tests.conftest import MODEL_CACHE
from training.base.settings import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppProcess:
    def __init__(self, data_dir: Path, host: str = "127.0.0.1", log: Path | None = None, **env: str):
        self.host, self.port = host, free_port()
        self.root = Path(data_dir).parent / f"app-root-{self.port}"
        self.root.mkdir(parents=True, exist_ok=True)
        for name in ("assistant", "public", "chainlit.md", "chainlit_uk-UA.md"):
            if not (self.root / name).exists():
                (self.root / name).symlink_to(PROJECT_ROOT / name)
        # With the project's own translations (uk.json): Chainlit only adds the languages it ships that are missing.
        shutil.copytree(PROJECT_ROOT / ".chainlit", self.root / ".chainlit", dirs_exist_ok=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log or Path(data_dir) / "chainlit.log"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("OPENAI_", "CHROMA_", "TUTOR_", "DATABASE_URL", "CHAINLIT_")) and k != "CI"}
        self.env.update(TUTOR_DATA_DIR=str(data_dir), TUTOR_CACHE_DIR=str(MODEL_CACHE), **env)
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [str(Path(sys.executable).parent / "chainlit"), "run", "assistant/chat/app.py", "--host", self.host,
                "--port", str(self.port), "--headless"]

    def __enter__(self) -> "AppProcess":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("w") as out:
            self.process = subprocess.Popen(self.command(), cwd=self.root, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline and self.process.poll() is None:
            try:
                urllib.request.urlopen(self.url, timeout=2)
                return self
            except OSError:
                time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"the app did not start:\n{self.log_text()[-3000:]}")

    def wait_until_warm(self, timeout: float = 300) -> None:
        """Knowledge indexed and model loaded: answers are then bounded by generation only."""
        deadline = time.time() + timeout
        while "Tutor ready" not in self.log_text():
            if time.time() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the app did not warm up within {timeout:.0f} s:\n{self.log_text()[-3000:]}")
            time.sleep(0.5)

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)

    def run_to_exit(self, timeout: float = 120) -> tuple[int, str]:
        result = subprocess.run(self.command(), cwd=self.root, env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        return result.returncode, result.stdout + result.stderr


def rss(app: AppProcess) -> int:
    return psutil.Process(app.process.pid).memory_info().rss


def peak_growth(app: AppProcess, work) -> int:
    """How far the app's resident memory rose above where it was while `work()` ran (sampled every 10 ms: Argon2
    gives its 64 MiB back as soon as a hash is done)."""
    before, peak, done = rss(app), 0, threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss(app))
            done.wait(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        work()
    finally:
        done.set()
        sampler.join()
    return peak - before
