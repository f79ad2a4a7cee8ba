"""DIRECTORY=graph over real HTTP: rooms, free/busy and events from a fake Microsoft Graph, the
user's token from a fake Bot Framework token service. Every Graph request is checked against
the v1.0 metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app import COMPONENTS
from bot.commands import Verb
from bot.config import DEFAULT_POLICIES_FILE
from bot.storage.tables import BookingStatus
from tests.bot.conftest import Frontdesk, card_of
from tests.support.activities import ALEX, MEGAN, make_card_action, make_message
from tests.support.cardquery import (
    action_titled,
    book_actions,
    execute_actions,
    inputs,
    text_of,
    walk,
)
from tests.support.fake_graph import FakeGraph
from tests.support.graph_session import (
    CONNECTION,
    MEGAN_TOKEN,
    Microsoft365,
    megan_mailbox,
    microsoft365,
)
from tests.support.graph_session import megan as graph_megan

# 10:00-10:30 in New York (the test client's zone) on the FakeClock's day.
SLOT = {"date": "2026-11-23", "start": "10:00", "duration": "30", "attendees": "4"}


@pytest.fixture
async def tenant() -> AsyncIterator[Microsoft365]:
    """The fake Graph and token service, nobody signed in yet (`graph` signs Megan in)."""
    async with microsoft365(signed_in=False) as m365:
        yield m365


@pytest.fixture
def app_env(tenant: Microsoft365) -> dict[str, str]:
    return tenant.settings()


@pytest.fixture
def graph(tenant: Microsoft365) -> FakeGraph:
    """The fake Graph, with Megan signed in through the OAuth connection."""
    tenant.sign_in()
    return tenant.graph


async def test_book_and_cancel_against_microsoft_graph(
    frontdesk: Frontdesk, graph: FakeGraph
) -> None:

    form = await frontdesk.say("book")
    buildings = inputs(form)["building"]["choices"]
    assert {choice["value"] for choice in buildings} == {
        room.building for room in graph.tenant.rooms if room.building
    }
    results = await frontdesk.search(SLOT)
    offers = book_actions(results)
    assert offers, text_of(results)
    first = offers[0]

    confirmation = await frontdesk.press(first)

    assert "Room booked" in text_of(confirmation)
    assert "Join the Teams meeting" in text_of(confirmation)
    [event] = graph.calendar(megan_mailbox(graph))
    [booking] = frontdesk.bookings()
    assert event.transaction_id == booking.attempt_id
    assert booking.event_id == event.id
    assert booking.join_url and booking.join_url in str(event.online_meeting)
    [room] = [a for a in event.attendees if a.get("type") == "resource"]
    assert room["emailAddress"]["address"].lower() == first["data"]["room"]
    # The same click again books nothing new.
    again = await frontdesk.press(first)
    assert "Room booked" in text_of(again)
    assert len(graph.calendar(megan_mailbox(graph))) == 1

    listing = await frontdesk.say("my bookings")
    cancel = execute_actions(listing, Verb.BOOKING_CANCEL)[0]
    asking = await frontdesk.press(cancel)
    done = await frontdesk.press(action_titled(asking, "Yes, cancel it"), {"comment": "Moved"})

    assert "Booking cancelled" in text_of(done)
    assert graph.calendar(megan_mailbox(graph)) == []


async def test_a_room_busy_in_outlook_is_not_offered(
    frontdesk: Frontdesk, graph: FakeGraph
) -> None:
    results = await frontdesk.search(SLOT)
    first_room = book_actions(results)[0]["data"]["room"]
    day = frontdesk.clock.now.replace(hour=0, minute=0)
    graph.book(first_room, day, day + timedelta(days=1), subject="Someone else's all-day event")

    again = await frontdesk.search(SLOT)

    assert first_room not in {action["data"]["room"] for action in book_actions(again)}


# --- signing in -------------------------------------------------------------------------------

OAUTH_CARD = "application/vnd.microsoft.card.oauth"
LOGIN_REQUEST = "application/vnd.microsoft.activity.loginRequest"


async def test_a_command_before_sign_in_gets_an_oauth_card(frontdesk: Frontdesk) -> None:
    before = len(frontdesk.connector.sent)

    status, _ = await frontdesk.post(make_message("book", service_url=frontdesk.service_url))

    assert status == 201
    [sent] = frontdesk.connector.sent[before:]
    [attachment] = sent.json["attachments"]
    assert attachment["contentType"] == OAUTH_CARD
    card = attachment["content"]
    assert card["connectionName"] == CONNECTION
    assert card["buttons"][0]["type"] == "signin"
    assert card["buttons"][0]["value"].startswith("http")
    assert card["tokenExchangeResource"]["id"]


async def test_a_command_whose_sign_in_card_cannot_be_made_is_explained(
    frontdesk: Frontdesk, tenant: Microsoft365
) -> None:
    tokens = tenant.tokens
    del tokens.connections[CONNECTION]  # the token service no longer knows the connection

    card = await frontdesk.say("book")

    assert "Sign-in problem" in text_of(card)


async def test_a_click_before_sign_in_asks_teams_for_a_login_then_resumes(
    frontdesk: Frontdesk, tenant: Microsoft365
) -> None:
    tokens = tenant.tokens
    tokens.allow_exchange(CONNECTION, "sso-from-teams", yields=MEGAN_TOKEN)

    status, body = await frontdesk.invoke(Verb.BOOKING_START.value, {})

    assert status == 200
    assert (body["statusCode"], body["type"]) == (401, LOGIN_REQUEST)
    assert body["value"]["connectionName"] == CONNECTION
    assert body["value"]["buttons"][0]["type"] == "signin"
    assert body["value"]["tokenExchangeResource"]["uri"]
    # Teams signs the user in silently and sends the same click with the token.
    resumed = make_card_action(
        Verb.BOOKING_START.value,
        {},
        service_url=frontdesk.service_url,
        value={
            "action": {"type": "Action.Execute", "verb": Verb.BOOKING_START.value, "data": {}},
            "trigger": "manual",
            "authentication": {"id": "x", "connectionName": CONNECTION, "token": "sso-from-teams"},
        },
    )
    status, body = await frontdesk.post(resumed)
    assert (status, body["statusCode"]) == (200, 200)
    assert "date" in inputs(body["value"])


async def test_a_click_resumes_with_the_sign_in_pages_code(
    frontdesk: Frontdesk, tenant: Microsoft365
) -> None:
    tokens = tenant.tokens
    tokens.pending_sign_in(MEGAN.id, CONNECTION, "123456", MEGAN_TOKEN)
    action = {"type": "Action.Execute", "verb": Verb.BOOKING_LIST.value, "data": {}}

    status, body = await frontdesk.post(
        make_card_action(
            Verb.BOOKING_LIST.value,
            {},
            service_url=frontdesk.service_url,
            value={"action": action, "trigger": "manual", "state": "123456"},
        )
    )

    assert (status, body["statusCode"]) == (200, 200)
    assert "no upcoming bookings" in text_of(body["value"])


async def test_sso_token_exchange_invoke(frontdesk: Frontdesk, tenant: Microsoft365) -> None:
    tokens = tenant.tokens
    tokens.allow_exchange(CONNECTION, "good-sso", yields=MEGAN_TOKEN)

    def exchange(token: str) -> dict[str, Any]:
        activity = make_card_action("x", {}, service_url=frontdesk.service_url)
        activity["name"] = "signin/tokenExchange"
        activity["value"] = {"id": "exchange-1", "connectionName": CONNECTION, "token": token}
        return activity

    refused, body = await frontdesk.post(exchange("bad-sso"))
    accepted, _ = await frontdesk.post(exchange("good-sso"))

    assert refused == 412  # Teams falls back to the sign-in button
    assert body["connectionName"] == CONNECTION and body["failureDetail"]
    assert accepted == 200
    assert "Signed in" in text_of(frontdesk.connector.cards()[-1])
    form = await frontdesk.say("book")
    assert "date" in inputs(form)


async def test_sso_token_exchange_while_the_token_service_fails_falls_back_to_the_button(
    frontdesk: Frontdesk, tenant: Microsoft365
) -> None:
    tokens = tenant.tokens
    tokens.allow_exchange(CONNECTION, "good-sso", yields=MEGAN_TOKEN)
    tokens.fail_with = 503
    activity = make_card_action("x", {}, service_url=frontdesk.service_url)
    activity["name"] = "signin/tokenExchange"
    activity["value"] = {"id": "exchange-1", "connectionName": CONNECTION, "token": "good-sso"}

    status, body = await frontdesk.post(activity)

    assert status == 412  # Teams shows the sign-in button instead
    assert body["connectionName"] == CONNECTION and body["failureDetail"]


async def test_a_sign_in_code_the_token_service_cannot_redeem_is_explained(
    frontdesk: Frontdesk, tenant: Microsoft365
) -> None:
    tokens = tenant.tokens
    tokens.pending_sign_in(MEGAN.id, CONNECTION, "123456", MEGAN_TOKEN)
    tokens.fail_with = 503
    activity = make_card_action("x", {}, service_url=frontdesk.service_url)
    activity["name"] = "signin/verifyState"
    activity["value"] = {"state": "123456"}

    status, _ = await frontdesk.post(activity)

    assert status == 200
    assert "Sign-in problem" in text_of(frontdesk.connector.cards()[-1])


async def test_sign_out_forgets_the_token(frontdesk: Frontdesk, tenant: Microsoft365) -> None:
    tenant.sign_in()

    card = await frontdesk.say("sign out")
    before = len(frontdesk.connector.sent)
    await frontdesk.post(make_message("book", service_url=frontdesk.service_url))

    assert text_of(card).startswith("Signed out")
    assert not [k for k in tenant.tokens.tokens if k[0] == MEGAN.id]
    [sent] = frontdesk.connector.sent[before:]
    assert sent.json["attachments"][0]["contentType"] == OAUTH_CARD


async def test_graph_throttling_past_the_limit_is_explained_and_books_nothing(
    frontdesk: Frontdesk, graph: FakeGraph
) -> None:
    results = await frontdesk.search(SLOT)
    graph.throttle("/me/events", times=10, retry_after=120)

    card = await frontdesk.press(book_actions(results)[0])

    assert "Microsoft 365" in text_of(card) and "busy" in text_of(card)
    assert frontdesk.bookings() == []
    assert graph.calendar(megan_mailbox(graph)) == []


async def test_a_throttled_booking_waits_and_books_exactly_once(
    frontdesk: Frontdesk, graph: FakeGraph
) -> None:
    results = await frontdesk.search(SLOT)
    graph.throttle("/me/events", times=2, retry_after=1)

    card = await frontdesk.press(book_actions(results)[0])

    assert "Room booked" in text_of(card)
    posts = [r for r in graph.requests if r.method == "POST" and r.path.endswith("/me/events")]
    assert len(posts) == 3  # two throttled, the third created the event
    assert len(graph.calendar(megan_mailbox(graph))) == 1
    assert len(frontdesk.bookings()) == 1


async def test_a_missing_teams_link_is_repaired_and_said_so(
    frontdesk: Frontdesk, graph: FakeGraph
) -> None:
    graph.tenant.drop_join_links = True
    results = await frontdesk.search(SLOT)

    card = await frontdesk.press(book_actions(results)[0])

    assert "Frontdesk created one" in text_of(card)
    [meeting] = (
        graph.online_meetings.values()
        if isinstance(graph.online_meetings, dict)
        else (graph.online_meetings)
    )
    [booking] = frontdesk.bookings()
    assert booking.join_url and booking.join_url_repaired
    [event] = graph.calendar(megan_mailbox(graph))
    assert booking.join_url in str(event.body)


async def test_the_mailbox_time_zone_wins_over_the_clients(
    frontdesk: Frontdesk, tenant: Microsoft365
) -> None:
    # Megan's mailbox says "GMT Standard Time"; her Teams client says New York.
    before_sign_in = await frontdesk.post(
        make_message("help", service_url=frontdesk.service_url, time_zone="America/New_York")
    )
    assert before_sign_in[0] == 201
    tenant.sign_in()

    form = await frontdesk.say("book", time_zone="America/New_York")

    assert "Times are in Europe/London" in text_of(form)
    assert inputs(form)["start"]["value"] == "08:30"  # 08:05 UTC is 08:05 in London


async def test_without_a_sign_in_the_clients_zone_is_used(frontdesk: Frontdesk) -> None:
    before = len(frontdesk.connector.sent)

    await frontdesk.post(
        make_message("help", service_url=frontdesk.service_url, time_zone="America/New_York")
    )

    [row] = frontdesk.rows("SELECT time_zone FROM user_profile")
    assert row["time_zone"] == "America/New_York"
    assert len(frontdesk.connector.sent) == before + 1


# --- the room's answer, and changes made in Outlook --------------------------------------------


async def test_the_rooms_answer_reaches_the_card(frontdesk: Frontdesk, graph: FakeGraph) -> None:
    results = await frontdesk.search(SLOT)

    confirmation = await frontdesk.press(book_actions(results)[0])
    assert "Room's answer: Pending" in text_of(confirmation)
    refresh = confirmation["refresh"]
    assert refresh["userIds"] == [MEGAN.id]
    await graph.settle()
    # Teams sends the refresh action when Megan looks at the card again.
    refreshed = await frontdesk.press(refresh["action"], trigger="automatic")

    assert "Room's answer: Accepted" in text_of(refreshed)
    assert "refresh" not in refreshed
    [booking] = frontdesk.bookings()
    assert booking.room_response == "accepted"


async def test_a_declined_room_frees_the_slot_and_offers_other_rooms(
    frontdesk: Frontdesk, graph: FakeGraph
) -> None:
    results = await frontdesk.search(SLOT)
    first = book_actions(results)[0]
    await frontdesk.press(first)
    [booking] = frontdesk.bookings()
    # Before the room answers, someone else's meeting lands in its calendar: it declines ours.
    graph.book(first["data"]["room"], booking.start_at, booking.end_at, subject="Board meeting")
    await graph.settle()

    listing = await frontdesk.say("my bookings")

    assert "Room's answer: Declined" in text_of(listing)
    [declined] = frontdesk.bookings()
    assert declined.status == BookingStatus.DECLINED
    others = await frontdesk.press(action_titled(listing, "Find other rooms"))
    assert "The room declined" in text_of(others)
    offered = {action["data"]["room"] for action in book_actions(others)}
    assert offered and first["data"]["room"] not in offered


async def test_a_meeting_cancelled_in_outlook_leaves_my_bookings(
    frontdesk: Frontdesk, graph: FakeGraph
) -> None:
    results = await frontdesk.search(SLOT)
    await frontdesk.press(book_actions(results)[0])
    [event] = graph.calendar(megan_mailbox(graph))
    graph.event(event.id).removed = "delete"

    listing = await frontdesk.say("my bookings")

    assert "no upcoming bookings" in text_of(listing)
    [booking] = frontdesk.bookings()
    assert booking.status == BookingStatus.CANCELLED
    assert booking.cancel_comment == "Cancelled in Outlook."


async def test_meet_now_gives_a_teams_link_and_help_offers_it(
    frontdesk: Frontdesk, graph: FakeGraph
) -> None:

    help_card = await frontdesk.say("help")
    card = await frontdesk.press(action_titled(help_card, "Meet now"))

    [meeting] = graph.online_meetings
    assert "Your Teams meeting is ready" in text_of(card)
    assert meeting["joinWebUrl"] in text_of(card)
    [join] = [a for a in walk(card) if a.get("type") == "Action.OpenUrl"]
    assert join["url"] == meeting["joinWebUrl"]


async def test_a_weekly_booking_makes_one_event_per_date(
    frontdesk: Frontdesk, graph: FakeGraph
) -> None:
    results = await frontdesk.search({**SLOT, "repeat": "weekly", "occurrences": "3"})

    booked = await frontdesk.press(execute_actions(results, Verb.BOOKING_SERIES)[0])

    assert "3 dates booked" in text_of(booked)
    events = graph.calendar(megan_mailbox(graph))
    assert len(events) == 3
    assert len({event.transaction_id for event in events}) == 3
    assert [(e.start - events[0].start).days for e in events] == [0, 7, 14]
    await frontdesk.press(action_titled(booked, "Cancel all"))
    assert graph.calendar(megan_mailbox(graph)) == []


async def test_my_bookings_reads_every_event_in_one_batch(
    frontdesk: Frontdesk, graph: FakeGraph
) -> None:
    results = await frontdesk.search({**SLOT, "repeat": "daily", "occurrences": "3"})
    await frontdesk.press(execute_actions(results, Verb.BOOKING_SERIES)[0])
    await graph.settle()
    before = len(graph.requests)

    listing = await frontdesk.say("my bookings")

    assert text_of(listing).count("Room's answer: Accepted") == 3
    calls = [r for r in graph.requests[before:] if r.batch_id is None]
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in calls] == [("POST", "$batch")]
    steps = [r for r in graph.requests[before:] if r.batch_id is not None]
    assert len(steps) == 3 and all(r.method == "GET" for r in steps)


async def test_a_failing_token_service_is_explained_on_the_card(
    frontdesk: Frontdesk, tenant: Microsoft365
) -> None:
    tokens = tenant.tokens
    tokens.fail_with = 503
    action = {"type": "Action.Execute", "verb": Verb.BOOKING_SEARCH.value, "data": dict(SLOT)}

    # Teams resumes a click after sign-in with the code, and redeeming it fails.
    status, body = await frontdesk.post(
        make_card_action(
            Verb.BOOKING_SEARCH.value,
            dict(SLOT),
            service_url=frontdesk.service_url,
            value={"action": action, "trigger": "manual", "state": "123456"},
        )
    )

    assert (status, body["statusCode"]) == (200, 200)
    assert "Sign-in problem" in text_of(body["value"])


# --- approvals: the requester's manager comes from Graph -----------------------------------------

IT_REQUEST = {
    "field.guest-wifi": "2",
    "field.needed-from": "2026-11-30",
    "field.who-for": "Visitors",
}


async def test_the_manager_stage_asks_the_manager_graph_names(
    frontdesk: Frontdesk, graph: FakeGraph
) -> None:
    card = await frontdesk.file_request("IT", IT_REQUEST)

    megan = graph_megan(graph)
    assert megan.manager_id is not None
    [row] = frontdesk.rows("SELECT id, status FROM service_request")
    assert row["status"] == "pending", text_of(card)
    approvers = frontdesk.rows(
        "SELECT approver_id FROM request_approver WHERE request_id = :id", id=row["id"]
    )
    assert [a["approver_id"] for a in approvers] == [megan.manager_id]
    assert graph.requests_to("GET", "/me/manager"), "the manager was not asked of Graph"


async def test_without_a_manager_in_graph_the_request_is_refused_with_the_reason(
    frontdesk: Frontdesk, graph: FakeGraph
) -> None:
    megan = graph_megan(graph)
    megan.manager_id = None

    card = await frontdesk.file_request("IT", IT_REQUEST)

    assert "This request cannot be sent" in text_of(card)
    assert "no manager known for the requester" in text_of(card)
    assert frontdesk.rows("SELECT id FROM service_request") == []


async def test_a_request_graph_fails_on_offers_the_requests_not_the_booking_form(
    frontdesk: Frontdesk, graph: FakeGraph
) -> None:
    graph.fail("/manager", 500, "generalException", times=None)

    card = await frontdesk.file_request("IT", IT_REQUEST)

    assert "Microsoft 365" in text_of(card)
    assert {a["verb"] for a in execute_actions(card)} == {
        Verb.REQUEST_START,
        Verb.REQUEST_LIST,
        Verb.APPROVAL_LIST,
    }
    assert frontdesk.rows("SELECT id FROM service_request") == []


# --- rooms that need approval: the Outlook event follows the owners' answer ---------------------


class TestARoomThatNeedsApproval:
    @pytest.fixture
    def app_env(self, tenant: Microsoft365, tmp_path: Path) -> dict[str, str]:
        fake = tenant.graph
        fake.tenant.add_room(
            "Summit",
            f"summit@{fake.tenant.domain}",
            capacity=80,
            building=next(room.building for room in fake.tenant.rooms if room.building),
            floor_number=5,
            floor_label="5",
            booking_type="reserved",  # Frontdesk reads this as "needs approval"
        )
        shipped = DEFAULT_POLICIES_FILE.read_text(encoding="utf-8")
        head, _, tail = shipped.rpartition("approvers: [room_owners]")
        policies = tmp_path / "policies.yaml"
        policies.write_text(f"{head}approvers: [{ALEX.aad_object_id}]{tail}", encoding="utf-8")
        return {**tenant.settings(), "POLICIES_FILE": str(policies)}

    async def test_a_rejection_cancels_the_held_event_in_outlook(
        self, frontdesk: Frontdesk, graph: FakeGraph
    ) -> None:
        results = await frontdesk.search({**SLOT, "attendees": "70"})
        held = await frontdesk.press(action_titled(results, "Request Summit"))
        assert "Room held for approval" in text_of(held)
        [event] = graph.calendar(megan_mailbox(graph))
        [booking] = frontdesk.bookings()
        assert booking.event_id == event.id
        [request] = frontdesk.rows("SELECT id FROM service_request")

        status, _ = await frontdesk.invoke(
            "request.decide",
            {"request": request["id"], "decision": "reject", "item": "room", "comment": "No"},
            user=ALEX,
        )
        assert status == 200
        await frontdesk.client.server.app[COMPONENTS].tasks.drain(timeout=60)

        [booking] = frontdesk.bookings()
        assert booking.status == BookingStatus.CANCELLED
        assert graph.calendar(megan_mailbox(graph)) == []
        assert graph.requests_to("POST", f"/events/{event.id}/cancel")

    async def test_withdrawing_the_request_cancels_the_held_event_in_outlook(
        self, frontdesk: Frontdesk, graph: FakeGraph
    ) -> None:
        results = await frontdesk.search({**SLOT, "attendees": "70"})
        await frontdesk.press(action_titled(results, "Request Summit"))
        assert len(graph.calendar(megan_mailbox(graph))) == 1
        [request] = frontdesk.rows("SELECT id FROM service_request")

        card = card_of(*await frontdesk.invoke("request.cancel", {"request": request["id"]}))

        assert "held room is free again" in text_of(card)
        [booking] = frontdesk.bookings()
        assert booking.status == BookingStatus.CANCELLED
        assert graph.calendar(megan_mailbox(graph)) == []
