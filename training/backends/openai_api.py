"""Fine-tuning through the OpenAI API, or any server that speaks its fine-tuning part.

The same registry and the same events as local runs (training/jobs/events.py; a provider's job events are read
into them by training/jobs/presentation.py), so the chat, the CLI and the A/B chat treat both kinds alike. A
job runs on the provider: following it is polling its status, events and checkpoints, which any process can pick
up again after a restart.

    tutor train --backend openai --train train.jsonl --val validation.jsonl [--model gpt-4o-mini-2024-07-18]
    OPENAI_BASE_URL=http://127.0.0.1:8100/v1 tutor train --backend openai ...   # the project's own server

Faults: the openai client retries 429, 5xx, timeouts and dropped connections with exponential backoff;
beyond that the follower keeps polling with a growing pause and says so, so a flaky network loses no
job. The API key lives only in the client: never in the registry, the events, a message or a log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from training.backends.registry import TrainingBackend, register_training_backend
from training.base.clients import Provider, explain_api_error, openai_client, openai_configured, secrets, server_label
from training.base.errors import TutorError, redact
from training.base.phrases import Phrases
from training.base.records import Run
from training.base.registry import LOCAL_USER, Registry, new_id
from training.data.validate import validate_file
from training.jobs.presentation import from_provider
from training.local.config import SETTINGS, ConfigError, explain

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4o-mini-2024-07-18"
# The API's job statuses while a job is under way, as the registry's ("pending": Azure's word for queued).
RUNNING = {"validating_files": "queued", "pending": "queued", "queued": "queued", "running": "running"}
MAX_PAUSE = 60.0
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$"


# The API's settings (hyperparameters: "auto" lets the provider choose), shared with `tutor serve`'s requests.
Epochs = Literal["auto"] | Annotated[int, Field(ge=1, le=50)]
BatchSize = Literal["auto"] | Annotated[int, Field(ge=1, le=256)]
LearningRateMultiplier = Literal["auto"] | Annotated[float, Field(gt=0, le=10)]
Suffix = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]


class OpenAIJobConfig(BaseModel):
    """An OpenAI fine-tuning job's settings; a value out of range is refused with the field's name.

    Data:
        train_file, validation_file: chat JSONL, checked locally before anything is uploaded.
    Model:
        model: the base model, or an earlier `ft:` model to continue fine-tuning it.
        suffix: up to 64 letters, digits, '-' or '_' added to the fine-tuned model's name.
    Hyperparameters ("auto" lets the provider choose):
        n_epochs, batch_size, learning_rate_multiplier, seed.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    title: ClassVar[str] = "OpenAI fine-tuning"
    texts: ClassVar[str] = "openai"  # its fields' explanations in the catalog: settings.openai.<field>
    learner_fields: ClassVar[tuple[str, ...]] = (
        "model", "suffix", "n_epochs", "batch_size", "learning_rate_multiplier", "seed")

    train_file: str = Field("", description="Training chat JSONL, checked here before it is uploaded.")
    validation_file: str | None = Field(None, description="Validation chat JSONL.")
    model: str = Field(DEFAULT_MODEL, pattern=MODEL_NAME,
                       description=SETTINGS("openai.model"))
    suffix: Suffix | None = Field(None, description=SETTINGS("openai.suffix"))
    n_epochs: Epochs = Field("auto", validation_alias=AliasChoices("n_epochs", "epochs"),
                             description=SETTINGS("openai.n_epochs"))
    batch_size: BatchSize = Field("auto", description=SETTINGS("openai.batch_size"))
    learning_rate_multiplier: LearningRateMultiplier = Field(
        "auto", validation_alias=AliasChoices("learning_rate_multiplier", "lr_multiplier"),
        description=SETTINGS("openai.learning_rate_multiplier"))
    seed: Seed | None = Field(None, description=SETTINGS("openai.seed"))

    def __init__(self, **values):
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(explain(f"Invalid {type(self).title} settings", exc), exc.errors()) from None

    def check(self) -> "OpenAIJobConfig":
        """The files exist and pass the cookbook's format checks (nothing is uploaded or billed otherwise)."""
        problems = []
        for name, path in (("training", self.train_file), ("validation", self.validation_file)):
            if path is None and name == "validation":
                continue
            if not path or not Path(path).is_file():
                problems.append(f"the {name} file does not exist")
            elif not (report := validate_file(Path(path))).ok:
                keys = ", ".join(f"{key} (line {found.lines[0]})" for key, found in report.errors.items())
                problems.append(f"{name} file {Path(path).name} has format errors: {keys}; `tutor validate` shows them all")
        if problems:
            raise ConfigError(f"Invalid {self.title} settings: " + "; ".join(problems) + ".")
        return self

    def hyperparameters(self) -> dict:
        return {name: getattr(self, name) for name in ("n_epochs", "batch_size", "learning_rate_multiplier")}


PHRASES = Phrases("openai_api")


async def _new_events(api, job_id: str, seen: set[str]) -> list:
    """Events not seen yet, oldest first (the API lists newest first)."""
    fresh = []
    async for event in api.fine_tuning.jobs.list_events(job_id, limit=100):  # pages on until a seen event
        if event.id in seen:
            break
        fresh.append(event)
    seen.update(e.id for e in fresh)
    return fresh[::-1]


@register_training_backend
class OpenAIJobs(TrainingBackend):
    """OpenAI, or any OpenAI-compatible fine-tuning API (OPENAI_BASE_URL: vLLM-style servers, `tutor serve`).
    A provider of the same API with its own client or its own last step (Azure) subclasses this."""

    name, label, Config = "openai", "OpenAI", OpenAIJobConfig
    provider: Provider = "openai"
    chat_backend = "openai"
    min_poll = 1.0  # seconds: a provider's API is not polled faster, whatever a caller asks
    phrases = PHRASES  # a subclass's own texts where they differ (Azure's), the rest from here

    def phrase(self, key: str, **fields) -> str:
        """One of this backend's texts, in its language."""
        table = self.phrases if key in self.phrases["en"] else PHRASES
        return table(key, self.language, **fields)

    # --- the provider's client and its errors -------------------------------------------------------

    def unavailable_reason(self) -> str | None:
        return None if openai_configured(self.settings, self.provider) else self.phrase("unconfigured")

    def client(self, asynchronous: bool = False):
        return openai_client(self.settings, provider=self.provider, asynchronous=asynchronous,
                             unconfigured=self.phrase("unconfigured"))

    def explained(self, exc: Exception, model: str) -> TutorError:
        """A learner-facing error; the server's own message when it gave one (it may say which line is bad)."""
        log.warning("%s fine-tuning call failed: %s", self.label, redact(repr(exc), *secrets(self.settings)))
        message = explain_api_error(exc, self.settings, model, self.provider)
        detail = getattr(exc, "body", None)
        if isinstance(detail, dict) and getattr(exc, "status_code", None) in (400, 422):
            message = f"{message.split(' (HTTP')[0]}: {redact(str(detail.get('message', '')), *secrets(self.settings))}"
        return TutorError(message)

    def refused(self) -> TutorError:
        """A 403 when creating a job: how the wind-down refuses an organisation."""
        return TutorError(self.phrase("refused", server=server_label(self.settings),
                                      wind_down=self.phrase("wind_down")))

    # --- the job --------------------------------------------------------------------------------------

    def config(self, values: dict) -> OpenAIJobConfig:
        """With `auto`, the provider picks epochs and batch size whatever else was given (the CLI's --auto)."""
        if values.get("auto"):
            values = {key: value for key, value in values.items() if key not in ("epochs", "n_epochs", "batch_size")}
        return super().config(values)

    def describe(self, config: OpenAIJobConfig) -> str:
        return self.phrase("describe", model=config.model, suffix=config.suffix or self.phrase("no_suffix"),
                           epochs=config.n_epochs, batch=config.batch_size,
                           multiplier=config.learning_rate_multiplier)

    def notice(self) -> str | None:
        # a compatible server is not winding down
        return None if self.settings.openai_base_url else self.phrase("wind_down")

    def estimate(self, config: OpenAIJobConfig) -> str:
        """Billed tokens and their price, from the dataset's token count (what OpenAI's page charges)."""
        report = validate_file(Path(config.train_file), model="gpt-4o-mini")
        return self.phrase("estimate", server=server_label(self.settings, self.provider),
                           tokens=report.tokens_in_dataset, epochs=report.epochs, billed=report.billed_tokens,
                           price=self.price(report))

    def price(self, report) -> str:
        return self.phrase("price", cost=report.estimated_cost, price=report.price_per_million)

    def describe_result(self, run: Run) -> str:
        if run.status == "succeeded":
            return self.phrase("continue", backend=self.name, model=run.metrics["fine_tuned_model"])
        return run.error or ""

    def upload(self, api, path: str) -> str:
        with open(path, "rb") as handle:
            return api.files.create(file=handle, purpose="fine-tune").id

    def create_job(self, api, config: OpenAIJobConfig, files: dict):
        return api.fine_tuning.jobs.create(model=config.model, suffix=config.suffix, seed=config.seed,
                                           hyperparameters=config.hyperparameters(), **files)

    def start(self, config: OpenAIJobConfig, registry: Registry, owner: str = LOCAL_USER) -> dict:
        """Check the files, upload them, create the job and its run; raises TutorError with the reason."""
        import openai

        config.check()
        api = self.client()
        run_id = new_id("run")
        run_dir = self.settings.data_dir / "runs" / run_id
        run_dir.mkdir(parents=True)
        run = registry.create_run(self.name, config.model_dump(), run_dir, status="queued", run_id=run_id, owner=owner)
        try:
            files = {role: self.upload(api, path) for role, path in
                     (("training_file", config.train_file), ("validation_file", config.validation_file)) if path}
            job = self.create_job(api, config, files)
        except (openai.OpenAIError, TutorError) as exc:
            error = (self.refused() if isinstance(exc, openai.PermissionDeniedError)
                     else exc if isinstance(exc, TutorError) else self.explained(exc, config.model))
            registry.update_run(run_id, status="failed", error=str(error))
            raise error from None
        return registry.update_run(run.id, config={**config.model_dump(), **files, "job_id": job.id},
                                   status=RUNNING.get(job.status, "queued"))

    async def follow(self, run: Run, registry: Registry, poll: float = 2.0) -> AsyncIterator[dict]:
        """Yield the job's progress until it finishes, keeping the registry in step. Asynchronous: waiting on the
        provider holds no thread, so many followers cost nothing while they wait."""
        import openai

        poll = max(poll, self.min_poll)
        api, job_id, model = self.client(asynchronous=True), run.config["job_id"], run.config["model"]
        seen: set[str] = set()
        checkpoints: set[str] = set()
        status, pause, last = None, poll, {}
        try:
            while True:
                try:
                    job = await api.fine_tuning.jobs.retrieve(job_id)
                    events = [e for event in await _new_events(api, job_id, seen) for e in from_provider(event)]
                    fresh_checkpoints = [c async for c in api.fine_tuning.jobs.checkpoints.list(job_id)
                                         if c.id not in checkpoints]
                except (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError,
                        openai.InternalServerError) as exc:  # the client already retried: wait longer, keep the job
                    yield {"type": "status", "level": "warning",
                           "message": f"{self.explained(exc, model)} Retrying in {pause:.0f} s."}
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, MAX_PAUSE)
                    continue
                except openai.OpenAIError as exc:  # a rejected key, say: stop following, the job itself carries on
                    error = self.explained(exc, model)
                    await asyncio.to_thread(registry.update_run, run.id, error=f"Lost track of the job: {error}")
                    yield {"type": "error", "message": f"{error} The job itself may still be running: fix this and "
                                                       f"open the chat again, or run `tutor jobs show {run.id}`."}
                    return
                pause = poll
                if job.status != status:  # first: whoever reads the registry on a step event sees the job running
                    status = job.status
                    if status in RUNNING:
                        await asyncio.to_thread(registry.update_run, run.id, status=RUNNING[status])
                    yield {"type": "status", "status": status}
                for event in events:
                    last[event["type"]] = event
                    yield event
                for checkpoint in sorted(fresh_checkpoints, key=lambda c: c.step_number):
                    checkpoints.add(checkpoint.id)
                    yield {"type": "checkpoint", "step": checkpoint.step_number,
                           "model": checkpoint.fine_tuned_model_checkpoint}
                if job.status in RUNNING:
                    await asyncio.sleep(poll)
                    continue
                async for event in self.finish(run, job, registry, last):
                    yield event
                return
        finally:
            await api.close()

    async def finish(self, run: Run, job, registry: Registry, last: dict) -> AsyncIterator[dict]:
        """The job's end: the run's record and its final event (a succeeded job's model joins the registry)."""
        if job.status == "succeeded":
            metrics = self.metrics(job, last)
            await asyncio.to_thread(self.record_model, run, registry, metrics, job.fine_tuned_model)
            yield {"type": "done", **metrics}
            return
        if job.status == "cancelled":
            await asyncio.to_thread(registry.update_run, run.id, status="cancelled")
            yield {"type": "cancelled"}
            return
        message = job.error.message if job.error and job.error.message else "The provider gave no reason."
        message = redact(message, *secrets(self.settings))
        await asyncio.to_thread(registry.update_run, run.id, status="failed", error=message)
        yield {"type": "error", "message": f"The fine-tuning job failed on the provider's side: {message}"}

    @staticmethod
    def metrics(job, last: dict) -> dict:
        step, evaluation = last.get("step", {}), last.get("eval", {})
        return {"fine_tuned_model": job.fine_tuned_model, "trained_tokens": job.trained_tokens,
                "final_loss": step.get("loss"), "val_loss": evaluation.get("val_loss"),
                "val_token_accuracy": evaluation.get("val_token_accuracy"), "steps": step.get("step")}

    def record_model(self, run: Run, registry: Registry, metrics: dict, location: str | None) -> None:
        """The run succeeded; its model (callable at `location`, when it is) is the run's one registry model,
        however many followers (chat and CLI) finish it."""
        registry.update_run(run.id, status="succeeded", metrics=metrics)
        if location:
            registry.put_model(run.id, self.name, location, run.config["model"])

    def cancel(self, run: Run, registry: Registry) -> dict:
        import openai

        try:
            self.client().fine_tuning.jobs.cancel(run.config["job_id"])
        except openai.OpenAIError as exc:
            raise self.explained(exc, run.config["model"]) from None
        return registry.update_run(run.id, status="cancelled")
