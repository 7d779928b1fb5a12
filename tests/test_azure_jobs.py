"""Azure OpenAI fine-tuning with the real `AzureOpenAI` client against an Azure-shaped server on 127.0.0.1
(tests/fake_azure.py): data plane (files and their processing, jobs, events, checkpoints, deployments' chat)
and control plane (deployments).

Covers: the happy path to a deployment and a chat with it, a 429 then success, a file Azure can't process, a
job that fails server-side, cancel, a restart while the job runs, no deployment settings (the learner is told
the step and names the deployment after), the A/B pair on the base deployment, and the key and the management
token in no log line, event, registry byte or output."""

import asyncio
import json
import logging

import pytest

from assistant.chat import run_view
from assistant.tutor.contenders import pair_for_run
from tests.conftest import make_settings
from tests.fake_azure import FakeAzure
from training.backends.azure import AzureJobs
from training.backends.registry import backend_of, training_backend
from training.base.errors import TutorError
from training.base.registry import registry_for
from training.data.prepare import prepare
from training.data.recipes import SAMPLE_CSV
from training.evaluation.held_out import Case
from training.local.config import ConfigError

KEY, TOKEN = "azure-key-0123456789abcdef", "arm-token-0123456789"
BASE = "gpt-4.1-mini-2025-04-14"


@pytest.fixture
def azure():
    with FakeAzure(api_key=KEY, management_token=TOKEN) as server:
        yield server


@pytest.fixture
def dataset(tmp_path):
    return prepare(SAMPLE_CSV, tmp_path / "dataset", train=12, validation=4, test=4, seed=5).files


@pytest.fixture(autouse=True)
def quick_file_checks(monkeypatch):
    monkeypatch.setattr(AzureJobs, "file_poll", 0.1)


def azure_env(azure, deploy: bool = True) -> dict:
    env = {"AZURE_OPENAI_ENDPOINT": azure.endpoint, "AZURE_OPENAI_API_KEY": KEY,
           "OPENAI_API_VERSION": "2025-04-01-preview", "AZURE_OPENAI_BASE_DEPLOYMENT": "base-mini",
           "TUTOR_REQUEST_RETRIES": "2"}
    if deploy:
        env.update({"AZURE_SUBSCRIPTION_ID": "sub-1", "AZURE_RESOURCE_GROUP": "rg-course",
                    "AZURE_RESOURCE_NAME": "tutor-aoai", "AZURE_MANAGEMENT_TOKEN": TOKEN,
                    "AZURE_MANAGEMENT_URL": azure.endpoint})
    return env


def azure_settings(tmp_path, azure, deploy: bool = True):
    return make_settings(tmp_path / "app", **{k.lower(): v for k, v in azure_env(azure, deploy).items()
                                              if not k.startswith("TUTOR_")}, request_retries=2)


def start(settings, dataset, **values):
    backend = training_backend("azure", settings)
    config = backend.config({"train_file": dataset["train"], "validation_file": dataset["validation"],
                             "suffix": "recipes", "epochs": 2, **values})
    return backend.start(config, registry_for(settings), "local")


async def follow(run, settings):
    registry = registry_for(settings)
    return [e async for e in backend_of(run, settings).follow(registry.run(run.id), registry, poll=0.2)]


async def test_happy_path_to_a_deployment_and_a_chat_with_it(tmp_path, azure, dataset, caplog):
    caplog.set_level(logging.DEBUG)
    azure.http.fail_next = [429]  # the first upload is rate-limited: the client backs off and retries
    settings = azure_settings(tmp_path, azure)
    run = await asyncio.to_thread(start, settings, dataset)
    assert run.backend == "azure" and run.config["job_id"].startswith("ftjob-")
    assert azure.http.paths.count("POST /openai/files") == 3, "one retried upload, then the validation file"
    [created] = [r for r in azure.requests if r["path"] == "create_job"]
    assert created["query"] == {"api-version": "2025-04-01-preview"}
    assert created["body"]["model"] == BASE and created["body"]["suffix"] == "recipes"
    assert created["body"]["method"] == {"type": "supervised", "supervised": {"hyperparameters": {
        "n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": "auto"}}}

    events = await follow(run, settings)
    kinds = [e["type"] for e in events]
    assert {"status", "step", "eval", "checkpoint"} <= set(kinds) and kinds[-1] == "done"
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps == list(range(1, azure.steps + 1)), "each metric event once, in order"
    assert [e["model"] for e in events if e["type"] == "checkpoint"][0].startswith(f"{BASE}.ft-")
    done = events[-1]
    assert done["fine_tuned_model"].startswith(f"{BASE}.ft-") and done["deployment"] == run.id
    assert any("billed by the hour" in (e.get("message") or "") for e in events), "the hosting cost is explained"
    assert azure.deployments[run.id]["properties"]["model"]["name"] == done["fine_tuned_model"]

    registry = registry_for(settings)
    assert registry.run(run.id).status == "succeeded"
    [model] = registry.models()
    assert (model.kind, model.location, model.base_model) == ("azure", run.id, BASE)
    # The fine-tune answers through its deployment; the RAG baseline through the base model's deployment.
    azure.add_deployment("base-mini", BASE)
    tuned, rag = pair_for_run(registry, settings, run.id, "rag", k=2)
    recipe = Case(prompt='Title: Toast\n\nIngredients: ["2 slices bread"]\n\nGeneric ingredients: ', gold=["bread"])
    answer, usage = await tuned.answer(recipe)
    assert answer == '["flour"]' and usage["completion_tokens"] == 1
    baseline_answer, _ = await rag.answer(recipe)
    assert baseline_answer.startswith("[")
    assert [r["path"] for r in azure.requests if r["path"].startswith("chat/")] == [f"chat/{run.id}", "chat/base-mini"]

    stored = b"".join(path.read_bytes() for path in (tmp_path / "app").rglob("*") if path.is_file())
    shown = json.dumps(events) + caplog.text
    for secret in (KEY, TOKEN):
        assert secret not in shown and secret.encode() not in stored


async def test_a_file_azure_cannot_process_and_a_job_that_fails_server_side_are_explained(tmp_path, azure, dataset):
    settings = azure_settings(tmp_path, azure)
    azure.bad_files = True
    with pytest.raises(TutorError, match=r"Azure could not process train.jsonl \(error\): The file has 1 line"):
        await asyncio.to_thread(start, settings, dataset)
    assert [r.status for r in registry_for(settings).runs()] == ["failed"], "the failed start is on record"

    azure.bad_files, azure.fail_jobs_with = False, "Training file has too few examples for this model."
    run = await asyncio.to_thread(start, settings, dataset)
    events = await follow(run, settings)
    assert events[-1] == {"type": "error", "message": "The fine-tuning job failed on the provider's side: "
                                                      "Training file has too few examples for this model."}
    assert registry_for(settings).run(run.id).error == "Training file has too few examples for this model."

    with pytest.raises(TutorError, match="does not support fine-tuning"):
        await asyncio.to_thread(start, settings, dataset, model="davinci-002")
    with pytest.raises(ConfigError, match="Invalid Azure OpenAI fine-tuning settings: epochs must be 'auto'"):
        start(settings, dataset, epochs=0)


async def test_cancel_and_a_restart_while_the_job_runs(tmp_path, azure, dataset):
    azure.steps, azure.tick = 20, 0.3
    settings = azure_settings(tmp_path, azure)
    run = await asyncio.to_thread(start, settings, dataset)
    registry = registry_for(settings)
    # Follow until the first step, then drop the follower: the app went away while Azure trained.
    following = backend_of(run, settings).follow(registry.run(run.id), registry, poll=0.2)
    async for event in following:
        if event["type"] == "step":
            break
    await following.aclose()
    assert registry.run(run.id).status == "running"
    # A new process: nothing in memory but the registry. It follows the same job on, and cancels it.
    later = make_settings(tmp_path / "app", **settings.model_dump(exclude={"data_dir", "cache_dir"}))
    registry = registry_for(later)
    resumed = backend_of(registry.run(run.id), later)
    assert resumed.resume(registry.run(run.id), registry).status == "running", "resuming a running job follows it"
    again = resumed.follow(registry.run(run.id), registry, poll=0.2)
    steps = []
    async for event in again:
        if event["type"] == "step":
            steps.append(event["step"])
            if len(steps) == 3:
                await asyncio.to_thread(resumed.cancel, registry.run(run.id), registry)
        if event["type"] in ("done", "cancelled", "error"):
            last = event
    assert steps[0] == 1 and last == {"type": "cancelled"}
    assert azure.jobs[run.config["job_id"]]["status"] == "cancelled"
    assert registry.run(run.id).status == "cancelled" and registry.models() == []
    with pytest.raises(TutorError, match="can't be resumed"):
        resumed.resume(registry.run(run.id), registry)


def test_cli_without_deployment_settings_succeeds_explains_the_deploy_step_then_records_it(tmp_path, azure, dataset):
    from tests.helpers import run_tutor

    env = azure_env(azure, deploy=False)
    trained = run_tutor("train", "--backend", "azure", "--train", dataset["train"], "--val", dataset["validation"],
                        "--model", BASE, "--suffix", "cli", "--json", env_extra=env, tmp_path=tmp_path)
    assert trained.returncode == 0, trained.stderr
    printed = json.loads(trained.stdout)
    assert printed["status"] == "succeeded" and printed["backend"] == "azure"
    fine_tuned = printed["metrics"]["fine_tuned_model"]
    assert fine_tuned.startswith(f"{BASE}.ft-") and printed["metrics"]["deployment"] is None
    step = printed["metrics"]["next_step"]
    assert f"--model-name {fine_tuned}" in step and "Foundry portal" in step and "billed by the hour" in step
    assert azure.deployments == {}, "nothing is deployed without the control-plane settings"

    # Until it is deployed, chatting with it says what to do; then the learner names the deployment.
    evaluate = ("eval", "--model", printed["id"], "--data", dataset["test"], "--limit", "2", "--k", "2", "--json")
    undeployed = run_tutor(*evaluate, env_extra=env, tmp_path=tmp_path)
    assert undeployed.returncode == 1 and "no model to call yet" in json.loads(undeployed.stdout)["error"]
    azure.add_deployment("recipes-ft", fine_tuned)
    refused = run_tutor("jobs", "deployed", printed["id"], "../../evil", "--json", env_extra=env, tmp_path=tmp_path)
    assert refused.returncode == 1 and "deployment name" in json.loads(refused.stdout)["error"]
    recorded = run_tutor("jobs", "deployed", printed["id"], "recipes-ft", "--json", env_extra=env, tmp_path=tmp_path)
    assert recorded.returncode == 0, recorded.stderr
    assert json.loads(recorded.stdout)["metrics"]["deployment"] == "recipes-ft"
    assert "next_step" not in json.loads(recorded.stdout)["metrics"]

    # The evaluation asks the fine-tune's deployment and the base model's, with retrieved examples.
    azure.add_deployment("base-mini", BASE)
    evaluated = run_tutor(*evaluate, env_extra=env, tmp_path=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    systems = {s["system"]: s for s in json.loads(evaluated.stdout)["systems"]}
    assert set(systems) == {"fine-tuned", "rag"} and "base-mini" not in systems["fine-tuned"]["label"]
    asked = [r["path"] for r in azure.requests if r["path"].startswith("chat/")]
    assert sorted(set(asked)) == ["chat/base-mini", "chat/recipes-ft"] and len(asked) == 4
    for output in (trained, undeployed, refused, recorded, evaluated):
        assert KEY not in output.stdout + output.stderr


@pytest.fixture
def chat_env(monkeypatch, tmp_path, azure, request, indexed_data_dir):
    """The app's environment against Azure, on a copy of the session's knowledge index (a chat's warm-up builds
    the tutor: it finds the index up to date instead of embedding knowledge/ again)."""
    import shutil

    import assistant.tutor.service as service
    from tests.conftest import MODEL_CACHE
    from training.base.settings import get_settings

    shutil.copytree(indexed_data_dir, tmp_path / "app")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUTOR_DATA_DIR", str(tmp_path / "app"))
    monkeypatch.setenv("TUTOR_CACHE_DIR", str(MODEL_CACHE))
    for name, value in azure_env(azure, deploy=request.param).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    service._tutor = None
    get_settings.cache_clear()


async def recipe_reply(chat, run_button) -> dict:
    import chainlit as cl

    import assistant.chat.app as app
    from assistant.chat import training_flow
    from tests.chainlit_harness import user_says

    await training_flow.on_chat_with_model(cl.Action(name="chat_with_model", payload=run_button["payload"]))
    await app.on_message(user_says('Title: Toast\n\nIngredients: ["2 slices bread"]\n\nGeneric ingredients: '))
    return chat.messages[-1]


@pytest.mark.parametrize("chat_env", [True], indirect=True)
async def test_the_whole_flow_in_chat_to_a_deployment(chat_env, azure, caplog):

    import assistant.chat.app as app
    from assistant.chat import dataset_flow
    from assistant.chat.actions import PrepareRequest
    from assistant.web.accounts import LOCAL_LEARNER
    from tests.chainlit_harness import open_chat, start_billed_training

    caplog.set_level(logging.DEBUG)
    chat = open_chat()
    await dataset_flow.run_prepare(PrepareRequest(source="sample", train=12, validation=4, test=4, seed=1), LOCAL_LEARNER)
    assert [a["label"] for a in chat.actions_for(chat.messages[-1]["id"])] == [
        "Fine-tune locally", "Fine-tune with Azure OpenAI", "See what is trained"], "OpenAI is not configured, Azure is"
    _, confirm = await start_billed_training(chat, "/train azure epochs=2 suffix=chat", 120)
    assert "billed tokens" in confirm["output"] and "billed by the hour" in confirm["output"]
    assert f"base **{BASE}**" in confirm["output"] and "epochs 2" in confirm["output"]

    progress = next(m for m in chat.messages if m["output"].startswith("**Training `run-"))
    assert "training loss" in progress["output"] and "checkpoints:" in progress["output"]
    summary = chat.messages[-1]
    [run] = registry_for(app.get_settings()).runs()
    assert summary["output"].startswith(f"### ✅ Fine-tuned `{run.id}` with Azure OpenAI")
    assert f"| deployment | `{run.id}` |" in summary["output"] and "billed by the hour" in summary["output"]
    chat_button, _, explain_button = chat.actions_for(summary["id"])
    assert explain_button["label"] == "Explain my run"
    reply = await recipe_reply(chat, chat_button)
    assert reply["name"] == f"fine-tuned {run.id}" and reply["output"] == '["flour"]'
    assert any(r["path"] == f"chat/{run.id}" for r in azure.requests), "the chat went to the deployment"
    shown = caplog.text + json.dumps(chat.messages)
    assert KEY not in shown and TOKEN not in shown


@pytest.mark.parametrize("chat_env", [False], indirect=True)
async def test_without_deployment_settings_the_chat_says_how_and_takes_the_name(chat_env, azure, dataset):
    import assistant.chat.app as app
    from tests.chainlit_harness import open_chat, user_says

    settings = app.get_settings()
    run = await asyncio.to_thread(start, settings, dataset)
    chat = open_chat()  # the app restarted while Azure trained: the chat picks the job up
    await app.on_chat_start()
    [watching] = cl_session("watching")
    await asyncio.wait_for(watching, 120)
    summary = chat.messages[-1]
    assert "picked up after a restart" in " ".join(m["output"] for m in chat.messages)
    assert "az cognitiveservices account deployment create" in summary["output"] and "/deployed" in summary["output"]
    assert [a["label"] for a in chat.actions_for(summary["id"])] == ["Explain my run"], \
        "nothing to chat with before it is deployed"

    fine_tuned = registry_for(settings).run(run.id).metrics["fine_tuned_model"]
    azure.add_deployment("recipes-ft", fine_tuned)
    await app.on_message(user_says("/deployed ../../x"))
    assert "A deployment name is 2 to 64 letters" in chat.messages[-1]["output"]
    await app.on_message(user_says("/deployed recipes-ft", command="deployed"))
    recorded = chat.messages[-1]
    assert f"`{run.id}` answers through the deployment `recipes-ft`" in recorded["output"]
    reply = await recipe_reply(chat, chat.actions_for(recorded["id"])[0])
    assert reply["output"] == '["flour"]' and any(r["path"] == "chat/recipes-ft" for r in azure.requests)
    assert run_view.summary(registry_for(settings).run(run.id)).count("recipes-ft") == 2


def cl_session(key):
    import chainlit as cl

    return cl.user_session.get(key)


def test_shared_mode_names_only_deployments_of_the_learners_own_fine_tunes(tmp_path, azure):
    """A learner may record a deployment the control plane shows serving their own run's model, or one the
    instructor lists, never another learner's or an expensive base model's; a local install takes any name."""
    settings = azure_settings(tmp_path, azure).model_copy(update={"auth": "password"})
    registry = registry_for(settings)
    runs = {}
    for owner, model in (("u-ann", "gpt-4o-mini.ft-ann"), ("u-bob", "gpt-4o-mini.ft-bob")):
        run = registry.create_run("azure", {"model": BASE}, tmp_path / owner, status="succeeded",
                                  run_id=f"run-{owner}", owner=owner)
        runs[owner] = registry.update_run(run.id, metrics={"fine_tuned_model": model})
        azure.add_deployment(f"dep-{owner}", model)
    azure.add_deployment("gpt-4o-big", "gpt-4o")
    backend = backend_of(runs["u-bob"], settings)
    for name in ("dep-u-ann", "gpt-4o-big", "no-such-deployment"):
        with pytest.raises(TutorError, match="neither"):
            backend.deployed(runs["u-bob"], registry, name)
    assert backend.deployed(runs["u-bob"], registry, "dep-u-bob").metrics["deployment"] == "dep-u-bob"
    assert backend.deployed(runs["u-ann"], registry, "dep-u-ann").metrics["deployment"] == "dep-u-ann"
    listed = settings.model_copy(update={"azure_deployments": ["gpt-4o-big", "dep-u-ann"]})
    backend = backend_of(runs["u-bob"], listed, "uk")
    assert backend.deployed(runs["u-bob"], registry, "gpt-4o-big").metrics["deployment"] == "gpt-4o-big"
    with pytest.raises(TutorError, match="ні те, ні інше"):  # listed, but another learner's run answers through it
        backend.deployed(runs["u-bob"], registry, "dep-u-ann")
    local = backend_of(runs["u-bob"], settings.model_copy(update={"auth": "none"}))
    assert local.deployed(runs["u-bob"], registry, "dep-u-ann").metrics["deployment"] == "dep-u-ann"
