"""Watching runs holds no thread: with 8 runs followed from 8 chats (more than the default executor's workers on
this machine), a tutor question is answered in its usual time, and chats watching one run share one follower."""

import asyncio
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import assistant.chat.app as app
from assistant.chat import training_flow
from assistant.chat.run_feed import feed
from tests.chainlit_harness import open_chat, user_says
from training.base.registry import registry_for
from training.base.settings import get_settings


@pytest.fixture
async def busy_app(app_env):
    """The app with 8 runs "training": each has a live process that looks like a trainer, and no final event."""
    data_dir = app_env
    registry = registry_for(get_settings())
    trainers, runs = [], []
    for index in range(8):
        run_dir = data_dir / "runs" / f"run-busy-{index}"
        run_dir.mkdir(parents=True)
        (run_dir / "events.jsonl").write_text('{"type": "start", "time": 1, "total_steps": 100}\n')
        trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "training.local.lora"])
        trainers.append(trainer)
        run = registry.create_run("local", {}, run_dir, status="running", run_id=f"run-busy-{index}")
        runs.append(registry.update_run(run.id, handle=str(trainer.pid)))
    yield runs
    for trainer in trainers:
        trainer.kill()
        trainer.wait()


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
