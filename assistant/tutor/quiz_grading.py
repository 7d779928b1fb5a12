"""Grading a free-text answer against a question's key facts, offline, by keyword and by meaning.

Each fact is a short phrase with keywords or synonyms that name it. An answer names a fact

- by keyword, in any language: a keyword's words in order within one clause, at most GAP other words among them
  (none of another fact's), compared by prefix stems (at least STEM letters, the word less its last 3: "заморожені"
  and "заморожують" share "заморож"), and not just after a "not" unless the keyword says "not" itself;
- by meaning, in English (MiniLM reads no Ukrainian): a clause of the answer paraphrases the fact (cosine of the
  project's MiniLM vectors, the grounding checks' cache, ≥ MEANING_SIMILARITY), goes the same way (rises or falls),
  is negated alike, names nothing that belongs to another of the question's facts ("training loss rises" is no
  paraphrase of "validation loss rises") and says more than the question did. MiniLM alone scores "raise the
  learning rate" 0.91 against "lower the learning rate": the checks after it are what keep opposites out.

Every fact named: right; some: partly right; none: wrong. Used by assistant/tutor/quiz.py, whose banks hold the facts:

    python -m assistant.tutor.quiz lora-how "LoRA freezes W and trains two low-rank matrices"   # grades one answer
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

Grade = Literal["right", "partly", "wrong"]
MEANING_SIMILARITY = 0.7  # MiniLM cosine of a clause and a fact: paraphrases scored 0.71-0.9, other claims below 0.6
STEM, GAP, NEGATED_GAP = 5, 4, 2  # shortest stem; words a keyword's may have among them (a "not ..." one: fewer)
ENDS = frozenset(".;:!?")  # a keyword's words are in one clause
NEGATIONS = frozenset(["not", "no", "never", "without", "cannot", "can't", "don't", "doesn't", "isn't", "aren't",
                       "won't", "didn't", "nor", "не", "ні", "ніколи", "без", "немає"])
UP = (frozenset(["rise", "rose", "grow", "grew", "up", "more"]),  # (words, stems) of "rises"
      ("rises", "risen", "rising", "increas", "growi", "grows", "climb", "raise", "higher", "bigger", "larger"))
DOWN = (frozenset(["fall", "fell", "drop", "down", "less"]),  # and of "falls", by MiniLM read alike
        ("falls", "falli", "fallen", "decreas", "drops", "dropp", "lower", "reduc", "fewer", "declin", "shrink",
         "smaller"))
_WORD = re.compile(r"\w+(?:'\w+)*|[.;:!?](?=\s|$)")  # words, and the ends of clauses
_CLAUSE = re.compile(r"[.;:!?,\n]+|\b(?:and|while|but|whereas|so)\b", re.IGNORECASE)


class Fact(BaseModel):
    """A key fact of a model answer, as the bank words it, and the keywords that name it in an answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    fact: str
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Graded:
    grade: Grade
    found: tuple[str, ...]  # the facts named, as the bank words them
    missing: tuple[str, ...]


def words(text: str) -> list[str]:
    return _WORD.findall(re.sub(r"[’ʼ`]", "'", text.lower()))


def _stem(word: str) -> str:
    return word[:max(STEM, len(word) - 3)]


def _same(word: str, key: str) -> bool:
    """Whether an answer's word is a keyword's word: numbers exactly, short words with up to 2 letters of ending
    (loss, losses), longer ones when the answer's stem starts with the keyword's (validation, validate) or, shorter
    by 2 letters at most, starts it (forget, forgetting)."""
    if key.isdigit() or word.isdigit():
        return word == key
    if len(key) < STEM:
        return word.startswith(key) and len(word) - len(key) <= 2
    said, meant = _stem(word), _stem(key)
    return len(word) >= STEM and (said.startswith(meant) or meant.startswith(said) and len(meant) - len(said) <= 2)


def says(answer: list[str], keyword: str, foreign: frozenset[str] = frozenset()) -> bool:
    """Whether the answer's words say the keyword: its words in order in one clause, at most GAP extra words in all
    (NEGATED_GAP after a "not"), none of them `foreign` (the words of another fact: "training loss, validation loss
    falls" does not say "training loss falls"), and no negation in the three words before it (unless the keyword
    starts with one: "not changed")."""
    wanted = words(keyword)
    for start in (i for i, word in enumerate(answer) if wanted and _same(word, wanted[0])):
        position, end = start, start + len(wanted) + (NEGATED_GAP if wanted[0] in NEGATIONS else GAP)
        for key in wanted[1:]:
            found = next((j for j in range(position + 1, min(end, len(answer))) if _same(answer[j], key)), None)
            skipped = answer[position + 1:found] if found is not None else []
            if found is None or ENDS & set(skipped) or any(_same(w, other) for w in skipped for other in foreign):
                break
            position = found
        else:
            if wanted[0] in NEGATIONS or not NEGATIONS & set(answer[max(0, start - 3):start]):
                return True
    return False


def _foreign(facts: tuple[Fact, ...]) -> list[frozenset[str]]:
    """Per fact, the longer words that only the question's other facts use."""
    own = [{word for phrase in (f.fact, *f.keywords) for word in words(phrase) if len(word) >= STEM} for f in facts]
    return [frozenset(set().union(*own[:i], *own[i + 1:]) - mine) for i, mine in enumerate(own)]


def _direction(text: str) -> set[str]:
    return {name for word in words(text) for name, (exact, stems) in (("up", UP), ("down", DOWN))
            if word in exact or word.startswith(stems)}


def clauses(text: str) -> list[str]:
    """The parts of an answer compared with the facts by meaning: its clauses of two words or more."""
    return [c.strip() for c in _CLAUSE.split(text) if c and len(words(c)) >= 2]


def _by_meaning(question: str, facts: list[str], answer: str, missing: list[int]) -> set[int]:
    """The missing facts some clause of an English answer paraphrases (see the module's docstring)."""
    from assistant.retrieval.embeddings import sentences
    from assistant.retrieval.grounding import content_words

    def stems(text: str) -> set[str]:
        return {word[:5] for word in content_words(text)}

    asked, own = stems(question), [stems(fact) for fact in facts]
    parts = [c for c in clauses(answer) if not stems(c) <= asked]  # the question said again is no answer
    if not parts:
        return set()
    scores = sentences.encode(parts) @ sentences.encode(facts).T  # MiniLM cosines (unit vectors), in one batch
    found = set()
    for clause, row in zip(parts, scores):
        negated = bool(NEGATIONS & set(words(clause)))
        for i in missing:
            others = set().union(*(own[j] for j in range(len(facts)) if j != i)) - own[i]
            if (row[i] >= MEANING_SIMILARITY and _direction(clause) == _direction(facts[i])
                    and negated == bool(NEGATIONS & set(words(facts[i]))) and not stems(clause) & others):
                found.add(i)
    return found


def grade(question: str, facts: tuple[Fact, ...], answer: str, language: str) -> Graded:
    """How many of a question's key facts an answer names: all (right), some (partly), none (wrong)."""
    said, foreign, names = words(answer), _foreign(facts), [fact.fact for fact in facts]
    found = {i for i, fact in enumerate(facts) if any(says(said, k, foreign[i]) for k in (fact.fact, *fact.keywords))}
    missing = [i for i in range(len(facts)) if i not in found]
    if language == "en" and missing and said:
        found |= _by_meaning(question, names, answer, missing)
    verdict = "right" if len(found) == len(names) else "partly" if found else "wrong"
    return Graded(verdict, tuple(n for i, n in enumerate(names) if i in found),
                  tuple(n for i, n in enumerate(names) if i not in found))
