"""Authentication of `/api/messages` with an app id: a forged or missing token is 401, never 500.

botbuilder checks incoming tokens against the keys of an OpenID metadata document; here that
document and its keys are served on 127.0.0.1 (from a thread: botbuilder fetches them with a
blocking `requests.get`), BOT_OPENID_METADATA_URL and BOT_TOKEN_ISSUER point at it, and tokens
are minted with PyJWT. The bot's own outgoing token comes from a stand-in credentials factory,
so replies reach the fake connector without Microsoft Entra ID.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from botframework.connector.auth import (
    AppCredentials,
    AuthenticationConstants,
    JwtTokenExtractor,
    PasswordServiceClientCredentialFactory,
)
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import text

from app import COMPONENTS, Seams, create_app
from bot.config import DEFAULT_ROOMS_FILE, load_settings
from bot.teams_adapter import SdkConfiguration
from tests.conftest import FakeClock
from tests.support.activities import make_message
from tests.support.fake_connector import FakeConnector

APP_ID = "0e7c5a52-6f1d-4b3a-9d8e-1c2b3a4d5e6f"
APP_TENANT = "3b1f6a2c-0000-4d5e-8f9a-0b1c2d3e4f5a"
KEY_ID = "frontdesk-test-key"
WEBCHAT_KEY_ID = "webchat-only-key"  # a key that endorses another channel, not msteams
# An issuer botbuilder takes for the Bot Framework Emulator (or a skill), whatever the settings say.
EMULATOR_ISSUER = "https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/"
# The app under test: an app id (not local mode), on loopback, with the local room directory.
APP_SETTINGS = {
    "HOST": "127.0.0.1",
    "MICROSOFT_APP_ID": APP_ID,
    "MICROSOFT_APP_PASSWORD": "test-secret",
    "MICROSOFT_APP_TYPE": "SingleTenant",
    "MICROSOFT_APP_TENANT_ID": APP_TENANT,
    "DIRECTORY": "local",
    "ROOMS_FILE": str(DEFAULT_ROOMS_FILE),
    "ALLOWED_TENANTS": "",
}


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


OUR_KEY = _rsa_key()
WEBCHAT_KEY = _rsa_key()
ATTACKER_KEY = _rsa_key()


class KeyServer:
    """OpenID metadata and a JWKS on 127.0.0.1, served from a thread."""

    def __init__(self) -> None:
        jwks = {
            "keys": [
                _jwk(OUR_KEY, KEY_ID, ["msteams", "webchat"]),
                _jwk(WEBCHAT_KEY, WEBCHAT_KEY_ID, ["webchat"]),
            ]
        }
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path == "/.well-known/openidconfiguration":
                    body = {"issuer": server.issuer, "jwks_uri": f"{server.url}/keys"}
                elif self.path == "/keys":
                    body = jwks
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.issuer = f"{self.url}/issuer"
        self.metadata_url = f"{self.url}/.well-known/openidconfiguration"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> KeyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _jwk(key: rsa.RSAPrivateKey, kid: str, endorsements: list[str]) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "endorsements": endorsements}


class FixedTokenCredentials(AppCredentials):  # type: ignore[misc]
    """The bot's outgoing credentials with a fixed token instead of one from Entra ID."""

    def get_access_token(self, force_refresh: bool = False) -> str:
        return "test-bot-token"


class FixedTokenCredentialsFactory(PasswordServiceClientCredentialFactory):  # type: ignore[misc]
    """botbuilder's factory for our app id and password, minus Microsoft Entra ID."""

    def __init__(self) -> None:
        super().__init__(APP_ID, "test-secret", APP_TENANT)

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> AppCredentials:
        assert app_id == APP_ID
        return FixedTokenCredentials(app_id, "botframework.com", oauth_scope)


class BrokenCredentialsFactory(FixedTokenCredentialsFactory):  # type: ignore[misc]
    """Authenticates incoming requests like the real one, then fails to make the reply token."""

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> AppCredentials:
        raise RuntimeError("the credentials store is broken")


@dataclass
class SecuredBot:
    """The app with an app id (not local mode), its key server and its connector."""

    client: TestClient[Any, Any]
    connector: FakeConnector
    keys: KeyServer
    rows: Callable[[str], list[dict[str, Any]]]

    def token(
        self,
        *,
        key: rsa.RSAPrivateKey = OUR_KEY,
        algorithm: str = "RS256",
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A token as the Bot Framework channel signs it; `claims` override (None drops one)."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.keys.issuer,
            "aud": APP_ID,
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + 3600,
            "serviceurl": self.connector.service_url,
        }
        payload.update(claims)
        payload = {name: value for name, value in payload.items() if value is not None}
        header = {"kid": KEY_ID} if headers is None else headers
        signing_key: Any = key
        if algorithm == "HS256":
            signing_key = b"a shared secret the attacker chose, 32+ bytes long"
        elif algorithm == "none":
            signing_key = None
        return jwt.encode(payload, signing_key, algorithm=algorithm, headers=header)

    def message(self, **kwargs: Any) -> dict[str, Any]:
        return make_message("help", service_url=self.connector.service_url, **kwargs)

    async def post(self, activity: dict[str, Any], authorization: str | None) -> int:
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        response = await self.client.post("/api/messages", json=activity, headers=headers)
        await response.read()
        return response.status


@pytest.fixture(autouse=True)
def fresh_key_cache() -> Iterator[None]:
    """botbuilder keeps fetched keys per metadata URL for a day, across apps: not across tests."""
    JwtTokenExtractor.metadataCache.clear()
    yield
    JwtTokenExtractor.metadataCache.clear()


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    with KeyServer() as server:
        yield server


@pytest.fixture
def credentials_factory() -> FixedTokenCredentialsFactory:
    return FixedTokenCredentialsFactory()


@pytest.fixture
def metadata_url(request: pytest.FixtureRequest, key_server: KeyServer) -> str:
    """BOT_OPENID_METADATA_URL: the key server's, or (param "missing") a path it answers 404."""
    if getattr(request, "param", None) == "missing":
        return f"{key_server.url}/no-such-metadata"
    return key_server.metadata_url


@pytest.fixture
async def secured(
    tmp_path: Path,
    clock: FakeClock,
    connector: FakeConnector,
    key_server: KeyServer,
    metadata_url: str,
    credentials_factory: FixedTokenCredentialsFactory,
) -> AsyncIterator[SecuredBot]:
    settings = load_settings(
        **APP_SETTINGS,
        DATABASE_URL=f"sqlite:///{tmp_path / 'frontdesk.db'}",
        BOT_OPENID_METADATA_URL=metadata_url,
        BOT_TOKEN_ISSUER=key_server.issuer,
    )
    assert not settings.local_mode
    app = await create_app(
        settings, Seams(clock=clock, bot_credentials_factory=credentials_factory)
    )
    engine = app[COMPONENTS].engine

    def rows(sql: str) -> list[dict[str, Any]]:
        with engine.connect() as connection:
            return [dict(row) for row in connection.execute(text(sql)).mappings()]

    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield SecuredBot(client=client, connector=connector, keys=key_server, rows=rows)
    assert connector.unexpected == []


def assert_no_turn_ran(bot: SecuredBot) -> None:
    assert bot.connector.sent == []
    assert bot.rows("SELECT * FROM conversation_ref") == []
    assert bot.rows("SELECT * FROM user_profile") == []


async def test_a_token_signed_by_the_channel_runs_the_turn(secured: SecuredBot) -> None:
    status = await secured.post(secured.message(), f"Bearer {secured.token()}")

    assert status in (200, 201)
    [reply] = secured.connector.sent
    assert reply.cards(), reply.json
    assert len(secured.rows("SELECT * FROM conversation_ref")) == 1


# Each bad token: (the Authorization header for this bot's activity, the status expected).
BadHeader = Callable[[SecuredBot], str | None]
BAD_TOKENS: dict[str, tuple[BadHeader, int]] = {
    "missing": (lambda bot: None, 401),
    "not bearer": (lambda bot: f"Basic {bot.token()}", 401),
    "empty bearer": (lambda bot: "Bearer ", 401),
    "three parts": (lambda bot: f"Bearer {bot.token()} extra", 401),
    "garbage": (lambda bot: "Bearer not.a.jwt", 401),
    "expired": (lambda bot: f"Bearer {bot.token(exp=int(time.time()) - 3600)}", 401),
    "not yet valid": (lambda bot: f"Bearer {bot.token(nbf=int(time.time()) + 3600)}", 401),
    "wrong audience": (lambda bot: f"Bearer {bot.token(aud=str(uuid.uuid4()))}", 401),
    "no audience": (lambda bot: f"Bearer {bot.token(aud=None)}", 401),
    "wrong issuer": (lambda bot: f"Bearer {bot.token(iss='https://attacker.example')}", 401),
    "unknown key id": (lambda bot: f"Bearer {bot.token(headers={'kid': 'no-such-key'})}", 401),
    "no key id": (lambda bot: f"Bearer {bot.token(headers={})}", 401),
    "attacker's key": (lambda bot: f"Bearer {bot.token(key=ATTACKER_KEY)}", 401),
    "HS256": (lambda bot: f"Bearer {bot.token(algorithm='HS256')}", 401),
    "alg none": (lambda bot: f"Bearer {bot.token(algorithm='none')}", 401),
    "serviceUrl mismatch": (
        lambda bot: f"Bearer {bot.token(serviceurl='https://smba.trafficmanager.net/amer/')}",
        401,
    ),
    "no serviceUrl": (lambda bot: f"Bearer {bot.token(serviceurl=None)}", 401),
    "emulator issuer, attacker's key": (
        lambda bot: (
            f"Bearer {bot.token(key=ATTACKER_KEY, iss=EMULATOR_ISSUER, ver='1.0', appid=APP_ID)}"
        ),
        401,
    ),
    "skill token": (
        lambda bot: f"Bearer {bot.token(iss=EMULATOR_ISSUER, ver='1.0', appid=str(uuid.uuid4()))}",
        401,
    ),
    "unendorsed channel": (
        lambda bot: f"Bearer {bot.token(key=WEBCHAT_KEY, headers={'kid': WEBCHAT_KEY_ID})}",
        403,
    ),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_a_bad_token_is_refused_and_runs_no_turn(secured: SecuredBot, case: str) -> None:
    header, expected = BAD_TOKENS[case]

    status = await secured.post(secured.message(), header(secured))

    assert status == expected
    assert_no_turn_ran(secured)


async def test_a_good_token_for_another_conversation_s_service_is_refused(
    secured: SecuredBot,
) -> None:
    # The token is the channel's, but the activity asks for replies somewhere else.
    token = secured.token()
    activity = make_message("help", service_url="http://127.0.0.1:9/elsewhere")

    status = await secured.post(activity, f"Bearer {token}")

    assert status == 401
    assert_no_turn_ran(secured)


@pytest.mark.parametrize("metadata_url", ["missing"], indirect=True)
async def test_keys_that_cannot_be_fetched_are_503_not_a_verdict_on_the_token(
    secured: SecuredBot,
) -> None:
    status = await secured.post(secured.message(), f"Bearer {secured.token()}")

    assert status == 503
    assert_no_turn_ran(secured)


@pytest.mark.parametrize("credentials_factory", [BrokenCredentialsFactory()])
async def test_a_failure_after_authentication_is_not_passed_off_as_401(
    secured: SecuredBot,
) -> None:
    status = await secured.post(secured.message(), f"Bearer {secured.token()}")

    assert status == 500
    assert secured.connector.sent == []


def test_without_overrides_the_sdk_gets_the_public_cloud_values() -> None:
    # OAUTH_URL alone would switch botbuilder to a set-up where every attribute not given is None.
    settings = load_settings(
        **APP_SETTINGS,
        BOT_OPENID_METADATA_URL="",
        BOT_TOKEN_ISSUER="",
    )

    sdk = SdkConfiguration(settings)

    assert sdk.OAUTH_URL == settings.bot_oauth_url
    assert sdk.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER == "https://api.botframework.com"
    assert sdk.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL == (
        AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL
    )
    assert sdk.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL == (
        AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL
    )
    assert sdk.TO_CHANNEL_FROM_BOT_LOGIN_URL == "https://login.microsoftonline.com/"
    assert sdk.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE == "https://api.botframework.com"
    assert sdk.CALLER_ID == "urn:botframework:azure"


def test_the_metadata_override_covers_channel_and_emulator_tokens() -> None:
    settings = load_settings(
        **APP_SETTINGS,
        BOT_OPENID_METADATA_URL="https://keys.example/.well-known/openidconfiguration",
        BOT_TOKEN_ISSUER="https://issuer.example",
        BOT_OAUTH_URL="https://token.example/",
    )

    sdk = SdkConfiguration(settings)

    assert sdk.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL == (
        "https://keys.example/.well-known/openidconfiguration"
    )
    assert (
        sdk.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL == sdk.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL
    )
    assert sdk.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER == "https://issuer.example"
    assert sdk.OAUTH_URL == "https://token.example"
