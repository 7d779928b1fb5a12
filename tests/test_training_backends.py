"""Training backends are plugins: a fake service registered with the same decorator as the built-in backends is
started, followed, shown and cancelled from the CLI, with nothing in the CLI or the job layer naming it; a bad
value is refused with its field's name; an unknown backend lists the ones there are."""

import json

import pytest
from pydantic import BaseModel, ConfigDict, Field
from typer.testing import CliRunner

from assistant import cli
from training.backends import TrainingBackend, register_training_backend, training_backend, training_backend_names
from training.registry import registry_for
from training.settings import get_settings


class FakeJobConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    train_file: str
    epochs: float = Field(1.0, gt=0, le=10)


@register_training_backend
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
        registry.update_run(run["id"], status="succeeded", metrics={"final_loss": 0.25})
        yield {"type": "done", "final_loss": 0.25, "steps": 2}

    def cancel(self, run, registry):
        self.calls.append(("cancel", run["id"]))
        return registry.update_run(run["id"], status="cancelled")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTOR_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    FakeService.calls.clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def tutor(*args: str):
    return CliRunner().invoke(cli.app, list(args))


def test_the_built_in_backends_register_like_any_other():
    assert {"local", "openai", "fake-service"} <= set(training_backend_names())
    assert type(training_backend("local", get_settings())).__module__ == "training.jobs"
    assert type(training_backend("openai", get_settings())).__module__ == "training.openai_jobs"


def test_a_registered_backend_is_driven_from_the_cli(data_dir, tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text('{"messages": []}\n')
    done = tutor("train", "--backend", "fake-service", "--train", str(train), "--epochs", "2", "--owner", "alice",
                 "--json")
    assert done.exit_code == 0, done.output
    run = json.loads(done.stdout)
    assert (run["id"], run["backend"], run["status"], run["owner"]) == ("run-fake-1", "fake-service", "succeeded",
                                                                        "alice")
    assert run["metrics"] == {"final_loss": 0.25} and FakeService.calls == [("start", 2.0, "alice")]

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
