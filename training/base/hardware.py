"""What this machine offers a trainer: CPU features, GPUs (CUDA) or Apple's MPS, memory, and the precision the
trainer picks here and why.

Precision is measured, never assumed from a flag: on a CPU, bf16 autocast is used only where a bf16 matrix
product is clearly faster than an fp32 one on this machine, right now (a Zen 4 with avx512_bf16 runs it about 5x
faster; an AVX2-only EPYC about 8x slower, so it keeps fp32). CUDA GPUs use bf16 where the GPU has it.

    python -m training.base.hardware        # this machine, as JSON (`tutor doctor` shows it with advice)
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

from training.base.common import device, usable_cpus

# CPU features that matter to training and generation, as Linux's /proc/cpuinfo names them.
FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma", "neon", "asimd", "bf16", "sve")
BF16_MARGIN = 1.3  # bf16 must be this much faster than fp32 to be chosen: a close call keeps fp32's exactness


class Gpu(BaseModel):
    """One CUDA GPU."""

    name: str
    memory_bytes: int
    compute_capability: str
    bf16: bool


class Precision(BaseModel):
    """What the trainer computes in on a device, and why, in words a learner can check."""

    dtype: str  # "bf16" or "fp32"
    reason: str
    bf16_speedup: float | None = None  # measured bf16 / fp32 throughput, where it was measured


class Machine(BaseModel):
    """The facts `tutor doctor` and the estimates start from."""

    python: str
    platform: str  # "linux", "darwin" or "win32"
    architecture: str  # "x86_64", "arm64", "aarch64", "AMD64"
    os_release: str
    cpu_name: str
    cpus: int  # the CPUs this process may use (affinity and cgroup quota)
    cpu_features: list[str]  # of FEATURES, those this CPU has
    torch_cpu_capability: str  # the kernels torch dispatches to here: "AVX512", "AVX2", "DEFAULT"...
    memory_bytes: int | None  # physical memory (the cgroup limit where lower)
    available_memory_bytes: int | None
    torch: str
    torch_cuda: str | None  # the CUDA version torch was built for; None for a CPU build
    gpus: list[Gpu]
    gpu_driver: str | None
    mps: bool  # Apple silicon's GPU, through torch's MPS backend
    device: str  # where the trainer runs: "cuda", "mps" or "cpu"


def cpu_flags() -> set[str]:
    """The CPU's feature flags: /proc/cpuinfo on Linux, sysctl on macOS; empty where neither answers."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    if sys.platform == "darwin":
        found = set()
        for key, flag in (("hw.optional.arm.FEAT_BF16", "bf16"), ("hw.optional.neon", "neon"),
                          ("hw.optional.avx2_0", "avx2"), ("hw.optional.avx512f", "avx512f")):
            if _sysctl(key) == "1":
                found.add(flag)
        return found
    return set()


def _sysctl(key: str) -> str | None:
    try:
        return subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return (_sysctl("machdep.cpu.brand_string") if sys.platform == "darwin" else None) or platform.processor() \
        or platform.machine()


def memory() -> tuple[int | None, int | None]:
    """(total, available) bytes of memory this process can use: the machine's, capped by a cgroup limit."""
    total = available = None
    try:
        import psutil

        virtual = psutil.virtual_memory()
        total, available = virtual.total, virtual.available
    except ImportError:  # psutil comes with the app's lock; the numbers are optional without it
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max" and total is not None:
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            total, available = min(total, int(limit)), min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return total, available


def gpus() -> list[Gpu]:
    import torch

    if not torch.cuda.is_available():
        return []
    found = []
    for index in range(torch.cuda.device_count()):
        properties = torch.cuda.get_device_properties(index)
        found.append(Gpu(name=properties.name, memory_bytes=properties.total_memory,
                         compute_capability=f"{properties.major}.{properties.minor}",
                         bf16=properties.major >= 8))  # Ampere and later compute in bf16 natively
    return found


def gpu_driver() -> str | None:
    """The NVIDIA driver's version, from nvidia-smi when it is installed (it comes with the driver)."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        found = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return found[0] if found else None


def mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


@lru_cache(maxsize=1)
def machine() -> Machine:
    """This machine, read once per process (torch is imported here: call it off the event loop)."""
    import torch

    total, available = memory()
    return Machine(
        python=platform.python_version(), platform=sys.platform, architecture=platform.machine(),
        os_release=platform.mac_ver()[0] if sys.platform == "darwin" else platform.release(),
        cpu_name=cpu_name(), cpus=usable_cpus(), cpu_features=sorted(cpu_flags() & set(FEATURES)),
        torch_cpu_capability=torch.backends.cpu.get_cpu_capability(), memory_bytes=total,
        available_memory_bytes=available, torch=torch.__version__.split("+")[0], torch_cuda=torch.version.cuda,
        gpus=gpus(), gpu_driver=gpu_driver(), mps=mps_available(), device=device())


@lru_cache(maxsize=1)
def bf16_speedup(size: int = 512, rounds: int = 5) -> float:
    """bf16 matrix-product throughput over fp32's on this CPU, measured once per process: each warmed up first
    (oneDNN compiles its kernels on first use: a cold bf16 product on an AMX CPU took 10x a warm one), then
    interleaved, best of `rounds`, so that another process's burst can't decide a whole run's precision."""
    import torch

    a = torch.randn(size, size)
    inputs = {dtype: a.to(dtype) for dtype in (torch.bfloat16, torch.float32)}
    for x in inputs.values():
        x @ x
    best = dict.fromkeys(inputs, float("inf"))
    for round_ in range(rounds):
        for dtype, x in inputs.items():
            started = time.perf_counter()
            for _ in range(3):
                x @ x
            best[dtype] = min(best[dtype], (time.perf_counter() - started) / 3)
        if round_ and best[torch.bfloat16] > 4 * best[torch.float32]:  # clearly slower (emulated): stop early
            break
    return best[torch.float32] / best[torch.bfloat16]


def precision(on: str | None = None, requested: str = "auto") -> Precision:
    """The trainer's precision on a device ("cuda", "mps", "cpu"; default: where it trains) for a requested
    "auto", "yes" or "no", with the reason."""
    on = on or device()
    if requested != "auto":
        return Precision(dtype="bf16" if requested == "yes" else "fp32", reason=f"bf16={requested} was asked for")
    if on == "cuda":
        import torch

        if torch.cuda.is_bf16_supported():
            return Precision(dtype="bf16", reason="the GPU computes in bf16 natively")
        return Precision(dtype="fp32", reason="this GPU has no native bf16 (it is older than Ampere)")
    if on == "mps":
        return Precision(dtype="fp32", reason="Apple's GPU trains in fp32 here (bf16 autocast on MPS is untested)")
    speedup = bf16_speedup()
    if speedup >= BF16_MARGIN:
        return Precision(dtype="bf16", bf16_speedup=round(speedup, 2),
                         reason=f"a bf16 matrix product measured {speedup:.1f}x as fast as fp32 here")
    return Precision(dtype="fp32", bf16_speedup=round(speedup, 2),
                     reason=f"a bf16 matrix product measured {speedup:.2f}x fp32's speed here, so fp32 is kept")


def peak_memory(on: str = "cpu") -> dict[str, int]:
    """This process's peak memory so far: resident set (`peak_memory_bytes`), and on CUDA the most the allocator
    held (`peak_gpu_memory_bytes`)."""
    found = {}
    if sys.platform.startswith("linux"):  # the high-water mark of this program's memory, from the kernel. Not
        # ru_maxrss: a process started by vfork and exec inherits its parent's peak there (pytest's, the app's).
        status = Path("/proc/self/status").read_text()
        found["peak_memory_bytes"] = int(status.split("VmHWM:")[1].split()[0]) * 1024
    elif sys.platform == "darwin":
        import resource

        found["peak_memory_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS
    else:  # Windows
        import psutil

        found["peak_memory_bytes"] = psutil.Process().memory_info().peak_wset
    if on == "cuda":
        import torch

        found["peak_gpu_memory_bytes"] = torch.cuda.max_memory_reserved()
    return found


def steady_heap() -> None:
    """Blocks of 2 MiB and more straight from the system and back at once: glibc otherwise raises its mmap threshold
    after the first large free, then serves a step's activations from a heap it can't shrink, and a bf16 run of the
    embedded model at batch 8 peaked at 2.7 or 4.1 GB at random; with the threshold fixed, 2.9 GB every run, at the
    same speed (measured on a 2-core Xeon; 4 MiB still varied at batch 4, 1 MiB was slower). Capping glibc's arenas
    at one steadied it too, but cost a third of the training speed."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6").mallopt(-3, 2 << 20)  # M_MMAP_THRESHOLD
        except (OSError, AttributeError):  # not glibc
            pass


def release_memory() -> None:
    """Give memory freed by Python and torch back to the system now (glibc keeps freed heap pages otherwise)."""
    import gc

    gc.collect()
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl): nothing to trim
            pass


def qlora_missing() -> str | None:
    """What 4-bit QLoRA lacks here: "cuda" (no NVIDIA GPU), "bitsandbytes" (not installed: the install adds it
    beside a CUDA build of torch), or None where it can run."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        return "cuda"
    return None if importlib.util.find_spec("bitsandbytes") else "bitsandbytes"


if __name__ == "__main__":
    from training.base.common import configure_process

    configure_process()
    report = machine().model_dump()
    report["precision"] = precision().model_dump()
    print(json.dumps(report, indent=2))
