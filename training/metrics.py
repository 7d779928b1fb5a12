"""Scoring extracted ingredient lists: parse the model's answer, then set precision/recall/F1.

Sets are compared case-insensitively with whitespace normalised, so ["Brown  Sugar"] matches
["brown sugar"]. An answer that is not a JSON list of strings scores 0 and counts as invalid JSON.

    python -m training.metrics '["flour", "Sugar"]' '["sugar", "eggs"]'
"""

from __future__ import annotations

import json
import re


def normalize(item: str) -> str:
    return " ".join(item.lower().split())


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


def set_scores(predicted: list[str] | None, gold: list[str]) -> tuple[float, float, float]:
    """(precision, recall, F1) of the normalised sets; an unparseable answer scores zero."""
    if not predicted:
        return 0.0, 0.0, 0.0
    pred, want = {normalize(p) for p in predicted}, {normalize(g) for g in gold}
    hits = len(pred & want)
    precision, recall = hits / len(pred), hits / len(want) if want else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if hits else 0.0)


if __name__ == "__main__":
    import sys

    print(set_scores(parse_list(sys.argv[1]), json.loads(sys.argv[2])))
