"""Who the user is and where to reach them: time zones, profiles, conversation references."""

from __future__ import annotations

import json
import logging
import zoneinfo
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from bot.models import Actor
from bot.storage.repository import ConversationRepository, UserRepository
from bot.storage.tables import ConversationRef, UserProfile

logger = logging.getLogger(__name__)

_KNOWN_CACHE = 10_000


class MailboxZoneSource(Protocol):
    """Where a user's preferred time zone can be read (Outlook mailbox settings)."""

    async def zone(self, actor: Actor) -> ZoneInfo | None: ...


def zone_or_none(name: str | None) -> ZoneInfo | None:
    """The IANA zone of that name, or None when it is missing or unknown."""
    if not name or not isinstance(name, str) or len(name) > 64:
        return None
    try:
        return ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


class UserService:
    """Resolves the acting user, remembering their zone and the conversations they use."""

    def __init__(
        self,
        *,
        users: UserRepository,
        conversations: ConversationRepository,
        default_zone: ZoneInfo,
        clock: Callable[[], datetime],
        mailbox_zones: MailboxZoneSource | None = None,
    ) -> None:
        self._mailbox_zones = mailbox_zones
        self._users = users
        self._conversations = conversations
        self._default_zone = default_zone
        self._clock = clock
        # What we last stored, so a turn writes only when something changed.
        self._known_profiles: OrderedDict[tuple[str, str], tuple[str, str | None]] = OrderedDict()
        self._known_conversations: OrderedDict[str, str] = OrderedDict()

    async def actor(
        self,
        *,
        tenant_id: str,
        user_id: str,
        name: str,
        client_zone: str | None,
        channel_user_id: str = "",
        channel_id: str = "msteams",
    ) -> Actor:
        """The client's zone when it sent one, else the last one we knew, else the default."""
        key = (tenant_id, user_id)
        known = self._known_profiles.get(key)
        if known is None:
            profile = await self._users.get(tenant_id=tenant_id, user_id=user_id)
            if profile is not None:
                known = (profile.name, profile.time_zone)
                _remember(self._known_profiles, key, known)
        client = zone_or_none(client_zone)
        stored_zone = known[1] if known else None
        zone = client or zone_or_none(stored_zone) or self._default_zone
        zone_to_keep = client.key if client else stored_zone
        if known != (name, zone_to_keep):
            await self._users.remember(
                UserProfile(
                    tenant_id=tenant_id,
                    user_id=user_id,
                    name=name[:256],
                    time_zone=zone_to_keep,
                    updated_at=self._clock(),
                )
            )
            _remember(self._known_profiles, key, (name, zone_to_keep))
        actor = Actor(
            tenant_id=tenant_id,
            user_id=user_id,
            name=name,
            time_zone=zone,
            channel_user_id=channel_user_id,
            channel_id=channel_id,
        )
        if self._mailbox_zones is not None:
            # With Microsoft 365 the mailbox's own setting wins; the client's zone is the fallback.
            mailbox_zone = await self._mailbox_zones.zone(actor)
            if mailbox_zone is not None:
                actor = replace(actor, time_zone=mailbox_zone)
        return actor

    async def remember_conversation(
        self,
        *,
        conversation_id: str,
        tenant_id: str,
        user_id: str | None,
        conversation_type: str,
        service_url: str,
        reference: Callable[[], Mapping[str, Any]],
    ) -> None:
        """Store how to reach this conversation later (`reference()`, built only when stored),
        when it is new or has moved, or was marked stale (the user writing again shows the bot
        can reach them there again)."""
        if self._known_conversations.get(
            conversation_id
        ) == service_url and not await self._conversations.is_stale(conversation_id):
            return
        now = self._clock()
        await self._conversations.remember(
            ConversationRef(
                conversation_id=conversation_id[:512],
                tenant_id=tenant_id,
                user_id=user_id if conversation_type == "personal" else None,
                conversation_type=conversation_type[:32] or "personal",
                service_url=service_url[:512],
                reference=json.dumps(reference(), sort_keys=True),
                created_at=now,
                updated_at=now,
            )
        )
        _remember(self._known_conversations, conversation_id, service_url)


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _KNOWN_CACHE:
        cache.popitem(last=False)


class WelcomeGuard:
    """Welcomes each conversation once, however many install events arrive."""

    def __init__(
        self, conversations: ConversationRepository, clock: Callable[[], datetime]
    ) -> None:
        self._conversations = conversations
        self._clock = clock

    async def first_time(self, conversation_id: str) -> bool:
        return await self._conversations.mark_welcomed(conversation_id, self._clock())

    async def forget(self, conversation_id: str) -> None:
        """After an uninstall: a later install is welcomed again."""
        await self._conversations.reset_welcome(conversation_id)
