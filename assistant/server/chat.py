"""`tutor serve`'s `POST /v1/chat/completions`: the base model or a job's `ft:` model answers on the engine, whole
or streamed (EventSourceResponse: a role chunk, content chunks, a stop chunk, usage if asked, [DONE]), as the
`openai` client reads OpenAI. max_tokens and the prompt must fit the model's context.

    client.chat.completions.create(model="ft:smollm2-135m-instruct:tutor:run-...", messages=[...], stream=True)
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time

from fastapi import APIRouter
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from sse_starlette.sse import EventSourceResponse

from assistant.inference.engine import Usage, engine
from assistant.server.errors import APIError
from assistant.server.schemas import ChatRequest, StreamOptions
from assistant.server.state import Server
from training.base.errors import TutorError
from training.base.models import context_length, resolve_base_model

router = APIRouter()


@router.post("/chat/completions")
async def chat(body: ChatRequest, server: Server):
    base, adapter = await asyncio.to_thread(server.base_of, body.model)
    source = await asyncio.to_thread(engine.call, resolve_base_model,
                                     server.settings.model_copy(update={"base_model": base}))
    messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.content} for m in body.messages]
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
    if not body.stream:
        try:
            text = "".join([piece async for piece in stream])
        except TutorError as exc:
            raise APIError(500, str(exc), "generation_failed") from None
        return ChatCompletion.model_validate({**head, "object": "chat.completion", "usage": _counts(usage), "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]}
        ).model_dump(mode="json", exclude_none=True)
    return EventSourceResponse(_chunks(stream, head, usage, body.stream_options))


def _counts(usage: Usage) -> dict:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens}


async def _chunks(stream, head: dict, usage: Usage, options: StreamOptions | None):
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
                                                           "usage": _counts(usage)}).model_dump_json(exclude_none=True)}
    yield {"data": "[DONE]"}
