"""The training queue: at most N local trainers at once; the rest wait in the registry and are taken fairly.

A local run is created `queued`. `dispatch()` starts queued runs while fewer than the limit are running,
owners taking turns: the owner with the fewest running jobs goes next, then the one who started a job
longest ago, so one learner's ten jobs cannot fill the machine. Counting, choosing and starting happen
in one registry transaction, so two processes dispatching at once never exceed the limit. Everyone
who changes the queue calls dispatch: a new or resumed job, a trainer on its way out, the app and
`tutor serve` every few seconds, and a follower of a queued run (so a killed trainer frees its slot).

The limit is TUTOR_MAX_TRAINING_JOBS (default: the number of CUDA GPUs, else 1). Trainers are started
by a `Launcher`, one small interface: the built-in one runs a local process; a cluster scheduler
(Ray Jobs, Slurm) can take its place by implementing the same three calls.

    python -m training.jobs.queue DATA_DIR/registry.sqlite     # the queue in start order, with positions
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

from training.base.records import Run
from training.base.registry import Registry
from training.base.settings import PROJECT_ROOT
from training.jobs.events import ended

LIMIT_VARIABLE = "TUTOR_MAX_TRAINING_JOBS"
# Trainers the launcher starts run at this niceness: chat answers first, training takes what questions leave.
# A trainer run by hand (or under `accelerate launch`) keeps its caller's priority.
NICENESS_VARIABLE, NICENESS = "TUTOR_TRAINER_NICENESS", 10
_children: list[subprocess.Popen] = []  # trainers this process started, reaped without a waiting thread


class Launcher(Protocol):
    """Starts, checks and stops trainers; a handle is whatever identifies one (a pid here, a job id on a cluster)."""

    def launch(self, run: Run, registry: Registry, limit: int) -> str: ...

    def alive(self, handle: str | None) -> bool: ...

    def stop(self, handle: str, grace: float) -> None: ...


def process_alive(pid: int | str | None) -> bool:
    """True while `pid` is a live trainer (not a zombie, not a reused pid running something else)."""
    if not pid:
        return False
    pid = int(pid)
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():  # no procfs (macOS): existence is all we can check
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    return state not in ("Z", "X") and b"training.local.lora" in command


def reap() -> None:
    """Collect the exit status of trainers this process started that have ended (no zombies, no threads)."""
    _children[:] = [child for child in _children if child.poll() is None]


class LocalProcessLauncher:
    """Each trainer is `python -m training.local.lora RUN_DIR` in its own session: it outlives the app, is killed
    with its process group, and frees its memory on exit."""

    def launch(self, run: Run, registry: Registry, limit: int) -> str:
        run_dir = Path(run.run_dir)
        # --resume continues from the newest checkpoint when there is one (a resumed run); else it starts.
        command = [sys.executable, "-m", "training.local.lora", str(run_dir), "--registry", str(registry.path), "--resume"]
        with open(run_dir / "train.log", "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, cwd=PROJECT_ROOT,
                                       env={**os.environ, LIMIT_VARIABLE: str(limit), NICENESS_VARIABLE: str(NICENESS)})
        _children.append(process)
        deadline = time.time() + 10  # until the child has exec'd, it does not look like a trainer to `alive`
        while not process_alive(process.pid) and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        return str(process.pid)

    def alive(self, handle: str | None) -> bool:
        reap()
        return process_alive(handle)

    def stop(self, handle: str, grace: float) -> None:
        """SIGTERM (the trainer checkpoints, then stops), SIGKILL after `grace` seconds."""
        pid = int(handle)
        if not self.alive(handle):
            return
        os.killpg(pid, signal.SIGTERM)
        deadline = time.time() + grace
        while self.alive(handle) and time.time() < deadline:
            time.sleep(0.2)
        if self.alive(handle):
            os.killpg(pid, signal.SIGKILL)


launcher: Launcher = LocalProcessLauncher()


def default_limit() -> int:
    """TUTOR_MAX_TRAINING_JOBS, else one trainer per CUDA GPU, else 1."""
    if value := os.environ.get(LIMIT_VARIABLE, "").strip():
        return max(1, int(value))
    from training.base.common import gpu_count

    return max(1, gpu_count())


def fair_order(queued: list[dict], running: list[dict], started: dict[str, float]) -> list[dict]:
    """The queued runs in the order they will start: owners take turns, fewest running first, then the
    one whose last start is oldest; each owner's own runs start in the order they were queued."""
    waiting: dict[str, list[dict]] = {}
    for run in sorted(queued, key=lambda r: (r.queued_at or 0, r.created_at)):
        waiting.setdefault(run.owner, []).append(run)
    busy = {owner: sum(r.owner == owner for r in running) for owner in waiting}
    last = {owner: started.get(owner, 0.0) for owner in waiting}
    order, turn = [], time.time()
    while waiting:
        owner = min(waiting, key=lambda o: (busy[o], last[o], waiting[o][0].queued_at or 0))
        order.append(waiting[owner].pop(0))
        busy[owner] += 1
        turn += 1
        last[owner] = turn
        if not waiting[owner]:
            del waiting[owner]
    return order


def _state(registry: Registry) -> tuple[list[dict], list[dict], dict[str, float]]:
    """(queued, running, each owner's last start) of local runs."""
    runs = registry.runs(backend="local")
    started: dict[str, float] = {}
    for run in runs:
        if run.started_at:
            started[run.owner] = max(started.get(run.owner, 0.0), run.started_at)
    return ([r for r in runs if r.status == "queued"], [r for r in runs if r.status == "running"], started)


def reclaimable_memory(registry: Registry, limit: int | None = None) -> int:
    """Bytes a run queued now gets back before it starts: with every slot busy it waits for a trainer to end, so the
    smallest running trainer's resident memory; 0 while a slot is free (it then starts beside them)."""
    import psutil

    _, running, _ = _state(registry)
    if len(running) < (limit or default_limit()):
        return 0
    sizes = []
    for run in running:
        try:
            sizes.append(psutil.Process(int(run.handle)).memory_info().rss)
        except (psutil.Error, TypeError, ValueError):  # gone, or a handle that is not a local pid
            continue
    return min(sizes, default=0)


def positions(registry: Registry) -> dict[str, tuple[int, int]]:
    """Each queued run's (position, queue length), 1 being next."""
    queued, running, started = _state(registry)
    order = fair_order(queued, running, started)
    return {run.id: (index, len(order)) for index, run in enumerate(order, 1)}


def reconcile(registry: Registry, chosen: Launcher | None = None) -> list[str]:
    """Mark running local runs whose trainer is gone without a final word as interrupted; returns their ids."""
    chosen = chosen or launcher
    interrupted = []
    for run in registry.runs(status=("running",), backend="local"):
        if chosen.alive(run.handle):
            continue
        if not ended(Path(run.run_dir)):
            stopped = registry.update_run(run.id, only_if=("running",), status="interrupted", handle=None,
                                          error="The training process stopped unexpectedly; resume it from its "
                                                "last checkpoint.")
            if stopped:
                interrupted.append(run.id)
    return interrupted


def dispatch(registry: Registry, limit: int | None = None, chosen: Launcher | None = None) -> list[str]:
    """Start queued runs while fewer than `limit` run; returns the ids started."""
    chosen, limit = chosen or launcher, limit or default_limit()
    reconcile(registry, chosen)
    started_ids = []
    with registry.locked():
        queued, running, started = _state(registry)
        for run in fair_order(queued, running, started)[:max(0, limit - len(running))]:
            try:
                handle = chosen.launch(run, registry, limit)
            except OSError as exc:
                registry.update_run(run.id, status="failed", error=f"The trainer could not be started: {exc}.")
                continue
            registry.update_run(run.id, status="running", handle=handle, started_at=time.time(), error=None)
            started_ids.append(run.id)
    return started_ids


async def keep_moving(registry: Registry, limit: int | None = None, every: float = 5.0) -> None:
    """For a long-lived process (the app, `tutor serve`): reconcile and dispatch every few seconds, so a
    trainer that died without a word frees its slot even when nobody follows its run."""
    import asyncio
    import logging

    while True:
        try:
            await asyncio.to_thread(dispatch, registry, limit)
        except Exception:  # noqa: BLE001 - logged; the next round tries again
            logging.getLogger(__name__).exception("Moving the training queue along failed")
        await asyncio.sleep(every)


def enqueue(registry: Registry, run_id: str) -> dict:
    """Put a run (new, or interrupted/cancelled/failed to resume) at the back of the queue."""
    return registry.update_run(run_id, status="queued", queued_at=time.time(), handle=None, error=None)


def cancel_queued(registry: Registry, run_id: str) -> bool:
    """Take a run out of the queue before it starts; False if it has started (or finished) meanwhile."""
    return registry.update_run(run_id, only_if=("queued",), status="cancelled") is not None


if __name__ == "__main__":
    registry = Registry(Path(sys.argv[1] if len(sys.argv) > 1 else ".tutor-data/registry.sqlite"))
    for run_id, (position, total) in sorted(positions(registry).items(), key=lambda item: item[1]):
        print(f"{position}/{total}  {run_id}")
