"""Chat backends: the registry, off-loop streaming, the local model, and the OpenAI-compatible client
against a real HTTP server on 127.0.0.1 (including its failures and key hygiene)."""

import logging

import pytest

from assistant.inference.backends import (
    ChatBackend,
    backend_names,
    create_backend,
    register_backend,
    unregister_backend,
)
from tests.conftest import make_settings
from training.base.errors import TutorError

MESSAGES = [{"role": "system", "content": "Notes:\n[1] How LoRA works (knowledge/lora.md)\nLoRA adds adapters."},
            {"role": "user", "content": "What is LoRA?"}]


async def collect(backend, messages=MESSAGES, **options):
    return "".join([piece async for piece in backend.stream(messages, temperature=options.get("temperature", 0.0),
                                                            max_tokens=options.get("max_tokens", 20))])


async def test_a_backend_registers_through_the_same_hook_as_the_built_ins(settings):
    @register_backend
    class Shout(ChatBackend):
        name = "shout"

        async def stream(self, messages, *, temperature, max_tokens, usage=None):
            for word in messages[-1]["content"].split():
                yield word.upper() + " "

    try:
        assert {"local", "openai", "shout"} <= set(backend_names())
        assert await collect(create_backend("shout", settings)) == "WHAT IS LORA? "
    finally:
        unregister_backend("shout")
    with pytest.raises(TutorError, match="Unknown chat backend 'shout'"):
        create_backend("shout", settings)


async def test_local_backend_streams_from_a_tiny_model(tiny_settings):
    backend = create_backend("local", tiny_settings)
    pieces = [p async for p in backend.stream(MESSAGES, temperature=0.0, max_tokens=8)]
    assert pieces and all(isinstance(p, str) for p in pieces)
    assert len("".join(pieces)) > 0
    assert "tiny-llama" in backend.label


def openai_settings(tmp_path, server, **overrides):
    values = {"openai_api_key": server.api_key, "openai_base_url": server.base_url, "openai_model": server.model}
    return make_settings(tmp_path, **{**values, **overrides})


async def test_openai_backend_streams_from_a_compatible_server(tmp_path, fake_openai):
    backend = create_backend("openai", openai_settings(tmp_path, fake_openai))
    assert await collect(backend) == "According to the notes, see How LoRA works [1]."
    request = fake_openai.requests[-1]
    assert request["stream"] is True and request["messages"] == MESSAGES
    assert backend.label == f"{fake_openai.model} at 127.0.0.1:{fake_openai.port}"


async def test_openai_backend_retries_a_rate_limit_then_succeeds(tmp_path, fake_openai):
    fake_openai.fail_next = [429]
    backend = create_backend("openai", openai_settings(tmp_path, fake_openai))
    assert (await collect(backend)).startswith("According to the notes")
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize("setup, expected", [
    (lambda s: {"openai_api_key": "sk-wrong-key-0123456789"}, "rejected the API key"),
    (lambda s: {"openai_model": "gpt-nonexistent"}, "no model named 'gpt-nonexistent'"),
    (lambda s: setattr(s, "fail_next", [500, 500, 500]) or {}, "HTTP 500"),
    (lambda s: {"openai_base_url": "http://127.0.0.1:9/v1"}, "Can't reach the model server at 127.0.0.1:9"),
])
async def test_openai_failures_give_a_clear_message_without_the_key(tmp_path, fake_openai, caplog, setup, expected):
    overrides = setup(fake_openai)
    settings = openai_settings(tmp_path, fake_openai, **overrides)
    key = settings.openai_api_key.get_secret_value()
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TutorError) as error:
        await collect(create_backend("openai", settings))
    message = str(error.value)
    assert expected in message
    assert "Traceback" not in message
    for secret in (key, key[:6], key[-4:] + "."):
        assert secret not in message
    assert key not in caplog.text


async def test_openai_without_key_or_server_explains_how_to_configure(tmp_path):
    backend = create_backend("openai", make_settings(tmp_path))
    assert "OPENAI_API_KEY" in backend.unavailable_reason()
    with pytest.raises(TutorError, match="OPENAI_BASE_URL"):
        await collect(backend)
