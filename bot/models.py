"""Domain models shared by services and cards (plain data, no storage or Teams types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class Equipment(StrEnum):
    DISPLAY = "display"
    VIDEO = "video"
    WHITEBOARD = "whiteboard"
    PHONE = "phone"

    @property
    def label(self) -> str:
        return _EQUIPMENT_LABELS[self]


_EQUIPMENT_LABELS = {
    Equipment.DISPLAY: "Display",
    Equipment.VIDEO: "Video conferencing",
    Equipment.WHITEBOARD: "Whiteboard",
    Equipment.PHONE: "Conference phone",
}


class Repeat(StrEnum):
    NONE = "none"
    DAILY = "daily"
    WEEKLY = "weekly"

    @property
    def label(self) -> str:
        return {"none": "Does not repeat", "daily": "Every day", "weekly": "Every week"}[self]

    @property
    def step(self) -> timedelta:
        return timedelta(days=7 if self is Repeat.WEEKLY else 1)


@dataclass(frozen=True)
class Room:
    """A bookable room as the directory describes it."""

    id: str
    name: str
    email: str
    building: str
    floor: int
    floor_label: str
    capacity: int
    equipment: frozenset[Equipment] = frozenset()
    wheelchair_accessible: bool = False
    needs_approval: bool = False

    @property
    def location(self) -> str:
        return f"{self.building}, {self.floor_label}"


@dataclass(frozen=True)
class Place:
    """Where the activity came from, as Teams told it (verified with the activity)."""

    conversation_id: str
    conversation_type: str  # personal, groupChat or channel
    service_url: str
    reference: str  # the conversation reference as JSON, for updates and proactive sends
    message_id: str | None = None  # for a card click: the message holding the card
    teams_channel_id: str | None = None  # in a channel: the channel's id (channelData)


@dataclass(frozen=True)
class Actor:
    """The verified user behind an activity: tenant and Entra object id come from Teams."""

    tenant_id: str
    user_id: str
    name: str
    time_zone: ZoneInfo
    # How the Bot Framework token service knows this user (the channel account, not Entra).
    channel_user_id: str = ""
    channel_id: str = "msteams"
    place: Place | None = None


@dataclass(frozen=True)
class SearchQuery:
    """A validated booking request, in UTC with the user's zone for display."""

    start: datetime
    end: datetime
    attendees: int
    subject: str
    online_meeting: bool
    time_zone: ZoneInfo
    building: str | None = None
    floor: int | None = None
    equipment: frozenset[Equipment] = frozenset()
    repeat: Repeat = Repeat.NONE
    count: int = 1

    @property
    def minutes(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)

    def occurrences(self) -> list[tuple[datetime, datetime]]:
        """Every occurrence in UTC, keeping the wall-clock time in the user's zone (DST-safe)."""
        local_start = self.start.astimezone(self.time_zone)
        length = self.end - self.start
        found = []
        for index in range(self.count):
            day = local_start.date() + self.repeat.step * index
            start = datetime.combine(day, local_start.time().replace(tzinfo=None), self.time_zone)
            start_utc = start.astimezone(UTC)
            found.append((start_utc, start_utc + length))
        return found


@dataclass(frozen=True)
class Offer:
    """A room free for a slot, bookable with one click: `attempt_id` is the draft behind it."""

    room: Room
    attempt_id: str
    start: datetime
    end: datetime
    free_count: int | None = None
    """For a repeating search: how many of the occurrences this room is free for."""


@dataclass(frozen=True)
class SearchResult:
    query: SearchQuery
    attempt_id: str
    offers: list[Offer]
    other_times: list[Offer] = field(default_factory=list)
    other_rooms: list[Offer] = field(default_factory=list)


@dataclass(frozen=True)
class FormValues:
    """What the booking form shows: defaults, or the user's own inputs kept after a mistake."""

    date: str
    start: str
    duration: str
    end: str
    attendees: str
    building: str
    floor: str
    equipment: str
    subject: str
    online_meeting: bool
    repeat: str = "none"
    occurrences: str = ""
