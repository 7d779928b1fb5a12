"""The machine a learner has: the estimate before Start against real CPU runs, the refusal of a run that won't fit,
QLoRA and gradient checkpointing settings, the precision the trainer picks, `tutor doctor`, and the app on a
platform without llama.cpp."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from assistant.cli.doctor import findings, report
from tests.conftest import MODEL_CACHE, make_settings
from tests.helpers import run_tutor
from training.backends.registry import training_backend
from training.base.registry import Registry
from training.data.prepare import prepare
from training.jobs import events
from training.local.config import ConfigError, TrainConfig
from training.local.estimate import GB, estimate


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("estimate-data")
    prepare("sample", folder, train=24, validation=4, test=0, seed=3)
    return folder


def trainer(run_dir: Path, base: str, batch: int, data: Path, **values) -> subprocess.Popen:
    """One real step of the trainer in its own process (its largest batch: the run's peak), started."""
    config = TrainConfig(train_file=str(data / "train.jsonl"), base_model=base, batch_size=batch,
                         epochs=batch / 24, eval_generate_limit=0, **values)
    config.save(run_dir / "config.json")
    # One thread each: four trainers side by side on a 2-core machine took twice as long with a thread per core.
    env = {**os.environ, "TUTOR_CACHE_DIR": str(MODEL_CACHE), "TUTOR_DATA_DIR": str(run_dir.parent),
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "training.local.lora", str(run_dir)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen, run_dir: Path) -> dict:
    """The run's last event once its trainer has exited."""
    _, errors = process.communicate(timeout=900)
    assert process.returncode == 0, errors[-2000:]
    return events.read(run_dir)[0][-1]


RUNS = [("tiny", 4), ("tiny", 8), ("embedded", 4), ("embedded", 8)]


@pytest.fixture(scope="module")
def measured(data, tmp_path_factory, tiny_model_dir, embedded_model_dir) -> dict:
    """The four runs' done events; their trainers run side by side (each process's peak is its own)."""
    folder = tmp_path_factory.mktemp("peaks")
    started = {}
    for model, batch in RUNS:
        run_dir = Path(tempfile.mkdtemp(dir=folder))
        started[model, batch] = trainer(run_dir, str(tiny_model_dir) if model == "tiny" else "embedded", batch, data), \
            run_dir
    return {key: finished(*pair) for key, pair in started.items()}


@pytest.mark.parametrize("model, batch", RUNS)
def test_the_memory_estimate_is_within_a_quarter_of_the_measured_peak(model, batch, data, measured, tmp_path,
                                                                      tiny_model_dir):
    base = str(tiny_model_dir) if model == "tiny" else "embedded"
    done = measured[model, batch]
    assert done["type"] == "done"
    config = TrainConfig(train_file=str(data / "train.jsonl"), base_model=base, batch_size=batch,
                         bf16="yes" if done["precision"] == "bf16" else "no")  # as its trainer measured and chose
    expected = estimate(config, make_settings(tmp_path), measure="no")
    peak = done["peak_memory_bytes"]
    assert 0.75 <= expected.memory.total / peak <= 1.25, (
        f"estimated {expected.memory.total / GB:.2f} GB, measured {peak / GB:.2f} GB ({expected.memory})")


def test_a_run_estimated_not_to_fit_is_refused_before_the_trainer_starts(data, tmp_path, tiny_model_dir, monkeypatch):
    from training.backends.local import start_local

    settings = make_settings(tmp_path / "data", train_memory_gb=0.3, base_model=str(tiny_model_dir))
    registry = Registry(tmp_path / "registry.sqlite")
    config = TrainConfig(train_file=str(data / "train.jsonl"), base_model=str(tiny_model_dir))
    launched = []
    monkeypatch.setattr("training.jobs.queue.launcher.launch", lambda *args: launched.append(args))
    with pytest.raises(ConfigError, match=r"This run won't fit: it needs about [\d.]+ GB and 0.3 GB are free on the "
                                          r"CPU\. To make it fit, .+\."):
        start_local(config, settings.data_dir, registry, settings=settings)
    with pytest.raises(ConfigError, match="Цей запуск не поміститься"):
        start_local(config, settings.data_dir, registry, settings=settings, language="uk")
    assert registry.runs() == [] and not launched and not (settings.data_dir / "runs").exists()

    # The one change it names makes the run fit (here a smaller batch: the answers' logits are most of it).
    roomy = make_settings(tmp_path / "data", train_memory_gb=0.9, base_model=str(tiny_model_dir))
    found = estimate(config.model_copy(update={"batch_size": 64}), roomy, measure="no")
    assert not found.fits and found.fix["key"] == "fix.batch" and found.fix["config"]["batch_size"] < 64, found.describe()
    fixed = estimate(config.model_copy(update={"batch_size": 64, **found.fix["config"]}), roomy, measure="no")
    assert fixed.fits, fixed.describe()


def test_dry_run_json_estimates_before_any_work(data, tmp_path, tiny_model_dir):
    args = ("train", "--train", str(data / "train.jsonl"), "--base-model", str(tiny_model_dir), "--batch-size", "4",
            "--dry-run", "--json")
    result = run_tutor(*args, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["fits"] is True and found["peak_memory_bytes"] == sum(
        found["memory"][part] for part in ("runtime", "weights", "adapter", "activations"))
    assert found["time"]["source"] in ("measured", "previous") and found["time"]["seconds"] > 0
    assert found["shape"]["batch"] == 4 and found["text"].endswith("it fits.")
    assert not (tmp_path / "data" / "runs").exists(), "a dry run starts nothing"

    small = run_tutor(*args, env_extra={"TUTOR_TRAIN_MEMORY_GB": "0.3"}, tmp_path=tmp_path)
    assert small.returncode == 1 and json.loads(small.stdout)["fits"] is False
    assert "won't fit" in json.loads(small.stdout)["text"]

    config = TrainConfig(train_file=str(data / "train.jsonl"), base_model=str(tiny_model_dir), batch_size=4)
    on_gpu = estimate(config, make_settings(tmp_path / "data"), gpu="RTX 4090")  # a GPU that is not here
    assert on_gpu.fits and on_gpu.memory.available == 24 * GB and on_gpu.time.source == "table"
    assert "of the 24.0 GB free on the CUDA" in on_gpu.describe() and "datasheet" in on_gpu.describe()


def test_qlora_and_checkpointing_are_validated_refused_where_impossible_and_recorded(data, tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError, match=r"method qlora keeps the base model in 4 bits .* needs an NVIDIA GPU \(CUDA\); "
                                          r"this machine trains on the CPU: choose method=lora"):
        TrainConfig(train_file="x", method="qlora")
    with pytest.raises(ConfigError, match="method qlora тримає базову модель у 4 бітах"):
        training_backend("local", make_settings(tmp_path), "uk").learner_settings({"method": "qlora"}, {"train": "t"})
    with pytest.raises(ConfigError, match="method must be 'lora' or 'qlora'"):
        TrainConfig(train_file="x", method="dora")
    with pytest.raises(ConfigError, match="gradient_checkpointing must be a valid boolean"):
        TrainConfig(train_file="x", gradient_checkpointing="sometimes")

    run_dir = Path(tempfile.mkdtemp(dir=tmp_path))
    done = finished(trainer(run_dir, str(tiny_model_dir), 4, data, gradient_checkpointing=True), run_dir)
    start = next(e for e in events.read(run_dir)[0] if e["type"] == "start")
    assert done["type"] == "done" and start["gradient_checkpointing"] is True and start["method"] == "lora"
    assert start["attention"] == "sdpa" and start["precision_reason"]
    assert TrainConfig.load(run_dir / "config.json").gradient_checkpointing is True


def test_the_trainer_keeps_fp32_where_bf16_is_slower():
    """oneDNN held to AVX2 has no bf16 instructions: a bf16 product is emulated, as on an AVX2-only EPYC."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    done = subprocess.run([sys.executable, "-m", "training.base.hardware"], env=env, capture_output=True, text=True,
                          timeout=300)
    chosen = json.loads(done.stdout)["precision"]
    assert chosen["dtype"] == "fp32" and chosen["bf16_speedup"] < 1 and "fp32 is kept" in chosen["reason"]


def test_doctor_json_and_its_advice_without_bf16(tmp_path):
    result = run_tutor("doctor", "--json", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert set(found) == {"machine", "precision", "qlora", "runtime", "embedded_model", "cached_models", "disk",
                          "findings"}
    assert {"python", "platform", "architecture", "cpu_features", "gpus", "mps", "device", "torch_cpu_capability",
            "memory_bytes"} <= set(found["machine"])
    assert found["runtime"]["name"] == "llama.cpp" and found["embedded_model"] is True
    assert found["disk"]["data_dir"] == str(tmp_path / "data") and found["disk"]["free_bytes"] > 0
    assert {f["topic"] for f in found["findings"]} >= {"python", "platform", "cpu", "precision", "gpu", "runtime",
                                                      "models", "disk", "memory"}

    here = report(make_settings(tmp_path / "data"))  # the same machine, told it has no bf16 and kept to fp32
    here.machine.cpu_features = ["avx2", "fma"]
    here.precision = here.precision.model_copy(update={"dtype": "fp32", "reason": "measured 0.12x"})
    [advice] = [f for f in findings(here) if f.topic == "precision"]
    assert advice.status == "note" and "no bf16 instructions" in advice.detail and "fp32 is the right choice" in advice.fix


def test_without_llama_cpp_the_app_answers_on_transformers_and_says_so(tmp_path, indexed_data_dir, embedded_model_dir):
    """Where cyllama has no wheel (Linux aarch64, say) its import fails: the engine runs the embedded model on
    transformers, and `tutor doctor` says which runtime it uses."""
    import shutil

    blocked = tmp_path / "no-cyllama" / "cyllama"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('no cyllama wheel for this platform')\n")
    shutil.copytree(indexed_data_dir, tmp_path / "data")
    env = {"PYTHONPATH": str(blocked.parent)}
    doctor = run_tutor("doctor", "--json", env_extra=env, tmp_path=tmp_path)
    assert json.loads(doctor.stdout)["runtime"]["name"] == "transformers", doctor.stderr[-2000:]
    answer = run_tutor("ask", "What is LoRA?", "--json", env_extra=env, tmp_path=tmp_path)
    assert answer.returncode == 0, answer.stderr[-2000:]
    payload = json.loads(answer.stdout)
    assert "low-rank" in payload["answer"].lower() and payload["sources"][0]["path"] == "knowledge/lora-qlora-peft.md"
