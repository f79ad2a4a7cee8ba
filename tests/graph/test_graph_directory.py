"""The graph directory's caches: the shared room list (TTL, refreshed in the background) and
each user's mailbox time zone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bot.directory.graph import GraphDirectory, MailboxZones
from bot.graph import GraphClient
from bot.identity import BotTokenService
from bot.identity.user_tokens import UserTokens
from tests.conftest import FakeClock, make_actor
from tests.support.fake_graph import FakeGraph, FakeTenant
from tests.support.fake_token_service import FakeTokenService

CONNECTION = "graph"


@dataclass
class Setup:
    graph: FakeGraph
    tokens: FakeTokenService
    client: GraphClient
    user_tokens: UserTokens


async def _no_app_token() -> str | None:
    return None


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    async with (
        FakeGraph(FakeTenant.demo()) as graph,
        FakeTokenService() as tokens,
        aiohttp.ClientSession() as http,
    ):
        tokens.add_connection(CONNECTION)
        tokens.sign_in("29:megan", CONNECTION, "token-megan")
        user_tokens = UserTokens(
            BotTokenService(http, base_url=tokens.base_url, app_token=_no_app_token),
            connection_name=CONNECTION,
            app_identity=None,
        )
        yield Setup(graph, tokens, GraphClient(http, base_url=graph.base_url), user_tokens)


MEGAN = replace(make_actor("megan-oid"), channel_user_id="29:megan")


def room_list_reads(graph: FakeGraph) -> int:
    return len([r for r in graph.requests if "/places/microsoft.graph.room" in r.path])


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait up to 5 s for a background refresh to make `condition` true."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still not {what} after 5 s")


async def test_the_room_list_is_cached_and_refreshed_in_the_background(setup: Setup) -> None:
    clock = FakeClock()
    directory = GraphDirectory(setup.client, setup.user_tokens, cache_seconds=600, clock=clock)

    first = await directory.list_rooms(MEGAN)
    reads_after_first = room_list_reads(setup.graph)
    again = await directory.list_rooms(MEGAN)

    assert len(first) == 100 and again == first
    assert room_list_reads(setup.graph) == reads_after_first  # served from the cache
    clock.advance(seconds=601)
    stale = await directory.list_rooms(MEGAN)
    assert stale == first  # the stale list answers at once...
    await eventually(  # ...while a refresh runs
        lambda: room_list_reads(setup.graph) > reads_after_first, "refreshed"
    )


async def test_a_failed_refresh_keeps_the_old_room_list(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.directory.graph")
    clock = FakeClock()
    directory = GraphDirectory(setup.client, setup.user_tokens, cache_seconds=60, clock=clock)
    first = await directory.list_rooms(MEGAN)
    reads_after_first = room_list_reads(setup.graph)
    setup.graph.fail("/places/", 500, "generalException", times=5)
    clock.advance(seconds=61)

    def failed_refreshes() -> int:
        return caplog.text.count("room directory refresh failed")

    stale = await directory.list_rooms(MEGAN)
    await eventually(lambda: failed_refreshes() == 1, "failed once")
    after_the_failure = await directory.list_rooms(MEGAN)
    await eventually(lambda: failed_refreshes() == 2, "tried again")

    assert stale == after_the_failure == first
    assert room_list_reads(setup.graph) == reads_after_first + 2  # one failed read per refresh


async def test_mailbox_zones_are_read_once_per_user_while_fresh(setup: Setup) -> None:
    clock = FakeClock()
    zones = MailboxZones(setup.client, setup.user_tokens, clock=clock, ttl_seconds=3600)

    def reads() -> int:
        return len([r for r in setup.graph.requests if r.path.endswith("/me/mailboxSettings")])

    first = await zones.zone(MEGAN)
    second = await zones.zone(MEGAN)
    clock.advance(seconds=3601)
    third = await zones.zone(MEGAN)

    assert first == second == third == ZoneInfo("Europe/London")
    assert reads() == 2


async def test_no_mailbox_zone_without_a_sign_in(setup: Setup) -> None:
    zones = MailboxZones(setup.client, setup.user_tokens, clock=FakeClock())
    stranger = make_actor("someone-else")

    assert await zones.zone(stranger) is None


async def test_events_are_read_in_one_batch_and_gone_ones_are_none(setup: Setup) -> None:
    token = "token-megan"
    [room] = setup.graph.tenant.rooms[:1]
    start = FakeClock().now.replace(hour=9)
    rooms = await setup.client.list_rooms(token)
    target = next(r for r in rooms if r.email.lower() == room.email.lower())
    event = await setup.client.create_booking_event(
        token,
        room=target,
        subject="Sync",
        body_html="<p>x</p>",
        start=start,
        end=start.replace(hour=10),
        online_meeting=False,
        transaction_id="11111111-2222-4333-8444-555555555555",
    )
    before = len(setup.graph.requests)

    found = await setup.client.get_events(token, [event.id, "AAMkAGI2TG93AAA="])

    assert found[event.id] is not None and found[event.id].subject == "Sync"  # type: ignore[union-attr]
    assert found["AAMkAGI2TG93AAA="] is None
    outer = [r for r in setup.graph.requests[before:] if r.batch_id is None]
    assert len(outer) == 1
    setup.graph.assert_contract()
