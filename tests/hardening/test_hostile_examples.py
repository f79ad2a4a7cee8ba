"""Hostile requests, one by one: what the generated run (test_hostile_input.py) found, and clicks
that carry the ids of someone else's objects. Each is refused or answered with a clear card, and
no row of any table changes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.commands import Verb
from tests.bot.conftest import CARD_TYPE, Frontdesk
from tests.hardening.conftest import changed_tables, database_snapshot
from tests.support.activities import ALEX, make_card_action, make_members_added, make_message
from tests.support.cardquery import action_titled, book_actions, execute_actions, headline, text_of

TOMORROW = "2026-11-24"  # the FakeClock stands on Mon 23 Nov 2026
SLOT = {"date": TOMORROW, "start": "10:00", "duration": "30", "attendees": "2"}


def _without(activity: dict[str, Any], key: str) -> dict[str, Any]:
    activity.pop(key)
    return activity


def _with(activity: dict[str, Any], **fields: Any) -> dict[str, Any]:
    activity.update(fields)
    return activity


def _invoke_named(name: str | None, su: str) -> dict[str, Any]:
    activity = make_card_action(Verb.HELP.value, {}, service_url=su)
    if name is None:
        del activity["name"]
    else:
        activity["name"] = name
    return activity


# Found by the generated run: each broke the turn (a 5xx, or a "Something went wrong" card).
FOUND: dict[str, Any] = {
    "invoke this bot has no handler for (was 501)": (lambda su: _invoke_named("task/fetch", su)),
    "invoke with an empty name (was 501)": (lambda su: _invoke_named("", su)),
    "invoke without a name (was 501)": (lambda su: _invoke_named(None, su)),
    "message without a recipient": (
        lambda su: _without(make_message("book", service_url=su), "recipient")
    ),
    "serviceUrl a number": (lambda su: _with(make_message("help", service_url=su), serviceUrl=7)),
    "serviceUrl a list": (lambda su: _with(make_message("help", service_url=su), serviceUrl=["x"])),
    "serviceUrl not a URL": (
        lambda su: _with(make_message("help", service_url=su), serviceUrl="smba")
    ),
    "entities holding null": (
        lambda su: _with(make_message("<at>Frontdesk</at> book", service_url=su), entities=[None])
    ),
    "an entity without a type": (
        lambda su: _with(
            make_message("<at>Frontdesk</at> book", service_url=su), entities=[{"text": "x"}]
        )
    ),
    "membersAdded holding null": (
        lambda su: _with(make_members_added(service_url=su), membersAdded=[None])
    ),
}


@pytest.mark.parametrize("case", list(FOUND))
async def test_malformed_activities_found_by_the_generated_run_are_4xx_and_change_nothing(
    frontdesk: Frontdesk, case: str
) -> None:
    before = database_snapshot(frontdesk.engine)

    status, body = await frontdesk.post(FOUND[case](frontdesk.service_url))

    assert 400 <= status < 500, (status, body)
    assert frontdesk.connector.sent == []
    assert changed_tables(before, database_snapshot(frontdesk.engine)) == {}


# --- the ids of someone else's objects ---------------------------------------------------------


async def _alex_books(frontdesk: Frontdesk) -> dict[str, dict[str, Any]]:
    """Alex books one room and a weekly series; the buttons his cards carry."""
    results = await frontdesk.search(SLOT, user=ALEX)
    book = book_actions(results)[0]
    confirmation = await frontdesk.press(book, user=ALEX)
    assert headline(confirmation) == "Room booked"
    weekly = await frontdesk.search(
        {**SLOT, "start": "14:00", "repeat": "weekly", "occurrences": "3"}, user=ALEX
    )
    series_button = execute_actions(weekly, Verb.BOOKING_SERIES)[0]
    plan = await frontdesk.press(series_button, user=ALEX)
    booked_series = (
        plan
        if "dates booked" in text_of(plan)
        else await frontdesk.press(execute_actions(plan, Verb.BOOKING_SERIES_BOOK)[0], user=ALEX)
    )
    assert "3 dates booked" in text_of(booked_series), text_of(booked_series)
    # A search of Alex's he has not booked from yet: its Book buttons are still live.
    open_search = await frontdesk.search({**SLOT, "start": "16:00"}, user=ALEX)
    return {
        "book": book,
        "open book": book_actions(open_search)[0],
        "cancel": action_titled(confirmation, "Cancel booking"),
        "cancel series": action_titled(booked_series, "Cancel all"),
        "series": series_button,
    }


async def test_clicks_with_the_ids_of_alexs_objects_change_nothing(frontdesk: Frontdesk) -> None:
    alex = await _alex_books(frontdesk)
    await frontdesk.say("help")  # Megan's own profile and chat exist before the snapshot
    before = database_snapshot(frontdesk.engine)
    booking = alex["cancel"]["data"]["booking"]
    series = alex["cancel series"]["data"]["series"]
    attempt = alex["open book"]["data"]["attempt"]
    clicks: dict[str, tuple[str, dict[str, Any]]] = {
        "show": (Verb.BOOKING_SHOW.value, {"booking": booking}),
        "cancel": (Verb.BOOKING_CANCEL.value, {"booking": booking}),
        "cancel confirm": (
            Verb.BOOKING_CANCEL_CONFIRM.value,
            {"booking": booking, "comment": "mine now"},
        ),
        "cancel his series": (Verb.BOOKING_CANCEL_SERIES.value, {"series": series}),
        "book from his open search": (Verb.BOOKING_BOOK.value, alex["open book"]["data"]),
        "book from his used search": (Verb.BOOKING_BOOK.value, alex["book"]["data"]),
        "his series plan": (Verb.BOOKING_SERIES.value, alex["series"]["data"]),
        "book his series": (Verb.BOOKING_SERIES_BOOK.value, alex["series"]["data"]),
        "his search again": (Verb.BOOKING_ALTERNATIVES.value, {"attempt": attempt}),
        "his form": (Verb.BOOKING_START.value, {"attempt": attempt}),
        "his booking id as an attempt": (
            Verb.BOOKING_BOOK.value,
            {**alex["open book"]["data"], "attempt": booking},
        ),
    }

    answers = {name: await frontdesk.invoke(verb, data) for name, (verb, data) in clicks.items()}

    assert changed_tables(before, database_snapshot(frontdesk.engine)) == {}
    for name, (status, body) in answers.items():
        assert status == 200, (name, body)
        # A clear card ("Not found") or, for what no card of Megan's could send, statusCode 400.
        if body["statusCode"] == 200:
            assert body["type"] == CARD_TYPE
            assert headline(body["value"]) == "Not found", (name, text_of(body["value"]))
        else:
            assert body["statusCode"] == 400, (name, body)
        shown = json.dumps(body)
        assert "Alex" not in shown and "14:00" not in shown and "16:00" not in shown, name
    alex_list = await frontdesk.say("my bookings", user=ALEX)
    assert len(execute_actions(alex_list, Verb.BOOKING_CANCEL)) == 4, text_of(alex_list)
