"""`tutor serve`'s fine-tuning jobs: create, list, retrieve, cancel, and each job's events and checkpoints, as
OpenAI's `/v1/fine_tuning/jobs` serves them. A job is a local LoRA run; its settings are checked twice over: the
request against the OpenAI backend's types (assistant/server/schemas.py), the run against the local trainer's
TrainConfig ("auto" takes its measured defaults), so a bad value is a 400 naming it.

    job = client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=file_id)
    client.fine_tuning.jobs.list_events(job.id)      # newest first; events rendered by training/jobs/presentation.py
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from fastapi import APIRouter
from openai.types.fine_tuning import FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from assistant.server.errors import APIError
from assistant.server.schemas import JobCreate, Limit
from assistant.server.state import META, Server
from training.base.registry import API_USER, FINISHED
from training.jobs import events as run_events
from training.jobs.presentation import api_event
from training.local.checkpoints import checkpoints
from training.local.config import ConfigError, TrainConfig

router = APIRouter(prefix="/fine_tuning/jobs")
LOCAL_DEFAULTS = TrainConfig.model_fields  # "auto" means the local trainer's measured defaults


@router.post("")
async def create(body: JobCreate, server: Server):
    training = await server.file(body.training_file, "training_file")
    validation = await server.file(body.validation_file, "validation_file") if body.validation_file else None
    base, init_adapter = await asyncio.to_thread(server.base_of, body.model)
    chosen = body.chosen()
    pick = lambda value, default: default if value == "auto" else value  # noqa: E731
    try:
        config = TrainConfig(train_file=training.path, validation_file=validation.path if validation else None,
                             base_model=base, init_adapter=init_adapter,
                             epochs=float(pick(chosen.n_epochs, LOCAL_DEFAULTS["epochs"].default)),
                             batch_size=pick(chosen.batch_size, LOCAL_DEFAULTS["batch_size"].default),
                             learning_rate=LOCAL_DEFAULTS["learning_rate"].default
                             * pick(chosen.learning_rate_multiplier, 1.0),
                             seed=42 if body.seed is None else body.seed)
        run = await asyncio.to_thread(server.trainer.start, config, server.registry, API_USER)
    except ConfigError as exc:
        raise APIError(400, str(exc), "invalid_hyperparameters", "hyperparameters") from None
    multiplier = config.learning_rate / LOCAL_DEFAULTS["learning_rate"].default
    meta = {"suffix": body.suffix or "tutor", "model": body.model, "training_file": body.training_file,
            "validation_file": body.validation_file,
            "hyperparameters": {"n_epochs": config.epochs, "batch_size": config.batch_size,
                                "learning_rate_multiplier": multiplier}}
    (Path(run.run_dir) / META).write_text(json.dumps(meta))
    return server.job(run)


@router.get("")
async def list_jobs(server: Server, limit: Limit = 20):
    runs = await server.jobs()
    return {"object": "list", "data": [server.job(r) for r in runs[:limit]], "has_more": len(runs) > limit}


@router.get("/{job_id}")
async def retrieve(job_id: str, server: Server):
    return server.job(await server.find(job_id))


@router.post("/{job_id}/cancel")
async def cancel(job_id: str, server: Server):
    run = await server.find(job_id)
    if run.status in FINISHED:
        raise APIError(400, f"The job is already {run.status}.", "invalid_request", "job_id")
    return server.job(await asyncio.to_thread(server.trainer.cancel, run, server.registry))


@router.get("/{job_id}/events")
async def list_events(job_id: str, server: Server, limit: Limit = 20, after: str | None = None):
    """Newest first, as OpenAI lists them; `after` pages towards older events."""
    run = await server.find(job_id)
    seen, _ = await asyncio.to_thread(run_events.read, Path(run.run_dir))
    found = [api_event(run.id, index, run_events.parse(event)) for index, event in enumerate(seen)]
    found.insert(0, {"id": f"ftevent-{run.id}-created", "object": "fine_tuning.job.event",
                     "created_at": int(run.created_at), "level": "info", "type": "message",
                     "message": "Validated training file; fine-tuning job created", "data": {}})
    found.reverse()
    if after:
        ids = [e["id"] for e in found]
        found = found[ids.index(after) + 1:] if after in ids else []
    data = [FineTuningJobEvent.model_validate(e).model_dump(mode="json") for e in found[:limit]]
    return {"object": "list", "data": data, "has_more": len(found) > limit}


@router.get("/{job_id}/checkpoints")
async def list_checkpoints(job_id: str, server: Server):
    run = await server.find(job_id)
    data = []
    for folder in reversed(checkpoints(Path(run.run_dir))):
        step = int(folder.name.split("-")[-1])
        data.append(FineTuningJobCheckpoint.model_validate({
            "id": f"ftckpt-{run.id}-{step}", "object": "fine_tuning.job.checkpoint",
            "created_at": int(folder.stat().st_mtime), "fine_tuning_job_id": f"ftjob-{run.id}",
            "fine_tuned_model_checkpoint": f"ft:{server.base_id}:ckpt:{run.id}:step-{step}",
            "step_number": step, "metrics": {"step": step}}).model_dump(mode="json"))
    return {"object": "list", "data": data, "has_more": False,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}
