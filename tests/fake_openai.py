"""A real HTTP server on 127.0.0.1 speaking the chat part of the OpenAI API, for tests.

OpenAI itself is outside this machine, so tests drive the real `openai` client against this server.
It answers like a tiny deterministic model (it quotes the first note it was given, so tests can check
grounding), records every request, checks the bearer key, and fails on demand:

    server.fail_next = [429, 500]     # the next requests get these statuses, in order
    server.replies = ["Step 7 ..."]    # the next chat answers, in order, instead of the scripted ones
"""

from __future__ import annotations

import json
import re

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from tests.http_server import ServerThread


class FakeOpenAI:
    def __init__(self, api_key: str = "sk-test-abcdefghijklmnop", model: str = "tutor-test-model"):
        self.api_key = api_key
        self.model = model
        self.requests: list[dict] = []
        self.fail_next: list[int] = []
        self.replies: list[str] = []
        self._http = ServerThread(Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"]),
                                                    Route("/v1/models", self.models, methods=["GET"])]))
        self.port, self.base_url = self._http.port, self._http.base_url

    def __enter__(self):
        self._http.__enter__()
        return self

    def __exit__(self, *exc):
        self._http.__exit__(*exc)

    def _error(self, status: int, message: str, code: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "code": code}}, status)

    async def models(self, request: Request):
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "test"}]})

    async def chat(self, request: Request):
        body = await request.json()
        self.requests.append(body)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            sent = request.headers.get("authorization", "")[7:]
            # Like OpenAI, echo part of the wrong key: the app must not pass this on.
            return self._error(401, f"Incorrect API key provided: {sent[:6]}***{sent[-4:]}.", "invalid_api_key")
        if self.fail_next:
            status = self.fail_next.pop(0)
            return self._error(status, f"Simulated failure {status}", "simulated")
        if body.get("model") != self.model:
            return self._error(404, f"The model `{body.get('model')}` does not exist", "model_not_found")
        return completion(body, self.model, self.replies.pop(0) if self.replies else self.reply_for(body["messages"]))

    @staticmethod
    def reply_for(messages: list[dict]) -> str:
        """Quote the first numbered note's heading, as a grounded model would cite it; for the recipe
        task, copy the nearest few-shot answer (a crude few-shot learner) or answer one generic item."""
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        if "recipe assistant" in system:
            shots = [m["content"] for m in messages if m["role"] == "assistant"]
            return shots[0] if shots else '["flour"]'
        if "fine-tuning run" in system:  # explain a run: retell the first finding, citing its note
            return "In short: " + messages[-1]["content"].splitlines()[1].removeprefix("- ")
        match = re.search(r"\[1\] (.+?) \(", system)
        return f"According to the notes, see {match.group(1)} [1]." if match else "I have no notes for that."


def completion(body: dict, model: str, text: str):
    """The chat completion response for a request `body` answering `text`: streamed (with usage when asked) or
    whole, like OpenAI's. A word is a token here: enough for tests that check usage is passed on."""
    words = re.findall(r"\S+\s*", text)
    usage = {"prompt_tokens": sum(len(m["content"].split()) for m in body["messages"]),
             "completion_tokens": len(words)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    if not body.get("stream"):
        return JSONResponse({"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": text}}], "usage": usage})

    async def events():
        for word in words:
            chunk = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": model,
                     "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
            yield f"data: {json.dumps(chunk)}\n\n"
        if (body.get("stream_options") or {}).get("include_usage"):
            chunk = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": model,
                     "choices": [], "usage": usage}
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
