"""API clients: the one place an `openai` or `AzureOpenAI` client is built, and the one place its failures
become sentences.

Chat (assistant/inference/backends.py) and fine-tuning jobs (training/backends/openai_api.py, training/backends/azure.py) share the
client settings of their provider:
- "openai": OPENAI_API_KEY and/or OPENAI_BASE_URL (OpenAI itself, or any OpenAI-compatible server, `tutor serve`
  included);
- "azure": AZURE_OPENAI_ENDPOINT with AZURE_OPENAI_API_KEY (sent as the `api-key` header) or an Entra ID token
  (AZURE_OPENAI_AD_TOKEN), at OPENAI_API_VERSION.

    client = openai_client(settings, asynchronous=True, max_retries=2)              # or provider="azure"
    ...
    except openai.OpenAIError as exc:
        raise TutorError(explain_api_error(exc, settings, model))
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from training.base.errors import TutorError, redact
from training.base.settings import SECRETS, Settings

Provider = Literal["openai", "azure"]
# The variables a learner sets, named in error messages.
KEY_VARIABLE = {"openai": "OPENAI_API_KEY", "azure": "AZURE_OPENAI_API_KEY (or AZURE_OPENAI_AD_TOKEN)"}
URL_VARIABLE = {"openai": "OPENAI_BASE_URL", "azure": "AZURE_OPENAI_ENDPOINT"}


def secret(value) -> str | None:
    return value.get_secret_value() if value else None


def secrets(settings: Settings) -> list[str]:
    """Every secret in the settings, for redaction."""
    return [value for name in SECRETS if (value := secret(getattr(settings, name)))]


def openai_configured(settings: Settings, provider: Provider = "openai") -> bool:
    if provider == "azure":
        return bool(settings.azure_openai_endpoint and (settings.azure_openai_api_key or settings.azure_openai_ad_token))
    return bool(settings.openai_api_key or settings.openai_base_url)


def openai_key(settings: Settings, provider: Provider = "openai") -> str | None:
    if provider == "azure":
        return secret(settings.azure_openai_api_key) or secret(settings.azure_openai_ad_token)
    return secret(settings.openai_api_key)


def server_label(settings: Settings, provider: Provider = "openai") -> str:
    """The server's host for messages: never the path, query or credentials of the URL."""
    url = settings.azure_openai_endpoint if provider == "azure" else settings.openai_base_url
    if not url:
        return "api.openai.com"
    parts = urlsplit(url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "the configured server"


def openai_client(settings: Settings, *, provider: Provider = "openai", asynchronous: bool = False,
                  max_retries: int | None = None, unconfigured: str = "No OpenAI-compatible server is configured."):
    """A client for the provider's settings; `unconfigured` says how to set them up when they are missing."""
    import openai

    if not openai_configured(settings, provider):
        raise TutorError(unconfigured)
    common = {"timeout": settings.request_timeout,
              "max_retries": settings.request_retries if max_retries is None else max_retries}
    if provider == "azure":
        kind = openai.AsyncAzureOpenAI if asynchronous else openai.AzureOpenAI
        credential = ({"api_key": secret(settings.azure_openai_api_key)} if settings.azure_openai_api_key
                      else {"azure_ad_token": secret(settings.azure_openai_ad_token)})
        return kind(azure_endpoint=settings.azure_openai_endpoint, api_version=settings.openai_api_version,
                    **credential, **common)
    kind = openai.AsyncOpenAI if asynchronous else openai.OpenAI
    return kind(api_key=openai_key(settings) or "not-needed", base_url=settings.openai_base_url,
                organization=settings.openai_organization, project=settings.openai_project, **common)


# Most specific first: the openai client's exceptions subclass each other.
_API_ERRORS = (
    ("AuthenticationError", "{server} rejected the API key (HTTP 401). Check {key_variable} in your .env or environment."),
    ("PermissionDeniedError", "{server} refused access to this model or project (HTTP 403). Check the key's permissions."),
    ("NotFoundError", "{server} has no {model_kind} named '{model}'. {model_hint}"),
    ("RateLimitError", "{server} is rate-limiting requests or the quota is used up (HTTP 429). Wait a moment and try again."),
    ("APITimeoutError", "{server} did not answer within {timeout:.0f} s. Try again, or raise TUTOR_REQUEST_TIMEOUT."),
    ("APIConnectionError", "Can't reach the model server at {server}. Is it running, and is {url_variable} right?"),
    ("APIStatusError", "{server} answered with an error (HTTP {status}). Try again in a moment."),
)
_MODEL_HINT = {"openai": ("model", "Set TUTOR_OPENAI_MODEL to a model it serves."),
               "azure": ("deployment", "On Azure a model answers only once deployed: check the deployment's name in "
                                       "the Foundry portal.")}


def explain_api_error(exc: Exception, settings: Settings, model: str | None = None,
                      provider: Provider = "openai") -> str:
    """A learner-facing sentence for an openai client exception."""
    import openai

    model_kind, model_hint = _MODEL_HINT[provider]
    details = {"server": server_label(settings, provider), "model": model or settings.openai_model,
               "timeout": settings.request_timeout, "status": getattr(exc, "status_code", "?"),
               "key_variable": KEY_VARIABLE[provider], "url_variable": URL_VARIABLE[provider],
               "model_kind": model_kind, "model_hint": model_hint}
    for name, template in _API_ERRORS:
        if isinstance(exc, getattr(openai, name)):
            return template.format(**details)
    if isinstance(exc, openai.APIError) and exc.message:  # e.g. an error the server sent inside a stream
        return f"{details['server']} reported an error: {redact(exc.message, *secrets(settings))}"
    return "The request to {server} failed ({kind}).".format(kind=type(exc).__name__, **details)
