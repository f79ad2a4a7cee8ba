"""Which message activities were already handled: Teams redelivers one it got no answer to in
time (the same activity id, at once or seconds later), and the SDK would run it again.

One row per activity in the database, so every replica sees it; claimed with one
`INSERT ... ON CONFLICT DO NOTHING RETURNING` whose answer says whether this delivery is the first.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, update
from sqlmodel import col

from bot.storage.db import upsert_insert, write_session
from bot.storage.tables import SeenActivity

logger = logging.getLogger(__name__)

DELIVERY_TTL = timedelta(hours=1)
"""How long a handled activity id is remembered (Teams redelivers within seconds to minutes)."""
_PRUNE_EVERY = 100


def delivery_key(channel_id: str, conversation_id: str, activity_id: str) -> str:
    """The row key of one activity: ids are unique within a conversation only."""
    raw = "\x1f".join((channel_id, conversation_id, activity_id))
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


class DeliveryLog:
    """Remembers handled activities for DELIVERY_TTL; pruned as it goes."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock
        self._claims = 0

    async def first_delivery(self, key: str) -> bool:
        """Claim the activity: True the first time, False for a redelivery."""
        return await asyncio.to_thread(self._claim, key)

    async def forget(self, key: str) -> None:
        """Release a claim (its turn failed), so that a redelivery is handled."""
        await asyncio.to_thread(self._forget, key)

    def _claim(self, key: str) -> bool:
        now = self._clock()
        self._claims += 1
        statement = (
            upsert_insert(self._engine, SeenActivity)
            .values(key=key, seen_at=now)
            .on_conflict_do_nothing()
            .returning(col(SeenActivity.key))  # a row back: inserted (rowcount is -1 on psycopg)
        )
        with write_session(self._engine) as session:
            if self._claims % _PRUNE_EVERY == 1:
                session.execute(
                    delete(SeenActivity).where(col(SeenActivity.seen_at) < now - DELIVERY_TTL)
                )
            claimed = session.execute(statement).first() is not None
            if not claimed:
                # Remembered, but past its time and not pruned yet: a new delivery after all.
                renewed = session.execute(
                    update(SeenActivity)
                    .where(col(SeenActivity.key) == key)
                    .where(col(SeenActivity.seen_at) < now - DELIVERY_TTL)
                    .values(seen_at=now)
                    .returning(col(SeenActivity.key))
                )
                claimed = renewed.first() is not None
            session.commit()
        return claimed

    def _forget(self, key: str) -> None:
        with write_session(self._engine) as session:
            session.execute(delete(SeenActivity).where(col(SeenActivity.key) == key))
            session.commit()
