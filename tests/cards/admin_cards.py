"""Every admin card (cards/admin.py) and the help card as an admin sees it, for tests/cards."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.admin import (
    AGE_LABELS,
    AdminOverview,
    AgeCount,
    BookingCounts,
    PendingApproval,
    Person,
    StuckFulfilment,
)
from bot.storage.tables import FulfilmentStatus
from cards.admin import admin_card, reassign_card
from cards.help import help_card

ZONE = ZoneInfo("Europe/Berlin")
DAY_ZONE = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 11, 23, 8, 5, tzinfo=UTC)
TENANT = "72f988bf-0000-4e3a-9b1c-2d7cd011db47"
GRACE = Person("00000000-0000-0000-0000-000000000101", "Grace Hopper")
NAMELESS = Person("00000000-0000-0000-0000-000000000105")

OLDEST = PendingApproval(
    request_id="cccccccc-dddd-4eee-8fff-000000000001",
    category_name="Catering",
    requester_name="Ada Lovelace",
    submitted_at=NOW - timedelta(days=4, hours=2),
    stage_id="facilities",
    stage_name="Facilities desk",
    stage_since=NOW - timedelta(days=3),
    approvers=(GRACE, NAMELESS),
)
NEWER = PendingApproval(
    request_id="dddddddd-eeee-4fff-8000-000000000002",
    category_name="AV support",
    requester_name="Katherine Johnson",
    submitted_at=NOW - timedelta(hours=3),
    stage_id="manager",
    stage_name="Line manager",
    stage_since=NOW - timedelta(hours=3),
    approvers=(GRACE,),
)
OVERVIEW = AdminOverview(
    tenant_id=TENANT,
    now=NOW,
    day=date(2026, 11, 23),
    day_zone=DAY_ZONE,
    bookings=BookingCounts(total=14, confirmed=11, cancelled=2, declined=1),
    pending_by_age=tuple(
        AgeCount(label, n) for label, n in zip(AGE_LABELS, [4, 1, 2], strict=True)
    ),
    oldest=(OLDEST, NEWER),
    not_started=1,
    not_done=1,
    stuck=(
        StuckFulfilment(
            request_id="eeeeeeee-ffff-4000-8111-000000000003",
            category_name="IT equipment",
            requester_name="Dorothy Vaughan",
            step=FulfilmentStatus.IN_PROGRESS,
            since=NOW - timedelta(days=4),
        ),
        StuckFulfilment(
            request_id="ffffffff-0000-4111-8222-000000000004",
            category_name="Catering",
            requester_name="Ada Lovelace",
            step=FulfilmentStatus.WAITING,
            since=NOW - timedelta(days=1, hours=6),
        ),
    ),
)
EMPTY = AdminOverview(
    tenant_id=TENANT,
    now=NOW,
    day=date(2026, 11, 23),
    day_zone=DAY_ZONE,
    bookings=BookingCounts(0, 0, 0, 0),
    pending_by_age=tuple(AgeCount(label, 0) for label in AGE_LABELS),
    oldest=(),
    not_started=0,
    not_done=0,
    stuck=(),
)


def admin_cards() -> dict[str, dict[str, Any]]:
    return {
        "admin_overview": admin_card(OVERVIEW, time_zone=ZONE),
        "admin_overview_empty": admin_card(EMPTY, time_zone=ZONE),
        "admin_overview_reassigned": admin_card(
            EMPTY,
            time_zone=ZONE,
            message="Request cccccccc: Katherine Johnson approves Facilities desk instead of "
            "Grace Hopper, and gets the approval card now.",
        ),
        "admin_reassign": reassign_card(OLDEST, time_zone=ZONE),
        "admin_reassign_error": reassign_card(
            NEWER,
            time_zone=ZONE,
            error="The new approver must be an Entra object id, such as "
            "00000000-0000-0000-0000-000000000000.",
            values={"from": GRACE.id, "to": "grace@contoso.com", "comment": "On leave"},
        ),
        "help_admin": help_card(admin=True),
    }
