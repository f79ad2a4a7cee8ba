"""Storage fixtures: bookings built field by field, an engine with a pool big enough to race."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from bot.storage.tables import Booking
from tests.conftest import migrated_engine
from tests.storage.race import RACERS

TENANT = "tenant-1"
ROOM = "room-atlas"
# FakeClock's "now" is 2026-11-23 08:05 UTC; this day is two weeks later.
DAY = datetime(2026, 12, 7, tzinfo=UTC)
CREATED_AT = datetime(2026, 11, 23, 8, 5, tzinfo=UTC)


def at(hour: int, minute: int = 0, *, day: datetime = DAY) -> datetime:
    """A UTC time on the test day."""
    return day.replace(hour=hour, minute=minute)


def make_booking(
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    room_id: str = ROOM,
    user_id: str = "user-a",
    tenant_id: str = TENANT,
    attempt_id: str | None = None,
    **overrides: Any,
) -> Booking:
    """A confirmed booking of `room_id`, 10:00-11:00 UTC on the test day unless told otherwise."""
    start = start if start is not None else at(10)
    end = end if end is not None else start + timedelta(hours=1)
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "attempt_id": attempt_id or str(uuid.uuid4()),
        "tenant_id": tenant_id,
        "user_id": user_id,
        "user_name": user_id.title(),
        "room_id": room_id,
        "room_name": room_id.removeprefix("room-").title(),
        "building": "North",
        "floor_label": "Floor 2",
        "subject": "Planning",
        "start_at": start,
        "end_at": end,
        "attendees": 4,
        "online_meeting": False,
        "time_zone": "Europe/London",
        "created_at": CREATED_AT,
    }
    fields.update(overrides)
    return Booking(**fields)


@pytest.fixture
def race_engine(database_url: str) -> Iterator[Engine]:
    """A migrated engine with a connection for every racer and some to spare."""
    with migrated_engine(database_url, pool_size=RACERS + 4) as engine:
        yield engine
