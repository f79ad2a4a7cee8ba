"""Proactive sends go out at the pace Teams allows: TeamsMessenger waits for every call's turn
per conversation (named by the stored conversation reference) and per tenant, so a burst to one
chat meets a connector enforcing Teams' per-conversation limit without a single 429."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from botbuilder.core import TurnContext
from botbuilder.schema import Activity

from bot.config import load_settings
from bot.notifications import SendLimits
from bot.teams_adapter import TeamsMessenger, build_adapter
from cards.common import message_card
from tests.perf.test_sdk_fixes import CountingConnector
from tests.support.activities import TENANT_ID, make_message


class RecordingLimits(SendLimits):
    """Teams' pace, noting which tenant and conversation each call waited for."""

    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "calls", [])

    async def wait(self, tenant_id: str, conversation_id: str | None) -> float:
        self.calls.append((tenant_id, conversation_id))  # type: ignore[attr-defined]
        return await super().wait(tenant_id, conversation_id)


def stored_reference(service_url: str) -> dict[str, Any]:
    """A personal chat's reference as the bot stores it from a message."""
    activity = Activity().deserialize(make_message("hi", service_url=service_url))
    reference: dict[str, Any] = TurnContext.get_conversation_reference(activity).serialize()
    return reference


async def test_a_burst_to_one_chat_meets_teams_per_conversation_limit_without_429() -> None:
    settings = load_settings(MICROSOFT_APP_ID="", HOST="127.0.0.1", DATABASE_URL="sqlite://")
    limits = RecordingLimits()
    async with aiohttp.ClientSession() as http, CountingConnector() as connector:
        connector.state.per_conversation_limit = 7  # Teams: 7 messages a second per thread
        messenger = TeamsMessenger(build_adapter(settings, http=http), "", limits=limits)
        reference = stored_reference(connector.service_url)
        card = message_card("Reminder", "Catering waits for your decision.")

        sent = await asyncio.gather(
            *(messenger.send(reference, card, tenant_id=TENANT_ID) for _ in range(9))
        )
        await messenger.update(reference, str(sent[0]), card, tenant_id=TENANT_ID)

    conversation = reference["conversation"]["id"]
    assert connector.state.throttled == 0
    assert connector.state.delivered[conversation] == 9
    assert connector.state.counts["update"] == 1
    assert limits.calls == [(TENANT_ID, conversation)] * 10  # type: ignore[attr-defined]


async def test_new_chats_and_channel_threads_wait_their_turn_in_the_tenant() -> None:
    settings = load_settings(MICROSOFT_APP_ID="", HOST="127.0.0.1", DATABASE_URL="sqlite://")
    limits = RecordingLimits()
    async with aiohttp.ClientSession() as http, CountingConnector() as connector:
        messenger = TeamsMessenger(build_adapter(settings, http=http), "", limits=limits)
        template = stored_reference(connector.service_url)
        await messenger.open_personal(template=template, tenant_id=TENANT_ID, user_id="user-b")
        await messenger.post_to_channel(
            template=template,
            tenant_id=TENANT_ID,
            channel_id="19:desk@thread.tacv2",
            card=message_card("Fulfil", "Catering"),
        )

    assert connector.state.counts["create"] == 2
    assert limits.calls == [  # type: ignore[attr-defined]
        (TENANT_ID, None),
        (TENANT_ID, "19:desk@thread.tacv2"),
    ]
