"""Helpers shared by test modules (no tests here): run the `tutor` CLI as a user does, make a local run's directory,
a run record as the registry returns one, a registry with one finished run, a fake backend's Config, wait on a
condition. Shared fixtures live in tests/conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from tests.conftest import MODEL_CACHE, make_settings
from training.base.records import Run
from training.base.registry import registry_for
from training.data.prepare import prepare
from training.data.recipes import SAMPLE_CSV
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


def finished_run(data_dir, base_model: str, location: str, kind: str = "local-adapter") -> dict[str, str]:
    """A registry holding one succeeded run, `run-ab`, on the bundled sample and its model; the sample's files by
    split (train, validation, test)."""
    files = prepare(SAMPLE_CSV, data_dir / "datasets" / "sample", train=30, validation=6, test=6, seed=3).files
    registry = registry_for(make_settings(data_dir))
    run = registry.create_run("local" if kind == "local-adapter" else "openai",
                              {"train_file": files["train"], "validation_file": files["validation"],
                               "base_model": base_model}, data_dir / "runs" / "r1", status="succeeded", run_id="run-ab")
    registry.add_model(run.id, kind, location, base_model)
    return files


class FakeJobConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    learner_fields: ClassVar[tuple[str, ...]] = ("epochs",)
    train_file: str
    validation_file: str | None = None
    epochs: float = Field(1.0, gt=0, le=10, description="Passes over the data.")


def run_record(**fields) -> Run:
    """A run as the registry returns one, for code that only reads it: what the test leaves out is a queued local
    run's."""
    defaults = dict(id="run-1", backend="local", status="queued", config={}, metrics={}, run_dir="runs/run-1",
                    created_at=0.0, updated_at=0.0, owner="local")
    return Run(**{**defaults, **fields})
