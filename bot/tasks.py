"""Work done after answering Teams: started now, awaited at shutdown, failures logged.

Teams gives up on a turn after about 15 seconds, so notifications and card updates run here,
after the user has their answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)


class BackgroundTasks:
    """A set of running tasks; `drain` waits for them (and for tasks they start)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(work, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _run(work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("background task %s failed", name)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until no task runs; at `timeout` seconds the rest are cancelled."""
        try:
            async with asyncio.timeout(timeout):
                while self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
        except TimeoutError:
            logger.warning("cancelling %d background tasks still running", len(self._tasks))
            for task in list(self._tasks):
                task.cancel()
