"""The cookbook's data-prep checks: every error key with its lines, warnings, token stats, epochs, cost."""

import json
from pathlib import Path

import pytest

from training.data.tokens import local_counter, openai_counter
from training.data.validate import Distribution, default_epochs, read_jsonl, validate_examples, validate_file

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GOOD = {"messages": [{"role": "system", "content": "Extract."}, {"role": "user", "content": "Title: Toast"},
                     {"role": "assistant", "content": "[\"bread\"]"}]}


def words(messages):
    """A hand-checkable counter: one token per word, assistant words counted separately."""
    total = sum(len(m["content"].split()) for m in messages)
    return total, sum(len(m["content"].split()) for m in messages if m["role"] == "assistant")


def jsonl(tmp_path, lines) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"".join((l if isinstance(l, bytes) else json.dumps(l).encode()) + b"\n" for l in lines))
    return path


def test_every_error_key_is_reported_with_its_lines(tmp_path):
    lines = [
        GOOD,                                                                              # 1 fine
        ["not", "a", "dict"],                                                              # 2 data_type
        {"prompt": "old completion format"},                                               # 3 missing_messages_list
        {"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]},           # 4 message_missing_key (+missing_content)
        {"messages": [{"role": "user", "content": "x", "tool": 1}, {"role": "assistant", "content": "y"}]},  # 5 unrecognized key
        {"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]},  # 6 unrecognized_role
        {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "y"}]},  # 7 missing_content
        {"messages": [{"role": "user", "content": "x"}]},                                  # 8 example_missing_assistant_message
        b"{not json",                                                                      # 9 invalid_json
        b"\xff\xfe",                                                                       # 10 invalid_json (bytes)
        b"",                                                                               # 11 empty line
    ]
    report = validate_examples(read_jsonl(jsonl(tmp_path, lines)), words, path="data.jsonl", tokenizer="words")
    assert {key: found.lines for key, found in report.errors.items()} == {
        "invalid_json": [9, 10, 11], "data_type": [2], "missing_messages_list": [3], "message_missing_key": [4],
        "message_unrecognized_key": [5], "unrecognized_role": [6], "missing_content": [4, 7],
        "example_missing_assistant_message": [8]}
    assert report.error_details == {9: "not valid JSON (Expecting property name enclosed in double quotes)",
                                    10: "not valid UTF-8", 11: "empty line"}
    assert report.examples == 11 and report.valid_examples == 1 and not report.ok
    table = report.as_markdown()
    assert "| message_unrecognized_key | 1 | 5 |" in table and "line 10: not valid UTF-8" in table


def test_warnings_and_token_statistics_by_hand(tmp_path):
    no_system = {"messages": GOOD["messages"][1:]}
    no_user = {"messages": [GOOD["messages"][0], GOOD["messages"][2]]}
    long_one = {"messages": [{"role": "user", "content": "word " * 30}, {"role": "assistant", "content": "a b c d"}]}
    report = validate_examples(read_jsonl(jsonl(tmp_path, [GOOD, no_system, no_user, long_one])), words,
                               path="data.jsonl", tokenizer="words", context_limit=20, price_per_million=2.0)
    assert report.ok and report.missing_system.lines == [2, 4] and report.missing_user.lines == [3]
    assert report.over_context_limit.lines == [4] and report.over_context_limit.count == 1
    # totals: 4, 3, 2, 34 words; assistant: 1, 1, 1, 4
    assert report.total_tokens == Distribution(min=2, max=34, mean=10.8, median=3.5, p10=2.3, p90=25.0)  # linear interpolation, like numpy.percentile
    assert report.assistant_tokens.max == 4 and report.assistant_tokens.median == 1
    assert report.tokens_in_dataset == 4 + 3 + 2 + 20  # over-long examples are billed up to the limit
    assert report.epochs == 25 and report.billed_tokens == 25 * 29
    assert report.estimated_cost == pytest.approx(25 * 29 / 1e6 * 2.0)
    markdown = report.as_markdown()
    assert "missing a system message: lines 2, 4" in markdown and "| total | 2 | 2.3 | 3.5 | 10.8 | 25.0 | 34 |" in markdown


@pytest.mark.parametrize("examples, epochs", [(1, 25), (3, 25), (10, 10), (33, 3), (34, 3), (101, 3), (8333, 3),
                                              (8334, 2), (30_000, 1)])
def test_default_epochs_follow_the_cookbook(examples, epochs):
    assert default_epochs(examples) == epochs


def test_tiktoken_counts_offline_with_the_cookbook_overheads():
    count = openai_counter("gpt-4o-mini")
    total, assistant = count([{"role": "user", "content": "Hello world"}, {"role": "assistant", "content": "Hi"}])
    # o200k: "user"=1, "Hello world"=2, "assistant"=1, "Hi"=1; 3 per message, 3 to prime the reply
    assert (total, assistant) == (3 + (3 + 1 + 2) + (3 + 1 + 1), 1)


def test_the_local_counter_uses_the_chat_template(embedded_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir)
    total, assistant = local_counter(tokenizer)(GOOD["messages"])
    answer = len(tokenizer("[\"bread\"]")["input_ids"])
    assert assistant == answer + 2  # the answer, <|im_end|> and the newline after it
    assert total > assistant + 10  # the template's role markers around system and user


@pytest.mark.skipif(not SHARED.exists(), reason="the cookbook split is not beside this checkout")
def test_the_cookbook_training_file_is_clean(tmp_path):
    report = validate_file(SHARED / "recipes_cookbook_train.jsonl")
    assert report.ok and report.examples == report.valid_examples == 101
    assert report.epochs == 3 and 60 < report.total_tokens.min < report.total_tokens.max < 400
    assert report.billed_tokens == 3 * report.tokens_in_dataset


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        validate_file(tmp_path / "nope.jsonl")


def test_memory_stays_bounded_whatever_the_file(tmp_path, monkeypatch):
    """80,000 examples, half of them broken, and a 5,000-length sample: exact counts, the first line numbers,
    percentiles from the bounded sample, and a peak far below what an entry per line would take."""
    import tracemalloc

    import training.data.validate

    monkeypatch.setattr(training.data.validate, "SAMPLE_SIZE", 5_000)
    path = tmp_path / "big.jsonl"
    good = json.dumps(GOOD).encode()
    with open(path, "wb") as handle:
        for number in range(40_000):
            handle.write(good + b"\n" + (b"{broken\n" if number % 2 else json.dumps({"messages": []}).encode() + b"\n"))
    tracemalloc.start()
    report = validate_examples(read_jsonl(path), words, path="big.jsonl", tokenizer="words")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert report.examples == 80_000 and report.valid_examples == 40_000
    assert report.errors["invalid_json"].count == 20_000 and report.errors["missing_messages_list"].count == 20_000
    assert report.errors["invalid_json"].lines == list(range(4, 84, 4)) and len(report.error_details) == 20
    assert len(report.example_lengths) == 5_000 and report.total_tokens.max == 4
    assert "and 19,980 more" in report.as_markdown()
    assert peak < 2 * 2**20, f"peak {peak / 2**20:.1f} MB"


def test_one_huge_line_is_named_and_skipped_within_the_line_limit(tmp_path):
    """A 200 MB upload that is one line (and, beside it, a line just over a small limit among good ones): the line
    is reported by number and skipped in megabyte reads, so memory never holds it (tracemalloc: Python's own
    allocations, where a read of the line would show 200 MB at once)."""
    import tracemalloc

    path = tmp_path / "one-line.jsonl"
    with open(path, "wb") as handle:
        handle.write(b'{"messages": [{"role": "user", "content": "')
        for _ in range(200):
            handle.write(b"x" * 2**20)
        handle.write(b'"}]}\n' + json.dumps(GOOD).encode() + b"\n")
    tracemalloc.start()
    report = validate_examples(read_jsonl(path, max_line=2**20), words, path="one-line.jsonl", tokenizer="words")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert report.examples == 2 and report.valid_examples == 1
    assert report.errors["invalid_json"].lines == [1]
    assert report.error_details[1] == "longer than the line limit of 1,048,576 bytes (TUTOR_MAX_LINE_BYTES)"
    assert peak < 5 * 2**20, f"peak {peak / 2**20:.1f} MB"

    small = tmp_path / "small.jsonl"
    small.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"x": "' + b"y" * 2000 + b'"}\n' + json.dumps(GOOD).encode())
    lines = list(read_jsonl(small, max_line=1024))
    assert [(n, problem is None) for n, _, problem in lines] == [(1, True), (2, False), (3, True)]
