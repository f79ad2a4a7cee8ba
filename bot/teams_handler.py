"""The Teams edge: turns activities into verb calls and cards into replies.

With `bot/teams_adapter.py` and `app.py`, the only code that imports botbuilder.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from botbuilder.core import (
    ActivityHandler,
    CardFactory,
    InvokeResponse,
    MessageFactory,
    TurnContext,
)
from botbuilder.schema import (
    ActionTypes,
    Activity,
    ActivityTypes,
    AdaptiveCardInvokeResponse,
    Attachment,
    CardAction,
    ChannelAccount,
    OAuthCard,
    TokenExchangeInvokeResponse,
)

from bot.actions import CardActions
from bot.commands import match_command
from bot.errors import MalformedAction
from bot.identity.errors import IdentityError, SignInRequired
from bot.identity.token_service import SignInResource
from bot.identity.user_tokens import UserTokens
from bot.models import Actor, Place
from bot.storage.deliveries import DeliveryLog, delivery_key
from bot.tasks import SlowClicks
from bot.users import UserService, WelcomeGuard
from cards.common import Card
from cards.help import signed_in_card

logger = logging.getLogger(__name__)

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
ERROR_TYPE = "application/vnd.microsoft.error"
MESSAGE_TYPE = "application/vnd.microsoft.activity.message"
LOGIN_TYPE = "application/vnd.microsoft.activity.loginRequest"
MAX_TEXT = 2_000
UNKNOWN_TENANT = "unknown"


class CardAnswer(AdaptiveCardInvokeResponse):
    """Fix 6 again: botbuilder sends an invoke's answer as an activity too, deep-copying it, so
    the card in the answer is shared by that copy (see `CardAttachment`)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> CardAnswer:
        return copy.copy(self)


def card_invoke_response(card: Card) -> InvokeResponse:
    """HTTP 200 with a card, as a model object (a plain dict body makes botbuilder answer 500)."""
    return InvokeResponse(
        status=200,
        body=CardAnswer(status_code=200, type=CARD_TYPE, value=card),
    )


def error_invoke_response(status_code: int, code: str, message: str) -> InvokeResponse:
    """HTTP 200 whose body tells Teams the action failed (400 for malformed actions)."""
    return InvokeResponse(
        status=200,
        body=AdaptiveCardInvokeResponse(
            status_code=status_code, type=ERROR_TYPE, value={"code": code, "message": message}
        ),
    )


class CardAttachment(Attachment):
    """Fix 6 (see bot/teams_adapter.py), the copy of every reply: botbuilder's `send_activities`
    deep-copies each activity before sending it, card included, node by node (a tenth of a
    message turn for the booking form). A card is never changed once built, so the copy of its
    attachment shares it; the rest of the activity is still copied. (The card stays a plain dict:
    msrest writes any other mapping as its Python repr.)"""

    def __deepcopy__(self, memo: dict[int, Any]) -> CardAttachment:
        return copy.copy(self)


def card_message(card: Card) -> Activity:
    attachment = CardFactory.adaptive_card(card)
    return MessageFactory.attachment(
        CardAttachment(content_type=attachment.content_type, content=attachment.content)
    )


def tenant_of(activity: Activity) -> str:
    """The tenant Teams names in channelData, else the conversation's."""
    channel_data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    tenant = channel_data.get("tenant")
    if isinstance(tenant, dict) and isinstance(tenant.get("id"), str) and tenant["id"]:
        return str(tenant["id"])[:64]
    conversation = activity.conversation
    if conversation is not None:
        # botbuilder maps `tenantID`; Teams sends `tenantId`, which lands in additional_properties.
        extra = getattr(conversation, "additional_properties", None) or {}
        for candidate in (getattr(conversation, "tenant_id", None), extra.get("tenantId")):
            if isinstance(candidate, str) and candidate:
                return candidate[:64]
    return UNKNOWN_TENANT


def client_zone_of(activity: Activity) -> str | None:
    """The IANA zone the Teams client sends in its clientInfo entity."""
    for entity in activity.entities or []:
        if getattr(entity, "type", None) != "clientInfo":
            continue
        extra = getattr(entity, "additional_properties", None) or {}
        zone = extra.get("timezone")
        if isinstance(zone, str):
            return zone
    return None


def place_of(activity: Activity) -> Place | None:
    """The conversation the activity came from, and the clicked card's message, if any."""
    conversation = activity.conversation
    if conversation is None or not conversation.id or not activity.service_url:
        return None
    channel_data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    channel = channel_data.get("channel")
    channel_id = channel.get("id") if isinstance(channel, dict) else None
    # Written as msrest would (fix 5 of bot/teams_adapter.py), imported here on use: that module
    # imports this one.
    from bot.teams_adapter import model_json

    reference = model_json(TurnContext.get_conversation_reference(activity))
    return Place(
        conversation_id=str(conversation.id)[:512],
        conversation_type=str(conversation.conversation_type or "personal")[:32],
        service_url=str(activity.service_url)[:512],
        reference=json.dumps(reference, sort_keys=True),
        message_id=str(activity.reply_to_id)[:512] if activity.reply_to_id else None,
        teams_channel_id=channel_id[:512] if isinstance(channel_id, str) and channel_id else None,
    )


def user_of(account: ChannelAccount | None) -> tuple[str, str]:
    """The Entra object id (else the channel id) and display name of the sender."""
    if account is None:
        return "anonymous", ""
    user_id = account.aad_object_id or account.id or "anonymous"
    return str(user_id)[:128], str(account.name or "")[:256]


class FrontdeskBot(ActivityHandler):
    """Routes Teams activities: parse, call, render, reply."""

    def __init__(
        self,
        *,
        actions: CardActions,
        users: UserService,
        welcome: WelcomeGuard,
        allowed_tenants: frozenset[str] = frozenset(),
        user_tokens: UserTokens | None = None,
        deliveries: DeliveryLog | None = None,
        slow_clicks: SlowClicks | None = None,
    ) -> None:
        super().__init__()
        self._deliveries = deliveries
        self.slow_clicks = slow_clicks
        """Clicks that may call a slow Microsoft Graph answer within a turn budget (app.py)."""
        self._user_tokens = user_tokens
        self._actions = actions
        self._users = users
        self._welcome = welcome
        self._allowed_tenants = allowed_tenants

    @property
    def actions(self) -> CardActions:
        return self._actions

    async def on_turn(self, turn_context: TurnContext) -> None:
        tenant = tenant_of(turn_context.activity)
        if self._allowed_tenants and tenant not in self._allowed_tenants:
            logger.warning("activity from a tenant that is not allowed: %s", tenant)
            if turn_context.activity.type == ActivityTypes.invoke:
                await turn_context.send_activity(
                    Activity(
                        type=ActivityTypes.invoke_response,
                        value=error_invoke_response(
                            400,
                            "TenantNotAllowed",
                            "This app is not available in your organization.",
                        ),
                    )
                )
            return
        deliveries, key = self._deliveries, self._message_key(turn_context.activity)
        if deliveries is not None and key is not None:
            if not await deliveries.first_delivery(key):
                logger.info(
                    "message delivered again, already answered: %s", turn_context.activity.id
                )
                return
        try:
            await super().on_turn(turn_context)
        except BaseException:
            if deliveries is not None and key is not None:  # let a redelivery try again
                await deliveries.forget(key)
            raise

    @staticmethod
    def _message_key(activity: Activity) -> str | None:
        """The delivery key of a message (Teams redelivers those it got no answer to); None for
        other activities: invokes are answered every time and guarded by their card's ids."""
        conversation = activity.conversation
        if activity.type != ActivityTypes.message or not activity.id:
            return None
        if conversation is None or not conversation.id:
            return None
        return delivery_key(str(activity.channel_id or ""), str(conversation.id), str(activity.id))

    async def _actor(self, turn_context: TurnContext) -> Actor:
        activity = turn_context.activity
        user_id, name = user_of(activity.from_property)
        sender = activity.from_property
        actor = await self._users.actor(
            tenant_id=tenant_of(activity),
            user_id=user_id,
            name=name,
            client_zone=client_zone_of(activity),
            channel_user_id=str(sender.id)[:256] if sender is not None and sender.id else "",
            channel_id=str(activity.channel_id or "msteams")[:64],
        )
        return replace(actor, place=place_of(activity))

    async def _remember_conversation(self, turn_context: TurnContext) -> str | None:
        activity = turn_context.activity
        conversation = activity.conversation
        if conversation is None or not conversation.id or not activity.service_url:
            return None
        user_id, _ = user_of(activity.from_property)
        await self._users.remember_conversation(
            conversation_id=conversation.id,
            tenant_id=tenant_of(activity),
            user_id=user_id,
            conversation_type=conversation.conversation_type or "personal",
            service_url=activity.service_url,
            # Serialized through msrest only when stored: most turns come from a known chat.
            reference=lambda: TurnContext.get_conversation_reference(activity).serialize(),
        )
        return str(conversation.id)

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        await self._remember_conversation(turn_context)
        actor = await self._actor(turn_context)
        activity = turn_context.activity
        text = TurnContext.remove_recipient_mention(activity) if activity.text else ""
        text = (text or "")[:MAX_TEXT]
        command = match_command(text)
        if command is None:
            card = await self._actions.not_understood(text.strip())
        else:
            try:
                card = await self._actions.command(
                    command.verb, actor, shared_chat=not _is_personal(activity)
                )
            except SignInRequired:
                await turn_context.send_activity(await self._sign_in_card(turn_context, actor))
                return
        await turn_context.send_activity(card_message(card))

    async def _sign_in_card(self, turn_context: TurnContext, actor: Actor) -> Activity:
        """An OAuth card, or the sign-in problem card when the token service cannot make one."""
        try:
            return await self._oauth_card(turn_context, actor)
        except IdentityError as error:
            logger.warning("no sign-in card: %s", type(error).__name__)
            return card_message(self._actions.sign_in_problem())

    async def _sign_in_resource(self, turn_context: TurnContext, actor: Actor) -> SignInResource:
        assert self._user_tokens is not None
        reference = TurnContext.get_conversation_reference(turn_context.activity).serialize()
        return await self._user_tokens.sign_in_resource(actor, reference)

    async def _oauth_card(self, turn_context: TurnContext, actor: Actor) -> Activity:
        """An OAuth card: Teams tries single sign-on with it first, else shows the button."""
        assert self._user_tokens is not None
        resource = await self._sign_in_resource(turn_context, actor)
        card = OAuthCard(
            text="Sign in to Microsoft 365 so Frontdesk can book rooms in your calendar.",
            connection_name=self._user_tokens.connection_name,
            buttons=[
                CardAction(type=ActionTypes.signin, title="Sign in", value=resource.sign_in_link)
            ],
            token_exchange_resource=_exchange_resource(resource),
        )
        return MessageFactory.attachment(CardFactory.oauth_card(card))

    async def _login_request(self, turn_context: TurnContext, actor: Actor) -> InvokeResponse:
        """Universal Actions' answer to a click that needs a sign-in (statusCode 401)."""
        assert self._user_tokens is not None
        resource = await self._sign_in_resource(turn_context, actor)
        value: dict[str, Any] = {
            "text": "Sign in to Microsoft 365 to continue.",
            "connectionName": self._user_tokens.connection_name,
            "buttons": [{"type": "signin", "title": "Sign in", "value": resource.sign_in_link}],
        }
        exchange = _exchange_resource(resource)
        if exchange is not None:
            value["tokenExchangeResource"] = exchange
        return InvokeResponse(
            status=200,
            body=AdaptiveCardInvokeResponse(status_code=401, type=LOGIN_TYPE, value=value),
        )

    async def on_members_added_activity(
        self, members_added: list[ChannelAccount], turn_context: TurnContext
    ) -> None:
        bot_id = turn_context.activity.recipient.id if turn_context.activity.recipient else None
        personal = _is_personal(turn_context.activity)
        if any(member.id == bot_id for member in members_added) or personal:
            await self._greet(turn_context)

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        await self._greet(turn_context)

    async def on_installation_update_remove(self, turn_context: TurnContext) -> None:
        conversation = turn_context.activity.conversation
        if conversation is not None and conversation.id:
            await self._welcome.forget(str(conversation.id))

    async def _greet(self, turn_context: TurnContext) -> None:
        conversation_id = await self._remember_conversation(turn_context)
        if conversation_id is None or not await self._welcome.first_time(conversation_id):
            return
        _, name = user_of(turn_context.activity.from_property)
        personal = _is_personal(turn_context.activity)
        card = self._actions.welcome(user_name=name or None, personal=personal)
        await turn_context.send_activity(card_message(card))

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:
        activity = turn_context.activity
        if activity.name in ("signin/tokenExchange", "signin/verifyState"):
            return await self._sign_in_invoke(turn_context)
        if activity.name != "adaptiveCard/action":
            response = await super().on_invoke_activity(turn_context)
            if response is None or response.status == 501:
                # An invoke this bot has no handler for (botbuilder says 501): the sender's error.
                logger.info("unsupported invoke %r", str(activity.name)[:64])
                return InvokeResponse(status=400)
            return response
        parsed = _parse_action(activity.value)
        if parsed is None:
            return error_invoke_response(400, "BadRequest", "The card action is not valid.")
        verb, data = parsed
        if _is_personal(activity):
            # Approvals reach people in their personal chat: remember it from any activity.
            await self._remember_conversation(turn_context)
        actor = await self._actor(turn_context)
        try:
            if self._user_tokens is not None and not await self._finish_sign_in(
                actor, activity.value
            ):
                return await self._login_request(turn_context, actor)
            try:
                card = await self._run_click(verb, data, actor)
            except SignInRequired:
                return await self._login_request(turn_context, actor)
        except MalformedAction as error:
            logger.info("malformed card action verb=%s: %s", verb[:64], error)
            return error_invoke_response(400, "BadRequest", "The card action is not valid.")
        except IdentityError as error:
            # The token service or Entra failed while signing in: say so, never an HTTP error.
            logger.warning("sign-in failed during a card action: %s", type(error).__name__)
            card = self._actions.sign_in_problem()
        return card_invoke_response(card)

    async def _run_click(self, verb: str, data: Mapping[str, Any], actor: Actor) -> Card:
        """A click whose work may call a slow Microsoft Graph answers within the turn budget
        (a "working on it" card, updated later); any other runs in the turn."""
        if self.slow_clicks is not None and self.slow_clicks.handles(verb):
            return await self.slow_clicks.answer(verb, data, actor)
        return await self._actions.run(verb, data, actor)

    async def _finish_sign_in(self, actor: Actor, value: Any) -> bool:
        """After a loginRequest Teams sends the click again with the SSO token
        (`authentication`) or the sign-in page's code (`state`): redeem it. False when that
        failed and the user must sign in again."""
        assert self._user_tokens is not None
        if not isinstance(value, dict):
            return True
        authentication = value.get("authentication")
        if isinstance(authentication, dict) and isinstance(authentication.get("token"), str):
            return await self._user_tokens.exchange(actor, authentication["token"])
        state = value.get("state")
        if isinstance(state, str) and state:
            return await self._user_tokens.redeem_code(actor, state[:64])
        return True

    async def _sign_in_invoke(self, turn_context: TurnContext) -> InvokeResponse:
        """The OAuth card's single sign-on (`signin/tokenExchange`) and magic code
        (`signin/verifyState`) invokes."""
        activity = turn_context.activity
        value = activity.value if isinstance(activity.value, dict) else {}
        if self._user_tokens is None:
            return InvokeResponse(status=404)
        actor = await self._actor(turn_context)
        if activity.name == "signin/tokenExchange":
            token = value.get("token")
            try:
                ok = isinstance(token, str) and await self._user_tokens.exchange(actor, token)
            except IdentityError as error:  # the button still works: Teams falls back to it
                logger.warning("token exchange failed: %s", type(error).__name__)
                ok = False
            body = TokenExchangeInvokeResponse(
                id=str(value.get("id", "")),
                connection_name=self._user_tokens.connection_name,
                failure_detail=None if ok else "The token could not be exchanged.",
            )
            if not ok:
                # 412 tells Teams to fall back to the sign-in button.
                return InvokeResponse(status=412, body=body)
            await turn_context.send_activity(card_message(signed_in_card()))
            return InvokeResponse(status=200, body=body)
        code = value.get("state")
        try:
            redeemed = isinstance(code, str) and await self._user_tokens.redeem_code(
                actor, code[:64]
            )
        except IdentityError as error:
            logger.warning("sign-in code not redeemed: %s", type(error).__name__)
            await turn_context.send_activity(card_message(self._actions.sign_in_problem()))
            return InvokeResponse(status=200)
        if redeemed:
            await turn_context.send_activity(card_message(signed_in_card()))
            return InvokeResponse(status=200)
        await turn_context.send_activity(await self._sign_in_card(turn_context, actor))
        return InvokeResponse(status=200)


def _exchange_resource(resource: SignInResource) -> dict[str, Any] | None:
    """The token exchange resource as Teams reads it in an OAuth card or a loginRequest."""
    if not resource.token_exchange_id or not resource.token_exchange_uri:
        return None
    exchange: dict[str, Any] = {
        "id": resource.token_exchange_id,
        "uri": resource.token_exchange_uri,
    }
    if resource.token_exchange_provider_id:
        exchange["providerId"] = resource.token_exchange_provider_id
    return exchange


def _is_personal(activity: Activity) -> bool:
    conversation = activity.conversation
    return conversation is None or (conversation.conversation_type or "personal") == "personal"


def _parse_action(value: Any) -> tuple[str, Mapping[str, Any]] | None:
    if not isinstance(value, dict):
        return None
    action = value.get("action")
    if not isinstance(action, dict):
        return None
    verb = action.get("verb")
    data = action.get("data")
    if data is None:
        data = {}
    if not isinstance(verb, str) or not verb or not isinstance(data, dict):
        return None
    return verb, data
