"""GraphClient end to end against the shared fake Graph (tests/support/fake_graph.py), with every
request checked against Graph's v1.0 metadata (tests/support/graph_contract.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.graph import GraphClient
from bot.models import Equipment
from tests.graph.test_graph_client import FakeSleep
from tests.support.fake_graph import FakeGraph, FakeTenant


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    async with FakeGraph(FakeTenant.demo(messy=True)) as fake:
        yield fake


async def test_search_book_and_read_back_against_the_fake_graph(graph: FakeGraph) -> None:
    graph.page_size = 30  # four pages of rooms
    graph.room_response_delay = None  # rooms answer when settle() is awaited
    graph.throttle("getSchedule", times=1, retry_after=2)
    # Graph's limit of 4 requests in flight per mailbox: a fifth answers 429 (a retry below).
    graph.mailbox_concurrency_limit = 4
    graph.latency = 0.05  # long enough for the five getSchedule calls to overlap
    sleep = FakeSleep()
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    end = start + timedelta(hours=1)

    async with aiohttp.ClientSession() as session:
        client = GraphClient(session, base_url=graph.base_url, sleep=sleep)
        token = "token-adele"
        rooms = await client.list_rooms(token)
        first = rooms[0]
        graph.book(first.email, start, end)
        busy = await client.get_schedules(token, [room.email for room in rooms], start, end)
        free = next(room for room in rooms if not busy[room.email] and not room.needs_approval)
        event = await client.create_booking_event(
            token,
            room=free,
            subject="Planning",
            body_html="<p>Booked with Frontdesk</p>",
            start=start,
            end=end,
            online_meeting=True,
            transaction_id="attempt-1",
            time_zone="Pacific Standard Time",
        )
        await graph.settle()
        again = await client.get_event(token, event.id)
        manager = await client.get_manager(token)
        settings = await client.get_mailbox_settings(token)

    assert len(rooms) == 100
    assert {room.building for room in rooms} == {"Harbour House", "Meridian Tower", "Foundry"}
    assert any(Equipment.VIDEO in room.equipment for room in rooms)
    assert busy[first.email] == [(start, end)]
    assert sleep.delays == [2.0], "the throttled getSchedule call waited its Retry-After"
    assert event.join_url is not None and event.room_responses == {free.email: "none"}
    assert (again.start, again.end) == (start, end)
    assert again.room_responses == {free.email: "accepted"}
    assert graph.calendar(free.email), "the room accepted into its own calendar"
    assert manager is not None and manager.name == "Patti Fernandez"
    assert settings.windows_zone == "Pacific Standard Time"
    assert 2 <= graph.max_concurrency_by_mailbox["adelev@contoso.example"] <= 4
    graph.assert_contract()
