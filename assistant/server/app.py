"""`tutor serve`: the project's own OpenAI-compatible server, fine-tuning on the local trainer, chat on the engine.

Point the OpenAI SDK, LangChain's ChatOpenAI or the tutor itself (OPENAI_BASE_URL) at it and run the
hosted-fine-tuning lesson offline: upload files, create a job, follow its events and metrics, list its
checkpoints, cancel it, then chat with `ft:...` models. Built as llama-cpp-python's `server/` is: this small app
factory; FastAPI routers for files (files.py), fine-tuning jobs (jobs.py), chat completions (chat.py) and models
(models.py); pydantic requests (schemas.py, a wrong type or value is a 400 with a sentence, by construction);
the server's state as a dependency (state.py); OpenAI-shaped errors (errors.py). Responses are the `openai`
package's own types, and streams are EventSourceResponses, so the `openai` client reads it as it reads OpenAI.

    tutor serve --port 8100          # then OPENAI_BASE_URL=http://127.0.0.1:8100/v1
    python -m assistant.server.app

Safe by default:
- TUTOR_SERVE_API_KEY (environment or .env) is the bearer key; beyond loopback it refuses to start without one.
- Before a body is read (assistant.web.limits.RequestGate, an ASGI layer: a FastAPI dependency would run only
  after the body was read): the key, compared in constant time and never logged; an Origin other than the
  server's own (or TUTOR_ALLOWED_ORIGINS) gets 403, so a page elsewhere can't post to it, not even a multipart
  form a browser sends without asking; POSTs must be application/json or multipart/form-data (415 otherwise).
  A Host outside the bind address (or TUTOR_SERVE_ALLOWED_HOSTS) is refused.
- Bodies are limited before they are read (uploads TUTOR_MAX_UPLOAD_MB, JSON 4 MB); uploads stream to disk.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware

from assistant.server import chat, errors, files, jobs, models
from assistant.server.errors import error_body
from assistant.server.state import ServerState
from assistant.web.limits import BodyLimit, RequestGate
from assistant.web.origins import WILDCARDS, is_loopback
from training.base.common import make_private
from training.base.errors import TutorError
from training.base.settings import Settings
from training.jobs import queue

log = logging.getLogger(__name__)

JSON_LIMIT = 4 * 2**20


def create_app(server: ServerState, allowed_hosts: list[str] | None = None):
    """The ASGI app serving `server`: its routers under /v1, behind the body limits and the request gate; the
    training queue moves while it runs."""
    @asynccontextmanager
    async def lifespan(_app):
        keeper = asyncio.create_task(queue.keep_moving(server.registry, server.settings.max_training_jobs))
        yield
        keeper.cancel()

    api = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    api.state.server = server
    errors.install(api)
    for module in (files, jobs, chat, models):
        api.include_router(module.router, prefix="/v1")
    if allowed_hosts is not None:
        api.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app = BodyLimit(api, JSON_LIMIT, paths=("/v1/fine_tuning", "/v1/chat"),
                    body=error_body("The request body is over the 4 MB limit.", "request_too_large"))
    upload_mb = server.settings.max_upload_mb
    app = BodyLimit(app, upload_mb * 2**20 + 2**20, paths=("/v1/files",),
                    body=error_body(f"Files up to {upload_mb} MB can be uploaded here.", "file_too_large"))
    return RequestGate(app, server.api_key, server.settings.allowed_origins, error_body, paths=("/v1/",))


class FineTuningServer(ServerState):
    """The API's state and its app, `.app`, ready to serve."""

    def __init__(self, settings: Settings, allowed_hosts: list[str] | None = None):
        super().__init__(settings)
        self.app = create_app(self, allowed_hosts)


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
