"""Before Start: will a local run fit in memory, and how long will it train? Shown by `tutor train --dry-run` and the
chat's confirm step, and checked again before the trainer starts (a run that won't fit is refused, with the one
change that makes it fit). When the run ends its summary puts the measured figures beside these.

Peak memory, by parts: the trainer process itself (Python and the libraries), the base weights in the precision
the trainer will pick (or QLoRA's 4 bits), the adapter with its gradients and AdamW's two moments (fp32), and the
activations of the run's largest batch (the trainer takes it first), which are most of it on a CPU:

    saved for the backward pass, per token and layer: 24 x hidden + 12 x intermediate bytes in bf16, 48 x hidden +
    17.3 x intermediate in fp32 (LoRA on every linear layer, dropout, SDPA attention), measured live on four
    Llama/Qwen2 shapes; with gradient checkpointing each layer keeps only its input and one layer is rebuilt at a time;
    per answer token: 11 x vocabulary bytes (the head runs on answer tokens only: logits, log-softmax, gradient);
    on a CPU, the C allocator's share on top: the peak resident memory of a step is 1.5x what it holds live
    (6x under checkpointing, whose recomputation frees and allocates small pieces all through the backward pass).

tests/test_machine.py holds the whole estimate to the peak RSS of real runs within 25% (embedded and tiny model,
two batch sizes); measured runs on this project's CPU build of torch (Linux, glibc) were within 20%. Time comes
from the throughput of an earlier run of the same setup on this machine, else from a few steps measured now in a
child process (training/local/throughput.py), or, for a GPU that is not here, from GPU_TABLE.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

from pydantic import BaseModel

from training.base.phrases import Phrases
from training.local.config import TrainConfig
from training.local.throughput import throughput

log = logging.getLogger(__name__)

GB = 1024**3
# Measured: the trainer process with a tokenizer and a tiny model loaded (Python, torch, transformers, peft,
# accelerate); a bf16 base read from an fp32 file leaves nothing behind (the trainer gives back what loading freed).
RUNTIME_BYTES = 450 * 1024**2
CUDA_CONTEXT_BYTES = 600 * 1024**2  # the CUDA context and kernels: on the GPU, outside torch's allocator
ACTIVATION_BYTES = {"bf16": (24.0, 12.0), "fp32": (42.0, 15.2)}  # per token and layer: x hidden, x intermediate
LOGIT_BYTES = 11  # per answer token and vocabulary entry
ALLOCATOR = {"saved": 1.35, "checkpointed": 3.0}  # a CPU step's peak RSS over what it holds live (glibc)
GENERATION_BYTES = 256 * 1024**2  # the run's validation answers, 8 at a time, when it generates them
ADAM_BYTES = 16  # per trainable parameter: the fp32 weight, its gradient and AdamW's two moments
NF4_BYTES = 0.5 + 0.5 / 64 + 4 / (64 * 256)  # 4 bits, an 8-bit scale per 64 weights, an fp32 one per 256 scales
ESTIMATE_FILE = "estimate.json"  # in a run's folder: what was expected, for the summary beside what was measured
HEADROOM = 0.9  # a run fits in 90% of the memory free now: the system and the app need some too
# A GPU that is not on this machine: memory (GiB) and dense bf16 tensor TFLOP/s from the vendor's sheet. Time
# assumes 35% of that peak (model FLOPs utilisation), unverified here: benchmarks/gpu.py measures it on a real one.
GPU_TABLE = {"T4": (15, 65), "L4": (22, 121), "A10G": (22, 125), "RTX 4090": (24, 165), "A100-40GB": (40, 312),
             "A100-80GB": (80, 312), "L40S": (45, 362), "H100": (80, 989), "H200": (141, 989)}
GPU_MFU = 0.35
PHRASES = Phrases("estimate")


class Architecture(BaseModel):
    """What the estimate needs of a model, from its config.json (no weights are read)."""

    parameters: int
    hidden: int
    intermediate: int
    layers: int
    vocabulary: int
    tied: bool
    query: int  # the width of queries (heads x head size) and of keys and values (key-value heads x head size)
    key_value: int
    context: int | None = None

    @classmethod
    def of(cls, source: str) -> Architecture:
        """From a model's config.json (a folder or an HF id in the local cache)."""
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(source)
        config = getattr(config, "text_config", None) or config
        heads = config.num_attention_heads
        return cls.shaped(config.hidden_size, config.intermediate_size, config.num_hidden_layers, heads,
                          getattr(config, "num_key_value_heads", None) or heads, config.vocab_size,
                          bool(getattr(config, "tie_word_embeddings", False)),
                          getattr(config, "max_position_embeddings", None), getattr(config, "head_dim", None))

    @classmethod
    def shaped(cls, h: int, i: int, layers: int, heads: int, kv_heads: int, vocab: int, tied: bool = True,
               context: int | None = None, head_dim: int | None = None) -> Architecture:
        """A Llama- or Qwen-shaped decoder (the curated Hub models' shapes come here before any download)."""
        head_dim = head_dim or h // heads
        kv = kv_heads * head_dim
        per_layer = h * heads * head_dim * 2 + h * kv * 2 + 3 * h * i + 2 * h  # q, o; k, v; the MLP; two norms
        parameters = layers * per_layer + vocab * h * (1 if tied else 2) + h
        return cls(parameters=parameters, hidden=h, intermediate=i, layers=layers, vocabulary=vocab, tied=tied,
                   query=heads * head_dim, key_value=kv, context=context)

    def lora_parameters(self, r: int) -> int:
        """Trainable parameters of LoRA rank r on every linear layer of every block (A: r x in, B: out x r)."""
        h, i, q, kv = self.hidden, self.intermediate, self.query, self.key_value
        return self.layers * r * ((h + q) * 2 + (h + kv) * 2 + (h + i) * 3)


class Shape(BaseModel):
    """The data as the trainer will batch it: its largest batch (taken first) and the tokens of one epoch."""

    batch: int
    width: int
    answer_tokens: int
    epoch_tokens: int
    longest: int
    lengths: list[int]


class Memory(BaseModel):
    device: str
    dtype: str
    runtime: int
    weights: int
    adapter: int
    activations: int
    available: int | None

    @property
    def total(self) -> int:
        return self.runtime + self.weights + self.adapter + self.activations

    @property
    def fits(self) -> bool:
        return self.available is None or self.total <= self.available * HEADROOM


class Time(BaseModel):
    seconds: float
    tokens: int
    tokens_per_second: float
    source: str  # "previous", "measured", "scaled" or "table"
    gpu: str | None = None


class Estimate(BaseModel):
    """The whole estimate: memory, time (None when it could not be measured) and, where it won't fit, the fix."""

    memory: Memory
    time: Time | None = None
    shape: Shape
    fix: dict | None = None  # {"key": "fix.batch", "fields": {...}, "config": {settings that change}}

    @property
    def fits(self) -> bool:
        return self.memory.fits

    def describe(self, language: str = "en") -> str:
        m = self.memory
        lines = [PHRASES("memory", language, total=m.total / GB, available=(m.available or 0) / GB,
                         device=m.device.upper(), weights=m.weights / GB, dtype=m.dtype, adapter=m.adapter / GB,
                         activations=m.activations / GB, batch=self.shape.batch, width=self.shape.width,
                         runtime=m.runtime / GB)]
        if self.time:
            source = PHRASES(f"source.{self.time.source}", language, gpu=self.time.gpu or "")
            lines.append(PHRASES("time", language, time=duration(self.time.seconds), tokens=self.time.tokens,
                                 rate=self.time.tokens_per_second, source=source))
        lines.append(PHRASES("fits", language) if self.fits else PHRASES("no_fit", language, fix=self.fix_text(language)))
        return "; ".join(lines) + "."

    def fix_text(self, language: str = "en") -> str:
        return PHRASES(self.fix["key"], language, **self.fix["fields"]) if self.fix else ""

    def refusal(self, language: str = "en") -> str:
        return PHRASES("refused", language, total=self.memory.total / GB, available=(self.memory.available or 0) / GB,
                       device=self.memory.device.upper(), fix=self.fix_text(language))


def expected(found: Estimate) -> dict:
    """What a run's summary shows beside its measured figures."""
    return {"estimated_peak_memory_bytes": found.memory.total,
            **({"estimated_train_seconds": round(found.time.seconds, 1)} if found.time else {})}


def duration(seconds: float) -> str:
    seconds = max(1, round(seconds))
    return f"{seconds} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def shape(config: TrainConfig, tokenizer, batch_size: int | None = None, max_length: int | None = None) -> Shape:
    """The run's batches as the trainer builds them (its own tokenizing, grouping and longest-first order)."""
    from training.local.batches import IGNORE, length_grouped_batches, load_examples, longest_first

    examples, _ = load_examples(config.train_file, tokenizer, max_length or config.max_length)
    lengths = [len(e["input_ids"]) for e in examples]
    batch_size = batch_size or config.batch_size
    batches = longest_first(length_grouped_batches(lengths, batch_size, config.seed), lengths)
    first = batches[0] if batches else []
    answers = sum(sum(1 for label in examples[i]["labels"][1:] if label != IGNORE) for i in first)
    return Shape(batch=len(first), width=max((lengths[i] for i in first), default=0), answer_tokens=answers,
                 epoch_tokens=sum(lengths), longest=max(lengths, default=0), lengths=lengths)


def memory(config: TrainConfig, arch: Architecture, data: Shape, device: str, dtype: str,
           available: int | None) -> Memory:
    """Peak memory of the run on `device` ("cpu", "cuda", "mps") computing in `dtype` ("bf16" or "fp32")."""
    weight_bytes = 2 if dtype == "bf16" else 4
    if config.method == "qlora":  # embeddings and the head stay in 16 bits, the blocks go to 4
        embeddings = arch.vocabulary * arch.hidden * (1 if arch.tied else 2)
        weights = int((arch.parameters - embeddings) * NF4_BYTES + embeddings * 2)
    else:
        weights = arch.parameters * weight_bytes
    per_hidden, per_intermediate = ACTIVATION_BYTES["bf16" if config.method == "qlora" else dtype]
    layer = data.batch * data.width * (per_hidden * arch.hidden + per_intermediate * arch.intermediate)
    if config.gradient_checkpointing:  # each layer's input kept, one layer rebuilt at a time
        saved = data.batch * data.width * arch.hidden * weight_bytes * arch.layers + layer
    else:
        saved = layer * arch.layers
    if device == "cpu":
        saved *= ALLOCATOR["checkpointed" if config.gradient_checkpointing else "saved"]
    activations = saved + data.answer_tokens * arch.vocabulary * LOGIT_BYTES
    if config.validation_file and config.eval_generate_limit:
        activations = max(activations, GENERATION_BYTES)
    runtime = CUDA_CONTEXT_BYTES if device == "cuda" else RUNTIME_BYTES
    return Memory(device=device, dtype="4-bit NF4" if config.method == "qlora" else dtype, runtime=runtime,
                  weights=weights, adapter=arch.lora_parameters(config.lora_r) * ADAM_BYTES,
                  activations=int(activations), available=available)


# --- the whole estimate -----------------------------------------------------------------------------------------

def available_memory(device: str) -> int | None:
    """Bytes free now where the run trains: system memory for a CPU (and Apple's unified memory), the GPU's own."""
    if device == "cuda":
        import torch

        return torch.cuda.mem_get_info()[0]
    from training.base.hardware import memory as system_memory

    return system_memory()[1]


def estimate(config: TrainConfig, settings, gpu: str | None = None,
             measure: Literal["probe", "known", "no"] = "probe", arch: Architecture | None = None,
             reclaimable: int = 0) -> Estimate:
    """The run's estimate on this machine, or on `gpu` (a GPU_TABLE name) when it is not here. `measure`: how to
    find the time: "probe" (an earlier run's throughput, else a few steps measured now), "known" (only an earlier
    run's or probe's), "no". `arch`: the shape of a model not downloaded yet (its time is then scaled from the
    embedded model's measured speed here, when known). `reclaimable`: memory that frees before the run starts (the
    trainer a queued run waits for). Memory is capped by TUTOR_TRAIN_MEMORY_GB where set."""
    from training.base.common import device as this_device
    from training.base.hardware import precision
    from training.base.models import load_tokenizer, resolve_base_model
    from training.base.settings import EMBEDDED

    arch_given = arch is not None
    if arch is None:  # the model is here: its own config and tokenizer
        source = resolve_base_model(settings, config.base_model)
        arch, tokenizer = Architecture.of(source), load_tokenizer(source)
    else:  # a model not downloaded yet: the embedded model's tokenizer counts the data's tokens
        tokenizer = load_tokenizer(resolve_base_model(settings, EMBEDDED))
    data = shape(config, tokenizer)
    if gpu:
        device, dtype, available = "cuda", "bf16", GPU_TABLE[gpu][0] * GB
    else:
        device = this_device()
        dtype, available = precision(device, config.bf16).dtype, available_memory(device)
        if available is not None and device != "cuda":  # a trainer's RSS frees system (or unified) memory
            available += reclaimable
    if limit := settings.train_memory_gb:
        available = min(available or int(limit * GB), int(limit * GB))
    found = Estimate(memory=memory(config, arch, data, device, dtype, available), shape=data)
    if not found.fits:
        found.fix = _fix(config, arch, tokenizer, data, device, dtype, available)
        return found
    tokens = math.ceil(data.epoch_tokens * config.epochs)
    if gpu:
        flops = (6 if config.gradient_checkpointing else 4) * arch.parameters  # forward, input gradients, a recompute
        rate = GPU_TABLE[gpu][1] * 1e12 * GPU_MFU / flops
        found.time = Time(seconds=tokens / rate, tokens=tokens, tokens_per_second=rate, source="table", gpu=gpu)
    elif measure != "no" and arch_given:
        embedded = config.model_copy(update={"base_model": EMBEDDED})
        if known := throughput(embedded, settings, dtype, probe=False):
            embedded_size = Architecture.of(resolve_base_model(settings, EMBEDDED)).parameters
            rate = known[1] * embedded_size / arch.parameters  # compute per token grows with the parameters
            found.time = Time(seconds=tokens / rate, tokens=tokens, tokens_per_second=rate, source="scaled")
    elif measure != "no" and (known := throughput(config, settings, dtype, probe=measure == "probe")):
        found.time = Time(seconds=tokens / known[1], tokens=tokens, tokens_per_second=known[1], source=known[0])
    return found


def _fix(config, arch, tokenizer, data, device, dtype, available) -> dict:
    """The one change that makes the run fit, cheapest first: gradient checkpointing, a smaller batch (the same
    examples per update through accumulation), a shorter max_length, QLoRA (on CUDA), else a smaller model."""
    def fits(changed: TrainConfig, shaped: Shape = data) -> bool:
        return memory(changed, arch, shaped, device, dtype, available).fits

    if not config.gradient_checkpointing and fits(config.model_copy(update={"gradient_checkpointing": True})):
        return {"key": "fix.gradient_checkpointing", "fields": {}, "config": {"gradient_checkpointing": True}}
    batch = config.batch_size
    while batch > 1:
        batch //= 2
        accumulation = config.gradient_accumulation * config.batch_size // batch
        if fits(config, shape(config, tokenizer, batch_size=batch)):
            return {"key": "fix.batch", "fields": {"batch": batch, "accumulation": accumulation},
                    "config": {"batch_size": batch, "gradient_accumulation": accumulation}}
    for max_length in (2048, 1024, 512, 256, 128):
        if max_length < data.width and fits(config, shape(config, tokenizer, max_length=max_length)):
            cut = sum(length >= max_length for length in data.lengths)
            return {"key": "fix.max_length", "fields": {"max_length": max_length, "cut": cut},
                    "config": {"max_length": max_length}}
    if device == "cuda" and config.method != "qlora" and fits(config.model_copy(update={"method": "qlora"})):
        return {"key": "fix.qlora", "fields": {}, "config": {"method": "qlora"}}
    smallest = memory(config.model_copy(update={"gradient_checkpointing": True}), arch,
                      shape(config, tokenizer, batch_size=1), device, dtype, available)
    return {"key": "fix.model", "fields": {"total": smallest.total / GB}, "config": {}}
