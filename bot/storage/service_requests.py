"""Service requests, their current approvers and audit trail: the SQL behind ApprovalService.

Methods are blocking; the service calls them from a worker thread. Every change to a request is
a conditional update on the `version` it read, so two approvers who click at once cannot both
change a request (the one whose update finds the old version wins). The update returns the row
as stored (RETURNING), so the caller needs no second read to show it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.storage.db import advisory_lock, read_session, write_session
from bot.storage.repository import personal_chats
from bot.storage.tables import (
    AuditEvent,
    Booking,
    BookingApproval,
    BookingStatus,
    ConversationRef,
    FulfilmentStatus,
    RequestApprover,
    RequestCard,
    ServiceRequestRecord,
    ServiceRequestStatus,
    UserProfile,
)

logger = logging.getLogger(__name__)

# The namespace of the advisory locks that make replicas update a request's cards in turn.
CARD_UPDATES_LOCK = 0x52514344  # "RQCD"


@dataclass(frozen=True)
class RoomSettlement:
    """A held room's booking after the final answer on its approval: APPROVED keeps it,
    REJECTED cancels it (the slot is free again) with `comment` as the reason."""

    booking_id: str
    approval: BookingApproval
    comment: str | None


@dataclass(frozen=True)
class CardFactRows:
    """The rows `ServiceRequestRepository.card_facts` reads for a request's cards."""

    events: list[AuditEvent]
    profiles: dict[str, UserProfile]
    booking: Booking | None
    chats: dict[str, ConversationRef]


class ServiceRequestRepository:
    """Rows of `service_request`, `request_approver` and `audit_event`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, request_id: str) -> ServiceRequestRecord | None:
        with read_session(self._engine) as session:
            return session.get(ServiceRequestRecord, request_id)

    def by_submission(self, submission_id: str) -> ServiceRequestRecord | None:
        with read_session(self._engine) as session:
            return session.exec(
                select(ServiceRequestRecord).where(
                    ServiceRequestRecord.submission_id == submission_id
                )
            ).first()

    def booking(self, booking_id: str) -> Booking | None:
        with read_session(self._engine) as session:
            return session.get(Booking, booking_id)

    def create(
        self,
        record: ServiceRequestRecord,
        approvers: Sequence[tuple[str, str]],
        event: AuditEvent,
    ) -> tuple[ServiceRequestRecord, bool]:
        """Insert a request with its (stage, approver) rows and first audit event, all or none.

        A request with the same `submission_id` wins over this one: it is returned, with False.
        """
        existing = self.by_submission(record.submission_id)
        if existing is not None:
            return existing, False
        try:
            with write_session(self._engine) as session:
                session.add(record)
                session.flush()  # the request first: a duplicate submission stops here
                session.add_all(_approver_rows(record.id, approvers))
                session.add(event)
                session.commit()
                return record, True
        except IntegrityError:
            existing = self.by_submission(record.submission_id)
            if existing is None:
                raise
            return existing, False

    def save_decision(
        self,
        request_id: str,
        *,
        seen_version: int,
        state: str,
        status: ServiceRequestStatus,
        now: datetime,
        approvers: Sequence[tuple[str, str]] | None,
        event: AuditEvent,
        fulfilment: FulfilmentStatus = FulfilmentStatus.NONE,
        settle: RoomSettlement | None = None,
    ) -> ServiceRequestRecord | None:
        """Store a decision made on `seen_version`: the row as stored, None (nothing written)
        if that version is stale.

        `approvers` replaces the request's current approvers when the stage changed (None: kept).
        """
        with write_session(self._engine) as session:
            stored = _change(
                session,
                request_id,
                now,
                where=(
                    col(ServiceRequestRecord.version) == seen_version,
                    col(ServiceRequestRecord.status) == ServiceRequestStatus.PENDING,
                ),
                state=state,
                status=status,
                fulfilment=fulfilment,
            )
            if stored is None:
                return None
            if approvers is not None:
                _replace_approvers(session, request_id, approvers)
            if settle is not None and status != ServiceRequestStatus.PENDING:
                _settle_room(session, settle, now)
            session.add(event)
            session.commit()
            return stored

    def cancel(
        self,
        request_id: str,
        *,
        tenant_id: str,
        requester_id: str,
        now: datetime,
        event: AuditEvent,
        settle: RoomSettlement | None = None,
    ) -> ServiceRequestRecord | None:
        """Cancel a pending request of this requester: the row as stored, None when it was not
        pending (or not theirs)."""
        with write_session(self._engine) as session:
            stored = _change(
                session,
                request_id,
                now,
                where=(
                    col(ServiceRequestRecord.tenant_id) == tenant_id,
                    col(ServiceRequestRecord.requester_id) == requester_id,
                    col(ServiceRequestRecord.status) == ServiceRequestStatus.PENDING,
                ),
                status=ServiceRequestStatus.CANCELLED,
            )
            if stored is None:
                return None
            _replace_approvers(session, request_id, ())
            if settle is not None:
                _settle_room(session, settle, now)
            session.add(event)
            session.commit()
            return stored

    def save_fulfilment(
        self,
        request_id: str,
        *,
        seen_version: int,
        fulfilment: FulfilmentStatus,
        now: datetime,
        event: AuditEvent,
    ) -> ServiceRequestRecord | None:
        """Store the fulfilment team's step made on `seen_version`: the row as stored, None if
        that version is stale."""
        with write_session(self._engine) as session:
            stored = _change(
                session,
                request_id,
                now,
                where=(col(ServiceRequestRecord.version) == seen_version,),
                fulfilment=fulfilment,
            )
            if stored is None:
                return None
            session.add(event)
            session.commit()
            return stored

    def add_event(self, event: AuditEvent) -> None:
        """Append an audit event that changes no request (a notification, a fallback)."""
        with write_session(self._engine) as session:
            session.add(event)
            session.commit()

    # -- posted cards ---------------------------------------------------------------------------
    def claim_card(self, card: RequestCard) -> RequestCard | None:
        """Insert the row for a card about to be posted; None when that purpose was claimed."""
        try:
            with write_session(self._engine) as session:
                session.add(card)
                session.commit()  # the insert fills in the id; nothing else needs reading back
                return card
        except IntegrityError:
            return None

    def card_posted(
        self,
        card_id: int,
        *,
        conversation_id: str,
        activity_id: str | None,
        reference: str,
    ) -> None:
        with write_session(self._engine) as session:
            session.execute(
                update(RequestCard)
                .where(col(RequestCard.id) == card_id)
                .values(
                    conversation_id=conversation_id[:512],
                    activity_id=activity_id[:512] if activity_id else None,
                    reference=reference,
                )
            )
            session.commit()

    def card_stale(self, card_id: int, *, now: datetime, reason: str) -> None:
        """The connector refused to update this copy for good: it is not tried again."""
        with write_session(self._engine) as session:
            session.execute(
                update(RequestCard)
                .where(col(RequestCard.id) == card_id)
                .values(stale_at=now, stale_reason=reason[:64])
            )
            session.commit()

    def updating_cards(self, request_id: str) -> AbstractAsyncContextManager[None]:
        """Held while the request's posted copies are updated: one process at a time."""
        return advisory_lock(self._engine, CARD_UPDATES_LOCK, request_id)

    def cards(self, request_id: str) -> list[RequestCard]:
        """Every copy of the request's card, in the order they were claimed."""
        statement = (
            select(RequestCard)
            .where(RequestCard.request_id == request_id)
            .order_by(col(RequestCard.id))
        )
        with read_session(self._engine) as session:
            return list(session.exec(statement))

    def profiles(self, tenant_id: str, user_ids: list[str]) -> dict[str, UserProfile]:
        """What the bot last saw of these users (name, time zone), by user id."""
        with read_session(self._engine) as session:
            return _profiles(session, tenant_id, user_ids)

    def card_facts(
        self,
        request_id: str,
        tenant_id: str,
        user_ids: list[str],
        booking_id: str | None,
        chats_of: Sequence[str] = (),
    ) -> CardFactRows:
        """What a request's cards show besides the request, read in one transaction: its audit
        events (`events`), these users' profiles (`profiles`), its booking (`booking`) and the
        personal chats of `chats_of` (stale ones too), whose Teams ids the card refreshes for."""
        with read_session(self._engine) as session:
            return CardFactRows(
                events=_events(session, request_id),
                profiles=_profiles(session, tenant_id, user_ids),
                booking=session.get(Booking, booking_id) if booking_id is not None else None,
                chats=personal_chats(session, tenant_id, chats_of, include_stale=True),
            )

    def by_requester(self, tenant_id: str, requester_id: str) -> list[ServiceRequestRecord]:
        """The requester's requests, newest first."""
        statement = (
            select(ServiceRequestRecord)
            .where(ServiceRequestRecord.tenant_id == tenant_id)
            .where(ServiceRequestRecord.requester_id == requester_id)
            .order_by(col(ServiceRequestRecord.created_at).desc(), col(ServiceRequestRecord.id))
        )
        with read_session(self._engine) as session:
            return list(session.exec(statement))

    def waiting_for(self, tenant_id: str, approver_id: str) -> list[ServiceRequestRecord]:
        """Pending requests whose current stage lists the approver, oldest first."""
        statement = (
            select(ServiceRequestRecord)
            .join(
                RequestApprover,
                col(RequestApprover.request_id) == col(ServiceRequestRecord.id),
            )
            .where(RequestApprover.approver_id == approver_id)
            .where(ServiceRequestRecord.tenant_id == tenant_id)
            .where(ServiceRequestRecord.status == ServiceRequestStatus.PENDING)
            .order_by(col(ServiceRequestRecord.created_at), col(ServiceRequestRecord.id))
        )
        with read_session(self._engine) as session:
            return list(session.exec(statement).unique())

    def approvers(self, request_id: str) -> list[tuple[str, str]]:
        """The (stage id, approver id) rows of a request."""
        statement = (
            select(RequestApprover.stage_id, RequestApprover.approver_id)
            .where(RequestApprover.request_id == request_id)
            .order_by(col(RequestApprover.stage_id), col(RequestApprover.approver_id))
        )
        with read_session(self._engine) as session:
            return [(stage, approver) for stage, approver in session.exec(statement)]

    def events(self, request_id: str) -> list[AuditEvent]:
        """The request's audit events in the order they happened."""
        with read_session(self._engine) as session:
            return _events(session, request_id)

    def all_events(self, *, tenant_id: str | None, since: datetime | None) -> list[AuditEvent]:
        """Audit events of every request (of one tenant), from `since` on, oldest first."""
        statement = select(AuditEvent)
        if tenant_id is not None:
            statement = statement.join(
                ServiceRequestRecord,
                col(ServiceRequestRecord.id) == col(AuditEvent.request_id),
            ).where(ServiceRequestRecord.tenant_id == tenant_id)
        if since is not None:
            statement = statement.where(col(AuditEvent.at) >= since)
        statement = statement.order_by(col(AuditEvent.at), col(AuditEvent.id))
        with read_session(self._engine) as session:
            return list(session.exec(statement))


def _events(session: Session, request_id: str) -> list[AuditEvent]:
    statement = (
        select(AuditEvent)
        .where(AuditEvent.request_id == request_id)
        .order_by(col(AuditEvent.at), col(AuditEvent.id))
    )
    return list(session.exec(statement))


def _profiles(session: Session, tenant_id: str, user_ids: list[str]) -> dict[str, UserProfile]:
    if not user_ids:
        return {}
    statement = (
        select(UserProfile)
        .where(UserProfile.tenant_id == tenant_id)
        .where(col(UserProfile.user_id).in_(user_ids))
    )
    return {profile.user_id: profile for profile in session.exec(statement)}


def _change(
    session: Session,
    request_id: str,
    now: datetime,
    *,
    where: Sequence[ColumnElement[bool]],
    **values: object,
) -> ServiceRequestRecord | None:
    """The guarded write of every change to a request: set `values`, a new version and
    `updated_at` only where `where` still holds; the row as stored (one statement, RETURNING).
    None, and the transaction rolled back, when it no longer holds (someone changed the request
    since it was read)."""
    stored: ServiceRequestRecord | None = (
        session.execute(
            update(ServiceRequestRecord)
            .where(col(ServiceRequestRecord.id) == request_id, *where)
            .values(version=ServiceRequestRecord.version + 1, updated_at=now, **values)
            .returning(ServiceRequestRecord)
        )
        .scalars()
        .first()
    )
    if stored is None:
        session.rollback()
        return None
    return stored


def _approver_rows(request_id: str, approvers: Sequence[tuple[str, str]]) -> list[RequestApprover]:
    return [
        RequestApprover(request_id=request_id, stage_id=stage_id, approver_id=approver_id)
        for stage_id, approver_id in dict.fromkeys(approvers)
    ]


def _replace_approvers(
    session: Session, request_id: str, approvers: Sequence[tuple[str, str]]
) -> None:
    session.execute(delete(RequestApprover).where(col(RequestApprover.request_id) == request_id))
    session.add_all(_approver_rows(request_id, approvers))


def _settle_room(session: Session, settle: RoomSettlement, now: datetime) -> None:
    """Confirm or release a held room, only while it is still held (a booking the user
    cancelled meanwhile stays cancelled)."""
    values: dict[str, object] = {"approval": settle.approval}
    if settle.approval == BookingApproval.REJECTED:
        values.update(
            status=BookingStatus.CANCELLED, cancel_comment=settle.comment, cancelled_at=now
        )
    session.execute(
        update(Booking)
        .where(col(Booking.id) == settle.booking_id)
        .where(col(Booking.approval) == BookingApproval.PENDING)
        .where(col(Booking.status) == BookingStatus.CONFIRMED)
        .values(**values)
    )
