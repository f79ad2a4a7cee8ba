"""Booking cards: the form, the results, the confirmation, the list and cancelling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from microsoft_teams.cards import (
    CardElement,
    Choice,
    ChoiceSetInput,
    Column,
    ColumnSet,
    Container,
    DateInput,
    ExecuteAction,
    Fact,
    FactSet,
    NumberInput,
    OpenUrlAction,
    TextBlock,
    TextInput,
    TimeInput,
    ToggleInput,
)

from bot.booking import (
    DURATION_CHOICES,
    MAX_COMMENT,
    MAX_SUBJECT,
    PendingBooking,
    SeriesOccurrence,
    SeriesResult,
    duration_text,
)
from bot.commands import Verb
from bot.models import Equipment, FormValues, Offer, Repeat, Room, SearchResult
from bot.storage.tables import Booking, BookingApproval, BookingStatus
from cards.common import (
    Card,
    action,
    auto_refresh,
    buttons,
    format_span,
    heading,
    notice,
    render,
    zone_label,
)

NO_MEETING_NOW = (
    "Meet now makes a Teams meeting in your Microsoft 365 calendar, which needs the Microsoft 365 "
    "directory (DIRECTORY=graph)."
)
NO_ONLINE_MEETINGS = (
    "Teams meeting links need the Microsoft 365 room directory (DIRECTORY=graph). "
    "This booking holds the room only."
)


def booking_form(
    values: FormValues,
    *,
    rooms: Sequence[Room],
    time_zone: ZoneInfo,
    error: str | None = None,
    online_meetings_available: bool,
    max_occurrences: int = 12,
) -> Card:
    """The booking form, filled with defaults or with the user's inputs and a message."""
    buildings = sorted({room.building for room in rooms})
    floors = sorted({(room.floor, room.floor_label) for room in rooms})
    floor_choices: dict[int, str] = {}
    for number, label in floors:
        floor_choices.setdefault(number, label)
    durations = [Choice(title=duration_text(m), value=str(m)) for m in DURATION_CHOICES]
    if values.duration and values.duration not in {str(m) for m in DURATION_CHOICES}:
        durations.append(Choice(title=f"{values.duration} min", value=values.duration))
    body: list[CardElement] = [
        *heading("Book a room", f"Times are in {zone_label(time_zone)}."),
    ]
    if error:
        body.append(notice(error))
    body += [
        _side_by_side(
            DateInput(
                id="date",
                label="Date",
                value=values.date,
                is_required=True,
                error_message="Pick a date.",
            ),
            TimeInput(
                id="start",
                label="Start",
                value=values.start,
                is_required=True,
                error_message="Pick a start time.",
            ),
        ),
        _side_by_side(
            ChoiceSetInput(
                id="duration",
                label="Duration",
                value=values.duration or "30",
                choices=durations,
                style="compact",
            ),
            TimeInput(
                id="end",
                label="Or end time (optional)",
                value=values.end or None,
            ),
        ),
        NumberInput(
            id="attendees",
            label="Number of people",
            value=_number(values.attendees),
            min=1,
            is_required=True,
            error_message="Enter how many people attend (1 or more).",
        ),
        _side_by_side(
            ChoiceSetInput(
                id="building",
                label="Building (optional)",
                value=values.building or None,
                placeholder="Any building",
                choices=[Choice(title=name, value=name) for name in buildings],
                style="compact",
            ),
            ChoiceSetInput(
                id="floor",
                label="Floor (optional)",
                value=values.floor or None,
                placeholder="Any floor",
                choices=[
                    Choice(title=label, value=str(number))
                    for number, label in floor_choices.items()
                ],
                style="compact",
            ),
        ),
        ChoiceSetInput(
            id="equipment",
            label="Equipment (optional)",
            is_multi_select=True,
            value=values.equipment or None,
            choices=[Choice(title=item.label, value=item.value) for item in Equipment],
            style="expanded",
        ),
        _side_by_side(
            ChoiceSetInput(
                id="repeat",
                label="Repeat",
                value=values.repeat or Repeat.NONE.value,
                choices=[Choice(title=r.label, value=r.value) for r in Repeat],
                style="compact",
            ),
            NumberInput(
                id="occurrences",
                label="How many times (when repeating)",
                value=_number(values.occurrences),
                min=2,
                max=max_occurrences,
            ),
        ),
        TextInput(
            id="subject",
            label="Subject",
            value=values.subject or None,
            placeholder="Meeting",
            max_length=MAX_SUBJECT,
        ),
        ToggleInput(
            id="online",
            title="Add a Teams meeting",
            label="Online meeting",
            value="true" if values.online_meeting else "false",
            value_on="true",
            value_off="false",
        ),
    ]
    if not online_meetings_available:
        body.append(TextBlock(text=NO_ONLINE_MEETINGS, wrap=True, is_subtle=True, size="Small"))
    return render(
        body,
        actions=[
            action("Find rooms", Verb.BOOKING_SEARCH, style="positive"),
            action("My bookings", Verb.BOOKING_LIST),
        ],
        fallback_text="Book a room: this card needs a client that shows Adaptive Cards.",
    )


def _side_by_side(left: CardElement, right: CardElement) -> ColumnSet:
    """Two inputs in one row, of equal width."""
    return ColumnSet(
        columns=[Column(width="stretch", items=[left]), Column(width="stretch", items=[right])]
    )


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _room_facts(room: Room) -> str:
    parts = [f"{room.capacity} people", room.location]
    if room.equipment:
        parts.append(", ".join(e.label for e in sorted(room.equipment)))
    if room.wheelchair_accessible:
        parts.append("Step-free access")
    return " · ".join(parts)


def _offer_row(offer: Offer, time_zone: ZoneInfo, *, show_time: bool, title: str) -> Container:
    room = offer.room
    lines: list[CardElement] = [
        TextBlock(
            text=f"{room.name}"
            + (f" · {format_span(offer.start, offer.end, time_zone)}" if show_time else ""),
            weight="Bolder",
            wrap=True,
        ),
        TextBlock(text=_room_facts(room), wrap=True, is_subtle=True, spacing="None"),
    ]
    if room.needs_approval:
        lines.append(
            TextBlock(
                text="Needs its owners' approval: held for you until they decide.",
                wrap=True,
                color="Warning",
                spacing="None",
            )
        )
        if title:
            title = f"Request {room.name}"
    if not title:
        return Container(items=lines, separator=True)
    lines.append(
        buttons(
            action(
                title,
                Verb.BOOKING_BOOK,
                {"attempt": offer.attempt_id, "room": room.id},
                style="default" if room.needs_approval else "positive",
            )
        )
    )
    return Container(items=lines, separator=True)


def _series_offer_row(offer: Offer, count: int) -> Container:
    room = offer.room
    free = offer.free_count or 0
    when = f"Free all {count} times" if free == count else f"Free {free} of {count} times"
    return Container(
        separator=True,
        items=[
            TextBlock(text=room.name, weight="Bolder", wrap=True),
            TextBlock(text=_room_facts(room), wrap=True, is_subtle=True, spacing="None"),
            TextBlock(text=when, wrap=True, spacing="None"),
            buttons(
                action(
                    f"Book {room.name}",
                    Verb.BOOKING_SERIES,
                    {"attempt": offer.attempt_id, "room": room.id},
                    style="positive",
                )
            ),
        ],
    )


def results_card(
    result: SearchResult,
    *,
    time_zone: ZoneInfo,
    message: str | None = None,
) -> Card:
    """Rooms free for the slot, best fit first; alternatives when nothing fits."""
    query = result.query
    summary = (
        f"{format_span(query.start, query.end, time_zone)} · {query.attendees} "
        f"{'person' if query.attendees == 1 else 'people'}"
    )
    filters = []
    if query.building:
        filters.append(query.building)
    if query.floor is not None:
        filters.append(f"floor {query.floor}")
    if query.equipment:
        filters.append(", ".join(e.label.lower() for e in sorted(query.equipment)))
    if filters:
        summary += " · " + ", ".join(filters)
    if query.repeat is not Repeat.NONE:
        summary += f" · {query.repeat.label.lower()}, {query.count} times"
    body: list[CardElement] = [*heading("Free rooms", summary)]
    if message:
        body.append(notice(message, tone="warning"))
    bookable = [offer for offer in result.offers if not offer.room.needs_approval]
    if query.repeat is not Repeat.NONE:
        if not bookable:
            body.append(
                notice("No room that fits is free on any of those dates.", tone="attention")
            )
        for offer in bookable:
            body.append(_series_offer_row(offer, query.count))
    elif bookable:
        for offer in result.offers:
            body.append(
                _offer_row(offer, time_zone, show_time=False, title=f"Book {offer.room.name}")
            )
    else:
        # Only rooms that need approval (or none) are free: they can be requested, and the
        # rooms free without approval at other times or places are offered beside them.
        if not result.offers:
            body.append(notice("No room that fits is free for the whole slot.", tone="attention"))
        else:
            body.append(
                notice(
                    "Only rooms that need their owners' approval are free for the whole slot.",
                    tone="attention",
                )
            )
        for offer in result.offers:
            body.append(
                _offer_row(offer, time_zone, show_time=False, title=f"Book {offer.room.name}")
            )
        if result.other_times:
            body.append(
                TextBlock(
                    text="Free at other times that day", weight="Bolder", wrap=True, separator=True
                )
            )
            for offer in result.other_times:
                body.append(
                    _offer_row(
                        offer,
                        time_zone,
                        show_time=True,
                        title=f"Book {offer.room.name} at "
                        f"{offer.start.astimezone(time_zone):%H:%M}",
                    )
                )
        if result.other_rooms:
            body.append(
                TextBlock(
                    text="Other rooms free at that time (other building, floor or equipment)",
                    weight="Bolder",
                    wrap=True,
                    separator=True,
                )
            )
            for offer in result.other_rooms:
                body.append(
                    _offer_row(offer, time_zone, show_time=False, title=f"Book {offer.room.name}")
                )
        if not result.other_times and not result.other_rooms:
            body.append(
                TextBlock(
                    text="Nothing else is free that day. Try another day or fewer people.",
                    wrap=True,
                )
            )
    return render(
        body,
        actions=[action("Change search", Verb.BOOKING_START, {"attempt": result.attempt_id})],
        fallback_text=f"Free rooms for {summary}",
        full_width=True,
    )


def _booking_facts(booking: Booking, time_zone: ZoneInfo) -> FactSet:
    return FactSet(
        facts=[
            Fact(title="Room", value=booking.room_name),
            Fact(title="Where", value=f"{booking.building}, {booking.floor_label}"),
            Fact(title="When", value=format_span(booking.start_at, booking.end_at, time_zone)),
            Fact(title="Time zone", value=zone_label(time_zone)),
            Fact(title="People", value=str(booking.attendees)),
            Fact(title="Subject", value=booking.subject),
        ]
    )


def _meeting_line(booking: Booking, *, online_meetings_available: bool) -> TextBlock | None:
    if not booking.online_meeting:
        return None
    if booking.join_url:
        text = f"[Join the Teams meeting]({booking.join_url})"
        if booking.join_url_repaired:
            text += (
                "  \nOutlook gave this meeting no Teams link, so Frontdesk created one and "
                "added it to the invitation."
            )
        return TextBlock(text=text, wrap=True)
    if not online_meetings_available:
        return TextBlock(text=NO_ONLINE_MEETINGS, wrap=True, is_subtle=True)
    return TextBlock(
        text="Outlook gave this meeting no Teams link and Frontdesk could not add one. "
        "Add a Teams meeting to it in Outlook.",
        wrap=True,
        color="Warning",
    )


ROOM_ANSWERS = {
    "none": "Pending",
    "notResponded": "Pending",
    "tentativelyAccepted": "Tentative",
    "accepted": "Accepted",
    "declined": "Declined",
}


def room_answer(booking: Booking) -> str | None:
    """How the room answered the invitation, in words (None where rooms do not answer)."""
    if booking.room_response is None:
        return None
    return ROOM_ANSWERS.get(booking.room_response, "Pending")


def confirmation_card(
    booking: Booking,
    *,
    time_zone: ZoneInfo,
    online_meetings_available: bool,
    message: str | None = None,
    refresh_user_id: str | None = None,
) -> Card:
    """A booking as it stands: confirmed with Cancel, declined by the room, or cancelled.

    `refresh_user_id`: while the room has not answered, Teams refreshes this user's card.
    """
    cancelled = booking.status == BookingStatus.CANCELLED
    declined = booking.status == BookingStatus.DECLINED
    held = booking.approval == BookingApproval.PENDING and not cancelled and not declined
    title = "Booking cancelled" if cancelled else "Room declined" if declined else "Room booked"
    if held:
        title = "Room held for approval"
    elif cancelled and booking.approval == BookingApproval.REJECTED:
        title = "Room not approved"
    body: list[CardElement] = [*heading(title)]
    if held:
        body.append(
            notice(
                f"{booking.room_name} is booked only with its owners' approval. It is held for "
                "you while they decide; Frontdesk tells you here when they have.",
                tone="warning",
            )
        )
    if declined:
        body.append(
            notice(
                f"{booking.room_name} declined the invitation, so it is not held for you. "
                "The meeting is still in your calendar without a room.",
                tone="warning",
            )
        )
    elif message:
        body.append(notice(message, tone="good" if not cancelled else "warning"))
    facts = _booking_facts(booking, time_zone)
    answer = room_answer(booking)
    if answer is not None and not cancelled:
        assert facts.facts is not None
        facts.facts.append(Fact(title="Room's answer", value=answer))
    body.append(facts)
    refresh = None
    if cancelled:
        if booking.cancel_comment:
            body.append(
                TextBlock(text=f"Comment: {booking.cancel_comment}", wrap=True, is_subtle=True)
            )
        actions = [
            action("Book another room", Verb.BOOKING_START),
            action("My bookings", Verb.BOOKING_LIST),
        ]
    elif declined:
        actions = [
            action("Find other rooms", Verb.BOOKING_ALTERNATIVES, {"attempt": booking.attempt_id}),
            action("My bookings", Verb.BOOKING_LIST),
        ]
    else:
        line = _meeting_line(booking, online_meetings_available=online_meetings_available)
        if line is not None:
            body.append(line)
        actions = [
            action(
                "Cancel booking",
                Verb.BOOKING_CANCEL,
                {"booking": booking.id},
                style="destructive",
            ),
            # Services for this booking: the request is linked to it (its room and times).
            action("Order services", Verb.REQUEST_START, {"booking": booking.id}),
            action("My bookings", Verb.BOOKING_LIST),
        ]
        if refresh_user_id and (answer == "Pending" or held):
            refresh = auto_refresh(Verb.BOOKING_SHOW, {"booking": booking.id}, [refresh_user_id])
    return render(
        body,
        actions=actions,
        fallback_text=f"{title}: {booking.room_name}, "
        f"{format_span(booking.start_at, booking.end_at, time_zone)}",
        refresh=refresh,
    )


def cancel_confirm_card(booking: Booking, *, time_zone: ZoneInfo, error: str | None = None) -> Card:
    """Ask before cancelling; an optional comment goes with it."""
    body: list[CardElement] = [*heading("Cancel this booking?")]
    if error:
        body.append(notice(error))
    body += [
        _booking_facts(booking, time_zone),
        TextInput(
            id="comment",
            label="Comment (optional)",
            placeholder="Why you are cancelling",
            is_multiline=True,
            max_length=MAX_COMMENT,
        ),
    ]
    return render(
        body,
        actions=[
            action(
                "Yes, cancel it",
                Verb.BOOKING_CANCEL_CONFIRM,
                {"booking": booking.id},
                style="destructive",
            ),
            action("Keep it", Verb.BOOKING_SHOW, {"booking": booking.id}),
        ],
        fallback_text=f"Cancel {booking.room_name}?",
    )


def _answer_line(booking: Booking) -> list[CardElement]:
    if booking.approval == BookingApproval.PENDING:
        return [
            TextBlock(
                text="Held: waiting for the room owners' approval",
                wrap=True,
                spacing="None",
                color="Warning",
            )
        ]
    answer = room_answer(booking)
    if answer is None:
        return []
    return [
        TextBlock(
            text=f"Room's answer: {answer}",
            wrap=True,
            spacing="None",
            color="Warning" if answer == "Declined" else "Default",
        )
    ]


def _list_action(booking: Booking) -> ExecuteAction:
    if booking.status == BookingStatus.DECLINED:
        return action(
            "Find other rooms", Verb.BOOKING_ALTERNATIVES, {"attempt": booking.attempt_id}
        )
    return action("Cancel", Verb.BOOKING_CANCEL, {"booking": booking.id}, style="destructive")


def bookings_list_card(
    bookings: Sequence[Booking], *, time_zone: ZoneInfo, message: str | None = None
) -> Card:
    """The user's upcoming bookings, each with Cancel."""
    body: list[CardElement] = [*heading("My bookings", f"Upcoming, in {zone_label(time_zone)}.")]
    if message:
        body.append(notice(message, tone="good"))
    if not bookings:
        body.append(TextBlock(text="You have no upcoming bookings.", wrap=True))
    for booking in bookings:
        body.append(
            Container(
                separator=True,
                items=[
                    TextBlock(
                        text=f"{booking.room_name} · {booking.subject}", weight="Bolder", wrap=True
                    ),
                    TextBlock(
                        text=f"{format_span(booking.start_at, booking.end_at, time_zone)} · "
                        f"{booking.building}, {booking.floor_label}",
                        wrap=True,
                        is_subtle=True,
                        spacing="None",
                    ),
                    *_answer_line(booking),
                    buttons(_list_action(booking)),
                ],
            )
        )
    return render(
        body,
        actions=[action("Book a room", Verb.BOOKING_START)],
        fallback_text=f"My bookings: {len(bookings)} upcoming",
        full_width=True,
    )


def meeting_now_card(
    join_url: str | None, *, start: datetime, end: datetime, time_zone: ZoneInfo
) -> Card:
    """A Teams meeting to join right away, or why there is none."""
    if join_url is None:
        return render(
            [
                *heading("Meet now"),
                TextBlock(text=NO_MEETING_NOW, wrap=True),
            ],
            actions=[action("Book a room", Verb.BOOKING_START)],
            fallback_text="Meet now needs the Microsoft 365 directory.",
        )
    return render(
        [
            *heading("Your Teams meeting is ready", format_span(start, end, time_zone)),
            TextBlock(text=f"[Join the Teams meeting]({join_url})", wrap=True),
            TextBlock(
                text="Share the link with anyone you want to invite.", wrap=True, is_subtle=True
            ),
        ],
        actions=[OpenUrlAction(title="Join now", url=join_url)],
        fallback_text=f"Your Teams meeting: {join_url}",
    )


def series_plan_card(
    plan: Sequence[SeriesOccurrence], *, attempt_id: str, room: Room, time_zone: ZoneInfo
) -> Card:
    """Some dates of a repeating booking are taken: say which, and offer the choices."""
    free = [o for o in plan if o.free]
    taken = [o for o in plan if not o.free]
    with_other = [o for o in taken if o.room is not None]
    body: list[CardElement] = [
        *heading(
            f"{room.name} is taken on {len(taken)} of {len(plan)} dates",
            "Book the free dates, use other rooms for the taken ones, or change the search.",
        )
    ]
    lines = []
    for occurrence in plan:
        when = format_span(occurrence.start, occurrence.end, time_zone)
        if occurrence.free:
            lines.append(Fact(title=when, value=f"Free in {room.name}"))
        elif occurrence.room is not None:
            lines.append(Fact(title=when, value=f"Taken; {occurrence.room.name} is free"))
        else:
            lines.append(Fact(title=when, value="Taken; no other room fits"))
    body.append(FactSet(facts=lines))
    data = {"attempt": attempt_id, "room": room.id}
    actions = []
    if free:
        actions.append(
            action(
                f"Book the {len(free)} free dates",
                Verb.BOOKING_SERIES_BOOK,
                {**data, "substitute": False},
                style="positive",
            )
        )
    if with_other:
        actions.append(
            action(
                "Use other rooms for the taken dates",
                Verb.BOOKING_SERIES_BOOK,
                {**data, "substitute": True},
            )
        )
    actions.append(action("Change search", Verb.BOOKING_START, {"attempt": attempt_id}))
    return render(
        body, actions=actions, fallback_text=f"{room.name} is taken on {len(taken)} dates"
    )


def series_booked_card(
    result: SeriesResult, *, time_zone: ZoneInfo, online_meetings_available: bool
) -> Card:
    """What a repeating booking booked, date by date, and what it left out."""
    booked = sorted(result.booked, key=lambda b: b.start_at)
    body: list[CardElement] = [
        *heading(
            f"{len(booked)} dates booked" if booked else "Nothing was booked",
            booked[0].subject if booked else None,
        )
    ]
    facts = [
        Fact(
            title=format_span(b.start_at, b.end_at, time_zone),
            value=f"{b.room_name}, {b.building}, {b.floor_label}",
        )
        for b in booked
    ]
    facts += [
        Fact(title=format_span(o.start, o.end, time_zone), value="Not booked")
        for o in result.skipped
    ]
    body.append(FactSet(facts=facts))
    if booked and booked[0].online_meeting:
        if not online_meetings_available:
            body.append(TextBlock(text=NO_ONLINE_MEETINGS, wrap=True, is_subtle=True))
        else:
            body.append(
                TextBlock(
                    text="Each date is its own meeting in your calendar, with its Teams link.",
                    wrap=True,
                    is_subtle=True,
                )
            )
    actions = [action("My bookings", Verb.BOOKING_LIST)]
    if booked and booked[0].series_id:
        actions.insert(
            0,
            action(
                "Cancel all",
                Verb.BOOKING_CANCEL_SERIES,
                {"series": booked[0].series_id},
                style="destructive",
            ),
        )
    return render(body, actions=actions, fallback_text=f"{len(booked)} dates booked")


SLOW_ANSWER = (
    "Microsoft 365 is slow to answer right now. This card shows the result as soon as it does; "
    "there is no need to press the button again."
)
# What a slow click is doing, by its verb: the card's title and the start of its message.
_WORKING: dict[str, tuple[str, str]] = {
    Verb.BOOKING_BOOK: ("Booking", "Booking\u2026"),
    Verb.BOOKING_SERIES: ("Booking your repeating meeting", "Booking each date\u2026"),
    Verb.BOOKING_SERIES_BOOK: ("Booking your repeating meeting", "Booking each date\u2026"),
    Verb.BOOKING_CANCEL_CONFIRM: ("Cancelling", "Cancelling\u2026"),
    Verb.BOOKING_CANCEL_SERIES: ("Cancelling the repeating booking", "Cancelling\u2026"),
    Verb.MEETING_NOW: ("Creating a Teams meeting", "Creating the meeting\u2026"),
    Verb.BOOKING_SEARCH: ("Finding free rooms", "Asking for free rooms\u2026"),
    Verb.BOOKING_ALTERNATIVES: ("Finding free rooms", "Asking for free rooms\u2026"),
}
# Clicks that book: Teams may send them again (their attempt id books once) to get the result.
_REFRESHED = frozenset({Verb.BOOKING_BOOK, Verb.BOOKING_SERIES, Verb.BOOKING_SERIES_BOOK})


def working_card(
    verb: str,
    *,
    time_zone: ZoneInfo,
    pending: PendingBooking | None = None,
    refresh_data: Mapping[str, Any] | None = None,
    refresh_user_id: str | None = None,
) -> Card:
    """A click still at work (Microsoft 365 is slow): what it is doing, and what a Book click
    books (`pending`); this card is replaced with the result when the work ends. A booking
    click is asked again for `refresh_user_id` (the same idempotent click, with
    `refresh_data`) whenever the card is shown, in case that update was missed."""
    title, doing = _WORKING.get(verb, ("Working on it", "Asking Microsoft 365\u2026"))
    room_name = pending.room_name if pending is not None else None
    if room_name:
        title = f"{title} {room_name}"
    text = f"{doing} this can take a moment. {SLOW_ANSWER}"
    body: list[CardElement] = [*heading(title), notice(text, tone="warning")]
    facts = []
    if room_name:
        facts.append(Fact(title="Room", value=room_name))
    if pending is not None:
        facts.append(Fact(title="When", value=format_span(pending.start, pending.end, time_zone)))
        facts.append(Fact(title="Time zone", value=zone_label(time_zone)))
    if facts:
        body.append(FactSet(facts=facts))
    refresh = None
    if verb in _REFRESHED and refresh_user_id:
        refresh = auto_refresh(Verb(verb), refresh_data or {}, [refresh_user_id])
    return render(body, fallback_text=f"{title} {text}", refresh=refresh)
