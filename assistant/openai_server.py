"""The project's own OpenAI-compatible server: fine-tuning jobs on the local LoRA trainer, chat on the engine.

Point the OpenAI SDK, LangChain's ChatOpenAI or the tutor itself (OPENAI_BASE_URL) at it and run the
hosted-fine-tuning lesson offline: upload files, create a job, follow its events and metrics, list
its checkpoints, cancel it, then chat with `ft:...` models. It implements the part of the API the
lesson uses: files, fine_tuning.jobs (create, retrieve, list, cancel, list_events, checkpoints),
models, and chat.completions with and without streaming.

    tutor serve --port 8100          # then OPENAI_BASE_URL=http://127.0.0.1:8100/v1
    python -m assistant.openai_server

Jobs are local runs in the server's own registry (DATA_DIR/openai-server), so they outlive the server:
one started before a restart keeps training, one killed with the server resumes from its checkpoint
when the server starts again. With TUTOR_SERVE_API_KEY set, requests need it as their bearer token.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import secrets
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from assistant.errors import TutorError
from assistant.generation import Usage, engine
from assistant.models import resolve_base_model
from assistant.settings import EMBEDDED, Settings
from training import jobs
from training.config import ConfigError, TrainConfig
from training.lora import checkpoints
from training.registry import Registry
from training.validate import validate_file

log = logging.getLogger(__name__)

BASE_MODEL_ID = "smollm2-135m-instruct"  # how the embedded base model is named to API clients
STATUS = {"queued": "queued", "running": "running", "succeeded": "succeeded", "failed": "failed",
          "cancelled": "cancelled", "interrupted": "running"}  # interrupted jobs are resumed at start-up
DEFAULT_LR = 2e-4  # learning_rate_multiplier multiplies this


def error(status: int, message: str, code: str, param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                   "code": code}}, status)


async def json_body(request: Request) -> dict | None:
    """The request's JSON object, or None when it is not one (the caller answers 400)."""
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def page_limit(request: Request) -> int | None:
    """The `limit` query parameter of a list call (default 20), or None when it is not a positive integer."""
    value = request.query_params.get("limit", "20")
    return int(value) if value.isdigit() and int(value) > 0 else None


class FineTuningServer:
    def __init__(self, settings: Settings, api_key: str | None = None):
        self.settings = settings
        self.root = settings.data_dir / "openai-server"
        self.files_dir = self.root / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.registry = Registry(self.root / "registry.sqlite")
        self.api_key = api_key
        # The base model jobs train and chat serves: the embedded one unless TUTOR_BASE_MODEL says otherwise.
        self.base_id = BASE_MODEL_ID if settings.base_model == EMBEDDED else Path(settings.base_model).name
        for run_id in jobs.reconcile(self.registry):  # killed with the previous server: carry on
            run = self.registry.run(run_id)
            try:
                jobs.resume(run, self.registry)
            except ValueError as exc:  # no checkpoint yet: the job fails with the reason
                self.registry.update_run(run_id, status="failed", error=str(exc))
        self.app = Starlette(routes=[
            Route("/v1/files", self.upload, methods=["POST"]),
            Route("/v1/files/{file_id}", self.file, methods=["GET"]),
            Route("/v1/fine_tuning/jobs", self.create_job, methods=["POST"]),
            Route("/v1/fine_tuning/jobs", self.list_jobs, methods=["GET"]),
            Route("/v1/fine_tuning/jobs/{job_id}", self.retrieve_job, methods=["GET"]),
            Route("/v1/fine_tuning/jobs/{job_id}/cancel", self.cancel_job, methods=["POST"]),
            Route("/v1/fine_tuning/jobs/{job_id}/events", self.job_events, methods=["GET"]),
            Route("/v1/fine_tuning/jobs/{job_id}/checkpoints", self.job_checkpoints, methods=["GET"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
        ])
        self.app.add_middleware(_Auth, server=self)

    # --- files -----------------------------------------------------------------------------------

    def _file_meta(self, file_id: str) -> dict | None:
        meta = self.files_dir / f"{file_id}.json"
        return json.loads(meta.read_text()) if meta.is_file() else None

    async def upload(self, request: Request):
        form = await request.form()
        upload, purpose = form.get("file"), form.get("purpose")
        if upload is None or purpose != "fine-tune":
            return error(400, "Upload a `file` with purpose 'fine-tune'.", "invalid_request", "purpose")
        file_id = f"file-{secrets.token_hex(12)}"
        path = self.files_dir / f"{file_id}.jsonl"
        staging = path.with_suffix(".tmp")
        staging.write_bytes(await upload.read())
        try:
            report = await asyncio.to_thread(validate_file, staging)  # format checks (tiktoken counts suffice)
        except (TutorError, ValueError, OSError) as exc:
            staging.unlink(missing_ok=True)
            return error(400, f"Invalid file for fine-tuning: {exc}", "invalid_file", "file")
        if not report.ok:
            staging.unlink()
            problems = "; ".join(f"{key} on line(s) {', '.join(map(str, lines[:5]))}"
                                 for key, lines in report.errors.items())
            return error(400, f"Invalid file format for fine-tuning: {problems}.", "invalid_file_format", "file")
        staging.replace(path)
        meta = {"id": file_id, "object": "file", "bytes": path.stat().st_size, "created_at": int(time.time()),
                "filename": upload.filename, "purpose": "fine-tune", "status": "processed", "status_details": None}
        (self.files_dir / f"{file_id}.json").write_text(json.dumps(meta))
        return JSONResponse(meta)

    async def file(self, request: Request):
        meta = self._file_meta(request.path_params["file_id"])
        return JSONResponse(meta) if meta else error(404, "No such file.", "not_found", "file_id")

    # --- jobs ------------------------------------------------------------------------------------

    def _base_of(self, model: str) -> tuple[str, str | None]:
        """(trainer base model, adapter to continue from) for a requested model id."""
        if model == self.base_id:
            return self.settings.base_model, None
        if run := self._run_of_model(model):
            return run["config"]["base_model"], run["adapter_path"]
        raise KeyError(model)

    def _run_of_model(self, model: str) -> dict | None:
        match = re.fullmatch(r"ft:[^:]+:[^:]*:(run-[\w-]+)", model)
        run = self.registry.run(match.group(1)) if match else None
        return run if run and run["status"] == "succeeded" else None

    async def create_job(self, request: Request):
        if (body := await json_body(request)) is None:
            return error(400, "The request body must be a JSON object.", "invalid_request")
        files = {key: self._file_meta(body[key]) if body.get(key) else None
                 for key in ("training_file", "validation_file")}
        for key in ("training_file", "validation_file"):
            if body.get(key) and files[key] is None:
                return error(400, f"File '{body[key]}' does not exist.", "invalid_file", key)
        if files["training_file"] is None:
            return error(400, "training_file is required.", "invalid_request", "training_file")
        try:
            base, init_adapter = self._base_of(body.get("model", ""))
        except KeyError:
            return error(400, f"Model '{body.get('model')}' can't be fine-tuned here; use '{self.base_id}' or "
                              "one of this server's ft: models.", "model_not_available", "model")
        hyper = body.get("hyperparameters") or (body.get("method") or {}).get("supervised", {}).get("hyperparameters") or {}
        pick = lambda key, default: default if hyper.get(key) in (None, "auto") else hyper[key]  # noqa: E731
        try:
            config = TrainConfig(train_file=str(self.files_dir / f"{body['training_file']}.jsonl"),
                                 validation_file=(str(self.files_dir / f"{body['validation_file']}.jsonl")
                                                  if body.get("validation_file") else None),
                                 base_model=base, init_adapter=init_adapter, epochs=float(pick("n_epochs", 3)),
                                 batch_size=int(pick("batch_size", 4)),
                                 learning_rate=DEFAULT_LR * float(pick("learning_rate_multiplier", 1.0)),
                                 seed=int(body.get("seed") or 42))
        except (TypeError, ValueError):
            return error(400, "n_epochs, batch_size, learning_rate_multiplier and seed must be numbers or 'auto'.",
                         "invalid_hyperparameters", "hyperparameters")
        try:
            run = await asyncio.to_thread(jobs.start_local, config, self.root, self.registry)
        except ConfigError as exc:
            return error(400, str(exc), "invalid_hyperparameters", "hyperparameters")
        meta = {"suffix": body.get("suffix") or "tutor", "model": body.get("model"),
                "training_file": body["training_file"], "validation_file": body.get("validation_file"),
                "hyperparameters": {"n_epochs": config.epochs, "batch_size": config.batch_size,
                                    "learning_rate_multiplier": config.learning_rate / DEFAULT_LR}}
        (Path(run["run_dir"]) / "openai.json").write_text(json.dumps(meta))
        return JSONResponse(self._job(run))

    def _job(self, run: dict) -> dict:
        meta = json.loads((Path(run["run_dir"]) / "openai.json").read_text())
        succeeded = run["status"] == "succeeded"
        return {"id": f"ftjob-{run['id']}", "object": "fine_tuning.job", "created_at": int(run["created_at"]),
                "model": meta["model"], "status": STATUS[run["status"]], "training_file": meta["training_file"],
                "validation_file": meta["validation_file"], "hyperparameters": meta["hyperparameters"],
                "fine_tuned_model": (f"ft:{self.base_id}:{meta['suffix']}:{run['id']}" if succeeded else None),
                "finished_at": int(run["updated_at"]) if run["status"] in ("succeeded", "failed", "cancelled") else None,
                "trained_tokens": run["metrics"].get("tokens_trained") if succeeded else None,
                "error": ({"code": "training_failed", "message": run["error"] or "Training failed.", "param": None}
                          if run["status"] == "failed" else None),
                "organization_id": "org-local", "result_files": [], "seed": run["config"].get("seed", 42),
                "method": {"type": "supervised"}}

    def _find(self, request: Request) -> dict | None:
        run = self.registry.run(request.path_params["job_id"].removeprefix("ftjob-"))
        return run if run and (Path(run["run_dir"]) / "openai.json").is_file() else None

    async def retrieve_job(self, request: Request):
        run = self._find(request)
        return JSONResponse(self._job(run)) if run else error(404, "No such fine-tuning job.", "not_found", "job_id")

    async def list_jobs(self, request: Request):
        runs = [r for r in self.registry.runs() if (Path(r["run_dir"]) / "openai.json").is_file()]
        if (limit := page_limit(request)) is None:
            return error(400, "limit must be a positive whole number.", "invalid_request", "limit")
        return JSONResponse({"object": "list", "data": [self._job(r) for r in runs[:limit]],
                             "has_more": len(runs) > limit})

    async def cancel_job(self, request: Request):
        run = self._find(request)
        if run is None:
            return error(404, "No such fine-tuning job.", "not_found", "job_id")
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return error(400, f"The job is already {run['status']}.", "invalid_request", "job_id")
        return JSONResponse(self._job(await asyncio.to_thread(jobs.cancel, run, self.registry)))

    async def job_events(self, request: Request):
        """Newest first, as OpenAI lists them; `after` pages towards older events."""
        run = self._find(request)
        if run is None:
            return error(404, "No such fine-tuning job.", "not_found", "job_id")
        seen, _ = jobs.events(Path(run["run_dir"]))
        events = [_api_event(run["id"], index, event) for index, event in enumerate(seen)]
        events.insert(0, {"id": f"ftevent-{run['id']}-created", "object": "fine_tuning.job.event",
                          "created_at": int(run["created_at"]), "level": "info", "type": "message",
                          "message": "Validated training file; fine-tuning job created", "data": {}})
        events.reverse()
        after = request.query_params.get("after")
        if after:
            ids = [e["id"] for e in events]
            events = events[ids.index(after) + 1:] if after in ids else []
        if (limit := page_limit(request)) is None:
            return error(400, "limit must be a positive whole number.", "invalid_request", "limit")
        return JSONResponse({"object": "list", "data": events[:limit], "has_more": len(events) > limit})

    async def job_checkpoints(self, request: Request):
        run = self._find(request)
        if run is None:
            return error(404, "No such fine-tuning job.", "not_found", "job_id")
        data = []
        for folder in reversed(checkpoints(Path(run["run_dir"]))):
            step = int(folder.name.split("-")[-1])
            data.append({"id": f"ftckpt-{run['id']}-{step}", "object": "fine_tuning.job.checkpoint",
                         "created_at": int(folder.stat().st_mtime), "fine_tuning_job_id": f"ftjob-{run['id']}",
                         "fine_tuned_model_checkpoint": f"ft:{self.base_id}:ckpt:{run['id']}:step-{step}",
                         "step_number": step, "metrics": {"step": step}})
        return JSONResponse({"object": "list", "data": data, "has_more": False,
                             "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})

    # --- models and chat -------------------------------------------------------------------------

    async def models(self, request: Request):
        ids = [self.base_id] + [self._job(r)["fine_tuned_model"] for r in self.registry.runs()
                                 if r["status"] == "succeeded" and (Path(r["run_dir"]) / "openai.json").is_file()]
        return JSONResponse({"object": "list", "data": [{"id": i, "object": "model", "created": 0,
                                                         "owned_by": "fine-tuning-tutor"} for i in ids]})

    async def chat(self, request: Request):
        body = await json_body(request)
        if body is None or not isinstance(body.get("messages"), list):
            return error(400, "The request body must be a JSON object with a `messages` list.", "invalid_request",
                         "messages")
        model = body.get("model", "")
        try:
            base, adapter = self._base_of(model)
        except KeyError:
            return error(404, f"The model `{model}` does not exist", "model_not_found", "model")
        usage = Usage()
        try:
            options = {"adapter": adapter, "temperature": float(body.get("temperature") or 0.0),
                       "max_tokens": int(body.get("max_tokens") or body.get("max_completion_tokens") or 256),
                       "usage": usage}
        except (TypeError, ValueError):
            return error(400, "temperature and max_tokens must be numbers.", "invalid_request")
        source = await asyncio.to_thread(engine.call, resolve_base_model,
                                         self.settings.model_copy(update={"base_model": base}))
        stream = engine.stream(source, body["messages"], **options)
        head = {"id": f"chatcmpl-{secrets.token_hex(8)}", "created": int(time.time()), "model": model}
        counts = lambda: {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,  # noqa: E731
                          "total_tokens": usage.prompt_tokens + usage.completion_tokens}
        if not body.get("stream"):
            try:
                text = "".join([piece async for piece in stream])
            except TutorError as exc:
                return error(500, str(exc), "generation_failed")
            return JSONResponse({**head, "object": "chat.completion", "usage": counts(), "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]})

        async def events():
            chunk = lambda delta, finish=None: {**head, "object": "chat.completion.chunk",  # noqa: E731
                                                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            yield f"data: {json.dumps(chunk({'role': 'assistant', 'content': ''}))}\n\n"
            try:
                async for piece in stream:
                    yield f"data: {json.dumps(chunk({'content': piece}))}\n\n"
            except TutorError as exc:  # the status line is sent: report it as the API does, in the stream
                yield f"data: {json.dumps({'error': {'message': str(exc), 'type': 'server_error'}})}\n\n"
                return
            yield f"data: {json.dumps(chunk({}, 'stop'))}\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                yield f"data: {json.dumps({**head, 'object': 'chat.completion.chunk', 'choices': [], 'usage': counts()})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


def _api_event(run_id: str, index: int, event: dict) -> dict:
    """One trainer event as an OpenAI fine-tuning event (metrics carry the dashboard's field names)."""
    kind, level, data = event["type"], "info", {}
    if kind == "step":
        message = f"Step {event['step']}/{event['total_steps']}: training loss={event['loss']:.4f}"
        data = {"step": event["step"], "total_steps": event["total_steps"], "train_loss": event["loss"]}
    elif kind == "eval":
        message = f"Step {event['step']}: validation loss={event['val_loss']:.4f}"
        data = {"step": event["step"], "valid_loss": event["val_loss"],
                "valid_mean_token_accuracy": event.get("val_token_accuracy")}
    elif kind == "checkpoint":
        message = f"Checkpoint created at step {event['step']}"
    elif kind == "done":
        message = "The job has successfully completed"
    elif kind == "error":
        message, level = f"The job failed: {event.get('message')}", "error"
    elif kind == "cancelled":
        message = "The job was cancelled"
    else:
        message = {"start": "Fine-tuning job started", "resumed": "Fine-tuning job resumed"}.get(kind, kind)
    return {"id": f"ftevent-{run_id}-{index}", "object": "fine_tuning.job.event", "created_at": int(event["time"]),
            "level": level, "message": message, "type": "metrics" if data else "message", "data": data}


class _Auth:
    """Bearer-key check when the server has a key; the key is compared in constant time, never logged."""

    def __init__(self, app, server: FineTuningServer):
        self.app, self.server = app, server

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.server.api_key:
            headers = dict(scope["headers"])
            sent = headers.get(b"authorization", b"").decode(errors="replace").removeprefix("Bearer ")
            if not hmac.compare_digest(sent.encode(), self.server.api_key.encode()):
                await error(401, "Incorrect API key provided.", "invalid_api_key")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8100, api_key: str | None = None) -> None:
    import uvicorn

    server = FineTuningServer(settings, api_key)
    log.info("OpenAI-compatible fine-tuning server at http://%s:%d/v1", host, port)
    uvicorn.run(server.app, host=host, port=port, log_level="warning")


if __name__ == "__main__":
    import os

    from assistant.settings import get_settings

    serve(get_settings(), api_key=os.environ.get("TUTOR_SERVE_API_KEY"))
