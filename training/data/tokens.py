"""Token counting for chat examples, the way each trainer will see them.

- OpenAI models: tiktoken, with the cookbook's per-message overhead (3 tokens a message, 1 for a
  name, 3 to prime the reply). tiktoken normally downloads its BPE file on first use; offline we seed
  its cache from the `bpe-openai` package, which ships the same files (checked by tiktoken's own
  sha256 on load).
- Local models: the model's own tokenizer and chat template (what the LoRA trainer will feed it).

Each counter returns (total tokens, assistant tokens) for an example's messages.

    python -m training.data.tokens gpt-4o-mini "Hello there"
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from training.base.common import write_atomic

Counter = Callable[[list[dict]], tuple[int, int]]
_BPE_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"  # tiktoken's cache key only


def seed_tiktoken_cache(encoding_name: str) -> None:
    """Put the BPE file tiktoken would download into its cache, from the bpe-openai package."""
    cache = Path(os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(tempfile.gettempdir()) / "tutor-tiktoken")))
    target = cache / hashlib.sha1(_BPE_URL.format(name=encoding_name).encode()).hexdigest()
    if target.exists():
        return
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The package 'bpe-openai' (offline tiktoken files) is not installed. Run `make install`.")
    packed = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{encoding_name}.tiktoken.gz"
    cache.mkdir(parents=True, exist_ok=True)
    write_atomic(target, gzip.decompress(packed.read_bytes()))


def openai_counter(model: str = "gpt-4o-mini") -> Counter:
    import tiktoken

    try:
        name = tiktoken.encoding_name_for_model(model.split(":")[1] if model.startswith("ft:") else model)
    except KeyError:
        name = "o200k_base"
    seed_tiktoken_cache(name)
    encoding = tiktoken.get_encoding(name)

    def count(messages: list[dict]) -> tuple[int, int]:
        total, assistant = 3, 0
        for message in messages:
            total += 3
            for key, value in message.items():
                if isinstance(value, str):
                    total += len(encoding.encode(value, disallowed_special=()))
                    if key == "name":
                        total += 1
            if message.get("role") == "assistant" and isinstance(message.get("content"), str):
                assistant += len(encoding.encode(message["content"], disallowed_special=()))
        return total, assistant

    return count


def local_counter(tokenizer) -> Counter:
    """Counts with a transformers tokenizer's chat template, as the local trainer will tokenize."""

    def length(messages: list[dict], **options) -> int:
        encoded = tokenizer.apply_chat_template(messages, tokenize=True, **options)
        return len(encoded["input_ids"] if isinstance(encoded, Mapping) else encoded)

    def count(messages: list[dict]) -> tuple[int, int]:
        total = length(messages)
        if messages and messages[-1].get("role") == "assistant":
            return total, total - length(messages[:-1], add_generation_prompt=True)
        return total, 0

    return count


if __name__ == "__main__":
    import sys

    print(openai_counter(sys.argv[1])([{"role": "user", "content": " ".join(sys.argv[2:])}]))
