"""SQLModel tables. Times are stored in UTC."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Enum, Index, Text, false, text
from sqlmodel import Field, SQLModel

from bot.storage.db import UTCDateTime


class BookingStatus(StrEnum):
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    DECLINED = "declined"  # the room said no (Graph directory); the slot is free again


class BookingApproval(StrEnum):
    """A room that needs its owners' approval: the booking holds the slot while PENDING."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


def _utc(nullable: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable)


def _by_value(enum: type[StrEnum]) -> Enum:
    """A status column that stores the member's value ('confirmed'), as a plain string."""
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=16,
        values_callable=lambda members: [member.value for member in members],
    )


class Booking(SQLModel, table=True):
    """A room held for a user. `attempt_id` makes a redelivered Book click book once."""

    __tablename__ = "booking"
    __table_args__ = (
        Index("ix_booking_user_upcoming", "tenant_id", "user_id", "status", "end_at"),
        Index("ix_booking_room_time", "room_id", "start_at", "end_at"),
        Index("ix_booking_tenant_start", "tenant_id", "start_at", "status"),
    )

    id: str = Field(primary_key=True, max_length=36)
    attempt_id: str = Field(max_length=36, unique=True)
    tenant_id: str = Field(max_length=64)
    user_id: str = Field(max_length=128)
    user_name: str = Field(default="", max_length=256)
    room_id: str = Field(max_length=256)
    room_name: str = Field(max_length=256)
    building: str = Field(max_length=256)
    floor_label: str = Field(max_length=64)
    subject: str = Field(max_length=255)
    start_at: datetime = Field(sa_column=_utc())
    end_at: datetime = Field(sa_column=_utc())
    attendees: int
    online_meeting: bool
    join_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Graph directory: the event in the user's calendar and the room's answer to it.
    event_id: str | None = Field(default=None, max_length=512)
    room_response: str | None = Field(default=None, max_length=32)
    join_url_repaired: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    series_id: str | None = Field(default=None, max_length=36, index=True)
    """Repeating bookings: the search (draft) the occurrences were booked from."""
    time_zone: str = Field(max_length=64)
    # Stored by value ('confirmed'): the PostgreSQL overlap constraint filters on it.
    status: BookingStatus = Field(
        default=BookingStatus.CONFIRMED,
        sa_type=_by_value(BookingStatus),
        nullable=False,
    )
    cancel_comment: str | None = Field(default=None, max_length=500)
    cancelled_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    created_at: datetime = Field(sa_column=_utc())
    # Rooms that need approval: None for the others; the request is filed with this booking.
    approval: BookingApproval | None = Field(
        default=None,
        sa_type=_by_value(BookingApproval),
        nullable=True,
    )


class BookingDraft(SQLModel, table=True):
    """A validated search. Its id is the booking-attempt id the Book buttons carry."""

    __tablename__ = "booking_draft"
    __table_args__ = (Index("ix_booking_draft_created", "created_at"),)

    id: str = Field(primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64)
    user_id: str = Field(max_length=128)
    start_at: datetime = Field(sa_column=_utc())
    end_at: datetime = Field(sa_column=_utc())
    attendees: int
    building: str | None = Field(default=None, max_length=256)
    floor: int | None = None
    equipment: str = Field(default="", max_length=256)
    subject: str = Field(max_length=255)
    online_meeting: bool
    time_zone: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_utc())
    repeat: str = Field(default="none", max_length=16, sa_column_kwargs={"server_default": "none"})
    occurrences: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class ConversationRef(SQLModel, table=True):
    """Where the bot can reach a user or chat later (proactive messages)."""

    __tablename__ = "conversation_ref"
    __table_args__ = (Index("ix_conversation_ref_user", "tenant_id", "user_id"),)

    conversation_id: str = Field(primary_key=True, max_length=512)
    tenant_id: str = Field(max_length=64)
    user_id: str | None = Field(default=None, max_length=128)
    conversation_type: str = Field(max_length=32)
    service_url: str = Field(max_length=512)
    reference: str = Field(sa_column=Column(Text, nullable=False))
    welcomed_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    created_at: datetime = Field(sa_column=_utc())
    updated_at: datetime = Field(sa_column=_utc())
    # Set when the Bot Connector refused the conversation for good (403 blocked or not in the
    # roster, 404 not found): not used for proactive messages until the user writes again.
    stale_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    stale_reason: str | None = Field(default=None, max_length=64)


class UserProfile(SQLModel, table=True):
    """What the bot remembers of a user: name and last known time zone."""

    __tablename__ = "user_profile"

    tenant_id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(primary_key=True, max_length=128)
    name: str = Field(default="", max_length=256)
    time_zone: str | None = Field(default=None, max_length=64)
    updated_at: datetime = Field(sa_column=_utc())


class UserTokenCache(SQLModel, table=True):
    """One msal token cache per user (serialized), for on-behalf-of Graph tokens."""

    __tablename__ = "user_token_cache"

    user_key: str = Field(primary_key=True, max_length=200)
    cache: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(sa_column=_utc())


class ServiceRequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    PARTIALLY_APPROVED = "partially_approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class ServiceRequestRecord(SQLModel, table=True):
    """A submitted service request and its approval state (`ApprovalState.to_dict` as JSON).

    Every change bumps `version`, and is written only `WHERE version = <the version read>`.
    `submission_id` makes a redelivered Submit click create one request.
    """

    __tablename__ = "service_request"
    __table_args__ = (
        Index("ix_service_request_requester", "tenant_id", "requester_id", "status"),
        # The admin command: pending requests by age, approved ones by fulfilment step.
        Index("ix_service_request_tenant_status", "tenant_id", "status", "created_at"),
        Index("ix_service_request_tenant_fulfilment", "tenant_id", "fulfilment", "updated_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    submission_id: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    requester_id: str = Field(max_length=128)
    requester_name: str = Field(default="", max_length=256)
    category_id: str = Field(max_length=64)
    policy_id: str = Field(max_length=64)
    booking_id: str | None = Field(default=None, max_length=36)
    details: str = Field(sa_column=Column(Text, nullable=False))
    items: str = Field(sa_column=Column(Text, nullable=False))
    total: str = Field(max_length=32)  # a Decimal as text: exact on every backend
    currency: str = Field(max_length=3)
    status: str = Field(max_length=24)
    state: str = Field(sa_column=Column(Text, nullable=False))
    version: int
    created_at: datetime = Field(sa_column=_utc())
    updated_at: datetime = Field(sa_column=_utc())
    # After approval: the fulfilment team's progress ('' until the approval is finished).
    fulfilment: str = Field(
        default="", max_length=16, sa_column_kwargs={"server_default": text("''")}
    )


class RequestApprover(SQLModel, table=True):
    """Who may decide a pending request now: the approvers of its current stage."""

    __tablename__ = "request_approver"
    __table_args__ = (Index("ix_request_approver_approver", "approver_id"),)

    request_id: str = Field(primary_key=True, max_length=36)
    stage_id: str = Field(primary_key=True, max_length=64)
    approver_id: str = Field(primary_key=True, max_length=128)


class AuditEvent(SQLModel, table=True):
    """One thing that happened to a service request, by whom and when (append-only)."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_request", "request_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=36)
    at: datetime = Field(sa_column=_utc())
    actor_id: str = Field(max_length=128)
    actor_name: str = Field(default="", max_length=256)
    action: str = Field(max_length=32)
    item_ids: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of item ids
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    detail: str = Field(sa_column=Column(Text, nullable=False))  # JSON object


class FulfilmentStatus(StrEnum):
    NONE = ""  # still being approved, or nothing was approved
    WAITING = "waiting"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANNOT_DO = "cannot_do"


class RequestCard(SQLModel, table=True):
    """A copy of a request's card the bot posted: where it is, so every copy can be updated.

    `purpose` names why it was posted (`approve:<stage>:<user>`, `fulfil`, `requester`, ...):
    one row per request and purpose, claimed before sending, so a retried notification never
    posts twice. `activity_id` stays empty when the send failed.
    """

    __tablename__ = "request_card"
    __table_args__ = (
        Index("ix_request_card_purpose", "request_id", "purpose", unique=True),
        Index("ix_request_card_conversation", "conversation_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(max_length=36)
    purpose: str = Field(max_length=200)
    audience: str = Field(max_length=16)  # requester, approver, fulfilment, fallback
    user_id: str | None = Field(default=None, max_length=128)  # the one person it is for
    conversation_id: str | None = Field(default=None, max_length=512)
    activity_id: str | None = Field(default=None, max_length=512)
    reference: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=_utc())
    # Set when the connector refused an update of this copy for good (403, 404): not tried again.
    stale_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    stale_reason: str | None = Field(default=None, max_length=64)


class SeenActivity(SQLModel, table=True):
    """A message activity already handled: Teams redelivers unanswered ones with the same id.

    `key` is a digest of channel, conversation and activity id (message ids are unique within a
    conversation only). Rows older than an hour are pruned.
    """

    __tablename__ = "seen_activity"
    __table_args__ = (Index("ix_seen_activity_seen_at", "seen_at"),)

    key: str = Field(primary_key=True, max_length=64)
    seen_at: datetime = Field(sa_column=_utc())


class BookingJob(SQLModel, table=True):
    """A booking click's work in progress, and the card it must update when it ends (outbox).

    Written before the work calls Microsoft Graph; `claimed_until` is the working process's lease,
    renewed while it works. A job whose lease ran out (its process died) is claimed by any running
    process with a conditional update and run again: the work is idempotent (attempt ids, Graph
    `transactionId`). `state` is `running` until the work ends, then `result` with the `card` to
    put on the user's message; the row is deleted once that is done.
    """

    __tablename__ = "booking_job"
    __table_args__ = (
        Index("ix_booking_job_key", "key", unique=True),
        Index("ix_booking_job_claimed_until", "claimed_until"),
    )

    id: str = Field(primary_key=True, max_length=36)
    key: str = Field(max_length=64)  # digest of the click: tenant, user, verb and data
    verb: str = Field(max_length=64)
    data: str = Field(sa_column=Column(Text, nullable=False))  # the click's data as JSON
    actor: str = Field(sa_column=Column(Text, nullable=False))  # who clicked, where, as JSON
    state: str = Field(max_length=16)
    card: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    owner: str = Field(max_length=64)
    claimed_until: datetime = Field(sa_column=_utc())
    attempts: int = Field(default=1)
    created_at: datetime = Field(sa_column=_utc())
