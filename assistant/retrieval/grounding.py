"""Grounding checks: does a sentence say only what the notes say, and which sentence of a passage fits a question.

The local tutor shows the model's "In short" summary sentence by sentence, each only while `is_grounded` finds
it in the passages: its content words, numbers and technical terms (these spelled exactly so) are there
(`is_supported`) and it paraphrases one source sentence (MiniLM cosine ≥ PARAPHRASE_SIMILARITY).
benchmarks/grounding.py measures what the checks let through.

    python -m benchmarks.grounding
"""

from __future__ import annotations

import re

from assistant.retrieval.knowledge import Passage
from assistant.retrieval.lexical import LexicalIndex

# Cosine similarity at which a model sentence counts as a paraphrase of a source sentence.
PARAPHRASE_SIMILARITY = 0.8
_STOPWORDS = frozenset("""
this that with from have will your they them their there what when which while where into than then such only
also more most some many much very each other about over under does done been being were like just make made
using used uses need needs these those because could would should here after before
""".split())
_WORD = re.compile(r"[a-z0-9]+")
_TOKEN = re.compile(r"[^\W_]+")  # letters and digits, any script: "LoRA's" is LoRA and s, "bnb_4bit" bnb and 4bit
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if len(w) > 3 and w not in _STOPWORDS]


def technical_terms(text: str) -> set[str]:
    """Words with a capital letter after their first character: LoRA, QLoRA, PEFT, JSONL, GPU, SmolLM2, 135M, and
    their misspellings (LoRa, LoR). A capitalised word (The, Quantized, Hugging) is not one, nor are "A" and "I"."""
    return {token for token in _TOKEN.findall(text) if any(c.isupper() for c in token[1:])}


def unknown_terms(sentence: str, source_text: str) -> set[str]:
    """The sentence's technical terms that the sources do not contain as whole words, case and all (LoR is not
    LoRA, LoRa is not LoRA); a plural s is allowed (GPUs where the sources say GPU)."""
    known = set(_TOKEN.findall(source_text))
    return {term for term in technical_terms(sentence)
            if term not in known and not (term.endswith("s") and term[:-1] in known)}


def is_supported(sentence: str, source_text: str, threshold: float = 0.85) -> bool:
    """True when a sentence says nothing the sources don't: its numbers all occur there, its technical terms
    too, spelled exactly as there, and nearly all of its content words (compared by 5-letter stem). Short fragments
    are not kept. The stems alone let through a misspelled or truncated term: "LoRa" stems as the sources' "LoRA",
    and "LoR", three letters, is no content word at all."""
    words = content_words(sentence)
    if len(words) < 4:
        return False
    if not set(re.findall(r"\d+", sentence)) <= set(re.findall(r"\d+", source_text)):
        return False
    if unknown_terms(sentence, source_text):
        return False
    stems = {w[:5] for w in content_words(source_text)}
    return sum(w[:5] in stems for w in words) / len(words) >= threshold


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def similarities(text: str, candidates: list[str]) -> list[float]:
    """Cosine similarity of text to each candidate (MiniLM, unit vectors; the candidates' vectors cached)."""
    from assistant.retrieval.embeddings import encode, sentences

    [first] = encode([text])
    return (sentences.encode(candidates) @ first).tolist()


def best_sentence(question: str, passage: Passage, language: str = "en") -> str:
    """The sentence of a passage closest to the question: in meaning (MiniLM) in English, in character
    n-grams in Ukrainian, which MiniLM cannot read."""
    candidates = [s for s in sentences(passage.text) if len(s) > 30] or [passage.text]
    scores = similarities(question, candidates) if language == "en" else LexicalIndex(candidates).scores(question)
    return candidates[scores.index(max(scores))]


def is_grounded(sentence: str, passages: list[Passage]) -> bool:
    """A model sentence is kept only if it passes `is_supported` and paraphrases one source sentence:
    recombining source words into a new claim passes the first test but not the second."""
    source_text = "\n".join(p.text for p in passages)
    if not is_supported(sentence, source_text):
        return False
    source_sentences = [s for p in passages for s in sentences(p.text)]
    return max(similarities(sentence, source_sentences)) >= PARAPHRASE_SIMILARITY
