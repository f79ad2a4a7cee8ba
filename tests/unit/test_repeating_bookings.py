"""Repeating bookings: occurrences, validation, the series search, conflicts and choices."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.booking import BookingService
from bot.errors import InputError, MalformedAction, NotFound
from bot.models import Repeat, SearchQuery
from bot.storage.tables import BookingStatus
from tests.conftest import make_actor

NEW_YORK = ZoneInfo("America/New_York")


def form(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "date": "2026-11-24",
        "start": "10:00",
        "duration": "60",
        "attendees": "5",
        "equipment": "display",
        "subject": "Weekly sync",
        "repeat": "weekly",
        "occurrences": "4",
    }
    values.update(overrides)
    return values


def test_occurrences_keep_the_wall_clock_time_across_daylight_saving() -> None:
    query = SearchQuery(
        start=datetime(2027, 3, 1, 15, 0, tzinfo=UTC),  # 10:00 in New York (EST)
        end=datetime(2027, 3, 1, 16, 0, tzinfo=UTC),
        attendees=1,
        subject="x",
        online_meeting=False,
        time_zone=NEW_YORK,
        repeat=Repeat.WEEKLY,
        count=3,
    )

    starts = [start.astimezone(NEW_YORK) for start, _ in query.occurrences()]

    assert [(s.month, s.day, s.hour) for s in starts] == [(3, 1, 10), (3, 8, 10), (3, 15, 10)]
    assert starts[2].utcoffset() != starts[0].utcoffset()  # DST began on 14 March


async def test_a_repeating_form_is_parsed(booking_service: BookingService) -> None:
    query = await booking_service.parse_form(form(repeat="daily", occurrences="3"), make_actor())

    assert (query.repeat, query.count) == (Repeat.DAILY, 3)
    assert [s.day for s, _ in query.occurrences()] == [24, 25, 26]


@pytest.mark.parametrize(
    ("inputs", "field", "words"),
    [
        (form(occurrences=""), "occurrences", "number of times"),
        (form(occurrences="1"), "occurrences", "2 to 12"),
        (form(occurrences="13"), "occurrences", "2 to 12"),
        (form(repeat="monthly"), "repeat", "from the list"),
        (form(repeat="weekly", occurrences="12", date="2027-01-10"), "occurrences", "90 days"),
    ],
)
async def test_repeating_mistakes_are_explained(
    booking_service: BookingService, inputs: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InputError) as caught:
        await booking_service.parse_form(inputs, make_actor())

    assert caught.value.field == field
    assert words in caught.value.message


async def _take(booking_service: BookingService, room_id: str, date: str) -> None:
    owner = make_actor("owner")
    query = await booking_service.parse_form(form(repeat="none", occurrences="", date=date), owner)
    result = await booking_service.search(owner, query)
    await booking_service.book(owner, result.attempt_id, room_id)


async def test_the_series_search_puts_rooms_free_every_time_first(
    booking_service: BookingService,
) -> None:
    await _take(booking_service, "rs-kingfisher", "2026-12-01")  # the 2nd Tuesday
    actor = make_actor()

    query = await booking_service.parse_form(form(building="Riverside", floor="2"), actor)

    result = await booking_service.search(actor, query)

    counts = [(offer.room.id, offer.free_count) for offer in result.offers]
    assert counts == [("rs-heron", 4), ("rs-kingfisher", 3)]


async def test_conflicts_are_shown_per_date_with_another_free_room(
    booking_service: BookingService,
) -> None:
    await _take(booking_service, "rs-kingfisher", "2026-12-01")
    actor = make_actor()
    result = await booking_service.search(actor, await booking_service.parse_form(form(), actor))

    plan = await booking_service.plan_series(actor, result.attempt_id, "rs-kingfisher")

    assert [occurrence.free for occurrence in plan] == [True, False, True, True]
    assert plan[1].room is not None and plan[1].room.id != "rs-kingfisher"
    assert plan[0].room is not None and plan[0].room.id == "rs-kingfisher"


async def test_booking_the_free_dates_skips_the_taken_one_once(
    booking_service: BookingService,
) -> None:
    await _take(booking_service, "rs-kingfisher", "2026-12-01")
    actor = make_actor()
    result = await booking_service.search(actor, await booking_service.parse_form(form(), actor))

    first = await booking_service.book_series(
        actor, result.attempt_id, "rs-kingfisher", substitute=False
    )
    again = await booking_service.book_series(
        actor, result.attempt_id, "rs-kingfisher", substitute=False
    )

    assert [b.start_at.day for b in first.booked] == [24, 8, 15]
    assert [o.start.day for o in first.skipped] == [1]
    assert {b.id for b in again.booked} == {b.id for b in first.booked}  # redelivery: no more
    assert len({b.series_id for b in first.booked}) == 1
    assert len(await booking_service.upcoming(actor)) == 3


async def test_other_rooms_take_the_taken_dates_when_asked(
    booking_service: BookingService,
) -> None:
    await _take(booking_service, "rs-kingfisher", "2026-12-01")
    actor = make_actor()
    result = await booking_service.search(actor, await booking_service.parse_form(form(), actor))

    done = await booking_service.book_series(
        actor, result.attempt_id, "rs-kingfisher", substitute=True
    )

    rooms = [b.room_id for b in sorted(done.booked, key=lambda b: b.start_at)]
    assert len(rooms) == 4 and done.skipped == []
    assert rooms[1] != "rs-kingfisher" and rooms.count("rs-kingfisher") == 3


async def test_cancelling_the_series_frees_every_date(booking_service: BookingService) -> None:
    actor = make_actor()
    result = await booking_service.search(actor, await booking_service.parse_form(form(), actor))
    done = await booking_service.book_series(
        actor, result.attempt_id, "rs-kingfisher", substitute=False
    )
    series_id = done.booked[0].series_id
    assert series_id is not None

    cancelled = await booking_service.cancel_series(actor, series_id, None)

    assert len(cancelled) == 4
    assert all(b.status == BookingStatus.CANCELLED for b in cancelled)
    assert await booking_service.upcoming(actor) == []
    with pytest.raises(NotFound):
        await booking_service.cancel_series(make_actor("user-b"), series_id, None)


async def test_a_single_book_click_cannot_book_a_series(booking_service: BookingService) -> None:
    actor = make_actor()
    result = await booking_service.search(actor, await booking_service.parse_form(form(), actor))

    with pytest.raises(MalformedAction):
        await booking_service.book(actor, result.attempt_id, "rs-kingfisher")
