"""Watching runs holds no thread: with 8 runs followed from 8 chats (more than the default executor's workers on
this machine), a tutor question is answered in its usual time, and chats watching one run share one follower."""

import asyncio
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import chainlit as cl
import pytest

import assistant.app as app
from assistant import training_flow
from assistant.run_feed import feed
from assistant.settings import get_settings
from tests.chainlit_harness import open_chat, user_says
from tests.conftest import MODEL_CACHE
from training.registry import registry_for


@pytest.fixture
async def busy_app(monkeypatch, tmp_path, indexed_data_dir, tiny_model_dir):
    """The app with 8 runs "training": each has a live process that looks like a trainer, and no final event."""
    import assistant.service as service

    data_dir = tmp_path / "data"
    shutil.copytree(indexed_data_dir, data_dir)
    monkeypatch.chdir(tmp_path)
    for name, value in {"TUTOR_DATA_DIR": str(data_dir), "TUTOR_CACHE_DIR": str(MODEL_CACHE),
                        "TUTOR_BASE_MODEL": str(tiny_model_dir)}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    registry = registry_for(get_settings())
    trainers, runs = [], []
    for index in range(8):
        run_dir = data_dir / "runs" / f"run-busy-{index}"
        run_dir.mkdir(parents=True)
        (run_dir / "events.jsonl").write_text('{"type": "start", "time": 1, "total_steps": 100}\n')
        trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "training.lora"])
        trainers.append(trainer)
        run = registry.create_run("local", {}, run_dir, status="running", run_id=f"run-busy-{index}")
        runs.append(registry.update_run(run["id"], handle=str(trainer.pid)))
    yield runs
    for trainer in trainers:
        trainer.kill()
        trainer.wait()
    if app._warmup is not None:
        await asyncio.wait([app._warmup])
    app._warmup, service._tutor = None, None
    get_settings.cache_clear()


async def ask(question: str) -> float:
    chat = open_chat()
    started = time.perf_counter()
    await app.on_message(user_says(question))
    assert "Sources" in chat.messages[-1]["output"]
    return time.perf_counter() - started


@pytest.fixture
async def two_core_pool():
    """The default thread pool as a 2-core machine has it (CPUs + 4 = 6 workers), whatever this one reports."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(6))
    yield
    loop.set_default_executor(ThreadPoolExecutor())


async def test_eight_followed_runs_leave_the_tutor_its_usual_speed(busy_app, two_core_pool):
    await ask("What is LoRA?")  # warm: the tutor is built, the model loaded
    alone = min([await ask("How do I pick a learning rate?") for _ in range(2)])
    watchers = []
    for run in busy_app:
        open_chat()
        watchers.append(asyncio.create_task(training_flow.watch(run, "watched")))
    second_chat = open_chat()
    watchers.append(asyncio.create_task(training_flow.watch(busy_app[0], "watched twice")))
    await asyncio.sleep(1.5)  # every watcher is polling
    assert feed.following() == 8, "two chats on one run share its follower"
    waits = []
    for _ in range(30):  # across several polls: the pool always has a free worker, nobody parks one on a run
        started = time.perf_counter()
        await asyncio.wait_for(asyncio.to_thread(lambda: None), timeout=5)
        waits.append(time.perf_counter() - started)
        await asyncio.sleep(0.05)
    assert max(waits) < 0.1, f"a thread-pool call waited {max(waits):.2f} s for a free worker"
    busy = min([await ask("How do I pick a learning rate?") for _ in range(2)])
    for task in watchers:
        task.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    assert busy < alone * 1.5 + 1.0, f"the tutor took {busy:.1f} s with 8 runs followed, {alone:.1f} s without"
    assert any("watched twice" in m["output"] for m in second_chat.messages)
