"""User-facing errors and secret redaction.

Every failure a learner can cause or meet (a dead server, a wrong key, a bad setting) is raised
as a `TutorError` whose message is written for them; the chat and the CLI show only that message.
`redact` and `SecretFilter` keep API keys out of anything shown or logged.
"""

from __future__ import annotations

import logging
import re


class TutorError(Exception):
    """An error whose message is safe and meant to be shown to the learner as is."""


_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{3,}|Bearer\s+[A-Za-z0-9_\-\.]{6,})")


def redact(text: str, *secrets: str | None) -> str:
    """Remove the given secrets, and anything shaped like an API key, from text."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return _KEY_PATTERN.sub("[redacted]", text)


class SecretFilter(logging.Filter):
    """A logging filter that redacts secrets from every record passing through a handler."""

    def __init__(self, *secrets: str | None):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, *self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks are rendered later from exc_info; bake a redacted copy instead.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), *self.secrets)
            record.exc_info = None
        return True


def install_secret_filter(*secrets: str | None) -> None:
    """Attach a SecretFilter to every handler of the root logger (idempotent)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO)
    for handler in root.handlers:
        handler.filters = [f for f in handler.filters if not isinstance(f, SecretFilter)]
        handler.addFilter(SecretFilter(*secrets))
