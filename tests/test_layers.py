"""The layers hold, and this file states them: each subpackage may import its own modules and those of the layers
below it, never one above. `training/` (the trainer and everything a run needs) never imports `assistant/` (the
chat, the tutor, the server and the CLI); no module imports another that imports it back; importing a helper loads
torch only where the helper needs it; and reading settings changes nothing in the process: the offline
environment is set by `configure_process()`, called by each entry point."""

import ast
import os
import subprocess
import sys

from training.base.settings import PROJECT_ROOT

PACKAGES = ("assistant", "training")
# Lowest first: a subpackage imports only from itself and those before it. `assistant` alone is the chat side's
# own top level (its texts, assistant/i18n.py).
LAYERS = (
    "training",             # the package's own docstring
    "training.base",        # settings, errors, clients, registry, models on disk, machine facts, quotas
    "training.jobs",        # a run's events and the training queue
    "training.data",        # recipes -> chat JSONL, validation, token counts
    "training.models",      # Hub downloads, GGUF export
    "training.evaluation",  # metrics, held-out evaluation, diagnosis, charts
    "training.local",       # the local LoRA trainer, its estimate and its catalog of base models
    "training.backends",    # training backends: local, OpenAI-compatible, Azure
    "assistant",            # the chat side's texts
    "assistant.web",        # accounts, logins, origins, body limits, chat history, uploads
    "assistant.inference",  # the generation engine, its llama.cpp and transformers runtimes, chat backends
    "assistant.retrieval",  # knowledge base, embeddings, Chroma, lexical search, grounding checks
    "assistant.tutor",      # the tutor, the conversation, the check, quizzes, explanations, the A/B contenders
    "assistant.server",     # `tutor serve`: the OpenAI-compatible HTTP server
    "assistant.chat",       # the Chainlit app and its flows
    "assistant.cli",        # the `tutor` command
)
# Modules that load torch when imported: the trainer's own. Everything else imports it inside the function that
# needs it, so the chat, the server and the CLI start without it.
LOADS_TORCH = {"training.local.lora", "training.local.lora_model"}
HEAVY = ("torch", "peft", "accelerate")


def modules() -> dict[str, ast.Module]:
    found = {}
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = ast.parse(path.read_text())
    return found


def _imported(nodes) -> set[str]:
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # from training.jobs import queue
    return found


def imports(top_level_only: bool = False) -> dict[str, set[str]]:
    """Every module of both packages -> the names it imports (a name may be a module, or a function imported from
    one): at the top, or also in its functions."""
    graph = {}
    for name, tree in modules().items():
        nodes = tree.body if top_level_only else ast.walk(tree)
        found = _imported(nodes)
        graph[name] = {m for m in found if m.split(".")[0] in PACKAGES + HEAVY and m != name}
    return graph


def layer_of(module: str) -> int:
    matches = [i for i, layer in enumerate(LAYERS) if module == layer or module.startswith(layer + ".")]
    return max(matches, key=lambda i: len(LAYERS[i]))


def test_every_module_belongs_to_a_layer():
    assert all(layer_of(name) is not None for name in modules())
    subpackages = {".".join(name.split(".")[:2]) for name in modules() if name.count(".") >= 2}
    assert subpackages <= set(LAYERS)


def test_no_layer_imports_one_above_it():
    upward = {name: sorted(t for t in targets if t.split(".")[0] in PACKAGES and layer_of(t) > layer_of(name))
              for name, targets in imports().items()}
    assert not {name: targets for name, targets in upward.items() if targets}


def test_training_never_imports_the_chat_side():
    crossing = {name: sorted(t for t in targets if t.startswith("assistant"))
                for name, targets in imports().items() if name.startswith("training")}
    assert not {name: targets for name, targets in crossing.items() if targets}


def test_only_the_trainer_loads_torch_when_imported():
    graph = {name: targets for name, targets in imports(top_level_only=True).items()}

    def loads(name: str, seen: set[str]) -> bool:
        for target in graph.get(name, ()):
            if target.split(".")[0] in HEAVY:
                return True
            module = target if target in graph else target.rpartition(".")[0]
            if module in graph and module not in seen:
                seen.add(module)
                if loads(module, seen):
                    return True
        return False

    assert {name for name in graph if loads(name, {name})} == LOADS_TORCH
    code = ("import sys; import training.backends.local, training.local.token_view, training.local.estimate, "
            "assistant.server.app, assistant.chat.training_flow; print('torch' in sys.modules)")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert loaded.stdout.strip() == "False", loaded.stderr[-2000:]


def test_no_module_imports_one_that_imports_it_back():
    found = {name: {t for t in targets if t.split(".")[0] in PACKAGES} for name, targets in imports().items()}
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
    code = ("import os, json; before = dict(os.environ); from training.base.settings import get_settings; get_settings(); "
            "import training.base.models, training.base.clients, training.backends.local; "
            "print(json.dumps(sorted(set(os.environ.items()) ^ set(before.items()))))")
    changed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=PROJECT_ROOT)
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == "[]"
    after = subprocess.run([sys.executable, "-c", "from training.base.common import configure_process; "
                                 "configure_process(); import os; print(os.environ['HF_HUB_OFFLINE'])"],
                                capture_output=True, text=True, env=env, cwd=PROJECT_ROOT)
    assert after.stdout.strip() == "1"
