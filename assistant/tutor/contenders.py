"""The systems an A/B chat or an evaluation compares: a fine-tuned model against its baselines.

- fine-tuned: a model from the registry (a local LoRA adapter, an OpenAI fine-tune, an Azure deployment),
  given only the task's system prompt (what it was trained on).
- rag: the same base model it started from, given the k most similar training examples as few-shot
  turns, retrieved from a Chroma index of the training file through a LangChain retriever.
- base: that base model with the system prompt alone.

    python -m assistant.tutor.contenders RUN_ID "Title: ...\n\nIngredients: [...]\n\nGeneric ingredients: "
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from assistant.i18n import text
from assistant.inference.backends import ChatBackend, Usage, create_backend
from assistant.inference.engine import engine
from assistant.retrieval.vectorstore import chroma_client, langchain_store, open_collection
from training.backends.registry import training_backend
from training.base.errors import TutorError
from training.base.models import display_name, load_tokenizer, resolve_base_model
from training.base.records import Model
from training.base.settings import Settings
from training.data.tokens import local_counter, openai_counter
from training.evaluation.held_out import Case, chat_triples

BASELINES = ("rag", "base")
MODEL_KINDS = {"local-adapter": "local"}  # a registry model's kind, where it is not its training backend's name
MAX_ANSWER_TOKENS = 160  # a chat's recipe answer; A/B and evaluation derive theirs from the training answers
MIN_ANSWER_TOKENS = 16
MAX_PROMPT_CHARS = 8000  # a recipe prompt is a few hundred characters; the models' context is 2048 tokens
_index_lock = threading.RLock()  # building an index, and a client's first use: concurrent answers share it


class ExampleIndex:
    """The training file's examples in Chroma (one collection per file content), for few-shot retrieval."""

    def __init__(self, settings: Settings, train_file: str | Path, k: int = 3):
        self.settings, self.train_file, self.k = settings, Path(train_file), k
        if not self.train_file.is_file():
            raise TutorError(f"The training file {self.train_file} is gone, so the RAG baseline has no examples.")
        digest = hashlib.sha256(self.train_file.read_bytes()).hexdigest()[:16]
        self.name = f"examples-{digest}"
        self._retriever = None

    def build(self):
        """Index the examples once (skipped when this file's collection is already complete)."""
        triples = list(chat_triples(self.train_file))
        if not triples:
            raise TutorError(f"{self.train_file.name} has no valid chat examples to retrieve from.")
        with _index_lock:  # two sessions opening the same run must not index it twice
            client = chroma_client(self.settings)
            if open_collection(client, self.name).count() != len(triples):
                client.delete_collection(self.name)  # a half-built index from a killed process
                store = langchain_store(client, self.name)
                store.add_texts([user for _, user, _ in triples], metadatas=[{"answer": a} for _, _, a in triples],
                                ids=[str(i) for i in range(len(triples))])
            else:
                store = langchain_store(client, self.name)
        self._retriever = store.as_retriever(search_kwargs={"k": self.k})
        return self

    def examples(self, prompt: str) -> list[tuple[str, str]]:
        """The k (user, assistant) training pairs most similar to the prompt, most similar first."""
        if self._retriever is None:
            with _index_lock:  # an evaluation's first answers ask at once: one of them builds
                if self._retriever is None:
                    self.build()
        return [(doc.page_content, doc.metadata["answer"]) for doc in self._retriever.invoke(prompt)]


@dataclass
class Contender:
    """One side of a comparison: a label, the backend that answers, and how its prompt is built."""

    label: str
    kind: str  # "fine-tuned", "rag" or "base"
    backend: ChatBackend
    index: ExampleIndex | None = None
    max_tokens: int = MAX_ANSWER_TOKENS

    async def messages(self, case: Case) -> list[dict]:
        messages = [{"role": "system", "content": case.system}]
        if self.index is not None:
            for user, answer in await asyncio.to_thread(self.index.examples, case.prompt):
                messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        return messages + [{"role": "user", "content": case.prompt}]

    async def stream(self, case: Case, usage: Usage) -> AsyncIterator[str]:
        """The answer in pieces, greedy, until the model ends it, `max_tokens`, or a loop: the answer's tail
        repeating itself (closing the backend's stream stops its generation)."""
        messages = await self.messages(case)
        text = ""
        pieces = self.backend.stream(messages, temperature=0.0, max_tokens=self.max_tokens, usage=usage)
        try:
            async for piece in pieces:
                yield piece
                text += piece
                if repeating(text):
                    usage.stop_reason = "repetition"
                    break
        finally:
            await pieces.aclose()

    async def answer(self, case: Case) -> tuple[str, dict]:
        """The whole answer and its usage, for evaluation."""
        usage = Usage()
        text = "".join([piece async for piece in self.stream(case, usage)])
        return text, {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                      "latency_s": usage.latency_s, "ttft_s": usage.ttft_s, "stop": usage.stop_reason}


def repeating(text: str, times: int = 3, shortest: int = 4, longest: int = 80) -> bool:
    """True when the text ends with one stretch (4 to 80 characters) said `times` times in a row: a greedy
    model in a loop ('"baking soda", "baking soda", ...'), which would go on until max_tokens."""
    for width in range(shortest, min(longest, len(text) // times) + 1):
        tail = text[-width:]
        if text.endswith(tail * times):
            return True
    return False


def answer_budget(train_file: str | Path, count) -> int:
    """max_tokens for the recipe task: 1.5 x the 99th percentile of the training answers' lengths (counted by
    `count`, the answering model's token counter): a learnt answer fits, a runaway one stops early."""
    lengths = sorted(count([{"role": "system", "content": system}, {"role": "user", "content": user},
                            {"role": "assistant", "content": answer}])[1]
                     for system, user, answer in chat_triples(train_file))
    if not lengths:
        return MAX_ANSWER_TOKENS
    p99 = lengths[min(len(lengths) - 1, math.ceil(0.99 * len(lengths)) - 1)]
    return max(MIN_ANSWER_TOKENS, min(MAX_ANSWER_TOKENS * 2, math.ceil(p99 * 1.5)))


def too_long(prompt: str, language: str = "en") -> str | None:
    """Why a message is too long to send to a recipe model (in `language`), or None."""
    if len(prompt) <= MAX_PROMPT_CHARS:
        return None
    return text("contenders.too_long", language, length=len(prompt), limit=MAX_PROMPT_CHARS)


def model_for_run(registry, run_id: str, owner: str | None = None, language: str = "en") -> Model:
    """The registry's model row of a finished run of `owner` (None: anyone's): the adapter or OpenAI fine-tune."""
    for model in registry.models(owner):
        if run_id in (model.run_id, model.id):
            return model
    run = registry.run(run_id, owner)
    if run is None:
        raise TutorError(text("contenders.unknown_run", language, run=run_id))
    if next_step := (run.metrics or {}).get("next_step"):  # e.g. an Azure fine-tune not deployed yet
        raise TutorError(text("contenders.not_callable", language, run=run_id, step=next_step))
    raise TutorError(text("contenders.no_model", language, run=run_id, status=run.status))


def _trainer(model: dict, settings: Settings):
    """The training backend that made a registry model: it names the chat backend its models answer through."""
    return training_backend(MODEL_KINDS.get(model.kind, model.kind), settings)


def fine_tuned(model: dict, settings: Settings, language: str = "en") -> Contender:
    backend = create_backend(_trainer(model, settings).chat_backend, settings, model=model.location)
    return Contender(label=text("contenders.fine_tuned", language, run=model.run_id), kind="fine-tuned",
                     backend=backend)


def baseline(model: dict, settings: Settings, kind: str = "rag", k: int = 3, train_file: str | None = None,
             language: str = "en") -> Contender:
    """The base model the fine-tune started from, with k retrieved examples ("rag") or none ("base"); its label
    in `language`."""
    if kind not in BASELINES:
        raise TutorError(text("contenders.unknown_baseline", language, kind=kind))
    trainer = _trainer(model, settings)
    if trainer.chat_backend == "local":  # the base model loads in this process, as the one the settings name
        backend = create_backend("local", settings.model_copy(update={"base_model": model.base_model}))
    else:
        backend = create_backend(trainer.chat_backend, settings, model=trainer.baseline_model(model))
    base = display_name(model.base_model)
    if kind == "base":
        return Contender(label=text("contenders.base", language, base=base), kind="base", backend=backend)
    if not train_file:
        raise TutorError(text("contenders.no_train_file", language))
    return Contender(label=text("contenders.rag", language, base=base, count=k), kind="rag",
                     backend=backend, index=ExampleIndex(settings, train_file, k))


def pair_for_run(registry, settings: Settings, run_id: str, kind: str = "rag", k: int = 3,
                 owner: str | None = None, language: str = "en") -> tuple[Contender, Contender]:
    """(fine-tuned, baseline) for a run id or model id of `owner` (None: anyone's), labelled in `language`."""
    model = model_for_run(registry, run_id, owner, language)
    train_file = run.config.get("train_file") if (run := registry.run(model.run_id)) else None
    pair = fine_tuned(model, settings, language), baseline(model, settings, kind, k, train_file, language)
    if train_file and Path(train_file).is_file():
        budget = answer_budget(train_file, _token_counter(model, settings))
        for contender in pair:
            contender.max_tokens = budget
    return pair


def _token_counter(model: dict, settings: Settings):
    """The answering model's token counter: its own tokenizer when local, tiktoken's for a hosted model."""
    if _trainer(model, settings).chat_backend != "local":
        return openai_counter(model.base_model)
    source = engine.call(resolve_base_model, settings, model.base_model)  # may convert: torch work
    return local_counter(load_tokenizer(source))


if __name__ == "__main__":
    import sys

    from training.base.common import configure_process
    from training.base.registry import registry_for
    from training.base.settings import get_settings

    configure_process()
    settings = get_settings()
    case = Case(prompt=sys.argv[2], gold=[])
    for side in pair_for_run(registry_for(settings), settings, sys.argv[1]):
        print(side.label, "->", asyncio.run(side.answer(case)))
