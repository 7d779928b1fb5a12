"""The layers hold: `training/` (settings, errors, device, models, API clients, jobs) never imports `assistant/`
(the chat side), no module imports another that imports it back, and reading settings changes nothing in the
process: the offline environment is set by `configure_process()`, called by each entry point."""

import ast
import os
import subprocess
import sys

from training.settings import PROJECT_ROOT

PACKAGES = ("assistant", "training")


def imports() -> dict[str, set[str]]:
    """Every module of both packages -> the names it imports from either package, at the top or in a function
    (a name may be a module, or a function imported from one)."""
    graph = {}
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).glob("*.py")):
            name = f"{package}.{path.stem}".removesuffix(".__init__")
            found = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module)
                    found.update(f"{node.module}.{alias.name}" for alias in node.names)  # from training import jobs
            graph[name] = {m for m in found if m.split(".")[0] in PACKAGES and m != name}
    return graph


def test_training_never_imports_the_chat_side():
    crossing = {name: sorted(t for t in targets if t.startswith("assistant"))
                for name, targets in imports().items() if name.startswith("training")}
    assert not {name: targets for name, targets in crossing.items() if targets}


def test_no_module_imports_one_that_imports_it_back():
    found = imports()
    graph = {name: {target for target in targets if target in found} for name, targets in found.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            for target in graph.get(stack.pop(), ()):
                if target == goal:
                    return True
                if target not in seen:
                    seen.add(target)
                    stack.append(target)
        return False

    assert not [(a, b) for a, targets in graph.items() for b in targets if reaches(b, a)]


def test_reading_settings_has_no_side_effects():
    configured = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ANONYMIZED_TELEMETRY", "TOKENIZERS_PARALLELISM",
                  "OMP_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in configured}
    code = ("import os, json; before = dict(os.environ); from training.settings import get_settings; get_settings(); "
            "import training.models, training.clients, training.jobs; "
            "print(json.dumps(sorted(set(os.environ.items()) ^ set(before.items()))))")
    changed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=PROJECT_ROOT)
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == "[]"
    after = subprocess.run([sys.executable, "-c", "from training.common import configure_process; "
                                 "configure_process(); import os; print(os.environ['HF_HUB_OFFLINE'])"],
                                capture_output=True, text=True, env=env, cwd=PROJECT_ROOT)
    assert after.stdout.strip() == "1"
