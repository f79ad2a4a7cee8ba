"""The Microsoft Graph v1.0 client: domain methods over one retrying, throttled transport.

Every method takes the caller's delegated bearer token first and returns our models. Paging,
batching, retries and per-mailbox concurrency live here and nowhere else.

Wire formats and limits, from Microsoft's documentation:
- places: https://learn.microsoft.com/graph/api/place-list (pages of 100, `@odata.nextLink`)
- getSchedule: https://learn.microsoft.com/graph/api/calendar-getschedule (at most 20 schedules,
  `availabilityViewInterval` 5..1440, range under 62 days; scheduleItem status is one of free,
  tentative, busy, oof, workingElsewhere, unknown; a per-schedule `error` is a freeBusyError)
- events: https://learn.microsoft.com/graph/api/user-post-events (room as `resource` attendee and
  location, `isOnlineMeeting` + `onlineMeetingProvider`, `transactionId`), event-cancel (202)
- JSON batching: https://learn.microsoft.com/graph/json-batching (at most 20 requests; each
  sub-request is throttled on its own and can answer 429)
- throttling: https://learn.microsoft.com/graph/throttling and throttling-limits (429/503 carry
  `Retry-After` in seconds; Outlook allows 4 concurrent requests per app per mailbox)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html as html_lib
import json as jsonlib
import logging
import random as random_module
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import quote, unquote

import aiohttp
from yarl import URL

from bot.directory import Interval
from bot.graph.errors import (
    GraphAuthError,
    GraphError,
    GraphNotFound,
    GraphThrottled,
    GraphTimeout,
    GraphUnavailable,
)
from bot.graph.models import (
    BatchRequest,
    BatchResponse,
    GraphEvent,
    MailboxSettings,
    OnlineMeeting,
    Person,
    RoomList,
    ScheduleItem,
)
from bot.graph.parse import (
    JsonObject,
    as_list,
    as_object,
    get_str,
    parse_datetime,
    parse_event,
    parse_online_meeting,
    parse_person,
    parse_room,
    parse_room_list,
    parse_schedule_items,
)
from bot.graph.timezones import resolve_zone, windows_name
from bot.identity.claims import unverified_claims
from bot.models import Room

logger = logging.getLogger(__name__)

SCHEDULES_PER_CALL: Final = 20
BATCH_LIMIT: Final = 20
MAX_SCHEDULE_RANGE: Final = timedelta(days=62)
MAX_PAGES: Final = 1000
DEFAULT_TIMEOUT_SECONDS: Final = 10.0
EVENT_FIELDS: Final = (
    "id,subject,start,end,organizer,attendees,isOnlineMeeting,onlineMeetingProvider,"
    "onlineMeeting,onlineMeetingUrl,transactionId,isCancelled,webLink"
)
PREFER_UTC: Final = 'outlook.timezone="UTC"'

_RETRYABLE: Final = frozenset({429, 503, 504})
_THROTTLED: Final = frozenset({429, 503})
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"})
_BEARER: Final = re.compile(r"Bearer\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Response:
    status: int
    headers: Mapping[str, str]
    body: object
    request_id: str | None


@dataclass
class _MailboxSlot:
    semaphore: asyncio.Semaphore
    users: int = 0


@dataclass
class _Pending:
    """Batch sub-requests still to send, with their answers so far."""

    requests: list[BatchRequest]
    answers: dict[str, BatchResponse] = field(default_factory=dict)


class GraphClient:
    """Microsoft Graph v1.0 for Frontdesk, over one shared aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_retries: int = 3,
        mailbox_concurrency: int = 4,
        max_retry_after_seconds: float = 30.0,
        backoff_seconds: float = 1.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], datetime] = _utc_now,
        random: Callable[[], float] = random_module.random,
    ) -> None:
        if mailbox_concurrency < 1:
            raise ValueError("mailbox_concurrency must be at least 1")
        if max_retries < 0:
            raise ValueError("max_retries cannot be negative")
        self._session = session
        self._base = URL(base_url.rstrip("/"))
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._timeout_seconds = timeout_seconds
        self._max_retries = max_retries
        self._mailbox_concurrency = mailbox_concurrency
        self._max_retry_after = max_retry_after_seconds
        self._backoff = backoff_seconds
        self._sleep = sleep
        self._clock = clock
        self._random = random
        self._slots: dict[str, _MailboxSlot] = {}

    # == places ===================================================================================
    async def list_rooms(self, token: str) -> list[Room]:
        """Every room of the tenant (all pages). Rooms without a building take their room
        list's name when the room lists say; else "Unknown building"."""
        raw_rooms = await self._get_all(token, "/places/microsoft.graph.room")
        list_names: dict[str, str] = {}
        if any(_lacks_building(raw) for raw in raw_rooms):
            list_names = await self._room_list_names(token)
        return _unique_rooms(
            parse_room(raw, list_name=list_names.get(_email_of(raw) or "")) for raw in raw_rooms
        )

    async def list_room_lists(self, token: str) -> list[RoomList]:
        """Every room list of the tenant."""
        raw_lists = await self._get_all(token, "/places/microsoft.graph.roomlist")
        return [room_list for raw in raw_lists if (room_list := parse_room_list(raw)) is not None]

    async def rooms_in_list(self, token: str, room_list: RoomList | str) -> list[Room]:
        """The rooms of one room list (by its email); its name stands in for a missing
        building when a RoomList is given."""
        if isinstance(room_list, RoomList):
            email, name = room_list.email, room_list.name
        else:
            email, name = room_list, None
        path = f"/places/{_segment(email)}/microsoft.graph.roomlist/rooms"
        raw_rooms = await self._get_all(token, path)
        return _unique_rooms(parse_room(raw, list_name=name) for raw in raw_rooms)

    async def _room_list_names(self, token: str) -> dict[str, str]:
        """Room email -> room list name; empty when room lists cannot be read."""
        try:
            room_lists = await self.list_room_lists(token)
        except GraphError as error:
            logger.warning(
                "room lists unavailable (%s %s): buildings unknown", error.status, error.code
            )
            return {}
        limit = asyncio.Semaphore(self._mailbox_concurrency)

        async def members(room_list: RoomList) -> tuple[RoomList, list[object]]:
            async with limit:
                path = f"/places/{_segment(room_list.email)}/microsoft.graph.roomlist/rooms"
                try:
                    return room_list, await self._get_all(token, path)
                except GraphError as error:
                    logger.warning(
                        "rooms of a room list unavailable (%s %s)", error.status, error.code
                    )
                    return room_list, []

        names: dict[str, str] = {}
        for room_list, raw_rooms in await asyncio.gather(*(members(rl) for rl in room_lists)):
            for raw in raw_rooms:
                email = _email_of(raw)
                if email is not None:
                    names.setdefault(email, room_list.name)
        return names

    # == free/busy ================================================================================
    async def get_schedules(
        self,
        token: str,
        emails: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        interval_minutes: int = 30,
    ) -> dict[str, list[Interval]]:
        """Busy intervals (UTC) per email overlapping [start, end). Calls of at most 20
        schedules go out concurrently. A schedule Graph reports an error for, or leaves out,
        counts as busy for the whole range: never offer a room we could not check."""
        start, end = _utc(start), _utc(end)
        if end <= start:
            raise ValueError("end must be after start")
        if end - start > MAX_SCHEDULE_RANGE:
            raise ValueError("getSchedule covers at most 62 days")
        if not 5 <= interval_minutes <= 1440:
            raise ValueError("interval_minutes must be within 5..1440")
        keys = list(dict.fromkeys(email.strip().lower() for email in emails))
        if not keys:
            return {}
        chunks = [keys[i : i + SCHEDULES_PER_CALL] for i in range(0, len(keys), SCHEDULES_PER_CALL)]
        answers = await asyncio.gather(
            *(self._schedule_chunk(token, chunk, start, end, interval_minutes) for chunk in chunks)
        )
        by_key: dict[str, list[Interval]] = {}
        for answer in answers:
            by_key.update(answer)
        return {email: list(by_key[email.strip().lower()]) for email in emails}

    async def _schedule_chunk(
        self, token: str, keys: list[str], start: datetime, end: datetime, interval: int
    ) -> dict[str, list[Interval]]:
        body = {
            "schedules": keys,
            "startTime": {"dateTime": _wall_time(start), "timeZone": "UTC"},
            "endTime": {"dateTime": _wall_time(end), "timeZone": "UTC"},
            "availabilityViewInterval": interval,
        }
        response = await self._request(
            "POST",
            "/me/calendar/getSchedule",
            token,
            json=body,
            utc_times=True,
            idempotent=True,
        )
        whole: list[Interval] = [(start, end)]
        result: dict[str, list[Interval]] = {}
        for raw in _values(response):
            info = as_object(raw)
            schedule_id = get_str(info, "scheduleId") if info is not None else None
            if info is None or schedule_id is None:
                continue
            key = schedule_id.lower()
            if key not in keys:
                continue
            error = as_object(info.get("error"))
            if error is not None:
                logger.warning(
                    "getSchedule error for %s (%s): counted busy",
                    schedule_id,
                    get_str(error, "responseCode") or "unknown",
                )
                result[key] = list(whole)
                continue
            if "scheduleItems" in info:
                items = parse_schedule_items(info.get("scheduleItems"))
            else:
                items = _items_from_view(get_str(info, "availabilityView"), start, interval)
            result[key] = _busy(items, start, end)
        for key in keys:
            if key not in result:
                logger.warning("getSchedule left out %s: counted busy", key)
                result[key] = list(whole)
        return result

    # == events ===================================================================================
    async def create_booking_event(
        self,
        token: str,
        *,
        room: Room,
        subject: str,
        body_html: str,
        start: datetime,
        end: datetime,
        online_meeting: bool,
        transaction_id: str,
        time_zone: str = "UTC",
    ) -> GraphEvent:
        """Create the meeting in the user's own calendar with the room invited as a resource
        (never in the room's calendar: that double-books). `transaction_id` makes a retried
        POST idempotent. Check `join_url`: some tenants return no link."""
        zone = resolve_zone(time_zone)
        if zone is None:
            raise ValueError(f"unknown time zone {time_zone!r}")
        start, end = _utc(start), _utc(end)
        if end <= start:
            raise ValueError("end must be after start")
        body: JsonObject = {
            "subject": subject,
            "body": {"contentType": "HTML", "content": body_html},
            "start": {"dateTime": _wall_time(start.astimezone(zone)), "timeZone": time_zone},
            "end": {"dateTime": _wall_time(end.astimezone(zone)), "timeZone": time_zone},
            "location": {
                "displayName": room.name,
                "locationEmailAddress": room.email,
                "locationType": "conferenceRoom",
            },
            "attendees": [
                {"emailAddress": {"address": room.email, "name": room.name}, "type": "resource"}
            ],
            "isOnlineMeeting": online_meeting,
            "transactionId": transaction_id,
        }
        if online_meeting:
            body["onlineMeetingProvider"] = "teamsForBusiness"
        response = await self._request(
            "POST", "/me/events", token, json=body, utc_times=True, idempotent=True
        )
        event = _event_from(response)
        if online_meeting and event.join_url is None:
            logger.warning("event created without a join URL (request-id %s)", response.request_id)
        return event

    async def get_event(self, token: str, event_id: str) -> GraphEvent:
        """One event of the user's calendar, re-read (the room's answer arrives later)."""
        response = await self._request(
            "GET",
            f"/me/events/{_segment(event_id)}",
            token,
            params={"$select": EVENT_FIELDS},
            utc_times=True,
        )
        return _event_from(response)

    async def get_events(
        self, token: str, event_ids: Sequence[str]
    ) -> dict[str, GraphEvent | None]:
        """Several events in one `$batch` round trip (per 20); None for events that are gone."""
        if not event_ids:
            return {}
        requests = [
            BatchRequest(
                id=str(index),
                method="GET",
                url=f"/me/events/{_segment(event_id)}?$select={EVENT_FIELDS}",
                headers={"Prefer": 'outlook.timezone="UTC"'},
            )
            for index, event_id in enumerate(event_ids)
        ]
        answers = await self.batch(token, requests)
        events: dict[str, GraphEvent | None] = {}
        for request, answer in zip(requests, answers, strict=True):
            event_id = event_ids[int(request.id)]
            if answer.status == 404:
                events[event_id] = None
            elif answer.ok:
                events[event_id] = parse_event(answer.body)
            else:
                raise GraphError(
                    answer.status, "BatchItemFailed", "reading an event in a batch failed", None
                )
        return events

    async def enable_online_meeting(self, token: str, event_id: str) -> GraphEvent:
        """Repair path: ask Graph again to make the event a Teams meeting."""
        response = await self._request(
            "PATCH",
            f"/me/events/{_segment(event_id)}",
            token,
            json={"isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness"},
            utc_times=True,
        )
        return _event_from(response)

    async def add_join_link(
        self, token: str, event_id: str, *, join_url: str, body_html: str
    ) -> GraphEvent:
        """Repair path: put a separately created meeting's join link into the event's body."""
        link = html_lib.escape(join_url, quote=True)
        content = f'{body_html}<p><a href="{link}">Join the Microsoft Teams meeting</a></p>'
        response = await self._request(
            "PATCH",
            f"/me/events/{_segment(event_id)}",
            token,
            json={"body": {"contentType": "HTML", "content": content}},
            utc_times=True,
        )
        return _event_from(response)

    async def cancel_event(self, token: str, event_id: str, comment: str = "") -> None:
        """Cancel the organizer's meeting; attendees (the room) get the cancellation."""
        await self._request(
            "POST",
            f"/me/events/{_segment(event_id)}/cancel",
            token,
            json={"comment": comment},
            idempotent=False,
        )

    async def list_events(self, token: str, start: datetime, end: datetime) -> list[GraphEvent]:
        """The user's events overlapping [start, end) (calendarView expands recurrences)."""
        params = {
            "startDateTime": _iso_z(_utc(start)),
            "endDateTime": _iso_z(_utc(end)),
            "$select": EVENT_FIELDS,
            "$top": "100",
        }
        raw_events = await self._get_all(token, "/me/calendarView", params=params, utc_times=True)
        events: list[GraphEvent] = []
        for raw in raw_events:
            try:
                events.append(parse_event(raw))
            except ValueError:
                logger.warning("calendarView event without id/start/end, ignored")
        return events

    # == meetings, people, mail ===================================================================
    async def create_online_meeting(
        self, token: str, *, subject: str, start: datetime, end: datetime
    ) -> OnlineMeeting:
        """A standalone Teams meeting, for events that came back without a link."""
        response = await self._request(
            "POST",
            "/me/onlineMeetings",
            token,
            json={
                "subject": subject,
                "startDateTime": _iso_z(_utc(start)),
                "endDateTime": _iso_z(_utc(end)),
            },
            idempotent=False,
        )
        try:
            return parse_online_meeting(response.body)
        except ValueError as error:
            raise _invalid(response, str(error)) from None

    async def get_manager(self, token: str) -> Person | None:
        """The user's manager; None when the directory names none (404)."""
        return await self._person(token, "/me/manager")

    async def get_user(self, token: str, user_id: str) -> Person | None:
        """A directory user by Entra object id (or UPN): their name and mail address; None when
        the directory has no such user (404). With an app-only token this needs User.Read.All."""
        return await self._person(token, f"/users/{_segment(user_id)}")

    async def _person(self, token: str, path: str) -> Person | None:
        """The directory user at `path`, or None when there is none (404)."""
        try:
            response = await self._request(
                "GET", path, token, params={"$select": "id,displayName,mail,userPrincipalName"}
            )
        except GraphNotFound:
            return None
        try:
            return parse_person(response.body)
        except ValueError as error:
            raise _invalid(response, str(error)) from None

    async def get_mailbox_settings(self, token: str) -> MailboxSettings:
        """The user's Outlook time zone (Windows or IANA name) and automatic replies state."""
        response = await self._request("GET", "/me/mailboxSettings", token)
        obj = as_object(response.body) or {}
        zone_name = get_str(obj, "timeZone")
        replies = as_object(obj.get("automaticRepliesSetting")) or {}
        status = (get_str(replies, "status") or "disabled").lower()
        replies_on = status == "alwaysenabled"
        if status == "scheduled":
            begins = parse_datetime(replies.get("scheduledStartDateTime"))
            ends = parse_datetime(replies.get("scheduledEndDateTime"))
            now = self._clock()
            replies_on = (begins is None or begins <= now) and (ends is None or now < ends)
        return MailboxSettings(
            time_zone=resolve_zone(zone_name),
            windows_zone=windows_name(zone_name),
            automatic_replies_on=replies_on,
        )

    async def send_mail(
        self,
        token: str,
        *,
        to: Sequence[str],
        subject: str,
        html: str,
        as_user: str | None = None,
    ) -> None:
        """Send an HTML mail as the signed-in user, or as `as_user` (needs Send As rights)."""
        if not to:
            raise ValueError("a mail needs at least one recipient")
        path = "/me/sendMail" if as_user is None else f"/users/{_segment(as_user)}/sendMail"
        message = {
            "subject": subject,
            "body": {"contentType": "HTML", "content": html},
            "toRecipients": [{"emailAddress": {"address": address}} for address in to],
        }
        await self._request("POST", path, token, json={"message": message}, idempotent=False)

    # == batching =================================================================================
    async def batch(self, token: str, requests: Sequence[BatchRequest]) -> list[BatchResponse]:
        """Run requests through `POST /$batch`, 20 per call, calls sent concurrently; answers in
        the order of `requests`. Sub-requests answered 429 are sent again after their
        Retry-After, within the same retry budget as any call."""
        ids = [request.id for request in requests]
        if len(set(ids)) != len(ids):
            raise ValueError("batch request ids must be unique")
        for request in requests:
            if request.url.lower().startswith(("http://", "https://")):
                raise ValueError("batch request urls are relative to the version")
        chunks = [list(requests[i : i + BATCH_LIMIT]) for i in range(0, len(requests), BATCH_LIMIT)]
        answered: dict[str, BatchResponse] = {}
        for answers in await asyncio.gather(*(self._batch_chunk(token, c) for c in chunks)):
            answered.update(answers)
        return [answered[request.id] for request in requests]

    async def _batch_chunk(
        self, token: str, requests: list[BatchRequest]
    ) -> dict[str, BatchResponse]:
        pending = _Pending(requests=list(requests))
        attempt = 0
        while True:
            answers = await self._send_batch(token, pending.requests)
            pending.answers.update(answers)
            throttled = [r for r in pending.requests if answers[r.id].status == 429]
            if not throttled or attempt >= self._max_retries:
                return pending.answers
            waits = [_retry_after(answers[r.id].headers) for r in throttled]
            known = [wait for wait in waits if wait is not None]
            delay = max(known) if known else self._backoff_delay(attempt)
            if delay > self._max_retry_after:
                return pending.answers
            logger.info(
                "batch: %d sub-requests throttled, retrying in %.1f s", len(throttled), delay
            )
            await self._sleep(delay)
            attempt += 1
            pending.requests = throttled

    async def _send_batch(
        self, token: str, requests: list[BatchRequest]
    ) -> dict[str, BatchResponse]:
        payload = {"requests": [_batch_entry(request) for request in requests]}
        idempotent = all(request.method.upper() in {"GET", "HEAD"} for request in requests)
        response = await self._request(
            "POST", "/$batch", token, json=payload, idempotent=idempotent
        )
        answers: dict[str, BatchResponse] = {}
        for raw in as_list((as_object(response.body) or {}).get("responses")):
            obj = as_object(raw)
            if obj is None:
                continue
            answer_id = get_str(obj, "id")
            status = obj.get("status")
            if answer_id is None or not isinstance(status, int):
                continue
            headers = as_object(obj.get("headers")) or {}
            answers[answer_id] = BatchResponse(
                id=answer_id,
                status=status,
                headers={str(k): str(v) for k, v in headers.items()},
                body=obj.get("body"),
            )
        missing = [request.id for request in requests if request.id not in answers]
        if missing:
            raise _invalid(response, f"batch answer lacks {len(missing)} responses")
        return answers

    # == transport ================================================================================
    async def _get_all(
        self,
        token: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        utc_times: bool = False,
    ) -> list[object]:
        """Every item of a collection, following `@odata.nextLink` to the last page."""
        items: list[object] = []
        next_url: str | None = path
        seen: set[str] = set()
        pages = 0
        while next_url is not None:
            response = await self._request(
                "GET", next_url, token, params=params if pages == 0 else None, utc_times=utc_times
            )
            pages += 1
            items.extend(_values(response))
            link = get_str(as_object(response.body) or {}, "@odata.nextLink")
            if link is not None and (link in seen or pages >= MAX_PAGES):
                raise _invalid(response, "paging does not end")
            if link is not None:
                seen.add(link)
            next_url = link
        return items

    async def _request(
        self,
        method: str,
        path_or_url: str,
        token: str,
        *,
        json: object = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        mailbox: str | None = None,
        utc_times: bool = False,
        idempotent: bool | None = None,
    ) -> _Response:
        """One Graph call with retries. 429/503 are retried whatever the method (Graph did not
        run the request); 504 and connection errors only when repeating it is harmless."""
        method = method.upper()
        url, relative = self._resolve(path_or_url)
        if idempotent is None:
            idempotent = method in _SAFE_METHODS
        key = mailbox if mailbox is not None else _mailbox_key(relative, token)
        attempt = 0
        while True:
            client_request_id = str(uuid.uuid4())
            send_headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "client-request-id": client_request_id,
                "return-client-request-id": "true",
            }
            if utc_times:
                send_headers["Prefer"] = PREFER_UTC
            if headers:
                send_headers.update(headers)
            started = time.monotonic()
            try:
                async with self._mailbox_slot(key):
                    response = await self._send(method, url, send_headers, json, params)
            except TimeoutError:
                logger.warning(
                    "graph %s %s timed out after %.1f s (client-request-id %s)",
                    method,
                    url.path,
                    self._timeout_seconds,
                    client_request_id,
                )
                raise GraphTimeout(
                    0, "Timeout", f"no answer within {self._timeout_seconds:g} s"
                ) from None
            except aiohttp.ClientError as error:
                failure = type(error).__name__
                if not idempotent or attempt >= self._max_retries:
                    logger.warning("graph %s %s failed: %s", method, url.path, failure)
                    raise GraphUnavailable(0, "ConnectionError", failure) from None
                delay = self._backoff_delay(attempt)
                logger.info("graph %s %s: %s, retry in %.2f s", method, url.path, failure, delay)
                await self._sleep(delay)
                attempt += 1
                continue
            logger.debug(
                "graph %s %s -> %d request-id %s client-request-id %s in %.0f ms",
                method,
                url.path,
                response.status,
                response.request_id,
                client_request_id,
                (time.monotonic() - started) * 1000,
            )
            if response.status < 400:
                return response
            retryable = response.status in _THROTTLED or (response.status == 504 and idempotent)
            if retryable:
                retry_after = _retry_after(response.headers)
                too_long = retry_after is not None and retry_after > self._max_retry_after
                if not too_long and attempt < self._max_retries:
                    delay = retry_after if retry_after is not None else self._backoff_delay(attempt)
                    logger.info(
                        "graph %s %s -> %d request-id %s, retry %d in %.2f s",
                        method,
                        url.path,
                        response.status,
                        response.request_id,
                        attempt + 1,
                        delay,
                    )
                    await self._sleep(delay)
                    attempt += 1
                    continue
            failure_error = _error_from(response, token)
            logger.warning(
                "graph %s %s failed: status %d code %s request-id %s",
                method,
                url.path,
                failure_error.status,
                failure_error.code,
                failure_error.request_id,
            )
            raise failure_error

    async def _send(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        json: object,
        params: Mapping[str, str] | None,
    ) -> _Response:
        async with self._session.request(
            method,
            url,
            headers=headers,
            json=json,
            params=params,
            timeout=self._timeout,
            allow_redirects=False,
        ) as raw:
            content = await raw.read()
            response_headers = {k: v for k, v in raw.headers.items()}
            request_id = raw.headers.get("request-id")
            status = raw.status
        body: object = None
        if content.strip():
            try:
                body = jsonlib.loads(content)
            except ValueError:
                if status < 400:
                    raise _invalid(
                        _Response(status, response_headers, None, request_id), "answer is not JSON"
                    ) from None
        return _Response(status=status, headers=response_headers, body=body, request_id=request_id)

    def _resolve(self, path_or_url: str) -> tuple[URL, str]:
        """The absolute URL and its path below the base. Absolute URLs (next links) must stay
        under the base URL: the bearer token is never sent anywhere else."""
        if path_or_url.lower().startswith(("http://", "https://")):
            url = URL(path_or_url, encoded=True)
            base_path = self._base.path.rstrip("/")
            if url.origin() != self._base.origin() or not (
                url.raw_path == base_path or url.raw_path.startswith(base_path + "/")
            ):
                raise GraphError(0, "UntrustedLink", "a next link points outside Graph's base URL")
            return url, url.raw_path[len(base_path) :]
        path = path_or_url if path_or_url.startswith("/") else "/" + path_or_url
        return URL(str(self._base) + path, encoded=True), path

    @contextlib.asynccontextmanager
    async def _mailbox_slot(self, key: str | None) -> AsyncIterator[None]:
        """At most `mailbox_concurrency` requests in flight per mailbox; slots of idle
        mailboxes are dropped so the table does not grow with every user seen."""
        if key is None:
            yield
            return
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _MailboxSlot(asyncio.Semaphore(self._mailbox_concurrency))
        slot.users += 1
        try:
            async with slot.semaphore:
                yield
        finally:
            slot.users -= 1
            if slot.users == 0 and self._slots.get(key) is slot:
                del self._slots[key]

    def _backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of base * 2**attempt."""
        ceiling = min(self._backoff * 2.0**attempt, self._max_retry_after)
        return ceiling / 2 + self._random() * ceiling / 2


# == helpers ======================================================================================
def _segment(value: str) -> str:
    """A path segment, percent-encoded (emails keep their @)."""
    return quote(value, safe="@")


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetimes given to Graph must be timezone-aware")
    return value.astimezone(UTC)


def _wall_time(value: datetime) -> str:
    """A dateTimeTimeZone.dateTime: wall-clock time without offset."""
    return value.replace(tzinfo=None).isoformat(timespec="seconds")


def _iso_z(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _values(response: _Response) -> list[object]:
    return as_list((as_object(response.body) or {}).get("value"))


def _email_of(raw: object) -> str | None:
    obj = as_object(raw)
    email = get_str(obj, "emailAddress") if obj is not None else None
    return email.lower() if email else None


def _lacks_building(raw: object) -> bool:
    obj = as_object(raw)
    return obj is not None and get_str(obj, "building") is None


def _unique_rooms(rooms: Iterable[Room | None]) -> list[Room]:
    seen: set[str] = set()
    unique: list[Room] = []
    for room in rooms:
        if room is not None and room.id not in seen:
            seen.add(room.id)
            unique.append(room)
    return unique


def _items_from_view(view: str | None, start: datetime, interval: int) -> list[ScheduleItem]:
    """Schedule items from availabilityView digits (0 free, 1 tentative, 2 busy, 3 oof,
    4 working elsewhere), for answers that carry no scheduleItems."""
    items: list[ScheduleItem] = []
    for index, digit in enumerate(view or ""):
        if digit != "0":
            slot_start = start + timedelta(minutes=interval * index)
            items.append(ScheduleItem(slot_start, slot_start + timedelta(minutes=interval), "busy"))
    return items


def _busy(items: Iterable[ScheduleItem], start: datetime, end: datetime) -> list[Interval]:
    """Busy spans overlapping [start, end), sorted and merged."""
    spans = sorted(
        (item.start, item.end)
        for item in items
        if item.is_busy and item.start < end and item.end > start and item.end > item.start
    )
    merged: list[Interval] = []
    for span_start, span_end in spans:
        if merged and span_start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], span_end))
        else:
            merged.append((span_start, span_end))
    return merged


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds (Graph sends delta-seconds); None when absent or unreadable."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                seconds = float(value.strip())
            except ValueError:
                return None
            return max(seconds, 0.0)
    return None


def _mailbox_key(relative_path: str, token: str) -> str | None:
    """Whose mailbox a request works on: /users/{id}/... that user's, /me/... and /$batch the
    token owner's. Places are directory reads, not mailbox requests."""
    segments = [segment for segment in relative_path.split("?")[0].split("/") if segment]
    if not segments:
        return None
    head = segments[0].lower()
    if head == "users" and len(segments) > 1:
        return "user:" + unquote(segments[1]).lower()
    if head in {"me", "$batch"}:
        return "me:" + _token_owner(token)
    return None


def _token_owner(token: str) -> str:
    """A stable key for the token's user: tenant and object id when the token is a readable
    JWT (read only to group requests, never trusted), else a digest of the token."""
    claims = unverified_claims(token)
    if claims is not None:
        oid = get_str(claims, "oid")
        if oid is not None:
            return f"{get_str(claims, 'tid') or ''}/{oid}"
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def _batch_entry(request: BatchRequest) -> JsonObject:
    entry: JsonObject = {"id": request.id, "method": request.method.upper(), "url": request.url}
    headers = dict(request.headers)
    if request.body is not None:
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        entry["body"] = request.body
    if headers:
        entry["headers"] = headers
    return entry


def _event_from(response: _Response) -> GraphEvent:
    try:
        return parse_event(response.body)
    except ValueError as error:
        raise _invalid(response, str(error)) from None


def _invalid(response: _Response, why: str) -> GraphError:
    logger.warning("graph answer unusable (%s), request-id %s", why, response.request_id)
    return GraphError(response.status, "InvalidResponse", why, response.request_id)


def _error_from(response: _Response, token: str) -> GraphError:
    """The typed error for a failed answer, from Graph's error JSON."""
    error = as_object((as_object(response.body) or {}).get("error")) or {}
    code = get_str(error, "code") or f"Http{response.status}"
    message = _redact(get_str(error, "message") or "", token)[:500]
    inner = as_object(error.get("innerError")) or as_object(error.get("innererror")) or {}
    request_id = response.request_id or get_str(inner, "request-id")
    status = response.status
    if status in (401, 403):
        return GraphAuthError(status, code, message, request_id)
    if status == 404:
        return GraphNotFound(status, code, message, request_id)
    if status in _THROTTLED:
        return GraphThrottled(
            status, code, message, request_id, retry_after=_retry_after(response.headers)
        )
    if status >= 500:
        return GraphUnavailable(status, code, message, request_id)
    return GraphError(status, code, message, request_id)


def _redact(text: str, token: str) -> str:
    """Graph never echoes tokens, but an error message must not carry one even if it did."""
    if token:
        text = text.replace(token, "[redacted]")
    return _BEARER.sub("Bearer [redacted]", text)
