"""The admin overview and reassignments (bot/admin.py) on SQLite and PostgreSQL.

Counts are checked at their edges (the day in TIMEZONE, a request exactly 1 or 3 days old, a
fulfilment exactly NOT_STARTED_HOURS old); reassignments change the stored approvers and audit
trail, refuse what they must, and race a decision on the same approver with exactly one winner.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from bot.admin import (
    AGE_LABELS,
    NOT_DONE_HOURS,
    NOT_STARTED_HOURS,
    AdminService,
    NotAdmin,
)
from bot.approvals.service import ApprovalService, RequestNotFound, ServiceRequest
from bot.errors import InputError, NotAllowed
from bot.storage.admin import AdminQueries
from bot.storage.service_requests import ServiceRequestRepository
from bot.storage.tables import BookingStatus, UserProfile
from tests.approvals.test_service import (
    MANAGER,
    PANEL,
    REQUESTER,
    RESOLVER,
    SECURITY,
    TENANT,
    catalogue,
    make_service,
    policies,
    submit_laptops,
)
from tests.conftest import FakeClock, make_actor
from tests.storage.conftest import make_booking
from tests.storage.race import warm_pool

ADMIN_ID = "a0a0a0a0-0000-4000-8000-000000000001"
ADMIN = make_actor(ADMIN_ID, name="Ada Admin")
ADMIN_ELSEWHERE = make_actor(ADMIN_ID, tenant="tenant-2", name="Ada Admin")
NEW_APPROVER = "b1b1b1b1-0000-4000-8000-000000000002"
TOKYO = ZoneInfo("Asia/Tokyo")  # FakeClock's 08:05 UTC is 17:05 there, on 23 Nov 2026


def make_admin(
    engine: Engine, clock: FakeClock, service: ApprovalService, home: tuple[str, ...] = ()
) -> AdminService:
    return AdminService(
        admins=[ADMIN_ID.upper()],  # ADMIN_USERS may spell ids in capitals
        home_tenants=home,
        queries=AdminQueries(engine),
        approvals=service,
        clock=clock,
        day_zone=TOKYO,
    )


@pytest.fixture
def service(engine: Engine, clock: FakeClock) -> ApprovalService:
    return make_service(engine, clock)


@pytest.fixture
def admin(engine: Engine, clock: FakeClock, service: ApprovalService) -> AdminService:
    return make_admin(engine, clock, service)


def add(engine: Engine, *rows: object) -> None:
    with Session(engine) as session:
        session.add_all(rows)
        session.commit()


async def stationery(service: ApprovalService, note: str = "pens") -> ServiceRequest:
    return await service.submit(REQUESTER, "stationery", {"note": note}, submission_id=note)


# --- Who is an admin ----------------------------------------------------------------------------


async def test_only_listed_users_of_the_home_tenant_are_admins(
    engine: Engine, clock: FakeClock, service: ApprovalService, admin: AdminService
) -> None:
    assert admin.is_admin(ADMIN) and admin.is_admin(ADMIN_ELSEWHERE)
    assert not admin.is_admin(MANAGER)
    at_home = make_admin(engine, clock, service, home=(TENANT,))
    assert at_home.is_admin(ADMIN)
    assert not at_home.is_admin(ADMIN_ELSEWHERE)
    for refused in (
        admin.overview(MANAGER),
        at_home.overview(ADMIN_ELSEWHERE),
        admin.pending(MANAGER, "12345678"),
    ):
        with pytest.raises(NotAdmin):
            await refused


# --- Counts -------------------------------------------------------------------------------------


async def test_bookings_today_count_the_day_in_the_configured_zone(
    engine: Engine, admin: AdminService
) -> None:
    # Tokyo's 23 Nov runs from 22 Nov 15:00 UTC to 23 Nov 15:00 UTC.
    day_start = datetime(2026, 11, 22, 15, 0, tzinfo=ZoneInfo("UTC"))
    second = timedelta(seconds=1)
    add(
        engine,
        make_booking(day_start, room_id="r1"),
        make_booking(day_start + timedelta(hours=24) - second, room_id="r2"),
        make_booking(day_start + timedelta(hours=3), room_id="r3", status=BookingStatus.CANCELLED),
        make_booking(day_start + timedelta(hours=4), room_id="r4", status=BookingStatus.DECLINED),
        make_booking(day_start - second, room_id="r5"),  # the day before
        make_booking(day_start + timedelta(hours=24), room_id="r6"),  # the day after
        make_booking(day_start + timedelta(hours=5), room_id="r7", tenant_id="tenant-2"),
    )

    overview = await admin.overview(ADMIN)

    assert overview.day.isoformat() == "2026-11-23"
    counts = overview.bookings
    assert (counts.total, counts.confirmed, counts.cancelled, counts.declined) == (4, 2, 1, 1)


async def test_pending_requests_are_counted_by_age_with_the_edges_in_the_older_bucket(
    engine: Engine, clock: FakeClock, service: ApprovalService, admin: AdminService
) -> None:
    now = clock.now
    ages = {
        "an hour": timedelta(hours=1),
        "a day less a second": timedelta(days=1, seconds=-1),
        "a day": timedelta(days=1),
        "three days less a second": timedelta(days=3, seconds=-1),
        "three days": timedelta(days=3),
        "ten days": timedelta(days=10),
    }
    for note, age in ages.items():
        clock.now = now - age
        await stationery(service, note)
    clock.now = now - timedelta(days=20)
    decided = await stationery(service, "decided")
    await service.decide(PANEL[0], decided.id, items="all", approve=True)
    cancelled = await stationery(service, "cancelled")
    await service.cancel(REQUESTER, cancelled.id)
    other_requester = make_actor("user-req", tenant="tenant-2")
    await service.submit(other_requester, "stationery", {"note": "x"}, submission_id="other")
    clock.now = now

    overview = await admin.overview(ADMIN)

    assert [(a.label, a.count) for a in overview.pending_by_age] == list(
        zip(AGE_LABELS, [2, 2, 2], strict=True)
    )
    assert overview.pending_total == 6
    # The oldest are listed first, with their stage and approvers.
    assert [p.submitted_at for p in overview.oldest] == sorted(now - age for age in ages.values())[
        :5
    ]
    assert overview.oldest[0].stage_name == "Panel"
    assert [p.id for p in overview.oldest[0].approvers] == [a.user_id for a in PANEL]


async def test_the_oldest_list_names_approvers_and_when_their_stage_started(
    engine: Engine, clock: FakeClock, service: ApprovalService, admin: AdminService
) -> None:
    submitted = clock.now
    request = await submit_laptops(service)
    clock.advance(hours=5)
    await service.decide(MANAGER, request.id, items="all", approve=True)
    clock.advance(hours=2)
    add(
        engine,
        UserProfile(
            tenant_id=TENANT, user_id=SECURITY[0].user_id, name="Sam S.", updated_at=submitted
        ),
        UserProfile(
            tenant_id="tenant-2", user_id=SECURITY[1].user_id, name="Not here", updated_at=submitted
        ),
    )

    [pending] = (await admin.overview(ADMIN)).oldest

    assert (pending.stage_id, pending.stage_name) == ("security", "Security")
    assert pending.submitted_at == submitted
    assert pending.stage_since == submitted + timedelta(hours=5)
    assert [p.label for p in pending.approvers] == ["Sam S.", SECURITY[1].user_id]
    assert pending.requester_name == "Rita Requester"
    assert pending.number == request.id[:8]


async def test_stuck_fulfilments_are_the_ones_not_started_or_not_done_in_time(
    engine: Engine, clock: FakeClock, service: ApprovalService, admin: AdminService
) -> None:
    now = clock.now

    async def approved(note: str, ago: timedelta) -> ServiceRequest:
        clock.now = now - ago
        request = await stationery(service, note)
        await service.decide(PANEL[0], request.id, items="all", approve=True)
        return request

    async def step(request: ServiceRequest, name: str, ago: timedelta) -> None:
        clock.now = now - ago
        comment = "no stock" if name == "cannot" else None
        result = await service.fulfil(make_actor("user-ful"), request.id, name, comment)
        assert result.changed

    waited_exactly = await approved("waited exactly", timedelta(hours=NOT_STARTED_HOURS))
    await approved("waited less", timedelta(hours=NOT_STARTED_HOURS, seconds=-1))
    slow = await approved("started long ago", timedelta(days=10))
    await step(slow, "start", timedelta(hours=NOT_DONE_HOURS))
    recent = await approved("started lately", timedelta(days=10))
    await step(recent, "start", timedelta(hours=NOT_DONE_HOURS - 1))
    done = await approved("done", timedelta(days=10))
    await step(done, "done", timedelta(days=9))
    cannot = await approved("cannot", timedelta(days=10))
    await step(cannot, "cannot", timedelta(days=9))
    clock.now = now

    overview = await admin.overview(ADMIN)

    assert (overview.not_started, overview.not_done) == (1, 1)
    assert [(s.request_id, s.step.value) for s in overview.stuck] == [
        (slow.id, "in_progress"),
        (waited_exactly.id, "waiting"),
    ]
    assert overview.stuck[0].since == now - timedelta(hours=NOT_DONE_HOURS)
    elsewhere = await admin.overview(ADMIN_ELSEWHERE)
    assert (elsewhere.not_started, elsewhere.not_done, elsewhere.pending_total) == (0, 0, 0)


# --- Finding a request by its number ------------------------------------------------------------


async def test_a_request_is_found_by_its_number_or_id_in_the_admins_tenant_only(
    engine: Engine, clock: FakeClock
) -> None:
    ids = iter(["abcdef12-0000-4000-8000-000000000001", "abcdef12-0000-4000-8000-000000000002"])
    service = _service_on(ServiceRequestRepository(engine), clock, lambda: next(ids))
    admin = make_admin(engine, clock, service)
    first = await stationery(service, "first")
    second = await stationery(service, "second")

    assert (await admin.pending(ADMIN, f"#{first.id.upper()}")).request_id == first.id
    assert (await admin.pending(ADMIN, "abcdef12-0000-4000-8000-000000000002")).request_id == (
        second.id
    )
    with pytest.raises(InputError, match="More than one"):
        await admin.pending(ADMIN, "abcdef12")
    for wrong in ("", "12", "zzzzzzzz", "abcdef12'; drop table booking; --", "abcd%"):
        with pytest.raises(InputError):
            await admin.pending(ADMIN, wrong)
    with pytest.raises(RequestNotFound):
        await admin.pending(ADMIN_ELSEWHERE, first.id)
    await service.cancel(REQUESTER, second.id)
    assert (await admin.pending(ADMIN, "abcdef12")).request_id == first.id  # pending ones only


# --- Reassigning --------------------------------------------------------------------------------


async def test_a_reassignment_replaces_the_approver_and_is_in_the_audit_trail(
    engine: Engine, clock: FakeClock, service: ApprovalService, admin: AdminService
) -> None:
    repo = ServiceRequestRepository(engine)
    request = await submit_laptops(service)
    add(
        engine,
        UserProfile(tenant_id=TENANT, user_id=NEW_APPROVER, name="Nia New", updated_at=clock.now),
    )
    clock.advance(minutes=10)

    done = await admin.reassign(
        ADMIN,
        request.id,
        stage_id="manager",
        old_approver=MANAGER.user_id,
        new_approver=NEW_APPROVER.upper(),
        comment="  Max is on leave  ",
    )

    assert (done.stage_name, done.old_name, done.new_name) == (
        "Line manager",
        "user-mgr",
        "Nia New",
    )
    assert done.request.state.stages[0].approvers == (NEW_APPROVER,)
    assert done.request.version == request.version + 1
    assert repo.approvers(request.id) == [("manager", NEW_APPROVER)]
    event = repo.events(request.id)[-1]
    assert (event.action, event.actor_id, event.actor_name, event.at, event.comment) == (
        "reassigned",
        ADMIN_ID,
        "Ada Admin",
        clock.now,
        "Max is on leave",
    )
    detail = json.loads(event.detail)
    assert (detail["stage"], detail["from"], detail["to"]) == ("manager", "user-mgr", NEW_APPROVER)
    # The old approver's click changes nothing and says why; the new one decides.
    with pytest.raises(NotAllowed, match="Ada Admin gave your approval of this request to Nia New"):
        await service.decide(MANAGER, request.id, items="all", approve=True)
    assert repo.get(request.id).version == done.request.version  # type: ignore[union-attr]
    new = make_actor(NEW_APPROVER)
    result = await service.decide(new, request.id, items="all", approve=True)
    assert result.changed and result.request.state.current_stage.id == "security"  # type: ignore[union-attr]
    # The waiting list follows the stored approvers.
    assert await service.waiting_for(MANAGER) == []


async def test_what_a_reassignment_refuses_changes_nothing(
    engine: Engine, clock: FakeClock, service: ApprovalService, admin: AdminService
) -> None:
    repo = ServiceRequestRepository(engine)
    request = await submit_laptops(service)
    await service.decide(MANAGER, request.id, items="all", approve=True)
    await service.decide(SECURITY[0], request.id, items="all", approve=True)  # all must approve
    before = repo.get(request.id)

    usual = {
        "stage_id": "security",
        "old_approver": SECURITY[1].user_id,
        "new_approver": NEW_APPROVER,
        "comment": None,
    }
    refusals: list[tuple[dict[str, str], type[Exception], str]] = [
        ({"new_approver": "user-new"}, InputError, "Entra object id"),
        ({"stage_id": "manager"}, NotAllowed, "moved on to Security"),
        ({"old_approver": MANAGER.user_id}, NotAllowed, "no longer an approver"),
        ({"old_approver": SECURITY[0].user_id}, NotAllowed, "already decided"),
        ({"comment": "x" * 1001}, InputError, "at most 1000"),
    ]
    for changes, error, text in refusals:
        with pytest.raises(error, match=text):
            await admin.reassign(ADMIN, request.id, **(usual | changes))  # type: ignore[arg-type]
    with pytest.raises(RequestNotFound):
        await admin.reassign(ADMIN_ELSEWHERE, request.id, **usual)  # type: ignore[arg-type]
    with pytest.raises(NotAdmin):
        await admin.reassign(MANAGER, request.id, **usual)  # type: ignore[arg-type]
    assert repo.get(request.id) == before
    assert [e.action for e in repo.events(request.id)][-1] == "approved"


async def test_the_requester_or_a_current_approver_cannot_be_the_new_approver(
    engine: Engine, clock: FakeClock
) -> None:
    guid_requester = make_actor("c2c2c2c2-0000-4000-8000-000000000003", name="Gil Guid")
    service = make_service(engine, clock)
    admin = make_admin(engine, clock, service)
    request = await service.submit(guid_requester, "stationery", {"note": "a"}, submission_id="g")
    second_panel = await admin.reassign(
        ADMIN,
        request.id,
        stage_id="panel",
        old_approver=PANEL[0].user_id,
        new_approver=NEW_APPROVER,
        comment=None,
    )
    assert NEW_APPROVER in second_panel.request.state.stages[0].approvers

    for new, text in ((guid_requester.user_id, "requester"), (NEW_APPROVER, "already approves")):
        with pytest.raises(InputError, match=text):
            await admin.reassign(
                ADMIN,
                request.id,
                stage_id="panel",
                old_approver=PANEL[1].user_id,
                new_approver=new,
                comment=None,
            )
    decided = await service.decide(PANEL[1], request.id, items="all", approve=True)
    assert decided.changed
    with pytest.raises(NotAllowed, match="no longer waits for approval"):
        await admin.reassign(
            ADMIN,
            request.id,
            stage_id="panel",
            old_approver=PANEL[2].user_id,
            new_approver="d3d3d3d3-0000-4000-8000-000000000004",
            comment=None,
        )


# --- Racing a decision --------------------------------------------------------------------------


class _Interleaved(ServiceRequestRepository):
    """Runs `meanwhile` once, just before the first conditional write: another change lands
    between this one's read and its write."""

    def __init__(self, engine: Engine, meanwhile: Callable[[], object]) -> None:
        super().__init__(engine)
        self._meanwhile: Callable[[], object] | None = meanwhile

    def save_decision(self, *args: object, **kwargs: object) -> bool:
        if self._meanwhile is not None:
            run, self._meanwhile = self._meanwhile, None
            run()
        return super().save_decision(*args, **kwargs)  # type: ignore[arg-type]


def _service_on(
    repo: ServiceRequestRepository,
    clock: FakeClock,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> ApprovalService:
    return ApprovalService(
        requests=repo,
        catalogue=catalogue(),
        policies=policies(),
        resolver_for=lambda actor: RESOLVER,
        clock=clock,
        new_id=new_id,
    )


async def test_a_decision_landing_first_makes_the_reassignment_change_nothing(
    engine: Engine, clock: FakeClock, service: ApprovalService
) -> None:
    request = await submit_laptops(service)
    repo = _Interleaved(
        engine, lambda: service._decide(MANAGER, request.id, "all", True, "approved first")
    )
    admin = make_admin(engine, clock, _service_on(repo, clock))

    with pytest.raises(NotAllowed, match="moved on to Security"):
        await admin.reassign(
            ADMIN,
            request.id,
            stage_id="manager",
            old_approver=MANAGER.user_id,
            new_approver=NEW_APPROVER,
            comment=None,
        )

    actions = [e.action for e in repo.events(request.id)]
    assert actions == ["submitted", "approved"]
    assert repo.approvers(request.id) == [("security", a.user_id) for a in SECURITY]


async def test_a_reassignment_landing_first_makes_the_old_approvers_decision_change_nothing(
    engine: Engine, clock: FakeClock, service: ApprovalService, admin: AdminService
) -> None:
    request = await submit_laptops(service)

    def reassign() -> None:
        asyncio.run(
            admin.reassign(
                ADMIN,
                request.id,
                stage_id="manager",
                old_approver=MANAGER.user_id,
                new_approver=NEW_APPROVER,
                comment=None,
            )
        )

    repo = _Interleaved(engine, reassign)
    racing = _service_on(repo, clock)

    with pytest.raises(NotAllowed, match="gave your approval of this request"):
        await racing.decide(MANAGER, request.id, items="all", approve=True)

    assert [e.action for e in repo.events(request.id)] == ["submitted", "reassigned"]
    assert repo.approvers(request.id) == [("manager", NEW_APPROVER)]


RACES = 8


def race_once(service: ApprovalService, request_id: str) -> dict[str, str]:
    """The first panel member approves while an admin gives their place to another, at once
    (two threads released together): what each of them got, "won" or "lost"."""
    barrier = threading.Barrier(2)
    outcome: dict[str, str] = {}

    def decide() -> None:
        barrier.wait(30)
        try:
            changed = service._decide(PANEL[0], request_id, "all", True, None).changed
            outcome["decision"] = "won" if changed else "lost"
        except NotAllowed:
            outcome["decision"] = "lost"

    def reassign() -> None:
        barrier.wait(30)
        try:
            service._reassign(ADMIN, request_id, "panel", PANEL[0].user_id, NEW_APPROVER, None)
            outcome["reassign"] = "won"
        except NotAllowed:
            outcome["reassign"] = "lost"

    threads = [threading.Thread(target=decide), threading.Thread(target=reassign)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcome


def test_a_decision_and_a_reassignment_at_once_have_exactly_one_winner(
    race_engine: Engine, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.approvals.service")
    service = make_service(race_engine, clock)
    repo = ServiceRequestRepository(race_engine)
    warm_pool(race_engine, 4)
    for index in range(RACES):
        request = asyncio.run(stationery(service, f"race-{index}"))

        outcome = race_once(service, request.id)

        assert sorted(outcome.values()) == ["lost", "won"], outcome
        actions = [e.action for e in repo.events(request.id)]
        stored = repo.get(request.id)
        assert stored is not None
        approvers = json.loads(stored.state)["stages"][0]["approvers"]
        if outcome["decision"] == "won":
            assert actions == ["submitted", "approved"] and stored.status == "approved"
            assert NEW_APPROVER not in approvers
        else:
            assert actions == ["submitted", "reassigned"] and stored.status == "pending"
            assert NEW_APPROVER in approvers and PANEL[0].user_id not in approvers
    # The loser had read the request before the winner wrote: its conditional write found a newer
    # version and it worked the change out again (measured: nearly every race gets here).
    retries = [r for r in caplog.records if "trying again" in r.getMessage()]
    assert retries, "no race reached the conditional write: the two did not overlap"
