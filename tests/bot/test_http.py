"""Frontdesk over HTTP: Teams activities into /api/messages, cards out, with the real CloudAdapter.

The clock stands at Mon 23 Nov 2026 08:05 UTC (03:05 in New York, 08:05 in London). Users
send clientInfo America/New_York unless a test says otherwise; the app's TIMEZONE is Asia/Tokyo.
Buttons are pressed by reading their verb and data from the card the bot sent.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from bot.commands import COMMANDS, Verb
from bot.config import DEFAULT_ROOMS_FILE
from bot.directory.local import load_rooms_file
from bot.storage.tables import BookingApproval, BookingStatus
from tests.bot.conftest import (
    CARD_TYPE,
    DEFAULT_ZONE,
    ERROR_TYPE,
    Frontdesk,
    OnEachDatabase,
    card_of,
)
from tests.support.activities import (
    ALEX,
    BOT_ID,
    GROUP_CHAT,
    MEGAN,
    TENANT_ID,
    make_card_action,
    make_group_mention,
    make_installation_update,
    make_members_added,
    make_message,
    personal_chat,
)
from tests.support.app_process import run_app
from tests.support.cardquery import (
    BOOKING_FORM_INPUTS,
    action_titled,
    book_action,
    book_actions,
    execute_actions,
    facts,
    headline,
    input_values,
    inputs,
    text_of,
    walk,
)

TODAY = "2026-11-23"
# A free slot later today: 10:00-10:30 in New York is 15:00-15:30 UTC.
SLOT = {"date": TODAY, "start": "10:00", "duration": "30", "attendees": "4"}
SLOT_START_UTC = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
BOOKING_COLUMNS = (
    "id, attempt_id, tenant_id, user_id, user_name, room_id, room_name, building, floor_label, "
    "subject, start_at, end_at, attendees, online_meeting, join_url, time_zone, status, "
    "cancel_comment, cancelled_at, created_at"
)
NO_MEETING_LINK = "Teams meeting links need the Microsoft 365 room directory"
APPROVAL_ROOMS = [room for room in load_rooms_file(DEFAULT_ROOMS_FILE) if room.needs_approval]


def assert_booking_form(card: dict[str, Any]) -> dict[str, str]:
    """The card is the booking form; its input values as Teams would send them."""
    assert headline(card) == "Book a room"
    assert list(inputs(card)) == list(BOOKING_FORM_INPUTS)
    assert [a["verb"] for a in execute_actions(card) if a["title"] == "Find rooms"] == [
        Verb.BOOKING_SEARCH.value
    ]
    return input_values(card)


def offer_block(card: dict[str, Any], room_name: str) -> dict[str, Any]:
    """The container that offers one room in a results card."""
    found = [
        node
        for node in walk(card)
        if node.get("type") == "Container"
        and node.get("items")
        and str(node["items"][0].get("text", "")).split(" · ")[0] == room_name
    ]
    assert len(found) == 1, f"expected one block for {room_name} in {text_of(card)}"
    return found[0]


def offered_rooms(card: dict[str, Any]) -> list[str]:
    """Names of the rooms a results card lists, bookable or not."""
    return [
        str(node["items"][0]["text"]).split(" · ")[0]
        for node in walk(card)
        if node.get("type") == "Container"
        and node.get("separator")
        and node.get("items")
        and node["items"][0].get("weight") == "Bolder"
    ]


# --- installing -----------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["conversationUpdate", "installationUpdate"])
async def test_install_in_personal_chat_welcomes_once_and_stores_the_reference(
    frontdesk: Frontdesk, first: str
) -> None:
    update = make_members_added(service_url=frontdesk.service_url)
    install = make_installation_update(service_url=frontdesk.service_url)
    one, other = (update, install) if first == "conversationUpdate" else (install, update)

    cards = []
    for activity in (one, other, one):  # Teams sends both, and redelivers one of them
        cards += await frontdesk.send(activity)

    assert len(cards) == 1
    assert headline(cards[0]).startswith("Welcome")
    assert {a["verb"] for a in execute_actions(cards[0])} == {
        c.verb.value for c in COMMANDS if c.on_cards and not c.needs_online_meetings
    }
    [sent] = frontdesk.connector.sent
    assert sent.conversation_id == personal_chat(MEGAN).id
    assert sent.json["recipient"]["id"] == MEGAN.id
    [row] = frontdesk.rows("SELECT * FROM conversation_ref")
    assert row["conversation_id"] == personal_chat(MEGAN).id
    assert (row["tenant_id"], row["user_id"]) == (TENANT_ID, MEGAN.aad_object_id)
    assert row["conversation_type"] == "personal"
    assert row["service_url"] == frontdesk.service_url
    assert row["welcomed_at"] is not None
    reference = json.loads(row["reference"])
    assert reference["serviceUrl"] == frontdesk.service_url
    assert reference["channelId"] == "msteams"
    assert reference["conversation"]["id"] == personal_chat(MEGAN).id
    assert reference["bot"]["id"] == BOT_ID
    assert reference["user"]["aadObjectId"] == MEGAN.aad_object_id


async def test_install_in_a_group_chat_posts_help_once(frontdesk: Frontdesk) -> None:
    su = frontdesk.service_url
    cards = await frontdesk.send(make_members_added(service_url=su, conversation=GROUP_CHAT))
    cards += await frontdesk.send(make_installation_update(service_url=su, conversation=GROUP_CHAT))
    # Someone else joining the chat later is no reason to post again.
    cards += await frontdesk.send(
        make_members_added(service_url=su, conversation=GROUP_CHAT, members=[ALEX.id])
    )

    assert [headline(card) for card in cards] == ["Frontdesk help"]
    [row] = frontdesk.rows("SELECT * FROM conversation_ref")
    assert (row["conversation_id"], row["conversation_type"]) == (GROUP_CHAT.id, "groupChat")
    assert row["user_id"] is None


async def test_uninstall_sends_nothing(frontdesk: Frontdesk) -> None:
    cards = await frontdesk.send(
        make_installation_update(service_url=frontdesk.service_url, action="remove")
    )

    assert cards == []
    assert frontdesk.connector.sent == []


# --- commands -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["book", "BOOK A ROOM", "  Book a room! ", "new booking"])
async def test_book_command_answers_with_the_booking_form(frontdesk: Frontdesk, text: str) -> None:
    card = await frontdesk.say(text)

    values = assert_booking_form(card)
    assert values["duration"] == "30"
    assert values["attendees"] == "1"
    assert values["online"] == "true"
    assert values["end"] == values["subject"] == values["building"] == values["floor"] == ""
    [sent] = frontdesk.connector.sent
    assert sent.is_reply and sent.conversation_id == personal_chat(MEGAN).id


async def test_book_with_a_mention_in_a_group_chat(frontdesk: Frontdesk) -> None:
    activity = make_group_mention("book", service_url=frontdesk.service_url)
    assert activity["text"] == "<at>Frontdesk</at> book"

    [card] = await frontdesk.send(activity)

    values = assert_booking_form(card)
    assert (values["date"], values["start"]) == (TODAY, "08:30")  # the London client's zone
    [sent] = frontdesk.connector.sent
    assert sent.conversation_id == GROUP_CHAT.id
    assert sent.activity_id == activity["id"]


@pytest.mark.parametrize(
    ("zone", "day", "start", "label"),
    [
        ("America/New_York", TODAY, "03:30", "America/New York"),
        ("Europe/London", TODAY, "08:30", "Europe/London"),
        ("Pacific/Honolulu", "2026-11-22", "22:30", "Pacific/Honolulu"),
    ],
)
async def test_form_defaults_to_today_and_the_next_half_hour_in_the_client_zone(
    frontdesk: Frontdesk, zone: str, day: str, start: str, label: str
) -> None:
    card = await frontdesk.say("book", time_zone=zone)

    values = assert_booking_form(card)
    assert (values["date"], values["start"]) == (day, start)
    assert f"Times are in {label}." in text_of(card)


@pytest.mark.parametrize("text", ["reserve the moon", "what is 2+2?"])
async def test_unknown_text_gets_help_that_quotes_it(frontdesk: Frontdesk, text: str) -> None:
    card = await frontdesk.say(text)

    assert headline(card) == "Frontdesk help"
    assert f'didn\'t understand "{text}"' in text_of(card)


async def test_message_without_text_gets_plain_help(frontdesk: Frontdesk) -> None:
    card = await frontdesk.say("")

    assert headline(card) == "Frontdesk help"
    assert "didn't understand" not in text_of(card)


async def test_help_lists_every_command_with_a_button_that_works(frontdesk: Frontdesk) -> None:
    card = await frontdesk.say("help")

    assert headline(card) == "Frontdesk help"
    assert "didn't understand" not in text_of(card)
    for command in COMMANDS:
        if command.needs_online_meetings:
            assert command.phrases[0] not in facts(card)  # not offered without Microsoft 365
            continue
        assert facts(card)[command.phrases[0]] == command.description
        if not command.on_cards:
            continue  # help itself, and sign out (typed only)
        button = action_titled(card, command.title)
        assert button["verb"] == command.verb.value
    assert headline(await frontdesk.press(action_titled(card, "Book a room"))) == "Book a room"
    assert headline(await frontdesk.press(action_titled(card, "My bookings"))) == "My bookings"
    assert "Sign out" not in [a["title"] for a in execute_actions(card)]


async def test_sign_out_in_local_mode_says_there_is_nothing_to_sign_out(
    frontdesk: Frontdesk,
) -> None:
    card = await frontdesk.say("Sign out")

    assert headline(card) == "Nothing to sign out of"


# --- time zones -----------------------------------------------------------------------------


async def test_client_zone_is_remembered_for_activities_without_one(
    frontdesk: Frontdesk,
) -> None:
    await frontdesk.say("hello", time_zone="Europe/London")
    [profile] = frontdesk.rows("SELECT * FROM user_profile")
    assert profile["time_zone"] == "Europe/London"
    assert profile["user_id"] == MEGAN.aad_object_id

    card = await frontdesk.say("book", time_zone=None)
    assert input_values(card)["start"] == "08:30"
    results = await frontdesk.search({**SLOT, "start": "10:00"}, time_zone=None)

    assert "Mon 23 Nov 2026, 10:00–10:30" in text_of(results)
    booked = await frontdesk.press(book_actions(results)[0], time_zone=None)
    assert facts(booked)["Time zone"] == "Europe/London"
    [booking] = frontdesk.bookings()
    assert booking.start_at == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


async def test_a_new_client_zone_replaces_the_remembered_one(frontdesk: Frontdesk) -> None:
    await frontdesk.say("hello", time_zone="Europe/London")
    await frontdesk.say("hello", time_zone="America/New_York")

    card = await frontdesk.say("book", time_zone=None)

    assert input_values(card)["start"] == "03:30"
    [profile] = frontdesk.rows("SELECT time_zone FROM user_profile")
    assert profile["time_zone"] == "America/New_York"


async def test_default_zone_without_any_client_zone(frontdesk: Frontdesk) -> None:
    card = await frontdesk.say("book", time_zone=None, user=ALEX)

    values = assert_booking_form(card)
    assert (values["date"], values["start"]) == (TODAY, "17:30")  # 17:05 in Tokyo
    assert f"Times are in {DEFAULT_ZONE}." in text_of(card)
    [profile] = frontdesk.rows("SELECT time_zone FROM user_profile")
    assert profile["time_zone"] is None


async def test_unknown_client_zone_is_ignored(frontdesk: Frontdesk) -> None:
    await frontdesk.say("hello", time_zone="Europe/London")

    card = await frontdesk.say("book", time_zone="Mars/Olympus_Mons")

    assert input_values(card)["start"] == "08:30"
    [profile] = frontdesk.rows("SELECT time_zone FROM user_profile")
    assert profile["time_zone"] == "Europe/London"


# --- booking, on SQLite and PostgreSQL --------------------------------------------------------


class TestBookingOnEachDatabase(OnEachDatabase):
    async def test_install_events_arriving_together_welcome_once(
        self, frontdesk: Frontdesk
    ) -> None:
        update = make_members_added(service_url=frontdesk.service_url)
        install = make_installation_update(service_url=frontdesk.service_url)

        answers = await asyncio.gather(
            *(frontdesk.post(activity) for activity in (update, install, update, install))
        )

        assert {status for status, _ in answers} == {201}
        assert [headline(card) for card in frontdesk.connector.cards()] == ["Welcome to Frontdesk!"]
        assert len(frontdesk.rows("SELECT * FROM conversation_ref")) == 1

    async def test_search_book_and_redelivered_clicks_book_once(self, frontdesk: Frontdesk) -> None:
        results = await frontdesk.search(SLOT)
        assert headline(results) == "Free rooms"
        assert "Mon 23 Nov 2026, 10:00–10:30 · 4 people" in text_of(results)
        books = book_actions(results)
        assert books, text_of(results)
        room_name = books[0]["title"].removeprefix("Book ")
        click = frontdesk.press_activity(books[0])

        status, body = await frontdesk.post(click)

        assert status == 200
        assert body["statusCode"] == 200
        assert body["type"] == CARD_TYPE
        confirmation = body["value"]
        assert headline(confirmation) == "Room booked"
        assert "Your room is booked." in text_of(confirmation)
        assert facts(confirmation)["Room"] == room_name
        assert facts(confirmation)["When"] == "Mon 23 Nov 2026, 10:00–10:30"
        assert facts(confirmation)["Time zone"] == "America/New York"
        assert NO_MEETING_LINK in text_of(confirmation)
        booking_id = action_titled(confirmation, "Cancel booking")["data"]["booking"]

        # Teams redelivers the same invoke, then retries with a new activity id.
        again = card_of(*await frontdesk.post(click))
        retried = await frontdesk.press(books[0])

        assert again == confirmation
        assert retried == confirmation
        [booking] = frontdesk.bookings()
        assert booking.id == booking_id
        assert booking.room_name == room_name
        assert (booking.tenant_id, booking.user_id) == (TENANT_ID, MEGAN.aad_object_id)
        assert (booking.start_at, booking.attendees) == (SLOT_START_UTC, 4)
        assert booking.attempt_id == books[0]["data"]["attempt"]
        assert len(frontdesk.connector.sent) == 1  # the form; invokes answer in the HTTP body

    async def test_simultaneous_clicks_on_one_button_book_once(self, frontdesk: Frontdesk) -> None:
        # A race: each round books another slot, to give it several chances to show.
        for hour in ("10:00", "11:00", "12:00", "13:00", "14:00"):
            results = await frontdesk.search({**SLOT, "start": hour})
            button = book_actions(results)[0]
            click = frontdesk.press_activity(button)
            # Teams redelivers the same invoke; the user clicks again (new ids). All at once.
            clicks = [click, click, click] + [frontdesk.press_activity(button) for _ in range(5)]

            answers = await asyncio.gather(*(frontdesk.post(activity) for activity in clicks))

            cards = [card_of(*answer) for answer in answers]
            assert [headline(card) for card in cards] == ["Room booked"] * len(clicks), hour
            ids = {action_titled(card, "Cancel booking")["data"]["booking"] for card in cards}
            assert len(ids) == 1, hour
        assert len(frontdesk.bookings()) == 5

    async def test_two_users_clicking_one_room_at_once(self, frontdesk: Frontdesk) -> None:
        megan_results = await frontdesk.search(SLOT)
        alex_results = await frontdesk.search(SLOT, user=ALEX)
        room = book_actions(megan_results)[0]["title"].removeprefix("Book ")

        megan, alex = await asyncio.gather(
            frontdesk.press(book_action(megan_results, room)),
            frontdesk.press(book_action(alex_results, room), user=ALEX),
        )

        assert sorted([headline(megan), headline(alex)]) == ["Free rooms", "Room booked"]
        loser = megan if headline(megan) == "Free rooms" else alex
        assert f"{room} was just booked by someone else" in text_of(loser)
        [booking] = frontdesk.bookings()
        assert booking.room_name == room

    async def test_the_database_refuses_an_overlapping_booking(self, frontdesk: Frontdesk) -> None:
        await frontdesk.press(book_actions(await frontdesk.search(SLOT))[0])

        # The PostgreSQL exclusion constraint only covers rows WHERE status = 'confirmed'.
        assert frontdesk.rows("SELECT status FROM booking") == [{"status": "confirmed"}]
        if frontdesk.engine.dialect.name != "postgresql":
            return  # SQLite serialises writers instead (BEGIN IMMEDIATE)
        with pytest.raises(IntegrityError, match="booking_room_no_overlap"):
            frontdesk.rows(
                f"INSERT INTO booking ({BOOKING_COLUMNS}) SELECT :id, :attempt, "
                f"{BOOKING_COLUMNS.split(', ', 2)[2]} FROM booking",
                id=str(uuid.uuid4()),
                attempt=str(uuid.uuid4()),
            )

    async def test_a_room_someone_else_just_took(self, frontdesk: Frontdesk) -> None:
        alex_results = await frontdesk.search(SLOT, user=ALEX)
        megan_results = await frontdesk.search(SLOT)
        room = book_actions(megan_results)[0]["title"].removeprefix("Book ")
        assert room in offered_rooms(alex_results)
        await frontdesk.press(book_action(megan_results, room))

        alex_again = await frontdesk.search(SLOT, user=ALEX)
        late = await frontdesk.press(book_action(alex_results, room), user=ALEX)

        assert room not in offered_rooms(alex_again)
        assert headline(late) == "Free rooms"
        assert f"{room} was just booked by someone else" in text_of(late)
        assert room not in offered_rooms(late)
        other = book_actions(late)[0]
        booked = await frontdesk.press(other, user=ALEX)
        assert facts(booked)["Room"] == other["title"].removeprefix("Book ")
        rows = [(b.user_id, b.room_name) for b in frontdesk.bookings()]
        assert sorted(rows) == sorted(
            [(MEGAN.aad_object_id, room), (ALEX.aad_object_id, facts(booked)["Room"])]
        )

    async def test_my_bookings_cancel_with_a_comment(self, frontdesk: Frontdesk) -> None:
        results = await frontdesk.search(SLOT)
        booked = await frontdesk.press(book_actions(results)[0])
        room = facts(booked)["Room"]

        listing = await frontdesk.say("my bookings")
        assert headline(listing) == "My bookings"
        assert room in text_of(listing)
        cancel = action_titled(listing, "Cancel")

        ask = await frontdesk.press(cancel)
        assert headline(ask) == "Cancel this booking?"
        assert inputs(ask)["comment"]["label"]
        yes = action_titled(ask, "Yes, cancel it")

        done = await frontdesk.press(yes, {"comment": "Plans changed"})

        assert headline(done) == "Booking cancelled"
        assert "Cancelled. The room is free again." in text_of(done)
        assert "Comment: Plans changed" in text_of(done)
        [booking] = frontdesk.bookings()
        assert booking.status == BookingStatus.CANCELLED
        assert booking.cancel_comment == "Plans changed"
        assert room in offered_rooms(await frontdesk.search(SLOT))
        assert "You have no upcoming bookings." in text_of(await frontdesk.say("my bookings"))

        # A second Cancel, from the old list card or the old confirm card.
        assert "already cancelled" in text_of(await frontdesk.press(cancel))
        assert "already cancelled" in text_of(await frontdesk.press(yes, {"comment": "Again"}))
        [booking] = frontdesk.bookings()
        assert booking.cancel_comment == "Plans changed"

    async def test_another_user_cannot_see_or_cancel_a_booking(self, frontdesk: Frontdesk) -> None:
        results = await frontdesk.search(SLOT)
        booked = await frontdesk.press(book_actions(results)[0])
        room = facts(booked)["Room"]
        cancel = action_titled(booked, "Cancel booking")
        ask = await frontdesk.press(cancel)
        yes = action_titled(ask, "Yes, cancel it")
        keep = action_titled(ask, "Keep it")

        alex_list = await frontdesk.say("my bookings", user=ALEX)
        alex_cancel = await frontdesk.press(cancel, user=ALEX)
        alex_yes = await frontdesk.press(yes, {"comment": "mine now"}, user=ALEX)
        alex_show = await frontdesk.press(keep, user=ALEX)

        assert room not in text_of(alex_list)
        assert "You have no upcoming bookings." in text_of(alex_list)
        for card in (alex_cancel, alex_yes, alex_show):
            assert headline(card) == "Not found"
            assert room not in text_of(card)
        [booking] = frontdesk.bookings()
        assert booking.status == BookingStatus.CONFIRMED
        assert booking.cancel_comment is None
        assert booking.user_id == MEGAN.aad_object_id


async def test_a_too_long_cancel_comment_asks_again(frontdesk: Frontdesk) -> None:
    booked = await frontdesk.press(book_actions(await frontdesk.search(SLOT))[0])
    ask = await frontdesk.press(action_titled(booked, "Cancel booking"))

    card = await frontdesk.press(action_titled(ask, "Yes, cancel it"), {"comment": "x" * 501})

    assert headline(card) == "Cancel this booking?"
    assert "comment is too long" in text_of(card)
    [booking] = frontdesk.bookings()
    assert booking.status == BookingStatus.CONFIRMED


async def test_a_booking_without_a_teams_meeting_has_no_meeting_note(frontdesk: Frontdesk) -> None:
    results = await frontdesk.search({**SLOT, "online": "false"})

    booked = await frontdesk.press(book_actions(results)[0])

    assert headline(booked) == "Room booked"
    assert NO_MEETING_LINK not in text_of(booked)
    [booking] = frontdesk.bookings()
    assert booking.online_meeting is False


async def test_tenant_comes_from_the_conversation_when_channel_data_has_none(
    frontdesk: Frontdesk,
) -> None:
    activity = make_message("hello", service_url=frontdesk.service_url)
    del activity["channelData"]["tenant"]
    assert activity["conversation"]["tenantId"] == TENANT_ID

    await frontdesk.send(activity)

    [profile] = frontdesk.rows("SELECT tenant_id FROM user_profile")
    assert profile["tenant_id"] == TENANT_ID


# --- mistakes the user can make ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"start": "02:00"}, "already passed", id="start-in-the-past"),
        pytest.param({"end": "09:00"}, "end time must be after the start", id="end-before-start"),
        pytest.param({"end": "19:00"}, "at most 8 h", id="too-long"),
        pytest.param({"duration": "600"}, "at most 8 h", id="too-long-duration"),
        pytest.param({"attendees": "500"}, "No room holds 500 people", id="too-many-people"),
        pytest.param({"date": "2027-03-01"}, "90 days ahead", id="date-too-far-ahead"),
        pytest.param({"date": "garbage"}, "YYYY-MM-DD", id="date-garbage"),
        pytest.param({"start": "25:99"}, "HH:MM", id="start-garbage"),
        pytest.param({"attendees": "abc"}, "whole number", id="attendees-not-a-number"),
        pytest.param({"attendees": "0"}, "At least one person", id="attendees-zero"),
        pytest.param({"equipment": "display,jetpack"}, "equipment from the list", id="jetpack"),
        pytest.param({"building": "Atlantis"}, "building from the list", id="unknown-building"),
        pytest.param({"floor": "99"}, "floor from the list", id="unknown-floor"),
    ],
)
async def test_bad_input_shows_the_form_again_with_a_message_and_the_inputs(
    frontdesk: Frontdesk, change: dict[str, str], message: str
) -> None:
    form = {**SLOT, "subject": "Quarterly review", "online": "false", **change}

    card = await frontdesk.search(form)

    values = assert_booking_form(card)
    assert message in text_of(card)
    for key, value in form.items():
        if key == "attendees" and not value.isdigit():
            assert values[key] == ""  # a number input cannot show text
        else:
            assert values[key] == value, key
    assert frontdesk.rows("SELECT id FROM booking_draft") == []
    assert frontdesk.bookings() == []


async def test_a_slot_that_started_meanwhile_cannot_be_booked(frontdesk: Frontdesk) -> None:
    results = await frontdesk.search({**SLOT, "start": "03:30"})  # 08:30 UTC
    frontdesk.clock.advance(minutes=40)

    card = await frontdesk.press(book_actions(results)[0])

    assert headline(card) == "Book a room"
    assert "already started" in text_of(card)
    assert frontdesk.bookings() == []


# --- nothing fits, approvals ----------------------------------------------------------------


async def test_nothing_fits_offers_other_times_and_other_rooms(frontdesk: Frontdesk) -> None:
    twelve_here = {**SLOT, "attendees": "12", "building": "Harbour House"}
    taken = await frontdesk.search(twelve_here, user=ALEX)
    # Harbour is the only room in Harbour House for 12 that needs no approval: Alex takes it.
    assert [action["title"] for action in book_actions(taken)] == ["Book Harbour"]
    await frontdesk.press(book_action(taken, "Harbour"), user=ALEX)

    results = await frontdesk.search(twelve_here)

    shown = text_of(results)
    # Only the Atrium and the Boardroom (both need approval) are free for the slot.
    assert "Only rooms that need their owners' approval are free for the whole slot." in shown
    assert "Free at other times that day" in shown
    assert "Other rooms free at that time" in shown
    other_times = [a for a in book_actions(results) if " at " in a["title"]]
    other_rooms = [a for a in book_actions(results) if " at " not in a["title"]]
    assert other_times and other_rooms
    assert all(a["title"].startswith("Book Harbour at ") for a in other_times)

    at_other_time = await frontdesk.press(other_times[0])
    in_other_room = await frontdesk.press(other_rooms[0])

    hour = other_times[0]["title"].removeprefix("Book Harbour at ")
    assert headline(at_other_time) == "Room booked"
    assert facts(at_other_time)["Room"] == "Harbour"
    assert facts(at_other_time)["When"].startswith(f"Mon 23 Nov 2026, {hour}–")
    assert headline(in_other_room) == "Room booked"
    assert facts(in_other_room)["Room"] == other_rooms[0]["title"].removeprefix("Book ")
    assert facts(in_other_room)["When"] == "Mon 23 Nov 2026, 10:00–10:30"
    megan = [b for b in frontdesk.bookings() if b.user_id == MEGAN.aad_object_id]
    assert len(megan) == 2


async def test_rooms_needing_approval_are_labelled_with_a_request_button(
    frontdesk: Frontdesk,
) -> None:
    assert APPROVAL_ROOMS, "the demo office has rooms that need approval"

    results = await frontdesk.search({**SLOT, "attendees": "12"})

    for room in APPROVAL_ROOMS:
        block = offer_block(results, room.name)
        assert "Needs its owners' approval" in text_of({"body": [block]})
        assert [a["title"] for a in execute_actions(block)] == [f"Request {room.name}"]
    assert all(
        room.name not in a["title"] for a in book_actions(results) for room in APPROVAL_ROOMS
    )


@pytest.mark.parametrize("room", APPROVAL_ROOMS, ids=lambda room: room.name)
async def test_a_click_on_a_room_needing_approval_only_holds_it(
    frontdesk: Frontdesk, room: Any
) -> None:
    results = await frontdesk.search({**SLOT, "attendees": "12"})
    real = book_actions(results)[0]
    # The same attempt with the approval room's id (as its Request button carries).
    card = await frontdesk.press({**real, "data": {**real["data"], "room": room.id}})

    assert headline(card) == "Room held for approval"
    assert f"{room.name} is booked only with its owners' approval" in text_of(card)
    [booking] = frontdesk.bookings()
    assert (booking.room_id, booking.approval) == (room.id, BookingApproval.PENDING)
    [request] = frontdesk.rows("SELECT category_id, booking_id FROM service_request")
    assert request == {"category_id": "room-booking", "booking_id": booking.id}


async def test_stale_or_foreign_ids_get_a_not_found_card(frontdesk: Frontdesk) -> None:
    results = await frontdesk.search(SLOT)
    real = book_actions(results)[0]

    unknown_attempt = await frontdesk.press(
        {**real, "data": {**real["data"], "attempt": str(uuid.uuid4())}}
    )
    unknown_room = await frontdesk.press({**real, "data": {**real["data"], "room": "hh-nowhere"}})
    others_attempt = await frontdesk.press(real, user=ALEX)
    unknown_booking = card_of(
        *await frontdesk.invoke(Verb.BOOKING_SHOW.value, {"booking": str(uuid.uuid4())})
    )

    for card in (unknown_attempt, unknown_room, others_attempt, unknown_booking):
        assert headline(card) == "Not found"
    assert frontdesk.bookings() == []


# --- malformed invokes ----------------------------------------------------------------------

SOME_ID = "9f0c2b5e-3a4d-4e6f-8a1b-2c3d4e5f6a7b"


@pytest.mark.parametrize(
    ("verb", "data"),
    [
        pytest.param("booking.teleport", {}, id="unknown-verb"),
        pytest.param(None, {"booking": SOME_ID}, id="missing-verb"),
        pytest.param("", {}, id="empty-verb"),
        pytest.param(7, {}, id="verb-not-text"),
        pytest.param("booking.search", "date=2026-11-23", id="data-is-text"),
        pytest.param("booking.search", [SLOT], id="data-is-a-list"),
        pytest.param("booking.book", {"attempt": "not-a-uuid", "room": "hh-anchor"}, id="attempt"),
        pytest.param("booking.book", {"attempt": SOME_ID.upper(), "room": "hh-anchor"}, id="upper"),
        pytest.param("booking.book", {"attempt": SOME_ID}, id="room-missing"),
        pytest.param("booking.book", {"attempt": SOME_ID, "room": "../../etc"}, id="room-path"),
        pytest.param("booking.cancel", {"booking": 12}, id="booking-id-number"),
        pytest.param("booking.show", {}, id="booking-id-missing"),
        pytest.param(
            "booking.cancelConfirm", {"booking": SOME_ID, "comment": {"x": 1}}, id="comment-object"
        ),
    ],
)
async def test_malformed_invokes_answer_status_code_400(
    frontdesk: Frontdesk, verb: Any, data: Any
) -> None:
    status, body = await frontdesk.invoke(verb, data)

    assert status == 200
    assert body["statusCode"] == 400
    assert body["type"] == ERROR_TYPE
    assert body["value"]["code"] == "BadRequest"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("not an object", id="value-text"),
        pytest.param({"trigger": "manual"}, id="no-action"),
        pytest.param({"action": "booking.list", "trigger": "manual"}, id="action-text"),
        pytest.param([1, 2], id="value-list"),
    ],
)
async def test_malformed_invoke_values_answer_status_code_400(
    frontdesk: Frontdesk, value: Any
) -> None:
    activity = make_card_action("x", service_url=frontdesk.service_url, value=value)

    status, body = await frontdesk.post(activity)

    assert status == 200
    assert (body["statusCode"], body["type"]) == (400, ERROR_TYPE)


async def test_a_book_click_for_a_room_too_small_for_the_search_is_malformed(
    frontdesk: Frontdesk,
) -> None:
    results = await frontdesk.search({**SLOT, "attendees": "8"})
    real = book_actions(results)[0]
    forged = frontdesk.press_activity({**real, "data": {**real["data"], "room": "hh-buoy"}})

    status, body = await frontdesk.post(forged)

    assert status == 200
    assert (body["statusCode"], body["type"]) == (400, ERROR_TYPE)
    assert frontdesk.bookings() == []


@pytest.mark.parametrize("app_env", [{"ALLOWED_TENANTS": "11111111-2222-3333-4444-555555555555"}])
async def test_a_tenant_that_is_not_allowed_gets_nothing(
    frontdesk: Frontdesk, app_env: dict[str, str]
) -> None:
    message_status, _ = await frontdesk.post(
        make_message("book", service_url=frontdesk.service_url)
    )
    status, body = await frontdesk.invoke("booking.list", {})

    assert message_status in (200, 201)
    assert frontdesk.connector.sent == []
    assert status == 200
    assert (body["statusCode"], body["type"]) == (400, ERROR_TYPE)
    assert frontdesk.rows("SELECT * FROM conversation_ref") == []
    assert frontdesk.rows("SELECT * FROM user_profile") == []


# --- HTTP -----------------------------------------------------------------------------------


async def test_non_json_body_is_400(frontdesk: Frontdesk) -> None:
    assert (await frontdesk.post_raw(b"{not json", "application/json"))[0] == 400
    assert (await frontdesk.post_raw(b"\xff\xfe\x00", "application/json"))[0] == 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_wrong_content_type_is_415(frontdesk: Frontdesk, content_type: str) -> None:
    body = json.dumps(make_message("book", service_url=frontdesk.service_url)).encode()

    status, _ = await frontdesk.post_raw(body, content_type)

    assert status == 415
    assert frontdesk.connector.sent == []


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param([], id="list"),
        pytest.param("message", id="string"),
        pytest.param({}, id="empty-object"),
        pytest.param({"type": 5}, id="type-number"),
        pytest.param({"text": "book"}, id="no-type"),
    ],
)
async def test_json_that_is_not_an_activity_is_400(frontdesk: Frontdesk, payload: Any) -> None:
    status, _ = await frontdesk.post(payload)

    assert status == 400
    assert frontdesk.connector.sent == []


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param({"from": "Megan"}, id="from-is-text"),
        pytest.param({"entities": {"type": "clientInfo"}}, id="entities-object"),
        pytest.param({"timestamp": "yesterday"}, id="timestamp-garbage"),
    ],
)
async def test_activity_with_fields_of_the_wrong_shape_is_400_not_500(
    frontdesk: Frontdesk, broken: dict[str, Any]
) -> None:
    activity = {**make_message("book", service_url=frontdesk.service_url), **broken}

    status, _ = await frontdesk.post(activity)

    assert status == 400
    assert frontdesk.connector.sent == []


async def test_body_too_large_is_413(frontdesk: Frontdesk) -> None:
    activity = make_message("x" * 300_000, service_url=frontdesk.service_url)

    status, _ = await frontdesk.post(activity)

    assert status == 413


async def test_health_and_readiness(frontdesk: Frontdesk) -> None:
    health = await frontdesk.client.get("/healthz")
    ready = await frontdesk.client.get("/readyz")

    assert (health.status, await health.json()) == (200, {"status": "alive"})
    assert (ready.status, await ready.json()) == (200, {"status": "ready"})


async def test_get_on_messages_is_405(frontdesk: Frontdesk) -> None:
    response = await frontdesk.client.get("/api/messages")

    assert response.status == 405


# --- start-up -------------------------------------------------------------------------------


def test_local_mode_refuses_a_non_loopback_host(tmp_path: Path) -> None:
    result = run_app(tmp_path, HOST="0.0.0.0", MICROSOFT_APP_ID="")

    assert result.returncode == 2, result.stderr
    assert "MICROSOFT_APP_ID" in result.stderr
    assert "HOST" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_time_zone_is_named(tmp_path: Path) -> None:
    result = run_app(tmp_path, HOST="127.0.0.1", TIMEZONE="Mars/Olympus_Mons")

    assert result.returncode == 2, result.stderr
    assert "TIMEZONE" in result.stderr
    assert "Traceback" not in result.stderr


# --- privacy in shared chats, reinstalling ------------------------------------------------------


async def test_my_bookings_typed_in_a_group_chat_answers_with_a_private_button(
    frontdesk: Frontdesk,
) -> None:
    booked = await frontdesk.search(
        {"date": TODAY, "start": "10:00", "duration": "30", "attendees": "2"}
    )
    await frontdesk.press(book_actions(booked)[0])

    [card] = await frontdesk.send(
        make_group_mention("my bookings", service_url=frontdesk.service_url)
    )

    text = text_of(card)
    [booking] = frontdesk.bookings()
    assert "private" in text
    assert booking.room_name not in text and booking.subject not in text
    [button] = execute_actions(card)
    assert button["verb"] == Verb.BOOKING_LIST
    # The answer to a card action is shown to the person who pressed it only.
    answer = await frontdesk.press(button, conversation=GROUP_CHAT)
    assert headline(answer) == "My bookings"
    assert len([a for a in execute_actions(answer) if a["verb"] == Verb.BOOKING_CANCEL]) == 1


async def test_book_typed_in_a_group_chat_still_answers_with_the_form(
    frontdesk: Frontdesk,
) -> None:
    [card] = await frontdesk.send(make_group_mention("book", service_url=frontdesk.service_url))

    assert_booking_form(card)


async def test_reinstalling_after_an_uninstall_welcomes_again(frontdesk: Frontdesk) -> None:
    su = frontdesk.service_url

    first = await frontdesk.send(make_installation_update(service_url=su))
    removed = await frontdesk.send(make_installation_update(service_url=su, action="remove"))
    again = await frontdesk.send(make_installation_update(service_url=su))

    assert removed == []
    assert [headline(card)[:7] for card in first + again] == ["Welcome", "Welcome"]


async def test_readyz_is_503_when_the_schema_is_behind(frontdesk: Frontdesk) -> None:
    with frontdesk.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'older'")

    ready = await frontdesk.client.get("/readyz")

    assert ready.status == 503
    assert "migration" in (await ready.json())["problem"]
    assert (await frontdesk.client.get("/healthz")).status == 200


async def test_change_search_brings_back_the_form_as_filled(frontdesk: Frontdesk) -> None:
    chosen = {
        "date": TODAY, "start": "11:00", "duration": "60", "attendees": "5",
        "building": "Riverside", "equipment": "display", "subject": "Budget",
    }  # fmt: skip
    results = await frontdesk.search(chosen)

    form = await frontdesk.press(action_titled(results, "Change search"))

    values = assert_booking_form(form)
    assert {key: values[key] for key in chosen} == chosen


async def test_meet_now_without_microsoft_365_says_what_it_needs(frontdesk: Frontdesk) -> None:
    card = await frontdesk.say("meet now")

    assert headline(card) == "Meet now"
    assert "DIRECTORY=graph" in text_of(card)


# --- repeating bookings ---------------------------------------------------------------------


async def test_a_weekly_booking_with_a_taken_date_offers_choices(frontdesk: Frontdesk) -> None:
    weekly = {
        "date": TODAY, "start": "10:00", "duration": "30", "attendees": "4",
        "building": "Riverside", "floor": "2", "repeat": "weekly", "occurrences": "3",
    }  # fmt: skip
    # Someone holds the second date in the room that will come first.
    single = await frontdesk.search({**weekly, "repeat": "none", "date": "2026-11-30"}, user=ALEX)
    first_room = book_actions(single)[0]["data"]["room"]
    taken = await frontdesk.press(book_actions(single)[0], user=ALEX)
    assert "Room booked" in text_of(taken)

    results = await frontdesk.search(weekly)
    assert "every week, 3 times" in text_of(results)
    [series_button] = [
        a for a in execute_actions(results, Verb.BOOKING_SERIES) if a["data"]["room"] == first_room
    ]
    plan = await frontdesk.press(series_button)
    assert "taken on 1 of 3 dates" in text_of(plan)
    booked = await frontdesk.press(action_titled(plan, "Use other rooms for the taken dates"))
    again = await frontdesk.press(action_titled(plan, "Use other rooms for the taken dates"))

    assert "3 dates booked" in text_of(booked) and "3 dates booked" in text_of(again)
    mine = [b for b in frontdesk.bookings() if b.user_id == MEGAN.aad_object_id]
    assert len(mine) == 3 and len({b.series_id for b in mine}) == 1
    assert sorted(b.room_id == first_room for b in mine) == [False, True, True]
    done = await frontdesk.press(action_titled(booked, "Cancel all"))
    assert "3 upcoming dates were cancelled" in text_of(done)
    assert "no upcoming bookings" in text_of(await frontdesk.say("my bookings"))


async def test_an_unexpected_failure_in_a_click_still_answers_with_a_card(
    frontdesk: Frontdesk,
) -> None:
    with frontdesk.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE booking_draft")  # the database breaks under us

    status, body = await frontdesk.invoke(Verb.BOOKING_SEARCH.value, dict(SLOT))

    assert status == 200
    assert (body["statusCode"], body["type"]) == (200, CARD_TYPE)
    assert headline(body["value"]) == "Something went wrong"
    assert "booking_draft" not in json.dumps(body)  # never the error text
