"""Chat backends: one interface, one small registry (the shape of simonw/llm's model plugins).

A backend turns chat messages into a stream of text pieces. Built-ins are registered the same way
a test or a plugin registers its own:

    @register_backend
    class EchoBackend(ChatBackend):
        name = "echo"
        async def stream(self, messages, *, temperature, max_tokens):
            yield messages[-1]["content"]

- "local": the configured base model (embedded SmolLM2-135M by default) in this process. Generation
  runs in a worker thread and streams back to the event loop; one generation at a time per process.
- "openai": OpenAI or any OpenAI-compatible server (vLLM, Ollama, LM Studio) via the `openai` client.
Errors reach the caller as TutorError with a message for the learner, never the raw exception.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import ClassVar
from urllib.parse import urlsplit

from assistant.errors import TutorError, redact
from assistant.settings import EMBEDDED, Settings

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]
_backends: dict[str, type["ChatBackend"]] = {}


class ChatBackend(ABC):
    name: ClassVar[str]

    def __init__(self, settings: Settings):
        self.settings = settings

    @property
    def label(self) -> str:
        """What the learner sees in the settings panel."""
        return self.name

    def unavailable_reason(self) -> str | None:
        """None when the backend can be used as configured, else how to configure it."""
        return None

    @abstractmethod
    def stream(self, messages: Messages, *, temperature: float, max_tokens: int) -> AsyncIterator[str]:
        """Yield the answer's text in pieces as it is generated."""


def register_backend(cls: type[ChatBackend]) -> type[ChatBackend]:
    _backends[cls.name] = cls
    return cls


def unregister_backend(name: str) -> None:
    _backends.pop(name, None)


def backend_names() -> list[str]:
    return list(_backends)


def create_backend(name: str, settings: Settings) -> ChatBackend:
    try:
        return _backends[name](settings)
    except KeyError:
        raise TutorError(f"Unknown chat backend '{name}'. Choose one of: {', '.join(_backends)}.") from None


async def stream_from_thread(work: Callable[[Callable[[str], None], threading.Event], None]) -> AsyncIterator[str]:
    """Run blocking `work(emit, stop)` in a thread and yield what it emits, without blocking the loop.

    Closing the iterator early (the learner pressed stop) sets `stop`, which the work checks.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()
    done = object()
    future = loop.run_in_executor(None, work, lambda text: loop.call_soon_threadsafe(queue.put_nowait, text), stop)
    future.add_done_callback(lambda _: queue.put_nowait(done))
    try:
        while (item := await queue.get()) is not done:
            yield item
        await future  # re-raise what the worker raised
    finally:
        stop.set()


# One generation at a time: the model is shared by every chat session of the process.
_generation_lock = threading.Lock()


def generate_local(model, tokenizer, messages: Messages, emit: Callable[[str], None], stop: threading.Event,
                   *, temperature: float, max_tokens: int) -> None:
    """Blocking generation with a transformers model, emitting decoded text as tokens arrive."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList
    from transformers.generation.streamers import BaseStreamer

    class Emitter(BaseStreamer):
        """Decodes the growing sequence and emits only complete new characters."""

        def __init__(self):
            self.ids: list[int] = []
            self.sent = 0
            self.prompt_seen = False

        def put(self, value):
            if not self.prompt_seen:  # generate() first passes the prompt
                self.prompt_seen = True
                return
            self.ids.extend(value.reshape(-1).tolist())
            text = tokenizer.decode(self.ids, skip_special_tokens=True)
            if not text.endswith("\ufffd"):  # wait for the rest of a multi-byte character
                emit(text[self.sent:])
                self.sent = len(text)

        def end(self):
            text = tokenizer.decode(self.ids, skip_special_tokens=True)
            if len(text) > self.sent:
                emit(text[self.sent:].replace("\ufffd", ""))

    class StopWhenAsked(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return stop.is_set()

    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True).to(model.device)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": 0.9} if temperature > 0 else {"do_sample": False}
    with _generation_lock, torch.inference_mode():
        model.generate(**inputs, max_new_tokens=max_tokens, streamer=Emitter(),
                       stopping_criteria=StoppingCriteriaList([StopWhenAsked()]),
                       pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                       repetition_penalty=1.1, **sampling)


@register_backend
class LocalBackend(ChatBackend):
    name = "local"

    @property
    def label(self) -> str:
        model = "SmolLM2-135M-Instruct (embedded)" if self.settings.base_model == EMBEDDED else self.settings.base_model
        return f"{model}, offline in this process"

    async def stream(self, messages, *, temperature, max_tokens):
        from assistant.models import load_chat_model

        model, tokenizer = await asyncio.to_thread(load_chat_model, self.settings)
        work = lambda emit, stop: generate_local(model, tokenizer, messages, emit, stop,  # noqa: E731
                                                 temperature=temperature, max_tokens=max_tokens)
        try:
            async for piece in stream_from_thread(work):
                yield piece
        except (RuntimeError, ValueError, MemoryError) as exc:
            log.exception("Local generation failed")
            raise TutorError(f"The local model failed while answering ({type(exc).__name__}). "
                             "Try a shorter question, or see the server log.") from None


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


def explain_api_error(exc: Exception, settings: Settings) -> str:
    """A learner-facing sentence for an openai client exception."""
    import openai

    details = {"server": server_label(settings), "model": settings.openai_model,
               "timeout": settings.request_timeout, "status": getattr(exc, "status_code", "?")}
    for name, template in _API_ERRORS:
        if isinstance(exc, getattr(openai, name)):
            return template.format(**details)
    return "The request to {server} failed ({kind}).".format(kind=type(exc).__name__, **details)


@register_backend
class OpenAIBackend(ChatBackend):
    name = "openai"

    @property
    def label(self) -> str:
        return f"{self.settings.openai_model} at {server_label(self.settings)}"

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

    async def stream(self, messages, *, temperature, max_tokens):
        import openai

        client = self.client()
        try:
            response = await client.chat.completions.create(model=self.settings.openai_model, messages=messages,
                                                            temperature=temperature, max_tokens=max_tokens, stream=True)
            async for chunk in response:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except openai.OpenAIError as exc:
            key = self.settings.openai_api_key.get_secret_value() if self.settings.openai_api_key else None
            log.warning("OpenAI-compatible call failed: %s", redact(repr(exc), key))
            raise TutorError(explain_api_error(exc, self.settings)) from None
        finally:
            await client.close()
