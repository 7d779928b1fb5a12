"""`tutor serve`'s `GET /v1/models`: the base model and every job's fine-tuned model, ids clients chat with.

    [m.id for m in client.models.list()]     # ["smollm2-135m-instruct", "ft:smollm2-135m-instruct:tutor:run-..."]
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter
from openai.types import Model

from assistant.server.state import META, Server
from training.base.registry import API_USER

router = APIRouter()


@router.get("/models")
async def models(server: Server):
    runs = await asyncio.to_thread(server.registry.runs, API_USER, ("succeeded",))
    ids = [server.base_id] + [server.job(r)["fine_tuned_model"] for r in runs if (Path(r.run_dir) / META).is_file()]
    return {"object": "list", "data": [Model(id=i, object="model", created=0, owned_by="fine-tuning-tutor").model_dump()
                                       for i in ids]}
