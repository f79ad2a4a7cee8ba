"""The admin cards: the tenant's overview, and the form that hands an approval to someone else.

Pure functions of the domain objects in `bot.admin`. Buttons carry ids only: whether the clicker
is an admin, and what the request looks like now, is decided again when the click arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from microsoft_teams.cards import (
    CardElement,
    Choice,
    ChoiceSetInput,
    Container,
    ExecuteAction,
    Fact,
    FactSet,
    TextBlock,
    TextInput,
)

from bot.admin import AdminOverview, PendingApproval, StuckFulfilment
from bot.approvals.state import MAX_COMMENT
from bot.commands import Verb
from bot.storage.tables import FulfilmentStatus
from cards.common import Card, action, buttons, format_day, heading, notice, render, zone_label

GUID_PATTERN = r"^\s*[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\s*$"
_STEP_TEXT = {
    FulfilmentStatus.WAITING: "approved, not started",
    FulfilmentStatus.IN_PROGRESS: "started, not done",
}


def _when(moment: datetime, time_zone: ZoneInfo) -> str:
    local = moment.astimezone(time_zone)
    return f"{format_day(moment, time_zone)} {local:%H:%M}"


def _section(title: str) -> TextBlock:
    return TextBlock(text=title, weight="Bolder", size="Medium", spacing="Large", wrap=True)


def admin_card(
    overview: AdminOverview,
    *,
    time_zone: ZoneInfo,
    message: str | None = None,
    tone: str = "good",
) -> Card:
    """The admin's overview of their tenant: counts, the oldest waiting approvals (each with
    Reassign), stuck fulfilments and how to export the audit trail."""
    day = format_day(overview.now, overview.day_zone)
    body: list[CardElement] = [
        *heading(
            "Frontdesk admin",
            f"{day} ({zone_label(overview.day_zone)}); times shown in {zone_label(time_zone)}",
        )
    ]
    if message:
        body.append(notice(message, tone=tone))

    bookings = overview.bookings
    body.append(_section("Bookings today"))
    body.append(
        FactSet(
            facts=[
                Fact(title="Starting today", value=str(bookings.total)),
                Fact(title="Confirmed", value=str(bookings.confirmed)),
                Fact(title="Cancelled", value=str(bookings.cancelled)),
                Fact(title="Declined by the room", value=str(bookings.declined)),
            ]
        )
    )

    body.append(_section(f"Waiting for approval: {overview.pending_total}"))
    body.append(
        FactSet(
            facts=[
                Fact(title=bucket.label, value=str(bucket.count))
                for bucket in overview.pending_by_age
            ]
        )
    )
    if overview.oldest:
        body.append(TextBlock(text="Waiting longest", weight="Bolder", wrap=True))
    body += [_pending_entry(pending, time_zone) for pending in overview.oldest]
    more = overview.pending_total - len(overview.oldest)
    if more > 0:
        body.append(TextBlock(text=f"and {more} more.", wrap=True, is_subtle=True))
    body.append(
        TextInput(
            id="number",
            label="Reassign another waiting request: its number or id",
            placeholder="1a2b3c4d",
            max_length=40,
            spacing="Medium",
        )
    )
    body.append(buttons(action("Find request", Verb.ADMIN_REASSIGN_FORM)))

    body.append(_section("Stuck fulfilments"))
    body.append(
        FactSet(
            facts=[
                Fact(
                    title=f"Not started {overview.not_started_hours} h after approval",
                    value=str(overview.not_started),
                ),
                Fact(
                    title=f"Not done {overview.not_done_hours} h after starting",
                    value=str(overview.not_done),
                ),
            ]
        )
    )
    body += [_stuck_entry(stuck, time_zone) for stuck in overview.stuck]

    body.append(_section("Export the audit trail"))
    body.append(
        TextBlock(
            text="Every step of every request (who, when, what, comment) as CSV. On the "
            "Frontdesk server, run:",
            wrap=True,
        )
    )
    body.append(TextBlock(text=overview.export_command, wrap=True, font_type="Monospace"))
    body.append(
        TextBlock(
            text="Leave out --since for the whole trail, --tenant for every tenant, --output "
            "to print it.",
            wrap=True,
            is_subtle=True,
            size="Small",
        )
    )
    return render(
        body,
        actions=[action("Refresh", Verb.ADMIN_SHOW)],
        fallback_text=(
            f"Frontdesk admin: {bookings.total} bookings today, {overview.pending_total} "
            f"waiting for approval, {overview.not_started + overview.not_done} stuck."
        ),
    )


def _pending_entry(pending: PendingApproval, time_zone: ZoneInfo) -> Container:
    approvers = ", ".join(person.label for person in pending.approvers)
    return Container(
        separator=True,
        items=[
            TextBlock(
                text=f"**{pending.category_name}** {pending.number} from {pending.requester_name}",
                wrap=True,
            ),
            TextBlock(
                text=f"Submitted {_when(pending.submitted_at, time_zone)} · {pending.stage_name} "
                f"since {_when(pending.stage_since, time_zone)} · {approvers}",
                wrap=True,
                is_subtle=True,
                spacing="None",
            ),
            buttons(action("Reassign", Verb.ADMIN_REASSIGN_FORM, {"request": pending.request_id})),
        ],
    )


def _stuck_entry(stuck: StuckFulfilment, time_zone: ZoneInfo) -> Container:
    return Container(
        separator=True,
        items=[
            TextBlock(
                text=f"**{stuck.category_name}** {stuck.number} from {stuck.requester_name}",
                wrap=True,
            ),
            TextBlock(
                text=f"{_STEP_TEXT.get(stuck.step, stuck.step.value)} since "
                f"{_when(stuck.since, time_zone)}",
                wrap=True,
                is_subtle=True,
                spacing="None",
            ),
        ],
    )


def reassign_card(
    pending: PendingApproval,
    *,
    time_zone: ZoneInfo,
    error: str | None = None,
    values: Mapping[str, Any] | None = None,
) -> Card:
    """Pick the approver to replace and give the new one's object id (inputs kept after an
    error)."""
    values = values or {}
    body: list[CardElement] = [
        *heading(
            "Reassign an approval",
            f"{pending.category_name} request {pending.number} from {pending.requester_name}",
        )
    ]
    if error:
        body.append(notice(error))
    body.append(
        FactSet(
            facts=[
                Fact(title="Submitted", value=_when(pending.submitted_at, time_zone)),
                Fact(
                    title="Waiting for",
                    value=f"{pending.stage_name}, since {_when(pending.stage_since, time_zone)}",
                ),
                Fact(
                    title="Approvers",
                    value=", ".join(person.label for person in pending.approvers),
                ),
            ]
        )
    )
    ids = [person.id for person in pending.approvers]
    chosen = values.get("from")
    body.append(
        ChoiceSetInput(
            id="from",
            label="Replace",
            style="compact",
            value=chosen if chosen in ids else ids[0],
            choices=[
                Choice(
                    title=f"{person.name} ({person.id})" if person.name else person.id,
                    value=person.id,
                )
                for person in pending.approvers
            ],
            is_required=True,
            error_message="Pick the approver to replace.",
        )
    )
    to = values.get("to")
    body.append(
        TextInput(
            id="to",
            label="New approver: their Entra object id",
            placeholder="00000000-0000-0000-0000-000000000000",
            value=to if isinstance(to, str) and to else None,
            regex=GUID_PATTERN,
            max_length=64,
            is_required=True,
            error_message="Give the new approver's Entra object id (a GUID).",
        )
    )
    body.append(
        TextBlock(
            text="Find it in the Microsoft Entra admin center: Users, the user, Object ID. The "
            "new approver takes the old one's place at this stage and gets the approval card; "
            "the old one's card stops offering buttons.",
            wrap=True,
            is_subtle=True,
            size="Small",
        )
    )
    comment = values.get("comment")
    body.append(
        TextInput(
            id="comment",
            label="Why (kept in the audit trail; optional)",
            is_multiline=True,
            max_length=MAX_COMMENT,
            value=comment if isinstance(comment, str) and comment else None,
        )
    )
    return render(
        body,
        actions=[
            action(
                "Reassign",
                Verb.ADMIN_REASSIGN,
                {"request": pending.request_id, "stage": pending.stage_id},
                style="positive",
            ),
            # Back needs none of the inputs (and must not be held up by the required ones).
            ExecuteAction(
                title="Back", verb=Verb.ADMIN_SHOW.value, data={}, associated_inputs="none"
            ),
        ],
        fallback_text=f"Reassign the approval of request {pending.number}.",
    )
