"""What the Graph client returns: our own frozen models, never Graph's raw JSON.

Every datetime here is timezone-aware UTC. Rooms come back as `bot.models.Room`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

# An attendee's answer, as Graph's responseStatus.response spells it
# (https://learn.microsoft.com/graph/api/resources/responsestatus).
ResponseStatus = Literal[
    "none", "organizer", "tentativelyAccepted", "accepted", "declined", "notResponded"
]
RESPONSE_STATUSES: frozenset[str] = frozenset(
    {"none", "organizer", "tentativelyAccepted", "accepted", "declined", "notResponded"}
)


@dataclass(frozen=True)
class RoomList:
    """An Exchange room list (often one per building)."""

    email: str
    name: str


@dataclass(frozen=True)
class ScheduleItem:
    """One item of a getSchedule answer: a span and its free/busy status."""

    start: datetime
    end: datetime
    status: str

    @property
    def is_busy(self) -> bool:
        """Only `free` leaves the room bookable; tentative, oof, unknown... block it."""
        return self.status.lower() != "free"


@dataclass(frozen=True)
class GraphEvent:
    """An event of the signed-in user's calendar, as far as booking needs it."""

    id: str
    subject: str
    start: datetime
    end: datetime
    organizer: str | None
    join_url: str | None
    is_online_meeting: bool
    room_responses: dict[str, ResponseStatus] = field(default_factory=dict)
    transaction_id: str | None = None
    is_cancelled: bool = False
    web_link: str | None = None


@dataclass(frozen=True)
class OnlineMeeting:
    """A standalone Teams meeting (POST /me/onlineMeetings)."""

    id: str
    join_url: str
    subject: str
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class Person:
    """A directory user (the manager, for approvals)."""

    id: str
    name: str
    email: str | None


@dataclass(frozen=True)
class MailboxSettings:
    """The user's Outlook time zone and whether automatic replies are on now."""

    time_zone: ZoneInfo | None
    windows_zone: str | None
    automatic_replies_on: bool


@dataclass(frozen=True)
class BatchRequest:
    """One request of a JSON batch; `url` is relative to the version (`/me/events/...`)."""

    id: str
    method: str
    url: str
    body: object = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchResponse:
    """One answer of a JSON batch, matched to its request by `id`."""

    id: str
    status: int
    headers: Mapping[str, str]
    body: object

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300
