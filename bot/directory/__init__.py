"""Room directories: where rooms and their busy times come from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from bot.models import Room

Interval = tuple[datetime, datetime]


class RoomDirectory(Protocol):
    """A provider of rooms and their busy times (`local` now, `graph` later)."""

    @property
    def supports_online_meetings(self) -> bool:
        """Whether bookings made through this directory get a Teams meeting link."""
        ...

    async def list_rooms(self) -> Sequence[Room]:
        """Every room, in a stable order."""
        ...

    async def busy_times(
        self, rooms: Sequence[Room], start: datetime, end: datetime
    ) -> Mapping[str, Sequence[Interval]]:
        """Busy intervals per room id that overlap [start, end)."""
        ...
