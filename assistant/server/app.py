"""`tutor serve`: the project's own OpenAI-compatible server, fine-tuning on the local trainer, chat on the engine.

Point the OpenAI SDK, LangChain's ChatOpenAI or the tutor itself (OPENAI_BASE_URL) at it and run the
hosted-fine-tuning lesson offline: upload files, create a job, follow its events and metrics, list its
checkpoints, cancel it, then chat with `ft:...` models. FastAPI routers, pydantic request models (a wrong
type or value is a 400 with a sentence, by construction), responses built from the `openai` package's own
types, and EventSourceResponse for streams, so the `openai` client reads it as it reads OpenAI.

    tutor serve --port 8100          # then OPENAI_BASE_URL=http://127.0.0.1:8100/v1
    python -m assistant.server.app

Safe by default:
- TUTOR_SERVE_API_KEY (environment or .env) is the bearer key; beyond loopback it refuses to start without one.
- Before a body is read (assistant.web.limits.RequestGate): the key; an Origin other than the server's own (or
  TUTOR_ALLOWED_ORIGINS) gets 403, so a page elsewhere can't post to it, not even a multipart form a browser
  sends without asking; POSTs must be application/json or multipart/form-data (415 otherwise). A Host outside
  the bind address (or TUTOR_SERVE_ALLOWED_HOSTS) is refused.
- Bodies are limited before they are read (uploads TUTOR_MAX_UPLOAD_MB, JSON 4 MB); uploads stream to disk.
- max_tokens and the prompt must fit the model's context; file ids are looked up, never made into paths.
- Jobs are local runs in the app's registry and training queue, owned by API_USER; they outlive the server.
  A job killed with the server resumes from its checkpoint at the next start; a trainer that dies while the
  server runs is reported as failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import shutil
import sqlite3
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, File, Form, Query, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from openai.types import FileObject, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sse_starlette.sse import EventSourceResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

from assistant.inference.engine import Usage, engine
from assistant.web.limits import BodyLimit, RequestGate
from assistant.web.origins import WILDCARDS, is_loopback
from training.backends.openai_api import BatchSize, Epochs, LearningRateMultiplier
from training.backends.registry import training_backend
from training.base.common import make_private
from training.base.errors import TutorError
from training.base.models import context_length, display_name, resolve_base_model
from training.base.registry import API_USER, FINISHED, Registry, registry_for
from training.base.settings import EMBEDDED, Settings
from training.data.validate import validate_file
from training.jobs import events as run_events
from training.jobs import queue
from training.local.checkpoints import checkpoints
from training.local.config import ConfigError, TrainConfig, explain

log = logging.getLogger(__name__)

BASE_MODEL_ID = "smollm2-135m-instruct"  # how the embedded base model is named to API clients
LOCAL_DEFAULTS = TrainConfig.model_fields  # "auto" means the local trainer's measured defaults
JSON_LIMIT = 4 * 2**20
FileId = Annotated[str, StringConstraints(pattern=r"^file-[A-Za-z0-9-]{1,64}$")]
Text = Annotated[str, StringConstraints(max_length=200_000)]


class APIError(Exception):
    """An error the API reports in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    def response(self) -> JSONResponse:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return JSONResponse({"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}},
                            self.status)


# --- request models ----------------------------------------------------------------------------------

class APIModel(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # clients send fields this server ignores


class Hyperparameters(APIModel):
    n_epochs: Epochs = "auto"
    batch_size: BatchSize = "auto"
    learning_rate_multiplier: LearningRateMultiplier = "auto"


class Supervised(APIModel):
    hyperparameters: Hyperparameters | None = None


class Method(APIModel):
    type: Literal["supervised"] = "supervised"
    supervised: Supervised | None = None


class JobCreate(APIModel):
    model: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    training_file: FileId
    validation_file: FileId | None = None
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    suffix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None

    def chosen(self) -> Hyperparameters:
        supervised = self.method.supervised if self.method and self.method.supervised else None
        return self.hyperparameters or (supervised.hyperparameters if supervised else None) or Hyperparameters()


class Message(APIModel):
    role: Literal["system", "user", "assistant", "developer"]
    content: Text


class StreamOptions(APIModel):
    include_usage: bool = False


class ChatRequest(APIModel):
    model: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    messages: Annotated[list[Message], Field(min_length=1, max_length=512)]
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None


Limit = Annotated[int, Query(ge=1, le=1000)]


# --- the server ----------------------------------------------------------------------------------------

class FineTuningServer:
    """The API's state (settings, registry, folders) and its FastAPI app, `.app`, ready to serve."""

    def __init__(self, settings: Settings, allowed_hosts: list[str] | None = None):
        self.settings = settings
        self.root = settings.data_dir / "openai-server"
        # Jobs are local LoRA runs (in the app's queue and registry, their folders under root).
        self.trainer = training_backend("local", settings.model_copy(update={"data_dir": self.root}))
        self.files_dir = self.root / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.registry = registry_for(settings)
        self.api_key = settings.serve_api_key.get_secret_value() if settings.serve_api_key else None
        # The base model jobs train and chat serves: the embedded one unless TUTOR_BASE_MODEL says otherwise.
        self.base_id = BASE_MODEL_ID if settings.base_model == EMBEDDED else display_name(settings.base_model)
        adopt_legacy_registry(self.root, self.registry)
        queue.reconcile(self.registry)
        for run in self.registry.runs(API_USER, ("interrupted",)):  # killed with the previous server: carry on
            try:
                self.trainer.resume(run, self.registry)
            except TutorError as exc:  # no checkpoint yet: the job fails with the reason
                self.registry.update_run(run["id"], status="failed", error=str(exc))
        self.app = self._build(allowed_hosts)

    def _build(self, allowed_hosts: list[str] | None):
        @asynccontextmanager
        async def lifespan(_app):
            keeper = asyncio.create_task(queue.keep_moving(self.registry, self.settings.max_training_jobs))
            yield
            keeper.cancel()

        api = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
        api.add_exception_handler(APIError, lambda request, exc: exc.response())
        api.add_exception_handler(RequestValidationError, _invalid_request)
        api.add_exception_handler(Exception, _internal_error)
        for router in (self._files(), self._jobs(), self._models_and_chat()):
            api.include_router(router, prefix="/v1")
        if allowed_hosts is not None:
            api.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
        app = BodyLimit(api, JSON_LIMIT, paths=("/v1/fine_tuning", "/v1/chat"),
                        body=_error_body("The request body is over the 4 MB limit.", "request_too_large"))
        app = BodyLimit(app, self.settings.max_upload_mb * 2**20 + 2**20, paths=("/v1/files",),
                        body=_error_body(f"Files up to {self.settings.max_upload_mb} MB can be uploaded here.",
                                         "file_too_large"))
        # The key (compared in constant time, never logged), the Origin and the content type, before any body.
        return RequestGate(app, self.api_key, self.settings.allowed_origins, _error_body, paths=("/v1/",))

    # --- files ---------------------------------------------------------------------------------------

    def _files(self) -> APIRouter:
        router = APIRouter()

        @router.post("/files")
        async def upload(file: Annotated[UploadFile, File()], purpose: Annotated[str, Form()]):
            if purpose != "fine-tune":
                raise APIError(400, "Upload a `file` with purpose 'fine-tune'.", "invalid_request", "purpose")
            file_id = f"file-{secrets.token_hex(12)}"
            path = self.files_dir / f"{file_id}.jsonl"
            staging = path.with_suffix(".tmp")
            try:
                await asyncio.to_thread(_copy, file.file, staging)
                report = await asyncio.to_thread(validate_file, staging)  # format checks (tiktoken counts suffice)
                if not report.ok:
                    problems = "; ".join(f"{key} on line(s) {found.shown()}" for key, found in report.errors.items())
                    raise APIError(400, f"Invalid file format for fine-tuning: {problems or 'no examples'}.",
                                   "invalid_file_format", "file")
                staging.replace(path)
            finally:
                staging.unlink(missing_ok=True)
            row = await asyncio.to_thread(self.registry.add_file, API_USER, file.filename or "upload.jsonl", path,
                                          "fine-tune", file_id)
            return _file_object(row)

        @router.get("/files/{file_id}")
        async def retrieve(file_id: str):
            return _file_object(await self._file(file_id, "file_id"))

        return router

    async def _file(self, file_id: str | None, param: str) -> dict:
        row = await asyncio.to_thread(self.registry.file, file_id, API_USER) if file_id else None
        if row is None:
            raise APIError(404 if param == "file_id" else 400, f"No such file: {file_id}.", "invalid_file", param)
        return row

    # --- jobs ----------------------------------------------------------------------------------------

    def _jobs(self) -> APIRouter:
        router = APIRouter(prefix="/fine_tuning/jobs")

        @router.post("")
        async def create(body: JobCreate):
            training = await self._file(body.training_file, "training_file")
            validation = await self._file(body.validation_file, "validation_file") if body.validation_file else None
            base, init_adapter = await asyncio.to_thread(self._base_of, body.model)
            chosen = body.chosen()
            pick = lambda value, default: default if value == "auto" else value  # noqa: E731
            try:
                config = TrainConfig(train_file=training["path"], validation_file=validation["path"] if validation
                                     else None, base_model=base, init_adapter=init_adapter,
                                     epochs=float(pick(chosen.n_epochs, LOCAL_DEFAULTS["epochs"].default)),
                                     batch_size=pick(chosen.batch_size, LOCAL_DEFAULTS["batch_size"].default),
                                     learning_rate=LOCAL_DEFAULTS["learning_rate"].default
                                     * pick(chosen.learning_rate_multiplier, 1.0),
                                     seed=42 if body.seed is None else body.seed)
                run = await asyncio.to_thread(self.trainer.start, config, self.registry, API_USER)
            except ConfigError as exc:
                raise APIError(400, str(exc), "invalid_hyperparameters", "hyperparameters") from None
            multiplier = config.learning_rate / LOCAL_DEFAULTS["learning_rate"].default
            meta = {"suffix": body.suffix or "tutor", "model": body.model, "training_file": body.training_file,
                    "validation_file": body.validation_file,
                    "hyperparameters": {"n_epochs": config.epochs, "batch_size": config.batch_size,
                                        "learning_rate_multiplier": multiplier}}
            (Path(run["run_dir"]) / "openai.json").write_text(json.dumps(meta))
            return self._job(run)

        @router.get("")
        async def list_jobs(limit: Limit = 20):
            runs = [r for r in await asyncio.to_thread(self._runs) if (Path(r["run_dir"]) / "openai.json").is_file()]
            return {"object": "list", "data": [self._job(r) for r in runs[:limit]], "has_more": len(runs) > limit}

        @router.get("/{job_id}")
        async def retrieve(job_id: str):
            return self._job(await self._find(job_id))

        @router.post("/{job_id}/cancel")
        async def cancel(job_id: str):
            run = await self._find(job_id)
            if run["status"] in FINISHED:
                raise APIError(400, f"The job is already {run['status']}.", "invalid_request", "job_id")
            return self._job(await asyncio.to_thread(self.trainer.cancel, run, self.registry))

        @router.get("/{job_id}/events")
        async def list_events(job_id: str, limit: Limit = 20, after: str | None = None):
            """Newest first, as OpenAI lists them; `after` pages towards older events."""
            run = await self._find(job_id)
            seen, _ = await asyncio.to_thread(run_events.read, Path(run["run_dir"]))
            found = [_api_event(run["id"], index, event) for index, event in enumerate(seen)]
            found.insert(0, {"id": f"ftevent-{run['id']}-created", "object": "fine_tuning.job.event",
                             "created_at": int(run["created_at"]), "level": "info", "type": "message",
                             "message": "Validated training file; fine-tuning job created", "data": {}})
            found.reverse()
            if after:
                ids = [e["id"] for e in found]
                found = found[ids.index(after) + 1:] if after in ids else []
            data = [FineTuningJobEvent.model_validate(e).model_dump(mode="json") for e in found[:limit]]
            return {"object": "list", "data": data, "has_more": len(found) > limit}

        @router.get("/{job_id}/checkpoints")
        async def list_checkpoints(job_id: str):
            run = await self._find(job_id)
            data = []
            for folder in reversed(checkpoints(Path(run["run_dir"]))):
                step = int(folder.name.split("-")[-1])
                data.append(FineTuningJobCheckpoint.model_validate({
                    "id": f"ftckpt-{run['id']}-{step}", "object": "fine_tuning.job.checkpoint",
                    "created_at": int(folder.stat().st_mtime), "fine_tuning_job_id": f"ftjob-{run['id']}",
                    "fine_tuned_model_checkpoint": f"ft:{self.base_id}:ckpt:{run['id']}:step-{step}",
                    "step_number": step, "metrics": {"step": step}}).model_dump(mode="json"))
            return {"object": "list", "data": data, "has_more": False,
                    "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}

        return router

    def _runs(self) -> list[dict]:
        """The API's runs, with any whose trainer died while this server ran reported as failed (the API has no
        "interrupted"; a job killed together with the server resumes at its next start instead)."""
        queue.reconcile(self.registry)
        for run in self.registry.runs(API_USER, ("interrupted",)):
            self.registry.update_run(run["id"], status="failed", error="The trainer stopped unexpectedly (killed, or "
                                     "out of memory). Start a new job; its checkpoints are kept on the server.")
        return self.registry.runs(API_USER)

    async def _find(self, job_id: str) -> dict:
        run_id = job_id.removeprefix("ftjob-")
        run = next((r for r in await asyncio.to_thread(self._runs) if r["id"] == run_id), None)
        if run is None or not (Path(run["run_dir"]) / "openai.json").is_file():
            raise APIError(404, "No such fine-tuning job.", "not_found", "job_id")
        return run

    def _base_of(self, model: str) -> tuple[str, str | None]:
        """(trainer base model, adapter to continue from) for a requested model id."""
        if model == self.base_id:
            return self.settings.base_model, None
        match = re.fullmatch(r"ft:[^:]+:[^:]*:(run-[\w-]+)", model)
        run = self.registry.run(match.group(1), API_USER) if match else None
        if run is None or run["status"] != "succeeded":
            raise APIError(404, f"The model `{model}` does not exist or you do not have access to it.",
                           "model_not_found", "model")
        return run["config"]["base_model"], run["adapter_path"]

    def _job(self, run: dict) -> dict:
        meta = json.loads((Path(run["run_dir"]) / "openai.json").read_text())
        succeeded = run["status"] == "succeeded"
        status = {"interrupted": "running", "timed_out": "cancelled"}.get(run["status"], run["status"])
        return FineTuningJob.model_validate({
            "id": f"ftjob-{run['id']}", "object": "fine_tuning.job", "created_at": int(run["created_at"]),
            "model": meta["model"], "status": status, "training_file": meta["training_file"],
            "validation_file": meta["validation_file"], "hyperparameters": meta["hyperparameters"],
            "fine_tuned_model": f"ft:{self.base_id}:{meta['suffix']}:{run['id']}" if succeeded else None,
            "finished_at": int(run["updated_at"]) if run["status"] in FINISHED else None,
            "trained_tokens": run["metrics"].get("tokens_trained") if succeeded else None,
            "error": ({"code": "training_failed", "message": run["error"] or "Training failed.", "param": None}
                      if run["status"] == "failed" else None),
            "organization_id": "org-local", "result_files": [], "seed": run["config"].get("seed", 42),
            "method": {"type": "supervised"}}).model_dump(mode="json")

    # --- models and chat -----------------------------------------------------------------------------

    def _models_and_chat(self) -> APIRouter:
        router = APIRouter()

        @router.get("/models")
        async def models():
            runs = await asyncio.to_thread(self.registry.runs, API_USER, ("succeeded",))
            ids = [self.base_id] + [self._job(r)["fine_tuned_model"] for r in runs
                                    if (Path(r["run_dir"]) / "openai.json").is_file()]
            return {"object": "list", "data": [Model(id=i, object="model", created=0,
                                                     owned_by="fine-tuning-tutor").model_dump() for i in ids]}

        @router.post("/chat/completions")
        async def chat(body: ChatRequest):
            base, adapter = await asyncio.to_thread(self._base_of, body.model)
            source = await asyncio.to_thread(engine.call, resolve_base_model,
                                             self.settings.model_copy(update={"base_model": base}))
            messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.content}
                        for m in body.messages]
            prompt_tokens = len(await asyncio.to_thread(engine.call, engine.prompt, source, messages))
            context = await asyncio.to_thread(context_length, source) or 2048  # a file read: off the engine thread
            requested = body.max_tokens or body.max_completion_tokens
            if prompt_tokens + (requested or 1) > context:
                raise APIError(400, f"This model's maximum context length is {context} tokens. However, you requested "
                                    f"{prompt_tokens + (requested or 1)} tokens ({prompt_tokens} in the messages, "
                                    f"{requested or 1} in the completion).", "context_length_exceeded", "messages")
            usage = Usage()
            stream = engine.stream(source, messages, adapter=adapter, temperature=body.temperature or 0.0,
                                   max_tokens=requested or min(256, context - prompt_tokens), usage=usage)
            head = {"id": f"chatcmpl-{secrets.token_hex(8)}", "created": int(time.time()), "model": body.model}
            counts = lambda: {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,  # noqa: E731
                              "total_tokens": usage.prompt_tokens + usage.completion_tokens}
            if not body.stream:
                try:
                    text = "".join([piece async for piece in stream])
                except TutorError as exc:
                    raise APIError(500, str(exc), "generation_failed") from None
                return ChatCompletion.model_validate({**head, "object": "chat.completion", "usage": counts(), "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]}
                ).model_dump(mode="json", exclude_none=True)
            return EventSourceResponse(_chunks(stream, head, counts, body.stream_options))

        return router


async def _chunks(stream, head: dict, counts, options: StreamOptions | None):
    """The stream as OpenAI sends it: a role chunk, content chunks, a stop chunk, usage if asked, [DONE]."""
    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {"data": ChatCompletionChunk.model_validate({**head, "object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": delta, "finish_reason": finish}]}).model_dump_json(exclude_none=True)}

    yield chunk({"role": "assistant", "content": ""})
    try:
        async for piece in stream:
            yield chunk({"content": piece})
    except TutorError as exc:  # the status line is sent: report it as the API does, in the stream
        yield {"data": json.dumps({"error": {"message": str(exc), "type": "server_error"}})}
        return
    yield chunk({}, "stop")
    if options and options.include_usage:
        yield {"data": ChatCompletionChunk.model_validate({**head, "object": "chat.completion.chunk", "choices": [],
                                                           "usage": counts()}).model_dump_json(exclude_none=True)}
    yield {"data": "[DONE]"}


def _copy(source, target: Path) -> None:
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)


def _file_object(row: dict) -> dict:
    return FileObject.model_validate({"id": row["id"], "object": "file", "bytes": row["bytes"],
                                      "created_at": int(row["created_at"]), "filename": row["name"],
                                      "purpose": "fine-tune", "status": "processed"}).model_dump(mode="json")


def _error_body(message: str, code: str) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


async def _invalid_request(_request, exc: RequestValidationError) -> JSONResponse:
    """Pydantic's report as one 400 sentence naming the fields (never a 422 or a 500)."""
    errors = [{**e, "loc": tuple(p for p in e["loc"] if p not in ("body", "query", "path"))} for e in exc.errors()]
    param = ".".join(str(p) for p in errors[0]["loc"] if isinstance(p, str)) if errors else None
    return APIError(400, explain("Invalid request", errors), "invalid_request", param or None).response()


async def _internal_error(_request, exc: Exception) -> JSONResponse:
    log.exception("tutor serve failed on a request", exc_info=exc)
    return APIError(500, "The server failed on this request; its log has the details.", "server_error").response()


def _api_event(run_id: str, index: int, event: dict) -> dict:
    """One trainer event as an OpenAI fine-tuning event (metrics carry the dashboard's field names)."""
    typed, level, data = run_events.parse(event), "info", {}
    if isinstance(typed, run_events.Step):
        message = f"Step {typed.step}/{typed.total_steps or '?'}: training loss={typed.loss:.4f}"
        data = {"step": typed.step, "total_steps": typed.total_steps, "train_loss": typed.loss}
    elif isinstance(typed, run_events.Eval):
        message = f"Step {typed.step}: validation loss={typed.val_loss:.4f}"
        data = {"step": typed.step, "valid_loss": typed.val_loss, "valid_mean_token_accuracy": typed.val_token_accuracy}
    elif isinstance(typed, run_events.Checkpoint):
        message = f"Checkpoint created at step {typed.step}"
    elif isinstance(typed, run_events.Done):
        message = "The job has successfully completed"
    elif isinstance(typed, run_events.Error):
        message, level = f"The job failed: {typed.message}", "error"
    elif isinstance(typed, run_events.Cancelled):
        message = "The job was cancelled"
    elif isinstance(typed, run_events.Status):
        message, level = typed.message or f"Status: {typed.status}", {"warning": "warn"}.get(typed.level, typed.level)
    else:
        message = "Fine-tuning job resumed" if typed.resumed else "Fine-tuning job started"
    return {"id": f"ftevent-{run_id}-{index}", "object": "fine_tuning.job.event", "created_at": int(typed.time or 0),
            "level": level, "message": message, "type": "metrics" if data else "message", "data": data}


def adopt_legacy_registry(root: Path, registry: Registry) -> None:
    """Before accounts, the server kept its own registry in its folder: its runs, models and files join the
    app's registry (owned by API_USER), once; the old file is renamed, nothing is deleted."""
    legacy = root / "registry.sqlite"
    if not legacy.is_file():
        return
    with sqlite3.connect(legacy) as old:
        old.row_factory = sqlite3.Row
        runs = [dict(r) for r in old.execute("SELECT * FROM runs")]
        models = [dict(r) for r in old.execute("SELECT * FROM models")]
    for run in runs:
        if registry.run(run["id"]) is None:
            registry.create_run(run["backend"], json.loads(run["config"]), Path(run["run_dir"]), run["status"],
                                run["id"], API_USER)
            registry.update_run(run["id"], metrics=json.loads(run["metrics"]), adapter_path=run["adapter_path"],
                                error=run["error"], handle=str(run["pid"]) if run["pid"] else None)
    known = {m["run_id"] for m in registry.models(API_USER)}
    for model in models:
        if model["run_id"] not in known:
            registry.add_model(model["run_id"], model["kind"], model["location"], model["base_model"], API_USER)
    for meta in (root / "files").glob("file-*.json"):
        info = json.loads(meta.read_text())
        if (path := meta.with_suffix(".jsonl")).is_file() and registry.file(info["id"]) is None:
            registry.add_file(API_USER, info.get("filename") or path.name, path, "fine-tune", info["id"])
    legacy.rename(legacy.with_name("registry.sqlite.adopted"))


def allowed_hosts(host: str, extra: list[str]) -> list[str] | None:
    """The Host headers to answer: loopback names on loopback, the bind address elsewhere, plus the extras;
    None (any) only on a wildcard bind without extras, where the required key protects the server."""
    if is_loopback(host):
        return ["127.0.0.1", "localhost", "::1", "[::1]", *extra]
    if host in WILDCARDS:
        return [*extra] or None
    return [host, *extra]


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8100) -> None:
    import uvicorn

    if not is_loopback(host) and settings.serve_api_key is None:
        raise TutorError(f"Refusing to serve on {host} without a key: set TUTOR_SERVE_API_KEY (in the environment or "
                         ".env), or serve on 127.0.0.1.")
    make_private(settings.data_dir)
    server = FineTuningServer(settings, allowed_hosts(host, settings.serve_allowed_hosts))
    log.info("OpenAI-compatible fine-tuning server at http://%s:%d/v1", host, port)
    uvicorn.run(server.app, host=host, port=port, log_level="warning")


if __name__ == "__main__":
    from training.base.common import configure_process
    from training.base.settings import get_settings

    configure_process()
    serve(get_settings())
