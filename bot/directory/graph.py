"""The Microsoft 365 room directory: rooms, free/busy and events through Microsoft Graph.

Everything runs with the signed-in user's own delegated rights. The room list is shared by
all users and cached; free/busy and events are always read live.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.directory import CalendarHold, CalendarState, Interval
from bot.graph import GraphClient, GraphError, GraphEvent, GraphNotFound
from bot.identity.errors import IdentityError
from bot.identity.user_tokens import UserTokens
from bot.models import Actor, Room
from bot.storage.tables import Booking

logger = logging.getLogger(__name__)

SCHEDULE_INTERVAL_MINUTES = 15


class GraphDirectory:
    """Rooms from `/places`, availability from getSchedule, bookings as the user's events."""

    def __init__(
        self,
        graph: GraphClient,
        tokens: UserTokens,
        *,
        cache_seconds: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._graph = graph
        self._tokens = tokens
        self._ttl = timedelta(seconds=cache_seconds)
        self._clock = clock
        self._rooms: list[Room] | None = None
        self._loaded_at: datetime | None = None
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None

    @property
    def supports_online_meetings(self) -> bool:
        return True

    async def list_rooms(self, actor: Actor) -> Sequence[Room]:
        """The cached room list; a stale one is served while a refresh runs in the background."""
        if self._rooms is None:
            async with self._lock:
                if self._rooms is None:
                    await self._load(await self._tokens.graph_token(actor))
        elif self._stale() and (self._refresh is None or self._refresh.done()):
            token = await self._tokens.graph_token(actor)
            self._refresh = asyncio.create_task(self._refresh_in_background(token))
        assert self._rooms is not None
        return self._rooms

    def _stale(self) -> bool:
        return self._loaded_at is None or self._clock() - self._loaded_at >= self._ttl

    async def _load(self, token: str) -> None:
        rooms = await self._graph.list_rooms(token)
        self._rooms = sorted(rooms, key=lambda room: (room.building, room.floor, room.name))
        self._loaded_at = self._clock()
        logger.info("room directory loaded from Graph: %d rooms", len(rooms))

    async def _refresh_in_background(self, token: str) -> None:
        try:
            async with self._lock:
                await self._load(token)
        except Exception as error:  # keep serving the old list; the next request retries
            logger.warning("room directory refresh failed: %s", type(error).__name__)

    async def busy_times(
        self, rooms: Sequence[Room], start: datetime, end: datetime, actor: Actor
    ) -> Mapping[str, Sequence[Interval]]:
        if not rooms:
            return {}
        token = await self._tokens.graph_token(actor)
        by_email = await self._graph.get_schedules(
            token,
            [room.email for room in rooms],
            start,
            end,
            interval_minutes=SCHEDULE_INTERVAL_MINUTES,
        )
        return {room.id: by_email.get(room.email, []) for room in rooms}

    async def hold(self, actor: Actor, booking: Booking, room: Room) -> CalendarHold:
        """An event in the user's calendar with the room invited; the attempt id makes a
        retried creation return the same event."""
        token = await self._tokens.graph_token(actor)
        event = await self._graph.create_booking_event(
            token,
            room=room,
            subject=booking.subject,
            body_html=_event_body(booking, room),
            start=booking.start_at,
            end=booking.end_at,
            online_meeting=booking.online_meeting,
            transaction_id=booking.attempt_id,
            time_zone="UTC",
        )
        response = event.room_responses.get(room.email.lower())
        join_url = event.join_url
        repaired = False
        if booking.online_meeting and not join_url:
            join_url = await self._repair_join_link(token, event.id, booking, room)
            repaired = join_url is not None
        return CalendarHold(
            event_id=event.id,
            join_url=join_url,
            room_response=str(response) if response is not None else "none",
            join_url_repaired=repaired,
        )

    async def _repair_join_link(
        self, token: str, event_id: str, booking: Booking, room: Room
    ) -> str | None:
        """Some tenants return events without a Teams link: ask again, else create a meeting
        and put its link in the invitation. None when neither worked (the card says so)."""
        try:
            event = await self._graph.enable_online_meeting(token, event_id)
            if event.join_url:
                return event.join_url
            meeting = await self._graph.create_online_meeting(
                token, subject=booking.subject, start=booking.start_at, end=booking.end_at
            )
            await self._graph.add_join_link(
                token, event_id, join_url=meeting.join_url, body_html=_event_body(booking, room)
            )
            return meeting.join_url
        except GraphError as error:
            logger.warning(
                "could not add a Teams link to booking %s: %s", booking.id, type(error).__name__
            )
            return None

    async def calendar_state(self, actor: Actor, booking: Booking) -> CalendarState | None:
        """The room's answer and whether the event still exists, read live from Graph."""
        if booking.event_id is None:
            return None
        token = await self._tokens.graph_token(actor)
        return await _calendar_state(self._graph, token, booking)

    async def manager_of(self, actor: Actor) -> str | None:
        """The user's manager's object id from `/me/manager`; None when the directory names none."""
        manager = await self._graph.get_manager(await self._tokens.graph_token(actor))
        return manager.id if manager is not None else None

    async def meet_now(
        self, actor: Actor, *, subject: str, start: datetime, end: datetime
    ) -> str | None:
        token = await self._tokens.graph_token(actor)
        meeting = await self._graph.create_online_meeting(
            token, subject=subject, start=start, end=end
        )
        return meeting.join_url

    async def calendar_states(
        self, actor: Actor, bookings: Sequence[Booking]
    ) -> Mapping[str, CalendarState]:
        """Every booking's event read in one `$batch` round trip (per 20 events)."""
        held = [booking for booking in bookings if booking.event_id is not None]
        if not held:
            return {}
        token = await self._tokens.graph_token(actor)
        events = await self._graph.get_events(token, [b.event_id for b in held if b.event_id])
        states: dict[str, CalendarState] = {}
        for booking in held:
            assert booking.event_id is not None
            event = events.get(booking.event_id)
            states[booking.id] = _state_of(booking, event)
        return states

    async def release(self, actor: Actor, booking: Booking, comment: str | None) -> None:
        if booking.event_id is None:
            return
        token = await self._tokens.graph_token(actor)
        try:
            await self._graph.cancel_event(token, booking.event_id, comment or "")
        except GraphNotFound:
            logger.info("event of booking %s was already gone", booking.id)


async def _calendar_state(graph: GraphClient, token: str, booking: Booking) -> CalendarState | None:
    if booking.event_id is None:
        return None
    try:
        event = await graph.get_event(token, booking.event_id)
    except GraphNotFound:
        return _state_of(booking, None)
    return _state_of(booking, event)


def _state_of(booking: Booking, event: GraphEvent | None) -> CalendarState:
    """What an event (None: gone) says of a booking."""
    if event is None:
        return CalendarState(room_response=booking.room_response, join_url=None, gone=True)
    response = event.room_responses.get(booking.room_id.lower())
    return CalendarState(
        room_response=str(response) if response is not None else booking.room_response,
        join_url=event.join_url or booking.join_url,
        gone=event.is_cancelled,
    )


def _event_body(booking: Booking, room: Room) -> str:
    return (
        f"<p>Booked with Frontdesk: {html.escape(room.name)}, "
        f"{html.escape(room.location)}, for {booking.attendees} "
        f"{'person' if booking.attendees == 1 else 'people'}.</p>"
    )


class MailboxZones:
    """The time zone of each user's Outlook mailbox settings, cached per user.

    None when it cannot be read (not signed in, Graph failing): the caller falls back.
    """

    def __init__(
        self,
        graph: GraphClient,
        tokens: UserTokens,
        *,
        clock: Callable[[], datetime],
        ttl_seconds: int = 3600,
        retry_seconds: int = 300,
    ) -> None:
        self._graph = graph
        self._tokens = tokens
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_seconds)
        self._retry = timedelta(seconds=retry_seconds)
        self._known: dict[tuple[str, str], tuple[ZoneInfo | None, datetime]] = {}

    async def zone(self, actor: Actor) -> ZoneInfo | None:
        key = (actor.tenant_id, actor.user_id)
        now = self._clock()
        cached = self._known.get(key)
        if cached is not None:
            zone, until = cached
            if now < until:
                return zone
        try:
            token = await self._tokens.graph_token(actor)
        except IdentityError as error:
            # Not signed in yet (or sign-in failing): ask again next time, it is cheap.
            logger.debug("mailbox time zone needs a sign-in: %s", type(error).__name__)
            return None
        zone = await self._read(token)
        self._known[key] = (zone, now + (self._ttl if zone is not None else self._retry))
        if len(self._known) > 10_000:
            self._known.pop(next(iter(self._known)))
        return zone

    async def _read(self, token: str) -> ZoneInfo | None:
        try:
            settings = await self._graph.get_mailbox_settings(token)
        except GraphError as error:
            logger.info("mailbox time zone unavailable: %s", type(error).__name__)
            return None
        return settings.time_zone
