"""The reference: a stock botbuilder 4.17.1 echo bot, set up the way the samples do it.

CloudAdapter with ConfigurationBotFrameworkAuthentication (anonymous, as a bot with no app id
runs), `adapter.process` on aiohttp, an ActivityHandler that answers a message with an Adaptive
Card echoing the text, and a card click (`adaptiveCard/action`) with a card in the invoke
response. No SDK fix of any kind: this is what every bot on this SDK starts from.

    python -m bench.reference_bot --port 0      # prints "PORT <n>" once listening
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from aiohttp import web
from botbuilder.core import (  # noqa: TID251 - the reference is a stock botbuilder bot
    ActivityHandler,
    InvokeResponse,
    MessageFactory,
    TurnContext,
)
from botbuilder.integration.aiohttp import (  # noqa: TID251
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)
from botbuilder.schema import (  # noqa: TID251
    AdaptiveCardInvokeResponse,
    Attachment,
)

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"


def echo_card(text: str) -> dict[str, Any]:
    """A small Adaptive Card with the text and one button (what an echo sample would send)."""
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": [
            {"type": "TextBlock", "text": "Echo", "weight": "Bolder", "size": "Medium"},
            {"type": "TextBlock", "text": text, "wrap": True},
        ],
        "actions": [{"type": "Action.Execute", "title": "Again", "verb": "echo.again", "data": {}}],
    }


class EchoBot(ActivityHandler):
    async def on_message_activity(self, turn_context: TurnContext) -> None:
        card = Attachment(content_type=ADAPTIVE_CARD, content=echo_card(turn_context.activity.text))
        await turn_context.send_activity(MessageFactory.attachment(card))

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        # The working pattern for card clicks on CloudAdapter (../shared/PLATFORM.md).
        value = turn_context.activity.value or {}
        verb = str((value.get("action") or {}).get("verb", ""))
        return InvokeResponse(
            status=200,
            body=AdaptiveCardInvokeResponse(
                status_code=200, type=ADAPTIVE_CARD, value=echo_card(f"clicked {verb}")
            ),
        )


class AnonymousConfiguration:
    APP_ID = ""
    APP_PASSWORD = ""
    APP_TYPE = "MultiTenant"
    APP_TENANTID = ""


def build_app() -> web.Application:
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(AnonymousConfiguration()))
    bot = EchoBot()

    async def messages(request: web.Request) -> web.StreamResponse:
        response = await adapter.process(request, bot)
        return response if response is not None else web.Response(status=201)

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/readyz", ready)
    return app


async def serve(port: int) -> None:
    runner = web.AppRunner(build_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    sys.stdout.write(f"PORT {server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    options = parser.parse_args()
    try:
        asyncio.run(serve(options.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
