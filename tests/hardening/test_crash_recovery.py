"""Crashes: the real `python app.py` (graph mode, against a fake Graph and token service, replies to
a fake connector) is killed with SIGKILL in the middle of a booking click, then started again on
the same database. Afterwards there is exactly one calendar event and one booking row, and the
card the user clicked shows the booking.

The process stops itself at a named point of the booking path (`FRONTDESK_TEST_CRASH_AT`, read
by app.py in local mode only): before the Graph call, after Graph made the event but before the
database knows it, and after the result was committed but before the card was updated. Each test
first checks that the process died there (what the database and Graph hold at that moment).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import Engine, create_engine, text

from tests.support.activities import make_card_action, make_message
from tests.support.app_process import BotProcess, frontdesk_process
from tests.support.cardquery import (
    action_titled,
    book_actions,
    execute_actions,
    headline,
    input_values,
)
from tests.support.fake_connector import FakeConnector, RecordedRequest
from tests.support.fake_graph import FakeGraph
from tests.support.graph_session import Microsoft365, megan_events, microsoft365

EVENTS = "/me/events"
BOUND = 20.0  # seconds: how long the restarted app may take to catch up (generous)
# The turn budget: long enough for a search or a Book click to finish in its turn however busy
# the machine; only the "after_commit" run has Graph answer (SLOW_GRAPH) after a shorter one.
BUDGET = "5"
SHORT_BUDGET, SLOW_GRAPH = "2", 6.0


@dataclass
class World:
    """What outlives the bot process: the fakes, and the directory with its database."""

    m365: Microsoft365
    connector: FakeConnector
    workdir: Path

    @property
    def graph(self) -> FakeGraph:
        return self.m365.graph

    def settings(self, crash_at: str | None = None, budget: str = BUDGET) -> dict[str, str]:
        settings = {
            **self.m365.settings(),
            "TURN_BUDGET_SECONDS": budget,
            "WORK_LEASE_SECONDS": "1",
            "LOG_FORMAT": "text",
        }
        if crash_at is not None:
            settings["FRONTDESK_TEST_CRASH_AT"] = crash_at
        return settings

    def rows(self, sql: str) -> list[dict[str, Any]]:
        engine: Engine = create_engine(f"sqlite:///{self.workdir / 'frontdesk.db'}")
        try:
            with engine.connect() as connection:
                return [dict(row) for row in connection.execute(text(sql)).mappings()]
        finally:
            engine.dispose()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with microsoft365() as m365, FakeConnector() as connector:
        yield World(m365=m365, connector=connector, workdir=tmp_path)


async def _post(bot: BotProcess, activity: dict[str, Any]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=BOUND)) as session,
        session.post(bot.endpoint, json=activity) as response,
    ):
        raw = await response.read()
        return response.status, json.loads(raw) if raw.strip() else None


async def _book_click(world: World, bot: BotProcess) -> dict[str, Any]:
    """`book`, the form filled for the day after tomorrow 10:00, Find rooms: the first Book."""
    su = world.connector.service_url
    before = len(world.connector.sent)
    status, _ = await _post(bot, make_message("book", service_url=su))
    assert status in (200, 201)
    [form] = world.connector.cards(before)
    day = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    inputs = {**input_values(form), "date": day, "start": "10:00", "attendees": "4"}
    find = action_titled(form, "Find rooms")
    status, body = await _post(
        bot, make_card_action(find["verb"], {**inputs, **find.get("data", {})}, service_url=su)
    )
    assert status == 200 and body["statusCode"] == 200, body
    offers = book_actions(body["value"])
    assert offers, body
    return make_card_action(offers[0]["verb"], offers[0]["data"], service_url=su)


async def _click_until_killed(bot: BotProcess, click: dict[str, Any]) -> dict[str, Any] | None:
    """Press Book; the answer if the turn answered before the process died (else None)."""
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
        status, body = await _post(bot, click)
        assert status == 200
        return dict(body["value"])
    return None


async def _wait_dead(bot: BotProcess) -> None:
    """Until the process no longer answers (it killed itself at the crash point)."""
    async with asyncio.timeout(BOUND), aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{bot.base_url}/healthz") as response:
                    await response.read()
            except aiohttp.ClientError:
                return
            await asyncio.sleep(0.1)


async def _card_update(connector: FakeConnector, message_id: str) -> RecordedRequest:
    async with asyncio.timeout(BOUND):
        while True:
            updates = [r for r in connector.sent if r.is_update and r.activity_id == message_id]
            if updates:
                return updates[-1]
            await connector.wait_for(len(connector.sent) + 1, timeout=BOUND)


async def _jobs_done(world: World) -> None:
    """Until the restarted app has finished (deleted) every job: polled, the app is a process."""
    async with asyncio.timeout(BOUND):
        for _ in range(int(BOUND * 10)):
            if not world.rows("SELECT id FROM booking_job"):
                return
            await asyncio.sleep(0.1)


async def _crash_then_restart(world: World, point: str) -> tuple[dict[str, Any], Any]:
    """Book until the process dies at `point`; the click and the turn's answer (if any)."""
    late = point == "after_commit"
    settings = world.settings(crash_at=point, budget=SHORT_BUDGET if late else BUDGET)
    async with frontdesk_process(world.workdir, settings) as bot:
        click = await _book_click(world, bot)
        if late:
            # Slower than the turn budget: the turn answers "working on it" and the card update
            # is owed; the crash comes after the result is stored, before that update.
            world.graph.hang(EVENTS, seconds=SLOW_GRAPH, method="POST")
        answer = await _click_until_killed(bot, click)
        await _wait_dead(bot)
        assert f"test crash point {point} reached" in bot.log.read_text()
    return click, answer


def _booking_rows(world: World) -> list[dict[str, Any]]:
    return world.rows("SELECT id, attempt_id, event_id, status FROM booking")


async def _after_restart(world: World, click: dict[str, Any]) -> dict[str, Any]:
    """Start app.py again on the same database and fakes; the card the user then sees."""
    async with frontdesk_process(world.workdir, world.settings()):
        update = await _card_update(world.connector, click["replyToId"])
        await _jobs_done(world)
    [card] = update.cards()
    return card


def _assert_one_event_one_row(world: World, click: dict[str, Any]) -> None:
    [event] = megan_events(world.graph)
    [row] = _booking_rows(world)
    assert row["event_id"] == event.id
    assert row["attempt_id"] == click["value"]["action"]["data"]["attempt"] == event.transaction_id
    assert row["status"] == "confirmed"
    assert world.rows("SELECT id FROM booking_job") == []


async def test_killed_before_the_graph_call(world: World) -> None:
    click, _ = await _crash_then_restart(world, "before_graph")

    assert world.graph.requests_to("POST", EVENTS) == []
    [row] = _booking_rows(world)
    assert row["event_id"] is None  # the booking was committed, the calendar not yet called
    assert len(world.rows("SELECT id FROM booking_job WHERE state = 'running'")) == 1

    card = await _after_restart(world, click)

    assert headline(card) == "Room booked"
    assert len(world.graph.requests_to("POST", EVENTS)) == 1
    _assert_one_event_one_row(world, click)


async def test_killed_after_graph_made_the_event_before_the_database_knew(world: World) -> None:
    click, _ = await _crash_then_restart(world, "after_graph")

    assert len(megan_events(world.graph)) == 1  # Graph made the event...
    [row] = _booking_rows(world)
    assert row["event_id"] is None  # ...and the database never heard of it

    card = await _after_restart(world, click)

    assert headline(card) == "Room booked"
    # The restarted app asked again with the same transactionId: Graph gave the same event back.
    assert len(world.graph.requests_to("POST", EVENTS)) == 2
    assert world.graph.counts["transactionId replays"] == 1
    _assert_one_event_one_row(world, click)


async def test_killed_after_the_commit_before_the_card_update(world: World) -> None:
    click, answer = await _crash_then_restart(world, "after_commit")

    assert answer is not None and headline(answer).startswith("Booking")  # "working on it"
    [row] = _booking_rows(world)
    assert row["event_id"] is not None  # booked and committed
    [job] = world.rows("SELECT state FROM booking_job")
    assert job["state"] == "result"
    assert [r for r in world.connector.sent if r.is_update] == []  # the card never caught up

    card = await _after_restart(world, click)

    assert headline(card) == "Room booked"
    assert len(world.graph.requests_to("POST", EVENTS)) == 1  # nothing booked again
    _assert_one_event_one_row(world, click)


async def test_killed_then_the_sign_in_is_gone_releases_the_slot_and_says_so(
    world: World,
) -> None:
    click, _ = await _crash_then_restart(world, "before_graph")
    world.m365.tokens.tokens.clear()  # Megan signed out meanwhile: no token in the background

    card = await _after_restart(world, click)

    assert headline(card) == "Not finished: please sign in"
    assert "Nothing is held for you" in str(card)
    assert _booking_rows(world) == []  # the slot is free again
    assert megan_events(world.graph) == []
    assert world.rows("SELECT id FROM booking_job") == []
    # Signed in again, the card's button finishes the same attempt: booked once.
    [finish] = execute_actions(card, "booking.book")
    assert finish["data"] == click["value"]["action"]["data"]
    world.m365.sign_in()
    async with frontdesk_process(world.workdir, world.settings()) as bot:
        status, body = await _post(
            bot,
            make_card_action(
                "booking.book", finish["data"], service_url=world.connector.service_url
            ),
        )
    assert status == 200 and headline(body["value"]) == "Room booked"
    _assert_one_event_one_row(world, click)
