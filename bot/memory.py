"""Giving memory back after a burst.

CPython frees the objects of a burst of turns (64 at once, each with its activity and card) to
the C allocator, which keeps the freed pages in its heap: the process stays at the burst's
high-water mark (about +15% over 10,000 turns in `make bench`) although nothing leaked. glibc's
`malloc_trim(0)` hands whole free pages back to the system. It runs here once requests have
stopped for a moment after some came in (never under load), in a worker thread.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

IDLE_SECONDS = 1.0
"""How long no request is in flight before freed memory is handed back."""

Trim = Callable[[], Any]
TURNS_PATH = "/api/messages"


def glibc_trim() -> Trim | None:
    """glibc's `malloc_trim(0)`, or None where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


class TrimWhenIdle:
    """Counts turns (`/api/messages` requests) in flight; `IDLE_SECONDS` after the last one
    ends (when some came in since the last trim), runs `trim` in a worker thread."""

    def __init__(self, trim: Trim, *, idle: float = IDLE_SECONDS) -> None:
        self._trim = trim
        self._idle = idle
        self._in_flight = 0
        self._since_trim = 0
        self._timer: asyncio.TimerHandle | None = None
        self.trims = 0

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path != TURNS_PATH:  # health probes every few seconds are no burst
            return await handler(request)
        self._in_flight += 1
        self._since_trim += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            return await handler(request)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self._idle, self._when_idle, loop)

    def _when_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if self._in_flight or not self._since_trim:
            return
        self._since_trim = 0
        self.trims += 1
        loop.run_in_executor(None, self._run_trim)

    def _run_trim(self) -> None:
        try:
            self._trim()
        except Exception:  # best effort: memory stays as it was
            logger.warning("could not hand freed memory back", exc_info=True)
