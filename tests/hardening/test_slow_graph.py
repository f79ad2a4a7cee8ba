"""Slow dependencies: Microsoft Graph answering 429 with Retry-After, 503, late, or not at all.

The Book click must answer well inside Teams' 15 seconds: the app waits for the work up to its
turn budget (TURN_BUDGET_SECONDS, 0.3 s here), then answers a "working on it" card and updates
the clicked card at the fake connector when the work ends. The booking is made once however the
click is delivered. Retries are bounded and wait what Retry-After says: the Graph client's sleep
is a controlled one that records each wait and, while its gate is closed, holds it (so "Graph is
still throttling" lasts exactly as long as the test wants, never a wall-clock wait).

"The invoke answered within the budget" is shown by its answer arriving while the work is held
at the gate (for as long as the test keeps it closed) and by a generous bound on the request
(ANSWER_BOUND): an invoke that waited for Graph would hit it. Only the Book click under test runs
with the short budget; the search before it (budgeted too) and a click that must finish in its
turn get a generous one, so that a busy machine cannot turn them into "working on it".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from app import COMPONENTS
from bot.config import load_settings
from bot.tasks import BackgroundTasks, SlowClicks
from tests.bot.conftest import Frontdesk, card_of, running_frontdesk
from tests.conftest import FakeClock
from tests.support.cardquery import book_actions, headline, text_of
from tests.support.fake_connector import FakeConnector, RecordedRequest
from tests.support.fake_graph import FakeGraph
from tests.support.graph_session import megan_events, microsoft365

BUDGET = 0.3
GRAPH_TIMEOUT = 2.0
ANSWER_BOUND = 10.0  # seconds: far above the budget, still inside Teams' 15
SLOT = {"date": "2026-11-23", "start": "10:00", "duration": "30", "attendees": "4"}
EVENTS = "/me/events"


class ControlledSleep:
    """The Graph client's sleep between retries: records each wait; holds it while closed."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.waiting.set()
        await self.gate.wait()


@dataclass
class Slow:
    frontdesk: Frontdesk
    graph: FakeGraph
    sleep: ControlledSleep
    tasks: BackgroundTasks
    clicks: SlowClicks

    async def settled(self) -> None:
        """Wait for the app's background work (the click's task) to end."""
        async with asyncio.timeout(ANSWER_BOUND):
            await self.tasks.drain()


@pytest.fixture
async def slow(tmp_path: Any, clock: FakeClock) -> AsyncIterator[Slow]:
    """The app in graph mode against a fake Graph, Megan signed in, a controlled retry sleep."""
    sleep = ControlledSleep()
    async with microsoft365() as m365, FakeConnector() as connector:
        settings = {**m365.settings(), "TIMEZONE": "UTC", "TURN_BUDGET_SECONDS": str(BUDGET)}
        async with running_frontdesk(
            f"sqlite:///{tmp_path / 'frontdesk.db'}",
            clock,
            connector,
            settings,
            graph_sleep=sleep,
            graph_timeout_seconds=GRAPH_TIMEOUT,
        ) as frontdesk:
            components = frontdesk.client.server.app[COMPONENTS]
            slow_clicks = components.slow_clicks
            assert slow_clicks is not None and slow_clicks.budget == BUDGET
            try:
                yield Slow(frontdesk, m365.graph, sleep, components.tasks, slow_clicks)
            finally:
                sleep.gate.set()  # never leave work parked at shutdown


async def _post_within_bound(frontdesk: Frontdesk, activity: dict[str, Any]) -> dict[str, Any]:
    """POST a click; its card. Fails if the answer takes longer than ANSWER_BOUND."""
    try:
        async with asyncio.timeout(ANSWER_BOUND):
            return card_of(*await frontdesk.post(activity))
    except TimeoutError:
        raise AssertionError(f"the click got no answer within {ANSWER_BOUND} s") from None


async def _update_of(connector: FakeConnector, message_id: str) -> RecordedRequest:
    """The card update (PUT) of the clicked message, when it arrives."""
    async with asyncio.timeout(ANSWER_BOUND):
        while True:
            updates = [r for r in connector.sent if r.is_update and r.activity_id == message_id]
            if updates:
                assert len(updates) == 1, f"the card was updated {len(updates)} times"
                return updates[0]
            await connector.wait_for(len(connector.sent) + 1, timeout=ANSWER_BOUND)


async def _book_click(slow: Slow) -> dict[str, Any]:
    """The Book click of a search for SLOT (the search itself under a generous budget)."""
    slow.clicks.budget = ANSWER_BOUND / 2
    try:
        results = await slow.frontdesk.search(SLOT)
    finally:
        slow.clicks.budget = BUDGET
    return slow.frontdesk.press_activity(book_actions(results)[0])


async def _assert_booked_once(slow: Slow) -> None:
    await slow.settled()
    frontdesk, graph = slow.frontdesk, slow.graph
    [event] = megan_events(graph)
    [booking] = frontdesk.bookings()
    assert booking.event_id == event.id
    assert event.transaction_id == booking.attempt_id
    assert frontdesk.rows("SELECT COUNT(*) AS n FROM booking_job") == [{"n": 0}]


async def _throttled_click(
    slow: Slow, *, times: int | None, retry_after: float, status: Literal[429, 503] = 429
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Book click, posted while Graph refuses the event `times` times (None: for ever) and
    the retry is held at the closed gate: the click and the card it was answered with."""
    click = await _book_click(slow)
    slow.graph.throttle(EVENTS, times=times, retry_after=retry_after, status=status, method="POST")
    slow.sleep.gate.clear()  # Graph keeps throttling until the test opens the gate
    return click, await _post_within_bound(slow.frontdesk, click)


def _is_working(card: dict[str, Any]) -> bool:
    return headline(card).startswith("Booking") and "this can take a moment" in text_of(card)


@pytest.mark.parametrize("status", [429, 503])
async def test_a_throttled_booking_answers_working_then_updates_the_card_once(
    slow: Slow, status: int
) -> None:
    frontdesk, graph, sleep = slow.frontdesk, slow.graph, slow.sleep
    click, first = await _throttled_click(slow, times=2, retry_after=7, status=status)
    again = await _post_within_bound(frontdesk, click)  # Teams delivers it again meanwhile

    assert _is_working(first), text_of(first)
    assert _is_working(again), text_of(again)
    [held] = frontdesk.bookings()
    assert held.room_name in headline(first), text_of(first)
    assert sleep.waits == [7]  # held in the first Retry-After wait
    assert megan_events(graph) == []

    sleep.gate.set()
    update = await _update_of(frontdesk.connector, click["replyToId"])

    [card] = update.cards()
    assert headline(card) == "Room booked"
    assert sleep.waits == [7, 7]  # Retry-After honoured before each retry
    assert len(graph.requests_to("POST", EVENTS)) == 3  # two refusals, then the event
    await _assert_booked_once(slow)


async def test_throttling_that_never_ends_gives_up_after_bounded_retries(
    slow: Slow,
) -> None:
    frontdesk, graph, sleep = slow.frontdesk, slow.graph, slow.sleep
    click, working = await _throttled_click(slow, times=None, retry_after=2)
    sleep.gate.set()
    update = await _update_of(frontdesk.connector, click["replyToId"])

    assert _is_working(working)
    [card] = update.cards()
    assert headline(card) == "Microsoft 365 did not answer"
    assert "Nothing was changed" in text_of(card)
    assert len(graph.requests_to("POST", EVENTS)) == 4  # the first try and 3 retries
    assert sleep.waits == [2, 2, 2]
    await slow.settled()
    assert megan_events(graph) == []
    assert frontdesk.bookings() == []
    assert frontdesk.rows("SELECT COUNT(*) AS n FROM booking_job") == [{"n": 0}]


async def test_a_late_graph_answer_updates_the_card(
    slow: Slow,
) -> None:
    frontdesk, graph = slow.frontdesk, slow.graph
    click = await _book_click(slow)
    graph.hang(EVENTS, seconds=GRAPH_TIMEOUT / 2, method="POST")  # slower than the budget

    working = await _post_within_bound(frontdesk, click)
    update = await _update_of(frontdesk.connector, click["replyToId"])

    assert _is_working(working)
    assert headline(update.cards()[0]) == "Room booked"
    assert len(graph.requests_to("POST", EVENTS)) == 1
    await _assert_booked_once(slow)


async def test_an_event_made_whose_answer_was_lost_is_found_again_not_made_twice(
    slow: Slow,
) -> None:
    frontdesk, graph = slow.frontdesk, slow.graph
    click = await _book_click(slow)
    # Graph makes the event but its answer never comes: the client times out.
    graph.hang(EVENTS, seconds=60, method="POST", after_processing=True)

    working = await _post_within_bound(frontdesk, click)
    update = await _update_of(frontdesk.connector, click["replyToId"])

    assert _is_working(working)
    assert headline(update.cards()[0]) == "Room booked"
    assert len(graph.requests_to("POST", EVENTS)) == 2  # asked again with the same transactionId
    assert graph.counts["transactionId replays"] == 1
    await _assert_booked_once(slow)


async def test_graph_that_never_answers_ends_in_a_clear_card_and_no_booking(
    slow: Slow,
) -> None:
    frontdesk, graph = slow.frontdesk, slow.graph
    click = await _book_click(slow)
    graph.hang(EVENTS, seconds=60, times=None, method="POST")

    working = await _post_within_bound(frontdesk, click)
    update = await _update_of(frontdesk.connector, click["replyToId"])

    assert _is_working(working)
    [card] = update.cards()
    assert headline(card) == "Microsoft 365 did not answer"
    await slow.settled()
    assert len(graph.requests_to("POST", EVENTS)) == 2  # once, and once more after the timeout
    assert frontdesk.bookings() == []
    assert frontdesk.rows("SELECT COUNT(*) AS n FROM booking_job") == [{"n": 0}]


async def test_a_fast_graph_answers_in_the_turn_without_an_update(
    slow: Slow,
) -> None:
    frontdesk = slow.frontdesk
    click = await _book_click(slow)
    slow.clicks.budget = ANSWER_BOUND / 2  # time enough for Graph however busy the machine

    card = await _post_within_bound(frontdesk, click)
    await slow.settled()

    assert headline(card) == "Room booked"
    assert [r for r in frontdesk.connector.sent if r.is_update] == []
    await _assert_booked_once(slow)


async def test_work_still_running_at_shutdown_is_finished_before_the_app_stops(
    slow: Slow,
) -> None:
    frontdesk, sleep = slow.frontdesk, slow.sleep
    click, working = await _throttled_click(slow, times=1, retry_after=3)
    assert _is_working(working)

    stopping = asyncio.ensure_future(frontdesk.client.close())  # the app drains its tasks
    await asyncio.sleep(0.1)
    assert not stopping.done()  # waiting for the booking
    sleep.gate.set()
    async with asyncio.timeout(ANSWER_BOUND):
        await stopping

    update = await _update_of(frontdesk.connector, click["replyToId"])
    assert headline(update.cards()[0]) == "Room booked"
    await _assert_booked_once(slow)


async def test_the_working_card_names_the_room_and_time_and_refreshes_the_same_click(
    slow: Slow,
) -> None:
    frontdesk, graph, sleep = slow.frontdesk, slow.graph, slow.sleep
    click, working = await _throttled_click(slow, times=1, retry_after=3)

    data = click["value"]["action"]["data"]
    assert working["refresh"]["action"]["verb"] == "booking.book"
    assert working["refresh"]["action"]["data"] == {
        "attempt": data["attempt"],
        "room": data["room"],
    }
    assert working["refresh"]["userIds"] == [click["from"]["id"]]
    [booking] = frontdesk.bookings()
    assert booking.room_name in headline(working)
    assert "Mon 23 Nov 2026, 10:00–10:30" in text_of(working)
    # The refresh Teams sends when the card is shown joins the running work: no second event.
    refresh = dict(click, value={**click["value"], "trigger": "automatic"})
    assert _is_working(await _post_within_bound(frontdesk, refresh))
    sleep.gate.set()
    await _update_of(frontdesk.connector, click["replyToId"])
    await _assert_booked_once(slow)
    assert len(graph.requests_to("POST", EVENTS)) == 2


async def test_the_turn_budget_is_a_setting_checked_at_start_up() -> None:
    assert load_settings(TURN_BUDGET_SECONDS="2.5").turn_budget_seconds == 2.5
    assert load_settings().turn_budget_seconds < 15
    with pytest.raises(ValueError, match="TURN_BUDGET_SECONDS"):
        load_settings(TURN_BUDGET_SECONDS="20")
