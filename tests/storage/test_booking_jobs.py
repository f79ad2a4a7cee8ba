"""Booking jobs (the outbox of slow clicks) on SQLite and PostgreSQL: a click is recorded once,
a live lease keeps other processes off it, a lease that ran out lets exactly one process take it
over, and of several processes claiming abandoned jobs at once each job goes to one of them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import Engine

from bot.storage.jobs import RESULT, RUNNING, JobRepository, job_key
from tests.conftest import FakeClock

LEASE = timedelta(seconds=60)
ACTOR = {"tenant_id": "tenant-1", "user_id": "user-a", "time_zone": "UTC"}
DATA = {"attempt": "11111111-2222-4333-8444-555555555555", "room": "room-atlas"}
KEY = job_key("tenant-1", "user-a", "booking.book", DATA)


def replica(engine: Engine, clock: FakeClock, name: str) -> JobRepository:
    return JobRepository(engine, clock, lease=LEASE, owner=name)


async def test_the_key_is_the_click_not_its_delivery() -> None:
    assert job_key("t", "u", "booking.book", {"a": 1, "b": 2}) == job_key(
        "t", "u", "booking.book", {"b": 2, "a": 1}
    )
    assert job_key("t", "u", "booking.book", {"a": 1}) != job_key(
        "t", "v", "booking.book", {"a": 1}
    )


async def test_a_click_is_recorded_once_and_a_live_lease_keeps_others_off(
    engine: Engine, clock: FakeClock
) -> None:
    first, second = replica(engine, clock, "a"), replica(engine, clock, "b")

    job = await first.start(KEY, "booking.book", DATA, ACTOR)
    again = await second.start(KEY, "booking.book", DATA, ACTOR)
    clock.advance(seconds=59)
    still = await second.start(KEY, "booking.book", DATA, ACTOR)

    assert job is not None and (job.state, job.data, job.actor) == (RUNNING, DATA, ACTOR)
    assert again is None and still is None
    assert await second.abandoned() == []
    assert await first.pending() == 1


async def test_a_renewed_lease_is_not_taken_over(engine: Engine, clock: FakeClock) -> None:
    first, second = replica(engine, clock, "a"), replica(engine, clock, "b")
    job = await first.start(KEY, "booking.book", DATA, ACTOR)
    assert job is not None

    clock.advance(seconds=50)
    assert await first.renew(job.id)
    clock.advance(seconds=50)

    assert await second.abandoned() == []


async def test_a_lease_that_ran_out_is_taken_over_once_and_the_result_kept(
    engine: Engine, clock: FakeClock
) -> None:
    first, second = replica(engine, clock, "a"), replica(engine, clock, "b")
    job = await first.start(KEY, "booking.book", DATA, ACTOR)
    assert job is not None
    await first.store_result(job.id, {"type": "AdaptiveCard", "body": []})

    clock.advance(seconds=61)  # process a died
    [taken] = await second.abandoned()

    assert (taken.id, taken.state, taken.attempts) == (job.id, RESULT, 2)
    assert taken.card == {"type": "AdaptiveCard", "body": []}
    assert not await first.renew(job.id)  # a's lease is gone for good
    assert await first.abandoned() == []  # b holds it now
    await second.finish(job.id)
    assert await second.pending() == 0


async def test_replicas_claiming_at_once_each_get_different_jobs(
    engine: Engine, clock: FakeClock
) -> None:
    dead = replica(engine, clock, "dead")
    for n in range(12):
        data = {**DATA, "room": f"room-{n}"}
        await dead.start(job_key("tenant-1", "user-a", "booking.book", data), "x", data, ACTOR)
    clock.advance(seconds=61)
    replicas = [replica(engine, clock, f"r{n}") for n in range(4)]

    claimed = await asyncio.gather(*(r.abandoned(limit=20) for r in replicas))

    ids = [job.id for jobs in claimed for job in jobs]
    assert len(ids) == 12
    assert len(set(ids)) == 12  # no job went to two replicas
