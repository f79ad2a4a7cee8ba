"""Service requests: submit, decide, cancel, list, and the audit trail, stored in the database.

Authority comes from the stored request, never from card data: `decide` loads the request, checks
the tenant and that the actor approves its current stage, and writes the new state only if nobody
changed the request since it was read (a conditional update on its `version`). When someone did,
the decision is worked out again on the fresh state, so a late click learns who decided first.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, TextIO

from bot.approvals.catalogue import (
    BookingLink,
    Catalogue,
    DateField,
    FulfilmentChannel,
    FulfilmentUsers,
    ServiceCategory,
    TimeField,
    parse_request_form,
)
from bot.approvals.errors import AlreadyDecided, FormError, NotAnApprover
from bot.approvals.models import RequestDetail, RequestItem
from bot.approvals.policy import (
    ApprovalPolicy,
    ApproverResolver,
    KnownManager,
    PolicyBook,
    RequestFacts,
    RoomOwners,
    Stage,
    StageCondition,
    StageMode,
    asks_manager,
    plan_stages,
)
from bot.approvals.state import (
    ApprovalState,
    Outcome,
    RequestStatus,
    clean_comment,
    decide,
)
from bot.errors import FrontdeskError, InputError, MalformedAction, NotAllowed, NotFound
from bot.models import Actor
from bot.storage.service_requests import RoomSettlement, ServiceRequestRepository
from bot.storage.tables import (
    AuditEvent,
    Booking,
    BookingApproval,
    ConversationRef,
    FulfilmentStatus,
    ServiceRequestRecord,
    ServiceRequestStatus,
    UserProfile,
)

logger = logging.getLogger(__name__)

# A decision is worked out again this often when other decisions keep landing first.
MAX_ATTEMPTS = 5

SUBMITTED = "submitted"
APPROVED = "approved"
REJECTED = "rejected"
CANCELLED = "cancelled"
NOTIFIED = "notified"
UNREACHABLE = "unreachable"
REASSIGNED = "reassigned"
FULFIL_STEPS: dict[str, FulfilmentStatus] = {
    "start": FulfilmentStatus.IN_PROGRESS,
    "done": FulfilmentStatus.DONE,
    "cannot": FulfilmentStatus.CANNOT_DO,
}
# Which fulfilment states each step may start from.
_FULFIL_FROM: dict[FulfilmentStatus, tuple[FulfilmentStatus, ...]] = {
    FulfilmentStatus.IN_PROGRESS: (FulfilmentStatus.WAITING,),
    FulfilmentStatus.DONE: (FulfilmentStatus.WAITING, FulfilmentStatus.IN_PROGRESS),
    FulfilmentStatus.CANNOT_DO: (FulfilmentStatus.WAITING, FulfilmentStatus.IN_PROGRESS),
}
# The newest requests `my requests` lists.
MY_REQUESTS_LIMIT = 15

CSV_HEADER = ("at", "request_id", "actor_id", "actor_name", "action", "items", "comment")
# Spreadsheet programs run a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

ResolverFactory = Callable[[Actor], ApproverResolver]
ManagerLookup = Callable[[Actor], Awaitable[str | None]]
"""The acting user's manager from the directory (Graph `/me/manager`); None when none is named."""

_NOT_FOUND = "That request was not found."

# Rooms that need approval: the booking is held and a request of this built-in kind is filed.
# The policies file may define a policy with this id; else the room's owners decide, any one.
ROOM_BOOKING = "room-booking"
DEFAULT_ROOM_POLICY = ApprovalPolicy(
    id=ROOM_BOOKING,
    name="Rooms that need approval",
    stages=(
        Stage(
            id="room-owners",
            name="Room owners",
            approvers=(RoomOwners(),),
            mode=StageMode.ANY,
            when=StageCondition(),
            skip_if_empty=False,
        ),
    ),
    fallback_channel="",
)
ROOM_ITEM = "room"


class RequestNotFound(NotFound):
    """No such request, or not one the user may see (the card offers the request lists)."""

    def __init__(self) -> None:
        super().__init__(_NOT_FOUND)


class RequestBusy(FrontdeskError):
    """Other decisions kept landing first; the user may simply try again."""


@dataclass(frozen=True)
class ServiceRequest:
    """A stored service request, as the cards and notifications see it."""

    id: str
    tenant_id: str
    requester_id: str
    requester_name: str
    category_id: str
    policy_id: str
    booking_id: str | None
    items: tuple[RequestItem, ...]
    details: tuple[RequestDetail, ...]
    total: Decimal
    currency: str
    status: ServiceRequestStatus
    state: ApprovalState
    version: int
    created_at: datetime
    updated_at: datetime
    fulfilment: FulfilmentStatus = FulfilmentStatus.NONE

    @property
    def pending(self) -> bool:
        return self.status == ServiceRequestStatus.PENDING

    @property
    def number(self) -> str:
        """The number people see for it (cards, notices, the admin overview)."""
        return request_number(self.id)

    @property
    def released_booking_id(self) -> str | None:
        """The held booking this request's answer released (its room's approval was rejected or
        withdrawn), whose calendar event is still to be cancelled; None for any other request."""
        released = (ServiceRequestStatus.REJECTED, ServiceRequestStatus.CANCELLED)
        if self.category_id != ROOM_BOOKING or self.status not in released:
            return None
        return self.booking_id


class Role(StrEnum):
    """How a viewer sees a request's card."""

    APPROVER = "approver"  # has items to decide now: the buttons
    REQUESTER = "requester"  # status, and Cancel while pending
    FULFILMENT = "fulfilment"  # Start / Done / Can't do once approved
    VIEWER = "viewer"  # read-only


@dataclass(frozen=True)
class FulfilmentResult:
    request: ServiceRequest
    changed: bool
    message: str


@dataclass(frozen=True)
class AlreadyDecidedBy:
    """Who settled what the actor clicked on, and when (their name as they were last known)."""

    approver_id: str
    approver_name: str
    at: datetime
    approved: bool
    message: str


@dataclass(frozen=True)
class DecisionResult:
    """What one `decide` call did: `changed` is True for exactly the call that changed it."""

    request: ServiceRequest
    changed: bool
    outcome: Outcome | None  # what this decision settled, when `changed`
    already: AlreadyDecidedBy | None  # who was first, when not `changed`


@dataclass(frozen=True)
class Reassignment:
    """A reassigned approval: the request as stored after it, and who was swapped for whom."""

    request: ServiceRequest
    stage_name: str
    old_name: str
    new_name: str


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    request_id: str
    actor_id: str
    actor_name: str
    action: str
    item_ids: tuple[str, ...]
    comment: str | None
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class RequestCardFacts:
    """What a request's cards show besides the request, read at once (`card_facts`)."""

    history: list[AuditEntry]  # its audit events, oldest first
    names: dict[str, str]  # the asked users' names, as last seen
    zones: dict[str, str]  # the asked users' last known time zones (IANA names)
    booking: Booking | None
    chats: dict[str, ConversationRef]  # personal chats of the `chats_of` users, stale ones too


class ApprovalService:
    """Service requests and their approvals, with every change guarded in the database."""

    def __init__(
        self,
        *,
        requests: ServiceRequestRepository,
        catalogue: Catalogue,
        policies: PolicyBook,
        resolver_for: ResolverFactory,
        clock: Callable[[], datetime],
        new_id: Callable[[], str],
        manager_lookup: ManagerLookup | None = None,
    ) -> None:
        self._manager_lookup = manager_lookup
        self._requests = requests
        self._catalogue = catalogue
        self._policies = policies
        self._resolver_for = resolver_for
        self._clock = clock
        self._new_id = new_id

    # -- submitting -----------------------------------------------------------------------------
    async def submit(
        self,
        actor: Actor,
        category_id: str,
        inputs: Mapping[str, Any],
        booking_id: str | None = None,
        *,
        submission_id: str,
    ) -> ServiceRequest:
        """Check the form, plan the approval and store the request; once per `submission_id`.

        A second submit with the same `submission_id` (a redelivered click) returns the first
        request. FormError for a faulty form, PolicyError when a stage has nobody to approve.
        """
        known: KnownManager | None = None
        if self._manager_lookup is not None:
            category = self._submittable(category_id)
            if category is not None and asks_manager(self._policy(category.policy_id)):
                # Graph needs the user's token and is async: ask before planning in a thread.
                manager = await self._manager_lookup(actor)
                known = KnownManager(self._resolver_for(actor), actor.user_id, manager)
        return await asyncio.to_thread(
            self._submit, actor, category_id, dict(inputs), booking_id, submission_id, known
        )

    def _submit(
        self,
        actor: Actor,
        category_id: str,
        inputs: dict[str, Any],
        booking_id: str | None,
        submission_id: str,
        known: KnownManager | None = None,
    ) -> ServiceRequest:
        existing = self._requests.by_submission(submission_id)
        if existing is not None:
            return self._own_submission(existing, actor)
        category = self._submittable(category_id)
        if category is None:
            raise NotFound("That service is not in the catalogue.")
        form = parse_request_form(category, inputs)
        if booking_id is None and category.booking is BookingLink.REQUIRED:
            raise FormError("booking", f"{category.name} needs one of your room bookings.")
        if category.booking is BookingLink.NONE:
            booking_id = None
        room_id = self._booked_room(actor, booking_id)
        facts = RequestFacts(actor.user_id, category.id, form.items, room_id)
        return self._file(
            actor, category, facts, form.details, form.total, booking_id, submission_id, known
        )

    def _submittable(self, category_id: str) -> ServiceCategory | None:
        """The catalogue's category, if any (the built-in room kind is filed by `request_room`
        only, so it is none of these)."""
        try:
            return self._catalogue.category(category_id)
        except KeyError:
            return None

    def _file(
        self,
        actor: Actor,
        category: ServiceCategory,
        facts: RequestFacts,
        details: Sequence[RequestDetail],
        total: Decimal,
        booking_id: str | None,
        submission_id: str,
        known: KnownManager | None,
    ) -> ServiceRequest:
        """Plan the approval and store the request with its first audit event."""
        resolver = known if known is not None else self._resolver_for(actor)
        stages = plan_stages(self._policy(category.policy_id), facts, resolver)
        state = ApprovalState.start(stages, facts.items)
        now = self._clock()
        record = ServiceRequestRecord(
            id=self._new_id(),
            submission_id=submission_id,
            tenant_id=actor.tenant_id,
            requester_id=actor.user_id,
            requester_name=actor.name,
            category_id=category.id,
            policy_id=category.policy_id,
            booking_id=booking_id,
            details=json.dumps([_detail_json(d) for d in details]),
            items=json.dumps([_item_json(i) for i in facts.items]),
            total=str(total),
            currency=category.currency,
            status=ServiceRequestStatus(state.status.value),
            state=json.dumps(state.to_dict()),
            fulfilment=_fulfilment_after(state.status, category.id),
            version=1,
            created_at=now,
            updated_at=now,
        )
        event = _event(
            record.id,
            actor,
            SUBMITTED,
            now,
            items=state.item_ids,
            comment=None,
            detail={"status": record.status, "stages": [s.id for s in state.stages]},
        )
        stored, created = self._requests.create(record, _current_approvers(state), event)
        if not created:
            return self._own_submission(stored, actor)
        logger.info("service request %s submitted (%s)", stored.id, stored.category_id)
        return _request(stored)

    def _own_submission(self, record: ServiceRequestRecord, actor: Actor) -> ServiceRequest:
        if record.tenant_id != actor.tenant_id or record.requester_id != actor.user_id:
            # A submission id is the client's; one reused by someone else is not theirs to see.
            raise RequestNotFound()
        return _request(record)

    def _booked_room(self, actor: Actor, booking_id: str | None) -> str | None:
        if booking_id is None:
            return None
        booking = self._requests.booking(booking_id)
        if booking is None or booking.tenant_id != actor.tenant_id:
            raise NotFound("That booking was not found among yours.")
        if booking.user_id != actor.user_id:
            raise NotFound("That booking was not found among yours.")
        return booking.room_id

    # -- rooms that need approval ----------------------------------------------------------------
    async def request_room(self, actor: Actor, booking: Booking) -> ServiceRequest:
        """File the approval of a held booking (once per booking: a redelivered click gets the
        same request). PolicyError when nobody can approve the room."""
        return await asyncio.to_thread(self._request_room, actor, booking)

    def _request_room(self, actor: Actor, booking: Booking) -> ServiceRequest:
        existing = self._requests.by_submission(booking.id)
        if existing is not None:
            return self._own_submission(existing, actor)
        category = self.room_category
        item = RequestItem(
            id=ROOM_ITEM,
            description=f"{booking.room_name} ({booking.building}, {booking.floor_label})",
            quantity=Decimal(1),
            unit_price=Decimal(0),
        )
        details = (RequestDetail("subject", "Meeting", booking.subject),)
        facts = RequestFacts(actor.user_id, category.id, (item,), booking.room_id)
        return self._file(actor, category, facts, details, Decimal(0), booking.id, booking.id, None)

    async def room_request_of(self, booking_id: str) -> ServiceRequest | None:
        """The approval request filed for a held room, if any."""
        record = await asyncio.to_thread(self._requests.by_submission, booking_id)
        if record is None or record.category_id != ROOM_BOOKING:
            return None
        return _request(record)

    async def withdraw_room_request(self, actor: Actor, booking_id: str) -> ServiceRequest | None:
        """The user cancelled a held booking: its pending approval request is withdrawn for
        everyone. None when none is pending (never filed, or decided meanwhile)."""
        request = await self.room_request_of(booking_id)
        if request is None or not request.pending:
            return None
        try:
            return await self.cancel(actor, request.id, "The booking was cancelled.")
        except NotAllowed:
            return None  # decided meanwhile

    @property
    def room_category(self) -> ServiceCategory:
        """The built-in kind of request that approves a held room."""
        return ServiceCategory(
            id=ROOM_BOOKING,
            name="Room booking",
            description="A room that is booked only with its owners' approval.",
            currency=self._catalogue.currency,
            fields=(),
            fulfilment=FulfilmentUsers(()),
            policy_id=ROOM_BOOKING,
            booking=BookingLink.REQUIRED,
        )

    def _policy(self, policy_id: str) -> ApprovalPolicy:
        try:
            return self._policies.policy(policy_id)
        except KeyError:
            if policy_id == ROOM_BOOKING:
                return DEFAULT_ROOM_POLICY
            raise

    # -- deciding -------------------------------------------------------------------------------
    async def decide(
        self,
        actor: Actor,
        request_id: str,
        *,
        items: Sequence[str] | Literal["all"],
        approve: bool,
        comment: str | None = None,
    ) -> DecisionResult:
        """Approve or reject items (or all the actor can decide) of a request's current stage.

        NotFound for an unknown request or one of another tenant; NotAllowed for someone who is
        not an approver of the current stage, and for the requester. When the items were settled
        before (or while) this click, nothing changes and the result names who settled them.
        """
        return await asyncio.to_thread(self._decide, actor, request_id, items, approve, comment)

    def _decide(
        self,
        actor: Actor,
        request_id: str,
        items: Sequence[str] | Literal["all"],
        approve: bool,
        comment: str | None,
    ) -> DecisionResult:
        for _ in range(MAX_ATTEMPTS):
            record = self._load(actor, request_id)
            if record.requester_id == actor.user_id:
                raise NotAllowed("You cannot approve or reject your own request.")
            if record.status == ServiceRequestStatus.CANCELLED:
                raise NotAllowed("This request was cancelled by the requester.")
            state = _state(record)
            if not any(actor.user_id in stage.approvers for stage in state.stages):
                moved = self._reassigned_away(actor, record)
                if moved is not None:
                    raise NotAllowed(moved)
            stage_id = _stage_for(state, actor.user_id)
            now = self._clock()
            try:
                outcome = decide(
                    state,
                    stage_id=stage_id,
                    approver_id=actor.user_id,
                    item_ids=items,
                    approve=approve,
                    comment=comment,
                    now=now,
                )
            except NotAnApprover as exc:
                raise NotAllowed(_not_allowed_message(exc)) from None
            except AlreadyDecided as exc:
                return DecisionResult(
                    request=_request(record),
                    changed=False,
                    outcome=None,
                    already=self._already(actor, record, exc),
                )
            status = ServiceRequestStatus(outcome.status.value)
            event = _event(
                record.id,
                actor,
                APPROVED if approve else REJECTED,
                now,
                items=outcome.decided,
                comment=outcome.state.decisions[-1].comment,
                detail={
                    "stage": outcome.stage_id,
                    "approved": list(outcome.approved),
                    "rejected": list(outcome.rejected),
                    "stage_completed": outcome.stage_completed,
                    "next_stage": outcome.next_stage.id if outcome.next_stage else None,
                    "status": status.value,
                },
            )
            stored = self._requests.save_decision(
                record.id,
                seen_version=record.version,
                state=json.dumps(outcome.state.to_dict()),
                status=status,
                now=now,
                approvers=_current_approvers(outcome.state) if outcome.stage_completed else None,
                event=event,
                fulfilment=_fulfilment_after(outcome.status, record.category_id),
                settle=_room_settlement(record, status, outcome.state.decisions[-1].comment),
            )
            if stored is not None:
                return DecisionResult(
                    request=_request(stored), changed=True, outcome=outcome, already=None
                )
            logger.info("service request %s changed while deciding; trying again", record.id)
        raise RequestBusy("Others are deciding this request right now. Please try again.")

    def _load(self, actor: Actor, request_id: str) -> ServiceRequestRecord:
        record = self._requests.get(request_id)
        if record is None or record.tenant_id != actor.tenant_id:
            raise RequestNotFound()
        return record

    def _already(
        self, actor: Actor, record: ServiceRequestRecord, exc: AlreadyDecided
    ) -> AlreadyDecidedBy:
        name = next(
            (
                event.actor_name
                for event in self._requests.events(record.id)
                if event.actor_id == exc.by and event.actor_name
            ),
            exc.by,
        )
        verdict = "approved" if exc.approved else "rejected"
        when = exc.at.astimezone(actor.time_zone).strftime("%d %b %Y %H:%M")
        return AlreadyDecidedBy(
            approver_id=exc.by,
            approver_name=name,
            at=exc.at,
            approved=exc.approved,
            message=f"This was already {verdict} by {name} at {when}.",
        )

    def _reassigned_away(self, actor: Actor, record: ServiceRequestRecord) -> str | None:
        """What an approver who was replaced by an admin is told (None: they never were)."""
        moved = next(
            (
                event
                for event in reversed(self._requests.events(record.id))
                if event.action == REASSIGNED
                and json.loads(event.detail).get("from") == actor.user_id
            ),
            None,
        )
        if moved is None:
            return None
        detail = json.loads(moved.detail)
        when = moved.at.astimezone(actor.time_zone).strftime("%d %b %Y %H:%M")
        return (
            f"{moved.actor_name or 'An admin'} gave your approval of this request to "
            f"{detail.get('to_name') or 'someone else'} at {when}. Nothing was changed."
        )

    # -- reassigning (admins) -------------------------------------------------------------------
    async def reassign(
        self,
        admin: Actor,
        request_id: str,
        *,
        stage_id: str,
        old_approver: str,
        new_approver: str,
        comment: str | None = None,
    ) -> Reassignment:
        """Give the current stage of a pending request `new_approver` instead of `old_approver`.

        The caller has checked that `admin` is an admin (bot.admin); the request must be of the
        admin's tenant (else RequestNotFound). `stage_id` is the stage the admin saw: when the
        request moved on meanwhile, or the old approver already decided at this stage, nothing
        changes (NotAllowed); a new approver who cannot take the place is an InputError. Written
        like a decision, on the version read: of a decision and a reassignment that race, the
        one that lands second is worked out again on the new state.
        """
        return await asyncio.to_thread(
            self._reassign, admin, request_id, stage_id, old_approver, new_approver, comment
        )

    def _reassign(
        self,
        admin: Actor,
        request_id: str,
        stage_id: str,
        old_approver: str,
        new_approver: str,
        comment: str | None,
    ) -> Reassignment:
        note = clean_comment(comment)
        for _ in range(MAX_ATTEMPTS):
            record = self._load(admin, request_id)
            if record.status != ServiceRequestStatus.PENDING:
                raise NotAllowed(
                    f"This request is {_status_text(record.status)} and no longer waits for "
                    "approval. Nothing was changed."
                )
            state = _state(record)
            stage = state.current_stage
            assert stage is not None  # a pending request has a current stage
            if stage.id != stage_id:
                raise NotAllowed(
                    f"This request moved on to {stage.name} since you looked. Nothing was "
                    "changed; look at it again."
                )
            names = self.names(record.tenant_id, [old_approver, new_approver])
            old_name = names.get(old_approver) or old_approver
            new_name = names.get(new_approver) or new_approver
            if old_approver not in stage.approvers:
                raise NotAllowed(
                    f"{old_name} is no longer an approver of {stage.name}. Nothing was changed."
                )
            if new_approver == record.requester_id:
                raise InputError("The requester cannot approve their own request.", field="to")
            if new_approver in stage.approvers:
                raise InputError(f"{new_name} already approves {stage.name}.", field="to")
            if any(
                d.stage_id == stage.id and d.approver_id == old_approver for d in state.decisions
            ):
                raise NotAllowed(
                    f"{old_name} has already decided at {stage.name}; that decision stands. "
                    "Nothing was changed."
                )
            approvers = tuple(new_approver if a == old_approver else a for a in stage.approvers)
            new_state = replace(
                state,
                stages=tuple(
                    replace(s, approvers=approvers) if s.id == stage.id else s for s in state.stages
                ),
            )
            now = self._clock()
            event = _event(
                record.id,
                admin,
                REASSIGNED,
                now,
                items=(),
                comment=note,
                detail={
                    "stage": stage.id,
                    "from": old_approver,
                    "to": new_approver,
                    "from_name": old_name,
                    "to_name": new_name,
                    "names": f"{stage.name} from {old_name} to {new_name}",
                },
            )
            # The same conditional write as a decision: status and version unchanged since read.
            stored = self._requests.save_decision(
                record.id,
                seen_version=record.version,
                state=json.dumps(new_state.to_dict()),
                status=ServiceRequestStatus.PENDING,
                now=now,
                approvers=_current_approvers(new_state),
                event=event,
            )
            if stored is not None:
                logger.info("service request %s: an approver of %s replaced", record.id, stage.id)
                return Reassignment(
                    request=_request(stored),
                    stage_name=stage.name,
                    old_name=old_name,
                    new_name=new_name,
                )
            logger.info("service request %s changed while reassigning; trying again", record.id)
        raise RequestBusy("Others are changing this request right now. Please try again.")

    def names(self, tenant_id: str, user_ids: Sequence[str]) -> dict[str, str]:
        """The names the bot last saw of these users, by user id (those it saw one for).
        Blocking: call it from a worker thread."""
        return _known_names(self._requests.profiles(tenant_id, sorted(set(user_ids))))

    # -- cancelling -----------------------------------------------------------------------------
    async def cancel(
        self, actor: Actor, request_id: str, comment: str | None = None
    ) -> ServiceRequest:
        """The requester withdraws a pending request; NotAllowed once it is decided."""
        return await asyncio.to_thread(self._cancel, actor, request_id, comment)

    def _cancel(self, actor: Actor, request_id: str, comment: str | None) -> ServiceRequest:
        note = clean_comment(comment)
        record = self._load(actor, request_id)
        if record.requester_id != actor.user_id:
            raise NotAllowed("Only the requester can cancel a request.")
        now = self._clock()
        event = _event(
            record.id, actor, CANCELLED, now, items=(), comment=note, detail={"status": CANCELLED}
        )
        stored = self._requests.cancel(
            record.id,
            tenant_id=actor.tenant_id,
            requester_id=actor.user_id,
            now=now,
            event=event,
            settle=_room_settlement(record, ServiceRequestStatus.CANCELLED, note),
        )
        if stored is None:
            current = self._load(actor, request_id)
            raise NotAllowed(
                f"This request is {_status_text(current.status)} and can no longer be cancelled."
            )
        return _request(stored)

    # -- fulfilling ------------------------------------------------------------------------------
    async def fulfil(
        self,
        actor: Actor,
        request_id: str,
        step: str,
        comment: str | None = None,
        *,
        in_channel: str | None = None,
    ) -> FulfilmentResult:
        """The fulfilment team moves an approved request on: start, done, or cannot (comment).

        Authority: the actor is one of the category's fulfilment users, or clicked in the
        category's fulfilment channel (`in_channel`, from the verified activity).
        """
        target = FULFIL_STEPS.get(step)
        if target is None:
            raise MalformedAction(f"unknown fulfilment step {step[:32]!r}")
        return await asyncio.to_thread(self._fulfil, actor, request_id, target, comment, in_channel)

    def _fulfil(
        self,
        actor: Actor,
        request_id: str,
        target: FulfilmentStatus,
        comment: str | None,
        in_channel: str | None,
    ) -> FulfilmentResult:
        note = clean_comment(comment)
        if target is FulfilmentStatus.CANNOT_DO and note is None:
            raise InputError("Say why it cannot be done, so the requester knows.", field="comment")
        for _ in range(MAX_ATTEMPTS):
            record = self._load(actor, request_id)
            if not self.is_fulfiller(actor.user_id, record.category_id, in_channel):
                raise NotAllowed("Only the fulfilment team can update this request.")
            current = FulfilmentStatus(record.fulfilment)
            if current is FulfilmentStatus.NONE:
                raise NotAllowed("This request is not approved for fulfilment.")
            if current is target or current not in _FULFIL_FROM[target]:
                return FulfilmentResult(
                    request=_request(record),
                    changed=False,
                    message=self._fulfilment_already(actor, record),
                )
            now = self._clock()
            event = _event(
                record.id,
                actor,
                _FULFIL_ACTIONS[target],
                now,
                items=(),
                comment=note,
                detail={"fulfilment": target.value},
            )
            stored = self._requests.save_fulfilment(
                record.id, seen_version=record.version, fulfilment=target, now=now, event=event
            )
            if stored is not None:
                return FulfilmentResult(request=_request(stored), changed=True, message="")
        raise RequestBusy("Others are updating this request right now. Please try again.")

    def _fulfilment_already(self, actor: Actor, record: ServiceRequestRecord) -> str:
        status = FulfilmentStatus(record.fulfilment)
        last = next(
            (
                event
                for event in reversed(self._requests.events(record.id))
                if event.action == _FULFIL_ACTIONS.get(status)
            ),
            None,
        )
        text = _FULFIL_TEXT[status]
        if last is None:
            return f"This request is {text}."
        when = last.at.astimezone(actor.time_zone).strftime("%d %b %Y %H:%M")
        return f"This request was already marked {text} by {last.actor_name} at {when}."

    def is_fulfiller(self, user_id: str, category_id: str, in_channel: str | None) -> bool:
        """Whether the user belongs to the category's fulfilment team (see `fulfil`)."""
        try:
            team = self._catalogue.category(category_id).fulfilment
        except KeyError:
            return False
        if isinstance(team, FulfilmentUsers):
            return user_id in team.user_ids
        return isinstance(team, FulfilmentChannel) and in_channel == team.channel_id

    # -- who sees what --------------------------------------------------------------------------
    async def viewable(
        self,
        actor: Actor,
        request_id: str,
        *,
        conversation_id: str | None,
        in_channel: str | None,
        known: ServiceRequest | None = None,
    ) -> tuple[ServiceRequest, Role]:
        """The request and the actor's role in it; NotFound for anyone with no part in it.

        A part is being its requester, an approver of any stage, on its fulfilment team, or
        looking at a copy of its card the bot posted in this conversation. `known` is the request
        as the caller just read or stored it (a decision's result): when the actor has a part in
        it that needs no lookup, it is not loaded again.
        """
        if known is not None and known.id == request_id and known.tenant_id == actor.tenant_id:
            role = self.role_of(actor.user_id, known, in_channel=in_channel)
            if role is not Role.VIEWER or _involved(actor.user_id, known):
                return known, role
        return await asyncio.to_thread(
            self._viewable, actor, request_id, conversation_id, in_channel
        )

    def _viewable(
        self,
        actor: Actor,
        request_id: str,
        conversation_id: str | None,
        in_channel: str | None,
    ) -> tuple[ServiceRequest, Role]:
        record = self._load(actor, request_id)
        request = _request(record)
        role = self.role_of(actor.user_id, request, in_channel=in_channel)
        if role is Role.VIEWER:
            involved = _involved(actor.user_id, request)
            posted_here = conversation_id is not None and any(
                card.conversation_id is not None
                and _thread_base(card.conversation_id) == _thread_base(conversation_id)
                for card in self._requests.cards(request.id)
            )
            if not involved and not posted_here:
                raise RequestNotFound()
        return request, role

    def role_of(
        self, user_id: str, request: ServiceRequest, *, in_channel: str | None = None
    ) -> Role:
        """The view a user gets: decided from the stored request, never from the card."""
        if request.pending and request.state.open_items(user_id):
            return Role.APPROVER
        if user_id == request.requester_id:
            return Role.REQUESTER
        if request.fulfilment in (FulfilmentStatus.WAITING, FulfilmentStatus.IN_PROGRESS):
            if self.is_fulfiller(user_id, request.category_id, in_channel):
                return Role.FULFILMENT
        return Role.VIEWER

    def category(self, category_id: str) -> ServiceCategory | None:
        if category_id == ROOM_BOOKING:
            return self.room_category
        try:
            return self._catalogue.category(category_id)
        except KeyError:
            return None

    def category_name(self, category_id: str) -> str:
        """The name cards show for a kind of request; its id once the catalogue lost it."""
        category = self.category(category_id)
        return category.name if category is not None else category_id

    def category_names(self) -> dict[str, str]:
        """Every kind of request's name by id: the catalogue's and the built-in room kind."""
        names = {category.id: category.name for category in self._catalogue.categories}
        names[ROOM_BOOKING] = self.room_category.name
        return names

    @staticmethod
    def booking_defaults(category: ServiceCategory, start: datetime) -> dict[str, str]:
        """A form opened from a booking starts with the booking's day and start time (`start`,
        in the user's zone) in its date and time fields; the user can change them."""
        defaults: dict[str, str] = {}
        for form_field in category.fields:
            if isinstance(form_field, DateField):
                defaults[form_field.id] = start.date().isoformat()
            elif isinstance(form_field, TimeField):
                defaults[form_field.id] = start.strftime("%H:%M")
        return defaults

    @property
    def catalogue(self) -> Catalogue:
        return self._catalogue

    def fallback_channel(self, policy_id: str) -> str | None:
        try:
            return self._policy(policy_id).fallback_channel or None
        except KeyError:
            return None

    def as_request(self, record: ServiceRequestRecord) -> ServiceRequest:
        """A stored request row as cards and notifications see it (no permission check)."""
        return _request(record)

    async def get(self, request_id: str) -> ServiceRequest | None:
        """The stored request (no permission check: for notifications, which make their own)."""
        record = await asyncio.to_thread(self._requests.get, request_id)
        return None if record is None else _request(record)

    async def record_notice(
        self,
        request: ServiceRequest,
        *,
        action: str,
        detail: Mapping[str, Any],
        comment: str | None = None,
    ) -> None:
        """An audit event the bot itself writes (a notification sent, an approver unreachable)."""
        event = AuditEvent(
            request_id=request.id,
            at=self._clock(),
            actor_id="frontdesk",
            actor_name="Frontdesk",
            action=action,
            item_ids="[]",
            comment=comment,
            detail=json.dumps(dict(detail)),
        )
        await asyncio.to_thread(self._requests.add_event, event)

    # -- reading --------------------------------------------------------------------------------
    async def my_requests(self, actor: Actor) -> list[ServiceRequest]:
        """The actor's own requests, newest first."""
        records = await asyncio.to_thread(
            self._requests.by_requester, actor.tenant_id, actor.user_id
        )
        return [_request(record) for record in records[:MY_REQUESTS_LIMIT]]

    async def waiting_for(self, actor: Actor) -> list[ServiceRequest]:
        """Pending requests with items the actor can decide now, oldest first."""
        records = await asyncio.to_thread(
            self._requests.waiting_for, actor.tenant_id, actor.user_id
        )
        requests = [_request(record) for record in records]
        return [r for r in requests if r.state.open_items(actor.user_id)]

    async def card_facts(
        self, request: ServiceRequest, users: Sequence[str], chats_of: Sequence[str] = ()
    ) -> RequestCardFacts:
        """What the request's cards show besides the request, in one read: its history, these
        users' names and time zones, its booking and the personal chats of `chats_of` (no
        permission check: callers make it)."""
        facts = await asyncio.to_thread(
            self._requests.card_facts,
            request.id,
            request.tenant_id,
            sorted(set(users)),
            request.booking_id,
            list(dict.fromkeys(chats_of)),
        )
        return RequestCardFacts(
            history=[_entry(event) for event in facts.events],
            names=_known_names(facts.profiles),
            zones={
                user: profile.time_zone
                for user, profile in facts.profiles.items()
                if profile.time_zone
            },
            booking=facts.booking,
            chats=facts.chats,
        )

    async def export_audit_csv(
        self, out: TextIO, *, tenant_id: str | None = None, since: datetime | None = None
    ) -> int:
        """Write the audit trail as CSV (one row per event, oldest first); returns the rows."""
        events = await asyncio.to_thread(
            self._requests.all_events, tenant_id=tenant_id, since=since
        )
        writer = csv.writer(out)
        writer.writerow(CSV_HEADER)
        for event in events:
            entry = _entry(event)
            writer.writerow(
                [
                    entry.at.isoformat(),
                    entry.request_id,
                    _cell(entry.actor_id),
                    _cell(entry.actor_name),
                    entry.action,
                    _cell(" ".join(entry.item_ids)),
                    _cell(entry.comment or ""),
                ]
            )
        return len(events)


# --- Helpers ------------------------------------------------------------------------------------


_FULFIL_ACTIONS: dict[FulfilmentStatus, str] = {
    FulfilmentStatus.IN_PROGRESS: "started",
    FulfilmentStatus.DONE: "done",
    FulfilmentStatus.CANNOT_DO: "cannot_do",
}
_FULFIL_TEXT: dict[FulfilmentStatus, str] = {
    FulfilmentStatus.NONE: "not approved for fulfilment",
    FulfilmentStatus.WAITING: "waiting for the fulfilment team",
    FulfilmentStatus.IN_PROGRESS: "in progress",
    FulfilmentStatus.DONE: "done",
    FulfilmentStatus.CANNOT_DO: "as cannot be done",
}


def request_number(request_id: str) -> str:
    """A request's number, as people see it: its id's first 8 characters."""
    return request_id[:8]


def _involved(user_id: str, request: ServiceRequest) -> bool:
    """Whether the user is an approver of any of the request's stages."""
    return any(user_id in stage.approvers for stage in request.state.stages)


def _known_names(profiles: Mapping[str, UserProfile]) -> dict[str, str]:
    return {user: profile.name for user, profile in profiles.items() if profile.name}


def _thread_base(conversation_id: str) -> str:
    """A channel conversation without its thread (`19:...;messageid=...` -> `19:...`)."""
    return conversation_id.split(";", 1)[0]


def _fulfilment_after(status: RequestStatus, category_id: str) -> FulfilmentStatus:
    """Approved items go to the fulfilment team once the approval is finished (a held room
    has nothing to fulfil: the approval confirms the booking)."""
    if category_id == ROOM_BOOKING:
        return FulfilmentStatus.NONE
    if status in (RequestStatus.APPROVED, RequestStatus.PARTIALLY_APPROVED):
        return FulfilmentStatus.WAITING
    return FulfilmentStatus.NONE


def _room_settlement(
    record: ServiceRequestRecord, status: ServiceRequestStatus, comment: str | None
) -> RoomSettlement | None:
    """What a final answer on a held room does to its booking, in the same transaction."""
    if record.category_id != ROOM_BOOKING or record.booking_id is None:
        return None
    if status == ServiceRequestStatus.APPROVED:
        return RoomSettlement(record.booking_id, BookingApproval.APPROVED, None)
    if status == ServiceRequestStatus.REJECTED:
        why = "The room's owners did not approve it." + (f" {comment}" if comment else "")
        return RoomSettlement(record.booking_id, BookingApproval.REJECTED, why[:500])
    if status == ServiceRequestStatus.CANCELLED:
        why = comment or "The approval request was withdrawn."
        return RoomSettlement(record.booking_id, BookingApproval.REJECTED, why[:500])
    return None


def _stage_for(state: ApprovalState, approver_id: str) -> str:
    """The stage to decide at: the current one if the approver is in it, else theirs nearest it.

    An earlier stage of theirs makes `decide` say who settled it; a later one, that it has not
    started; none at all is refused here.
    """
    listing = [i for i, stage in enumerate(state.stages) if approver_id in stage.approvers]
    if not listing:
        raise NotAllowed("You are not an approver of this request.")
    current = state.current_stage
    index = len(state.stages) if current is None else state.stages.index(current)
    if index in listing:
        return state.stages[index].id
    earlier = [i for i in listing if i < index]
    return state.stages[earlier[-1] if earlier else listing[0]].id


def _not_allowed_message(exc: NotAnApprover) -> str:
    if "not started" in exc.reason:
        return "This request has not reached your approval stage yet."
    return "You are not an approver of this request at its current stage."


def _status_text(status: str) -> str:
    return status.replace("_", " ")


def _current_approvers(state: ApprovalState) -> list[tuple[str, str]]:
    stage = state.current_stage
    return [] if stage is None else [(stage.id, approver) for approver in stage.approvers]


def _state(record: ServiceRequestRecord) -> ApprovalState:
    return ApprovalState.from_dict(json.loads(record.state))


def _item_json(item: RequestItem) -> dict[str, str]:
    return {
        "id": item.id,
        "description": item.description,
        "quantity": str(item.quantity),
        "unit_price": str(item.unit_price),
    }


def _detail_json(detail: RequestDetail) -> dict[str, str]:
    return {"field_id": detail.field_id, "label": detail.label, "value": detail.value}


def _request(record: ServiceRequestRecord) -> ServiceRequest:
    return ServiceRequest(
        id=record.id,
        tenant_id=record.tenant_id,
        requester_id=record.requester_id,
        requester_name=record.requester_name,
        category_id=record.category_id,
        policy_id=record.policy_id,
        booking_id=record.booking_id,
        items=tuple(
            RequestItem(
                item["id"],
                item["description"],
                Decimal(item["quantity"]),
                Decimal(item["unit_price"]),
            )
            for item in json.loads(record.items)
        ),
        details=tuple(
            RequestDetail(d["field_id"], d["label"], d["value"]) for d in json.loads(record.details)
        ),
        total=Decimal(record.total),
        currency=record.currency,
        status=ServiceRequestStatus(record.status),
        state=_state(record),
        version=record.version,
        created_at=record.created_at,
        updated_at=record.updated_at,
        fulfilment=FulfilmentStatus(record.fulfilment or ""),
    )


def _event(
    request_id: str,
    actor: Actor,
    action: str,
    at: datetime,
    *,
    items: Sequence[str],
    comment: str | None,
    detail: Mapping[str, Any],
) -> AuditEvent:
    return AuditEvent(
        request_id=request_id,
        at=at,
        actor_id=actor.user_id,
        actor_name=actor.name,
        action=action,
        item_ids=json.dumps(list(items)),
        comment=comment,
        detail=json.dumps(dict(detail)),
    )


def _entry(event: AuditEvent) -> AuditEntry:
    return AuditEntry(
        at=event.at,
        request_id=event.request_id,
        actor_id=event.actor_id,
        actor_name=event.actor_name,
        action=event.action,
        item_ids=tuple(json.loads(event.item_ids)),
        comment=event.comment,
        detail=json.loads(event.detail),
    )


def _cell(text: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text
