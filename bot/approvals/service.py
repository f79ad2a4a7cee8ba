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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, TextIO

from bot.approvals.catalogue import (
    BookingLink,
    Catalogue,
    FulfilmentChannel,
    FulfilmentUsers,
    ServiceCategory,
    parse_request_form,
)
from bot.approvals.errors import AlreadyDecided, FormError, NotAnApprover
from bot.approvals.models import RequestDetail, RequestItem
from bot.approvals.policy import ApproverResolver, PolicyBook, RequestFacts, plan_stages
from bot.approvals.state import ApprovalState, Outcome, RequestStatus, decide
from bot.errors import FrontdeskError, InputError, MalformedAction, NotAllowed, NotFound
from bot.models import Actor
from bot.storage.service_requests import ServiceRequestRepository
from bot.storage.tables import (
    AuditEvent,
    FulfilmentStatus,
    ServiceRequestRecord,
    ServiceRequestStatus,
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

_NOT_FOUND = "That request was not found."


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
class AuditEntry:
    at: datetime
    request_id: str
    actor_id: str
    actor_name: str
    action: str
    item_ids: tuple[str, ...]
    comment: str | None
    detail: Mapping[str, Any]


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
    ) -> None:
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
        return await asyncio.to_thread(
            self._submit, actor, category_id, dict(inputs), booking_id, submission_id
        )

    def _submit(
        self,
        actor: Actor,
        category_id: str,
        inputs: dict[str, Any],
        booking_id: str | None,
        submission_id: str,
    ) -> ServiceRequest:
        existing = self._requests.by_submission(submission_id)
        if existing is not None:
            return self._own_submission(existing, actor)
        try:
            category = self._catalogue.category(category_id)
        except KeyError:
            raise NotFound("That service is not in the catalogue.") from None
        form = parse_request_form(category, inputs)
        if booking_id is None and category.booking is BookingLink.REQUIRED:
            raise FormError("booking", f"{category.name} needs one of your room bookings.")
        if category.booking is BookingLink.NONE:
            booking_id = None
        room_id = self._booked_room(actor, booking_id)
        facts = RequestFacts(actor.user_id, category.id, form.items, room_id)
        stages = plan_stages(
            self._policies.policy(category.policy_id), facts, self._resolver_for(actor)
        )
        state = ApprovalState.start(stages, form.items)
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
            details=json.dumps([_detail_json(d) for d in form.details]),
            items=json.dumps([_item_json(i) for i in form.items]),
            total=str(form.total),
            currency=form.currency,
            status=ServiceRequestStatus(state.status.value),
            state=json.dumps(state.to_dict()),
            fulfilment=_fulfilment_after(state.status),
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
            saved = self._requests.save_decision(
                record.id,
                seen_version=record.version,
                state=json.dumps(outcome.state.to_dict()),
                status=status,
                now=now,
                approvers=_current_approvers(outcome.state) if outcome.stage_completed else None,
                event=event,
                fulfilment=_fulfilment_after(outcome.status),
            )
            if saved:
                fresh = self._requests.get(record.id)
                assert fresh is not None
                return DecisionResult(
                    request=_request(fresh), changed=True, outcome=outcome, already=None
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

    # -- cancelling -----------------------------------------------------------------------------
    async def cancel(
        self, actor: Actor, request_id: str, comment: str | None = None
    ) -> ServiceRequest:
        """The requester withdraws a pending request; NotAllowed once it is decided."""
        return await asyncio.to_thread(self._cancel, actor, request_id, comment)

    def _cancel(self, actor: Actor, request_id: str, comment: str | None) -> ServiceRequest:
        record = self._load(actor, request_id)
        if record.requester_id != actor.user_id:
            raise NotAllowed("Only the requester can cancel a request.")
        now = self._clock()
        note = (comment or "").strip() or None
        event = _event(
            record.id, actor, CANCELLED, now, items=(), comment=note, detail={"status": CANCELLED}
        )
        if not self._requests.cancel(
            record.id,
            tenant_id=actor.tenant_id,
            requester_id=actor.user_id,
            now=now,
            event=event,
        ):
            current = self._load(actor, request_id)
            raise NotAllowed(
                f"This request is {_status_text(current.status)} and can no longer be cancelled."
            )
        fresh = self._requests.get(record.id)
        assert fresh is not None
        return _request(fresh)

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
        note = (comment or "").strip() or None
        if note is not None and len(note) > 1000:
            raise InputError("The comment can be at most 1000 characters long.", field="comment")
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
            if self._requests.save_fulfilment(
                record.id, seen_version=record.version, fulfilment=target, now=now, event=event
            ):
                fresh = self._requests.get(record.id)
                assert fresh is not None
                return FulfilmentResult(request=_request(fresh), changed=True, message="")
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
        self, actor: Actor, request_id: str, *, conversation_id: str | None, in_channel: str | None
    ) -> tuple[ServiceRequest, Role]:
        """The request and the actor's role in it; NotFound for anyone with no part in it.

        A part is being its requester, an approver of any stage, on its fulfilment team, or
        looking at a copy of its card the bot posted in this conversation.
        """
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
            involved = any(actor.user_id in stage.approvers for stage in request.state.stages)
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
        try:
            return self._catalogue.category(category_id)
        except KeyError:
            return None

    @property
    def catalogue(self) -> Catalogue:
        return self._catalogue

    def fallback_channel(self, policy_id: str) -> str | None:
        try:
            return self._policies.policy(policy_id).fallback_channel or None
        except KeyError:
            return None

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

    async def history(self, request_id: str) -> list[AuditEntry]:
        """The request's audit events, oldest first (no permission check: callers make it)."""
        events = await asyncio.to_thread(self._requests.events, request_id)
        return [_entry(event) for event in events]

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


def _thread_base(conversation_id: str) -> str:
    """A channel conversation without its thread (`19:...;messageid=...` -> `19:...`)."""
    return conversation_id.split(";", 1)[0]


def _fulfilment_after(status: RequestStatus) -> FulfilmentStatus:
    """Approved items go to the fulfilment team once the approval is finished."""
    if status in (RequestStatus.APPROVED, RequestStatus.PARTIALLY_APPROVED):
        return FulfilmentStatus.WAITING
    return FulfilmentStatus.NONE


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
