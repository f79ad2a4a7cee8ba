"""The botbuilder performance fixes of bot/teams_adapter.py, each checked where it applies.

Every test here fails when its fix stops applying, for example after a dependency upgrade moves
or changes what it patches: then either the SDK no longer needs the fix (remove it) or the fix
needs to follow the SDK.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from botbuilder.core import BotAdapter, TurnContext, serializer_helper
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    AdaptiveCardInvokeResponse,
    CardAction,
    ChannelAccount,
    ConversationAccount,
    ConversationParameters,
    InputHints,
    ResourceResponse,
    SuggestedActions,
)
from msrest.serialization import Model, Serializer
from msrest.universal_http.requests import ClientRetryPolicy

from bench.connector import Connector, build_app
from bot.config import load_settings
from bot.teams_adapter import (
    PlainJsonSerializer,
    activity_from_json,
    build_adapter,
    invoke_body,
    model_json,
)
from bot.teams_handler import card_invoke_response, card_message, error_invoke_response
from cards.common import message_card
from tests.support.activities import ALEX, GROUP_CHAT, MEGAN, make_card_action, make_message

# msrest 0.7.1's list, spelled out: the fix must keep exactly these codes "safe" (not retried).
STOCK_SAFE_CODES = [i for i in range(500) if i != 408] + [501, 505]


def settings() -> Any:
    return load_settings(MICROSOFT_APP_ID="", HOST="127.0.0.1", DATABASE_URL="sqlite://")


# -- fix 1: msrest's ClientRetryPolicy ---------------------------------------------------------


async def test_the_retry_policy_fix_is_applied_and_keeps_the_same_retry_codes(
    http: aiohttp.ClientSession,
) -> None:
    build_adapter(settings(), http=http)

    assert isinstance(ClientRetryPolicy.safe_codes, frozenset), (
        "msrest's ClientRetryPolicy.safe_codes is a list again: the fix no longer applies"
    )
    assert ClientRetryPolicy.safe_codes == frozenset(STOCK_SAFE_CODES)
    retried = ClientRetryPolicy().policy.status_forcelist
    assert list(retried) == [i for i in range(999) if i not in STOCK_SAFE_CODES]


# -- fixes 2 and 3: kept clients, replies through the shared aiohttp session ----------------------


class CountingConnector:
    """bench/connector.py's fake connector in this event loop, counting accepted connections."""

    def __init__(self, delay: float = 0.0) -> None:
        self.state = Connector(delay=delay)
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CountingConnector:
        runner = aiohttp.web.AppRunner(build_app(self.state), access_log=None)
        await runner.setup()
        self._runner = runner
        handler = runner.server
        assert handler is not None

        def counted() -> asyncio.Protocol:
            self.state.connections += 1
            return handler()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(counted, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._runner.cleanup()

    @property
    def service_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def reply_turn(adapter: CloudAdapter, service_url: str, user: Any = MEGAN) -> Any:
    """One message turn, anonymous as in local mode, that replies with a card; its client."""
    activity = Activity().deserialize(make_message("hello", service_url=service_url, user=user))
    seen: list[Any] = []

    async def logic(context: TurnContext) -> None:
        seen.append(context.turn_state.get(adapter.BOT_CONNECTOR_CLIENT_KEY))
        await context.send_activity(card_message(message_card("Hello", "again")))

    authenticated = await adapter.bot_framework_authentication.authenticate_request(activity, None)
    await adapter.process_activity(authenticated, activity, logic)
    return seen[0]


async def test_turns_reuse_one_connector_client_and_one_connection(
    http: aiohttp.ClientSession,
) -> None:
    adapter = build_adapter(settings(), http=http)
    async with CountingConnector() as connector:
        clients = [await reply_turn(adapter, connector.service_url) for _ in range(20)]
        clients.append(await reply_turn(adapter, connector.service_url, ALEX))

    assert connector.state.counts["reply"] == 21
    assert all(client is clients[0] for client in clients), "a connector client per turn again"
    assert connector.state.connections == 1, (
        f"{connector.state.connections} connections for 21 replies: replies do not reuse them"
    )


async def test_proactive_sends_reuse_a_kept_client_and_the_same_connections(
    http: aiohttp.ClientSession,
) -> None:
    adapter = build_adapter(settings(), http=http)
    async with CountingConnector() as connector:
        await reply_turn(adapter, connector.service_url)
        reference = TurnContext.get_conversation_reference(
            Activity().deserialize(make_message("x", service_url=connector.service_url))
        )
        seen: list[Any] = []

        async def logic(context: TurnContext) -> None:
            seen.append(context.turn_state.get(adapter.BOT_CONNECTOR_CLIENT_KEY))
            await context.send_activity(card_message(message_card("Proactive", "card")))

        for _ in range(5):
            await adapter.continue_conversation(reference, logic, None)

    assert all(client is seen[0] for client in seen)
    assert sum(connector.state.counts.values()) == 6  # the reference names a message: replies
    # The reply and the proactive sends share the app's session, so its connection too.
    assert connector.state.connections == 1


async def test_replies_are_not_capped_by_a_thread_pool(http: aiohttp.ClientSession) -> None:
    # botbuilder sends replies from asyncio's default executor (6 threads on 2 cores): with a
    # connector that takes its time, at most 6 replies would be in flight.
    adapter = build_adapter(settings(), http=http)
    turns = 24
    async with CountingConnector(delay=0.5) as connector:
        await asyncio.gather(*(reply_turn(adapter, connector.service_url) for _ in range(turns)))

    assert connector.state.counts["reply"] == turns
    assert connector.state.max_in_flight == turns


async def test_a_refused_reply_still_raises_the_connector_status(
    http: aiohttp.ClientSession,
) -> None:
    adapter = build_adapter(settings(), http=http)
    async with CountingConnector() as connector:
        connector.state.throttle_share = 1.0
        activity = Activity().deserialize(make_message("hello", service_url=connector.service_url))
        raised: list[Exception] = []

        async def logic(context: TurnContext) -> None:
            try:
                await context.send_activity(card_message(message_card("Hello", "x")))
            except Exception as error:  # what botbuilder's stock sender raises too
                raised.append(error)

        authenticated = await adapter.bot_framework_authentication.authenticate_request(
            activity, None
        )
        await adapter.process_activity(authenticated, activity, logic)

    [error] = raised
    assert type(error).__name__ == "ErrorResponseException"
    response = error.response  # type: ignore[attr-defined]
    # requests' response has status_code, aiohttp's status; bot/teams_adapter.py reads either.
    assert (getattr(response, "status_code", None) or response.status) == 429


# -- fix 4: invoke responses --------------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        card_invoke_response(message_card("Room booked", "Lighthouse, 10:00–10:30 “Planning”")),
        card_invoke_response({"type": "AdaptiveCard", "version": "1.5", "body": [], "n": [1, 2.5]}),
        error_invoke_response(400, "BadRequest", "room must be a room id"),
    ],
)
def test_an_invoke_answer_is_the_json_botbuilder_would_write(response: Any) -> None:
    assert invoke_body(response.body) == serializer_helper(response.body)


def test_a_card_answer_skips_msrest(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(body: Any) -> Any:
        raise AssertionError("a card's invoke answer went through msrest's serializer")

    monkeypatch.setattr("bot.teams_adapter.serializer_helper", fail)
    body = AdaptiveCardInvokeResponse(
        status_code=200, type="application/vnd.microsoft.card.adaptive", value={"a": "b"}
    )

    assert invoke_body(body) == {
        "statusCode": 200,
        "type": "application/vnd.microsoft.card.adaptive",
        "value": {"a": "b"},
    }


# -- fix 5: replies and proactive messages without msrest's value-by-value walk -------------------

GOLDEN = Path(__file__).resolve().parents[1] / "cards" / "golden"


def outgoing_activities(service_url: str) -> list[Activity]:
    """Activities as the bot sends them: cards (every golden one), and values msrest must still
    convert itself (a date and a model in channelData, a number-keyed dict)."""
    reference = TurnContext.get_conversation_reference(
        Activity().deserialize(make_message("x", service_url=service_url))
    )
    activities = []
    for path in sorted(GOLDEN.glob("*.json")):
        activity = card_message(json.loads(path.read_text()))
        activities.append(TurnContext.apply_conversation_reference(activity, reference))
    odd = card_message(message_card("Odd", "values"))
    odd.channel_data = {
        "at": datetime(2026, 11, 23, 8, 5, tzinfo=UTC),
        "account": ChannelAccount(id="29:x", name="X"),
        "numbers": {1: "one"},
        "nested": [{"a": [1, 2.5, True, None, "b"]}],
    }
    activities.append(TurnContext.apply_conversation_reference(odd, reference))
    # Shapes the model walk must write as msrest does, or leave to msrest.
    incoming = Activity().deserialize(
        {
            **make_message("x", service_url=service_url),
            "entities": [{"type": "clientInfo", "timezone": "Europe/Berlin", "locale": "de-DE"}],
        }
    )
    shapes = [
        # Entities read from Teams (unknown fields), an enum in a text field, a group chat.
        Activity(
            type=ActivityTypes.message,
            text="hi",
            input_hint=InputHints.accepting_input,
            entities=incoming.entities,
            conversation=ConversationAccount(id="19:g@thread.v2", is_group=True, tenant_id="t"),
            suggested_actions=SuggestedActions(
                to=["29:a"], actions=[CardAction(type="imBack", title="Yes", value="yes")]
            ),
        ),
        Activity(type=ActivityTypes.typing),
        # A date (msrest writes ISO 8601), a dict where a model belongs, a number for text.
        Activity(type="message", timestamp=datetime(2026, 11, 23, 8, 5, tzinfo=UTC)),
        Activity(type="message", recipient={"id": "29:r", "name": "R"}),  # type: ignore[arg-type]
        Activity(type="message", text=5),  # type: ignore[arg-type]
    ]
    activities.extend(TurnContext.apply_conversation_reference(a, reference) for a in shapes)
    return activities


async def test_a_kept_client_serializes_every_activity_as_msrest_does(
    http: aiohttp.ClientSession,
) -> None:
    adapter = build_adapter(settings(), http=http)
    async with CountingConnector() as connector:
        client = await reply_turn(adapter, connector.service_url)
        activities = outgoing_activities(connector.service_url)
    stock = Serializer(client._serialize.dependencies)

    assert len(activities) > 50
    for activity in activities:
        assert client.conversations._serialize.body(activity, "Activity") == stock.body(
            activity, "Activity"
        )
    parameters = ConversationParameters(
        is_group=False,
        bot=ChannelAccount(id="28:bot"),
        members=[ChannelAccount(id="29:m")],
        channel_data={"tenant": {"id": "t"}},
        activity=activities[0],
    )
    ours = client.conversations._serialize.body(parameters, "ConversationParameters")
    assert ours == stock.body(parameters, "ConversationParameters")


async def test_a_card_reply_is_written_without_msrests_model_passes(
    http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """msrest's `body` rebuilds, validates and walks the activity; the kept clients' does not
    for an activity of plain values (a card reply)."""
    bodies: list[str] = []
    stock_body = Serializer.body

    def counting(self: Serializer, data: Any, data_type: str, **kwargs: Any) -> Any:
        bodies.append(data_type)
        return stock_body(self, data, data_type, **kwargs)

    monkeypatch.setattr(Serializer, "body", counting)
    adapter = build_adapter(settings(), http=http)
    async with CountingConnector() as connector:
        await reply_turn(adapter, connector.service_url)
        bodies.clear()
        await reply_turn(adapter, connector.service_url)

    assert connector.state.counts["reply"] == 2
    assert bodies == [], f"msrest's body() wrote {bodies} for a plain card reply"


# -- fix 6: the copy of every reply ---------------------------------------------------------------


class CapturingAdapter(BotAdapter):
    """Where `TurnContext.send_activities` hands the activities it built."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Activity] = []

    async def send_activities(self, context: TurnContext, activities: list[Activity]) -> Any:
        self.sent.extend(activities)
        return [ResourceResponse(id=str(i)) for i, _ in enumerate(activities)]

    async def update_activity(self, context: TurnContext, activity: Activity) -> Any:
        raise NotImplementedError

    async def delete_activity(self, context: TurnContext, reference: Any) -> None:
        raise NotImplementedError


async def test_a_reply_shares_its_card_instead_of_deep_copying_it() -> None:
    adapter = CapturingAdapter()
    activity = make_message("x", service_url="https://smba.example/")
    context = TurnContext(adapter, Activity().deserialize(activity))
    reply = card_message(message_card("Hello", "again"))
    card = reply.attachments[0].content

    await context.send_activity(reply)

    [sent] = adapter.sent
    assert sent is not reply, "botbuilder no longer copies the activity: remove fix 6"
    assert sent.attachments[0].content is card, "the card was deep-copied for the reply"
    assert sent.attachments[0].content == message_card("Hello", "again")


async def test_a_card_reply_skips_msrests_value_by_value_walk(
    http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    walked: list[Any] = []
    stock_walk = Serializer.serialize_object

    def counting(self: Serializer, attr: Any, **kwargs: Any) -> Any:
        walked.append(attr)
        return stock_walk(self, attr, **kwargs)

    monkeypatch.setattr(Serializer, "serialize_object", counting)
    adapter = build_adapter(settings(), http=http)
    async with CountingConnector() as connector:
        client = await reply_turn(adapter, connector.service_url)
        walked.clear()
        await reply_turn(adapter, connector.service_url)

    assert connector.state.counts["reply"] == 2
    assert isinstance(client.conversations._serialize, PlainJsonSerializer), (
        "kept connector clients serialize through msrest's stock Serializer again"
    )
    assert walked == [], f"msrest walked {len(walked)} values of a plain card reply"


# -- fix 5 again: the conversation reference each turn stores ------------------------------------


def test_a_turns_conversation_reference_is_written_as_msrest_writes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service_url = "https://smba.trafficmanager.net/emea/"
    activities = [
        make_message("hi", service_url=service_url),
        make_message("hi", service_url=service_url, user=ALEX, conversation=GROUP_CHAT),
        make_card_action("request.show", {"request": "x"}, service_url=service_url),
    ]
    references = [
        TurnContext.get_conversation_reference(Activity().deserialize(raw)) for raw in activities
    ]
    stock = [reference.serialize() for reference in references]

    def fail(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the reference went through msrest")

    monkeypatch.setattr(Model, "serialize", fail)
    assert [model_json(reference) for reference in references] == stock
    assert stock[1]["conversation"]["isGroup"] is True and stock[1]["user"]["aadObjectId"]


async def test_an_invoke_answer_shares_its_card_instead_of_deep_copying_it() -> None:
    adapter = CapturingAdapter()
    activity = make_card_action("x", {}, service_url="https://smba.example/")
    context = TurnContext(adapter, Activity().deserialize(activity))
    answer = card_invoke_response(message_card("Hello", "again"))
    card = answer.body.value

    # As botbuilder's ActivityHandler sends what on_invoke_activity returned.
    await context.send_activity(Activity(type=ActivityTypes.invoke_response, value=answer))

    [sent] = adapter.sent
    assert sent.value is not answer, "botbuilder no longer copies the answer: remove the fix"
    assert sent.value.body.value is card, "the card was deep-copied for the invoke's answer"
    assert invoke_body(sent.value.body)["value"] == message_card("Hello", "again")


# -- fix 7: reading each activity ----------------------------------------------------------------

TEAMS_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "teams"


def incoming_payloads() -> list[dict[str, Any]]:
    """Activities as Teams sends them (the recorded fixtures and the test builders)."""
    service_url = "https://smba.trafficmanager.net/emea/"
    recorded = [json.loads(path.read_text()) for path in sorted(TEAMS_FIXTURES.glob("*.json"))]
    built = [
        make_message("hi", service_url=service_url),
        make_message("book", service_url=service_url, user=ALEX, conversation=GROUP_CHAT),
        make_card_action(
            "request.decide", {"request": "x", "n": [1, None]}, service_url=service_url
        ),
    ]
    return recorded + built


def odd_payloads() -> list[dict[str, Any]]:
    """Values msrest converts or refuses itself: the fast reading leaves them to it."""
    base = make_message("hi", service_url="https://smba.example/")
    return [
        {**base, "text": 5},  # msrest writes "5"
        {**base, "conversation": {**base["conversation"], "isGroup": "true"}},
        {**base, "timestamp": "not a date"},
        {**base, "attachments": {"not": "a list"}},
        {**base, "from": "29:a"},
        {**base, "entities": [None, {"type": "clientInfo"}]},
    ]


def test_an_activity_is_read_as_msrest_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = incoming_payloads()
    stock = [Activity().deserialize(payload) for payload in payloads]
    assert len(payloads) >= 8 and all(payload.get("timestamp") for payload in payloads[:5])
    for payload in odd_payloads():
        try:
            expected: Any = Activity().deserialize(payload)
        except Exception as error:  # msrest refuses it: so must the fast reading
            with pytest.raises(type(error)):
                activity_from_json(payload)
        else:
            assert activity_from_json(payload) == expected

    def fail(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a Teams activity went through msrest's Deserializer")

    monkeypatch.setattr(Model, "deserialize", fail)
    fast = [activity_from_json(payload) for payload in payloads]
    assert fast == stock
    assert fast[0].additional_properties or any(a.conversation.additional_properties for a in fast)
