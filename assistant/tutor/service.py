"""The process-wide tutor: settings read once, knowledge base synced once, model loaded once.

The chat app warms it up in the background at start-up so the first question is fast; the CLI and
tests build it the same way. Building is blocking work (embedding, model conversion): call it from
a thread when on the event loop (`await asyncio.to_thread(get_tutor)`).
"""

from __future__ import annotations

import logging
import threading

from assistant.retrieval.knowledge import KnowledgeBase
from assistant.tutor.answers import Tutor
from training.base.clients import secrets
from training.base.errors import TutorError, install_secret_redaction
from training.base.settings import Settings, get_settings

log = logging.getLogger(__name__)
_lock = threading.Lock()
_tutor: Tutor | None = None


def build_tutor(settings: Settings) -> Tutor:
    knowledge = KnowledgeBase(settings)
    knowledge.sync()
    return Tutor(settings, knowledge)


def get_tutor() -> Tutor:
    """The shared tutor, built on first use (thread-safe: concurrent first calls build it once)."""
    global _tutor
    with _lock:
        if _tutor is None:
            settings = get_settings()
            install_secret_redaction(*secrets(settings))
            _tutor = build_tutor(settings)
        return _tutor


def warm_up() -> None:
    """Build the tutor and, for the local backend, load the model, so the first answer is quick."""
    try:
        tutor = get_tutor()
        if tutor.settings.effective_backend == "local":
            from assistant.inference.engine import warm_up as warm_up_model
            from assistant.inference.llama_runtime import runtime

            used = runtime()
            log.info("Local generation runs on %s: %s", used.name, used.reason)
            warm_up_model(tutor.settings)
    except TutorError as exc:  # the first question retries and shows this in chat; the log says it now
        log.error("Warm-up failed: %s", exc)
        raise
    log.info("Tutor ready")
