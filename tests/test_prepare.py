"""Preparing the dataset: sizes, determinism, dedupe, every source kind, atomic writes, input untouched."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from training.data.prepare import prepare, split_sizes, write_jsonl_atomic
from training.data.recipes import SYSTEM_PROMPT, SourceError

HEADER = ",title,ingredients,directions,link,source,NER\n"


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def csv_with(tmp_path, rows: list[str]):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + "".join(rows))
    return path


def recipe_row(i: int, title: str | None = None) -> str:
    return f'{i},{title or f"Dish {i}"},"[""{i} c. flour"", ""1 egg""]","[""Mix.""]",x,y,"[""flour"", ""egg""]"\n'


def test_the_bundled_sample_gives_three_chat_splits(tmp_path):
    report = prepare("sample", tmp_path, train=120, validation=40, test=40, seed=1)
    assert report.written == {"train": 120, "validation": 40, "test": 40}
    examples = {split: [json.loads(l) for l in (tmp_path / f"{split}.jsonl").read_text().splitlines()]
                for split in ("train", "validation", "test")}
    first = examples["train"][0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant"] and first[0]["content"] == SYSTEM_PROMPT
    assert first[1]["content"].startswith("Title: ") and first[1]["content"].endswith("\n\nGeneric ingredients: ")
    assert isinstance(json.loads(first[2]["content"]), list)
    users = [e["messages"][1]["content"] for split in examples.values() for e in split]
    assert len(users) == len(set(users)) == 200, "splits overlap"


def test_same_seed_same_bytes_other_seed_other_split(tmp_path):
    runs = [prepare("sample", tmp_path / name, seed=seed) for name, seed in (("a", 7), ("b", 7), ("c", 8))]
    assert all(r.written == runs[0].written for r in runs)
    for split in ("train", "validation", "test"):
        assert digest(tmp_path / "a" / f"{split}.jsonl") == digest(tmp_path / "b" / f"{split}.jsonl")
    assert digest(tmp_path / "a" / "train.jsonl") != digest(tmp_path / "c" / "train.jsonl")


def test_duplicates_are_removed_and_counted(tmp_path):
    rows = [recipe_row(i) for i in range(30)] + [recipe_row(i).replace(f"Dish {i}", f"  DISH {i} ") for i in range(5)]
    report = prepare(csv_with(tmp_path, rows), tmp_path / "out", train=20, validation=5, test=5)
    assert report.rows_read == 35 and report.duplicates == 5 and report.usable == 30
    assert sum(report.written.values()) == 30
    assert prepare(csv_with(tmp_path, rows), tmp_path / "out2", train=20, validation=5, test=5, dedupe=False).usable == 35


def test_a_small_source_shrinks_the_splits_and_says_so(tmp_path):
    report = prepare(csv_with(tmp_path, [recipe_row(i) for i in range(10)]), tmp_path / "out", train=60, validation=20,
                     test=20)
    assert report.written == {"train": 6, "validation": 2, "test": 2}
    assert "Only 10 usable examples" in report.notes[0]
    assert split_sizes({"train": 3, "validation": 1, "test": 1}, 4) == {"train": 2, "validation": 1, "test": 1}
    assert split_sizes({"train": 3, "validation": 0, "test": 1}, 2) == {"train": 1, "validation": 0, "test": 1}


def test_malformed_rows_are_skipped_counted_and_listed(tmp_path):
    rows = [recipe_row(i) for i in range(8)] + ['99,Broken,"[oops","[]",x,y,"[]"\n', "100,Short\n"]
    report = prepare(csv_with(tmp_path, rows), tmp_path / "out", train=6, validation=1, test=1)
    assert report.skipped == 2 and report.usable == 8
    assert report.problems == ["line 10: ingredients is not a valid JSON list", "line 11: expected 7 fields, found 2"]
    assert "2 skipped as malformed" in report.as_markdown()


def test_a_chat_jsonl_source_is_validated_and_split(tmp_path):
    good = [{"messages": [{"role": "user", "content": f"Title: T{i}"}, {"role": "assistant", "content": "[]"}]}
            for i in range(12)]
    lines = [json.dumps(g) for g in good] + ["{broken", json.dumps({"messages": [{"role": "robot", "content": "x"}]})]
    source = tmp_path / "chat.jsonl"
    source.write_text("\n".join(lines) + "\n")
    report = prepare(source, tmp_path / "out", train=8, validation=2, test=2)
    assert report.written == {"train": 8, "validation": 2, "test": 2} and report.skipped == 2
    assert report.problems[0].startswith("line 13: not valid JSON")
    assert report.problems[1] == "line 14: unrecognized_role, example_missing_assistant_message"


def test_nothing_usable_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="No usable examples.*line 2: ingredients is not a valid JSON list"):
        prepare(csv_with(tmp_path, ['0,A,"[x","[]",x,y,"[]"\n']), tmp_path / "out")
    with pytest.raises(ValueError, match="at least 1 example"):
        prepare("sample", tmp_path / "out", train=0)


def test_the_input_is_never_modified(tmp_path):
    source = csv_with(tmp_path, [recipe_row(i) for i in range(20)])
    before = (digest(source), source.stat().st_mtime_ns)
    prepare(source, tmp_path / "out", train=10, validation=5, test=5)
    assert (digest(source), source.stat().st_mtime_ns) == before


def test_an_interrupted_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "train.jsonl"
    write_jsonl_atomic(target, [{"n": 1}, {"n": 2}])
    before = target.read_bytes()

    def examples_then_crash():
        yield {"n": 3}
        raise KeyboardInterrupt  # the learner pressed Ctrl-C mid-write

    with pytest.raises(KeyboardInterrupt):
        write_jsonl_atomic(target, examples_then_crash())
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["train.jsonl"]


def test_a_killed_process_leaves_no_half_file(tmp_path):
    """SIGKILL in the middle of writing a large split: the target never exists half-written."""
    script = f"""
import itertools, os, signal
from pathlib import Path
from training.data.prepare import write_jsonl_atomic
def examples():
    for i in itertools.count():
        if i == 50_000:
            os.kill(os.getpid(), signal.SIGKILL)
        yield {{"messages": [{{"role": "user", "content": "x" * 100}}]}}
write_jsonl_atomic(Path({str(tmp_path / 'train.jsonl')!r}), examples())
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == -9
    assert not (tmp_path / "train.jsonl").exists()


def test_cli_prepare_and_validate(tmp_path):
    out = tmp_path / "ds"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TUTOR_"))}
    env["TUTOR_DATA_DIR"] = str(tmp_path / "data")
    made = subprocess.run([sys.executable, "-m", "assistant.cli.main", "prepare", "--out", str(out), "--train", "30",
                           "--validation", "10", "--test", "10", "--json"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["written"] == {"train": 30, "validation": 10, "test": 10}
    from training.base.registry import Registry

    [dataset] = Registry(tmp_path / "data" / "registry.sqlite").datasets()  # offered by /train in chat
    assert dataset.name == "sample-seed42" and dataset.files["train"] == str(out / "train.jsonl")
    checked = subprocess.run([sys.executable, "-m", "assistant.cli.main", "validate", str(out / "train.jsonl"), "--json"],
                             capture_output=True, text=True, env=env, timeout=120)
    report = json.loads(checked.stdout)
    assert checked.returncode == 0 and report["ok"] and report["valid_examples"] == 30 and report["epochs"] == 3
    (tmp_path / "bad.jsonl").write_text('{"messages": "nope"}\n')
    bad = subprocess.run([sys.executable, "-m", "assistant.cli.main", "validate", str(tmp_path / "bad.jsonl")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and "missing_messages_list" in bad.stdout and "Traceback" not in bad.stderr
    missing = subprocess.run([sys.executable, "-m", "assistant.cli.main", "prepare", "--source", str(tmp_path / "no.csv"),
                              "--out", str(tmp_path / "fresh")], capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 1 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr


def test_cli_prepare_never_overwrites_an_earlier_dataset(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TUTOR_"))}
    env["TUTOR_DATA_DIR"] = str(tmp_path / "data")
    command = [sys.executable, "-m", "assistant.cli.main", "prepare", "--train", "20", "--validation", "5", "--test", "5"]
    for seed in ("1", "2"):  # the same command twice, different seeds: two folders, both kept
        assert subprocess.run([*command, "--seed", seed], capture_output=True, env=env, timeout=120).returncode == 0
    folders = sorted((tmp_path / "data" / "datasets").iterdir())
    assert len(folders) == 2 and all((f / "train.jsonl").is_file() for f in folders)
    before = (folders[0] / "train.jsonl").read_bytes()
    again = subprocess.run([*command, "--seed", "3", "--out", str(folders[0])], capture_output=True, text=True, env=env,
                           timeout=120)
    assert again.returncode == 1 and "never overwrites" in again.stderr
    assert (folders[0] / "train.jsonl").read_bytes() == before


def test_a_500_mb_csv_streams_in_bounded_memory(tmp_path):
    """A 500 MB upload is prepared from a stream: peak memory stays far below the file's size."""
    source = tmp_path / "big.csv"
    with open(source, "wb") as handle:
        handle.write(HEADER.encode())
        tail = (',"[""1 c. flour"", ""2 eggs"", ""1 c. milk"", ""1 Tbsp. sugar"", ""1/2 tsp. salt""]",'
                '"[""Whisk everything."", ""Rest 10 minutes."", ""Cook on a hot griddle.""]",'
                'x,y,"[""flour"", ""eggs"", ""milk"", ""sugar"", ""salt""]"\n').encode()
        i = 0
        while handle.tell() < 500_000_000:
            handle.write(b"".join(f"{n},Pancakes {n}".encode() + tail for n in range(i, i + 10_000)))
            i += 10_000
    script = f"""
import json, re
from pathlib import Path
from training.data.prepare import prepare
report = prepare({str(source)!r}, Path({str(tmp_path / 'out')!r}), train=500, validation=100, test=100)
# VmHWM, not ru_maxrss: the latter counts the forked parent's pages from before exec.
peak_kb = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
print(json.dumps({{"rows": report.rows_read, "written": report.written, "peak_mb": peak_kb / 1024}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert measured["rows"] == i and measured["written"] == {"train": 500, "validation": 100, "test": 100}
    assert measured["peak_mb"] < 300, f"peak RSS {measured['peak_mb']:.0f} MB for a 500 MB file"
