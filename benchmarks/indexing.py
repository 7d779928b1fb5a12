"""Start-up indexing: the incremental sync when nothing changed vs re-embedding knowledge/ from scratch.

    python -m benchmarks.indexing
"""

import tempfile
import time
from pathlib import Path

from assistant.retrieval.embeddings import encode
from assistant.retrieval.knowledge import KnowledgeBase
from training.base.settings import load_settings


def run() -> dict:
    encode(["warm up the encoder"])  # its one-time load is not what is measured
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(_env_file=None, data_dir=Path(tmp))
        started = time.perf_counter()
        report = KnowledgeBase(settings).sync()
        full = time.perf_counter() - started
        started = time.perf_counter()
        again = KnowledgeBase(settings).sync()
        unchanged = time.perf_counter() - started
    assert again.chunks_embedded == 0
    print(f"full index: {report.chunks_embedded} chunks in {full:.2f} s; unchanged start-up: {unchanged:.3f} s, 0 embedded")
    return {"name": "knowledge index at start-up (s)", "project": f"{unchanged:.3f} (incremental, unchanged)",
            "baseline": f"{full:.2f} (re-embed {report.chunks_embedded} chunks)", "ratio": f"{full / unchanged:.0f}x faster"}


if __name__ == "__main__":
    print(run())
