"""Self-tests of tests/support/fake_graph.py, over real HTTP as the bot's Graph client uses it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from tests.support.fake_graph import (
    GRAPH_ZONE_ALIASES,
    FakeGraph,
    FakeTenant,
    graph_zone,
)
from tests.support.graph_contract import check_request, metadata_available
from tests.support.prereq import require

DAY = "2026-11-23"
ROOM = "hh-1-01@contoso.example"  # "Harbour 1.01", the first room of the demo tenant
OTHER_ROOM = "hh-2-01@contoso.example"
ADELE = "adelev@contoso.example"


def at(hour: int, minute: int = 0) -> str:
    return f"{DAY}T{hour:02d}:{minute:02d}:00"


def utc(hour: int, minute: int = 0) -> datetime:
    return datetime.fromisoformat(at(hour, minute)).replace(tzinfo=UTC)


def booking(
    room: str = ROOM,
    start: str = at(10),
    end: str = at(11),
    *,
    zone: str = "UTC",
    subject: str = "Planning",
    online: bool = True,
    transaction_id: str | None = None,
) -> dict[str, Any]:
    """A create-event body as Frontdesk sends it: the room as resource attendee and location."""
    body: dict[str, Any] = {
        "subject": subject,
        "body": {"contentType": "HTML", "content": "<p>Booked with Frontdesk</p>"},
        "start": {"dateTime": start, "timeZone": zone},
        "end": {"dateTime": end, "timeZone": zone},
        "location": {"displayName": room, "locationEmailAddress": room},
        "attendees": [{"emailAddress": {"address": room}, "type": "resource"}],
    }
    if online:
        body.update(isOnlineMeeting=True, onlineMeetingProvider="teamsForBusiness")
    if transaction_id is not None:
        body["transactionId"] = transaction_id
    return body


def schedule_body(*addresses: str, start: str = at(9), end: str = at(13)) -> dict[str, Any]:
    return {
        "schedules": list(addresses),
        "startTime": {"dateTime": start, "timeZone": "UTC"},
        "endTime": {"dateTime": end, "timeZone": "UTC"},
        "availabilityViewInterval": 30,
    }


@dataclass
class Answer:
    status: int
    body: Any
    headers: CIMultiDictProxy[str]


class Caller:
    """Sends requests to the fake the way a Graph client does (relative paths or nextLinks)."""

    def __init__(self, session: aiohttp.ClientSession, fake: FakeGraph) -> None:
        self.session = session
        self.fake = fake

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        token: str | None = "token-adele",
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        deadline: float | None = None,
    ) -> Answer:
        url = path if path.startswith("http") else self.fake.base_url + path
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        client_timeout = aiohttp.ClientTimeout(total=deadline) if deadline else None
        async with self.session.request(
            method, url, json=json, params=params, headers=sent, timeout=client_timeout
        ) as response:
            text = await response.text()
            body = await response.json(content_type=None) if text else None
            return Answer(response.status, body, response.headers)

    async def pages(self, path: str, **params: str) -> list[dict[str, Any]]:
        """Every page of a collection, following @odata.nextLink."""
        pages: list[dict[str, Any]] = []
        answer = await self("GET", path, params=params or None)
        while True:
            assert answer.status == 200, answer.body
            pages.append(answer.body)
            next_link = answer.body.get("@odata.nextLink")
            if not next_link:
                return pages
            answer = await self("GET", next_link)


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    async with FakeGraph(FakeTenant.demo()) as fake:
        fake.room_response_delay = None  # rooms answer when a test awaits settle()
        yield fake


@pytest.fixture
async def call(graph: FakeGraph) -> AsyncIterator[Caller]:
    async with aiohttp.ClientSession() as session:
        yield Caller(session, graph)


# -- places -----------------------------------------------------------------------------------
async def test_rooms_come_in_pages_with_absolute_next_links(graph: FakeGraph, call: Caller) -> None:
    graph.page_size = 40

    pages = await call.pages("/places/microsoft.graph.room")

    assert [len(page["value"]) for page in pages] == [40, 40, 20]
    assert all(p["@odata.nextLink"].startswith(graph.base_url + "/places/") for p in pages[:2])
    assert "$skip=40" in pages[0]["@odata.nextLink"]
    rooms = [room for page in pages for room in page["value"]]
    assert len({room["id"] for room in rooms}) == 100
    first = rooms[0]
    assert first["emailAddress"] == ROOM and first["displayName"] == "Harbour 1.01"
    assert isinstance(first["capacity"], int) and first["building"] == "Harbour House"
    assert {
        "floorNumber",
        "floorLabel",
        "isWheelChairAccessible",
        "tags",
        "bookingType",
        "audioDeviceName",
        "videoDeviceName",
        "displayDeviceName",
    } <= first.keys()
    assert graph.counts["GET /places/microsoft.graph.room"] == 3
    graph.assert_contract()


async def test_top_sets_the_page_size(call: Caller) -> None:
    pages = await call.pages("/places/microsoft.graph.room", **{"$top": "60"})

    assert [len(page["value"]) for page in pages] == [60, 40]


async def test_room_lists_and_the_rooms_of_one_list(call: Caller) -> None:
    lists = await call("GET", "/places/microsoft.graph.roomlist")
    foundry = await call(
        "GET", "/places/rooms-foundry@contoso.example/microsoft.graph.roomlist/rooms"
    )
    unknown = await call("GET", "/places/nowhere@contoso.example/microsoft.graph.roomlist/rooms")

    assert [rl["displayName"] for rl in lists.body["value"]] == [
        "Harbour House",
        "Meridian Tower",
        "Foundry",
    ]
    assert lists.body["value"][2]["emailAddress"] == "rooms-foundry@contoso.example"
    names = [room["displayName"] for room in foundry.body["value"]]
    assert len(names) == 33 and names[0] == "Foundry Café"
    assert unknown.status == 404 and unknown.body["error"]["code"] == "ErrorItemNotFound"


async def test_a_messy_tenant_answers_like_the_docs_example() -> None:
    rooms = [room.to_graph() for room in FakeTenant.demo(messy=True).rooms]

    assert any(isinstance(room["capacity"], str) for room in rooms)
    assert any("floorNumber" not in room for room in rooms)
    odd = rooms[6]
    assert odd["displayDevice"] == "surface hub" and "displayDeviceName" not in odd
    assert odd["isWheelchairAccessible"] is False and "isWheelChairAccessible" not in odd


def test_demo_tenant_is_deterministic_and_every_zone_alias_resolves() -> None:
    first, second = FakeTenant.demo(), FakeTenant.demo()

    assert [r.to_graph() for r in first.rooms] == [r.to_graph() for r in second.rooms]
    assert list(first.users) == list(second.users)
    assert [name for name in GRAPH_ZONE_ALIASES if graph_zone(name) is None] == []


# -- free/busy --------------------------------------------------------------------------------
async def test_get_schedule_is_computed_from_the_calendars(graph: FakeGraph, call: Caller) -> None:
    graph.book(ROOM, utc(10), utc(11), subject="Standup")
    graph.book(ROOM, utc(11, 30), utc(12), show_as="tentative")

    answer = await call(
        "POST",
        "/me/calendar/getSchedule",
        json=schedule_body(ROOM, OTHER_ROOM, "ghost@contoso.example"),
    )

    assert answer.status == 200
    busy, free, unknown = answer.body["value"]
    assert busy["scheduleId"] == ROOM and busy["availabilityView"] == "00220100"
    assert [item["status"] for item in busy["scheduleItems"]] == ["busy", "tentative"]
    assert busy["scheduleItems"][0]["start"] == {
        "dateTime": f"{DAY}T10:00:00.0000000",
        "timeZone": "UTC",
    }
    assert free["availabilityView"] == "00000000" and free["scheduleItems"] == []
    assert unknown["error"]["responseCode"] == "ErrorMailRecipientNotFound"
    assert "Preference-Applied" not in answer.headers
    graph.assert_contract()


async def test_get_schedule_honours_prefer_time_zone(graph: FakeGraph, call: Caller) -> None:
    graph.book(ROOM, utc(10), utc(11))
    body = schedule_body(ROOM, start=at(1), end=at(5))
    body["startTime"]["timeZone"] = body["endTime"]["timeZone"] = "Pacific Standard Time"

    answer = await call(
        "POST",
        "/me/calendar/getSchedule",
        json=body,
        headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'},
    )

    (room,) = answer.body["value"]
    # 01:00-05:00 Pacific is 09:00-13:00 UTC; the meeting is 02:00-03:00 Pacific.
    assert room["availabilityView"] == "00220000"
    assert room["scheduleItems"][0]["start"] == {
        "dateTime": f"{DAY}T02:00:00.0000000",
        "timeZone": "Pacific Standard Time",
    }
    assert answer.headers["Preference-Applied"] == 'outlook.timezone="Pacific Standard Time"'


async def test_get_schedule_limits(graph: FakeGraph, call: Caller) -> None:
    rooms = [room.email for room in graph.tenant.rooms[:21]]

    too_many = await call("POST", "/me/calendar/getSchedule", json=schedule_body(*rooms))
    bad_interval = await call(
        "POST",
        "/me/calendar/getSchedule",
        json={**schedule_body(ROOM), "availabilityViewInterval": 2},
    )
    as_text = await call(
        "POST",
        "/me/calendar/getSchedule",
        json={**schedule_body(ROOM), "availabilityViewInterval": "60"},
    )

    assert too_many.status == 400 and "20" in too_many.body["error"]["message"]
    assert bad_interval.status == 400
    assert as_text.status == 200 and as_text.body["value"][0]["availabilityView"] == "0000"


# -- booking ----------------------------------------------------------------------------------
async def test_room_accepts_then_declines_a_conflicting_meeting(
    graph: FakeGraph, call: Caller
) -> None:
    created = await call("POST", "/me/events", json=booking())

    assert created.status == 201
    event = created.body
    (room,) = event["attendees"]
    assert room["type"] == "resource"
    assert room["status"] == {"response": "none", "time": "0001-01-01T00:00:00Z"}
    assert event["responseStatus"]["response"] == "organizer"
    assert event["organizer"]["emailAddress"]["address"] == ADELE
    assert event["isOnlineMeeting"] is True and event["onlineMeetingProvider"] == "teamsForBusiness"
    assert event["onlineMeeting"]["joinUrl"].startswith(
        "https://teams.microsoft.com/l/meetup-join/"
    )
    assert event["start"] == {"dateTime": f"{DAY}T10:00:00.0000000", "timeZone": "UTC"}
    assert "transactionId" not in event
    assert graph.pending_room_responses == 1

    await graph.settle()
    again = await call("GET", f"/me/events/{event['id']}")
    clash = await call(
        "POST", "/me/events", token="token-megan", json=booking(start=at(10, 30), end=at(11, 30))
    )
    await graph.settle()
    declined = await call("GET", f"/me/events/{clash.body['id']}", token="token-megan")

    assert again.body["attendees"][0]["status"]["response"] == "accepted"
    assert again.body["attendees"][0]["status"]["time"].endswith("Z")
    assert declined.body["attendees"][0]["status"]["response"] == "declined"
    (copy,) = graph.calendar(ROOM)
    assert copy.source_id == event["id"] and (copy.start, copy.end) == (utc(10), utc(11))
    assert [e.id for e in graph.calendar(ADELE)] == [event["id"]]
    graph.assert_contract()


async def test_rooms_answer_on_their_own_after_the_delay(graph: FakeGraph, call: Caller) -> None:
    graph.room_response_delay = 0.05
    created = await call("POST", "/me/events", json=booking())

    await graph.wait_for_room_responses()

    answer = await call("GET", f"/me/events/{created.body['id']}")
    assert answer.body["attendees"][0]["status"]["response"] == "accepted"
    assert graph.pending_room_responses == 0


async def test_a_repeated_transaction_id_returns_the_same_event(
    graph: FakeGraph, call: Caller
) -> None:
    first = await call("POST", "/me/events", json=booking(transaction_id="txn-1"))
    retry = await call("POST", "/me/events", json=booking(transaction_id="txn-1"))
    different = await call(
        "POST", "/me/events", json=booking(subject="Other", transaction_id="txn-1")
    )

    assert (first.status, retry.status) == (201, 201)
    assert retry.body["id"] == first.body["id"] and first.body["transactionId"] == "txn-1"
    assert len(graph.calendar(ADELE)) == 1 and graph.pending_room_responses == 1
    assert different.status == 400
    assert different.body["error"]["code"] == "ErrorDuplicateTransactionId"
    assert graph.counts["transactionId replays"] == 1


async def test_transaction_replay_can_answer_with_the_error_instead(
    graph: FakeGraph, call: Caller
) -> None:
    graph.transaction_replay = "error"
    await call("POST", "/me/events", json=booking(transaction_id="txn-1"))

    retry = await call("POST", "/me/events", json=booking(transaction_id="txn-1"))

    assert retry.status == 400 and retry.body["error"]["code"] == "ErrorDuplicateTransactionId"


async def test_a_post_that_timed_out_after_creating_is_found_again_by_transaction_id(
    graph: FakeGraph, call: Caller
) -> None:
    graph.hang("/me/events", 2, method="POST", after_processing=True)

    with pytest.raises(TimeoutError):
        await call("POST", "/me/events", json=booking(transaction_id="txn-9"), deadline=0.2)
    retry = await call("POST", "/me/events", json=booking(transaction_id="txn-9"))

    (stored,) = graph.calendar(ADELE)
    assert retry.status == 201 and retry.body["id"] == stored.id


async def test_tenants_that_drop_join_links(graph: FakeGraph, call: Caller) -> None:
    graph.tenant.drop_join_links = True

    created = await call("POST", "/me/events", json=booking())

    assert created.status == 201
    assert created.body["isOnlineMeeting"] is True and created.body["onlineMeeting"] is None


async def test_patch_turns_a_meeting_online_and_select_trims_the_answer(
    graph: FakeGraph, call: Caller
) -> None:
    created = await call("POST", "/me/events", json=booking(online=False))
    event_id = created.body["id"]

    patched = await call(
        "PATCH",
        f"/me/events/{event_id}",
        json={"isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness"},
    )
    selected = await call(
        "GET", f"/me/events/{event_id}", params={"$select": "subject,onlineMeeting"}
    )

    assert created.body["onlineMeeting"] is None
    assert patched.status == 200 and patched.body["onlineMeeting"]["joinUrl"]
    assert set(selected.body) == {"@odata.context", "@odata.etag", "id", "subject", "onlineMeeting"}
    assert patched.body["changeKey"] != created.body["changeKey"]


async def test_moving_a_meeting_asks_the_room_again(graph: FakeGraph, call: Caller) -> None:
    created = await call("POST", "/me/events", json=booking())
    await graph.settle()
    graph.book(ROOM, utc(14), utc(15))

    moved = await call(
        "PATCH",
        f"/me/events/{created.body['id']}",
        json={
            "start": {"dateTime": at(14), "timeZone": "UTC"},
            "end": {"dateTime": at(15), "timeZone": "UTC"},
        },
    )
    await graph.settle()

    assert moved.body["attendees"][0]["status"]["response"] == "none"
    assert graph.event(created.body["id"]).attendee_status(ROOM) == "declined"
    assert [e.subject for e in graph.calendar(ROOM)] == ["Busy"], "the old slot was freed"


async def test_cancel_frees_the_room(graph: FakeGraph, call: Caller) -> None:
    created = await call("POST", "/me/events", json=booking())
    await graph.settle()

    cancelled = await call(
        "POST", f"/me/events/{created.body['id']}/cancel", json={"comment": "Plans changed"}
    )
    gone = await call("GET", f"/me/events/{created.body['id']}")
    schedule = await call("POST", "/me/calendar/getSchedule", json=schedule_body(ROOM))
    rebooked = await call("POST", "/me/events", token="token-megan", json=booking())
    await graph.settle()

    assert cancelled.status == 202 and cancelled.body is None
    assert gone.status == 404 and gone.body["error"]["code"] == "ErrorItemNotFound"
    assert schedule.body["value"][0]["availabilityView"] == "00000000"
    assert graph.event(created.body["id"]).cancel_comment == "Plans changed"
    assert graph.event(rebooked.body["id"]).attendee_status(ROOM) == "accepted"


async def test_delete_frees_the_room_too(graph: FakeGraph, call: Caller) -> None:
    created = await call("POST", "/me/events", json=booking())
    await graph.settle()

    deleted = await call("DELETE", f"/me/events/{created.body['id']}")

    assert deleted.status == 204 and graph.calendar(ROOM) == []


async def test_nobody_writes_into_a_room_calendar(call: Caller) -> None:
    for path in (f"/users/{ROOM}/events", f"/users/{ROOM}/calendar/events"):
        answer = await call("POST", path, json=booking())
        assert answer.status == 403 and answer.body["error"]["code"] == "ErrorAccessDenied"


async def test_event_bodies_are_checked_like_graph(graph: FakeGraph, call: Caller) -> None:
    bad_zone = await call("POST", "/me/events", json=booking(zone="Mars Standard Time"))
    bad_type = booking()
    bad_type["attendees"][0]["type"] = "room"
    wrong_kind = await call("POST", "/me/events", json=bad_type)
    as_required = booking()
    as_required["attendees"][0]["type"] = "required"
    accepted_anyway = await call("POST", "/me/events", json=as_required)

    assert bad_zone.status == 400
    assert bad_zone.body["error"]["code"] == "TimeZoneNotSupportedException"
    assert wrong_kind.status == 400 and "attendeeType" in wrong_kind.body["error"]["message"]
    assert accepted_anyway.status == 201, "Exchange books a room invited as required, too"
    assert any("not 'resource'" in problem for problem in graph.contract_problems)


async def test_calendar_view_and_event_paging(graph: FakeGraph, call: Caller) -> None:
    for hour in range(8, 20):
        graph.book(ADELE, utc(hour), utc(hour, 30), subject=f"At {hour}")

    view = await call(
        "GET",
        "/me/calendarView",
        params={"startDateTime": f"{DAY}T09:00:00Z", "endDateTime": f"{DAY}T12:00:00Z"},
    )
    pages = await call.pages("/me/events")
    missing = await call("GET", "/me/calendarView")

    assert [e["subject"] for e in view.body["value"]] == ["At 9", "At 10", "At 11"]
    assert [len(page["value"]) for page in pages] == [10, 2]
    assert missing.status == 400 and missing.body["error"]["code"] == "ErrorInvalidParameter"


async def test_online_meeting(graph: FakeGraph, call: Caller) -> None:
    answer = await call(
        "POST",
        "/me/onlineMeetings",
        json={
            "startDateTime": "2026-11-23T10:00:00.0000000-08:00",
            "endDateTime": "2026-11-23T11:00:00-08:00",
            "subject": "Planning",
        },
    )

    assert answer.status == 201
    assert answer.body["joinWebUrl"].startswith("https://teams.microsoft.com/l/meetup-join/")
    assert answer.body["startDateTime"] == "2026-11-23T18:00:00.0000000Z"
    assert answer.body["joinMeetingIdSettings"]["joinMeetingId"]
    assert answer.body["participants"]["organizer"]["upn"] == ADELE
    assert graph.online_meetings == [answer.body]


# -- people and mail --------------------------------------------------------------------------
async def test_me_manager_and_missing_manager(call: Caller) -> None:
    me = await call("GET", "/me")
    manager = await call(
        "GET", "/me/manager", params={"$select": "id,displayName,mail,userPrincipalName"}
    )
    none = await call("GET", "/me/manager", token="token-patti")

    assert me.body["mail"] == ADELE and me.body["displayName"] == "Adele Vance"
    assert manager.body["displayName"] == "Patti Fernandez"
    assert manager.body["@odata.type"] == "#microsoft.graph.user"
    assert "jobTitle" not in manager.body
    assert none.status == 404 and none.body["error"]["code"] == "Request_ResourceNotFound"


async def test_mailbox_settings(call: Caller) -> None:
    adele = await call("GET", "/me/mailboxSettings")
    zone = await call("GET", "/me/mailboxSettings/timeZone")
    away = await call("GET", "/me/mailboxSettings/automaticRepliesSetting", token="token-alex")

    assert adele.body["timeZone"] == "Pacific Standard Time"
    assert adele.body["automaticRepliesSetting"]["status"] == "disabled"
    assert adele.body["workingHours"]["timeZone"] == {"name": "Pacific Standard Time"}
    assert zone.body["value"] == "Pacific Standard Time"
    assert away.body["status"] == "scheduled"


async def test_send_mail_is_recorded(graph: FakeGraph, call: Caller) -> None:
    message = {
        "subject": "Room booked",
        "body": {"contentType": "HTML", "content": "<p>Booked</p>"},
        "toRecipients": [{"emailAddress": {"address": "pattif@contoso.example"}}],
    }
    graph.tenant.app_tokens.add("app-token")

    mine = await call("POST", "/me/sendMail", json={"message": message, "saveToSentItems": "false"})
    as_service = await call(
        "POST",
        "/users/meganb@contoso.example/sendMail",
        token="app-token",
        json={"message": message},
    )
    as_other = await call(
        "POST", "/users/meganb@contoso.example/sendMail", json={"message": message}
    )
    empty = await call("POST", "/me/sendMail", json={"message": {"subject": "x"}})

    assert (mine.status, as_service.status) == (202, 202) and mine.body is None
    assert [(m.sender, m.recipients, m.save_to_sent_items) for m in graph.sent_mail] == [
        (ADELE, ["pattif@contoso.example"], False),
        ("meganb@contoso.example", ["pattif@contoso.example"], True),
    ]
    assert as_other.status == 403
    assert empty.status == 400 and empty.body["error"]["code"] == "ErrorInvalidRecipients"


# -- authentication, errors, headers ----------------------------------------------------------
async def test_requests_without_a_valid_token_get_401(graph: FakeGraph, call: Caller) -> None:
    missing = await call("GET", "/me", token=None, headers={"client-request-id": "abc-123"})
    unknown = await call("GET", "/me/events", token="stolen")

    for answer in (missing, unknown):
        assert answer.status == 401
        error = answer.body["error"]
        assert error["code"] == "InvalidAuthenticationToken"
        assert error["innerError"]["request-id"] == answer.headers["request-id"]
        assert error["innerError"]["date"]
    assert missing.headers["client-request-id"] == "abc-123"
    assert unknown.headers["client-request-id"] == unknown.headers["request-id"]
    assert graph.requests[0].user is None


async def test_app_tokens_cannot_use_me(graph: FakeGraph, call: Caller) -> None:
    graph.tenant.app_tokens.add("app-token")

    answer = await call("GET", "/me", token="app-token")

    assert answer.status == 400 and "delegated" in answer.body["error"]["message"]


async def test_unknown_routes_and_methods(graph: FakeGraph, call: Caller) -> None:
    unknown = await call("GET", "/me/notAThing")
    wrong_method = await call("PUT", "/me/events")
    outside = await call("GET", graph.base_url.removesuffix("/v1.0") + "/beta/me")

    assert unknown.status == 400 and unknown.body["error"]["code"] == "BadRequest"
    assert wrong_method.status == 405
    assert outside.status == 400
    assert any("not under /v1.0" in problem for problem in graph.contract_problems)


async def test_requests_are_recorded_without_the_token(graph: FakeGraph, call: Caller) -> None:
    await call("POST", "/me/calendar/getSchedule", json=schedule_body(ROOM), params={"x": "1"})

    (request,) = graph.requests
    assert (request.method, request.path, request.query) == (
        "POST",
        "/me/calendar/getSchedule",
        {"x": "1"},
    )
    assert request.headers["Authorization"] == "Bearer ***"
    assert request.json["schedules"] == [ROOM]
    adele = graph.tenant.user(ADELE)
    assert adele is not None and request.user == adele.id and request.status == 200


# -- faults -----------------------------------------------------------------------------------
async def test_throttling_answers_429_with_retry_after(graph: FakeGraph, call: Caller) -> None:
    graph.throttle("/me/events", times=2, retry_after=3)

    answers = [await call("GET", "/me/events") for _ in range(3)]

    assert [a.status for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "3"
    error = answers[0].body["error"]
    assert error["code"] == "TooManyRequests"
    assert error["innerError"]["status"] == "429"


async def test_throttling_with_503_and_fractional_retry_after(
    graph: FakeGraph, call: Caller
) -> None:
    graph.throttle("getSchedule", retry_after=2.128, status=503)

    answer = await call("POST", "/me/calendar/getSchedule", json=schedule_body(ROOM))

    assert answer.status == 503 and answer.headers["Retry-After"] == "2.128"
    assert answer.body["error"]["code"] == "serviceNotAvailable"


async def test_fail_and_hang(graph: FakeGraph, call: Caller) -> None:
    graph.fail("/me/manager", 500, "generalException")
    graph.hang("/me/mailboxSettings", 5)

    failed = await call("GET", "/me/manager")
    recovered = await call("GET", "/me/manager")
    with pytest.raises(TimeoutError):
        await call("GET", "/me/mailboxSettings", deadline=0.2)

    assert failed.status == 500 and failed.body["error"]["code"] == "generalException"
    assert recovered.status == 200


async def test_concurrency_is_tracked_and_can_be_limited(graph: FakeGraph, call: Caller) -> None:
    graph.latency = 0.2

    free = await asyncio.gather(*(call("GET", "/me/events") for _ in range(6)))
    graph.mailbox_concurrency_limit = 4
    limited = await asyncio.gather(*(call("GET", "/me/events") for _ in range(6)))

    assert [a.status for a in free] == [200] * 6
    assert graph.max_concurrency_by_mailbox[ADELE] == 6
    throttled = [a for a in limited if a.status == 429]
    assert len(throttled) == 2
    assert throttled[0].body["error"]["code"] == "ApplicationThrottled"
    assert "MailboxConcurrency" in throttled[0].body["error"]["message"]
    assert "/places" not in str(graph.max_concurrency_by_mailbox)


# -- $batch -----------------------------------------------------------------------------------
async def test_batch_runs_each_request_through_the_same_handlers(
    graph: FakeGraph, call: Caller
) -> None:
    graph.throttle("/me/events", retry_after=7)
    json_header = {"Content-Type": "application/json"}
    requests = [
        {"id": "1", "method": "GET", "url": "/me"},
        {"id": "2", "method": "GET", "url": "me/mailboxSettings/timeZone"},
        {
            "id": "3",
            "method": "POST",
            "url": "/me/calendar/getSchedule",
            "body": schedule_body(ROOM),
            "headers": json_header,
        },
        {"id": "4", "method": "GET", "url": "/me/events?$top=5"},
    ]

    answer = await call("POST", "/$batch", json={"requests": requests})

    assert answer.status == 200
    by_id = {r["id"]: r for r in answer.body["responses"]}
    assert by_id["1"]["status"] == 200 and by_id["1"]["body"]["mail"] == ADELE
    assert by_id["2"]["body"]["value"] == "Pacific Standard Time"
    assert by_id["3"]["body"]["value"][0]["scheduleId"] == ROOM
    assert by_id["4"]["status"] == 429 and by_id["4"]["headers"]["Retry-After"] == "7"
    assert by_id["4"]["body"]["error"]["code"] == "TooManyRequests"
    steps = [r for r in graph.requests if r.batch_id is not None]
    assert sorted(str(r.batch_id) for r in steps) == ["1", "2", "3", "4"]
    assert next(r for r in steps if r.batch_id == "4").query == {"$top": "5"}
    assert graph.contract_checks == len(graph.requests)
    graph.assert_contract()


async def test_batch_limits_and_dependencies(graph: FakeGraph, call: Caller) -> None:
    too_many = [{"id": str(i), "method": "GET", "url": "/me"} for i in range(21)]
    graph.fail("/me/manager", 404, "Request_ResourceNotFound")
    chained = [
        {"id": "a", "method": "GET", "url": "/me/manager"},
        {"id": "b", "method": "GET", "url": "/me", "dependsOn": ["a"]},
    ]
    no_type = [{"id": "1", "method": "POST", "url": "/me/sendMail", "body": {}}]

    over = await call("POST", "/$batch", json={"requests": too_many})
    deps = await call("POST", "/$batch", json={"requests": chained})
    untyped = await call("POST", "/$batch", json={"requests": no_type})
    unauthenticated = await call("POST", "/$batch", token=None, json={"requests": chained})

    assert over.status == 400
    assert [r["status"] for r in deps.body["responses"]] == [404, 424]
    assert untyped.status == 400 and "Content-Type" in untyped.body["error"]["message"]
    assert unauthenticated.status == 401


# -- the contract hook ------------------------------------------------------------------------
async def test_every_request_goes_through_the_contract_checker(
    graph: FakeGraph, call: Caller
) -> None:
    seen: list[tuple[str, str, Any, dict[str, str]]] = []

    def checker(method: str, path: str, body: Any = None, *, query: Any = None) -> list[str]:
        seen.append((method, path, body, dict(query or {})))
        if method == "POST" and path == "/me/events" and "start" not in (body or {}):
            return ["body: start is required"]
        return []

    graph.contract_checker = checker
    await call("POST", "/me/events", json={"subject": "no times"})
    await call(
        "POST",
        "/$batch",
        json={"requests": [{"id": "1", "method": "GET", "url": "/me/events?$top=1"}]},
    )

    assert [(m, p) for m, p, _, _ in seen] == [
        ("POST", "/me/events"),
        ("POST", "/$batch"),
        ("GET", "/me/events"),
    ]
    assert seen[2][3] == {"$top": "1"}
    assert graph.contract_problems == ["POST /me/events: body: start is required"]
    assert graph.contract_checks == len(graph.requests) == 3
    with pytest.raises(AssertionError, match="start is required"):
        graph.assert_contract()


async def test_a_crashing_checker_is_reported_not_fatal(graph: FakeGraph, call: Caller) -> None:
    def checker(method: str, path: str, body: Any = None, *, query: Any = None) -> list[str]:
        raise KeyError("oops")

    graph.contract_checker = checker
    answer = await call("GET", "/me")

    assert answer.status == 200
    assert graph.contract_problems == ["GET /me: contract checker raised KeyError('oops')"]


async def test_the_real_contract_flags_a_wrong_request(graph: FakeGraph, call: Caller) -> None:
    require(metadata_available(), "the Graph v1.0 metadata is missing")

    await call("GET", "/me/events", params={"$select": "subject,notAProperty"})
    await call("POST", "/me/events", json={**booking(), "roomEmail": ROOM})

    assert graph.contract_checker is check_request
    assert graph.contract_checks == 2
    problems = "\n".join(graph.contract_problems)
    assert "notAProperty" in problems and "roomEmail" in problems
