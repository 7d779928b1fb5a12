"""Benchmarks: `make bench` (= `python -m benchmarks`) runs each one; each prints the project's
figure, a baseline measured in the same run, and their ratio. Run one alone with
`python -m benchmarks.grounding` (or model_load, indexing).

The benchmarks are entry points: importing this package configures the process (offline, threads) first."""

from training.base.common import configure_process

configure_process()
