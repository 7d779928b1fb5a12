"""`tutor serve`'s errors, in OpenAI's shape: {"error": {"message", "type", "param", "code"}}. A handler raises
APIError; a request that fails its pydantic model is one 400 sentence naming the fields (never a 422); anything
unexpected is a 500 whose details go to the log only.

    raise APIError(404, "No such fine-tuning job.", "not_found", "job_id")
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from training.local.config import explain

log = logging.getLogger(__name__)


class APIError(Exception):
    """An error the API reports in OpenAI's shape."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    def response(self) -> JSONResponse:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return JSONResponse({"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}},
                            self.status)


def error_body(message: str, code: str) -> dict:
    """A refusal's body where no handler runs (the gate and the body limits, before FastAPI)."""
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


async def _invalid_request(_request, exc: RequestValidationError) -> JSONResponse:
    """Pydantic's report as one 400 sentence naming the fields (never a 422 or a 500)."""
    errors = [{**e, "loc": tuple(p for p in e["loc"] if p not in ("body", "query", "path"))} for e in exc.errors()]
    param = ".".join(str(p) for p in errors[0]["loc"] if isinstance(p, str)) if errors else None
    return APIError(400, explain("Invalid request", errors), "invalid_request", param or None).response()


async def _internal_error(_request, exc: Exception) -> JSONResponse:
    log.exception("tutor serve failed on a request", exc_info=exc)
    return APIError(500, "The server failed on this request; its log has the details.", "server_error").response()


def install(api: FastAPI) -> None:
    """The app's error handlers: APIError as it says, bad requests as 400, anything else as a logged 500."""
    api.add_exception_handler(APIError, lambda request, exc: exc.response())
    api.add_exception_handler(RequestValidationError, _invalid_request)
    api.add_exception_handler(Exception, _internal_error)
