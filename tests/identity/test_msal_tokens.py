"""AppIdentity (msal) against an in-process fake Entra ID: caching, per-user caches, errors."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import requests

from bot.identity import (
    AppIdentity,
    AssertionExpired,
    ConsentRequired,
    IdentityError,
    MemoryTokenCacheStore,
)
from tests.support.fake_entra import (
    GRANT_CLIENT_CREDENTIALS,
    GRANT_JWT_BEARER,
    GRANT_REFRESH_TOKEN,
    EntraRequest,
    FakeEntra,
    FakeResponse,
)

GRAPH_DEFAULT = ["https://graph.microsoft.com/.default"]
GRAPH_DELEGATED = ["User.Read", "Calendars.ReadWrite"]
ALICE = "0f1e2d3c-aaaa-4b5a-8c7d-000000000a11"
BOB = "0f1e2d3c-bbbb-4b5a-8c7d-000000000b0b"


class RecordingStore(MemoryTokenCacheStore):
    """The in-memory store, remembering which user caches were saved."""

    def __init__(self) -> None:
        super().__init__()
        self.saves: list[str] = []

    async def save(self, user_key: str, serialized: str) -> None:
        self.saves.append(user_key)
        await super().save(user_key, serialized)


@pytest.fixture
def entra() -> FakeEntra:
    return FakeEntra()


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
def identity(entra: FakeEntra, store: RecordingStore) -> Iterator[AppIdentity]:
    app = AppIdentity(
        client_id=entra.client_id,
        client_secret=entra.client_secret,
        tenant_id=entra.tenant_id,
        authority_host=entra.authority_host,
        http_client=entra,
        cache_store=store,
    )
    yield app
    app.close()


def everything_secret(entra: FakeEntra, *extra: str) -> list[str]:
    """Every token the fake minted or accepted, and the client secret."""
    refresh = [token for token in entra._refresh_tokens]
    assertions = [r.form["assertion"] for r in entra.requests if "assertion" in r.form]
    return [*entra.issued, *refresh, *assertions, entra.client_secret, *extra]


# -- the app's own token ------------------------------------------------------------------
async def test_app_token_is_acquired_once_and_then_served_from_msal_cache(
    entra: FakeEntra, identity: AppIdentity
) -> None:
    first = await identity.app_token(GRAPH_DEFAULT)
    second = await identity.app_token(GRAPH_DEFAULT)

    assert first == second
    [request] = entra.token_requests()
    assert request.grant_type == GRANT_CLIENT_CREDENTIALS
    assert request.form["client_id"] == entra.client_id
    assert request.form["scope"] == GRAPH_DEFAULT[0]
    assert entra.issued[first].kind == "app"


async def test_app_tokens_for_other_resources_are_cached_apart(
    entra: FakeEntra, identity: AppIdentity
) -> None:
    graph = await identity.app_token(GRAPH_DEFAULT)
    bot = await identity.app_token(["https://api.botframework.com/.default"])
    await identity.app_token(["https://api.botframework.com/.default"])

    assert graph != bot
    assert len(entra.token_requests(GRANT_CLIENT_CREDENTIALS)) == 2


async def test_a_wrong_client_secret_is_reported_by_code_without_the_secret(
    entra: FakeEntra, store: RecordingStore
) -> None:
    wrong = AppIdentity(
        client_id=entra.client_id,
        client_secret="not-the-secret-1234",
        tenant_id=entra.tenant_id,
        http_client=entra,
        cache_store=store,
    )

    with pytest.raises(IdentityError) as raised:
        await wrong.app_token(GRAPH_DEFAULT)

    assert raised.value.code == "invalid_client"
    assert "AADSTS7000215" in str(raised.value)
    assert "not-the-secret-1234" not in str(raised.value) + repr(wrong)
    assert "Invalid client secret" not in str(raised.value)  # Entra's description stays out


def test_building_an_identity_touches_no_network(store: RecordingStore) -> None:
    identity = AppIdentity(
        client_id="5d2b9c1e-7a44-4f0e-8d3a-1b2c3d4e5f60",
        client_secret="unused-secret",
        tenant_id="8c4e1b7a-0d5f-4b8e-9a61-2f3c4d5e6f70",
        cache_store=store,
    )

    assert "unused-secret" not in repr(identity)
    identity.close()
    identity.close()


# -- on behalf of users ---------------------------------------------------------------------
async def test_on_behalf_of_asks_entra_once_then_serves_the_user_from_their_cache(
    entra: FakeEntra, identity: AppIdentity, store: RecordingStore
) -> None:
    first = await identity.on_behalf_of("alice", entra.user_assertion(ALICE), GRAPH_DELEGATED)
    # A later turn brings a fresh SSO token for the same user.
    second = await identity.on_behalf_of("alice", entra.user_assertion(ALICE), GRAPH_DELEGATED)

    assert first == second
    [request] = entra.token_requests()
    assert request.grant_type == GRANT_JWT_BEARER
    assert request.form["requested_token_use"] == "on_behalf_of"
    assert set(request.form["scope"].split()) >= set(GRAPH_DELEGATED)
    assert entra.issued[first].oid == ALICE
    assert store.saves == ["alice"]


async def test_each_user_gets_their_own_token_and_cache(
    entra: FakeEntra, identity: AppIdentity, store: RecordingStore
) -> None:
    alice = await identity.on_behalf_of("alice", entra.user_assertion(ALICE), GRAPH_DELEGATED)
    bob = await identity.on_behalf_of("bob", entra.user_assertion(BOB), GRAPH_DELEGATED)
    alice_again = await identity.on_behalf_of("alice", entra.user_assertion(ALICE), GRAPH_DELEGATED)

    assert (entra.issued[alice].oid, entra.issued[bob].oid) == (ALICE, BOB)
    assert alice_again == alice
    assert len(entra.token_requests(GRANT_JWT_BEARER)) == 2
    assert store.saves == ["alice", "bob"]
    alice_cache = await store.load("alice")
    bob_cache = await store.load("bob")
    assert alice_cache is not None and bob_cache is not None
    assert bob not in alice_cache and alice not in bob_cache


async def test_a_cache_holding_another_user_is_not_used(
    entra: FakeEntra, identity: AppIdentity, store: RecordingStore
) -> None:
    alice = await identity.on_behalf_of("desk", entra.user_assertion(ALICE), GRAPH_DELEGATED)

    bob = await identity.on_behalf_of("desk", entra.user_assertion(BOB), GRAPH_DELEGATED)

    assert entra.issued[bob].oid == BOB and bob != alice
    assert len(entra.token_requests(GRANT_JWT_BEARER)) == 2


async def test_the_cache_is_saved_only_when_it_changed(
    entra: FakeEntra, identity: AppIdentity, store: RecordingStore
) -> None:
    await identity.on_behalf_of("alice", entra.user_assertion(ALICE), GRAPH_DELEGATED)
    saved = await store.load("alice")
    for _ in range(3):
        await identity.on_behalf_of("alice", entra.user_assertion(ALICE), GRAPH_DELEGATED)

    assert store.saves == ["alice"]
    assert await store.load("alice") == saved


async def test_an_access_token_near_expiry_is_refreshed_silently_and_saved(
    entra: FakeEntra, identity: AppIdentity, store: RecordingStore
) -> None:
    entra.token_lifetime = 60  # msal renews access tokens with under five minutes left
    first = await identity.on_behalf_of("alice", entra.user_assertion(ALICE), GRAPH_DELEGATED)

    second = await identity.on_behalf_of("alice", entra.user_assertion(ALICE), GRAPH_DELEGATED)

    assert second != first and entra.issued[second].oid == ALICE
    assert [r.grant_type for r in entra.token_requests()] == [
        GRANT_JWT_BEARER,
        GRANT_REFRESH_TOKEN,
    ]
    assert store.saves == ["alice", "alice"]


async def test_a_cache_that_does_not_parse_is_replaced(
    entra: FakeEntra, identity: AppIdentity, store: RecordingStore
) -> None:
    await store.save("alice", "{not json")

    token = await identity.on_behalf_of("alice", entra.user_assertion(ALICE), GRAPH_DELEGATED)

    assert entra.issued[token].oid == ALICE
    cache = await store.load("alice")
    assert cache is not None and json.loads(cache)["AccessToken"]


async def test_missing_consent_raises_consent_required_with_the_admin_consent_url(
    entra: FakeEntra, identity: AppIdentity, store: RecordingStore
) -> None:
    entra.consent_granted = False

    with pytest.raises(ConsentRequired) as raised:
        await identity.on_behalf_of("alice", entra.user_assertion(ALICE), GRAPH_DELEGATED)

    expected = (
        f"https://login.microsoftonline.com/{entra.tenant_id}/adminconsent"
        f"?client_id={entra.client_id}"
    )
    assert raised.value.admin_consent_url == expected
    assert identity.admin_consent_url == expected
    assert expected in str(raised.value)
    assert store.saves == []


async def test_consent_granted_later_lets_the_next_request_through(
    entra: FakeEntra, identity: AppIdentity
) -> None:
    entra.consent_granted = False
    with pytest.raises(ConsentRequired):
        await identity.on_behalf_of("alice", entra.user_assertion(ALICE), GRAPH_DELEGATED)

    entra.consent_granted = True
    token = await identity.on_behalf_of("alice", entra.user_assertion(ALICE), GRAPH_DELEGATED)

    assert entra.issued[token].oid == ALICE


async def test_an_expired_assertion_raises_assertion_expired(
    entra: FakeEntra, identity: AppIdentity, store: RecordingStore
) -> None:
    with pytest.raises(AssertionExpired) as raised:
        await identity.on_behalf_of(
            "alice", entra.user_assertion(ALICE, lifetime=-60), GRAPH_DELEGATED
        )

    assert raised.value.code == "AADSTS500133"
    assert store.saves == []


async def test_other_entra_errors_carry_the_code_only(
    entra: FakeEntra, identity: AppIdentity
) -> None:
    with pytest.raises(IdentityError) as raised:
        await identity.on_behalf_of("alice", "not-a-jwt", GRAPH_DELEGATED)

    assert type(raised.value) is IdentityError
    assert raised.value.code == "invalid_request"
    assert str(raised.value) == "Entra ID refused the token request: invalid_request (AADSTS50027)"


class BrokenEntra(FakeEntra):
    """Entra ID that cannot be reached; the exception text holds what it was sent."""

    def post(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> FakeResponse:
        raise requests.ConnectionError(f"connection reset while sending {data!r}")


async def test_an_unreachable_entra_raises_without_what_was_sent(store: RecordingStore) -> None:
    entra = BrokenEntra()
    identity = AppIdentity(
        client_id=entra.client_id,
        client_secret=entra.client_secret,
        tenant_id=entra.tenant_id,
        http_client=entra,
        cache_store=store,
    )
    assertion = entra.user_assertion(ALICE)

    with pytest.raises(IdentityError) as raised:
        await identity.on_behalf_of("alice", assertion, GRAPH_DELEGATED)

    assert str(raised.value) == "could not get a token from Entra ID (ConnectionError)"
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert entra.client_secret not in str(raised.value) and assertion not in str(raised.value)


# -- off the event loop ---------------------------------------------------------------------
async def test_msal_runs_in_worker_threads(entra: FakeEntra, identity: AppIdentity) -> None:
    await identity.app_token(GRAPH_DEFAULT)
    await identity.on_behalf_of("alice", entra.user_assertion(ALICE), GRAPH_DELEGATED)

    loop_thread = threading.get_ident()
    assert entra.requests
    assert all(request.thread_id != loop_thread for request in entra.requests)


async def test_the_event_loop_runs_while_entra_answers(
    entra: FakeEntra, identity: AppIdentity
) -> None:
    loop = asyncio.get_running_loop()

    def answer_once_the_loop_ran(request: EntraRequest) -> None:
        loop_ran = threading.Event()
        loop.call_soon_threadsafe(loop_ran.set)
        if not loop_ran.wait(10):
            raise TimeoutError(f"the event loop was blocked while Entra ID answered {request.kind}")

    entra.hold = answer_once_the_loop_ran

    token = await identity.on_behalf_of("alice", entra.user_assertion(ALICE), GRAPH_DELEGATED)

    assert entra.issued[token].oid == ALICE
    assert [r.kind for r in entra.requests][-1] == "token"


async def test_discovery_is_fetched_once_for_every_user(
    entra: FakeEntra, identity: AppIdentity
) -> None:
    await identity.app_token(GRAPH_DEFAULT)
    for key, oid in (("alice", ALICE), ("bob", BOB), ("alice", ALICE)):
        await identity.on_behalf_of(key, entra.user_assertion(oid), GRAPH_DELEGATED)

    kinds = [request.kind for request in entra.discovery_requests()]
    assert kinds.count("openid-configuration") == 1
    assert kinds.count("instance-discovery") <= 1


async def test_concurrent_users_are_served_in_parallel(
    entra: FakeEntra, identity: AppIdentity, store: RecordingStore
) -> None:
    await identity.on_behalf_of("warm", entra.user_assertion("warm-up"), GRAPH_DELEGATED)
    users = [f"user-{n}" for n in range(4)]
    # Each token request is answered only once all four are in flight; one at a time times out.
    all_in_flight = threading.Barrier(len(users), timeout=10)
    entra.hold = lambda request: all_in_flight.wait() if request.kind == "token" else None

    tokens = await asyncio.gather(
        *(identity.on_behalf_of(u, entra.user_assertion(u), GRAPH_DELEGATED) for u in users)
    )

    assert [entra.issued[t].oid for t in tokens] == users
    assert len(entra.token_requests(GRANT_JWT_BEARER)) == len(users) + 1


# -- nothing secret shows -----------------------------------------------------------------
async def test_no_token_or_secret_reaches_logs_or_error_messages(
    entra: FakeEntra, identity: AppIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[Exception] = []

    await identity.app_token(GRAPH_DEFAULT)
    await identity.on_behalf_of("alice", entra.user_assertion(ALICE), GRAPH_DELEGATED)
    await identity.on_behalf_of("alice", entra.user_assertion(ALICE), GRAPH_DELEGATED)
    expired = entra.user_assertion(BOB, lifetime=-60)
    entra.consent_granted = False
    for assertion in (entra.user_assertion(BOB), expired, "opaque-assertion-5150"):
        with pytest.raises(IdentityError) as raised:
            await identity.on_behalf_of("bob", assertion, GRAPH_DELEGATED)
        errors.append(raised.value)

    shown = caplog.text + repr(identity) + "".join(f"{e!s}{e!r}" for e in errors)
    secrets_seen = everything_secret(entra, expired, "opaque-assertion-5150")
    assert len(secrets_seen) >= 6
    for secret in secrets_seen:
        assert secret not in shown
    assert [type(e).__name__ for e in errors] == [
        "ConsentRequired",
        "AssertionExpired",
        "IdentityError",
    ]
