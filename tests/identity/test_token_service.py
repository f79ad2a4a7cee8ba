"""BotTokenService against a fake token service on 127.0.0.1 that speaks the real wire format."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.errors import FrontdeskError
from bot.identity import (
    BotTokenService,
    IdentityError,
    SignInRequired,
    TokenServiceError,
    UserToken,
    token_exchange_state,
)
from tests.support.fake_token_service import FakeTokenService

APP_TOKEN = "bf-app-token-3f9d2c7e1a"
CONNECTION = "graph"
USER = "29:1a2b3c4d5e6f-teams-user"
CHANNEL = "msteams"
USER_TOKEN = "user-graph-token-7c1e9b0d4f"
SSO_TOKEN = "teams-sso-token-b84e02a6"
EXCHANGE_URI = "api://botid-5d2b9c1e-7a44-4f0e-8d3a-1b2c3d4e5f60"


def fixed_app_token(value: str | None) -> Callable[[], Awaitable[str | None]]:
    async def app_token() -> str | None:
        return value

    return app_token


@pytest.fixture
async def fake() -> AsyncIterator[FakeTokenService]:
    async with FakeTokenService(expected_app_token=APP_TOKEN) as service:
        yield service


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as shared:
        yield shared


@pytest.fixture
def tokens(fake: FakeTokenService, session: aiohttp.ClientSession) -> BotTokenService:
    return BotTokenService(session, base_url=fake.base_url, app_token=fixed_app_token(APP_TOKEN))


def conversation_reference() -> dict[str, object]:
    return {
        "activityId": "1795000000001",
        "user": {"id": USER, "aadObjectId": "00000000-0000-0000-0000-00000000a11c"},
        "bot": {"id": "28:5d2b9c1e-7a44-4f0e-8d3a-1b2c3d4e5f60", "name": "Frontdesk"},
        "conversation": {"id": "a:1personal-chat", "conversationType": "personal"},
        "channelId": CHANNEL,
        "locale": "en-US",
        "serviceUrl": "https://smba.trafficmanager.net/emea/",
    }


async def test_get_user_token_returns_the_signed_in_token(
    fake: FakeTokenService, tokens: BotTokenService
) -> None:
    fake.sign_in(USER, CONNECTION, USER_TOKEN, expires_in=timedelta(minutes=50))

    token = await tokens.get_user_token(
        user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL
    )

    assert token is not None
    assert token.token == USER_TOKEN
    assert token.connection_name == CONNECTION
    assert token.expiration is not None and token.expiration.tzinfo is not None
    assert timedelta(minutes=45) < token.expiration - datetime.now(UTC) <= timedelta(minutes=50)
    [request] = fake.requests
    assert (request.method, request.path) == ("GET", "/api/usertoken/GetToken")
    assert request.query == {
        "userId": USER,
        "connectionName": CONNECTION,
        "channelId": CHANNEL,
        "api-version": "token",
    }
    assert request.authorization == f"Bearer {APP_TOKEN}"


async def test_get_user_token_is_none_when_the_service_answers_404(
    fake: FakeTokenService, tokens: BotTokenService
) -> None:
    token = await tokens.get_user_token(
        user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL
    )

    assert token is None
    assert fake.requests[0].path == "/api/usertoken/GetToken"


async def test_magic_code_completes_a_sign_in(
    fake: FakeTokenService, tokens: BotTokenService
) -> None:
    fake.pending_sign_in(USER, CONNECTION, "482913", USER_TOKEN)

    token = await tokens.get_user_token(
        user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL, magic_code="482913"
    )

    assert token is not None and token.token == USER_TOKEN
    assert fake.requests[0].query["code"] == "482913"
    assert list(fake.requests[0].query) == [
        "userId",
        "connectionName",
        "channelId",
        "code",
        "api-version",
    ]


async def test_exchange_of_a_known_sso_token_stores_and_returns_the_token(
    fake: FakeTokenService, tokens: BotTokenService
) -> None:
    fake.allow_exchange(CONNECTION, SSO_TOKEN, yields=USER_TOKEN)

    token = await tokens.exchange_token(
        user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL, sso_token=SSO_TOKEN
    )
    stored = await tokens.get_user_token(
        user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL
    )

    assert token is not None and token.token == USER_TOKEN
    assert stored is not None and stored.token == USER_TOKEN
    exchange = fake.requests[0]
    assert (exchange.method, exchange.path) == ("POST", "/api/usertoken/exchange")
    assert exchange.query == {"userId": USER, "connectionName": CONNECTION, "channelId": CHANNEL}
    assert exchange.json == {"token": SSO_TOKEN}
    assert exchange.content_type == "application/json; charset=utf-8"
    assert exchange.authorization == f"Bearer {APP_TOKEN}"


async def test_exchange_that_fails_returns_none_so_teams_can_fall_back(
    fake: FakeTokenService, tokens: BotTokenService
) -> None:
    fake.allow_exchange(CONNECTION, SSO_TOKEN, yields=USER_TOKEN)

    token = await tokens.exchange_token(
        user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL, sso_token="some-other-token"
    )

    assert token is None
    assert fake.tokens == {}


async def test_exchange_on_a_service_failure_raises_with_the_status(
    fake: FakeTokenService, tokens: BotTokenService
) -> None:
    fake.fail_with = 503

    with pytest.raises(TokenServiceError) as raised:
        await tokens.exchange_token(
            user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL, sso_token=SSO_TOKEN
        )

    assert raised.value.status == 503
    assert raised.value.operation == "exchange"
    assert raised.value.code == "ServiceError"


async def test_sign_out_removes_the_token(fake: FakeTokenService, tokens: BotTokenService) -> None:
    fake.sign_in(USER, CONNECTION, USER_TOKEN)
    fake.sign_in(USER, "other-connection", "other-token")

    await tokens.sign_out(user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL)

    assert (
        await tokens.get_user_token(user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL)
        is None
    )
    assert (
        await tokens.get_user_token(
            user_id=USER, connection_name="other-connection", channel_id=CHANNEL
        )
        is not None
    )
    sign_out = fake.requests[0]
    assert (sign_out.method, sign_out.path) == ("DELETE", "/api/usertoken/SignOut")
    assert sign_out.query == {
        "userId": USER,
        "connectionName": CONNECTION,
        "channelId": CHANNEL,
        "api-version": "token",
    }


async def test_sign_in_resource_carries_the_link_and_the_exchange_resource(
    fake: FakeTokenService, tokens: BotTokenService
) -> None:
    fake.add_connection(CONNECTION, token_exchange_uri=EXCHANGE_URI)
    state = token_exchange_state(
        connection_name=CONNECTION,
        app_id="5d2b9c1e-7a44-4f0e-8d3a-1b2c3d4e5f60",
        conversation=conversation_reference(),
    )

    resource = await tokens.get_sign_in_resource(
        connection_name=CONNECTION, state=state, final_redirect="https://example.test/done"
    )

    assert resource.sign_in_link.startswith(f"{fake.base_url}/api/oauth/signin?signin=")
    assert resource.token_exchange_uri == EXCHANGE_URI
    assert resource.token_exchange_id
    assert resource.token_exchange_provider_id
    request = fake.requests[0]
    assert (request.method, request.path) == ("GET", "/api/botsignin/GetSignInResource")
    assert request.query == {"state": state, "finalRedirect": "https://example.test/done"}
    decoded = json.loads(base64.b64decode(state))
    assert decoded["connectionName"] == CONNECTION
    assert decoded["msAppId"] == "5d2b9c1e-7a44-4f0e-8d3a-1b2c3d4e5f60"
    assert decoded["conversation"]["user"]["id"] == USER


async def test_sign_in_resource_without_sso_has_no_exchange_resource(
    fake: FakeTokenService, tokens: BotTokenService
) -> None:
    fake.add_connection(CONNECTION)
    state = token_exchange_state(
        connection_name=CONNECTION, app_id="app", conversation=conversation_reference()
    )

    resource = await tokens.get_sign_in_resource(connection_name=CONNECTION, state=state)

    assert resource.token_exchange_uri is None and resource.token_exchange_id is None
    assert "finalRedirect" not in fake.requests[0].query


async def test_sign_in_resource_for_an_unknown_connection_raises(
    fake: FakeTokenService, tokens: BotTokenService
) -> None:
    state = token_exchange_state(
        connection_name="nope", app_id="app", conversation=conversation_reference()
    )

    with pytest.raises(TokenServiceError) as raised:
        await tokens.get_sign_in_resource(connection_name="nope", state=state)

    assert raised.value.status == 400


async def test_local_mode_sends_no_authorization_header(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeTokenService() as fake:
        fake.sign_in(USER, CONNECTION, USER_TOKEN)
        local = BotTokenService(session, base_url=fake.base_url, app_token=fixed_app_token(None))

        token = await local.get_user_token(
            user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL
        )

    assert token is not None
    assert fake.requests[0].authorization is None


async def test_a_refused_app_token_raises_401(
    fake: FakeTokenService, session: aiohttp.ClientSession
) -> None:
    wrong = BotTokenService(
        session, base_url=fake.base_url, app_token=fixed_app_token("not-the-app-token")
    )

    with pytest.raises(TokenServiceError) as raised:
        await wrong.get_user_token(user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL)

    assert raised.value.status == 401
    assert "not-the-app-token" not in str(raised.value)


async def test_a_slow_service_times_out(
    fake: FakeTokenService, session: aiohttp.ClientSession
) -> None:
    fake.delay = 0.5
    impatient = BotTokenService(
        session, base_url=fake.base_url, app_token=fixed_app_token(APP_TOKEN), timeout=0.1
    )

    with pytest.raises(TokenServiceError) as raised:
        await impatient.get_user_token(user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL)

    assert raised.value.status is None
    assert raised.value.code == "Timeout"


async def test_an_unreachable_service_raises_without_the_url(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeTokenService() as fake:
        base_url = fake.base_url  # closed when the block ends: nothing listens there any more
    gone = BotTokenService(session, base_url=base_url, app_token=fixed_app_token(APP_TOKEN))

    with pytest.raises(TokenServiceError) as raised:
        await gone.get_user_token(
            user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL, magic_code="482913"
        )

    assert raised.value.status is None
    assert "482913" not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


async def test_tokens_never_reach_logs_reprs_or_error_messages(
    fake: FakeTokenService, tokens: BotTokenService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.allow_exchange(CONNECTION, SSO_TOKEN, yields=USER_TOKEN)
    errors: list[TokenServiceError] = []

    token = await tokens.exchange_token(
        user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL, sso_token=SSO_TOKEN
    )
    await tokens.exchange_token(
        user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL, sso_token="bad-sso-9e1f"
    )
    fake.fail_with = 500
    for call in (
        tokens.get_user_token(user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL),
        tokens.exchange_token(
            user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL, sso_token=SSO_TOKEN
        ),
        tokens.sign_out(user_id=USER, connection_name=CONNECTION, channel_id=CHANNEL),
    ):
        with pytest.raises(TokenServiceError) as raised:
            await call
        errors.append(raised.value)

    assert isinstance(token, UserToken)
    shown = caplog.text + repr(token) + str(token) + "".join(f"{e!s}{e!r}" for e in errors)
    for secret in (USER_TOKEN, SSO_TOKEN, "bad-sso-9e1f", APP_TOKEN):
        assert secret not in shown
    assert "<hidden>" in repr(token)
    assert [e.status for e in errors] == [500, 500, 500]


def test_identity_errors_are_frontdesk_errors_with_admin_safe_messages() -> None:
    missing = SignInRequired(CONNECTION)

    assert isinstance(missing, IdentityError) and isinstance(missing, FrontdeskError)
    assert str(missing) == "the user is not signed in to the OAuth connection 'graph'"
    assert str(TokenServiceError(None, operation="GetToken", code="Timeout")) == (
        "the Bot Framework token service did not answer GetToken (Timeout)"
    )
    assert str(TokenServiceError(502, operation="SignOut")) == (
        "the Bot Framework token service answered SignOut with HTTP 502"
    )
