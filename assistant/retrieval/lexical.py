"""Lexical retrieval for languages the embedding model cannot read: character n-gram TF-IDF, cosine scored.

The embedded MiniLM was trained on English only; on a Ukrainian question it ranks Ukrainian passages little
better than chance. Character n-grams inside words match a Ukrainian word in any of its inflected forms
("перенавчання", "перенавчанням", "перенавчанні" share most of theirs) without a stemmer or a model.
Used by the knowledge base (assistant/retrieval/knowledge.py) for Ukrainian questions.

    python -m assistant.retrieval.lexical "Що таке перенавчання?" knowledge/uk/*.md   # scores of whole files
"""

from __future__ import annotations

import math
import re
from collections import Counter

SIZES = (3, 4, 5)  # n-gram lengths: 3 catches short stems, 5 keeps long compounds apart
_WORD = re.compile(r"\w+")


def grams(text: str) -> Counter:
    """The character n-grams of each word, padded with spaces so that word starts and ends count."""
    counts: Counter = Counter()
    for word in _WORD.findall(text.lower()):
        padded = f" {word} "
        for size in SIZES:
            counts.update(padded[i:i + size] for i in range(max(1, len(padded) - size + 1)))
    return counts


class LexicalIndex:
    """TF-IDF vectors (sublinear term frequency, smoothed idf, unit length) of a fixed list of texts."""

    def __init__(self, texts: list[str]):
        documents = [grams(text) for text in texts]
        frequency = Counter(gram for document in documents for gram in document)
        self.idf = {gram: math.log((1 + len(texts)) / (1 + count)) + 1 for gram, count in frequency.items()}
        self.vectors = [self._vector(document) for document in documents]

    def _vector(self, counts: Counter) -> dict[str, float]:
        weights = {gram: (1 + math.log(n)) * self.idf[gram] for gram, n in counts.items() if gram in self.idf}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        return {gram: w / norm for gram, w in weights.items()}

    def scores(self, query: str) -> list[float]:
        """Cosine similarity of the query to each text, in the texts' order (0 to 1)."""
        query_vector = self._vector(grams(query))
        return [sum(weight * vector.get(gram, 0.0) for gram, weight in query_vector.items())
                for vector in self.vectors]


if __name__ == "__main__":
    import sys
    from pathlib import Path

    question, *files = sys.argv[1:]
    index = LexicalIndex([Path(file).read_text(encoding="utf-8") for file in files])
    for score, file in sorted(zip(index.scores(question), files), reverse=True):
        print(f"{score:.3f}  {file}")
