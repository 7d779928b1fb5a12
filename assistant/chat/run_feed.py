"""One follower per run, shared by every chat that watches it.

Watching a run holds no thread: a run's follower is one asyncio task (training.backends.local.follow, which reads
new events off the loop and sleeps in between), and every chat watching that run reads the same events
from its own queue. A chat that starts watching late gets the events so far first. When the run ends,
its follower ends; a later watcher starts a new one, which replays the run from its events file.

    queue = feed.subscribe(run, registry, settings)   # events, then None at the end
    ...
    feed.unsubscribe(run.id, queue)
"""

from __future__ import annotations

import asyncio
import logging

from training.backends import local as jobs
from training.base.records import Run
from training.jobs.events import Status

log = logging.getLogger(__name__)


class _Follower:
    def __init__(self):
        self.history: list[dict] = []
        self.queues: list[asyncio.Queue] = []
        self.task: asyncio.Task | None = None


class RunFeed:
    def __init__(self):
        self._followers: dict[str, _Follower] = {}

    def subscribe(self, run: Run, registry, settings, poll: float = 0.3) -> asyncio.Queue:
        follower = self._followers.get(run.id)
        if follower is None:
            follower = self._followers[run.id] = _Follower()
            follower.task = asyncio.create_task(self._follow(run, registry, settings, poll, follower))
        queue: asyncio.Queue = asyncio.Queue()
        for event in follower.history:
            queue.put_nowait(event)
        follower.queues.append(queue)
        return queue

    def unsubscribe(self, run_id: str, queue: asyncio.Queue) -> None:
        follower = self._followers.get(run_id)
        if follower is not None and queue in follower.queues:
            follower.queues.remove(queue)

    def following(self) -> int:
        return len(self._followers)

    async def _follow(self, run: Run, registry, settings, poll: float, follower: _Follower) -> None:
        try:
            async for event in jobs.follow(run, registry, poll=poll, settings=settings):
                follower.history.append(event)
                for queue in follower.queues:
                    queue.put_nowait(event)
        except Exception as exc:  # noqa: BLE001 - every watcher hears of it; the log has the details
            log.exception("Following %s failed", run.id)
            failure = Status(level="warning", message=f"Stopped following this run ({type(exc).__name__}); "
                                                      "open the chat again to resume.")
            for queue in follower.queues:
                queue.put_nowait(failure)
        finally:
            self._followers.pop(run.id, None)
            for queue in follower.queues:
                queue.put_nowait(None)


feed = RunFeed()
