"""Adapter set-up and SDK fixes: the Bot Framework side of `/api/messages`.

With `bot/teams_handler.py` and `app.py`, the only code that imports botbuilder.
"""

from __future__ import annotations

import email.utils
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import aiohttp
import requests
from aiohttp import web
from botbuilder.core import TurnContext, serializer_helper
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    AdaptiveCardInvokeResponse,
    CallerIdConstants,
    ChannelAccount,
    ConversationParameters,
    ConversationReference,
)
from botframework.connector.auth import (
    AuthenticateRequestResult,
    AuthenticationConstants,
    ClaimsIdentity,
    ConnectorFactory,
    ServiceClientCredentialsFactory,
    UserTokenClient,
)
from msrest.exceptions import ClientRequestError, HttpOperationError
from msrest.pipeline import Request, Response, SansIOHTTPPolicy
from msrest.pipeline.async_abc import AsyncHTTPPolicy, AsyncHTTPSender, AsyncPipeline
from msrest.pipeline.async_requests import AsyncRequestsCredentialsPolicy
from msrest.pipeline.requests import RequestsContext
from msrest.pipeline.universal import RawDeserializer
from msrest.serialization import Deserializer, Model, Serializer
from msrest.universal_http.aiohttp import AioHttpClientResponse
from msrest.universal_http.requests import ClientRetryPolicy

from bot.config import Settings
from bot.logs import REQUEST_ID_HEADER, begin_request, bind_activity
from bot.notifications import DeliveryError, RetryPolicy, SendLimits
from bot.teams_handler import FrontdeskBot, card_invoke_response, card_message
from cards.common import Card, message_card

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024


class SdkConfiguration:
    """Our public settings under the attribute names botbuilder reads."""

    def __init__(self, settings: Settings) -> None:
        self.APP_ID = settings.microsoft_app_id
        self.APP_PASSWORD = settings.microsoft_app_password.get_secret_value()
        # With no app id botbuilder runs anonymously, which its MultiTenant factory alone allows.
        self.APP_TYPE = "MultiTenant" if settings.local_mode else settings.microsoft_app_type.value
        self.APP_TENANTID = settings.microsoft_app_tenant_id
        # Setting any one of the attributes below (OAUTH_URL always is) switches botbuilder from its
        # built-in public cloud to a parameterized set-up that leaves every attribute not given as
        # None (no token issuer, no login URL). So all are given: the public cloud's own values
        # unless one of our settings overrides them.
        self.OAUTH_URL = settings.bot_oauth_url
        self.TO_CHANNEL_FROM_BOT_LOGIN_URL = (
            AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX
        )
        self.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE = (
            AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
        )
        self.CALLER_ID = CallerIdConstants.public_azure_channel
        metadata_url = settings.bot_openid_metadata_url
        self.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL = (
            metadata_url or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL
        )
        self.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL = (
            metadata_url or AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL
        )
        self.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER = (
            settings.bot_token_issuer or AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER
        )


def build_adapter(
    settings: Settings,
    *,
    http: aiohttp.ClientSession,
    credentials_factory: ServiceClientCredentialsFactory | None = None,
) -> CloudAdapter:
    """A CloudAdapter authenticating as the configured bot (anonymous only in local mode), with
    every SDK fix below applied; replies and proactive messages go out through `http`, the
    app's shared session (see `ReusedClients`).

    `credentials_factory` replaces botbuilder's own (from the app id and password) for the bot's
    outgoing tokens: a test seam, so replies need no Microsoft Entra ID.
    """
    apply_sdk_fixes()
    configuration = SdkConfiguration(settings)
    adapter = CloudAdapter(
        ReusedClients(configuration, http=http, credentials_factory=credentials_factory)
    )
    adapter.on_turn_error = _on_turn_error
    return adapter


# -- botbuilder performance fixes (../shared/PLATFORM.md, "botbuilder performance") ----------------
# Each fix is small and named, and tests/perf/test_sdk_fixes.py fails when one stops applying
# (for example after a dependency upgrade).


def apply_sdk_fixes() -> None:
    """Fix 1, msrest's retry-policy cost: `ClientRetryPolicy.__init__` builds its retry list with
    `i not in self.safe_codes` on a 500-item list, 999 times (69-77% of a stock bot's CPU, run
    for every client botbuilder builds). The same codes as a frozenset give the same list in
    0.05 ms (msrest PR #266, closed unmerged: msrest is deprecated). Idempotent."""
    codes: Any = ClientRetryPolicy.safe_codes
    if not isinstance(codes, frozenset):
        setattr(ClientRetryPolicy, "safe_codes", frozenset(codes))  # noqa: B010 - typed as a list


MAX_REUSED_CLIENTS = 256


class ReusedClients(ConfigurationBotFrameworkAuthentication):  # type: ignore[misc]
    """botbuilder's authentication with fix 2 and fix 3 applied.

    Fix 2, per-turn client construction: botbuilder builds a new ConnectorClient (and a new
    user-token client) for every turn, with its msrest configuration, serializer and a new
    requests session. Here one connector client is kept per (bot app id, serviceUrl, audience),
    at most MAX_REUSED_CLIENTS, and one user-token client per app id; the credentials inside
    them fetch and refresh the bot's token as before.

    Fix 3, connections and threads: botbuilder sends replies with `requests` in asyncio's
    default thread pool (6 threads on 2 cores), on a new TCP connection each time. A kept
    client sends through the app's shared aiohttp session instead: no thread hop, and its
    connection pool keeps connections to the connector open. msrest's hidden retries (a PUT
    repeated on 5xx, connection errors) live in its requests sender, so they are gone too:
    proactive sends are retried by TeamsMessenger's RetryPolicy alone.
    """

    def __init__(
        self,
        configuration: Any,
        *,
        http: aiohttp.ClientSession,
        credentials_factory: ServiceClientCredentialsFactory | None = None,
    ) -> None:
        super().__init__(configuration, credentials_factory=credentials_factory)
        self._http = http
        self._connector_clients: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self._token_clients: dict[str, UserTokenClient] = {}

    async def authenticate_request(
        self, activity: Activity, auth_header: str | None
    ) -> AuthenticateRequestResult:
        result: AuthenticateRequestResult = await super().authenticate_request(
            activity, auth_header
        )
        if result.connector_factory is not None:
            result.connector_factory = _ReusedConnectorFactory(
                result.connector_factory, _app_id(result.claims_identity), self
            )
        return result

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return _ReusedConnectorFactory(
            super().create_connector_factory(claims_identity), _app_id(claims_identity), self
        )

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> UserTokenClient:
        app_id = _app_id(claims_identity)
        client = self._token_clients.get(app_id)
        if client is None:
            client = await super().create_user_token_client(claims_identity)
            self._token_clients[app_id] = client
        return client

    async def connector_client(
        self, key: tuple[str, str, str], create: Callable[[], Awaitable[Any]]
    ) -> Any:
        """The kept client for `key`, made by `create` the first time."""
        client = self._connector_clients.get(key)
        if client is not None:
            self._connector_clients.move_to_end(key)
            return client
        client = await create()
        _send_through(client, self._http)
        _serialize_plainly(client)
        self._connector_clients[key] = client
        while len(self._connector_clients) > MAX_REUSED_CLIENTS:
            self._connector_clients.popitem(last=False)
        return client


class _ReusedConnectorFactory(ConnectorFactory):  # type: ignore[misc]
    """botbuilder's connector factory for one turn, answering with the kept clients."""

    def __init__(self, inner: ConnectorFactory, app_id: str, clients: ReusedClients) -> None:
        self._inner = inner
        self._app_id = app_id
        self._clients = clients

    async def create(self, service_url: str, audience: str | None = None) -> Any:
        return await self._clients.connector_client(
            (self._app_id, service_url, audience or ""),
            lambda: self._inner.create(service_url, audience),
        )


def _app_id(claims_identity: ClaimsIdentity | None) -> str:
    """The bot's app id in the claims, as botbuilder's factories read it ("" when anonymous)."""
    claims = (claims_identity.claims if claims_identity is not None else None) or {}
    return str(
        claims.get(AuthenticationConstants.AUDIENCE_CLAIM)
        or claims.get(AuthenticationConstants.APP_ID_CLAIM)
        or ""
    )


def _send_through(client: Any, http: aiohttp.ClientSession) -> None:
    """Rebuild the client's msrest pipeline as msrest does, with `SharedSessionSender` last."""
    config = client.config
    credentials = config.credentials
    policies: list[Any] = [config.user_agent_policy, RawDeserializer(), config.http_logger_policy]
    if credentials:
        if isinstance(credentials, AsyncHTTPPolicy | SansIOHTTPPolicy):
            policies.insert(1, credentials)
        else:
            policies.insert(1, AsyncRequestsCredentialsPolicy(credentials))  # type: ignore[no-untyped-call]
    config.pipeline = AsyncPipeline(policies, SharedSessionSender(http))


class _NotPlain(Exception):
    """A value that is not plain JSON (a model, an enum, a date, a non-text key)."""


_JSON_SCALARS = frozenset({str, int, float, bool})


def _plain_json(value: Any) -> Any:
    """A copy of a tree of plain JSON values (dict with text keys, list, str, int, float, bool,
    None), which is what msrest's `serialize_object` makes of one; _NotPlain for anything else."""
    kind = type(value)
    if value is None or kind in _JSON_SCALARS:
        return value
    if kind is dict:
        copied: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            copied[key] = _plain_json(item)
        return copied
    if kind is list:
        return [_plain_json(item) for item in value]
    raise _NotPlain


def _model_json(model: Model) -> dict[str, Any]:
    """What msrest's `Serializer.body` writes for a model (an activity, its accounts and
    attachments) whose values are all plain: its set attributes under their JSON keys. _NotPlain
    for anything msrest would convert or check (a date, a dict where a model belongs, a number
    in a text field, validation rules, flattened keys)."""
    if model._validation:
        raise _NotPlain
    out: dict[str, Any] = {}
    for attr, desc in model._attribute_map.items():
        value = getattr(model, attr, None)
        if value is None:
            continue
        key = desc["key"]
        if not key or "." in key:
            raise _NotPlain
        out[key] = _typed_json(value, desc["type"])
    return out


def _typed_json(value: Any, data_type: str) -> Any:
    """One attribute's value as msrest serializes it for its declared type (see `_model_json`)."""
    kind = type(value)
    if data_type == "str":
        if isinstance(value, Enum):
            value = value.value  # msrest writes an enum's value
            kind = type(value)
        if kind is str:
            return value
    elif data_type == "bool" and kind is bool:
        return value
    elif data_type == "int" and kind is int:
        return value
    elif data_type == "float" and kind is float:
        return value
    elif data_type == "object":
        return _plain_json(value)
    elif data_type.startswith("[") and data_type.endswith("]") and kind is list:
        return [_typed_json(item, data_type[1:-1]) for item in value]
    elif data_type.startswith("{") and data_type.endswith("}") and kind is dict:
        if not all(type(key) is str for key in value):
            raise _NotPlain
        return {key: _typed_json(item, data_type[1:-1]) for key, item in value.items()}
    elif isinstance(value, Model) and data_type[0] not in "[{":
        return _model_json(value)
    raise _NotPlain


def model_json(model: Model) -> dict[str, Any]:
    """`model.serialize()` (msrest's JSON of a model), through `_model_json` when it can."""
    try:
        return _model_json(model)
    except _NotPlain:
        serialized: dict[str, Any] = model.serialize()  # type: ignore[no-untyped-call]
        return serialized


_SCHEMA_MODELS: dict[str, type[Model]] = Activity._infer_class_models()


def activity_from_json(payload: dict[str, Any]) -> Activity:
    """Fix 7, reading each activity: `Activity().deserialize(payload)`, what botbuilder does with
    every request, classifies and converts each value through msrest's type dispatch (a tenth
    of a message turn). An activity whose values all have their declared JSON types is built
    here directly, the same models with the same values and the same `additional_properties`
    (unknown keys: Teams' `tenantId`, a clientInfo entity's `timezone`); anything else is left
    to msrest, errors included."""
    try:
        activity = _model_from_json(Activity, payload)
    except Exception:  # _NotPlain, or a value msrest must judge (it raises its own error)
        return Activity().deserialize(payload)
    assert isinstance(activity, Activity)
    return activity


def _model_from_json(cls: type[Model], data: Any) -> Model:
    if type(data) is not dict or cls._validation or getattr(cls, "_subtype_map", None):
        raise _NotPlain
    values: dict[str, Any] = {}
    known: set[str] = set()
    for attr, desc in cls._attribute_map.items():
        key = desc["key"]
        if not key or "." in key:
            raise _NotPlain
        known.add(key)
        raw = data.get(key)
        values[attr] = None if raw is None else _from_typed_json(raw, desc["type"])
    model = cls(**values)
    extra = {key: data[key] for key in data.keys() - known}
    if extra:
        model.additional_properties = extra
    return model


def _from_typed_json(raw: Any, data_type: str) -> Any:
    """One JSON value read for its declared type as msrest reads it (see `_model_from_json`)."""
    kind = type(raw)
    if data_type == "str" and kind is str:
        return raw
    if (data_type, kind) in (("bool", bool), ("int", int), ("float", float)):
        return raw
    if data_type == "object":
        return _plain_json(raw)
    if data_type == "iso-8601" and kind is str:
        return Deserializer.deserialize_iso(raw)  # type: ignore[no-untyped-call]
    if data_type.startswith("[") and data_type.endswith("]") and kind is list:
        inner = data_type[1:-1]
        return [None if item is None else _from_typed_json(item, inner) for item in raw]
    if data_type.startswith("{") and data_type.endswith("}") and kind is dict:
        inner = data_type[1:-1]
        return {
            key: None if item is None else _from_typed_json(item, inner)
            for key, item in raw.items()
        }
    model = _SCHEMA_MODELS.get(data_type)
    if model is not None and issubclass(model, Model):
        return _model_from_json(model, raw)
    raise _NotPlain


class PlainJsonSerializer(Serializer):
    """Fix 5, serialization of replies and proactive messages: for a request body, msrest first
    rebuilds the activity model it is given (a deserialization pass), then validates it, then
    writes it value by value, free-form values (`object`: a card in an attachment, channelData)
    included, through type dispatch and `eval`: about 1.5 ms for a booking form. A model whose
    values are all plain comes out of that as its set attributes under their JSON keys, and a
    plain JSON tree as an equal copy of itself, so both are written here directly; anything else
    (a date, a model in channelData) still goes through msrest."""

    def body(self, data: Any, data_type: str, **kwargs: Any) -> Any:
        if not kwargs and isinstance(data, Model) and type(data).__name__ == data_type:
            try:
                return _model_json(data)
            except _NotPlain:
                pass
        return super().body(data, data_type, **kwargs)  # type: ignore[no-untyped-call]

    def serialize_object(self, attr: Any, **kwargs: Any) -> Any:
        try:
            return _plain_json(attr)
        except _NotPlain:
            return super().serialize_object(attr, **kwargs)  # type: ignore[no-untyped-call]


def _serialize_plainly(client: Any) -> None:
    """Give a kept connector client, and its operations, `PlainJsonSerializer`."""
    stock = client._serialize
    serializer = PlainJsonSerializer(stock.dependencies)  # type: ignore[no-untyped-call]
    serializer.client_side_validation = stock.client_side_validation
    client._serialize = serializer
    for operations in (client.conversations, client.attachments):
        operations._serialize = serializer


class _SignedHeaders:
    """What msrest's credentials policy signs: botbuilder's credentials set `Authorization` on
    a requests session's headers, and that is all they touch."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}


class SharedSessionSender(AsyncHTTPSender[Any, Any]):
    """The last step of a connector client's msrest pipeline: the request goes out through the
    shared aiohttp session (kept-alive connections, no worker thread)."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self._http = http

    async def __aenter__(self) -> SharedSessionSender:
        return self

    async def __aexit__(self, *exc_details: object) -> None:
        return None

    def build_context(self) -> RequestsContext:
        return RequestsContext(session=_SignedHeaders())  # type: ignore[no-untyped-call]

    async def send(self, request: Request[Any], **config: Any) -> Response[Any, Any]:
        outgoing = request.http_request
        headers = dict(request.context.session.headers) if request.context else {}
        headers.update(outgoing.headers)
        headers.pop("Content-Length", None)  # aiohttp counts the bytes itself
        data = outgoing.data
        if isinstance(data, str):
            data = data.encode("utf-8")
        async with self._http.request(
            outgoing.method, outgoing.url, data=data, headers=headers, allow_redirects=False
        ) as answer:
            response = AioHttpClientResponse(outgoing, answer)
            await response.load_body()
        return Response(request, response)


async def _on_turn_error(context: TurnContext, error: Exception) -> None:
    """A turn failed unexpectedly: log it and tell the user plainly, never with the error text.

    A card click still answers HTTP 200 with a card (else botbuilder answers 501, which Teams
    shows as a bare error); a message gets the same card as a reply.
    """
    logger.exception("turn failed: %s", type(error).__name__, exc_info=error)
    card = message_card(
        "Something went wrong",
        "Sorry, I could not finish that. Please try again in a moment.",
    )
    activity = context.activity
    if activity.type == ActivityTypes.invoke and activity.name == "adaptiveCard/action":
        await context.send_activity(
            Activity(type=ActivityTypes.invoke_response, value=card_invoke_response(card))
        )
        return
    if activity.type == ActivityTypes.message:
        try:
            await context.send_activity(card_message(card))
        except Exception:  # the connector may be what failed
            logger.warning("could not tell the user about the failure")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def messages_endpoint(adapter: CloudAdapter, bot: FrontdeskBot, *, local_mode: bool) -> Handler:
    """`POST /api/messages`: size and shape checks, authentication, then the turn.

    Every authentication failure is 401 (403 for a channel the signing key does not endorse) and
    runs no turn; a failure in the turn itself is not an authentication failure and stays 500.
    Each request gets a request id (`x-request-id`, see bot/logs.py) that its log lines carry
    and its answer returns.
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        request_id = begin_request(request.headers.get(REQUEST_ID_HEADER))
        response = await handle_turn(request)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response

    async def handle_turn(request: web.Request) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _problem(413, "request body too large")
        if "application/json" not in request.headers.get("Content-Type", ""):
            return _problem(415, "expected application/json")
        auth_header = request.headers.get("Authorization", "")
        if not local_mode and not auth_header.startswith("Bearer "):
            return _problem(401, "missing bearer token")
        try:
            body = await request.read()
            if len(body) > MAX_BODY_BYTES:
                return _problem(413, "request body too large")
            payload: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _problem(400, "body is not JSON")
        activity = _parse_activity(payload)
        if isinstance(activity, str):
            return _problem(400, activity)
        bind_activity(
            activity_id=activity.id,
            activity_type=activity.type,
            conversation_id=activity.conversation.id,
        )
        authenticated = await _authenticate(adapter, activity, auth_header or None)
        if isinstance(authenticated, web.Response):
            return authenticated
        invoke_response = await adapter.process_activity(authenticated, activity, bot.on_turn)
        if invoke_response:
            # As CloudAdapter.process answers.
            return web.json_response(
                data=invoke_body(invoke_response.body), status=invoke_response.status
            )
        return web.Response(status=201)

    return handle


def invoke_body(body: Any) -> Any:
    """Fix 4, serialization of invoke responses: botbuilder's `serializer_helper` builds an msrest
    Serializer and walks the whole card through it, value by value. A card's answer
    (AdaptiveCardInvokeResponse holding a plain JSON dict) is written here as the same JSON
    directly; anything else still goes through botbuilder."""
    if isinstance(body, AdaptiveCardInvokeResponse) and isinstance(body.value, dict):
        fields = {"statusCode": body.status_code, "type": body.type, "value": body.value}
        return {key: value for key, value in fields.items() if value is not None}
    return serializer_helper(body)


# What botbuilder 4.17.1 raises, as a bare Exception, for a key that does not endorse the channel.
_ENDORSEMENT_FAILURE = "Could not validate endorsement key"


async def _authenticate(
    adapter: CloudAdapter, activity: Activity, auth_header: str | None
) -> AuthenticateRequestResult | web.Response:
    """botbuilder's check of the bearer token against the activity, or the answer refusing it.

    botbuilder reports a bad token with PermissionError, PyJWT's errors, IndexError (unknown key
    id), AttributeError (a header it cannot split) and bare Exception (disallowed algorithm,
    unendorsed channel), so everything raised here but a failure to fetch the signing keys is the
    caller's token failing. `None` as the header is the anonymous request of local mode.
    """
    try:
        result: AuthenticateRequestResult = (
            await adapter.bot_framework_authentication.authenticate_request(activity, auth_header)
        )
    except requests.RequestException:
        # The OpenID metadata or its keys could not be fetched: our outage, not a bad token.
        logger.exception("could not fetch the keys that sign Bot Framework tokens")
        return _problem(503, "cannot verify tokens right now")
    except Exception as error:  # see above: botbuilder has no one authentication error type
        if type(error) is Exception and str(error) == _ENDORSEMENT_FAILURE:
            logger.warning(
                "token rejected: its key does not endorse channel %r", activity.channel_id
            )
            return _problem(403, "token not valid for this channel")
        logger.warning("token rejected: %s: %r", type(error).__name__, str(error))
        return _problem(401, "not authenticated")
    return result


def _parse_activity(payload: Any) -> Activity | str:
    """The activity in this JSON, or what makes it unusable (checked before botbuilder sees it)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        return "body is not an activity"
    try:
        activity = activity_from_json(payload)
    except Exception:  # msrest raises several types for fields of the wrong shape
        return "activity has fields of the wrong shape"
    # msrest turns a number or a list into text, so the raw value is what is checked.
    service_url = payload.get("serviceUrl")
    if not isinstance(service_url, str) or not service_url.startswith(("https://", "http://")):
        return "activity has no serviceUrl"
    if activity.conversation is None or not activity.conversation.id:
        return "activity has no conversation id"
    if activity.from_property is None or not activity.from_property.id:
        return "activity has no sender"
    if activity.recipient is None or not activity.recipient.id:
        return "activity has no recipient"
    for name in _OBJECT_LISTS:
        items = payload.get(name)
        if items is not None and not (
            isinstance(items, list) and all(isinstance(item, dict) for item in items)
        ):
            return f"activity has {name} that are not objects"
    if any(not isinstance(entity.get("type"), str) for entity in payload.get("entities") or []):
        # botbuilder reads every entity's type (mentions), and a Teams entity always has one.
        return "activity has entities without a type"
    return activity


# Lists in an activity whose items botbuilder reads as objects (a null item breaks the turn).
_OBJECT_LISTS = (
    "entities",
    "attachments",
    "membersAdded",
    "membersRemoved",
    "reactionsAdded",
    "reactionsRemoved",
)


def _problem(status: int, detail: str) -> web.Response:
    return web.json_response({"error": detail}, status=status)


class TeamsMessenger:
    """Proactive sends through the Bot Connector (the `Messenger` of bot/notifications.py).

    Errors become DeliveryError with the connector's HTTP status, error code and Retry-After
    (403 not in the roster or blocked, 404 no such conversation, 412/429/5xx worth a later
    retry), or status None when the connector could not be reached at all. Every call goes
    through `retry` (bot.notifications.RetryPolicy: Teams' retry guidance), and only there: the
    adapter's connector clients send through the shared session, without msrest's retries.
    Every attempt first waits its turn under `limits` (Teams' rate limits per conversation and
    per tenant), so a burst of cards goes out at the pace Teams allows instead of into 429s.
    """

    def __init__(
        self,
        adapter: CloudAdapter,
        app_id: str,
        *,
        retry: RetryPolicy | None = None,
        limits: SendLimits | None = None,
    ) -> None:
        self._adapter = adapter
        self._app_id = app_id
        self._retry = retry or RetryPolicy()
        self._limits = limits or SendLimits()

    async def send(self, reference: Mapping[str, Any], card: Card, *, tenant_id: str) -> str | None:
        async def once() -> str | None:
            await self._limits.wait(tenant_id, _conversation_id(reference))
            sent: list[str | None] = []

            async def post(context: TurnContext) -> None:
                response = await context.send_activity(card_message(card))
                sent.append(response.id if response is not None else None)

            await self._continue(reference, post)
            return sent[0] if sent else None

        return await self._retry.run("send", once, creates=True)

    async def update(
        self, reference: Mapping[str, Any], activity_id: str, card: Card, *, tenant_id: str
    ) -> None:
        async def put(context: TurnContext) -> None:
            activity = card_message(card)
            activity.id = activity_id
            await context.update_activity(activity)

        async def once() -> None:
            await self._limits.wait(tenant_id, _conversation_id(reference))
            await self._continue(reference, put)

        await self._retry.run("update", once, creates=False)

    async def open_personal(
        self, *, template: Mapping[str, Any], tenant_id: str, user_id: str
    ) -> tuple[str, dict[str, Any]]:
        base = ConversationReference().deserialize(dict(template))
        parameters = ConversationParameters(
            is_group=False,
            bot=base.bot,
            members=[ChannelAccount(id=user_id, aad_object_id=user_id)],
            tenant_id=tenant_id,
            channel_data={"tenant": {"id": tenant_id}},
        )
        references: list[dict[str, Any]] = []

        async def opened(context: TurnContext) -> None:
            reference = TurnContext.get_conversation_reference(context.activity).serialize()
            reference["user"] = {"id": user_id, "aadObjectId": user_id}
            reference.setdefault("conversation", {})["conversationType"] = "personal"
            reference["conversation"]["tenantId"] = tenant_id
            references.append(reference)

        async def once() -> None:
            await self._limits.wait(tenant_id, None)
            await _guard(
                self._adapter.create_conversation(
                    self._app_id, opened, parameters, base.channel_id or "msteams", base.service_url
                )
            )

        # Teams answers a second request for the same 1:1 chat with that chat: safe to repeat.
        await self._retry.run("open a personal chat", once, creates=False)
        reference = references[-1]
        return str(reference["conversation"]["id"]), reference

    async def post_to_channel(
        self, *, template: Mapping[str, Any], tenant_id: str, channel_id: str, card: Card
    ) -> tuple[str, dict[str, Any], str | None]:
        base = ConversationReference().deserialize(dict(template))
        parameters = ConversationParameters(
            is_group=True,
            bot=base.bot,
            tenant_id=tenant_id,
            channel_data={"channel": {"id": channel_id}, "tenant": {"id": tenant_id}},
            activity=card_message(card),
        )
        posted: list[tuple[str, dict[str, Any], str | None]] = []

        async def started(context: TurnContext) -> None:
            reference = TurnContext.get_conversation_reference(context.activity).serialize()
            reference.setdefault("conversation", {})["conversationType"] = "channel"
            conversation_id = str(reference["conversation"]["id"])
            # A channel thread's id names its first message: `19:...;messageid=<id>`.
            _, _, message_id = conversation_id.partition(";messageid=")
            posted.append((conversation_id, reference, message_id or context.activity.id))

        async def once() -> None:
            # A new thread in the channel: the channel's own pace counts.
            await self._limits.wait(tenant_id, channel_id)
            await _guard(
                self._adapter.create_conversation(
                    self._app_id,
                    started,
                    parameters,
                    base.channel_id or "msteams",
                    base.service_url,
                )
            )

        # A new thread is a new message: retried only when the connector did not create it.
        await self._retry.run("post to a channel", once, creates=True)
        return posted[-1]

    async def _continue(
        self, reference: Mapping[str, Any], logic: Callable[[TurnContext], Awaitable[None]]
    ) -> None:
        conversation = ConversationReference().deserialize(dict(reference))
        failures: list[Exception] = []

        async def guarded(context: TurnContext) -> None:
            try:
                await logic(context)
            except Exception as error:
                # botbuilder hands errors raised in a turn to on_turn_error, which swallows
                # them: keep it to raise here, so a refused send is not taken for a sent one.
                failures.append(error)

        await _guard(
            self._adapter.continue_conversation(conversation, guarded, self._app_id or None)
        )
        if failures:
            await _guard(_raise(failures[0]))


def _conversation_id(reference: Mapping[str, Any]) -> str:
    """The conversation a stored conversation reference names."""
    conversation = reference.get("conversation") or {}
    return str(conversation.get("id") or "")


async def _raise(error: Exception) -> None:
    raise error


async def _guard(call: Awaitable[Any]) -> None:
    """Await a connector call; its failure as DeliveryError (status, code, Retry-After)."""
    try:
        await call
    except HttpOperationError as error:
        response = error.response
        status = getattr(response, "status_code", None) or getattr(response, "status", None)
        detail = getattr(getattr(error, "error", None), "error", None)
        headers = getattr(response, "headers", None) or {}
        raise DeliveryError(
            status,
            str(getattr(detail, "code", "") or ""),
            retry_after=_retry_after(headers.get("Retry-After")),
        ) from None
    except (ClientRequestError, aiohttp.ClientError, OSError, TimeoutError) as error:
        raise DeliveryError(None, type(error).__name__) from None


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date from now; None when absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
