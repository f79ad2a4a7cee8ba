"""DIRECTORY=graph over real HTTP: rooms, free/busy and events from a fake Microsoft Graph, the
user's token from a fake Bot Framework token service. Every Graph request is checked against
the v1.0 metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.commands import Verb
from tests.bot.conftest import Frontdesk, book_actions
from tests.support.activities import MEGAN
from tests.support.cardquery import action_titled, execute_actions, inputs, text_of
from tests.support.fake_graph import FakeGraph, FakeTenant
from tests.support.fake_token_service import FakeTokenService
from tests.support.graph_contract import metadata_available
from tests.support.prereq import require

CONNECTION = "graph"
MEGAN_MAILBOX_PREFIX = "meganb@"
# 10:00-10:30 in New York (the test client's zone) on the FakeClock's day.
SLOT = {"date": "2026-11-23", "start": "10:00", "duration": "30", "attendees": "4"}


@pytest.fixture
async def tenant() -> AsyncIterator[tuple[FakeGraph, FakeTokenService]]:
    require(metadata_available(), "Graph v1.0 metadata is missing under ../shared/schemas")
    async with FakeGraph(FakeTenant.demo()) as graph, FakeTokenService() as tokens:
        tokens.add_connection(CONNECTION)
        graph.room_response_delay = None  # rooms answer when the test says so
        yield graph, tokens
        graph.assert_contract()


@pytest.fixture
def app_env(tenant: tuple[FakeGraph, FakeTokenService]) -> dict[str, str]:
    graph, tokens = tenant
    return {
        "DIRECTORY": "graph",
        "GRAPH_BASE_URL": graph.base_url,
        "BOT_OAUTH_URL": tokens.base_url,
        "OAUTH_CONNECTION_NAME": CONNECTION,
    }


def megan_mailbox(graph: FakeGraph) -> str:
    [user] = [u for u in graph.tenant.users.values() if u.mail.startswith(MEGAN_MAILBOX_PREFIX)]
    return user.mail


async def test_book_and_cancel_against_microsoft_graph(
    frontdesk: Frontdesk, tenant: tuple[FakeGraph, FakeTokenService]
) -> None:
    graph, tokens = tenant
    tokens.sign_in(MEGAN.id, CONNECTION, "token-megan")

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
    frontdesk: Frontdesk, tenant: tuple[FakeGraph, FakeTokenService]
) -> None:
    graph, tokens = tenant
    tokens.sign_in(MEGAN.id, CONNECTION, "token-megan")
    results = await frontdesk.search(SLOT)
    first_room = book_actions(results)[0]["data"]["room"]
    start = frontdesk.clock.now.replace(hour=15, minute=0)  # 10:00 in New York
    graph.book(first_room, start, start.replace(minute=30), subject="Someone else's meeting")

    again = await frontdesk.search(SLOT)

    assert first_room not in {action["data"]["room"] for action in book_actions(again)}
