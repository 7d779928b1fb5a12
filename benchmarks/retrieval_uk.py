"""Ukrainian retrieval offline: the knowledge base's character n-gram search against MiniLM embeddings, as
English questions are answered, over the same Ukrainian passages.

The 16 questions of benchmarks/grounding.py, in Ukrainian. The right topic for each is the file its English
question retrieves first (knowledge/<name>.md), in Ukrainian: knowledge/uk/<name>.md; strict, since a
glossary entry can answer "Що таке LoRA?" too. Counted: the right topic first (top-1) and among the 3
passages the tutor shows (top-3). Off-topic Ukrainian questions show the best score they reach, under
which the tutor says its notes do not cover a question (MIN_RELEVANCE["uk"]).

    python -m benchmarks.retrieval_uk
"""

import tempfile
from pathlib import Path

import numpy

from assistant.retrieval.embeddings import encode
from assistant.retrieval.knowledge import KnowledgeBase
from assistant.tutor.answers import MIN_RELEVANCE
from benchmarks.grounding import CASES
from training.base.settings import load_settings

QUESTIONS_UK = [
    "Що таке LoRA?",
    "Що QLoRA додає до LoRA?",
    "Скільки навчальних прикладів мені потрібно?",
    "Що таке катастрофічне забування?",
    "Як помітити перенавчання?",
    "Як виглядає рядок навчальних даних у форматі chat JSONL?",
    "Коли варто використовувати RAG замість тонкого налаштування?",
    "Чому few-shot промпти стають дорогими?",
    "Яку швидкість навчання обрати для LoRA?",
    "Що таке епоха?",
    "Що таке кероване тонке налаштування?",
    "Як оцінити вартість завдання тонкого налаштування?",
    "Чим тонке налаштування відрізняється від попереднього навчання?",
    "Як оцінювати тонко налаштовану модель?",
    "Що видобуває асистент рецептів?",
    "Що таке ранг r у LoRA?",
]
OFF_TOPIC_UK = ["Яка погода буде завтра в Києві?", "Хто написав роман «Тигролови»?",
                "Скільки коштує квиток на потяг до Львова?", "Як полагодити велосипедний ланцюг?"]


def hits(ranked: list[list[str]], expected: list[str]) -> tuple[float, float]:
    top1 = sum(paths[:1] == [want] for paths, want in zip(ranked, expected)) / len(expected)
    top3 = sum(want in paths[:3] for paths, want in zip(ranked, expected)) / len(expected)
    return top1, top3


def minilm_top3(passages) -> list[list[str]]:
    """The baseline: the Ukrainian passages embedded with MiniLM, as English ones are, ranked by cosine."""
    vectors = numpy.array(encode([p.embedded_text for p in passages]))
    ranked = []
    for question in QUESTIONS_UK:
        scores = vectors @ numpy.array(encode([question])[0])
        ranked.append([passages[i].path for i in scores.argsort()[::-1][:3]])
    return ranked


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(load_settings(_env_file=None, data_dir=Path(tmp) / "data"))
        kb.sync()
        expected = ["knowledge/uk/" + kb.search(question, k=1, language="en")[0].path.split("/")[-1]
                    for question, _ in CASES]
        ours = [kb.search(q, k=3, language="uk") for q in QUESTIONS_UK]
        dense = minilm_top3(kb._lexical("uk")[0])
        off_topic = [kb.search(q, k=1, language="uk")[0].score for q in OFF_TOPIC_UK]
    ranked = [[p.path for p in passages] for passages in ours]
    project, baseline = hits(ranked, expected), hits(dense, expected)
    for question, want, got in zip(QUESTIONS_UK, expected, ranked):
        print(f"{'ok  ' if got[:1] == [want] else 'MISS'} {question}  ->  {got[0]} (want {want})")
    on_topic = [passages[0].score for passages in ours]
    print(f"n-grams (project): top-1 {project[0]:.0%}, top-3 {project[1]:.0%}")
    print(f"MiniLM (baseline): top-1 {baseline[0]:.0%}, top-3 {baseline[1]:.0%}")
    print(f"best score: on-topic {min(on_topic):.3f} at least (median {sorted(on_topic)[len(on_topic) // 2]:.3f}); "
          f"off-topic {max(off_topic):.3f} at most; the tutor's threshold {MIN_RELEVANCE['uk']}")
    return {"name": f"Ukrainian retrieval offline ({len(QUESTIONS_UK)} questions: right topic first / among 3 shown)",
            "project": f"{project[0]:.0%} / {project[1]:.0%} (character n-grams)",
            "baseline": f"{baseline[0]:.0%} / {baseline[1]:.0%} (MiniLM, as for English)",
            "ratio": f"{project[1] / baseline[1]:.2f}x among 3 shown" if baseline[1] else "no baseline hit"}


if __name__ == "__main__":
    print(run())
