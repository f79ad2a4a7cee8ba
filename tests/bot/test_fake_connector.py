"""Self-tests of tests/support/fake_connector.py, driven by botbuilder's own connector client."""

from __future__ import annotations

import pytest
from botbuilder.core import CardFactory, MessageFactory
from botbuilder.schema import Activity, ActivityTypes, ErrorResponseException
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import MicrosoftAppCredentials

from tests.support.fake_connector import FakeConnector

CONVERSATION = "a:1conversation"
CARD = {"type": "AdaptiveCard", "version": "1.5", "body": []}


def client(connector: FakeConnector) -> ConnectorClient:
    return ConnectorClient(MicrosoftAppCredentials.empty(), base_url=connector.service_url)


async def test_send_reply_and_update_are_recorded_and_answered(connector: FakeConnector) -> None:
    conversations = client(connector).conversations
    card = MessageFactory.attachment(CardFactory.adaptive_card(CARD))

    sent = await conversations.send_to_conversation(CONVERSATION, card)
    reply = await conversations.reply_to_activity(
        CONVERSATION, sent.id, Activity(type=ActivityTypes.message, text="hi")
    )
    await conversations.update_activity(
        CONVERSATION, sent.id, Activity(type=ActivityTypes.message, text="edited")
    )

    assert sent.id and reply.id and sent.id != reply.id
    first, second, third = connector.sent
    assert (first.method, first.path) == ("POST", f"/v3/conversations/{CONVERSATION}/activities")
    assert first.conversation_id == CONVERSATION and not first.is_reply
    assert first.cards() == [CARD]
    assert second.is_reply and second.activity_id == sent.id
    assert second.json["text"] == "hi"
    assert third.is_update and third.activity_id == sent.id
    assert connector.cards() == [CARD]
    assert connector.unexpected == []


async def test_other_routes_are_recorded_and_answered_404(connector: FakeConnector) -> None:
    with pytest.raises(ErrorResponseException) as raised:
        await client(connector).conversations.get_conversation_members(CONVERSATION)

    assert raised.value.response.status_code == 404
    [request] = connector.unexpected
    assert (request.method, request.path) == ("GET", f"/v3/conversations/{CONVERSATION}/members")
    assert connector.sent == []


async def test_wait_for_returns_when_enough_were_sent(connector: FakeConnector) -> None:
    conversations = client(connector).conversations
    await conversations.send_to_conversation(
        CONVERSATION, Activity(type=ActivityTypes.message, text="one")
    )

    assert len(await connector.wait_for(1, timeout=1)) == 1
    with pytest.raises(AssertionError, match="waited 0.1 s for 2"):
        await connector.wait_for(2, timeout=0.1)
