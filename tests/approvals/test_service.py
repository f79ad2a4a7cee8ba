"""ApprovalService on SQLite and PostgreSQL: submit, decide, cancel, lists, audit, and the race."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from bot.approvals.catalogue import (
    Catalogue,
    FulfilmentUsers,
    NumberField,
    ServiceCategory,
    TextField,
)
from bot.approvals.errors import PolicyError, UnknownItem
from bot.approvals.models import WHOLE_REQUEST_ITEM_ID
from bot.approvals.policy import (
    ApprovalPolicy,
    GroupMembers,
    PolicyBook,
    RequesterManager,
    Stage,
    StageMode,
    StaticApproverResolver,
)
from bot.approvals.service import (
    CSV_HEADER,
    ApprovalService,
    DecisionResult,
    Role,
    ServiceRequest,
)
from bot.errors import InputError, NotAllowed, NotFound
from bot.models import Actor
from bot.storage.service_requests import ServiceRequestRepository
from bot.storage.tables import (
    Booking,
    BookingApproval,
    BookingStatus,
    FulfilmentStatus,
    ServiceRequestStatus,
)
from tests.approvals.conftest import RACERS
from tests.conftest import FakeClock, make_actor
from tests.storage.conftest import make_booking
from tests.storage.race import Attempt, peak_overlap, warm_pool

CHANNEL = "19:0a1b2c3d4e5f40718293a4b5c6d7e8f9@thread.tacv2"
TENANT = "tenant-1"
REQUESTER = make_actor("user-req", name="Rita Requester")
MANAGER = make_actor("user-mgr", name="Max Manager")
SECURITY = [make_actor("user-sec1", name="Sam Security"), make_actor("user-sec2", name="Sue")]
PANEL = [make_actor(f"user-p{i}", name=f"Panel Member {i}") for i in range(5)]
OUTSIDER = make_actor("user-x", name="Xavier")


def catalogue() -> Catalogue:
    laptops = ServiceCategory(
        id="laptops",
        name="Laptops",
        description="Laptops and monitors.",
        currency="EUR",
        fields=(
            NumberField(id="laptop", label="Laptops", unit_price=Decimal("900.00")),
            NumberField(id="monitor", label="Monitors", unit_price=Decimal("200.00")),
            TextField(id="note", label="Note"),
        ),
        fulfilment=FulfilmentUsers(("user-ful",)),
        policy_id="two-stage",
    )
    stationery = ServiceCategory(
        id="stationery",
        name="Stationery",
        description="Pens and paper.",
        currency="EUR",
        fields=(TextField(id="note", label="Note", required=True),),
        fulfilment=FulfilmentUsers(("user-ful",)),
        policy_id="panel",
    )
    return Catalogue(currency="EUR", categories=(laptops, stationery))


def policies() -> PolicyBook:
    return PolicyBook(
        path=Path("policies.yaml"),
        policies={
            "two-stage": ApprovalPolicy(
                id="two-stage",
                name="Manager, then security",
                stages=(
                    Stage("manager", "Line manager", (RequesterManager(),)),
                    Stage("security", "Security", (GroupMembers("sec"),), mode=StageMode.ALL),
                ),
                fallback_channel=CHANNEL,
            ),
            "panel": ApprovalPolicy(
                id="panel",
                name="Any panel member",
                stages=(Stage("panel", "Panel", (GroupMembers("panel"),)),),
                fallback_channel=CHANNEL,
            ),
        },
        groups={},
    )


RESOLVER = StaticApproverResolver(
    managers={"user-req": "user-mgr"},
    owners={"room-1": ["user-mgr"]},
    groups={"sec": [a.user_id for a in SECURITY], "panel": [a.user_id for a in PANEL]},
)


def make_service(engine: Engine, clock: FakeClock) -> ApprovalService:
    return ApprovalService(
        requests=ServiceRequestRepository(engine),
        catalogue=catalogue(),
        policies=policies(),
        resolver_for=lambda actor: RESOLVER,
        clock=clock,
        new_id=lambda: str(uuid.uuid4()),
    )


@pytest.fixture
def service(engine: Engine, clock: FakeClock) -> ApprovalService:
    return make_service(engine, clock)


@pytest.fixture
def repo(engine: Engine) -> ServiceRequestRepository:
    return ServiceRequestRepository(engine)


async def submit_laptops(service: ApprovalService, submission_id: str = "sub-1") -> ServiceRequest:
    return await service.submit(
        REQUESTER,
        "laptops",
        {"laptop": "2", "monitor": "1", "note": "new starters"},
        submission_id=submission_id,
    )


def stored(repo: ServiceRequestRepository, request_id: str) -> tuple[int, str, str]:
    record = repo.get(request_id)
    assert record is not None
    return record.version, record.state, record.status


def actions(repo: ServiceRequestRepository, request_id: str) -> list[tuple[str, str]]:
    return [(e.action, e.actor_id) for e in repo.events(request_id)]


# --- Submitting ---------------------------------------------------------------------------------


async def test_submit_stores_the_request_its_approvers_and_an_audit_event(
    service: ApprovalService, repo: ServiceRequestRepository
) -> None:
    request = await submit_laptops(service)

    assert request.status is ServiceRequestStatus.PENDING
    assert request.version == 1
    assert [item.id for item in request.items] == ["laptop", "monitor"]
    assert request.total == Decimal("2000.00")
    assert request.currency == "EUR"
    assert [(d.field_id, d.value) for d in request.details] == [("note", "new starters")]
    assert [(s.id, s.approvers) for s in request.state.stages] == [
        ("manager", ("user-mgr",)),
        ("security", ("user-sec1", "user-sec2")),
    ]
    assert repo.approvers(request.id) == [("manager", "user-mgr")]
    assert actions(repo, request.id) == [("submitted", "user-req")]
    assert [r.id for r in await service.my_requests(REQUESTER)] == [request.id]
    assert [r.id for r in await service.waiting_for(MANAGER)] == [request.id]
    assert await service.waiting_for(SECURITY[0]) == []


async def test_a_second_submit_with_the_same_id_returns_the_first_request(
    service: ApprovalService, repo: ServiceRequestRepository, clock: FakeClock
) -> None:
    first = await submit_laptops(service, "sub-same")
    clock.advance(minutes=1)

    again = await submit_laptops(service, "sub-same")

    assert again == first
    assert len(await service.my_requests(REQUESTER)) == 1
    assert actions(repo, first.id) == [("submitted", "user-req")]
    other = await submit_laptops(service, "sub-other")
    assert other.id != first.id


async def test_a_form_without_prices_is_one_item_for_the_whole_request(
    service: ApprovalService,
) -> None:
    request = await service.submit(
        REQUESTER, "stationery", {"note": "pens"}, submission_id="sub-st"
    )

    assert [item.id for item in request.items] == [WHOLE_REQUEST_ITEM_ID]
    assert request.total == Decimal("0.00")


# --- Refused decisions change nothing -----------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "error", "message"),
    [
        (OUTSIDER, NotAllowed, "You are not an approver of this request."),
        (SECURITY[0], NotAllowed, "This request has not reached your approval stage yet."),
        (make_actor("user-mgr", tenant="tenant-2"), NotFound, "That request was not found."),
        (REQUESTER, NotAllowed, "You cannot approve or reject your own request."),
    ],
    ids=["non-approver", "later-stage", "other-tenant", "requester"],
)
async def test_a_refused_decision_changes_nothing(
    service: ApprovalService,
    repo: ServiceRequestRepository,
    actor: Actor,
    error: type[Exception],
    message: str,
) -> None:
    request = await submit_laptops(service)
    before = stored(repo, request.id)

    with pytest.raises(error) as raised:
        await service.decide(actor, request.id, items="all", approve=True)

    assert str(raised.value) == message
    assert stored(repo, request.id) == before
    assert actions(repo, request.id) == [("submitted", "user-req")]
    assert repo.approvers(request.id) == [("manager", "user-mgr")]


async def test_a_known_request_spares_a_load_only_for_those_with_a_part_in_it(
    service: ApprovalService, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = await submit_laptops(service)
    result = await service.decide(MANAGER, request.id, items="all", approve=True)

    view: dict[str, Any] = {"conversation_id": None, "in_channel": None, "known": result.request}
    decider, role = await service.viewable(MANAGER, request.id, **view)
    # Someone with no part in it (or a known request of another tenant) gets what loading says.
    with pytest.raises(NotFound):
        await service.viewable(OUTSIDER, request.id, **view)
    elsewhere = make_actor("user-mgr", tenant="tenant-2")
    with pytest.raises(NotFound):
        await service.viewable(elsewhere, request.id, **view)
    loads: list[str] = []
    monkeypatch.setattr(service, "_viewable", lambda *args: loads.append("load"))
    await service.viewable(SECURITY[0], request.id, **view)

    assert decider is result.request and role is Role.VIEWER
    assert loads == []


@pytest.mark.parametrize("request_id", ["no-such-request", "' OR 1=1 --", ""])
async def test_an_unknown_or_tampered_request_id_is_not_found(
    service: ApprovalService, repo: ServiceRequestRepository, request_id: str
) -> None:
    request = await submit_laptops(service)
    before = stored(repo, request.id)

    with pytest.raises(NotFound, match="That request was not found."):
        await service.decide(MANAGER, request_id, items="all", approve=True)

    assert stored(repo, request.id) == before


async def test_an_unknown_item_changes_nothing(
    service: ApprovalService, repo: ServiceRequestRepository
) -> None:
    request = await submit_laptops(service)
    before = stored(repo, request.id)

    with pytest.raises(UnknownItem, match="has no item 'keyboard'"):
        await service.decide(MANAGER, request.id, items=["keyboard"], approve=True)

    assert stored(repo, request.id) == before


# --- Deciding -----------------------------------------------------------------------------------


async def test_two_stages_the_all_stage_needs_every_approver(
    service: ApprovalService, repo: ServiceRequestRepository, clock: FakeClock
) -> None:
    request = await submit_laptops(service)

    clock.advance(minutes=5)
    by_manager = await service.decide(MANAGER, request.id, items="all", approve=True)
    assert by_manager.changed
    assert by_manager.outcome is not None and by_manager.outcome.stage_completed
    assert by_manager.request.version == 2
    assert by_manager.request.status is ServiceRequestStatus.PENDING
    assert repo.approvers(request.id) == [("security", "user-sec1"), ("security", "user-sec2")]
    assert await service.waiting_for(MANAGER) == []

    clock.advance(minutes=5)
    first = await service.decide(SECURITY[0], request.id, items="all", approve=True)
    assert first.changed and first.request.status is ServiceRequestStatus.PENDING
    assert await service.waiting_for(SECURITY[0]) == []  # nothing left open to them
    assert [r.id for r in await service.waiting_for(SECURITY[1])] == [request.id]

    clock.advance(minutes=5)
    last = await service.decide(SECURITY[1], request.id, items="all", approve=True)

    assert last.changed
    assert last.request.status is ServiceRequestStatus.APPROVED
    assert last.request.version == 4
    assert last.outcome is not None and last.outcome.finished
    assert repo.approvers(request.id) == []
    assert await service.waiting_for(SECURITY[1]) == []
    assert actions(repo, request.id) == [
        ("submitted", "user-req"),
        ("approved", "user-mgr"),
        ("approved", "user-sec1"),
        ("approved", "user-sec2"),
    ]


async def test_per_item_decisions_end_partially_approved(
    service: ApprovalService, repo: ServiceRequestRepository, clock: FakeClock
) -> None:
    request = await submit_laptops(service)

    clock.advance(minutes=1)
    await service.decide(MANAGER, request.id, items=["laptop"], approve=True)
    assert repo.approvers(request.id) == [("manager", "user-mgr")]  # the monitor is still open
    clock.advance(minutes=1)
    rejected = await service.decide(
        MANAGER, request.id, items=["monitor"], approve=False, comment="  one is enough "
    )
    assert rejected.outcome is not None and rejected.outcome.rejected == ("monitor",)
    assert repo.approvers(request.id) == [("security", "user-sec1"), ("security", "user-sec2")]
    for approver in SECURITY:
        clock.advance(minutes=1)
        await service.decide(approver, request.id, items="all", approve=True)

    (final,) = await service.my_requests(REQUESTER)
    assert final.status is ServiceRequestStatus.PARTIALLY_APPROVED
    assert final.state.item_outcomes() == {"laptop": "approved", "monitor": "rejected"}
    history = (await service.card_facts(final, [])).history
    assert [(e.action, e.item_ids, e.comment) for e in history] == [
        ("submitted", ("laptop", "monitor"), None),
        ("approved", ("laptop",), None),
        ("rejected", ("monitor",), "one is enough"),
        ("approved", ("laptop",), None),
        ("approved", ("laptop",), None),
    ]
    assert history[2].detail["next_stage"] == "security"


async def test_a_late_click_is_told_who_decided_first(
    service: ApprovalService, repo: ServiceRequestRepository, clock: FakeClock
) -> None:
    request = await service.submit(
        REQUESTER, "stationery", {"note": "pens"}, submission_id="sub-late"
    )
    await service.decide(PANEL[0], request.id, items="all", approve=True)
    before = stored(repo, request.id)
    clock.advance(hours=1)

    late = await service.decide(PANEL[1], request.id, items="all", approve=False)

    assert not late.changed
    assert late.already is not None
    assert late.already.approver_name == "Panel Member 0"
    # FakeClock starts 2026-11-23 08:05 UTC; the actors are in London (UTC in November).
    assert (
        late.already.message == "This was already approved by Panel Member 0 at 23 Nov 2026 08:05."
    )
    assert stored(repo, request.id) == before


# --- Cancelling ---------------------------------------------------------------------------------


async def test_the_requester_cancels_while_pending_and_not_after(
    service: ApprovalService, repo: ServiceRequestRepository
) -> None:
    request = await submit_laptops(service)

    with pytest.raises(NotAllowed, match="Only the requester"):
        await service.cancel(MANAGER, request.id)
    cancelled = await service.cancel(REQUESTER, request.id, "not needed")

    assert cancelled.status is ServiceRequestStatus.CANCELLED
    assert cancelled.version == 2
    assert repo.approvers(request.id) == []
    assert await service.waiting_for(MANAGER) == []
    before = stored(repo, request.id)
    with pytest.raises(NotAllowed, match="cancelled"):
        await service.decide(MANAGER, request.id, items="all", approve=True)
    with pytest.raises(NotAllowed, match="is cancelled and can no longer be cancelled"):
        await service.cancel(REQUESTER, request.id)
    assert stored(repo, request.id) == before
    history = (await service.card_facts(request, [])).history
    assert [(e.action, e.comment) for e in history] == [
        ("submitted", None),
        ("cancelled", "not needed"),
    ]


async def test_a_decided_request_cannot_be_cancelled(
    service: ApprovalService, repo: ServiceRequestRepository
) -> None:
    request = await service.submit(REQUESTER, "stationery", {"note": "pens"}, submission_id="s")
    await service.decide(PANEL[2], request.id, items="all", approve=False)
    before = stored(repo, request.id)

    with pytest.raises(NotAllowed, match="is rejected and can no longer be cancelled"):
        await service.cancel(REQUESTER, request.id)

    assert stored(repo, request.id) == before


async def test_a_cancel_comment_has_the_same_limit_as_every_other(
    service: ApprovalService, repo: ServiceRequestRepository
) -> None:
    request = await submit_laptops(service)
    before = stored(repo, request.id)

    with pytest.raises(InputError, match="at most 1000 characters") as raised:
        await service.cancel(REQUESTER, request.id, "x" * 1001)

    assert raised.value.field == "comment"
    assert stored(repo, request.id) == before
    cancelled = await service.cancel(REQUESTER, request.id, "  " + "x" * 1000 + "  ")
    assert cancelled.status is ServiceRequestStatus.CANCELLED
    history = (await service.card_facts(cancelled, [])).history
    assert [e.comment for e in history] == [None, "x" * 1000]


# --- Audit export -------------------------------------------------------------------------------


async def test_the_audit_csv_quotes_and_filters(service: ApprovalService, clock: FakeClock) -> None:
    request = await submit_laptops(service)
    clock.advance(minutes=1)
    tricky = 'too "expensive", see\nthread'
    await service.decide(MANAGER, request.id, items=["monitor"], approve=False, comment=tricky)
    clock.advance(minutes=1)
    await service.decide(MANAGER, request.id, items=["laptop"], approve=True, comment="=SUM(A1)")
    other_tenant = make_actor("user-req", tenant="tenant-2", name="Other, Tenant")
    clock.advance(minutes=1)
    await service.submit(other_tenant, "stationery", {"note": "x"}, submission_id="sub-t2")

    out = io.StringIO(newline="")
    written = await service.export_audit_csv(out, tenant_id=TENANT)

    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert written == 3
    assert tuple(rows[0]) == CSV_HEADER
    assert [row[1:] for row in rows[1:]] == [
        [request.id, "user-req", "Rita Requester", "submitted", "laptop monitor", ""],
        [request.id, "user-mgr", "Max Manager", "rejected", "monitor", tricky],
        [request.id, "user-mgr", "Max Manager", "approved", "laptop", "'=SUM(A1)"],
    ]
    assert rows[1][0] == "2026-11-23T08:05:00+00:00"

    everything = io.StringIO(newline="")
    assert await service.export_audit_csv(everything) == 4
    assert '"Other, Tenant"' in everything.getvalue()
    recent = io.StringIO(newline="")
    assert await service.export_audit_csv(recent, since=clock.now) == 1


# --- The race -----------------------------------------------------------------------------------


def race_decisions(service: ApprovalService, engine: Engine, request_id: str) -> list[Attempt]:
    """RACERS threads, each on its own connection, click Approve on one request at once."""
    warm_pool(engine, RACERS)
    barrier = threading.Barrier(RACERS)
    results: list[Attempt | None] = [None] * RACERS

    def run(index: int) -> None:
        approver = PANEL[index % len(PANEL)]
        barrier.wait(60)
        entered = time.monotonic()
        error = ""
        try:
            result: DecisionResult = service._decide(approver, request_id, "all", True, None)
        except Exception as exc:  # the assertions name the type: any exception fails the test
            outcome, winner = type(exc).__name__, None
            error = str(exc)[:300]
        else:
            outcome = "changed" if result.changed else "already"
            winner = approver.user_id if result.changed else None
            if result.already is not None:
                error = result.already.message
        results[index] = Attempt(
            index, outcome, winner, error, approver.user_id, entered, time.monotonic()
        )

    threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(result is not None for result in results)
    return [result for result in results if result is not None]


def test_racing_approvers_leave_one_decision(
    race_engine: Engine, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.approvals.service")
    service = make_service(race_engine, clock)
    repo = ServiceRequestRepository(race_engine)
    request = asyncio.run(
        service.submit(REQUESTER, "stationery", {"note": "pens"}, submission_id="sub-race")
    )

    attempts = race_decisions(service, race_engine, request.id)

    described = "\n".join(f"#{a.index} {a.worker}: {a.outcome} {a.error}" for a in attempts)
    assert Counter(a.outcome for a in attempts) == {"changed": 1, "already": RACERS - 1}, described
    (winner,) = [a for a in attempts if a.outcome == "changed"]
    winner_name = next(p.name for p in PANEL if p.user_id == winner.booking_id)
    expected = f"This was already approved by {winner_name} at 23 Nov 2026 08:05."
    assert {a.error for a in attempts if a.outcome == "already"} == {expected}
    record = repo.get(request.id)
    assert record is not None
    assert record.version == 2
    assert record.status == ServiceRequestStatus.APPROVED
    assert len(json.loads(record.state)["decisions"]) == 1
    assert actions(repo, request.id) == [
        ("submitted", "user-req"),
        ("approved", winner.booking_id),
    ]
    assert peak_overlap(attempts) >= RACERS // 5, f"the clicks hardly overlapped:\n{described}"
    # The losers read the request before the winner's update: their conditional update found a
    # newer version, wrote nothing, and they decided again on the fresh state.
    retries = [r for r in caplog.records if "trying again" in r.getMessage()]
    assert retries, "no click lost the conditional update: the race did not reach the guard"


# --- rooms that need approval ------------------------------------------------------------------


def held_booking(engine: Engine, clock: FakeClock, booking_id: str, hour: int = 0) -> Booking:
    """A booking of room-1 held for Rita while its owner (Max) decides."""
    booking = make_booking(
        clock.now + timedelta(days=1, hours=hour),
        room_id="room-1",
        user_id=REQUESTER.user_id,
        tenant_id=TENANT,
        id=booking_id,
        user_name=REQUESTER.name,
        room_name="Atrium",
        building="HQ",
        floor_label="Ground floor",
        subject="Town hall",
        attendees=30,
        created_at=clock.now,
        approval=BookingApproval.PENDING,
    )
    with Session(engine) as session:
        session.add(booking)
        session.commit()
        session.refresh(booking)
    return booking


def booking_state(engine: Engine, booking_id: str) -> tuple[str, str | None, str | None]:
    with Session(engine) as session:
        row = session.get(Booking, booking_id)
        assert row is not None
        return row.status, row.approval, row.cancel_comment


async def test_a_held_room_is_confirmed_released_or_withdrawn_with_its_request(
    engine: Engine, clock: FakeClock, service: ApprovalService
) -> None:
    approved_id, rejected_id, withdrawn_id = (str(uuid.uuid4()) for _ in range(3))
    approved = await service.request_room(REQUESTER, held_booking(engine, clock, approved_id))
    rejected = await service.request_room(REQUESTER, held_booking(engine, clock, rejected_id, 1))
    withdrawn = await service.request_room(REQUESTER, held_booking(engine, clock, withdrawn_id, 2))
    # One request per booking, however often it is asked for.
    again = await service.request_room(REQUESTER, held_booking_row(engine, approved_id))
    assert again.id == approved.id
    assert approved.category_id == "room-booking"
    assert approved.state.current_stage is not None
    assert approved.state.current_stage.approvers == ("user-mgr",)

    await service.decide(MANAGER, approved.id, items="all", approve=True)
    await service.decide(MANAGER, rejected.id, items="all", approve=False, comment="Board meeting.")
    await service.cancel(REQUESTER, withdrawn.id)

    assert booking_state(engine, approved_id) == (
        BookingStatus.CONFIRMED,
        BookingApproval.APPROVED,
        None,
    )
    assert booking_state(engine, rejected_id) == (
        BookingStatus.CANCELLED,
        BookingApproval.REJECTED,
        "The room's owners did not approve it. Board meeting.",
    )
    assert booking_state(engine, withdrawn_id) == (
        BookingStatus.CANCELLED,
        BookingApproval.REJECTED,
        "The approval request was withdrawn.",
    )
    fresh = await service.get(approved.id)
    assert fresh is not None and fresh.fulfilment == FulfilmentStatus.NONE


def held_booking_row(engine: Engine, booking_id: str) -> Booking:
    with Session(engine) as session:
        row = session.get(Booking, booking_id)
        assert row is not None
        return row


async def test_a_room_nobody_owns_cannot_be_held(
    engine: Engine, clock: FakeClock, service: ApprovalService
) -> None:
    booking = held_booking(engine, clock, str(uuid.uuid4()))
    booking.room_id = "room-without-owners"

    with pytest.raises(PolicyError, match="Room owners"):
        await service.request_room(REQUESTER, booking)


async def test_the_room_booking_kind_cannot_be_submitted_as_a_service(
    engine: Engine, clock: FakeClock
) -> None:
    """Only request_room files it: a tampered submit names the catalogue, whatever the mode."""
    asked: list[str] = []

    async def manager_of(actor: Actor) -> str | None:
        asked.append(actor.user_id)
        return "user-mgr"

    graph_mode = ApprovalService(
        requests=ServiceRequestRepository(engine),
        catalogue=catalogue(),
        policies=policies(),  # no room-booking policy: the built-in one applies
        resolver_for=lambda actor: RESOLVER,
        clock=clock,
        new_id=lambda: str(uuid.uuid4()),
        manager_lookup=manager_of,
    )

    with pytest.raises(NotFound, match="That service is not in the catalogue."):
        await graph_mode.submit(REQUESTER, "room-booking", {}, submission_id="sub-room")

    assert asked == []
    assert await graph_mode.my_requests(REQUESTER) == []
