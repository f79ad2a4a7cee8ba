"""Repositories: the only code that writes SQL. Blocking calls run in worker threads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, Update, and_, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.sql.expression import ColumnElement, UnaryExpression
from sqlalchemy.sql.operators import custom_op
from sqlmodel import Session, col, select

from bot.errors import NotFound, RoomTaken
from bot.storage.db import read_session, upsert_insert, write_session
from bot.storage.tables import (
    Booking,
    BookingDraft,
    BookingStatus,
    ConversationRef,
    UserProfile,
    UserTokenCache,
)

logger = logging.getLogger(__name__)

Interval = tuple[datetime, datetime]

# PostgreSQL: the exclusion constraint refused an overlap, or two overlapping inserts deadlocked.
_LOST_RACE = {"23P01", "40P01"}


def _sqlstate(exc: Exception) -> str | None:
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


def _delete_row(engine: Engine, model: Any, key: Any) -> None:
    """Delete the row with this primary key, if there is one."""
    with write_session(engine) as session:
        row = session.get(model, key)
        if row is not None:
            session.delete(row)
            session.commit()


class BookingRepository:
    """Bookings and drafts. Two overlapping confirmed bookings of one room cannot both exist."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- drafts ---------------------------------------------------------------
    async def save_draft(self, draft: BookingDraft) -> None:
        await asyncio.to_thread(self._save_draft, draft)

    def _save_draft(self, draft: BookingDraft) -> None:
        with write_session(self._engine) as session:
            session.add(draft)
            session.commit()

    async def save_drafts(self, drafts: Sequence[BookingDraft]) -> None:
        await asyncio.to_thread(self._save_drafts, list(drafts))

    def _save_drafts(self, drafts: list[BookingDraft]) -> None:
        with write_session(self._engine) as session:
            session.add_all(drafts)
            session.commit()

    async def get_draft(self, draft_id: str, *, tenant_id: str, user_id: str) -> BookingDraft:
        draft: BookingDraft | None = await asyncio.to_thread(self._get, BookingDraft, draft_id)
        if draft is None or draft.tenant_id != tenant_id or draft.user_id != user_id:
            raise NotFound("That search is no longer available. Start a new one with **book**.")
        return draft

    def _get(self, model: Any, key: Any) -> Any:
        with read_session(self._engine) as session:
            return session.get(model, key)

    # -- bookings ---------------------------------------------------------------
    async def busy_times(
        self, room_ids: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, list[Interval]]:
        return await asyncio.to_thread(self._busy_times, list(room_ids), start, end)

    def _busy_times(
        self, room_ids: list[str], start: datetime, end: datetime
    ) -> dict[str, list[Interval]]:
        busy: dict[str, list[Interval]] = {room_id: [] for room_id in room_ids}
        if not room_ids:
            return busy
        statement = (
            select(Booking.room_id, Booking.start_at, Booking.end_at)
            .where(col(Booking.room_id).in_(room_ids))
            .where(Booking.status == BookingStatus.CONFIRMED)
            .where(col(Booking.start_at) < end)
            .where(col(Booking.end_at) > start)
            .order_by(col(Booking.start_at))
        )
        with read_session(self._engine) as session:
            for room_id, booked_start, booked_end in session.exec(statement):
                busy[room_id].append((booked_start, booked_end))
        return busy

    async def create(self, booking: Booking) -> tuple[Booking, bool]:
        """Insert a booking unless its attempt already booked; RoomTaken on any overlap.

        Returns the booking and whether this call created it.
        """
        return await asyncio.to_thread(self._create, booking)

    def _create(self, booking: Booking) -> tuple[Booking, bool]:
        try:
            with write_session(self._engine) as session:
                # On SQLite the write lock is held from this first statement to the commit.
                existing = session.exec(
                    select(Booking).where(Booking.attempt_id == booking.attempt_id)
                ).first()
                if existing is not None:
                    return existing, False
                overlapping = session.exec(
                    select(Booking.id)
                    .where(Booking.room_id == booking.room_id)
                    .where(Booking.status == BookingStatus.CONFIRMED)
                    .where(col(Booking.start_at) < booking.end_at)
                    .where(col(Booking.end_at) > booking.start_at)
                    .limit(1)
                ).first()
                if overlapping is not None:
                    raise RoomTaken(booking.room_name)
                session.add(booking)
                session.commit()
                return booking, True
        except (IntegrityError, OperationalError, RoomTaken) as exc:
            # A concurrent delivery of this same attempt may be what we collided with.
            existing = self._by_attempt(booking.attempt_id)
            if existing is not None:
                return existing, False
            if isinstance(exc, RoomTaken) or _sqlstate(exc) in _LOST_RACE:
                raise RoomTaken(booking.room_name) from None
            raise

    async def delete(self, booking_id: str) -> None:
        """Remove a booking whose calendar hold failed (it never existed for anyone)."""
        await asyncio.to_thread(self._delete, booking_id)

    def _delete(self, booking_id: str) -> None:
        _delete_row(self._engine, Booking, booking_id)

    async def attach_hold(
        self,
        booking_id: str,
        *,
        event_id: str | None,
        join_url: str | None,
        room_response: str | None,
        join_url_repaired: bool = False,
    ) -> Booking:
        """Record the calendar event made for a booking."""
        values = {
            "event_id": event_id,
            "join_url": join_url,
            "room_response": room_response,
            "join_url_repaired": join_url_repaired,
        }
        return await asyncio.to_thread(self._attach_hold, booking_id, values)

    def _attach_hold(self, booking_id: str, values: dict[str, Any]) -> Booking:
        return self._update(booking_id, update(Booking).values(**values))

    def _update(self, booking_id: str, statement: Update) -> Booking:
        """Run an UPDATE of `booking` on this booking's row; the row as it is afterwards."""
        with write_session(self._engine) as session:
            session.execute(statement.where(col(Booking.id) == booking_id))
            session.commit()
            booking = session.get(Booking, booking_id)
            assert booking is not None
            session.refresh(booking)
            return booking

    async def apply_calendar_state(
        self,
        booking_id: str,
        *,
        room_response: str | None,
        join_url: str | None,
        status: BookingStatus,
        comment: str | None,
        now: datetime,
    ) -> Booking:
        """Record what the calendar says; only a confirmed booking changes (never revives one)."""
        return await asyncio.to_thread(
            self._apply_calendar_state, booking_id, room_response, join_url, status, comment, now
        )

    def _apply_calendar_state(
        self,
        booking_id: str,
        room_response: str | None,
        join_url: str | None,
        status: BookingStatus,
        comment: str | None,
        now: datetime,
    ) -> Booking:
        values: dict[str, Any] = {"room_response": room_response, "join_url": join_url}
        if status != BookingStatus.CONFIRMED:
            values.update(status=status, cancel_comment=comment, cancelled_at=now)
        return self._update(
            booking_id,
            update(Booking).where(col(Booking.status) == BookingStatus.CONFIRMED).values(**values),
        )

    async def by_attempt(self, attempt_id: str) -> Booking | None:
        return await asyncio.to_thread(self._by_attempt, attempt_id)

    def _by_attempt(self, attempt_id: str) -> Booking | None:
        with read_session(self._engine) as session:
            return session.exec(select(Booking).where(Booking.attempt_id == attempt_id)).first()

    async def get(self, booking_id: str, *, tenant_id: str, user_id: str) -> Booking:
        booking = await asyncio.to_thread(self._get, Booking, booking_id)
        if booking is None or booking.tenant_id != tenant_id or booking.user_id != user_id:
            raise NotFound("That booking was not found among yours.")
        assert isinstance(booking, Booking)
        return booking

    async def upcoming(
        self, *, tenant_id: str, user_id: str, now: datetime, limit: int
    ) -> list[Booking]:
        return await asyncio.to_thread(self._upcoming, tenant_id, user_id, now, limit)

    def _upcoming(self, tenant_id: str, user_id: str, now: datetime, limit: int) -> list[Booking]:
        statement = (
            select(Booking)
            .where(Booking.tenant_id == tenant_id)
            .where(Booking.user_id == user_id)
            .where(col(Booking.status).in_([BookingStatus.CONFIRMED, BookingStatus.DECLINED]))
            .where(col(Booking.end_at) > now)
            .order_by(self._upcoming_order())
            .limit(limit)
        )
        with read_session(self._engine) as session:
            return list(session.exec(statement))

    def _upcoming_order(self) -> Any:
        """Start time, as a sort key no index can provide on SQLite.

        Sorted by the bare column, SQLite walks ix_booking_tenant_start (tenant, start) to skip
        the sort, reading the whole tenant's bookings (434 ms p99 on a million rows); `+start_at`
        makes it look the user's bookings up in ix_booking_user_upcoming and sort those few.
        PostgreSQL already does that (and has no unary `+` for timestamps).
        """
        if self._engine.dialect.name == "sqlite":
            start = cast("ColumnElement[datetime]", col(Booking.start_at))
            return UnaryExpression(start, operator=custom_op("+"))
        return col(Booking.start_at)

    async def cancel(
        self, booking_id: str, *, tenant_id: str, user_id: str, comment: str | None, now: datetime
    ) -> tuple[Booking, bool]:
        """Cancel once, by a conditional update; also says whether this call cancelled it."""
        return await asyncio.to_thread(self._cancel, booking_id, tenant_id, user_id, comment, now)

    def _cancel(
        self, booking_id: str, tenant_id: str, user_id: str, comment: str | None, now: datetime
    ) -> tuple[Booking, bool]:
        with write_session(self._engine) as session:
            result = session.execute(
                update(Booking)
                .where(
                    and_(
                        col(Booking.id) == booking_id,
                        col(Booking.tenant_id) == tenant_id,
                        col(Booking.user_id) == user_id,
                        col(Booking.status) == BookingStatus.CONFIRMED,
                    )
                )
                .values(status=BookingStatus.CANCELLED, cancel_comment=comment, cancelled_at=now)
            )
            session.commit()
            changed = getattr(result, "rowcount", 0) == 1
            booking = session.get(Booking, booking_id)
            if booking is not None:
                session.refresh(booking)
        if booking is None or booking.tenant_id != tenant_id or booking.user_id != user_id:
            raise NotFound("That booking was not found among yours.")
        return booking, changed

    async def series(
        self, series_id: str, *, tenant_id: str, user_id: str, now: datetime
    ) -> list[Booking]:
        """The user's occurrences of a series that have not ended, by start."""
        return await asyncio.to_thread(self._series, series_id, tenant_id, user_id, now)

    def _series(self, series_id: str, tenant_id: str, user_id: str, now: datetime) -> list[Booking]:
        statement = (
            select(Booking)
            .where(Booking.series_id == series_id)
            .where(Booking.tenant_id == tenant_id)
            .where(Booking.user_id == user_id)
            .where(col(Booking.end_at) > now)
            .order_by(col(Booking.start_at))
        )
        with read_session(self._engine) as session:
            return list(session.exec(statement))

    async def recent_room_ids(self, *, tenant_id: str, user_id: str, limit: int = 50) -> list[str]:
        """Room ids of the user's latest bookings, newest first (for "usual building")."""
        return await asyncio.to_thread(self._recent_room_ids, tenant_id, user_id, limit)

    def _recent_room_ids(self, tenant_id: str, user_id: str, limit: int) -> list[str]:
        statement = (
            select(Booking.room_id)
            .where(Booking.tenant_id == tenant_id)
            .where(Booking.user_id == user_id)
            .order_by(col(Booking.created_at).desc())
            .limit(limit)
        )
        with read_session(self._engine) as session:
            return list(session.exec(statement))


class ConversationRepository:
    """Conversation references for proactive messages, one row per conversation."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def remember(self, ref: ConversationRef) -> None:
        await asyncio.to_thread(self._remember, ref)

    def _remember(self, ref: ConversationRef) -> None:
        values = ref.model_dump()
        statement = upsert_insert(self._engine, ConversationRef).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["conversation_id"],
            set_={
                "service_url": values["service_url"],
                "reference": values["reference"],
                "user_id": values["user_id"],
                "updated_at": values["updated_at"],
                # The user wrote again (or a new chat was opened): usable again.
                "stale_at": None,
                "stale_reason": None,
            },
        )
        with write_session(self._engine) as session:
            session.execute(statement)
            session.commit()

    async def mark_welcomed(self, conversation_id: str, now: datetime) -> bool:
        """True for the one call that marks this conversation welcomed."""
        return await asyncio.to_thread(self._mark_welcomed, conversation_id, now)

    def _mark_welcomed(self, conversation_id: str, now: datetime) -> bool:
        with write_session(self._engine) as session:
            result = session.execute(
                update(ConversationRef)
                .where(col(ConversationRef.conversation_id) == conversation_id)
                .where(col(ConversationRef.welcomed_at).is_(None))
                .values(welcomed_at=now)
            )
            session.commit()
            return getattr(result, "rowcount", 0) == 1

    async def reset_welcome(self, conversation_id: str) -> None:
        await asyncio.to_thread(self._reset_welcome, conversation_id)

    def _reset_welcome(self, conversation_id: str) -> None:
        with write_session(self._engine) as session:
            session.execute(
                update(ConversationRef)
                .where(col(ConversationRef.conversation_id) == conversation_id)
                .values(welcomed_at=None)
            )
            session.commit()

    async def get(self, conversation_id: str) -> ConversationRef | None:
        return await asyncio.to_thread(self._get, conversation_id)

    def _get(self, conversation_id: str) -> ConversationRef | None:
        with read_session(self._engine) as session:
            return session.get(ConversationRef, conversation_id)

    async def personal(
        self, *, tenant_id: str, user_id: str, include_stale: bool = False
    ) -> ConversationRef | None:
        """The user's personal chat with the bot, the most recently used one; one marked stale
        (the connector refused it for good) only with `include_stale`."""
        chats = await self.personal_chats(
            tenant_id=tenant_id, user_ids=[user_id], include_stale=include_stale
        )
        return chats.get(user_id)

    async def personal_chats(
        self, *, tenant_id: str, user_ids: Sequence[str], include_stale: bool = False
    ) -> dict[str, ConversationRef]:
        """`personal` for several users at once (one query): by user id, those who have one."""
        return await asyncio.to_thread(self._personal_chats, tenant_id, user_ids, include_stale)

    def _personal_chats(
        self, tenant_id: str, user_ids: Sequence[str], include_stale: bool
    ) -> dict[str, ConversationRef]:
        if not user_ids:
            return {}
        with read_session(self._engine) as session:
            return personal_chats(session, tenant_id, user_ids, include_stale=include_stale)

    async def is_stale(self, conversation_id: str) -> bool:
        """Whether this conversation is marked stale (see `mark_stale`)."""
        return await asyncio.to_thread(self._is_stale, conversation_id)

    def _is_stale(self, conversation_id: str) -> bool:
        statement = select(ConversationRef.stale_at).where(
            ConversationRef.conversation_id == conversation_id
        )
        with read_session(self._engine) as session:
            return session.exec(statement).first() is not None

    async def mark_stale(self, conversation_id: str, *, now: datetime, reason: str) -> None:
        """The connector refused this conversation for good (blocked, not in the roster, not
        found): proactive messages skip it until the user writes again (`remember`)."""
        await asyncio.to_thread(self._mark_stale, conversation_id, now, reason)

    def _mark_stale(self, conversation_id: str, now: datetime, reason: str) -> None:
        with write_session(self._engine) as session:
            session.execute(
                update(ConversationRef)
                .where(col(ConversationRef.conversation_id) == conversation_id)
                .values(stale_at=now, stale_reason=reason[:64])
            )
            session.commit()

    async def latest_for_tenant(self, tenant_id: str) -> ConversationRef | None:
        """The tenant's most recently used conversation: its Bot Connector address and bot
        account are what a new conversation in that tenant starts from."""
        return await asyncio.to_thread(self._latest_for_tenant, tenant_id)

    def _latest_for_tenant(self, tenant_id: str) -> ConversationRef | None:
        statement = (
            select(ConversationRef)
            .where(ConversationRef.tenant_id == tenant_id)
            .order_by(col(ConversationRef.updated_at).desc())
            .limit(1)
        )
        with read_session(self._engine) as session:
            return session.exec(statement).first()


class UserRepository:
    """User profiles: the last known name and time zone."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def get(self, *, tenant_id: str, user_id: str) -> UserProfile | None:
        return await asyncio.to_thread(self._get, tenant_id, user_id)

    def _get(self, tenant_id: str, user_id: str) -> UserProfile | None:
        with read_session(self._engine) as session:
            return session.get(UserProfile, (tenant_id, user_id))

    async def remember(self, profile: UserProfile) -> None:
        await asyncio.to_thread(self._remember, profile)

    def _remember(self, profile: UserProfile) -> None:
        values = profile.model_dump()
        update_values: dict[str, Any] = {"name": values["name"], "updated_at": values["updated_at"]}
        if profile.time_zone:
            update_values["time_zone"] = values["time_zone"]
        statement = upsert_insert(self._engine, UserProfile).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["tenant_id", "user_id"], set_=update_values
        )
        with write_session(self._engine) as session:
            session.execute(statement)
            session.commit()


class TokenCacheRepository:
    """Per-user msal token caches in the database (a TokenCacheStore)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    async def load(self, user_key: str) -> str | None:
        return await asyncio.to_thread(self._load, user_key)

    def _load(self, user_key: str) -> str | None:
        with read_session(self._engine) as session:
            row = session.get(UserTokenCache, user_key)
            return row.cache if row is not None else None

    async def save(self, user_key: str, serialized: str) -> None:
        await asyncio.to_thread(self._save, user_key, serialized)

    async def delete(self, user_key: str) -> None:
        await asyncio.to_thread(self._delete, user_key)

    def _delete(self, user_key: str) -> None:
        _delete_row(self._engine, UserTokenCache, user_key)

    def _save(self, user_key: str, serialized: str) -> None:
        values = {"user_key": user_key, "cache": serialized, "updated_at": self._clock()}
        statement = upsert_insert(self._engine, UserTokenCache).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["user_key"],
            set_={"cache": serialized, "updated_at": values["updated_at"]},
        )
        with write_session(self._engine) as session:
            session.execute(statement)
            session.commit()


def personal_chats(
    session: Session, tenant_id: str, user_ids: Sequence[str], *, include_stale: bool
) -> dict[str, ConversationRef]:
    """The users' personal chats with the bot (the most recently used one each), by user id,
    read in the caller's transaction; chats marked stale only with `include_stale`."""
    if not user_ids:
        return {}
    statement = (
        select(ConversationRef)
        .where(ConversationRef.tenant_id == tenant_id)
        .where(col(ConversationRef.user_id).in_(list(user_ids)))
        .where(ConversationRef.conversation_type == "personal")
        .order_by(col(ConversationRef.updated_at).desc())
    )
    if not include_stale:
        statement = statement.where(col(ConversationRef.stale_at).is_(None))
    chats: dict[str, ConversationRef] = {}
    for ref in session.exec(statement):
        if ref.user_id is not None:
            chats.setdefault(ref.user_id, ref)
    return chats
