"""Every service request card, built from the demo catalogue and real approval states."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from bot.approvals.catalogue import load_catalogue, parse_request_form
from bot.approvals.policy import PlannedStage, StageMode, load_policies
from bot.approvals.service import AuditEntry, Role, ServiceRequest
from bot.approvals.state import ApprovalState, decide
from bot.config import DEFAULT_CATALOGUE_FILE, DEFAULT_POLICIES_FILE
from bot.storage.tables import FulfilmentStatus, ServiceRequestStatus
from cards.requests import (
    BookingChoice,
    RequestContext,
    approvals_card,
    categories_card,
    my_requests_card,
    request_card,
    request_form_card,
    update_card,
)

ZONE = ZoneInfo("Europe/Berlin")
AT = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
REQUEST_ID = "cccccccc-dddd-4eee-8fff-000000000001"
SUBMISSION = "cccccccc-dddd-4eee-8fff-000000000002"
BOOKING = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
REQUESTER = "00000000-0000-0000-0000-000000000100"
MANAGER = "00000000-0000-0000-0000-000000000101"
FINANCE = ("00000000-0000-0000-0000-000000000102", "00000000-0000-0000-0000-000000000103")
NAMES = {
    REQUESTER: "Ada Lovelace",
    MANAGER: "Grace Hopper",
    FINANCE[0]: "Katherine Johnson",
    FINANCE[1]: "Dorothy Vaughan",
}
BOOKINGS = [BookingChoice(BOOKING, "Quarterly review · Compass, Mon 23 Nov 2026, 10:00–11:00")]

CATALOGUE = load_catalogue(DEFAULT_CATALOGUE_FILE, load_policies(DEFAULT_POLICIES_FILE))
CATERING = CATALOGUE.category("catering")
FORM = parse_request_form(
    CATERING,
    {
        "people": "12",
        "lunch": "sandwiches",
        "drinks": "coffee-tea,water",
        "pastries": "2",
        "serve-at": "12:30",
        "dietary": "Two vegetarians",
    },
)
STAGES = (
    PlannedStage("manager", "Line manager", StageMode.ANY, (MANAGER,)),
    PlannedStage("finance", "Finance", StageMode.ALL, FINANCE),
)


def make_request(state: ApprovalState, **changes: Any) -> ServiceRequest:
    request = ServiceRequest(
        id=REQUEST_ID,
        tenant_id="tenant",
        requester_id=REQUESTER,
        requester_name="Ada Lovelace",
        category_id="catering",
        policy_id="standard",
        booking_id=BOOKING,
        items=FORM.items,
        details=FORM.details,
        total=FORM.total,
        currency="EUR",
        status=ServiceRequestStatus(state.status.value),
        state=state,
        version=1,
        created_at=AT,
        updated_at=AT,
    )
    return replace(request, **changes)


def _entry(minutes: int, actor: str, action: str, **more: Any) -> AuditEntry:
    return AuditEntry(
        at=AT + timedelta(minutes=minutes),
        request_id=REQUEST_ID,
        actor_id=actor,
        actor_name=NAMES.get(actor, "Frontdesk"),
        action=action,
        item_ids=more.pop("items", ()),
        comment=more.pop("comment", None),
        detail=more,
    )


def request_cards() -> dict[str, dict[str, Any]]:
    start = ApprovalState.start(STAGES, FORM.items)
    first_item = FORM.items[0].id
    after_manager = decide(
        start,
        stage_id="manager",
        approver_id=MANAGER,
        item_ids="all",
        approve=True,
        now=AT + timedelta(minutes=5),
    ).state
    finished = decide(
        decide(
            after_manager,
            stage_id="finance",
            approver_id=FINANCE[0],
            item_ids=[first_item],
            approve=False,
            comment="Sandwiches come from the canteen budget.",
            now=AT + timedelta(minutes=9),
        ).state,
        stage_id="finance",
        approver_id=FINANCE[1],
        item_ids="all",
        approve=True,
        now=AT + timedelta(minutes=12),
    ).state
    for approver in FINANCE:
        if finished.open_items(approver):
            finished = decide(
                finished,
                stage_id="finance",
                approver_id=approver,
                item_ids="all",
                approve=True,
                now=AT + timedelta(minutes=14),
            ).state
    history = [
        _entry(0, REQUESTER, "submitted", items=start.item_ids),
        _entry(1, "frontdesk", "notified", audience="approvers", names="Grace Hopper"),
        _entry(5, MANAGER, "approved", items=start.item_ids),
        _entry(
            6,
            "frontdesk",
            "notified",
            audience="approvers",
            names="Katherine Johnson, Dorothy Vaughan",
            fallback="19:abc@thread.tacv2",
        ),
    ]
    context = RequestContext(
        category_name="Catering",
        names=NAMES,
        history=history,
        booking_text="Compass, Mon 23 Nov 2026, 10:00–11:00",
    )
    pending = make_request(after_manager)
    done = make_request(finished, fulfilment=FulfilmentStatus.WAITING)
    single = make_request(
        ApprovalState.start(STAGES[:1], FORM.items[:1]), items=FORM.items[:1], booking_id=None
    )
    refresh = ["29:ada", "29:katherine", "29:dorothy"]
    return {
        "request_categories": categories_card(CATALOGUE.categories),
        "request_categories_for_booking": categories_card(CATALOGUE.categories, booking_id=BOOKING),
        "request_form": request_form_card(
            CATERING, submission_id=SUBMISSION, bookings=BOOKINGS, booking_id=BOOKING
        ),
        "request_form_error": request_form_card(
            CATERING,
            submission_id=SUBMISSION,
            bookings=BOOKINGS,
            values={"people": "500", "dietary": "Vegan"},
            error="Number of people: at most 120.",
        ),
        "request_form_needs_booking": request_form_card(
            CATERING, submission_id=SUBMISSION, bookings=[]
        ),
        "request_form_it": request_form_card(
            CATALOGUE.category("it"), submission_id=SUBMISSION, bookings=[]
        ),
        "request_form_av": request_form_card(
            CATALOGUE.category("av-support"), submission_id=SUBMISSION, bookings=BOOKINGS
        ),
        "request_approver": request_card(
            pending,
            Role.APPROVER,
            context,
            viewer_id=FINANCE[0],
            time_zone=ZONE,
            refresh_user_ids=refresh,
        ),
        "request_approver_single_item": request_card(
            single,
            Role.APPROVER,
            replace(context, history=(), booking_text=None),
            viewer_id=MANAGER,
            time_zone=ZONE,
        ),
        "request_requester_pending": request_card(
            pending,
            Role.REQUESTER,
            context,
            viewer_id=REQUESTER,
            time_zone=ZONE,
            message="Sent. It now waits for Line manager; you will hear back here.",
            refresh_user_ids=refresh,
        ),
        "request_already_decided": request_card(
            pending,
            Role.VIEWER,
            context,
            viewer_id=MANAGER,
            time_zone=ZONE,
            message="This was already approved by Grace Hopper at 23 Nov 2026 09:35.",
            tone="attention",
        ),
        "request_requester_partly_approved": request_card(
            done, Role.REQUESTER, context, viewer_id=REQUESTER, time_zone=ZONE
        ),
        "request_fulfilment_waiting": request_card(
            done, Role.FULFILMENT, context, viewer_id="", time_zone=ZONE
        ),
        "request_fulfilment_in_progress": request_card(
            replace(done, fulfilment=FulfilmentStatus.IN_PROGRESS),
            Role.FULFILMENT,
            context,
            viewer_id="",
            time_zone=ZONE,
        ),
        "request_cancelled": request_card(
            replace(pending, status=ServiceRequestStatus.CANCELLED),
            Role.VIEWER,
            context,
            viewer_id=MANAGER,
            time_zone=ZONE,
        ),
        "my_requests": my_requests_card(
            [pending, done, replace(single, total=Decimal(0))],
            {c.id: c.name for c in CATALOGUE.categories},
            time_zone=ZONE,
        ),
        "my_requests_empty": my_requests_card([], {}, time_zone=ZONE),
        "approvals": approvals_card(
            [pending], {"catering": "Catering"}, viewer_id=FINANCE[0], time_zone=ZONE
        ),
        "approvals_empty": approvals_card(
            [], {}, viewer_id=FINANCE[0], time_zone=ZONE, message="Your decision is recorded."
        ),
        "request_update": update_card(
            done,
            title="Request partly approved",
            text="Some items were approved and some rejected; open it to see which.",
            category_name="Catering",
        ),
    }
