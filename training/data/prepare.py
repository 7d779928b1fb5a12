"""Prepare the recipe-assistant dataset: source -> deduplicated, seeded train/validation/test chat JSONL.

Sources: "sample" (the recipes bundled in training/data/, written for this project), a RecipeNLG-format
CSV of any size (streamed; a seeded reservoir sample keeps memory bounded by the sizes asked for), or
a chat-format JSONL (validated, then split). The same seed and input give the same files, byte for
byte. Files are written atomically (temp file, then rename): an interrupted run leaves no half file,
and the input is only ever read.

    tutor prepare --source sample --train 150 --validation 40 --test 40 --seed 42 [--json]
    python -m training.data.prepare path/to/full_dataset.csv
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from training.base.phrases import Phrases
from training.data.recipes import (
    SAMPLE_CSV,
    Progress,
    Recipe,
    RowProblem,
    SourceError,
    fingerprint,
    read_recipenlg_csv,
    to_chat_example,
)
from training.data.validate import example_errors, read_jsonl

SPLITS = ("train", "validation", "test")
MAX_PROBLEMS_KEPT = 200  # the report lists this many problem lines; counts are always complete
PHRASES = Phrases("prepare")



@dataclass
class PrepareReport:
    source: str
    seed: int
    requested: dict[str, int]
    written: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    rows_read: int = 0
    usable: int = 0
    duplicates: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def scaled_note(self, language: str = "en") -> str | None:
        """What was written instead of the sizes asked for, when the source had fewer usable examples."""
        if not self.written or self.written == self.requested:
            return None
        return PHRASES("scaled", language, available=sum(self.written.values()),
                       sizes="/".join(str(self.written[split]) for split in SPLITS),
                       requested="/".join(str(self.requested[split]) for split in SPLITS))

    def as_markdown(self, language: str = "en") -> str:
        out = [PHRASES("read", language, rows=self.rows_read, source=self.source, usable=self.usable,
                       duplicates=self.duplicates, skipped=self.skipped), "", PHRASES("table", language),
               "| --- | --- | --- |"]
        out += [f"| {PHRASES(f'split.{split}', language)} | {self.written[split]} | `{Path(self.files[split]).name}` |"
                for split in SPLITS]
        out += [f"- {note}" for note in [self.scaled_note(language)] if note]
        if self.problems:
            shown = self.problems[:10]
            out += ["", PHRASES("skipped", language, skipped=self.skipped, shown=len(shown))]
            out += [f"- {p}" for p in shown]
        return "\n".join(out)


def write_jsonl_atomic(path: Path, examples: Iterable[dict]) -> int:
    """Write examples one per line to a temp file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp", delete=False)
    count = 0
    try:
        with handle:
            for example in examples:
                handle.write(json.dumps(example, ensure_ascii=False) + "\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return count


def _chat_jsonl_examples(path: Path, report: PrepareReport) -> Iterator[tuple[int, dict]]:
    for number, example, problem in read_jsonl(path):
        report.rows_read += 1
        problem = problem or ", ".join(example_errors(example))
        if problem:
            report.skipped += 1
            if len(report.problems) < MAX_PROBLEMS_KEPT:
                report.problems.append(f"line {number}: {problem}")
            continue
        user = next((m["content"] for m in example["messages"] if m.get("role") == "user"), "")
        yield fingerprint(user, ""), example


def _recipe_examples(path: Path, report: PrepareReport, progress: Progress | None,
                     label: str | None) -> Iterator[tuple[int, Recipe]]:
    for item in read_recipenlg_csv(path, progress=progress, label=label):
        report.rows_read += 1
        if isinstance(item, RowProblem):
            report.skipped += 1
            if len(report.problems) < MAX_PROBLEMS_KEPT:
                report.problems.append(str(item))
            continue
        yield item.fingerprint, item


def reservoir(items: Iterable[tuple[int, object]], size: int, rng: random.Random, report: PrepareReport,
              dedupe: bool) -> list:
    """A uniform seeded sample of `size` distinct items from a stream of any length (Algorithm R)."""
    kept: list = []
    seen: set[int] = set()
    usable = duplicates = 0  # locals, written back at the end: this loop runs once per row
    randrange = rng.randrange
    for key, item in items:
        if dedupe:  # 8 bytes of state per row (its fingerprint) instead of the row
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
        usable += 1
        if len(kept) < size:
            kept.append(item)
        else:
            slot = randrange(usable)
            if slot < size:
                kept[slot] = item
    report.usable, report.duplicates = report.usable + usable, report.duplicates + duplicates
    return kept


def split_sizes(requested: dict[str, int], available: int) -> dict[str, int]:
    """The sizes asked for, scaled down proportionally when the source has fewer examples."""
    wanted = sum(requested.values())
    if available >= wanted:
        return dict(requested)
    sizes = {split: requested[split] * available // wanted for split in SPLITS}
    for split in ("validation", "test"):  # an asked-for evaluation split keeps at least one example
        if requested[split] and not sizes[split] and available - sizes["validation"] - sizes["test"] > 1:
            sizes[split] = 1
    sizes["train"] = available - sizes["validation"] - sizes["test"]
    return sizes


def prepare(source: str | Path, out_dir: Path, *, train: int = 150, validation: int = 40, test: int = 40,
            seed: int = 42, dedupe: bool = True, progress: Progress | None = None,
            label: str | None = None, language: str = "en") -> PrepareReport:
    """Build train/validation/test chat JSONL files from a source; see the module docstring. `label` names the
    source in the report and in errors (the learner's name for an upload, never a server path); the bundled
    sample is named in `language`."""
    for name, value in (("train", train), ("validation", validation), ("test", test)):
        if value < 0:
            raise ValueError(f"{name} size must be 0 or more (got {value}).")
    if train < 1:
        raise ValueError("The training split needs at least 1 example (OpenAI requires at least 10).")
    path = SAMPLE_CSV if str(source) == "sample" else Path(source)
    label = label or (PHRASES("sample", language) if str(source) == "sample" else path.name)
    requested = {"train": train, "validation": validation, "test": test}
    report = PrepareReport(source=label, seed=seed, requested=requested)
    rng = random.Random(seed)
    if path.suffix.lower() == ".jsonl":
        if not path.is_file():
            raise SourceError(f"{label} does not exist or is not a file.")
        pool = reservoir(_chat_jsonl_examples(path, report), sum(requested.values()), rng, report, dedupe)
        examples = pool
    else:
        pool = reservoir(_recipe_examples(path, report, progress, label), sum(requested.values()), rng, report, dedupe)
        pool.sort(key=lambda recipe: recipe.line)  # a fixed order before the seeded shuffle
        examples = [to_chat_example(recipe) for recipe in pool]
    if not examples:
        raise SourceError(f"No usable examples in {label}: {report.skipped:,} rows skipped"
                          + (f", e.g. {report.problems[0]}" if report.problems else "") + ".")
    rng.shuffle(examples)
    sizes = split_sizes(requested, len(examples))
    start = 0
    for split in SPLITS:
        target = Path(out_dir) / f"{split}.jsonl"
        report.written[split] = write_jsonl_atomic(target, examples[start:start + sizes[split]])
        report.files[split] = str(target)
        start += sizes[split]
    if note := report.scaled_note():  # for the JSON report; the markdown says it in its own language
        report.notes.append(note)
    return report


if __name__ == "__main__":
    import sys

    result = prepare(sys.argv[1] if len(sys.argv) > 1 else "sample", Path(".tutor-data/datasets/cli"))
    print(result.as_markdown())
