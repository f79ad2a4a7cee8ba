"""Secrets never reach the logs: the client secret, every token, the user's token cache.

The app runs as in production (an app id and client secret, DIRECTORY=graph, LOG_LEVEL=DEBUG)
against local fakes: a key server that signs the Bot Framework tokens of incoming requests, a
fake Entra ID answering msal (client credentials, on-behalf-of), the fake Bot Framework token
service and the fake Microsoft Graph. Megan and Alex go through every sign-in path (the sign-in
card, single sign-on, the magic code, a click resumed after a loginRequest, on-behalf-of, consent
missing, an expired assertion, a refused SSO token, sign-out) and book a room; a few forged
requests are refused. Every record of every logger (root at DEBUG, so msal, aiohttp,
botbuilder, urllib3, SQLAlchemy...) and everything written to stdout and stderr is then searched
for each secret, whole and in fragments.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from botframework.connector.auth import (
    AppCredentials,
    JwtTokenExtractor,
    PasswordServiceClientCredentialFactory,
)
from sqlalchemy import Engine, text

from app import COMPONENTS, Seams, create_app
from bot.commands import Verb
from bot.config import load_settings
from tests.bot.conftest import CARD_TYPE
from tests.bot.test_authentication import KEY_ID, OUR_KEY, KeyServer
from tests.conftest import FakeClock
from tests.support.activities import ALEX, MEGAN, TeamsUser, make_card_action, make_message
from tests.support.cardquery import book_actions, headline, input_values, text_of
from tests.support.fake_connector import FakeConnector
from tests.support.fake_entra import FakeEntra
from tests.support.fake_graph import FakeGraph, FakeTenant
from tests.support.fake_token_service import FakeTokenService
from tests.support.graph_contract import metadata_available
from tests.support.prereq import require

CONNECTION = "graph"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # as app.configure_logging
ADELE = TeamsUser(
    id="29:1Ad3l3Va9nc3Qw2Er4Ty6Ui8Op0As2Df4Gh6Jk8Lz0Xc2Vb",
    aad_object_id="c3d4e5f6-0a1b-4c2d-8e3f-4a5b6c7d8e9f",
    name="Adele Vance",
)
SLOT = {"date": "2026-11-23", "start": "10:00", "duration": "30", "attendees": "4"}
# A secret is also found by any run of this many of its characters (a token cut short still
# leaks most of itself).
FRAGMENT = 20


class RecordingHandler(logging.Handler):
    """Keeps every record, formatted as the app formats them (with tracebacks)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def all_logs() -> Iterator[RecordingHandler]:
    """Every log record of every logger at DEBUG, as LOG_LEVEL=DEBUG sets the root logger."""
    root = logging.getLogger()
    handler = RecordingHandler()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


class KnownTokenCredentials(AppCredentials):  # type: ignore[misc]
    """The bot's outgoing token to the connector, without Microsoft Entra ID."""

    def __init__(self, token: str, app_id: str, oauth_scope: str) -> None:
        super().__init__(app_id, "botframework.com", oauth_scope)
        self._token = token

    def get_access_token(self, force_refresh: bool = False) -> str:
        return self._token


class KnownTokenFactory(PasswordServiceClientCredentialFactory):  # type: ignore[misc]
    def __init__(self, app_id: str, password: str, tenant_id: str, token: str) -> None:
        super().__init__(app_id, password, tenant_id)
        self._token = token

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> AppCredentials:
        return KnownTokenCredentials(self._token, app_id, oauth_scope)


class TokensFromEntra(dict[str, str]):
    """The fake Graph's token table that also knows the user tokens fake Entra minted."""

    def __init__(self, known: dict[str, str], entra: FakeEntra) -> None:
        super().__init__(known)
        self._entra = entra

    def get(self, key: str, default: Any = None) -> Any:
        issued = self._entra.issued.get(key)
        if issued is not None and issued.kind == "user" and issued.oid:
            return issued.oid
        return super().get(key, default)


@dataclass
class Production:
    """The app with an app id and secret in graph mode, and every fake it talks to."""

    client: TestClient[Any, Any]
    engine: Engine
    keys: KeyServer
    connector: FakeConnector
    entra: FakeEntra
    tokens: FakeTokenService
    graph: FakeGraph
    secrets: set[str] = field(default_factory=set)
    """Every secret handed to the app or the fakes by the test itself."""

    def secret(self, prefix: str) -> str:
        value = f"{prefix}-{secrets.token_urlsafe(24)}"
        self.secrets.add(value)
        return value

    def bearer(self, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": self.keys.issuer,
            "aud": self.entra.client_id,
            "iat": now - 60,
            "nbf": now - 60,
            "exp": now + 3600,
            "serviceurl": self.connector.service_url,
            "jti": secrets.token_urlsafe(16),
            **claims,
        }
        token = jwt.encode(payload, OUR_KEY, algorithm="RS256", headers={"kid": KEY_ID})
        self.secrets.add(token)
        return token

    async def post(
        self, activity: dict[str, Any], authorization: str | None = None
    ) -> tuple[int, Any]:
        header = authorization if authorization is not None else f"Bearer {self.bearer()}"
        response = await self.client.post(
            "/api/messages",
            data=json.dumps(activity),
            headers={"Content-Type": "application/json", "Authorization": header},
        )
        raw = await response.read()
        return response.status, (json.loads(raw) if raw.strip() else None)

    async def say(self, text: str, user: TeamsUser = MEGAN) -> dict[str, Any]:
        before = len(self.connector.sent)
        status, _ = await self.post(make_message(text, service_url=self.su, user=user))
        assert status in (200, 201)
        [sent] = self.connector.sent[before:]
        return dict(sent.json)

    async def click(
        self, verb: str, data: dict[str, Any], user: TeamsUser = MEGAN, **value: Any
    ) -> dict[str, Any]:
        action = {"type": "Action.Execute", "verb": verb, "data": data}
        activity = make_card_action(
            verb, data, service_url=self.su, user=user, value={"action": action, **value}
        )
        status, body = await self.post(activity)
        assert status == 200, body
        return dict(body)

    async def sign_in_invoke(self, name: str, value: dict[str, Any], user: TeamsUser) -> int:
        activity = make_card_action("x", {}, service_url=self.su, user=user)
        activity["name"] = name
        activity["value"] = value
        status, _ = await self.post(activity)
        return status

    @property
    def su(self) -> str:
        return self.connector.service_url


@pytest.fixture
async def production(
    tmp_path: Path, clock: FakeClock, all_logs: RecordingHandler
) -> AsyncIterator[Production]:
    require(metadata_available(), "Graph v1.0 metadata is missing under ../shared/schemas")
    JwtTokenExtractor.metadataCache.clear()
    client_secret = f"client-secret-{secrets.token_urlsafe(24)}"
    bot_token = f"bot-connector-token-{secrets.token_urlsafe(24)}"
    entra = FakeEntra(client_secret=client_secret)
    with KeyServer() as keys:
        async with (
            FakeConnector() as connector,
            FakeTokenService() as tokens,
            FakeGraph(FakeTenant.demo()) as graph,
        ):
            tokens.add_connection(CONNECTION, token_exchange_uri=f"api://{entra.client_id}")
            graph.tenant.tokens = TokensFromEntra(graph.tenant.tokens, entra)
            settings = load_settings(
                HOST="127.0.0.1",
                DATABASE_URL=f"sqlite:///{tmp_path / 'frontdesk.db'}",
                MICROSOFT_APP_ID=entra.client_id,
                MICROSOFT_APP_PASSWORD=client_secret,
                MICROSOFT_APP_TYPE="SingleTenant",
                MICROSOFT_APP_TENANT_ID=entra.tenant_id,
                AAD_AUTHORITY_HOST=entra.authority_host,
                BOT_OPENID_METADATA_URL=keys.metadata_url,
                BOT_TOKEN_ISSUER=keys.issuer,
                DIRECTORY="graph",
                GRAPH_BASE_URL=graph.base_url,
                BOT_OAUTH_URL=tokens.base_url,
                OAUTH_CONNECTION_NAME=CONNECTION,
                TIMEZONE="UTC",
                LOG_LEVEL="DEBUG",
                ALLOWED_TENANTS="",
            )
            assert settings.log_level == "DEBUG" and not settings.local_mode
            factory = KnownTokenFactory(entra.client_id, client_secret, entra.tenant_id, bot_token)
            app = await create_app(
                settings,
                Seams(clock=clock, msal_http_client=entra, bot_credentials_factory=factory),
            )
            async with TestClient(TestServer(app, host="127.0.0.1")) as client:
                yield Production(
                    client=client,
                    engine=app[COMPONENTS].engine,
                    keys=keys,
                    connector=connector,
                    entra=entra,
                    tokens=tokens,
                    graph=graph,
                    secrets={client_secret, bot_token},
                )
    JwtTokenExtractor.metadataCache.clear()


def graph_user_id(graph: FakeGraph, mail_prefix: str) -> str:
    [user] = [u for u in graph.tenant.users.values() if u.mail.startswith(mail_prefix)]
    return user.id


def cache_secrets(serialized: str) -> set[str]:
    """The tokens inside a serialized msal cache (access, refresh and id tokens)."""
    found: set[str] = set()
    for section in json.loads(serialized).values():
        if isinstance(section, dict):
            for entry in section.values():
                if isinstance(entry, dict) and isinstance(entry.get("secret"), str):
                    found.add(entry["secret"])
    return found


def tells(secret: str) -> list[str]:
    """The pieces of a secret whose presence in a log gives it away.

    An opaque secret: itself and every run of FRAGMENT of its characters (a token cut short
    still leaks). A JWT: itself, its header and payload, and its signature; not runs of its
    payload, whose claims (tenant id, audience) are public and recur in harmless places.
    """
    parts = secret.split(".")
    if len(parts) == 3 and all(parts):
        pieces = [secret, f"{parts[0]}.{parts[1]}"]
        return pieces + ([parts[2]] if len(parts[2]) >= 16 else [])
    if len(secret) <= FRAGMENT:
        return [secret]
    return [secret[start : start + FRAGMENT] for start in range(len(secret) - FRAGMENT + 1)]


def leaks(secret: str, text: str) -> bool:
    """Whether the text gives the secret away."""
    return any(piece in text for piece in tells(secret))


def leaked(found: Iterable[str], lines: Iterable[str]) -> list[str]:
    """Each secret the lines give away (shortened) with the first line that does."""
    lines = list(lines)
    report = []
    for secret in sorted(found):
        line = next((line for line in lines if leaks(secret, line)), None)
        if line is not None:
            report.append(f"{secret[:10]}... ({len(secret)} chars) in: {line[:300]}")
    return report


async def test_no_secret_reaches_the_logs(
    production: Production, all_logs: RecordingHandler, capfd: pytest.CaptureFixture[str]
) -> None:
    p = production
    megan_oid = graph_user_id(p.graph, "meganb@")
    alex_oid = graph_user_id(p.graph, "alexw@")

    # 1. Before signing in: a sign-in card (the bot's own token goes to the token service).
    card = await p.say("book")
    assert card["attachments"][0]["contentType"] == "application/vnd.microsoft.card.oauth"

    # 2. Single sign-on: a refused SSO token, then one that exchanges for a token for our API.
    megan_assertion = p.entra.user_assertion(megan_oid)
    p.secrets.add(megan_assertion)
    sso = p.secret("teams-sso")
    p.tokens.allow_exchange(CONNECTION, sso, yields=megan_assertion)
    bad_sso = p.secret("refused-sso")
    exchange = {"id": "exchange-1", "connectionName": CONNECTION}
    refused = await p.sign_in_invoke("signin/tokenExchange", {**exchange, "token": bad_sso}, MEGAN)
    assert refused == 412  # Teams falls back to the sign-in button
    assert await p.sign_in_invoke("signin/tokenExchange", {**exchange, "token": sso}, MEGAN) == 200

    # 3. Graph on behalf of Megan (msal, the cache stored in the database): search and book.
    form = await p.say("book")
    assert "date" in input_values(form["attachments"][0]["content"])
    results = await p.click(Verb.BOOKING_SEARCH.value, dict(SLOT))
    assert results["type"] == CARD_TYPE, results
    book = book_actions(results["value"])[0]
    booked = await p.click(book["verb"], book["data"])
    assert "Room booked" in text_of(booked["value"])
    listed = await p.say("my bookings")
    assert headline(listed["attachments"][0]["content"]) == "My bookings", listed

    # 4. Alex: a click before sign-in (loginRequest) resumed with the sign-in page's code, without
    #    consent (AADSTS65001); with consent, a search. Adele: the magic code invoke with an
    #    assertion that has expired (AADSTS500133).
    login = await p.click(Verb.BOOKING_SEARCH.value, dict(SLOT), user=ALEX)
    assert login["statusCode"] == 401, login
    alex_assertion = p.entra.user_assertion(alex_oid)
    p.secrets.add(alex_assertion)
    code = p.secret("magic")
    p.tokens.pending_sign_in(ALEX.id, CONNECTION, code, alex_assertion)
    p.entra.consent_granted = False
    no_consent = await p.click(Verb.BOOKING_SEARCH.value, dict(SLOT), user=ALEX, state=code)
    assert "consent" in text_of(no_consent["value"]).lower(), no_consent
    p.entra.consent_granted = True
    found = await p.click(Verb.BOOKING_SEARCH.value, dict(SLOT), user=ALEX)
    assert book_actions(found["value"]), found
    expired = p.entra.user_assertion(graph_user_id(p.graph, "adelev@"), lifetime=-600)
    p.secrets.add(expired)
    code = p.secret("magic")
    p.tokens.pending_sign_in(ADELE.id, CONNECTION, code, expired)
    assert await p.sign_in_invoke("signin/verifyState", {"state": code}, ADELE) == 200
    stale = await p.click(Verb.BOOKING_SEARCH.value, dict(SLOT), user=ADELE)
    assert "expired" in text_of(stale["value"]), stale
    assert len(p.entra.token_requests("urn:ietf:params:oauth:grant-type:jwt-bearer")) >= 4

    # 5. The stored caches, before sign-out forgets Megan's.
    with p.engine.connect() as connection:
        caches = [row[0] for row in connection.execute(text("SELECT cache FROM user_token_cache"))]
    assert len(caches) == 2
    for cache in caches:
        p.secrets.update(cache_secrets(cache))
    signed_out = await p.say("sign out")
    assert text_of(signed_out["attachments"][0]["content"]).startswith("Signed out"), signed_out

    # 6. Forged requests: a token signed by someone else, an expired one, a garbage one.
    message = make_message("help", service_url=p.su)
    attacker = p.secret("not-a-jwt")
    assert (await p.post(message, f"Bearer {attacker}"))[0] == 401
    assert (await p.post(message, f"Bearer {p.bearer(exp=int(time.time()) - 3600)}"))[0] == 401
    assert (await p.post(message, f"Bearer {p.bearer(aud='someone-else')}"))[0] == 401

    minted = set(p.entra.issued) | set(p.entra._refresh_tokens)
    every_secret = p.secrets | minted
    assert len(minted) >= 4  # app tokens, Graph tokens for Megan and Alex, refresh tokens
    assert p.tokens.requests and all(
        r.authorization and r.authorization.removeprefix("Bearer ") in minted
        for r in p.tokens.requests
    ), "every token-service call carries the bot's own token (a secret to look for)"
    out, err = capfd.readouterr()
    assert len(all_logs.lines) > 100, "DEBUG logging is on: the libraries' records are here"
    assert {"msal", "bot", "msrest", "urllib3", "aiohttp"} <= {
        line.split(" ")[3].split(".")[0].rstrip(":") for line in all_logs.lines
    }
    assert leaked(every_secret, all_logs.lines) == []
    assert leaked(every_secret, (out + err).splitlines()) == []
    # The caches whole (their public parts, such as the tenant id, may well be logged).
    logs = "\n".join(all_logs.lines) + out + err
    assert not [cache for cache in caches if cache in logs or json.dumps(cache) in logs]
