"""Action buttons the server can trust: every payload is checked before any work, every id resolved for its learner.

A browser can call any action name with any payload (Chainlit builds the action from the client's JSON),
so each callback declares its payload as a pydantic model: opaque ids and simple values, each with its
type and range, nothing else (strict: no "5" for 5, no NaN or Infinity, no unknown keys). Ids are then
looked up in the registry for the chat's learner only; the payload never names a path, a URL or a
command. A payload that does not fit gets one refusal message and changes nothing.

    @action("cancel_run", RunRef)
    async def on_cancel_run(request: RunRef, learner: Learner): ...
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

import chainlit as cl
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from assistant.i18n import session_language, text
from assistant.web.accounts import LOCAL_LEARNER, Learner, learner_of
from training.base.errors import TutorError
from training.base.registry import RegistryError, registry_for
from training.base.settings import get_settings
from training.local.config import ConfigError

log = logging.getLogger(__name__)


def _id(prefix: str):
    return Annotated[str, StringConstraints(pattern=rf"^{prefix}-[A-Za-z0-9-]{{1,64}}$")]


RunId, DatasetId, FileId, ComparisonId = _id("run"), _id("ds"), _id("file"), _id("ab")
Size = Annotated[int, Field(ge=0, le=1_000_000)]
Setting = int | float | Annotated[str, StringConstraints(max_length=128)] | Annotated[
    list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=64)]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class NoPayload(Payload):
    pass


class RunRef(Payload):
    run_id: RunId


HubDataset = Annotated[str, StringConstraints(pattern=r"^hub:[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9._-]{1,96}$")]


class PrepareRequest(Payload):
    """The bundled sample, one of the learner's uploads, or a Hub dataset (`hub:OWNER/NAME`, checked again by the
    Hub's rules before the download starts)."""

    source: Literal["sample"] | FileId | HubDataset
    train: Annotated[int, Field(ge=1, le=1_000_000)]
    validation: Annotated[Size, Field(validation_alias=AliasChoices("validation", "val"))]
    test: Size
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)]


class ModelRequest(Payload):
    """A base model chosen from the offer: its label (an HF id, "embedded", or an instructor's model by name),
    resolved on the server for what this server allows (training/local/catalog.py)."""

    model: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")]


class TrainRequest(Payload):
    """A training button: which backend, which of the learner's datasets, and typed settings that the
    backend's config checks (it refuses any name a learner may not set, such as a file or a folder)."""

    backend: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    dataset_id: DatasetId
    settings: Annotated[dict[Annotated[str, StringConstraints(max_length=64)], Setting], Field(max_length=32)] = {}


class TokensRequest(Payload):
    dataset_id: DatasetId
    line: Annotated[int, Field(ge=1, le=10_000_000)]


class CheckAnswer(Payload):
    question: Annotated[str, StringConstraints(max_length=64)]
    option: Annotated[str, StringConstraints(max_length=64)]


class BaselineChoice(Payload):
    run_id: RunId
    baseline: Literal["rag", "base"]


class VoteRequest(Payload):
    id: ComparisonId
    vote: Literal["a", "b", "tie"]


def typed_settings(words: list[str], language: str = "en") -> dict[str, str]:
    """`key=value` words as typed after a command (`/train epochs=2`): as untrusted as a payload, so each value
    is then checked by the model it is meant for, which names any setting it refuses."""
    found = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise TutorError(text("actions.not_a_setting", language, word=word[:40]))
        found[key.lower()] = value
    return found


async def current_learner() -> Learner:
    """The chat's learner: the logged-in account (checked against the registry, so a removed account stops
    at once), or the local learner when the app runs without logins."""
    user = cl.user_session.get("user")
    if user is None:
        return LOCAL_LEARNER
    learner = await asyncio.to_thread(learner_of, registry_for(get_settings()), user.identifier)
    if learner is None:
        raise TutorError(text("actions.no_account", session_language()))
    return learner


async def guarded(work: Awaitable, what: str):
    """Run chat work; an explained failure becomes its sentence in chat, anything else a log entry and a
    generic sentence (never a stack trace in chat)."""
    try:
        return await work
    except (TutorError, ConfigError, RegistryError, ValueError) as exc:
        await cl.Message(content=f"⚠️ {exc}").send()
    except OSError as exc:  # its text would name a server path: say what happened, not where
        log.warning("%s failed: %s", what, exc)
        await cl.Message(content=text("actions.io_error", session_language(),
                                      reason=exc.strerror or "I/O error")).send()
    except Exception:
        log.exception("%s failed", what)
        await cl.Message(content=text("actions.unexpected", session_language())).send()
    return None


def action(name: str, model: type[Payload]) -> Callable:
    """Register a Chainlit action callback whose payload must fit `model`; the handler gets
    (request, learner, action) and runs guarded."""

    def register(handler: Callable[..., Awaitable]) -> Callable:
        # Not functools.wraps: Chainlit passes arguments by the signature it finds, which must stay (action).
        async def callback(action: cl.Action):
            sent = action
            try:
                request = model.model_validate(sent.payload)
            except ValidationError as exc:
                log.warning("Refused a forged or stale %s payload: %s", name, exc.errors()[0]["type"])
                await cl.Message(content=text("actions.refused", session_language())).send()
                return None
            learner = await guarded(current_learner(), name)
            if learner is None:
                return None
            return await guarded(handler(request, learner, sent), name)

        callback.__name__, callback.__doc__ = handler.__name__, handler.__doc__
        cl.action_callback(name)(callback)
        return callback

    return register
