"""Helpers shared by test modules (no tests here): run the `tutor` CLI as a user does, make a local run's directory,
wait on a condition. Shared fixtures live in tests/conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import MODEL_CACHE
from training.local.config import TrainConfig


def run_tutor(*args, env_extra=None, tmp_path, timeout=300, stdin=None):
    """`tutor ARGS` in a subprocess, on the data dir tmp_path/data, with no developer settings from the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHROMA_", "TUTOR_", "AZURE_"))}
    env.update({"TUTOR_DATA_DIR": str(tmp_path / "data"), "TUTOR_CACHE_DIR": str(MODEL_CACHE), **(env_extra or {})})
    return subprocess.run([sys.executable, "-m", "assistant.cli.main", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=timeout, input=stdin)


def make_run(tmp_path, data, tiny_model_dir, **overrides) -> Path:
    """A local run's directory with its config: the `data` fixture's files on the tiny model, 2 short epochs."""
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=tmp_path))
    values = dict(train_file=str(data[0]), validation_file=str(data[1]), base_model=str(tiny_model_dir), epochs=2,
                  batch_size=4, learning_rate=1e-3, save_every=2, eval_generate_limit=2, bf16="no")
    TrainConfig(**{**values, **overrides}).save(run_dir / "config.json")
    return run_dir


def wait_for(predicate, timeout=120.0):
    """The first truthy value of `predicate()`, polled every 0.1 s; AssertionError after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if result := predicate():
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")
