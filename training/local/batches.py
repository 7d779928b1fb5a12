"""A chat JSONL as the trainer sees it: token ids with labels on the final assistant answer only, and batches of
similar lengths. The trainer (training/local/lora.py), the estimate (training/local/estimate.py) and the token view
(training/local/token_view.py) all batch and mask through here, so none of them can disagree with training.

    examples, raw = load_examples("train.jsonl", tokenizer, max_length=512)
    batches = longest_first(length_grouped_batches([len(e["input_ids"]) for e in examples], 8, seed=42), lengths)
    batch = collate([examples[i] for i in batches[0]], tokenizer.pad_token_id)   # input_ids, labels, attention_mask
"""

from __future__ import annotations

import json
import random

IGNORE = -100  # the label of a token that is context, not learned


def chat_ids(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> list[int]:
    """The token ids of `messages` after the model's chat template."""
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt)
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def tokenize(tokenizer, messages: list[dict], max_length: int) -> dict | None:
    """input_ids with labels on the final assistant message only; None when nothing is left to learn."""
    if not messages or messages[-1].get("role") != "assistant":
        return None
    prompt = chat_ids(tokenizer, messages[:-1], add_generation_prompt=True)
    full = chat_ids(tokenizer, messages)[:max_length]
    labels = [IGNORE] * min(len(prompt), len(full)) + full[len(prompt):]
    if all(label == IGNORE for label in labels):
        return None
    return {"input_ids": full, "labels": labels}


def load_examples(path: str, tokenizer, max_length: int) -> tuple[list[dict], list[dict]]:
    """(tokenized examples, their raw messages); malformed lines are skipped (they were validated before)."""
    examples, raw = [], []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                messages = json.loads(line)["messages"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
            if item := tokenize(tokenizer, messages, max_length):
                examples.append(item)
                raw.append(messages)
    return examples, raw


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Seeded batches of similar-length examples: shuffle, sort within large windows, shuffle batches."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 16
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def longest_first(batches: list[list[int]], lengths: list[int]) -> list[list[int]]:
    """The batch with the most (padded) tokens moved to the front: the run's peak memory comes at its first step,
    where an estimate that was wrong shows at once, and later batches fit into memory it already holds (with
    the largest batch late, the C allocator keeps both its and the earlier ones' memory: 30% more at the peak)."""
    if not batches:
        return batches
    largest = max(range(len(batches)), key=lambda i: max(lengths[j] for j in batches[i]) * len(batches[i]))
    return [batches[largest], *batches[:largest], *batches[largest + 1:]]


def collate(examples: list[dict], pad_id: int) -> dict:
    """Padded tensors of a batch: input_ids, labels (IGNORE on padding) and attention_mask. (torch is imported here
    only: the token view and the app use this module without it.)"""
    import torch

    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[row, :n], labels[row, :n], mask[row, :n] = torch.tensor(e["input_ids"]), torch.tensor(e["labels"]), 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
