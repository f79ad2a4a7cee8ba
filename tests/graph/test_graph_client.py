"""GraphClient against a small Graph stand-in on 127.0.0.1 answering in Graph's documented shapes.

Payloads follow the examples of the Graph v1.0 reference (List places, calendar: getSchedule,
Create event, JSON batching, throttling); where the docs' examples differ from the schema
(string capacity, `displayDevice`, `isWheelchairAccessible`) both spellings are served.
Retries sleep through a fake `sleep` that records the delays and never waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.graph import (
    BatchRequest,
    GraphAuthError,
    GraphClient,
    GraphError,
    GraphThrottled,
    GraphTimeout,
    GraphUnavailable,
    RoomList,
)
from bot.graph.timezones import iana_to_windows, resolve_zone, windows_name, windows_to_iana
from bot.models import Equipment, Room
from tests.support.fake_entra import unsigned_jwt
from tests.support.graph_contract import check_request, metadata_available
from tests.support.prereq import require

TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.secret-token-material.signature-part"
DAY = datetime(2026, 11, 23, tzinfo=UTC)


def at(hour: int, minute: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute)


def graph_time(value: datetime, zone: str = "UTC") -> dict[str, str]:
    """A dateTimeTimeZone as Graph writes it (seven fractional digits)."""
    local = value.astimezone(ZoneInfo(windows_to_iana(zone) or zone)).replace(tzinfo=None)
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": zone}


# == the Graph stand-in ===========================================================================
@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


@dataclass(frozen=True)
class Canned:
    """An answer to build (a web.Response can be sent only once)."""

    status: int
    body: Any
    headers: dict[str, str]

    def build(self) -> web.Response:
        headers = {"request-id": str(uuid.uuid4()), **self.headers}
        if self.body is None:
            return web.Response(status=self.status, headers=headers)
        return web.json_response(self.body, status=self.status, headers=headers)


Handler = Callable[[Recorded], Awaitable[Canned]]


def reply(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> Canned:
    """A Graph-like answer (with a request-id header)."""
    return Canned(status, body, dict(headers or {}))


def graph_error(status: int, code: str, message: str = "", **headers: str) -> Canned:
    """Graph's error JSON."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"request-id": "inner-id", "date": "2026-11-23T08:00:00"},
        }
    }
    return reply(status, body, {"request-id": f"rid-{status}", **headers})


@dataclass
class GraphStub:
    """Routes by (method, path below /v1.0); records every request; a route is a handler or a
    queue of canned answers (the last one repeats)."""

    routes: dict[tuple[str, str], Handler | list[Canned]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    base_url: str = ""

    def on(self, method: str, path: str, answer: Handler | list[Canned]) -> None:
        self.routes[(method, path)] = answer

    def made(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.removeprefix("/v1.0")
        body = await request.json() if request.can_read_body else None
        recorded = Recorded(request.method, path, dict(request.query), dict(request.headers), body)
        self.requests.append(recorded)
        route = self.routes.get((request.method, path))
        if route is None:
            return graph_error(404, "ResourceNotFound", f"no route {request.method} {path}").build()
        if isinstance(route, list):
            return (route.pop(0) if len(route) > 1 else route[0]).build()
        return (await route(recorded)).build()


@dataclass
class FakeSleep:
    """Records retry delays and returns at once."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
async def stub() -> AsyncIterator[GraphStub]:
    graph = GraphStub()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", graph.dispatch)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    graph.base_url = str(server.make_url("/v1.0"))
    yield graph
    graph.release.set()
    await server.close()
    # Every request the client sent, whatever the stub answered, must fit Graph v1.0.
    require(metadata_available(), "Graph v1.0 metadata is missing under ../shared/schemas")
    problems = [
        problem
        for r in graph.requests
        for problem in check_request(r.method, r.path, r.json, query=r.query)
    ]
    assert problems == [], problems


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as shared:
        yield shared


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def client(stub: GraphStub, session: aiohttp.ClientSession, sleep: FakeSleep) -> GraphClient:
    return GraphClient(session, base_url=stub.base_url, sleep=sleep, random=lambda: 0.5)


def room_json(email: str, name: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()).upper(),
        "emailAddress": email,
        "displayName": name,
        "building": "1",
        "floorNumber": 1,
        "capacity": 8,
        "bookingType": "standard",
        "tags": [],
        **fields,
    }


def event_json(**fields: Any) -> dict[str, Any]:
    """An event answer in the shape of the Create event example (times in UTC)."""
    return {
        "@odata.etag": 'W/"ZlnW4RIAV06KYYwlrfNZvQAALfZeRQ=="',
        "id": "AAMkAGI1AAAt9AHjAAA=",
        "subject": "Planning",
        "isCancelled": False,
        "isOrganizer": True,
        "webLink": "https://outlook.office365.com/owa/?itemid=AAMkAGI1AAAt9AHjAAA%3D",
        "isOnlineMeeting": True,
        "onlineMeetingProvider": "teamsForBusiness",
        "onlineMeetingUrl": None,
        "onlineMeeting": {"joinUrl": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x"},
        "transactionId": "attempt-1",
        "start": graph_time(at(9)),
        "end": graph_time(at(10)),
        "location": {"displayName": "Conf Room 100", "locationType": "conferenceRoom"},
        "attendees": [
            {
                "type": "resource",
                "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                "emailAddress": {"name": "Conf Room 100", "address": "CF100@contoso.com"},
            },
            {
                "type": "required",
                "status": {"response": "accepted", "time": "2026-11-23T08:00:00Z"},
                "emailAddress": {"name": "Adele Vance", "address": "adelev@contoso.com"},
            },
        ],
        "organizer": {"emailAddress": {"name": "Dana Swope", "address": "DanaS@contoso.com"}},
        **fields,
    }


ROOM = Room(
    id="cf100@contoso.com",
    name="Conf Room 100",
    email="cf100@contoso.com",
    building="1",
    floor=1,
    floor_label="Floor 1",
    capacity=8,
)


# == places =======================================================================================
async def test_list_rooms_follows_every_next_link(stub: GraphStub, client: GraphClient) -> None:
    page = "/places/microsoft.graph.room"
    pages = [
        [room_json(f"r{i}@contoso.com", f"Room {i}") for i in range(start, start + 2)]
        for start in (0, 2, 4)
    ]

    async def rooms(request: Recorded) -> Canned:
        index = int(request.query.get("$skiptoken", "0"))
        body: dict[str, Any] = {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#places/microsoft.graph.room",
            "value": pages[index],
        }
        if index + 1 < len(pages):
            body["@odata.nextLink"] = f"{stub.base_url}{page}?$skiptoken={index + 1}"
        return reply(200, body)

    stub.on("GET", page, rooms)

    found = await client.list_rooms(TOKEN)

    assert [room.id for room in found] == [f"r{i}@contoso.com" for i in range(6)]
    calls = stub.made("GET", page)
    assert [call.query.get("$skiptoken") for call in calls] == [None, "1", "2"]
    for call in calls:
        assert call.headers["Authorization"] == f"Bearer {TOKEN}"
        uuid.UUID(call.headers["client-request-id"])


async def test_a_next_link_to_another_host_is_refused(stub: GraphStub, client: GraphClient) -> None:
    stub.on(
        "GET",
        "/places/microsoft.graph.roomlist",
        [reply(200, {"value": [], "@odata.nextLink": "https://attacker.example/v1.0/steal"})],
    )

    with pytest.raises(GraphError) as raised:
        await client.list_room_lists(TOKEN)

    assert raised.value.code == "UntrustedLink"
    assert len(stub.requests) == 1


async def test_rooms_are_parsed_tolerantly(stub: GraphStub, client: GraphClient) -> None:
    docs_example = {  # as printed in the List places reference
        "id": "3162F1E1-C4C0-604B-51D8-91DA78989EB1",
        "emailAddress": "CF100@contoso.com",
        "displayName": "Conf Room 100",
        "capacity": "50",
        "building": "1",
        "floorNumber": 1,
        "isWheelchairAccessible": True,
        "bookingType": "standard",
        "tags": ["bean bags"],
        "audioDeviceName": None,
        "videoDeviceName": None,
        "displayDevice": "surface hub",
    }
    bare = {"id": "2", "emailAddress": "bare@contoso.com"}
    labelled = room_json(
        "lab@contoso.com",
        "Lab",
        floorNumber=None,
        floorLabel="3rd floor",
        capacity=12.0,
        isWheelChairAccessible=False,
        videoDeviceName="Teams Room camera",
        audioDeviceName="Polycom",
        tags=["Whiteboard", "Approval Required"],
    )
    reserved = room_json("boardroom@contoso.com", "Boardroom", bookingType="reserved")
    in_a_list = {"id": "5", "emailAddress": "annex@contoso.com", "displayName": "Annex 1"}
    no_email = {"id": "6", "displayName": "Broom cupboard"}
    stub.on(
        "GET",
        "/places/microsoft.graph.room",
        [reply(200, {"value": [docs_example, bare, labelled, reserved, in_a_list, no_email]})],
    )
    stub.on(
        "GET",
        "/places/microsoft.graph.roomlist",
        [
            reply(
                200, {"value": [{"emailAddress": "annex-list@contoso.com", "displayName": "Annex"}]}
            )
        ],
    )
    stub.on(
        "GET",
        "/places/annex-list@contoso.com/microsoft.graph.roomlist/rooms",
        [reply(200, {"value": [in_a_list]})],
    )

    rooms = {room.id: room for room in await client.list_rooms(TOKEN)}

    assert set(rooms) == {
        "cf100@contoso.com",
        "bare@contoso.com",
        "lab@contoso.com",
        "boardroom@contoso.com",
        "annex@contoso.com",
    }
    cf100 = rooms["cf100@contoso.com"]
    assert (cf100.capacity, cf100.building, cf100.floor, cf100.floor_label) == (
        50,
        "1",
        1,
        "Floor 1",
    )
    assert cf100.equipment == {Equipment.DISPLAY}
    assert cf100.wheelchair_accessible and not cf100.needs_approval
    bare_room = rooms["bare@contoso.com"]
    assert (bare_room.name, bare_room.capacity, bare_room.floor, bare_room.building) == (
        "bare@contoso.com",
        0,
        0,
        "Unknown building",
    )
    assert bare_room.floor_label == "Floor 0" and bare_room.equipment == frozenset()
    lab = rooms["lab@contoso.com"]
    assert (lab.floor, lab.floor_label, lab.capacity) == (3, "3rd floor", 12)
    assert lab.equipment == {Equipment.VIDEO, Equipment.PHONE, Equipment.WHITEBOARD}
    assert lab.needs_approval
    assert rooms["boardroom@contoso.com"].needs_approval
    assert rooms["annex@contoso.com"].building == "Annex"


async def test_room_lists_and_their_rooms(stub: GraphStub, client: GraphClient) -> None:
    stub.on(
        "GET",
        "/places/microsoft.graph.roomlist",
        [
            reply(
                200,
                {
                    "value": [
                        {
                            "id": "DC40",
                            "displayName": "Building 2",
                            "emailAddress": "Bldg2@contoso.com",
                        },
                        {"id": "DC41", "displayName": "No mailbox"},
                    ]
                },
            )
        ],
    )
    stub.on(
        "GET",
        "/places/bldg2@contoso.com/microsoft.graph.roomlist/rooms",
        [reply(200, {"value": [room_json("cf200@contoso.com", "Conf Room 200", building=None)]})],
    )

    lists = await client.list_room_lists(TOKEN)
    rooms = await client.rooms_in_list(TOKEN, lists[0])

    assert lists == [RoomList(email="bldg2@contoso.com", name="Building 2")]
    assert [(room.id, room.building) for room in rooms] == [("cf200@contoso.com", "Building 2")]


# == getSchedule ==================================================================================
async def test_get_schedules_sends_20_per_call_concurrently(
    stub: GraphStub, client: GraphClient
) -> None:
    in_flight = 0
    most = 0
    all_three = asyncio.Event()

    async def get_schedule(request: Recorded) -> Canned:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == 3:
            all_three.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_three.wait(), timeout=2)
        in_flight -= 1
        values = [
            {"scheduleId": email, "availabilityView": "0", "scheduleItems": []}
            for email in request.json["schedules"]
        ]
        return reply(200, {"value": values})

    stub.on("POST", "/me/calendar/getSchedule", get_schedule)
    emails = [f"Room{i}@contoso.com" for i in range(45)]

    busy = await client.get_schedules(TOKEN, emails, at(9), at(17))

    calls = stub.made("POST", "/me/calendar/getSchedule")
    assert sorted(len(call.json["schedules"]) for call in calls) == [5, 20, 20]
    assert most == 3, "the three calls were not in flight together"
    assert busy == {email: [] for email in emails}
    first = calls[0].json
    assert first["startTime"] == {"dateTime": "2026-11-23T09:00:00", "timeZone": "UTC"}
    assert first["endTime"] == {"dateTime": "2026-11-23T17:00:00", "timeZone": "UTC"}
    assert first["availabilityViewInterval"] == 30
    assert calls[0].headers["Prefer"] == 'outlook.timezone="UTC"'


async def test_busy_parsing_free_is_free_everything_else_busy(
    stub: GraphStub, client: GraphClient
) -> None:
    def item(status: str, start: datetime, end: datetime, zone: str = "UTC") -> dict[str, Any]:
        return {
            "isPrivate": False,
            "status": status,
            "subject": "x",
            "start": graph_time(start, zone),
            "end": graph_time(end, zone),
        }

    values = [
        {
            "scheduleId": "a@contoso.com",
            "availabilityView": "0022001133000000",
            "scheduleItems": [
                item("busy", at(10), at(11)),
                item("free", at(11), at(12)),
                item("tentative", at(12), at(13)),
                item("oof", at(13), at(14)),
                item("busy", at(18), at(19)),  # outside the window
            ],
        },
        {
            "scheduleId": "B@CONTOSO.COM",
            "scheduleItems": [item("workingElsewhere", at(9), at(10))],
        },
        {
            "scheduleId": "c@contoso.com",
            "error": {"message": "Mailbox not found", "responseCode": "ErrorMailRecipientNotFound"},
        },
        {"scheduleId": "e@contoso.com", "availabilityView": "0022"},
        {
            "scheduleId": "f@contoso.com",
            "scheduleItems": [item("busy", at(16), at(17), zone="Pacific Standard Time")],
        },
    ]
    stub.on("POST", "/me/calendar/getSchedule", [reply(200, {"value": values})])
    emails = ["a@contoso.com", "b@contoso.com", "c@contoso.com", "d@contoso.com"]
    emails += ["e@contoso.com", "f@contoso.com"]

    busy = await client.get_schedules(TOKEN, emails, at(9), at(17))

    assert busy["a@contoso.com"] == [(at(10), at(11)), (at(12), at(14))]
    assert busy["b@contoso.com"] == [(at(9), at(10))]
    assert busy["c@contoso.com"] == [(at(9), at(17))], "an error must count as busy"
    assert busy["d@contoso.com"] == [(at(9), at(17))], "a missing schedule must count as busy"
    assert busy["e@contoso.com"] == [(at(10), at(11))], "availabilityView when no items"
    assert busy["f@contoso.com"] == [(at(16), at(17))]
    for intervals in busy.values():
        for start, end in intervals:
            assert start.tzinfo is UTC and end.tzinfo is UTC


async def test_get_schedules_refuses_naive_times_and_bad_ranges(client: GraphClient) -> None:
    with pytest.raises(ValueError):
        await client.get_schedules(TOKEN, ["a@contoso.com"], datetime(2026, 1, 1), at(9))
    with pytest.raises(ValueError):
        await client.get_schedules(TOKEN, ["a@contoso.com"], at(9), at(9) + timedelta(days=63))
    with pytest.raises(ValueError):
        await client.get_schedules(TOKEN, ["a@contoso.com"], at(9), at(10), interval_minutes=1)
    assert await client.get_schedules(TOKEN, [], at(9), at(10)) == {}


# == events =======================================================================================
async def test_create_booking_event_invites_the_room_as_resource(
    stub: GraphStub, client: GraphClient
) -> None:
    stub.on("POST", "/me/events", [reply(201, event_json())])

    event = await client.create_booking_event(
        TOKEN,
        room=ROOM,
        subject="Planning",
        body_html="<p>Booked with Frontdesk</p>",
        start=at(9),
        end=at(10),
        online_meeting=True,
        transaction_id="attempt-1",
    )

    assert [r.path for r in stub.requests] == ["/me/events"], "only the user's own calendar"
    sent = stub.requests[0].json
    assert sent["attendees"] == [
        {
            "emailAddress": {"address": "cf100@contoso.com", "name": "Conf Room 100"},
            "type": "resource",
        }
    ]
    assert sent["location"]["displayName"] == "Conf Room 100"
    assert sent["location"]["locationEmailAddress"] == "cf100@contoso.com"
    assert sent["transactionId"] == "attempt-1"
    assert sent["isOnlineMeeting"] is True
    assert sent["onlineMeetingProvider"] == "teamsForBusiness"
    assert sent["start"] == {"dateTime": "2026-11-23T09:00:00", "timeZone": "UTC"}
    assert sent["body"] == {"contentType": "HTML", "content": "<p>Booked with Frontdesk</p>"}
    assert stub.requests[0].headers["Prefer"] == 'outlook.timezone="UTC"'
    assert event.id == "AAMkAGI1AAAt9AHjAAA="
    assert event.join_url == "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x"
    assert event.is_online_meeting and not event.is_cancelled
    assert (event.start, event.end) == (at(9), at(10))
    assert event.room_responses == {"cf100@contoso.com": "none"}
    assert event.organizer == "danas@contoso.com"
    assert event.transaction_id == "attempt-1"


async def test_an_event_without_join_url_and_an_offline_one(
    stub: GraphStub, client: GraphClient
) -> None:
    stub.on(
        "POST",
        "/me/events",
        [reply(201, event_json(onlineMeeting=None, isOnlineMeeting=False, transactionId=None))],
    )

    event = await client.create_booking_event(
        TOKEN,
        room=ROOM,
        subject="Planning",
        body_html="",
        start=at(17),
        end=at(18),
        online_meeting=False,
        transaction_id="attempt-2",
        time_zone="Pacific Standard Time",
    )

    sent = stub.requests[0].json
    assert sent["isOnlineMeeting"] is False
    assert "onlineMeetingProvider" not in sent
    assert sent["start"] == {"dateTime": "2026-11-23T09:00:00", "timeZone": "Pacific Standard Time"}
    assert sent["end"] == {"dateTime": "2026-11-23T10:00:00", "timeZone": "Pacific Standard Time"}
    assert event.join_url is None and not event.is_online_meeting


async def test_get_event_reads_the_rooms_answer(stub: GraphStub, client: GraphClient) -> None:
    accepted = event_json()
    accepted["attendees"][0]["status"] = {"response": "accepted", "time": "2026-11-23T08:01:00Z"}
    stub.on("GET", "/me/events/AAMkAGI1AAAt9AHjAAA=", [reply(200, accepted)])

    event = await client.get_event(TOKEN, "AAMkAGI1AAAt9AHjAAA=")

    assert event.room_responses == {"cf100@contoso.com": "accepted"}
    selected = stub.requests[0].query["$select"].split(",")
    assert {"attendees", "onlineMeeting", "transactionId", "isCancelled", "webLink"} <= set(
        selected
    )


async def test_repair_cancel_and_calendar_view(stub: GraphStub, client: GraphClient) -> None:
    event_path = "/me/events/AAMkAGI1AAAt9AHjAAA="
    stub.on("PATCH", event_path, [reply(200, event_json())])
    stub.on("POST", event_path + "/cancel", [reply(202)])
    pages = [
        {
            "value": [event_json(id="e1")],
            # Graph's next links repeat the range (calendarView requires it) with a skip token.
            "@odata.nextLink": f"{stub.base_url}/me/calendarView?startDateTime="
            "2026-11-23T00:00:00Z&endDateTime=2026-11-23T23:00:00Z&$skiptoken=2",
        },
        {"value": [event_json(id="e2"), {"id": "broken"}]},
    ]
    stub.on("GET", "/me/calendarView", [reply(200, pages[0]), reply(200, pages[1])])

    await client.enable_online_meeting(TOKEN, "AAMkAGI1AAAt9AHjAAA=")
    await client.add_join_link(
        TOKEN, "AAMkAGI1AAAt9AHjAAA=", join_url="https://teams/x?a=1&b=2", body_html="<p>Hi</p>"
    )
    await client.cancel_event(TOKEN, "AAMkAGI1AAAt9AHjAAA=", "No longer needed")
    events = await client.list_events(TOKEN, at(0), at(23))

    patches = stub.made("PATCH", event_path)
    assert patches[0].json == {"isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness"}
    assert patches[1].json["body"]["content"] == (
        '<p>Hi</p><p><a href="https://teams/x?a=1&amp;b=2">Join the Microsoft Teams meeting</a></p>'
    )
    assert stub.made("POST", event_path + "/cancel")[0].json == {"comment": "No longer needed"}
    views = stub.made("GET", "/me/calendarView")
    assert views[0].query["startDateTime"] == "2026-11-23T00:00:00Z"
    assert views[0].query["endDateTime"] == "2026-11-23T23:00:00Z"
    assert views[1].query["$skiptoken"] == "2"
    assert [event.id for event in events] == ["e1", "e2"]


# == meetings, people, mail =======================================================================
async def test_online_meeting_manager_mailbox_and_mail(
    stub: GraphStub, session: aiohttp.ClientSession
) -> None:
    clock_now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    client = GraphClient(
        session, base_url=stub.base_url, sleep=FakeSleep(), clock=lambda: clock_now
    )
    stub.on(
        "POST",
        "/me/onlineMeetings",
        [
            reply(
                201,
                {
                    "id": "MSpkYzE3",
                    "subject": "Planning",
                    "startDateTime": "2026-11-23T09:00:00.0000000Z",
                    "endDateTime": "2026-11-23T10:00:00.0000000Z",
                    "joinWebUrl": "https://teams.microsoft.com/l/meetup-join/abc",
                },
            )
        ],
    )
    stub.on(
        "GET",
        "/me/manager",
        [reply(200, {"id": "m1", "displayName": "Megan Bowen", "mail": "MeganB@contoso.com"})],
    )
    stub.on(
        "GET",
        "/me/mailboxSettings",
        [
            reply(
                200,
                {
                    "timeZone": "W. Europe Standard Time",
                    "automaticRepliesSetting": {
                        "status": "scheduled",
                        "scheduledStartDateTime": graph_time(at(8)),
                        "scheduledEndDateTime": graph_time(at(18)),
                    },
                },
            ),
            reply(200, {"timeZone": "Europe/London"}),
        ],
    )
    stub.on("POST", "/me/sendMail", [reply(202)])
    stub.on("POST", "/users/frontdesk@contoso.com/sendMail", [reply(202)])

    meeting = await client.create_online_meeting(TOKEN, subject="Planning", start=at(9), end=at(10))
    manager = await client.get_manager(TOKEN)
    windows_settings = await client.get_mailbox_settings(TOKEN)
    iana_settings = await client.get_mailbox_settings(TOKEN)
    await client.send_mail(TOKEN, to=["a@contoso.com"], subject="Booked", html="<p>Done</p>")
    await client.send_mail(
        TOKEN, to=["b@contoso.com"], subject="Hi", html="<p>x</p>", as_user="frontdesk@contoso.com"
    )

    assert meeting.join_url == "https://teams.microsoft.com/l/meetup-join/abc"
    assert (meeting.start, meeting.end) == (at(9), at(10))
    assert stub.made("POST", "/me/onlineMeetings")[0].json == {
        "subject": "Planning",
        "startDateTime": "2026-11-23T09:00:00Z",
        "endDateTime": "2026-11-23T10:00:00Z",
    }
    assert manager is not None and manager.email == "meganb@contoso.com"
    assert windows_settings.time_zone == ZoneInfo("Europe/Berlin")
    assert windows_settings.windows_zone == "W. Europe Standard Time"
    assert windows_settings.automatic_replies_on
    assert iana_settings.time_zone == ZoneInfo("Europe/London")
    assert iana_settings.windows_zone == "GMT Standard Time"
    assert not iana_settings.automatic_replies_on
    mail = stub.made("POST", "/me/sendMail")[0].json["message"]
    assert mail["toRecipients"] == [{"emailAddress": {"address": "a@contoso.com"}}]
    assert mail["body"] == {"contentType": "HTML", "content": "<p>Done</p>"}
    assert stub.made("POST", "/users/frontdesk@contoso.com/sendMail")


async def test_no_manager_is_none(stub: GraphStub, client: GraphClient, sleep: FakeSleep) -> None:
    stub.on(
        "GET",
        "/me/manager",
        [graph_error(404, "Request_ResourceNotFound", "Resource 'manager' does not exist")],
    )

    assert await client.get_manager(TOKEN) is None
    assert sleep.delays == []


# == retries ======================================================================================
async def test_429_waits_retry_after_then_succeeds(
    stub: GraphStub, client: GraphClient, sleep: FakeSleep
) -> None:
    stub.on(
        "GET",
        "/places/microsoft.graph.roomlist",
        [
            graph_error(429, "TooManyRequests", "Too many requests", **{"Retry-After": "2"}),
            reply(200, {"value": []}),
        ],
    )

    assert await client.list_room_lists(TOKEN) == []
    assert sleep.delays == [2.0]
    ids = [r.headers["client-request-id"] for r in stub.requests]
    assert len(ids) == 2 and ids[0] != ids[1]


async def test_503_without_retry_after_backs_off_exponentially(
    stub: GraphStub, client: GraphClient, sleep: FakeSleep
) -> None:
    stub.on(
        "GET",
        "/places/microsoft.graph.roomlist",
        [
            graph_error(503, "ServiceUnavailable"),
            graph_error(503, "ServiceUnavailable"),
            reply(200, {"value": []}),
        ],
    )

    await client.list_room_lists(TOKEN)

    # base 1 s doubling, jitter between half and all of it (the fake random gives the middle)
    assert sleep.delays == [0.75, 1.5]


async def test_retries_run_out_as_graph_throttled(
    stub: GraphStub, client: GraphClient, sleep: FakeSleep
) -> None:
    stub.on(
        "POST",
        "/me/sendMail",  # not idempotent, yet 429 means Graph did not run it: retried too
        [graph_error(429, "ApplicationThrottled", "MailboxConcurrency", **{"Retry-After": "1"})],
    )

    with pytest.raises(GraphThrottled) as raised:
        await client.send_mail(TOKEN, to=["a@contoso.com"], subject="x", html="x")

    assert sleep.delays == [1.0, 1.0, 1.0]
    assert len(stub.requests) == 4
    assert raised.value.status == 429 and raised.value.retry_after == 1.0
    assert raised.value.code == "ApplicationThrottled"


async def test_a_retry_after_beyond_the_cap_fails_at_once(
    stub: GraphStub, client: GraphClient, sleep: FakeSleep
) -> None:
    stub.on(
        "GET",
        "/me/mailboxSettings",
        [graph_error(429, "TooManyRequests", **{"Retry-After": "120"})],
    )

    with pytest.raises(GraphThrottled) as raised:
        await client.get_mailbox_settings(TOKEN)

    assert sleep.delays == [] and len(stub.requests) == 1
    assert raised.value.retry_after == 120.0


async def test_401_is_an_auth_error_without_retry(
    stub: GraphStub, client: GraphClient, sleep: FakeSleep
) -> None:
    stub.on(
        "GET",
        "/me/mailboxSettings",
        [graph_error(401, "InvalidAuthenticationToken", "Access token has expired.")],
    )

    with pytest.raises(GraphAuthError) as raised:
        await client.get_mailbox_settings(TOKEN)

    assert (raised.value.status, raised.value.code) == (401, "InvalidAuthenticationToken")
    assert raised.value.request_id == "rid-401"
    assert sleep.delays == [] and len(stub.requests) == 1


async def test_504_is_retried_only_when_repeating_is_harmless(
    stub: GraphStub, client: GraphClient, sleep: FakeSleep
) -> None:
    stub.on("POST", "/me/sendMail", [graph_error(504, "GatewayTimeout")])
    stub.on("GET", "/me/manager", [graph_error(504, "GatewayTimeout"), reply(200, {"id": "m"})])

    with pytest.raises(GraphUnavailable):
        await client.send_mail(TOKEN, to=["a@contoso.com"], subject="x", html="x")
    assert sleep.delays == []
    assert await client.get_manager(TOKEN) is not None
    assert sleep.delays == [0.75]


async def test_a_slow_answer_is_a_timeout(stub: GraphStub, session: aiohttp.ClientSession) -> None:
    async def never(request: Recorded) -> Canned:
        await stub.release.wait()
        return reply(200, {})

    stub.on("GET", "/me/manager", never)
    client = GraphClient(session, base_url=stub.base_url, timeout_seconds=0.2, sleep=FakeSleep())

    with pytest.raises(GraphTimeout):
        await client.get_manager(TOKEN)


async def test_connection_errors_are_retried_for_reads_only(
    session: aiohttp.ClientSession,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleep = FakeSleep()
    client = GraphClient(
        session, base_url=f"http://127.0.0.1:{port}/v1.0", sleep=sleep, random=lambda: 0.5
    )

    with pytest.raises(GraphUnavailable) as raised:
        await client.list_room_lists(TOKEN)
    assert raised.value.status == 0 and sleep.delays == [0.75, 1.5, 3.0]

    sleep.delays.clear()
    with pytest.raises(GraphUnavailable):
        await client.create_online_meeting(TOKEN, subject="x", start=at(9), end=at(10))
    assert sleep.delays == []


# == per-mailbox concurrency ======================================================================
def jwt_like(oid: str, nonce: str) -> str:
    return unsigned_jwt({"oid": oid, "tid": "t", "n": nonce})


@dataclass
class Flights:
    """Requests in flight at the stand-in, per bearer token and in total."""

    now: dict[str, int] = field(default_factory=dict)
    most: dict[str, int] = field(default_factory=dict)
    total: int = 0
    most_total: int = 0

    def handler(self, hold: Callable[[], Awaitable[object]]) -> Handler:
        async def handle(request: Recorded) -> Canned:
            who = request.headers["Authorization"]
            self.now[who] = self.now.get(who, 0) + 1
            self.most[who] = max(self.most.get(who, 0), self.now[who])
            self.total += 1
            self.most_total = max(self.most_total, self.total)
            try:
                await hold()
            finally:
                self.now[who] -= 1
                self.total -= 1
            return reply(200, event_json())

        return handle


async def test_one_mailbox_never_has_more_than_4_requests_in_flight(
    stub: GraphStub, client: GraphClient
) -> None:
    flights = Flights()
    stub.on("GET", "/me/events/AAMkAGI1AAAt9AHjAAA=", flights.handler(lambda: asyncio.sleep(0.02)))

    await asyncio.gather(*(client.get_event(TOKEN, "AAMkAGI1AAAt9AHjAAA=") for _ in range(20)))

    assert len(stub.requests) == 20
    assert flights.most == {f"Bearer {TOKEN}": 4}


async def test_two_mailboxes_proceed_independently(stub: GraphStub, client: GraphClient) -> None:
    eight = asyncio.Event()
    flights = Flights()

    async def hold() -> None:
        if flights.total >= 8:
            eight.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(eight.wait(), timeout=1)

    stub.on("GET", "/me/events/AAMkAGI1AAAt9AHjAAA=", flights.handler(hold))
    alice, bob = jwt_like("alice", "1"), jwt_like("bob", "1")

    await asyncio.gather(*(client.get_event(t, "AAMkAGI1AAAt9AHjAAA=") for t in [alice, bob] * 8))

    assert flights.most == {f"Bearer {alice}": 4, f"Bearer {bob}": 4}
    assert flights.most_total == 8


async def test_tokens_of_one_user_share_the_mailbox_limit(
    stub: GraphStub, client: GraphClient
) -> None:
    flights = Flights()
    stub.on("GET", "/me/events/AAMkAGI1AAAt9AHjAAA=", flights.handler(lambda: asyncio.sleep(0.02)))
    first, second = jwt_like("alice", "1"), jwt_like("alice", "2")

    await asyncio.gather(
        *(client.get_event(t, "AAMkAGI1AAAt9AHjAAA=") for t in [first, second] * 6)
    )

    assert flights.most_total == 4


# == batching =====================================================================================
def batch_answer(request: Recorded, status_of: Callable[[str], int] = lambda _: 200) -> Canned:
    responses = [
        {
            "id": sub["id"],
            "status": status_of(sub["id"]),
            "headers": {"Content-Type": "application/json", "Retry-After": "3"},
            "body": {"url": sub["url"]},
        }
        for sub in reversed(request.json["requests"])  # Graph may answer in any order
    ]
    return reply(200, {"responses": responses})


async def test_batch_splits_into_calls_of_20(stub: GraphStub, client: GraphClient) -> None:
    async def handle(request: Recorded) -> Canned:
        return batch_answer(request)

    stub.on("POST", "/$batch", handle)
    requests = [BatchRequest(id=str(i), method="GET", url=f"/me/events/{i}") for i in range(45)]
    requests[0] = BatchRequest(id="0", method="PATCH", url="/me/events/0", body={"subject": "x"})

    answers = await client.batch(TOKEN, requests)

    calls = stub.made("POST", "/$batch")
    assert sorted(len(call.json["requests"]) for call in calls) == [5, 20, 20]
    assert [answer.id for answer in answers] == [str(i) for i in range(45)]
    assert answers[7].body == {"url": "/me/events/7"} and answers[7].ok
    patch = next(sub for call in calls for sub in call.json["requests"] if sub["id"] == "0")
    assert patch["headers"] == {"Content-Type": "application/json"}
    assert patch["body"] == {"subject": "x"}


async def test_batch_resends_throttled_sub_requests(
    stub: GraphStub, client: GraphClient, sleep: FakeSleep
) -> None:
    throttled_once: set[str] = set()

    def status_of(request_id: str) -> int:
        if request_id == "2" and request_id not in throttled_once:
            throttled_once.add(request_id)
            return 429
        return 200

    async def handle(request: Recorded) -> Canned:
        return batch_answer(request, status_of)

    stub.on("POST", "/$batch", handle)
    requests = [BatchRequest(id=str(i), method="GET", url=f"/me/events/{i}") for i in range(3)]

    answers = await client.batch(TOKEN, requests)

    calls = stub.made("POST", "/$batch")
    assert [len(call.json["requests"]) for call in calls] == [3, 1]
    assert [answer.status for answer in answers] == [200, 200, 200]
    assert sleep.delays == [3.0]


async def test_batch_refuses_duplicate_ids(client: GraphClient) -> None:
    with pytest.raises(ValueError):
        await client.batch(
            TOKEN, [BatchRequest("1", "GET", "/me"), BatchRequest("1", "GET", "/me/manager")]
        )


# == secrets ======================================================================================
async def test_the_token_is_never_logged_nor_in_errors(
    stub: GraphStub, client: GraphClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stub.on(
        "GET",
        "/places/microsoft.graph.room",
        [
            graph_error(429, "TooManyRequests", **{"Retry-After": "1"}),
            reply(200, {"value": [room_json("cf100@contoso.com", "Conf Room 100")]}),
        ],
    )
    stub.on(
        "GET",
        "/me/mailboxSettings",
        [graph_error(401, "InvalidAuthenticationToken", f"Bad header: Bearer {TOKEN}")],
    )

    await client.list_rooms(TOKEN)
    with pytest.raises(GraphAuthError) as raised:
        await client.get_mailbox_settings(TOKEN)

    secret = "secret-token-material"
    assert "request-id" in caplog.text, "responses are logged"
    assert secret not in caplog.text
    assert secret not in str(raised.value) and secret not in raised.value.message
    assert "[redacted]" in raised.value.message


# == time zones ===================================================================================
@pytest.mark.parametrize(
    ("windows", "iana"),
    [
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("GMT Standard Time", "Europe/London"),
        ("Tokyo Standard Time", "Asia/Tokyo"),
        ("UTC", "UTC"),
        ("pacific standard time", "America/Los_Angeles"),
    ],
)
def test_windows_zones_map_to_iana(windows: str, iana: str) -> None:
    assert windows_to_iana(windows) == iana
    assert resolve_zone(windows) == ZoneInfo(iana)


def test_zone_names_of_either_kind_resolve() -> None:
    assert resolve_zone("Europe/Berlin") == ZoneInfo("Europe/Berlin")
    assert resolve_zone("tzone://Microsoft/Utc") == ZoneInfo("UTC")
    assert resolve_zone("Customized Time Zone") is None
    assert resolve_zone("../../etc/passwd") is None
    assert resolve_zone("") is None and resolve_zone(None) is None
    assert iana_to_windows("America/Los_Angeles") == "Pacific Standard Time"
    assert windows_name("w. europe standard time") == "W. Europe Standard Time"
    assert windows_name("Europe/Berlin") == "W. Europe Standard Time"
    assert windows_name("Nowhere/Special") is None
