"""Entra ID tokens through msal: the app's own (client credentials) and users' (on-behalf-of).

msal blocks (HTTP with `requests`, a lock around its cache), so every msal call runs in a worker
thread through `asyncio.to_thread`. Users' tokens live in one serialized msal cache per user,
kept by a `TokenCacheStore`; the app's token lives in msal's own in-memory cache.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol
from urllib.parse import quote

import msal  # type: ignore[import-untyped]
import requests
import requests.adapters

from bot.identity.claims import unverified_claims
from bot.identity.errors import AssertionExpired, ConsentRequired, IdentityError

logger = logging.getLogger(__name__)

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
_CONSENT_REQUIRED = 65001
_ASSERTION_EXPIRED = 500133
# OAuth error codes are echoed into messages only when they look like codes, never free text.
_SAFE_CODE = re.compile(r"^[a-z0-9_]{1,64}$")
# msal fetches these on every application it builds; their answers are public and stable.
_DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/common/discovery/instance")
_DISCOVERY_TTL_SECONDS = 24 * 3600


class TokenCacheStore(Protocol):
    """Where each user's serialized msal token cache is kept between calls."""

    async def load(self, user_key: str) -> str | None:
        """The user's serialized cache, or None if there is none yet."""
        ...

    async def save(self, user_key: str, serialized: str) -> None:
        """Replace the user's serialized cache."""
        ...

    async def delete(self, user_key: str) -> None:
        """Forget the user's cache (after they sign out)."""
        ...


class MemoryTokenCacheStore:
    """A TokenCacheStore in a dict, for tests and local runs (lost on restart, one process)."""

    def __init__(self) -> None:
        self._caches: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"MemoryTokenCacheStore(users={len(self._caches)})"

    async def load(self, user_key: str) -> str | None:
        """The user's serialized cache, or None."""
        return self._caches.get(user_key)

    async def save(self, user_key: str, serialized: str) -> None:
        """Replace the user's serialized cache."""
        self._caches[user_key] = serialized

    async def delete(self, user_key: str) -> None:
        """Forget the user's cache."""
        self._caches.pop(user_key, None)


class MsalHttpResponse(Protocol):
    """The response shape msal reads (`msal.oauth2cli.http.Response`)."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def raise_for_status(self) -> None: ...


class MsalHttpClient(Protocol):
    """The HTTP client msal calls (`msal.oauth2cli.http.HttpClient`); blocking, used in threads."""

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> MsalHttpResponse: ...

    def post(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> MsalHttpResponse: ...


class AppIdentity:
    """The bot's Entra ID app registration: its own tokens and tokens on behalf of its users."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        tenant_id: str,
        authority_host: str = DEFAULT_AUTHORITY_HOST,
        http_client: MsalHttpClient | None = None,
        cache_store: TokenCacheStore,
        timeout: float = 10.0,
    ) -> None:
        if not client_id or not tenant_id:
            raise ValueError("AppIdentity needs a client id and a tenant id")
        self._client_id = client_id
        self._client_secret = client_secret
        self._tenant_id = tenant_id
        self._authority_host = authority_host.rstrip("/")
        self._authority = f"{self._authority_host}/{tenant_id}"
        self._cache_store = cache_store
        self._session: requests.Session | None = None
        if http_client is None:
            self._session = _requests_session()
            http_client = _RequestsHttpClient(self._session, timeout=timeout)
        self._http = _DiscoveryCache(http_client)
        # Built on first use (msal fetches the OpenID configuration when it builds an app).
        self._app: Any = None
        self._app_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"AppIdentity(client_id={self._client_id!r}, authority={self._authority!r})"

    @property
    def admin_consent_url(self) -> str:
        """Where a tenant admin grants the app's permissions for the whole organisation."""
        return f"{self._authority}/adminconsent?client_id={quote(self._client_id, safe='')}"

    async def app_token(self, scopes: Sequence[str]) -> str:
        """An app-only access token (client credentials), from msal's cache while it is valid."""
        wanted = list(scopes)
        # One caller at a time: concurrent misses would each ask Entra ID for the same token.
        async with self._app_lock:
            result = await asyncio.to_thread(self._client_credentials, wanted)
        return self._access_token(result)

    async def forget(self, user_key: str) -> None:
        """Drop the user's cached on-behalf-of tokens (they signed out)."""
        await self._cache_store.delete(user_key)

    async def on_behalf_of(self, user_key: str, assertion: str, scopes: Sequence[str]) -> str:
        """An access token for `scopes` on behalf of the user whose token `assertion` is.

        The user's cached token is used while valid (refreshed silently when it can be);
        otherwise the assertion is exchanged. `user_key` names the user's cache in the store.
        """
        serialized = await self._cache_store.load(user_key)
        outcome = await asyncio.to_thread(self._on_behalf_of, serialized, assertion, list(scopes))
        if outcome.changed_cache is not None:
            await self._cache_store.save(user_key, outcome.changed_cache)
        return self._access_token(outcome.result)

    def close(self) -> None:
        """Close the HTTP session this object opened (none when an http_client was given)."""
        if self._session is not None:
            self._session.close()
            self._session = None

    # -- in worker threads ---------------------------------------------------------------
    def _client_credentials(self, scopes: list[str]) -> dict[str, Any]:
        try:
            if self._app is None:
                self._app = self._build(token_cache=None)
            return _as_result(self._app.acquire_token_for_client(scopes))
        except IdentityError:
            raise
        except Exception as exc:
            raise _unreachable(exc) from None

    def _on_behalf_of(
        self, serialized: str | None, assertion: str, scopes: list[str]
    ) -> _OboOutcome:
        try:
            cache = _load_cache(serialized)
            app = self._build(token_cache=cache)
            result: dict[str, Any] | None = None
            account = _account_for(app.get_accounts(), assertion)
            if account is not None:
                result = app.acquire_token_silent(scopes, account=account)
            if not result or "access_token" not in result:
                result = app.acquire_token_on_behalf_of(assertion, scopes)
            changed = cache.serialize() if cache.has_state_changed else None
            return _OboOutcome(result=_as_result(result), changed_cache=changed)
        except IdentityError:
            raise
        except Exception as exc:
            raise _unreachable(exc) from None

    def _build(self, *, token_cache: Any) -> Any:
        return msal.ConfidentialClientApplication(
            self._client_id,
            client_credential=self._client_secret,
            authority=self._authority,
            http_client=self._http,
            token_cache=token_cache,
        )

    # -- results -------------------------------------------------------------------------
    def _access_token(self, result: dict[str, Any]) -> str:
        token = result.get("access_token")
        if isinstance(token, str) and token:
            return token
        self._raise_for(result)

    def _raise_for(self, result: Mapping[str, Any]) -> NoReturn:
        error = result.get("error")
        code = error if isinstance(error, str) and _SAFE_CODE.match(error) else "unknown_error"
        numbers = _aadsts_numbers(result)
        if _CONSENT_REQUIRED in numbers:
            raise ConsentRequired(self.admin_consent_url)
        if _ASSERTION_EXPIRED in numbers:
            raise AssertionExpired()
        detail = ", ".join(f"AADSTS{number}" for number in sorted(numbers))
        logger.warning("Entra ID refused a token request: %s %s", code, detail)
        message = f"Entra ID refused the token request: {code}"
        raise IdentityError(f"{message} ({detail})" if detail else message, code=code)


@dataclass(frozen=True, repr=False)
class _OboOutcome:
    result: dict[str, Any]
    changed_cache: str | None


def _load_cache(serialized: str | None) -> Any:
    cache = msal.SerializableTokenCache()
    if serialized:
        try:
            cache.deserialize(serialized)
        except ValueError:
            logger.warning("discarding a token cache that does not parse")
            cache = msal.SerializableTokenCache()
    return cache


def _account_for(accounts: Sequence[Mapping[str, Any]], assertion: str) -> Mapping[str, Any] | None:
    """The cached account the assertion belongs to.

    An Entra token names its user (`oid`); a cache holding someone else is not used. An opaque
    assertion can only use a cache that holds a single account.
    """
    claims = unverified_claims(assertion)  # Entra ID verifies it
    oid = claims.get("oid") if claims else None
    if isinstance(oid, str) and oid:
        for account in accounts:
            if account.get("local_account_id") == oid:
                return account
        return None
    return accounts[0] if len(accounts) == 1 else None


def _aadsts_numbers(result: Mapping[str, Any]) -> set[int]:
    numbers = {code for code in result.get("error_codes") or () if isinstance(code, int)}
    description = result.get("error_description")
    if isinstance(description, str):
        numbers.update(int(found) for found in re.findall(r"AADSTS(\d{1,9})", description))
    return numbers


def _as_result(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"error": "no_response"}


def _unreachable(exc: Exception) -> IdentityError:
    # msal's and requests' exception texts can carry URLs and response bodies: name the type only.
    name = type(exc).__name__
    logger.warning("token request to Entra ID failed: %s", name)
    return IdentityError(f"could not get a token from Entra ID ({name})", code=name)


# -- HTTP ------------------------------------------------------------------------------------
def _requests_session() -> requests.Session:
    """A session like the one msal makes for itself: one retry on connection errors."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(max_retries=1)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class _RequestsHttpClient:
    """msal's http_client over a requests session, with a timeout on every request."""

    def __init__(self, session: requests.Session, *, timeout: float) -> None:
        self._session = session
        self._timeout = timeout

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        return self._session.get(
            url, params=params, headers=headers, timeout=self._timeout, **kwargs
        )

    def post(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        return self._session.post(
            url, params=params, data=data, headers=headers, timeout=self._timeout, **kwargs
        )


class _DiscoveryCache:
    """An http_client that remembers successful discovery GETs, shared by every msal app we build.

    msal fetches the OpenID configuration each time an application is built, and instance
    metadata on its first cache lookup; on-behalf-of builds one application per call (each user
    has their own token cache), so without this every call would fetch them again.
    Token requests (POST) always go through.
    """

    def __init__(self, http_client: MsalHttpClient) -> None:
        self._client = http_client
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[float, MsalHttpResponse]] = {}

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> MsalHttpResponse:
        if not any(path in url for path in _DISCOVERY_PATHS):
            return self._client.get(url, params=params, headers=headers, **kwargs)
        key = url + "?" + json.dumps(params or {}, sort_keys=True, default=str)
        now = time.monotonic()
        with self._lock:
            remembered = self._answers.get(key)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        response = self._client.get(url, params=params, headers=headers, **kwargs)
        if 200 <= response.status_code < 300:
            response.text  # noqa: B018 - read the body now, so the answer can be reused
            with self._lock:
                self._answers[key] = (now + _DISCOVERY_TTL_SECONDS, response)
        return response

    def post(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> MsalHttpResponse:
        return self._client.post(url, params=params, data=data, headers=headers, **kwargs)
