"""Adapter set-up and SDK fixes: the Bot Framework side of `/api/messages`.

With `bot/teams_handler.py` and `app.py`, the only code that imports botbuilder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
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
    CallerIdConstants,
    ChannelAccount,
    ConversationParameters,
    ConversationReference,
)
from botframework.connector.auth import (
    AuthenticateRequestResult,
    AuthenticationConstants,
    ServiceClientCredentialsFactory,
)
from msrest.exceptions import ClientRequestError, HttpOperationError

from bot.config import Settings
from bot.logs import REQUEST_ID_HEADER, begin_request, bind_activity
from bot.notifications import DeliveryError
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
    settings: Settings, *, credentials_factory: ServiceClientCredentialsFactory | None = None
) -> CloudAdapter:
    """A CloudAdapter authenticating as the configured bot (anonymous only in local mode).

    `credentials_factory` replaces botbuilder's own (from the app id and password) for the bot's
    outgoing tokens: a test seam, so replies need no Microsoft Entra ID.
    """
    configuration = SdkConfiguration(settings)
    adapter = CloudAdapter(
        ConfigurationBotFrameworkAuthentication(
            configuration, credentials_factory=credentials_factory
        )
    )
    adapter.on_turn_error = _on_turn_error
    return adapter


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
                data=serializer_helper(invoke_response.body), status=invoke_response.status
            )
        return web.Response(status=201)

    return handle


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
        activity = Activity().deserialize(payload)
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

    Errors become DeliveryError with the connector's HTTP status (403 not in the roster or
    blocked, 404 no such conversation, 412/429/5xx worth a later retry), or None when the
    connector could not be reached at all.
    """

    def __init__(self, adapter: CloudAdapter, app_id: str) -> None:
        self._adapter = adapter
        self._app_id = app_id

    async def send(self, reference: Mapping[str, Any], card: Card) -> str | None:
        sent: list[str | None] = []

        async def post(context: TurnContext) -> None:
            response = await context.send_activity(card_message(card))
            sent.append(response.id if response is not None else None)

        await self._continue(reference, post)
        return sent[0] if sent else None

    async def update(self, reference: Mapping[str, Any], activity_id: str, card: Card) -> None:
        async def put(context: TurnContext) -> None:
            activity = card_message(card)
            activity.id = activity_id
            await context.update_activity(activity)

        await self._continue(reference, put)

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

        await self._guard(
            self._adapter.create_conversation(
                self._app_id, opened, parameters, base.channel_id or "msteams", base.service_url
            )
        )
        reference = references[0]
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

        await self._guard(
            self._adapter.create_conversation(
                self._app_id, started, parameters, base.channel_id or "msteams", base.service_url
            )
        )
        return posted[0]

    async def _continue(
        self, reference: Mapping[str, Any], logic: Callable[[TurnContext], Awaitable[None]]
    ) -> None:
        conversation = ConversationReference().deserialize(dict(reference))
        await self._guard(
            self._adapter.continue_conversation(conversation, logic, self._app_id or None)
        )

    @staticmethod
    async def _guard(call: Awaitable[Any]) -> None:
        try:
            await call
        except HttpOperationError as error:
            status = getattr(error.response, "status_code", None) or getattr(
                error.response, "status", None
            )
            detail = getattr(getattr(error, "error", None), "error", None)
            raise DeliveryError(status, str(getattr(detail, "code", "") or "")) from None
        except (ClientRequestError, aiohttp.ClientError, OSError, TimeoutError) as error:
            raise DeliveryError(None, type(error).__name__) from None
