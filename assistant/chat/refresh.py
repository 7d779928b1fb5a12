"""Redraw part of the chat on a timer while slow work runs, so progress shows a few times a second.

    async with refreshing(0.3, redraw):    # redraw() is awaited every 0.3 s until the block ends
        result = await asyncio.to_thread(slow_work)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable


@contextlib.asynccontextmanager
async def refreshing(every: float, redraw: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            await asyncio.sleep(every)
            await redraw()

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
