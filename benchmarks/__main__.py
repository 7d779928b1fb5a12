"""Run every benchmark in turn and print one summary table at the end."""

import importlib
import platform
import sys

import torch

BENCHMARKS = ["prepare_csv", "train_throughput", "model_load", "indexing", "grounding"]


def main() -> None:
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"Python {platform.python_version()}, torch {torch.__version__}")
    rows = []
    for name in BENCHMARKS:
        print(f"\n== {name}", flush=True)
        rows.append(importlib.import_module(f"benchmarks.{name}").run())
    print("\n| benchmark | project | baseline | ratio |\n| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['name']} | {row['project']} | {row['baseline']} | {row['ratio']} |")


if __name__ == "__main__":
    sys.exit(main())
