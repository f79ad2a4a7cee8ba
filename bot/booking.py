"""Room booking: validating a request, finding rooms, booking and cancelling."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.directory import CalendarHold, CalendarState, Interval, RoomDirectory
from bot.errors import InputError, MalformedAction, NotFound, RoomNeedsApproval, RoomTaken
from bot.graph import GraphTimeout
from bot.models import (
    Actor,
    Equipment,
    FormValues,
    Offer,
    Repeat,
    Room,
    SearchQuery,
    SearchResult,
)
from bot.storage.repository import BookingRepository
from bot.storage.tables import Booking, BookingApproval, BookingDraft, BookingStatus

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

DURATION_CHOICES = (15, 30, 45, 60, 90, 120, 180, 240, 480)
MAX_SUBJECT = 255
MAX_COMMENT = 500
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_DEFAULT_SUBJECT = "Meeting"


@dataclass(frozen=True)
class SeriesOccurrence:
    """One occurrence of a repeating booking: the chosen room if free, else another free one."""

    index: int
    start: datetime
    end: datetime
    room: Room | None
    free: bool


@dataclass(frozen=True)
class SeriesResult:
    booked: list[Booking]
    skipped: list[SeriesOccurrence]


@dataclass(frozen=True)
class PendingBooking:
    """A booking click still at work: what its "working on it" card shows."""

    room_name: str | None
    start: datetime
    end: datetime


# How long the "working on it" card may wait for the room list to name the clicked room.
_ROOM_NAME_SECONDS = 0.5


def no_checkpoint(point: str) -> None:
    """Production: the named points of the booking path are just points."""


def _occurrence_attempt(series_attempt: str, index: int) -> str:
    """The attempt id of one occurrence, fixed so that each occurrence books once."""
    return str(uuid.uuid5(uuid.UUID(series_attempt), f"occurrence-{index}"))


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class BookingPolicy:
    """Limits an admin can set, and how alternatives are searched."""

    max_minutes: int = 480
    max_days_ahead: int = 90
    results_limit: int = 6
    alternatives_limit: int = 3
    step_minutes: int = 15
    day_starts: time = time(7, 0)
    day_ends: time = time(20, 0)
    upcoming_limit: int = 20
    max_occurrences: int = 12


class BookingService:
    """The booking rules, independent of Teams: inputs in, domain objects out."""

    def __init__(
        self,
        *,
        directory: RoomDirectory,
        bookings: BookingRepository,
        policy: BookingPolicy,
        clock: Clock = system_clock,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        checkpoint: Callable[[str], None] = no_checkpoint,
        approval_holds: bool = False,
    ) -> None:
        """`approval_holds`: a room that needs approval is held for the user while its owners
        decide (the caller files the approval request); without it such rooms are refused."""
        self._approval_holds = approval_holds
        self._directory = directory
        self._bookings = bookings
        self._policy = policy
        self._clock = clock
        self._new_id = new_id
        # Named points around the calendar call; a crash test stops the process at one of them.
        self._checkpoint = checkpoint

    @property
    def online_meetings_available(self) -> bool:
        return self._directory.supports_online_meetings

    @property
    def max_occurrences(self) -> int:
        return self._policy.max_occurrences

    async def room(self, actor: Actor, room_id: str) -> Room:
        """A room of the directory; NotFound when it is not (or no longer) there."""
        return await self._room(actor, room_id)

    # -- the form --------------------------------------------------------------------
    def default_form(self, time_zone: ZoneInfo) -> FormValues:
        """Today, the next half hour, 30 minutes, one person, Teams meeting on."""
        local_now = self._clock().astimezone(time_zone)
        minutes = local_now.hour * 60 + local_now.minute
        next_half = math.floor(minutes / 30) * 30 + 30
        start = datetime.combine(local_now.date(), time(0), time_zone) + timedelta(
            minutes=next_half
        )
        return FormValues(
            date=start.date().isoformat(),
            start=start.strftime("%H:%M"),
            duration="30",
            end="",
            attendees="1",
            building="",
            floor="",
            equipment="",
            subject="",
            online_meeting=True,
        )

    async def form_of_search(self, actor: Actor, attempt_id: str) -> FormValues:
        """The form as the user filled it for an earlier search, in their time zone."""
        draft = await self._bookings.get_draft(
            attempt_id, tenant_id=actor.tenant_id, user_id=actor.user_id
        )
        start = draft.start_at.astimezone(actor.time_zone)
        end = draft.end_at.astimezone(actor.time_zone)
        minutes = int((draft.end_at - draft.start_at).total_seconds() // 60)
        listed = minutes in DURATION_CHOICES and end.date() == start.date()
        return FormValues(
            date=start.date().isoformat(),
            start=start.strftime("%H:%M"),
            duration=str(minutes) if listed else "30",
            end="" if listed else end.strftime("%H:%M"),
            attendees=str(draft.attendees),
            building=draft.building or "",
            floor="" if draft.floor is None else str(draft.floor),
            equipment=draft.equipment,
            subject="" if draft.subject == _DEFAULT_SUBJECT else draft.subject,
            online_meeting=draft.online_meeting,
            repeat=draft.repeat,
            occurrences=str(draft.occurrences) if draft.occurrences > 1 else "",
        )

    @staticmethod
    def form_values(inputs: Mapping[str, Any], fallback: FormValues) -> FormValues:
        """The user's own inputs, as they typed them, to show again beside a message."""

        def text(key: str, default: str) -> str:
            value = inputs.get(key)
            if value is None:
                return default
            return str(value)[:MAX_COMMENT]

        return FormValues(
            date=text("date", fallback.date),
            start=text("start", fallback.start),
            duration=text("duration", fallback.duration),
            end=text("end", fallback.end),
            attendees=text("attendees", fallback.attendees),
            building=text("building", fallback.building),
            floor=text("floor", fallback.floor),
            equipment=text("equipment", fallback.equipment),
            subject=text("subject", fallback.subject),
            online_meeting=_parse_bool(inputs.get("online"), fallback.online_meeting),
            repeat=text("repeat", fallback.repeat),
            occurrences=text("occurrences", fallback.occurrences),
        )

    async def parse_form(self, inputs: Mapping[str, Any], actor: Actor) -> SearchQuery:
        """Validate the booking form; InputError names the first field to fix."""
        time_zone = actor.time_zone
        rooms = await self._directory.list_rooms(actor)
        day = _parse_date(inputs.get("date"))
        start_time = _parse_time(inputs.get("start"), field="start", label="start time")
        start = _local(day, start_time, time_zone)
        end_raw = inputs.get("end")
        if end_raw not in (None, ""):
            end_time = _parse_time(end_raw, field="end", label="end time")
            end = _local(day, end_time, time_zone)
            if end <= start:
                raise InputError("The end time must be after the start time.", field="end")
        else:
            minutes = _parse_int(inputs.get("duration"), field="duration", label="duration")
            if minutes < 5:
                raise InputError("A booking lasts at least 5 minutes.", field="duration")
            end = start + timedelta(minutes=minutes)
        attendees = _parse_int(inputs.get("attendees"), field="attendees", label="number of people")
        if attendees < 1:
            raise InputError("At least one person attends.", field="attendees")
        now = self._clock()
        if start < now - timedelta(minutes=1):
            raise InputError(
                "That start time has already passed. Pick a time from now on.", field="start"
            )
        length = int((end - start).total_seconds() // 60)
        if length > self._policy.max_minutes:
            raise InputError(
                f"A booking can last at most {duration_text(self._policy.max_minutes)}; "
                f"this one lasts {duration_text(length)}.",
                field="end" if end_raw not in (None, "") else "duration",
            )
        last_day = now.astimezone(time_zone).date() + timedelta(days=self._policy.max_days_ahead)
        if day > last_day:
            raise InputError(
                f"Rooms can be booked up to {self._policy.max_days_ahead} days ahead "
                f"(until {last_day:%a %d %b %Y}).",
                field="date",
            )
        largest = max((room.capacity for room in rooms), default=0)
        if attendees > largest:
            raise InputError(
                f"No room holds {attendees} people; the largest holds {largest}.",
                field="attendees",
            )
        buildings = {room.building for room in rooms}
        building = _optional_str(inputs.get("building"))
        if building is not None and building not in buildings:
            raise InputError("Pick a building from the list.", field="building")
        floor_raw = _optional_str(inputs.get("floor"))
        floor = None
        if floor_raw is not None:
            floor = _parse_int(floor_raw, field="floor", label="floor")
            if floor not in {room.floor for room in rooms}:
                raise InputError("Pick a floor from the list.", field="floor")
        equipment = _parse_equipment(inputs.get("equipment"))
        repeat, count = self._parse_repeat(inputs)
        if repeat is not Repeat.NONE:
            last = day + repeat.step * (count - 1)
            if last > last_day:
                raise InputError(
                    f"The last of {count} occurrences ({last:%a %d %b %Y}) is past the "
                    f"{self._policy.max_days_ahead} days ahead that can be booked.",
                    field="occurrences",
                )
        subject = (_optional_str(inputs.get("subject")) or _DEFAULT_SUBJECT).strip()
        if len(subject) > MAX_SUBJECT:
            raise InputError(
                f"The subject is too long ({len(subject)} characters; at most {MAX_SUBJECT}).",
                field="subject",
            )
        return SearchQuery(
            start=start,
            end=end,
            attendees=attendees,
            subject=subject,
            online_meeting=_parse_bool(inputs.get("online"), True),
            time_zone=time_zone,
            building=building,
            floor=floor,
            equipment=equipment,
            repeat=repeat,
            count=count,
        )

    def _parse_repeat(self, inputs: Mapping[str, Any]) -> tuple[Repeat, int]:
        raw = _optional_str(inputs.get("repeat")) or Repeat.NONE.value
        try:
            repeat = Repeat(raw)
        except ValueError:
            raise InputError(
                "Pick how the booking repeats from the list.", field="repeat"
            ) from None
        if repeat is Repeat.NONE:
            return repeat, 1
        count = _parse_int(inputs.get("occurrences"), field="occurrences", label="number of times")
        if not 2 <= count <= self._policy.max_occurrences:
            raise InputError(
                f"A repeating booking happens 2 to {self._policy.max_occurrences} times.",
                field="occurrences",
            )
        return repeat, count

    # -- search ------------------------------------------------------------------------
    async def search(self, actor: Actor, query: SearchQuery) -> SearchResult:
        """Free rooms that fit, best fit first; alternatives when nothing fits."""
        if query.repeat is not Repeat.NONE:
            return await self._search_series(actor, query)
        rooms = list(await self._directory.list_rooms(actor))
        fitting = [room for room in rooms if _fits(room, query)]
        busy = await self._directory.busy_times(fitting, query.start, query.end, actor)
        free = [room for room in fitting if _is_free(busy.get(room.id, ()), query.start, query.end)]
        usual = await self._usual_location(actor, rooms)
        free.sort(key=lambda room: _rank(room, query, usual))
        draft = self._draft(actor, query)
        drafts = [draft]
        offers = [
            Offer(room=room, attempt_id=draft.id, start=query.start, end=query.end)
            for room in free[: self._policy.results_limit]
        ]
        other_times: list[Offer] = []
        other_rooms: list[Offer] = []
        if not any(not offer.room.needs_approval for offer in offers):
            other_times = await self._other_times(actor, query, fitting, usual, drafts)
            other_rooms = await self._other_rooms(actor, query, rooms, fitting, usual, drafts)
        await self._bookings.save_drafts(drafts)
        return SearchResult(
            query=query,
            attempt_id=draft.id,
            offers=offers,
            other_times=other_times,
            other_rooms=other_rooms,
        )

    async def _search_series(self, actor: Actor, query: SearchQuery) -> SearchResult:
        """A repeating search: rooms free every time first, then those free most often."""
        rooms = [room for room in await self._directory.list_rooms(actor) if _fits(room, query)]
        occurrences = query.occurrences()
        busy = await self._busy_over(actor, rooms, occurrences)
        usual = await self._usual_location(actor, rooms)
        counted = [
            (room, sum(_is_free(busy.get(room.id, ()), s, e) for s, e in occurrences))
            for room in rooms
        ]
        counted = [(room, free) for room, free in counted if free > 0]
        counted.sort(key=lambda pair: (-pair[1], _rank(pair[0], query, usual)))
        draft = self._draft(actor, query)
        await self._bookings.save_drafts([draft])
        offers = [
            Offer(room=room, attempt_id=draft.id, start=query.start, end=query.end, free_count=free)
            for room, free in counted[: self._policy.results_limit]
        ]
        return SearchResult(query=query, attempt_id=draft.id, offers=offers)

    async def _busy_over(
        self, actor: Actor, rooms: Sequence[Room], occurrences: Sequence[Interval]
    ) -> dict[str, list[Interval]]:
        """Busy times of the rooms over all occurrences, read in windows of at most 60 days."""
        busy: dict[str, list[Interval]] = {room.id: [] for room in rooms}
        if not rooms:
            return busy
        windows: list[Interval] = []
        for start, end in occurrences:
            if windows and end - windows[-1][0] <= timedelta(days=60):
                windows[-1] = (windows[-1][0], end)
            else:
                windows.append((start, end))
        answers = await asyncio.gather(
            *(self._directory.busy_times(rooms, s, e, actor) for s, e in windows)
        )
        for answer in answers:
            for room_id, intervals in answer.items():
                busy.setdefault(room_id, []).extend(intervals)
        return busy

    async def plan_series(
        self, actor: Actor, attempt_id: str, room_id: str
    ) -> list[SeriesOccurrence]:
        """Each occurrence of a repeating search with this room: free, or taken with the best
        other free room at that time (None when no other room fits)."""
        draft = await self._bookings.get_draft(
            attempt_id, tenant_id=actor.tenant_id, user_id=actor.user_id
        )
        query = _query_of(draft, actor.time_zone)
        if query.repeat is Repeat.NONE:
            raise MalformedAction("not a repeating search")
        room = await self._room(actor, room_id)
        if room.needs_approval:
            raise RoomNeedsApproval(room.name)
        rooms = [r for r in await self._directory.list_rooms(actor) if _fits(r, query)]
        if room.id not in {r.id for r in rooms}:
            raise MalformedAction("room does not fit the search it was offered in")
        occurrences = query.occurrences()
        busy = await self._busy_over(actor, rooms, occurrences)
        usual = await self._usual_location(actor, rooms)
        plan = []
        for index, (start, end) in enumerate(occurrences):
            if _is_free(busy.get(room.id, ()), start, end):
                plan.append(SeriesOccurrence(index, start, end, room, free=True))
                continue
            others = [
                r
                for r in rooms
                if r.id != room.id
                and not r.needs_approval
                and _is_free(busy.get(r.id, ()), start, end)
            ]
            other = min(others, key=lambda r: _rank(r, query, usual)) if others else None
            plan.append(SeriesOccurrence(index, start, end, other, free=False))
        return plan

    async def book_series(
        self, actor: Actor, attempt_id: str, room_id: str, *, substitute: bool
    ) -> SeriesResult:
        """Book every free occurrence in the room; the taken ones in another room when
        `substitute`, else skip them. Each occurrence books once, however often this runs."""
        plan = await self.plan_series(actor, attempt_id, room_id)
        draft = await self._bookings.get_draft(
            attempt_id, tenant_id=actor.tenant_id, user_id=actor.user_id
        )
        booked: list[Booking] = []
        skipped: list[SeriesOccurrence] = []
        for occurrence in plan:
            done = await self._bookings.by_attempt(_occurrence_attempt(draft.id, occurrence.index))
            if done is not None:
                booked.append(done)  # booked by an earlier delivery of this click
                continue
            target = occurrence.room if (occurrence.free or substitute) else None
            if target is None or occurrence.start < self._clock():
                skipped.append(occurrence)
                continue
            booking = self._new_booking(
                actor,
                draft,
                target,
                start=occurrence.start,
                end=occurrence.end,
                # Fixed per occurrence: a redelivered click books each occurrence once.
                attempt_id=_occurrence_attempt(draft.id, occurrence.index),
                series_id=draft.id,
            )
            try:
                created, is_new = await self._bookings.create(booking)
            except RoomTaken:
                skipped.append(occurrence)
                continue
            if is_new or (created.event_id is None and self.online_meetings_available):
                created = await self._hold(actor, created, target)
            booked.append(created)
        logger.info(
            "booked series=%s occurrences=%d skipped=%d", attempt_id, len(booked), len(skipped)
        )
        return SeriesResult(booked=booked, skipped=skipped)

    def _new_booking(
        self,
        actor: Actor,
        draft: BookingDraft,
        room: Room,
        *,
        start: datetime,
        end: datetime,
        attempt_id: str,
        series_id: str | None = None,
    ) -> Booking:
        """A booking row for the draft's request in this room and slot."""
        return Booking(
            id=self._new_id(),
            attempt_id=attempt_id,
            series_id=series_id,
            tenant_id=actor.tenant_id,
            user_id=actor.user_id,
            user_name=actor.name[:256],
            room_id=room.id,
            room_name=room.name,
            building=room.building,
            floor_label=room.floor_label,
            subject=draft.subject,
            start_at=start,
            end_at=end,
            attendees=draft.attendees,
            online_meeting=draft.online_meeting,
            join_url=None,
            time_zone=draft.time_zone,
            created_at=self._clock(),
        )

    async def series_bookings(self, actor: Actor, series_id: str) -> list[Booking]:
        """The user's upcoming occurrences already booked from this search."""
        return await self._bookings.series(
            series_id, tenant_id=actor.tenant_id, user_id=actor.user_id, now=self._clock()
        )

    async def cancel_series(
        self, actor: Actor, series_id: str, comment: str | None
    ) -> list[Booking]:
        """Cancel every upcoming occurrence of a series the user booked."""
        bookings = await self.series_bookings(actor, series_id)
        if not bookings:
            raise NotFound("That series was not found among your bookings.")
        cancelled = []
        for booking in bookings:
            if booking.status == BookingStatus.CONFIRMED:
                done, _ = await self.cancel(actor, booking.id, comment)
                cancelled.append(done)
        return cancelled

    async def search_again(self, actor: Actor, attempt_id: str) -> SearchResult:
        """Run a stored search again (after the room was just taken, say)."""
        draft = await self._bookings.get_draft(
            attempt_id, tenant_id=actor.tenant_id, user_id=actor.user_id
        )
        return await self.search(actor, _query_of(draft, actor.time_zone))

    async def _other_times(
        self,
        actor: Actor,
        query: SearchQuery,
        fitting: Sequence[Room],
        usual: tuple[str, int] | None,
        drafts: list[BookingDraft],
    ) -> list[Offer]:
        bookable = [room for room in fitting if not room.needs_approval]
        if not bookable:
            return []
        local_day = query.start.astimezone(query.time_zone).date()
        day_start = datetime.combine(local_day, self._policy.day_starts, query.time_zone)
        day_end = datetime.combine(local_day, self._policy.day_ends, query.time_zone)
        earliest = max(day_start, _ceil_to(self._clock(), self._policy.step_minutes))
        busy = await self._directory.busy_times(bookable, day_start, day_end, actor)
        length = query.end - query.start
        step = timedelta(minutes=self._policy.step_minutes)
        candidates: list[tuple[timedelta, datetime, Room]] = []
        shift = step
        while shift <= timedelta(hours=24) and len(candidates) < self._policy.alternatives_limit:
            for start in (query.start - shift, query.start + shift):
                end = start + length
                if start < earliest or end > day_end:
                    continue
                free = [room for room in bookable if _is_free(busy.get(room.id, ()), start, end)]
                if free:
                    best = min(free, key=lambda room: _rank(room, query, usual))
                    candidates.append((shift, start, best))
            if query.start - shift < earliest and query.start + shift + length > day_end:
                break
            shift += step
        offers = []
        for _, start, room in sorted(candidates, key=lambda c: (c[0], c[1]))[
            : self._policy.alternatives_limit
        ]:
            moved = replace(query, start=start, end=start + length)
            draft = self._draft(actor, moved)
            drafts.append(draft)
            offers.append(Offer(room=room, attempt_id=draft.id, start=start, end=start + length))
        return sorted(offers, key=lambda offer: offer.start)

    async def _other_rooms(
        self,
        actor: Actor,
        query: SearchQuery,
        rooms: Sequence[Room],
        fitting: Sequence[Room],
        usual: tuple[str, int] | None,
        drafts: list[BookingDraft],
    ) -> list[Offer]:
        fitting_ids = {room.id for room in fitting}
        others = [
            room
            for room in rooms
            if room.id not in fitting_ids
            and room.capacity >= query.attendees
            and not room.needs_approval
        ]
        busy = await self._directory.busy_times(others, query.start, query.end, actor)
        free = [room for room in others if _is_free(busy.get(room.id, ()), query.start, query.end)]
        free.sort(
            key=lambda room: (
                len(query.equipment - room.equipment),
                room.capacity - query.attendees,
                _location_rank(room, query, usual),
                room.name,
            )
        )
        if not free:
            return []
        relaxed = SearchQuery(
            start=query.start,
            end=query.end,
            attendees=query.attendees,
            subject=query.subject,
            online_meeting=query.online_meeting,
            time_zone=query.time_zone,
        )
        draft = self._draft(actor, relaxed)
        drafts.append(draft)
        return [
            Offer(room=room, attempt_id=draft.id, start=query.start, end=query.end)
            for room in free[: self._policy.alternatives_limit]
        ]

    async def _usual_location(self, actor: Actor, rooms: Sequence[Room]) -> tuple[str, int] | None:
        recent = await self._bookings.recent_room_ids(
            tenant_id=actor.tenant_id, user_id=actor.user_id
        )
        by_id = {room.id: room for room in rooms}
        places = Counter(
            (by_id[room_id].building, by_id[room_id].floor)
            for room_id in recent
            if room_id in by_id
        )
        if not places:
            return None
        return places.most_common(1)[0][0]

    def _draft(self, actor: Actor, query: SearchQuery) -> BookingDraft:
        return BookingDraft(
            id=self._new_id(),
            tenant_id=actor.tenant_id,
            user_id=actor.user_id,
            start_at=query.start,
            end_at=query.end,
            attendees=query.attendees,
            building=query.building,
            floor=query.floor,
            equipment=",".join(sorted(query.equipment)),
            subject=query.subject,
            online_meeting=query.online_meeting,
            time_zone=query.time_zone.key,
            created_at=self._clock(),
            repeat=query.repeat.value,
            occurrences=query.count,
        )

    # -- booking -------------------------------------------------------------------------
    async def book(self, actor: Actor, attempt_id: str, room_id: str) -> tuple[Booking, bool]:
        """Book the room for the draft's slot, once per attempt. Raises RoomTaken on overlap."""
        draft = await self._bookings.get_draft(
            attempt_id, tenant_id=actor.tenant_id, user_id=actor.user_id
        )
        if draft.occurrences > 1:
            raise MalformedAction("a repeating search is booked with booking.series")
        room = await self._room(actor, room_id)
        if room.needs_approval and not self._approval_holds:
            raise RoomNeedsApproval(room.name)
        if room.capacity < draft.attendees:
            raise MalformedAction("room too small for the search it was offered in")
        booking = self._new_booking(
            actor, draft, room, start=draft.start_at, end=draft.end_at, attempt_id=draft.id
        )
        if room.needs_approval:
            booking.approval = BookingApproval.PENDING  # held until the owners decide
        if draft.start_at < self._clock() - timedelta(minutes=1):
            existing = await self._bookings.by_attempt(draft.id)
            if existing is not None:
                return existing, False
            raise InputError("That slot has already started. Search again for a later time.")
        created, is_new = await self._bookings.create(booking)
        if is_new or (created.event_id is None and self.online_meetings_available):
            created = await self._hold(actor, created, room)
        if is_new:
            logger.info(
                "booked room=%s booking=%s start=%s",
                created.room_id,
                created.id,
                created.start_at.isoformat(),
            )
        return created, is_new

    async def _hold(self, actor: Actor, booking: Booking, room: Room) -> Booking:
        """Put a booking the database accepted into the directory's calendar.

        When that fails the row goes, so the slot is free again and a retry of the same
        attempt starts over (the directory makes the retry idempotent). A calendar that did not
        answer in time may have made the event all the same: it is asked once more with the same
        attempt id, which gives that event back or makes it once.

        The row is committed before the calendar is called, without an event id: a process that
        dies in between leaves it so, and finishing the click again (see bot.tasks.SlowClicks)
        calls the calendar again with the same attempt id.
        """
        self._checkpoint("before_graph")
        try:
            try:
                hold = await self._directory.hold(actor, booking, room)
            except GraphTimeout:
                logger.info("calendar did not answer for booking %s; asking again", booking.id)
                hold = await self._directory.hold(actor, booking, room)
        except BaseException:
            await self._bookings.delete(booking.id)
            raise
        self._checkpoint("after_graph")
        if hold == CalendarHold():
            return booking
        return await self._bookings.attach_hold(
            booking.id,
            event_id=hold.event_id,
            join_url=hold.join_url,
            room_response=hold.room_response,
            join_url_repaired=hold.join_url_repaired,
        )

    async def pending(
        self, actor: Actor, attempt_id: str, room_id: str | None = None
    ) -> PendingBooking | None:
        """What a Book click still at work is booking: its row once stored, else its search and
        the clicked room's name from the room list (when that answers at once; never Graph)."""
        booking = await self._own_attempt(actor, attempt_id)
        if booking is not None:
            return PendingBooking(booking.room_name, booking.start_at, booking.end_at)
        try:
            draft = await self._bookings.get_draft(
                attempt_id, tenant_id=actor.tenant_id, user_id=actor.user_id
            )
        except NotFound:
            return None
        return PendingBooking(await self._room_name(actor, room_id), draft.start_at, draft.end_at)

    async def _room_name(self, actor: Actor, room_id: str | None) -> str | None:
        """The room's name for display only, if the directory's list is at hand."""
        if room_id is None:
            return None
        try:
            rooms = await asyncio.wait_for(
                self._directory.list_rooms(actor), timeout=_ROOM_NAME_SECONDS
            )
        except Exception as error:  # a name on a "working" card is not worth a failure
            logger.debug("no room name for the working card: %s", type(error).__name__)
            return None
        return next((room.name for room in rooms if room.id == room_id), None)

    async def release_unheld(self, actor: Actor, attempt_id: str) -> bool:
        """Free the slot of a booking whose calendar event could not be made or checked (the
        user's Microsoft 365 sign-in is gone): True when a row was released. Booking the same
        attempt again later finds or makes its event once (its transactionId)."""
        booking = await self._own_attempt(actor, attempt_id)
        if booking is None:
            return False
        if booking.event_id is not None or not self.online_meetings_available:
            return False
        await self._bookings.delete(booking.id)
        logger.info("released booking %s: its calendar event could not be made", booking.id)
        return True

    async def _own_attempt(self, actor: Actor, attempt_id: str) -> Booking | None:
        """The actor's booking made by this attempt, if any (someone else's is none)."""
        booking = await self._bookings.by_attempt(attempt_id)
        if booking is None or (booking.tenant_id, booking.user_id) != (
            actor.tenant_id,
            actor.user_id,
        ):
            return None
        return booking

    async def _room(self, actor: Actor, room_id: str) -> Room:
        for room in await self._directory.list_rooms(actor):
            if room.id == room_id:
                return room
        raise NotFound("That room is no longer in the directory. Search again with **book**.")

    async def upcoming(self, actor: Actor) -> list[Booking]:
        """The user's upcoming bookings as the calendar has them now."""
        bookings = await self._bookings.upcoming(
            tenant_id=actor.tenant_id,
            user_id=actor.user_id,
            now=self._clock(),
            limit=self._policy.upcoming_limit,
        )
        confirmed = [b for b in bookings if b.status == BookingStatus.CONFIRMED and b.event_id]
        states = await self._directory.calendar_states(actor, confirmed) if confirmed else {}
        synced = [
            await self._apply(booking, states[booking.id]) if booking.id in states else booking
            for booking in bookings
        ]
        return [booking for booking in synced if booking.status != BookingStatus.CANCELLED]

    async def get(self, actor: Actor, booking_id: str) -> Booking:
        booking = await self._bookings.get(
            booking_id, tenant_id=actor.tenant_id, user_id=actor.user_id
        )
        return await self._sync(actor, booking)

    async def _sync(self, actor: Actor, booking: Booking) -> Booking:
        """Bring a confirmed booking up to date with its calendar event: the room's answer,
        the join link, a cancellation made in Outlook."""
        if booking.status != BookingStatus.CONFIRMED or booking.event_id is None:
            return booking
        state = await self._directory.calendar_state(actor, booking)
        if state is None:
            return booking
        return await self._apply(booking, state)

    async def _apply(self, booking: Booking, state: CalendarState) -> Booking:
        """Record what the calendar says of a booking, when it says something new."""
        status, comment = BookingStatus.CONFIRMED, None
        if state.gone:
            status, comment = BookingStatus.CANCELLED, "Cancelled in Outlook."
        elif state.room_response == "declined":
            status, comment = BookingStatus.DECLINED, "The room declined the invitation."
        unchanged = (state.room_response, state.join_url) == (
            booking.room_response,
            booking.join_url,
        )
        if unchanged and status == BookingStatus.CONFIRMED:
            return booking
        if status != BookingStatus.CONFIRMED:
            logger.info("booking %s is now %s in the calendar", booking.id, status.value)
        return await self._bookings.apply_calendar_state(
            booking.id,
            room_response=state.room_response,
            join_url=state.join_url,
            status=status,
            comment=comment,
            now=self._clock(),
        )

    async def cancel(
        self, actor: Actor, booking_id: str, comment: str | None
    ) -> tuple[Booking, bool]:
        """Cancel the user's booking once; a second cancel returns the cancelled booking."""
        comment = (comment or "").strip() or None
        if comment is not None and len(comment) > MAX_COMMENT:
            raise InputError(
                f"The comment is too long ({len(comment)} characters; at most {MAX_COMMENT}).",
                field="comment",
            )
        current = await self._bookings.get(
            booking_id, tenant_id=actor.tenant_id, user_id=actor.user_id
        )
        if current.status == BookingStatus.CONFIRMED:
            # The calendar first: if that fails, nothing has changed and the user can retry.
            await self._directory.release(actor, current, comment)
        booking, changed = await self._bookings.cancel(
            booking_id,
            tenant_id=actor.tenant_id,
            user_id=actor.user_id,
            comment=comment,
            now=self._clock(),
        )
        if changed:
            logger.info("cancelled booking=%s room=%s", booking.id, booking.room_id)
        return booking, changed

    async def release_rejected(self, actor: Actor, booking_id: str) -> bool:
        """Cancel the calendar event of the actor's held booking that its room's owners
        rejected (the row was cancelled with the decision); False when there is none."""
        booking = await self._bookings.get(
            booking_id, tenant_id=actor.tenant_id, user_id=actor.user_id
        )
        rejected = (
            booking.status == BookingStatus.CANCELLED
            and booking.approval == BookingApproval.REJECTED
        )
        if not rejected or booking.event_id is None:
            return False
        await self._directory.release(actor, booking, booking.cancel_comment)
        logger.info("rejected room booking %s: its calendar event is cancelled", booking.id)
        return True

    async def meet_now(self, actor: Actor) -> tuple[str | None, datetime, datetime]:
        """A Teams meeting from now for an hour: its join link (None without Microsoft 365)."""
        start = self._clock()
        end = start + timedelta(hours=1)
        subject = f"Meeting with {actor.name}" if actor.name else "Teams meeting"
        join_url = await self._directory.meet_now(actor, subject=subject, start=start, end=end)
        return join_url, start, end

    async def rooms(self, actor: Actor) -> Sequence[Room]:
        return await self._directory.list_rooms(actor)


# -- helpers ---------------------------------------------------------------------------------
def _fits(room: Room, query: SearchQuery) -> bool:
    return (
        room.capacity >= query.attendees
        and query.equipment <= room.equipment
        and (query.building is None or room.building == query.building)
        and (query.floor is None or room.floor == query.floor)
    )


def _is_free(busy: Sequence[Interval], start: datetime, end: datetime) -> bool:
    return all(not (busy_start < end and busy_end > start) for busy_start, busy_end in busy)


def _location_rank(room: Room, query: SearchQuery, usual: tuple[str, int] | None) -> int:
    if usual is None:
        return 0
    building, floor = usual
    if room.building == building and room.floor == floor:
        return 0
    if room.building == building:
        return 1
    return 2


def _rank(room: Room, query: SearchQuery, usual: tuple[str, int] | None) -> tuple[Any, ...]:
    # Bookable first, then the smallest room that fits, then the user's usual place.
    return (room.needs_approval, room.capacity, _location_rank(room, query, usual), room.name)


def _query_of(draft: BookingDraft, time_zone: ZoneInfo) -> SearchQuery:
    return SearchQuery(
        start=draft.start_at,
        end=draft.end_at,
        attendees=draft.attendees,
        subject=draft.subject,
        online_meeting=draft.online_meeting,
        time_zone=time_zone,
        building=draft.building,
        floor=draft.floor,
        equipment=frozenset(Equipment(e) for e in draft.equipment.split(",") if e),
        repeat=Repeat(draft.repeat),
        count=draft.occurrences,
    )


def _ceil_to(moment: datetime, minutes: int) -> datetime:
    step = minutes * 60
    seconds = math.ceil(moment.timestamp() / step) * step
    return datetime.fromtimestamp(seconds, UTC)


def _local(day: date, clock_time: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock_time, zone).astimezone(UTC)


def _optional_str(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise InputError("One of the values sent is not valid. Fill the form again.")
    text = str(value).strip()
    return text or None


def _parse_date(value: Any) -> date:
    text = _optional_str(value)
    if text is None:
        raise InputError("Pick a date.", field="date")
    try:
        return date.fromisoformat(text[:10]) if len(text) >= 10 else date.fromisoformat(text)
    except ValueError:
        raise InputError(
            "Enter the date as YYYY-MM-DD, for example 2026-11-23.", field="date"
        ) from None


def _parse_time(value: Any, *, field: str, label: str) -> time:
    text = _optional_str(value)
    if text is None:
        raise InputError(f"Pick a {label}.", field=field)
    match = _TIME_RE.match(text)
    if match is None:
        raise InputError(f"Enter the {label} as HH:MM, for example 14:30.", field=field)
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours > 23 or minutes > 59:
        raise InputError(f"Enter the {label} as HH:MM, for example 14:30.", field=field)
    return time(hours, minutes)


def _parse_int(value: Any, *, field: str, label: str) -> int:
    if isinstance(value, bool):
        raise InputError(f"Enter the {label} as a whole number.", field=field)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = _optional_str(value)
    if text is None:
        raise InputError(f"Enter the {label}.", field=field)
    try:
        number = float(text)
    except ValueError:
        raise InputError(f"Enter the {label} as a whole number.", field=field) from None
    if not number.is_integer() or abs(number) > 1_000_000:
        raise InputError(f"Enter the {label} as a whole number.", field=field)
    return int(number)


def _parse_bool(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "1", "yes", "on"}


def _parse_equipment(value: Any) -> frozenset[Equipment]:
    text = _optional_str(value)
    if text is None:
        return frozenset()
    chosen = set()
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        try:
            chosen.add(Equipment(item))
        except ValueError:
            raise InputError("Pick equipment from the list.", field="equipment") from None
    return frozenset(chosen)


def duration_text(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if hours and rest:
        return f"{hours} h {rest} min"
    if hours:
        return f"{hours} h"
    return f"{rest} min"
