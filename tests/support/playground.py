"""Drive Microsoft 365 Agents Playground (npm @microsoft/m365agentsplayground 0.2.28) in e2e tests.

``Playground`` starts the Playground's own binary against a bot endpoint and talks to it the way its
web UI does: HTTP to send messages, invokes and custom activities, WebSocket streams to see what the
bot sent. ``run_ui_steps`` drives the real web UI in headless Chromium
(``tests/js/playground-ui.mjs``). Tests read verbs, data and input ids from the card the Playground
pushed (``find_actions``, ``input_ids``, ``card_text``), never from constants.

Everything below was read from the Playground's bundled JS (``dist/index.js``, ``dist/client/...``)
and checked against a scratch bot (``tests/support/scratch_bot.py``).

Starting
    ``agentsplayground -e BOT -c msteams -p PORT --service-url http://127.0.0.1:PORT/_connector
    --disable-telemetry`` with ``TEAMSAPPTESTER_BROWSER=none``. The CLI has no option for the config
    file: it reads ``M365_AGENTS_PLAYGROUND_CONFIG_PATH`` (else ``.m365agentsplayground.yml`` in its
    working directory, else the legacy ``TEAMS_APP_TEST_TOOL_CONFIG_PATH`` /
    ``.teamsapptesttool.yml``, else a built-in default with a random personal-chat id). Its own log
    goes to ``M365_AGENTS_PLAYGROUND_LOGFILE`` (default ``./devTools/m365agentsplayground.log``). It
    listens on every interface and has no host option: this driver preloads
    (``NODE_OPTIONS=--require``) a few lines that bind port-only ``listen`` calls to 127.0.0.1.
    Without ``--service-url`` the ``serviceUrl`` the bot gets is ``http://localhost:PORT/...``.
    Without ``--disable-telemetry`` it tries to send Application Insights telemetry. It prints
    ``Listening on PORT``; when the port is taken it silently picks another, so the driver checks
    the line and retries.

``GET /_debug/ping``
    ``pong`` once the server is up (about 0.6 s).
``GET /_internal/v1/config``
    Waits (up to 15 s) until the bot endpoint accepts connections, then answers ``{"config":
    {"tenantId", "bot": {"id", "name"}, "currentUser": {"id", "name", "userPrincipleName",
    "aadObjectId", ...}, "users": [5 users], "personalChat": {"id", "name"}, "groupChats": [{"id",
    "name", "members": [user ids]}], "teams": [{"id", "name", "aadGroupId", "channels": [{"id",
    "name", "channelType"}], "members"}]}, "internalConfig": {"locale", "localTimezone",
    "channelId", "debugConfig"}}``. Built-in ids: user ``user-id-0`` (Alex Wilber), users
    ``user-id-1`` .. ``user-id-5``, bot ``00000000-0000-0000-0000-00000000000011`` ("Test Bot"),
    team ``team-id``.
``.m365agentsplayground.yml``
    ``version: "0.1.1"``, ``tenantId``, ``bot: {id, name}``, ``currentUser`` and exactly 5 ``users``
    (each ``id, name, userPrincipleName`` [sic]``, aadObjectId, givenName, surname, email``),
    ``personalChat: {id}``, ``groupChat: {id, name}`` (members: currentUser + all 5 users), ``team:
    {id, name, aadGroupId, channels: [at most 1 {id, name}]}``. No other keys; user ids must be
    unique. See ``write_config_file``.
``POST /_conversation/v1/conversations/{conversationId}/messages``
    Body ``{"from": {"id": USER}, "text": "...", "textFormat": "plain"}`` (or ``attachments`` +
    ``attachmentLayout``), optional ``"mentions": [{"mentioned": {"id": BOT}, "text": "<at>Test
    Bot</at>"}]``; answers ``{"messageId", "timestamp"}`` at once and then calls the bot. The bot
    gets messages in the personal chat, and in group chats / channels only when the bot is mentioned
    (the text keeps the ``<at>`` markup). ``from.id`` must be a member of the chat (400
    ``UserNotFound``), but the activity the bot receives is always ``from`` the current user:
    messages cannot be sent as someone else.
``POST /_conversation/v1/invoke``
    What the UI sends for an ``Action.Execute``: ``{"name": "adaptiveCard/action", "from": {"id":
    USER}, "conversation": {"id": CONV}, "replyToId": CARD_MESSAGE_ID, "value": {"action": {"type":
    "Action.Execute", "title", "verb", "data"}}}`` (the UI sends no ``trigger``; Teams sends
    ``"manual"``, so ``invoke`` adds it unless told not to). The bot's activity has ``from`` = that
    user (name and aadObjectId filled in), ``replyToId``, ``value`` as sent,
    ``channelData.source.name == "message"``. The answer is ``{"type", "value"}`` copied from the
    bot's body: the bot's ``statusCode`` is dropped (the log stream keeps it, see
    ``bot_invoke_response``). Errors: 400 ``UserNotFound`` (user not in that chat), 400
    ``ActivityNotFoundInConversation`` (replyToId not in that conversation), 502 ``UserBotError``
    with ``innerHttpError: {statusCode, body}`` when the bot answers non-2xx.
Acting as another user
    Only invokes can: ``from.id`` is any member of the conversation. Personal chat: the current user
    only. Group chat (``config.group_chat_id``): the current user and all 5 users. A personal chat
    the bot opens itself (connector ``POST /v3/conversations`` with ``members: [{"id":
    "user-id-2"}]``, id ``<uuid>@test.user``): that user. The Playground pushes no frames for chats
    the current user is not in; their messages are seen on the log stream (``wait_for_sent``). To be
    someone else entirely, write a config file with that ``currentUser``.
How an invoke's card reaches the conversation
    It does not, on the stream: no ``updateMessage`` frame follows an invoke. The Playground server
    replaces the stored message's card (when it has exactly one attachment) and the web UI
    re-renders the card from the invoke's HTTP answer, with a note "Your response was sent to the
    app". The driver therefore records an ``invoke``-kind ``Message`` (same id as the card's
    message) from the answer so ``latest_card`` shows what the UI shows. When the bot instead calls
    ``update_activity`` (connector ``PUT``), an ``updateMessage`` frame with the same ``messageId``
    arrives.
``/_internal/v1/customActivities``
    ``GET .../customActivities/template?conversationId=C&type=T`` builds an activity, ``T`` one of
    ``install``, ``uninstall`` (``installationUpdate`` add/remove), ``botAdded``, ``userAdded``,
    ``botRemoved``, ``userRemoved`` (``conversationUpdate`` membersAdded/membersRemoved),
    ``channelCreated``, ``channelRenamed``, ``channelDeleted``, ``teamRenamed``, ``teamDeleted``,
    ``sendEmail``, ``mentionInWord``; without ``type``, a base activity of type
    ``<custom-activity-type>``. ``POST .../customActivities`` takes any activity JSON, answers 200
    at once and forwards it to the bot verbatim (failures only reach the log). ``POST
    /_debug/conversation/{id}/installation`` is what the web UI does when it opens a chat:
    ``installationUpdate`` add, then ``conversationUpdate`` with membersAdded [current user, bot].
``WS /_ws_conversation/v1/conversations/stream``
    Text frames ``{"action": "createMessage" | "updateMessage", "actionConversationId": CONV,
    "message": {"messageId", "timestamp", "from": {"id"}, "text", "textFormat", "attachments":
    [{"contentType", "content"}], "attachmentLayout", "mentions", "directLineConversationId",
    ...}}`` and ``{"action": "typing", "actionConversationId"}``. Bot messages only (the user's own
    are not echoed), only for chats the current user is in. Frames sent while no client is connected
    are buffered and all go to the next client that connects (only that one).
``WS /_ws/log/stream``
    ``{"logAction": "appendLog", "log": {...}}``; bot traffic items have ``type: "bot"``, ``from`` /
    ``to`` ("Microsoft 365 Agents Playground" / "User Application"), ``activityName``,
    ``conversationId``, ``messageId``, ``request.body`` and ``response: {statusCode, body}``. Bot
    sends are 201 (create) and 200 (``PUT`` update, same ``messageId``).
The web UI (``run_ui_steps``)
    Opening it sends the bot ``installationUpdate`` add and ``conversationUpdate`` membersAdded for
    the personal chat (every page load). It shows only messages that arrive while it is open (no
    history): start a UI run with a ``send`` step. Inputs are Teams' Fluent controls: ``Input.Date``
    a date picker (dialog "Calendar", day buttons named ``23, November, 2026``, "Previous month" /
    "Next month" buttons, the value shown as ``November 23, 2026`` but sent as ``2026-11-23``);
    ``Input.Time`` a combobox that accepts only its own options (every 30 min; ``2:00 PM`` and
    ``14:00`` work, ``2:15 PM`` and ``09:30 AM`` leave it empty; sent as ``14:00``); compact
    ``Input.ChoiceSet`` a combobox with ``option``s, or with ``menuitemcheckbox``es when
    multi-select (sent as ``"red,blue"``); expanded ones radios / checkboxes whose accessible names
    include the set's label for checkboxes ("Extras Coffee"); ``Input.Toggle`` a checkbox (sent as
    ``valueOn`` / ``valueOff``); ``Input.Number`` a spin button (sent as a string). An invoke answer
    of type ``application/vnd.microsoft.activity.message`` is shown as a note under the card.
Timings here (2 vCPU)
    Playground start to ping 0.6 s, config 0.05 s more; a bot reply frame 5-20 ms after the POST;
    web UI ready in the browser 3-4 s (a 9 MB bundle); a full UI run of ~12 steps about 7 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import aiohttp
import yaml

from tests.support.cardquery import input_values, walk
from tests.support.prereq import require

REPO_ROOT = Path(__file__).resolve().parents[2]
JS_DIR = REPO_ROOT / "tests" / "js"
PLAYGROUND_BIN = JS_DIR / "node_modules" / ".bin" / "agentsplayground"
UI_SCRIPT = JS_DIR / "playground-ui.mjs"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium")

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
PLAYGROUND_LABEL = "Microsoft 365 Agents Playground"
BOT_LABEL = "User Application"

# Environment the Playground reads that a developer's shell might carry: never inherit it.
_SCRUBBED_ENV_PREFIXES = ("M365_AGENTS_PLAYGROUND_", "TEAMSAPPTESTER_", "TEAMS_APP_TEST_TOOL_")
_SCRUBBED_ENV = frozenset(
    {
        "BOT_ENDPOINT",
        "SEND_INSTALLATION_ACTIVITY",
        "DEFAULT_CHANNEL_ID",
        "AUTH_CLIENT_ID",
        "AUTH_CLIENT_SECRET",
        "AUTH_TENANT_ID",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
    }
)

# Preloaded into the Playground's node: `server.listen(port)` binds 127.0.0.1, not every interface.
BIND_LOOPBACK_JS = JS_DIR / "bind-loopback.cjs"

_LISTENING = re.compile(r"Listening on (\d+)")

MessageKind = Literal["create", "update", "invoke"]
MessageSource = Literal["stream", "log", "invoke"]


class PlaygroundError(RuntimeError):
    """The Playground failed to start or answered an API call with an error."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ------------------------------------------------------------------------------------------
# Cards: pure functions over Adaptive Card JSON


def find_actions(card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """All actions anywhere in the card, in document order: ``actions``, nested ``ActionSet``s,
    ``selectAction``s, and the actions in an ``Action.ShowCard``'s card (after the show-card)."""
    return [
        node
        for node in walk(dict(card))
        if isinstance(node.get("type"), str) and str(node["type"]).startswith("Action.")
    ]


def find_action(
    card: Mapping[str, Any], title: str | None = None, *, verb: str | None = None
) -> dict[str, Any]:
    """The one action with this exact ``title`` (and/or ``verb``); else LookupError listing all."""
    if title is None and verb is None:
        raise ValueError("find_action needs a title or a verb")
    actions = find_actions(card)
    hits = [
        action
        for action in actions
        if (title is None or action.get("title") == title)
        and (verb is None or action.get("verb") == verb)
    ]
    if len(hits) != 1:
        seen = [(a.get("type"), a.get("title"), a.get("verb")) for a in actions]
        wanted = f"title={title!r} verb={verb!r}"
        raise LookupError(f"{len(hits)} actions match {wanted}; the card has {seen}")
    return hits[0]


def input_ids(card: Mapping[str, Any]) -> list[str]:
    """The ids of every ``Input.*`` element in the card, in document order."""
    return [
        str(node["id"])
        for node in walk(dict(card))
        if isinstance(node.get("type"), str)
        and str(node["type"]).startswith("Input.")
        and "id" in node
    ]


def form_inputs(card: Mapping[str, Any], **changes: str) -> dict[str, Any]:
    """The values a user leaves in a form (its defaults) with their own changes, which must be
    inputs of the card."""
    values: dict[str, Any] = input_values(card)
    unknown = set(changes) - set(input_ids(card))
    assert not unknown, f"the form has no inputs {unknown}"
    values.update(changes)
    return values


def card_text(card: Mapping[str, Any]) -> str:
    """All text of ``TextBlock``s, ``RichTextBlock`` runs and ``FactSet`` facts (``title: value``),
    one per line."""
    lines: list[str] = []
    for node in walk(dict(card)):
        kind = node.get("type")
        if kind == "TextBlock" and isinstance(node.get("text"), str):
            lines.append(node["text"])
        elif kind == "RichTextBlock":
            runs = [
                run if isinstance(run, str) else str(run.get("text", ""))
                for run in node.get("inlines") or []
            ]
            lines.append("".join(runs))
        elif kind == "FactSet":
            for fact in node.get("facts") or []:
                lines.append(f"{fact.get('title', '')}: {fact.get('value', '')}")
    return "\n".join(lines)


def action_data(
    action: Mapping[str, Any], inputs: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What a client sends as ``value.action.data`` for ``action``: its ``data`` with the inputs
    merged in (as the Adaptive Cards renderer does)."""
    data = action.get("data")
    merged: dict[str, Any] = dict(data) if isinstance(data, Mapping) else {}
    merged.update(inputs or {})
    return merged


def _cards_of(attachments: Any) -> list[dict[str, Any]]:
    cards: list[dict[str, Any]] = []
    for attachment in attachments or []:
        if isinstance(attachment, Mapping) and attachment.get("contentType") == ADAPTIVE_CARD:
            content = attachment.get("content")
            if isinstance(content, dict):
                cards.append(content)
    return cards


@dataclass(frozen=True)
class Message:
    """A bot message as the Playground reported it.

    ``kind``: ``create`` / ``update`` (a ``createMessage`` / ``updateMessage`` frame, or a bot send
    / ``PUT`` on the log stream) or ``invoke`` (the card an invoke answer put in place of message
    ``id``; the Playground pushes no frame for it). ``source`` says where it came from; ``raw`` is
    the frame, log item or invoke answer.
    """

    id: str
    kind: MessageKind
    conversation_id: str
    sender_id: str
    text: str | None
    cards: list[dict[str, Any]]
    raw: dict[str, Any]
    source: MessageSource = "stream"

    @property
    def card(self) -> dict[str, Any]:
        """The message's first Adaptive Card (LookupError when it has none)."""
        if not self.cards:
            raise LookupError(
                f"message {self.id} ({self.kind}) has no Adaptive Card: {self.text!r}"
            )
        return self.cards[0]

    @classmethod
    def from_frame(cls, frame: Mapping[str, Any]) -> Message | None:
        """A ``createMessage`` / ``updateMessage`` frame of the conversation stream, else None."""
        action = frame.get("action")
        message = frame.get("message")
        if action not in ("createMessage", "updateMessage") or not isinstance(message, Mapping):
            return None
        sender = message.get("from") or {}
        return cls(
            id=str(message.get("messageId", "")),
            kind="create" if action == "createMessage" else "update",
            conversation_id=str(frame.get("actionConversationId", "")),
            sender_id=str(sender.get("id", "")),
            text=message.get("text"),
            cards=_cards_of(message.get("attachments")),
            raw=dict(frame),
        )

    @classmethod
    def from_log(cls, item: Mapping[str, Any]) -> Message | None:
        """A message the bot sent or updated through the connector (log-stream item), else None."""
        if item.get("type") != "bot" or item.get("from") != BOT_LABEL:
            return None
        request = (item.get("request") or {}).get("body") or {}
        response = item.get("response") or {}
        if not isinstance(request, Mapping) or request.get("type") != "message":
            return None
        status = response.get("statusCode")
        if not isinstance(status, int) or not 200 <= status < 300:
            return None
        body = response.get("body")
        message_id = body.get("id") if isinstance(body, Mapping) else item.get("messageId")
        sender = request.get("from") or {}
        conversation = request.get("conversation") or {}
        return cls(
            id=str(message_id or ""),
            kind="update" if status == 200 else "create",
            conversation_id=str(item.get("conversationId") or conversation.get("id") or ""),
            sender_id=str(sender.get("id", "")),
            text=request.get("text"),
            cards=_cards_of(request.get("attachments")),
            raw=dict(item),
            source="log",
        )


@dataclass(frozen=True)
class PlaygroundConfig:
    """``GET /_internal/v1/config``; properties name the key paths they read."""

    raw: dict[str, Any]

    @property
    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.raw["config"]
        return config

    @property
    def personal_chat_id(self) -> str:
        """``config.personalChat.id``: the current user's 1:1 chat with the bot."""
        return str(self._config["personalChat"]["id"])

    @property
    def current_user_id(self) -> str:
        """``config.currentUser.id``: the user the UI (and every message) acts as."""
        return str(self._config["currentUser"]["id"])

    @property
    def current_user(self) -> dict[str, Any]:
        """``config.currentUser``."""
        user: dict[str, Any] = self._config["currentUser"]
        return user

    @property
    def bot_id(self) -> str:
        """``config.bot.id``."""
        return str(self._config["bot"]["id"])

    @property
    def bot_name(self) -> str:
        """``config.bot.name`` (the text of an ``<at>`` mention)."""
        return str(self._config["bot"]["name"])

    @property
    def tenant_id(self) -> str:
        """``config.tenantId``."""
        return str(self._config["tenantId"])

    @property
    def group_chat_id(self) -> str:
        """``config.groupChats[0].id``: the group chat of the current user and all ``users``."""
        return str(self._config["groupChats"][0]["id"])

    @property
    def team_id(self) -> str:
        """``config.teams[0].id``: also the General channel's conversation id."""
        return str(self._config["teams"][0]["id"])

    @property
    def users(self) -> list[dict[str, Any]]:
        """``config.users``: the 5 other users (``id``, ``name``, ``aadObjectId``, ...)."""
        users: list[dict[str, Any]] = self._config["users"]
        return users

    def user(self, name_or_id: str) -> dict[str, Any]:
        """The user (current user included) with this id or display name."""
        for user in [self.current_user, *self.users]:
            if name_or_id in (user.get("id"), user.get("name")):
                return user
        raise LookupError(f"no user {name_or_id!r} in the Playground config")


def write_config_file(
    path: Path,
    *,
    current_user: Mapping[str, str],
    users: Sequence[Mapping[str, str]],
    tenant_id: str = "00000000-0000-0000-0000-0000000000001",
    bot_id: str = "00000000-0000-0000-0000-00000000000011",
    bot_name: str = "Test Bot",
    personal_chat_id: str = "personal-chat-id",
    group_chat_id: str = "group-chat-id",
    team_id: str = "team-id",
) -> Path:
    """Write a ``.m365agentsplayground.yml``. Users need ``id`` and ``name``; the other required
    keys (``userPrincipleName``, ``aadObjectId``, ``givenName``, ``surname``, ``email``) are derived
    when absent. The Playground demands exactly 5 ``users``."""
    if len(users) != 5:
        raise ValueError("the Playground config takes exactly 5 users besides the current user")

    def full(user: Mapping[str, str], index: int) -> dict[str, str]:
        given, _, surname = user["name"].partition(" ")
        login = user["name"].lower().replace(" ", ".")
        return {
            "id": user["id"],
            "name": user["name"],
            "userPrincipleName": user.get("userPrincipleName", f"{login}@example.com"),
            "aadObjectId": user.get("aadObjectId", f"00000000-0000-0000-0000-{index:012d}"),
            "givenName": user.get("givenName", given),
            "surname": user.get("surname", surname or given),
            "email": user.get("email", f"{login}@example.com"),
        }

    document = {
        "version": "0.1.1",
        "tenantId": tenant_id,
        "bot": {"id": bot_id, "name": bot_name},
        "currentUser": full(current_user, 100),
        "users": [full(user, 101 + i) for i, user in enumerate(users)],
        "personalChat": {"id": personal_chat_id},
        "groupChat": {"id": group_chat_id, "name": "Group Chat"},
        "team": {
            "id": team_id,
            "name": "My Team",
            "aadGroupId": "00000000-0000-0000-0000-000000000031",
            "channels": [{"id": f"{team_id}-announcements", "name": "Announcements"}],
        },
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------
# The Playground process and its API


def _playground_env(workdir: Path, config_file: Path | None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _SCRUBBED_ENV and not key.startswith(_SCRUBBED_ENV_PREFIXES)
    }
    preload = BIND_LOOPBACK_JS
    env["NODE_OPTIONS"] = f"{env.get('NODE_OPTIONS', '')} --require {preload}".strip()
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["TEAMSAPPTESTER_BROWSER"] = "none"
    env["M365_AGENTS_PLAYGROUND_LOGFILE"] = str(workdir / "playground-internal.log")
    # An absent path makes the Playground fall back to its built-in config (the cwd is empty).
    env["M365_AGENTS_PLAYGROUND_CONFIG_PATH"] = str(
        config_file.resolve() if config_file else workdir / "no-config.yml"
    )
    env["TEAMS_APP_TEST_TOOL_CONFIG_PATH"] = str(workdir / "no-legacy-config.yml")
    return env


class Playground:
    """A running Playground connected to ``bot_endpoint``: ``async with Playground(url) as pg``.

    On entry: start the binary (own process group, output to ``log_dir/playground.out``), wait for
    ``/_debug/ping``, read ``/_internal/v1/config`` (which waits for the bot), open the conversation
    and log WebSocket streams and collect their frames in the background. On exit: close the streams
    and the HTTP session, kill the process group. ``log_dir`` (default: a new temporary directory,
    kept for post-mortems) also holds the Playground's own log.

    ``wait_for`` / ``wait_for_sent`` look, by default, only at what arrived after the last action
    this driver took (send, invoke, custom activity); pass ``after=0`` to search everything.
    """

    def __init__(
        self,
        bot_endpoint: str,
        *,
        config_file: Path | None = None,
        port: int | None = None,
        log_dir: Path | None = None,
        personal_chat_id: str | None = None,
        startup_timeout: float = 30.0,
        binary: Path = PLAYGROUND_BIN,
    ) -> None:
        if config_file is not None and not config_file.is_file():
            raise FileNotFoundError(config_file)
        self.bot_endpoint = bot_endpoint
        self.config_file = config_file
        self.log_dir = log_dir
        self._requested_port = port
        self._personal_chat_id = personal_chat_id
        self._startup_timeout = startup_timeout
        self._binary = binary
        self._port: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._sockets: list[aiohttp.ClientWebSocketResponse] = []
        self._readers: list[asyncio.Task[None]] = []
        self._config: PlaygroundConfig | None = None
        self._frames: list[dict[str, Any]] = []
        self._log_items: list[dict[str, Any]] = []
        self._messages: list[Message] = []
        self._sent: list[Message] = []
        self._mark = (0, 0, 0)
        self._changed: asyncio.Condition | None = None

    # -- lifecycle

    async def __aenter__(self) -> Playground:
        if self.log_dir is None:
            self.log_dir = Path(tempfile.mkdtemp(prefix="playground-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._changed = asyncio.Condition()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        try:
            await self._start_process()
            self._config = PlaygroundConfig(await self._get_json("/_internal/v1/config"))
            await self._open_stream("/_ws_conversation/v1/conversations/stream", self._on_frame)
            await self._open_stream("/_ws/log/stream", self._on_log)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for reader in self._readers:
            reader.cancel()
        for reader in self._readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        self._readers.clear()
        for ws in self._sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        self._sockets.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._stop_process()

    async def _start_process(self) -> None:
        if not self._binary.exists():
            raise PlaygroundError(f"Agents Playground is not installed: {self._binary}")
        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(attempts):
            port = self._requested_port or free_port()
            if await self._launch(port):
                self._port = port
                break
            await self._stop_process()
            if attempt == attempts - 1:
                raise PlaygroundError(
                    f"Agents Playground did not listen on port {port}:\n{self.log_text()}"
                )
        await self._wait_for_ping()

    async def _launch(self, port: int) -> bool:
        """Start the binary on ``port``; False when it chose another port (``port`` was taken)."""
        assert self.log_dir is not None
        out = self.log_dir / "playground.out"
        args = [
            "-e", self.bot_endpoint,
            "-c", "msteams",
            "-p", str(port),
            "--service-url", f"http://127.0.0.1:{port}/_connector",
            "--disable-telemetry",
        ]  # fmt: skip
        if self._personal_chat_id:
            args += ["--conversation-id", self._personal_chat_id]
        with out.open("ab") as sink:
            sink.write(f"$ {self._binary} {' '.join(args)}\n".encode())
            sink.flush()
            start = sink.tell()
            self._process = await asyncio.create_subprocess_exec(
                str(self._binary),
                *args,
                cwd=self.log_dir,
                env=_playground_env(self.log_dir, self.config_file),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=sink,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            with out.open("rb") as output:
                output.seek(start)
                match = _LISTENING.search(output.read().decode(errors="replace"))
            if match:
                return int(match.group(1)) == port
            if self._process.returncode is not None:
                raise PlaygroundError(f"Agents Playground exited:\n{self.log_text()}")
            await asyncio.sleep(0.05)
        raise PlaygroundError(f"Agents Playground did not start in time:\n{self.log_text()}")

    async def _wait_for_ping(self) -> None:
        assert self._session is not None and self._process is not None
        deadline = time.monotonic() + self._startup_timeout
        while True:
            try:
                async with self._session.get(f"{self.base_url}/_debug/ping") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if self._process.returncode is not None or time.monotonic() > deadline:
                raise PlaygroundError(f"Agents Playground is not answering:\n{self.log_text()}")
            await asyncio.sleep(0.05)

    async def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()

    # -- state

    @property
    def port(self) -> int:
        """The port the Playground listens on (127.0.0.1)."""
        if self._port is None:
            raise RuntimeError("the Playground is not running")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the web UI and every API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> PlaygroundConfig:
        """What ``GET /_internal/v1/config`` answered."""
        if self._config is None:
            raise RuntimeError("the Playground is not running")
        return self._config

    @property
    def frames(self) -> list[dict[str, Any]]:
        """Every conversation-stream frame so far (createMessage, updateMessage, typing)."""
        return list(self._frames)

    @property
    def log_items(self) -> list[dict[str, Any]]:
        """Every log-stream item so far (the ``log`` of each ``appendLog``)."""
        return list(self._log_items)

    @property
    def messages(self) -> list[Message]:
        """Bot messages seen in the current user's chats: frames plus cards replaced by invokes."""
        return list(self._messages)

    @property
    def sent(self) -> list[Message]:
        """Bot messages sent or updated in any conversation, other users' chats too (log stream)."""
        return list(self._sent)

    def log_text(self) -> str:
        """The Playground's console output, then its own log file."""
        if self.log_dir is None:
            return ""
        parts = []
        for name in ("playground.out", "playground-internal.log"):
            path = self.log_dir / name
            if path.exists():
                parts.append(
                    f"==> {name} <==\n{path.read_text(encoding='utf-8', errors='replace')}"
                )
        return "\n".join(parts)

    def mark(self) -> tuple[int, int, int]:
        """Start a new 'since the last action' window for ``wait_for``, ``wait_for_sent`` and
        ``bot_invoke_response``: the current lengths of ``messages``, ``sent`` and ``log_items``."""
        self._mark = (len(self._messages), len(self._sent), len(self._log_items))
        return self._mark

    # -- streams

    async def _open_stream(self, path: str, handler: Callable[[dict[str, Any]], None]) -> None:
        assert self._session is not None
        ws = await self._session.ws_connect(f"{self.base_url.replace('http', 'ws', 1)}{path}")
        self._sockets.append(ws)
        self._readers.append(asyncio.create_task(self._read(ws, handler), name=f"playground{path}"))

    async def _read(
        self, ws: aiohttp.ClientWebSocketResponse, handler: Callable[[dict[str, Any]], None]
    ) -> None:
        assert self._changed is not None
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except ValueError:
                continue
            if isinstance(data, dict):
                handler(data)
                async with self._changed:
                    self._changed.notify_all()

    def _on_frame(self, frame: dict[str, Any]) -> None:
        self._frames.append(frame)
        message = Message.from_frame(frame)
        if message is not None:
            self._messages.append(message)

    def _on_log(self, data: dict[str, Any]) -> None:
        item = data.get("log")
        if not isinstance(item, dict):
            return
        self._log_items.append(item)
        message = Message.from_log(item)
        if message is not None:
            self._sent.append(message)

    async def _wait(
        self,
        source: Callable[[], list[Message]],
        start: int,
        predicate: Callable[[Message], bool],
        limit: float,
        what: str,
    ) -> Message:
        assert self._changed is not None
        deadline = time.monotonic() + limit
        async with self._changed:
            while True:
                for message in source()[start:]:
                    if predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(m.kind, m.id, m.text, len(m.cards)) for m in source()[start:]]
                    raise TimeoutError(f"no {what} matched within {limit} s; seen: {seen}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_for(
        self,
        predicate: Callable[[Message], bool] = lambda message: True,
        timeout: float = 10.0,  # noqa: ASYNC109
        *,
        after: int | None = None,
    ) -> Message:
        """The first message in ``messages`` (from index ``after``, default: since the last action)
        that satisfies ``predicate``."""
        start = self._mark[0] if after is None else after
        return await self._wait(lambda: self._messages, start, predicate, timeout, "message")

    async def wait_for_card(self, timeout: float = 10.0, *, after: int | None = None) -> Message:  # noqa: ASYNC109
        """The first message with an Adaptive Card since the last action."""
        return await self.wait_for(lambda message: bool(message.cards), timeout, after=after)

    async def wait_for_sent(
        self,
        predicate: Callable[[Message], bool] = lambda message: True,
        timeout: float = 10.0,  # noqa: ASYNC109
        *,
        after: int | None = None,
    ) -> Message:
        """Like ``wait_for`` over ``sent``: bot messages in any conversation (log stream)."""
        start = self._mark[1] if after is None else after
        return await self._wait(lambda: self._sent, start, predicate, timeout, "sent message")

    def latest_card(self, conversation_id: str | None = None) -> Message:
        """The newest message with an Adaptive Card (in ``conversation_id``, if given), as the UI
        shows it: an invoke's answer counts as replacing the card."""
        for message in reversed(self._messages):
            if message.cards and conversation_id in (None, message.conversation_id):
                return message
        raise LookupError("the Playground has shown no Adaptive Card yet")

    # -- HTTP API

    async def _request(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        assert self._session is not None
        async with self._session.request(
            method, f"{self.base_url}{path}", json=body, params=params or None
        ) as resp:
            text = await resp.text()
            try:
                data: Any = json.loads(text) if text else None
            except ValueError:
                data = text
            if resp.status != 200:
                raise PlaygroundError(
                    f"{method} {path} answered {resp.status}: {text[:2000]}",
                    status=resp.status,
                    body=data,
                )
            return data

    async def _get_json(self, path: str, **params: str) -> dict[str, Any]:
        data = await self._request("GET", path, **params)
        if not isinstance(data, dict):
            raise PlaygroundError(f"GET {path} answered {data!r}")
        return data

    async def send_message(
        self,
        text: str,
        *,
        conversation_id: str | None = None,
        user_id: str | None = None,
        mention_bot: bool | None = None,
    ) -> str:
        """Post ``text`` as a user message; returns the Playground's message id.

        ``mention_bot`` (default: whenever the conversation is not the personal chat) prefixes
        ``<at>BOT</at> `` and adds the mention, without which group chats and channels do not reach
        the bot. ``user_id`` must be a member of the chat, but the bot still sees the current user
        as sender.
        """
        conversation = conversation_id or self.config.personal_chat_id
        if mention_bot is None:
            mention_bot = conversation != self.config.personal_chat_id
        body: dict[str, Any] = {
            "from": {"id": user_id or self.config.current_user_id},
            "text": text,
            "textFormat": "plain",
        }
        if mention_bot:
            at = f"<at>{self.config.bot_name}</at>"
            body["text"] = f"{at} {text}"
            body["mentions"] = [{"mentioned": {"id": self.config.bot_id}, "text": at}]
        self.mark()
        data = await self._request(
            "POST", f"/_conversation/v1/conversations/{conversation}/messages", body
        )
        return str(data["messageId"])

    async def invoke(
        self,
        message_id: str,
        verb: str,
        data: Mapping[str, Any],
        *,
        user_id: str | None = None,
        conversation_id: str | None = None,
        title: str | None = None,
        trigger: str | None = "manual",
        record: bool = True,
    ) -> dict[str, Any]:
        """Send ``adaptiveCard/action`` for the card in message ``message_id``; returns the
        Playground's answer ``{"type", "value"}`` (the bot's ``statusCode`` is not in it: see
        ``bot_invoke_response``).

        ``user_id`` acts as another member of the conversation (see the module notes);
        ``conversation_id`` defaults to the personal chat. ``trigger=None`` sends what the web UI
        sends (no trigger); ``"automatic"`` imitates a refresh. With ``record``, a card answer is
        added to ``messages`` as an ``invoke`` message replacing the card, as the web UI shows it.
        Raises ``PlaygroundError`` (with ``status`` and ``body``) for 400 and 502 answers.
        """
        conversation = conversation_id or self.config.personal_chat_id
        action: dict[str, Any] = {"type": "Action.Execute", "verb": verb, "data": dict(data)}
        if title is not None:
            action["title"] = title
        value: dict[str, Any] = {"action": action}
        if trigger is not None:
            value["trigger"] = trigger
        body = {
            "name": "adaptiveCard/action",
            "from": {"id": user_id or self.config.current_user_id},
            "conversation": {"id": conversation},
            "replyToId": message_id,
            "value": value,
        }
        self.mark()
        answer = await self._request("POST", "/_conversation/v1/invoke", body)
        if not isinstance(answer, dict):
            raise PlaygroundError(f"invoke answered {answer!r}", body=answer)
        if record and answer.get("type") == ADAPTIVE_CARD and isinstance(answer.get("value"), dict):
            assert self._changed is not None
            self._messages.append(
                Message(
                    id=message_id,
                    kind="invoke",
                    conversation_id=conversation,
                    sender_id=self.config.bot_id,
                    text=None,
                    cards=[answer["value"]],
                    raw=answer,
                    source="invoke",
                )
            )
            async with self._changed:
                self._changed.notify_all()
        return answer

    async def invoke_action(
        self,
        message: Message,
        action: Mapping[str, Any],
        inputs: Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
        trigger: str | None = "manual",
    ) -> dict[str, Any]:
        """Invoke an ``Action.Execute`` taken from ``message``'s card as a client would: its verb
        and title, its data with ``inputs`` merged in, in the message's conversation."""
        if action.get("type") != "Action.Execute":
            raise ValueError(f"not an Action.Execute: {action}")
        return await self.invoke(
            message.id,
            str(action.get("verb", "")),
            action_data(action, inputs),
            user_id=user_id,
            conversation_id=message.conversation_id,
            title=action.get("title"),
            trigger=trigger,
        )

    async def bot_invoke_response(self, message_id: str, *, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        """The bot's own answer to an invoke on ``message_id`` since the last action, from the log
        stream: ``{"statusCode": HTTP status, "body": the bot's body, its statusCode included}``."""
        assert self._changed is not None
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                for item in reversed(self._log_items[self._mark[2] :]):
                    request = (item.get("request") or {}).get("body") or {}
                    if (
                        item.get("activityName") == "invoke"
                        and item.get("from") == PLAYGROUND_LABEL
                        and isinstance(request, Mapping)
                        and request.get("replyToId") == message_id
                    ):
                        response: dict[str, Any] = item.get("response") or {}
                        return response
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no invoke on message {message_id} in the Playground log")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    async def custom_activity_template(
        self, kind: str | None = None, *, conversation_id: str | None = None
    ) -> dict[str, Any]:
        """``GET /_internal/v1/customActivities/template``: the activity the Playground would send
        for ``kind`` (``install``, ``uninstall``, ``userAdded``, ``botAdded``, ... see the module
        notes)."""
        params = {"conversationId": conversation_id or self.config.personal_chat_id}
        if kind is not None:
            params["type"] = kind
        return await self._get_json("/_internal/v1/customActivities/template", **params)

    async def send_custom_activity(self, activity: Mapping[str, Any]) -> None:
        """``POST /_internal/v1/customActivities``: forwards ``activity`` to the bot as is. The
        Playground answers before the bot does, and a bot failure only reaches the log."""
        self.mark()
        await self._request("POST", "/_internal/v1/customActivities", dict(activity))

    async def send_install(self, *, conversation_id: str | None = None) -> dict[str, Any]:
        """Send the ``installationUpdate`` (action ``add``) the Playground builds; returns it."""
        activity = await self.custom_activity_template("install", conversation_id=conversation_id)
        await self.send_custom_activity(activity)
        return activity

    async def send_members_added(
        self, who: Literal["user", "bot"] = "user", *, conversation_id: str | None = None
    ) -> dict[str, Any]:
        """Send ``conversationUpdate`` with ``membersAdded`` [current user] or [bot]; returns it."""
        kind = "userAdded" if who == "user" else "botAdded"
        activity = await self.custom_activity_template(kind, conversation_id=conversation_id)
        await self.send_custom_activity(activity)
        return activity

    async def send_open_events(self, *, conversation_id: str | None = None) -> None:
        """What the web UI does when it opens a chat: ``installationUpdate`` add, then
        ``conversationUpdate`` membersAdded [current user, bot]."""
        conversation = conversation_id or self.config.personal_chat_id
        self.mark()
        await self._request("POST", f"/_debug/conversation/{conversation}/installation", {})


# ------------------------------------------------------------------------------------------
# The web UI


def _write_ui_spec(
    base_url: str,
    steps: list[dict[str, Any]],
    screenshot_dir: Path,
    step_timeout_ms: int,
    keep_log_panel: bool,
) -> Path:
    screenshot_dir.mkdir(parents=True, exist_ok=True)
    spec_file = screenshot_dir / "steps.json"
    spec = {
        "url": base_url,
        "screenshotDir": str(screenshot_dir.resolve()),
        "timeout": step_timeout_ms,
        "keepLogPanel": keep_log_panel,
        "steps": steps,
    }
    spec_file.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return spec_file


async def run_ui_steps(
    base_url: str,
    steps: list[dict[str, Any]],
    screenshot_dir: Path,
    *,
    step_timeout_ms: int = 15000,
    overall_seconds: float = 240.0,
    keep_log_panel: bool = False,
) -> dict[str, Any]:
    """Run ``tests/js/playground-ui.mjs`` with these steps against the Playground at ``base_url``.

    Returns the script's JSON result (``ok``, ``step``, ``steps``, ``error``, ``screenshots``,
    ``lastCardText``, ``invokes``, ``blocked``, ``elapsedMs``) plus ``returncode`` and ``stderr``.
    The spec is kept as ``screenshot_dir/steps.json``. Never raises for a failed step: assert on
    ``result["ok"]``.
    """
    node = shutil.which("node")
    if node is None:
        raise PlaygroundError("node is not on PATH")
    spec_file = _write_ui_spec(base_url, steps, screenshot_dir, step_timeout_ms, keep_log_panel)
    process = await asyncio.create_subprocess_exec(
        node,
        str(UI_SCRIPT),
        str(spec_file),
        cwd=JS_DIR,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), overall_seconds)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.communicate()
        return {
            "ok": False,
            "error": f"the UI script ran over {overall_seconds} s",
            "returncode": None,
        }
    out = stdout.decode(errors="replace").strip()
    err = stderr.decode(errors="replace")
    result: dict[str, Any]
    try:
        result = json.loads(out.splitlines()[-1]) if out else {}
    except ValueError:
        result = {}
    if not result:
        result = {"ok": False, "error": f"no JSON result from the UI script: {out[-2000:]}"}
    result["returncode"] = process.returncode
    result["stderr"] = err[-4000:]
    return result


# ------------------------------------------------------------------------------------------
# Steps of the e2e tests


def require_playground() -> None:
    """Node and the Playground (`make node`); else skip, or fail when FRONTDESK_REQUIRE_ALL=1."""
    require(shutil.which("node") is not None, "node is not on PATH")
    require(PLAYGROUND_BIN.exists(), f"Agents Playground is not installed ({PLAYGROUND_BIN})")


def require_browser() -> None:
    """The Playground and Chromium (CHROMIUM_PATH) for the web UI, as `require_playground`."""
    require_playground()
    require(CHROMIUM.exists(), f"Chromium is not installed ({CHROMIUM})")


async def bot_answered(pg: Playground, message_id: str) -> None:
    """The bot answered the last invoke on this message with HTTP 200 and statusCode 200."""
    full = await pg.bot_invoke_response(message_id)
    assert full["statusCode"] == 200, full
    assert full["body"]["statusCode"] == 200, full


async def press(
    pg: Playground,
    message: Message,
    action: Mapping[str, Any],
    inputs: Mapping[str, Any] | None = None,
    *,
    user_id: str | None = None,
) -> Message:
    """Press a button on ``message``'s card as ``user_id`` (default: the current user); the bot
    must answer it with a card. That card, as the message the UI shows in the pressed one's place.
    """
    before = len(pg.messages)
    await pg.invoke_action(message, action, inputs, user_id=user_id)
    await bot_answered(pg, message.id)
    answers = [m for m in pg.messages[before:] if m.source == "invoke" and m.id == message.id]
    assert answers, f"the bot answered the press on {message.id} without a card"
    return answers[0]
