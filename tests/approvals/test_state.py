"""The approval state machine: per-item decisions through ordered stages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from bot.approvals.errors import AlreadyDecided, NotAnApprover, UnknownItem
from bot.approvals.models import RequestItem
from bot.approvals.policy import PlannedStage, StageMode
from bot.approvals.state import (
    ApprovalState,
    ItemOutcome,
    Outcome,
    RequestStatus,
    decide,
)
from bot.errors import InputError

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=7)

MANAGER, DEPUTY = "manager-1", "deputy-1"
FINANCE_A, FINANCE_B = "finance-a", "finance-b"
OWNER_A, OWNER_B = "owner-a", "owner-b"
STRANGER = "someone-else"

ITEMS = (
    RequestItem("lunch.hot-buffet", "Lunch: Hot buffet", Decimal(12), Decimal("16.50")),
    RequestItem("equipment.projector", "Equipment: Portable projector", Decimal(1), Decimal(45)),
)
CATERING, PROJECTOR = (item.id for item in ITEMS)


def stage(stage_id: str, *approvers: str, mode: StageMode = StageMode.ANY) -> PlannedStage:
    return PlannedStage(stage_id, stage_id.title(), mode, approvers)


def two_stages() -> ApprovalState:
    """Line manager (either of two), then finance (either of two)."""
    return ApprovalState.start(
        [stage("manager", MANAGER, DEPUTY), stage("finance", FINANCE_A, FINANCE_B)], ITEMS
    )


def owners_all() -> ApprovalState:
    """Both room owners must approve."""
    return ApprovalState.start([stage("owners", OWNER_A, OWNER_B, mode=StageMode.ALL)], ITEMS)


def approve(
    state: ApprovalState, stage_id: str, who: str, *items: str, at: datetime = NOW
) -> Outcome:
    return decide(
        state,
        stage_id=stage_id,
        approver_id=who,
        item_ids=list(items) or "all",
        approve=True,
        now=at,
    )


def reject(
    state: ApprovalState, stage_id: str, who: str, *items: str, at: datetime = NOW
) -> Outcome:
    return decide(
        state,
        stage_id=stage_id,
        approver_id=who,
        item_ids=list(items) or "all",
        approve=False,
        comment="Not this time.",
        now=at,
    )


# --- any mode -----------------------------------------------------------------------------------


def test_a_new_approval_waits_for_the_first_stage() -> None:
    state = two_stages()

    assert state.current_stage == stage("manager", MANAGER, DEPUTY)
    assert state.status is RequestStatus.PENDING
    assert state.item_outcomes() == {CATERING: ItemOutcome.PENDING, PROJECTOR: ItemOutcome.PENDING}
    assert state.open_items(MANAGER) == state.open_items(DEPUTY) == (CATERING, PROJECTOR)
    assert state.open_items(FINANCE_A) == ()


def test_in_any_mode_the_first_decision_wins() -> None:
    outcome = approve(two_stages(), "manager", MANAGER)

    assert outcome.decided == outcome.approved == (CATERING, PROJECTOR)
    assert outcome.rejected == ()
    assert outcome.stage_completed
    assert outcome.next_stage == stage("finance", FINANCE_A, FINANCE_B)
    assert not outcome.finished
    assert outcome.status is RequestStatus.PENDING
    assert outcome.state.open_items(DEPUTY) == ()


def test_a_second_decision_in_any_mode_says_who_decided_and_when() -> None:
    first = approve(two_stages(), "manager", MANAGER, CATERING)

    with pytest.raises(AlreadyDecided) as caught:
        reject(first.state, "manager", DEPUTY, CATERING, at=LATER)

    assert (caught.value.by, caught.value.at) == (MANAGER, NOW)
    assert (caught.value.item_id, caught.value.stage_id) == (CATERING, "manager")
    assert caught.value.approved is True


def test_a_stale_card_after_the_stage_closed_says_who_decided() -> None:
    done = approve(two_stages(), "manager", DEPUTY).state

    with pytest.raises(AlreadyDecided) as caught:
        approve(done, "manager", MANAGER, at=LATER)

    assert (caught.value.by, caught.value.at, caught.value.item_id) == (DEPUTY, NOW, CATERING)


def test_nothing_is_recorded_unless_every_item_asked_for_is_open() -> None:
    first = approve(two_stages(), "manager", MANAGER, CATERING)

    with pytest.raises(AlreadyDecided):
        reject(first.state, "manager", DEPUTY, PROJECTOR, CATERING)
    second = reject(first.state, "manager", DEPUTY, PROJECTOR)

    assert second.decided == second.rejected == (PROJECTOR,)
    assert len(second.state.decisions) == 2


def test_all_means_the_items_still_open() -> None:
    first = approve(two_stages(), "manager", MANAGER, CATERING)

    second = reject(first.state, "manager", DEPUTY)

    assert second.decided == (PROJECTOR,)


# --- all mode -----------------------------------------------------------------------------------


def test_in_all_mode_every_approver_must_approve() -> None:
    first = approve(owners_all(), "owners", OWNER_A)

    assert first.decided == (CATERING, PROJECTOR)
    assert first.approved == ()
    assert not first.stage_completed
    assert first.state.open_items(OWNER_A) == ()
    assert first.state.open_items(OWNER_B) == (CATERING, PROJECTOR)

    second = approve(first.state, "owners", OWNER_B, at=LATER)

    assert second.approved == (CATERING, PROJECTOR)
    assert second.stage_completed and second.finished
    assert second.status is RequestStatus.APPROVED
    assert second.final == {CATERING: ItemOutcome.APPROVED, PROJECTOR: ItemOutcome.APPROVED}


def test_in_all_mode_each_approver_decides_once() -> None:
    first = approve(owners_all(), "owners", OWNER_A, CATERING)

    with pytest.raises(AlreadyDecided) as caught:
        reject(first.state, "owners", OWNER_A, CATERING, at=LATER)

    assert (caught.value.by, caught.value.at, caught.value.approved) == (OWNER_A, NOW, True)


def test_in_all_mode_one_rejection_rejects_the_item() -> None:
    first = approve(owners_all(), "owners", OWNER_A)
    second = reject(first.state, "owners", OWNER_B, PROJECTOR, at=LATER)

    assert second.rejected == (PROJECTOR,)
    assert not second.stage_completed
    assert second.state.stage_outcomes("owners") == {
        CATERING: ItemOutcome.PENDING,
        PROJECTOR: ItemOutcome.REJECTED,
    }


def test_in_all_mode_a_rejected_item_is_closed_to_the_others() -> None:
    first = reject(owners_all(), "owners", OWNER_A, PROJECTOR)

    with pytest.raises(AlreadyDecided) as caught:
        approve(first.state, "owners", OWNER_B, PROJECTOR, at=LATER)

    assert (caught.value.by, caught.value.approved) == (OWNER_A, False)
    assert first.state.open_items(OWNER_B) == (CATERING,)


# --- Per item, through stages -------------------------------------------------------------------


def test_approve_catering_reject_the_projector_is_partial_approval() -> None:
    state = ApprovalState.start([stage("manager", MANAGER)], ITEMS)

    first = approve(state, "manager", MANAGER, CATERING)
    second = reject(first.state, "manager", MANAGER, PROJECTOR, at=LATER)

    assert (first.approved, first.stage_completed) == ((CATERING,), False)
    assert second.finished
    assert second.status is RequestStatus.PARTIALLY_APPROVED
    assert second.final == {CATERING: ItemOutcome.APPROVED, PROJECTOR: ItemOutcome.REJECTED}
    assert second.state.decisions[-1].comment == "Not this time."


def test_rejected_items_go_to_no_later_stage() -> None:
    first = approve(two_stages(), "manager", MANAGER, CATERING)
    second = reject(first.state, "manager", DEPUTY, PROJECTOR)

    assert second.next_stage == stage("finance", FINANCE_A, FINANCE_B)
    assert second.state.open_items(FINANCE_A) == (CATERING,)
    assert second.state.stage_outcomes("finance") == {CATERING: ItemOutcome.PENDING}

    with pytest.raises(AlreadyDecided) as caught:
        approve(second.state, "finance", FINANCE_A, PROJECTOR, at=LATER)
    assert (caught.value.by, caught.value.stage_id, caught.value.approved) == (
        DEPUTY,
        "manager",
        False,
    )

    third = approve(second.state, "finance", FINANCE_B, at=LATER)

    assert third.decided == (CATERING,)
    assert third.status is RequestStatus.PARTIALLY_APPROVED
    assert third.final == {CATERING: ItemOutcome.APPROVED, PROJECTOR: ItemOutcome.REJECTED}


def test_a_request_rejected_early_skips_the_later_stages() -> None:
    outcome = reject(two_stages(), "manager", MANAGER)

    assert outcome.rejected == (CATERING, PROJECTOR)
    assert outcome.stage_completed and outcome.finished
    assert outcome.next_stage is None
    assert outcome.status is RequestStatus.REJECTED
    assert outcome.state.current_stage is None
    assert outcome.state.stage_outcomes("finance") == {}


def test_a_later_rejection_after_an_earlier_approval_rejects() -> None:
    first = approve(two_stages(), "manager", MANAGER)
    second = reject(first.state, "finance", FINANCE_A, CATERING, at=LATER)
    third = approve(second.state, "finance", FINANCE_B, PROJECTOR, at=LATER)

    assert third.final == {CATERING: ItemOutcome.REJECTED, PROJECTOR: ItemOutcome.APPROVED}
    assert third.status is RequestStatus.PARTIALLY_APPROVED


def test_an_approval_without_stages_is_approved_at_once() -> None:
    state = ApprovalState.start([], ITEMS)

    assert state.finished
    assert state.status is RequestStatus.APPROVED
    assert state.item_outcomes() == {
        CATERING: ItemOutcome.APPROVED,
        PROJECTOR: ItemOutcome.APPROVED,
    }


# --- Who may decide -----------------------------------------------------------------------------


def test_someone_who_is_not_an_approver_is_refused() -> None:
    with pytest.raises(NotAnApprover) as caught:
        approve(two_stages(), "manager", STRANGER)

    assert (caught.value.approver_id, caught.value.stage_id) == (STRANGER, "manager")
    assert caught.value.reason == "not an approver of this stage"


def test_a_later_stage_waits_its_turn() -> None:
    with pytest.raises(NotAnApprover) as caught:
        approve(two_stages(), "finance", FINANCE_A)

    assert caught.value.reason == "this stage has not started yet"


def test_an_approver_of_another_stage_cannot_decide_this_one() -> None:
    with pytest.raises(NotAnApprover):
        approve(two_stages(), "manager", FINANCE_A)


def test_an_unknown_stage_is_refused() -> None:
    with pytest.raises(NotAnApprover, match="the request has no such stage"):
        approve(two_stages(), "legal", MANAGER)


def test_an_unknown_item_is_malformed() -> None:
    with pytest.raises(UnknownItem) as caught:
        approve(two_stages(), "manager", MANAGER, CATERING, "caviar")

    assert caught.value.item_id == "caviar"


def test_no_items_chosen_is_the_users_mistake() -> None:
    with pytest.raises(InputError) as caught:
        decide(
            two_stages(),
            stage_id="manager",
            approver_id=MANAGER,
            item_ids=[],
            approve=True,
            now=NOW,
        )

    assert caught.value.field == "items"


def test_an_overlong_comment_is_the_users_mistake() -> None:
    with pytest.raises(InputError) as caught:
        decide(
            two_stages(),
            stage_id="manager",
            approver_id=MANAGER,
            item_ids="all",
            approve=False,
            comment="x" * 1001,
            now=NOW,
        )

    assert caught.value.field == "comment"


def test_times_must_carry_their_zone_and_are_kept_in_utc() -> None:
    paris = timezone(timedelta(hours=1))

    with pytest.raises(ValueError, match="timezone-aware"):
        approve(two_stages(), "manager", MANAGER, at=datetime(2026, 11, 23, 10, 0))
    outcome = approve(
        two_stages(), "manager", MANAGER, at=datetime(2026, 11, 23, 10, 0, tzinfo=paris)
    )

    assert outcome.state.decisions[0].at == NOW
    assert outcome.state.decisions[0].at.tzinfo is UTC


def test_a_single_item_id_string_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        decide(
            two_stages(),
            stage_id="manager",
            approver_id=MANAGER,
            item_ids=CATERING,
            approve=True,
            now=NOW,
        )


@pytest.mark.parametrize(
    ("stages", "items", "words"),
    [
        ([stage("manager", MANAGER)], [], "at least one item"),
        ([stage("manager", MANAGER)], [ITEMS[0], ITEMS[0]], "item ids must be unique"),
        ([stage("a", MANAGER), stage("a", DEPUTY)], ITEMS, "stage ids must be unique"),
        ([stage("manager")], ITEMS, "has no approvers"),
    ],
)
def test_an_approval_that_cannot_work_is_refused_at_the_start(
    stages: list[PlannedStage], items: list[RequestItem], words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        ApprovalState.start(stages, items)


# --- Stored as JSON -----------------------------------------------------------------------------


def test_the_state_round_trips_through_json() -> None:
    first = approve(two_stages(), "manager", MANAGER, CATERING)
    second = reject(first.state, "manager", DEPUTY, PROJECTOR, at=LATER)

    stored = json.dumps(second.state.to_dict())
    restored = ApprovalState.from_dict(json.loads(stored))

    assert restored == second.state
    assert restored.current_stage == second.state.current_stage
    assert json.loads(stored)["decisions"][1] == {
        "stage": "manager",
        "item": PROJECTOR,
        "approver": DEPUTY,
        "approved": False,
        "at": "2026-11-23T09:07:00+00:00",
        "comment": "Not this time.",
    }
    assert approve(restored, "finance", FINANCE_A, at=LATER) == approve(
        second.state, "finance", FINANCE_A, at=LATER
    )


def test_the_stored_form_is_plain_json() -> None:
    data = two_stages().to_dict()

    assert json.loads(json.dumps(data)) == data
    assert data == {
        "format": 1,
        "stages": [
            {"id": "manager", "name": "Manager", "mode": "any", "approvers": [MANAGER, DEPUTY]},
            {
                "id": "finance",
                "name": "Finance",
                "mode": "any",
                "approvers": [FINANCE_A, FINANCE_B],
            },
        ],
        "items": [CATERING, PROJECTOR],
        "decisions": [],
    }


def bad(change: dict[str, Any]) -> dict[str, Any]:
    data = approve(two_stages(), "manager", MANAGER, CATERING).state.to_dict()
    for key, value in change.items():
        data[key] = value
    return data


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(bad({"format": 2}), id="unknown format"),
        pytest.param(bad({"items": []}), id="no items"),
        pytest.param(
            bad({"decisions": [{**bad({})["decisions"][0], "approver": STRANGER}]}),
            id="decision by a stranger",
        ),
        pytest.param(
            bad({"decisions": [{**bad({})["decisions"][0], "at": "2026-11-23T09:00:00"}]}),
            id="time without zone",
        ),
        pytest.param(bad({"stages": "manager"}), id="stages not a list"),
    ],
)
def test_stored_data_that_is_no_state_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ApprovalState.from_dict(data)
