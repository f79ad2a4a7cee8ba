"""The local room directory: rooms from a YAML file, busy times from our own bookings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.directory import CalendarHold, CalendarState, Interval
from bot.models import Actor, Equipment, Room
from bot.storage.repository import BookingRepository
from bot.storage.tables import Booking


class RoomDirectoryError(ValueError):
    """The rooms file cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RoomEntry(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._@-]+$")]
    name: Annotated[str, Field(min_length=1, max_length=120)]
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
    capacity: Annotated[int, Field(ge=1, le=1000)]
    equipment: list[Equipment] = Field(default_factory=list)
    wheelchair_accessible: bool = False
    needs_approval: bool = False
    owners: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(default_factory=list)


class _FloorEntry(_Strict):
    floor: int
    label: str | None = None
    rooms: list[_RoomEntry]


class _BuildingEntry(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=120)]
    floors: list[_FloorEntry]


class RoomsFile(_Strict):
    organization: str = "Frontdesk"
    buildings: list[_BuildingEntry] = Field(min_length=1)
    manager_of: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique(self) -> RoomsFile:
        seen_ids: set[str] = set()
        seen_emails: set[str] = set()
        for building in self.buildings:
            for floor in building.floors:
                for room in floor.rooms:
                    if room.id in seen_ids:
                        raise ValueError(f"room id {room.id!r} appears twice")
                    if room.email.lower() in seen_emails:
                        raise ValueError(f"room email {room.email!r} appears twice")
                    seen_ids.add(room.id)
                    seen_emails.add(room.email.lower())
        return self


def load_rooms_file(path: Path) -> list[Room]:
    """Read and validate a rooms file; raise RoomDirectoryError naming the file and the fault."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RoomDirectoryError(f"ROOMS_FILE {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise RoomDirectoryError(f"ROOMS_FILE {path}: not valid YAML ({exc})") from None
    try:
        parsed = RoomsFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}"
            for err in exc.errors()
        )
        raise RoomDirectoryError(f"ROOMS_FILE {path}: {problems}") from None
    rooms: list[Room] = []
    for building in parsed.buildings:
        for floor in building.floors:
            for entry in floor.rooms:
                rooms.append(
                    Room(
                        id=entry.id,
                        name=entry.name,
                        email=entry.email,
                        building=building.name,
                        floor=floor.floor,
                        floor_label=floor.label or f"Floor {floor.floor}",
                        capacity=entry.capacity,
                        equipment=frozenset(entry.equipment),
                        wheelchair_accessible=entry.wheelchair_accessible,
                        needs_approval=entry.needs_approval,
                    )
                )
    return rooms


def load_manager_map(path: Path) -> dict[str, str]:
    """The rooms file's `manager_of` map (user id -> manager id), for approvals in local mode."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return RoomsFile.model_validate(raw).manager_of


def load_room_owners(path: Path) -> dict[str, list[str]]:
    """Each room's `owners` (user ids), for the "room owners" approval stage in local mode."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {
        room.id: list(room.owners)
        for building in RoomsFile.model_validate(raw).buildings
        for floor in building.floors
        for room in floor.rooms
        if room.owners
    }


class LocalDirectory:
    """Rooms from the YAML file; busy times from the bookings in our database."""

    def __init__(self, rooms: Sequence[Room], bookings: BookingRepository) -> None:
        self._rooms = list(rooms)
        self._bookings = bookings

    @classmethod
    def from_file(cls, path: Path, bookings: BookingRepository) -> LocalDirectory:
        return cls(load_rooms_file(path), bookings)

    @property
    def supports_online_meetings(self) -> bool:
        return False

    async def list_rooms(self, actor: Actor) -> Sequence[Room]:
        return self._rooms

    async def busy_times(
        self, rooms: Sequence[Room], start: datetime, end: datetime, actor: Actor
    ) -> Mapping[str, Sequence[Interval]]:
        return await self._bookings.busy_times([room.id for room in rooms], start, end)

    async def hold(self, actor: Actor, booking: Booking, room: Room) -> CalendarHold:
        # The booking row is the hold: our database is this directory's calendar.
        return CalendarHold()

    async def release(self, actor: Actor, booking: Booking, comment: str | None) -> None:
        return None

    async def calendar_state(self, actor: Actor, booking: Booking) -> CalendarState | None:
        return None

    async def calendar_states(
        self, actor: Actor, bookings: Sequence[Booking]
    ) -> Mapping[str, CalendarState]:
        return {}

    async def meet_now(
        self, actor: Actor, *, subject: str, start: datetime, end: datetime
    ) -> str | None:
        return None
