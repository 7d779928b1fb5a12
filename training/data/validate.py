"""Validate a chat-format JSONL file like the OpenAI cookbook's data-prep notebook, done right.

The report has:
- format errors by the cookbook's keys (data_type, missing_messages_list, message_missing_key,
  message_unrecognized_key, unrecognized_role, missing_content, example_missing_assistant_message)
  plus invalid_json, each with how many examples had it and the first line numbers;
- warnings: examples without a system or user message, examples over the context limit;
- token statistics per example (total and assistant tokens: min, max, mean, median, p10, p90),
  counted with tiktoken for OpenAI models or the local model's tokenizer and chat template;
- the cookbook's epoch heuristic and billed-token estimate, priced per 1M training tokens.

The file is streamed and memory stays bounded whatever its size: counts are exact, line numbers are kept
for the first KEPT_LINES of each kind, and percentiles come from a seeded sample of SAMPLE_SIZE examples
(exact below that size).

    tutor validate FILE.jsonl [--json] [--model gpt-4o-mini|local] [--price 3.0]
"""

from __future__ import annotations

import json
import random
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from training.base.phrases import Phrases
from training.data.tokens import Counter

ERROR_KEYS = ("invalid_json", "data_type", "missing_messages_list", "message_missing_key", "message_unrecognized_key",
              "unrecognized_role", "missing_content", "example_missing_assistant_message")
ALLOWED_KEYS = {"role", "content", "name", "function_call", "weight"}
ROLES = {"system", "user", "assistant", "function"}
# The cookbook's constants for OpenAI's default epoch choice.
TARGET_EPOCHS, MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES, MIN_DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS = 3, 100, 25_000, 1, 25
DEFAULT_CONTEXT_LIMIT = 16_385
CONTEXT_LIMITS = {"gpt-4o-mini": 65_536, "gpt-4o": 65_536, "gpt-4.1": 65_536, "gpt-3.5-turbo": 16_385}
DEFAULT_PRICE_PER_MILLION = 3.00  # gpt-4o-mini training, USD per 1M tokens at the time of writing: check the pricing page
KEPT_LINES = 20  # line numbers kept (and shown) per error or warning kind
KEPT_DETAILS = 20  # lines whose JSON/UTF-8 problem is described
SAMPLE_SIZE = 100_000  # token lengths kept for percentiles and the histogram
PHRASES = Phrases("validate")


def example_errors(example) -> list[str]:
    """The cookbook's format checks for one parsed example; empty when it is well-formed."""
    if not isinstance(example, dict):
        return ["data_type"]
    messages = example.get("messages")
    if not messages or not isinstance(messages, list):
        return ["missing_messages_list"]
    errors = []
    for message in messages:
        if not isinstance(message, dict):
            errors.append("data_type")
            continue
        if "role" not in message or "content" not in message:
            errors.append("message_missing_key")
        if set(message) - ALLOWED_KEYS:
            errors.append("message_unrecognized_key")
        if message.get("role") not in ROLES:
            errors.append("unrecognized_role")
        content = message.get("content")
        if (not content and not message.get("function_call")) or (content is not None and not isinstance(content, str)):
            errors.append("missing_content")
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        errors.append("example_missing_assistant_message")
    return list(dict.fromkeys(errors))


def read_jsonl(path: Path, max_line: int | None = None) -> Iterator[tuple[int, object | None, str | None]]:
    """(line number, parsed value or None, problem or None) for each line, streamed. A line longer than `max_line`
    bytes (TUTOR_MAX_LINE_BYTES) is a problem, skipped without ever being held: memory stays bounded even when a
    whole file is one line."""
    if max_line is None:
        from training.base.settings import get_settings

        max_line = get_settings().max_line_bytes
    with open(path, "rb") as handle:
        number = 0
        while raw := handle.readline(max_line + 1):
            number += 1
            if len(raw) > max_line and not raw.endswith(b"\n"):
                while (rest := handle.readline(1 << 20)) and not rest.endswith(b"\n"):
                    pass  # the rest of the line, a megabyte at a time
                yield number, None, f"longer than the line limit of {max_line:,} bytes (TUTOR_MAX_LINE_BYTES)"
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield number, None, "not valid UTF-8"
                continue
            if not text.strip():
                yield number, None, "empty line"
                continue
            try:
                yield number, json.loads(text), None
            except json.JSONDecodeError as exc:
                yield number, None, f"not valid JSON ({exc.msg})"


@dataclass
class Distribution:
    min: int
    max: int
    mean: float
    median: float
    p10: float
    p90: float


@dataclass
class Found:
    """How many examples had one kind of problem, and the first KEPT_LINES of their line numbers."""

    count: int = 0
    lines: list[int] = field(default_factory=list)

    def add(self, line: int) -> None:
        self.count += 1
        if len(self.lines) < KEPT_LINES:
            self.lines.append(line)

    def shown(self, language: str = "en") -> str:
        more = self.count - len(self.lines)
        return ", ".join(map(str, self.lines)) + (PHRASES("more", language, more=more) if more else "")


class LengthStats:
    """Exact count, sum, min, max and mean of a stream of lengths, with a seeded sample for percentiles."""

    def __init__(self, seed: int = 0):
        self.count = self.total = 0
        self.low, self.high = None, None
        self.sample: list[int] = []
        self._rng = random.Random(seed)

    def add(self, value: int) -> None:
        self.count += 1
        self.total += value
        self.low = value if self.low is None else min(self.low, value)
        self.high = value if self.high is None else max(self.high, value)
        if len(self.sample) < SAMPLE_SIZE:
            self.sample.append(value)
        elif (slot := self._rng.randrange(self.count)) < SAMPLE_SIZE:
            self.sample[slot] = value

    def distribution(self) -> "Distribution | None":
        if not self.count:
            return None
        ordered = sorted(self.sample)
        deciles = statistics.quantiles(ordered, n=10, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 9
        return Distribution(self.low, self.high, round(self.total / self.count, 1), statistics.median(ordered),
                            round(deciles[0], 1), round(deciles[-1], 1))


@dataclass
class ValidationReport:
    path: str
    tokenizer: str
    examples: int = 0
    valid_examples: int = 0
    errors: dict[str, Found] = field(default_factory=dict)
    error_details: dict[int, str] = field(default_factory=dict)
    missing_system: Found = field(default_factory=Found)
    missing_user: Found = field(default_factory=Found)
    over_context_limit: Found = field(default_factory=Found)
    context_limit: int = DEFAULT_CONTEXT_LIMIT
    total_tokens: Distribution | None = None
    assistant_tokens: Distribution | None = None
    tokens_in_dataset: int = 0
    epochs: int = 0
    billed_tokens: int = 0
    price_per_million: float = DEFAULT_PRICE_PER_MILLION
    estimated_cost: float = 0.0
    example_lengths: list[int] = field(default_factory=list, repr=False)  # all, or a seeded sample of SAMPLE_SIZE
    tokenizer_model: str | None = field(default=None, repr=False)  # what `tokenizer` describes, for other languages

    @property
    def ok(self) -> bool:
        return self.valid_examples > 0 and not self.errors

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("example_lengths")
        data.pop("tokenizer_model")
        data["error_details"] = {str(k): v for k, v in self.error_details.items()}
        data["ok"] = self.ok
        return data

    def as_markdown(self, language: str = "en") -> str:
        tokenizer = self.tokenizer if self.tokenizer_model is None else describe_tokenizer(self.tokenizer_model,
                                                                                           language)
        out = [PHRASES("header", language, name=Path(self.path).name, count=self.examples,
                       valid=self.valid_examples, tokenizer=tokenizer), ""]
        if self.errors:
            out += [PHRASES("errors.header", language), "| --- | --- | --- |"]
            out += [f"| {key} | {found.count:,} | {found.shown(language)} |" for key, found in self.errors.items()]
            detailed = list(self.error_details.items())[:5]
            out += [""] + [PHRASES("error.line", language, line=line, detail=detail)
                           for line, detail in detailed] + [""]
        else:
            out += [PHRASES("no_errors", language), ""]
        warnings = [(PHRASES("missing_system", language), self.missing_system),
                    (PHRASES("missing_user", language), self.missing_user),
                    (PHRASES("over_limit", language, limit=self.context_limit), self.over_context_limit)]
        out += [PHRASES("warning", language, count=found.count, what=what, lines=found.shown(language))
                for what, found in warnings if found.count]
        if self.total_tokens:
            out += ["", PHRASES("tokens.header", language), "| --- | --- | --- | --- | --- | --- | --- |"]
            for label, dist in (("total", self.total_tokens), ("assistant", self.assistant_tokens)):
                out.append(f"| {PHRASES(f'tokens.{label}', language)} | {dist.min} | {dist.p10} | {dist.median} | "
                           f"{dist.mean} | {dist.p90} | {dist.max} |")
            cost = (PHRASES("cost", language, cost=self.estimated_cost, price=self.price_per_million)
                    if self.price_per_million else PHRASES("cost.local", language))
            out += ["", PHRASES("epochs", language, epochs=self.epochs, examples=self.valid_examples,
                                billed=self.billed_tokens, per_epoch=self.tokens_in_dataset, cost=cost)]
        return "\n".join(out)


def describe_tokenizer(model: str, language: str = "en") -> str:
    """How tokens are counted for `model` ("local": the local base model), in a few words."""
    return PHRASES("tokenizer.local", language) if model == "local" else PHRASES("tokenizer.openai", language,
                                                                                  model=model)


def default_epochs(n_examples: int) -> int:
    """OpenAI's default epoch count for a training set of this size (the cookbook's heuristic)."""
    if n_examples <= 0:
        return 0
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


def validate_examples(lines: Iterable[tuple[int, object | None, str | None]], counter: Counter, *, path: str,
                      tokenizer: str, context_limit: int = DEFAULT_CONTEXT_LIMIT,
                      price_per_million: float = DEFAULT_PRICE_PER_MILLION) -> ValidationReport:
    report = ValidationReport(path=path, tokenizer=tokenizer, context_limit=context_limit,
                              price_per_million=price_per_million)
    errors: dict[str, Found] = defaultdict(Found)
    totals, assistants = LengthStats(), LengthStats()
    for number, example, problem in lines:
        report.examples += 1
        if problem:
            errors["invalid_json"].add(number)
            if len(report.error_details) < KEPT_DETAILS:
                report.error_details[number] = problem
            continue
        found = example_errors(example)
        for key in found:
            errors[key].add(number)
        if found:
            continue
        report.valid_examples += 1
        roles = {m.get("role") for m in example["messages"]}
        if "system" not in roles:
            report.missing_system.add(number)
        if "user" not in roles:
            report.missing_user.add(number)
        total, assistant = counter(example["messages"])
        if total > context_limit:
            report.over_context_limit.add(number)
        totals.add(total)
        assistants.add(assistant)
        report.tokens_in_dataset += min(context_limit, total)
    report.errors = {key: errors[key] for key in ERROR_KEYS if key in errors}
    report.total_tokens, report.assistant_tokens = totals.distribution(), assistants.distribution()
    report.example_lengths = totals.sample
    report.epochs = default_epochs(report.valid_examples)
    report.billed_tokens = report.epochs * report.tokens_in_dataset
    report.estimated_cost = report.billed_tokens / 1e6 * price_per_million
    return report


def counter_for(model: str, settings=None) -> tuple[Counter, str, int]:
    """(counter, description, context limit) for an OpenAI model name, or "local" for the local base model."""
    from training.data.tokens import local_counter, openai_counter

    if model == "local":
        from training.base.models import context_length, load_tokenizer, resolve_base_model
        from training.base.settings import get_settings

        source = resolve_base_model(settings or get_settings())
        limit = context_length(source) or DEFAULT_CONTEXT_LIMIT
        return local_counter(load_tokenizer(source)), describe_tokenizer(model), limit
    limit = next((v for k, v in CONTEXT_LIMITS.items() if model.removeprefix("ft:").startswith(k)), DEFAULT_CONTEXT_LIMIT)
    return openai_counter(model), describe_tokenizer(model), limit


def validate_file(path: Path, model: str = "gpt-4o-mini", price_per_million: float = DEFAULT_PRICE_PER_MILLION,
                  settings=None) -> ValidationReport:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist or is not a file.")
    counter, description, limit = counter_for(model, settings)
    if model == "local":
        price_per_million = 0.0
    report = validate_examples(read_jsonl(path), counter, path=str(path), tokenizer=description,
                               context_limit=limit, price_per_million=price_per_million)
    report.tokenizer_model = model
    return report


if __name__ == "__main__":
    import sys

    from training.base.common import configure_process

    configure_process()
    print(validate_file(Path(sys.argv[1])).as_markdown())
