"""Training backends: one small registry behind one interface, in the shape of simonw/llm's model plugins
(the chat side's twin is assistant/inference/backends.py). The built-in backends, local LoRA
(training/backends/local.py), OpenAI or any OpenAI-compatible fine-tuning API (training/backends/openai_api.py)
and Azure OpenAI (training/backends/azure.py), register the same way a test's fake does; the CLI, the chat (one
button per available backend, its settings form, its cost estimate) and `tutor serve` reach them only through
here:

    @register_training_backend
    class MyService(TrainingBackend):
        name, label = "mine", "My service"
        Config = MyJobConfig                              # pydantic: the job's settings, checked on the fields
                                                          # (learner_fields: those a learner may set in chat)
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

from training.base.errors import TutorError
from training.base.phrases import Phrases
from training.base.records import Run
from training.base.registry import ACTIVE, Registry
from training.base.settings import Settings
from training.local.config import SETTINGS, ConfigError, explain, field_names

# Modules whose backends are built in; imported on first use (by name: they import this module themselves).
BUILT_IN = ("training.backends.local", "training.backends.openai_api", "training.backends.azure")
OFFERED = ("local", "azure", "openai")
_backends: dict[str, type[TrainingBackend]] = {}
PHRASES = Phrases("backends")


class TrainingBackend(ABC):
    """Where a fine-tuning job runs. One instance per use, holding the settings it was made with and the language
    its texts for the learner are in ("en" or "uk")."""

    name: ClassVar[str]
    label: ClassVar[str]
    Config: ClassVar[type[BaseModel]]
    chat_backend: ClassVar[str] = "local"  # the chat backend its models answer through (inference/backends.py)

    @property
    def button(self) -> str:
        return PHRASES("button", self.language, label=self.label)

    def __init__(self, settings: Settings, language: str = "en"):
        self.settings, self.language = settings, language

    def unavailable_reason(self) -> str | None:
        """Why this backend can't be used with these settings (say, a missing key), or None."""
        return None

    def config(self, values: dict) -> BaseModel:
        """The job's settings from the CLI's or a caller's values, by field name or short name (`lr`, `epochs`):
        the ones this backend knows are taken, the others ignored; a bad value is refused with its field's name."""
        known = field_names(self.Config)
        return self._validated({key: value for key, value in values.items() if key in known and value is not None})

    def _validated(self, values: dict) -> BaseModel:
        invalid = PHRASES("invalid", self.language, label=self.label)
        try:
            return self.Config(**values)
        except ValidationError as exc:
            raise ConfigError(explain(invalid, exc, self.language), exc.errors()) from None
        except ConfigError as exc:  # the Config's own, in English: said again in the learner's language
            if self.language == "en" or not exc.problems:
                raise
            raise ConfigError(explain(invalid, exc.problems, self.language), exc.problems) from None

    # --- what a learner sets in chat ------------------------------------------------------------------

    def learner_settings(self, values: dict, files: dict) -> tuple[BaseModel, dict]:
        """The config from a learner's settings (the form, `/train key=value`) and a dataset's files, and those
        settings typed, by field name (what a button carries). Only the Config's learner_fields may be set: a
        path, a folder or an unknown name is refused by name."""
        learner_fields = getattr(self.Config, "learner_fields", ())
        allowed = {alias: field for alias, field in field_names(self.Config).items() if field in learner_fields}
        if unknown := [key for key in values if key not in allowed]:
            raise ConfigError(PHRASES("unknown_setting", self.language, name=unknown[0],
                                      allowed=", ".join(sorted(allowed))))
        config = self._validated({**{allowed[key]: value for key, value in values.items()},
                                  "train_file": files.get("train", ""), "validation_file": files.get("validation")})
        chosen = {allowed[key]: getattr(config, allowed[key]) for key in values}
        return config, {key: value for key, value in chosen.items() if value is not None}

    def form(self) -> list[tuple[str, object, str]]:
        """The learner's fields as (name, default, one-line explanation), for the chat's settings form; the
        explanation from the catalog in the backend's language where the Config names its texts, else its own."""
        fields, texts = self.Config.model_fields, getattr(self.Config, "texts", None)
        return [(name, fields[name].default, SETTINGS(f"{texts}.{name}", self.language) if texts
                 else fields[name].description or "") for name in getattr(self.Config, "learner_fields", ())]

    def check(self, config: BaseModel) -> BaseModel:
        """What the fields alone can't tell (the files exist and are valid, say); raises ConfigError."""
        return config.check() if hasattr(config, "check") else config

    def describe(self, config: BaseModel) -> str:
        """The learner's settings in one line."""
        return ", ".join(f"{name} **{getattr(config, name)}**" for name in getattr(self.Config, "learner_fields", ()))

    def describe_result(self, run: Run) -> str:
        """What a finished run left, in a sentence or two: where its model is and what to do with it next."""
        return run.error or ""

    def estimate(self, config: BaseModel) -> str | None:
        """What the job will cost, when the learner should confirm it before it starts (None: start at once)."""
        return None

    def notice(self) -> str | None:
        """What a learner should know wherever this backend is offered (a provider's terms, say)."""
        return None

    @abstractmethod
    def start(self, config: BaseModel, registry: Registry, owner: str) -> dict:
        """Check the config, create the run and start (or queue) the job; the run record."""

    @abstractmethod
    def follow(self, run: Run, registry: Registry, poll: float = 0.5) -> AsyncIterator[dict]:
        """The run's events until it ends, in events.jsonl's shape (start, step, eval, checkpoint, status, done,
        cancelled, error: each checked against its model in training/jobs/events.py);
        `training.backends.local.follow`, which every consumer uses, hands them on as those typed models."""

    @abstractmethod
    def cancel(self, run: Run, registry: Registry) -> dict:
        """Stop the job (or take it out of the queue); the run record."""

    def deployed(self, run: Run, registry: Registry, name: str) -> dict:
        """Record where the learner deployed a finished run's model, for backends whose models must be deployed."""
        raise TutorError(PHRASES("no_deployment", self.language, label=self.label))

    def baseline_model(self, model: dict) -> str:
        """What the baseline of a comparison asks for: the registry model's base, as this backend's chat names it."""
        return model.base_model

    def resume(self, run: Run, registry: Registry) -> dict:
        """Continue a stopped run. A job on a provider can't be restarted: one still running is followed again."""
        if run.status in ACTIVE:
            return run
        raise TutorError(f"Run {run.id} is {run.status}: a {self.label} job can't be resumed. Start a new one.")


def register_training_backend(cls: type[TrainingBackend]) -> type[TrainingBackend]:
    _backends[cls.name] = cls
    return cls


def _load_built_in() -> None:
    for module in BUILT_IN:
        importlib.import_module(module)


def unregister_training_backend(name: str) -> None:
    _backends.pop(name, None)


def training_backend_names() -> list[str]:
    """Built-ins first, in the order the chat offers them (Azure before OpenAI, which is winding down), then
    plugins in the order they registered."""
    _load_built_in()
    return sorted(_backends, key=lambda name: OFFERED.index(name) if name in OFFERED else len(OFFERED))


def training_backend_configs() -> dict[str, type[BaseModel]]:
    """Each registered backend's Config by its name, in training_backend_names' order (`tutor train` makes its
    options of them, before any settings are read)."""
    return {name: _backends[name].Config for name in training_backend_names()}


def training_backend(name: str, settings: Settings, language: str = "en") -> TrainingBackend:
    """The backend called `name`, its texts for the learner in `language`."""
    _load_built_in()
    if name not in _backends:
        raise TutorError(PHRASES("unknown_backend", language, name=name, names=", ".join(_backends)))
    return _backends[name](settings, language)


def backend_of(run: Run, settings: Settings, language: str = "en") -> TrainingBackend:
    """The backend a run was started with."""
    return training_backend(run.backend, settings, language)
