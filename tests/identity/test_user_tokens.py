"""How the user's Graph token is obtained: straight from the OAuth connection when it is a
Graph token, else on behalf of the user from the token for the bot's own API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import aiohttp
import pytest

from bot.identity import AppIdentity, BotTokenService, MemoryTokenCacheStore
from bot.identity.errors import IdentityError, SignInRequired
from bot.identity.user_tokens import UserTokens, is_graph_token
from tests.conftest import make_actor
from tests.support.fake_entra import FakeEntra, unsigned_jwt
from tests.support.fake_token_service import FakeTokenService

CONNECTION = "graph"
ACTOR = replace(make_actor("oid-megan"), channel_user_id="29:megan")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class Setup:
    tokens: FakeTokenService
    entra: FakeEntra
    service: BotTokenService
    identity: AppIdentity


async def _no_app_token() -> str | None:
    return None


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    entra = FakeEntra()
    async with FakeTokenService() as tokens, aiohttp.ClientSession() as http:
        tokens.add_connection(CONNECTION)
        identity = AppIdentity(
            client_id=entra.client_id,
            client_secret=entra.client_secret,
            tenant_id=entra.tenant_id,
            authority_host=entra.authority_host,
            http_client=entra,
            cache_store=MemoryTokenCacheStore(),
        )
        service = BotTokenService(http, base_url=tokens.base_url, app_token=_no_app_token)
        yield Setup(tokens, entra, service, identity)
        identity.close()


def test_graph_tokens_are_told_apart_from_tokens_for_the_bots_api() -> None:
    assert is_graph_token(unsigned_jwt({"aud": "https://graph.microsoft.com"}))
    assert is_graph_token(unsigned_jwt({"aud": "00000003-0000-0000-c000-000000000000"}))
    assert is_graph_token(unsigned_jwt({"aud": "https://graph.microsoft.us"}))
    assert not is_graph_token(unsigned_jwt({"aud": "api://frontdesk.example/botid-123"}))
    assert is_graph_token("opaque-token")
    china = "https://microsoftgraph.chinacloudapi.cn"
    assert is_graph_token(unsigned_jwt({"aud": china}), china)
    assert not is_graph_token(unsigned_jwt({"aud": china}))


async def test_a_graph_token_from_the_connection_is_used_as_it_is(setup: Setup) -> None:
    graph_token = unsigned_jwt({"aud": "https://graph.microsoft.com", "oid": "oid-megan"})
    setup.tokens.sign_in("29:megan", CONNECTION, graph_token)
    user_tokens = UserTokens(setup.service, connection_name=CONNECTION, app_identity=setup.identity)

    assert await user_tokens.graph_token(ACTOR) == graph_token
    assert setup.entra.token_requests(JWT_BEARER) == []


async def test_a_token_for_the_bots_api_is_exchanged_on_behalf_of_the_user(setup: Setup) -> None:
    setup.tokens.sign_in("29:megan", CONNECTION, setup.entra.user_assertion("oid-megan"))
    user_tokens = UserTokens(setup.service, connection_name=CONNECTION, app_identity=setup.identity)

    first = await user_tokens.graph_token(ACTOR)
    second = await user_tokens.graph_token(ACTOR)

    assert first in setup.entra.issued and second == first
    assert len(setup.entra.token_requests(JWT_BEARER)) == 1  # the second came from the cache


async def test_without_a_sign_in_the_user_is_asked_to_sign_in(setup: Setup) -> None:
    user_tokens = UserTokens(setup.service, connection_name=CONNECTION, app_identity=None)

    with pytest.raises(SignInRequired):
        await user_tokens.graph_token(ACTOR)


async def test_an_api_token_without_an_app_identity_is_explained(setup: Setup) -> None:
    setup.tokens.sign_in("29:megan", CONNECTION, setup.entra.user_assertion("oid-megan"))
    user_tokens = UserTokens(setup.service, connection_name=CONNECTION, app_identity=None)

    with pytest.raises(IdentityError, match="MICROSOFT_APP_ID"):
        await user_tokens.graph_token(ACTOR)


async def test_the_users_token_is_kept_until_it_nearly_expires(setup: Setup) -> None:
    graph_token = unsigned_jwt({"aud": "https://graph.microsoft.com", "oid": "oid-megan"})
    setup.tokens.sign_in("29:megan", CONNECTION, graph_token)
    user_tokens = UserTokens(setup.service, connection_name=CONNECTION, app_identity=None)

    for _ in range(3):
        assert await user_tokens.graph_token(ACTOR) == graph_token

    asked = [r for r in setup.tokens.requests if r.path == "/api/usertoken/GetToken"]
    assert len(asked) == 1


async def test_signing_out_forgets_every_kept_token(setup: Setup) -> None:
    setup.tokens.sign_in("29:megan", CONNECTION, setup.entra.user_assertion("oid-megan"))
    store = MemoryTokenCacheStore()
    identity = AppIdentity(
        client_id=setup.entra.client_id,
        client_secret=setup.entra.client_secret,
        tenant_id=setup.entra.tenant_id,
        authority_host=setup.entra.authority_host,
        http_client=setup.entra,
        cache_store=store,
    )
    user_tokens = UserTokens(setup.service, connection_name=CONNECTION, app_identity=identity)
    await user_tokens.graph_token(ACTOR)
    assert await store.load(f"{ACTOR.tenant_id}:{ACTOR.user_id}")

    await user_tokens.sign_out(ACTOR)

    assert await store.load(f"{ACTOR.tenant_id}:{ACTOR.user_id}") is None
    with pytest.raises(SignInRequired):
        await user_tokens.graph_token(ACTOR)
    identity.close()
