"""The `admin` command: a tenant's day at a glance, and handing a waiting approval to someone else.

Who is an admin is decided from the verified activity only: the sender's Entra object id is in
ADMIN_USERS and their tenant is the bot's own (MICROSOFT_APP_TENANT_ID when set, else one of
ALLOWED_TENANTS when set, else any tenant). Everything an admin sees or changes is of their own
tenant. Card data never grants anything.

What the overview counts (the day is TIMEZONE's, the ages are from the clock):
- bookings that start today, by status (confirmed, cancelled, declined by the room);
- pending requests by how long ago they were submitted: under 1 day, 1 to 3 days, over 3 days (a
  request exactly 1 or 3 days old counts in the older bucket), with the oldest ones listed;
- stuck fulfilments: approved requests the fulfilment team has not started within
  NOT_STARTED_HOURS of the approval, or started and not marked done (or can't do) within
  NOT_DONE_HOURS of starting.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.approvals.policy import PlannedStage
from bot.approvals.service import (
    ApprovalService,
    Reassignment,
    RequestNotFound,
    ServiceRequest,
    request_number,
)
from bot.errors import InputError, NotAllowed
from bot.models import Actor
from bot.storage.admin import AdminQueries
from bot.storage.tables import BookingStatus, FulfilmentStatus

logger = logging.getLogger(__name__)

# Pending requests by age since submission: the limits between the buckets, and their names.
AGE_LIMITS = (timedelta(days=1), timedelta(days=3))
AGE_LABELS = ("Under 1 day", "1 to 3 days", "Over 3 days")
OLDEST_SHOWN = 5
# An approved request is stuck when nobody started it this long after the approval...
NOT_STARTED_HOURS = 24
# ...or when it was started this long ago and is still not done.
NOT_DONE_HOURS = 72
STUCK_SHOWN = 5
# How far back the export command on the card reaches.
EXPORT_DAYS = 30

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A request number as cards show it (the id's first 8 characters), or more of the id.
_NUMBER = re.compile(r"^[0-9a-f][0-9a-f-]{5,35}$")
_ONLY_ADMINS = "Only Frontdesk admins can do that. Nothing was changed."


class NotAdmin(NotAllowed):
    """The actor is not an admin (or not in the bot's own tenant)."""

    def __init__(self) -> None:
        super().__init__(_ONLY_ADMINS)


@dataclass(frozen=True)
class Person:
    """A user by Entra object id, with the name the bot last saw (may be empty)."""

    id: str
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.id


@dataclass(frozen=True)
class BookingCounts:
    """Bookings that start on one day."""

    total: int
    confirmed: int
    cancelled: int
    declined: int


@dataclass(frozen=True)
class AgeCount:
    label: str
    count: int


@dataclass(frozen=True)
class PendingApproval:
    """A request waiting for approval, as the admin sees it."""

    request_id: str
    category_name: str
    requester_name: str
    submitted_at: datetime
    stage_id: str
    stage_name: str
    stage_since: datetime  # when the current stage started (submission, or the last stage ended)
    approvers: tuple[Person, ...]

    @property
    def number(self) -> str:
        """The number cards show."""
        return request_number(self.request_id)


@dataclass(frozen=True)
class StuckFulfilment:
    request_id: str
    category_name: str
    requester_name: str
    step: FulfilmentStatus  # waiting (not started) or in_progress (not done)
    since: datetime  # the approval, or the start of the work

    @property
    def number(self) -> str:
        return request_number(self.request_id)


@dataclass(frozen=True)
class AdminOverview:
    """What the admin card shows for one tenant at one moment."""

    tenant_id: str
    now: datetime
    day: date
    day_zone: ZoneInfo
    bookings: BookingCounts
    pending_by_age: tuple[AgeCount, ...]
    oldest: tuple[PendingApproval, ...]
    not_started: int
    not_done: int
    stuck: tuple[StuckFulfilment, ...]
    not_started_hours: int = NOT_STARTED_HOURS
    not_done_hours: int = NOT_DONE_HOURS

    @property
    def pending_total(self) -> int:
        return sum(bucket.count for bucket in self.pending_by_age)

    @property
    def export_command(self) -> str:
        """The command line that exports this tenant's audit trail of the last EXPORT_DAYS."""
        since = self.day - timedelta(days=EXPORT_DAYS)
        return (
            f"python app.py audit-export --tenant {self.tenant_id} --since {since.isoformat()} "
            "--output audit.csv"
        )


class AdminService:
    """The admin overview and reassignments, for admins only."""

    def __init__(
        self,
        *,
        admins: Iterable[str],
        home_tenants: Iterable[str],
        queries: AdminQueries,
        approvals: ApprovalService,
        clock: Callable[[], datetime],
        day_zone: ZoneInfo,
    ) -> None:
        self._admins = frozenset(admin.lower() for admin in admins)
        self._home_tenants = frozenset(home_tenants)
        self._queries = queries
        self._approvals = approvals
        self._clock = clock
        self._day_zone = day_zone

    @property
    def configured(self) -> int:
        """How many admins ADMIN_USERS names."""
        return len(self._admins)

    def is_admin(self, actor: Actor) -> bool:
        """From the verified activity only: an admin's object id, in the bot's own tenant."""
        if actor.user_id.lower() not in self._admins:
            return False
        return not self._home_tenants or actor.tenant_id in self._home_tenants

    def require(self, actor: Actor) -> None:
        """NotAdmin unless the actor is an admin."""
        if not self.is_admin(actor):
            logger.warning("admin action refused for a user who is not an admin")
            raise NotAdmin()

    # -- the overview ---------------------------------------------------------------------------
    async def overview(self, actor: Actor) -> AdminOverview:
        """The admin's tenant today: bookings, waiting approvals, stuck fulfilments."""
        self.require(actor)
        return await asyncio.to_thread(self._overview, actor.tenant_id)

    def _overview(self, tenant_id: str) -> AdminOverview:
        now = self._clock()
        day = now.astimezone(self._day_zone).date()
        start = datetime.combine(day, time(), self._day_zone)
        end = datetime.combine(day + timedelta(days=1), time(), self._day_zone)
        by_status = self._queries.bookings_by_status(tenant_id, start, end)
        bookings = BookingCounts(
            total=sum(by_status.values()),
            confirmed=by_status.get(BookingStatus.CONFIRMED.value, 0),
            cancelled=by_status.get(BookingStatus.CANCELLED.value, 0),
            declined=by_status.get(BookingStatus.DECLINED.value, 0),
        )
        ages = self._queries.pending_by_age(tenant_id, [now - limit for limit in AGE_LIMITS])
        oldest = self._queries.oldest_pending(tenant_id, OLDEST_SHOWN)
        not_started, not_done, stuck = self._queries.stuck_fulfilments(
            tenant_id,
            waiting_since_before=now - timedelta(hours=NOT_STARTED_HOURS),
            in_progress_since_before=now - timedelta(hours=NOT_DONE_HOURS),
            limit=STUCK_SHOWN,
        )
        pending = [self._approvals.as_request(record) for record in oldest]
        names = self._names(tenant_id, pending)
        return AdminOverview(
            tenant_id=tenant_id,
            now=now,
            day=day,
            day_zone=self._day_zone,
            bookings=bookings,
            pending_by_age=tuple(
                AgeCount(label, count) for label, count in zip(AGE_LABELS, ages, strict=True)
            ),
            oldest=tuple(self._pending(request, names) for request in pending),
            not_started=not_started,
            not_done=not_done,
            stuck=tuple(
                StuckFulfilment(
                    request_id=record.id,
                    category_name=self._approvals.category_name(record.category_id),
                    requester_name=record.requester_name or record.requester_id,
                    step=FulfilmentStatus(record.fulfilment),
                    since=record.updated_at,
                )
                for record in stuck
            ),
        )

    # -- reassigning ----------------------------------------------------------------------------
    async def pending(self, actor: Actor, reference: str) -> PendingApproval:
        """A pending request of the admin's tenant by its full id or its number (as typed).

        InputError for something that is not a number, or a number that fits several requests;
        RequestNotFound when no pending request of the tenant has it.
        """
        self.require(actor)
        text = reference.strip().lower().lstrip("#")
        if not _NUMBER.match(text):
            raise InputError(
                "Type the request number its card shows (8 characters, such as 1a2b3c4d) or "
                "its full id.",
                field="number",
            )
        return await asyncio.to_thread(self._pending_by_reference, actor.tenant_id, text)

    def _pending_by_reference(self, tenant_id: str, text: str) -> PendingApproval:
        found = self._queries.pending_by_number(tenant_id, text)
        if len(found) > 1:
            raise InputError(
                f"More than one waiting request starts with {text}: type more of its id.",
                field="number",
            )
        if not found:
            raise RequestNotFound()
        request = self._approvals.as_request(found[0])
        return self._pending(request, self._names(tenant_id, [request]))

    async def reassign(
        self,
        actor: Actor,
        request_id: str,
        *,
        stage_id: str,
        old_approver: str,
        new_approver: str,
        comment: str | None,
    ) -> Reassignment:
        """Hand the current stage's approval from one approver to another (see
        ApprovalService.reassign); the new approver must be an Entra object id."""
        self.require(actor)
        new = new_approver.strip().lower()
        if not _GUID.match(new):
            raise InputError(
                "The new approver must be an Entra object id, such as "
                "00000000-0000-0000-0000-000000000000.",
                field="to",
            )
        return await self._approvals.reassign(
            actor,
            request_id,
            stage_id=stage_id,
            old_approver=old_approver,
            new_approver=new,
            comment=comment,
        )

    # -- helpers --------------------------------------------------------------------------------
    def _names(self, tenant_id: str, requests: Iterable[ServiceRequest]) -> dict[str, str]:
        users = sorted(
            {
                approver
                for request in requests
                if (stage := request.state.current_stage) is not None
                for approver in stage.approvers
            }
        )
        return self._approvals.names(tenant_id, users)

    def _pending(self, request: ServiceRequest, names: dict[str, str]) -> PendingApproval:
        stage = request.state.current_stage
        assert stage is not None  # pending requests have a current stage
        return PendingApproval(
            request_id=request.id,
            category_name=self._approvals.category_name(request.category_id),
            requester_name=request.requester_name or request.requester_id,
            submitted_at=request.created_at,
            stage_id=stage.id,
            stage_name=stage.name,
            stage_since=_stage_since(request, stage),
            approvers=tuple(Person(user, names.get(user, "")) for user in stage.approvers),
        )


def _stage_since(request: ServiceRequest, stage: PlannedStage) -> datetime:
    """When the stage started: the submission, or the last decision of an earlier stage."""
    stages = request.state.stages
    earlier = {s.id for s in stages[: stages.index(stage)]}
    times = [d.at for d in request.state.decisions if d.stage_id in earlier]
    return max([request.created_at, *times])
