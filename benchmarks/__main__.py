"""Run every benchmark, each in its own process, and print one summary table at the end.

Own processes: memory is freed between benchmarks, and torch's OpenMP thread teams from one benchmark
cannot slow another (see assistant/inference/engine.py).
"""

import json
import platform
import subprocess
import sys

import torch

BENCHMARKS = ["prepare_csv", "train_throughput", "model_load", "indexing", "grounding", "retrieval_uk", "conversation", "generation", "evaluation",
              "load", "default_fine_tune"]
ROW = "BENCHMARK-ROW "


def main() -> int:
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"Python {platform.python_version()}, torch {torch.__version__}")
    rows = []
    for name in BENCHMARKS:
        print(f"\n== {name}", flush=True)
        code = f"import json, benchmarks.{name} as b; print({ROW!r} + json.dumps(b.run()))"
        result = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        lines = result.stdout.splitlines()
        print("\n".join(line for line in lines if not line.startswith(ROW)), flush=True)
        if result.returncode != 0:
            print(f"{name} failed (exit {result.returncode})")
            return result.returncode
        rows.append(json.loads(next(line for line in lines if line.startswith(ROW))[len(ROW):]))
    print("\n| benchmark | project | baseline | ratio |\n| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['name']} | {row['project']} | {row['baseline']} | {row['ratio']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
