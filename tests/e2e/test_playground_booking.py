"""Booking end to end in Microsoft 365 Agents Playground, against the real `python app.py`.

Every verb, every action's data and every input id comes from the card the Playground pushed.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.app_process import BotProcess, frontdesk_process
from tests.support.cardquery import book_actions, walk
from tests.support.playground import (
    Playground,
    card_text,
    find_action,
    form_inputs,
    input_ids,
    press,
    require_browser,
    require_playground,
    run_ui_steps,
)
from tests.support.prereq import repo_root

pytestmark = pytest.mark.e2e
ARTIFACTS = repo_root() / "tests" / "artifacts" / "e2e"


@pytest.fixture
async def frontdesk(tmp_path: Path) -> AsyncIterator[BotProcess]:
    """`python app.py` in local mode on a free loopback port with its own SQLite file."""
    require_playground()
    async with frontdesk_process(tmp_path) as bot:
        yield bot


def tomorrow() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).date().isoformat()


async def test_book_list_and_cancel_in_the_playground(
    frontdesk: BotProcess, tmp_path: Path
) -> None:
    async with Playground(frontdesk.endpoint, log_dir=tmp_path / "playground") as pg:
        await pg.send_install()
        welcome = await pg.wait_for_card()
        assert "Welcome" in card_text(welcome.card)
        book_now = find_action(welcome.card, "Book a room")

        form = await press(pg, welcome, book_now)
        assert {"date", "start", "duration", "attendees", "subject"} <= set(input_ids(form.card))
        inputs = form_inputs(
            form.card, date=tomorrow(), start="10:00", attendees="3", subject="E2E sync"
        )
        results = await press(pg, form, find_action(form.card, "Find rooms"), inputs)
        assert "Free rooms" in card_text(results.card)
        first = book_actions(results.card)[0]
        room = first["title"].removeprefix("Book ")

        confirmation = await press(pg, results, first)
        text = card_text(confirmation.card)
        assert "Room booked" in text and room in text and "E2E sync" in text
        assert "10:00" in text

        await pg.send_message("my bookings")
        listing = await pg.wait_for_card()
        assert room in card_text(listing.card)
        asking = await press(pg, listing, find_action(listing.card, "Cancel"))
        assert "Cancel this booking?" in card_text(asking.card)
        assert "comment" in input_ids(asking.card)
        done = await press(
            pg, asking, find_action(asking.card, "Yes, cancel it"), {"comment": "E2E done"}
        )
        assert "Booking cancelled" in card_text(done.card)
        assert "E2E done" in card_text(done.card)

        await pg.send_message("My Bookings")
        empty = await pg.wait_for_card()
        assert "no upcoming bookings" in card_text(empty.card)


async def test_a_mention_in_a_group_chat_gets_the_form(
    frontdesk: BotProcess, tmp_path: Path
) -> None:
    async with Playground(frontdesk.endpoint, log_dir=tmp_path / "playground") as pg:
        await pg.send_message("BOOK", conversation_id=pg.config.group_chat_id)
        form = await pg.wait_for_card()

        assert form.conversation_id == pg.config.group_chat_id
        assert "Book a room" in card_text(form.card)
        assert "date" in input_ids(form.card)


@pytest.mark.browser
async def test_book_and_cancel_by_typing_and_clicking(
    frontdesk: BotProcess, tmp_path: Path
) -> None:
    require_browser()
    day = tomorrow()
    async with Playground(frontdesk.endpoint, log_dir=tmp_path / "playground") as pg:
        # Learn the labels and which room comes first from the cards the bot sends.
        await pg.send_message("book")
        form = await pg.wait_for_card()
        labels = {
            node["id"]: node["label"]
            for node in walk(form.card)
            if str(node.get("type", "")).startswith("Input.")
        }
        inputs = form_inputs(form.card, date=day, start="14:00", attendees="3", subject="UI sync")
        results = await press(pg, form, find_action(form.card, "Find rooms"), inputs)
        first = book_actions(results.card)[0]["title"]
        room = first.removeprefix("Book ")

        shots = ARTIFACTS / "booking"
        shutil.rmtree(shots, ignore_errors=True)
        result = await run_ui_steps(
            pg.base_url,
            [
                {"send": "book"},
                {"waitText": "Find rooms"},
                {"fillDate": {"label": labels["date"], "date": day}},
                {"fillTime": {"label": labels["start"], "time": "2:00 PM"}},
                {"fillNumber": {"label": labels["attendees"], "value": 3}},
                {"fillText": {"label": labels["subject"], "text": "UI sync"}},
                {"screenshot": "1-form"},
                {"click": "Find rooms"},
                {"waitText": "Free rooms"},
                {"screenshot": "2-results"},
                {"click": first},
                {"waitText": "Room booked"},
                {"waitText": room},
                {"screenshot": "3-booked"},
                {"send": "my bookings"},
                {"waitText": "UI sync"},
                {"screenshot": "4-my-bookings"},
                {"click": "Cancel"},
                {"waitText": "Cancel this booking?"},
                {"fillText": {"label": "Comment (optional)", "text": "Clicked in the browser"}},
                {"click": "Yes, cancel it"},
                {"waitText": "Booking cancelled"},
                {"screenshot": "5-cancelled"},
            ],
            shots,
        )
        assert result["ok"], result
        assert "Clicked in the browser" in result["lastCardText"]
        for name in ("1-form", "2-results", "3-booked", "4-my-bookings", "5-cancelled"):
            assert (shots / f"{name}.png").stat().st_size > 10_000
