"""Chat handler for "See what is trained": one example of a learner's training file as the trainer sees it.

Thin over training.local.token_view (the trainer's own masking): the button carries a dataset id and a line
number, the server finds that dataset among the learner's own and reads its train.jsonl. The view is a
custom element (public/elements/TokenView.jsx) with the trained tokens highlighted, and buttons to step
through the file.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import chainlit as cl

from assistant.chat.actions import TokensRequest, action
from assistant.i18n import session_language, text
from training.base.errors import TutorError
from training.base.models import load_tokenizer, resolve_base_model
from training.base.registry import registry_for
from training.base.settings import get_settings
from training.local.config import TrainConfig
from training.local.token_view import TokenView, example_at, token_view


def tokens_action(dataset_id: str, line: int = 1, label: str | None = None) -> cl.Action:
    return cl.Action(name="see_tokens", payload={"dataset_id": dataset_id, "line": line},
                     label=label or text("tokens.button", session_language()))


@functools.cache
def _tokenizer(source: str):
    return load_tokenizer(source)


def view_of(path: Path, line: int) -> tuple[TokenView, int]:
    """Line `line` of a training file, tokenized by the configured base model at the trainer's default
    max_length, and the file's line count."""
    messages, lines = example_at(path, line)
    return token_view(_tokenizer(resolve_base_model(get_settings())), messages, TrainConfig().max_length), lines


def describe(view: TokenView, line: int, name: str, language: str) -> str:
    counts = view.counts
    cut = (text("tokens.cut", language, cut=counts["cut"]) if counts["cut"] else text("tokens.nothing_cut", language))
    return text("tokens.intro", language, line=line, name=name, total=sum(counts.values()),
                max_length=view.max_length, kept=counts["trained"] + counts["context"], trained=counts["trained"],
                context=counts["context"], cut=cut) + (
        "\n\n" + text("tokens.nothing_trained", language) if view.note else "")


@action("see_tokens", TokensRequest)
async def on_see_tokens(request: TokensRequest, learner, _sent):
    dataset = await asyncio.to_thread(registry_for(get_settings()).dataset, request.dataset_id, learner.scope)
    language = session_language()
    if dataset is None:
        raise TutorError(text("tokens.not_yours", language))
    view, lines = await asyncio.to_thread(view_of, Path(dataset.files["train"]), request.line)
    actions = [tokens_action(request.dataset_id, request.line + step, text(key, language))
               for step, key in ((-1, "tokens.previous"), (1, "tokens.next")) if 1 <= request.line + step <= lines]
    await cl.Message(content=describe(view, request.line, dataset.name, language),
                     elements=[cl.CustomElement(name="TokenView", display="inline", props={
                         **view.to_dict(), "labels": {kind: text(f"tokens.legend.{kind}", language)
                                                      for kind in ("trained", "context", "cut")}})],
                     actions=actions).send()
