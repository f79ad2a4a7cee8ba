"""The welcome card and help: what Frontdesk does, one button per command."""

from __future__ import annotations

from microsoft_teams.cards import ActionSet, CardElement, Fact, FactSet, TextBlock

from bot.commands import ADMIN_COMMAND, COMMANDS, Command, Verb
from cards.common import APP_NAME, Card, action, heading, message_card, notice, render

_INTRO = (
    f"{APP_NAME} books meeting rooms for you, with a Teams meeting, and asks for catering, AV, IT "
    "or facilities help with approvals, right here in the chat."
)
# The buttons come in groups (a card shows at most 5 actions in one row).
_GROUPS = (("Rooms", ("booking.", "meeting.")), ("Services", ("request.", "approval.")))


def _offered(online_meetings: bool) -> list[Command]:
    return [c for c in COMMANDS if online_meetings or not c.needs_online_meetings]


def _command_buttons(online_meetings: bool) -> list[CardElement]:
    """A titled row of buttons per group of commands."""
    elements: list[CardElement] = []
    offered = [c for c in _offered(online_meetings) if c.on_cards]
    for title, prefixes in _GROUPS:
        group = [c for c in offered if c.verb.value.startswith(prefixes)]
        if group:
            elements.append(TextBlock(text=title, weight="Bolder", spacing="Medium"))
            elements.append(ActionSet(actions=[action(c.title, c.verb) for c in group]))
    return elements


def welcome_card(*, user_name: str | None = None, online_meetings: bool = False) -> Card:
    """Sent when the app is installed in a personal chat."""
    greeting = f"Welcome, {user_name}!" if user_name else f"Welcome to {APP_NAME}!"
    body: list[CardElement] = [
        *heading(greeting, _INTRO),
        TextBlock(
            text="Pick a button, or type a command such as **book** or **request**.",
            wrap=True,
        ),
        *_command_buttons(online_meetings),
    ]
    return render(body, fallback_text=f"{greeting} {_INTRO}")


def help_card(
    *, not_understood: str | None = None, online_meetings: bool = False, admin: bool = False
) -> Card:
    """What the bot answers to, with a button for each; the unknown text when there was one.

    `admin`: the viewer is an admin (ADMIN_USERS) in a personal chat, so it shows `admin` too.
    """
    commands = _offered(online_meetings) + ([ADMIN_COMMAND] if admin else [])
    body: list[CardElement] = [*heading(f"{APP_NAME} help", _INTRO)]
    if not_understood:
        shown = not_understood if len(not_understood) <= 80 else not_understood[:77] + "..."
        body.append(
            notice(f'Sorry, I didn\'t understand "{shown}". Here is what I can do.', tone="warning")
        )
    body.append(
        FactSet(
            facts=[
                Fact(title=command.phrases[0], value=command.description) for command in commands
            ]
        )
    )
    body.append(
        TextBlock(
            text="In group chats and channels, mention me first: @Frontdesk book.",
            wrap=True,
            is_subtle=True,
        )
    )
    body += _command_buttons(online_meetings)
    if admin:
        body.append(TextBlock(text="Admin", weight="Bolder", spacing="Medium"))
        body.append(ActionSet(actions=[action(ADMIN_COMMAND.title, ADMIN_COMMAND.verb)]))
    return render(body, fallback_text=f"{APP_NAME} help: {_INTRO}")


def signed_in_card() -> Card:
    """After a sign-in from an OAuth card."""
    return message_card(
        "Signed in",
        "You are signed in to Microsoft 365. What would you like to do?",
        actions=[
            action("Book a room", Verb.BOOKING_START),
            action("My bookings", Verb.BOOKING_LIST),
        ],
    )
