"""Process set-up and device choice, shared by every entry point: the app, `tutor`, the trainer, `tutor serve`,
the benchmarks and the tests.

    from training.base.common import configure_process, device
    configure_process()   # first thing in an entry point, before transformers or huggingface_hub load
    device()              # "cuda" when a GPU is visible, "mps" on Apple silicon, else "cpu"
    write_atomic(path, b"...")  # a small file whole or not at all, safe when two processes write it at once

Nothing here runs at import: each entry point calls `configure_process()` itself.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import stat
import sys
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write a small file whole or not at all: a staging file of its own (two writers never share one), then a
    rename over the target."""
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def usable_cpus() -> int:
    """CPUs this process may really use: affinity, capped by a cgroup v2 quota (containers often report
    the host's core count, and torch then starts dozens of spinning threads on two real cores)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cpus


def package_folder(module: str) -> Path | None:
    """Where an installed data package (the embedded model's, the embedding model's) keeps its files; None when
    it is not installed. The packages are located, never imported."""
    spec = importlib.util.find_spec(module)
    return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None


def configure_process() -> None:
    """Offline, private and sized to this machine: nothing may reach a model hub at run time, what the process
    creates is its owner's only (umask 077: folders 0700, files 0600, the trainers it starts included), and torch
    uses the CPUs this process really has. A user's explicit choice (an environment variable already set) is kept.
    Idempotent."""
    os.umask(0o077)
    for name, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
                        "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": str(usable_cpus())}.items():
        os.environ.setdefault(name, value)
    if "torch" in sys.modules:  # too late for OMP_NUM_THREADS to be read at start-up: apply it directly
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def make_private(folder: Path) -> int:
    """Create `folder` owner-only, or tighten an existing one and everything in it (0700 folders, 0600 files);
    returns how many entries were tightened (and says so in the log)."""
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    tightened = 0
    for root, _, files in os.walk(folder):
        for path, mode in [(Path(root), 0o700), *((Path(root) / name, 0o600) for name in files)]:
            try:
                current = path.lstat().st_mode
                if not stat.S_ISLNK(current) and current & 0o077:
                    path.chmod(stat.S_IMODE(current) & mode)
                    tightened += 1
            except OSError:
                continue
    if tightened:
        logging.getLogger(__name__).warning("Made %d entries of %s readable by their owner only", tightened, folder)
    return tightened


def device() -> str:
    """Where models train and run: the first CUDA GPU when there is one, else Apple silicon's GPU (MPS), else
    the CPU."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "mps" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else "cpu"


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
