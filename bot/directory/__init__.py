"""Room directories: where rooms and their busy times come from, and where a booking is held."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.models import Actor, Room
from bot.storage.tables import Booking

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class CalendarHold:
    """What the directory's calendar made of a booking (nothing, in the local directory)."""

    event_id: str | None = None
    join_url: str | None = None
    room_response: str | None = None
    join_url_repaired: bool = False
    """The calendar gave no Teams link and the directory added one itself."""


@dataclass(frozen=True)
class CalendarState:
    """Where a held booking stands in the calendar now."""

    room_response: str | None
    join_url: str | None
    gone: bool = False
    """Cancelled or deleted in the calendar itself (in Outlook, say)."""


class RoomDirectory(Protocol):
    """A provider of rooms and their busy times (`local` or `graph`), acting for a user."""

    @property
    def supports_online_meetings(self) -> bool:
        """Whether bookings made through this directory get a Teams meeting link."""
        ...

    async def list_rooms(self, actor: Actor) -> Sequence[Room]:
        """Every room, in a stable order."""
        ...

    async def busy_times(
        self, rooms: Sequence[Room], start: datetime, end: datetime, actor: Actor
    ) -> Mapping[str, Sequence[Interval]]:
        """Busy intervals per room id that overlap [start, end)."""
        ...

    async def hold(self, actor: Actor, booking: Booking, room: Room) -> CalendarHold:
        """Put the booking in the user's calendar with the room invited (idempotent per attempt)."""
        ...

    async def release(self, actor: Actor, booking: Booking, comment: str | None) -> None:
        """Cancel what `hold` made, telling the attendees the comment."""
        ...

    async def calendar_state(self, actor: Actor, booking: Booking) -> CalendarState | None:
        """The booking's current state in the calendar (None: nothing to learn there)."""
        ...

    async def calendar_states(
        self, actor: Actor, bookings: Sequence[Booking]
    ) -> Mapping[str, CalendarState]:
        """The same for several bookings at once, by booking id (missing: nothing to learn)."""
        ...

    async def meet_now(
        self, actor: Actor, *, subject: str, start: datetime, end: datetime
    ) -> str | None:
        """A standalone Teams meeting's join link (None where the directory has none)."""
        ...
