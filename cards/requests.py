"""Service request cards: categories, the form, the request as each role sees it, and lists.

One request card serves everyone: `role` (worked out from the database by the service) picks
the buttons. Approvers get Approve / Reject per item and for all, the requester gets Cancel while
pending, the fulfilment team gets Start / Done / Can't do, anyone else sees it read-only. Cards
carry ids only; what a click may do is decided again from the database when it arrives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from microsoft_teams.cards import (
    CardElement,
    Choice,
    ChoiceSetInput,
    Container,
    DateInput,
    Fact,
    FactSet,
    NumberInput,
    TextBlock,
    TextInput,
    TimeInput,
    ToggleInput,
)

from bot.approvals.catalogue import (
    BookingLink,
    ChoiceField,
    DateField,
    FormField,
    NumberField,
    ServiceCategory,
    TextField,
    TimeField,
    ToggleField,
)
from bot.approvals.models import WHOLE_REQUEST_ITEM_ID
from bot.approvals.policy import StageMode
from bot.approvals.service import ROOM_BOOKING, AuditEntry, Role, ServiceRequest
from bot.approvals.state import MAX_COMMENT, ItemOutcome
from bot.commands import Verb
from bot.storage.tables import FulfilmentStatus, ServiceRequestStatus
from cards.common import (
    Card,
    action,
    auto_refresh,
    buttons,
    format_day,
    format_span,
    heading,
    notice,
    render,
)

# Form inputs are named `field.<id>` so no catalogue field can collide with the card's own data.
FIELD_PREFIX = "field."
HISTORY_SHOWN = 12

STATUS_TEXT: dict[ServiceRequestStatus, str] = {
    ServiceRequestStatus.PENDING: "Waiting for approval",
    ServiceRequestStatus.APPROVED: "Approved",
    ServiceRequestStatus.PARTIALLY_APPROVED: "Partly approved",
    ServiceRequestStatus.REJECTED: "Rejected",
    ServiceRequestStatus.CANCELLED: "Cancelled",
}
FULFILMENT_TEXT: dict[FulfilmentStatus, str] = {
    FulfilmentStatus.NONE: "",
    FulfilmentStatus.WAITING: "waiting for the fulfilment team",
    FulfilmentStatus.IN_PROGRESS: "in progress",
    FulfilmentStatus.DONE: "done",
    FulfilmentStatus.CANNOT_DO: "cannot be done",
}
_OUTCOME_TEXT = {
    ItemOutcome.PENDING: "pending",
    ItemOutcome.APPROVED: "approved",
    ItemOutcome.REJECTED: "rejected",
}
_ACTION_TEXT = {
    "submitted": "submitted the request",
    "approved": "approved",
    "rejected": "rejected",
    "cancelled": "cancelled the request",
    "started": "started work",
    "done": "marked it done",
    "cannot_do": "said it cannot be done",
    "notified": "notified",
    "unreachable": "could not reach",
    "emailed": "emailed the approval to",
    "reassigned": "reassigned",
}


@dataclass(frozen=True)
class BookingChoice:
    """One of the requester's bookings a request can be linked to."""

    id: str
    title: str


@dataclass(frozen=True)
class RequestContext:
    """What a request card shows besides the request: names, the category and its history."""

    category_name: str
    names: Mapping[str, str]
    history: Sequence[AuditEntry]
    booking_text: str | None = None

    def name(self, user_id: str) -> str:
        return self.names.get(user_id) or "a colleague"


def money(amount: Decimal, currency: str) -> str:
    return f"{currency} {amount:,.2f}"


# --- Choosing a category and filling in its form -------------------------------------------------


def categories_card(
    categories: Sequence[ServiceCategory], *, booking_id: str | None = None
) -> Card:
    """Every service in the catalogue with a button to its form."""
    body: list[CardElement] = [*heading("Ask for a service", "What do you need?")]
    for category in categories:
        data: dict[str, Any] = {"category": category.id}
        if booking_id is not None and category.booking is not BookingLink.NONE:
            data["booking"] = booking_id
        body.append(
            Container(
                separator=True,
                items=[
                    TextBlock(text=category.name, weight="Bolder", wrap=True),
                    TextBlock(text=category.description, wrap=True, is_subtle=True),
                    buttons(
                        action(f"Ask for {_in_sentence(category.name)}", Verb.REQUEST_FORM, data)
                    ),
                ],
            )
        )
    return render(
        body,
        actions=[action("My requests", Verb.REQUEST_LIST)],
        fallback_text="Ask for a service: this card needs a client that shows Adaptive Cards.",
    )


def request_form_card(
    category: ServiceCategory,
    *,
    submission_id: str,
    bookings: Sequence[BookingChoice],
    values: Mapping[str, Any] | None = None,
    booking_id: str | None = None,
    error: str | None = None,
) -> Card:
    """The category's form, with the inputs kept and a message when it comes back with one."""
    values = values or {}
    body: list[CardElement] = [*heading(category.name, category.description)]
    if error:
        body.append(notice(error))
    if category.booking is not BookingLink.NONE:
        if bookings:
            required = category.booking is BookingLink.REQUIRED
            body.append(
                ChoiceSetInput(
                    id="booking",
                    label="For your booking" if required else "For your booking (optional)",
                    value=booking_id if booking_id in {b.id for b in bookings} else None,
                    choices=[Choice(title=b.title, value=b.id) for b in bookings],
                    style="compact",
                    placeholder="Pick one of your bookings",
                    is_required=required,
                    error_message="Pick the booking this is for." if required else None,
                )
            )
        elif category.booking is BookingLink.REQUIRED:
            body.append(
                notice(
                    f"{category.name} is delivered to a booked room. Book a room first, then "
                    "ask from its confirmation.",
                    tone="warning",
                )
            )
            return render(
                body,
                actions=[action("Book a room", Verb.BOOKING_START)],
                fallback_text=f"{category.name}: book a room first.",
            )
    body += [_form_input(field, values.get(field.id)) for field in category.fields]
    return render(
        body,
        actions=[
            action(
                "Send request",
                Verb.REQUEST_SUBMIT,
                {"category": category.id, "submission": submission_id},
                style="positive",
            ),
            action("Other services", Verb.REQUEST_START),
        ],
        fallback_text=f"{category.name}: this card needs a client that shows Adaptive Cards.",
    )


def _form_input(field: FormField, value: Any) -> CardElement:
    input_id = FIELD_PREFIX + field.id
    label = field.label if field.required else f"{field.label} (optional)"
    error = f"{field.label}: this is required." if field.required else None
    text_value = value if isinstance(value, str) and value else None
    match field:
        case TextField():
            return TextInput(
                id=input_id,
                label=label,
                value=text_value,
                placeholder=field.help,
                is_multiline=field.multiline,
                max_length=field.max_length,
                is_required=field.required,
                error_message=error,
            )
        case NumberField():
            price = (
                f" ({money(field.unit_price, '').strip()} each)"
                if field.unit_price is not None and field.unit_price > 0
                else ""
            )
            return NumberInput(
                id=input_id,
                label=label + price,
                value=_number(value),
                min=float(field.min) if field.min is not None else None,
                max=float(field.max) if field.max is not None else None,
                placeholder=field.help,
                is_required=field.required,
                error_message=error,
            )
        case ChoiceField():
            return ChoiceSetInput(
                id=input_id,
                label=label,
                value=text_value,
                is_multi_select=field.multiple,
                style="expanded" if field.multiple else "compact",
                placeholder=None if field.multiple else (field.help or "Choose"),
                choices=[
                    Choice(
                        title=choice.title
                        if not choice.unit_price
                        else f"{choice.title} ({choice.unit_price:,.2f})",
                        value=choice.id,
                    )
                    for choice in field.choices
                ],
                is_required=field.required,
                error_message=error,
            )
        case DateField() | TimeField():
            picker = DateInput if isinstance(field, DateField) else TimeInput
            return picker(
                id=input_id,
                label=label,
                value=text_value,
                is_required=field.required,
                error_message=error,
            )
        case ToggleField():
            return ToggleInput(
                id=input_id,
                title=field.help or field.label,
                label=label,
                value="true" if value in (True, "true") else "false",
                value_on="true",
                value_off="false",
                is_required=field.required,
                error_message=error,
            )
    raise TypeError(f"no input for {field!r}")


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def form_inputs(data: Mapping[str, Any]) -> dict[str, Any]:
    """The form's answers by field id, from a click's data."""
    return {
        key.removeprefix(FIELD_PREFIX): value
        for key, value in data.items()
        if isinstance(key, str) and key.startswith(FIELD_PREFIX)
    }


# --- The request ----------------------------------------------------------------------------------


def request_card(
    request: ServiceRequest,
    role: Role,
    context: RequestContext,
    *,
    viewer_id: str,
    time_zone: ZoneInfo,
    message: str | None = None,
    tone: str = "good",
    refresh_user_ids: Sequence[str] = (),
) -> Card:
    """The request as `role` sees it; `refresh_user_ids` get their own view when they look."""
    state = request.state
    outcomes = state.item_outcomes()
    open_items = set(state.open_items(viewer_id)) if role is Role.APPROVER else set()
    created = request.created_at.astimezone(time_zone)
    requester = request.requester_name or context.name(request.requester_id)
    subtitle = f"From {requester}, {format_day(created, time_zone)} {created:%H:%M}"
    body: list[CardElement] = [*heading(f"{context.category_name} request", subtitle)]
    if message:
        body.append(notice(message, tone=tone))
    facts = [Fact(title="Status", value=status_line(request))]
    stage = state.current_stage if request.pending else None
    if stage is not None:
        who = ", ".join(context.name(user) for user in stage.approvers)
        mode = "all must approve" if stage.mode is StageMode.ALL else "any one approves"
        facts.append(Fact(title="Waiting for", value=f"{stage.name}: {who} ({mode})"))
    facts.append(Fact(title="Total", value=money(request.total, request.currency)))
    if context.booking_text:
        facts.append(Fact(title="Booking", value=context.booking_text))
    facts.append(Fact(title="Request", value=request.number))
    body.append(FactSet(facts=facts))

    body.append(TextBlock(text="Items", weight="Bolder", spacing="Medium"))
    for item in request.items:
        line = (
            item.description
            if item.id == WHOLE_REQUEST_ITEM_ID
            else f"{item.description}: {_quantity(item.quantity)} × "
            f"{item.unit_price:,.2f} = {money(item.total, request.currency)}"
        )
        outcome = outcomes.get(item.id, ItemOutcome.PENDING)
        if request.status == ServiceRequestStatus.CANCELLED:
            verdict = "cancelled"
        else:
            verdict = _OUTCOME_TEXT[outcome]
        elements: list[CardElement] = [
            TextBlock(text=f"{line} — **{verdict}**", wrap=True, spacing="Small")
        ]
        if item.id in open_items and len(request.items) > 1:
            elements.append(
                buttons(
                    action(
                        "Approve",
                        Verb.REQUEST_DECIDE,
                        {"request": request.id, "decision": "approve", "item": item.id},
                    ),
                    action(
                        "Reject",
                        Verb.REQUEST_DECIDE,
                        {"request": request.id, "decision": "reject", "item": item.id},
                    ),
                )
            )
        body.append(Container(items=elements, spacing="Small"))

    if request.details:
        body.append(TextBlock(text="Details", weight="Bolder", spacing="Medium"))
        body.append(
            FactSet(
                facts=[Fact(title=detail.label, value=detail.value) for detail in request.details]
            )
        )

    if context.history:
        body.append(TextBlock(text="History", weight="Bolder", spacing="Medium"))
        shown = list(context.history)[-HISTORY_SHOWN:]
        for entry in shown:
            body.append(
                TextBlock(
                    text=history_line(entry, request, time_zone),
                    wrap=True,
                    size="Small",
                    is_subtle=True,
                    spacing="None",
                )
            )

    actions = []
    if role is Role.APPROVER:
        body.append(_comment_input("Comment for the requester (optional)"))
        actions = [
            action(
                "Approve all" if len(open_items) > 1 else "Approve",
                Verb.REQUEST_DECIDE,
                {"request": request.id, "decision": "approve", "item": "all"},
                style="positive",
            ),
            action(
                "Reject all" if len(open_items) > 1 else "Reject",
                Verb.REQUEST_DECIDE,
                {"request": request.id, "decision": "reject", "item": "all"},
                style="destructive",
            ),
        ]
    elif role is Role.REQUESTER and request.pending:
        body.append(_comment_input("Why you cancel (optional)"))
        actions = [
            action("Cancel request", Verb.REQUEST_CANCEL, {"request": request.id}),
            action("My requests", Verb.REQUEST_LIST),
        ]
    elif role is Role.FULFILMENT:
        body.append(_comment_input("Comment (needed for Can't do)"))
        steps = [("Done", "done", "positive"), ("Can't do", "cannot", "destructive")]
        if request.fulfilment is FulfilmentStatus.WAITING:
            steps.insert(0, ("Start", "start", "default"))
        actions = [
            action(title, Verb.REQUEST_FULFIL, {"request": request.id, "step": step}, style=style)
            for title, step, style in steps
        ]
    elif role is Role.REQUESTER:
        actions = [action("My requests", Verb.REQUEST_LIST)]
    refresh = (
        auto_refresh(Verb.REQUEST_SHOW, {"request": request.id}, refresh_user_ids)
        if refresh_user_ids
        else None
    )
    return render(
        body,
        actions=actions,
        refresh=refresh,
        fallback_text=f"{context.category_name} request: {status_line(request)}.",
    )


def _comment_input(label: str) -> CardElement:
    return TextInput(
        id="comment", label=label, is_multiline=True, max_length=MAX_COMMENT, spacing="Medium"
    )


def _quantity(quantity: Decimal) -> str:
    return f"{quantity.normalize():f}"


def status_line(request: ServiceRequest) -> str:
    text = STATUS_TEXT[request.status]
    if request.fulfilment is not FulfilmentStatus.NONE:
        text += f", {FULFILMENT_TEXT[request.fulfilment]}"
    return text


def history_line(entry: AuditEntry, request: ServiceRequest, time_zone: ZoneInfo) -> str:
    when = entry.at.astimezone(time_zone)
    what = _ACTION_TEXT.get(entry.action, entry.action)
    if entry.action in ("approved", "rejected") and entry.item_ids:
        names = {item.id: item.description for item in request.items}
        what += " " + ", ".join(names.get(item, item) for item in entry.item_ids)
    if entry.action == "reassigned" and entry.detail.get("names"):
        what += f" {entry.detail['names']}"
    if entry.action in ("notified", "unreachable", "emailed"):
        whom = entry.detail.get("names") or entry.detail.get("audience") or ""
        what += f" {whom}".rstrip()
        if entry.detail.get("fallback"):
            what += " (posted to the fallback channel)"
    line = (
        f"{format_day(entry.at, time_zone)} {when:%H:%M} · {entry.actor_name or 'someone'} {what}"
    )
    if entry.comment:
        line += f": “{entry.comment}”"
    return line


# --- Lists ----------------------------------------------------------------------------------------


def my_requests_card(
    requests: Sequence[ServiceRequest],
    category_names: Mapping[str, str],
    *,
    time_zone: ZoneInfo,
) -> Card:
    body: list[CardElement] = [*heading("My requests")]
    if not requests:
        body.append(TextBlock(text="You have not asked for any service yet.", wrap=True))
    for request in requests:
        name = category_names.get(request.category_id, request.category_id)
        row: list[Any] = [action("Open", Verb.REQUEST_SHOW, {"request": request.id})]
        if request.pending:
            row.append(action("Cancel", Verb.REQUEST_CANCEL, {"request": request.id}))
        body.append(
            Container(
                separator=True,
                items=[
                    TextBlock(text=f"**{name}** · {status_line(request)}", wrap=True),
                    TextBlock(
                        text=f"{format_day(request.created_at, time_zone)} · "
                        f"{money(request.total, request.currency)}",
                        wrap=True,
                        is_subtle=True,
                        spacing="None",
                    ),
                    buttons(*row),
                ],
            )
        )
    return render(
        body,
        actions=[action("Ask for a service", Verb.REQUEST_START)],
        fallback_text=f"My requests: {len(requests)}.",
    )


def approvals_card(
    requests: Sequence[ServiceRequest],
    category_names: Mapping[str, str],
    *,
    viewer_id: str,
    time_zone: ZoneInfo,
    message: str | None = None,
) -> Card:
    """What waits for the viewer's decision, oldest first, with the same buttons as the card."""
    body: list[CardElement] = [*heading("Waiting for your approval")]
    if message:
        body.append(notice(message))
    if not requests:
        body.append(TextBlock(text="Nothing waits for your approval.", wrap=True))
    for request in requests:
        name = category_names.get(request.category_id, request.category_id)
        count = len(request.state.open_items(viewer_id))
        body.append(
            Container(
                separator=True,
                items=[
                    TextBlock(
                        text=f"**{name}** from {request.requester_name or 'a colleague'}",
                        wrap=True,
                    ),
                    TextBlock(
                        text=f"{format_day(request.created_at, time_zone)} · "
                        f"{money(request.total, request.currency)} · "
                        f"{count} item{'s' if count != 1 else ''} to decide",
                        wrap=True,
                        is_subtle=True,
                        spacing="None",
                    ),
                    buttons(
                        action("Open", Verb.REQUEST_SHOW, {"request": request.id}),
                        action(
                            "Approve all",
                            Verb.REQUEST_DECIDE,
                            {
                                "request": request.id,
                                "decision": "approve",
                                "item": "all",
                                "from": "list",
                            },
                            style="positive",
                        ),
                        action(
                            "Reject all",
                            Verb.REQUEST_DECIDE,
                            {
                                "request": request.id,
                                "decision": "reject",
                                "item": "all",
                                "from": "list",
                            },
                            style="destructive",
                        ),
                    ),
                ],
            )
        )
    return render(
        body,
        actions=[action("Refresh", Verb.APPROVAL_LIST)],
        fallback_text=f"Waiting for your approval: {len(requests)}.",
    )


def update_card(request: ServiceRequest, *, title: str, text: str, category_name: str) -> Card:
    """A short notice to the requester (Teams notifies a new message, not an updated card)."""
    return render(
        [
            *heading(title, f"{category_name} request {request.number}"),
            TextBlock(text=text, wrap=True),
        ],
        actions=[action("Open", Verb.REQUEST_SHOW, {"request": request.id})],
        fallback_text=f"{title}: {text}",
    )


def booking_title(start: datetime, end: datetime, room_name: str, time_zone: ZoneInfo) -> str:
    return f"{room_name}, {format_span(start, end, time_zone)}"


def _in_sentence(name: str) -> str:
    """A category name inside a sentence: "Catering" -> "catering", but "IT" and "AV support"
    keep their capitals (an acronym is not lowered into a word)."""
    if len(name) > 1 and name[0].isupper() and name[1].islower():
        return name[0].lower() + name[1:]
    return name


# -- what the requester is told (an update card's title and text) -------------------------------
def submitted_text(request: ServiceRequest) -> str:
    """What the requester's card says when their request is sent."""
    stage = request.state.current_stage if request.pending else None
    if stage is not None:
        return f"Sent. It now waits for {stage.name}; you will hear back here."
    return "Sent. Nothing needed approval: it went straight to the fulfilment team."


def final_notice(request: ServiceRequest) -> tuple[str, str] | None:
    """What the requester is told when a decision finishes the approval (None: not finished)."""
    if request.category_id == ROOM_BOOKING:
        if request.status == ServiceRequestStatus.APPROVED:
            return "Room approved", "The room's owners approved it: the booking is confirmed."
        if request.status == ServiceRequestStatus.REJECTED:
            return (
                "Room not approved",
                "The room's owners did not approve it, so the booking is cancelled and the room "
                "is free again. Open it to see their comment, or book another room.",
            )
        return None
    if request.status == ServiceRequestStatus.APPROVED:
        return (
            "Request approved",
            "Everything was approved. The fulfilment team takes it from here.",
        )
    if request.status == ServiceRequestStatus.PARTIALLY_APPROVED:
        return (
            "Request partly approved",
            "Some items were approved and some rejected; open it to see which. The approved "
            "ones go to the fulfilment team.",
        )
    if request.status == ServiceRequestStatus.REJECTED:
        return "Request rejected", "Your request was rejected. Open it to see the comments."
    return None


def fulfilment_notice(request: ServiceRequest, by: str) -> tuple[str, str]:
    """What the requester is told when the fulfilment team (`by`, a name) moves the request on."""
    who = by or "The fulfilment team"
    texts = {
        FulfilmentStatus.IN_PROGRESS: ("Work started", f"{who} started on it."),
        FulfilmentStatus.DONE: ("Request done", f"{who} marked it done."),
        FulfilmentStatus.CANNOT_DO: (
            "Request cannot be done",
            f"{who} cannot do it. Open it to see why.",
        ),
    }
    return texts.get(request.fulfilment, ("Request updated", "Open it to see where it stands."))
