"""Redelivery: Teams sends the same activity again (it got no answer in time, or a network
retry), at once and 20 seconds later. Each has one effect: one reply, one booking, one
cancellation, one welcome. Time is the app's FakeClock, moved by hand, never a real wait.

Messages are de-duplicated by activity id in the database (table `seen_activity`, kept for an
hour, shared by every replica). Card clicks are answered on every delivery, since Teams waits
for the answer, but their effect is guarded by the ids the card carries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from app import COMPONENTS
from bot.storage.deliveries import DELIVERY_TTL
from bot.storage.tables import BookingStatus
from tests.bot.conftest import Frontdesk, OnEachDatabase, card_of
from tests.support.activities import (
    GROUP_CHAT,
    make_group_mention,
    make_installation_update,
    make_members_added,
    make_message,
)
from tests.support.cardquery import action_titled, book_actions, headline, text_of
from tests.support.fake_graph import FakeGraph
from tests.support.graph_session import Microsoft365, megan_events, microsoft365

SLOT = {"date": "2026-11-23", "start": "10:00", "duration": "30", "attendees": "4"}


async def _deliver(frontdesk: Frontdesk, activity: dict[str, Any]) -> list[int]:
    """The activity once, twice more at once (together), then 20 seconds later."""
    first = await frontdesk.post(activity)
    together = await asyncio.gather(frontdesk.post(activity), frontdesk.post(activity))
    frontdesk.clock.advance(seconds=20)
    later = await frontdesk.post(activity)
    return [status for status, _ in (first, *together, later)]


class TestOnEachDatabase(OnEachDatabase):
    @pytest.mark.parametrize("text", ["book", "my bookings", "what is this?"])
    async def test_a_message_delivered_again_is_answered_once(
        self, frontdesk: Frontdesk, text: str
    ) -> None:
        message = make_message(text, service_url=frontdesk.service_url)

        statuses = await _deliver(frontdesk, message)

        assert set(statuses) <= {200, 201}
        assert len(frontdesk.connector.sent) == 1
        assert frontdesk.rows("SELECT COUNT(*) AS n FROM seen_activity") == [{"n": 1}]

    async def test_a_book_click_delivered_again_books_once_and_answers_alike(
        self, frontdesk: Frontdesk
    ) -> None:
        click = frontdesk.press_activity(book_actions(await frontdesk.search(SLOT))[0])

        answers = [await frontdesk.post(click)]
        answers += await asyncio.gather(frontdesk.post(click), frontdesk.post(click))
        frontdesk.clock.advance(seconds=20)
        answers.append(await frontdesk.post(click))

        cards = [card_of(*answer) for answer in answers]
        assert [headline(card) for card in cards] == ["Room booked"] * 4
        assert all(card == cards[0] for card in cards)
        [booking] = frontdesk.bookings()
        assert booking.status == BookingStatus.CONFIRMED

    async def test_a_cancel_delivered_again_cancels_once(self, frontdesk: Frontdesk) -> None:
        booked = await frontdesk.press(book_actions(await frontdesk.search(SLOT))[0])
        ask = await frontdesk.press(action_titled(booked, "Cancel booking"))
        confirm = frontdesk.press_activity(
            action_titled(ask, "Yes, cancel it"), {"comment": "first"}
        )

        statuses = await _deliver(frontdesk, confirm)

        assert statuses == [200] * 4
        [booking] = frontdesk.bookings()
        assert booking.status == BookingStatus.CANCELLED
        assert booking.cancel_comment == "first"
        assert booking.cancelled_at == frontdesk.clock.now - timedelta(seconds=20)


async def test_an_install_delivered_again_welcomes_once(frontdesk: Frontdesk) -> None:
    su = frontdesk.service_url

    await _deliver(frontdesk, make_members_added(service_url=su))
    await _deliver(frontdesk, make_installation_update(service_url=su))

    assert [headline(card)[:7] for card in frontdesk.connector.cards()] == ["Welcome"]


async def test_the_same_id_in_another_conversation_is_another_message(
    frontdesk: Frontdesk,
) -> None:
    # Teams message ids are unique within a conversation only.
    su = frontdesk.service_url
    personal = make_message("help", service_url=su, activity_id="1795047999999")
    group = make_group_mention("help", service_url=su, activity_id="1795047999999")
    assert group["conversation"]["id"] == GROUP_CHAT.id

    await frontdesk.send(personal)
    await frontdesk.send(group)

    assert len(frontdesk.connector.sent) == 2


async def test_a_message_id_is_remembered_for_an_hour_then_forgotten(
    frontdesk: Frontdesk,
) -> None:
    message = make_message("help", service_url=frontdesk.service_url)
    await frontdesk.send(message)

    frontdesk.clock.advance(seconds=DELIVERY_TTL.total_seconds() - 1)
    await frontdesk.send(message)
    sent_within_the_hour = len(frontdesk.connector.sent)
    frontdesk.clock.advance(seconds=2)
    await frontdesk.send(make_message("help", service_url=frontdesk.service_url))  # prunes
    await frontdesk.send(message)

    assert sent_within_the_hour == 1
    assert len(frontdesk.connector.sent) == 3
    assert frontdesk.rows("SELECT COUNT(*) AS n FROM seen_activity") == [{"n": 2}]


async def test_a_message_whose_turn_failed_is_answered_when_delivered_again(
    frontdesk: Frontdesk,
) -> None:
    message = make_message("book", service_url=frontdesk.service_url)
    with frontdesk.engine.begin() as connection:  # the database breaks under the first turn
        connection.exec_driver_sql("ALTER TABLE user_profile RENAME TO user_profile_away")
    [failed] = await frontdesk.send(message)
    with frontdesk.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE user_profile_away RENAME TO user_profile")

    again = await frontdesk.send(message)

    assert headline(failed) == "Something went wrong"
    assert [headline(card) for card in again] == ["Book a room"]


class GraphMode:
    """DIRECTORY=graph: the Book click makes an Outlook event through a fake Microsoft Graph."""

    @pytest.fixture
    async def m365(self) -> AsyncIterator[Microsoft365]:
        async with microsoft365() as m365:
            yield m365

    @pytest.fixture
    def graph(self, m365: Microsoft365) -> FakeGraph:
        return m365.graph

    @pytest.fixture
    def app_env(self, m365: Microsoft365) -> dict[str, str]:
        return {**m365.settings(), "TURN_BUDGET_SECONDS": "4.5"}


class TestInGraphMode(GraphMode):
    async def test_a_book_click_delivered_again_20_seconds_later_books_once(
        self, frontdesk: Frontdesk, graph: FakeGraph
    ) -> None:
        click = frontdesk.press_activity(book_actions(await frontdesk.search(SLOT))[0])

        first = card_of(*await frontdesk.post(click))
        frontdesk.clock.advance(seconds=20)
        later = card_of(*await frontdesk.post(click))

        assert headline(first) == headline(later) == "Room booked"
        assert later == first
        [booking] = frontdesk.bookings()
        [event] = megan_events(graph)
        assert booking.event_id == event.id and event.transaction_id == booking.attempt_id
        assert len(graph.requests_to("POST", "/me/events")) == 1
        assert frontdesk.rows("SELECT COUNT(*) AS n FROM booking_job") == [{"n": 0}]


class TestInGraphModeWhileGraphIsSlow(GraphMode):
    async def test_a_book_click_delivered_again_while_graph_is_slow_books_once(
        self, frontdesk: Frontdesk, graph: FakeGraph
    ) -> None:
        click = frontdesk.press_activity(book_actions(await frontdesk.search(SLOT))[0])
        slow_clicks = frontdesk.client.server.app[COMPONENTS].slow_clicks
        assert slow_clicks is not None
        # Graph answers in 1 s: the Book click's turn answers "working on it" first. (The search
        # above ran under the generous budget, so that a busy machine does not make it "working".)
        slow_clicks.budget = 0.3
        graph.hang("/me/events", seconds=1.0, method="POST")

        answers = await asyncio.gather(frontdesk.post(click), frontdesk.post(click))
        frontdesk.clock.advance(seconds=20)
        await frontdesk.connector.wait_for(len(frontdesk.connector.sent) + 1)  # the card update
        later = card_of(*await frontdesk.post(click))

        working = [card_of(*answer) for answer in answers]
        assert all("this can take a moment" in text_of(card) for card in working), working
        assert headline(later) == "Room booked"
        updates = [r for r in frontdesk.connector.sent if r.is_update]
        assert [headline(card) for r in updates for card in r.cards()] == ["Room booked"]
        assert len(frontdesk.bookings()) == 1
        assert len(graph.requests_to("POST", "/me/events")) == 1
