"""Conversation references on SQLite and PostgreSQL: each user's personal chat, the most recently
used one, for several users in one query or for one user, stale chats left out unless asked for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from bot.storage.repository import ConversationRepository
from bot.storage.tables import ConversationRef

T0 = datetime(2026, 11, 23, 8, 5, tzinfo=UTC)


def ref(
    conversation_id: str,
    user_id: str | None,
    *,
    minutes: int,
    tenant_id: str = "tenant-1",
    kind: str = "personal",
) -> ConversationRef:
    at = T0 + timedelta(minutes=minutes)
    return ConversationRef(
        conversation_id=conversation_id,
        tenant_id=tenant_id,
        user_id=user_id,
        conversation_type=kind,
        service_url="https://smba.trafficmanager.net/emea/",
        reference="{}",
        created_at=at,
        updated_at=at,
    )


async def test_personal_chats_of_several_users_and_of_one(engine: Engine) -> None:
    conversations = ConversationRepository(engine)
    for row in [
        ref("a:old", "user-a", minutes=0),
        ref("a:new", "user-a", minutes=5),
        ref("a:group", "user-a", minutes=9, kind="groupChat"),
        ref("b:only", "user-b", minutes=1),
        ref("b:newer-but-stale", "user-b", minutes=7),
        ref("c:other-tenant", "user-c", minutes=2, tenant_id="tenant-2"),
    ]:
        await conversations.remember(row)
    await conversations.mark_stale("b:newer-but-stale", now=T0, reason="blocked")
    users = ["user-a", "user-b", "user-c", "user-d"]

    usable = await conversations.personal_chats(tenant_id="tenant-1", user_ids=users)
    every = await conversations.personal_chats(
        tenant_id="tenant-1", user_ids=users, include_stale=True
    )

    assert {user: chat.conversation_id for user, chat in usable.items()} == {
        "user-a": "a:new",
        "user-b": "b:only",
    }
    assert {user: chat.conversation_id for user, chat in every.items()} == {
        "user-a": "a:new",
        "user-b": "b:newer-but-stale",
    }
    assert await conversations.personal_chats(tenant_id="tenant-1", user_ids=[]) == {}
    # One user at a time (`personal`): the same choice.
    for include_stale, expected in (
        (False, {"user-a": "a:new", "user-b": "b:only", "user-c": None, "user-d": None}),
        (True, {"user-a": "a:new", "user-b": "b:newer-but-stale", "user-c": None, "user-d": None}),
    ):
        for user in users:
            one = await conversations.personal(
                tenant_id="tenant-1", user_id=user, include_stale=include_stale
            )
            assert (one.conversation_id if one else None) == expected[user], (user, include_stale)
