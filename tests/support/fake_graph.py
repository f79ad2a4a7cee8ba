"""A fake Microsoft Graph v1.0 speaking the real wire format, to test the Graph client end to end.

`FakeGraph(tenant)` is an aiohttp server on 127.0.0.1 (a free port) whose `base_url`
(`http://127.0.0.1:PORT/v1.0`) is what the bot gets as GRAPH_BASE_URL. It keeps everything in
memory: a `FakeTenant` (users, rooms, room lists, bearer tokens) and the calendars of every user
and room. It answers the requests Frontdesk makes (places, getSchedule, events, onlineMeetings,
manager, mailboxSettings, sendMail, $batch) the way the Graph v1.0 reference pages show them, and
Exchange's resource booking is simulated: a room invited to a meeting answers `accepted` (and the
meeting lands in the room's calendar) or `declined` when the slot is taken, a little later.

Tests steer it: `throttle`, `fail`, `hang`, `latency`, `mailbox_concurrency_limit`,
`tenant.drop_join_links`, `room_response_delay` with `settle()` or `wait_for_room_responses()`,
`book()` to seed any calendar; and read what happened: `requests`, `counts`,
`max_concurrency_by_mailbox`, `sent_mail`, `online_meetings`, `calendar()`, `event()`,
`contract_problems` / `assert_contract()` (every request, batch steps included, goes through
`tests.support.graph_contract.check_request`).

The wire-format decisions and their sources are listed in `WIRE_FORMAT_NOTES` below.
"""

from __future__ import annotations

import asyncio
import base64
import html
import itertools
import json
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from tests.support.graph_contract import check_request
from tests.support.local_server import LocalServer, parse_body

WIRE_FORMAT_NOTES = """
Sources (microsoftgraph/microsoft-graph-docs-contrib, published on learn.microsoft.com/graph):
- List places (api/place-list): /places/microsoft.graph.room, .../microsoft.graph.roomlist,
  /places/{roomlist-email}/microsoft.graph.roomlist/rooms; 100 per page, $top sets the page size.
  room resource (resources/room): capacity Int32, isWheelChairAccessible, displayDeviceName... The
  List places example differs from the schema (capacity "50" as text, isWheelchairAccessible,
  displayDevice): FakeRoom.overrides / omit / a text capacity reproduce that.
- calendar: getSchedule (api/calendar-getschedule) and "Get free/busy schedule" (concepts/
  outlook-get-free-busy-schedule): up to 20 schedules, range under 62 days, interval 5-1440
  (default 30, sent as text in one example), Prefer: outlook.timezone else UTC, dateTime with 7
  fractional digits, availabilityView 0 free/workingElsewhere, 1 tentative, 2 busy, 3 oof; an
  unknown schedule gives an item with a freeBusyError {message, responseCode}
  (resources/freebusyerror). The concept page writes statuses capitalised ("Busy"):
  `schedule_status_style = "title"` reproduces that.
- Create event (api/user-post-events): 201 and the event; attendees start with
  {"response": "none", "time": "0001-01-01T00:00:00Z"}; organizer responseStatus "organizer";
  isOnlineMeeting + onlineMeetingProvider teamsForBusiness -> onlineMeeting {joinUrl,
  conferenceId, tollNumber}; transactionId echoed (resources/event: "avoid redundant POST
  operations in case of client retries"); a room is an attendee of type resource.
- event: cancel (api/event-cancel): 202, no body. Delete: 204.
- Create onlineMeeting (api/application-post-onlinemeetings): 201 with id, joinWebUrl,
  joinMeetingIdSettings, chatInfo, participants.organizer.
- List manager (api/user-list-manager); Get mailboxSettings (api/user-get-mailboxsettings):
  timeZone, automaticRepliesSetting, workingHours, language, dateFormat, timeFormat.
- user: sendMail (api/user-sendmail): 202, no body; saveToSentItems may arrive as text "false".
- JSON batching (concepts/json-batching): at most 20 requests; responses {id, status, headers,
  body}; relative urls; a body needs a Content-Type header; dependsOn -> 424 on failure.
- Throttling (concepts/throttling): 429 + Retry-After (the sample shows "2.128"), body
  {"error": {"code": "TooManyRequests", "message": "Please retry again later.",
  "innerError": {"code": "429", "status": "429", ...}}}.
- Errors (concepts/errors): {"error": {"code", "message", "innerError": {"request-id",
  "date"}}}; 503 serviceNotAvailable may carry Retry-After.
Not in the documentation, taken from observed Graph behaviour and marked as such:
- transactionId replay: a repeated POST with the same transactionId and the same content answers
  201 with the existing event; different content answers 400 ErrorDuplicateTransactionId ("The
  TransactionId specified in the request has already been used to create a different event.").
  `transaction_replay = "error"` makes identical replays fail that way too.
- 401 InvalidAuthenticationToken, 404 Request_ResourceNotFound (manager), 404 ErrorItemNotFound,
  404 ErrorInvalidUser, 403 ErrorAccessDenied, 429 ApplicationThrottled "Application is over its
  MailboxConcurrency limit.", codes and texts for invalid getSchedule/calendarView parameters.
"""

GRAPH_ZONE_ALIASES: dict[str, str] = {
    # Windows time zone ids (what mailboxSettings and Prefer: outlook.timezone use) -> IANA.
    "UTC": "UTC",
    "Dateline Standard Time": "Etc/GMT+12",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Alaskan Standard Time": "America/Anchorage",
    "Pacific Standard Time": "America/Los_Angeles",
    "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time": "America/Denver",
    "Central Standard Time": "America/Chicago",
    "Central Standard Time (Mexico)": "America/Mexico_City",
    "Eastern Standard Time": "America/New_York",
    "Atlantic Standard Time": "America/Halifax",
    "Newfoundland Standard Time": "America/St_Johns",
    "E. South America Standard Time": "America/Sao_Paulo",
    "Argentina Standard Time": "America/Argentina/Buenos_Aires",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "GMT Standard Time": "Europe/London",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Central European Standard Time": "Europe/Warsaw",
    "Romance Standard Time": "Europe/Paris",
    "W. Central Africa Standard Time": "Africa/Lagos",
    "Morocco Standard Time": "Africa/Casablanca",
    "GTB Standard Time": "Europe/Bucharest",
    "FLE Standard Time": "Europe/Kiev",
    "E. Europe Standard Time": "Europe/Chisinau",
    "Egypt Standard Time": "Africa/Cairo",
    "South Africa Standard Time": "Africa/Johannesburg",
    "Israel Standard Time": "Asia/Jerusalem",
    "Turkey Standard Time": "Europe/Istanbul",
    "Russian Standard Time": "Europe/Moscow",
    "Arab Standard Time": "Asia/Riyadh",
    "Iran Standard Time": "Asia/Tehran",
    "Arabian Standard Time": "Asia/Dubai",
    "Pakistan Standard Time": "Asia/Karachi",
    "India Standard Time": "Asia/Kolkata",
    "SE Asia Standard Time": "Asia/Bangkok",
    "China Standard Time": "Asia/Shanghai",
    "Singapore Standard Time": "Asia/Singapore",
    "Taipei Standard Time": "Asia/Taipei",
    "W. Australia Standard Time": "Australia/Perth",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "Cen. Australia Standard Time": "Australia/Adelaide",
    "E. Australia Standard Time": "Australia/Brisbane",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "New Zealand Standard Time": "Pacific/Auckland",
}

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]
MAX_BATCH_REQUESTS = 20
MAX_SCHEDULES = 20
MAX_SCHEDULE_DAYS = 62
NO_RESPONSE_TIME = "0001-01-01T00:00:00Z"
GRAPH_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)
AVAILABILITY_DIGITS = {
    "free": 0,
    "workingElsewhere": 0,
    "unknown": 0,
    "tentative": 1,
    "busy": 2,
    "oof": 3,
}
ATTENDEE_TYPES = ("required", "optional", "resource")
_NAMESPACE = uuid.UUID("5b3a6f4e-8c1d-4b7a-9e2f-0a1b2c3d4e5f")

ContractChecker = Callable[..., list[str]]


def graph_zone(name: str) -> ZoneInfo | None:
    """The zone a Graph time zone name (Windows id or IANA name) stands for; None if unknown."""
    iana = GRAPH_ZONE_ALIASES.get(name, name)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def stable_id(text: str, *, upper: bool = False) -> str:
    """A GUID derived from text, so a tenant built twice has the same ids."""
    value = str(uuid.uuid5(_NAMESPACE, text))
    return value.upper() if upper else value


# -- tenant data ------------------------------------------------------------------------------
@dataclass
class FakeUser:
    """A user with a mailbox."""

    id: str
    display_name: str
    mail: str
    user_principal_name: str
    manager_id: str | None = None
    time_zone: str = "UTC"
    """mailboxSettings.timeZone: a Windows zone id such as "Pacific Standard Time"."""
    automatic_replies: dict[str, Any] = field(default_factory=dict)
    """automaticRepliesSetting fields that replace the defaults (status "disabled")."""
    job_title: str | None = None
    office_location: str | None = None
    preferred_language: str = "en-US"

    @property
    def address(self) -> str:
        return self.mail.lower()

    def given_name(self) -> str:
        return self.display_name.split(" ")[0]

    def surname(self) -> str:
        parts = self.display_name.split(" ", 1)
        return parts[1] if len(parts) > 1 else ""

    def to_graph(self) -> dict[str, Any]:
        return {
            "businessPhones": [],
            "displayName": self.display_name,
            "givenName": self.given_name(),
            "jobTitle": self.job_title,
            "mail": self.mail,
            "mobilePhone": None,
            "officeLocation": self.office_location,
            "preferredLanguage": self.preferred_language,
            "surname": self.surname(),
            "userPrincipalName": self.user_principal_name,
            "id": self.id,
        }


@dataclass
class FakeRoom:
    """A room mailbox; text `capacity`, `omit` and `overrides` bend its JSON as tenants do."""

    id: str
    display_name: str
    email: str
    capacity: int | str | None = 8
    building: str | None = None
    floor_number: int | None = None
    floor_label: str | None = None
    audio_device_name: str | None = None
    video_device_name: str | None = None
    display_device_name: str | None = None
    is_wheelchair_accessible: bool = True
    tags: list[str] = field(default_factory=list)
    booking_type: str = "standard"
    nickname: str | None = None
    label: str | None = None
    phone: str | None = None
    address: dict[str, Any] | None = None
    omit: frozenset[str] = frozenset()
    """JSON property names left out of the answer (a tenant that never filled them in)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """JSON properties set or added as given (e.g. the docs example's "displayDevice")."""
    auto_respond: bool = True
    """Whether the room answers invitations (resource booking); False leaves them at "none"."""

    @property
    def mailbox(self) -> str:
        return self.email.lower()

    def to_graph(self) -> dict[str, Any]:
        room: dict[str, Any] = {
            "id": self.id,
            "emailAddress": self.email,
            "displayName": self.display_name,
            "address": self.address,
            "geoCoordinates": None,
            "phone": self.phone,
            "nickname": self.nickname if self.nickname is not None else self.display_name,
            "label": self.label,
            "capacity": self.capacity,
            "building": self.building,
            "floorNumber": self.floor_number,
            "floorLabel": self.floor_label,
            "isManaged": True,
            "isWheelChairAccessible": self.is_wheelchair_accessible,
            "bookingType": self.booking_type,
            "tags": list(self.tags),
            "audioDeviceName": self.audio_device_name,
            "videoDeviceName": self.video_device_name,
            "displayDeviceName": self.display_device_name,
        }
        for name in self.omit:
            room.pop(name, None)
        room.update(self.overrides)
        return room


@dataclass
class FakeRoomList:
    """A room list (a distribution group of rooms) that /places lists."""

    id: str
    display_name: str
    email: str
    room_emails: list[str] = field(default_factory=list)

    def to_graph(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "address": None,
            "geoCoordinates": None,
            "phone": None,
            "emailAddress": self.email,
        }


@dataclass
class FakeTenant:
    """The directory: users, rooms, room lists, and which bearer token is whose."""

    users: dict[str, FakeUser] = field(default_factory=dict)
    rooms: list[FakeRoom] = field(default_factory=list)
    room_lists: list[FakeRoomList] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    """Bearer token -> user id (delegated tokens)."""
    app_tokens: set[str] = field(default_factory=set)
    """Bearer tokens of the application itself (app-only: no /me, any user's mailbox)."""
    tenant_id: str = "72f988bf-0000-4000-8000-00000000c0de"
    domain: str = "contoso.example"
    drop_join_links: bool = False
    """Simulate tenants whose Teams meetings come back without onlineMeeting.joinUrl."""

    # -- building -------------------------------------------------------------------------
    def add_user(
        self,
        display_name: str,
        mail: str | None = None,
        *,
        user_id: str | None = None,
        manager: FakeUser | str | None = None,
        time_zone: str = "UTC",
        **extra: Any,
    ) -> FakeUser:
        """Add a user; the id is derived from the address unless given."""
        mail = mail or f"{display_name.split(' ')[0].lower()}@{self.domain}"
        manager_id = manager.id if isinstance(manager, FakeUser) else manager
        user = FakeUser(
            id=user_id or stable_id(mail.lower()),
            display_name=display_name,
            mail=mail,
            user_principal_name=extra.pop("user_principal_name", mail),
            manager_id=manager_id,
            time_zone=time_zone,
            **extra,
        )
        self.users[user.id] = user
        return user

    def add_room(self, display_name: str, email: str, **properties: Any) -> FakeRoom:
        """Add a room; the id is derived from the address unless `id` is given."""
        room_id = properties.pop("id", None) or stable_id(email.lower(), upper=True)
        room = FakeRoom(id=room_id, display_name=display_name, email=email, **properties)
        self.rooms.append(room)
        return room

    def add_room_list(
        self, display_name: str, email: str, rooms: Iterable[FakeRoom | str] = ()
    ) -> FakeRoomList:
        """Add a room list holding the given rooms (objects or addresses)."""
        room_list = FakeRoomList(
            id=stable_id(email.lower(), upper=True),
            display_name=display_name,
            email=email,
            room_emails=[room.email if isinstance(room, FakeRoom) else room for room in rooms],
        )
        self.room_lists.append(room_list)
        return room_list

    def issue_token(self, user: FakeUser | str, token: str | None = None) -> str:
        """Register a delegated bearer token for a user and return it."""
        user_id = user.id if isinstance(user, FakeUser) else user
        token = token or f"token-{user_id}"
        self.tokens[token] = user_id
        return token

    # -- lookups --------------------------------------------------------------------------
    def user(self, key: str) -> FakeUser | None:
        """A user by id, userPrincipalName or mail (case-insensitive)."""
        wanted = key.lower()
        for user in self.users.values():
            if wanted in (user.id.lower(), user.user_principal_name.lower(), user.address):
                return user
        return None

    def room(self, key: str) -> FakeRoom | None:
        """A room by address or id (case-insensitive)."""
        wanted = key.lower()
        for room in self.rooms:
            if wanted in (room.mailbox, room.id.lower()):
                return room
        return None

    def room_list(self, email: str) -> FakeRoomList | None:
        wanted = email.lower()
        return next((rl for rl in self.room_lists if rl.email.lower() == wanted), None)

    def display_name_of(self, address: str) -> str | None:
        user = self.user(address)
        if user is not None:
            return user.display_name
        room = self.room(address)
        return room.display_name if room is not None else None

    # -- a realistic directory ----------------------------------------------------------
    @classmethod
    def demo(cls, *, messy: bool = False) -> FakeTenant:
        """100 rooms in 3 room lists and four users with tokens "token-adele", "token-megan"...

        Deterministic: the same names, addresses and ids every time. With `messy=True` some rooms
        come back the way real tenants answer: capacity as text (every 10th room), no floor
        (every 15th), and one room with the docs example's spellings (`displayDevice`,
        `isWheelchairAccessible`).
        """
        tenant = cls()
        patti = tenant.add_user(
            "Patti Fernandez",
            f"pattif@{tenant.domain}",
            time_zone="Eastern Standard Time",
            job_title="President",
        )
        adele = tenant.add_user(
            "Adele Vance",
            f"adelev@{tenant.domain}",
            manager=patti,
            time_zone="Pacific Standard Time",
            job_title="Retail Manager",
        )
        megan = tenant.add_user(
            "Megan Bowen",
            f"meganb@{tenant.domain}",
            manager=patti,
            time_zone="GMT Standard Time",
            job_title="Marketing Manager",
        )
        alex = tenant.add_user(
            "Alex Wilber",
            f"alexw@{tenant.domain}",
            manager=adele,
            time_zone="W. Europe Standard Time",
            job_title="Marketing Assistant",
            automatic_replies={
                "status": "scheduled",
                "scheduledStartDateTime": {
                    "dateTime": "2026-12-21T08:00:00.0000000",
                    "timeZone": "UTC",
                },
                "scheduledEndDateTime": {
                    "dateTime": "2027-01-04T08:00:00.0000000",
                    "timeZone": "UTC",
                },
                "internalReplyMessage": "<p>Away until 4 January.</p>",
                "externalReplyMessage": "<p>Away until 4 January.</p>",
            },
        )
        for key, user in (("patti", patti), ("adele", adele), ("megan", megan), ("alex", alex)):
            tenant.issue_token(user, f"token-{key}")

        buildings = [
            ("Harbour House", "harbour", "hh", [1, 2, 3, 4], 34),
            ("Meridian Tower", "meridian", "mt", [0, 1, 2, 3, 4, 5, 6], 33),
            ("Foundry", "foundry", "fd", [1, 2, 3], 33),
        ]
        capacities = [4, 6, 8, 10, 12, 16, 20, 2, 6, 8, 4, 24]
        tag_sets = [["whiteboard"], ["window", "whiteboard"], [], ["quiet"], ["sofa", "window"]]
        number = 0
        for building, slug, short, floors, count in buildings:
            members: list[FakeRoom] = []
            for index in range(count):
                number += 1
                floor = floors[index % len(floors)]
                seat = index // len(floors) + 1
                capacity = capacities[number % len(capacities)]
                name = f"{building.split(' ')[0]} {floor}.{seat:02d}"
                if slug == "foundry" and index == 0:
                    name = "Foundry Café"
                big = capacity >= 8
                room = tenant.add_room(
                    name,
                    f"{short}-{floor}-{seat:02d}@{tenant.domain}",
                    capacity=capacity,
                    building=building,
                    floor_number=floor,
                    floor_label="G" if floor == 0 else str(floor),
                    audio_device_name="Ceiling microphones" if big else None,
                    video_device_name="Teams Room camera" if big else None,
                    display_device_name="75-inch display" if big else "Wall screen",
                    is_wheelchair_accessible=number % 3 != 0,
                    tags=list(tag_sets[number % len(tag_sets)]),
                    booking_type="reserved" if number % 25 == 0 else "standard",
                    label=f"{floor}.{seat:02d}",
                )
                if messy:
                    if number % 10 == 0:
                        room.capacity = str(capacity)
                    if number % 15 == 0:
                        room.omit = frozenset({"floorNumber", "floorLabel"})
                    if number == 7:
                        room.omit = frozenset({"displayDeviceName", "isWheelChairAccessible"})
                        room.overrides = {
                            "displayDevice": "surface hub",
                            "isWheelchairAccessible": False,
                        }
                members.append(room)
            tenant.add_room_list(building, f"rooms-{slug}@{tenant.domain}", members)
        return tenant


# -- calendars ------------------------------------------------------------------------------
@dataclass
class StoredEvent:
    """An event in one mailbox's calendar (a user's meeting, or a room's copy of it)."""

    id: str
    mailbox: str
    subject: str
    start: datetime
    end: datetime
    start_zone: str = "UTC"
    end_zone: str = "UTC"
    body: dict[str, Any] = field(default_factory=lambda: {"contentType": "html", "content": ""})
    attendees: list[dict[str, Any]] = field(default_factory=list)
    location: dict[str, Any] | None = None
    locations: list[dict[str, Any]] = field(default_factory=list)
    organizer: dict[str, Any] = field(default_factory=dict)
    is_organizer: bool = True
    show_as: str = "busy"
    is_online_meeting: bool = False
    online_meeting_provider: str = "unknown"
    online_meeting: dict[str, Any] | None = None
    transaction_id: str | None = None
    ical_uid: str = ""
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: int = 1
    source_id: str | None = None
    """For a room's copy: the id of the organizer's event it came from."""
    removed: str | None = None
    """"cancel" or "delete" once the event left its calendar."""
    cancel_comment: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.removed is None

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end

    def attendee_status(self, address: str) -> str | None:
        """The response ("none", "accepted", "declined"...) of one attendee, by address."""
        for attendee in self.attendees:
            if _address_of(attendee) == address.lower():
                return str(attendee["status"]["response"])
        return None


@dataclass
class GraphRequest:
    """One request the fake received (batch steps are recorded as requests too)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Request headers; the bearer token's value is replaced by "***"."""
    json: Any
    timestamp: float
    user: str | None
    """The caller's user id, "app" for an app token, None when unauthenticated."""
    batch_id: str | None = None
    """The step id when the request arrived inside a $batch."""
    status: int | None = None
    """The status the fake answered with (None while in flight)."""


@dataclass
class SentMail:
    """A message accepted by sendMail."""

    sender: str
    message: dict[str, Any]
    save_to_sent_items: bool

    @property
    def recipients(self) -> list[str]:
        found: list[str] = []
        for kind in ("toRecipients", "ccRecipients", "bccRecipients"):
            for recipient in self.message.get(kind) or []:
                found.append(str(recipient.get("emailAddress", {}).get("address", "")))
        return found


@dataclass
class _Fault:
    kind: Literal["error", "hang"]
    path_substring: str
    method: str | None
    times: int | None
    status: int = 0
    code: str = ""
    message: str = ""
    retry_after: float | None = None
    seconds: float = 0.0
    after_processing: bool = False

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path_substring in path

    def use(self) -> None:
        if self.times is not None:
            self.times -= 1


@dataclass
class _Call:
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: Any
    body_error: bool = False
    batch_id: str | None = None


@dataclass
class _Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Caller:
    user: FakeUser | None
    is_app: bool = False

    @property
    def label(self) -> str:
        return "app" if self.is_app or self.user is None else self.user.id


@dataclass
class _Ctx:
    call: _Call
    request_id: str
    client_request_id: str
    caller: _Caller | None
    match: re.Match[str] | None = None
    user_segment: str | None = None


Handler = Callable[[_Ctx], Awaitable[_Reply]]


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    label: str
    scoped: bool
    kind: Literal["mailbox", "directory", "tenant"]


class _GraphError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# -- the server -----------------------------------------------------------------------------
class FakeGraph(LocalServer):
    """An in-memory Microsoft Graph v1.0 on 127.0.0.1; use as `async with FakeGraph(tenant)`."""

    def __init__(
        self,
        tenant: FakeTenant | None = None,
        *,
        host: str = "127.0.0.1",
        clock: Callable[[], datetime] | None = None,
        contract_checker: ContractChecker = check_request,
    ) -> None:
        super().__init__(host=host)
        self.tenant = tenant if tenant is not None else FakeTenant.demo()
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))

        # knobs
        self.page_size = 100
        """Places per page when the request has no $top (Graph: 100)."""
        self.events_page_size = 10
        """Events per page for /events and /calendarView without $top (Outlook: 10)."""
        self.room_response_delay: float | None = 0.2
        """Seconds before rooms answer invitations; None: only when `settle()` is awaited."""
        self.latency = 0.0
        """Seconds added to every request (batch steps included)."""
        self.mailbox_concurrency_limit: int | None = None
        """When set, a request beyond this many in flight for one mailbox answers 429."""
        self.transaction_replay: Literal["existing", "error"] = "existing"
        self.schedule_status_style: Literal["lower", "title"] = "lower"
        self.batch_reverse_order = False
        """Answer batch steps in reverse order (Graph does not promise the request order)."""

        # records
        self.requests: list[GraphRequest] = []
        self.counts: Counter[str] = Counter()
        """Requests per route, e.g. counts["POST /me/events"], counts["GET /places/..."]."""
        self.max_concurrency_by_mailbox: dict[str, int] = {}
        self.sent_mail: list[SentMail] = []
        self.online_meetings: list[dict[str, Any]] = []
        self.events: dict[str, StoredEvent] = {}
        """Every event ever stored, by id, including removed ones (see StoredEvent.removed)."""
        self.contract_problems: list[str] = []
        self.contract_checks = 0
        """How many requests went through the contract checker."""

        self.contract_checker = contract_checker
        """`graph_contract.check_request`; tests may replace it."""
        self._in_flight: Counter[str] = Counter()
        self._faults: list[_Fault] = []
        self._pending_responses: dict[str, asyncio.TimerHandle | None] = {}
        self._responded = asyncio.Event()
        self._ids = itertools.count(1)
        self._request_ids = itertools.count(1)
        self._routes = self._build_routes()

    # -- lifecycle ----------------------------------------------------------------------
    # A short shutdown: requests parked by hang() must not hold up the test's teardown.
    shutdown_timeout = 0.2

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/v1.0/{tail:.*}", self._http)
        app.router.add_route("*", "/{tail:.*}", self._outside_version)

    async def close(self) -> None:
        for handle in self._pending_responses.values():
            if handle is not None:
                handle.cancel()
        self._pending_responses.clear()
        await super().close()

    @property
    def base_url(self) -> str:
        """GRAPH_BASE_URL for the bot: `http://127.0.0.1:PORT/v1.0` (no trailing slash)."""
        return f"{self.origin}/v1.0"

    # -- contract -----------------------------------------------------------------------
    def assert_contract(self) -> None:
        """Fail listing every request that broke the Graph contract (or the fake's own checks)."""
        if self.contract_problems:
            listed = "\n".join(f"- {problem}" for problem in self.contract_problems)
            raise AssertionError(
                f"{len(self.contract_problems)} Graph contract problem(s):\n{listed}"
            )

    def _check_contract(self, call: _Call) -> None:
        self.contract_checks += 1
        try:
            problems = self.contract_checker(
                call.method, call.path, call.body, query=dict(call.query)
            )
        except Exception as error:  # a crashing checker is a finding, not a fake failure
            problems = [f"contract checker raised {error!r}"]
        prefix = f"{call.method} {call.path}"
        for problem in problems:
            shown = problem if problem.startswith(prefix) else f"{prefix}: {problem}"
            self.contract_problems.append(shown)

    def _usage_problem(self, call: _Call, problem: str) -> None:
        self.contract_problems.append(f"{call.method} {call.path}: fake_graph: {problem}")

    # -- faults -------------------------------------------------------------------------
    def throttle(
        self,
        path_substring: str,
        times: int | None = 1,
        retry_after: float = 1,
        status: Literal[429, 503] = 429,
        *,
        method: str | None = None,
    ) -> None:
        """Answer the next `times` matching requests 429 (or 503) with Retry-After."""
        code, message = (
            ("TooManyRequests", "Please retry again later.")
            if status == 429
            else ("serviceNotAvailable", "The service is temporarily unavailable.")
        )
        self.fail(
            path_substring,
            status,
            code,
            times,
            message=message,
            method=method,
            retry_after=retry_after,
        )

    def fail(
        self,
        path_substring: str,
        status: int,
        code: str,
        times: int | None = 1,
        *,
        message: str | None = None,
        method: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next `times` matching requests with a Graph error of this status and code."""
        self._faults.append(
            _Fault(
                "error",
                path_substring,
                method,
                times,
                status=status,
                code=code,
                message=message or f"Injected failure for {path_substring}",
                retry_after=retry_after,
            )
        )

    def hang(
        self,
        path_substring: str,
        seconds: float,
        times: int | None = 1,
        *,
        method: str | None = None,
        after_processing: bool = False,
    ) -> None:
        """Hold matching requests for `seconds` (to test timeouts), then answer normally.

        With `after_processing=True` the request takes effect first and only the answer is late:
        the case where a client times out on a POST that did create the event.
        """
        self._faults.append(
            _Fault(
                "hang",
                path_substring,
                method,
                times,
                seconds=seconds,
                after_processing=after_processing,
            )
        )

    def clear_faults(self) -> None:
        self._faults.clear()

    def _take_fault(self, kind: str, call: _Call) -> _Fault | None:
        for fault in self._faults:
            if fault.kind == kind and fault.matches(call.method, call.path):
                fault.use()
                return fault
        return None

    # -- calendar control and inspection ------------------------------------------------
    def calendar(self, mailbox: str) -> list[StoredEvent]:
        """The active events of a user's or room's calendar, by start."""
        wanted = mailbox.lower()
        found = [e for e in self.events.values() if e.mailbox == wanted and e.active]
        return sorted(found, key=lambda e: (e.start, e.id))

    def event(self, event_id: str) -> StoredEvent:
        return self.events[event_id]

    def book(
        self,
        mailbox: str,
        start: datetime,
        end: datetime,
        *,
        subject: str = "Busy",
        show_as: str = "busy",
        organizer: str | None = None,
    ) -> StoredEvent:
        """Put an event straight into any calendar (a user's or a room's), as seed data."""
        address = mailbox.lower()
        if self.tenant.user(address) is None and self.tenant.room(address) is None:
            raise KeyError(f"no mailbox {mailbox}")
        organizer_address = organizer or mailbox
        event = self._new_event(
            mailbox=address,
            subject=subject,
            start=_as_utc(start),
            end=_as_utc(end),
            organizer=self._recipient(organizer_address),
            is_organizer=organizer is None,
            show_as=show_as,
        )
        return event

    async def settle(self) -> None:
        """Let every room answer the invitations still waiting for it, in creation order."""
        while self._pending_responses:
            event_id = next(iter(self._pending_responses))
            handle = self._pending_responses.pop(event_id)
            if handle is not None:
                handle.cancel()
            self._rooms_respond(event_id)

    @property
    def pending_room_responses(self) -> int:
        return len(self._pending_responses)

    async def wait_for_room_responses(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 - the deadline is part of what a test asks for
    ) -> None:
        """Wait until the rooms have answered every invitation on their own (the timers)."""
        try:
            async with asyncio.timeout(timeout):
                while self._pending_responses:
                    self._responded.clear()
                    await self._responded.wait()
        except TimeoutError:
            raise AssertionError(
                f"rooms still owe {len(self._pending_responses)} answer(s) after {timeout} s"
                " (room_response_delay None means: await settle())"
            ) from None

    def requests_to(self, method: str, path_substring: str = "") -> list[GraphRequest]:
        """Recorded requests with this method whose path contains the substring."""
        return [r for r in self.requests if r.method == method.upper() and path_substring in r.path]

    # -- HTTP glue ----------------------------------------------------------------------
    async def _http(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body, body_error = parse_body(raw)
        call = _Call(
            method=request.method.upper(),
            path="/" + request.match_info["tail"],
            query={key: request.query[key] for key in request.query},
            headers=CIMultiDict(request.headers),
            body=body,
            body_error=body_error,
        )
        reply = await self._process(call)
        return _to_response(reply)

    async def _outside_version(self, request: web.Request) -> web.Response:
        request_id = self._next_request_id()
        client_request_id = request.headers.get("client-request-id", request_id)
        raw = await request.read()
        self.requests.append(
            GraphRequest(
                method=request.method.upper(),
                path=request.path,
                query={key: request.query[key] for key in request.query},
                headers=_redacted(request.headers),
                json=parse_body(raw)[0],
                timestamp=asyncio.get_running_loop().time(),
                user=None,
                status=400,
            )
        )
        self.contract_problems.append(
            f"{request.method} {request.path}: fake_graph: not under /v1.0 (check the base URL)"
        )
        body = _error_body(
            "BadRequest",
            f"Invalid version: {request.path}",
            request_id,
            client_request_id,
            self.clock(),
        )
        headers = {"request-id": request_id, "client-request-id": client_request_id}
        return _to_response(_Reply(400, body, headers))

    # -- dispatch -----------------------------------------------------------------------
    async def _process(self, call: _Call) -> _Reply:
        request_id = self._next_request_id()
        ctx = _Ctx(
            call=call,
            request_id=request_id,
            client_request_id=call.headers.get("client-request-id", request_id),
            caller=self._caller(call),
        )
        record = GraphRequest(
            method=call.method,
            path=call.path,
            query=dict(call.query),
            headers=_redacted(call.headers),
            json=call.body,
            timestamp=asyncio.get_running_loop().time(),
            user=ctx.caller.label if ctx.caller else None,
            batch_id=call.batch_id,
        )
        self.requests.append(record)
        self._check_contract(call)
        route, allowed = self._resolve(ctx)
        self.counts[route.label if route else f"{call.method} <unknown route>"] += 1
        mailbox = self._target_mailbox(ctx, route)
        over_limit = False
        if mailbox is not None:
            self._in_flight[mailbox] += 1
            in_flight = self._in_flight[mailbox]
            self.max_concurrency_by_mailbox[mailbox] = max(
                self.max_concurrency_by_mailbox.get(mailbox, 0), in_flight
            )
            limit = self.mailbox_concurrency_limit
            over_limit = limit is not None and in_flight > limit
        try:
            try:
                reply = await self._handle(ctx, route, allowed, over_limit=over_limit)
            except _GraphError as error:
                reply = self._error(ctx, error.status, error.code, error.message)
        finally:
            if mailbox is not None:
                self._in_flight[mailbox] -= 1
        reply.headers.setdefault("request-id", request_id)
        reply.headers.setdefault("client-request-id", ctx.client_request_id)
        record.status = reply.status
        return reply

    async def _handle(
        self, ctx: _Ctx, route: _Route | None, allowed: list[str], *, over_limit: bool
    ) -> _Reply:
        call = ctx.call
        if self.latency:
            await asyncio.sleep(self.latency)
        hang = self._take_fault("hang", call)
        if hang is not None and not hang.after_processing:
            await asyncio.sleep(hang.seconds)
        if ctx.caller is None:
            message = (
                "Access token is empty."
                if "Authorization" not in call.headers
                else "Access token validation failure."
            )
            reply = self._error(ctx, 401, "InvalidAuthenticationToken", message)
            reply.headers["WWW-Authenticate"] = 'Bearer realm="", error="invalid_token"'
            return reply
        if over_limit:  # judged on arrival: this request made one too many in flight
            return self._error(
                ctx,
                429,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
                retry_after=1,
            )
        fault = self._take_fault("error", call)
        if fault is not None:
            return self._error(
                ctx, fault.status, fault.code, fault.message, retry_after=fault.retry_after
            )
        if route is None:
            if allowed:
                return self._error(
                    ctx,
                    405,
                    "Request_BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                )
            segment = next((s for s in call.path.split("/") if s), "")
            return self._error(
                ctx, 400, "BadRequest", f"Resource not found for the segment '{segment}'."
            )
        reply = await route.handler(ctx)
        if hang is not None and hang.after_processing:
            await asyncio.sleep(hang.seconds)
        return reply

    def _caller(self, call: _Call) -> _Caller | None:
        header = call.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        token = token.strip()
        if token in self.tenant.app_tokens:
            return _Caller(user=None, is_app=True)
        user_id = self.tenant.tokens.get(token)
        user = self.tenant.users.get(user_id) if user_id else None
        return _Caller(user=user) if user is not None else None

    def _resolve(self, ctx: _Ctx) -> tuple[_Route | None, list[str]]:
        path = ctx.call.path
        scope = re.match(r"^/(?:me|users/(?P<user>[^/]+))(?P<rest>/.*)?$", path, re.IGNORECASE)
        allowed: list[str] = []
        for route in self._routes:
            if route.scoped:
                if scope is None:
                    continue
                match = route.pattern.fullmatch(scope.group("rest") or "")
            else:
                match = route.pattern.fullmatch(path)
            if match is None:
                continue
            if route.method != ctx.call.method:
                allowed.append(route.method)
                continue
            ctx.match = match
            ctx.user_segment = scope.group("user") if (route.scoped and scope) else None
            label = route.label
            if route.scoped:
                prefix = "/users/{id}" if ctx.user_segment is not None else "/me"
                label = f"{route.method} {prefix}{route.label}"
            return _Route(
                route.method, route.pattern, route.handler, label, route.scoped, route.kind
            ), []
        return None, allowed

    def _target_mailbox(self, ctx: _Ctx, route: _Route | None) -> str | None:
        """The mailbox a request works on (for the per-mailbox concurrency count)."""
        if route is None or route.kind != "mailbox":
            return None
        if ctx.user_segment is None:
            if ctx.caller is None or ctx.caller.user is None:
                return None
            return ctx.caller.user.address
        user = self.tenant.user(ctx.user_segment)
        if user is not None:
            return user.address
        room = self.tenant.room(ctx.user_segment)
        return room.mailbox if room is not None else ctx.user_segment.lower()

    def _build_routes(self) -> list[_Route]:
        def scoped(
            method: str,
            rest: str,
            handler: Handler,
            label: str,
            kind: Literal["mailbox", "directory"] = "mailbox",
        ) -> _Route:
            return _Route(method, re.compile(rest, re.IGNORECASE), handler, label, True, kind)

        def tenant(method: str, path: str, handler: Handler, label: str) -> _Route:
            return _Route(
                method,
                re.compile(path, re.IGNORECASE),
                handler,
                f"{method} {label}",
                False,
                "tenant",
            )

        events = r"(?:/calendar)?/events"
        event = events + r"/(?P<event_id>[^/]+)"
        return [
            tenant(
                "GET",
                r"/places/microsoft\.graph\.room",
                self._list_rooms,
                "/places/microsoft.graph.room",
            ),
            tenant(
                "GET",
                r"/places/microsoft\.graph\.roomlist",
                self._list_room_lists,
                "/places/microsoft.graph.roomlist",
            ),
            tenant(
                "GET",
                r"/places/(?P<list>[^/]+)/microsoft\.graph\.roomlist/rooms",
                self._list_rooms_of_list,
                "/places/{roomlist}/microsoft.graph.roomlist/rooms",
            ),
            tenant("POST", r"/\$batch", self._batch, "/$batch"),
            scoped("GET", r"", self._get_user, "", "directory"),
            scoped("GET", r"/manager", self._get_manager, "/manager", "directory"),
            scoped(
                "GET",
                r"/mailboxsettings(?:/(?P<setting>[^/]+))?",
                self._mailbox_settings,
                "/mailboxSettings",
            ),
            scoped("POST", r"/sendmail", self._send_mail, "/sendMail"),
            scoped("POST", r"/calendar/getschedule", self._get_schedule, "/calendar/getSchedule"),
            scoped("GET", events, self._list_events, "/events"),
            scoped("POST", events, self._create_event, "/events"),
            scoped("GET", event, self._get_event, "/events/{id}"),
            scoped("PATCH", event, self._update_event, "/events/{id}"),
            scoped("DELETE", event, self._delete_event, "/events/{id}"),
            scoped("POST", event + r"/cancel", self._cancel_event, "/events/{id}/cancel"),
            scoped("GET", r"(?:/calendar)?/calendarview", self._calendar_view, "/calendarView"),
            scoped("POST", r"/onlinemeetings", self._create_online_meeting, "/onlineMeetings"),
        ]

    # -- replies ------------------------------------------------------------------------
    def _next_request_id(self) -> str:
        return f"00000000-0000-4000-8000-{next(self._request_ids):012d}"

    def _error(
        self, ctx: _Ctx, status: int, code: str, message: str, *, retry_after: float | None = None
    ) -> _Reply:
        body = _error_body(code, message, ctx.request_id, ctx.client_request_id, self.clock())
        headers: dict[str, str] = {}
        if status == 429:
            body["error"]["innerError"].update({"code": "429", "status": "429"})
        if retry_after is not None:
            headers["Retry-After"] = _format_seconds(retry_after)
        return _Reply(status, body, headers)

    def _context(self, fragment: str) -> str:
        return f"{self.base_url}/$metadata#{fragment}"

    def _page(
        self, ctx: _Ctx, items: Sequence[dict[str, Any]], default_size: int, context: str
    ) -> _Reply:
        query = ctx.call.query
        size = _int_param(query.get("$top"), default_size, "$top")
        skip = _int_param(query.get("$skip"), 0, "$skip")
        selected = [_select(item, query.get("$select")) for item in items[skip : skip + size]]
        body: dict[str, Any] = {"@odata.context": self._context(context)}
        if query.get("$count", "").lower() == "true":
            body["@odata.count"] = len(items)
        if skip + size < len(items):
            following = dict(query)
            following["$top"] = str(size)
            following["$skip"] = str(skip + size)
            body["@odata.nextLink"] = (
                f"{self.base_url}{ctx.call.path}?{urlencode(following, safe='$,', quote_via=quote)}"
            )
        body["value"] = selected
        return _Reply(200, body)

    def _preferred_zone(self, ctx: _Ctx) -> tuple[str, ZoneInfo, bool]:
        """The zone of Prefer: outlook.timezone (UTC when absent or unknown), and if applied."""
        for value in ctx.call.headers.getall("Prefer", []):
            found = re.search(r'outlook\.timezone\s*=\s*"([^"]*)"', value, re.IGNORECASE)
            if found:
                zone = graph_zone(found.group(1))
                if zone is not None:
                    return found.group(1), zone, True
        return "UTC", ZoneInfo("UTC"), False

    def _zoned(self, ctx: _Ctx, reply: _Reply) -> _Reply:
        name, _, applied = self._preferred_zone(ctx)
        if applied:
            reply.headers["Preference-Applied"] = f'outlook.timezone="{name}"'
        return reply

    # -- mailbox scope --------------------------------------------------------------------
    def _scope_user(self, ctx: _Ctx, *, directory: bool = False) -> FakeUser:
        """The user whose resources the request addresses (`/me` or `/users/{id}`)."""
        caller = ctx.caller
        assert caller is not None
        segment = ctx.user_segment
        if segment is None:
            if caller.user is None:
                raise _GraphError(
                    400,
                    "BadRequest",
                    "/me request is only valid with delegated authentication flow.",
                )
            return caller.user
        segment = unquote(segment)
        if self.tenant.room(segment) is not None:
            raise _GraphError(
                403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
        user = self.tenant.user(segment)
        if user is None:
            if directory:
                raise _GraphError(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{segment}' does not exist or one of its queried "
                    "reference-property objects are not present.",
                )
            raise _GraphError(
                404, "ErrorInvalidUser", f"The requested user '{segment}' is invalid."
            )
        if directory or caller.is_app or (caller.user is not None and caller.user.id == user.id):
            return user
        raise _GraphError(
            403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
        )

    # -- places ---------------------------------------------------------------------------
    async def _list_rooms(self, ctx: _Ctx) -> _Reply:
        rooms = [room.to_graph() for room in self.tenant.rooms]
        return self._page(ctx, rooms, self.page_size, "places/microsoft.graph.room")

    async def _list_room_lists(self, ctx: _Ctx) -> _Reply:
        lists = [room_list.to_graph() for room_list in self.tenant.room_lists]
        return self._page(ctx, lists, self.page_size, "places/microsoft.graph.roomList")

    async def _list_rooms_of_list(self, ctx: _Ctx) -> _Reply:
        assert ctx.match is not None
        email = unquote(ctx.match.group("list"))
        room_list = self.tenant.room_list(email)
        if room_list is None:
            raise _GraphError(404, "ErrorItemNotFound", f"The room list '{email}' was not found.")
        rooms = [self.tenant.room(address) for address in room_list.room_emails]
        found = [room.to_graph() for room in rooms if room is not None]
        context = f"places('{quote(email)}')/microsoft.graph.roomList/rooms"
        return self._page(ctx, found, self.page_size, context)

    # -- directory ------------------------------------------------------------------------
    async def _get_user(self, ctx: _Ctx) -> _Reply:
        user = self._scope_user(ctx, directory=True)
        body = {"@odata.context": self._context("users/$entity"), **user.to_graph()}
        return _Reply(200, _select(body, ctx.call.query.get("$select")))

    async def _get_manager(self, ctx: _Ctx) -> _Reply:
        user = self._scope_user(ctx, directory=True)
        manager = self.tenant.users.get(user.manager_id) if user.manager_id else None
        if manager is None:
            raise _GraphError(
                404,
                "Request_ResourceNotFound",
                "Resource 'manager' does not exist or one of its queried reference-property "
                "objects are not present.",
            )
        body = {
            "@odata.context": self._context("directoryObjects/$entity"),
            "@odata.type": "#microsoft.graph.user",
            **manager.to_graph(),
        }
        return _Reply(200, _select(body, ctx.call.query.get("$select")))

    async def _mailbox_settings(self, ctx: _Ctx) -> _Reply:
        user = self._scope_user(ctx)
        prefix = "Me" if ctx.user_segment is None else f"users('{user.id}')"
        settings = _mailbox_settings_of(user)
        assert ctx.match is not None
        setting = ctx.match.group("setting")
        if setting is None:
            body = {"@odata.context": self._context(f"{prefix}/mailboxSettings"), **settings}
            return _Reply(200, _select(body, ctx.call.query.get("$select")))
        key = next((k for k in settings if k.lower() == setting.lower()), None)
        if key is None:
            raise _GraphError(400, "BadRequest", f"Resource not found for the segment '{setting}'.")
        context = self._context(f"{prefix}/mailboxSettings/{key}")
        value = settings[key]
        if isinstance(value, dict):
            return _Reply(200, {"@odata.context": context, **value})
        return _Reply(200, {"@odata.context": context, "value": value})

    # -- mail -----------------------------------------------------------------------------
    async def _send_mail(self, ctx: _Ctx) -> _Reply:
        user = self._scope_user(ctx)
        body = _require_object(ctx.call)
        message = body.get("message")
        if not isinstance(message, dict):
            raise _GraphError(
                400, "ErrorInvalidRequest", "The message parameter is required for sendMail."
            )
        recipients = [
            recipient
            for kind in ("toRecipients", "ccRecipients", "bccRecipients")
            for recipient in (message.get(kind) or [])
        ]
        if not recipients:
            raise _GraphError(
                400,
                "ErrorInvalidRecipients",
                "At least one recipient is required, but none were found.",
            )
        for recipient in recipients:
            address = (recipient.get("emailAddress") or {}).get("address")
            if not isinstance(address, str) or "@" not in address:
                raise _GraphError(
                    400, "ErrorInvalidRecipients", "At least one recipient isn't valid."
                )
        save = body.get("saveToSentItems", True)
        self.sent_mail.append(
            SentMail(
                sender=user.mail,
                message=message,
                save_to_sent_items=str(save).lower() != "false",
            )
        )
        return _Reply(202)

    # -- free/busy ------------------------------------------------------------------------
    async def _get_schedule(self, ctx: _Ctx) -> _Reply:
        self._scope_user(ctx)
        body = _require_object(ctx.call)
        schedules = body.get("schedules", body.get("Schedules"))
        if not isinstance(schedules, list) or not all(isinstance(s, str) for s in schedules):
            raise _GraphError(
                400,
                "ErrorInvalidParameter",
                "The schedules parameter must be a list of SMTP addresses.",
            )
        if not schedules:
            raise _GraphError(
                400, "ErrorInvalidParameter", "At least one schedule must be requested."
            )
        if len(schedules) > MAX_SCHEDULES:
            raise _GraphError(
                400,
                "ErrorInvalidParameter",
                f"The number of schedules requested ({len(schedules)}) exceeds the maximum "
                f"of {MAX_SCHEDULES}.",
            )
        start, _ = _read_date_time_zone(body.get("startTime", body.get("StartTime")), "startTime")
        end, _ = _read_date_time_zone(body.get("endTime", body.get("EndTime")), "endTime")
        if end <= start:
            raise _GraphError(
                400, "ErrorInvalidParameter", "The endTime must be later than the startTime."
            )
        if end - start >= timedelta(days=MAX_SCHEDULE_DAYS):
            raise _GraphError(
                400,
                "ErrorInvalidParameter",
                f"The requested time range must be less than {MAX_SCHEDULE_DAYS} days.",
            )
        interval = _interval_minutes(body.get("availabilityViewInterval"))
        zone_name, zone, _ = self._preferred_zone(ctx)
        value = [
            self._schedule_of(address, start, end, interval, zone_name, zone)
            for address in schedules
        ]
        reply = _Reply(
            200,
            {
                "@odata.context": self._context("Collection(microsoft.graph.scheduleInformation)"),
                "value": value,
            },
        )
        return self._zoned(ctx, reply)

    def _schedule_of(
        self,
        address: str,
        start: datetime,
        end: datetime,
        interval: int,
        zone_name: str,
        zone: ZoneInfo,
    ) -> dict[str, Any]:
        user = self.tenant.user(address)
        room = self.tenant.room(address)
        if user is None and room is None:
            return {
                "scheduleId": address,
                "availabilityView": "",
                "scheduleItems": [],
                "error": {
                    "message": f"The requested user '{address}' is invalid.",
                    "responseCode": "ErrorMailRecipientNotFound",
                },
            }
        mailbox = user.address if user is not None else room.mailbox if room else ""
        busy = [e for e in self.calendar(mailbox) if e.overlaps(start, end)]
        slots = max(1, -(-int((end - start).total_seconds()) // (interval * 60)))
        view = []
        for index in range(slots):
            slot_start = start + timedelta(minutes=interval * index)
            slot_end = slot_start + timedelta(minutes=interval)
            digits = [
                AVAILABILITY_DIGITS.get(e.show_as, 2)
                for e in busy
                if e.overlaps(slot_start, slot_end)
            ]
            view.append(str(max(digits, default=0)))
        items = []
        for event in busy:
            status = event.show_as
            if self.schedule_status_style == "title":
                status = status[:1].upper() + status[1:]
            items.append(
                {
                    "isPrivate": False,
                    "status": status,
                    "subject": event.subject,
                    "location": (event.location or {}).get("displayName", ""),
                    "start": _date_time_zone(event.start, zone_name, zone),
                    "end": _date_time_zone(event.end, zone_name, zone),
                }
            )
        working_zone = user.time_zone if user is not None else "UTC"
        return {
            "scheduleId": address,
            "availabilityView": "".join(view),
            "scheduleItems": items,
            "workingHours": _working_hours(working_zone),
        }

    # -- events ---------------------------------------------------------------------------
    async def _create_event(self, ctx: _Ctx) -> _Reply:
        user = self._scope_user(ctx)
        call = ctx.call
        body = _require_object(call)
        start, start_zone = _read_date_time_zone(body.get("start"), "start")
        end, end_zone = _read_date_time_zone(body.get("end"), "end")
        if end < start:
            raise _GraphError(
                400,
                "ErrorInvalidRequest",
                "The end time of the event is earlier than its start time.",
            )
        attendees = self._read_attendees(call, body.get("attendees", []))
        location = body.get("location")
        locations = body.get("locations")
        self._check_room_booking(call, attendees, location)

        transaction_id = body.get("transactionId")
        if transaction_id is not None:
            existing = next(
                (e for e in self.calendar(user.address) if e.transaction_id == transaction_id),
                None,
            )
            if existing is not None:
                same = _fingerprint(existing) == (
                    str(body.get("subject") or ""),
                    start,
                    end,
                    tuple(sorted(_address_of(a) for a in attendees)),
                )
                if same and self.transaction_replay == "existing":
                    self.counts["transactionId replays"] += 1
                    return self._zoned(ctx, _Reply(201, self._render_event(ctx, existing, user)))
                raise _GraphError(
                    400,
                    "ErrorDuplicateTransactionId",
                    "Your request can't be completed. The TransactionId specified in the "
                    "request has already been used to create a different event.",
                )

        event = self._new_event(
            mailbox=user.address,
            subject=str(body.get("subject") or ""),
            start=start,
            end=end,
            start_zone=start_zone,
            end_zone=end_zone,
            body=_item_body(body.get("body")),
            attendees=attendees,
            location=_location(location) if isinstance(location, dict) else None,
            locations=[_location(x) for x in locations if isinstance(x, dict)]
            if isinstance(locations, list)
            else [],
            organizer=self._recipient(user.mail),
            show_as=str(body.get("showAs") or "busy"),
            transaction_id=transaction_id,
            extra={k: body[k] for k in _PASSTHROUGH if k in body},
        )
        if event.location and not event.locations:
            event.locations = [dict(event.location)]
        self._set_online_meeting(
            event, user, body.get("isOnlineMeeting"), body.get("onlineMeetingProvider")
        )
        self._schedule_room_responses(event)
        return self._zoned(ctx, _Reply(201, self._render_event(ctx, event, user)))

    async def _get_event(self, ctx: _Ctx) -> _Reply:
        user = self._scope_user(ctx)
        event = self._find_event(ctx, user)
        body = self._render_event(ctx, event, user)
        return self._zoned(ctx, _Reply(200, _select(body, ctx.call.query.get("$select"))))

    async def _update_event(self, ctx: _Ctx) -> _Reply:
        user = self._scope_user(ctx)
        event = self._find_event(ctx, user)
        body = _require_object(ctx.call)
        if "transactionId" in body and body["transactionId"] != event.transaction_id:
            raise _GraphError(
                400, "ErrorInvalidRequest", "The transactionId of an event cannot be changed."
            )
        start, start_zone = (
            _read_date_time_zone(body["start"], "start")
            if "start" in body
            else (event.start, event.start_zone)
        )
        end, end_zone = (
            _read_date_time_zone(body["end"], "end")
            if "end" in body
            else (event.end, event.end_zone)
        )
        if end < start:
            raise _GraphError(
                400,
                "ErrorInvalidRequest",
                "The end time of the event is earlier than its start time.",
            )
        attendees = (
            self._read_attendees(ctx.call, body["attendees"])
            if "attendees" in body
            else event.attendees
        )
        rebook = (start, end) != (event.start, event.end) or "attendees" in body
        event.start, event.start_zone, event.end, event.end_zone = start, start_zone, end, end_zone
        event.attendees = attendees
        if "subject" in body:
            event.subject = str(body["subject"] or "")
        if "body" in body:
            event.body = _item_body(body["body"])
        if "location" in body and isinstance(body["location"], dict):
            event.location = _location(body["location"])
            event.locations = [dict(event.location)]
        if "showAs" in body:
            event.show_as = str(body["showAs"])
        for key in _PASSTHROUGH:
            if key in body:
                event.extra[key] = body[key]
        if "isOnlineMeeting" in body or "onlineMeetingProvider" in body:
            self._set_online_meeting(
                event,
                user,
                body.get("isOnlineMeeting", event.is_online_meeting),
                body.get("onlineMeetingProvider", event.online_meeting_provider),
            )
        if rebook:
            self._check_room_booking(ctx.call, event.attendees, event.location)
            self._release_room_copies(event)
            for attendee in event.attendees:
                if self.tenant.room(_address_of(attendee)) is not None:
                    attendee["status"] = {"response": "none", "time": NO_RESPONSE_TIME}
            self._schedule_room_responses(event)
        self._touch(event)
        return self._zoned(ctx, _Reply(200, self._render_event(ctx, event, user)))

    async def _delete_event(self, ctx: _Ctx) -> _Reply:
        user = self._scope_user(ctx)
        event = self._find_event(ctx, user)
        self._remove(event, "delete")
        return _Reply(204)

    async def _cancel_event(self, ctx: _Ctx) -> _Reply:
        user = self._scope_user(ctx)
        event = self._find_event(ctx, user)
        if not event.is_organizer:
            raise _GraphError(
                400,
                "ErrorAccessDenied",
                "Your request can't be completed. You need to be an organizer to cancel a meeting.",
            )
        body = ctx.call.body if isinstance(ctx.call.body, dict) else {}
        comment = body.get("comment", body.get("Comment"))
        self._remove(event, "cancel", comment=comment if isinstance(comment, str) else None)
        return _Reply(202)

    async def _list_events(self, ctx: _Ctx) -> _Reply:
        user = self._scope_user(ctx)
        events = [
            self._render_event(ctx, e, user, context=False) for e in self.calendar(user.address)
        ]
        prefix = "me" if ctx.user_segment is None else f"users('{user.id}')"
        reply = self._page(ctx, events, self.events_page_size, f"{prefix}/events")
        return self._zoned(ctx, reply)

    async def _calendar_view(self, ctx: _Ctx) -> _Reply:
        user = self._scope_user(ctx)
        query = {k.lower(): v for k, v in ctx.call.query.items()}
        if "startdatetime" not in query or "enddatetime" not in query:
            raise _GraphError(
                400,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the query string parameters "
                "StartDateTime and EndDateTime.",
            )
        start = _parse_instant(query["startdatetime"], "startDateTime")
        end = _parse_instant(query["enddatetime"], "endDateTime")
        events = [
            self._render_event(ctx, e, user, context=False)
            for e in self.calendar(user.address)
            if e.overlaps(start, end)
        ]
        prefix = "me" if ctx.user_segment is None else f"users('{user.id}')"
        reply = self._page(ctx, events, self.events_page_size, f"{prefix}/calendarView")
        return self._zoned(ctx, reply)

    async def _create_online_meeting(self, ctx: _Ctx) -> _Reply:
        user = self._scope_user(ctx)
        body = _require_object(ctx.call)
        now = self.clock()
        start = (
            _parse_instant(body["startDateTime"], "startDateTime")
            if "startDateTime" in body
            else now
        )
        end = (
            _parse_instant(body["endDateTime"], "endDateTime")
            if "endDateTime" in body
            else start + timedelta(hours=1)
        )
        number = next(self._ids)
        meeting_id = base64.urlsafe_b64encode(f"frontdesk-meeting-{number}".encode()).decode()
        meeting = {
            "@odata.type": "#microsoft.graph.onlineMeeting",
            "@odata.context": self._context(f"users('{user.id}')/onlineMeetings/$entity"),
            "id": meeting_id,
            "creationDateTime": _utc_text(now),
            "startDateTime": _utc_text(start),
            "endDateTime": _utc_text(end),
            "subject": body.get("subject"),
            "joinWebUrl": self._join_url(user, number),
            "videoTeleconferenceId": f"{number:010d}",
            "audioConferencing": None,
            "chatInfo": {
                "threadId": f"19:meeting_{meeting_id}@thread.v2",
                "messageId": "0",
                "replyChainMessageId": None,
            },
            "participants": {
                "organizer": {
                    "upn": user.user_principal_name,
                    "role": "presenter",
                    "identity": {
                        "user": {
                            "id": user.id,
                            "displayName": None,
                            "tenantId": self.tenant.tenant_id,
                            "identityProvider": "AAD",
                        }
                    },
                },
                "attendees": [],
            },
            "joinMeetingIdSettings": {
                "isPasscodeRequired": False,
                "joinMeetingId": f"{1_000_000_000 + number}",
                "passcode": None,
            },
            "isBroadcast": False,
        }
        self.online_meetings.append(meeting)
        return _Reply(201, meeting)

    # -- event helpers --------------------------------------------------------------------
    def _find_event(self, ctx: _Ctx, user: FakeUser) -> StoredEvent:
        assert ctx.match is not None
        event_id = unquote(ctx.match.group("event_id"))
        event = self.events.get(event_id)
        if event is None or not event.active or event.mailbox != user.address:
            raise _GraphError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return event

    def _read_attendees(self, call: _Call, raw: Any) -> list[dict[str, Any]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise _GraphError(
                400,
                "RequestBodyRead",
                "An unexpected 'StartObject' node was found when reading the attendees collection.",
            )
        attendees = []
        for item in raw:
            if not isinstance(item, dict):
                raise _GraphError(400, "RequestBodyRead", "An attendee must be an object.")
            email = item.get("emailAddress")
            address = email.get("address") if isinstance(email, dict) else None
            if not isinstance(address, str) or "@" not in address:
                raise _GraphError(
                    400, "ErrorInvalidRecipients", "At least one recipient isn't valid."
                )
            kind = str(item.get("type", "required"))
            if kind.lower() not in ATTENDEE_TYPES:
                raise _GraphError(
                    400,
                    "RequestBodyRead",
                    f"Cannot convert the literal '{kind}' to the expected type "
                    "'microsoft.graph.attendeeType'.",
                )
            name = email.get("name") if isinstance(email, dict) else None
            attendees.append(
                {
                    "type": kind.lower(),
                    "status": {"response": "none", "time": NO_RESPONSE_TIME},
                    "emailAddress": {
                        "name": name or self.tenant.display_name_of(address) or address,
                        "address": address,
                    },
                }
            )
        return attendees

    def _check_room_booking(
        self, call: _Call, attendees: list[dict[str, Any]], location: Any
    ) -> None:
        """The fake's own checks of how a room is booked (Exchange would accept these)."""
        for attendee in attendees:
            room = self.tenant.room(_address_of(attendee))
            if room is None:
                continue
            if attendee["type"] != "resource":
                self._usage_problem(
                    call, f"room {room.email} invited as '{attendee['type']}', not 'resource'"
                )
            if not isinstance(location, dict):
                self._usage_problem(call, f"room {room.email} invited without a location")

    def _set_online_meeting(
        self, event: StoredEvent, user: FakeUser, requested: Any, provider: Any
    ) -> None:
        if event.online_meeting is not None:
            return  # Once a meeting is online it stays online (resources/event).
        if requested is not True:
            return
        event.is_online_meeting = True
        event.online_meeting_provider = str(provider or "teamsForBusiness")
        if event.online_meeting_provider != "teamsForBusiness" or self.tenant.drop_join_links:
            return
        number = next(self._ids)
        event.online_meeting = {
            "joinUrl": self._join_url(user, number),
            "conferenceId": f"{100_000_000 + number}",
            "tollNumber": "+1 425 555 0123",
        }

    def _join_url(self, user: FakeUser, number: int) -> str:
        thread = base64.b64encode(f"frontdesk-{number:08d}".encode()).decode().rstrip("=")
        context = quote(
            json.dumps({"Tid": self.tenant.tenant_id, "Oid": user.id}, separators=(",", ":")),
            safe="",
        )
        return (
            f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{thread}%40thread.v2/0"
            f"?context={context}"
        )

    def _recipient(self, address: str) -> dict[str, Any]:
        name = self.tenant.display_name_of(address) or address
        user = self.tenant.user(address)
        room = self.tenant.room(address)
        shown = user.mail if user else room.email if room else address
        return {"emailAddress": {"name": name, "address": shown}}

    def _new_event(self, **fields: Any) -> StoredEvent:
        number = next(self._ids)
        event_id = (
            "AAMkAGZha2VHcmFwaA"
            + base64.urlsafe_b64encode(f"frontdesk-event-{number:06d}".encode()).decode()
        )
        now = self.clock()
        fields.setdefault("ical_uid", f"040000008200E00074C5B7101A82E008{number:032X}")
        event = StoredEvent(id=event_id, created=now, modified=now, **fields)
        self.events[event.id] = event
        return event

    def _touch(self, event: StoredEvent) -> None:
        event.version += 1
        event.modified = self.clock()

    def _schedule_room_responses(self, event: StoredEvent) -> None:
        if not any(self.tenant.room(_address_of(a)) for a in event.attendees):
            return
        old = self._pending_responses.pop(event.id, None)
        if old is not None:
            old.cancel()
        handle = None
        if self.room_response_delay is not None:
            handle = asyncio.get_running_loop().call_later(
                self.room_response_delay, self._respond_later, event.id
            )
        self._pending_responses[event.id] = handle

    def _respond_later(self, event_id: str) -> None:
        if self._pending_responses.pop(event_id, None) is not None:
            self._rooms_respond(event_id)

    def _rooms_respond(self, event_id: str) -> None:
        """Resource booking: each invited room accepts, or declines a slot already taken."""
        self._responded.set()
        event = self.events.get(event_id)
        if event is None or not event.active:
            return
        changed = False
        for attendee in event.attendees:
            room = self.tenant.room(_address_of(attendee))
            if room is None or not room.auto_respond or attendee["status"]["response"] != "none":
                continue
            taken = any(
                other.overlaps(event.start, event.end) and other.show_as != "free"
                for other in self.calendar(room.mailbox)
            )
            answer = "declined" if taken else "accepted"
            attendee["status"] = {"response": answer, "time": _utc_text(self.clock(), seconds=True)}
            changed = True
            if answer == "accepted":
                self._new_event(
                    mailbox=room.mailbox,
                    subject=event.subject,
                    start=event.start,
                    end=event.end,
                    start_zone=event.start_zone,
                    end_zone=event.end_zone,
                    attendees=[dict(a) for a in event.attendees],
                    location=event.location,
                    organizer=event.organizer,
                    is_organizer=False,
                    show_as="busy",
                    ical_uid=event.ical_uid,
                    source_id=event.id,
                )
        if changed:
            self._touch(event)

    def _release_room_copies(self, event: StoredEvent) -> None:
        for other in self.events.values():
            if other.source_id == event.id and other.active:
                other.removed = "cancel"

    def _remove(self, event: StoredEvent, how: str, *, comment: str | None = None) -> None:
        event.removed = how
        event.cancel_comment = comment
        pending = self._pending_responses.pop(event.id, None)
        if pending is not None:
            pending.cancel()
        if event.is_organizer:
            self._release_room_copies(event)

    def _render_event(
        self, ctx: _Ctx, event: StoredEvent, user: FakeUser, *, context: bool = True
    ) -> dict[str, Any]:
        zone_name, zone, _ = self._preferred_zone(ctx)
        change_key = base64.b64encode(f"{event.id}:{event.version}".encode()).decode()[-28:]
        body: dict[str, Any] = {}
        if context:
            body["@odata.context"] = self._context(f"users('{user.id}')/events/$entity")
        body.update(
            {
                "@odata.etag": f'W/"{change_key}"',
                "id": event.id,
                "createdDateTime": _utc_text(event.created),
                "lastModifiedDateTime": _utc_text(event.modified),
                "changeKey": change_key,
                "categories": event.extra.get("categories", []),
                "transactionId": event.transaction_id,
                "originalStartTimeZone": event.start_zone,
                "originalEndTimeZone": event.end_zone,
                "iCalUId": event.ical_uid,
                "reminderMinutesBeforeStart": event.extra.get("reminderMinutesBeforeStart", 15),
                "isReminderOn": event.extra.get("isReminderOn", True),
                "hasAttachments": False,
                "subject": event.subject,
                "bodyPreview": _preview(event.body.get("content", "")),
                "importance": event.extra.get("importance", "normal"),
                "sensitivity": event.extra.get("sensitivity", "normal"),
                "isAllDay": event.extra.get("isAllDay", False),
                "isCancelled": False,
                "isOrganizer": event.is_organizer,
                "responseRequested": event.extra.get("responseRequested", True),
                "seriesMasterId": None,
                "showAs": event.show_as,
                "type": "singleInstance",
                "webLink": (
                    "https://outlook.office365.com/owa/?itemid="
                    f"{quote(event.id, safe='')}&exvsurl=1&path=/calendar/item"
                ),
                "onlineMeetingUrl": None,
                "isOnlineMeeting": event.is_online_meeting,
                "onlineMeetingProvider": event.online_meeting_provider,
                "allowNewTimeProposals": event.extra.get("allowNewTimeProposals", True),
                "isDraft": False,
                "hideAttendees": event.extra.get("hideAttendees", False),
                "responseStatus": {
                    "response": "organizer" if event.is_organizer else "none",
                    "time": NO_RESPONSE_TIME,
                },
                "body": dict(event.body),
                "start": _date_time_zone(event.start, zone_name, zone),
                "end": _date_time_zone(event.end, zone_name, zone),
                "location": event.location
                or {
                    "displayName": "",
                    "locationType": "default",
                    "uniqueIdType": "unknown",
                    "address": {},
                    "coordinates": {},
                },
                "locations": event.locations,
                "recurrence": None,
                "attendees": [
                    {
                        "type": a["type"],
                        "status": dict(a["status"]),
                        "emailAddress": dict(a["emailAddress"]),
                    }
                    for a in event.attendees
                ],
                "organizer": event.organizer,
                "onlineMeeting": event.online_meeting,
            }
        )
        if event.transaction_id is None:
            del body["transactionId"]  # returned only when the app set it (resources/event)
        return body

    # -- $batch ---------------------------------------------------------------------------
    async def _batch(self, ctx: _Ctx) -> _Reply:
        body = _require_object(ctx.call)
        steps = body.get("requests")
        if not isinstance(steps, list) or not steps:
            raise _GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(steps) > MAX_BATCH_REQUESTS:
            raise _GraphError(
                400,
                "BadRequest",
                f"The number of requests in the batch ({len(steps)}) exceeds the maximum of "
                f"{MAX_BATCH_REQUESTS}.",
            )
        ids: set[str] = set()
        calls: list[tuple[dict[str, Any], _Call]] = []
        for step in steps:
            if not isinstance(step, dict) or not all(
                isinstance(step.get(key), str) for key in ("id", "method", "url")
            ):
                raise _GraphError(
                    400, "BadRequest", "Each batch request needs string id, method and url."
                )
            step_id = step["id"]
            if step_id.lower() in ids:
                raise _GraphError(
                    400, "BadRequest", f"Batch request id '{step_id}' appears more than once."
                )
            ids.add(step_id.lower())
            headers: CIMultiDict[str] = CIMultiDict(
                {str(k): str(v) for k, v in (step.get("headers") or {}).items()}
            )
            if "body" in step and "Content-Type" not in headers:
                raise _GraphError(
                    400,
                    "BadRequest",
                    f"Write request id : {step_id} does not contain Content-Type header or body.",
                )
            for name in ("Authorization", "client-request-id"):
                if name in ctx.call.headers and name not in headers:
                    headers[name] = ctx.call.headers[name]
            url = step["url"]
            if url.lower().startswith(("http://", "https://")):
                raise _GraphError(
                    400, "BadRequest", f"Batch request id '{step_id}' must use a relative url."
                )
            path_part, _, query_part = url.partition("?")
            path = "/" + unquote(path_part).lstrip("/")
            if path.lower().startswith("/v1.0/"):
                path = path[len("/v1.0") :]
            calls.append(
                (
                    step,
                    _Call(
                        method=step["method"].upper(),
                        path=path,
                        query=dict(parse_qsl(query_part, keep_blank_values=True)),
                        headers=headers,
                        body=step.get("body"),
                        batch_id=step_id,
                    ),
                )
            )

        if any(step.get("dependsOn") for step, _ in calls):
            replies: list[_Reply] = []
            status_by_id: dict[str, int] = {}
            for step, sub_call in calls:
                failed = [
                    d
                    for d in step.get("dependsOn") or []
                    if not 200 <= status_by_id.get(str(d).lower(), 0) < 300
                ]
                if failed:
                    reply = self._error(
                        ctx,
                        424,
                        "FailedDependency",
                        "Failed dependency: " + ", ".join(map(str, failed)),
                    )
                else:
                    reply = await self._process(sub_call)
                status_by_id[step["id"].lower()] = reply.status
                replies.append(reply)
        else:
            replies = list(await asyncio.gather(*(self._process(c) for _, c in calls)))

        responses = []
        for (step, _), reply in zip(calls, replies, strict=True):
            shown = {
                k: v
                for k, v in reply.headers.items()
                if k.lower() not in ("request-id", "client-request-id")
            }
            response: dict[str, Any] = {"id": step["id"], "status": reply.status}
            if reply.body is not None:
                shown["Content-Type"] = GRAPH_CONTENT_TYPE
            response["headers"] = shown
            if reply.body is not None:
                response["body"] = reply.body
            responses.append(response)
        if self.batch_reverse_order:
            responses.reverse()
        return _Reply(200, {"responses": responses})


# -- helpers ----------------------------------------------------------------------------------
_PASSTHROUGH = (
    "categories",
    "importance",
    "sensitivity",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "allowNewTimeProposals",
    "responseRequested",
    "hideAttendees",
    "isAllDay",
)


def _require_object(call: _Call) -> dict[str, Any]:
    if call.body_error:
        raise _GraphError(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and "
            "payload is of valid JSON format.",
        )
    if not isinstance(call.body, dict):
        raise _GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    return call.body


def _to_response(reply: _Reply) -> web.Response:
    headers = dict(reply.headers)
    if reply.body is None:
        return web.Response(status=reply.status, headers=headers)
    headers["Content-Type"] = GRAPH_CONTENT_TYPE
    return web.Response(
        status=reply.status, body=json.dumps(reply.body).encode("utf-8"), headers=headers
    )


def _error_body(
    code: str, message: str, request_id: str, client_request_id: str, now: datetime
) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }


def _redacted(headers: CIMultiDict[str] | CIMultiDictProxy[str]) -> dict[str, str]:
    shown: dict[str, str] = {}
    for name, value in headers.items():
        if name.lower() == "authorization":
            scheme = value.split(" ", 1)[0]
            value = f"{scheme} ***"
        shown[name] = value
    return shown


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def _int_param(value: str | None, default: int, name: str) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _GraphError(400, "BadRequest", f"Invalid value '{value}' for {name}.") from None
    if number < 0 or (name == "$top" and number == 0):
        raise _GraphError(400, "BadRequest", f"Invalid value '{value}' for {name}.")
    return number


def _select(item: dict[str, Any], select: str | None) -> dict[str, Any]:
    if not select:
        return item
    wanted = {name.strip().lower() for name in select.split(",") if name.strip()}
    return {
        key: value
        for key, value in item.items()
        if key.startswith("@odata.") or key == "id" or key.lower() in wanted
    }


_DATE_TIME = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<fraction>\d+))?"
    r"(?P<offset>Z|[+-]\d{2}:\d{2})?$"
)


def _parse_local(text: str) -> tuple[datetime, str | None]:
    """Parse Graph's dateTime text (up to 7 fractional digits); return it and any offset."""
    found = _DATE_TIME.match(text.strip())
    if found is None:
        raise ValueError(text)
    moment = datetime.fromisoformat(found.group("base"))
    fraction = found.group("fraction")
    if fraction:
        moment = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    return moment, found.group("offset")


def _parse_instant(text: Any, name: str) -> datetime:
    """An ISO 8601 instant; without an offset it is read as UTC."""
    if not isinstance(text, str):
        raise _GraphError(400, "ErrorInvalidParameter", f"The parameter {name} is missing.")
    try:
        moment, offset = _parse_local(text)
    except ValueError:
        raise _GraphError(
            400, "ErrorInvalidParameter", f"The value '{text}' of parameter {name} is invalid."
        ) from None
    if offset is None or offset == "Z":
        return moment.replace(tzinfo=UTC)
    return datetime.fromisoformat(moment.isoformat() + offset).astimezone(UTC)


def _read_date_time_zone(value: Any, name: str) -> tuple[datetime, str]:
    """A dateTimeTimeZone object as an aware UTC instant and the zone name it was given in."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise _GraphError(
            400,
            "ErrorInvalidRequest",
            f"The {name} property must be a dateTimeTimeZone with a dateTime.",
        )
    zone_name = value.get("timeZone")
    zone = graph_zone(zone_name) if isinstance(zone_name, str) and zone_name else None
    if zone is None:
        raise _GraphError(
            400,
            "TimeZoneNotSupportedException",
            "A valid TimeZone value must be specified. The following TimeZone value is not "
            f"supported: '{zone_name or ''}'.",
        )
    try:
        moment, offset = _parse_local(value["dateTime"])
    except ValueError:
        raise _GraphError(
            400, "ErrorInvalidRequest", f"The {name} dateTime '{value['dateTime']}' is not valid."
        ) from None
    if offset is not None:
        instant = _parse_instant(value["dateTime"], name)
    else:
        instant = moment.replace(tzinfo=zone).astimezone(UTC)
    return instant, str(zone_name)


def _interval_minutes(value: Any) -> int:
    if value is None:
        return 30
    try:
        minutes = int(value)
    except (TypeError, ValueError):
        raise _GraphError(
            400, "ErrorInvalidParameter", f"The availabilityViewInterval '{value}' is not a number."
        ) from None
    if not 5 <= minutes <= 1440:
        raise _GraphError(
            400,
            "ErrorInvalidParameter",
            "The availabilityViewInterval must be between 5 and 1440 minutes.",
        )
    return minutes


def _date_time_zone(moment: datetime, zone_name: str, zone: ZoneInfo) -> dict[str, str]:
    local = moment.astimezone(zone)
    return {
        "dateTime": local.strftime("%Y-%m-%dT%H:%M:%S") + f".{local.microsecond:06d}0",
        "timeZone": zone_name,
    }


def _utc_text(moment: datetime, *, seconds: bool = False) -> str:
    utc = moment.astimezone(UTC)
    if seconds:
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond:06d}0Z"


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("use aware datetimes")
    return moment.astimezone(UTC)


def _address_of(attendee: Mapping[str, Any]) -> str:
    return str((attendee.get("emailAddress") or {}).get("address", "")).lower()


def _fingerprint(event: StoredEvent) -> tuple[str, datetime, datetime, tuple[str, ...]]:
    return (
        event.subject,
        event.start,
        event.end,
        tuple(sorted(_address_of(a) for a in event.attendees)),
    )


def _item_body(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {"contentType": "html", "content": ""}
    return {
        "contentType": str(value.get("contentType") or "text").lower(),
        "content": str(value.get("content") or ""),
    }


def _preview(content: str) -> str:
    text = html.unescape(re.sub(r"<[^>]+>", " ", content))
    return " ".join(text.split())[:255]


def _location(value: dict[str, Any]) -> dict[str, Any]:
    name = str(value.get("displayName") or "")
    kind = str(value.get("locationType") or "default")
    location: dict[str, Any] = {
        "displayName": name,
        "locationType": kind[:1].lower() + kind[1:],
        "uniqueId": value.get("uniqueId") or name,
        "uniqueIdType": "private",
    }
    if value.get("locationEmailAddress"):
        location["locationEmailAddress"] = value["locationEmailAddress"]
    for key in ("address", "coordinates"):
        if key in value:
            location[key] = value[key]
    return location


def _working_hours(zone_name: str) -> dict[str, Any]:
    return {
        "daysOfWeek": list(WEEKDAYS),
        "startTime": "08:00:00.0000000",
        "endTime": "17:00:00.0000000",
        "timeZone": {"name": zone_name},
    }


def _mailbox_settings_of(user: FakeUser) -> dict[str, Any]:
    replies: dict[str, Any] = {
        "status": "disabled",
        "externalAudience": "all",
        "scheduledStartDateTime": {"dateTime": "2026-01-01T00:00:00.0000000", "timeZone": "UTC"},
        "scheduledEndDateTime": {"dateTime": "2026-01-02T00:00:00.0000000", "timeZone": "UTC"},
        "internalReplyMessage": "",
        "externalReplyMessage": "",
    }
    replies.update(user.automatic_replies)
    return {
        "archiveFolder": "AQMkAGZha2VhcmNoaXZl",
        "timeZone": user.time_zone,
        "automaticRepliesSetting": replies,
        "language": {"locale": user.preferred_language, "displayName": "English (United States)"},
        "workingHours": _working_hours(user.time_zone),
        "userPurpose": {"value": "user"},
        "dateFormat": "MM/dd/yyyy",
        "timeFormat": "hh:mm tt",
        "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
    }
