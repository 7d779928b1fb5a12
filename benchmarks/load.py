"""Load: 20 chat sessions ask the tutor 3 questions each while one LoRA training job runs, all on this machine.

The real app (`chainlit run`, embedded model, no login) on 127.0.0.1, driven by 20 socket.io clients speaking
Chainlit's own protocol (connect, `client_message`, wait for `task_end`), bounded in count (60 questions) and
time (a deadline per answer). Reported: the tutor's p50/p95 answer time under load, errors (a warning sign or
a missing answer) and lost answers; the trainer's tokens/s during the load against the same job alone, measured
first in the same run. Baseline: the same questions asked by one session with nothing else running.

    python -m benchmarks.load
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import socketio

from tests.app_process import AppProcess
from training.backends import local as jobs
from training.base.registry import Registry
from training.data.prepare import prepare
from training.data.recipes import SAMPLE_CSV
from training.jobs import events
from training.local.config import TrainConfig

SESSIONS, QUESTIONS_EACH, ANSWER_DEADLINE = 20, 3, 120.0
QUESTIONS = ["What is LoRA?", "How do I pick a learning rate?", "When should I use RAG instead of fine-tuning?",
             "What is catastrophic forgetting?", "How many training examples do I need?", "What does an epoch mean?"]
TRAIN_ALONE_S = 40


class Session:
    """One learner's browser, as Chainlit's client speaks: a session id, then messages, each ending in task_end."""

    def __init__(self, url: str):
        self.url, self.client = url, socketio.AsyncClient(reconnection=False)
        self.ready, self.answers = asyncio.Event(), asyncio.Queue()
        self.answered: set[str] = set()
        self.client.on("task_end", lambda *_: self.ready.set())
        for name in ("new_message", "update_message"):
            self.client.on(name, self._message)

    async def _message(self, step):
        """A finished tutor answer ends with its sources (or says why there are none); progress messages of a
        run the session watches are not answers."""
        output = step.get("output", "")
        if step.get("type") == "assistant_message" and step["id"] not in self.answered and (
                "**Sources**" in output or "⚠️" in output or "couldn't find" in output):
            self.answered.add(step["id"])
            self.answers.put_nowait((time.perf_counter(), output))

    async def open(self) -> None:
        await self.client.connect(self.url, socketio_path="/ws/socket.io", transports=["websocket"],
                                  headers={"Origin": self.url},
                                  auth={"sessionId": str(uuid.uuid4()), "clientType": "webapp", "userEnv": "{}",
                                        "chatProfile": None, "threadId": None})
        await self.client.emit("connection_successful")
        await asyncio.wait_for(self.ready.wait(), ANSWER_DEADLINE)  # on_chat_start finished

    async def ask(self, question: str) -> tuple[float, str]:
        """(seconds to the whole answer, the answer) for one question."""
        started = time.perf_counter()
        await self.client.emit("client_message", {"message": {
            "id": str(uuid.uuid4()), "threadId": "", "name": "User", "type": "user_message", "output": question,
            "createdAt": datetime.now(timezone.utc).isoformat()}, "fileReferences": []})
        finished, answer = await asyncio.wait_for(self.answers.get(), ANSWER_DEADLINE)
        return finished - started, answer

    async def close(self) -> None:
        await self.client.disconnect()


async def learner(url: str, index: int, times: list[float], problems: list[str]) -> int:
    session = Session(url)
    answered = 0
    try:
        await session.open()
        for turn in range(QUESTIONS_EACH):
            seconds, answer = await session.ask(QUESTIONS[(index + turn) % len(QUESTIONS)])
            times.append(seconds)
            if "Sources" not in answer or "⚠️" in answer:
                problems.append(f"session {index}: {answer[:120]!r}")
            else:
                answered += 1
    except Exception as exc:  # noqa: BLE001 - counted and shown: a timeout or a dropped connection
        problems.append(f"session {index}: {type(exc).__name__}: {exc}")
    finally:
        await session.close()
    return answered


def tokens_per_second(run_dir: Path, since: float, until: float) -> float:
    """Tokens trained per second from the last step before `since` to the first step after `until` (a step
    can take longer than the whole load, so a window of whole steps, a little wider than asked)."""
    steps = [e for e in events.read(run_dir)[0] if e["type"] == "step"]
    before = [e for e in steps if e["time"] <= since]
    after = [e for e in steps if e["time"] >= until]
    if not before or not after:
        return 0.0
    first, last = before[-1], after[0]
    return (last["tokens"] - first["tokens"]) / (last["time"] - first["time"])


async def step_after(run_dir: Path, moment: float, timeout: float = 300.0) -> None:
    """Wait until the trainer has logged a step after `moment`."""
    deadline = time.monotonic() + timeout
    while not any(e["type"] == "step" and e["time"] >= moment for e in events.read(run_dir)[0]):
        if time.monotonic() > deadline:
            raise RuntimeError("the training job logged no step for 5 minutes")
        await asyncio.sleep(1)


async def measure(url: str, registry: Registry, data_dir: Path) -> dict:
    alone_times, problems = [], []
    await learner(url, 0, alone_times, problems)  # the baseline: one session, nothing else running
    files = prepare(SAMPLE_CSV, data_dir / "bench-dataset", train=150, validation=0, test=0).files
    run = jobs.start_local(TrainConfig(train_file=files["train"], epochs=50, batch_size=8, eval_generate_limit=0),
                           data_dir, registry, limit=1)
    run_dir = Path(run.run_dir)
    while not any(e["type"] == "step" for e in events.read(run_dir)[0]):
        await asyncio.sleep(1)
    alone_from = time.time()
    await asyncio.sleep(TRAIN_ALONE_S)
    alone_until = time.time()
    await step_after(run_dir, alone_until)
    training_alone = tokens_per_second(run_dir, alone_from, alone_until)
    times: list[float] = []
    loaded_from = time.time()
    answered = await asyncio.gather(*(learner(url, i, times, problems) for i in range(SESSIONS)))
    loaded_until = time.time()
    await step_after(run_dir, loaded_until)
    training_loaded = tokens_per_second(run_dir, loaded_from, loaded_until)
    await asyncio.to_thread(jobs.cancel, registry.run(run.id), registry)
    asked = SESSIONS * QUESTIONS_EACH
    return {"alone": statistics.median(alone_times), "times": times, "answered": sum(answered), "asked": asked,
            "problems": problems, "training_alone": training_alone, "training_loaded": training_loaded}


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        with AppProcess(data_dir) as app:
            app.wait_until_warm()
            result = asyncio.run(measure(app.url, Registry(data_dir / "registry.sqlite"), data_dir))
    times = sorted(result["times"])
    p50, p95 = statistics.median(times), statistics.quantiles(times, n=20, method="inclusive")[-1]
    lost = result["asked"] - len(times)
    errors = len(result["problems"])
    for problem in result["problems"][:5]:
        print("problem:", problem)
    print("answer times (s):", " ".join(f"{t:.1f}" for t in times))
    print(f"{SESSIONS} sessions x {QUESTIONS_EACH} questions while training: p50 {p50:.1f} s, p95 {p95:.1f} s, "
          f"{errors} errors, {lost} lost; one session alone: {result['alone']:.1f} s per answer")
    print(f"training: {result['training_loaded']:.0f} tokens/s under load, {result['training_alone']:.0f} alone")
    return {"name": f"`load`: {SESSIONS} chat sessions x {QUESTIONS_EACH} tutor questions while a LoRA job trains",
            "project": f"p50 {p50:.1f} s / p95 {p95:.1f} s per answer, {errors} errors, {lost} lost; training "
                       f"{result['training_loaded']:.0f} tokens/s",
            "baseline": f"{result['alone']:.1f} s per answer (one session, nothing else running); training "
                        f"{result['training_alone']:.0f} tokens/s alone",
            "ratio": f"p95 {p95 / result['alone']:.1f}x one session's answer time; training at "
                     f"{result['training_loaded'] / max(result['training_alone'], 1e-9):.0%} of its speed alone"}


if __name__ == "__main__":
    print(run())
