"""`tutor serve`'s request bodies and query limits: pydantic models, so a wrong type or value is a 400 with a
sentence naming the field (assistant/server/errors.py), by construction. Fields a client sends that this server
does not use are ignored, as OpenAI's clients send more than it needs.

    body = JobCreate.model_validate({"model": "smollm2-135m-instruct", "training_file": "file-abc"})
    body.chosen()     # the hyperparameters, wherever the request put them ("auto" where it put none)
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from training.backends.openai_api import BatchSize, Epochs, LearningRateMultiplier, Seed, Suffix

FileId = Annotated[str, StringConstraints(pattern=r"^file-[A-Za-z0-9-]{1,64}$")]
Text = Annotated[str, StringConstraints(max_length=200_000)]
ModelId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Limit = Annotated[int, Query(ge=1, le=1000)]


class APIModel(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # clients send fields this server ignores


class Hyperparameters(APIModel):
    """The job's settings have the OpenAI backend's types and limits (training/backends/openai_api.py)."""

    n_epochs: Epochs = "auto"
    batch_size: BatchSize = "auto"
    learning_rate_multiplier: LearningRateMultiplier = "auto"


class Supervised(APIModel):
    hyperparameters: Hyperparameters | None = None


class Method(APIModel):
    type: Literal["supervised"] = "supervised"
    supervised: Supervised | None = None


class JobCreate(APIModel):
    model: ModelId
    training_file: FileId
    validation_file: FileId | None = None
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    suffix: Suffix | None = None
    seed: Seed | None = None

    def chosen(self) -> Hyperparameters:
        supervised = self.method.supervised if self.method and self.method.supervised else None
        return self.hyperparameters or (supervised.hyperparameters if supervised else None) or Hyperparameters()


class Message(APIModel):
    role: Literal["system", "user", "assistant", "developer"]
    content: Text


class StreamOptions(APIModel):
    include_usage: bool = False


class ChatRequest(APIModel):
    model: ModelId
    messages: Annotated[list[Message], Field(min_length=1, max_length=512)]
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
