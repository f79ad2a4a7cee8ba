"""A fake Bot Framework token service (https://token.botframework.com) on 127.0.0.1.

It speaks the wire format botframework-connector 4.17.1 uses (`token_api/aio/operations_async/`):

- `GET /api/usertoken/GetToken?userId&connectionName&channelId[&code]&api-version=token`:
  200 TokenResponse `{channelId, connectionName, token, expiration}`, 404 when there is none;
- `POST /api/usertoken/exchange?userId&connectionName&channelId` with TokenExchangeRequest
  `{"token": ..., "uri"?: ...}`: 200 TokenResponse, or 400 ErrorResponse when it cannot exchange;
- `DELETE /api/usertoken/SignOut?userId[&connectionName]&channelId&api-version=token`: 200;
- `GET /api/botsignin/GetSignInResource?state[&finalRedirect]`: 200 SignInUrlResponse
  `{signInLink, tokenExchangeResource: {id, uri, providerId}, tokenPostResource: {sasUrl}}`;
- `GET /api/usertoken/GetTokenStatus?userId[&channelId][&include]&api-version=token`: 200 and a
  TokenStatus `{channelId, connectionName, hasToken, serviceProviderDisplayName}` for each of the
  bot's connections (those named in the comma-separated `include`, else all), for any user id.

Errors are ErrorResponse `{"error": {"code", "message"}}`. Tests sign users in per connection,
register SSO tokens that exchange, and read back the requests with the Authorization header each
carried. With `expected_app_token` set, a request without that bearer token answers 401.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from tests.support.local_server import LocalServer, parse_body

CHANNEL = "msteams"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the token service received."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    authorization: str | None
    content_type: str | None


@dataclass
class Connection:
    """An OAuth connection setting on the Azure Bot, as far as SSO needs it."""

    name: str
    token_exchange_uri: str | None = None
    provider_id: str = "30dd229c-58e3-4a48-bdfd-91ec48eb906c"  # Azure AD v2's provider id
    exchangeable: dict[str, str] = field(default_factory=dict)
    """SSO token -> the token an exchange of it yields."""
    magic_codes: dict[tuple[str, str], str] = field(default_factory=dict)
    """(user id, magic code) -> the token that completing that sign-in stores."""
    service_provider_display_name: str = "Azure Active Directory v2"


class FakeTokenService(LocalServer):
    """Keeps users' tokens per connection and answers like the Bot Framework token service."""

    def __init__(self, *, host: str = "127.0.0.1", expected_app_token: str | None = None) -> None:
        super().__init__(host=host)
        self.expected_app_token = expected_app_token
        self.connections: dict[str, Connection] = {}
        self.tokens: dict[tuple[str, str, str], tuple[str, datetime]] = {}
        """(user id, connection, channel) -> (token, expiration)."""
        self.requests: list[RecordedRequest] = []
        self.fail_with: int | None = None
        """When set, every request answers this status with an ErrorResponse."""
        self.delay: float = 0.0
        """Seconds to wait before answering (to test timeouts)."""

    # -- lifecycle ---------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/usertoken/GetToken", self._get_token)
        app.router.add_post("/api/usertoken/exchange", self._exchange)
        app.router.add_delete("/api/usertoken/SignOut", self._sign_out)
        app.router.add_get("/api/botsignin/GetSignInResource", self._sign_in_resource)
        app.router.add_get("/api/usertoken/GetTokenStatus", self._token_status)
        app.router.add_route("*", "/{tail:.*}", self._unknown)

    @property
    def base_url(self) -> str:
        """The BOT_OAUTH_URL to point the bot at."""
        return self.origin

    # -- arrange -----------------------------------------------------------------------
    def add_connection(self, name: str, *, token_exchange_uri: str | None = None) -> Connection:
        connection = Connection(name=name, token_exchange_uri=token_exchange_uri)
        self.connections[name] = connection
        return connection

    def sign_in(
        self,
        user_id: str,
        connection_name: str,
        token: str,
        *,
        channel_id: str = CHANNEL,
        expires_in: timedelta = timedelta(hours=1),
    ) -> None:
        """Store a token as if the user had completed sign-in for this connection."""
        self._connection(connection_name)
        expiration = datetime.now(UTC).replace(microsecond=0) + expires_in
        self.tokens[(user_id, connection_name, channel_id)] = (token, expiration)

    def allow_exchange(self, connection_name: str, sso_token: str, yields: str) -> None:
        """Exchanging `sso_token` on this connection succeeds and yields token `yields`."""
        self._connection(connection_name).exchangeable[sso_token] = yields

    def pending_sign_in(self, user_id: str, connection_name: str, code: str, token: str) -> None:
        """A sign-in that GetToken with this magic code completes."""
        self._connection(connection_name).magic_codes[(user_id, code)] = token

    def _connection(self, name: str) -> Connection:
        return self.connections.get(name) or self.add_connection(name)

    # -- handlers ----------------------------------------------------------------------
    async def _record(self, request: web.Request) -> RecordedRequest:
        payload, _ = parse_body(await request.read())
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            json=payload,
            authorization=request.headers.get("Authorization"),
            content_type=request.headers.get("Content-Type"),
        )
        self.requests.append(recorded)
        if self.delay:
            await asyncio.sleep(self.delay)
        return recorded

    def _refused(self, recorded: RecordedRequest) -> web.Response | None:
        if self.fail_with is not None:
            return _error(self.fail_with, "ServiceError", "The service failed.")
        if self.expected_app_token is not None and (
            recorded.authorization != f"Bearer {self.expected_app_token}"
        ):
            return _error(401, "Unauthorized", "Authorization has been denied for this request.")
        return None

    async def _get_token(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        if (refused := self._refused(recorded)) is not None:
            return refused
        query = recorded.query
        missing = _missing(query, "userId", "connectionName")
        if missing:
            return missing
        user_id, name = query["userId"], query["connectionName"]
        channel = query.get("channelId", CHANNEL)
        connection = self.connections.get(name)
        code = query.get("code")
        if connection is not None and code is not None:
            token = connection.magic_codes.pop((user_id, code), None)
            if token is not None:
                self.sign_in(user_id, name, token, channel_id=channel)
        stored = self.tokens.get((user_id, name, channel))
        if stored is None:
            return _error(404, "NotFound", "No token found for this user and connection.")
        return _token_response(channel, name, *stored)

    async def _exchange(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        if (refused := self._refused(recorded)) is not None:
            return refused
        query = recorded.query
        missing = _missing(query, "userId", "connectionName", "channelId")
        if missing:
            return missing
        user_id, name, channel = query["userId"], query["connectionName"], query["channelId"]
        body = recorded.json if isinstance(recorded.json, dict) else {}
        sso_token = body.get("token")
        connection = self.connections.get(name)
        yields = connection.exchangeable.get(sso_token) if connection and sso_token else None
        if yields is None:
            return _error(
                400,
                "ServiceError",
                "Token exchange failed for this connection: the token could not be exchanged.",
            )
        self.sign_in(user_id, name, yields, channel_id=channel)
        return _token_response(channel, name, *self.tokens[(user_id, name, channel)])

    async def _sign_out(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        if (refused := self._refused(recorded)) is not None:
            return refused
        query = recorded.query
        missing = _missing(query, "userId")
        if missing:
            return missing
        user_id, name = query["userId"], query.get("connectionName")
        channel = query.get("channelId")
        for key in list(self.tokens):
            if key[0] == user_id and name in (None, key[1]) and channel in (None, key[2]):
                del self.tokens[key]
        return web.json_response({})

    async def _sign_in_resource(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        if (refused := self._refused(recorded)) is not None:
            return refused
        state = _decode_state(recorded.query.get("state", ""))
        name = state.get("connectionName") if state else None
        if not isinstance(name, str) or name not in self.connections:
            return _error(400, "BadArgument", "The state does not name a known connection.")
        connection = self.connections[name]
        sign_in = secrets.token_urlsafe(16)
        link = f"{self.base_url}/api/oauth/signin?signin={sign_in}"
        if "finalRedirect" in recorded.query:
            link += "&finalRedirect=" + recorded.query["finalRedirect"]
        answer: dict[str, Any] = {"signInLink": link}
        if connection.token_exchange_uri is not None:
            answer["tokenExchangeResource"] = {
                "id": str(uuid.uuid4()),
                "uri": connection.token_exchange_uri,
                "providerId": connection.provider_id,
            }
        answer["tokenPostResource"] = {"sasUrl": f"{self.base_url}/api/tokenpost/{sign_in}"}
        return web.json_response(answer)

    async def _token_status(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        if (refused := self._refused(recorded)) is not None:
            return refused
        query = recorded.query
        missing = _missing(query, "userId")
        if missing:
            return missing
        user_id, channel = query["userId"], query.get("channelId", CHANNEL)
        wanted = {name.strip() for name in query.get("include", "").split(",") if name.strip()}
        return web.json_response(
            [
                {
                    "channelId": channel,
                    "connectionName": name,
                    "hasToken": (user_id, name, channel) in self.tokens,
                    "serviceProviderDisplayName": connection.service_provider_display_name,
                }
                for name, connection in self.connections.items()
                if not wanted or name in wanted
            ]
        )

    async def _unknown(self, request: web.Request) -> web.Response:
        await self._record(request)
        return _error(404, "NotFound", "No such route.")


def _decode_state(state: str) -> dict[str, Any] | None:
    try:
        decoded = json.loads(base64.b64decode(state, validate=True))
    except (ValueError, binascii.Error):
        return None
    return decoded if isinstance(decoded, dict) else None


def _missing(query: dict[str, str], *names: str) -> web.Response | None:
    absent = [name for name in names if not query.get(name)]
    if absent:
        return _error(400, "BadArgument", f"Missing parameter: {', '.join(absent)}.")
    return None


def _token_response(channel: str, name: str, token: str, expiration: datetime) -> web.Response:
    return web.json_response(
        {
            "channelId": channel,
            "connectionName": name,
            "token": token,
            # .NET's round-trip format, as the service writes DateTimeOffset values.
            "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%S.0000000+00:00"),
        }
    )


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
