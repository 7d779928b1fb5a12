"""The training queue with real trainer processes on a tiny model: a limit, fair turns, cancel while queued, a
queue that survives restarts; and the trainer's own safety (a lost lock, a corrupt event line, a full disk)."""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import make_run, run_record, wait_for
from training.backends import local as jobs
from training.base.records import Run
from training.base.registry import Registry
from training.jobs import events, queue
from training.local.config import TrainConfig


def config(data, tiny_model_dir, **overrides) -> TrainConfig:
    values = dict(train_file=str(data[0]), validation_file=str(data[1]), base_model=str(tiny_model_dir), epochs=1,
                  batch_size=8, learning_rate=1e-3, save_every=2, eval_generate_limit=0, bf16="no")
    return TrainConfig(**{**values, **overrides})


def run(owner: str, queued_at: float, status: str = "queued", started_at: float | None = None) -> Run:
    return run_record(id=f"run-{owner}-{queued_at}", owner=owner, status=status, queued_at=queued_at,
                      created_at=queued_at, started_at=started_at)


def test_owners_take_turns():
    a1, a2, a3, b1 = run("alice", 1), run("alice", 2), run("alice", 3), run("bob", 4)
    assert [r.id for r in queue.fair_order([a1, a2, a3, b1], [], {})] == [a1.id, b1.id, a2.id, a3.id]
    # Alice has a job running: Bob, who queued last, starts next.
    assert queue.fair_order([a2, a3, b1], [run("alice", 0, "running")], {"alice": 10})[0] == b1
    # Both idle: whoever started a job longest ago goes first.
    assert queue.fair_order([a2, b1], [], {"alice": 50, "bob": 20})[0] == b1


def test_dispatching_at_once_never_exceeds_the_limit(tmp_path):
    """Two dispatchers race (think the app and `tutor serve`): the registry transaction lets one start a run."""
    registry = Registry(tmp_path / "registry.sqlite")
    for index in range(3):
        registry.create_run("local", {}, tmp_path / f"r{index}", run_id=f"run-{index}")
    started = []

    class SlowLauncher:
        def launch(self, run, registry, limit):
            time.sleep(0.2)  # a slow start widens any race
            started.append(run.id)
            return "1"

        def alive(self, handle):
            return True

        def stop(self, handle, grace):
            pass

    threads = [threading.Thread(target=queue.dispatch, args=(registry, 1, SlowLauncher())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert started == ["run-0"] and [r.status for r in registry.runs()].count("running") == 1


def test_a_queued_run_counts_the_memory_of_the_trainer_it_waits_for(tmp_path):
    """Every slot busy: the run starts only after a trainer ends, so that trainer's memory is counted as free."""
    registry = Registry(tmp_path / "registry.sqlite")
    holder = subprocess.Popen([sys.executable, "-c", "import sys; block = bytearray(300 * 2**20); sys.stdin.read()"],
                              stdin=subprocess.PIPE)
    try:
        registry.create_run("local", {}, tmp_path / "r0", status="running", run_id="run-0")
        registry.update_run("run-0", handle=str(holder.pid))
        import psutil

        wait_for(lambda: psutil.Process(holder.pid).memory_info().rss > 300 * 2**20, 120)
        assert queue.reclaimable_memory(registry, limit=1) > 300 * 2**20
        assert queue.reclaimable_memory(registry, limit=2) == 0  # a free slot: it would start beside the trainer
    finally:
        holder.kill()
        holder.wait()
    assert queue.reclaimable_memory(registry, limit=1) == 0  # a trainer that is gone holds nothing


def test_three_jobs_with_a_limit_of_one_run_one_at_a_time_in_order(tmp_path, data, tiny_model_dir):
    registry = Registry(tmp_path / "data" / "registry.sqlite")
    started = [jobs.start_local(config(data, tiny_model_dir, seed=i), tmp_path / "data", registry, limit=1)
               for i in range(3)]
    assert [r.status for r in started] == ["running", "queued", "queued"]
    assert queue.positions(registry) == {started[1].id: (1, 2), started[2].id: (2, 2)}
    # Nobody follows them: each trainer starts the next on its way out.
    finished = wait_for(lambda: all(registry.run(r.id).status == "succeeded" for r in started) and
                        [registry.run(r.id) for r in started], timeout=240)
    spans = []
    for record in finished:
        seen, _ = events.read(Path(record.run_dir))
        spans.append((seen[0]["time"], seen[-1]["time"]))
    assert [r.started_at for r in finished] == sorted(r.started_at for r in finished), "started in order"
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(2)), f"two trainers overlapped: {spans}"


def test_a_queued_job_can_be_cancelled_and_the_queue_survives_a_restart(tmp_path, data, tiny_model_dir):
    registry = Registry(tmp_path / "data" / "registry.sqlite")
    first = jobs.start_local(config(data, tiny_model_dir, epochs=200, batch_size=2), tmp_path / "data", registry,
                             limit=1)
    second = jobs.start_local(config(data, tiny_model_dir), tmp_path / "data", registry, limit=1)
    third = jobs.start_local(config(data, tiny_model_dir), tmp_path / "data", registry, limit=1)
    cancelled = jobs.cancel(registry.run(second.id), registry)
    assert cancelled.status == "cancelled" and cancelled.handle is None
    assert not (Path(second.run_dir) / "events.jsonl").exists(), "a queued job never started"
    assert queue.positions(registry) == {third.id: (1, 1)}

    # The app and its trainer die (SIGKILL, no final word). A new process finds the queue in the registry.
    wait_for(lambda: events.read(Path(first.run_dir))[0])
    os.killpg(int(registry.run(first.id).handle), signal.SIGKILL)
    wait_for(lambda: not queue.process_alive(registry.run(first.id).handle))
    restarted = Registry(tmp_path / "data" / "registry.sqlite")
    assert queue.dispatch(restarted, 1) == [third.id]
    assert restarted.run(first.id).status == "interrupted"
    wait_for(lambda: restarted.run(third.id).status == "succeeded", timeout=120)
    assert restarted.run(second.id).status == "cancelled"


def test_a_trainer_that_loses_the_lock_leaves_the_run_alone(tmp_path, data, tiny_model_dir):
    registry = Registry(tmp_path / "registry.sqlite")
    run_dir = make_run(tmp_path, data, tiny_model_dir)
    registry.create_run("local", {}, run_dir, status="running", run_id=run_dir.name)
    (run_dir / "events.jsonl").write_text(json.dumps({"type": "start", "time": 1.0, "total_steps": 12}) + "\n")
    holder = subprocess.Popen([sys.executable, "-c", "import time; from pathlib import Path; from training.local.lora import "
                               f"RunLock; RunLock(Path({str(run_dir)!r})).__enter__(); print('locked', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        registry.update_run(run_dir.name, handle=str(holder.pid))  # the run's real trainer
        before = (registry.run(run_dir.name), (run_dir / "events.jsonl").read_bytes())
        second = subprocess.run([sys.executable, "-m", "training.local.lora", str(run_dir), "--registry",
                                 str(registry.path)], capture_output=True, text=True, timeout=120)
        assert second.returncode == 3 and "in use by process" in second.stderr
        assert (registry.run(run_dir.name), (run_dir / "events.jsonl").read_bytes()) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_corrupt_event_line_is_skipped_and_reported(tmp_path):
    registry = Registry(tmp_path / "registry.sqlite")
    run_dir = tmp_path / "run-x"
    run_dir.mkdir()
    registry.create_run("local", {}, run_dir, status="running", run_id="run-x")
    lines = [json.dumps({"type": "start", "time": 1, "total_steps": 2}), '{"type": "step", "ti', "[1, 2]",
             json.dumps({"type": "step", "time": 2, "step": 1, "loss": 1.0}),
             json.dumps({"type": "done", "time": 3, "steps": 2})]
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n")

    async def follow():
        return [e async for e in jobs.follow(registry.run("run-x"), registry, poll=0.05)]

    seen = asyncio.run(follow())
    assert [e.type for e in seen] == ["start", "status", "status", "step", "done"]
    assert seen[1].level == "warning"
    assert "Skipped a corrupt line in events.jsonl" in seen[1].message


def _unshare_works() -> bool:
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(shutil.which("unshare") is None or not _unshare_works(),
                    reason="needs unshare (user and mount namespaces) to give the trainer a tiny disk")
def test_a_full_disk_is_recorded_on_the_run_with_what_to_do(tmp_path, data, tiny_model_dir):
    """The run's checkpoints go to a 64 KB tmpfs: the first checkpoint fills it. The run is recorded as failed,
    with the reason and the remedy, in the registry and as its final event."""
    registry = Registry(tmp_path / "registry.sqlite")
    run_dir = make_run(tmp_path, data, tiny_model_dir)
    registry.create_run("local", {}, run_dir, status="running", run_id=run_dir.name)
    (run_dir / "checkpoints").mkdir()
    script = (f"mount -t tmpfs -o size=64k tmpfs {run_dir / 'checkpoints'} && exec {sys.executable} -m training.local.lora "
              f"{run_dir} --registry {registry.path}")
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=180,
                            cwd=Path(__file__).resolve().parents[1])
    record = registry.run(run_dir.name)
    assert result.returncode != 0 and record.status == "failed", result.stderr[-2000:]
    assert record.error == "The disk is full: free some space, then resume the run from its last checkpoint."
    last = events.read(run_dir)[0][-1]
    assert (last["type"], last["message"]) == ("error", record.error)
