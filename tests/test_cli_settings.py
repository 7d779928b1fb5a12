"""`tutor train`'s settings options are generated from the backends' Configs: every field is an option, under its
own name and its short names, with the flags learners typed before; the values reach the backend's Config,
which refuses a bad one with one sentence naming its field, as it does for the chat's form."""

import json

import pytest
from typer.testing import CliRunner

from assistant.cli import main as cli
from tests.helpers import run_record
from training.backends.local import LocalLoRA
from training.backends.openai_api import OpenAIJobs
from training.backends.registry import training_backend_configs
from training.base.settings import get_settings

# Every flag `tutor train` took before its options were generated.
FLAGS = ("--train", "--val", "--backend", "--base-model", "--model", "--suffix", "--lr-multiplier", "--auto",
         "--epochs", "--lr", "--r", "--alpha", "--dropout", "--target-modules", "--max-length", "--batch-size",
         "--grad-accum", "--seed", "--save-every", "--eval-generate", "--method", "--gradient-checkpointing",
         "--no-gradient-checkpointing", "--dry-run", "--gpu", "--owner", "--detach", "--json")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TUTOR_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


@pytest.fixture
def train_file(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"messages": []}\n')
    return str(path)


def train_options() -> set[str]:
    import typer.main

    command = typer.main.get_command(cli.app).commands["train"]
    return {flag for param in command.params for flag in param.opts + param.secondary_opts}


def started(monkeypatch, backend) -> list:
    """The configs `backend` is asked to start (nothing starts)."""
    seen = []

    def start(self, config, registry, owner):
        seen.append(config)
        return run_record(id="run-cli", backend=self.name, run_dir="runs/run-cli")

    monkeypatch.setattr(backend, "start", start)
    return seen


def tutor(*args: str):
    return CliRunner().invoke(cli.app, ["train", *args, "--detach", "--json"])


def test_every_config_field_is_an_option_and_every_earlier_flag_stays(data_dir):
    options = train_options()
    assert set(FLAGS) <= options, set(FLAGS) - options
    for name, config in training_backend_configs().items():
        for field in config.model_fields:
            assert f"--{field.replace('_', '-')}" in options, (name, field)


def test_short_and_long_flags_reach_the_local_config(data_dir, monkeypatch, train_file):
    seen = started(monkeypatch, LocalLoRA)
    result = tutor("--train", train_file, "--lr", "5e-4", "--r", "4", "--lora-alpha", "8", "--grad-accum", "2",
                   "--eval-generate", "3", "--epochs", "1.5", "--batch-size", "2", "--modules", "q_proj,v_proj",
                   "--gradient-checkpointing", "--warmup-ratio", "0.1", "--bf16", "no")
    assert result.exit_code == 0, result.output
    [config] = seen
    assert (config.train_file, config.learning_rate, config.lora_r, config.lora_alpha, config.gradient_accumulation,
            config.eval_generate_limit, config.epochs, config.batch_size, config.target_modules,
            config.gradient_checkpointing, config.warmup_ratio, config.bf16) == (
        train_file, 5e-4, 4, 8, 2, 3, 1.5, 2, ["q_proj", "v_proj"], True, 0.1, "no")
    assert json.loads(result.stdout)["id"] == "run-cli"
    assert tutor("--train", train_file).exit_code == 0 and seen[-1] == LocalLoRA.Config(train_file=train_file), \
        "unset options take the Config's defaults"


def test_a_shared_option_reaches_each_backend_by_its_own_field(data_dir, monkeypatch, train_file):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    get_settings.cache_clear()
    seen = started(monkeypatch, OpenAIJobs)
    result = tutor("--backend", "openai", "--train", train_file, "--epochs", "3", "--batch-size", "auto",
                   "--lr-multiplier", "0.5", "--suffix", "recipes", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert seen[0].hyperparameters() == {"n_epochs": 3, "batch_size": "auto", "learning_rate_multiplier": 0.5}
    assert (seen[0].suffix, seen[0].seed) == ("recipes", 7)
    assert tutor("--backend", "openai", "--train", train_file, "--epochs", "3", "--auto").exit_code == 0
    assert seen[1].n_epochs == "auto", "--auto lets the provider pick, whatever else was given"


@pytest.mark.parametrize(("flags", "field"), [(("--r", "0"), "lora_r"), (("--epochs", "many"), "epochs"),
                                              (("--method", "full"), "method"), (("--lr", "0.5"), "learning_rate")])
def test_a_bad_value_is_one_sentence_naming_its_field(data_dir, monkeypatch, train_file, flags, field):
    seen = started(monkeypatch, LocalLoRA)
    result = tutor("--train", train_file, *flags)
    assert result.exit_code == 1 and not seen
    error = json.loads(result.stdout)["error"]
    assert error.startswith("Invalid training settings: ") and field in error and "\n" not in error
