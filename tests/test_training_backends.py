"""Training backends are plugins: a fake service registered with the same decorator as the built-in backends is
started, followed, shown and cancelled from the CLI, and offered, set up (form and typed settings), started and
summarised in chat, with nothing in the CLI, the chat or the job layer naming it; a bad value is refused with
its field's name; an unknown backend lists the ones there are."""

import json

import pytest
from typer.testing import CliRunner

from assistant.cli import main as cli
from tests.helpers import FakeJobConfig
from training.backends.registry import (
    TrainingBackend,
    register_training_backend,
    training_backend,
    training_backend_names,
    unregister_training_backend,
)
from training.base.registry import registry_for
from training.base.settings import get_settings


class FakeService(TrainingBackend):
    """A provider that trains in two steps the moment it is followed."""

    name, label, Config = "fake-service", "Fake service", FakeJobConfig
    calls: list[tuple] = []

    def start(self, config, registry, owner):
        run_dir = self.settings.data_dir / "runs" / "run-fake-1"
        run_dir.mkdir(parents=True)
        self.calls.append(("start", config.epochs, owner))
        return registry.create_run(self.name, config.model_dump(), run_dir, status="running", run_id="run-fake-1",
                                   owner=owner)

    async def follow(self, run, registry, poll=0.5):
        yield {"type": "status", "status": "running"}
        yield {"type": "step", "step": 1, "total_steps": 2, "loss": 0.5}
        registry.update_run(run.id, status="succeeded", metrics={"final_loss": 0.25})
        yield {"type": "done", "final_loss": 0.25, "steps": 2}

    def cancel(self, run, registry):
        self.calls.append(("cancel", run.id))
        return registry.update_run(run.id, status="cancelled")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUTOR_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    FakeService.calls.clear()
    register_training_backend(FakeService)  # the hook a plugin uses, as a decorator or a call
    yield tmp_path / "data"
    unregister_training_backend(FakeService.name)
    get_settings.cache_clear()


def tutor(*args: str):
    return CliRunner().invoke(cli.app, list(args))


def test_the_built_in_backends_register_like_any_other(data_dir):
    assert {"local", "openai", "azure", "fake-service"} <= set(training_backend_names())
    assert type(training_backend("local", get_settings())).__module__ == "training.backends.local"
    assert type(training_backend("openai", get_settings())).__module__ == "training.backends.openai_api"
    assert type(training_backend("azure", get_settings())).__module__ == "training.backends.azure"


async def test_a_registered_backend_is_offered_set_up_started_and_summarised_in_chat(data_dir):
    import asyncio

    import chainlit as cl

    import assistant.chat.app as app
    from assistant.chat import dataset_flow, training_flow
    from assistant.chat.actions import PrepareRequest
    from assistant.web.accounts import LOCAL_LEARNER
    from tests.chainlit_harness import open_chat, user_says

    chat = open_chat()
    await dataset_flow.run_prepare(PrepareRequest(source="sample", train=12, validation=4, test=4, seed=1),
                                   LOCAL_LEARNER)
    offered = {a["label"]: a["payload"] for a in chat.actions_for(chat.messages[-1]["id"])}
    assert offered["Fine-tune with Fake service"]["backend"] == "fake-service"

    # The settings form: the backend's learner fields, pre-filled with their defaults and explained.
    [epochs] = [w for w in training_flow.form_widgets(get_settings()) if w.id.startswith("train.fake-service.")]
    assert (epochs.id, epochs.initial, epochs.description) == ("train.fake-service.epochs", "1.0",
                                                               "Passes over the data.")
    await app.on_settings_update({"train.fake-service.epochs": "50"})
    assert "epochs must be less than or equal to 10" in chat.messages[-1]["output"]
    await app.on_settings_update({"train.fake-service.epochs": "3"})
    await app.on_message(user_says("/train fake-service", command="train"))
    assert "epochs **3.0**" in chat.messages[-1]["output"], "the form's value is the job's setting"
    # A typed setting wins over the form's; the button carries it typed.
    await app.on_message(user_says("/train fake-service epochs=2", command="train"))
    [pick] = chat.actions_for(chat.messages[-1]["id"])
    assert pick["payload"]["settings"] == {"epochs": 2.0}
    await training_flow.on_finetune(cl.Action(name="finetune", payload=pick["payload"]))
    await asyncio.wait_for(cl.user_session.get("training_job"), 30)
    assert FakeService.calls == [("start", 2.0, "local")]
    summary = chat.messages[-1]["output"]
    assert summary.startswith("### ✅ Fine-tuned `run-fake-1` with Fake service") and "| final training loss | 0.2500 |" in summary


def test_a_registered_backend_is_driven_from_the_cli(data_dir, tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text('{"messages": []}\n')
    nobody = tutor("train", "--backend", "fake-service", "--train", str(train), "--owner", "alice", "--json")
    assert nobody.exit_code == 1 and "No account named alice" in nobody.output and not FakeService.calls
    alice = registry_for(get_settings()).add_user("alice", None).id  # --owner names an account: its id owns
    done = tutor("train", "--backend", "fake-service", "--train", str(train), "--epochs", "2", "--owner", "alice",
                 "--json")
    assert done.exit_code == 0, done.output
    printed = json.loads(done.stdout)
    assert (printed["id"], printed["backend"], printed["status"], printed["owner"]) == (
        "run-fake-1", "fake-service", "succeeded", alice)
    assert printed["metrics"] == {"final_loss": 0.25} and FakeService.calls == [("start", 2.0, alice)]

    registry_for(get_settings()).update_run("run-fake-1", status="running")
    cancelled = tutor("jobs", "cancel", "run-fake-1", "--json")
    assert cancelled.exit_code == 0, cancelled.output
    assert json.loads(cancelled.stdout)["status"] == "cancelled" and FakeService.calls[-1] == ("cancel", "run-fake-1")


def test_bad_values_and_unknown_backends_are_one_clear_line(data_dir, tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text('{"messages": []}\n')
    too_many = tutor("train", "--backend", "fake-service", "--train", str(train), "--epochs", "50", "--json")
    assert too_many.exit_code == 1 and "epochs" in json.loads(too_many.stdout)["error"]
    unknown = tutor("train", "--backend", "nope", "--train", str(train), "--json")
    message = json.loads(unknown.stdout)["error"]
    assert unknown.exit_code == 1 and "Unknown training backend 'nope'" in message and "fake-service" in message
    assert FakeService.calls == []
