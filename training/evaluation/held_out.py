"""Held-out evaluation: recipes in, per-system quality, tokens and latency out.

Each case is a recipe prompt with its gold generic-ingredient list, read from a chat JSONL (the
prepared test split) or a RecipeNLG CSV. Every system answers every case; scores come from
training.evaluation.metrics. The results file has one JSON line per (case, system) and a summary beside it.

    tutor eval --model RUN --data test.jsonl --baseline rag --limit 20 --json
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from training.base.phrases import Phrases
from training.data.recipes import SYSTEM_PROMPT, Recipe, read_recipenlg_csv, to_chat_example
from training.evaluation.metrics import parse_list, score_answer, summarize

PHRASES = Phrases("held_out")


@dataclass(frozen=True)
class Case:
    prompt: str  # the user message: title and ingredients
    gold: list[str]
    system: str = SYSTEM_PROMPT


def chat_triples(path: Path) -> Iterator[tuple[str, str, str]]:
    """(system, user, assistant) of each well-formed line of a chat JSONL; `tutor validate` reports the rest."""
    with Path(path).open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                messages = json.loads(line)["messages"]
                by_role = {m["role"]: m["content"] for m in messages}
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(by_role.get("user"), str) and isinstance(by_role.get("assistant"), str):
                yield by_role.get("system") or SYSTEM_PROMPT, by_role["user"], by_role["assistant"]


def load_cases(path: Path, limit: int | None = None, seed: int = 0) -> list[Case]:
    """Cases from a chat JSONL or a RecipeNLG CSV; a seeded sample of `limit` of them when given."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        examples = (to_chat_example(r)["messages"] for r in read_recipenlg_csv(path) if isinstance(r, Recipe))
        triples = ((m[0]["content"], m[1]["content"], m[2]["content"]) for m in examples)
    else:
        triples = chat_triples(path)
    cases = [Case(user, gold, system) for system, user, answer in triples if (gold := parse_list(answer)) is not None]
    if limit is not None and limit < len(cases):
        cases = random.Random(seed).sample(cases, limit)
    return cases


Answer = Callable[[Case], Awaitable[tuple[str, dict]]]  # -> (text, usage with prompt/completion tokens, latency)


async def evaluate(systems: dict[str, Answer], cases: list[Case], progress: Callable[[int, int], None] | None = None,
                   concurrency: int = 8) -> tuple[dict, list[dict]]:
    """Run every system on every case, `concurrency` answers at a time (the local engine decodes answers in
    flight together, one batched step each): (summary per system, per-example rows in the cases' order)."""
    slots = asyncio.Semaphore(concurrency)
    total, finished = len(cases) * len(systems), 0

    async def one(index: int, case: Case, name: str, answer: Answer) -> dict:
        nonlocal finished
        async with slots:
            started = time.perf_counter()
            text, usage = await answer(case)
            latency = usage.get("latency_s") or time.perf_counter() - started
        finished += 1
        if progress:
            progress(finished, total)
        return {"case": index, "system": name, "prompt": case.prompt, "gold": case.gold, "answer": text,
                "prompt_tokens": usage.get("prompt_tokens", 0), "completion_tokens": usage.get("completion_tokens", 0),
                "latency_s": latency, "stop": usage.get("stop"), **score_answer(text, case.gold)}

    try:
        async with asyncio.TaskGroup() as group:  # a failure cancels the answers still running
            tasks = [group.create_task(one(index, case, name, answer))
                     for index, case in enumerate(cases) for name, answer in systems.items()]
    except BaseExceptionGroup as failed:  # the callers explain one failure, the first
        raise failed.exceptions[0] from None
    rows = [task.result() for task in tasks]
    summary = {name: summarize([r for r in rows if r["system"] == name]) for name in systems}
    return summary, rows


def write_results(out_dir: Path, summary: dict, rows: list[dict], meta: dict) -> Path:
    """results.jsonl (one line per case and system) and summary.json, each written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("results.jsonl", "".join(json.dumps(r) + "\n" for r in rows)),
                       ("summary.json", json.dumps({**meta, "systems": summary}, indent=2))):
        staging = out_dir / f".{name}.tmp"
        staging.write_text(text)
        staging.replace(out_dir / name)
    return out_dir


def markdown_table(summary: dict, labels: dict, language: str = "en") -> str:
    """The summary as a markdown table, one column per system (chat and CLI)."""
    seconds = PHRASES("seconds", language)  # a format for the latencies
    rows = [("F1", "f1", "{:.3f}"), (PHRASES("precision", language), "precision", "{:.3f}"),
            (PHRASES("recall", language), "recall", "{:.3f}"),
            (PHRASES("exact_match", language), "exact_match", "{:.0%}"),
            (PHRASES("valid_json", language), "valid_json_rate", "{:.0%}"),
            (PHRASES("mean_prompt_tokens", language), "mean_prompt_tokens", "{:.0f}"),
            (PHRASES("p50_latency", language), "p50_latency_s", seconds),
            (PHRASES("p95_latency", language), "p95_latency_s", seconds)]
    names = list(summary)
    lines = [PHRASES("title", language, n=summary[names[0]]["n"]), "",
             *[f"- **{n}**: {labels[n]}" for n in names], "",
             f"| {PHRASES('metric', language)} | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    lines += [f"| {title} | " + " | ".join(fmt.format(summary[n][key]) for n in names) + " |" for title, key, fmt in rows]
    lines.append(f"| {PHRASES('stops', language)} | " + " | ".join(
        ", ".join(f"{reason} {count}" for reason, count in sorted(summary[n].get("stops", {}).items()))
        for n in names) + " |")
    return "\n".join(lines)
