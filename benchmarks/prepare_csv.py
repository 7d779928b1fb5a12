"""Preparing from a 1,000,000-row RecipeNLG CSV, and validating 100,000 chat examples.

The CSV is generated from the bundled sample (titles numbered so rows are distinct). Each contender
runs in its own process so peak RSS is its own:
- project: `training.data.prepare.prepare` (streamed csv + orjson, seeded reservoir, dedupe fingerprints);
- baseline: the cookbook's approach: pandas `read_csv` of the whole file, then row-wise formatting
  of every row into a chat example.
Validation: `training.data.validate` (streamed, tiktoken) vs the cookbook notebook's loop (load every
line, then the format checks and `num_tokens_from_messages` one message at a time).

    python -m benchmarks.prepare_csv [ROWS]
"""

import csv
import subprocess
import sys
import tempfile
from pathlib import Path

from training.data.recipes import SAMPLE_CSV

ROWS = 1_000_000
EXAMPLES = 100_000

# Peak RSS of the process itself: VmHWM (ru_maxrss would include the forked parent's pages before exec).
PEAK = """
import re
def peak_mb():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
"""
PROJECT = PEAK + """
import sys, time
from pathlib import Path
from training.data.prepare import prepare
started = time.perf_counter()
report = prepare(sys.argv[1], Path(sys.argv[2]), train=1000, validation=200, test=200, seed=0)
seconds = time.perf_counter() - started
print(report.rows_read, seconds, peak_mb())
"""
BASELINE = PEAK + """
import json, sys, time
import pandas as pd
from training.data.recipes import SYSTEM_PROMPT
started = time.perf_counter()
recipes = pd.read_csv(sys.argv[1])
def prepare_example_conversation(row):
    return {"messages": [{"role": "system", "content": SYSTEM_PROMPT},
                         {"role": "user", "content": f"Title: {row['title']}\\n\\nIngredients: {row['ingredients']}\\n\\nGeneric ingredients: "},
                         {"role": "assistant", "content": row["NER"]}]}
examples = recipes.apply(prepare_example_conversation, axis=1).tolist()
seconds = time.perf_counter() - started
print(len(examples), seconds, peak_mb())
"""
VALIDATE_PROJECT = """
import sys, time
from pathlib import Path
from training.data.validate import validate_file
started = time.perf_counter()
report = validate_file(Path(sys.argv[1]))
print(report.examples, time.perf_counter() - started)
"""
VALIDATE_BASELINE = """
import json, sys, time
from collections import defaultdict
from training.data.tokens import seed_tiktoken_cache
import tiktoken
seed_tiktoken_cache("o200k_base")
started = time.perf_counter()
with open(sys.argv[1]) as f:
    dataset = [json.loads(line) for line in f]
format_errors = defaultdict(int)
for ex in dataset:
    messages = ex.get("messages", None)
    for message in messages:
        if "role" not in message or "content" not in message: format_errors["message_missing_key"] += 1
        if message.get("role", None) not in ("system", "user", "assistant", "function"): format_errors["unrecognized_role"] += 1
    if not any(message.get("role", None) == "assistant" for message in messages): format_errors["example_missing_assistant_message"] += 1
encoding = tiktoken.get_encoding("o200k_base")
def num_tokens_from_messages(messages, tokens_per_message=3, tokens_per_name=1):
    num_tokens = 0
    for message in messages:
        num_tokens += tokens_per_message
        for key, value in message.items():
            num_tokens += len(encoding.encode(value))
            if key == "name": num_tokens += tokens_per_name
    return num_tokens + 3
def num_assistant_tokens_from_messages(messages):
    return sum(len(encoding.encode(m["content"])) for m in messages if m["role"] == "assistant")
lengths = [num_tokens_from_messages(ex["messages"]) for ex in dataset]
assistant = [num_assistant_tokens_from_messages(ex["messages"]) for ex in dataset]
print(len(dataset), time.perf_counter() - started)
"""


def generate_csv(path: Path, rows: int) -> None:
    with open(SAMPLE_CSV, encoding="utf-8", newline="") as handle:
        sample = list(csv.DictReader(handle))
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["", "title", "ingredients", "directions", "link", "source", "NER"])
        for i in range(rows):
            r = sample[i % len(sample)]
            writer.writerow([i, f"{r['title']} #{i}", r["ingredients"], r["directions"], r["link"], r["source"], r["NER"]])


def run_script(script: str, *args) -> list[float]:
    out = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, check=True)
    return [float(x) for x in out.stdout.split()]


def run(rows: int = ROWS) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "recipes.csv"
        generate_csv(source, rows)
        print(f"generated {rows:,} rows, {source.stat().st_size / 1e6:.0f} MB", flush=True)
        ours_rows, ours_s, ours_mb = run_script(PROJECT, source, Path(tmp) / "out")
        base_rows, base_s, base_mb = run_script(BASELINE, source)
        print(f"project : {ours_rows / ours_s:,.0f} rows/s, peak RSS {ours_mb:,.0f} MB")
        print(f"pandas  : {base_rows / base_s:,.0f} rows/s, peak RSS {base_mb:,.0f} MB")
        examples = Path(tmp) / "chat.jsonl"
        line = (Path(tmp) / "out" / "train.jsonl").read_text().splitlines()[0]
        examples.write_text((line + "\n") * EXAMPLES)
        v_n, v_s = run_script(VALIDATE_PROJECT, examples)
        vb_n, vb_s = run_script(VALIDATE_BASELINE, examples)
        print(f"validate: {v_n / v_s:,.0f} examples/s (cookbook loop {vb_n / vb_s:,.0f} examples/s)")
    return {"name": f"prepare {rows:,}-row CSV (rows/s, peak RSS); validate {EXAMPLES:,} examples (examples/s)",
            "project": f"{ours_rows / ours_s:,.0f} rows/s, {ours_mb:,.0f} MB; {v_n / v_s:,.0f} ex/s",
            "baseline": f"{base_rows / base_s:,.0f} rows/s, {base_mb:,.0f} MB (pandas); {vb_n / vb_s:,.0f} ex/s (cookbook loop)",
            "ratio": f"{(ours_rows / ours_s) / (base_rows / base_s):.1f}x rows/s, {base_mb / ours_mb:.1f}x less memory; "
                     f"{(v_n / v_s) / (vb_n / vb_s):.1f}x validate"}


if __name__ == "__main__":
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else ROWS))
