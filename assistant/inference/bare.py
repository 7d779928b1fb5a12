"""Bare llama.cpp: the plain generate loop a skilled user writes with cyllama, with no engine, cohort or streaming
around it. It is the reference and the baseline, never a runtime: tests check the engine's greedy answers against
it token for token (tests/test_generation.py), and benchmarks/generation.py times the engine against it.

    llama = BareLlama(gguf_path, threads=2)
    answer = llama.generate(prompt_ids, max_tokens=64)   # .tokens, .ttft_s, .seconds

One context, one sequence, the prompt ids in one batch, then one greedy token at a time until an end-of-generation
token (left out, as the engine leaves it out) or `max_tokens`. Each call starts from an empty cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Generation:
    tokens: list[int]  # the answer's token ids
    ttft_s: float  # from the call to the first token
    seconds: float  # the whole call


class BareLlama:
    """A llama.cpp context on `gguf` with a greedy sampler and a batch of `cells` tokens (also its context size)."""

    def __init__(self, gguf: Path, *, cells: int = 2048, threads: int | None = None):
        import cyllama.llama.llama_cpp as llama

        llama.disable_logging()
        params = llama.LlamaContextParams()
        params.n_ctx = params.n_batch = cells
        if threads is not None:
            params.n_threads = params.n_threads_batch = threads
        model = llama.LlamaModel(str(gguf), llama.LlamaModelParams())
        self.context, self.is_eog = llama.LlamaContext(model, params), model.get_vocab().is_eog
        self.sampler = llama.LlamaSampler(llama.LlamaSamplerChainParams())
        self.sampler.add_greedy()
        self.batch = llama.LlamaBatch(n_tokens=cells, embd=0, n_seq_max=1)

    def generate(self, prompt_ids: list[int], max_tokens: int) -> Generation:
        """The greedy answer to `prompt_ids`, timed."""
        self.context.memory_seq_rm(-1, -1, -1)
        started = time.perf_counter()
        self.batch.clear()
        for position, token in enumerate(prompt_ids):
            self.batch.add(token, position, [0], position == len(prompt_ids) - 1)
        self.context.decode(self.batch)
        token, first = self.sampler.sample(self.context, -1), time.perf_counter()
        tokens: list[int] = []
        while not self.is_eog(token):
            tokens.append(token)
            if len(tokens) == max_tokens:
                break
            self.batch.clear()
            self.batch.add(token, len(prompt_ids) + len(tokens) - 1, [0], True)
            self.context.decode(self.batch)
            token = self.sampler.sample(self.context, -1)
        return Generation(tokens, first - started, time.perf_counter() - started)
