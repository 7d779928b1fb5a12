"""The local generation engine: one worker thread owns the local models and serves every request fairly.

Every local answer in the process goes through here: the tutor, "Chat with it", both sides of the A/B
chat and `tutor eval`. A base model is loaded once and shared; LoRA adapters are attached to it by name
(peft's multi-adapter support) and switched per step, never reloaded with their own copy of the base.
Requests are served round-robin, one token each per turn, so the two A/B answers stream side by side
and a second learner waits for one token, not for someone else's whole answer. The loop is a plain
KV-cached decode: no `generate()` set-up per call, and the event loop never waits on it.

The engine's thread is also the process's one torch thread: model loading and embeddings run there
too (`engine.call`). libgomp, torch's OpenMP, spin-waits between parallel regions only while the
process has no more OpenMP threads than CPUs; a second thread doing torch work adds a second team and
halves decode speed on a 2-core machine (measured: 31 vs 18 tokens/s), for as long as the process lives.

Decoding: temperature 0 is greedy and plain (the recipe task and evaluation); temperature > 0 samples
with top-p 0.9 and a 1.1 repetition penalty, which keeps a small model's free text from looping.

    python -m assistant.generation "What is LoRA?"     # the embedded model's answer and its timings
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
from pathlib import Path

from training.common import device, usable_cpus
from training.errors import TutorError
from training.models import load_pretrained, resolve_base_model
from training.settings import Settings

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]


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
    history: object = None  # prompt + generated ids, for the repetition penalty
    processors: object = None
    stop_ids: set[int] = field(default_factory=set)
    position: int = 0  # tokens in its cache: the position of the next input

    @property
    def key(self) -> tuple[str, str | None]:
        return self.source, self.adapter


class _Cohort:
    """Requests decoding together: one base model and adapter, one left-padded KV cache, one forward per step.

    A request joins after its own prefill (its cache is padded on the left to the cohort's length) and leaves
    when it ends (its row is dropped, and padding every row shares is trimmed). The attention mask hides the
    padding and each row keeps its own positions, so a row decodes exactly as it would alone."""

    def __init__(self, first: _Request, cache):
        self.requests, self.cache = [first], cache
        self.mask = [[1] * first.position]

    def join(self, request: _Request, cache) -> None:
        import torch

        width = max(len(self.mask[0]), request.position)
        for mine, theirs in zip(self.cache.layers, cache.layers):
            mine.keys, mine.values = (torch.cat([_pad_left(a, width), _pad_left(b, width)])
                                      for a, b in ((mine.keys, theirs.keys), (mine.values, theirs.values)))
        self.mask = [[0] * (width - len(row)) + row for row in self.mask]
        self.mask.append([0] * (width - request.position) + [1] * request.position)
        self.requests.append(request)

    def leave(self, done: set[int]) -> None:
        import torch

        keep = [i for i in range(len(self.requests)) if i not in done]
        self.requests = [self.requests[i] for i in keep]
        self.mask = [self.mask[i] for i in keep]
        if not keep:
            return
        self.cache.batch_select_indices(torch.tensor(keep))
        shared = min(row.index(1) for row in self.mask)  # padding in front of every row: no longer needed
        if shared:
            self.mask = [row[shared:] for row in self.mask]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, shared:], layer.values[:, :, shared:]


def _pad_left(tensor, width: int):
    import torch

    missing = width - tensor.shape[-2]
    return torch.nn.functional.pad(tensor, (0, 0, missing, 0)) if missing else tensor


class Engine:
    def __init__(self):
        self._inbox: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._peft: dict[str, object] = {}  # base source -> PeftModel wrapping the shared base
        self._adapters: dict[str, str] = {}  # adapter folder -> its name inside that PeftModel
        self._routing: dict[str, str | None] = {}  # base source -> the adapter its layers use now
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
        cohorts: dict[tuple, _Cohort] = {}
        while not self._closing:
            if not waiting and not cohorts:
                self._admit(self._inbox.get(), waiting)
            while not self._inbox.empty():
                self._admit(self._inbox.get_nowait(), waiting)
            if waiting:
                self._guarded([request := waiting.popleft()], lambda: self._prefill(request, cohorts))
            for key in list(cohorts):
                cohort = cohorts[key]
                self._guarded(cohort.requests, lambda: self._decode(cohort))
                if not cohort.requests:
                    del cohorts[key]
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

    def _prefill(self, request: _Request, cohorts: dict[tuple, _Cohort]) -> None:
        """The prompt through the model on its own cache, the first token, then into its cohort."""
        if request.stop.is_set():
            request.finish(None)
            return
        import torch

        model, tokenizer = self._model(request.source)
        self._activate(request.source, request.adapter)
        torch.set_num_threads(self._threads.best)
        inputs = tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)
        request.history = inputs["input_ids"].to(model.device)
        request.usage.prompt_tokens = request.position = request.history.shape[1]
        request.processors = _processors(request.temperature)
        request.stop_ids = _stop_ids(model, tokenizer)
        # logits_to_keep: the prefill needs the last position's logits only (saves a vocab-sized matmul per token).
        out = model(input_ids=request.history, use_cache=True, logits_to_keep=1)
        if self._advance(request, out.logits[0, -1], tokenizer):
            self._end(request, tokenizer)
        elif (cohort := cohorts.get(request.key)) is None:
            cohorts[request.key] = _Cohort(request, out.past_key_values)
        else:
            cohort.join(request, out.past_key_values)

    def _decode(self, cohort: _Cohort) -> None:
        """One token for every request of the cohort, in one forward pass."""
        import torch

        model, tokenizer = self._model(cohort.requests[0].source)
        self._activate(*cohort.requests[0].key)
        threads = self._threads.pick()
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        started = time.perf_counter()
        cohort.mask = [row + [1] for row in cohort.mask]
        out = model(input_ids=torch.tensor([[r.ids[-1]] for r in cohort.requests], device=model.device),
                    attention_mask=torch.tensor(cohort.mask, device=model.device),
                    position_ids=torch.tensor([[r.position] for r in cohort.requests], device=model.device),
                    past_key_values=cohort.cache, use_cache=True, logits_to_keep=1)
        done = set()
        for row, request in enumerate(cohort.requests):
            request.position += 1
            if request.stop.is_set() or self._advance(request, out.logits[row, -1], tokenizer):
                self._end(request, tokenizer)
                done.add(row)
        self._threads.record(time.perf_counter() - started)
        if done:
            cohort.leave(done)

    def _advance(self, request: _Request, logits, tokenizer) -> bool:
        """Pick the next token from the logits; True when the request is complete."""
        import torch

        scores = request.processors(request.history, logits.float().unsqueeze(0))
        if request.temperature > 0:
            token = torch.multinomial(torch.softmax(scores, dim=-1), 1)
        else:
            token = scores.argmax(dim=-1, keepdim=True)
        token_id = int(token)
        if token_id in request.stop_ids:
            request.usage.stop_reason = "eos"
            return True
        request.history = torch.cat([request.history, token], dim=1)
        request.ids.append(token_id)
        request.usage.completion_tokens += 1
        self._flush(request, final=False, tokenizer=tokenizer)
        if request.usage.completion_tokens >= request.max_tokens:
            request.usage.stop_reason = "max_tokens"
            return True
        return False

    def _end(self, request: _Request, tokenizer) -> None:
        if not request.stop.is_set():  # nobody reads a stopped request's tail
            self._flush(request, final=True, tokenizer=tokenizer)
        request.usage.latency_s = time.perf_counter() - request.started
        request.finish(None)

    @staticmethod
    def _flush(request: _Request, *, final: bool, tokenizer) -> None:
        """Emit the newly decoded characters (holding back half of a multi-byte character)."""
        text = tokenizer.decode(request.ids, skip_special_tokens=True)
        if final:
            text = text.replace("\ufffd", "")
        elif text.endswith("\ufffd"):
            return
        if len(text) > request.sent:
            if request.usage.ttft_s is None:
                request.usage.ttft_s = time.perf_counter() - request.started
            request.emit(text[request.sent:])
            request.sent = len(text)

    # --- models and adapters ------------------------------------------------------------------

    @staticmethod
    def _model(source: str):
        return load_pretrained(source, device())  # cached after the first call

    def _activate(self, source: str, adapter: str | None) -> None:
        """Route the shared base through `adapter` (attached on first use) or through no adapter.

        Switching walks every LoRA layer, so it happens only when the routing changes, not every step."""
        if self._routing.get(source, None) == adapter:
            return
        if adapter is not None and adapter not in self._adapters:
            self._attach(source, adapter)
        peft_model = self._peft.get(source)
        if adapter is None:
            if peft_model is not None:
                peft_model.base_model.disable_adapter_layers()
        else:
            peft_model.base_model.enable_adapter_layers()
            peft_model.base_model.set_adapter(self._adapters[adapter])
        self._routing[source] = adapter

    def _attach(self, source: str, adapter: str) -> None:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise TutorError(f"The adapter folder {adapter} is missing or incomplete; train the model again.")
        name = f"adapter{len(self._adapters)}"
        model, _ = self._model(source)
        if source not in self._peft:  # injects LoRA layers into the shared base, in place
            self._peft[source] = PeftModel.from_pretrained(model, adapter, adapter_name=name)
        else:
            self._peft[source].load_adapter(adapter, adapter_name=name)
        self._peft[source].eval()
        self._adapters[adapter] = name


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


def _processors(temperature: float):
    from transformers import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopPLogitsWarper,
    )

    if temperature <= 0:
        return LogitsProcessorList()
    return LogitsProcessorList([RepetitionPenaltyLogitsProcessor(1.1), TemperatureLogitsWarper(temperature),
                                TopPLogitsWarper(0.9)])


def _stop_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


engine = Engine()
atexit.register(engine.close)


def load_model(source: str, on: str | None = None):
    """(model, tokenizer) for a resolved base model, loaded once per process on the engine's thread (the
    process's one torch thread, which also serializes loading: transformers' is not thread-safe)."""
    return engine.call(load_pretrained, source, on or device())


def load_chat_model(settings: Settings):
    """(model, tokenizer) for the configured base model, converted first if needed."""
    return engine.call(lambda: load_model(resolve_base_model(settings)))


if __name__ == "__main__":
    import sys

    from training.common import configure_process
    from training.settings import get_settings

    configure_process()
    text, usage = engine.complete(resolve_base_model(get_settings()), [{"role": "user", "content": sys.argv[1]}],
                                  max_tokens=80)
    print(text)
    print(usage)
