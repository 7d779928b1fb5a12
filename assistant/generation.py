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
import collections
import concurrent.futures
import json
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from assistant.errors import TutorError
from assistant.settings import usable_cpus

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]


@dataclass
class Usage:
    """What one answer cost: filled in while it streams."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None  # from the request to its first text, queueing included
    latency_s: float = 0.0


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
    ids: list[int] = field(default_factory=list)
    sent: int = 0
    cache: object = None
    history: object = None  # prompt + generated ids, for the repetition penalty
    processors: object = None
    stop_ids: set[int] = field(default_factory=set)


class Engine:
    def __init__(self):
        self._inbox: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._peft: dict[str, object] = {}  # base source -> PeftModel wrapping the shared base
        self._adapters: dict[str, str] = {}  # adapter folder -> its name inside that PeftModel
        self._routing: dict[str, str | None] = {}  # base source -> the adapter its layers use now
        self._threads = ThreadTuner(usable_cpus())

    # --- public API ---------------------------------------------------------------------------

    async def stream(self, source: str, messages: Messages, *, adapter: str | None = None, temperature: float = 0.0,
                     max_tokens: int = 256, usage: Usage | None = None) -> AsyncIterator[str]:
        """Yield the answer's text as it is generated. Closing the iterator early stops the request."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()
        done = object()
        failure: list[BaseException | None] = []

        def finish(error: BaseException | None) -> None:
            failure.append(error)
            loop.call_soon_threadsafe(pieces.put_nowait, done)

        request = _Request(source, adapter, messages, temperature, max_tokens,
                           emit=lambda text: loop.call_soon_threadsafe(pieces.put_nowait, text),
                           finish=finish, stop=threading.Event(), usage=usage or Usage())
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

    # --- the worker ---------------------------------------------------------------------------

    def _submit(self, request: _Request | _Call) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="generation", daemon=True)
                self._thread.start()
        self._inbox.put(request)

    def _serve(self) -> None:
        import torch

        active: collections.deque[_Request] = collections.deque()
        while True:
            if not active:
                self._admit(self._inbox.get(), active)
            while not self._inbox.empty():
                self._admit(self._inbox.get_nowait(), active)
            if not active:
                continue
            request = active.popleft()
            decode = request.cache is not None  # a one-token step: what the thread tuner compares
            try:
                threads = self._threads.pick() if decode else self._threads.best
                if threads != torch.get_num_threads():
                    torch.set_num_threads(threads)
                started = time.perf_counter()
                with torch.inference_mode():  # decode steps only: calls (model loading) run outside it
                    finished = request.stop.is_set() or self._step(request)
                if decode:
                    self._threads.record(time.perf_counter() - started)
            except TutorError as exc:  # an explained failure (a missing adapter, say): no trace needed
                log.warning("Local generation failed: %s", exc)
                request.finish(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - reported to the caller, the worker serves on
                log.exception("Local generation failed")
                request.finish(TutorError(f"The local model failed while answering ({type(exc).__name__}). "
                                          "Try a shorter message, or see the server log."))
                continue
            if finished:
                if not request.stop.is_set():  # nobody reads a stopped request's tail
                    self._flush(request, final=True)
                request.usage.latency_s = time.perf_counter() - request.started
                request.finish(None)
            else:
                active.append(request)

    @staticmethod
    def _admit(item: _Request | _Call, active: collections.deque) -> None:
        if isinstance(item, _Request):
            active.append(item)
            return
        try:  # a call runs at once, in arrival order, between two decode steps
            item.future.set_result(item.fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            item.future.set_exception(exc)

    def _step(self, request: _Request) -> bool:
        """Advance one token; True when the request is complete."""
        import torch

        model, tokenizer = self._model(request.source)
        self._activate(request.source, request.adapter)
        if request.cache is None:  # prefill
            inputs = tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, return_tensors="pt",
                                                   return_dict=True)
            request.history = inputs["input_ids"].to(model.device)
            request.usage.prompt_tokens = request.history.shape[1]
            request.processors = _processors(request.temperature)
            request.stop_ids = _stop_ids(model, tokenizer)
            step_input = request.history
        else:
            step_input = request.history[:, -1:]
        # logits_to_keep: the prefill needs the last position's logits only (saves a vocab-sized matmul per token).
        out = model(input_ids=step_input, past_key_values=request.cache, use_cache=True, logits_to_keep=1)
        request.cache = out.past_key_values
        scores = request.processors(request.history, out.logits[:, -1, :].float())
        if request.temperature > 0:
            token = torch.multinomial(torch.softmax(scores, dim=-1), 1)
        else:
            token = scores.argmax(dim=-1, keepdim=True)
        token_id = int(token)
        if token_id in request.stop_ids:
            return True
        request.history = torch.cat([request.history, token], dim=1)
        request.ids.append(token_id)
        request.usage.completion_tokens += 1
        self._flush(request, final=False, tokenizer=tokenizer)
        return request.usage.completion_tokens >= request.max_tokens

    def _flush(self, request: _Request, *, final: bool, tokenizer=None) -> None:
        """Emit the newly decoded characters (holding back half of a multi-byte character)."""
        tokenizer = tokenizer or self._model(request.source)[1]
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
        import torch

        from assistant.models import load_model

        return load_model(source, "cuda" if torch.cuda.is_available() else "cpu")  # cached after the first call

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
    from transformers import (LogitsProcessorList, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                              TopPLogitsWarper)

    if temperature <= 0:
        return LogitsProcessorList()
    return LogitsProcessorList([RepetitionPenaltyLogitsProcessor(1.1), TemperatureLogitsWarper(temperature),
                                TopPLogitsWarper(0.9)])


def _stop_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


engine = Engine()


def adapter_base(adapter_dir: str | Path) -> str:
    """The base model an adapter was trained on, as recorded portably ("embedded", an HF id or a folder)."""
    try:
        return json.loads((Path(adapter_dir) / "adapter_config.json").read_text())["base_model_name_or_path"]
    except (OSError, ValueError, KeyError):
        raise TutorError(f"The adapter folder {adapter_dir} is missing or incomplete; train the model again.") from None


if __name__ == "__main__":
    import sys

    from assistant.models import resolve_base_model
    from assistant.settings import get_settings

    text, usage = engine.complete(resolve_base_model(get_settings()), [{"role": "user", "content": sys.argv[1]}],
                                  max_tokens=80)
    print(text)
    print(usage)
