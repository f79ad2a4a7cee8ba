"""The signed-in user's Microsoft Graph token, from the bot's OAuth connection."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from bot.identity.errors import IdentityError, SignInRequired
from bot.identity.msal_tokens import AppIdentity
from bot.identity.token_service import BotTokenService
from bot.models import Actor

logger = logging.getLogger(__name__)

GRAPH_SCOPES = ("https://graph.microsoft.com/.default",)
# Audiences of Microsoft Graph access tokens: the app id, or a cloud's Graph URL.
_GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


def _claims(token: str) -> dict[str, Any] | None:
    """The unverified claims of a JWT (None for an opaque token). Used only to route it."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def is_graph_token(token: str) -> bool:
    """Whether the token is for Microsoft Graph itself (else it is for the bot's own API)."""
    claims = _claims(token)
    if claims is None:
        return True  # opaque tokens cannot be exchanged; use them as they are
    audience = str(claims.get("aud", ""))
    return audience == _GRAPH_APP_ID or audience.startswith("https://graph.")


class UserTokens:
    """Gets a Graph token for the acting user: straight from the OAuth connection when it
    yields a Graph token, else on behalf of the user from the token for the bot's own API."""

    def __init__(
        self,
        token_service: BotTokenService,
        *,
        connection_name: str,
        app_identity: AppIdentity | None,
        graph_scopes: tuple[str, ...] = GRAPH_SCOPES,
    ) -> None:
        self._service = token_service
        self._connection = connection_name
        self._app = app_identity
        self._scopes = graph_scopes

    @property
    def connection_name(self) -> str:
        return self._connection

    async def graph_token(self, actor: Actor) -> str:
        """The user's Graph token; SignInRequired when the user has not signed in."""
        user_token = await self._service.get_user_token(
            user_id=actor.channel_user_id or actor.user_id,
            connection_name=self._connection,
            channel_id=actor.channel_id,
        )
        if user_token is None:
            raise SignInRequired(self._connection)
        if is_graph_token(user_token.token):
            return user_token.token
        if self._app is None:
            raise IdentityError(
                "the OAuth connection gives a token for the bot's API, and exchanging it for "
                "Graph needs MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD"
            )
        return await self._app.on_behalf_of(
            f"{actor.tenant_id}:{actor.user_id}", user_token.token, list(self._scopes)
        )
