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
- "azure": a deployment on Azure OpenAI via the `AzureOpenAI` client (fine-tunes answer once deployed).
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

from assistant.inference.engine import Messages, Usage, engine
from training.base.clients import Provider, explain_api_error, openai_client, openai_configured, secrets, server_label
from training.base.errors import TutorError, redact
from training.base.models import adapter_base, display_name, resolve_base_model
from training.base.settings import EMBEDDED, Settings

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
    adapter folder). Generation runs on the shared engine (assistant/inference/engine.py)."""

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
        base = adapter_base(self.model) if self.model else None
        source = await asyncio.to_thread(engine.call, resolve_base_model, self.settings, base)  # may convert: torch work
        async for piece in engine.stream(source, messages, adapter=self.model, temperature=temperature,
                                         max_tokens=max_tokens, usage=usage):
            yield piece


@register_backend
class OpenAIBackend(ChatBackend):
    name = "openai"
    provider: Provider = "openai"

    @property
    def model_id(self) -> str:
        return self.model or self.settings.openai_model

    @property
    def label(self) -> str:
        return f"{self.model_id} at {server_label(self.settings, self.provider)}"

    UNCONFIGURED = ("No OpenAI-compatible model is configured. Set OPENAI_API_KEY (for OpenAI) or OPENAI_BASE_URL "
                    "(for vLLM, Ollama, LM Studio...) in a .env file next to the app, then restart it.")

    def unavailable_reason(self) -> str | None:
        return None if openai_configured(self.settings, self.provider) else self.UNCONFIGURED

    def client(self):
        return openai_client(self.settings, provider=self.provider, asynchronous=True, max_retries=2,
                             unconfigured=self.UNCONFIGURED)

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
                if chunk.choices and chunk.choices[0].finish_reason:
                    usage.stop_reason = {"stop": "eos", "length": "max_tokens"}.get(chunk.choices[0].finish_reason,
                                                                                    chunk.choices[0].finish_reason)
                if chunk.choices and chunk.choices[0].delta.content:
                    if usage.ttft_s is None:
                        usage.ttft_s = time.perf_counter() - started
                    yield chunk.choices[0].delta.content
        except openai.OpenAIError as exc:
            log.warning("%s call failed: %s", self.name, redact(repr(exc), *secrets(self.settings)))
            raise TutorError(explain_api_error(exc, self.settings, self.model_id, self.provider)) from None
        finally:
            usage.latency_s = time.perf_counter() - started
            await client.close()


@register_backend
class AzureBackend(OpenAIBackend):
    """A deployment on Azure OpenAI: `model` is the deployment's name (a fine-tune's, or the base model's)."""

    name = "azure"
    provider: Provider = "azure"
    UNCONFIGURED = ("Azure OpenAI is not configured. Set AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY (or "
                    "AZURE_OPENAI_AD_TOKEN) in a .env file next to the app, then restart it.")

    @property
    def model_id(self) -> str:
        return self.model or self.settings.azure_base_deployment or "(no deployment named)"
