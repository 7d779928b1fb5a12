"""A 200 MB attachment through the real app on 127.0.0.1, as a learner's page sends it: uploaded to Chainlit's file
route, attached to a message, kept and validated. Ordinary lines and one single line alike, the app's resident
memory stays within the bound SECURITY.md documents (UPLOAD_GROWTH) from the first byte to the report: Chainlit's
upload route and its history layer each read an attachment whole (assistant.web.upload_route, assistant.web.history stream
it), and the validator holds one line at most (TUTOR_MAX_LINE_BYTES)."""

import json

from tests.app_process import AppProcess, peak_growth
from tests.live_chat import LiveChat

MB = 10**6
UPLOAD_GROWTH = 32 * 2**20  # SECURITY.md: "a 200 MB upload raises the app's memory by under 32 MiB"


def ordinary_file(path, size: int) -> None:
    """`size` bytes of ~2 kB chat lines, as a careless export would have them: each parsed, none with an answer (so
    the validator reads and checks every line without spending minutes counting tokens)."""
    line = json.dumps({"messages": [{"role": "system", "content": "You are a helpful recipe assistant."},
                                    {"role": "user", "content": "salt, flour, " * 150}]}).encode() + b"\n"
    with path.open("wb") as out:
        for _ in range(size // len(line)):
            out.write(line)


def single_line_file(path, size: int) -> None:
    """`size` bytes that are one JSON line: a list of numbers with no newline anywhere."""
    chunk = b"1," * (MB // 2)
    with path.open("wb") as out:
        out.write(b"[")
        for _ in range(size // len(chunk)):
            out.write(chunk)
        out.write(b"1]")


def test_a_200_mb_upload_ordinary_or_one_line_stays_within_the_memory_bound(tmp_path):
    ordinary, single = tmp_path / "ordinary.jsonl", tmp_path / "single.jsonl"
    ordinary_file(ordinary, 200 * MB)
    single_line_file(single, 200 * MB)
    with AppProcess(tmp_path / "data") as app, LiveChat(app) as chat:
        app.wait_until_warm()  # the model and the index are loaded first: what is measured is the upload alone
        warm = tmp_path / "first.jsonl"  # and the validator's tokenizer (tiktoken's vocabulary, ~75 MiB, once)
        warm.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                                 {"role": "assistant", "content": "Hello"}]}) + "\n")
        chat.say("", files=[chat.upload(warm.name, warm)])
        chat.wait_for("**first.jsonl**: ")
        for path, reported in ((single, "line 1: longer than the line limit of 1,048,576 bytes"),
                               (ordinary, "**ordinary.jsonl**: ")):
            grown = peak_growth(app, lambda path=path, reported=reported: chat.say(
                "", files=[chat.upload(path.name, path)]) or chat.wait_for(reported))
            assert grown < UPLOAD_GROWTH, f"{path.name}: the app grew by {grown / 2**20:.0f} MiB"
        kept = sorted(p.stat().st_size for p in (tmp_path / "data" / "uploads").glob("*.jsonl"))
        assert kept == sorted(p.stat().st_size for p in (warm, ordinary, single)), "each kept whole"
        assert "example_missing_assistant_message" in chat.wait_for("**ordinary.jsonl**: ")["output"]
