"""How recipe answers end and how an evaluation is scheduled: a looping answer stops at its repetition, a
normal one is never cut, max_tokens comes from the training answers, and an evaluation keeps several answers
in flight (so the local engine decodes them in one batch) while its rows keep the cases' order."""

import asyncio
import math

import pytest

from assistant.inference.backends import ChatBackend
from assistant.tutor.contenders import Contender, answer_budget, repeating
from training.base.errors import TutorError
from training.data.prepare import prepare
from training.data.recipes import SAMPLE_CSV
from training.evaluation.held_out import Case, chat_triples, evaluate
from training.evaluation.metrics import score_answer


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    return prepare(SAMPLE_CSV, tmp_path_factory.mktemp("data"), train=200, validation=20, test=19, seed=3).files["train"]


def test_a_loop_is_caught_and_no_training_answer_is_cut_anywhere(train_file):
    assert repeating('["flour", "baking soda", "baking soda", "baking soda", ')
    assert repeating("salt and pepper and salt and pepper and salt and pepper and ")
    assert not repeating('["flour", "baking soda", "baking soda", ')  # twice is a list, not yet a loop
    answers = [answer for _, _, answer in chat_triples(train_file)]
    assert len(answers) == 200
    cut = [answer for answer in answers if any(repeating(answer[:end]) for end in range(1, len(answer) + 1))]
    assert cut == [], "a normal answer, read as it streams, never looks like a loop"


def test_max_tokens_is_one_and_a_half_times_the_longest_answers(train_file):
    words = lambda messages: (0, len(messages[-1]["content"].split()))  # noqa: E731 - a counter: (total, answer)
    lengths = sorted(len(answer.split()) for _, _, answer in chat_triples(train_file))
    assert answer_budget(train_file, words) == max(16, math.ceil(lengths[197] * 1.5))  # p99 of 200 is the 198th


class Looping(ChatBackend):
    """Answers like a weak greedy model: one item, then the same item until told to stop."""

    name = "looping"
    closed = False

    async def stream(self, messages, *, temperature, max_tokens, usage=None):
        try:
            yield '["flour", '
            for _ in range(max_tokens):
                yield '"baking soda", '
        finally:
            Looping.closed = True


async def test_a_contender_stops_a_loop_early_and_says_so(settings):
    contender = Contender(label="weak", kind="base", backend=Looping(settings), max_tokens=1000)
    text, usage = await contender.answer(Case(prompt="Title: Soup", gold=["water"]))
    assert text == '["flour", ' + '"baking soda", ' * 3 and usage["stop"] == "repetition"
    assert Looping.closed, "the backend's stream was closed, so its generation stops"
    # The stop leaves the list unclosed; its finished items still count, as if the model had closed it.
    stopped = score_answer(text, ["flour", "baking soda", "eggs"])
    assert stopped["valid_json"] is False
    assert stopped["f1"] == score_answer('["flour", "baking soda"]', ["flour", "baking soda", "eggs"])["f1"] == 0.8


async def test_answers_run_several_at_a_time_and_rows_keep_the_cases_order():
    in_flight, most = 0, 0

    async def answer(case):
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01 * (len(case.prompt) % 3))  # finish out of order
        in_flight -= 1
        return f'["{case.prompt}"]', {"prompt_tokens": 1, "completion_tokens": 2, "latency_s": 0.1, "stop": "eos"}

    cases = [Case(prompt=f"p{i}", gold=[f"p{i}"]) for i in range(10)]
    summary, rows = await evaluate({"a": answer, "b": answer}, cases, concurrency=4)
    assert most == 4, "four answers in flight, never more"
    assert [(r["case"], r["system"]) for r in rows] == [(i, s) for i in range(10) for s in "ab"]
    assert summary["a"]["f1"] == 1.0 and summary["a"]["stops"] == {"eos": 10}


async def test_one_failing_answer_stops_the_evaluation_with_its_own_error():
    started = []

    async def answer(case):
        started.append(case.prompt)
        if case.prompt == "p1":
            raise TutorError("The model server went away.")
        await asyncio.sleep(5)
        return "[]", {}

    with pytest.raises(TutorError, match="The model server went away"):
        await asyncio.wait_for(evaluate({"a": answer}, [Case(prompt=f"p{i}", gold=[]) for i in range(6)],
                                        concurrency=3), 2)
