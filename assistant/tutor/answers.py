"""The tutor: answers questions about fine-tuning, grounded in knowledge/ and always with sources.

One code path serves the chat and the CLI (`tutor ask "What is LoRA?" --json`):
    reply = await tutor.ask(question)      # checks the input, retrieves passages
    async for piece in reply: ...          # streams the answer
    reply.sources                          # [Passage(path, heading, text, score)]

Grounding depends on the backend:
- local: the answer is built from the passages themselves: the key passage of the best section [1],
  then the sentence of each other retrieved section that best matches the question [2], [3]. The
  local model then writes an "In short" summary of the key passage, and each of its sentences is kept
  only when `is_supported` finds its content words and numbers in the passages. Measured on the
  embedded SmolLM2-135M (benchmarks/grounding.py), the model's free text is mostly invented, so the
  filter drops most of it; a bigger local base model gets more of its summary through.
- openai (a capable model): the answer is fully generated from the numbered passages, citing them,
  in the learner's language.

Language: a Ukrainian question is answered from the Ukrainian notes (knowledge/uk/), with Ukrainian labels
(assistant/i18n.py). Offline, that answer is the passages alone: the embedded model writes English only, so
it writes no summary under a Ukrainian answer.
"""

from __future__ import annotations

import asyncio
import re
import time
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from assistant.i18n import text
from assistant.inference.backends import ChatBackend, create_backend
from assistant.retrieval.grounding import SENTENCE_END, best_sentence, is_grounded, sentences
from assistant.retrieval.knowledge import KnowledgeBase, Passage
from assistant.tutor.conversation import REQUESTS, Conversation, Turn, Understood, named_terms, request_kind, understand
from assistant.tutor.follow_ups import answer_request
from assistant.tutor.ranking import CANDIDATES, rerank
from training.base.errors import TutorError
from training.base.settings import Settings

MAX_QUESTION_CHARS = 4000
# Per language, the score (knowledge.search) under which the best passage is not about the question at all:
# MiniLM cosine in English; character n-gram cosine in Ukrainian (benchmarks/retrieval_uk.py: its on-topic
# questions score 0.14 and more, its off-topic ones 0.10 at most).
MIN_RELEVANCE = {"en": 0.25, "uk": 0.12}
LEAD_CHARS = 700

LOCAL_SYSTEM = "You are a helpful tutor who explains how to fine-tune language models."
LOCAL_USER = "{text}\n\nBased on the text above, answer in one or two short sentences: {question}"
SUMMARY_TOKENS = 60  # "one or two short sentences"
# The summary is the one optional, slow part of a local answer: with this many answers already being generated
# on the shared model it is left out, and it ends wherever it is once the answer has taken SUMMARY_BUDGET_S,
# so that a class asking at once gets the grounded answer in seconds.
SUMMARY_MAX_LOAD = 3
SUMMARY_BUDGET_S = 8.0
CONDENSE_SYSTEM = ("Rewrite the learner's last message as one standalone question about fine-tuning that can be "
                   "understood without the conversation: name what its pronouns refer to. Reply with the question "
                   "only, in the language of the message.")
CONDENSE_TOKENS = 64
REMOTE_SYSTEM = ("You are Fine-Tuning Tutor, who teaches learners how and when to fine-tune language models. "
                 "Answer the question using only the numbered notes below, citing them like [1] or [2]. "
                 "If the notes do not cover the question, say so briefly. Be concise and concrete. "
                 "Always answer in the language the question is written in.")

def clean_question(text: str | None) -> str:
    """Strip control characters and whitespace; reject empty and oversized input with a clear reason."""
    text = "".join(ch for ch in (text or "") if ch in "\n\t" or unicodedata.category(ch)[0] != "C").strip()
    if not text:
        raise TutorError("Please type a question about fine-tuning, for example: “What is LoRA?” "
                         "or “When should I fine-tune instead of using RAG?”")
    if len(text) > MAX_QUESTION_CHARS:
        raise TutorError(f"That message is {len(text):,} characters long; I take questions of up to "
                         f"{MAX_QUESTION_CHARS:,} characters. Ask about one thing at a time, "
                         "for example “How many training examples do I need?”")
    return text


def mostly_non_latin(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return bool(letters) and sum(not ch.isascii() for ch in letters) / len(letters) > 0.3


def key_passage(passage: Passage) -> str:
    """The opening of the best passage, cut at a paragraph or sentence boundary."""
    text = passage.text.strip()
    if len(text) <= LEAD_CHARS:
        return text
    cut = text.rfind("\n\n", 0, LEAD_CHARS)
    if cut < LEAD_CHARS // 3:
        cut = max(text.rfind(". ", 0, LEAD_CHARS) + 1, LEAD_CHARS // 3)
    return text[:cut].strip()


def notes_block(passages: list[Passage]) -> str:
    return "\n\n".join(f"[{i}] {p.heading} ({p.path})\n{p.text}" for i, p in enumerate(passages, 1))


@dataclass
class TutorReply:
    """A streamed answer; iterate it once, then `text` holds the whole answer."""

    question: str
    sources: list[Passage]
    pieces: AsyncIterator[str]
    language: str = "en"
    understood: Understood | None = None  # what the question was taken as, after the conversation so far
    text: str = field(default="", init=False)

    async def __aiter__(self):
        async for piece in self.pieces:
            self.text += piece
            yield piece

    def to_dict(self) -> dict:
        understood = self.understood
        return {"answer": self.text.strip(), "sources": [p.as_source() for p in self.sources],
                "language": self.language, "understood_as": understood.kind if understood else "new",
                "follow_up_of": understood.follow_up_of if understood else None,
                "searched": understood.query if understood else self.question}

    def record(self, conversation: Conversation) -> None:
        """Add this answered turn to the conversation (after the answer was streamed)."""
        if self.understood is not None:
            conversation.add(self.understood, self.sources, self.text)


class Tutor:
    def __init__(self, settings: Settings, knowledge: KnowledgeBase):
        self.settings = settings
        self.knowledge = knowledge
        self._summaries = 0  # local summaries being generated now (see SUMMARY_MAX_LOAD)

    async def ask(self, question: str, *, conversation: Conversation | None = None, backend: str | None = None,
                  temperature: float | None = None) -> TutorReply:
        """Answer `question` as the next turn of `conversation` (a first question without one). The caller
        records the answered turn with `reply.record(conversation)`."""
        question = clean_question(question)
        chat = create_backend(backend or self.settings.effective_backend, self.settings)
        if reason := chat.unavailable_reason():
            raise TutorError(reason)
        temperature = self.settings.temperature if temperature is None else temperature
        started = time.monotonic()
        conversation = conversation or Conversation()
        understood = understand(conversation, question, knowledge=self.knowledge.root)
        language, last = understood.language, conversation.last
        if understood.kind in REQUESTS and last is not None and last.sources:
            if chat.name == "local":
                sources, answer = await asyncio.to_thread(answer_request, self.knowledge, understood, last)
                return TutorReply(question, sources, _said(answer), language, understood)
            return TutorReply(question, last.sources, self._generated(question, last.sources, chat, temperature,
                                                                      conversation), language, understood)
        if last is None and request_kind(question, language) and not understood.topic:  # "simpler", nothing said yet
            return TutorReply(question, [], _said(text("tutor.nothing_yet", language)), language, understood)
        if chat.name != "local" and conversation.turns:
            understood = understood.model_copy(update={"query": await self._condense(conversation, question, chat)})
        passages = await asyncio.to_thread(self._search, understood, last)
        # Below the threshold the notes don't cover the question, unless it names one of their topics ("And DPO?").
        covered = passages and (passages[0].score >= MIN_RELEVANCE[language]
                                or named_terms(question, language, self.knowledge.root))
        if not covered:
            return TutorReply(question, [], self._not_covered(language), language, understood)
        if chat.name == "local":
            deadline = started + SUMMARY_BUDGET_S
            return TutorReply(question, passages, self._grounded_local(question, passages, chat, temperature,
                                                                       deadline, language), language, understood)
        return TutorReply(question, passages, self._generated(question, passages, chat, temperature, conversation),
                          language, understood)

    def _search(self, understood: Understood, last: Turn | None = None) -> list[Passage]:
        """The passages for the question, ranked again by what their headings name (assistant/tutor/ranking.py)."""
        found = self.knowledge.search(understood.query, k=self.settings.top_k * CANDIDATES,
                                      language=understood.language)
        shown = last.sources[0] if last and last.sources and understood.follow_up_of is not None else None
        return rerank(found, understood, self.settings.top_k, shown, self.knowledge.root)

    async def _condense(self, conversation: Conversation, question: str, chat: ChatBackend) -> str:
        """The follow-up as a standalone question, written by the model from the bounded history; the rule-based
        query if the model gives nothing back."""
        messages = [{"role": "system", "content": CONDENSE_SYSTEM}, *conversation.history(),
                    {"role": "user", "content": f"Rewrite as a standalone question: {question}"}]
        written = ""
        async for piece in chat.stream(messages, temperature=0.0, max_tokens=CONDENSE_TOKENS):
            written += piece
        written = " ".join(written.split())
        return written or understand(conversation, question, knowledge=self.knowledge.root).query

    async def answer(self, question: str, **options) -> dict:
        """The whole answer as {"answer", "sources", "language"}: what `tutor ask --json` prints."""
        reply = await self.ask(question, **options)
        async for _ in reply:
            pass
        return reply.to_dict()

    async def _not_covered(self, language: str) -> AsyncIterator[str]:
        topics = await asyncio.to_thread(self.knowledge.topics, language)
        yield text("tutor.not_covered", language, topics="; ".join(topics))

    async def _grounded_local(self, question, passages, chat: ChatBackend, temperature,
                              deadline: float, language: str) -> AsyncIterator[str]:
        if language == "en" and mostly_non_latin(question):
            yield text("tutor.english_only", language) + "\n\n"
        best, *others = passages
        lead = key_passage(best)
        yield f"**{best.heading}** [1]\n\n"
        for part in re.findall(r".+?(?:[.!?:]\s+|$)", lead, flags=re.DOTALL):  # sentence by sentence
            yield part
        yield "\n\n"
        minimum = MIN_RELEVANCE[language]
        related = [(i, p) for i, p in enumerate(others, 2) if p.score >= minimum and p.heading != best.heading]
        if related:
            picks = await asyncio.to_thread(lambda: [(i, best_sentence(question, p, language)) for i, p in related[:2]])
            yield f"**{text('tutor.also_in_notes', language)}**\n" + "".join(f"- {s} [{i}]\n" for i, s in picks) + "\n"
        if language != "en":  # the embedded model would summarise a Ukrainian passage in English
            return
        # Counted here, not only by the engine: a class asking at once must not all pass the check before
        # any of them has reached the model.
        if self._summaries >= SUMMARY_MAX_LOAD or chat.load() >= SUMMARY_MAX_LOAD:
            return
        self._summaries += 1
        try:
            async for part in self._summary(question, lead, passages, chat, temperature, deadline):
                yield part
        finally:
            self._summaries -= 1

    async def _summary(self, question, lead, passages, chat: ChatBackend, temperature,
                       deadline: float) -> AsyncIterator[str]:
        """The model's one-or-two-sentence summary, kept sentence by sentence while the notes support it and
        the answer is within its time budget."""
        opening = " ".join(sentences(lead)[:3])
        messages = [{"role": "system", "content": LOCAL_SYSTEM},
                    {"role": "user", "content": LOCAL_USER.format(text=opening, question=question)}]
        # Sentence by sentence; the first one the notes don't support ends the summary, and the generation
        # with it: what follows an invented sentence is not trusted either, and the shared model is freed.
        pending, started = "", False
        stream = chat.stream(messages, temperature=temperature, max_tokens=SUMMARY_TOKENS)
        try:
            while True:
                # The budget holds while the model is still queued or between tokens, not only per token.
                try:
                    piece = await asyncio.wait_for(anext(stream), deadline - time.monotonic())
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    return  # out of time: a half-written sentence is not shown
                pending += piece
                *complete, pending = SENTENCE_END.split(pending)
                for sentence in complete:
                    if (kept := await asyncio.to_thread(self._keep, sentence, passages, lead)) is False:
                        return
                    if kept:
                        yield ("**In short:** " if not started else " ") + kept
                        started = True
        finally:
            await stream.aclose()
        # What the token budget cut mid-sentence is not shown: the summary ends at its last whole sentence.
        if pending.rstrip().endswith((".", "!", "?")) and (
                kept := await asyncio.to_thread(self._keep, pending, passages, lead)):
            yield ("**In short:** " if not started else " ") + kept

    @staticmethod
    def _keep(sentence: str, passages: list[Passage], lead: str) -> str | None | bool:
        """The sentence to show; None to pass over it (empty, or a repeat of what the learner just read);
        False when the notes do not support it."""
        sentence = " ".join(sentence.split())
        if not sentence or sentence in " ".join(lead.split()):
            return None
        return sentence if is_grounded(sentence, passages) else False

    async def _generated(self, question, passages, chat: ChatBackend, temperature,
                         conversation: Conversation) -> AsyncIterator[str]:
        messages = [{"role": "system", "content": f"{REMOTE_SYSTEM}\n\nNotes:\n{notes_block(passages)}"},
                    *conversation.history(), {"role": "user", "content": question}]
        async for piece in chat.stream(messages, temperature=temperature, max_tokens=self.settings.max_new_tokens):
            yield piece


async def _said(answer: str) -> AsyncIterator[str]:
    """A ready answer, streamed a paragraph at a time like the others."""
    for part in re.findall(r".+?(?:\n\n|$)", answer, flags=re.S):
        yield part


def format_sources(sources: list[Passage], language: str = "en", panel: str | None = None) -> str:
    """The 'Sources' footer shown under an answer in chat (naming its own side panel of passages) and in the
    CLI's text output."""
    if not sources:
        return ""
    lines = [f"[{i}] {p.path} › {p.heading}" for i, p in enumerate(sources, 1)]
    heading = text("tutor.sources", language, panel=panel or text("app.passages", language))
    return f"\n\n{heading}\n" + "\n".join(f"- {line}" for line in lines)
