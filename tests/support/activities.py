"""Factories for Teams activities as Teams sends them to `/api/messages`.

Each `make_*` starts from a recorded-shape payload in `tests/fixtures/teams/` (ids anonymised)
and fills in who sends it, where it happens and where replies go (`service_url`, normally the
fake connector's). Every call gets a fresh activity id unless one is given.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "teams"

TENANT_ID = "72f988bf-0000-4e3a-9b1c-2d7cd011db47"
BOT_ID = "28:0e7c5a52-6f1d-4b3a-9d8e-1c2b3a4d5e6f"
BOT_NAME = "Frontdesk"

Activity = dict[str, Any]


@dataclass(frozen=True)
class TeamsUser:
    """A Teams user: the channel id (`29:...`), the Entra object id and the display name."""

    id: str
    aad_object_id: str
    name: str
    tenant_id: str = TENANT_ID

    def account(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "aadObjectId": self.aad_object_id}


@dataclass(frozen=True)
class Conversation:
    """Where an activity happens: a personal chat, a group chat or a channel."""

    id: str
    conversation_type: str
    tenant_id: str = TENANT_ID

    def account(self) -> dict[str, Any]:
        account: dict[str, Any] = {
            "conversationType": self.conversation_type,
            "tenantId": self.tenant_id,
            "id": self.id,
        }
        if self.conversation_type != "personal":
            account = {"isGroup": True, **account}
        return account


MEGAN = TeamsUser(
    id="29:1aQ3xVqUoGzH8sWm0Y1bq6mBk9cXyz2Jw4Tt7Ep5Rr0LdNf",
    aad_object_id="5f3c1d2e-8a47-4b9e-9c21-7d6a0e4b1f38",
    name="Megan Bowen",
)
ALEX = TeamsUser(
    id="29:1Hk7Lm2Np4Qr6St8Uv0Wx2Yz4Ab6Cd8Ef0Gh2Ij4Kl6Mn",
    aad_object_id="b8e2a1c4-3d5f-4a6b-9c7d-2e1f0a9b8c7d",
    name="Alex Wilber",
)
# Colleagues in Megan's tenant: approvers and the fulfilment team of the request tests.
NESTOR = TeamsUser(
    id="29:1NestorWilke0000000000000000000000000000000000",
    aad_object_id="6a1c2b3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    name="Nestor Wilke",
)
DIEGO = TeamsUser(
    id="29:1DiegoSiciliani00000000000000000000000000000000",
    aad_object_id="7b2d3c4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e",
    name="Diego Siciliani",
)
LYNNE = TeamsUser(
    id="29:1LynneRobbins000000000000000000000000000000000",
    aad_object_id="8c3e4d5f-6a7b-4c8d-8e9f-1a2b3c4d5e6f",
    name="Lynne Robbins",
)
# Someone from another tenant (not TENANT_ID).
STRANGER = TeamsUser(
    id="29:1Stranger00000000000000000000000000000000000000",
    aad_object_id="9d4f5e6a-7b8c-4d9e-9f0a-2b3c4d5e6f70",
    name="Eve Stranger",
    tenant_id="0a0a0a0a-1111-4222-8333-444444444444",
)
GROUP_CHAT = Conversation(
    id="19:4c7e2a9b1f3d4e5a8b6c0d2e9f1a3b5c@thread.v2", conversation_type="groupChat"
)

_ids = itertools.count(1)


def personal_chat(user: TeamsUser) -> Conversation:
    """The user's one-to-one chat with the bot (one per user, as in Teams)."""
    key = uuid.uuid5(uuid.NAMESPACE_URL, f"personal/{user.tenant_id}/{user.aad_object_id}")
    return Conversation(id=f"a:1{key.hex}", conversation_type="personal", tenant_id=user.tenant_id)


@functools.cache
def _template(name: str) -> Activity:
    data: Activity = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def load_fixture(name: str) -> Activity:
    """A fresh copy of a recorded-shape payload from `tests/fixtures/teams/`."""
    return copy.deepcopy(_template(name))


def new_message_id() -> str:
    """A message id shaped like Teams' (milliseconds as text), unique in this run."""
    return str(1_795_047_900_000 + next(_ids))


def new_event_id() -> str:
    """An event or invoke id shaped like Teams' (`f:` and a GUID)."""
    return f"f:{uuid.uuid4()}"


def _client_info(time_zone: str, locale: str) -> dict[str, str]:
    country = locale.rsplit("-", 1)[-1] if "-" in locale else ""
    return {
        "locale": locale,
        "country": country,
        "platform": "Web",
        "timezone": time_zone,
        "type": "clientInfo",
    }


def _fill(
    activity: Activity,
    *,
    service_url: str,
    user: TeamsUser,
    conversation: Conversation,
    activity_id: str,
    time_zone: str | None,
    locale: str,
    with_name: bool = True,
) -> Activity:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    activity["id"] = activity_id
    activity["timestamp"] = now
    activity.pop("localTimestamp", None)
    activity["serviceUrl"] = service_url
    sender = user.account()
    if not with_name:  # Teams leaves the name out of system events
        sender.pop("name")
    activity["from"] = sender
    activity["conversation"] = conversation.account()
    activity["recipient"] = {"id": BOT_ID, "name": BOT_NAME}
    channel_data = activity.setdefault("channelData", {})
    channel_data["tenant"] = {"id": conversation.tenant_id}
    entities = [e for e in activity.get("entities", []) if e.get("type") != "clientInfo"]
    if time_zone is not None:
        entities.append(_client_info(time_zone, locale))
        activity["localTimezone"] = time_zone
    else:
        activity.pop("localTimezone", None)
    if entities:
        activity["entities"] = entities
    else:
        activity.pop("entities", None)
    if "locale" in activity or time_zone is not None:
        activity["locale"] = locale
    return activity


def make_message(
    text: str,
    *,
    service_url: str,
    user: TeamsUser = MEGAN,
    conversation: Conversation | None = None,
    time_zone: str | None = "America/New_York",
    locale: str = "en-US",
    activity_id: str | None = None,
) -> Activity:
    """A message the user typed in their personal chat with the bot.

    `time_zone=None` leaves out the clientInfo entity (as some clients and proxies do).
    """
    activity = load_fixture("message-personal.json")
    activity["text"] = text
    activity["attachments"] = [{"contentType": "text/html", "content": f"<p>{text}</p>"}]
    return _fill(
        activity,
        service_url=service_url,
        user=user,
        conversation=conversation or personal_chat(user),
        activity_id=activity_id or new_message_id(),
        time_zone=time_zone,
        locale=locale,
    )


def make_group_mention(
    text: str,
    *,
    service_url: str,
    user: TeamsUser = MEGAN,
    conversation: Conversation = GROUP_CHAT,
    time_zone: str | None = "Europe/London",
    locale: str = "en-GB",
    activity_id: str | None = None,
) -> Activity:
    """A group-chat message that @mentions the bot: `<at>Frontdesk</at> {text}`."""
    activity = load_fixture("message-groupchat-mention.json")
    mention = f"<at>{BOT_NAME}</at>"
    activity["text"] = f"{mention} {text}"
    activity["attachments"] = [
        {
            "contentType": "text/html",
            "content": '<p><span itemscope="" itemtype="http://schema.skype.com/Mention" '
            f'itemid="0">{BOT_NAME}</span> {text}</p>',
        }
    ]
    activity["entities"] = [
        {"mentioned": {"id": BOT_ID, "name": BOT_NAME}, "text": mention, "type": "mention"}
    ]
    return _fill(
        activity,
        service_url=service_url,
        user=user,
        conversation=conversation,
        activity_id=activity_id or new_message_id(),
        time_zone=time_zone,
        locale=locale,
    )


def make_members_added(
    *,
    service_url: str,
    user: TeamsUser = MEGAN,
    conversation: Conversation | None = None,
    members: list[str] | None = None,
    activity_id: str | None = None,
) -> Activity:
    """`conversationUpdate` with `membersAdded` (by default the bot, as on install)."""
    activity = load_fixture("conversation-update-members-added.json")
    activity["membersAdded"] = [{"id": member} for member in (members or [BOT_ID])]
    return _fill(
        activity,
        service_url=service_url,
        user=user,
        conversation=conversation or personal_chat(user),
        activity_id=activity_id or new_event_id(),
        time_zone=None,
        locale="en-US",
        with_name=False,
    )


def make_installation_update(
    *,
    service_url: str,
    action: str = "add",
    user: TeamsUser = MEGAN,
    conversation: Conversation | None = None,
    time_zone: str | None = "America/New_York",
    activity_id: str | None = None,
) -> Activity:
    """`installationUpdate` (`add` when the user installs the app, `remove` on uninstall)."""
    activity = load_fixture("installation-update-add.json")
    activity["action"] = action
    return _fill(
        activity,
        service_url=service_url,
        user=user,
        conversation=conversation or personal_chat(user),
        activity_id=activity_id or new_event_id(),
        time_zone=time_zone,
        locale="en-US",
        with_name=False,
    )


def make_card_action(
    verb: Any,
    data: Any = None,
    *,
    service_url: str,
    user: TeamsUser = MEGAN,
    conversation: Conversation | None = None,
    time_zone: str | None = "America/New_York",
    locale: str = "en-US",
    title: str = "",
    trigger: str = "manual",
    reply_to_id: str | None = None,
    activity_id: str | None = None,
    value: Any = None,
) -> Activity:
    """An `adaptiveCard/action` invoke: the user pressed an `Action.Execute` button.

    `data` is the action's data with the card's input values merged in, as Teams sends it.
    `verb=None` leaves the verb out; `value` replaces the whole invoke value (malformed invokes).
    """
    activity = load_fixture("invoke-adaptive-card-action.json")
    action: dict[str, Any] = {"type": "Action.Execute", "title": title}
    if verb is not None:
        action["verb"] = verb
    action["data"] = {} if data is None else data
    activity["value"] = value if value is not None else {"action": action, "trigger": trigger}
    activity["replyToId"] = reply_to_id or new_message_id()
    return _fill(
        activity,
        service_url=service_url,
        user=user,
        conversation=conversation or personal_chat(user),
        activity_id=activity_id or new_event_id(),
        time_zone=time_zone,
        locale=locale,
    )
