"""API clients: the one place an `openai` client is built, and the one place its failures become sentences.

Chat (assistant/backends.py) and fine-tuning jobs (training/openai_jobs.py) use the same client settings:
OPENAI_API_KEY and/or OPENAI_BASE_URL (OpenAI itself, or any OpenAI-compatible server, `tutor serve` included).

    client = openai_client(settings, asynchronous=True, max_retries=2)
    ...
    except openai.OpenAIError as exc:
        raise TutorError(explain_api_error(exc, settings, model))
"""

from __future__ import annotations

from urllib.parse import urlsplit

from training.errors import TutorError, redact
from training.settings import Settings


def openai_configured(settings: Settings) -> bool:
    return bool(settings.openai_api_key or settings.openai_base_url)


def openai_key(settings: Settings) -> str | None:
    return settings.openai_api_key.get_secret_value() if settings.openai_api_key else None


def server_label(settings: Settings) -> str:
    """The server's host for messages: never the path, query or credentials of the URL."""
    if not settings.openai_base_url:
        return "api.openai.com"
    parts = urlsplit(settings.openai_base_url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "the configured server"


def openai_client(settings: Settings, *, asynchronous: bool = False, max_retries: int | None = None,
                  unconfigured: str = "No OpenAI-compatible server is configured."):
    """An `openai` client for OPENAI_API_KEY / OPENAI_BASE_URL; `unconfigured` says how to set them up."""
    import openai

    if not openai_configured(settings):
        raise TutorError(unconfigured)
    kind = openai.AsyncOpenAI if asynchronous else openai.OpenAI
    return kind(api_key=openai_key(settings) or "not-needed", base_url=settings.openai_base_url,
                organization=settings.openai_organization, project=settings.openai_project,
                timeout=settings.request_timeout,
                max_retries=settings.request_retries if max_retries is None else max_retries)


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
        return f"{details['server']} reported an error: {redact(exc.message, openai_key(settings))}"
    return "The request to {server} failed ({kind}).".format(kind=type(exc).__name__, **details)
