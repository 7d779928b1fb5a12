"""What the trainer trains on, for one example: the text after the model's chat template, split into the
tokens that count in the loss (the final assistant answer and its end-of-turn mark), those that don't (the
system and user turns and the template's markup), and those cut off at `max_length`.

It calls the trainer's own `training.local.batches.tokenize`, so the view cannot disagree with training: a token is
"trained" exactly when its label there is not IGNORE.

    tutor tokens data/datasets/ds-1/train.jsonl --line 3
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from training.base.errors import TutorError
from training.local.batches import IGNORE, chat_ids, tokenize

TRAINED, CONTEXT, CUT = "trained", "context", "cut"


@dataclass
class Piece:
    """A run of text from `tokens` consecutive tokens of one kind (one token, unless a character spans several)."""

    text: str
    kind: str
    tokens: int = 1


@dataclass
class TokenView:
    pieces: list[Piece]
    max_length: int
    counts: dict[str, int] = field(default_factory=dict)
    note: str = ""  # why nothing is trained, when nothing is

    def to_dict(self) -> dict:
        return {"pieces": [[p.text, p.kind, p.tokens] for p in self.pieces], "max_length": self.max_length,
                "counts": self.counts, "note": self.note}

    def as_text(self, color: bool = False) -> str:
        """The templated text with trained tokens [[in brackets]] (or green), cut ones dimmed, and the counts."""
        marks = {TRAINED: ("\033[42;30m", "\033[0m") if color else ("[[", "]]"),
                 CONTEXT: ("", ""), CUT: ("\033[2m", "\033[0m") if color else ("<<cut: ", ">>")}
        text, kind = [], None
        for piece in self.pieces:
            if piece.kind != kind:
                text.append(marks[kind][1] if kind else "")
                text.append(marks[piece.kind][0])
                kind = piece.kind
            text.append(piece.text)
        text.append(marks[kind][1] if kind else "")
        return "".join(text) + "\n\n" + self.summary()

    def summary(self) -> str:
        counts = self.counts
        line = (f"{sum(counts.values())} tokens after the chat template; max_length {self.max_length} keeps "
                f"{counts[TRAINED] + counts[CONTEXT]}: {counts[TRAINED]} trained (the assistant's answer), "
                f"{counts[CONTEXT]} only read as context")
        line += f"; {counts[CUT]} cut off." if counts[CUT] else "; nothing is cut."
        return line + (f" {self.note}" if self.note else "")


def token_view(tokenizer, messages: list[dict], max_length: int) -> TokenView:
    """The example as the trainer sees it at `max_length`."""
    whole = chat_ids(tokenizer, messages)
    trained = tokenize(tokenizer, messages, max_length)
    labels = trained["labels"] if trained else [IGNORE] * min(len(whole), max_length)
    kinds = [TRAINED if label != IGNORE else CONTEXT for label in labels] + [CUT] * (len(whole) - len(labels))
    note = "" if trained else ("Nothing in it is trained: the last message must be the assistant's answer, "
                               "and some of it must fit in max_length.")
    return TokenView(_pieces(tokenizer, whole, kinds), max_length,
                     {kind: kinds.count(kind) for kind in (TRAINED, CONTEXT, CUT)}, note)


def _pieces(tokenizer, ids: list[int], kinds: list[str]) -> list[Piece]:
    """One piece per token, except where a character's bytes span tokens (Cyrillic, emoji): those decode together."""
    pieces, start = [], 0
    for end in range(1, len(ids) + 1):
        text = tokenizer.decode(ids[start:end], clean_up_tokenization_spaces=False)
        same_kind = end < len(ids) and kinds[end] == kinds[start]
        if text.endswith("\ufffd") and same_kind:
            continue
        pieces.append(Piece(text, kinds[start], end - start))
        start = end
    return pieces


def example_at(path: Path, line: int) -> tuple[list[dict], int]:
    """The messages of line `line` (1-based) of a chat JSONL file, and how many lines it has; a clear TutorError
    when that line is missing or not a chat example."""
    found, count = None, 0
    with open(path, encoding="utf-8") as handle:
        for count, text in enumerate(handle, 1):
            if count == line:
                found = text
    if line < 1 or found is None:
        raise TutorError(f"The file has {count} lines; there is no line {line}.")
    try:
        messages = json.loads(found)["messages"]
    except (ValueError, KeyError, TypeError):
        raise TutorError(f"Line {line} is not a chat example ({{\"messages\": [...]}} in JSON).") from None
    if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages):
        raise TutorError(f"Line {line}'s messages must each have a role and a text content.")
    return messages, count
