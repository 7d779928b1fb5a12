"""llama.cpp under the generation engine: GGUF base models (the embedded SmolLM2) and their fine-tunes.
Used on the engine's thread only (assistant/inference/engine.py), through cyllama's bindings (prebuilt wheels).

`LlamaRuntime` is the engine's runtime for them (its interface: assistant/inference/runtime.py). A cohort is one
llama.cpp context: its requests are sequences, each with its own KV cache (a unified one changes the attention's
summation order with the neighbours, and so the answers), and a step decodes one token of each in a single batch:
a request decodes exactly as it would alone.

The files it runs are written once (training/models/gguf_export.py): the base with Q8_0 layers, re-quantized from
the exact values of the shipped 4-bit GGUF (faster to read prompts with here, and the same format as a
fine-tune), into the base's converted folder; a fine-tune, the adapter merged into it, into the adapter's
folder (by the trainer as the run finishes, or here on first use for older runs). Prompts are built with
the transformers tokenizer and chat template, as in training, and fed as token ids.

Decoding: temperature 0 is greedy; temperature > 0 samples with a 1.1 repetition penalty, top-p 0.9
and the temperature (llama.cpp's sampler chain), as the transformers runtime does.
"""

from __future__ import annotations

import logging
import random
from collections import OrderedDict
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from assistant.inference.runtime import Cohort, ModelRuntime, Request
from training.base.errors import TutorError
from training.base.models import gguf_file
from training.models.gguf_export import MERGED_FILE

log = logging.getLogger(__name__)

SEQUENCES = 8  # requests decoding together in one context; more wait for a free one
SEQUENCE_CELLS = 2048  # KV cells per request (prompt + answer tokens): 8 x 2048 cells are 380 MB for SmolLM2
BATCH = 2048  # tokens per llama_decode call: longer prompts go in several
BASE_FILE = "model-q8_0.gguf"  # the base for llama.cpp, written into its converted folder
_models: OrderedDict[Path, object] = OrderedDict()  # loaded GGUFs, most recently used last
KEEP_MODELS = 4


class Runtime(BaseModel):
    name: Literal["llama.cpp", "transformers"]
    reason: str


def available() -> bool:
    """llama.cpp can run here: the bindings import (a platform without a cyllama wheel uses transformers)."""
    try:
        import cyllama.llama.llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def runtime() -> Runtime:
    """The local engine's runtime for GGUF bases (the embedded model), and why."""
    if available():
        import cyllama

        return Runtime(name="llama.cpp", reason=f"cyllama {getattr(cyllama, '__version__', '?')} runs GGUF models")
    return Runtime(name="transformers", reason="cyllama (llama.cpp) has no wheel for this platform or Python, so the "
                                               "engine runs models on transformers: slower, same answers")


def runs_on_llama(source: str) -> bool:
    return gguf_file(source) is not None and available()


def model_file(source: str, adapter: str | None) -> Path:
    """The GGUF to run, written on first use and kept (training/models/gguf_export.py): the base with Q8_0 layers, or
    the fine-tune merged into it. Written again when what it came from is newer."""
    base = gguf_file(source)
    if adapter is None:
        target, inputs = Path(source) / BASE_FILE, [base]
    else:
        inputs = [Path(adapter) / "adapter_config.json", Path(adapter) / "adapter_model.safetensors"]
        if not all(path.is_file() for path in inputs):
            raise TutorError(f"The adapter folder {adapter} is missing or incomplete; train the model again.")
        target = Path(adapter) / MERGED_FILE
    if _stale(target, inputs):
        from filelock import FileLock

        from training.models.gguf_export import write_gguf

        with FileLock(target.with_name(f".{target.name}.lock")):  # another process may be writing it now
            if _stale(target, inputs):
                log.info("Writing %s for llama.cpp (once)", target)
                write_gguf(base, source, Path(adapter) if adapter else None, target)
    return target


def _stale(target: Path, inputs: list[Path]) -> bool:
    return not target.is_file() or target.stat().st_mtime < max(path.stat().st_mtime for path in inputs)


def _model(path: Path):
    import cyllama.llama.llama_cpp as llama

    if path in _models:
        _models.move_to_end(path)
        return _models[path]
    llama.disable_logging()  # llama.cpp prints every tensor it loads to stderr
    try:
        model = llama.LlamaModel(str(path), llama.LlamaModelParams())
    except (ValueError, RuntimeError) as exc:
        raise TutorError(f"llama.cpp could not load {path.name}; delete it to rebuild it ({exc}).") from exc
    _models[path] = model
    while len(_models) > KEEP_MODELS:
        _models.popitem(last=False)  # freed with the last context that uses it
    return model


class LlamaRuntime(ModelRuntime):
    """GGUF base models and their fine-tunes, where the bindings import."""

    name = "llama.cpp"

    def runs(self, source: str) -> bool:
        return runs_on_llama(source)

    def cohort(self, source: str, adapter: str | None, threads: int) -> LlamaCohort:
        return LlamaCohort(source, adapter, threads)


class LlamaCohort(Cohort):
    """Requests on one GGUF decoding together: sequences of one llama.cpp context."""

    def __init__(self, source: str, adapter: str | None, threads: int):
        import cyllama.llama.llama_cpp as llama

        self._llama = llama
        self.model = _model(model_file(source, adapter))
        params = llama.LlamaContextParams()
        params.n_ctx, params.n_batch, params.n_seq_max = SEQUENCES * SEQUENCE_CELLS, BATCH, SEQUENCES
        params.kv_unified = False
        params.n_threads = params.n_threads_batch = threads
        self.context = llama.LlamaContext(self.model, params)
        self._threads = threads
        self._batch = llama.LlamaBatch(n_tokens=BATCH, embd=0, n_seq_max=1)
        vocab = self.model.get_vocab()
        self.stop_ids = {token for token in range(vocab.n_vocab) if vocab.is_eog(token)}
        self._sequences: list[int] = []  # per row: its sequence id in the context
        self._samplers: list = []

    def has_room(self, prompt_ids: list[int]) -> bool:
        if len(prompt_ids) >= SEQUENCE_CELLS:
            raise TutorError(f"The conversation is too long for the local model ({len(prompt_ids)} tokens, "
                             f"{SEQUENCE_CELLS} at most); start a new chat or ask a shorter question.")
        return len(self._sequences) < SEQUENCES

    def answer_limit(self, prompt_ids: list[int]) -> int:
        return SEQUENCE_CELLS - len(prompt_ids)  # the answer ends where its sequence's cells do

    def prefill(self, request: Request, prompt_ids: list[int], threads: int) -> int:
        """The prompt into a free sequence, in batches of BATCH tokens; the request's row; its first token."""
        sequence = min(set(range(SEQUENCES)) - set(self._sequences))
        self._set_threads(threads)
        for start in range(0, len(prompt_ids), BATCH):
            self._batch.clear()
            chunk = prompt_ids[start:start + BATCH]
            for offset, token in enumerate(chunk):
                self._batch.add(token, start + offset, [sequence], start + offset == len(prompt_ids) - 1)
            self._decode()
        self._sequences.append(sequence)
        self._samplers.append(self._sampler(request.temperature))
        return self._samplers[-1].sample(self.context, -1)

    def step(self, inputs: list[tuple[int, int]], threads: int) -> list[int]:
        """One token for every row, in one batch."""
        self._set_threads(threads)
        self._batch.clear()
        for (token, position), sequence in zip(inputs, self._sequences):
            self._batch.add(token, position, [sequence], True)
        self._decode()
        return [sampler.sample(self.context, row) for row, sampler in enumerate(self._samplers)]

    def leave(self, rows: set[int]) -> None:
        for row in rows:
            self.context.memory_seq_rm(self._sequences[row], -1, -1)
        keep = [i for i in range(len(self._sequences)) if i not in rows]
        self._sequences, self._samplers = [self._sequences[i] for i in keep], [self._samplers[i] for i in keep]

    def _decode(self) -> None:
        try:
            self.context.decode(self._batch)
        except (ValueError, RuntimeError, InterruptedError) as exc:
            raise TutorError(f"The local model (llama.cpp) failed to decode: {exc}.") from exc

    def _set_threads(self, threads: int) -> None:
        if threads != self._threads:
            self.context.set_n_threads(threads, threads)
            self._threads = threads

    def _sampler(self, temperature: float):
        sampler = self._llama.LlamaSampler(self._llama.LlamaSamplerChainParams())
        if temperature <= 0:
            sampler.add_greedy()
        else:
            sampler.add_penalties(64, 1.1, 0.0, 0.0)
            sampler.add_top_p(0.9, 1)
            sampler.add_temp(temperature)
            sampler.add_dist(random.getrandbits(31))
        return sampler

