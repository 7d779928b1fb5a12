"""Grounding of the tutor's answers on the embedded SmolLM2-135M: the project's design vs plain RAG.

Plain RAG (the baseline) gives the same model the same top passages and lets it answer freely. The
project's design quotes the key passage, adds the best sentence of the other passages, and keeps
only the model sentences that pass `is_grounded` (see assistant/tutor/answers.py). For each answer we count:
- grounded share: of the answer's sentences (4+ content words), the share that `is_grounded` accepts
  against the retrieved passages (numbers and content words in the sources, and a paraphrase of one
  source sentence);
- key fact: the answer contains the fact a correct answer must mention (hand-written below);
- seconds per answer, and for the project the seconds to its first words (the targets: first words
  within 1 s, the whole answer's median within 3 s).

    python -m benchmarks.grounding
"""

import asyncio
import re
import statistics
import tempfile
import time
from pathlib import Path

from assistant.inference.backends import create_backend
from assistant.retrieval.grounding import content_words, is_grounded, sentences
from assistant.retrieval.knowledge import KnowledgeBase
from assistant.tutor.answers import Tutor
from training.base.settings import load_settings

CASES = [
    ("What is LoRA?", ["low-rank"]),
    ("What does QLoRA add to LoRA?", ["4-bit"]),
    ("How many training examples do I need?", ["10 ", "50", "100"]),
    ("What is catastrophic forgetting?", ["general abilit"]),
    ("How do I spot overfitting?", ["validation loss"]),
    ("What does a line of chat JSONL training data look like?", ["messages"]),
    ("When should I use RAG instead of fine-tuning?", ["fact", "document"]),
    ("Why does few-shot prompting get expensive?", ["token"]),
    ("What learning rate should I use for LoRA?", ["1e-4", "2e-4", "0.0001"]),
    ("What is an epoch?", ["pass"]),
    ("What is supervised fine-tuning?", ["pairs", "prompt"]),
    ("How do I estimate the cost of a fine-tuning job?", ["token"]),
    ("How is fine-tuning different from pre-training?", ["pre-train"]),
    ("How should I evaluate a fine-tuned model?", ["baseline", "held-out", "test"]),
    ("What does the recipe assistant extract?", ["ingredient"]),
    ("What is the LoRA rank r?", ["rank"]),
]
BASELINE_SYSTEM = "You are a helpful tutor who explains how to fine-tune language models."


def claims(answer: str) -> list[str]:
    """The answer's sentences that carry a claim, without markdown and citations."""
    plain = re.sub(r"\*\*[^*]+\*\*|\[\d+\]|^\s*[-*] ", " ", answer, flags=re.MULTILINE)
    return [s for s in sentences(plain) if len(content_words(s)) >= 4]


def score(answer: str, passages, expected: list[str]) -> tuple[float | None, bool]:
    found = claims(answer)
    grounded = sum(is_grounded(s, passages) for s in found) / len(found) if found else None
    return grounded, any(term.lower() in answer.lower() for term in expected)


async def measure(tutor: Tutor) -> dict[str, dict[str, list]]:
    local = create_backend("local", tutor.settings)
    results = {"project": {"grounded": [], "fact": [], "seconds": [], "first words": []},
               "plain RAG": {"grounded": [], "fact": [], "seconds": []}}
    for question, expected in CASES:
        started, first = time.perf_counter(), None
        reply = await tutor.ask(question, backend="local", temperature=0.0)
        async for _ in reply:
            first = first or time.perf_counter() - started
        seconds = time.perf_counter() - started
        results["project"]["first words"].append(first)
        passages = reply.sources
        notes = "\n\n".join(p.text for p in passages[:2])
        started = time.perf_counter()
        baseline = "".join([piece async for piece in local.stream(
            [{"role": "system", "content": BASELINE_SYSTEM},
             {"role": "user", "content": f"Notes:\n{notes}\n\nQuestion: {question}"}],
            temperature=0.0, max_tokens=150)])
        baseline_seconds = time.perf_counter() - started
        for system, answer, took in (("project", reply.text, seconds), ("plain RAG", baseline, baseline_seconds)):
            grounded, fact = score(answer, passages, expected)
            if grounded is not None:
                results[system]["grounded"].append(grounded)
            results[system]["fact"].append(fact)
            results[system]["seconds"].append(took)
        print(f"{question[:50]:50}  project {score(reply.text, passages, expected)}  "
              f"baseline {score(baseline, passages, expected)}", flush=True)
    return results


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(_env_file=None, data_dir=Path(tmp), cache_dir=Path(".tutor-data/cache"))
        knowledge = KnowledgeBase(settings)
        knowledge.sync()
        results = asyncio.run(measure(Tutor(settings, knowledge)))
    summary = {}
    for system, values in results.items():
        summary[system] = (statistics.mean(values["grounded"] or [0.0]), statistics.mean(values["fact"]),
                           statistics.mean(values["seconds"]))
        print(f"{system:10} grounded share {summary[system][0]:.0%}  key fact {summary[system][1]:.0%}  "
              f"{summary[system][2]:.1f} s/answer")
    (g, f, s), (bg, bf, bs) = summary["project"], summary["plain RAG"]
    first_words, whole = results["project"]["first words"], results["project"]["seconds"]
    print(f"project: first words {statistics.median(first_words):.2f} s median, {max(first_words):.2f} s at most; "
          f"whole answer {statistics.median(whole):.2f} s median")
    return {"name": f"tutor grounding, {len(CASES)} questions (grounded share / key fact / s per answer)",
            "project": f"{g:.0%} / {f:.0%} / {s:.1f} (median {statistics.median(whole):.1f} s, first words within "
                       f"{max(first_words):.2f} s)",
            "baseline": f"{bg:.0%} / {bf:.0%} / {bs:.1f} (plain RAG)",
            "ratio": f"{g / bg:.1f}x grounded" if bg else "baseline 0% grounded"}


if __name__ == "__main__":
    print(run())
