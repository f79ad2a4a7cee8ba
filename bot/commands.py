"""The one table of chat commands and card verbs.

Verbs live on in cards already posted: never rename or remove one silently. Add new ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Verb(StrEnum):
    """Every `Action.Execute` verb the bot answers (noun first)."""

    HELP = "help.show"
    BOOKING_START = "booking.start"
    BOOKING_SEARCH = "booking.search"
    BOOKING_BOOK = "booking.book"
    BOOKING_LIST = "booking.list"
    BOOKING_SHOW = "booking.show"
    BOOKING_CANCEL = "booking.cancel"
    BOOKING_CANCEL_CONFIRM = "booking.cancelConfirm"
    ACCOUNT_SIGN_OUT = "account.signOut"
    BOOKING_ALTERNATIVES = "booking.alternatives"
    MEETING_NOW = "meeting.now"
    BOOKING_SERIES = "booking.series"
    BOOKING_SERIES_BOOK = "booking.bookSeries"
    BOOKING_CANCEL_SERIES = "booking.cancelSeries"
    REQUEST_START = "request.start"
    REQUEST_FORM = "request.form"
    REQUEST_SUBMIT = "request.submit"
    REQUEST_SHOW = "request.show"
    REQUEST_LIST = "request.list"
    REQUEST_DECIDE = "request.decide"
    REQUEST_CANCEL = "request.cancel"
    REQUEST_FULFIL = "request.fulfil"
    APPROVAL_LIST = "approval.list"
    ADMIN_SHOW = "admin.show"
    ADMIN_REASSIGN_FORM = "admin.reassignForm"
    ADMIN_REASSIGN = "admin.reassign"


@dataclass(frozen=True)
class Command:
    """A chat command: the phrases that start it, the verb it runs and how help shows it."""

    phrases: tuple[str, ...]
    verb: Verb
    title: str
    description: str
    on_cards: bool = True
    """Whether welcome and help cards show a button for it."""
    needs_online_meetings: bool = False
    """Only offered where the directory can make Teams meetings (Microsoft 365)."""


COMMANDS: tuple[Command, ...] = (
    Command(
        phrases=("book", "book a room", "book room", "new booking"),
        verb=Verb.BOOKING_START,
        title="Book a room",
        description="Find a free meeting room and book it, with a Teams meeting.",
    ),
    Command(
        phrases=("my bookings", "bookings", "my booking", "list bookings"),
        verb=Verb.BOOKING_LIST,
        title="My bookings",
        description="See your upcoming bookings and cancel one.",
    ),
    Command(
        phrases=("request", "new request", "service request", "ask for a service", "order"),
        verb=Verb.REQUEST_START,
        title="Ask for a service",
        description="Catering, AV, IT or facilities help, approved in Teams.",
    ),
    Command(
        phrases=("my requests", "requests", "my request", "list requests"),
        verb=Verb.REQUEST_LIST,
        title="My requests",
        description="See your service requests and where each one stands.",
    ),
    Command(
        phrases=("approvals", "my approvals", "pending approvals", "to approve"),
        verb=Verb.APPROVAL_LIST,
        title="Approvals",
        description="Requests waiting for your approval.",
    ),
    Command(
        phrases=("meet now", "meeting now", "new meeting", "start a meeting"),
        verb=Verb.MEETING_NOW,
        title="Meet now",
        description="Start a Teams meeting right away and get its link.",
        needs_online_meetings=True,
    ),
    Command(
        phrases=("sign out", "signout", "log out", "logout"),
        verb=Verb.ACCOUNT_SIGN_OUT,
        title="Sign out",
        description="Sign out of Microsoft 365 (when Frontdesk uses your calendar).",
        on_cards=False,
    ),
    Command(
        phrases=("help", "?", "hi", "hello", "start"),
        verb=Verb.HELP,
        title="Help",
        description="What Frontdesk can do for you.",
        on_cards=False,
    ),
)

# Not in COMMANDS on purpose: COMMANDS is what everyone is offered (help, welcome, the manifest's
# command menu). Only users in ADMIN_USERS get an answer; others get the not-understood help card.
ADMIN_COMMAND = Command(
    phrases=("admin", "frontdesk admin"),
    verb=Verb.ADMIN_SHOW,
    title="Admin",
    description="Today's bookings, waiting approvals and stuck requests (admins only).",
    on_cards=False,
)

_MENTION = re.compile(r"<at>.*?</at>", re.IGNORECASE | re.DOTALL)
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower case, mentions and surrounding punctuation removed, spaces folded."""
    text = _MENTION.sub(" ", text)
    text = _SPACES.sub(" ", text).strip().lower()
    return text.strip(" .!,;:")


def match_command(text: str) -> Command | None:
    """The command a message asks for: an exact phrase, else the longest leading phrase."""
    words = normalize(text)
    if not words:
        return None
    best: tuple[int, Command] | None = None
    for command in (*COMMANDS, ADMIN_COMMAND):
        for phrase in command.phrases:
            if words == phrase or words.startswith(phrase + " "):
                if best is None or len(phrase) > best[0]:
                    best = (len(phrase), command)
    return best[1] if best else None
