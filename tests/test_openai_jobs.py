"""OpenAI fine-tuning jobs with the real `openai` client against the project's own OpenAI-compatible
server (assistant/server/app.py) on 127.0.0.1, which trains with the local LoRA trainer (tiny model).

Covers: the happy path to a fine_tuned_model (events, metrics, checkpoints, registry, chat with it),
429 then success, 500s while following, timeouts, an invalid file, a job that fails server-side, cancel,
a server restart while the job runs, an app restart (the next chat follows the job), and the key in no
log line, message or registry byte."""

import asyncio
import json
import logging
import shutil
from pathlib import Path

import openai
import pytest

from assistant.chat.actions import PrepareRequest
from assistant.inference.backends import create_backend
from assistant.inference.engine import Usage
from assistant.server.app import FineTuningServer
from assistant.web.accounts import LOCAL_LEARNER
from tests.conftest import make_settings
from tests.http_server import ServerThread
from training.backends import local as jobs
from training.backends.openai_api import OpenAIJobConfig
from training.backends.registry import training_backend
from training.base.errors import TutorError
from training.base.registry import registry_for
from training.data.prepare import prepare
from training.data.recipes import SAMPLE_CSV

KEY = "sk-tutor-test-0123456789abcdef"


@pytest.fixture
def dataset(tmp_path):
    return prepare(SAMPLE_CSV, tmp_path / "dataset", train=12, validation=4, test=4, seed=5).files


@pytest.fixture
def server_settings(tmp_path, tiny_model_dir):
    return make_settings(tmp_path / "server", base_model=str(tiny_model_dir), serve_api_key=KEY)


@pytest.fixture
def server(server_settings):
    with ServerThread(FineTuningServer(server_settings).app) as http:
        yield http


def app_settings(tmp_path, server, key=KEY, **overrides):
    return make_settings(tmp_path / "app", openai_api_key=key, openai_base_url=server.base_url,
                         **{"request_timeout": 20, **overrides})


def hosted(settings):
    return training_backend("openai", settings)


def job_config(dataset, tiny_model_dir, **overrides):
    values = {"train_file": dataset["train"], "validation_file": dataset["validation"], "model": tiny_model_dir.name,
              "suffix": "recipes", "n_epochs": 2, "batch_size": 4}
    return OpenAIJobConfig(**{**values, **overrides})


def follow_all(run, settings, poll=0.2):
    registry = registry_for(settings)

    async def collect():
        return [e async for e in hosted(settings).follow(registry.run(run.id), registry, poll=poll)]

    return asyncio.run(collect())


async def first(events, wanted):
    """The next event the follower yields that `wanted` accepts."""
    async for event in events:
        if wanted(event):
            return event
    raise AssertionError("the follower ended first")


async def test_happy_path_to_a_fine_tuned_model_then_chat_with_it(tmp_path, server, server_settings, dataset,
                                                                  tiny_model_dir, caplog):
    caplog.set_level(logging.DEBUG)
    server.fail_next = [429]  # the first upload is rate-limited: the client backs off and retries
    settings = app_settings(tmp_path, server)
    run = hosted(settings).start(job_config(dataset, tiny_model_dir), registry_for(settings))
    assert run.backend == "openai" and run.config["job_id"].startswith("ftjob-")
    assert server.paths.count("POST /v1/files") == 3, "one retried upload, then the validation file"

    events = await asyncio.to_thread(follow_all, run, settings)
    kinds = [e["type"] for e in events]
    assert "status" in kinds and "step" in kinds and "eval" in kinds and "checkpoint" in kinds
    assert kinds[-1] == "done" and events[-1]["fine_tuned_model"].startswith(f"ft:{tiny_model_dir.name}:recipes:")
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps == sorted(steps) and len(steps) == len(set(steps)), "each metric event once, in order"

    registry = registry_for(settings)
    finished = registry.run(run.id)
    assert finished.status == "succeeded" and finished.metrics["val_loss"] > 0
    [model] = registry.models()
    assert (model.kind, model.location, model.base_model) == ("openai", events[-1]["fine_tuned_model"],
                                                                     tiny_model_dir.name)
    api = hosted(settings).client()
    assert model.location in [m.id for m in api.models.list()]
    assert api.fine_tuning.jobs.retrieve(run.config["job_id"]).status == "succeeded"
    assert any(c.step_number > 0 for c in api.fine_tuning.jobs.checkpoints.list(run.config["job_id"]))

    # Through the app's openai backend: a failure after the stream has begun (the adapter is loaded on first
    # use) reaches the client as the API's in-stream error, in words.
    model = model.location
    backend = create_backend("openai", settings, model=model)
    served = registry_for(server_settings).run(model.rsplit(":", 1)[1])
    adapter = Path(served.adapter_path)
    adapter.rename(adapter.with_name("moved"))
    with pytest.raises(TutorError, match="reported an error: The adapter folder .* is missing"):
        [p async for p in backend.stream([{"role": "user", "content": "Title: Soup"}], temperature=0, max_tokens=6)]
    adapter.with_name("moved").rename(adapter)

    chat = api.chat.completions.create(model=model, messages=[{"role": "user", "content": "Title: Toast"}],
                                       max_tokens=5)
    assert chat.choices[0].message.content and chat.usage.completion_tokens <= 5
    with pytest.raises(openai.BadRequestError, match="max_tokens must be a valid integer"):
        api.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens="lots")
    with pytest.raises(openai.BadRequestError, match="limit must be greater than or equal to 1"):
        api.fine_tuning.jobs.list(limit=0)

    usage = Usage()
    pieces = [p async for p in backend.stream([{"role": "user", "content": "Title: Soup"}], temperature=0,
                                              max_tokens=6, usage=usage)]
    assert pieces and "".join(pieces)  # a tiny random model: any text, newlines included
    assert 0 < usage.completion_tokens <= 6, "the server's usage reaches the caller"
    assert usage.prompt_tokens > 0 and usage.ttft_s is not None

    # Secrets: nowhere but the client.
    assert KEY not in caplog.text
    assert KEY.encode() not in (settings.data_dir / "registry.sqlite").read_bytes()
    assert all(KEY not in json.dumps(e) for e in events)


def test_invalid_files_are_refused_before_and_at_upload(tmp_path, server, dataset, tiny_model_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]}\n')
    settings = app_settings(tmp_path, server)
    with pytest.raises(TutorError, match=r"format errors: unrecognized_role \(line 1\)"):
        hosted(settings).start(job_config(dataset, tiny_model_dir, train_file=str(bad)), registry_for(settings))
    assert "POST /v1/files" not in server.paths, "nothing is uploaded (or paid for) before the local check passes"
    # The server rejects it too, with the line, for clients that skip the local check.
    with pytest.raises(openai.BadRequestError, match="unrecognized_role on line"):
        hosted(settings).client().files.create(file=bad.open("rb"), purpose="fine-tune")


def test_a_wrong_key_is_a_clear_message_without_the_key(tmp_path, server, dataset, tiny_model_dir, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrong-key-9876543210zyxw"
    settings = app_settings(tmp_path, server, key=wrong)
    with pytest.raises(TutorError) as error:
        hosted(settings).start(job_config(dataset, tiny_model_dir), registry_for(settings))
    assert "rejected the API key" in str(error.value) and wrong not in str(error.value) and wrong not in caplog.text
    [run] = registry_for(settings).runs()
    assert run.status == "failed" and "rejected the API key" in run.error


def test_the_cookbooks_own_calls_reach_a_fine_tuned_model_that_answers(server, dataset, tiny_model_dir):
    """The OpenAI cookbook's fine-tuning notebook, call for call, with only base_url, api_key and the model name
    changed: upload, create, poll retrieve, list_events, fine_tuned_model, chat.completions.create."""
    import time

    from openai import OpenAI

    client = OpenAI(base_url=server.base_url, api_key=KEY)  # changed line 1 of 3 (the notebook: OpenAI())
    training_file_id = client.files.create(file=open(dataset["train"], "rb"), purpose="fine-tune").id
    validation_file_id = client.files.create(file=open(dataset["validation"], "rb"), purpose="fine-tune").id
    response = client.fine_tuning.jobs.create(training_file=training_file_id, validation_file=validation_file_id,
                                              model=tiny_model_dir.name,  # changed: the notebook's gpt-4o-mini
                                              suffix="recipe-ner")
    job_id = response.id
    deadline = time.monotonic() + 240
    while (response := client.fine_tuning.jobs.retrieve(job_id)).status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.5)
    assert response.status == "succeeded"
    events = client.fine_tuning.jobs.list_events(fine_tuning_job_id=job_id, limit=50).data
    assert events and all(event.message for event in events)
    fine_tuned_model_id = client.fine_tuning.jobs.retrieve(job_id).fine_tuned_model
    assert fine_tuned_model_id.startswith(f"ft:{tiny_model_dir.name}:recipe-ner:")
    messages = [json.loads(line)["messages"] for line in Path(dataset["validation"]).read_text().splitlines()][0][:2]
    answer = client.chat.completions.create(model=fine_tuned_model_id, messages=messages, temperature=0,
                                            max_tokens=20)
    assert answer.choices[0].message.content and answer.usage.completion_tokens > 0


def test_an_organisation_refused_fine_tuning_hears_of_the_wind_down_and_where_to_go(tmp_path, server_settings,
                                                                                    dataset, tiny_model_dir):
    """OpenAI refuses job creation with a 403 to organisations without fine-tuning access (2026-05-07 notice)."""
    with ServerThread(FineTuningServer(server_settings).app, fail_paths=("/v1/fine_tuning/jobs",)) as server:
        server.fail_next = [403]
        settings = app_settings(tmp_path, server)
        with pytest.raises(TutorError) as refused:
            hosted(settings).start(job_config(dataset, tiny_model_dir), registry_for(settings))
    message = str(refused.value)
    assert "HTTP 403" in message and "6 January 2027" in message and "Fine-tune locally" in message
    assert "Azure OpenAI" in message
    [run] = registry_for(settings).runs()
    assert run.status == "failed" and "6 January 2027" in run.error


def test_a_job_that_fails_server_side_shows_its_error(tmp_path, dataset, tiny_model_dir):
    broken_base = tmp_path / "broken-base"
    shutil.copytree(tiny_model_dir, broken_base)
    with ServerThread(FineTuningServer(make_settings(tmp_path / "server", base_model=str(broken_base),
                                                     serve_api_key=KEY)).app) as server:
        settings = app_settings(tmp_path, server)
        (broken_base / "model.safetensors").write_bytes(b"not weights")  # the trainer will fail to load it
        run = hosted(settings).start(job_config(dataset, broken_base), registry_for(settings))
        events = follow_all(run, settings)
    assert events[-1]["type"] == "error" and "failed on the provider's side" in events[-1]["message"]
    finished = registry_for(settings).run(run.id)
    assert finished.status == "failed" and finished.error


async def test_cancel_and_a_server_restart_while_running(tmp_path, server_settings, dataset, tiny_model_dir):
    http = ServerThread(FineTuningServer(server_settings).app).__enter__()
    settings = app_settings(tmp_path, http, request_retries=1)  # the client gives up soon: the follower carries on
    registry = registry_for(settings)
    long_run = hosted(settings).start(job_config(dataset, tiny_model_dir, n_epochs=40), registry)
    short_run = hosted(settings).start(job_config(dataset, tiny_model_dir, n_epochs=2), registry)
    following = hosted(settings).follow(registry.run(long_run.id), registry, poll=0.2)
    assert await first(following, lambda e: e["type"] == "step")  # training

    port = http.port
    http.__exit__(None, None, None)  # the server goes away while the jobs train and wait...
    # Steps already fetched come first (a slow machine fetches several per poll), then the outage.
    outage = await first(following, lambda e: e["type"] not in ("step", "eval", "checkpoint"))
    assert outage["type"] == "status" and "Can't reach" in outage["message"] and "Retrying" in outage["message"]
    with ServerThread(FineTuningServer(server_settings).app, port=port) as http:  # ...and comes back
        http.fail_next = [500, 500, 500]  # then errors for a while, beyond the client's retry: nothing lost
        assert await first(following, lambda e: e["type"] == "step")
        cancelled = await asyncio.to_thread(jobs.cancel, registry.run(long_run.id), registry, settings=settings)
        assert cancelled.status == "cancelled"
        assert [e["type"] async for e in following][-1] == "cancelled"
        assert (await asyncio.to_thread(follow_all, short_run, settings))[-1]["type"] == "done"
    assert registry.run(short_run.id).status == "succeeded"


def test_timeouts_are_retried_then_waited_out(tmp_path, server, dataset, tiny_model_dir, caplog):
    """A server that hangs: the client gives up after request_timeout and retries; when the retries are
    spent too, the follower says so and waits longer itself. The job and the registry carry on."""
    caplog.set_level(logging.DEBUG)
    settings = make_settings(tmp_path / "app", openai_api_key=KEY, openai_base_url=server.base_url,
                             request_timeout=3, request_retries=1)
    # Each stall lasts until the client gives up (after 3 s): its retry is answered at once, in the time a loaded
    # machine takes; a stall of a fixed length once outlasted a 1 s timeout's retry there.
    server.stall_next = [60]  # the first upload hangs: timed out, retried, uploaded
    run = hosted(settings).start(job_config(dataset, tiny_model_dir), registry_for(settings))
    assert server.paths.count("POST /v1/files") == 3 and run.status in ("queued", "running")

    server.stall_next = [60, 60]  # the follower's first call hangs twice: more than the client's one retry
    events = follow_all(run, settings)
    [waited] = [e for e in events if "did not answer within 3 s" in e.get("message", "")]
    assert waited["type"] == "status" and "Retrying in" in waited["message"]
    assert events[-1]["type"] == "done"
    assert registry_for(settings).run(run.id).status == "succeeded"
    assert KEY not in caplog.text and all(KEY not in json.dumps(e) for e in events)


@pytest.fixture
def chat_env(monkeypatch, tmp_path, server, indexed_data_dir):
    """The app's environment against the server, on a copy of the session's knowledge index (a chat's warm-up
    builds the tutor: it finds the index up to date instead of embedding knowledge/ beside the trainer)."""
    import assistant.tutor.service as service
    from tests.conftest import MODEL_CACHE
    from training.base.settings import get_settings

    shutil.copytree(indexed_data_dir, tmp_path / "app")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUTOR_DATA_DIR", str(tmp_path / "app"))
    monkeypatch.setenv("TUTOR_CACHE_DIR", str(MODEL_CACHE))
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    get_settings.cache_clear()
    yield
    service._tutor = None
    get_settings.cache_clear()


async def test_the_whole_flow_in_chat(chat_env, tiny_model_dir, caplog):

    import chainlit as cl

    import assistant.chat.app as app
    from assistant.chat import dataset_flow, training_flow
    from tests.chainlit_harness import open_chat, start_billed_training, user_says

    caplog.set_level(logging.DEBUG)
    chat = open_chat()
    await dataset_flow.run_prepare(PrepareRequest(source="sample", train=12, validation=4, test=4, seed=1), LOCAL_LEARNER)
    assert [a["label"] for a in chat.actions_for(chat.messages[-1]["id"])] == [
        "Fine-tune locally", "Fine-tune with OpenAI", "See what is trained"]

    pick, confirm = await start_billed_training(
        chat, f"/train openai model={tiny_model_dir.name} epochs=2 batch_size=4 suffix=chat", 240)
    assert pick["payload"]["backend"] == "openai"
    assert "billed tokens" in confirm["output"] and "$" in confirm["output"] and f"base **{tiny_model_dir.name}**" in confirm["output"]

    progress = next(m for m in chat.messages if m["output"].startswith("**Training `run-"))
    assert "status **" in progress["output"] and "training loss" in progress["output"]
    summary = chat.messages[-1]
    assert summary["output"].startswith("### ✅ Fine-tuned") and "with OpenAI" in summary["output"]
    assert [a["label"] for a in chat.actions_for(summary["id"])] == ["Chat with it", "Compare with RAG baseline",
                                                                      "Explain my run"]
    chat_button = chat.actions_for(summary["id"])[0]
    await training_flow.on_chat_with_model(cl.Action(name="chat_with_model", payload=chat_button["payload"]))
    await app.on_message(user_says('Title: Toast\n\nIngredients: ["2 slices bread"]\n\nGeneric ingredients: '))
    reply = chat.messages[-1]
    assert reply["name"].startswith("fine-tuned run-") and chat.tokens[reply["id"]]
    assert KEY not in caplog.text and all(KEY not in m["output"] for m in chat.messages)


async def test_a_chat_opened_after_a_restart_follows_a_running_openai_job(chat_env, dataset, tiny_model_dir):
    """The app restarted while the provider trained: the next chat picks the job up and follows it to the end."""
    import asyncio

    import chainlit as cl

    import assistant.chat.app as app
    from tests.chainlit_harness import open_chat
    from training.base.settings import get_settings

    settings = get_settings()
    run = hosted(settings).start(job_config(dataset, tiny_model_dir, suffix="restart"), registry_for(settings))
    chat = open_chat()  # a new app process: nothing in memory but the registry
    await app.on_chat_start()
    [watching] = cl.user_session.get("watching")
    await asyncio.wait_for(watching, 240)
    assert any("picked up after a restart" in m["output"] for m in chat.messages)
    summary = chat.messages[-1]
    assert summary["output"].startswith("### ✅ Fine-tuned") and "with OpenAI" in summary["output"]
    [model] = registry_for(settings).models()
    assert model.run_id == run.id and model.location.startswith(f"ft:{tiny_model_dir.name}:restart:")


async def test_without_configuration_the_chat_says_how_to_configure(monkeypatch, tmp_path):
    import chainlit as cl

    from assistant.chat import dataset_flow
    from tests.chainlit_harness import open_chat
    from training.base.settings import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUTOR_DATA_DIR", str(tmp_path / "app"))
    get_settings.cache_clear()
    try:
        chat = open_chat()
        await dataset_flow.run_prepare(PrepareRequest(source="sample", train=12, validation=4, test=4, seed=1),
                                       LOCAL_LEARNER)
        ready = chat.messages[-1]
        local, tokens = chat.actions_for(ready["id"])
        assert local["label"] == "Fine-tune locally" and tokens["label"] == "See what is trained"
        assert "OPENAI_API_KEY" in ready["output"] and "OPENAI_BASE_URL" in ready["output"]
        from assistant.chat import training_flow

        await training_flow.on_finetune(cl.Action(name="finetune", payload={**local["payload"], "backend": "openai"}))
        assert "To fine-tune with OpenAI, set OPENAI_API_KEY" in chat.messages[-1]["output"]
    finally:
        get_settings.cache_clear()


def test_cli_train_and_jobs_with_the_openai_backend_then_continue_the_fine_tune(tmp_path, server, dataset,
                                                                                tiny_model_dir):
    from tests.helpers import run_tutor

    env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": KEY}
    common = ["--backend", "openai", "--train", dataset["train"], "--val", dataset["validation"], "--epochs", "1",
              "--batch-size", "4", "--json"]
    first = run_tutor("train", *common, "--model", tiny_model_dir.name, "--suffix", "cli", env_extra=env,
                      tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    printed = json.loads(first.stdout)
    assert printed["backend"] == "openai" and printed["status"] == "succeeded"
    fine_tuned = printed["metrics"]["fine_tuned_model"]
    assert fine_tuned.startswith(f"ft:{tiny_model_dir.name}:cli:")
    # Continue fine-tuning the fine-tuned model: its adapter trains further on the server.
    second = run_tutor("train", *common, "--model", fine_tuned, env_extra=env, tmp_path=tmp_path)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["config"]["model"] == fine_tuned
    listed = run_tutor("jobs", "list", "--json", env_extra=env, tmp_path=tmp_path)
    assert [r["status"] for r in json.loads(listed.stdout)] == ["succeeded", "succeeded"]
    cancelled = run_tutor("jobs", "cancel", printed["id"], "--json", env_extra=env, tmp_path=tmp_path)
    assert "Traceback" not in cancelled.stderr, "cancelling a hosted run from the CLI reaches its provider"
    assert cancelled.returncode == 1 and "already succeeded" in json.loads(cancelled.stdout)["error"]
    after = run_tutor("jobs", "show", printed["id"], "--json", env_extra=env, tmp_path=tmp_path)
    assert json.loads(after.stdout)["status"] == "succeeded", "a finished job stays finished"
    assert KEY not in first.stdout + first.stderr + second.stdout + second.stderr + listed.stdout
