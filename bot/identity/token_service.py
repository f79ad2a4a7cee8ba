"""Client of the Bot Framework token service: users' tokens per Azure Bot OAuth connection.

The wire format follows botframework-connector 4.17.1 (`token_api/aio/operations_async/
_user_token_operations_async.py`, `_bot_sign_in_operations_async.py`, `token_api/models/
_models_py3.py`): the same paths, query parameters, bodies and accepted statuses.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bot.identity.errors import TokenServiceError

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://token.botframework.com"
# The token API's only version; GetToken and SignOut send it, exchange and GetSignInResource do not.
API_VERSION = "token"
_JSON_UTF8 = "application/json; charset=utf-8"
# Error codes are echoed into messages only when they look like codes, never free text.
_SAFE_CODE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True, repr=False)
class UserToken:
    """A user's token for one OAuth connection; its repr never shows the token."""

    token: str
    expiration: datetime | None
    connection_name: str

    def __repr__(self) -> str:
        return (
            f"UserToken(connection_name={self.connection_name!r}, "
            f"expiration={self.expiration!r}, token=<hidden>)"
        )


@dataclass(frozen=True)
class SignInResource:
    """What an OAuthCard needs: the sign-in link and the SSO token exchange resource."""

    sign_in_link: str
    token_exchange_id: str | None
    token_exchange_uri: str | None
    token_exchange_provider_id: str | None = None


def token_exchange_state(
    *,
    connection_name: str,
    app_id: str,
    conversation: Mapping[str, Any],
    relates_to: Mapping[str, Any] | None = None,
) -> str:
    """The `state` for GetSignInResource: base64 of a TokenExchangeState, as botbuilder builds it.

    `conversation` is the activity's conversation reference as JSON (activityId, user, bot,
    conversation, channelId, locale, serviceUrl).
    """
    state: dict[str, Any] = {"connectionName": connection_name, "conversation": dict(conversation)}
    if relates_to is not None:
        state["relatesTo"] = dict(relates_to)
    state["msAppId"] = app_id
    return base64.b64encode(json.dumps(state).encode("utf-8")).decode("ascii")


class BotTokenService:
    """The token service's user-token and sign-in operations, over one shared ClientSession."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str = DEFAULT_BASE_URL,
        app_token: Callable[[], Awaitable[str | None]],
        timeout: float = 10.0,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._app_token = app_token
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:
        return f"BotTokenService(base_url={self._base_url!r})"

    async def get_user_token(
        self,
        *,
        user_id: str,
        connection_name: str,
        channel_id: str,
        magic_code: str | None = None,
    ) -> UserToken | None:
        """The user's stored token (a `magic_code` completes a sign-in); None if there is none."""
        params = {"userId": user_id, "connectionName": connection_name, "channelId": channel_id}
        if magic_code is not None:
            params["code"] = magic_code
        params["api-version"] = API_VERSION
        status, body = await self._send("GET", "/api/usertoken/GetToken", "GetToken", params)
        if status == 404:
            return None
        if status != 200:
            raise self._failure(status, "GetToken", body)
        return _user_token(body, connection_name)

    async def exchange_token(
        self, *, user_id: str, connection_name: str, channel_id: str, sso_token: str
    ) -> UserToken | None:
        """Exchange a Teams SSO token for the connection's token; None when it cannot be.

        None means Teams must fall back to the sign-in card (answer the invoke with 412). The
        service answers 400 when the exchange is refused (consent missing, wrong audience).
        """
        params = {"userId": user_id, "connectionName": connection_name, "channelId": channel_id}
        body = json.dumps({"token": sso_token}).encode("utf-8")
        status, answer = await self._send(
            "POST", "/api/usertoken/exchange", "exchange", params, body=body
        )
        if status in (400, 404, 412):
            logger.info(
                "token exchange refused for connection %s: HTTP %s %s",
                connection_name,
                status,
                _error_code(answer) or "",
            )
            return None
        if status != 200:
            raise self._failure(status, "exchange", answer)
        return _user_token(answer, connection_name)

    async def sign_out(self, *, user_id: str, connection_name: str, channel_id: str) -> None:
        """Forget the user's token for this connection."""
        params = {
            "userId": user_id,
            "connectionName": connection_name,
            "channelId": channel_id,
            "api-version": API_VERSION,
        }
        status, body = await self._send("DELETE", "/api/usertoken/SignOut", "SignOut", params)
        if status not in (200, 204):
            raise self._failure(status, "SignOut", body)

    async def get_sign_in_resource(
        self, *, connection_name: str, state: str, final_redirect: str | None = None
    ) -> SignInResource:
        """The sign-in link and token exchange resource for an OAuthCard.

        `state` is the base64 TokenExchangeState (see `token_exchange_state`); it names the
        connection to the service, `connection_name` only labels logs.
        """
        params = {"state": state}
        if final_redirect is not None:
            params["finalRedirect"] = final_redirect
        status, body = await self._send(
            "GET", "/api/botsignin/GetSignInResource", "GetSignInResource", params
        )
        if status != 200:
            raise self._failure(status, "GetSignInResource", body)
        link = body.get("signInLink") if isinstance(body, dict) else None
        if not isinstance(link, str) or not link:
            logger.warning("GetSignInResource for %s answered without a link", connection_name)
            raise TokenServiceError(200, operation="GetSignInResource", code="NoSignInLink")
        exchange = body.get("tokenExchangeResource")
        exchange = exchange if isinstance(exchange, dict) else {}
        return SignInResource(
            sign_in_link=link,
            token_exchange_id=_text(exchange.get("id")),
            token_exchange_uri=_text(exchange.get("uri")),
            token_exchange_provider_id=_text(exchange.get("providerId")),
        )

    async def _send(
        self,
        method: str,
        path: str,
        operation: str,
        params: Mapping[str, str],
        *,
        body: bytes | None = None,
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = _JSON_UTF8
        app_token = await self._app_token()
        if app_token:
            headers["Authorization"] = f"Bearer {app_token}"
        try:
            async with self._session.request(
                method,
                self._base_url + path,
                params=params,
                data=body,
                headers=headers,
                timeout=self._timeout,
            ) as response:
                status = response.status
                raw = await response.read()
        except TimeoutError:
            logger.warning("Bot Framework token service timed out on %s", operation)
            raise TokenServiceError(None, operation=operation, code="Timeout") from None
        except aiohttp.ClientError as exc:
            # The exception text can carry the URL, and with it a magic code: name the type only.
            logger.warning(
                "Bot Framework token service unreachable on %s: %s", operation, type(exc).__name__
            )
            raise TokenServiceError(None, operation=operation, code=type(exc).__name__) from None
        return status, _json(raw)

    @staticmethod
    def _failure(status: int, operation: str, body: Any) -> TokenServiceError:
        code = _error_code(body)
        logger.warning(
            "Bot Framework token service answered %s with HTTP %s %s", operation, status, code or ""
        )
        return TokenServiceError(status, operation=operation, code=code)


def _user_token(body: Any, connection_name: str) -> UserToken | None:
    """A TokenResponse as a UserToken; None when it holds no token."""
    if not isinstance(body, dict):
        return None
    token = body.get("token")
    if not isinstance(token, str) or not token:
        return None
    name = body.get("connectionName")
    return UserToken(
        token=token,
        expiration=_expiration(body.get("expiration")),
        connection_name=name if isinstance(name, str) and name else connection_name,
    )


def _expiration(value: Any) -> datetime | None:
    """The TokenResponse expiration (ISO 8601 text, .NET style); naive times are UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _error_code(body: Any) -> str | None:
    """The `error.code` of an ErrorResponse body, when it looks like a code."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and _SAFE_CODE.match(code) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
