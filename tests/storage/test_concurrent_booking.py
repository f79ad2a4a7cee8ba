"""Twenty people click Book on one room at the same moment: exactly one of them gets it.

The racers are OS threads on separate pooled connections, or separate processes with engines of
their own, released together by a barrier. On SQLite the guard is the write lock `write_session`
takes at BEGIN; on PostgreSQL it is the exclusion constraint `booking_room_no_overlap`.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import timedelta
from multiprocessing.pool import Pool
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlmodel import select

from bot.storage.db import create_db_engine, read_session
from bot.storage.repository import BookingRepository
from bot.storage.tables import Booking
from tests.storage.conftest import ROOM, at, make_booking
from tests.storage.race import (
    CREATED,
    EXISTING,
    RACERS,
    Attempt,
    CheckoutGauge,
    init_process,
    peak_overlap,
    race_processes,
    race_threads,
)

START_METHOD = "forkserver"


@pytest.fixture(scope="module")
def process_pool() -> Iterator[Pool]:
    """RACERS worker processes, shared by the SQLite and the PostgreSQL race.

    They come from a forkserver: a fresh interpreter (nothing inherited from pytest: no engine,
    no connection) that imports SQLAlchemy once and forks each worker from there. START_METHOD
    "spawn" works as well, but 20 interpreters each importing SQLAlchemy and Alembic cost about
    30 s on 2 cores.
    """
    context = multiprocessing.get_context(START_METHOD)
    # Modules that cannot be imported here are skipped by the forkserver, not an error.
    context.set_forkserver_preload(
        ["tests.storage.race", "sqlalchemy.dialects.postgresql.psycopg", "psycopg"]
    )
    barrier = context.Barrier(RACERS)
    pool = context.Pool(RACERS, initializer=init_process, initargs=(barrier,))
    try:
        yield pool
    finally:
        pool.close()
        pool.join()


def overlapping_bookings() -> list[Booking]:
    """RACERS one-hour bookings of ROOM starting 3 minutes apart: each overlaps every other."""
    bookings = [
        make_booking(at(10) + timedelta(minutes=3 * i), user_id=f"user-{i:02d}")
        for i in range(RACERS)
    ]
    assert all(
        a.start_at < b.end_at and b.start_at < a.end_at for a in bookings for b in bookings
    ), "the slots must overlap pairwise for 'one winner' to be the right answer"
    return bookings


def room_bookings(engine: Engine) -> list[Booking]:
    with read_session(engine) as session:
        return list(session.exec(select(Booking).where(Booking.room_id == ROOM)))


def describe(attempts: Sequence[Attempt]) -> str:
    return "\n".join(
        f"#{a.index:02d} {a.worker}: {a.outcome} {a.booking_id or ''} {a.error}".rstrip()
        for a in attempts
    )


def assert_really_concurrent(attempts: Sequence[Attempt]) -> None:
    """A sanity check that the racers ran side by side, not one after another.

    Typically 12 to 20 of the 20 attempts are in flight at once; a quarter is a loose floor.
    """
    assert len({a.worker for a in attempts}) == RACERS, describe(attempts)
    assert peak_overlap(attempts) >= RACERS // 4, (
        f"the attempts hardly overlapped in time:\n{describe(attempts)}"
    )


def assert_one_winner(attempts: Sequence[Attempt], engine: Engine) -> None:
    outcomes = Counter(a.outcome for a in attempts)
    assert outcomes == {CREATED: 1, "RoomTaken": RACERS - 1}, describe(attempts)
    (winner,) = [a for a in attempts if a.outcome == CREATED]
    stored = room_bookings(engine)
    assert [(b.id, b.status) for b in stored] == [(winner.booking_id, "confirmed")]


def test_threads_racing_for_one_room_leave_one_winner(race_engine: Engine) -> None:
    bookings = overlapping_bookings()

    with CheckoutGauge(race_engine) as gauge:
        attempts = race_threads(race_engine, bookings)

    assert_one_winner(attempts, race_engine)
    assert_really_concurrent(attempts)
    assert gauge.peak >= RACERS // 4, f"at most {gauge.peak} connections were in use at once"


def test_processes_racing_for_one_room_leave_one_winner(
    database_url: str, race_engine: Engine, process_pool: Pool
) -> None:
    bookings = overlapping_bookings()

    attempts = race_processes(process_pool, database_url, bookings)

    assert_one_winner(attempts, race_engine)
    assert_really_concurrent(attempts)


def test_threads_redelivering_one_attempt_book_once(race_engine: Engine) -> None:
    first = make_booking(user_id="user-a")
    # The same click delivered RACERS times: same attempt, each delivery with a fresh booking id.
    deliveries = [first] + [
        make_booking(user_id="user-a", attempt_id=first.attempt_id) for _ in range(RACERS - 1)
    ]

    attempts = race_threads(race_engine, deliveries)

    outcomes = Counter(a.outcome for a in attempts)
    assert outcomes == {CREATED: 1, EXISTING: RACERS - 1}, describe(attempts)
    stored = room_bookings(race_engine)
    assert len(stored) == 1
    assert {a.booking_id for a in attempts} == {stored[0].id}
    assert_really_concurrent(attempts)


def test_a_delivery_landing_between_the_checks_of_a_redelivery_gives_one_booking(
    database_url: str, race_engine: Engine
) -> None:
    """The worst interleaving of two deliveries of one click, forced rather than hoped for.

    The redelivery has looked for its attempt id and found nothing; just before it looks for
    overlapping bookings, the first delivery tries to book through another engine. If the
    database lets it commit there (PostgreSQL, READ COMMITTED), the redelivery then meets its
    own attempt's booking and must return it. If the database makes it wait (SQLite's write
    lock), it books after the redelivery and must return the redelivery's booking.
    """
    first = make_booking(user_id="user-a")
    redelivery = make_booking(user_id="user-a", attempt_id=first.attempt_id)
    other_engine = create_db_engine(database_url, pool_size=1)
    other_results: list[tuple[Booking, bool]] = []
    first_delivery = threading.Thread(
        target=lambda: other_results.append(BookingRepository(other_engine)._create(first))
    )

    def before_overlap_check(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        is_overlap_check = "FROM booking" in statement and "booking.end_at >" in statement
        if is_overlap_check and first_delivery.ident is None:
            first_delivery.start()
            first_delivery.join(timeout=1.0)  # still waiting: the database serialises us

    event.listen(race_engine, "before_cursor_execute", before_overlap_check)
    try:
        booking, created = BookingRepository(race_engine)._create(redelivery)
    finally:
        event.remove(race_engine, "before_cursor_execute", before_overlap_check)
        first_delivery.join(timeout=60)
        other_engine.dispose()

    assert first_delivery.ident is not None, "the overlap check was never seen: update the hook"
    assert not first_delivery.is_alive()
    ((other_booking, other_created),) = other_results
    assert sorted([created, other_created]) == [False, True]
    assert booking.id == other_booking.id
    assert [b.id for b in room_bookings(race_engine)] == [booking.id]
