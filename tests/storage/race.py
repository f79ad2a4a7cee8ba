"""Race booking attempts against one database from OS threads or from separate processes.

Every racer waits at a barrier, then calls the repository's blocking `_create` at once. Each
attempt records what happened and when it ran, so a test can check the outcome and that the
attempts really overlapped in time.

This module is imported by the worker processes too: it stays free of pytest and fixtures.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.pool import Pool
from multiprocessing.synchronize import Barrier as ProcessBarrier
from typing import Any

from sqlalchemy import Engine, event

from bot.storage.db import create_db_engine
from bot.storage.repository import BookingRepository
from bot.storage.tables import Booking

RACERS = 20
# Long enough for 20 new interpreters to import SQLAlchemy on 2 cores; a hang fails, not blocks.
BARRIER_TIMEOUT = 120.0

CREATED = "created"
EXISTING = "existing"


@dataclass(frozen=True)
class Attempt:
    """One racer's result: `outcome` is CREATED, EXISTING or the exception's class name."""

    index: int
    outcome: str
    booking_id: str | None
    error: str
    worker: str
    entered: float
    left: float


def attempt(
    repository: BookingRepository,
    booking: Booking,
    barrier: threading.Barrier | ProcessBarrier,
    index: int,
    worker: str,
) -> Attempt:
    """Wait for every racer, then try to create `booking`; never raises what `_create` raises."""
    barrier.wait(BARRIER_TIMEOUT)
    entered = time.monotonic()
    booking_id: str | None = None
    error = ""
    try:
        result, is_new = repository._create(booking)
    except Exception as exc:  # the test asserts the type: any other than RoomTaken fails it
        outcome = type(exc).__name__
        error = str(exc)[:500]
    else:
        outcome = CREATED if is_new else EXISTING
        booking_id = result.id
    left = time.monotonic()
    return Attempt(index, outcome, booking_id, error, worker, entered, left)


class CheckoutGauge:
    """The most connections an engine's pool had checked out at one time."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._current = 0
        self.peak = 0

    def __enter__(self) -> CheckoutGauge:
        event.listen(self._engine, "checkout", self._out)
        event.listen(self._engine, "checkin", self._in)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self._engine, "checkout", self._out)
        event.remove(self._engine, "checkin", self._in)

    def _out(self, *_: Any) -> None:
        with self._lock:
            self._current += 1
            self.peak = max(self.peak, self._current)

    def _in(self, *_: Any) -> None:
        with self._lock:
            self._current -= 1


def warm_pool(engine: Engine, connections: int) -> None:
    """Open `connections` connections and return them, so no racer pays for a connect."""
    opened = [engine.connect() for _ in range(connections)]
    for connection in opened:
        connection.close()


def race_threads(engine: Engine, bookings: Sequence[Booking]) -> list[Attempt]:
    """One OS thread per booking, each through its own pooled connection, released together."""
    warm_pool(engine, len(bookings))
    repository = BookingRepository(engine)
    barrier = threading.Barrier(len(bookings))

    def run(index: int, booking: Booking) -> Attempt:
        worker = f"thread-{threading.get_ident()}"
        return attempt(repository, booking, barrier, index, worker)

    with ThreadPoolExecutor(max_workers=len(bookings)) as executor:
        futures = [executor.submit(run, i, booking) for i, booking in enumerate(bookings)]
        return [future.result() for future in futures]


# -- processes ----------------------------------------------------------------------------------
_process_barrier: ProcessBarrier | None = None


def init_process(barrier: ProcessBarrier) -> None:
    """Pool initializer: keep the barrier (it can only be inherited, not sent with a task)."""
    global _process_barrier
    _process_barrier = barrier


def attempt_in_process(url: str, fields: dict[str, Any], index: int) -> Attempt:
    """In a worker process: a new engine on `url`, connected before the barrier, one attempt."""
    assert _process_barrier is not None, "the pool was started without init_process"
    engine = create_db_engine(url, pool_size=1)
    try:
        warm_pool(engine, 1)
        return attempt(
            BookingRepository(engine),
            Booking(**fields),
            _process_barrier,
            index,
            f"process-{os.getpid()}",
        )
    finally:
        engine.dispose()


def race_processes(pool: Pool, url: str, bookings: Sequence[Booking]) -> list[Attempt]:
    """One attempt per worker process of `pool` (it must have exactly len(bookings) workers).

    A worker blocks at the barrier until all have arrived, so no worker can take two tasks.
    """
    pending = [
        pool.apply_async(attempt_in_process, (url, booking.model_dump(), index))
        for index, booking in enumerate(bookings)
    ]
    return [result.get(timeout=BARRIER_TIMEOUT + 60) for result in pending]


def peak_overlap(attempts: Sequence[Attempt]) -> int:
    """The most attempts whose [entered, left] windows were open at one moment."""
    edges = sorted(
        [(a.entered, 1) for a in attempts] + [(a.left, -1) for a in attempts],
        key=lambda edge: (edge[0], edge[1]),
    )
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak
