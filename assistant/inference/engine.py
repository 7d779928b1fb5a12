"""The local generation engine: one worker thread owns the local models and serves every request fairly.

Every local answer in the process goes through here: the tutor, "Chat with it", both sides of the A/B
chat and `tutor eval`. Requests are served round-robin, one token each per turn, so the two A/B answers
stream side by side and a second learner waits for one token, not for someone else's whole answer.
Requests on the same model and adapter form a cohort that decodes in one batch per step; the event loop
never waits on any of it.

Runtimes do the model work (their interface: assistant/inference/runtime.py), chosen per base model:
- llama.cpp (assistant/inference/llama_runtime.py) for a GGUF base, the embedded SmolLM2 included: 4-bit weights
  and llama.cpp's kernels decode several times faster than transformers on a CPU; a fine-tune runs as
  the adapter merged into the GGUF.
- transformers (assistant/inference/torch_runtime.py) for any other base (an HF id, a folder), with peft adapters
  switched on one shared base; also for a GGUF base where llama.cpp is not installed.
The engine hands them frozen requests; each answer's progress (its tokens, its position, its reader gone) is
the engine's own.

The engine's thread is also the process's one torch thread: model loading and embeddings run there
too (`engine.call`). libgomp, torch's OpenMP, spin-waits between parallel regions only while the
process has no more OpenMP threads than CPUs; a second thread doing torch work adds a second team and
halves decode speed on a 2-core machine (measured: 31 vs 18 tokens/s), for as long as the process lives.

    python -m assistant.inference.engine "What is LoRA?"     # the embedded model's answer and its timings
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import functools
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from assistant.inference.llama_runtime import LlamaRuntime
from assistant.inference.runtime import Cohort, Messages, ModelRuntime, Request
from assistant.inference.threads import ThreadTuner
from assistant.inference.torch_runtime import TorchRuntime
from training.base.common import device, usable_cpus
from training.base.errors import TutorError
from training.base.models import load_pretrained, resolve_base_model
from training.base.settings import Settings

log = logging.getLogger(__name__)

IDLE_COHORTS = 2  # cohorts kept after their last answer: a llama.cpp context (its KV cache) takes ~0.1 s to make


@dataclass
class Usage:
    """What one answer cost: filled in while it streams."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None  # from the request to its first text, queueing included
    latency_s: float = 0.0
    stop_reason: str | None = None  # "eos", "max_tokens", or a caller's own rule ("repetition")


@dataclass
class _Call:
    """A function to run on the engine's thread, between decode steps."""

    fn: Callable
    future: concurrent.futures.Future


@dataclass
class _Answer:
    """One request's progress, owned by the worker: the request itself never changes."""

    request: Request
    emit: Callable[[str], None]
    finish: Callable[[BaseException | None], None]  # the caller's; called once, by Engine._finish
    usage: Usage = field(default_factory=Usage)
    stop: threading.Event = field(default_factory=threading.Event)  # its reader has gone
    started: float = field(default_factory=time.perf_counter)
    ids: list[int] = field(default_factory=list)  # generated so far
    sent: int = 0  # characters emitted
    position: int = 0  # tokens in its cache: the position of the next input
    prompt: list[int] | None = None  # its prompt's token ids, made once (a request may wait for a free row)
    limit: int = 0  # answer tokens at most: its max_tokens, or fewer where its row has less room
    finished: bool = False


@dataclass
class _Group:
    """A runtime's cohort and the answers in its rows, in row order."""

    runtime: ModelRuntime
    cohort: Cohort
    rows: list[_Answer] = field(default_factory=list)

    def leave(self, rows: set[int]) -> None:
        self.cohort.leave(rows)
        self.rows = [answer for row, answer in enumerate(self.rows) if row not in rows]


class Engine:
    """The worker thread, its inbox and its runtimes, in order: a base model runs on the first that runs it."""

    def __init__(self, runtimes: Sequence[ModelRuntime]):
        self.runtimes = list(runtimes)
        self._inbox: queue.SimpleQueue[_Answer | _Call] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._threads = ThreadTuner(usable_cpus())
        self._load = 0  # requests submitted and not yet finished
        self._closing = False

    # --- public API ---------------------------------------------------------------------------

    def load(self) -> int:
        """Requests being answered or waiting their turn: how busy the shared model is right now."""
        return self._load

    async def stream(self, source: str, messages: Messages, *, adapter: str | None = None, temperature: float = 0.0,
                     max_tokens: int = 256, usage: Usage | None = None) -> AsyncIterator[str]:
        """Yield the answer's text as it is generated. Closing the iterator early stops the request."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()
        done = object()
        failure: list[BaseException | None] = []

        def deliver(item) -> None:
            try:
                loop.call_soon_threadsafe(pieces.put_nowait, item)
            except RuntimeError:  # the caller's loop has closed: nobody is listening any more
                answer.stop.set()

        def finish(error: BaseException | None) -> None:
            failure.append(error)
            deliver(done)

        answer = _Answer(Request(source, adapter, messages, temperature, max_tokens), emit=deliver, finish=finish,
                         usage=usage or Usage())
        self._submit(answer)
        try:
            while (item := await pieces.get()) is not done:
                yield item
            if failure and failure[0] is not None:
                raise failure[0]
        finally:
            answer.stop.set()

    def complete(self, source: str, messages: Messages, *, adapter: str | None = None, temperature: float = 0.0,
                 max_tokens: int = 256) -> tuple[str, Usage]:
        """The whole answer, blocking (CLI, benchmarks, tests)."""
        text: list[str] = []
        finished = threading.Event()
        failure: list[BaseException | None] = []
        answer = _Answer(Request(source, adapter, messages, temperature, max_tokens), emit=text.append,
                         finish=lambda error: (failure.append(error), finished.set()))
        self._submit(answer)
        finished.wait()
        if failure[0] is not None:
            raise failure[0]
        return "".join(text), answer.usage

    def call(self, fn: Callable, *args, **kwargs):
        """Run `fn` on the engine's thread (the process's torch thread) and return its result."""
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._submit(_Call(lambda: fn(*args, **kwargs), future))
        return future.result()

    def prompt(self, source: str, messages: Messages) -> list[int]:
        """The token ids the model is prompted with for `messages` (its chat template, generation prompt)."""
        return self._runtime(source).prompt(source, messages)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker after its current step; unfinished requests end there. Run at interpreter exit: a
        daemon thread stopped in the middle of a torch op aborts the process ("terminate called without an
        active exception")."""
        with self._start_lock:
            thread, self._closing = self._thread, True
        if thread is not None and thread.is_alive():
            self._inbox.put(_Call(lambda: None, concurrent.futures.Future()))  # wakes an idle worker
            thread.join(timeout)

    # --- the worker ---------------------------------------------------------------------------

    def _submit(self, item: _Answer | _Call) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._closing = False
                self._thread = threading.Thread(target=self._serve, name="generation", daemon=True)
                self._thread.start()
            if isinstance(item, _Answer):
                self._load += 1
            self._inbox.put(item)  # under the lock: what `load` counts is in the inbox

    def _finish(self, answer: _Answer, error: BaseException | None) -> None:
        if answer.finished:  # a step that failed after its answer ended
            return
        answer.finished = True
        with self._start_lock:
            self._load -= 1
        answer.finish(error)

    def _serve(self) -> None:
        """Take turns: one new request's prefill, then one step of each cohort, so a newcomer waits for one
        batched step at most and nobody waits for someone else's whole answer."""
        waiting: collections.deque[_Answer] = collections.deque()
        groups: dict[tuple, _Group] = {}
        idle: collections.OrderedDict[tuple, _Group] = collections.OrderedDict()  # emptied, kept ready for reuse
        while not self._closing:
            if not waiting and not groups:
                self._admit(self._inbox.get(), waiting)
            while not self._inbox.empty():
                self._admit(self._inbox.get_nowait(), waiting)
            if waiting:
                answer = waiting.popleft()
                self._guarded([answer], functools.partial(self._prefill, answer, groups, idle, waiting))
            for key in list(groups):
                group = groups[key]
                if group.rows and not self._guarded(group.rows, functools.partial(self._decode, group)):
                    del groups[key]  # a failed step leaves its cohort in no known state: never reused
                    continue
                if not group.rows:  # none left, or its only prefill failed
                    idle[key] = groups.pop(key)
                    while len(idle) > IDLE_COHORTS:
                        idle.popitem(last=False)
        for answer in [*waiting, *(answer for group in groups.values() for answer in group.rows)]:
            self._finish(answer, None)

    @staticmethod
    def _admit(item: _Answer | _Call, waiting: collections.deque) -> None:
        if isinstance(item, _Answer):
            waiting.append(item)
            return
        try:  # a call runs at once, in arrival order, between two decode steps
            item.future.set_result(item.fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            item.future.set_exception(exc)

    def _guarded(self, answers: list[_Answer], work: Callable[[], None]) -> bool:
        """Run a prefill or a step; a failure ends the answers it concerns (False), and the worker serves on."""
        try:
            work()
            return True
        except Exception as exc:  # reported to the callers
            if isinstance(exc, TutorError):  # an explained failure (a missing adapter, say): no trace needed
                log.warning("Local generation failed: %s", exc)
                error = exc
            else:
                log.exception("Local generation failed")
                error = TutorError(f"The local model failed while answering ({type(exc).__name__}). "
                                   "Try a shorter message, or see the server log.")
            for answer in list(answers):
                self._finish(answer, error)
            answers.clear()
            return False

    def _prefill(self, answer: _Answer, groups: dict[tuple, _Group], idle: dict[tuple, _Group],
                 waiting: collections.deque) -> None:
        """The prompt into its cohort (made on first use), and the first token; or back in line while the
        cohort is full."""
        request = answer.request
        if answer.stop.is_set():
            self._finish(answer, None)
            return
        group = groups[request.key] = groups.get(request.key) or idle.pop(request.key, None) or self._group(request)
        prompt = answer.prompt = answer.prompt or group.runtime.prompt(request.source, request.chat())
        if not group.cohort.has_room(prompt):
            waiting.append(answer)  # its turn comes when an answer in that cohort ends
            return
        room = group.cohort.answer_limit(prompt)
        answer.limit = request.max_tokens if room is None else min(request.max_tokens, room)
        answer.usage.prompt_tokens = answer.position = len(prompt)
        token = group.cohort.prefill(request, prompt, self._threads.best)
        group.rows.append(answer)
        if self._advance(answer, token, group):
            self._end(answer, group.runtime)
            group.leave({len(group.rows) - 1})

    def _decode(self, group: _Group) -> None:
        """One token for every request of the cohort, in one batch."""
        threads = self._threads.pick()
        started = time.perf_counter()
        tokens = group.cohort.step([(answer.ids[-1], answer.position) for answer in group.rows], threads)
        done = set()
        for row, (answer, token) in enumerate(zip(group.rows, tokens)):
            answer.position += 1
            if answer.stop.is_set() or self._advance(answer, token, group):
                self._end(answer, group.runtime)
                done.add(row)
        self._threads.record(time.perf_counter() - started)
        if done:
            group.leave(done)

    def _runtime(self, source: str) -> ModelRuntime:
        for runtime in self.runtimes:
            if runtime.runs(source):
                return runtime
        raise TutorError(f"No local runtime runs the model {source}.")

    def _group(self, request: Request) -> _Group:
        runtime = self._runtime(request.source)
        return _Group(runtime, runtime.cohort(request.source, request.adapter, self._threads.best))

    def _advance(self, answer: _Answer, token_id: int, group: _Group) -> bool:
        """Take the next token; True when the answer is complete."""
        if token_id in group.cohort.stop_ids:
            answer.usage.stop_reason = "eos"
            return True
        answer.ids.append(token_id)
        answer.usage.completion_tokens += 1
        self._flush(answer, group.runtime, final=False)
        if answer.usage.completion_tokens >= answer.limit:
            answer.usage.stop_reason = "max_tokens"
            return True
        return False

    def _end(self, answer: _Answer, runtime: ModelRuntime) -> None:
        if not answer.stop.is_set():  # nobody reads a stopped answer's tail
            self._flush(answer, runtime, final=True)
        answer.usage.latency_s = time.perf_counter() - answer.started
        self._finish(answer, None)

    def _flush(self, answer: _Answer, runtime: ModelRuntime, *, final: bool) -> None:
        """Emit the newly decoded characters (holding back half of a multi-byte character)."""
        text = runtime.decode(answer.request.source, answer.ids)
        if final:
            text = text.replace("\ufffd", "")
        elif text.endswith("\ufffd"):
            return
        if len(text) > answer.sent:
            if answer.usage.ttft_s is None:
                answer.usage.ttft_s = time.perf_counter() - answer.started
            answer.emit(text[answer.sent:])
            answer.sent = len(text)


engine = Engine([LlamaRuntime(), TorchRuntime()])
atexit.register(engine.close)


def load_model(source: str, on: str | None = None):
    """(model, tokenizer) for a resolved base model, loaded once per process on the engine's thread (the
    process's one torch thread, which also serializes loading: transformers' is not thread-safe)."""
    return engine.call(load_pretrained, source, on or device())


def warm_up(settings: Settings) -> None:
    """The configured base model converted (if needed), loaded in its runtime, and one token answered."""
    engine.complete(engine.call(resolve_base_model, settings), [{"role": "user", "content": "Hi"}], max_tokens=1)


if __name__ == "__main__":
    import sys

    from training.base.common import configure_process
    from training.base.settings import get_settings

    configure_process()
    text, usage = engine.complete(resolve_base_model(get_settings()), [{"role": "user", "content": sys.argv[1]}],
                                  max_tokens=80)
    print(text)
    print(usage)
