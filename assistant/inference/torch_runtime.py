"""transformers under the generation engine: any base model that is not a GGUF (an HF id, a folder), and its
peft adapters. Used on the engine's thread only (assistant/inference/engine.py).

`TorchRuntime` is the engine's runtime for them (its interface: assistant/inference/runtime.py). A base model is
loaded once and shared; LoRA adapters are attached to it by name (peft's multi-adapter support) and switched per
step, never reloaded with their own copy of the base. A cohort is the requests on one base and adapter: one
left-padded KV cache, one forward per step.

Decoding: temperature 0 is greedy and plain; temperature > 0 samples with top-p 0.9 and a 1.1 repetition
penalty, which keeps a small model's free text from looping.
"""

from __future__ import annotations

import functools
from pathlib import Path

from assistant.inference.runtime import Cohort, ModelRuntime, Request
from training.base.common import device
from training.base.errors import TutorError
from training.base.models import load_pretrained


class TorchRuntime(ModelRuntime):
    """Any base model (the last resort of the engine's runtimes), with its peft adapters."""

    name = "transformers"

    def __init__(self):
        self.models = TorchModels()

    def runs(self, source: str) -> bool:
        return True

    def cohort(self, source: str, adapter: str | None, threads: int) -> TorchCohort:
        return TorchCohort(self.models, source, adapter)


def _inference(method):
    """Run a cohort's model work in torch's inference mode (no autograd records)."""

    @functools.wraps(method)
    def inside(*args, **kwargs):
        import torch

        with torch.inference_mode():
            return method(*args, **kwargs)

    return inside


class TorchModels:
    """The loaded base models and the adapters attached to them."""

    def __init__(self):
        self._peft: dict[str, object] = {}  # base source -> PeftModel wrapping the shared base
        self._adapters: dict[str, str] = {}  # adapter folder -> its name inside that PeftModel
        self._routing: dict[str, str | None] = {}  # base source -> the adapter its layers use now

    @staticmethod
    def model(source: str):
        return load_pretrained(source, device())  # cached after the first call

    def activate(self, source: str, adapter: str | None) -> None:
        """Route the shared base through `adapter` (attached on first use) or through no adapter.

        Switching walks every LoRA layer, so it happens only when the routing changes, not every step."""
        if self._routing.get(source, None) == adapter:
            return
        if adapter is not None and adapter not in self._adapters:
            self._attach(source, adapter)
        peft_model = self._peft.get(source)
        if adapter is None:
            if peft_model is not None:
                peft_model.base_model.disable_adapter_layers()
        else:
            peft_model.base_model.enable_adapter_layers()
            peft_model.base_model.set_adapter(self._adapters[adapter])
        self._routing[source] = adapter

    def _attach(self, source: str, adapter: str) -> None:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise TutorError(f"The adapter folder {adapter} is missing or incomplete; train the model again.")
        name = f"adapter{len(self._adapters)}"
        model, _ = self.model(source)
        if source not in self._peft:  # injects LoRA layers into the shared base, in place
            self._peft[source] = PeftModel.from_pretrained(model, adapter, adapter_name=name)
        else:
            self._peft[source].load_adapter(adapter, adapter_name=name)
        self._peft[source].eval()
        self._adapters[adapter] = name


class TorchCohort(Cohort):
    """Requests on one base model and adapter, decoding together: one left-padded KV cache, one forward per step.

    A request joins after its own prefill (its cache is padded on the left to the cohort's length) and leaves
    when it ends (its row is dropped, and padding every row shares is trimmed). The attention mask hides the
    padding and each row keeps its own positions, so a row decodes exactly as it would alone."""

    @_inference
    def __init__(self, models: TorchModels, source: str, adapter: str | None):
        self.models, self.source, self.adapter = models, source, adapter
        models.activate(source, adapter)  # a missing adapter fails here, before any request joins
        self.model, self.tokenizer = models.model(source)
        self.stop_ids = _stop_ids(self.model, self.tokenizer)
        self.cache = None
        self.mask: list[list[int]] = []
        self._temperatures: list[float] = []  # per row
        self._histories: list = []  # per row: prompt + generated ids, for the repetition penalty
        self._processors: list = []

    def has_room(self, prompt_ids: list[int]) -> bool:
        return True  # the cache grows as needed

    def answer_limit(self, prompt_ids: list[int]) -> None:
        return None

    @_inference
    def prefill(self, request: Request, prompt_ids: list[int], threads: int) -> int:
        """The prompt through the model on its own cache; the request joins the cohort; its first token."""
        import torch

        self.models.activate(self.source, self.adapter)
        torch.set_num_threads(threads)
        history = torch.tensor([prompt_ids], device=self.model.device)
        # logits_to_keep: the prefill needs the last position's logits only (saves a vocab-sized matmul per token).
        out = self.model(input_ids=history, use_cache=True, logits_to_keep=1)
        self._join(len(prompt_ids), out.past_key_values)
        self._temperatures.append(request.temperature)
        self._histories.append(history)
        self._processors.append(_processors(request.temperature))
        return self._pick(len(self._temperatures) - 1, out.logits[0, -1])

    @_inference
    def step(self, inputs: list[tuple[int, int]], threads: int) -> list[int]:
        """One token for every row, in one forward pass."""
        import torch

        self.models.activate(self.source, self.adapter)
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        self.mask = [row + [1] for row in self.mask]
        device = self.model.device
        out = self.model(input_ids=torch.tensor([[token] for token, _ in inputs], device=device),
                         attention_mask=torch.tensor(self.mask, device=device),
                         position_ids=torch.tensor([[position] for _, position in inputs], device=device),
                         past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        return [self._pick(row, out.logits[row, -1]) for row in range(len(inputs))]

    def _pick(self, row: int, logits) -> int:
        import torch

        scores = self._processors[row](self._histories[row], logits.float().unsqueeze(0))
        if self._temperatures[row] > 0:
            token = torch.multinomial(torch.softmax(scores, dim=-1), 1)
        else:
            token = scores.argmax(dim=-1, keepdim=True)
        self._histories[row] = torch.cat([self._histories[row], token], dim=1)
        return int(token)

    def _join(self, length: int, cache) -> None:
        """A new last row: its cache, padded on the left to the cohort's length, and its mask."""
        import torch

        if self.cache is None:
            self.cache, self.mask = cache, [[1] * length]
            return
        width = max(len(self.mask[0]), length)
        for mine, theirs in zip(self.cache.layers, cache.layers):
            mine.keys, mine.values = (torch.cat([_pad_left(a, width), _pad_left(b, width)])
                                      for a, b in ((mine.keys, theirs.keys), (mine.values, theirs.values)))
        self.mask = [[0] * (width - len(row)) + row for row in self.mask]
        self.mask.append([0] * (width - length) + [1] * length)

    @_inference
    def leave(self, rows: set[int]) -> None:
        import torch

        keep = [i for i in range(len(self.mask)) if i not in rows]
        self.mask, self._temperatures = [self.mask[i] for i in keep], [self._temperatures[i] for i in keep]
        self._histories, self._processors = [self._histories[i] for i in keep], [self._processors[i] for i in keep]
        if not keep:
            self.cache = None
            return
        self.cache.batch_select_indices(torch.tensor(keep))
        shared = min(row.index(1) for row in self.mask)  # padding in front of every row: no longer needed
        if shared:
            self.mask = [row[shared:] for row in self.mask]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, shared:], layer.values[:, :, shared:]


def _pad_left(tensor, width: int):
    import torch

    missing = width - tensor.shape[-2]
    return torch.nn.functional.pad(tensor, (0, 0, missing, 0)) if missing else tensor


def _processors(temperature: float):
    from transformers import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopPLogitsWarper,
    )

    if temperature <= 0:
        return LogitsProcessorList()
    return LogitsProcessorList([RepetitionPenaltyLogitsProcessor(1.1), TemperatureLogitsWarper(temperature),
                                TopPLogitsWarper(0.9)])


def _stop_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())
