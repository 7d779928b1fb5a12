"""User-facing errors and secret redaction.

Every failure a learner can cause or meet (a dead server, a wrong key, a bad setting) is raised
as a `TutorError` whose message is written for them; the chat and the CLI show only that message.
`redact` and `install_secret_redaction` keep API keys out of anything shown or logged.
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


_secrets: set[str] = set()
_plain_factory = None


def _redacting_factory(*args, **kwargs) -> logging.LogRecord:
    record = _plain_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # a malformed format string: leave it to logging's own error report
        return record
    cleaned = redact(message, *_secrets)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and record.exc_info[1] is not None:
        # Tracebacks are rendered later from exc_info: render a redacted copy now instead.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info), *_secrets)
        record.exc_info = None
    return record


def install_secret_redaction(*secrets: str | None) -> None:
    """Redact these secrets (and key-shaped strings) from every log record from now on, whichever
    logger or handler it goes to (chainlit's, uvicorn's, ours)."""
    global _plain_factory
    _secrets.update(s for s in secrets if s and len(s) >= 4)
    if _plain_factory is None:
        _plain_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_redacting_factory)
