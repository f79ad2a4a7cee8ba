"""Self-tests of tests/support/graph_contract.py against Microsoft's Graph v1.0 metadata.

The valid requests are the ones the bot sends, with bodies shaped like the examples of the
Graph v1.0 docs (calendar-getschedule, user-post-events, event-update, event-cancel,
application-post-onlinemeetings, user-sendmail, place-list, json-batching). Each kind of
violation is shown to be reported, naming the segment or property at fault.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.graph_contract import (
    MAX_BATCH_REQUESTS,
    GraphMetadata,
    assert_valid_request,
    check_request,
    check_url,
    load_metadata,
    metadata_available,
    metadata_path,
    resolve,
)
from tests.support.prereq import require

ROOM = "room-4.12@contoso.example"
ROOM_LIST = "bldg4@contoso.example"
EVENT_ID = "AAMkAGI1AAAt9AHjAAA="
USER_ID = "87d349ed-44d7-43e1-9a83-5f2406dee5bd"


@pytest.fixture(scope="module")
def graph() -> GraphMetadata:
    require(
        metadata_available(),
        "Graph v1.0 metadata not found: expected schemas/graph-v1.0-metadata.xml in the shared "
        "directory (FRONTDESK_SHARED_DIR or ../shared beside the repository)",
    )
    return load_metadata()


def time_zone_value(date_time: str) -> dict[str, str]:
    return {"dateTime": date_time, "timeZone": "W. Europe Standard Time"}


def schedule_body(*schedules: str) -> dict[str, Any]:
    """The getSchedule request body of the docs' example."""
    return {
        "schedules": list(schedules),
        "startTime": time_zone_value("2026-11-23T08:00:00"),
        "endTime": time_zone_value("2026-11-23T18:00:00"),
        "availabilityViewInterval": 15,
    }


def booking_event() -> dict[str, Any]:
    """The event the bot creates: the room as resource attendee and location, a Teams link."""
    return {
        "subject": "Sprint review",
        "body": {"contentType": "HTML", "content": "Booked with Frontdesk."},
        "start": time_zone_value("2026-11-23T14:00:00"),
        "end": time_zone_value("2026-11-23T15:00:00"),
        "location": {"displayName": "Room 4.12", "locationEmailAddress": ROOM},
        "attendees": [
            {"emailAddress": {"address": ROOM, "name": "Room 4.12"}, "type": "resource"},
            {
                "emailAddress": {"address": "adele@contoso.example", "name": "Adele"},
                "type": "required",
            },
        ],
        "isOnlineMeeting": True,
        "onlineMeetingProvider": "teamsForBusiness",
        "allowNewTimeProposals": False,
        "transactionId": "7E163156-7762-4BEB-A1C6-729EA81755A7",
    }


def mail_body() -> dict[str, Any]:
    return {
        "message": {
            "subject": "Room 4.12 booked",
            "body": {"contentType": "Text", "content": "Your booking is confirmed."},
            "toRecipients": [{"emailAddress": {"address": "adele@contoso.example"}}],
        },
        "saveToSentItems": False,
    }


def batch_item(index: int, url: str = "/me/calendar/getSchedule") -> dict[str, Any]:
    return {
        "id": str(index),
        "method": "POST",
        "url": url,
        "body": schedule_body(ROOM),
        "headers": {"Content-Type": "application/json"},
    }


VALID_REQUESTS: list[tuple[str, str, Any, dict[str, str] | None]] = [
    ("GET", "/places/microsoft.graph.room", None, {"$top": "100"}),
    ("GET", "/places/microsoft.graph.roomlist", None, None),
    ("GET", f"/places/{ROOM_LIST}/microsoft.graph.roomlist/rooms", None, {"$top": "100"}),
    (
        "GET",
        "/places/microsoft.graph.room",
        None,
        {"$select": "displayName,emailAddress,capacity,building,floorNumber,tags,bookingType"},
    ),
    ("POST", "/me/calendar/getSchedule", schedule_body(ROOM, "room-2.01@contoso.example"), None),
    ("POST", f"/users/{USER_ID}/calendar/getSchedule", schedule_body(ROOM), None),
    ("POST", "/me/events", booking_event(), None),
    (
        "GET",
        f"/me/events/{EVENT_ID}",
        None,
        {"$select": "subject,start,end,attendees,location,onlineMeeting,isCancelled"},
    ),
    ("GET", "/me/events/{id}", None, None),
    (
        "PATCH",
        f"/me/events/{EVENT_ID}",
        {
            "start": time_zone_value("2026-11-23T15:00:00"),
            "end": time_zone_value("2026-11-23T16:00:00"),
        },
        None,
    ),
    ("POST", f"/me/events/{EVENT_ID}/cancel", {"comment": "Cancelled in Frontdesk."}, None),
    (
        "POST",
        "/me/onlineMeetings",
        {
            "startDateTime": "2026-11-23T14:00:00.0000000+01:00",
            "endDateTime": "2026-11-23T15:00:00Z",
            "subject": "Sprint review",
        },
        None,
    ),
    ("GET", "/me/manager", None, None),
    ("GET", "/me/manager", None, {"$select": "displayName,mail"}),
    ("GET", "/me/mailboxSettings", None, None),
    ("GET", "/me/mailboxSettings", None, {"$select": "timeZone,automaticRepliesSetting"}),
    ("GET", "/me/mailboxSettings/automaticRepliesSetting", None, None),
    ("POST", "/me/sendMail", mail_body(), None),
    ("POST", f"/users/{USER_ID}/sendMail", mail_body(), None),
    ("POST", "/$batch", {"requests": [batch_item(i) for i in range(MAX_BATCH_REQUESTS)]}, None),
    (
        "POST",
        "/$batch",
        {
            "requests": [
                batch_item(1),
                {"id": "2", "method": "GET", "url": "places/microsoft.graph.room?$top=100"},
                {"id": "3", "method": "GET", "url": "/me/mailboxSettings", "dependsOn": ["2"]},
            ]
        },
        None,
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "query"),
    VALID_REQUESTS,
    ids=[f"{method} {path[:60]}" for method, path, _, _ in VALID_REQUESTS],
)
def test_requests_the_bot_sends_fit_v1(
    graph: GraphMetadata, method: str, path: str, body: Any, query: dict[str, str] | None
) -> None:
    assert check_request(method, path, body, query=query, metadata=graph) == []


def test_action_parameters_match_case_insensitively_as_in_the_docs(graph: GraphMetadata) -> None:
    # The CSDL spells them `Comment`, `Schedules`; the docs write both spellings.
    assert check_request("POST", "/me/events/{id}/cancel", {"Comment": "x"}, metadata=graph) == []
    docs_body = {
        "Schedules": [ROOM],
        "StartTime": time_zone_value("2026-11-23T08:00:00"),
        "EndTime": time_zone_value("2026-11-23T18:00:00"),
    }
    assert check_request("POST", "/me/calendar/getSchedule", docs_body, metadata=graph) == []


def test_a_query_string_in_the_path_is_checked(graph: GraphMetadata) -> None:
    assert check_request("GET", "/places/microsoft.graph.room?$top=100", metadata=graph) == []
    problems = check_request("GET", "/places/microsoft.graph.room?$select=seats", metadata=graph)
    assert problems == [
        "GET /places/microsoft.graph.room?$select=seats: query $select: 'seats' is not a "
        "property of microsoft.graph.room or of a type derived from it"
    ]


def test_check_url_takes_what_a_fake_server_sees(graph: GraphMetadata) -> None:
    url = "https://graph.microsoft.com/v1.0/places/microsoft.graph.room?$top=100"
    assert check_url("GET", url, metadata=graph) == []
    assert check_url("POST", "/v1.0/me/events", booking_event(), metadata=graph) == []
    assert check_url("GET", "https://graph.microsoft.com/beta/me/findRooms", metadata=graph) == [
        "GET https://graph.microsoft.com/beta/me/findRooms: the beta endpoint is not allowed; "
        "use v1.0"
    ]


def test_assert_valid_request_fails_the_test_with_every_problem(graph: GraphMetadata) -> None:
    assert_valid_request("POST", "/me/events", booking_event(), metadata=graph)
    with pytest.raises(AssertionError, match=r"body\.subjet: unknown property"):
        assert_valid_request("POST", "/me/events", {"subjet": "typo"}, metadata=graph)


# --- resolution -------------------------------------------------------------------------------


def test_resolve_rooms_of_a_room_list(graph: GraphMetadata) -> None:
    resolution = resolve(
        "GET", f"/places/{ROOM_LIST}/microsoft.graph.roomlist/rooms", metadata=graph
    )
    assert resolution.ok
    assert (resolution.kind, resolution.type_name, resolution.is_collection) == (
        "collection",
        "microsoft.graph.room",
        True,
    )


def test_resolve_get_schedule_is_an_action_bound_to_calendar(graph: GraphMetadata) -> None:
    resolution = resolve("POST", "/me/calendar/getSchedule", metadata=graph)
    assert resolution.ok
    assert resolution.operation is not None
    assert resolution.operation.kind == "action"
    assert resolution.operation.binding is not None
    assert resolution.operation.binding.name == "microsoft.graph.calendar"
    assert (resolution.type_name, resolution.is_collection) == (
        "microsoft.graph.scheduleInformation",
        True,
    )
    qualified = resolve("POST", "/me/calendar/microsoft.graph.getSchedule", metadata=graph)
    assert qualified.ok
    assert qualified.operation == resolution.operation


def test_resolve_structural_property_and_single_navigation(graph: GraphMetadata) -> None:
    settings = resolve("GET", "/me/mailboxSettings", metadata=graph)
    assert (settings.kind, settings.type_name) == ("property", "microsoft.graph.mailboxSettings")
    manager = resolve("GET", "/me/manager", metadata=graph)
    assert (manager.kind, manager.type_name) == ("entity", "microsoft.graph.directoryObject")


# --- violations ---------------------------------------------------------------------------


def test_find_rooms_is_beta_only(graph: GraphMetadata) -> None:
    assert graph.operations_named("findRooms") == []
    assert graph.operations_named("findRoomLists") == []
    assert check_request("GET", "/me/findRooms", metadata=graph) == [
        "GET /me/findRooms: segment 'findRooms': not a property, type cast or operation bound to "
        "microsoft.graph.user in Graph v1.0; 'findRooms' is nowhere in the v1.0 metadata "
        "(beta only?)"
    ]
    (problem,) = check_request("GET", "/places/microsoft.graph.room/findRooms", metadata=graph)
    assert problem.startswith(
        "GET /places/microsoft.graph.room/findRooms: segment 'findRooms': not a key, type cast or "
        "operation bound to Collection(microsoft.graph.room)"
    )


def test_unknown_segment(graph: GraphMetadata) -> None:
    (problem,) = check_request("GET", "/me/evnts", metadata=graph)
    assert problem.startswith("GET /me/evnts: segment 'evnts': not a property")
    (problem,) = check_request("GET", "/rooms", metadata=graph)
    assert (
        problem
        == "GET /rooms: segment 'rooms': no entity set or singleton called 'rooms' in Graph v1.0"
    )


def test_operation_bound_elsewhere_names_its_binding(graph: GraphMetadata) -> None:
    (problem,) = check_request("POST", "/me/getSchedule", schedule_body(ROOM), metadata=graph)
    assert (
        "microsoft.graph.getSchedule exists in v1.0 but is bound to microsoft.graph.calendar"
        in (problem)
    )


def test_wrong_type_cast(graph: GraphMetadata) -> None:
    assert check_request("GET", "/places/microsoft.graph.user", metadata=graph) == [
        "GET /places/microsoft.graph.user: segment 'microsoft.graph.user': type cast to "
        "microsoft.graph.user, which is neither microsoft.graph.place nor derived from it"
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        (
            "GET",
            "/me/calendar/getSchedule",
            None,
            "GET on action microsoft.graph.getSchedule: actions take POST",
        ),
        (
            "DELETE",
            "/me/events",
            None,
            "DELETE on a collection (Collection(microsoft.graph.event)): DELETE needs a single "
            "entity (add a key)",
        ),
        (
            "POST",
            "/me/events/delta",
            None,
            "POST on function microsoft.graph.delta: functions take GET",
        ),
        (
            "POST",
            "/me/events/{id}",
            {"subject": "x"},
            "POST to entity microsoft.graph.event: POST needs an entity collection (create) or an "
            "action",
        ),
        ("PATCH", "/me/events", {"subject": "x"}, "PATCH on a collection"),
        (
            "DELETE",
            "/me",
            None,
            "DELETE on singleton microsoft.graph.user: a singleton cannot be deleted",
        ),
        ("GET", "/me/events", {"subject": "x"}, "body: GET must not carry a body"),
    ],
    ids=[
        "GET-action",
        "DELETE-collection",
        "POST-function",
        "POST-entity",
        "PATCH-collection",
        "DELETE-singleton",
        "GET-with-body",
    ],
)
def test_wrong_method(
    graph: GraphMetadata, method: str, path: str, body: Any, expected: str
) -> None:
    problems = check_request(method, path, body, metadata=graph)
    assert any(p.startswith(f"{method} {path}: {expected}") for p in problems), problems


def test_unknown_body_property_at_top_level(graph: GraphMetadata) -> None:
    event = booking_event() | {"colour": "blue"}
    assert check_request("POST", "/me/events", event, metadata=graph) == [
        "POST /me/events: body.colour: unknown property on microsoft.graph.event"
    ]


def test_unknown_body_property_nested(graph: GraphMetadata) -> None:
    event = booking_event()
    event["attendees"][0]["kind"] = "resource"
    assert check_request("POST", "/me/events", event, metadata=graph) == [
        "POST /me/events: body.attendees[0].kind: unknown property on microsoft.graph.attendee"
    ]


def test_property_names_in_bodies_are_case_sensitive(graph: GraphMetadata) -> None:
    event = booking_event() | {"IsAllDay": False}
    assert check_request("POST", "/me/events", event, metadata=graph) == [
        "POST /me/events: body.IsAllDay: unknown property on microsoft.graph.event "
        "(did you mean 'isAllDay'?)"
    ]


def test_unknown_action_parameter(graph: GraphMetadata) -> None:
    body = schedule_body(ROOM) | {"maxResults": 5}
    (problem,) = check_request("POST", "/me/calendar/getSchedule", body, metadata=graph)
    assert problem.startswith(
        "POST /me/calendar/getSchedule: body.maxResults: unknown parameter of "
        "microsoft.graph.getSchedule"
    )


def test_missing_required_action_parameter(graph: GraphMetadata) -> None:
    assert check_request("POST", "/me/sendMail", {"saveToSentItems": False}, metadata=graph) == [
        "POST /me/sendMail: body: missing required parameter Message"
    ]


def test_wrong_enum_value(graph: GraphMetadata) -> None:
    event = booking_event() | {"onlineMeetingProvider": "zoom"}
    assert check_request("POST", "/me/events", event, metadata=graph) == [
        "POST /me/events: body.onlineMeetingProvider: 'zoom' is not a member of "
        "microsoft.graph.onlineMeetingProviderType (unknown, skypeForBusiness, skypeForConsumer, "
        "teamsForBusiness)"
    ]


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        (
            "/me/events",
            booking_event() | {"isOnlineMeeting": "true"},
            "body.isOnlineMeeting: expected true/false for Edm.Boolean, got the string 'true'",
        ),
        (
            "/me/calendar/getSchedule",
            schedule_body(ROOM) | {"availabilityViewInterval": "15"},
            "body.availabilityViewInterval: expected an integer for Edm.Int32, got the string '15'",
        ),
        (
            # The docs' own sendMail example sends "false" as a string.
            "/me/sendMail",
            mail_body() | {"saveToSentItems": "false"},
            "body.saveToSentItems: expected true/false for Edm.Boolean, got the string 'false'",
        ),
        (
            "/me/events",
            booking_event() | {"attendees": {"emailAddress": {"address": ROOM}}},
            "body.attendees: expected a JSON array for Collection(microsoft.graph.attendee), got "
            "an object",
        ),
        (
            "/me/onlineMeetings",
            {"startDateTime": "2026-11-23T14:00:00", "subject": "x"},
            "body.startDateTime: '2026-11-23T14:00:00' needs a time and a UTC offset or Z "
            "(Edm.DateTimeOffset)",
        ),
    ],
    ids=[
        "bool-as-string",
        "int-as-string",
        "docs-sendMail-string",
        "object-for-array",
        "naive-time",
    ],
)
def test_wrong_primitive_kind(graph: GraphMetadata, path: str, body: Any, expected: str) -> None:
    assert check_request("POST", path, body, metadata=graph) == [f"POST {path}: {expected}"]


def test_unknown_select_property(graph: GraphMetadata) -> None:
    problems = check_request(
        "GET", "/me/events/{id}", query={"$select": "subject,colour"}, metadata=graph
    )
    assert problems == [
        "GET /me/events/{id}: query $select: 'colour' is not a property of microsoft.graph.event "
        "or of a type derived from it"
    ]


def test_unknown_query_option(graph: GraphMetadata) -> None:
    problems = check_request(
        "GET", "/me/events", query={"$frobnicate": "1", "$top": "-1"}, metadata=graph
    )
    assert problems == [
        "GET /me/events: query $frobnicate: unknown system query option",
        "GET /me/events: query $top: expected a non-negative integer",
    ]


def test_batch_over_twenty_requests(graph: GraphMetadata) -> None:
    body = {"requests": [batch_item(i) for i in range(MAX_BATCH_REQUESTS + 1)]}
    assert check_request("POST", "/$batch", body, metadata=graph) == [
        "POST /$batch: body.requests: 21 requests; Graph accepts at most 20 per batch"
    ]


def test_invalid_inner_batch_requests(graph: GraphMetadata) -> None:
    body = {
        "requests": [
            batch_item(1),
            {"id": "2", "method": "GET", "url": "/me/findRooms"},
            {"id": "3", "method": "GET", "url": "/me/calendar/getSchedule"},
            {"id": "4", "method": "POST", "url": "/me/events", "body": booking_event()},
            {"id": "5", "method": "GET", "url": "https://graph.microsoft.com/v1.0/me"},
            {"id": "1", "method": "GET", "url": "/me/manager", "dependsOn": ["9"]},
        ]
    }
    problems = check_request("POST", "/$batch", body, metadata=graph)
    expected = [
        "body.requests[0].id: '1' is not unique in the batch",
        "body.requests[1]: GET /me/findRooms: segment 'findRooms'",
        "body.requests[2]: GET /me/calendar/getSchedule: GET on action",
        "body.requests[3].headers: a request with a body needs a Content-Type header",
        "body.requests[4].url: 'https://graph.microsoft.com/v1.0/me' must be relative to /v1.0",
        "body.requests[5].dependsOn: no request with id '9'",
    ]
    for fragment in expected:
        assert any(p.startswith(f"POST /$batch: {fragment}") for p in problems), (
            fragment,
            problems,
        )


def test_batch_needs_post_and_requests(graph: GraphMetadata) -> None:
    assert check_request("POST", "/$batch", {"requests": []}, metadata=graph) == [
        "POST /$batch: body.requests: expected a non-empty array of requests"
    ]
    assert check_request("GET", "/$batch", {"requests": [batch_item(1)]}, metadata=graph) == [
        "GET /$batch: GET on $batch: a batch is sent with POST"
    ]


# --- what the metadata itself says ----------------------------------------------------------


def test_places_are_modelled_as_an_abstract_place_with_derived_rooms(graph: GraphMetadata) -> None:
    place = graph.entity_type("microsoft.graph.place")
    assert place is not None and place.abstract
    assert graph.entity_sets["places"].type == "microsoft.graph.place"
    room_list = graph.properties("microsoft.graph.roomList")
    assert room_list["rooms"].navigation and room_list["rooms"].type.collection
    constraint = graph.capabilities_for(f"{graph.container}/places").derived_types
    assert constraint is not None
    assert {"microsoft.graph.room", "microsoft.graph.roomList"} <= constraint
    # The set itself is marked unreadable: rooms are listed through the type cast.
    assert check_request("GET", "/places", metadata=graph) == [
        "GET /places: GET Collection(microsoft.graph.place): not readable here "
        "(ReadRestrictions/Readable=false)"
    ]


def test_online_meetings_post_is_allowed_by_the_metadata(graph: GraphMetadata) -> None:
    resolution = resolve("POST", "/me/onlineMeetings", metadata=graph)
    assert resolution.ok
    assert resolution.capabilities.insertable is not False


def test_calendar_view_requires_its_time_range(graph: GraphMetadata) -> None:
    assert check_request("GET", "/me/calendarView", metadata=graph) == [
        "GET /me/calendarView: query: required query option 'endDateTime' is missing",
        "GET /me/calendarView: query: required query option 'startDateTime' is missing",
    ]
    query = {"startDateTime": "2026-11-23T00:00:00Z", "endDateTime": "2026-11-30T00:00:00Z"}
    assert check_request("GET", "/me/calendarView", query=query, metadata=graph) == []


def test_read_only_properties_are_refused(graph: GraphMetadata) -> None:
    path = "/solutions/bookingBusinesses/{id}/appointments"
    assert check_request("POST", path, {"duration": "PT1H"}, metadata=graph) == [
        f"POST {path}: body.duration: read-only on microsoft.graph.bookingAppointment "
        "(Core.Computed)"
    ]


def test_abstract_types_in_bodies_need_odata_type(graph: GraphMetadata) -> None:
    path = f"/me/events/{EVENT_ID}/attachments"
    attachment = {"name": "agenda.txt", "contentBytes": "SGVsbG8="}
    problems = check_request("POST", path, attachment, metadata=graph)
    assert problems[0].startswith(
        f"POST {path}: body: microsoft.graph.attachment is abstract; add @odata.type"
    )
    typed = {"@odata.type": "#microsoft.graph.fileAttachment", **attachment}
    assert check_request("POST", path, typed, metadata=graph) == []


def test_metadata_is_parsed_once_per_process(graph: GraphMetadata) -> None:
    assert load_metadata() is graph
    assert load_metadata(metadata_path()) is graph
    assert 0 < graph.load_seconds < 30
