"""Quotas on a shared server, each hit with its sentence (English and Ukrainian) and nothing lost: a learner's
disk, their jobs in the queue, the settings' ranges, and the wall time per run (stopped as timed_out with its
checkpoint, resumable)."""

from pathlib import Path

import pytest

from assistant.web import uploads
from assistant.web.accounts import Learner, add_user
from tests.conftest import make_settings
from tests.helpers import make_run
from training.backends import local as jobs
from training.base import quotas
from training.base.registry import Registry
from training.jobs import events
from training.local.checkpoints import latest_checkpoint
from training.local.config import TrainConfig
from training.local.lora import train


@pytest.fixture
def shared(tmp_path):
    settings = make_settings(tmp_path / "data", auth="password", max_learner_gb=2 / 1024, max_queued_jobs=2)
    registry = Registry(settings.data_dir / "registry.sqlite")
    alice = add_user(registry, "alice", "correct horse")
    return settings, registry, Learner(alice.id, "alice")


def test_the_disk_quota_refuses_an_upload_and_keeps_what_is_there(shared, tmp_path):
    settings, registry, alice = shared
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"x" * 2**20)
    big.write_bytes(b"x" * (3 * 2**20 // 2))
    kept = uploads.keep(registry, settings, alice, "first.jsonl", str(small))
    with pytest.raises(quotas.Quota, match=r"would take 2\.5 MB of your 2\.0 MB"):
        uploads.keep(registry, settings, alice, "second.jsonl", str(big))
    with pytest.raises(quotas.Quota, match="видаліть якісь запуски"):
        uploads.keep(registry, settings, alice, "second.jsonl", str(big), language="uk")
    assert registry.files(alice.id) == [kept] and [p.name for p in (settings.data_dir / "uploads").iterdir()] == [
        Path(kept.path).name], "the refused upload is not kept, the first one is untouched"
    assert quotas.usage(settings, registry, alice.id) == 2**20
    local = settings.model_copy(update={"auth": "none"})  # one learner on their own machine: no quota
    assert uploads.keep(registry, local, alice, "second.jsonl", str(big)).bytes == len(big.read_bytes())


def test_the_queue_and_the_ranges_refuse_a_run_before_it_is_made(shared, data):
    settings, registry, alice = shared
    config = TrainConfig(train_file=str(data[0]), epochs=50, lora_r=256)
    with pytest.raises(quotas.Quota, match=r"On this server epochs can be at most 20 \(you asked for 50\)"):
        quotas.check_start(settings, registry, alice.id, config)
    with pytest.raises(quotas.Quota, match="lora_r може бути щонайбільше 64"):
        quotas.check_start(settings, registry, alice.id, config.model_copy(update={"epochs": 2}), language="uk")
    for n in range(2):
        registry.create_run("local", {}, settings.data_dir / "runs" / f"run-{n}", run_id=f"run-{n}", owner=alice.id)
    with pytest.raises(quotas.Quota, match="You have 2 training jobs waiting or running"):
        quotas.check_start(settings, registry, alice.id, TrainConfig(train_file=str(data[0])))
    assert len(registry.runs(alice.id)) == 2
    quotas.check_start(settings.model_copy(update={"auth": "none"}), registry, alice.id, config)  # local: no quota


def test_a_run_over_the_wall_time_stops_as_timed_out_with_its_checkpoint(tmp_path, data, tiny_model_dir,
                                                                      monkeypatch):
    from training.base.settings import get_settings

    monkeypatch.setenv("TUTOR_MAX_RUN_HOURS", str(1e-6))  # past after the first step
    get_settings.cache_clear()
    registry = Registry(tmp_path / "registry.sqlite")
    run_dir = make_run(tmp_path, data, tiny_model_dir, eval_generate_limit=0)
    registry.create_run("local", TrainConfig.load(run_dir / "config.json").to_dict(), run_dir, run_id=run_dir.name)
    try:
        result = train(run_dir, registry=registry)
    finally:
        get_settings.cache_clear()
    run = registry.run(run_dir.name)
    assert result == {"status": "timed_out", "step": 1} and run.status == "timed_out"
    assert latest_checkpoint(run_dir) is not None, "its last checkpoint is kept"
    last = events.read(run_dir)[0][-1]
    assert last["type"] == "cancelled" and last["reason"] == "timed_out"
    note = jobs.LocalLoRA(make_settings(tmp_path / "data", max_run_hours=6), "uk").describe_result(run)
    assert "межі цього сервера — 6 год" in note and f"tutor jobs resume {run.id}" in note
    monkeypatch.setattr("training.jobs.queue.launcher.launch", lambda *args: "1")
    assert jobs.resume(run, registry, make_settings(tmp_path / "data")).status in ("queued", "running")
