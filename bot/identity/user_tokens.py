"""The signed-in user's Microsoft Graph token, from the bot's OAuth connection."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.identity.claims import unverified_claims
from bot.identity.errors import IdentityError, SignInRequired
from bot.identity.msal_tokens import AppIdentity
from bot.identity.token_service import (
    BotTokenService,
    SignInResource,
    UserToken,
    token_exchange_state,
)
from bot.models import Actor

logger = logging.getLogger(__name__)

GRAPH_SCOPES = ("https://graph.microsoft.com/.default",)
# A kept token is used until this long before it expires.
_TOKEN_MARGIN = timedelta(minutes=5)
_TOKEN_CACHE_SIZE = 10_000
# Audiences of Microsoft Graph access tokens: the app id, or a cloud's Graph URL.
_GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


def _user_key(actor: Actor) -> str:
    return f"{actor.tenant_id}:{actor.user_id}"


def is_graph_token(token: str, graph_resource: str = "https://graph.microsoft.com") -> bool:
    """Whether the token is for Microsoft Graph itself (else it is for the bot's own API).

    `graph_resource` is the cloud's Graph (`https://microsoftgraph.chinacloudapi.cn`, say).
    """
    claims = unverified_claims(token)
    if claims is None:
        return True  # opaque tokens cannot be exchanged; use them as they are
    audience = str(claims.get("aud", "")).rstrip("/")
    return (
        audience == _GRAPH_APP_ID
        or audience == graph_resource.rstrip("/")
        or audience.startswith("https://graph.")
    )


class UserTokens:
    """Gets a Graph token for the acting user: straight from the OAuth connection when it
    yields a Graph token, else on behalf of the user from the token for the bot's own API."""

    def __init__(
        self,
        token_service: BotTokenService,
        *,
        connection_name: str,
        app_identity: AppIdentity | None,
        app_id: str = "",
        graph_scopes: tuple[str, ...] = GRAPH_SCOPES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._clock = clock
        self._tokens: dict[tuple[str, str], UserToken] = {}
        self._app_id = app_id
        self._service = token_service
        self._connection = connection_name
        self._app = app_identity
        self._scopes = graph_scopes

    @property
    def connection_name(self) -> str:
        return self._connection

    async def graph_token(self, actor: Actor) -> str:
        """The user's Graph token; SignInRequired when the user has not signed in."""
        user_token = await self._user_token(actor)
        if is_graph_token(user_token.token, self._scopes[0].removesuffix("/.default")):
            return user_token.token
        if self._app is None:
            raise IdentityError(
                "the OAuth connection gives a token for the bot's API, and exchanging it for "
                "Graph needs MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD"
            )
        return await self._app.on_behalf_of(_user_key(actor), user_token.token, list(self._scopes))

    async def _user_token(self, actor: Actor) -> UserToken:
        """The connection's token for the user, kept until shortly before it expires (one
        token-service round trip per user and hour, not several per turn)."""
        key = (actor.channel_id, actor.channel_user_id or actor.user_id)
        now = self._clock()
        cached = self._tokens.get(key)
        if cached is not None and cached.expiration is not None:
            if cached.expiration - now > _TOKEN_MARGIN:
                return cached
        user_token = await self._service.get_user_token(
            user_id=key[1], connection_name=self._connection, channel_id=key[0]
        )
        if user_token is None:
            self._tokens.pop(key, None)
            raise SignInRequired(self._connection)
        self._tokens[key] = user_token
        if len(self._tokens) > _TOKEN_CACHE_SIZE:
            self._tokens.pop(next(iter(self._tokens)))
        return user_token

    def _who(self, actor: Actor) -> dict[str, str]:
        return {
            "user_id": actor.channel_user_id or actor.user_id,
            "connection_name": self._connection,
            "channel_id": actor.channel_id,
        }

    async def sign_in_resource(
        self, actor: Actor, conversation_reference: Mapping[str, Any]
    ) -> SignInResource:
        """The sign-in link and token-exchange resource for a sign-in card or loginRequest."""
        state = token_exchange_state(
            connection_name=self._connection,
            app_id=self._app_id,
            conversation=conversation_reference,
        )
        return await self._service.get_sign_in_resource(
            connection_name=self._connection, state=state
        )

    async def exchange(self, actor: Actor, sso_token: str) -> bool:
        """Trade the Teams SSO token for a token of the connection (False: show a sign-in card)."""
        token = await self._service.exchange_token(sso_token=sso_token, **self._who(actor))
        return token is not None

    async def redeem_code(self, actor: Actor, magic_code: str) -> bool:
        """Finish a sign-in with the code the sign-in page gave back."""
        token = await self._service.get_user_token(magic_code=magic_code, **self._who(actor))
        return token is not None

    async def sign_out(self, actor: Actor) -> None:
        """Sign out at the token service and forget every token Frontdesk kept for the user."""
        await self._service.sign_out(**self._who(actor))
        self._tokens.pop((actor.channel_id, actor.channel_user_id or actor.user_id), None)
        if self._app is not None:
            await self._app.forget(_user_key(actor))
