"""Chat backends: one interface, one small registry (the shape of simonw/llm's model plugins).

A backend turns chat messages into a stream of text pieces. Built-ins are registered the same way
a test or a plugin registers its own:

    @register_backend
    class EchoBackend(ChatBackend):
        name = "echo"
        async def stream(self, messages, *, temperature, max_tokens, usage=None):
            yield messages[-1]["content"]

- "local": the configured base model (embedded SmolLM2-135M by default) in this process, or a LoRA
  adapter on it. Generation runs on the shared engine's worker thread and streams back to the loop.
- "openai": OpenAI or any OpenAI-compatible server (vLLM, Ollama, LM Studio) via the `openai` client.
Errors reach the caller as TutorError with a message for the learner, never the raw exception.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from assistant.errors import TutorError, redact
from assistant.generation import Messages, Usage, adapter_base, engine
from assistant.models import display_name, resolve_base_model
from assistant.settings import EMBEDDED, Settings

log = logging.getLogger(__name__)

_backends: dict[str, type["ChatBackend"]] = {}


class ChatBackend(ABC):
    name: ClassVar[str]

    def __init__(self, settings: Settings, model: str | None = None):
        self.settings = settings
        self.model = model  # None: the configured model; else a backend-specific model (adapter, model id)

    @property
    def label(self) -> str:
        """What the learner sees in the settings panel."""
        return self.name

    def unavailable_reason(self) -> str | None:
        """None when the backend can be used as configured, else how to configure it."""
        return None

    def load(self) -> int:
        """Answers this backend is producing right now, where it can tell (0 where it can't)."""
        return 0

    @abstractmethod
    def stream(self, messages: Messages, *, temperature: float, max_tokens: int,
               usage: Usage | None = None) -> AsyncIterator[str]:
        """Yield the answer's text in pieces as it is generated; fill `usage` (tokens, timings) if given."""


def register_backend(cls: type[ChatBackend]) -> type[ChatBackend]:
    _backends[cls.name] = cls
    return cls


def unregister_backend(name: str) -> None:
    _backends.pop(name, None)


def backend_names() -> list[str]:
    return list(_backends)


def create_backend(name: str, settings: Settings, model: str | None = None) -> ChatBackend:
    try:
        return _backends[name](settings, model)
    except KeyError:
        raise TutorError(f"Unknown chat backend '{name}'. Choose one of: {', '.join(_backends)}.") from None


@register_backend
class LocalBackend(ChatBackend):
    """The configured base model in this process, or a LoRA adapter on its own base (`model` = the
    adapter folder). Generation runs on the shared engine (assistant/generation.py)."""

    name = "local"

    @property
    def label(self) -> str:
        if self.model:
            return f"fine-tuned {Path(self.model).parent.name} (LoRA on {display_name(adapter_base(self.model))})"
        model = ("SmolLM2-135M-Instruct (embedded)" if self.settings.base_model == EMBEDDED
                 else display_name(self.settings.base_model))
        return f"{model}, offline in this process"

    def load(self) -> int:
        return engine.load()

    async def stream(self, messages, *, temperature, max_tokens, usage=None):
        settings = self.settings
        if self.model:
            settings = settings.model_copy(update={"base_model": adapter_base(self.model)})
        source = await asyncio.to_thread(engine.call, resolve_base_model, settings)  # may convert: torch work
        async for piece in engine.stream(source, messages, adapter=self.model, temperature=temperature,
                                         max_tokens=max_tokens, usage=usage):
            yield piece


def server_label(settings: Settings) -> str:
    """The server's host for messages: never the path, query or credentials of the URL."""
    if not settings.openai_base_url:
        return "api.openai.com"
    parts = urlsplit(settings.openai_base_url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "the configured server"


# Most specific first: the openai client's exceptions subclass each other.
_API_ERRORS = (
    ("AuthenticationError", "{server} rejected the API key (HTTP 401). Check OPENAI_API_KEY in your .env or environment."),
    ("PermissionDeniedError", "{server} refused access to this model or project (HTTP 403). Check the key's permissions."),
    ("NotFoundError", "{server} has no model named '{model}'. Set TUTOR_OPENAI_MODEL to a model it serves."),
    ("RateLimitError", "{server} is rate-limiting requests or the quota is used up (HTTP 429). Wait a moment and try again."),
    ("APITimeoutError", "{server} did not answer within {timeout:.0f} s. Try again, or raise TUTOR_REQUEST_TIMEOUT."),
    ("APIConnectionError", "Can't reach the model server at {server}. Is it running, and is OPENAI_BASE_URL right?"),
    ("APIStatusError", "{server} answered with an error (HTTP {status}). Try again in a moment."),
)


def explain_api_error(exc: Exception, settings: Settings, model: str | None = None) -> str:
    """A learner-facing sentence for an openai client exception."""
    import openai

    details = {"server": server_label(settings), "model": model or settings.openai_model,
               "timeout": settings.request_timeout, "status": getattr(exc, "status_code", "?")}
    for name, template in _API_ERRORS:
        if isinstance(exc, getattr(openai, name)):
            return template.format(**details)
    if isinstance(exc, openai.APIError) and exc.message:  # e.g. an error the server sent inside a stream
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return f"{details['server']} reported an error: {redact(exc.message, key)}"
    return "The request to {server} failed ({kind}).".format(kind=type(exc).__name__, **details)


@register_backend
class OpenAIBackend(ChatBackend):
    name = "openai"

    @property
    def model_id(self) -> str:
        return self.model or self.settings.openai_model

    @property
    def label(self) -> str:
        return f"{self.model_id} at {server_label(self.settings)}"

    def unavailable_reason(self) -> str | None:
        if self.settings.openai_api_key or self.settings.openai_base_url:
            return None
        return ("No OpenAI-compatible model is configured. Set OPENAI_API_KEY (for OpenAI) or OPENAI_BASE_URL "
                "(for vLLM, Ollama, LM Studio...) in a .env file next to the app, then restart it.")

    def client(self):
        import openai

        if reason := self.unavailable_reason():
            raise TutorError(reason)
        key = self.settings.openai_api_key.get_secret_value() if self.settings.openai_api_key else "not-needed"
        return openai.AsyncOpenAI(api_key=key, base_url=self.settings.openai_base_url,
                                  organization=self.settings.openai_organization, project=self.settings.openai_project,
                                  timeout=self.settings.request_timeout, max_retries=2)

    async def stream(self, messages, *, temperature, max_tokens, usage=None):
        import openai

        usage = usage if usage is not None else Usage()
        client = self.client()
        started = time.perf_counter()
        try:
            response = await client.chat.completions.create(
                model=self.model_id, messages=messages, temperature=temperature, max_tokens=max_tokens, stream=True,
                stream_options={"include_usage": True})
            async for chunk in response:
                if chunk.usage:  # the last chunk, when the server reports usage
                    usage.prompt_tokens, usage.completion_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                if chunk.choices and chunk.choices[0].delta.content:
                    if usage.ttft_s is None:
                        usage.ttft_s = time.perf_counter() - started
                    yield chunk.choices[0].delta.content
        except openai.OpenAIError as exc:
            key = self.settings.openai_api_key.get_secret_value() if self.settings.openai_api_key else None
            log.warning("OpenAI-compatible call failed: %s", redact(repr(exc), key))
            raise TutorError(explain_api_error(exc, self.settings, self.model_id)) from None
        finally:
            usage.latency_s = time.perf_counter() - started
            await client.close()
