"""Database round trips of an approve click: what the answer waits for, and what the work after
the answer reads per posted copy.

Each transaction costs the click a worker-thread hop, a BEGIN, its statements and a COMMIT
(bench/results: about 0.4 ms of CPU each on SQLite), so their number is what bounds an approve
click's throughput. The counts here are the budget: a change that adds a read per click, or one
per posted copy of a card, fails here before it shows in `make bench`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event

from app import COMPONENTS
from tests.bot.conftest import Frontdesk, card_of
from tests.bot.test_requests import Desk, decide_action
from tests.bot.test_requests import app_env as app_env  # the two-stage catering of those tests
from tests.support.activities import ALEX, NESTOR, make_card_action, personal_chat
from tests.support.cardquery import text_of


@pytest.fixture
def desk(frontdesk: Frontdesk) -> Desk:
    return Desk(frontdesk)


class Statements:
    """The SQL the app sends while counting: transactions begun and statements by table."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    @property
    def transactions(self) -> int:
        return sum(1 for sql in self.sql if sql.startswith("BEGIN"))

    def reading(self, table: str) -> int:
        return sum(1 for sql in self.sql if sql.startswith("SELECT") and f"FROM {table} " in sql)


@contextmanager
def counting(engine: Engine) -> Iterator[Statements]:
    seen = Statements()

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.sql.append(" ".join(statement.split()) + " ")

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def hold_background(desk: Desk) -> asyncio.Event:
    """Work spawned after an answer waits for the returned event: what a turn does alone can be
    counted."""
    tasks = desk.app[COMPONENTS].tasks
    gate = asyncio.Event()
    spawn = tasks.spawn

    def held(work: Coroutine[Any, Any, None], *, name: str) -> None:
        async def later() -> None:
            await gate.wait()
            await work

        spawn(later(), name=name)

    tasks.spawn = held  # type: ignore[method-assign]
    return gate


async def test_an_approve_click_answers_after_four_transactions(desk: Desk) -> None:
    request_id, alex_card = await desk.order_for_alex()
    gate = hold_background(desk)

    with counting(desk.fd.engine) as turn:
        answer = await desk.press(decide_action(alex_card, "Approve all"), user=ALEX)
    assert "Your decision is recorded." in text_of(answer)
    # Is the chat stale; the request; the conditional write (which returns the row as stored);
    # what the card shows (history, names, booking, the chats it refreshes for).
    assert turn.transactions == 4, turn.sql
    assert turn.reading("service_request") == 1, turn.sql

    gate.set()
    await desk.settle()
    assert desk.request(request_id)["version"] == 2


async def test_updating_every_copy_reads_what_the_cards_show_once(desk: Desk) -> None:
    request_id, alex_card = await desk.order_for_alex()
    await desk.press(decide_action(alex_card, "Approve all"), user=ALEX)
    await desk.settle()
    [nestor_card] = desk.sent_to(personal_chat(NESTOR).id)
    copies = len(desk.fd.rows("SELECT id FROM request_card WHERE activity_id IS NOT NULL"))
    assert copies >= 4  # Megan's, Alex's, Nestor's and Diego's

    # Finance must all approve: Nestor's decision changes the request, which stays pending, and
    # every copy is updated.
    gate = hold_background(desk)
    await desk.press(decide_action(nestor_card, "Approve all"), user=NESTOR)
    before = len(desk.fd.connector.sent)
    with counting(desk.fd.engine) as after:
        gate.set()
        await desk.settle()
    updated = [request for request in desk.fd.connector.sent[before:] if request.is_update]
    assert len(updated) == copies
    # One read of the history, names and refreshing chats for all the copies, not one per copy.
    assert after.reading("audit_event") == 1, after.sql
    assert after.reading("user_profile") == 1, after.sql
    assert desk.request(request_id)["status"] == "pending"


async def test_a_repeated_click_reads_and_changes_nothing_more(desk: Desk) -> None:
    """The same invoke delivered again: answered from the request as read, no second write."""
    request_id, alex_card = await desk.order_for_alex()
    action = decide_action(alex_card, "Approve all")
    activity = make_card_action(
        action["verb"], action["data"], service_url=desk.fd.service_url, user=ALEX
    )
    card_of(*await desk.fd.post(activity))
    await desk.settle()
    with counting(desk.fd.engine) as again:
        answer = card_of(*await desk.fd.post(activity))
    assert "already approved by Alex Wilber" in text_of(answer)
    assert not any(sql.startswith(("UPDATE", "INSERT", "DELETE")) for sql in again.sql), again.sql
    assert desk.request(request_id)["version"] == 2
