"""BookingRepository on SQLite and PostgreSQL: UTC times, idempotent create, overlaps, cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import StatementError
from sqlmodel import select

from bot.errors import NotFound, RoomTaken
from bot.storage.db import read_session
from bot.storage.repository import BookingRepository
from bot.storage.tables import Booking, BookingStatus
from tests.conftest import FakeClock
from tests.storage.conftest import DAY, ROOM, TENANT, at, make_booking


def stored_bookings(bookings: BookingRepository, room_id: str = ROOM) -> list[Booking]:
    with read_session(bookings._engine) as session:
        statement = select(Booking).where(Booking.room_id == room_id).order_by(Booking.start_at)
        return list(session.exec(statement))


# -- times --------------------------------------------------------------------------------------
@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "Asia/Kolkata", "America/New_York"])
async def test_aware_times_come_back_equal_and_in_utc(
    bookings: BookingRepository, zone: str
) -> None:
    start = datetime(2026, 12, 7, 10, 30, 15, 123456, tzinfo=ZoneInfo(zone))
    booking = make_booking(start, start + timedelta(minutes=45))

    await bookings.create(booking)
    stored = await bookings.by_attempt(booking.attempt_id)

    assert stored is not None
    assert (stored.start_at, stored.end_at) == (start, start + timedelta(minutes=45))
    for moment in (stored.start_at, stored.end_at, stored.created_at):
        assert moment.utcoffset() == timedelta(0)
    assert stored.start_at.replace(tzinfo=None) == start.astimezone(UTC).replace(tzinfo=None)


async def test_overlap_is_judged_in_utc_whatever_zone_each_booking_came_in(
    bookings: BookingRepository,
) -> None:
    berlin = ZoneInfo("Europe/Berlin")  # UTC+1 in December
    await bookings.create(make_booking(DAY.replace(hour=11, tzinfo=berlin)))  # 10:00-11:00 UTC

    with pytest.raises(RoomTaken):
        await bookings.create(make_booking(at(10, 30)))
    _, created = await bookings.create(make_booking(at(11)))

    assert created


async def test_naive_times_are_refused_and_nothing_is_stored(bookings: BookingRepository) -> None:
    naive = datetime(2026, 12, 7, 10, 0)
    booking = make_booking(naive, naive + timedelta(hours=1))

    with pytest.raises(StatementError) as raised:
        await bookings.create(booking)

    assert isinstance(raised.value.orig, ValueError)
    assert "naive datetime" in str(raised.value.orig)
    assert await bookings.by_attempt(booking.attempt_id) is None


async def test_a_naive_now_is_refused_by_queries(bookings: BookingRepository) -> None:
    with pytest.raises(StatementError) as raised:
        await bookings.upcoming(
            tenant_id=TENANT, user_id="user-a", now=datetime(2026, 12, 7, 9, 0), limit=5
        )

    assert isinstance(raised.value.orig, ValueError)


# -- create and its attempt id ---------------------------------------------------------------
async def test_create_books_once_per_attempt(bookings: BookingRepository) -> None:
    first = make_booking()
    again = make_booking(at(15), room_id="room-borealis", attempt_id=first.attempt_id)

    created_first = await bookings.create(first)
    created_again = await bookings.create(again)

    assert created_first == (first, True)
    booking, created = created_again
    assert created is False
    assert booking.id == first.id
    assert (booking.room_id, booking.start_at) == (ROOM, at(10))
    assert [b.id for b in stored_bookings(bookings)] == [first.id]
    assert stored_bookings(bookings, "room-borealis") == []


# -- overlaps ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "end"),
    [
        pytest.param(at(10, 30), at(11, 30), id="starts-inside"),
        pytest.param(at(9, 30), at(10, 30), id="ends-inside"),
        pytest.param(at(9), at(12), id="contains"),
        pytest.param(at(10, 15), at(10, 45), id="is-contained"),
        pytest.param(at(10), at(11), id="identical"),
        pytest.param(at(10), at(10, 1), id="same-start"),
        pytest.param(at(10, 59), at(12), id="last-minute"),
    ],
)
async def test_an_overlapping_booking_of_the_room_is_refused(
    bookings: BookingRepository, start: datetime, end: datetime
) -> None:
    existing, _ = await bookings.create(make_booking(at(10), at(11), user_id="user-a"))
    late = make_booking(start, end, user_id="user-b")

    with pytest.raises(RoomTaken):
        await bookings.create(late)

    assert [(b.id, b.status) for b in stored_bookings(bookings)] == [
        (existing.id, BookingStatus.CONFIRMED)
    ]
    assert await bookings.by_attempt(late.attempt_id) is None


@pytest.mark.parametrize(
    ("start", "end", "room_id"),
    [
        pytest.param(at(11), at(12), ROOM, id="right-after"),
        pytest.param(at(9), at(10), ROOM, id="right-before"),
        pytest.param(at(10), at(11), "room-borealis", id="other-room"),
    ],
)
async def test_back_to_back_or_another_room_is_allowed(
    bookings: BookingRepository, start: datetime, end: datetime, room_id: str
) -> None:
    await bookings.create(make_booking(at(10), at(11), user_id="user-a"))
    other = make_booking(start, end, room_id=room_id, user_id="user-b")

    booking, created = await bookings.create(other)

    assert created
    assert booking.id == other.id
    assert await bookings.by_attempt(other.attempt_id) is not None


async def test_a_cancelled_booking_does_not_block_the_room(
    bookings: BookingRepository, clock: FakeClock
) -> None:
    first, _ = await bookings.create(make_booking(user_id="user-a"))
    await bookings.cancel(first.id, tenant_id=TENANT, user_id="user-a", comment=None, now=clock())
    second = make_booking(user_id="user-b")

    booking, created = await bookings.create(second)

    assert created
    assert [(b.id, b.status) for b in stored_bookings(bookings)] == [
        (first.id, BookingStatus.CANCELLED),
        (second.id, BookingStatus.CONFIRMED),
    ]


# -- cancel -----------------------------------------------------------------------------------
async def test_the_owner_cancels_once(bookings: BookingRepository, clock: FakeClock) -> None:
    booking, _ = await bookings.create(make_booking(user_id="user-a"))

    cancelled, changed = await bookings.cancel(
        booking.id, tenant_id=TENANT, user_id="user-a", comment="Plans changed", now=clock()
    )
    clock.advance(minutes=5)
    again, changed_again = await bookings.cancel(
        booking.id, tenant_id=TENANT, user_id="user-a", comment="Second try", now=clock()
    )

    assert changed is True
    assert (cancelled.id, cancelled.status) == (booking.id, BookingStatus.CANCELLED)
    assert changed_again is False
    assert again.status == BookingStatus.CANCELLED
    # The second call changed nothing: the first comment and time stay.
    (stored,) = stored_bookings(bookings)
    assert (stored.status, stored.cancel_comment) == (BookingStatus.CANCELLED, "Plans changed")
    assert stored.cancelled_at == clock() - timedelta(minutes=5)


@pytest.mark.parametrize(
    ("tenant_id", "user_id"),
    [
        pytest.param(TENANT, "user-b", id="other-user"),
        pytest.param("tenant-2", "user-a", id="same-user-id-other-tenant"),
    ],
)
async def test_nobody_else_can_cancel(
    bookings: BookingRepository, clock: FakeClock, tenant_id: str, user_id: str
) -> None:
    booking, _ = await bookings.create(make_booking(user_id="user-a"))

    with pytest.raises(NotFound):
        await bookings.cancel(
            booking.id, tenant_id=tenant_id, user_id=user_id, comment="mine now", now=clock()
        )

    (stored,) = stored_bookings(bookings)
    assert (stored.status, stored.cancel_comment, stored.cancelled_at) == (
        BookingStatus.CONFIRMED,
        None,
        None,
    )


async def test_cancelling_an_unknown_booking_is_not_found(
    bookings: BookingRepository, clock: FakeClock
) -> None:
    with pytest.raises(NotFound):
        await bookings.cancel(
            "no-such-booking", tenant_id=TENANT, user_id="user-a", comment=None, now=clock()
        )


# -- reads ------------------------------------------------------------------------------------
async def test_upcoming_lists_the_users_confirmed_bookings_not_yet_ended_by_start(
    bookings: BookingRepository, clock: FakeClock
) -> None:
    now = clock()  # 2026-11-23 08:05 UTC
    today = now.replace(hour=0, minute=0)
    later = make_booking(at(14), room_id="room-1")
    sooner = make_booking(at(9), room_id="room-2")
    ongoing = make_booking(now - timedelta(minutes=35), now + timedelta(minutes=25))
    mine = [later, sooner, ongoing]
    not_mine = [
        make_booking(at(6, day=today), at(7, day=today), room_id="room-3"),  # over
        make_booking(now - timedelta(hours=1), now, room_id="room-4"),  # ended right now
        make_booking(at(12), room_id="room-5", user_id="user-b"),
        make_booking(at(12), room_id="room-6", tenant_id="tenant-2"),
    ]
    cancelled = make_booking(at(16), room_id="room-7")
    for booking in [*mine, *not_mine, cancelled]:
        await bookings.create(booking)
    await bookings.cancel(cancelled.id, tenant_id=TENANT, user_id="user-a", comment=None, now=now)

    upcoming = await bookings.upcoming(tenant_id=TENANT, user_id="user-a", now=now, limit=10)
    first_two = await bookings.upcoming(tenant_id=TENANT, user_id="user-a", now=now, limit=2)

    assert [b.id for b in upcoming] == [ongoing.id, sooner.id, later.id]
    assert [b.id for b in first_two] == [ongoing.id, sooner.id]


async def test_busy_times_gives_the_confirmed_intervals_per_room(
    bookings: BookingRepository, clock: FakeClock
) -> None:
    for booking in [
        make_booking(at(8), at(9), room_id="room-1"),  # ends as the window opens
        make_booking(at(11, 30), at(12, 30), room_id="room-1"),  # runs past the window
        make_booking(at(9, 30), at(10), room_id="room-1"),
        make_booking(at(10), at(11), room_id="room-2"),
        make_booking(at(12), at(13), room_id="room-2"),  # starts as the window closes
        make_booking(at(10), at(11), room_id="room-4"),  # a room nobody asked about
    ]:
        await bookings.create(booking)
    cancelled, _ = await bookings.create(make_booking(at(10), at(11), room_id="room-1"))
    await bookings.cancel(
        cancelled.id, tenant_id=TENANT, user_id="user-a", comment=None, now=clock()
    )

    busy = await bookings.busy_times(["room-1", "room-2", "room-3"], at(9), at(12))

    assert busy == {
        "room-1": [(at(9, 30), at(10)), (at(11, 30), at(12, 30))],
        "room-2": [(at(10), at(11))],
        "room-3": [],
    }
    assert all(moment.tzinfo is not None for spans in busy.values() for s in spans for moment in s)
    assert await bookings.busy_times([], at(9), at(12)) == {}
