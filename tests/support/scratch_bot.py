"""A tiny Bot Framework bot in plain aiohttp, to test the Playground driver without the real bot.

It listens on ``http://127.0.0.1:<port>/api/messages`` without authentication (the Playground sends
no token when it runs without a client id) and answers:

- a message ``card``: an Adaptive Card 1.5 with labelled inputs (``Input.Date`` ``date``,
  ``Input.Time`` ``start``, ``Input.Text`` ``subject``, ``Input.Number`` ``attendees``,
  ``Input.ChoiceSet`` ``room``, ``Input.Toggle`` ``online``) and an ``Action.Execute`` (verb
  ``demo.go``, data ``{"x": 1}``) inside an ``ActionSet``, plus a second ``Action.Execute``
  ``demo.cancel`` in the card's ``actions``;
- a message ``choices``: a card with an expanded single choice set, compact and expanded
  multi-select choice sets and a multiline text input, and an ``Action.Execute`` ``demo.choices``;
- a message ``update``: a text message, then an update of that same message (``PUT`` on the
  connector) to a card;
- a message ``dm <user id>``: opens a personal chat with that user (connector ``POST
  /v3/conversations``), sends the ``card`` there, and answers ``dm: conversation=<id> id=<id>``;
- any other message: ``echo: <text>``;
- the invoke ``adaptiveCard/action``: HTTP 200 with ``{"statusCode": 200, "type":
  "application/vnd.microsoft.card.adaptive", "value": <card>}`` where the card echoes the verb, the
  user id and every key of ``value.action.data`` as TextBlocks ``verb=...``, ``user=...``,
  ``data.<key>=<json value>``;
- ``installationUpdate`` and ``conversationUpdate``: a text message ``event: <type> <action or
  members>``.

Every activity received is kept in ``ScratchBot.activities`` so tests can check what the Playground
delivered.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import ClientSession, web

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
GO_VERB = "demo.go"
CANCEL_VERB = "demo.cancel"


def demo_card() -> dict[str, Any]:
    """The card the bot sends for ``card``."""
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": [
            {"type": "TextBlock", "text": "Book a room", "weight": "Bolder", "wrap": True},
            {"type": "Input.Date", "id": "date", "label": "Date"},
            {"type": "Input.Time", "id": "start", "label": "Start"},
            {"type": "Input.Text", "id": "subject", "label": "Subject"},
            {"type": "Input.Number", "id": "attendees", "label": "Attendees", "min": 1, "max": 50},
            {
                "type": "Input.ChoiceSet",
                "id": "room",
                "label": "Room",
                "choices": [
                    {"title": "Atlas", "value": "room-atlas"},
                    {"title": "Borealis", "value": "room-borealis"},
                    {"title": "Cosmos", "value": "room-cosmos"},
                ],
            },
            {
                "type": "Input.Toggle",
                "id": "online",
                "label": "Online meeting",
                "title": "Add a Teams meeting",
                "valueOn": "yes",
                "valueOff": "no",
            },
            {
                "type": "ActionSet",
                "actions": [
                    {"type": "Action.Execute", "title": "Go", "verb": GO_VERB, "data": {"x": 1}}
                ],
            },
        ],
        "actions": [
            {"type": "Action.Execute", "title": "Cancel", "verb": CANCEL_VERB, "data": {"x": 2}}
        ],
    }


def choices_card() -> dict[str, Any]:
    """The card the bot sends for ``choices``: the other renderings of ``Input.ChoiceSet``."""
    colours = [{"title": t, "value": t.lower()} for t in ("Red", "Green", "Blue")]
    return {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [
            {
                "type": "Input.ChoiceSet",
                "id": "floor",
                "label": "Floor",
                "style": "expanded",
                "choices": [
                    {"title": "Ground", "value": "0"},
                    {"title": "First", "value": "1"},
                    {"title": "Second", "value": "2"},
                ],
            },
            {
                "type": "Input.ChoiceSet",
                "id": "colours",
                "label": "Colours",
                "isMultiSelect": True,
                "choices": colours,
            },
            {
                "type": "Input.ChoiceSet",
                "id": "extras",
                "label": "Extras",
                "style": "expanded",
                "isMultiSelect": True,
                "choices": [
                    {"title": t, "value": t.lower()} for t in ("Coffee", "Projector", "Whiteboard")
                ],
            },
            {"type": "Input.Text", "id": "notes", "label": "Notes", "isMultiline": True},
        ],
        "actions": [
            {"type": "Action.Execute", "title": "Send", "verb": "demo.choices", "data": {"x": 4}}
        ],
    }


def echo_card(verb: str, data: dict[str, Any], user_id: str) -> dict[str, Any]:
    """The card answering an ``adaptiveCard/action``: verb, user and data as TextBlocks."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": f"verb={verb}", "wrap": True},
        {"type": "TextBlock", "text": f"user={user_id}", "wrap": True},
    ]
    for key in sorted(data):
        body.append(
            {"type": "TextBlock", "text": f"data.{key}={json.dumps(data[key])}", "wrap": True}
        )
    body.append(
        {
            "type": "ActionSet",
            "actions": [
                {"type": "Action.Execute", "title": "Again", "verb": GO_VERB, "data": {"x": 3}}
            ],
        }
    )
    return {"type": "AdaptiveCard", "version": "1.5", "body": body}


def _card_attachment(card: dict[str, Any]) -> dict[str, Any]:
    return {"contentType": CARD_CONTENT_TYPE, "content": card}


class ScratchBot:
    """The scratch bot's aiohttp server. ``async with ScratchBot(port) as bot:`` serves until the
    block ends."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.activities: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    @property
    def endpoint(self) -> str:
        """The messaging endpoint to give the Playground."""
        return f"http://{self.host}:{self.port}/api/messages"

    async def __aenter__(self) -> ScratchBot:
        app = web.Application()
        app.router.add_post("/api/messages", self._on_post)
        self._session = ClientSession()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _on_post(self, request: web.Request) -> web.StreamResponse:
        activity: dict[str, Any] = await request.json()
        self.activities.append(activity)
        kind = activity.get("type")
        if kind == "invoke":
            return self._on_invoke(activity)
        if kind == "message":
            await self._on_message(activity)
        elif kind == "installationUpdate":
            await self._reply(
                activity,
                {"type": "message", "text": f"event: installationUpdate {activity.get('action')}"},
            )
        elif kind == "conversationUpdate":
            added = ",".join(m.get("id", "") for m in activity.get("membersAdded") or [])
            removed = ",".join(m.get("id", "") for m in activity.get("membersRemoved") or [])
            await self._reply(
                activity,
                {
                    "type": "message",
                    "text": f"event: conversationUpdate added={added} removed={removed}",
                },
            )
        return web.Response(status=200)

    def _on_invoke(self, activity: dict[str, Any]) -> web.Response:
        if activity.get("name") != "adaptiveCard/action":
            return web.json_response({}, status=501)
        value = activity.get("value") or {}
        action = value.get("action") or {}
        verb = str(action.get("verb", ""))
        data = action.get("data") or {}
        user_id = str((activity.get("from") or {}).get("id", ""))
        body = {
            "statusCode": 200,
            "type": CARD_CONTENT_TYPE,
            "value": echo_card(verb, data, user_id),
        }
        return web.json_response(body, status=200)

    async def _on_message(self, activity: dict[str, Any]) -> None:
        text = str(activity.get("text") or "")
        # Group chats and channels deliver the mention markup with the text.
        while "<at>" in text and "</at>" in text:
            start, end = text.index("<at>"), text.index("</at>") + len("</at>")
            text = text[:start] + text[end:]
        text = text.strip()
        if text == "card":
            await self._reply(
                activity, {"type": "message", "attachments": [_card_attachment(demo_card())]}
            )
        elif text == "choices":
            await self._reply(
                activity, {"type": "message", "attachments": [_card_attachment(choices_card())]}
            )
        elif text.startswith("dm "):
            await self._send_direct(activity, text[3:].strip())
        elif text == "update":
            sent = await self._reply(activity, {"type": "message", "text": "before update"})
            card = {
                "type": "AdaptiveCard",
                "version": "1.5",
                "body": [{"type": "TextBlock", "text": "after update"}],
            }
            await self._update(
                activity,
                str(sent["id"]),
                {"type": "message", "attachments": [_card_attachment(card)]},
            )
        else:
            await self._reply(activity, {"type": "message", "text": f"echo: {text}"})

    async def _send_direct(self, activity: dict[str, Any], user_id: str) -> None:
        """Open a personal chat with ``user_id`` (connector ``POST /v3/conversations``) and send the
        card there."""
        assert self._session is not None
        service_url = str(activity["serviceUrl"]).rstrip("/")
        tenant_id = (activity.get("conversation") or {}).get("tenantId")
        params = {
            "bot": activity.get("recipient"),
            "members": [{"id": user_id}],
            "isGroup": False,
            "tenantId": tenant_id,
            "channelData": {"tenant": {"id": tenant_id}},
        }
        async with self._session.post(f"{service_url}/v3/conversations", json=params) as resp:
            resp.raise_for_status()
            conversation_id = str((await resp.json())["id"])
        card = {"type": "message", "attachments": [_card_attachment(demo_card())]}
        target = {
            **activity,
            "conversation": {"id": conversation_id},
            "from": {"id": user_id},
            "id": None,
        }
        sent = await self._reply(target, card)
        await self._reply(
            activity,
            {"type": "message", "text": f"dm: conversation={conversation_id} id={sent['id']}"},
        )

    def _conversation_url(self, activity: dict[str, Any]) -> str:
        service_url = str(activity["serviceUrl"]).rstrip("/")
        return f"{service_url}/v3/conversations/{activity['conversation']['id']}/activities"

    def _outgoing(self, activity: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        outgoing = {
            **reply,
            "from": activity.get("recipient"),
            "recipient": activity.get("from"),
            "conversation": activity.get("conversation"),
            "replyToId": activity.get("id"),
        }
        return {key: value for key, value in outgoing.items() if value is not None}

    async def _reply(self, activity: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        assert self._session is not None
        async with self._session.post(
            self._conversation_url(activity), json=self._outgoing(activity, reply)
        ) as resp:
            resp.raise_for_status()
            result: dict[str, Any] = await resp.json()
            return result

    async def _update(
        self, activity: dict[str, Any], activity_id: str, reply: dict[str, Any]
    ) -> None:
        assert self._session is not None
        url = f"{self._conversation_url(activity)}/{activity_id}"
        payload = {**self._outgoing(activity, reply), "id": activity_id}
        async with self._session.put(url, json=payload) as resp:
            resp.raise_for_status()
