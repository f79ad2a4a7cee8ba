"""Rows for benchmarks, written straight into the product's tables in bulk.

Pools for the click scenarios (a Book click needs a search it was offered in; an Approve click
needs a pending request waiting for the clicking approver), and the large database of a million
bookings and a million service requests. Each service request is a copy of one filed through the
product's own ApprovalService (same state, items and audit shape), so the product reads them as
its own.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert

from bot.config import DEFAULT_ROOMS_FILE, Settings
from bot.directory.local import load_rooms_file
from bot.models import Actor, Room
from bot.storage.tables import (
    AuditEvent,
    Booking,
    BookingDraft,
    BookingStatus,
    RequestApprover,
    ServiceRequestRecord,
    ServiceRequestStatus,
)

TENANT_ID = "72f988bf-0000-4e3a-9b1c-2d7cd011db47"  # tests/support/activities.py's tenant
REQUESTER_ID = "00000000-0000-0000-0000-000000000100"
APPROVER_ID = "00000000-0000-0000-0000-000000000103"  # the requester's manager (demo rooms file)
IT_REQUEST = {"guest-wifi": "2", "needed-from": "2026-12-01", "who-for": "Two visitors"}
CHUNK = 5_000


def bookable_rooms() -> list[Room]:
    """The demo office's rooms that can be booked directly."""
    return [room for room in load_rooms_file(DEFAULT_ROOMS_FILE) if not room.needs_approval]


def _chunks(rows: Iterator[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _insert(engine: Engine, table: Any, rows: Iterator[dict[str, Any]]) -> int:
    count = 0
    for batch in _chunks(rows):
        with engine.begin() as connection:
            connection.execute(insert(table), batch)
        count += len(batch)
    return count


# -- Book clicks ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class BookOffer:
    """What a Book button carries: the search (attempt) and the room."""

    attempt: str
    room: str


def seed_book_offers(
    engine: Engine, *, count: int, user_id: str, now: datetime, zone: str = "America/New_York"
) -> list[BookOffer]:
    """`count` searches of one person, each offered one room at a slot nobody else holds.

    Slots are 30 minutes, from tomorrow on, 08:00-20:00 UTC, one room per offer, so every Book
    click of the pool books (none finds its room taken).
    """
    rooms = bookable_rooms()
    first_day = (now + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    offers: list[BookOffer] = []
    rows: list[dict[str, Any]] = []
    for index in range(count):
        slot, room = divmod(index, len(rooms))
        day, half_hour = divmod(slot, 24)
        start = first_day + timedelta(days=day, minutes=30 * half_hour)
        attempt = str(uuid.uuid4())
        offers.append(BookOffer(attempt=attempt, room=rooms[room].id))
        rows.append(
            {
                "id": attempt,
                "tenant_id": TENANT_ID,
                "user_id": user_id,
                "start_at": start,
                "end_at": start + timedelta(minutes=30),
                "attendees": 1,
                "building": None,
                "floor": None,
                "equipment": "",
                "subject": "Bench meeting",
                "online_meeting": False,
                "time_zone": zone,
                "created_at": now,
                "repeat": "none",
                "occurrences": 1,
            }
        )
    _insert(engine, BookingDraft, iter(rows))
    return offers


# -- Approve clicks ------------------------------------------------------------------------------
def template_request(
    settings: Settings,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """One IT request filed through the product's ApprovalService (waiting for APPROVER_ID):
    its row, approver rows and first audit event, as dicts to copy."""
    from app import build_components  # the composition root: the product's own wiring

    components = build_components(settings)
    approvals = components.approvals
    assert approvals is not None
    actor = Actor(
        tenant_id=TENANT_ID,
        user_id=REQUESTER_ID,
        name="Bench Requester",
        time_zone=ZoneInfo("UTC"),
    )
    request = asyncio.run(
        approvals.submit(actor, "it", IT_REQUEST, None, submission_id=str(uuid.uuid4()))
    )
    engine = components.engine
    try:
        with engine.connect() as connection:

            def rows(model: Any, column: str) -> list[dict[str, Any]]:
                table = model.__table__
                statement = table.select().where(table.c[column] == request.id)
                return [dict(row) for row in connection.execute(statement).mappings()]

            [record] = rows(ServiceRequestRecord, "id")
            approvers = rows(RequestApprover, "request_id")
            event = next(iter(rows(AuditEvent, "request_id")), {})
    finally:
        engine.dispose()
    return record, approvers, event


def copy_requests(
    engine: Engine,
    template: tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]],
    *,
    count: int,
    requesters: Sequence[str] | None = None,
    approvers: Sequence[str] | None = None,
    pending_share: float = 1.0,
    start: datetime | None = None,
    seed: int = 1,
) -> list[str]:
    """Insert `count` copies of the template request; the ids of the pending ones.

    With `requesters`/`approvers` each copy gets one of them at random (the approver replaces the
    template's); a share `1 - pending_share` of copies are approved already (no approver rows).
    """
    record, approver_rows, event = template
    rng = random.Random(seed)
    base = start or record["created_at"]
    pending_ids: list[str] = []
    requests: list[dict[str, Any]] = []
    approver_out: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    def flush() -> None:
        with engine.begin() as connection:
            connection.execute(insert(ServiceRequestRecord), requests)
            if approver_out:
                connection.execute(insert(RequestApprover), approver_out)
            connection.execute(insert(AuditEvent), events)
        requests.clear()
        approver_out.clear()
        events.clear()

    for index in range(count):
        request_id = str(uuid.uuid4())
        pending = rng.random() < pending_share
        created = base + timedelta(seconds=index)
        row = dict(record)
        row.update(
            id=request_id,
            submission_id=str(uuid.uuid4()),
            created_at=created,
            updated_at=created,
            status=ServiceRequestStatus.PENDING if pending else ServiceRequestStatus.APPROVED,
        )
        if requesters:
            row["requester_id"] = rng.choice(requesters)
        requests.append(row)
        if pending:
            pending_ids.append(request_id)
            for approver in approver_rows:
                copied = dict(approver, request_id=request_id)
                if approvers:
                    copied["approver_id"] = rng.choice(approvers)
                approver_out.append(copied)
        copied_event = {key: value for key, value in event.items() if key != "id"}
        copied_event.update(request_id=request_id, at=created)
        events.append(copied_event)
        if len(requests) == CHUNK:
            flush()
    if requests:
        flush()
    return pending_ids


# -- the large database --------------------------------------------------------------------------
def generate_bookings(
    engine: Engine, *, count: int, users: Sequence[str], now: datetime, seed: int = 2
) -> int:
    """`count` bookings of `users` in the demo rooms, back-to-back half hours per room, the
    last ~15% of them still to come (no two overlap: PostgreSQL's constraint refuses that)."""
    rooms = bookable_rooms()
    rng = random.Random(seed)
    slots = -(-count // len(rooms))
    first = (now - timedelta(minutes=30 * int(slots * 0.85))).replace(
        minute=0, second=0, microsecond=0
    )

    def rows() -> Iterator[dict[str, Any]]:
        for index in range(count):
            slot, room_index = divmod(index, len(rooms))
            room = rooms[room_index]
            start = first + timedelta(minutes=30 * slot)
            user = rng.choice(users)
            status = BookingStatus.CANCELLED if rng.random() < 0.1 else BookingStatus.CONFIRMED
            yield {
                "id": str(uuid.uuid4()),
                "attempt_id": str(uuid.uuid4()),
                "tenant_id": TENANT_ID,
                "user_id": user,
                "user_name": "Bench User",
                "room_id": room.id,
                "room_name": room.name,
                "building": room.building,
                "floor_label": room.floor_label,
                "subject": "Planning",
                "start_at": start,
                "end_at": start + timedelta(minutes=30),
                "attendees": 2,
                "online_meeting": False,
                "join_url": None,
                "event_id": None,
                "room_response": None,
                "join_url_repaired": False,
                "series_id": None,
                "time_zone": "UTC",
                "status": status.value,
                "cancel_comment": None,
                "cancelled_at": None,
                "created_at": start - timedelta(days=1),
            }

    return _insert(engine, Booking, rows())


def user_ids(count: int) -> list[str]:
    """Stable Entra-style object ids for bench users."""
    return [
        str(uuid.UUID(int=0xBE7C0000000000000000000000000000 + index)) for index in range(count)
    ]


def utc_now() -> datetime:
    return datetime.now(UTC)
