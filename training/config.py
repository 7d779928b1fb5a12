"""The local LoRA fine-tuning configuration, checked before any work starts.

    from training.config import TrainConfig
    config = TrainConfig(train_file="train.jsonl", validation_file="validation.jsonl", epochs=3)
    config.check()      # raises ConfigError with a sentence per problem
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path


class ConfigError(ValueError):
    """A setting the trainer cannot use; the message says which and why."""


@dataclass
class TrainConfig:
    """Local LoRA fine-tuning settings (defaults suit the embedded SmolLM2-135M on a laptop CPU).

    Data:
        train_file, validation_file: chat JSONL ({"messages": [...]}); loss is on assistant tokens only.
        max_length: examples are cut to this many tokens (must fit the model's context).

    Model:
        base_model: "embedded" (SmolLM2-135M-Instruct), an HF id in the local cache, or a folder.
        init_adapter: continue fine-tuning this adapter folder (trained on base_model) instead of a new one.

    LoRA:
        lora_r, lora_alpha, lora_dropout: adapter rank, scale (alpha / r) and dropout.
        target_modules: which linear layers get adapters ("all-linear" or a list like ["q_proj", "v_proj"]).

    Optimisation:
        epochs, learning_rate, batch_size, gradient_accumulation, warmup_ratio, weight_decay, seed.

    Bookkeeping:
        eval_every, save_every: steps between validation passes and between checkpoints (0 = per epoch).
        eval_generate_limit: validation examples answered by the model for the F1 of ingredient lists.
        bf16: "auto" uses bfloat16 autocast where the CPU/GPU supports it, "yes"/"no" to force.
    """

    train_file: str = ""
    validation_file: str | None = None
    max_length: int = 512
    base_model: str = "embedded"
    init_adapter: str | None = None
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    epochs: float = 3.0
    learning_rate: float = 2e-4
    batch_size: int = 8
    gradient_accumulation: int = 1
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    seed: int = 42
    eval_every: int = 0
    save_every: int = 20
    eval_generate_limit: int = 20
    bf16: str = "auto"

    def check(self, context_length: int | None = None) -> "TrainConfig":
        problems = []
        if not self.train_file or not Path(self.train_file).is_file():
            problems.append(f"training file '{self.train_file}' does not exist")
        if self.validation_file and not Path(self.validation_file).is_file():
            problems.append(f"validation file '{self.validation_file}' does not exist")
        if self.init_adapter and not (Path(self.init_adapter) / "adapter_config.json").is_file():
            problems.append(f"adapter to continue from '{self.init_adapter}' is missing")
        if not self.learning_rate > 0:
            problems.append(f"learning rate must be above 0 (got {self.learning_rate})")
        elif self.learning_rate > 1e-2:
            problems.append(f"learning rate {self.learning_rate} is far too high for LoRA (try 1e-4 to 5e-4)")
        if self.lora_r < 1:
            problems.append(f"LoRA r must be at least 1 (got {self.lora_r})")
        if self.lora_alpha <= 0:
            problems.append(f"LoRA alpha must be above 0 (got {self.lora_alpha})")
        if not 0 <= self.lora_dropout < 1:
            problems.append(f"LoRA dropout must be in [0, 1) (got {self.lora_dropout})")
        if not self.epochs > 0:
            problems.append(f"epochs must be above 0 (got {self.epochs})")
        if self.batch_size < 1 or self.gradient_accumulation < 1:
            problems.append("batch size and gradient accumulation must be at least 1")
        if self.max_length < 16:
            problems.append(f"max length must be at least 16 tokens (got {self.max_length})")
        elif context_length and self.max_length > context_length:
            problems.append(f"max length {self.max_length} is above the model's context of {context_length} tokens")
        if self.bf16 not in ("auto", "yes", "no"):
            problems.append(f"bf16 must be auto, yes or no (got {self.bf16})")
        if problems:
            raise ConfigError("Invalid training settings: " + "; ".join(problems) + ".")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        return cls.from_dict(json.loads(path.read_text()))
