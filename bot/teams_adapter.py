"""Adapter set-up and SDK fixes: the Bot Framework side of `/api/messages`.

With `bot/teams_handler.py` and `app.py`, the only code that imports botbuilder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)
from botbuilder.schema import Activity, ActivityTypes

from bot.config import Settings
from bot.teams_handler import FrontdeskBot, card_message
from cards.common import message_card

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


def build_adapter(settings: Settings) -> CloudAdapter:
    """A CloudAdapter authenticating as the configured bot (anonymous only in local mode)."""
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(SdkConfiguration(settings)))
    adapter.on_turn_error = _on_turn_error
    return adapter


async def _on_turn_error(context: TurnContext, error: Exception) -> None:
    logger.exception("turn failed: %s", type(error).__name__, exc_info=error)
    if context.activity.type == ActivityTypes.message:
        card = message_card(
            "Something went wrong",
            "Sorry, I could not finish that. Please try again in a moment.",
        )
        try:
            await context.send_activity(card_message(card))
        except Exception:  # the connector may be what failed
            logger.warning("could not tell the user about the failure")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def messages_endpoint(adapter: CloudAdapter, bot: FrontdeskBot, *, local_mode: bool) -> Handler:
    """`POST /api/messages`: size and shape checks, then the adapter; auth failures are 401."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _problem(413, "request body too large")
        if "application/json" not in request.headers.get("Content-Type", ""):
            return _problem(415, "expected application/json")
        if not local_mode and not request.headers.get("Authorization", "").startswith("Bearer "):
            return _problem(401, "missing bearer token")
        try:
            body = await request.read()
            if len(body) > MAX_BODY_BYTES:
                return _problem(413, "request body too large")
            payload: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _problem(400, "body is not JSON")
        problem = _activity_problem(payload)
        if problem is not None:
            return _problem(400, problem)
        try:
            response = await adapter.process(request, bot)
        except web.HTTPException:
            raise
        except PermissionError:
            return _problem(401, "not authenticated")
        return response if response is not None else web.Response(status=201)

    return handle


def _activity_problem(payload: Any) -> str | None:
    """What makes this JSON unusable as an activity, or None (checked before botbuilder sees it)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        return "body is not an activity"
    try:
        activity = Activity().deserialize(payload)
    except Exception:  # msrest raises several types for fields of the wrong shape
        return "activity has fields of the wrong shape"
    if not isinstance(activity.service_url, str) or not activity.service_url:
        return "activity has no serviceUrl"
    if activity.conversation is None or not activity.conversation.id:
        return "activity has no conversation id"
    if activity.from_property is None or not activity.from_property.id:
        return "activity has no sender"
    return None


def _problem(status: int, detail: str) -> web.Response:
    return web.json_response({"error": detail}, status=status)
