"""Booking in graph mode end to end: Microsoft 365 Agents Playground, the real `python app.py`
with DIRECTORY=graph, a fake Microsoft Graph and a fake Bot Framework token service.

The fakes run in the test's event loop as aiohttp servers on 127.0.0.1; the bot (a subprocess)
reaches them over HTTP. Every verb, every action's data and every input id comes from the card
the Playground pushed, and every Graph request is checked against the v1.0 metadata.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.app_process import BotProcess, frontdesk_process
from tests.support.cardquery import book_actions, input_values
from tests.support.fake_graph import FakeGraph
from tests.support.graph_session import (
    CONNECTION,
    MEGAN_TOKEN,
    TOKEN_EXCHANGE_URI,
    Microsoft365,
    microsoft365,
)
from tests.support.playground import (
    PLAYGROUND_LABEL,
    Message,
    Playground,
    bot_answered,
    card_text,
    find_action,
    form_inputs,
    input_ids,
    press,
    require_playground,
)

pytestmark = pytest.mark.e2e

OAUTH_CARD = "application/vnd.microsoft.card.oauth"
JOIN_LINK = re.compile(r"\[Join the Teams meeting\]\((\S+)\)")


@pytest.fixture
async def m365() -> AsyncIterator[Microsoft365]:
    """A fake Graph with the demo tenant and a token service; the test signs the user in."""
    async with microsoft365(signed_in=False) as m365:
        yield m365


@pytest.fixture
async def frontdesk(tmp_path: Path, m365: Microsoft365) -> AsyncIterator[BotProcess]:
    """`python app.py` in local mode with DIRECTORY=graph on a free loopback port."""
    require_playground()
    async with frontdesk_process(tmp_path, m365.settings()) as bot:
        yield bot


# --- helpers ---------------------------------------------------------------------------------


def mailbox_of(graph: FakeGraph, token: str) -> str:
    """The mailbox of the tenant user this delegated token belongs to."""
    return graph.tenant.users[graph.tenant.tokens[token]].mail


def sign_in(pg: Playground, m365: Microsoft365) -> None:
    """Store a token for the Playground's user: the bot asks for it with the activity's from.id."""
    m365.sign_in(pg.config.current_user_id)


def the_day_after(form: Mapping[str, Any]) -> str:
    """The day after the form's default date (today in the zone the form's times are in)."""
    today = input_values(form)["date"]
    assert today, f"the form has no default date: {card_text(form)}"
    return (date.fromisoformat(today) + timedelta(days=1)).isoformat()


async def results_for_tomorrow(pg: Playground) -> Message:
    """`book`, then the form filled for tomorrow 10:00 and 4 people, then Find rooms."""
    await pg.send_message("book")
    form = await pg.wait_for_card()
    assert {"date", "start", "attendees"} <= set(input_ids(form.card)), card_text(form.card)
    inputs = form_inputs(form.card, date=the_day_after(form.card), start="10:00", attendees="4")
    results = await press(pg, form, find_action(form.card, "Find rooms"), inputs)
    assert "Free rooms" in card_text(results.card), card_text(results.card)
    assert book_actions(results.card), card_text(results.card)
    return results


async def turn_status(pg: Playground, text: str, *, after: int, timeout: float = 10.0) -> int:  # noqa: ASYNC109
    """The HTTP status the bot answered the user's message `text` with, once its turn is over
    (the Playground logs it on the log stream; `after`: the index in `log_items` to look from)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in pg.log_items[after:]:
            request = (item.get("request") or {}).get("body") or {}
            if (
                item.get("from") == PLAYGROUND_LABEL
                and item.get("activityName") == "message"
                and isinstance(request, Mapping)
                and request.get("text") == text
            ):
                return int((item.get("response") or {})["statusCode"])
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the bot's turn for {text!r} did not end within {timeout} s")


def content_types(message: Message) -> list[str]:
    """The contentType of every attachment of a message frame (Adaptive Card or not)."""
    if message.source != "stream":
        return []
    attachments = message.raw.get("message", {}).get("attachments") or []
    return [str(a.get("contentType")) for a in attachments if isinstance(a, Mapping)]


# --- tests -----------------------------------------------------------------------------------


async def test_book_in_graph_mode_through_the_playground(
    frontdesk: BotProcess, m365: Microsoft365, tmp_path: Path
) -> None:
    graph = m365.graph
    mailbox = mailbox_of(graph, MEGAN_TOKEN)
    async with Playground(frontdesk.endpoint, log_dir=tmp_path / "playground") as pg:
        sign_in(pg, m365)
        results = await results_for_tomorrow(pg)
        first = book_actions(results.card)[0]
        room = first["title"].removeprefix("Book ")

        confirmation = await press(pg, results, first)

        text = card_text(confirmation.card)
        assert "Room booked" in text and room in text, text
        assert "Room's answer: Pending" in text, text
        link = JOIN_LINK.search(text)
        assert link, text
        [event] = graph.calendar(mailbox)
        [resource] = [a for a in event.attendees if a.get("type") == "resource"]
        room_mailbox = resource["emailAddress"]["address"]
        booked_room = graph.tenant.room(room_mailbox)
        assert booked_room is not None and booked_room.display_name == room, resource
        assert event.online_meeting and event.online_meeting.get("joinUrl"), event.online_meeting
        assert link.group(1) == event.online_meeting["joinUrl"]
        assert event.transaction_id

        # The room answers; Teams would then send the card's refresh action by itself (with
        # trigger "automatic") when the user looks at it. The Playground never does: send it.
        refresh = confirmation.card["refresh"]
        assert pg.config.current_user_id in refresh["userIds"], refresh
        await graph.settle()
        await pg.invoke(
            confirmation.id,
            str(refresh["action"]["verb"]),
            refresh["action"].get("data") or {},
            title=refresh["action"].get("title"),
            conversation_id=confirmation.conversation_id,
            trigger="automatic",
        )
        await bot_answered(pg, confirmation.id)
        refreshed = pg.latest_card()
        assert "Room's answer: Accepted" in card_text(refreshed.card), card_text(refreshed.card)
        assert "refresh" not in refreshed.card
        assert graph.event(event.id).attendee_status(room_mailbox) == "accepted"

        await pg.send_message("my bookings")
        listing = await pg.wait_for_card()
        assert room in card_text(listing.card), card_text(listing.card)
        asking = await press(pg, listing, find_action(listing.card, "Cancel"))
        assert "Cancel this booking?" in card_text(asking.card)
        assert "comment" in input_ids(asking.card)
        done = await press(
            pg, asking, find_action(asking.card, "Yes, cancel it"), {"comment": "Graph E2E done"}
        )

        assert "Booking cancelled" in card_text(done.card), card_text(done.card)
        assert "Graph E2E done" in card_text(done.card)
        assert graph.calendar(mailbox) == []
        assert graph.event(event.id).removed == "cancel"
        assert graph.event(event.id).cancel_comment == "Graph E2E done"
    graph.assert_contract()


async def test_a_throttled_booking_still_books_once_through_the_playground(
    frontdesk: BotProcess, m365: Microsoft365, tmp_path: Path
) -> None:
    graph = m365.graph
    mailbox = mailbox_of(graph, MEGAN_TOKEN)
    async with Playground(frontdesk.endpoint, log_dir=tmp_path / "playground") as pg:
        sign_in(pg, m365)
        results = await results_for_tomorrow(pg)
        graph.throttle("/me/events", times=2, retry_after=1)

        confirmation = await press(pg, results, book_actions(results.card)[0])

        assert "Room booked" in card_text(confirmation.card), card_text(confirmation.card)
        assert len(graph.calendar(mailbox)) == 1
        posts = [r for r in graph.requests_to("POST") if r.path.endswith("/me/events")]
        assert len(posts) == 3  # two throttled, the third created the event
    graph.assert_contract()


async def test_sign_in_is_requested_before_the_first_booking(
    frontdesk: BotProcess, m365: Microsoft365, tmp_path: Path
) -> None:
    async with Playground(frontdesk.endpoint, log_dir=tmp_path / "playground") as pg:
        before = len(pg.log_items)
        await pg.send_message("book")

        message = await pg.wait_for(lambda m: OAUTH_CARD in content_types(m))
        # The frame comes before the Playground answers the bot's send: wait for the whole turn.
        assert await turn_status(pg, "book", after=before) == 201

        assert message.source == "stream" and message.kind == "create", message
        assert message.conversation_id == pg.config.personal_chat_id
        assert message.sender_id == pg.config.bot_id
        [attachment] = message.raw["message"]["attachments"]
        card = attachment["content"]
        assert card["connectionName"] == CONNECTION
        assert card["buttons"][0]["type"] == "signin"
        assert card["buttons"][0]["value"].startswith(m365.tokens.base_url)
        assert card["tokenExchangeResource"]["uri"] == TOKEN_EXCHANGE_URI
        assert not message.cards  # no booking form before signing in
        asked = [r for r in m365.tokens.requests if r.path == "/api/usertoken/GetToken"]
        assert asked, m365.tokens.requests
        assert {r.query["userId"] for r in asked} == {pg.config.current_user_id}
        assert {r.query["connectionName"] for r in asked} == {CONNECTION}
    assert m365.graph.requests == []
    m365.graph.assert_contract()


async def _raw_invoke(pg: Playground, reply_to: str, value: dict[str, Any]) -> Any:
    """An `adaptiveCard/action` with a value of our own through the Playground's invoke API."""
    body = {
        "name": "adaptiveCard/action",
        "from": {"id": pg.config.current_user_id},
        "conversation": {"id": pg.config.personal_chat_id},
        "replyToId": reply_to,
        "value": value,
    }
    pg.mark()
    return await pg._request("POST", "/_conversation/v1/invoke", body)


async def _sign_in_invoke(pg: Playground, name: str, value: dict[str, Any]) -> None:
    """`signin/*` invokes: the Playground's invoke API refuses these names, so they go in
    through its custom activities, which reach the bot as a Teams client's would."""
    template = await pg.custom_activity_template("install")
    activity = {
        key: template[key]
        for key in ("channelId", "serviceUrl", "from", "recipient", "conversation", "channelData")
        if key in template
    }
    activity.update(type="invoke", name=name, value=value, id=f"signin-{name}-{value}")
    pg.mark()
    await pg.send_custom_activity(activity)


async def test_sign_in_invokes_through_the_playground(
    frontdesk: BotProcess, m365: Microsoft365, tmp_path: Path
) -> None:
    m365.tokens.allow_exchange(CONNECTION, "sso-from-teams", yields=MEGAN_TOKEN)
    async with Playground(frontdesk.endpoint, log_dir=tmp_path / "playground") as pg:
        await pg.send_message("book")
        await pg.wait_for(lambda m: OAUTH_CARD in content_types(m))

        # Teams tries single sign-on with the OAuth card's exchange resource.
        await _sign_in_invoke(
            pg,
            "signin/tokenExchange",
            {"id": "2", "connectionName": CONNECTION, "token": "sso-from-teams"},
        )
        signed_in = await pg.wait_for_card()
        assert "Signed in" in card_text(signed_in.card)
        await pg.send_message("book")
        form = await pg.wait_for_card()
        assert "date" in input_ids(form.card)

        # After signing out, a card action asks Teams for a login and resumes with the code.
        await pg.send_message("sign out")
        await pg.wait_for(lambda m: bool(m.cards) and "Signed out" in card_text(m.card))
        find = find_action(form.card, "Find rooms")
        inputs = form_inputs(form.card, date=the_day_after(form.card), start="10:00", attendees="4")
        # A real search needs free/busy from Graph, so a token.
        action = {"type": "Action.Execute", "verb": find["verb"], "data": inputs}
        login = await _raw_invoke(pg, form.id, {"action": action})
        assert login["type"] == "application/vnd.microsoft.activity.loginRequest"
        m365.tokens.pending_sign_in(pg.config.current_user_id, CONNECTION, "424242", MEGAN_TOKEN)
        resumed = await _raw_invoke(pg, form.id, {"action": action, "state": "424242"})
        assert resumed["type"] == "application/vnd.microsoft.card.adaptive"
        assert "Free rooms" in card_text(resumed["value"])

        # The magic-code invoke of the OAuth card's sign-in button works too.
        await pg.send_message("sign out")
        await pg.wait_for(lambda m: bool(m.cards) and "Signed out" in card_text(m.card))
        m365.tokens.pending_sign_in(pg.config.current_user_id, CONNECTION, "777777", MEGAN_TOKEN)
        await _sign_in_invoke(pg, "signin/verifyState", {"state": "777777"})
        again = await pg.wait_for_card()
        assert "Signed in" in card_text(again.card)
    m365.graph.assert_contract()
