"""Recipes in, chat examples out: the OpenAI cookbook's recipe-assistant task on RecipeNLG data.

A RecipeNLG row (title, ingredients, directions, NER as JSON lists) becomes one chat example:
    system    "You are a helpful recipe assistant. You are to extract the generic ingredients ..."
    user      "Title: {title}\\n\\nIngredients: {ingredients as JSON}\\n\\nGeneric ingredients: "
    assistant the NER list as JSON

`read_recipenlg_csv` streams a CSV of any size (the real full_dataset.csv has 2.2 M rows, ~2 GB)
and yields a `Recipe` or a `RowProblem` (line number and reason) per row: bad rows are reported,
never silently dropped, and never stop the good ones.

    python -m training.data.recipes training/data/recipes_sample.csv     # counts recipes and problems
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import orjson

SYSTEM_PROMPT = ("You are a helpful recipe assistant. You are to extract the generic ingredients "
                 "from each of the recipes provided.")
SAMPLE_CSV = Path(__file__).parent / "recipes_sample.csv"
REQUIRED_COLUMNS = ("title", "ingredients", "NER")
MAX_FIELD_BYTES = 1_000_000  # one recipe field; anything bigger is a broken row, not a recipe

PROGRESS_EVERY = 20_000
Progress = Callable[[int, int, int], None]  # (rows read, bytes read, total bytes)

csv.field_size_limit(MAX_FIELD_BYTES)


class SourceError(ValueError):
    """The whole source is unusable (empty, not a RecipeNLG CSV...); the message says why."""


class Recipe(NamedTuple):  # a NamedTuple: built millions of times, ~3x cheaper than a frozen dataclass
    title: str
    ingredients: tuple[str, ...]
    ner: tuple[str, ...]
    line: int
    fingerprint: int = 0  # same title and ingredients, ignoring case and spacing = same fingerprint


def fingerprint(title: str, raw_ingredients: str) -> int:
    """A stable 64-bit hash (unlike hash(), the same in every process) of the normalised recipe identity."""
    key = f"{title}\x1f{raw_ingredients}".lower()
    if "  " in key or "\t" in key or "\n" in key or "\r" in key:  # collapsing costs 1.5 us a row: only when needed
        key = " ".join(key.split())
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


def user_message(title: str, ingredients: list[str] | tuple[str, ...]) -> str:
    return f"Title: {title}\n\nIngredients: {json.dumps(list(ingredients), ensure_ascii=False)}\n\nGeneric ingredients: "


def to_chat_example(recipe: Recipe) -> dict:
    return {"messages": [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_message(recipe.title, recipe.ingredients)},
        {"role": "assistant", "content": json.dumps(list(recipe.ner), ensure_ascii=False)},
    ]}


def _string_list(raw: str, column: str) -> tuple[str, ...] | str:
    """The parsed list, or the reason it is not a non-empty JSON list of strings."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return f"{column} is not a valid JSON list"
    if type(value) is list and value:
        try:
            "".join(value)  # raises TypeError unless every item is a string: a C-speed check, run on every row
            return tuple(value)
        except TypeError:
            pass
    return f"{column} must be a non-empty JSON list of strings"


def _open_text(path: Path) -> io.TextIOWrapper:
    # surrogateescape: one bad byte makes one row fail (reported), not the whole file.
    return open(path, encoding="utf-8", errors="surrogateescape", newline="")


def read_recipenlg_csv(path: Path, progress: Progress | None = None, label: str | None = None
                       ) -> Iterator[Recipe | RowProblem]:
    """Stream a RecipeNLG-format CSV row by row, in constant memory, reporting progress every 20k rows.
    Problems name the file by `label` (the learner's name for an upload), else by its file name."""
    path = Path(path)
    name = label or path.name
    if not path.is_file():
        raise SourceError(f"{name} does not exist or is not a file.")
    if path.stat().st_size == 0:
        raise SourceError(f"{name} is empty.")
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except (StopIteration, csv.Error) as exc:
            raise SourceError(f"{name} has no readable header line ({exc}).") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise SourceError(f"{name} is not a RecipeNLG CSV: missing column(s) {', '.join(missing)} "
                              f"(found: {', '.join(h[:30] for h in header[:10]) or 'nothing'}).")
        title_at, ingredients_at, ner_at = (header.index(c) for c in REQUIRED_COLUMNS)
        width, total, rows = len(header), path.stat().st_size, 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                if progress:
                    progress(rows, total, total)
                return
            except csv.Error as exc:
                yield RowProblem(reader.line_num, f"unreadable CSV ({exc})")
                continue
            rows += 1
            if progress and rows % PROGRESS_EVERY == 0:
                progress(rows, handle.buffer.tell(), total)
            yield _parse_row(row, reader.line_num, width, title_at, ingredients_at, ner_at)


def _parse_row(row: list[str], line: int, width: int, title_at: int, ingredients_at: int, ner_at: int):
    if len(row) != width:
        if not row:
            return RowProblem(line, "empty line")
        return RowProblem(line, f"expected {width} fields, found {len(row)}")
    title, raw_ingredients, raw_ner = row[title_at].strip(), row[ingredients_at], row[ner_at]
    joined = title + raw_ingredients + raw_ner
    if not joined.isascii():  # fast path: most rows are ASCII and cannot hold an undecodable byte
        try:
            joined.encode("utf-8")
        except UnicodeEncodeError:
            return RowProblem(line, "contains bytes that are not valid UTF-8")
    if not title:
        return RowProblem(line, "title is empty")
    ingredients = _string_list(raw_ingredients, "ingredients")
    if isinstance(ingredients, str):
        return RowProblem(line, ingredients)
    ner = _string_list(raw_ner, "NER")
    if isinstance(ner, str):
        return RowProblem(line, ner)
    return Recipe(title, ingredients, ner, line, fingerprint(title, raw_ingredients))


if __name__ == "__main__":
    import sys
    from collections import Counter

    counts = Counter(type(item).__name__ for item in read_recipenlg_csv(Path(sys.argv[1] if len(sys.argv) > 1 else SAMPLE_CSV)))
    print(dict(counts))
