"""Run every benchmark, each in its own process, print one summary table at the end, and write it to the docs.

    python -m benchmarks                  # `make bench`: every benchmark, then docs/benchmarks/latest.md
    python -m benchmarks indexing         # only those named; the page says it was a partial run

Own processes: memory is freed between benchmarks, and torch's OpenMP thread teams from one benchmark
cannot slow another (see assistant/inference/engine.py). The page (docs/benchmarks.md includes it) carries the
date, the machine (CPU model and the features that matter, cores, memory, GPUs, Python and torch) and each
benchmark's project figure, baseline and ratio; commit it with the change it measures. A failed benchmark stops
the run and writes nothing.
"""

import subprocess
import sys
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

BENCHMARKS = ["prepare_csv", "train_throughput", "model_load", "indexing", "grounding", "retrieval_uk", "conversation",
              "generation", "evaluation", "load", "default_fine_tune"]
ROW = "BENCHMARK-ROW "
RESULTS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "latest.md"


class Row(BaseModel):
    """One benchmark's line of the table: what it measures, the project's figure, the baseline's, their ratio."""

    name: str
    project: str
    baseline: str
    ratio: str


def describe_machine(machine) -> str:
    """One line naming the machine (a training.base.hardware.Machine): the figures mean little without it."""
    memory = f", {machine.memory_bytes / 2**30:.0f} GiB" if machine.memory_bytes else ""
    features = ", ".join(machine.cpu_features) or "none of the listed features"
    gpus = ", ".join(gpu.name for gpu in machine.gpus) or ("Apple MPS" if machine.mps else "no GPU")
    return (f"{machine.cpu_name} ({machine.cpus} usable cores; {features}; torch kernels "
            f"{machine.torch_cpu_capability}){memory}, {gpus}; {machine.platform} {machine.architecture}, "
            f"Python {machine.python}, torch {machine.torch}")


def results_page(rows: list[Row], machine: str, started: datetime, finished: datetime, names: list[str]) -> str:
    """The Markdown docs/benchmarks/latest.md holds: when, where, which benchmarks, and the table."""
    minutes = (finished - started).total_seconds() / 60
    ran = "every benchmark" if names == BENCHMARKS else f"a partial run: {', '.join(names)} only"
    table = "".join(f"| {r.name} | {r.project} | {r.baseline} | {r.ratio} |\n" for r in rows)
    return (f"Written by `python -m benchmarks` ({ran}) on {started:%Y-%m-%d}, {started:%H:%M} to {finished:%H:%M} "
            f"({minutes:.0f} min).\n\nMachine: {machine}.\n\n"
            f"| benchmark | project | baseline | ratio |\n| --- | --- | --- | --- |\n{table}")


def run_one(name: str) -> Row | None:
    """One benchmark in its own process, its output passed through; its row, or None when it failed."""
    code = f"import json, benchmarks.{name} as b; print({ROW!r} + json.dumps(b.run()))"
    result = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, check=False)
    lines = result.stdout.splitlines()
    print("\n".join(line for line in lines if not line.startswith(ROW)), flush=True)
    if result.returncode != 0:
        print(f"{name} failed (exit {result.returncode})")
        return None
    return Row.model_validate_json(next(line for line in lines if line.startswith(ROW))[len(ROW):])


def main(argv: list[str]) -> int:
    from training.base.hardware import machine

    names = argv or BENCHMARKS
    if unknown := sorted(set(names) - set(BENCHMARKS)):
        print(f"No benchmark named {', '.join(unknown)}; there are: {', '.join(BENCHMARKS)}")
        return 2
    here = describe_machine(machine())
    print(f"machine: {here}")
    started, rows = datetime.now().astimezone(), []
    for name in names:
        print(f"\n== {name}", flush=True)
        if (row := run_one(name)) is None:
            return 1
        rows.append(row)
    print("\n| benchmark | project | baseline | ratio |\n| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row.name} | {row.project} | {row.baseline} | {row.ratio} |")
    RESULTS.write_text(results_page(rows, here, started, datetime.now().astimezone(), names), encoding="utf-8")
    print(f"\nwritten to {RESULTS.relative_to(RESULTS.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
