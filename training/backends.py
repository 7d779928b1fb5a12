"""Training backends: one small registry behind one interface, in the shape of simonw/llm's model plugins
(the chat side's twin is assistant/backends.py). The built-in backends, local LoRA (training/jobs.py) and
OpenAI or any OpenAI-compatible fine-tuning API (training/openai_jobs.py), register the same way a test's
fake does:

    @register_training_backend
    class MyService(TrainingBackend):
        name, label = "mine", "My service"
        Config = MyJobConfig                              # pydantic: the job's settings, checked on the fields
        def start(self, config, registry, owner): ...     # -> the run record
        async def follow(self, run, registry, poll): ...  # -> the run's events, as in events.jsonl
        def cancel(self, run, registry): ...

    backend = training_backend("mine", settings)
    run = backend.start(backend.config({"train_file": "train.jsonl", "epochs": 2}), registry, owner)
    async for event in backend_of(run, settings).follow(run, registry): ...

A run records its backend's name, so whoever finds it later (another chat, the CLI after a restart) follows,
cancels and resumes it through the same backend.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import ClassVar

from pydantic import BaseModel, ValidationError

from training.config import ConfigError, explain
from training.errors import TutorError
from training.registry import ACTIVE, Registry
from training.settings import Settings

# Modules whose backends are built in; imported on first use (by name: they import this module themselves).
BUILT_IN = ("training.jobs", "training.openai_jobs", "training.azure_jobs")
_backends: dict[str, type[TrainingBackend]] = {}


class TrainingBackend(ABC):
    """Where a fine-tuning job runs. One instance per use, holding the settings it was made with."""

    name: ClassVar[str]
    label: ClassVar[str]
    Config: ClassVar[type[BaseModel]]
    chat_backend: ClassVar[str] = "local"  # the chat backend (assistant/backends.py) its models answer through

    def __init__(self, settings: Settings):
        self.settings = settings

    def unavailable_reason(self) -> str | None:
        """Why this backend can't be used with these settings (say, a missing key), or None."""
        return None

    def config(self, values: dict) -> BaseModel:
        """The job's settings from neutral names (the CLI's and the chat's): the ones this backend knows are
        taken, the others ignored; a bad value is refused with its field's name."""
        try:
            return self.Config(**{key: value for key, value in values.items()
                                  if key in self.Config.model_fields and value is not None})
        except ValidationError as exc:
            raise ConfigError(explain(f"Invalid {self.label} settings", exc)) from None

    @abstractmethod
    def start(self, config: BaseModel, registry: Registry, owner: str) -> dict:
        """Check the config, create the run and start (or queue) the job; the run record."""

    @abstractmethod
    def follow(self, run: dict, registry: Registry, poll: float = 0.5) -> AsyncIterator[dict]:
        """The run's events until it ends (start, step, eval, checkpoint, status, message, done, cancelled, error)."""

    @abstractmethod
    def cancel(self, run: dict, registry: Registry) -> dict:
        """Stop the job (or take it out of the queue); the run record."""

    def deployed(self, run: dict, registry: Registry, name: str) -> dict:
        """Record where the learner deployed a finished run's model, for backends whose models must be deployed."""
        raise TutorError(f"A {self.label} model needs no deployment: it answers as soon as its run succeeds.")

    def baseline_model(self, model: dict) -> str:
        """What the baseline of a comparison asks for: the registry model's base, as this backend's chat names it."""
        return model["base_model"]

    def resume(self, run: dict, registry: Registry) -> dict:
        """Continue a stopped run. A job on a provider can't be restarted: one still running is followed again."""
        if run["status"] in ACTIVE:
            return run
        raise TutorError(f"Run {run['id']} is {run['status']}: a {self.label} job can't be resumed. Start a new one.")


def register_training_backend(cls: type[TrainingBackend]) -> type[TrainingBackend]:
    _backends[cls.name] = cls
    return cls


def _load_built_in() -> None:
    for module in BUILT_IN:
        importlib.import_module(module)


def training_backend_names() -> list[str]:
    _load_built_in()
    return list(_backends)


def training_backend(name: str, settings: Settings) -> TrainingBackend:
    _load_built_in()
    if name not in _backends:
        raise TutorError(f"Unknown training backend '{name}'. Choose one of: {', '.join(_backends)}.")
    return _backends[name](settings)


def backend_of(run: dict, settings: Settings) -> TrainingBackend:
    """The backend a run was started with."""
    return training_backend(run["backend"], settings)
