"""The documentation keeps up with the code: the README stays short and its links resolve, the architecture page
names every layer, the generated references hold every `tutor` command and every setting, every file or module
the docs name exists, and `python -m benchmarks` writes a dated, machine-named results page. The references are
built by calling docs/hooks.py's generators, as MkDocs does on each build (`make test` runs the strict build)."""

import importlib.util
import re
from datetime import datetime

import pytest
import typer

from tests.test_layers import LAYERS
from training.base.settings import PROJECT_ROOT, Settings, env_name

DOCS = PROJECT_ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md")) + [PROJECT_ROOT / "README.md", PROJECT_ROOT / "SECURITY.md"]
TOP_FOLDERS = ("assistant", "training", "tests", "benchmarks", "knowledge", "public", "docs")


@pytest.fixture(scope="module")
def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_is_short_and_its_links_resolve():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    targets = re.findall(r"\]\(([^)\s]+)\)", readme) + re.findall(r'src="([^"]+)"', readme)
    relative = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert {"docs/index.md", "docs/reference/cli.md", "SECURITY.md", "public/tutor.svg"} <= set(relative)
    assert [t for t in relative if not (PROJECT_ROOT / t).exists()] == []


def test_the_architecture_page_names_every_layer():
    page = (DOCS / "architecture.md").read_text(encoding="utf-8")
    assert [layer for layer in LAYERS if f"`{layer}`" not in page] == []


def walk(command, path=("tutor",)):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk(sub, path + (name,))


def test_every_tutor_command_and_option_is_in_the_cli_reference(hooks):
    from assistant.cli.main import app

    reference = hooks.cli_reference()
    commands = list(walk(typer.main.get_command(app)))
    assert {"tutor train", "tutor jobs resume", "tutor users transfer", "tutor models download"} <= {
        " ".join(path) for path, _ in commands}
    missing = [" ".join(path) for path, _ in commands if f"`{' '.join(path)}`" not in reference]
    assert missing == []
    options = [(" ".join(path), opt) for path, command in commands for param in command.params
               for opt in param.opts if opt.startswith("-")]
    assert ("tutor train", "--epochs") in options and ("tutor models", "--train") in options
    sections = dict(re.findall(r"^#+ `([^`]+)`\n(.*?)(?=^#+ `|\Z)", reference, re.MULTILINE | re.DOTALL))
    assert [(name, opt) for name, opt in options
            if not re.search(rf"^\| `[^`]*(?<![\w-]){re.escape(opt)}(?![\w-])", sections[name], re.MULTILINE)] == []


def test_every_setting_is_in_the_configuration_reference_with_a_description(hooks):
    rows = [line.split(" | ") for line in hooks.settings_reference().splitlines() if line.startswith("| `")]
    described = {}
    for variables, default, _allowed, words in rows:
        for variable, shown in zip(variables.strip("| ").split("<br>"), default.split("<br>")):
            described[variable.strip("`")] = (shown.strip("`"), words.strip(" |"))
    for field, info in Settings.model_fields.items():
        default, words = described[env_name(field)]
        assert words, field
        assert default == ("unset" if info.default in (None, []) else hooks.default_of(info)), field
    assert described["TUTOR_DATA_DIR"][0] == ".tutor-data" and described["TUTOR_KNOWLEDGE_DIR"][0] == "knowledge"
    assert "SQLite" in described["DATABASE_URL"][1]


def named_paths(text: str) -> set[str]:
    """Files and folders of the checkout named in inline code: `assistant/chat/app.py`, `tests/x.py::test_y`."""
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL))
    found = set()
    for span in spans:
        for word in span.split():
            word = word.split("::")[0].rstrip(",.;:)")
            if re.match(rf"^({'|'.join(TOP_FOLDERS)})/[\w./-]*$", word) and "<" not in word:
                found.add(word)
    return found


def named_modules(text: str) -> set[str]:
    """Dotted names of the packages' modules in inline code: `training.local.lora`, `assistant.cli.main:app`."""
    spans = re.findall(r"`([^`\n]+)`", text)
    return {m for span in spans for m in re.findall(r"\b((?:assistant|training)(?:\.\w+)+)", span)}


def exists_as_module(dotted: str) -> bool:
    """A module or package, or a name in a module (`training.local.batches.tokenize`)."""
    path = PROJECT_ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file() or path.parent.with_suffix(
        ".py").is_file()


def named_tests(text: str) -> set[tuple[str, str]]:
    """Tests named in inline code as `tests/test_x.py::test_y` (SECURITY.md's threat model cites them)."""
    return set(re.findall(r"(tests/[\w/]+\.py)::(test_\w+)", text))


def test_every_file_and_module_the_docs_name_exists():
    texts = {page.relative_to(PROJECT_ROOT).as_posix(): page.read_text(encoding="utf-8") for page in PAGES}
    assert "assistant/chat/app.py" in named_paths(texts["docs/architecture.md"])
    assert "training.local.lora" in named_modules(texts["docs/fine-tuning.md"])
    assert not exists_as_module("training.lora") and exists_as_module("training.local.batches.tokenize")
    assert len(named_tests(texts["SECURITY.md"])) >= 10
    stale = [(page, path) for page, text in texts.items() for path in named_paths(text)
             if not (PROJECT_ROOT / path).exists()]
    stale += [(page, module) for page, text in texts.items() for module in named_modules(text)
              if not exists_as_module(module)]
    stale += [(page, f"{path}::{test}") for page, text in texts.items() for path, test in named_tests(text)
              if f"def {test}(" not in (PROJECT_ROOT / path).read_text(encoding="utf-8")]
    assert stale == []


def test_the_hooks_include_files_and_the_library_never_imports_them(hooks):
    security = (PROJECT_ROOT / "SECURITY.md").read_text(encoding="utf-8")
    assert hooks.expand("# Security page\n<!-- include SECURITY.md -->\n") == f"# Security page\n{security}\n"
    assert "<!-- include SECURITY.md -->" in (DOCS / "security.md").read_text(encoding="utf-8")
    assert "<!-- include docs/benchmarks/latest.md -->" in (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    assert "| `tutor serve`" not in hooks.expand("<!-- cli-reference -->") and "`tutor serve`" in hooks.expand(
        "<!-- cli-reference -->")
    sources = [p for folder in ("assistant", "training") for p in (PROJECT_ROOT / folder).rglob("*.py")]
    assert [p for p in sources if re.search(r"\bdocs\.hooks\b|\bimport hooks\b", p.read_text(encoding="utf-8"))] == []


def test_the_benchmark_results_page_is_dated_and_names_its_machine():
    from benchmarks.__main__ import BENCHMARKS, Row, describe_machine, results_page
    from training.base.hardware import Gpu, Machine

    machine = Machine(python="3.11.7", platform="linux", architecture="x86_64", os_release="6.1", cpu_name="AMD EPYC",
                      cpus=2, cpu_features=["avx2", "fma"], torch_cpu_capability="AVX2", memory_bytes=24 * 2**30,
                      available_memory_bytes=None, torch="2.13.0", torch_cuda=None,
                      gpus=[Gpu(name="NVIDIA H100", memory_bytes=80 * 2**30, compute_capability="9.0", bf16=True)],
                      gpu_driver=None, mps=False, device="cuda")
    here = describe_machine(machine)
    assert here.startswith("AMD EPYC (2 usable cores; avx2, fma; torch kernels AVX2), 24 GiB, NVIDIA H100")
    rows = [Row(name="knowledge index at start-up (s)", project="0.015", baseline="5.57", ratio="377x faster")]
    started, finished = datetime(2026, 12, 8, 23, 45), datetime(2026, 12, 9, 0, 3)
    page = results_page(rows, here, started, finished, BENCHMARKS)
    assert "(every benchmark) on 2026-12-08, 23:45 to 00:03 (18 min)" in page and f"Machine: {here}." in page
    assert page.endswith("| knowledge index at start-up (s) | 0.015 | 5.57 | 377x faster |\n")
    assert "a partial run: indexing only" in results_page(rows, here, started, finished, ["indexing"])
