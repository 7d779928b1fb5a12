"""Validate a chat-format JSONL file like the OpenAI cookbook's data-prep notebook, done right.

The report has:
- format errors by the cookbook's keys (data_type, missing_messages_list, message_missing_key,
  message_unrecognized_key, unrecognized_role, missing_content, example_missing_assistant_message)
  plus invalid_json, each with the line numbers where it happened;
- warnings: examples without a system or user message, examples over the context limit;
- token statistics per example (total and assistant tokens: min, max, mean, median, p10, p90),
  counted with tiktoken for OpenAI models or the local model's tokenizer and chat template;
- the cookbook's epoch heuristic and billed-token estimate, priced per 1M training tokens.

    tutor validate FILE.jsonl [--json] [--model gpt-4o-mini|local] [--price 3.0]
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from training.tokens import Counter

ERROR_KEYS = ("invalid_json", "data_type", "missing_messages_list", "message_missing_key", "message_unrecognized_key",
              "unrecognized_role", "missing_content", "example_missing_assistant_message")
ALLOWED_KEYS = {"role", "content", "name", "function_call", "weight"}
ROLES = {"system", "user", "assistant", "function"}
# The cookbook's constants for OpenAI's default epoch choice.
TARGET_EPOCHS, MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES, MIN_DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS = 3, 100, 25_000, 1, 25
DEFAULT_CONTEXT_LIMIT = 16_385
CONTEXT_LIMITS = {"gpt-4o-mini": 65_536, "gpt-4o": 65_536, "gpt-4.1": 65_536, "gpt-3.5-turbo": 16_385}
DEFAULT_PRICE_PER_MILLION = 3.00  # gpt-4o-mini training, USD per 1M tokens at the time of writing: check the pricing page
MAX_SHOWN_LINES = 20


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


def read_jsonl(path: Path) -> Iterator[tuple[int, object | None, str | None]]:
    """(line number, parsed value or None, problem or None) for each line, streamed."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
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

    @classmethod
    def of(cls, values: list[int]) -> "Distribution | None":
        if not values:
            return None
        ordered = sorted(values)
        deciles = statistics.quantiles(ordered, n=10, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 9
        return cls(ordered[0], ordered[-1], round(statistics.fmean(ordered), 1), statistics.median(ordered),
                   round(deciles[0], 1), round(deciles[-1], 1))


@dataclass
class ValidationReport:
    path: str
    tokenizer: str
    examples: int = 0
    valid_examples: int = 0
    errors: dict[str, list[int]] = field(default_factory=dict)
    error_details: dict[int, str] = field(default_factory=dict)
    missing_system: list[int] = field(default_factory=list)
    missing_user: list[int] = field(default_factory=list)
    over_context_limit: list[int] = field(default_factory=list)
    context_limit: int = DEFAULT_CONTEXT_LIMIT
    total_tokens: Distribution | None = None
    assistant_tokens: Distribution | None = None
    tokens_in_dataset: int = 0
    epochs: int = 0
    billed_tokens: int = 0
    price_per_million: float = DEFAULT_PRICE_PER_MILLION
    estimated_cost: float = 0.0
    example_lengths: list[int] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.valid_examples > 0 and not self.errors

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("example_lengths")
        data["error_details"] = {str(k): v for k, v in self.error_details.items()}
        data["ok"] = self.ok
        return data

    def as_markdown(self) -> str:
        def lines(numbers: list[int]) -> str:
            shown = ", ".join(map(str, numbers[:MAX_SHOWN_LINES]))
            return shown + (f" and {len(numbers) - MAX_SHOWN_LINES} more" if len(numbers) > MAX_SHOWN_LINES else "")

        out = [f"**{Path(self.path).name}**: {self.examples} examples, {self.valid_examples} well-formed "
               f"(tokens counted with {self.tokenizer}).", ""]
        if self.errors:
            out += ["| format error | examples | lines |", "| --- | --- | --- |"]
            out += [f"| {key} | {len(found)} | {lines(found)} |" for key, found in self.errors.items()]
            detailed = list(self.error_details.items())[:5]
            out += [""] + [f"- line {line}: {detail}" for line, detail in detailed] + [""]
        else:
            out += ["No format errors found.", ""]
        warnings = [("missing a system message", self.missing_system), ("missing a user message", self.missing_user),
                    (f"over the {self.context_limit:,}-token context limit (will be truncated)", self.over_context_limit)]
        out += [f"- ⚠️ {len(found)} example(s) {what}: lines {lines(found)}" for what, found in warnings if found]
        if self.total_tokens:
            out += ["", "| tokens per example | min | p10 | median | mean | p90 | max |", "| --- | --- | --- | --- | --- | --- | --- |"]
            for label, dist in (("total", self.total_tokens), ("assistant", self.assistant_tokens)):
                out.append(f"| {label} | {dist.min} | {dist.p10} | {dist.median} | {dist.mean} | {dist.p90} | {dist.max} |")
            cost = (f": **${self.estimated_cost:,.2f}** at ${self.price_per_million:.2f} per 1M training tokens"
                    if self.price_per_million else " (local training: paid in compute time, not per token)")
            out += ["", f"Training for **{self.epochs} epochs** (OpenAI's default for {self.valid_examples} examples) "
                        f"processes about **{self.billed_tokens:,} tokens** ({self.tokens_in_dataset:,} per epoch){cost}."]
        return "\n".join(out)


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
    errors: dict[str, list[int]] = defaultdict(list)
    totals, assistants = [], []
    for number, example, problem in lines:
        report.examples += 1
        if problem:
            errors["invalid_json"].append(number)
            report.error_details[number] = problem
            continue
        found = example_errors(example)
        for key in found:
            errors[key].append(number)
        if found:
            continue
        report.valid_examples += 1
        roles = {m.get("role") for m in example["messages"]}
        if "system" not in roles:
            report.missing_system.append(number)
        if "user" not in roles:
            report.missing_user.append(number)
        total, assistant = counter(example["messages"])
        if total > context_limit:
            report.over_context_limit.append(number)
        totals.append(total)
        assistants.append(assistant)
    report.errors = {key: errors[key] for key in ERROR_KEYS if key in errors}
    report.total_tokens, report.assistant_tokens = Distribution.of(totals), Distribution.of(assistants)
    report.example_lengths = totals
    report.tokens_in_dataset = sum(min(context_limit, t) for t in totals)
    report.epochs = default_epochs(report.valid_examples)
    report.billed_tokens = report.epochs * report.tokens_in_dataset
    report.estimated_cost = report.billed_tokens / 1e6 * price_per_million
    return report


def counter_for(model: str, settings=None) -> tuple[Counter, str, int]:
    """(counter, description, context limit) for an OpenAI model name, or "local" for the local base model."""
    from training.tokens import local_counter, openai_counter

    if model == "local":
        from assistant.models import load_chat_model
        from assistant.settings import get_settings

        chat_model, tokenizer = load_chat_model(settings or get_settings())
        limit = int(getattr(chat_model.config, "max_position_embeddings", DEFAULT_CONTEXT_LIMIT))
        return local_counter(tokenizer), "the local model's tokenizer and chat template", limit
    limit = next((v for k, v in CONTEXT_LIMITS.items() if model.removeprefix("ft:").startswith(k)), DEFAULT_CONTEXT_LIMIT)
    return openai_counter(model), f"tiktoken for {model}", limit


def validate_file(path: Path, model: str = "gpt-4o-mini", price_per_million: float = DEFAULT_PRICE_PER_MILLION,
                  settings=None) -> ValidationReport:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist or is not a file.")
    counter, description, limit = counter_for(model, settings)
    if model == "local":
        price_per_million = 0.0
    return validate_examples(read_jsonl(path), counter, path=str(path), tokenizer=description,
                             context_limit=limit, price_per_million=price_per_million)


if __name__ == "__main__":
    import sys

    print(validate_file(Path(sys.argv[1])).as_markdown())
