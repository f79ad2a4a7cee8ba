"""Every card the bot can send: schema 1.5, the official renderer, our invariants, snapshots."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.actions import _error_card
from bot.admin import NotAdmin
from bot.approvals.errors import (
    AlreadyDecided,
    FormError,
    NotAnApprover,
    PolicyError,
    UnknownItem,
)
from bot.approvals.service import ROOM_BOOKING, RequestBusy, RequestNotFound
from bot.approvals.state import ApprovalState
from bot.booking import BookingService, PendingBooking, SeriesOccurrence, SeriesResult
from bot.commands import COMMANDS, Verb
from bot.errors import (
    FrontdeskError,
    InputError,
    MalformedAction,
    NotAllowed,
    NotFound,
    RoomNeedsApproval,
    RoomTaken,
)
from bot.identity.errors import (
    AssertionExpired,
    ConsentRequired,
    IdentityError,
    SignInRequired,
    TokenServiceError,
)
from bot.models import Equipment, FormValues, Offer, Repeat, Room, SearchQuery, SearchResult
from bot.storage.tables import (
    Booking,
    BookingApproval,
    BookingStatus,
    FulfilmentStatus,
    ServiceRequestStatus,
)
from cards.booking import (
    NO_ONLINE_MEETINGS,
    booking_form,
    bookings_list_card,
    cancel_confirm_card,
    confirmation_card,
    meeting_now_card,
    results_card,
    series_booked_card,
    series_plan_card,
    working_card,
)
from cards.common import message_card
from cards.help import help_card, welcome_card
from cards.requests import final_notice, fulfilment_notice
from tests.cards.admin_cards import admin_cards
from tests.cards.request_cards import FORM, STAGES, make_request, request_cards
from tests.storage.conftest import make_booking as storage_booking
from tests.support.cardcheck import (
    invariant_problems,
    renderer_warnings,
    schema_path,
    schema_problems,
)
from tests.support.cardquery import BOOKING_FORM_INPUTS, headline, text_of
from tests.support.cardquery import execute_actions as actions_of
from tests.support.cardquery import inputs as inputs_of
from tests.support.prereq import node_available, require

GOLDEN = Path(__file__).parent / "golden"
KNOWN_VERBS = {verb.value for verb in Verb}
ZONE = ZoneInfo("Europe/Berlin")
ATTEMPT = "11111111-2222-4333-8444-555555555555"
OTHER_ATTEMPT = "11111111-2222-4333-8444-666666666666"
BOOKING_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"

COMPASS = Room(
    id="hh-compass",
    name="Compass",
    email="compass@contoso.example",
    building="Harbour House",
    floor=2,
    floor_label="Floor 2",
    capacity=6,
    equipment=frozenset({Equipment.DISPLAY, Equipment.WHITEBOARD}),
)
BOARDROOM = Room(
    id="hh-boardroom",
    name="Boardroom",
    email="boardroom@contoso.example",
    building="Harbour House",
    floor=3,
    floor_label="Floor 3",
    capacity=16,
    equipment=frozenset({Equipment.VIDEO}),
    wheelchair_accessible=True,
    needs_approval=True,
)
WILLOW = Room(
    id="rs-willow",
    name="Willow",
    email="willow@contoso.example",
    building="Riverside",
    floor=1,
    floor_label="Ground floor",
    capacity=10,
    equipment=frozenset(Equipment),
    wheelchair_accessible=True,
)
ROOMS = [COMPASS, BOARDROOM, WILLOW]
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
END = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
QUERY = SearchQuery(
    start=START,
    end=END,
    attendees=5,
    subject="Planning",
    online_meeting=True,
    time_zone=ZONE,
    building="Harbour House",
    equipment=frozenset({Equipment.DISPLAY}),
)
WEEK = timedelta(days=7)
CONSENT_URL = "https://login.microsoftonline.com/tenant-1/adminconsent?client_id=app-1"
SERIES_QUERY = SearchQuery(
    start=START,
    end=END,
    attendees=5,
    subject="Weekly sync",
    online_meeting=True,
    time_zone=ZONE,
    repeat=Repeat.WEEKLY,
    count=4,
)
DEFAULTS = FormValues(
    date="2026-11-23",
    start="10:00",
    duration="30",
    end="",
    attendees="1",
    building="",
    floor="",
    equipment="",
    subject="",
    online_meeting=True,
)


def make_booking(**changes: Any) -> Booking:
    """Ada's booking of Compass for START-END (a storage row, as the cards get it)."""
    values: dict[str, Any] = {
        "id": BOOKING_ID,
        "attempt_id": ATTEMPT,
        "user_name": "Ada",
        "room_name": COMPASS.name,
        "building": COMPASS.building,
        "floor_label": COMPASS.floor_label,
        "attendees": 5,
        "online_meeting": True,
        "time_zone": ZONE.key,
        "created_at": START,
        **changes,
    }
    return storage_booking(START, END, room_id=COMPASS.id, user_id="user-a", **values)


POLICY_ERROR = PolicyError(
    policy_id="catering", stage_id="manager", stage_name="Manager", reason="no manager known"
)


def all_cards() -> dict[str, dict[str, Any]]:
    """One of each card the bot sends, in each of its states."""
    offers = [Offer(room=room, attempt_id=ATTEMPT, start=START, end=END) for room in ROOMS]
    later = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    nothing_fits = SearchResult(
        query=QUERY,
        attempt_id=ATTEMPT,
        offers=[Offer(room=BOARDROOM, attempt_id=ATTEMPT, start=START, end=END)],
        other_times=[
            Offer(room=COMPASS, attempt_id=OTHER_ATTEMPT, start=later, end=later.replace(hour=12))
        ],
        other_rooms=[Offer(room=WILLOW, attempt_id=OTHER_ATTEMPT, start=START, end=END)],
    )
    errors: list[FrontdeskError] = [
        NotFound("That booking was not found among yours."),
        RoomNeedsApproval("Boardroom"),
        NotAllowed("You cannot do that."),
        FrontdeskError("unexpected"),
        ConsentRequired(CONSENT_URL),
        AssertionExpired(),
        IdentityError("could not get a token (secret detail)"),
        POLICY_ERROR,
        RequestBusy("Others are updating this request right now. Please try again."),
    ]
    cards = {
        "welcome": welcome_card(user_name="Ada"),
        "welcome_anonymous": welcome_card(),
        "help": help_card(),
        "help_not_understood": help_card(not_understood="make me a sandwich"),
        "form_default": booking_form(
            DEFAULTS, rooms=ROOMS, time_zone=ZONE, online_meetings_available=False
        ),
        "form_graph": booking_form(
            DEFAULTS, rooms=ROOMS, time_zone=ZONE, online_meetings_available=True
        ),
        "form_error": booking_form(
            FormValues(
                date="2026-11-23",
                start="07:00",
                duration="45",
                end="",
                attendees="abc",
                building="Riverside",
                floor="1",
                equipment="video,display",
                subject="Retro",
                online_meeting=False,
            ),
            rooms=ROOMS,
            time_zone=ZONE,
            error="That start time has already passed. Pick a time from now on.",
            online_meetings_available=False,
        ),
        "results": results_card(
            SearchResult(query=QUERY, attempt_id=ATTEMPT, offers=offers), time_zone=ZONE
        ),
        "results_taken": results_card(
            SearchResult(query=QUERY, attempt_id=ATTEMPT, offers=offers[2:]),
            time_zone=ZONE,
            message="Compass was just booked by someone else. Here is what is still free.",
        ),
        "results_nothing_fits": results_card(nothing_fits, time_zone=ZONE),
        "results_nothing_at_all": results_card(
            SearchResult(query=QUERY, attempt_id=ATTEMPT, offers=[]), time_zone=ZONE
        ),
        "confirmation_local": confirmation_card(
            make_booking(),
            time_zone=ZONE,
            online_meetings_available=False,
            message="Your room is booked.",
        ),
        "confirmation_join_link": confirmation_card(
            make_booking(join_url="https://teams.microsoft.com/l/meetup-join/abc"),
            time_zone=ZONE,
            online_meetings_available=True,
        ),
        "confirmation_no_link": confirmation_card(
            make_booking(), time_zone=ZONE, online_meetings_available=True
        ),
        "confirmation_link_repaired": confirmation_card(
            make_booking(
                join_url="https://teams.microsoft.com/l/meetup-join/def", join_url_repaired=True
            ),
            time_zone=ZONE,
            online_meetings_available=True,
        ),
        "confirmation_no_meeting": confirmation_card(
            make_booking(online_meeting=False), time_zone=ZONE, online_meetings_available=False
        ),
        "confirmation_room_pending": confirmation_card(
            make_booking(room_response="none", event_id="AAMk-1"),
            time_zone=ZONE,
            online_meetings_available=True,
            message="Your room is booked.",
            refresh_user_id="29:megan",
        ),
        "confirmation_room_accepted": confirmation_card(
            make_booking(room_response="accepted", join_url="https://teams.microsoft.com/l/x"),
            time_zone=ZONE,
            online_meetings_available=True,
            refresh_user_id="29:megan",
        ),
        "room_declined": confirmation_card(
            make_booking(room_response="declined", status=BookingStatus.DECLINED),
            time_zone=ZONE,
            online_meetings_available=True,
        ),
        "bookings_graph": bookings_list_card(
            [
                make_booking(room_response="accepted"),
                make_booking(
                    id=OTHER_ATTEMPT, room_response="declined", status=BookingStatus.DECLINED
                ),
            ],
            time_zone=ZONE,
        ),
        "cancelled": confirmation_card(
            make_booking(status=BookingStatus.CANCELLED, cancel_comment="Plans changed"),
            time_zone=ZONE,
            online_meetings_available=False,
            message="Cancelled. The room is free again.",
        ),
        "cancel_confirm": cancel_confirm_card(make_booking(), time_zone=ZONE),
        "cancel_confirm_error": cancel_confirm_card(
            make_booking(), time_zone=ZONE, error="The comment is too long."
        ),
        "confirmation_held_for_approval": confirmation_card(
            make_booking(approval=BookingApproval.PENDING),
            time_zone=ZONE,
            online_meetings_available=False,
            message="Held for you until Room owners approve it; you will hear back here.",
            refresh_user_id="29:megan",
        ),
        "confirmation_room_not_approved": confirmation_card(
            make_booking(
                approval=BookingApproval.REJECTED,
                status=BookingStatus.CANCELLED,
                cancel_comment="The room's owners did not approve it. Board meeting that day.",
            ),
            time_zone=ZONE,
            online_meetings_available=False,
        ),
        "bookings_with_a_held_room": bookings_list_card(
            [make_booking(approval=BookingApproval.PENDING), make_booking(id=OTHER_ATTEMPT)],
            time_zone=ZONE,
        ),
        "bookings_empty": bookings_list_card([], time_zone=ZONE),
        "bookings": bookings_list_card(
            [make_booking(), make_booking(id=OTHER_ATTEMPT, room_name="Willow")], time_zone=ZONE
        ),
        "meeting_now": meeting_now_card(
            "https://teams.microsoft.com/l/meetup-join/now", start=START, end=END, time_zone=ZONE
        ),
        "meeting_now_unavailable": meeting_now_card(None, start=START, end=END, time_zone=ZONE),
        "welcome_graph": welcome_card(user_name="Ada", online_meetings=True),
        "help_graph": help_card(online_meetings=True),
        "results_series": results_card(
            SearchResult(
                query=SERIES_QUERY,
                attempt_id=ATTEMPT,
                offers=[
                    Offer(room=WILLOW, attempt_id=ATTEMPT, start=START, end=END, free_count=4),
                    Offer(room=COMPASS, attempt_id=ATTEMPT, start=START, end=END, free_count=3),
                ],
            ),
            time_zone=ZONE,
        ),
        "series_plan": series_plan_card(
            [
                SeriesOccurrence(0, START, END, COMPASS, free=True),
                SeriesOccurrence(1, START + WEEK, END + WEEK, WILLOW, free=False),
                SeriesOccurrence(2, START + 2 * WEEK, END + 2 * WEEK, None, free=False),
            ],
            attempt_id=ATTEMPT,
            room=COMPASS,
            time_zone=ZONE,
        ),
        "series_booked": series_booked_card(
            SeriesResult(
                booked=[
                    make_booking(series_id=ATTEMPT),
                    make_booking(
                        id=OTHER_ATTEMPT,
                        series_id=ATTEMPT,
                        start_at=START + WEEK,
                        end_at=END + WEEK,
                        room_name="Willow",
                    ),
                ],
                skipped=[SeriesOccurrence(2, START + 2 * WEEK, END + 2 * WEEK, None, free=False)],
            ),
            time_zone=ZONE,
            online_meetings_available=False,
        ),
        "turn_error": message_card("Something went wrong", "Sorry, I could not finish that."),
        "booking_working": working_card(
            Verb.BOOKING_BOOK,
            time_zone=ZONE,
            pending=PendingBooking("Compass", START, END),
            refresh_data={"attempt": ATTEMPT, "room": COMPASS.id},
            refresh_user_id="29:megan",
        ),
        "working": working_card(Verb.BOOKING_CANCEL_CONFIRM, time_zone=ZONE),
    }
    for error in errors:
        cards[f"error_{type(error).__name__}"] = _error_card(error)
    cards.update(request_cards())
    cards.update(admin_cards())
    return cards


CARDS = all_cards()


# -- the three checks --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_matches_schema_1_5(name: str) -> None:
    require(schema_path() is not None, "../shared/schemas/adaptive-card-1.5.json is missing")

    assert schema_problems(CARDS[name]) == []


@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_keeps_our_invariants(name: str) -> None:
    assert invariant_problems(CARDS[name], KNOWN_VERBS) == []


def test_official_renderer_reports_no_warnings() -> None:
    require(node_available(), "node and tests/js/node_modules are needed (run make test)")

    warnings = renderer_warnings(CARDS)

    assert {name: found for name, found in warnings.items() if found} == {}
    assert set(warnings) == set(CARDS)


@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_matches_its_snapshot(name: str) -> None:
    path = GOLDEN / f"{name}.json"
    rendered = json.dumps(CARDS[name], indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("FRONTDESK_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"no snapshot: run with FRONTDESK_UPDATE_GOLDEN=1 to create {path}"
    assert rendered == path.read_text(encoding="utf-8")


def test_every_card_is_small_enough_for_teams() -> None:
    # Teams refuses messages over about 100 KB; keep well under.
    sizes = {name: len(json.dumps(card).encode()) for name, card in CARDS.items()}

    assert max(sizes.values()) < 40_000, sizes


# -- what each card says and does ---------------------------------------------------------------
def test_form_has_every_input_labelled_with_sensible_defaults() -> None:
    inputs = inputs_of(CARDS["form_default"])

    assert list(inputs) == list(BOOKING_FORM_INPUTS)
    assert all(node.get("label") for node in inputs.values())
    assert (inputs["date"]["value"], inputs["start"]["value"]) == ("2026-11-23", "10:00")
    assert (inputs["duration"]["value"], inputs["attendees"]["value"]) == ("30", 1)
    assert inputs["online"]["value"] == "true"
    assert inputs["equipment"]["isMultiSelect"] is True
    assert [a["verb"] for a in actions_of(CARDS["form_default"])] == [
        "booking.search",
        "booking.list",
    ]
    assert NO_ONLINE_MEETINGS in text_of(CARDS["form_default"])
    assert NO_ONLINE_MEETINGS not in text_of(CARDS["form_graph"])


def test_form_with_a_mistake_shows_it_and_keeps_the_inputs() -> None:
    card = CARDS["form_error"]
    inputs = inputs_of(card)

    assert "already passed" in text_of(card)
    assert inputs["start"]["value"] == "07:00"
    assert inputs["duration"]["value"] == "45"
    assert inputs["building"]["value"] == "Riverside"
    assert inputs["equipment"]["value"] == "video,display"
    assert inputs["subject"]["value"] == "Retro"
    assert inputs["online"]["value"] == "false"


def test_results_offer_a_book_button_per_bookable_room_carrying_ids_only() -> None:
    card = CARDS["results"]
    books = [a for a in actions_of(card) if a["verb"] == Verb.BOOKING_BOOK]

    assert [(a["title"], a["data"]) for a in books] == [
        ("Book Compass", {"attempt": ATTEMPT, "room": COMPASS.id}),
        ("Request Boardroom", {"attempt": ATTEMPT, "room": BOARDROOM.id}),
        ("Book Willow", {"attempt": ATTEMPT, "room": WILLOW.id}),
    ]
    assert "Needs its owners' approval" in text_of(card)
    assert "Mon 23 Nov 2026, 10:00–11:00" in text_of(card)  # Berlin time
    assert card["msteams"] == {"width": "Full"}


def test_nothing_fits_offers_other_times_and_rooms_one_click_away() -> None:
    card = CARDS["results_nothing_fits"]
    books = [a for a in actions_of(card) if a["verb"] == Verb.BOOKING_BOOK]
    text = text_of(card)

    assert "Only rooms that need their owners' approval are free" in text
    assert "Free at other times that day" in text
    assert "Other rooms free at that time" in text
    assert {a["data"]["room"] for a in books} == {COMPASS.id, WILLOW.id, BOARDROOM.id}
    assert "Request Boardroom" in [a["title"] for a in books]
    assert "Book Compass at 12:00" in [a["title"] for a in books]
    assert "Try another day" in text_of(CARDS["results_nothing_at_all"])


def test_confirmation_shows_the_booking_and_offers_cancel() -> None:
    card = CARDS["confirmation_local"]
    text = text_of(card)

    assert "Room booked" in text and "Your room is booked." in text
    assert "Compass" in text and "Harbour House, Floor 2" in text
    assert "Mon 23 Nov 2026, 10:00–11:00" in text and "Europe/Berlin" in text
    assert NO_ONLINE_MEETINGS in text
    cancel = [a for a in actions_of(card) if a["verb"] == Verb.BOOKING_CANCEL]
    assert [a["data"] for a in cancel] == [{"booking": BOOKING_ID}]
    assert "Join the Teams meeting" in text_of(CARDS["confirmation_join_link"])
    assert "could not add one" in text_of(CARDS["confirmation_no_link"])
    assert "Frontdesk created one" in text_of(CARDS["confirmation_link_repaired"])
    assert "Frontdesk created one" not in text_of(CARDS["confirmation_join_link"])
    assert NO_ONLINE_MEETINGS not in text_of(CARDS["confirmation_no_meeting"])


def test_the_rooms_answer_is_shown_and_refreshed_while_pending() -> None:
    pending = CARDS["confirmation_room_pending"]
    accepted = CARDS["confirmation_room_accepted"]

    assert "Room's answer: Pending" in text_of(pending)
    assert pending["refresh"]["userIds"] == ["29:megan"]
    assert pending["refresh"]["action"]["verb"] == Verb.BOOKING_SHOW
    assert pending["refresh"]["action"]["data"] == {"booking": BOOKING_ID}
    assert "Room's answer: Accepted" in text_of(accepted)
    assert "refresh" not in accepted
    assert "Room's answer" not in text_of(CARDS["confirmation_local"])


def test_a_held_room_says_so_and_refreshes_until_its_owners_decide() -> None:
    held = CARDS["confirmation_held_for_approval"]
    rejected = CARDS["confirmation_room_not_approved"]

    assert "Room held for approval" in text_of(held)
    assert "booked only with its owners' approval" in text_of(held)
    assert held["refresh"]["action"]["verb"] == Verb.BOOKING_SHOW
    assert "Cancel booking" in {a["title"] for a in actions_of(held)}
    assert "Room not approved" in text_of(rejected)
    assert "Board meeting that day." in text_of(rejected)
    assert "Cancel booking" not in {a["title"] for a in actions_of(rejected)}
    listing = text_of(CARDS["bookings_with_a_held_room"])
    assert listing.count("waiting for the room owners' approval") == 1


def test_a_declined_room_offers_other_rooms_not_cancel() -> None:
    card = CARDS["room_declined"]
    verbs = {a["verb"] for a in actions_of(card)}

    assert "Room declined" in text_of(card)
    assert Verb.BOOKING_ALTERNATIVES in verbs and Verb.BOOKING_CANCEL not in verbs
    listing = CARDS["bookings_graph"]
    assert "Room's answer: Declined" in text_of(listing)
    assert [a["verb"] for a in actions_of(listing)][:2] == [
        Verb.BOOKING_CANCEL,
        Verb.BOOKING_ALTERNATIVES,
    ]


def test_cancelled_booking_has_no_cancel_button() -> None:
    card = CARDS["cancelled"]

    assert "Booking cancelled" in text_of(card)
    assert "Plans changed" in text_of(card)
    assert Verb.BOOKING_CANCEL not in {a["verb"] for a in actions_of(card)}


def test_cancel_confirmation_asks_for_an_optional_comment() -> None:
    card = CARDS["cancel_confirm"]
    comment = inputs_of(card)["comment"]

    assert comment["label"] == "Comment (optional)"
    assert not comment.get("isRequired")
    assert [a["verb"] for a in actions_of(card)] == ["booking.cancelConfirm", "booking.show"]


def test_help_lists_every_command_with_a_button() -> None:
    card = CARDS["help"]
    verbs = {a["verb"] for a in actions_of(card)}

    for command in COMMANDS:
        assert command.phrases[0] in text_of(CARDS["help_graph"])
        if not command.needs_online_meetings:
            assert command.phrases[0] in text_of(card)
    assert {Verb.BOOKING_START, Verb.BOOKING_LIST} <= verbs
    assert "make me a sandwich" in text_of(CARDS["help_not_understood"])


def test_series_cards_show_each_date_and_the_choices() -> None:
    results = CARDS["results_series"]
    plan = CARDS["series_plan"]
    booked = CARDS["series_booked"]

    assert "every week, 4 times" in text_of(results)
    assert "Free all 4 times" in text_of(results) and "Free 3 of 4 times" in text_of(results)
    assert {a["verb"] for a in actions_of(results)} >= {Verb.BOOKING_SERIES}
    assert "Taken; Willow is free" in text_of(plan)
    assert "Taken; no other room fits" in text_of(plan)
    choices = [(a["verb"], a["data"].get("substitute")) for a in actions_of(plan)]
    assert choices == [
        (Verb.BOOKING_SERIES_BOOK, False),
        (Verb.BOOKING_SERIES_BOOK, True),
        (Verb.BOOKING_START, None),
    ]
    assert "2 dates booked" in text_of(booked) and "Not booked" in text_of(booked)
    [cancel_all] = [a for a in actions_of(booked) if a["verb"] == Verb.BOOKING_CANCEL_SERIES]
    assert cancel_all["data"] == {"series": ATTEMPT}


def test_meet_now_is_offered_only_with_microsoft_365() -> None:
    assert Verb.MEETING_NOW in {a["verb"] for a in actions_of(CARDS["welcome_graph"])}
    assert Verb.MEETING_NOW in {a["verb"] for a in actions_of(CARDS["help_graph"])}
    assert Verb.MEETING_NOW not in {a["verb"] for a in actions_of(CARDS["help"])}
    assert "Join the Teams meeting" in text_of(CARDS["meeting_now"])
    assert "DIRECTORY=graph" in text_of(CARDS["meeting_now_unavailable"])


def test_sign_in_problems_say_what_to_do_next() -> None:
    consent = text_of(CARDS["error_ConsentRequired"])
    assert "admin" in consent and CONSENT_URL in consent
    assert "sign out" in text_of(CARDS["error_AssertionExpired"])
    assert "secret detail" not in text_of(CARDS["error_IdentityError"])


def test_error_cards_never_show_exception_text() -> None:
    assert "unexpected" not in text_of(CARDS["error_FrontdeskError"])
    assert "approval" in text_of(CARDS["error_RoomNeedsApproval"])
    assert "catering" not in text_of(CARDS["error_PolicyError"])  # the policy's id is for admins


def _subclasses(base: type[FrontdeskError]) -> set[type[FrontdeskError]]:
    found = set()
    for sub in base.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


# The Teams edge answers these itself: statusCode 400, and a sign-in request.
_EDGE_ERRORS = {MalformedAction, UnknownItem, SignInRequired}


def test_every_domain_error_is_answered_with_its_own_card() -> None:
    """No domain error falls through to "Something went wrong": a new error type needs a card
    (bot.actions._error_card) and a line here."""
    one_of_each: list[FrontdeskError] = [
        InputError("That slot has already started. Search again for a later time."),
        FormError("field.guests", "Guests: this is required."),
        NotFound("That booking was not found among yours."),
        RequestNotFound(),
        RoomTaken("Compass"),
        RoomNeedsApproval("Boardroom"),
        NotAllowed("You cannot do that."),
        NotAnApprover("00000000-0000-0000-0000-000000000101", "manager", "not an approver"),
        NotAdmin(),
        POLICY_ERROR,
        AlreadyDecided(
            "00000000-0000-0000-0000-000000000101",
            datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
            item_id="room",
            stage_id="room-owners",
            approved=True,
        ),
        RequestBusy("Others are deciding this request right now. Please try again."),
        IdentityError("could not get a token"),
        ConsentRequired(CONSENT_URL),
        AssertionExpired(),
        TokenServiceError(503, operation="GetToken"),
    ]
    assert {type(error) for error in one_of_each} == _subclasses(FrontdeskError) - _EDGE_ERRORS

    for error in one_of_each:
        card = _error_card(error)
        assert headline(card) != "Something went wrong", type(error).__name__
        assert "00000000-0000-0000-0000-000000000101" not in text_of(card), type(error).__name__


def test_the_form_module_still_builds_from_the_service_defaults(
    booking_service: BookingService,
) -> None:
    values = booking_service.default_form(ZONE)

    card = booking_form(values, rooms=ROOMS, time_zone=ZONE, online_meetings_available=False)

    assert inputs_of(card)["date"]["value"] == values.date


def test_the_admin_card_counts_lists_and_says_how_to_export() -> None:
    card = CARDS["admin_overview"]
    facts = {
        f"{fact['title']}": fact["value"]
        for node in card["body"]
        if node.get("type") == "FactSet"
        for fact in node["facts"]
    }

    assert (facts["Starting today"], facts["Confirmed"], facts["Cancelled"]) == ("14", "11", "2")
    assert (facts["Under 1 day"], facts["1 to 3 days"], facts["Over 3 days"]) == ("4", "1", "2")
    assert facts["Not started 24 h after approval"] == "1"
    assert "Waiting for approval: 7" in text_of(card) and "and 5 more." in text_of(card)
    assert "Facilities desk since Fri 20 Nov 2026 09:05 · Grace Hopper, " in text_of(card)
    reassign = [a for a in actions_of(card) if a["verb"] == Verb.ADMIN_REASSIGN_FORM]
    assert [a["data"] for a in reassign] == [
        {"request": "cccccccc-dddd-4eee-8fff-000000000001"},
        {"request": "dddddddd-eeee-4fff-8000-000000000002"},
        {},  # the one that takes the number typed in
    ]
    assert "number" in inputs_of(card)
    assert (
        "python app.py audit-export --tenant 72f988bf-0000-4e3a-9b1c-2d7cd011db47 "
        "--since 2026-10-24 --output audit.csv" in text_of(card)
    )
    assert "Nothing waits" not in text_of(CARDS["admin_overview_empty"])
    assert not [a for a in actions_of(CARDS["admin_overview_empty"]) if a["data"].get("request")]


def test_the_reassign_form_asks_whom_to_replace_and_a_guid_for_the_new_approver() -> None:
    card = CARDS["admin_reassign"]
    inputs = inputs_of(card)

    assert [c["value"] for c in inputs["from"]["choices"]] == [
        "00000000-0000-0000-0000-000000000101",
        "00000000-0000-0000-0000-000000000105",
    ]
    assert inputs["from"]["value"] == "00000000-0000-0000-0000-000000000101"
    assert inputs["to"]["isRequired"] and inputs["to"]["regex"]
    assert [(a["verb"], a["data"]) for a in actions_of(card)] == [
        (
            "admin.reassign",
            {"request": "cccccccc-dddd-4eee-8fff-000000000001", "stage": "facilities"},
        ),
        ("admin.show", {}),
    ]
    again = inputs_of(CARDS["admin_reassign_error"])
    assert (again["to"]["value"], again["comment"]["value"]) == ("grace@contoso.com", "On leave")
    assert "Entra object id" in text_of(CARDS["admin_reassign_error"])


def test_the_admin_command_is_on_the_admins_help_only() -> None:
    assert Verb.ADMIN_SHOW in {a["verb"] for a in actions_of(CARDS["help_admin"])}
    assert "admin: Today's bookings" in text_of(CARDS["help_admin"])
    for name in ("help", "help_graph", "welcome", "help_not_understood"):
        assert Verb.ADMIN_SHOW not in {a["verb"] for a in actions_of(CARDS[name])}
        assert "admin:" not in text_of(CARDS[name])


def test_the_working_card_says_what_it_books_and_asks_again_for_the_user() -> None:
    card = CARDS["booking_working"]

    assert headline(card) == "Booking Compass"
    assert "this can take a moment" in text_of(card)
    assert "Mon 23 Nov 2026, 10:00–11:00" in text_of(card)
    assert actions_of(card) == [card["refresh"]["action"]]  # no button: nothing to press
    assert card["refresh"]["action"]["verb"] == Verb.BOOKING_BOOK
    assert card["refresh"]["userIds"] == ["29:megan"]
    assert "refresh" not in CARDS["working"]


REQUEST_STATE = ApprovalState.start(STAGES, FORM.items)


@pytest.mark.parametrize(
    ("category", "status", "title"),
    [
        ("catering", ServiceRequestStatus.PENDING, None),
        ("catering", ServiceRequestStatus.APPROVED, "Request approved"),
        ("catering", ServiceRequestStatus.PARTIALLY_APPROVED, "Request partly approved"),
        ("catering", ServiceRequestStatus.REJECTED, "Request rejected"),
        ("catering", ServiceRequestStatus.CANCELLED, None),
        (ROOM_BOOKING, ServiceRequestStatus.APPROVED, "Room approved"),
        (ROOM_BOOKING, ServiceRequestStatus.PARTIALLY_APPROVED, None),
        (ROOM_BOOKING, ServiceRequestStatus.REJECTED, "Room not approved"),
    ],
)
def test_the_requester_is_told_when_the_approval_ends(
    category: str, status: ServiceRequestStatus, title: str | None
) -> None:
    notice = final_notice(make_request(REQUEST_STATE, category_id=category, status=status))

    assert (notice[0] if notice else None) == title


def test_the_requester_is_told_who_moved_the_fulfilment_on() -> None:
    def told(status: FulfilmentStatus, by: str = "Lynne") -> tuple[str, str]:
        return fulfilment_notice(make_request(REQUEST_STATE, fulfilment=status), by)

    assert told(FulfilmentStatus.DONE) == ("Request done", "Lynne marked it done.")
    assert told(FulfilmentStatus.IN_PROGRESS, "") == (
        "Work started",
        "The fulfilment team started on it.",
    )
    assert told(FulfilmentStatus.WAITING)[0] == "Request updated"
