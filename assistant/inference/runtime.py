"""The runtime interface: what the generation engine (assistant/inference/engine.py) calls to run a model.

A runtime runs the base models of one kind, and their adapters: llama.cpp runs GGUF bases
(assistant/inference/llama_runtime.py), transformers runs the rest (assistant/inference/torch_runtime.py). The
engine takes its runtimes in order and gives a base model to the first that runs it; a test hands it its own the
same way (tests/test_engine.py):

    engine = Engine([LlamaRuntime(), TorchRuntime()])   # the process's engine
    engine = Engine([FakeRuntime()])                      # a test's

A runtime makes cohorts: the requests on one base model and adapter decoding together, one row each, in the
order they joined. The engine hands a runtime frozen `Request`s and token ids only; each answer's progress (its
tokens, its position, whether its reader left) is the engine's own. Everything here runs on the engine's thread.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from training.base.models import load_tokenizer

Messages = list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class Request:
    """What a caller asked the engine for, frozen when made: its messages are copied into read-only mappings, so
    neither the engine, a runtime nor the caller's later edits can change it."""

    source: str  # base model folder or HF id
    adapter: str | None  # PEFT adapter folder, or None for the base model
    messages: Sequence[Mapping[str, str]]
    temperature: float = 0.0
    max_tokens: int = 256

    def __post_init__(self):
        object.__setattr__(self, "messages", tuple(MappingProxyType(dict(message)) for message in self.messages))

    @property
    def key(self) -> tuple[str, str | None]:
        """The cohort it decodes in: one per base model and adapter."""
        return self.source, self.adapter

    def chat(self) -> Messages:
        """Its messages as a chat template takes them (fresh dicts)."""
        return [dict(message) for message in self.messages]


class Cohort(Protocol):
    """Requests on one base model and adapter decoding together: rows in the order they joined."""

    stop_ids: set[int]  # the tokens that end an answer

    def has_room(self, prompt_ids: list[int]) -> bool:
        """A free row for this prompt now (False: it waits for an answer here to end). Raises TutorError for a
        prompt that can never fit."""

    def answer_limit(self, prompt_ids: list[int]) -> int | None:
        """The most tokens an answer to this prompt can have in a row; None: no limit of the runtime's own."""

    def prefill(self, request: Request, prompt_ids: list[int], threads: int) -> int:
        """The prompt into a new last row, on `threads` threads; the answer's first token."""

    def step(self, inputs: list[tuple[int, int]], threads: int) -> list[int]:
        """The next token of every row, in one batch: `inputs` holds each row's last token and that token's
        position."""

    def leave(self, rows: set[int]) -> None:
        """Drop these rows (their answers ended); the others keep their order."""


class ModelRuntime(Protocol):
    """Runs base models of one kind for the engine. Prompts and text come from the model's transformers tokenizer
    and chat template, as in training, unless a runtime says otherwise."""

    name: str

    def runs(self, source: str) -> bool:
        """Whether this runtime runs the base model `source` (and its adapters)."""

    def cohort(self, source: str, adapter: str | None, threads: int) -> Cohort:
        """A new, empty cohort for `source` and `adapter`; a missing adapter is a TutorError here."""

    def prompt(self, source: str, messages: Messages) -> list[int]:
        """The token ids the model is prompted with for `messages` (its chat template, generation prompt)."""
        return tokenizer(source).apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                     return_dict=True)["input_ids"]

    def decode(self, source: str, ids: list[int]) -> str:
        """The text of an answer's token ids, special tokens left out."""
        return tokenizer(source).decode(ids, skip_special_tokens=True)


@functools.cache
def tokenizer(source: str):
    """A base model's tokenizer, loaded once per process."""
    return load_tokenizer(source)
