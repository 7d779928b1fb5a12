"""Scoring extracted ingredient lists: parse the model's answer, then set precision/recall/F1.

Items are compared as normalised sets: case-insensitive, whitespace collapsed, and the last word's
plural folded ("Brown  Sugars" matches "brown sugar", "tomatoes" "tomato", "berries" "berry").
An answer that is not a JSON list of strings counts as invalid JSON and scores 0, except a list cut off before
its closing bracket (by max_tokens or a repetition stop): it is scored on the items it finished, since a stop
should not erase what the answer already said (`["eggs", "milk", "milk", "mi` names eggs and milk). Such an
answer still counts as invalid JSON.

    python -m training.evaluation.metrics '["flour", "Sugars"]' '["sugar", "eggs"]'
"""

from __future__ import annotations

import collections
import json
import re
import statistics


def singular(word: str) -> str:
    """The plural 's' folded: berries -> berry, tomatoes -> tomato, eggs -> egg; glass, hummus stay."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("oes"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us")):
        return word[:-1]
    return word


def normalize(item: str) -> str:
    words = item.lower().split()
    return " ".join(words[:-1] + [singular(words[-1])]) if words else ""


def parse_list(text: str) -> list[str] | None:
    """The first JSON list of strings in the text, or None."""
    match = re.search(r"\[.*?\]", text or "", flags=re.S)
    if not match:
        return None
    try:
        value = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    return [str(v) for v in value] if isinstance(value, list) else None


def named_items(text: str) -> list[str] | None:
    """The items an answer names: its first JSON list, or the finished strings of a list it did not close."""
    whole = parse_list(text)
    if whole is not None:
        return whole
    opened = (text or "").find("[")
    if opened < 0 or "]" in text[opened:]:
        return None
    items = []
    for quoted in re.findall(r'"(?:[^"\\]|\\.)*"', text[opened:]):
        try:
            items.append(json.loads(quoted))
        except json.JSONDecodeError:  # an escape JSON does not know: not an item the model finished
            continue
    return items or None


def set_scores(predicted: list[str] | None, gold: list[str]) -> tuple[float, float, float]:
    """(precision, recall, F1) of the normalised sets; an unparseable answer scores zero."""
    if not predicted:
        return 0.0, 0.0, 0.0
    pred, want = {normalize(p) for p in predicted}, {normalize(g) for g in gold}
    hits = len(pred & want)
    precision, recall = hits / len(pred), hits / len(want) if want else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if hits else 0.0)


def score_answer(answer: str, gold: list[str]) -> dict:
    """Every per-example score of one answer against its gold list."""
    whole = parse_list(answer)
    precision, recall, f1 = set_scores(named_items(answer), gold)
    exact = whole is not None and {normalize(p) for p in whole} == {normalize(g) for g in gold}
    return {"valid_json": whole is not None, "precision": precision, "recall": recall, "f1": f1,
            "exact_match": exact}


def percentile(values: list[float], q: int) -> float:
    """Linear-interpolated percentile (q in 1..99), as numpy's default."""
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def summarize(rows: list[dict]) -> dict:
    """One system's aggregate over per-example rows (scores plus prompt_tokens and latency_s), with how its
    answers ended (`stops`: eos, max_tokens, repetition)."""
    if not rows:
        return {"n": 0}
    mean = lambda key: statistics.fmean(float(r[key]) for r in rows)  # noqa: E731
    latencies = [r["latency_s"] for r in rows]
    return {"n": len(rows), "precision": mean("precision"), "recall": mean("recall"), "f1": mean("f1"),
            "exact_match": mean("exact_match"), "valid_json_rate": mean("valid_json"),
            "mean_prompt_tokens": mean("prompt_tokens"), "mean_completion_tokens": mean("completion_tokens"),
            "p50_latency_s": percentile(latencies, 50), "p95_latency_s": percentile(latencies, 95),
            "stops": dict(collections.Counter(r.get("stop") or "unknown" for r in rows))}


if __name__ == "__main__":
    import sys

    print(score_answer(sys.argv[1], json.loads(sys.argv[2])))
