"""The command table: matching typed text, and one handler per verb."""

from __future__ import annotations

import pytest

from bot.actions import CardActions
from bot.commands import COMMANDS, Verb, match_command, normalize


@pytest.mark.parametrize(
    ("text", "verb"),
    [
        ("book", Verb.BOOKING_START),
        ("BOOK", Verb.BOOKING_START),
        ("Book a room", Verb.BOOKING_START),
        ("  book   a   ROOM!  ", Verb.BOOKING_START),
        ("<at>Frontdesk</at> book", Verb.BOOKING_START),
        ("<at>Front Desk</at>  My Bookings", Verb.BOOKING_LIST),
        ("book a room tomorrow at 10", Verb.BOOKING_START),
        ("help", Verb.HELP),
        ("Hello", Verb.HELP),
    ],
)
def test_commands_match_case_insensitively_after_mentions(text: str, verb: Verb) -> None:
    command = match_command(text)

    assert command is not None
    assert command.verb is verb


@pytest.mark.parametrize("text", ["", "   ", "<at>Frontdesk</at>", "rebook", "booking", "helpdesk"])
def test_other_text_matches_no_command(text: str) -> None:
    assert match_command(text) is None


def test_normalize_removes_mentions_and_folds_spaces() -> None:
    assert normalize("<at>Frontdesk</at>\n  MY   bookings. ") == "my bookings"


def test_phrases_are_unique_and_verbs_have_handlers() -> None:
    phrases = [phrase for command in COMMANDS for phrase in command.phrases]

    assert len(phrases) == len(set(phrases))
    assert all(phrase == normalize(phrase) or phrase == "?" for phrase in phrases)
    assert all(command.verb in Verb for command in COMMANDS)


def test_verbs_are_noun_first_and_stable() -> None:
    # Verbs live on in cards already posted; this list changes only by adding.
    assert {verb.value for verb in Verb} >= {
        "help.show",
        "booking.start",
        "booking.search",
        "booking.book",
        "booking.list",
        "booking.show",
        "booking.cancel",
        "booking.cancelConfirm",
    }
    assert all("." in verb.value for verb in Verb)


def test_every_verb_has_a_handler(booking_service: object) -> None:
    actions = CardActions(booking_service)  # type: ignore[arg-type]

    assert set(actions._table) == set(Verb)
