"""ALLOWED_TENANTS: an activity from any other tenant is refused and nothing is stored.

Megan's tenant is allowed and has already used the bot (a booking, a draft, her profile and
conversation). Then every kind of activity arrives from elsewhere: messages, install events,
card clicks carrying Megan's own booking data, sign-in invokes. Afterwards every row of every
table in the database is what it was, nothing was sent to any chat, and each invoke got the same
plain refusal.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.commands import Verb
from tests.bot.conftest import ERROR_TYPE, Frontdesk
from tests.hardening.conftest import changed_tables, database_snapshot
from tests.support.activities import (
    MEGAN,
    STRANGER,
    TENANT_ID,
    Conversation,
    TeamsUser,
    make_card_action,
    make_installation_update,
    make_members_added,
    make_message,
    personal_chat,
)
from tests.support.cardquery import action_titled, book_actions

FOREIGN_TENANT = STRANGER.tenant_id
# Megan's own ids, but in another tenant (a guest account, or a forged activity).
MEGAN_ELSEWHERE = TeamsUser(
    id=MEGAN.id, aad_object_id=MEGAN.aad_object_id, name=MEGAN.name, tenant_id=FOREIGN_TENANT
)
SLOT = {"date": "2026-11-23", "start": "10:00", "duration": "30", "attendees": "4"}
REFUSAL = "This app is not available in your organization."

pytestmark = pytest.mark.parametrize("app_env", [{"ALLOWED_TENANTS": TENANT_ID}])


def _no_tenant_anywhere(activity: dict[str, Any]) -> dict[str, Any]:
    activity["channelData"].pop("tenant", None)
    activity["conversation"].pop("tenantId", None)
    return activity


def _sign_in_invoke(name: str, value: dict[str, Any], su: str) -> dict[str, Any]:
    activity = make_card_action("x", {}, service_url=su, user=STRANGER)
    activity["name"] = name
    activity["value"] = value
    return activity


async def _megan_has_used_the_bot(frontdesk: Frontdesk) -> dict[str, dict[str, Any]]:
    """Megan (allowed tenant) books a room; the buttons of her cards, for others to forge."""
    results = await frontdesk.search(SLOT)
    book = book_actions(results)[0]
    confirmation = await frontdesk.press(book)
    assert len(frontdesk.bookings()) == 1
    # A second search leaves an unused draft and Book buttons with fresh attempt ids.
    fresh = book_actions(await frontdesk.search({**SLOT, "start": "11:00"}))[0]
    return {
        "book": book,
        "fresh_book": fresh,
        "cancel": action_titled(confirmation, "Cancel booking"),
    }


async def test_activities_from_another_tenant_store_nothing_and_send_nothing(
    frontdesk: Frontdesk,
) -> None:
    buttons = await _megan_has_used_the_bot(frontdesk)
    su = frontdesk.service_url
    before = database_snapshot(frontdesk.engine)
    sent_before = len(frontdesk.connector.sent)
    assert before["booking"] and before["user_profile"] and before["conversation_ref"]

    def click(action: dict[str, Any], user: TeamsUser, **inputs: Any) -> dict[str, Any]:
        data = {**inputs, **action["data"]}
        return make_card_action(action["verb"], data, service_url=su, user=user)

    messages: dict[str, dict[str, Any]] = {
        "message": make_message("book", service_url=su, user=STRANGER),
        "message as Megan's ids": make_message("my bookings", service_url=su, user=MEGAN_ELSEWHERE),
        "message with no tenant": _no_tenant_anywhere(make_message("book", service_url=su)),
        "install (conversationUpdate)": make_members_added(service_url=su, user=STRANGER),
        "install (installationUpdate)": make_installation_update(service_url=su, user=STRANGER),
        "install into Megan's chat": make_installation_update(
            service_url=su,
            user=MEGAN_ELSEWHERE,
            conversation=Conversation(
                personal_chat(MEGAN).id, "personal", tenant_id=FOREIGN_TENANT
            ),
        ),
        "uninstall": make_installation_update(service_url=su, user=STRANGER, action="remove"),
    }
    invokes: dict[str, dict[str, Any]] = {
        "search": make_card_action(Verb.BOOKING_SEARCH.value, SLOT, service_url=su, user=STRANGER),
        "Megan's Book click": click(buttons["book"], STRANGER),
        "Megan's fresh Book click": click(buttons["fresh_book"], STRANGER),
        "Megan's fresh Book click, as Megan's ids": click(buttons["fresh_book"], MEGAN_ELSEWHERE),
        "Megan's Cancel": click(buttons["cancel"], STRANGER),
        "cancel confirm": make_card_action(
            Verb.BOOKING_CANCEL_CONFIRM.value,
            {**buttons["cancel"]["data"], "comment": "gone"},
            service_url=su,
            user=MEGAN_ELSEWHERE,
        ),
        "click with no tenant": _no_tenant_anywhere(click(buttons["fresh_book"], MEGAN)),
        "signin/verifyState": _sign_in_invoke("signin/verifyState", {"state": "123456"}, su),
        "signin/tokenExchange": _sign_in_invoke(
            "signin/tokenExchange",
            {"id": "x", "connectionName": "graph", "token": "sso-token"},
            su,
        ),
    }

    answers: dict[str, tuple[int, Any]] = {}
    for name, activity in {**messages, **invokes}.items():
        answers[name] = await frontdesk.post(activity)

    after = database_snapshot(frontdesk.engine)
    assert changed_tables(before, after) == {}
    assert after == before
    assert frontdesk.connector.sent[sent_before:] == []
    for name in messages:
        status, _ = answers[name]
        assert status in (200, 201), (name, answers[name])
    for name in invokes:
        status, body = answers[name]
        assert status == 200, (name, answers[name])
        assert isinstance(body, dict), (name, body)
        assert (body["statusCode"], body["type"]) == (400, ERROR_TYPE), (name, body)
        assert body["value"] == {"code": "TenantNotAllowed", "message": REFUSAL}, name


async def test_the_allowed_tenant_is_still_served(frontdesk: Frontdesk) -> None:
    # The same app refuses others (above) but serves Megan: the allow-list is not a closed door.
    card = await frontdesk.say("book")

    assert card["body"], card
    assert frontdesk.rows("SELECT tenant_id FROM user_profile") == [{"tenant_id": TENANT_ID}]
