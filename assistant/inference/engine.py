"""The local generation engine: one worker thread owns the local models and serves every request fairly.

Every local answer in the process goes through here: the tutor, "Chat with it", both sides of the A/B
chat and `tutor eval`. Requests are served round-robin, one token each per turn, so the two A/B answers
stream side by side and a second learner waits for one token, not for someone else's whole answer.
Requests on the same model and adapter form a cohort that decodes in one batch per step; the event loop
never waits on any of it.

Two runtimes do the model work, chosen per base model:
- llama.cpp (assistant/inference/llama_runtime.py) for a GGUF base, the embedded SmolLM2 included: 4-bit weights
  and llama.cpp's kernels decode several times faster than transformers on a CPU; a fine-tune runs as
  the adapter merged into the GGUF.
- transformers (assistant/inference/torch_runtime.py) for any other base (an HF id, a folder), with peft adapters
  switched on one shared base; also for a GGUF base where llama.cpp is not installed.

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
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from assistant.inference import llama_runtime
from assistant.inference.torch_runtime import TorchCohort, TorchModels
from training.base.common import device, usable_cpus
from training.base.errors import TutorError
from training.base.models import load_pretrained, load_tokenizer, resolve_base_model
from training.base.settings import Settings

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]
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
class _Request:
    source: str  # base model folder or HF id
    adapter: str | None  # PEFT adapter folder, or None for the base model
    messages: Messages
    temperature: float
    max_tokens: int
    emit: Callable[[str], None]
    finish: Callable[[BaseException | None], None]
    stop: threading.Event
    usage: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.perf_counter)
    # decoding state, owned by the worker
    ids: list[int] = field(default_factory=list)  # generated so far
    sent: int = 0  # characters emitted
    position: int = 0  # tokens in its cache: the position of the next input
    prompt: list[int] | None = None  # its prompt's token ids, made once (a request may wait for a free sequence)

    @property
    def key(self) -> tuple[str, str | None]:
        return self.source, self.adapter


class Engine:
    def __init__(self):
        self._inbox: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._torch = TorchModels()
        self._tokenizers: dict[str, object] = {}  # source -> its tokenizer, for prompts and decoding text
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
                request.stop.set()

        def finish(error: BaseException | None) -> None:
            failure.append(error)
            deliver(done)

        request = _Request(source, adapter, messages, temperature, max_tokens, emit=deliver, finish=finish,
                           stop=threading.Event(), usage=usage or Usage())
        self._submit(request)
        try:
            while (item := await pieces.get()) is not done:
                yield item
            if failure and failure[0] is not None:
                raise failure[0]
        finally:
            request.stop.set()

    def complete(self, source: str, messages: Messages, *, adapter: str | None = None, temperature: float = 0.0,
                 max_tokens: int = 256) -> tuple[str, Usage]:
        """The whole answer, blocking (CLI, benchmarks, tests)."""
        text: list[str] = []
        finished = threading.Event()
        failure: list[BaseException | None] = []
        request = _Request(source, adapter, messages, temperature, max_tokens, emit=text.append,
                           finish=lambda error: (failure.append(error), finished.set()), stop=threading.Event())
        self._submit(request)
        finished.wait()
        if failure[0] is not None:
            raise failure[0]
        return "".join(text), request.usage

    def call(self, fn: Callable, *args, **kwargs):
        """Run `fn` on the engine's thread (the process's torch thread) and return its result."""
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._submit(_Call(lambda: fn(*args, **kwargs), future))
        return future.result()

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

    def _submit(self, request: _Request | _Call) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._closing = False
                self._thread = threading.Thread(target=self._serve, name="generation", daemon=True)
                self._thread.start()
            if isinstance(request, _Request):
                self._load += 1
                finish = request.finish
                request.finish = lambda error: (self._unload(), finish(error))
        self._inbox.put(request)

    def _unload(self) -> None:
        with self._start_lock:
            self._load -= 1

    def _serve(self) -> None:
        """Take turns: one new request's prefill, then one step of each cohort, so a newcomer waits for one
        batched step at most and nobody waits for someone else's whole answer."""
        waiting: collections.deque[_Request] = collections.deque()
        cohorts: dict[tuple, object] = {}
        idle: collections.OrderedDict[tuple, object] = collections.OrderedDict()  # emptied, kept ready for reuse
        while not self._closing:
            if not waiting and not cohorts:
                self._admit(self._inbox.get(), waiting)
            while not self._inbox.empty():
                self._admit(self._inbox.get_nowait(), waiting)
            if waiting:
                self._guarded([request := waiting.popleft()],
                              lambda: self._prefill(request, cohorts, idle, waiting))
            for key in list(cohorts):
                cohort = cohorts[key]
                if cohort.requests:  # none when its only prefill failed
                    self._guarded(cohort.requests, lambda: self._decode(cohort))
                if not cohort.requests:
                    idle[key] = cohorts.pop(key)
                    while len(idle) > IDLE_COHORTS:
                        idle.popitem(last=False)
        for request in [*waiting, *(r for cohort in cohorts.values() for r in cohort.requests)]:
            request.finish(None)

    @staticmethod
    def _admit(item: _Request | _Call, waiting: collections.deque) -> None:
        if isinstance(item, _Request):
            waiting.append(item)
            return
        try:  # a call runs at once, in arrival order, between two decode steps
            item.future.set_result(item.fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            item.future.set_exception(exc)

    def _guarded(self, requests: list[_Request], work: Callable[[], None]) -> None:
        """Run a prefill or a step; a failure ends the requests it concerns, and the worker serves on."""
        import torch

        try:
            with torch.inference_mode():  # model steps only: calls (model loading) run outside it
                work()
        except Exception as exc:  # noqa: BLE001 - reported to the callers
            if isinstance(exc, TutorError):  # an explained failure (a missing adapter, say): no trace needed
                log.warning("Local generation failed: %s", exc)
                error = exc
            else:
                log.exception("Local generation failed")
                error = TutorError(f"The local model failed while answering ({type(exc).__name__}). "
                                   "Try a shorter message, or see the server log.")
            for request in list(requests):
                request.finish(error)
            requests.clear()

    def _prefill(self, request: _Request, cohorts: dict[tuple, object], idle: dict[tuple, object],
                 waiting: collections.deque) -> None:
        """The prompt into its cohort (made on first use), and the first token; or back in line while the
        cohort is full."""
        if request.stop.is_set():
            request.finish(None)
            return
        prompt = request.prompt = request.prompt or self.prompt(request.source, request.messages)
        if (cohort := cohorts.get(request.key)) is None:
            cohort = idle.pop(request.key, None) or self._cohort(request.source, request.adapter)
            cohorts[request.key] = cohort
        if not cohort.has_room(prompt, request.max_tokens):
            waiting.append(request)  # its turn comes when an answer in that cohort ends
            return
        request.usage.prompt_tokens = request.position = len(prompt)
        token = cohort.prefill(request, prompt, self._threads.best)
        if self._advance(request, token, cohort.stop_ids):
            self._end(request)
            cohort.leave({len(cohort.requests) - 1})

    def _decode(self, cohort) -> None:
        """One token for every request of the cohort, in one batch."""
        threads = self._threads.pick()
        started = time.perf_counter()
        tokens = cohort.step(threads)
        done = set()
        for row, (request, token) in enumerate(zip(cohort.requests, tokens)):
            request.position += 1
            if request.stop.is_set() or self._advance(request, token, cohort.stop_ids):
                self._end(request)
                done.add(row)
        self._threads.record(time.perf_counter() - started)
        if done:
            cohort.leave(done)

    def _cohort(self, source: str, adapter: str | None):
        if llama_runtime.runs_on_llama(source):
            return llama_runtime.LlamaCohort(source, adapter, self._threads.best)
        return TorchCohort(self._torch, source, adapter)

    def prompt(self, source: str, messages: Messages) -> list[int]:
        """The token ids the model is prompted with for `messages` (its chat template, generation prompt)."""
        return self._tokenizer(source).apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                           return_dict=True)["input_ids"]

    def _tokenizer(self, source: str):
        if source not in self._tokenizers:
            self._tokenizers[source] = load_tokenizer(source)
        return self._tokenizers[source]

    def _advance(self, request: _Request, token_id: int, stop_ids: set[int]) -> bool:
        """Take the next token; True when the request is complete."""
        if token_id in stop_ids:
            request.usage.stop_reason = "eos"
            return True
        request.ids.append(token_id)
        request.usage.completion_tokens += 1
        self._flush(request, final=False)
        if request.usage.completion_tokens >= request.max_tokens:
            request.usage.stop_reason = "max_tokens"
            return True
        return False

    def _end(self, request: _Request) -> None:
        if not request.stop.is_set():  # nobody reads a stopped request's tail
            self._flush(request, final=True)
        request.usage.latency_s = time.perf_counter() - request.started
        request.finish(None)

    def _flush(self, request: _Request, *, final: bool) -> None:
        """Emit the newly decoded characters (holding back half of a multi-byte character)."""
        text = self._tokenizer(request.source).decode(request.ids, skip_special_tokens=True)
        if final:
            text = text.replace("\ufffd", "")
        elif text.endswith("\ufffd"):
            return
        if len(text) > request.sent:
            if request.usage.ttft_s is None:
                request.usage.ttft_s = time.perf_counter() - request.started
            request.emit(text[request.sent:])
            request.sent = len(text)


class ThreadTuner:
    """Chooses the engine thread's torch thread count by timing decode steps.

    All usable CPUs win while they are free (32 vs 20 tokens/s on 2 cores). When another process keeps
    a core busy, a 2-thread OpenMP team waits at every barrier for its descheduled peer and decoding
    collapses (8 tokens/s measured), while one thread keeps its 20. So: run the faster setting, time the
    other one for WINDOW steps early on, every PROBE_EVERY steps, and at once when a step of the current
    setting takes 1.5x its average (contention just began). Probing costs about 1% when nothing changes.
    """

    WINDOW, PROBE_EVERY = 2, 256

    def __init__(self, cpus: int):
        self.options = sorted({1, max(1, cpus)}, reverse=True)
        self.best = self.options[0]
        self.seconds: dict[int, float] = {}  # moving average of a decode step per thread count
        self.steps = 0
        self.current = self.best
        self._probe: list[float] = []

    def pick(self) -> int:
        phase = self.steps % self.PROBE_EVERY
        probing = len(self.options) > 1 and self.WINDOW <= phase < 2 * self.WINDOW
        self.current = next(n for n in self.options if n != self.best) if probing else self.best
        return self.current

    def record(self, seconds: float) -> None:
        phase = self.steps % self.PROBE_EVERY
        self.steps += 1
        if self.current != self.best:  # a probe: a fresh reading of the other setting, not an average
            self._probe.append(seconds)
            if len(self._probe) == self.WINDOW:
                self.seconds[self.current] = sum(self._probe) / self.WINDOW
                self._probe = []
        else:
            previous = self.seconds.get(self.current)
            if previous is not None and seconds > 1.5 * previous and phase >= 2 * self.WINDOW:
                self.steps = self.WINDOW  # slower than usual: probe the other setting next
            self.seconds[self.current] = seconds if previous is None else 0.7 * previous + 0.3 * seconds
        if len(self.seconds) == len(self.options):
            self.best = min(self.seconds, key=self.seconds.get)


engine = Engine()
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
