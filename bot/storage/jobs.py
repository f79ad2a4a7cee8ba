"""Booking clicks' work in progress (table `booking_job`): an outbox that survives a crash.

A slow click's work is recorded before it calls Microsoft Graph, with who clicked and which
message holds the card. The process doing it holds a lease (`claimed_until`) that it renews while
it works. When the work ends, the card to show is stored with the job (`state = result`) and the
row is deleted once the user's message shows it. A job whose lease ran out belongs to a process
that died: any running process claims it with a conditional update (so of several replicas one
works each job) and finishes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, update
from sqlmodel import col, select

from bot.storage.db import read_session, upsert_insert, write_session
from bot.storage.tables import BookingJob

logger = logging.getLogger(__name__)

RUNNING = "running"
RESULT = "result"


def job_key(tenant_id: str, user_id: str, verb: str, data: Mapping[str, Any]) -> str:
    """The same click (the same user, verb and data), however often Teams delivers it."""
    raw = json.dumps([tenant_id, user_id, verb, data], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Job:
    """A claimed job: this process works it until it is finished or released."""

    id: str
    key: str
    verb: str
    data: dict[str, Any]
    actor: dict[str, Any]
    state: str
    card: dict[str, Any] | None
    attempts: int


def _job(row: BookingJob) -> Job:
    return Job(
        id=row.id,
        key=row.key,
        verb=row.verb,
        data=json.loads(row.data),
        actor=json.loads(row.actor),
        state=row.state,
        card=json.loads(row.card) if row.card else None,
        attempts=row.attempts,
    )


class JobRepository:
    """Claims, leases and finishes booking jobs; `owner` names this process."""

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], datetime],
        *,
        lease: timedelta,
        owner: str | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self.lease = lease
        self.owner = owner or str(uuid.uuid4())

    async def start(
        self, key: str, verb: str, data: Mapping[str, Any], actor: Mapping[str, Any]
    ) -> Job | None:
        """Record a click's work as this process's; None when another live process works it.

        A job left by a dead process (its lease ran out) is taken over, and counted.
        """
        return await asyncio.to_thread(self._start, key, verb, dict(data), dict(actor))

    def _start(
        self, key: str, verb: str, data: dict[str, Any], actor: dict[str, Any]
    ) -> Job | None:
        now = self._clock()
        statement = (
            upsert_insert(self._engine, BookingJob)
            .values(
                id=str(uuid.uuid4()),
                key=key,
                verb=verb,
                data=json.dumps(data, sort_keys=True, default=str),
                actor=json.dumps(actor, sort_keys=True),
                state=RUNNING,
                card=None,
                owner=self.owner,
                claimed_until=now + self.lease,
                attempts=1,
                created_at=now,
            )
            .on_conflict_do_nothing()
            .returning(col(BookingJob.id))
        )
        with write_session(self._engine) as session:
            inserted = session.execute(statement).first()
            session.commit()
            row = session.exec(select(BookingJob).where(BookingJob.key == key)).first()
        if row is None:  # finished and deleted between the two statements: start again
            return self._start(key, verb, data, actor)
        if inserted is not None:
            return _job(row)
        return self._take_over(row, now)

    def _take_over(self, row: BookingJob, now: datetime) -> Job | None:
        """Claim a job whose lease ran out; None when its owner still holds it."""
        if row.claimed_until >= now:
            return None
        with write_session(self._engine) as session:
            claimed = session.execute(
                update(BookingJob)
                .where(col(BookingJob.id) == row.id)
                .where(col(BookingJob.attempts) == row.attempts)  # nobody claimed it meanwhile
                .where(col(BookingJob.claimed_until) < now)
                .values(
                    owner=self.owner,
                    claimed_until=now + self.lease,
                    attempts=row.attempts + 1,
                )
                .returning(col(BookingJob.id))
            ).first()
            session.commit()
            if claimed is None:
                return None
            fresh = session.get(BookingJob, row.id)
            if fresh is None:
                return None
            session.refresh(fresh)
            return _job(fresh)

    async def abandoned(self, limit: int = 20) -> list[Job]:
        """Claim jobs whose lease ran out (their process died), oldest first."""
        return await asyncio.to_thread(self._abandoned, limit)

    def _abandoned(self, limit: int) -> list[Job]:
        now = self._clock()
        with read_session(self._engine) as session:
            rows = list(
                session.exec(
                    select(BookingJob)
                    .where(col(BookingJob.claimed_until) < now)
                    .order_by(col(BookingJob.created_at))
                    .limit(limit)
                )
            )
        claimed = [self._take_over(row, now) for row in rows]
        return [job for job in claimed if job is not None]

    async def renew(self, job_id: str) -> bool:
        """Extend this process's lease on a job; False when it is no longer ours."""
        return await asyncio.to_thread(self._renew, job_id)

    def _renew(self, job_id: str) -> bool:
        with write_session(self._engine) as session:
            renewed = session.execute(
                update(BookingJob)
                .where(col(BookingJob.id) == job_id)
                .where(col(BookingJob.owner) == self.owner)
                .values(claimed_until=self._clock() + self.lease)
                .returning(col(BookingJob.id))
            ).first()
            session.commit()
        return renewed is not None

    async def store_result(self, job_id: str, card: Mapping[str, Any]) -> None:
        """The work is done: keep the card the user's message must show until it does."""
        await asyncio.to_thread(self._store_result, job_id, json.dumps(card))

    def _store_result(self, job_id: str, card: str) -> None:
        with write_session(self._engine) as session:
            session.execute(
                update(BookingJob)
                .where(col(BookingJob.id) == job_id)
                .values(state=RESULT, card=card, claimed_until=self._clock() + self.lease)
            )
            session.commit()

    async def finish(self, job_id: str) -> None:
        """Nothing is left to do for this job."""
        await asyncio.to_thread(self._finish, job_id)

    def _finish(self, job_id: str) -> None:
        with write_session(self._engine) as session:
            session.execute(delete(BookingJob).where(col(BookingJob.id) == job_id))
            session.commit()

    async def pending(self) -> int:
        """How many jobs are not finished (for tests and logs)."""
        return await asyncio.to_thread(self._pending)

    def _pending(self) -> int:
        with read_session(self._engine) as session:
            return len(list(session.exec(select(BookingJob.id))))
