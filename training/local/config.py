"""The local LoRA fine-tuning configuration: a pydantic model whose fields carry their own limits.

A value out of range, of the wrong type, NaN or infinite is refused when the config is built, with a
sentence per problem naming the field; `check()` adds what needs the disk or the model (files exist,
max_length fits the context). Chat buttons, the CLI and `tutor serve` all build configs through here.

    from training.local.config import TrainConfig
    config = TrainConfig(train_file="train.jsonl", validation_file="validation.jsonl", epochs=3)
    config.check()      # raises ConfigError with a sentence per problem
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from training.base.errors import TutorError
from training.base.phrases import Phrases

MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")
MAX_LEARNING_RATE = 1e-2


class ConfigError(TutorError, ValueError):
    """A job setting a backend cannot use; the message says which and why. `problems` are pydantic's own, where it
    found them, so that a caller can say them again in another language (`explain`)."""

    def __init__(self, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.problems = problems or []


# pydantic's problems in every language, by their type (the catalog's [problems]; a type not there is said in
# pydantic's own English); the fields are the problem's field and its limits.
PROBLEMS = Phrases("problems")
SETTINGS = Phrases("settings")  # the learner fields' explanations, "<Config.texts>.<field>", by language


def field_names(model: type[BaseModel]) -> dict[str, str]:
    """Every name a model's fields are read by (their own, and short ones like `lr`), to the field's name."""
    found = {}
    for field, info in model.model_fields.items():
        found[field] = field
        if isinstance(info.validation_alias, AliasChoices):
            found.update({str(alias): field for alias in info.validation_alias.choices})
    return found


def explain(prefix: str, errors: ValidationError | list[dict], language: str = "en") -> str:
    """One sentence per problem, each naming its field (never echoing a long value), in `language` where
    PROBLEMS has its type."""
    problems = []
    for error in errors.errors() if isinstance(errors, ValidationError) else errors:
        field = ".".join(str(part) for part in error["loc"] if not _union_tag(part)) or "value"
        if template := PROBLEMS.get(language, PROBLEMS["en"]).get(error["type"]):
            limits = {key: int(value) if isinstance(value, float) and value.is_integer() else value
                      for key, value in (error.get("ctx") or {}).items()}
            problems.append(template.format(**limits, field=field))
            continue
        message = error["msg"].replace("Input should be", "must be").replace("Value error, ", "")
        problems.append(f"{field} {message}" if not message.startswith(field) else message)
    return f"{prefix}: " + "; ".join(dict.fromkeys(problems)) + "."


def _union_tag(part) -> bool:
    """Pydantic names the branch of a union in an error's location ("str", "list[str]"): not a field."""
    return isinstance(part, int) or "[" in str(part) or str(part) in ("str", "int", "float", "bool", "none") \
        or str(part).startswith(("constrained", "function"))


class TrainConfig(BaseModel):
    """Local LoRA fine-tuning settings. The defaults were chosen by a measured sweep for the embedded
    SmolLM2-135M on the bundled sample (docs/fine-tuning.md, "Defaults that work"): a learner who changes nothing gets a
    held-out F1 over 0.7 in under 5 minutes on a 2-core CPU.

    Data:
        train_file, validation_file: chat JSONL ({"messages": [...]}); loss is on assistant tokens only.
        max_length: examples are cut to this many tokens (must fit the model's context).

    Model:
        base_model: "embedded" (SmolLM2-135M-Instruct), an HF id in the local cache, or a folder.
        init_adapter: continue fine-tuning this adapter folder (trained on base_model) instead of a new one.

    LoRA:
        method: "lora" (the base in bf16 or fp32, as measured) or "qlora" (the base in 4-bit NF4 with double
            quantization through bitsandbytes; a CUDA GPU only).
        lora_r, lora_alpha, lora_dropout: adapter rank, scale (alpha / r) and dropout.
        target_modules: which linear layers get adapters ("all-linear" or a list like ["q_proj", "v_proj"]).

    Memory:
        gradient_checkpointing: keep only each layer's input for the backward pass and recompute the rest:
            activations shrink to about a layer's worth, for about a third more compute.

    Optimisation:
        epochs, learning_rate, batch_size, gradient_accumulation, warmup_ratio, weight_decay, seed.

    Bookkeeping:
        eval_every, save_every: steps between validation passes (0 = per epoch) and between checkpoints.
        eval_generate_limit: validation examples answered by the model for the F1 of ingredient lists.
        bf16: "auto" uses bfloat16 autocast where the CPU/GPU supports it, "yes"/"no" to force.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    # What a learner may set from chat (the form, `/train key=value`); files and folders come from the server.
    texts: ClassVar[str] = "train"  # its fields' explanations in the catalog: settings.train.<field>
    learner_fields: ClassVar[tuple[str, ...]] = (
        "epochs", "learning_rate", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "max_length",
        "batch_size", "gradient_accumulation", "seed", "method", "gradient_checkpointing")

    train_file: str = Field("", description="Training chat JSONL.")
    validation_file: str | None = Field(None, description="Validation chat JSONL (its loss and F1 are reported).")
    max_length: int = Field(512, ge=16, le=131_072, description=SETTINGS("train.max_length"))
    base_model: str = Field("embedded", description="'embedded', an HF id in the local cache, or a folder.")
    init_adapter: str | None = Field(None, description="An adapter folder to train further instead of a new one.")
    lora_r: int = Field(16, ge=1, le=1024, validation_alias=AliasChoices("lora_r", "r"),
                        description=SETTINGS("train.lora_r"))
    lora_alpha: int = Field(32, ge=1, le=8192, validation_alias=AliasChoices("lora_alpha", "alpha"),
                            description=SETTINGS("train.lora_alpha"))
    lora_dropout: float = Field(0.05, ge=0, lt=1, validation_alias=AliasChoices("lora_dropout", "dropout"),
                                description=SETTINGS("train.lora_dropout"))
    target_modules: str | list[str] = Field("all-linear", validation_alias=AliasChoices("target_modules", "modules"),
                                            description=SETTINGS("train.target_modules"))
    epochs: float = Field(2.0, gt=0, le=1000, description=SETTINGS("train.epochs"))
    learning_rate: float = Field(1e-3, gt=0, validation_alias=AliasChoices("learning_rate", "lr"),
                                 description=SETTINGS("train.learning_rate"))
    batch_size: int = Field(8, ge=1, le=4096, description=SETTINGS("train.batch_size"))
    gradient_accumulation: int = Field(1, ge=1, le=4096, validation_alias=AliasChoices("gradient_accumulation", "grad_accum"),
                                       description=SETTINGS("train.gradient_accumulation"))
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of the steps the learning rate warms up over.")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay.")
    seed: int = Field(42, ge=0, le=2**32 - 1, description=SETTINGS("train.seed"))
    method: Literal["lora", "qlora"] = Field(
        "lora", description=SETTINGS("train.method"))
    gradient_checkpointing: bool = Field(
        False, description=SETTINGS("train.gradient_checkpointing"))
    eval_every: int = Field(0, ge=0, description="Steps between validation passes (0: once per epoch).")
    save_every: int = Field(20, ge=1, description="Steps between checkpoints.")
    eval_generate_limit: int = Field(20, ge=0, le=100_000,
                                     description="Validation examples the model answers for the F1 score.")
    bf16: Literal["auto", "yes", "no"] = Field(
        "auto", description="bfloat16 autocast: auto (where supported), yes or no.")

    def __init__(self, **values):
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(explain("Invalid training settings", exc), exc.errors()) from None

    @field_validator("learning_rate")
    @classmethod
    def _sane_learning_rate(cls, value: float) -> float:
        if value > MAX_LEARNING_RATE:
            raise ValueError(f"learning_rate {value:g} is far too high for LoRA (try 1e-4 to 1e-3)")
        return value

    @field_validator("method")
    @classmethod
    def _qlora_needs_cuda(cls, value: str) -> str:
        """4-bit weights need bitsandbytes on a CUDA GPU: refused before any work on a machine without one."""
        if value == "qlora":
            from training.base.common import device
            from training.base.hardware import qlora_missing

            if (missing := qlora_missing()) == "cuda":
                raise PydanticCustomError(
                    "qlora_needs_cuda", "qlora keeps the base model in 4 bits through bitsandbytes, which needs an "
                    "NVIDIA GPU (CUDA); this machine trains on the {device}: choose method=lora",
                    {"device": device().upper()})
            if missing:
                raise PydanticCustomError(
                    "qlora_needs_bitsandbytes", "qlora needs the bitsandbytes package: reinstall with a CUDA build of "
                    "torch (TORCH_SPEC, see docs/install.md), or choose method=lora")
        return value

    @field_validator("target_modules")
    @classmethod
    def _module_names(cls, value: str | list[str]) -> str | list[str]:
        """"all-linear", or layer names (a list, or "q_proj,v_proj" as typed in chat)."""
        if value == "all-linear":
            return value
        names = [name.strip() for name in value.split(",")] if isinstance(value, str) else value
        if not 1 <= len(names) <= 64 or not all(MODULE_NAME.match(name) for name in names):
            raise ValueError('target_modules must be "all-linear" or layer names like q_proj,v_proj')
        return names

    def check(self, context_length: int | None = None) -> "TrainConfig":
        """What the fields alone can't tell: the files exist, and max_length fits the model's context."""
        problems = []
        if not self.train_file or not Path(self.train_file).is_file():
            problems.append("the training file does not exist")
        if self.validation_file and not Path(self.validation_file).is_file():
            problems.append("the validation file does not exist")
        if self.init_adapter and not (Path(self.init_adapter) / "adapter_config.json").is_file():
            problems.append("the adapter to continue from is missing")
        if context_length and self.max_length > context_length:
            problems.append(f"max_length {self.max_length} is above the model's context of {context_length} tokens")
        if problems:
            raise ConfigError("Invalid training settings: " + "; ".join(problems) + ".")
        return self

    def to_dict(self) -> dict:
        return self.model_dump()

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        return cls(**json.loads(path.read_text()))
