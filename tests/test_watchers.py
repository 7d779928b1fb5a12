"""Watching runs holds no thread: with 8 runs followed from 8 chats (more than the default executor's workers on
a 2-core machine), a worker of the pool is always free and the tutor answers, and chats watching one run share one
follower. Counted, not timed: how many of the pool's workers are busy, looked at again and again."""

import asyncio
import subprocess
import sys
import threading
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


async def ask(question: str) -> None:
    chat = open_chat()
    await app.on_message(user_says(question))
    assert "Sources" in chat.messages[-1]["output"]


class CountingPool(ThreadPoolExecutor):
    """A thread pool that counts its busy workers."""

    def __init__(self, workers: int):
        super().__init__(workers)
        self.workers, self.busy, self._lock = workers, 0, threading.Lock()

    def submit(self, fn, /, *args, **kwargs):
        def counted():
            with self._lock:
                self.busy += 1
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.busy -= 1

        return super().submit(counted)


@pytest.fixture
async def two_core_pool():
    """The default thread pool as a 2-core machine has it (CPUs + 4 = 6 workers), whatever this one reports."""
    loop = asyncio.get_running_loop()
    pool = CountingPool(6)
    loop.set_default_executor(pool)
    yield pool
    loop.set_default_executor(ThreadPoolExecutor())


async def test_eight_followed_runs_leave_the_tutor_answering_and_a_worker_free(busy_app, two_core_pool):
    await ask("What is LoRA?")  # warm: the tutor is built, the model loaded
    watchers = []
    for run in busy_app:
        open_chat()
        watchers.append(asyncio.create_task(training_flow.watch(run, "watched")))
    second_chat = open_chat()
    watchers.append(asyncio.create_task(training_flow.watch(busy_app[0], "watched twice")))
    for _ in range(1200):  # until the late watcher has the shared follower's events so far (a generous bound)
        if any("watched twice" in m["output"] for m in second_chat.messages):
            break
        await asyncio.sleep(0.1)
    assert any("watched twice" in m["output"] for m in second_chat.messages)
    assert feed.following() == 8, "two chats on one run share its follower"
    await ask("How do I pick a learning rate?")
    busy = []
    for _ in range(40):  # across several polls of every follower: a follower holds a worker only while it reads
        busy.append(two_core_pool.busy)
        await asyncio.sleep(0.05)
    for task in watchers:
        task.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    free = sum(count < two_core_pool.workers for count in busy)
    assert free >= len(busy) / 2, f"every worker was busy at {len(busy) - free} of 40 looks, 8 runs followed: {busy}"
