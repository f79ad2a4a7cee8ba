"""A fake Entra ID for msal: an `http_client` that answers in-process, no network.

Give it to `msal.ConfidentialClientApplication(http_client=...)` (or `AppIdentity`). It answers
what msal asks of `https://login.microsoftonline.com` (or another host):

- tenant discovery, `GET /{tenant}/v2.0/.well-known/openid-configuration`;
- instance discovery, `GET /common/discovery/instance` (msal asks for it on its first cache
  lookup, and at start-up for hosts it does not know);
- the token endpoint, `POST /{tenant}/oauth2/v2.0/token`, for `client_credentials`,
  `urn:ietf:params:oauth:grant-type:jwt-bearer` (on-behalf-of) and `refresh_token` grants.

Error bodies are Entra's: `error`, `error_description` starting with the AADSTS code,
`error_codes`, `timestamp`, `trace_id`, `correlation_id`. On-behalf-of needs a user assertion
shaped like an Entra token (`user_assertion`); one past its `exp` answers AADSTS500133, and
while `consent_granted` is False every on-behalf-of answers AADSTS65001.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GRANT_REFRESH_TOKEN = "refresh_token"
DEFAULT_TENANT = "8c4e1b7a-0d5f-4b8e-9a61-2f3c4d5e6f70"
DEFAULT_CLIENT_ID = "5d2b9c1e-7a44-4f0e-8d3a-1b2c3d4e5f60"
DEFAULT_SECRET = "fake-entra-client-secret"
TOKEN_LIFETIME = 3599


class FakeHttpError(Exception):
    """What `raise_for_status` raises, like `requests.HTTPError`."""


@dataclass
class FakeResponse:
    """The response shape msal reads: status_code, text, headers, raise_for_status()."""

    status_code: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise FakeHttpError(f"HTTP {self.status_code}")

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass(frozen=True)
class EntraRequest:
    """One request msal made: its kind, the grant, the form fields, and the calling thread."""

    method: str
    url: str
    kind: str  # "openid-configuration", "instance-discovery", "token", "unknown"
    form: dict[str, str]
    thread_id: int

    @property
    def grant_type(self) -> str | None:
        return self.form.get("grant_type")


@dataclass(frozen=True)
class IssuedToken:
    """A token the fake minted, and for whom."""

    kind: str  # "app" or "user"
    scope: str
    oid: str | None = None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned_jwt(claims: Mapping[str, Any], header: Mapping[str, Any] | None = None) -> str:
    """A JWT-shaped string with these claims and no real signature (msal, the bot and the
    doctor read claims without verifying them)."""
    head = _b64url(json.dumps(dict(header or {"alg": "none", "typ": "JWT"})).encode())
    return f"{head}.{_b64url(json.dumps(dict(claims)).encode())}.{_b64url(b'fake-signature')}"


def _decode_jwt(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


class FakeEntra:
    """An in-process Entra ID tenant for one confidential client app."""

    def __init__(
        self,
        *,
        tenant_id: str = DEFAULT_TENANT,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_SECRET,
        host: str = "login.microsoftonline.com",
    ) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.host = host
        self.hold: Callable[[EntraRequest], None] | None = None
        """Called in msal's thread with each request, once recorded, before it is answered: a
        test blocks here to see requests in flight (as a real HTTP call blocks its thread)."""
        self.token_lifetime = TOKEN_LIFETIME
        """`expires_in` of minted access tokens; msal refreshes those with under 5 minutes left."""
        self.consent_granted = True
        """While False, every on-behalf-of request answers AADSTS65001."""
        self.requests: list[EntraRequest] = []
        self.issued: dict[str, IssuedToken] = {}
        """Access tokens minted, by token text."""
        self._refresh_tokens: dict[str, tuple[str, str]] = {}  # token -> (oid, scope)
        self._lock = threading.Lock()
        self._serial = itertools.count(1)

    # -- what tests use ------------------------------------------------------------------
    @property
    def authority_host(self) -> str:
        return f"https://{self.host}"

    @property
    def token_endpoint(self) -> str:
        return f"https://{self.host}/{self.tenant_id}/oauth2/v2.0/token"

    def user_assertion(
        self,
        oid: str,
        *,
        tid: str | None = None,
        audience: str | None = None,
        lifetime: float = 3600.0,
    ) -> str:
        """A token for our app as Teams SSO or the token service hands it over (JWT-shaped).

        A negative `lifetime` makes one that has already expired.
        """
        now = int(time.time())
        return unsigned_jwt(
            {
                "aud": audience or f"api://{self.client_id}",
                "iss": f"https://{self.host}/{tid or self.tenant_id}/v2.0",
                "iat": now,
                "nbf": now,
                "exp": int(now + lifetime),
                "oid": oid,
                "tid": tid or self.tenant_id,
                "preferred_username": f"{oid}@contoso.example",
                "scp": "access_as_user",
                "nonce": secrets.token_hex(4),
            }
        )

    def token_requests(self, grant_type: str | None = None) -> list[EntraRequest]:
        """Requests to the token endpoint (of one grant type)."""
        return [
            request
            for request in self.requests
            if request.kind == "token" and (grant_type is None or request.grant_type == grant_type)
        ]

    def discovery_requests(self) -> list[EntraRequest]:
        return [
            request
            for request in self.requests
            if request.kind in ("openid-configuration", "instance-discovery")
        ]

    # -- msal's http_client --------------------------------------------------------------
    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> FakeResponse:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        query.update({key: str(value) for key, value in (params or {}).items()})
        path = parts.path
        if parts.hostname != self.host and path != "/common/discovery/instance":
            return self._answer("GET", url, "unknown", query, _not_found())
        if path.endswith("/v2.0/.well-known/openid-configuration"):
            tenant = path.split("/")[1]
            return self._answer("GET", url, "openid-configuration", query, self._openid(tenant))
        if path == "/common/discovery/instance":
            return self._answer("GET", url, "instance-discovery", query, self._instances(query))
        return self._answer("GET", url, "unknown", query, _not_found())

    def post(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> FakeResponse:
        if isinstance(data, str | bytes):
            text = data.decode() if isinstance(data, bytes) else data
            form = dict(parse_qsl(text))
        else:
            form = {key: str(value) for key, value in (data or {}).items()}
        if url.split("?")[0] != self.token_endpoint:
            return self._answer("POST", url, "unknown", form, _not_found())
        return self._answer("POST", url, "token", form, self._token(form))

    def close(self) -> None:
        """msal may close its http_client; nothing to release here."""

    # -- answers -------------------------------------------------------------------------
    def _answer(
        self, method: str, url: str, kind: str, form: dict[str, str], response: FakeResponse
    ) -> FakeResponse:
        request = EntraRequest(method, url, kind, dict(form), threading.get_ident())
        with self._lock:
            self.requests.append(request)
        if self.hold is not None:
            self.hold(request)
        return response

    def _openid(self, tenant: str) -> FakeResponse:
        if tenant not in (self.tenant_id, "common", "organizations"):
            return _error(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.",
            )
        base = f"https://{self.host}/{self.tenant_id}"
        return _json(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"https://{self.host}/{self.tenant_id}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "oid", "tid"],
                "kerberos_endpoint": f"{base}/kerberos",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
                "rbac_url": "https://pas.windows.net",
            },
        )

    def _instances(self, query: Mapping[str, str]) -> FakeResponse:
        authorize = query.get("authorization_endpoint", "")
        tenant = urlsplit(authorize).path.split("/")[1] if authorize else "common"
        return _json(
            200,
            {
                "tenant_discovery_endpoint": (
                    f"https://{self.host}/{tenant}/v2.0/.well-known/openid-configuration"
                ),
                "api-version": query.get("api-version", "1.1"),
                "metadata": [
                    {
                        "preferred_network": self.host,
                        "preferred_cache": self.host,
                        "aliases": [self.host],
                    }
                ],
            },
        )

    def _token(self, form: Mapping[str, str]) -> FakeResponse:
        if form.get("client_id") != self.client_id:
            return _error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the "
                f"directory '{self.tenant_id}'.",
            )
        if form.get("client_secret") != self.client_secret:
            return _error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{self.client_id}'.",
            )
        grant = form.get("grant_type")
        scope = form.get("scope", "")
        if grant == GRANT_CLIENT_CREDENTIALS:
            return self._client_credentials(scope)
        if grant == GRANT_JWT_BEARER:
            return self._on_behalf_of(form, scope)
        if grant == GRANT_REFRESH_TOKEN:
            return self._refresh(form, scope)
        return _error(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        )

    def _client_credentials(self, scope: str) -> FakeResponse:
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return _error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier.",
            )
        token = self._mint("app", scopes[0])
        return _json(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            },
        )

    def _on_behalf_of(self, form: Mapping[str, str], scope: str) -> FakeResponse:
        if form.get("requested_token_use") != "on_behalf_of":
            return _error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'requested_token_use'.",
            )
        claims = _decode_jwt(form.get("assertion", ""))
        if claims is None or not isinstance(claims.get("oid"), str):
            return _error(
                400,
                "invalid_request",
                50027,
                "JWT token is invalid or malformed.",
            )
        now = time.time()
        if float(claims.get("exp", 0)) <= now:
            expired_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(float(claims["exp"])))
            current = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            return _error(
                400,
                "invalid_grant",
                500133,
                "Assertion is not within its valid time range. Ensure that the access token is "
                "not expired before using it for user assertion, or request a new token. "
                f"Current time: {current}.0000000Z, expiry time of assertion "
                f"{expired_at}.0000000Z.",
            )
        if not self.consent_granted:
            return _error(
                400,
                "invalid_grant",
                65001,
                f"The user or administrator has not consented to use the application with ID "
                f"'{self.client_id}' named 'Frontdesk'. Send an interactive authorization "
                "request for this user and resource.",
                suberror="consent_required",
            )
        return self._user_tokens(claims["oid"], str(claims.get("tid") or self.tenant_id), scope)

    def _refresh(self, form: Mapping[str, str], scope: str) -> FakeResponse:
        known = self._refresh_tokens.get(form.get("refresh_token", ""))
        if known is None:
            return _error(
                400,
                "invalid_grant",
                9002313,
                "Invalid request. Request is malformed or invalid.",
            )
        oid, _ = known
        return self._user_tokens(oid, self.tenant_id, scope)

    def _user_tokens(self, oid: str, tid: str, scope: str) -> FakeResponse:
        resource_scopes = [
            item for item in scope.split() if item not in ("openid", "profile", "offline_access")
        ]
        granted = " ".join(sorted(resource_scopes))
        access_token = self._mint("user", granted, oid=oid)
        refresh_token = f"fake-rt-{secrets.token_urlsafe(24)}"
        with self._lock:
            self._refresh_tokens[refresh_token] = (oid, granted)
        now = int(time.time())
        id_token = unsigned_jwt(
            {
                "aud": self.client_id,
                "iss": f"https://{self.host}/{tid}/v2.0",
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "name": f"User {oid[:8]}",
                "oid": oid,
                "preferred_username": f"{oid}@contoso.example",
                "sub": f"sub-{oid}",
                "tid": tid,
                "ver": "2.0",
            }
        )
        client_info = _b64url(json.dumps({"uid": oid, "utid": tid}).encode())
        return _json(
            200,
            {
                "token_type": "Bearer",
                "scope": granted,
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": access_token,
                "refresh_token": refresh_token,
                "id_token": id_token,
                "client_info": client_info,
            },
        )

    def _mint(self, kind: str, scope: str, *, oid: str | None = None) -> str:
        # Opaque, unique, and easy to search for in logs and messages.
        token = f"fake-at-{next(self._serial)}-{secrets.token_urlsafe(24)}"
        with self._lock:
            self.issued[token] = IssuedToken(kind=kind, scope=scope, oid=oid)
        return token


def _json(status: int, body: Mapping[str, Any]) -> FakeResponse:
    return FakeResponse(
        status_code=status,
        text=json.dumps(body),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )


def _error(
    status: int, error: str, number: int, description: str, *, suberror: str | None = None
) -> FakeResponse:
    trace_id = str(uuid.uuid4())
    correlation_id = str(uuid.uuid4())
    timestamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    body: dict[str, Any] = {
        "error": error,
        "error_description": (
            f"AADSTS{number}: {description} Trace ID: {trace_id} "
            f"Correlation ID: {correlation_id} Timestamp: {timestamp}"
        ),
        "error_codes": [number],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={number}",
    }
    if suberror is not None:
        body["suberror"] = suberror
    return _json(status, body)


def _not_found() -> FakeResponse:
    return FakeResponse(status_code=404, text="", headers={})
