"""The locks install wherever a learner is: Linux x86_64 and aarch64, macOS 14+ on Apple silicon and Windows x86_64,
on CPython 3.11, 3.12 and 3.13. Checked offline from the locks themselves: a pylock.toml names every file of
every package, so for each platform and Python the packages whose markers hold must each have a wheel whose tags
that interpreter accepts (the tags pip and uv use, from `packaging.tags`). A Linux-only pin fails here."""

from __future__ import annotations

import functools
import re
import tomllib
from pathlib import Path
from urllib.parse import unquote

import pytest
from packaging import tags
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename

import make

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {"app": ROOT / "pylock.toml", "bench": ROOT / "benchmarks" / "pylock.toml", "cuda": ROOT / "pylock.cuda.toml"}
INPUTS = {"app": ROOT / "requirements.in", "bench": ROOT / "benchmarks" / "requirements.in",
          "cuda": ROOT / "requirements-cuda.in"}
PYTHONS = make.PYTHONS
# The oldest macOS the lock installs on: torch 2.13, onnxruntime 1.32 and bitsandbytes 0.50 ship macOS 14 arm64
# wheels only. glibc 2.28: torch's Linux wheels are manylinux_2_28.
MACOS = (14, 0)
GLIBC_MINOR = 28


def manylinux(arch: str) -> list[str]:
    return [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC_MINOR, 4, -1)] + [
        f"manylinux{legacy}_{arch}" for legacy in ("2014", "2010", "1")]


PLATFORMS = {
    "linux-x86_64": ({"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
                      "os_name": "posix"}, manylinux("x86_64")),
    "linux-aarch64": ({"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64",
                       "os_name": "posix"}, manylinux("aarch64")),
    "macos-arm64": ({"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64",
                     "os_name": "posix"}, list(tags.mac_platforms(MACOS, "arm64"))),
    "windows-x86_64": ({"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64",
                        "os_name": "nt"}, ["win_amd64"]),
}
# Pure-Python packages that publish only a source archive (chainlit's dependencies): uv builds them anywhere.
PURE_PYTHON_SDISTS = {"cuid", "literalai", "syncer"}


def environment(platform: str, python: tuple[int, int]) -> dict[str, str]:
    version = "%d.%d" % python
    return {**PLATFORMS[platform][0], "python_version": version, "python_full_version": version + ".0",
            "implementation_name": "cpython", "implementation_version": version + ".0",
            "platform_python_implementation": "CPython", "platform_release": "", "platform_version": ""}


def accepted_tags(platform: str, python: tuple[int, int]) -> set[tags.Tag]:
    platforms = PLATFORMS[platform][1]
    interpreter = "cp%d%d" % python
    return {*tags.cpython_tags(python, abis=[interpreter], platforms=platforms),
            *tags.compatible_tags(python, interpreter, platforms)}


@functools.cache
def lock_file(lock: str) -> dict:
    return tomllib.loads(LOCKS[lock].read_text(encoding="utf-8"))


def packages(lock: str) -> list[dict]:
    return lock_file(lock)["packages"]


def wheel_tags(package: dict) -> set[tags.Tag]:
    found = set()
    for wheel in package.get("wheels", []):
        found |= parse_wheel_filename(wheel.get("name") or unquote(wheel["url"].rsplit("/", 1)[1]))[3]
    return found


@functools.cache
def installed(lock: str, platform: str, python: tuple[int, int]) -> dict[str, dict]:
    """The lock's packages an install on this platform and Python takes: those whose markers hold."""
    env = environment(platform, python)
    return {package["name"]: package for package in packages(lock)
            if not package.get("marker") or Marker(package["marker"]).evaluate(env)}


TARGETS = [(lock, platform, python) for lock in LOCKS for platform in PLATFORMS for python in PYTHONS]


@pytest.mark.parametrize(("lock", "platform", "python"), TARGETS,
                         ids=[f"{lock}-{platform}-py{'%d.%d' % python}" for lock, platform, python in TARGETS])
def test_every_package_has_a_file_for_the_platform(lock, platform, python):
    accepted = accepted_tags(platform, python)
    chosen = installed(lock, platform, python)
    missing = sorted(f"{name}=={package['version']}" for name, package in chosen.items()
                     if not wheel_tags(package) & accepted
                     and not (name in PURE_PYTHON_SDISTS and "sdist" in package))
    assert not missing, (f"no wheel in {LOCKS[lock].name} for {platform}, CPython {'%d.%d' % python}: {missing}; "
                         f"put a marker on them in {INPUTS[lock].relative_to(ROOT)} and run `make lock`")


@pytest.mark.parametrize("lock", LOCKS)
def test_the_lock_is_for_every_python(lock):
    allowed = SpecifierSet(lock_file(lock)["requires-python"])  # uv: >=3.11
    assert all(allowed.contains("%d.%d.0" % python) for python in PYTHONS)


def test_platform_only_packages_sit_behind_markers():
    """The packages that exist only for some targets: cyllama (no Linux aarch64 wheel, no sdist) is left out there
    (the app runs on transformers), uvloop is left out on Windows, pywin32 is Windows-only."""
    assert "cyllama" not in installed("app", "linux-aarch64", (3, 12))
    assert "uvloop" not in installed("app", "windows-x86_64", (3, 12))
    for platform in ("linux-x86_64", "macos-arm64", "windows-x86_64"):
        assert installed("app", platform, (3, 12))["cyllama"]["version"] == "0.2.18"
    assert "datasets" in installed("app", "linux-aarch64", (3, 11))
    for platform in PLATFORMS:  # QLoRA wherever a CUDA torch can be: its lock installs only beside one
        assert "bitsandbytes" in installed("cuda", platform, (3, 11))
    assert "bitsandbytes" not in installed("app", "linux-x86_64", (3, 11))


def test_pure_python_sdists_are_still_sdist_only_and_pure():
    """The allowance above stays narrow: each named package is in the lock, without wheels, with a source archive."""
    locked = {package["name"]: package for package in packages("app")}
    for name in PURE_PYTHON_SDISTS:
        assert "sdist" in locked[name] and not locked[name].get("wheels"), name


def test_torch_and_its_cuda_libraries_stay_out():
    """make.py's pip installs torch (TORCH_SPEC) with the CUDA libraries of its build; uv must never bring one."""
    for lock in LOCKS:
        names = {package["name"] for package in packages(lock)}
        assert not names & set(make.TORCH_BUILD_PACKAGES), lock
        assert not any(re.match(r"(nvidia|cuda)-", name) for name in names), lock


@pytest.mark.parametrize("lock", LOCKS)
def test_the_lock_holds_what_its_requirements_ask(lock):
    """Every direct requirement is locked at a version it allows, wherever its marker holds: a requirements file
    edited without `make lock` fails here."""
    stale = []
    for line in INPUTS[lock].read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if name == "torch":
            continue
        for platform in PLATFORMS:
            for python in PYTHONS:
                if requirement.marker and not requirement.marker.evaluate(environment(platform, python)):
                    continue
                package = installed(lock, platform, python).get(name)
                if package is None or not requirement.specifier.contains(package["version"], prereleases=True):
                    stale.append(f"{line} ({platform}, {'%d.%d' % python})")
    assert not stale, f"{LOCKS[lock].relative_to(ROOT)} is out of date, run `make lock`: {stale[:5]}"


@pytest.mark.parametrize("lock", ["bench", "cuda"])
def test_the_other_locks_keep_the_app_versions(lock):
    app = {package["name"]: package["version"] for package in packages("app")}
    moved = [f"{package['name']} {app[package['name']]} -> {package['version']}" for package in packages(lock)
             if package["name"] in app and app[package["name"]] != package["version"]]
    assert not moved


def test_torch_is_the_release_the_lock_was_resolved_with(monkeypatch):
    """requirements.in pins torch for the resolution; make.py installs that release: the CPU build from PyTorch's
    index on Linux (PyPI's Linux wheels, aarch64 too, are CUDA builds), PyPI's on macOS and Windows."""
    monkeypatch.delenv("TORCH_SPEC", raising=False)
    version = make.torch_version()
    assert re.search(rf"^torch=={re.escape(version)}$", INPUTS["app"].read_text(encoding="utf-8"), re.MULTILINE)
    assert make.torch_spec("linux")[:3] == [f"torch=={version}+cpu", "--extra-index-url",
                                            "https://download.pytorch.org/whl/cpu"]
    assert make.torch_spec("darwin") == make.torch_spec("win32") == [f"torch=={version}"]
    monkeypatch.setenv("TORCH_SPEC", "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128")
    assert make.torch_spec("linux") == ["torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cu128"]
