"""The booking rules: form validation, search order, alternatives, booking and cancelling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.booking import BookingService
from bot.errors import InputError, MalformedAction, NotFound, RoomNeedsApproval, RoomTaken
from bot.models import Equipment
from bot.storage.tables import BookingStatus
from tests.conftest import LONDON, FakeClock, make_actor

NEW_YORK = ZoneInfo("America/New_York")


def form(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "date": "2026-11-23",
        "start": "10:00",
        "duration": "60",
        "attendees": "4",
        "subject": "Planning",
        "online": "true",
    }
    values.update(overrides)
    return values


def utc(hour: int, minute: int = 0, day: int = 23) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


# -- the form -----------------------------------------------------------------------------
def test_default_form_is_today_at_the_next_half_hour_in_the_users_zone(
    booking_service: BookingService, clock: FakeClock
) -> None:
    clock.now = utc(8, 5)

    london = booking_service.default_form(LONDON)
    new_york = booking_service.default_form(NEW_YORK)

    assert (london.date, london.start, london.duration, london.attendees) == (
        "2026-11-23",
        "08:30",
        "30",
        "1",
    )
    assert (new_york.date, new_york.start) == ("2026-11-23", "03:30")
    assert london.online_meeting is True


def test_default_form_rolls_over_to_tomorrow_just_before_midnight(
    booking_service: BookingService, clock: FakeClock
) -> None:
    clock.now = utc(23, 45)

    values = booking_service.default_form(LONDON)

    assert (values.date, values.start) == ("2026-11-24", "00:00")


async def test_parse_form_converts_the_users_local_time_to_utc(
    booking_service: BookingService,
) -> None:
    query = await booking_service.parse_form(
        form(start="10:00", duration="90"), make_actor(zone=NEW_YORK)
    )

    assert query.start == utc(15, 0)
    assert query.end == utc(16, 30)
    assert query.attendees == 4
    assert query.subject == "Planning"


async def test_parse_form_prefers_an_end_time_over_the_duration(
    booking_service: BookingService,
) -> None:
    query = await booking_service.parse_form(form(duration="30", end="11:15"), make_actor())

    assert query.minutes == 75


async def test_parse_form_reads_filters_and_equipment(booking_service: BookingService) -> None:
    query = await booking_service.parse_form(
        form(building="Riverside", floor="2", equipment="video,display"), make_actor()
    )

    assert query.building == "Riverside"
    assert query.floor == 2
    assert query.equipment == {Equipment.VIDEO, Equipment.DISPLAY}


@pytest.mark.parametrize(
    ("inputs", "field", "words"),
    [
        (form(start="08:00"), "start", "already passed"),
        (form(date="2026-11-22"), "start", "already passed"),
        (form(end="09:30"), "end", "after the start"),
        (form(end="10:00"), "end", "after the start"),
        (form(duration="600"), "duration", "at most 8 h"),
        (form(end="23:00", start="09:00"), "end", "at most 8 h"),
        (form(attendees="500"), "attendees", "largest holds 40"),
        (form(attendees="0"), "attendees", "At least one"),
        (form(date="2027-06-01"), "date", "90 days ahead"),
        (form(date="garbage"), "date", "YYYY-MM-DD"),
        (form(date=""), "date", "Pick a date"),
        (form(start="25:00"), "start", "HH:MM"),
        (form(start="ten"), "start", "HH:MM"),
        (form(attendees="abc"), "attendees", "whole number"),
        (form(attendees="2.5"), "attendees", "whole number"),
        (form(attendees=True), "attendees", "whole number"),
        (form(equipment="jetpack"), "equipment", "from the list"),
        (form(building="Atlantis"), "building", "from the list"),
        (form(floor="99"), "floor", "from the list"),
        (form(subject="x" * 300), "subject", "too long"),
        (form(duration="2"), "duration", "at least 5"),
    ],
)
async def test_parse_form_explains_each_mistake(
    booking_service: BookingService, inputs: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InputError) as caught:
        await booking_service.parse_form(inputs, make_actor())

    assert caught.value.field == field
    assert words in caught.value.message


async def test_parse_form_refuses_values_of_the_wrong_type(
    booking_service: BookingService,
) -> None:
    with pytest.raises(InputError, match="not valid"):
        await booking_service.parse_form(form(date={"nested": "object"}), make_actor())


def test_form_values_keep_what_the_user_typed(booking_service: BookingService) -> None:
    fallback = booking_service.default_form(LONDON)

    kept = booking_service.form_values(
        {"date": "2026-12-01", "attendees": "abc", "online": "false"}, fallback
    )

    assert (kept.date, kept.attendees, kept.online_meeting) == ("2026-12-01", "abc", False)
    assert kept.start == fallback.start


# -- search --------------------------------------------------------------------------------
async def test_search_lists_free_rooms_that_fit_smallest_first(
    booking_service: BookingService,
) -> None:
    actor = make_actor()
    query = await booking_service.parse_form(form(attendees="5", equipment="display"), make_actor())

    result = await booking_service.search(actor, query)

    rooms = [offer.room for offer in result.offers]
    assert rooms, "rooms that fit are offered"
    assert all(room.capacity >= 5 and Equipment.DISPLAY in room.equipment for room in rooms)
    capacities = [room.capacity for room in rooms if not room.needs_approval]
    assert capacities == sorted(capacities)
    assert rooms[0].name == "Kingfisher"  # the only 5-seat room with a display
    assert all(offer.attempt_id == result.attempt_id for offer in result.offers)
    assert not result.other_times and not result.other_rooms


async def test_search_applies_building_and_floor(booking_service: BookingService) -> None:
    query = await booking_service.parse_form(
        form(building="Harbour House", floor="2"), make_actor()
    )

    result = await booking_service.search(make_actor(), query)

    assert {(o.room.building, o.room.floor) for o in result.offers} == {("Harbour House", 2)}


async def test_search_leaves_out_rooms_busy_at_any_point_of_the_slot(
    booking_service: BookingService,
) -> None:
    actor = make_actor()
    query = await booking_service.parse_form(form(attendees="5", equipment="display"), make_actor())
    first = await booking_service.search(actor, query)
    await booking_service.book(actor, first.attempt_id, "rs-kingfisher")
    overlapping = await booking_service.parse_form(
        form(attendees="5", equipment="display", start="10:45", duration="15"), make_actor()
    )

    result = await booking_service.search(make_actor("user-b"), overlapping)

    assert "rs-kingfisher" not in {offer.room.id for offer in result.offers}


async def test_search_prefers_the_users_usual_building_among_equal_rooms(
    booking_service: BookingService,
) -> None:
    actor = make_actor()
    earlier = await booking_service.parse_form(
        form(date="2026-11-24", building="Riverside", floor="1", attendees="2"), make_actor()
    )
    result = await booking_service.search(actor, earlier)
    await booking_service.book(actor, result.attempt_id, "rs-otter")
    query = await booking_service.parse_form(form(attendees="2"), make_actor())

    result = await booking_service.search(actor, query)

    two_seaters = [o.room for o in result.offers if o.room.capacity == 2]
    assert [room.id for room in two_seaters][0] == "rs-otter"
    stranger = await booking_service.search(make_actor("user-c"), query)
    assert [o.room.id for o in stranger.offers if o.room.capacity == 2][0] != "rs-otter"


async def test_search_lists_rooms_needing_approval_last_and_marked(
    booking_service: BookingService,
) -> None:
    query = await booking_service.parse_form(form(attendees="13"), make_actor())

    result = await booking_service.search(make_actor(), query)

    names = [offer.room.name for offer in result.offers]
    assert names == ["Delta", "Boardroom", "Atrium"]
    assert [offer.room.needs_approval for offer in result.offers] == [False, True, True]


async def test_nothing_fits_offers_other_times_and_other_rooms(
    booking_service: BookingService,
) -> None:
    owner = make_actor("owner")
    # Take every room with video on Floor 2 of Harbour House (Harbour and Keel) 10:00-11:00.
    for room_id in ("hh-harbour", "hh-keel"):
        query = await booking_service.parse_form(
            form(building="Harbour House", floor="2", equipment="video", attendees="2"),
            make_actor(),
        )
        taken = await booking_service.search(owner, query)
        await booking_service.book(owner, taken.attempt_id, room_id)
    wanted = await booking_service.parse_form(
        form(building="Harbour House", floor="2", equipment="video", attendees="2"), make_actor()
    )

    result = await booking_service.search(make_actor("user-b"), wanted)

    assert result.offers == []
    assert result.other_times, "other times that day are offered"
    assert all(offer.start.date() == wanted.start.date() for offer in result.other_times)
    assert all(offer.end - offer.start == timedelta(hours=1) for offer in result.other_times)
    assert all(offer.end <= utc(10) or offer.start >= utc(11) for offer in result.other_times), (
        "no alternative overlaps the taken slot"
    )
    assert {offer.room.id for offer in result.other_times} <= {"hh-harbour", "hh-keel"}
    assert result.other_rooms, "rooms elsewhere are offered"
    assert all(not offer.room.needs_approval for offer in result.other_rooms)
    assert all(offer.start == wanted.start for offer in result.other_rooms)
    # Every alternative is bookable with one click.
    booked, created = await booking_service.book(
        make_actor("user-b"), result.other_times[0].attempt_id, result.other_times[0].room.id
    )
    assert created and booked.start_at == result.other_times[0].start
    other = result.other_rooms[0]
    booked, created = await booking_service.book(
        make_actor("user-b"), other.attempt_id, other.room.id
    )
    assert created and booked.room_id == other.room.id


async def test_other_times_never_start_in_the_past(
    booking_service: BookingService, clock: FakeClock
) -> None:
    clock.now = utc(9, 50)
    owner = make_actor("owner")
    query = await booking_service.parse_form(
        form(building="Riverside", floor="2", attendees="8"), make_actor()
    )
    taken = await booking_service.search(owner, query)
    await booking_service.book(owner, taken.attempt_id, "rs-heron")

    result = await booking_service.search(make_actor("user-b"), query)

    assert result.offers == []
    assert result.other_times
    assert all(offer.start >= clock.now for offer in result.other_times)


# -- booking --------------------------------------------------------------------------------
async def test_book_creates_a_booking_once_per_attempt(booking_service: BookingService) -> None:
    actor = make_actor()
    result = await booking_service.search(
        actor, await booking_service.parse_form(form(), make_actor())
    )
    room = result.offers[0].room

    first, created_first = await booking_service.book(actor, result.attempt_id, room.id)
    again, created_again = await booking_service.book(actor, result.attempt_id, room.id)

    assert created_first and not created_again
    assert again.id == first.id
    assert (first.room_id, first.start_at, first.end_at) == (room.id, utc(10), utc(11))
    assert first.status == BookingStatus.CONFIRMED
    assert first.join_url is None  # the local directory makes no Teams meeting


async def test_a_click_still_at_work_names_its_room_before_and_after_the_row(
    booking_service: BookingService,
) -> None:
    """The "working on it" card: the clicked room's name before the row is stored (from the
    room list), the row's afterwards; nothing for someone else's attempt."""
    actor = make_actor()
    result = await booking_service.search(actor, await booking_service.parse_form(form(), actor))
    room = result.offers[0].room

    before = await booking_service.pending(actor, result.attempt_id, room.id)
    unknown_room = await booking_service.pending(actor, result.attempt_id, "no-such-room")
    await booking_service.book(actor, result.attempt_id, room.id)
    after = await booking_service.pending(actor, result.attempt_id)

    assert before is not None and (before.room_name, before.start) == (room.name, utc(10))
    assert unknown_room is not None and unknown_room.room_name is None
    assert after is not None and after.room_name == room.name
    assert await booking_service.pending(make_actor("user-b"), result.attempt_id, room.id) is None


async def test_book_refuses_an_overlapping_slot_of_the_same_room(
    booking_service: BookingService,
) -> None:
    a, b = make_actor("user-a"), make_actor("user-b")
    first = await booking_service.search(a, await booking_service.parse_form(form(), make_actor()))
    second = await booking_service.search(
        b, await booking_service.parse_form(form(start="10:30", duration="15"), make_actor())
    )
    room_id = first.offers[0].room.id
    await booking_service.book(a, first.attempt_id, room_id)

    with pytest.raises(RoomTaken):
        await booking_service.book(b, second.attempt_id, room_id)


async def test_book_refuses_rooms_that_need_approval(booking_service: BookingService) -> None:
    actor = make_actor()
    result = await booking_service.search(
        actor, await booking_service.parse_form(form(), make_actor())
    )

    with pytest.raises(RoomNeedsApproval):
        await booking_service.book(actor, result.attempt_id, "hh-atrium")


async def test_book_refuses_another_users_attempt_and_unknown_rooms(
    booking_service: BookingService,
) -> None:
    result = await booking_service.search(
        make_actor("user-a"), await booking_service.parse_form(form(), make_actor())
    )

    with pytest.raises(NotFound):
        await booking_service.book(make_actor("user-b"), result.attempt_id, "hh-compass")
    with pytest.raises(NotFound):
        await booking_service.book(
            make_actor("user-a", tenant="other"), result.attempt_id, "hh-compass"
        )
    with pytest.raises(NotFound):
        await booking_service.book(make_actor("user-a"), result.attempt_id, "no-such-room")


async def test_book_refuses_a_room_too_small_for_the_search(
    booking_service: BookingService,
) -> None:
    actor = make_actor()
    result = await booking_service.search(
        actor, await booking_service.parse_form(form(attendees="6"), make_actor())
    )

    with pytest.raises(MalformedAction):
        await booking_service.book(actor, result.attempt_id, "hh-buoy")


async def test_book_refuses_a_slot_that_has_started_but_repeats_a_done_booking(
    booking_service: BookingService, clock: FakeClock
) -> None:
    actor = make_actor()
    result = await booking_service.search(
        actor, await booking_service.parse_form(form(), make_actor())
    )
    done, _ = await booking_service.book(actor, result.attempt_id, "hh-compass")
    stale = await booking_service.search(
        actor, await booking_service.parse_form(form(start="12:00"), make_actor())
    )
    clock.now = utc(12, 30)

    again, created = await booking_service.book(actor, result.attempt_id, "hh-compass")
    assert (again.id, created) == (done.id, False)
    with pytest.raises(InputError, match="already started"):
        await booking_service.book(actor, stale.attempt_id, "hh-compass")


async def test_upcoming_lists_only_the_users_future_bookings(
    booking_service: BookingService, clock: FakeClock
) -> None:
    a, b = make_actor("user-a"), make_actor("user-b")
    for start in ("15:00", "09:00"):
        found = await booking_service.search(
            a, await booking_service.parse_form(form(start=start), make_actor())
        )
        await booking_service.book(a, found.attempt_id, found.offers[0].room.id)
    found = await booking_service.search(b, await booking_service.parse_form(form(), make_actor()))
    await booking_service.book(b, found.attempt_id, found.offers[0].room.id)

    clock.now = utc(9, 30)
    listed = await booking_service.upcoming(a)
    clock.now = utc(10, 30)
    later = await booking_service.upcoming(a)

    assert [booking.start_at for booking in listed] == [utc(9), utc(15)]
    assert [booking.start_at for booking in later] == [utc(15)]


async def test_cancel_frees_the_slot_once_and_keeps_the_comment(
    booking_service: BookingService,
) -> None:
    a, b = make_actor("user-a"), make_actor("user-b")
    found = await booking_service.search(a, await booking_service.parse_form(form(), make_actor()))
    booking, _ = await booking_service.book(a, found.attempt_id, "hh-compass")

    cancelled, changed = await booking_service.cancel(a, booking.id, "  plans changed  ")
    again, changed_again = await booking_service.cancel(a, booking.id, None)
    retry = await booking_service.search(b, await booking_service.parse_form(form(), make_actor()))
    rebooked, created = await booking_service.book(b, retry.attempt_id, "hh-compass")

    assert (changed, changed_again) == (True, False)
    assert cancelled.status == again.status == BookingStatus.CANCELLED
    assert again.cancel_comment == "plans changed"
    assert created and rebooked.room_id == "hh-compass"


async def test_cancel_is_refused_for_other_users_and_long_comments(
    booking_service: BookingService,
) -> None:
    a = make_actor("user-a")
    found = await booking_service.search(a, await booking_service.parse_form(form(), make_actor()))
    booking, _ = await booking_service.book(a, found.attempt_id, "hh-compass")

    with pytest.raises(NotFound):
        await booking_service.cancel(make_actor("user-b"), booking.id, None)
    with pytest.raises(InputError, match="too long"):
        await booking_service.cancel(a, booking.id, "x" * 501)
    assert (await booking_service.get(a, booking.id)).status == BookingStatus.CONFIRMED


async def test_change_search_reopens_the_form_as_the_user_filled_it(
    booking_service: BookingService,
) -> None:
    actor = make_actor(zone=NEW_YORK)
    inputs = form(
        start="09:15", duration="90", attendees="6", building="Riverside", floor="2",
        equipment="display,video", subject="Roadmap", online="false",
    )  # fmt: skip
    result = await booking_service.search(
        actor, await booking_service.parse_form(inputs, make_actor(zone=NEW_YORK))
    )

    values = await booking_service.form_of_search(actor, result.attempt_id)

    assert (values.date, values.start, values.duration, values.end) == (
        "2026-11-23", "09:15", "90", "",
    )  # fmt: skip
    assert (values.attendees, values.building, values.floor) == ("6", "Riverside", "2")
    assert (values.equipment, values.subject, values.online_meeting) == (
        "display,video", "Roadmap", False,
    )  # fmt: skip
    with pytest.raises(NotFound):
        await booking_service.form_of_search(make_actor("user-b"), result.attempt_id)


async def test_change_search_keeps_an_unlisted_length_as_an_end_time(
    booking_service: BookingService,
) -> None:
    actor = make_actor()
    query = await booking_service.parse_form(form(start="10:00", end="10:50"), make_actor())
    result = await booking_service.search(actor, query)

    values = await booking_service.form_of_search(actor, result.attempt_id)

    assert (values.start, values.duration, values.end) == ("10:00", "30", "10:50")
