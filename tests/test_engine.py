"""The generation engine's scheduling on a fake runtime, handed to it as the real ones are: whose turn it is,
cohorts and their room, cancellation, failures, and requests that never change. The fake model echoes the last
message back, one character per token, and checks every token and position the engine feeds it; no model loads,
and the order of the runtime's calls shows what the engine did (tests/test_generation.py runs the real ones)."""

import asyncio
import concurrent.futures
import contextlib
import copy
import dataclasses
import threading
import time

import pytest

from assistant.inference.engine import Engine, Usage
from assistant.inference.llama_runtime import LlamaRuntime
from assistant.inference.runtime import Cohort, ModelRuntime, Request
from assistant.inference.torch_runtime import TorchRuntime
from training.base.errors import TutorError

STOP = 0


class FakeCohort(Cohort):
    def __init__(self, runtime: "FakeRuntime", source: str):
        self.runtime, self.source = runtime, source
        self.stop_ids = {STOP}
        self.rows: list[tuple[list[int], list[int]]] = []  # per row: (its prompt, the tokens it was given)

    def has_room(self, prompt_ids):
        if len(self.rows) >= self.runtime.capacity:
            self.runtime.log.append(("full", self.source))
            return False
        return True

    def answer_limit(self, prompt_ids):
        return self.runtime.limit

    def prefill(self, request, prompt_ids, threads):
        self.runtime.log.append(("prefill", self.source))
        self.runtime.requests.append(request)
        self.rows.append((prompt_ids, []))
        return self._next(len(self.rows) - 1)

    def step(self, inputs, threads):
        if self.runtime.turns is not None:
            self.runtime.turns.acquire()  # the test paces the steps
        self.runtime.log.append(("step", self.source, len(inputs)))
        assert len(inputs) == len(self.rows)
        for (token, position), (prompt, given) in zip(inputs, self.rows):
            assert (token, position) == (given[-1], len(prompt) + len(given) - 1), "the engine fed a wrong input"
            if chr(token) == "!":
                raise RuntimeError("the fake model broke")
        return [self._next(row) for row in range(len(self.rows))]

    def leave(self, rows):
        self.runtime.log.append(("leave", self.source, rows))
        self.rows = [row for i, row in enumerate(self.rows) if i not in rows]

    def _next(self, row: int) -> int:
        prompt, given = self.rows[row]
        given.append(prompt[len(given)] if len(given) < len(prompt) else STOP)
        return given[-1]


class FakeRuntime(ModelRuntime):
    """Runs the sources that start with `prefix`; a cohort has `capacity` rows; answers have `limit` tokens at most."""

    name = "fake"

    def __init__(self, prefix: str = "", capacity: int = 8, limit: int | None = None):
        self.prefix, self.capacity, self.limit = prefix, capacity, limit
        self.log: list[tuple] = []
        self.requests: list[Request] = []  # as handed to prefill
        self.turns: threading.Semaphore | None = None  # when set, a step waits for one of its permits
        self.cohorts = 0

    def runs(self, source):
        return source.startswith(self.prefix)

    def cohort(self, source, adapter, threads):
        self.cohorts += 1
        return FakeCohort(self, source)

    def prompt(self, source, messages):
        return [ord(c) for c in messages[-1]["content"]]

    def decode(self, source, ids):
        return "".join(map(chr, ids))


@pytest.fixture
def fake():
    return FakeRuntime(capacity=2)


@pytest.fixture
def engine(fake):
    engine = Engine([fake])
    yield engine
    engine.close()


def ask(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


@contextlib.contextmanager
def held(engine: Engine):
    """The worker busy on a call until the block ends: requests submitted meanwhile are all admitted at once, in
    the order they came."""
    entered, release = threading.Event(), threading.Event()
    caller = threading.Thread(target=engine.call, args=(lambda: (entered.set(), release.wait()),))
    caller.start()
    entered.wait()
    try:
        yield
    finally:
        release.set()
        caller.join()


def submit(pool, engine: Engine, source: str, content: str, **options) -> concurrent.futures.Future:
    """`engine.complete` on a pool thread, returned once the request is in the engine's inbox."""
    waiting = engine.load()
    future = pool.submit(engine.complete, source, ask(content), **options)
    while engine.load() == waiting:  # readiness: `load` counts a request once it is in the inbox
        time.sleep(0.001)
    return future


def settle(engine: Engine) -> None:
    """Two turns of the worker: anything set before this call was seen by at least one whole step."""
    engine.call(lambda: None)
    engine.call(lambda: None)


def test_a_runtime_answers_through_the_engine_with_its_usage(engine, fake):
    text, usage = engine.complete("fake", ask("flour"))
    assert text == "flour"
    assert (usage.prompt_tokens, usage.completion_tokens, usage.stop_reason) == (5, 5, "eos")
    assert 0 < usage.ttft_s <= usage.latency_s
    text, usage = engine.complete("fake", ask("flour"), max_tokens=2)
    assert (text, usage.completion_tokens, usage.stop_reason) == ("fl", 2, "max_tokens")
    assert engine.prompt("fake", ask("egg")) == [ord("e"), ord("g"), ord("g")]
    assert engine.load() == 0


def test_a_model_runs_on_the_first_runtime_that_runs_it():
    first, last = FakeRuntime(prefix="gguf:"), FakeRuntime()
    engine = Engine([first, last])
    try:
        assert (engine.complete("gguf:smol", ask("a"))[0], engine.complete("hub:smol", ask("b"))[0]) == ("a", "b")
        assert [entry[1] for entry in first.log if entry[0] == "prefill"] == ["gguf:smol"]
        assert [entry[1] for entry in last.log if entry[0] == "prefill"] == ["hub:smol"]
    finally:
        engine.close()


def test_the_process_engine_takes_its_runtimes_the_same_way_llama_cpp_first():
    from assistant.inference.engine import engine

    assert [type(runtime) for runtime in engine.runtimes] == [LlamaRuntime, TorchRuntime]
    assert all(ModelRuntime in type(runtime).__mro__ for runtime in engine.runtimes)


def test_requests_take_turns_one_prefill_then_one_step_of_every_cohort(engine, fake):
    """A newcomer waits for one step of the others, not for their whole answers, and cohorts alternate."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        with held(engine):
            a = submit(pool, engine, "A", "abcd")
            b = submit(pool, engine, "B", "wxyz")
        assert (a.result()[0], b.result()[0]) == ("abcd", "wxyz")
    assert fake.log == [("prefill", "A"), ("step", "A", 1),
                        ("prefill", "B"), ("step", "A", 1), ("step", "B", 1),
                        ("step", "A", 1), ("step", "B", 1),
                        ("step", "A", 1), ("leave", "A", {0}), ("step", "B", 1),
                        ("step", "B", 1), ("leave", "B", {0})]


def test_a_cohort_decodes_its_requests_together_and_a_full_one_makes_the_next_wait(engine, fake):
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        with held(engine):
            answers = [submit(pool, engine, "A", content) for content in ("abcd", "ef", "gh")]
        assert [answer.result()[0] for answer in answers] == ["abcd", "ef", "gh"]
    assert fake.log == [("prefill", "A"), ("step", "A", 1),
                        ("prefill", "A"), ("step", "A", 2),
                        ("full", "A"), ("step", "A", 2), ("leave", "A", {1}),  # "ef" ends: a row is free
                        ("prefill", "A"), ("step", "A", 2), ("leave", "A", {0}),
                        ("step", "A", 1), ("leave", "A", {0})]
    assert fake.cohorts == 1


async def test_closing_a_stream_stops_its_request_at_the_next_step(engine, fake):
    fake.turns = threading.Semaphore(0)
    usage = Usage()
    stream = engine.stream("fake", ask("x" * 200), usage=usage)
    received = [await stream.__anext__()]  # from the prefill
    for _ in range(2):
        fake.turns.release()
        received.append(await stream.__anext__())
    await stream.aclose()
    fake.turns.release(200)
    await asyncio.to_thread(settle, engine)
    assert received == ["x", "x", "x"]
    assert [entry[0] for entry in fake.log] == ["prefill", "step", "step", "step", "leave"]
    assert (usage.completion_tokens, usage.stop_reason) == (3, None)
    assert engine.load() == 0


async def test_a_request_whose_reader_left_while_it_waited_is_never_prefilled(engine, fake):
    with held(engine):
        stream = engine.stream("fake", ask("abc"))
        reading = asyncio.ensure_future(stream.__anext__())
        while engine.load() == 0:  # readiness: submitted
            await asyncio.sleep(0.001)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
    await asyncio.to_thread(settle, engine)
    assert fake.log == [] and engine.load() == 0


def test_the_engine_never_changes_a_request(engine, fake):
    messages = ask("flour")
    asked = copy.deepcopy(messages)
    fake.limit = 3  # the runtime's rows hold 3 answer tokens: the answer stops there, the request stays as asked
    text, usage = engine.complete("fake", messages, max_tokens=10, temperature=0.5)
    assert (text, usage.stop_reason) == ("flo", "max_tokens")
    assert messages == asked
    [request] = fake.requests
    assert request == Request("fake", None, asked, temperature=0.5, max_tokens=10)
    messages[0]["content"] = "changed by the caller afterwards"
    assert request.chat() == asked
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.max_tokens = 3
    with pytest.raises(TypeError):
        request.messages[0]["content"] = "changed by a runtime"


def test_a_failed_step_ends_its_answers_with_a_clear_error_and_the_engine_serves_on(engine, fake):
    with pytest.raises(TutorError, match="The local model failed while answering"):
        engine.complete("fake", ask("ab!cd"))
    assert engine.complete("fake", ask("abcd"))[0] == "abcd"
    assert fake.cohorts == 2, "the failed cohort was used again"
    assert engine.load() == 0
