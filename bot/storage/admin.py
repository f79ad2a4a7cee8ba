"""The SQL behind the `admin` command: one tenant's counts and lists, each on an index.

`booking` is read through `ix_booking_tenant_start` (tenant, start, status), pending requests
through `ix_service_request_tenant_status` (tenant, status, created) and approved ones through
`ix_service_request_tenant_fulfilment` (tenant, fulfilment, updated). Methods are blocking; the
admin service calls them from a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, and_, case, func, or_
from sqlmodel import col, select

from bot.storage.db import read_session
from bot.storage.tables import (
    Booking,
    FulfilmentStatus,
    ServiceRequestRecord,
    ServiceRequestStatus,
)


class AdminQueries:
    """Read-only queries over `booking` and `service_request` for one tenant."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def bookings_by_status(self, tenant_id: str, start: datetime, end: datetime) -> dict[str, int]:
        """How many of the tenant's bookings start in [start, end), by status."""
        statement = (
            select(Booking.status, func.count())
            .where(Booking.tenant_id == tenant_id)
            .where(col(Booking.start_at) >= start)
            .where(col(Booking.start_at) < end)
            .group_by(Booking.status)
        )
        with read_session(self._engine) as session:
            return {str(status): int(count) for status, count in session.exec(statement)}

    def pending_by_age(self, tenant_id: str, cutoffs: Sequence[datetime]) -> list[int]:
        """Pending requests counted per age bucket: `cutoffs` newest first (now - 1 day, now -
        3 days, ...) give len(cutoffs) + 1 buckets; a request created exactly at a cutoff counts
        in the older bucket."""
        created = col(ServiceRequestRecord.created_at)
        bounds = [None, *cutoffs, None]
        columns = []
        for newer, older in zip(bounds, bounds[1:], strict=False):
            conditions = []
            if newer is not None:
                conditions.append(created <= newer)
            if older is not None:
                conditions.append(created > older)
            columns.append(func.coalesce(func.sum(case((and_(*conditions), 1), else_=0)), 0))
        statement = (
            select(*columns)
            .where(ServiceRequestRecord.tenant_id == tenant_id)
            .where(ServiceRequestRecord.status == ServiceRequestStatus.PENDING)
        )
        with read_session(self._engine) as session:
            row = session.exec(statement).one()
        return [int(value) for value in row]

    def oldest_pending(self, tenant_id: str, limit: int) -> list[ServiceRequestRecord]:
        """The tenant's pending requests, oldest first, at most `limit`."""
        statement = (
            select(ServiceRequestRecord)
            .where(ServiceRequestRecord.tenant_id == tenant_id)
            .where(ServiceRequestRecord.status == ServiceRequestStatus.PENDING)
            .order_by(col(ServiceRequestRecord.created_at), col(ServiceRequestRecord.id))
            .limit(limit)
        )
        with read_session(self._engine) as session:
            return list(session.exec(statement))

    def stuck_fulfilments(
        self,
        tenant_id: str,
        *,
        waiting_since_before: datetime,
        in_progress_since_before: datetime,
        limit: int,
    ) -> tuple[int, int, list[ServiceRequestRecord]]:
        """Approved requests not started since before the first time, or started and not done
        since before the second (the last change of an approved request is its last step):
        the two counts and the longest-stuck requests, at most `limit`."""
        updated = col(ServiceRequestRecord.updated_at)
        fulfilment = col(ServiceRequestRecord.fulfilment)
        not_started = and_(
            fulfilment == FulfilmentStatus.WAITING.value, updated <= waiting_since_before
        )
        not_done = and_(
            fulfilment == FulfilmentStatus.IN_PROGRESS.value, updated <= in_progress_since_before
        )
        stuck = (
            select(ServiceRequestRecord)
            .where(ServiceRequestRecord.tenant_id == tenant_id)
            .where(or_(not_started, not_done))
        )
        counts = (
            select(
                func.coalesce(func.sum(case((not_started, 1), else_=0)), 0),
                func.coalesce(func.sum(case((not_done, 1), else_=0)), 0),
            )
            .where(ServiceRequestRecord.tenant_id == tenant_id)
            .where(
                col(ServiceRequestRecord.fulfilment).in_(
                    [FulfilmentStatus.WAITING.value, FulfilmentStatus.IN_PROGRESS.value]
                )
            )
        )
        with read_session(self._engine) as session:
            waiting, in_progress = session.exec(counts).one()
            rows = list(
                session.exec(stuck.order_by(updated, col(ServiceRequestRecord.id)).limit(limit))
            )
        return int(waiting), int(in_progress), rows

    def pending_by_number(self, tenant_id: str, number: str) -> list[ServiceRequestRecord]:
        """The tenant's pending requests whose id starts with `number` (lower-case hex and
        dashes, as cards show it), at most two: more than one means the number is ambiguous."""
        # The pending requests of the tenant come from the index; the prefix filters those.
        statement = (
            select(ServiceRequestRecord)
            .where(col(ServiceRequestRecord.id).startswith(number, autoescape=True))
            .where(ServiceRequestRecord.tenant_id == tenant_id)
            .where(ServiceRequestRecord.status == ServiceRequestStatus.PENDING)
            .order_by(col(ServiceRequestRecord.id))
            .limit(2)
        )
        with read_session(self._engine) as session:
            return list(session.exec(statement))
