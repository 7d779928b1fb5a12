"""`tutor serve`'s state: its settings, the registry and training queue its jobs live in, its folders, and the
lookups every router shares (a file, a job, a model id) as a FastAPI dependency:

    @router.get("/fine_tuning/jobs/{job_id}")
    async def retrieve(job_id: str, server: Server): return server.job(await server.find(job_id))

Jobs are local runs in the app's registry and training queue, owned by API_USER; they outlive the server. A job
killed with the server resumes from its checkpoint at the next start; a trainer that dies while the server runs
is reported as failed.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from openai.types.fine_tuning import FineTuningJob

from assistant.server.errors import APIError
from training.backends.registry import training_backend
from training.base.errors import TutorError
from training.base.models import display_name
from training.base.records import File, Run
from training.base.registry import API_USER, FINISHED, Registry, registry_for
from training.base.settings import EMBEDDED, Settings
from training.jobs import queue

BASE_MODEL_ID = "smollm2-135m-instruct"  # how the embedded base model is named to API clients
META = "openai.json"  # in a job's run folder: what the client asked for (a run without it is no API job)


class ServerState:
    """The API's settings, registry and folders; jobs killed with the previous server carry on at start."""

    def __init__(self, settings: Settings):
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
                self.registry.update_run(run.id, status="failed", error=str(exc))

    async def file(self, file_id: str | None, param: str) -> File:
        """An uploaded file by id (looked up, never made into a path); 404 for the file route, 400 in a body."""
        row = await asyncio.to_thread(self.registry.file, file_id, API_USER) if file_id else None
        if row is None:
            raise APIError(404 if param == "file_id" else 400, f"No such file: {file_id}.", "invalid_file", param)
        return row

    def runs(self) -> list[Run]:
        """The API's runs, with any whose trainer died while this server ran reported as failed (the API has no
        "interrupted"; a job killed together with the server resumes at its next start instead)."""
        queue.reconcile(self.registry)
        for run in self.registry.runs(API_USER, ("interrupted",)):
            self.registry.update_run(run.id, status="failed", error="The trainer stopped unexpectedly (killed, or "
                                     "out of memory). Start a new job; its checkpoints are kept on the server.")
        return self.registry.runs(API_USER)

    async def jobs(self) -> list[dict]:
        """The runs made through this API, newest first."""
        return [r for r in await asyncio.to_thread(self.runs) if (Path(r.run_dir) / META).is_file()]

    async def find(self, job_id: str) -> Run:
        run_id = job_id.removeprefix("ftjob-")
        run = next((r for r in await self.jobs() if r.id == run_id), None)
        if run is None:
            raise APIError(404, "No such fine-tuning job.", "not_found", "job_id")
        return run

    def base_of(self, model: str) -> tuple[str, str | None]:
        """(trainer base model, adapter to continue from) for a requested model id."""
        if model == self.base_id:
            return self.settings.base_model, None
        match = re.fullmatch(r"ft:[^:]+:[^:]*:(run-[\w-]+)", model)
        run = self.registry.run(match.group(1), API_USER) if match else None
        if run is None or run.status != "succeeded":
            raise APIError(404, f"The model `{model}` does not exist or you do not have access to it.",
                           "model_not_found", "model")
        return run.config["base_model"], run.adapter_path

    def job(self, run: Run) -> dict:
        """A run as OpenAI's FineTuningJob."""
        meta = json.loads((Path(run.run_dir) / META).read_text())
        succeeded = run.status == "succeeded"
        status = {"interrupted": "running", "timed_out": "cancelled"}.get(run.status, run.status)
        return FineTuningJob.model_validate({
            "id": f"ftjob-{run.id}", "object": "fine_tuning.job", "created_at": int(run.created_at),
            "model": meta["model"], "status": status, "training_file": meta["training_file"],
            "validation_file": meta["validation_file"], "hyperparameters": meta["hyperparameters"],
            "fine_tuned_model": f"ft:{self.base_id}:{meta['suffix']}:{run.id}" if succeeded else None,
            "finished_at": int(run.updated_at) if run.status in FINISHED else None,
            "trained_tokens": run.metrics.get("tokens_trained") if succeeded else None,
            "error": ({"code": "training_failed", "message": run.error or "Training failed.", "param": None}
                      if run.status == "failed" else None),
            "organization_id": "org-local", "result_files": [], "seed": run.config.get("seed", 42),
            "method": {"type": "supervised"}}).model_dump(mode="json")


def current(request: Request) -> ServerState:
    """The state of the app serving this request."""
    return request.app.state.server


Server = Annotated[ServerState, Depends(current)]


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
    for row in runs:  # rows of the old file, as they were stored
        if registry.run(row["id"]) is None:
            registry.create_run(row["backend"], json.loads(row["config"]), Path(row["run_dir"]), row["status"],
                                row["id"], API_USER)
            registry.update_run(row["id"], metrics=json.loads(row["metrics"]), adapter_path=row["adapter_path"],
                                error=row["error"], handle=str(row["pid"]) if row["pid"] else None)
    known = {m.run_id for m in registry.models(API_USER)}
    for row in models:
        if row["run_id"] not in known:
            registry.add_model(row["run_id"], row["kind"], row["location"], row["base_model"], API_USER)
    for meta in (root / "files").glob("file-*.json"):
        info = json.loads(meta.read_text())
        if (path := meta.with_suffix(".jsonl")).is_file() and registry.file(info["id"]) is None:
            registry.add_file(API_USER, info.get("filename") or path.name, path, "fine-tune", info["id"])
    legacy.rename(legacy.with_name("registry.sqlite.adopted"))
