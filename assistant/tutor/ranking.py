"""Ranking retrieved passages again by what their headings name, and by what the conversation already showed.

Embeddings (MiniLM) and n-grams rank a passage by its whole text; a learner's question is usually about one section,
which its heading names. Of the candidates retrieved for a question (CANDIDATES times the passages shown), each score
is multiplied by:
- 1 + TERMS x (how many of the question's topics the heading names, the leading one counting twice, and how much of
  the heading they are) / 2: "LoRA rank, alpha and dropout" for "How do I choose LoRA rank?";
- 1 + WORDS x the share of the question's own words (past its topics) the heading has: "Fixing overfitting" for
  "overfitting: and how do I fix it?";
- OVERVIEW for a file's opening overview (its heading is the file's title), not the section on the question, and
  OVERVIEW_FOLLOW_UP for a follow-up, which goes deeper than the overview of its topic;
- SHOWN_AGAIN, for a follow-up, for the section the last answer was built on: a follow-up moves on;
- NOT_SWITCHED_TO, when the learner switched to a subject of its own ("And QLoRA?"), for a section whose heading
  doesn't name it.
benchmarks/conversation.py measured the weights (answering each turn alone gains from them too).

    ranked = rerank(passages, understood, shown=last_key_passage, knowledge=Path("knowledge"))
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from assistant.retrieval.knowledge import Passage
from assistant.tutor.conversation import Understood, is_acronym, named_terms

CANDIDATES = 3
TERMS = 1.0
WORDS = 0.6
OVERVIEW = 0.85
OVERVIEW_FOLLOW_UP = 0.6
SHOWN_AGAIN = 0.8
NOT_SWITCHED_TO = 0.8
_WORD = re.compile(r"[^\W\d_][\w'-]*")
_SKIP = frozenset("""how what when which who why does did can could should would will the and for with about into
from that this these those its it they them their you your are was were have has had get got use used using more
need needs want make there here than then also just some any our my me do is be an of to in on at as or if so
як що чи це цей ця ці його її їх для про при але або щоб коли тому так вже ще мені мій моя мої ви вам ваш""".split())


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _SKIP]


def _shares(word: str, heading_words: list[str]) -> bool:
    """One word of the question found in the heading, by its first letters ("fix" / "fixing", "limits" / "limit")."""
    stem = word[:max(3, min(5, len(word) - 2))]
    return any(h.startswith(stem) for h in heading_words)


def rerank(found: list[Passage], understood: Understood, keep: int, shown: Passage | None = None,
           knowledge: Path | None = None) -> list[Passage]:
    """The `keep` best of `found` by the factors above; the first keeps the best retrieval score (the relevance
    threshold is about the notes, not the order)."""
    if not found:
        return []
    language, root = understood.language, {"knowledge": knowledge} if knowledge else {}
    terms = named_terms(understood.query, language, **root)
    lead = named_terms(understood.topic, language, **root)[:1] if understood.topic else []
    weights = {t: 2 if t in lead else 1 for t in terms}
    switched = lead if understood.kind == "switch" and lead and is_acronym(lead[0]) else []
    topic_words = {w for t in terms for w in _words(t)}
    asked = [w for w in _words(understood.question) if w not in topic_words]

    def score(passage: Passage) -> float:
        heading = _words(passage.heading)
        factor = 1.0
        if terms:
            named = [t for t in named_terms(passage.heading, language, **root) if t in weights]
            share = min(1.0, sum(len(t.split()) for t in named) / (len(passage.heading.split()) or 1))
            factor += TERMS * (sum(weights[t] for t in named) / sum(weights.values()) + share) / 2
        if asked:
            factor += WORDS * sum(_shares(w, heading) for w in asked) / len(asked)
        if passage.heading == passage.title:
            factor *= OVERVIEW if understood.follow_up_of is None else OVERVIEW_FOLLOW_UP
        if shown is not None and (passage.path, passage.heading) == (shown.path, shown.heading):
            factor *= SHOWN_AGAIN
        if switched and switched[0] not in named_terms(passage.heading, language, **root):
            factor *= NOT_SWITCHED_TO
        return passage.score * factor

    kept = sorted(found, key=score, reverse=True)[:keep]
    return [replace(kept[0], score=max(kept[0].score, found[0].score)), *kept[1:]]
