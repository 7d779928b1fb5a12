"""The systems an A/B chat or an evaluation compares: a fine-tuned model against its baselines.

- fine-tuned: a model from the registry (a local LoRA adapter, an OpenAI fine-tune, an Azure deployment),
  given only the task's system prompt (what it was trained on).
- rag: the same base model it started from, given the k most similar training examples as few-shot
  turns, retrieved from a Chroma index of the training file through a LangChain retriever.
- base: that base model with the system prompt alone.

    python -m assistant.contenders RUN_ID "Title: ...\n\nIngredients: [...]\n\nGeneric ingredients: "
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from assistant.backends import ChatBackend, Usage, create_backend
from assistant.vectorstore import chroma_client, langchain_store, open_collection
from training.backends import training_backend
from training.errors import TutorError
from training.evaluation import Case, chat_triples
from training.models import display_name
from training.settings import Settings

BASELINES = ("rag", "base")
MODEL_KINDS = {"local-adapter": "local"}  # a registry model's kind, where it is not its training backend's name
MAX_ANSWER_TOKENS = 160
MAX_PROMPT_CHARS = 8000  # a recipe prompt is a few hundred characters; the models' context is 2048 tokens
_index_lock = threading.Lock()


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
        client = chroma_client(self.settings)
        with _index_lock:  # two sessions opening the same run must not index it twice
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
            self.build()
        return [(doc.page_content, doc.metadata["answer"]) for doc in self._retriever.invoke(prompt)]


@dataclass
class Contender:
    """One side of a comparison: a label, the backend that answers, and how its prompt is built."""

    label: str
    kind: str  # "fine-tuned", "rag" or "base"
    backend: ChatBackend
    index: ExampleIndex | None = None

    async def messages(self, case: Case) -> list[dict]:
        messages = [{"role": "system", "content": case.system}]
        if self.index is not None:
            for user, answer in await asyncio.to_thread(self.index.examples, case.prompt):
                messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        return messages + [{"role": "user", "content": case.prompt}]

    async def stream(self, case: Case, usage: Usage) -> AsyncIterator[str]:
        messages = await self.messages(case)
        async for piece in self.backend.stream(messages, temperature=0.0, max_tokens=MAX_ANSWER_TOKENS, usage=usage):
            yield piece

    async def answer(self, case: Case) -> tuple[str, dict]:
        """The whole answer and its usage, for evaluation."""
        usage = Usage()
        text = "".join([piece async for piece in self.stream(case, usage)])
        return text, {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                      "latency_s": usage.latency_s, "ttft_s": usage.ttft_s}


def too_long(text: str) -> str | None:
    """Why a message is too long to send to a recipe model, or None."""
    if len(text) <= MAX_PROMPT_CHARS:
        return None
    return (f"That message is {len(text):,} characters; a recipe prompt is a few hundred and the models read at most "
            f"about {MAX_PROMPT_CHARS:,}. Send one recipe.")


def model_for_run(registry, run_id: str, owner: str | None = None) -> dict:
    """The registry's model row of a finished run of `owner` (None: anyone's): the adapter or OpenAI fine-tune."""
    for model in registry.models(owner):
        if run_id in (model["run_id"], model["id"]):
            return model
    run = registry.run(run_id, owner)
    if run is None:
        raise TutorError(f"No run or model named '{run_id}' among yours. `tutor jobs list` shows them.")
    if next_step := (run.get("metrics") or {}).get("next_step"):  # e.g. an Azure fine-tune not deployed yet
        raise TutorError(f"Run '{run_id}' has no model to call yet. {next_step}")
    raise TutorError(f"Run '{run_id}' has no model yet (it is {run['status']}).")


def _trainer(model: dict, settings: Settings):
    """The training backend that made a registry model: it names the chat backend its models answer through."""
    return training_backend(MODEL_KINDS.get(model["kind"], model["kind"]), settings)


def fine_tuned(model: dict, settings: Settings) -> Contender:
    backend = create_backend(_trainer(model, settings).chat_backend, settings, model=model["location"])
    return Contender(label=f"fine-tuned {model['run_id']}", kind="fine-tuned", backend=backend)


def baseline(model: dict, settings: Settings, kind: str = "rag", k: int = 3, train_file: str | None = None) -> Contender:
    """The base model the fine-tune started from, with k retrieved examples ("rag") or none ("base")."""
    if kind not in BASELINES:
        raise TutorError(f"Unknown baseline '{kind}': choose rag or base.")
    trainer = _trainer(model, settings)
    if trainer.chat_backend == "local":  # the base model loads in this process, as the one the settings name
        backend = create_backend("local", settings.model_copy(update={"base_model": model["base_model"]}))
    else:
        backend = create_backend(trainer.chat_backend, settings, model=trainer.baseline_model(model))
    base = display_name(model["base_model"])
    if kind == "base":
        return Contender(label=f"base {base}, no examples", kind="base", backend=backend)
    if not train_file:
        raise TutorError("The RAG baseline needs the run's training file, and this run does not record one.")
    return Contender(label=f"RAG baseline: base {base} + {k} retrieved examples", kind="rag",
                     backend=backend, index=ExampleIndex(settings, train_file, k))


def pair_for_run(registry, settings: Settings, run_id: str, kind: str = "rag", k: int = 3,
                 owner: str | None = None) -> tuple[Contender, Contender]:
    """(fine-tuned, baseline) for a run id or model id of `owner` (None: anyone's)."""
    model = model_for_run(registry, run_id, owner)
    run = registry.run(model["run_id"]) or {}
    return fine_tuned(model, settings), baseline(model, settings, kind, k, (run.get("config") or {}).get("train_file"))


if __name__ == "__main__":
    import sys

    from training.common import configure_process
    from training.registry import registry_for
    from training.settings import get_settings

    configure_process()
    settings = get_settings()
    case = Case(prompt=sys.argv[2], gold=[])
    for side in pair_for_run(registry_for(settings), settings, sys.argv[1]):
        print(side.label, "->", asyncio.run(side.answer(case)))
