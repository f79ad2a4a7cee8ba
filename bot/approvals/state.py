"""The approval of one service request: planned stages, decided item by item, in order.

`ApprovalState` holds only the planned stages, the item ids and every decision so far; where the
request stands (the current stage, each item's outcome) is worked out from them, so it cannot
disagree with the decisions. `decide` checks one approver's click and returns the new state with
what changed. The state round-trips through plain JSON (`to_dict`, `from_dict`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bot.approvals.errors import AlreadyDecided, NotAnApprover, UnknownItem
from bot.approvals.models import RequestItem
from bot.approvals.policy import PlannedStage, StageMode
from bot.errors import InputError

FORMAT = 1
MAX_COMMENT = 1000


class ItemOutcome(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    PARTIALLY_APPROVED = "partially_approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Decision:
    """One approver's verdict on one item at one stage; `at` is in UTC."""

    stage_id: str
    item_id: str
    approver_id: str
    approved: bool
    at: datetime
    comment: str | None = None


@dataclass(frozen=True)
class ApprovalState:
    """The planned stages, the items to decide and the decisions so far, oldest first."""

    stages: tuple[PlannedStage, ...]
    item_ids: tuple[str, ...]
    decisions: tuple[Decision, ...] = ()

    @classmethod
    def start(cls, stages: Sequence[PlannedStage], items: Sequence[RequestItem]) -> ApprovalState:
        """A new approval; with no stages it is finished at once, every item approved."""
        state = cls(stages=tuple(stages), item_ids=tuple(item.id for item in items))
        _check(state)
        return state

    @property
    def current_stage(self) -> PlannedStage | None:
        """The stage whose approvers decide now; None once the request is finished."""
        current = _walk(self).current
        return None if current is None else self.stages[current]

    @property
    def finished(self) -> bool:
        return _walk(self).current is None

    @property
    def status(self) -> RequestStatus:
        return _status(_walk(self), self.item_ids)

    def item_outcomes(self) -> dict[str, ItemOutcome]:
        """Each item's outcome so far: rejected at any stage, approved once all stages are."""
        return _outcomes(_walk(self), self.item_ids)

    def stage_outcomes(self, stage_id: str) -> dict[str, ItemOutcome]:
        """The items that reached the stage and their outcome there (empty: not reached yet)."""
        walk = _walk(self)
        for stage, settled in zip(self.stages, walk.reached, strict=False):
            if stage.id == stage_id:
                return {item: result.outcome for item, result in settled.items()}
        return {}

    def open_items(self, approver_id: str) -> tuple[str, ...]:
        """The items this approver can decide now (what their card offers)."""
        walk = _walk(self)
        if walk.current is None:
            return ()
        stage = self.stages[walk.current]
        if approver_id not in stage.approvers:
            return ()
        settled = walk.reached[walk.current]
        return tuple(
            item
            for item in self.item_ids
            if _is_open(self, stage, settled.get(item), item, approver_id)
        )

    def to_dict(self) -> dict[str, Any]:
        """The state as plain JSON data (str, bool, list, dict; times as ISO 8601 in UTC)."""
        return {
            "format": FORMAT,
            "stages": [
                {
                    "id": stage.id,
                    "name": stage.name,
                    "mode": stage.mode.value,
                    "approvers": list(stage.approvers),
                }
                for stage in self.stages
            ],
            "items": list(self.item_ids),
            "decisions": [
                {
                    "stage": decision.stage_id,
                    "item": decision.item_id,
                    "approver": decision.approver_id,
                    "approved": decision.approved,
                    "at": decision.at.isoformat(),
                    "comment": decision.comment,
                }
                for decision in self.decisions
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApprovalState:
        """The state `to_dict` gave; ValueError when the data is not such a state."""
        stored = _StoredState.model_validate(data)
        state = cls(
            stages=tuple(
                PlannedStage(stage.id, stage.name, stage.mode, tuple(stage.approvers))
                for stage in stored.stages
            ),
            item_ids=tuple(stored.items),
            decisions=tuple(
                Decision(
                    stage_id=decision.stage,
                    item_id=decision.item,
                    approver_id=decision.approver,
                    approved=decision.approved,
                    at=decision.at.astimezone(UTC),
                    comment=decision.comment,
                )
                for decision in stored.decisions
            ),
        )
        _check(state)
        return state


@dataclass(frozen=True)
class Outcome:
    """What one decision changed: the new state, items settled at the stage, stage and request."""

    state: ApprovalState
    stage_id: str
    decided: tuple[str, ...]  # the items this decision was recorded on
    approved: tuple[str, ...]  # items now approved at this stage (in `all` mode: by everyone)
    rejected: tuple[str, ...]  # items now rejected; they go to no later stage
    stage_completed: bool
    next_stage: PlannedStage | None  # the stage that starts now, if one does
    status: RequestStatus
    final: Mapping[str, ItemOutcome] | None  # each item's outcome, once the request is finished

    @property
    def finished(self) -> bool:
        return self.final is not None


def decide(
    state: ApprovalState,
    *,
    stage_id: str,
    approver_id: str,
    item_ids: Sequence[str] | Literal["all"],
    approve: bool,
    comment: str | None = None,
    now: datetime,
) -> Outcome:
    """Record one approver's decision on some items (or all they can decide) at a stage.

    Only the current stage's approvers decide (else NotAnApprover). In `any` mode the first
    decision on an item settles it; in `all` mode each approver decides each item once and one
    rejection settles it. A click on something already settled raises AlreadyDecided naming who
    settled it and when; nothing is recorded unless every item asked for is open.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    index = next((i for i, stage in enumerate(state.stages) if stage.id == stage_id), None)
    if index is None:
        raise NotAnApprover(approver_id, stage_id, "the request has no such stage")
    stage = state.stages[index]
    if approver_id not in stage.approvers:
        raise NotAnApprover(approver_id, stage_id, "not an approver of this stage")
    wanted = _wanted(state, item_ids)
    before = _walk(state)
    if before.current is not None and index > before.current:
        raise NotAnApprover(approver_id, stage_id, "this stage has not started yet")
    if before.current != index:
        raise _already_decided(state, before, index, approver_id, wanted or state.item_ids)
    settled = before.reached[index]
    if wanted is None:
        wanted = tuple(
            item
            for item in state.item_ids
            if _is_open(state, stage, settled.get(item), item, approver_id)
        )
        if not wanted:
            raise _already_decided(state, before, index, approver_id, state.item_ids)
    for item in wanted:
        if not _is_open(state, stage, settled.get(item), item, approver_id):
            raise _already_decided(state, before, index, approver_id, (item,))
    note = clean_comment(comment)
    at = now.astimezone(UTC)
    new_state = replace(
        state,
        decisions=state.decisions
        + tuple(Decision(stage.id, item, approver_id, approve, at, note) for item in wanted),
    )
    after = _walk(new_state)
    now_settled = after.reached[index]
    completed = after.current != index
    return Outcome(
        state=new_state,
        stage_id=stage.id,
        decided=wanted,
        approved=tuple(i for i in wanted if now_settled[i].outcome is ItemOutcome.APPROVED),
        rejected=tuple(i for i in wanted if now_settled[i].outcome is ItemOutcome.REJECTED),
        stage_completed=completed,
        next_stage=(
            state.stages[after.current] if completed and after.current is not None else None
        ),
        status=_status(after, state.item_ids),
        final=_outcomes(after, state.item_ids) if after.current is None else None,
    )


# --- Working out where a request stands ---------------------------------------------------------


@dataclass(frozen=True)
class _Settled:
    outcome: ItemOutcome
    decision: Decision | None  # the decision that settled it (in `all` mode: the last approval)


@dataclass(frozen=True)
class _Walk:
    current: int | None  # index of the current stage; None when finished
    reached: tuple[dict[str, _Settled], ...]  # per stage reached: its items and their outcome
    rejected: dict[str, Decision]  # item -> the decision that rejected it


def _walk(state: ApprovalState) -> _Walk:
    by_stage_item: dict[tuple[str, str], list[Decision]] = {}
    for decision in state.decisions:
        by_stage_item.setdefault((decision.stage_id, decision.item_id), []).append(decision)
    rejected: dict[str, Decision] = {}
    reached: list[dict[str, _Settled]] = []
    for index, stage in enumerate(state.stages):
        settled = {
            item: _settle(stage, by_stage_item.get((stage.id, item), []))
            for item in state.item_ids
            if item not in rejected
        }
        reached.append(settled)
        for item, result in settled.items():
            if result.outcome is ItemOutcome.REJECTED and result.decision is not None:
                rejected[item] = result.decision
        if any(result.outcome is ItemOutcome.PENDING for result in settled.values()):
            return _Walk(index, tuple(reached), rejected)
    return _Walk(None, tuple(reached), rejected)


def _settle(stage: PlannedStage, decisions: Sequence[Decision]) -> _Settled:
    if stage.mode is StageMode.ANY:
        if not decisions:
            return _Settled(ItemOutcome.PENDING, None)
        first = decisions[0]
        verdict = ItemOutcome.APPROVED if first.approved else ItemOutcome.REJECTED
        return _Settled(verdict, first)
    rejection = next((d for d in decisions if not d.approved), None)
    if rejection is not None:
        return _Settled(ItemOutcome.REJECTED, rejection)
    approvals = [d for d in decisions if d.approved]
    if approvals and {d.approver_id for d in approvals} >= set(stage.approvers):
        return _Settled(ItemOutcome.APPROVED, approvals[-1])
    return _Settled(ItemOutcome.PENDING, None)


def _is_open(
    state: ApprovalState,
    stage: PlannedStage,
    result: _Settled | None,
    item: str,
    approver_id: str,
) -> bool:
    if result is None or result.outcome is not ItemOutcome.PENDING:
        return False
    return stage.mode is StageMode.ANY or _own_decision(state, stage, item, approver_id) is None


def _own_decision(
    state: ApprovalState, stage: PlannedStage, item: str, approver_id: str
) -> Decision | None:
    return next(
        (
            d
            for d in state.decisions
            if d.stage_id == stage.id and d.item_id == item and d.approver_id == approver_id
        ),
        None,
    )


def _already_decided(
    state: ApprovalState, walk: _Walk, index: int, approver_id: str, items: Sequence[str]
) -> AlreadyDecided:
    """Who closed the first of these items to this approver at this stage, and when."""
    stage = state.stages[index]
    for item in items:
        result = walk.reached[index].get(item) if index < len(walk.reached) else None
        decision = (
            _own_decision(state, stage, item, approver_id)
            or (result.decision if result is not None else None)
            or walk.rejected.get(item)
        )
        if decision is not None:
            return AlreadyDecided(
                decision.approver_id,
                decision.at,
                item_id=item,
                stage_id=decision.stage_id,
                approved=decision.approved,
            )
    raise AssertionError("an item closed to this approver has a decision that closed it")


def _outcomes(walk: _Walk, item_ids: Sequence[str]) -> dict[str, ItemOutcome]:
    def outcome(item: str) -> ItemOutcome:
        if item in walk.rejected:
            return ItemOutcome.REJECTED
        return ItemOutcome.APPROVED if walk.current is None else ItemOutcome.PENDING

    return {item: outcome(item) for item in item_ids}


def _status(walk: _Walk, item_ids: Sequence[str]) -> RequestStatus:
    if walk.current is not None:
        return RequestStatus.PENDING
    rejected = sum(1 for item in item_ids if item in walk.rejected)
    if rejected == 0:
        return RequestStatus.APPROVED
    if rejected == len(item_ids):
        return RequestStatus.REJECTED
    return RequestStatus.PARTIALLY_APPROVED


def _wanted(
    state: ApprovalState, item_ids: Sequence[str] | Literal["all"]
) -> tuple[str, ...] | None:
    """The items asked for (None: all open ones); UnknownItem for an item the request lacks."""
    if item_ids == "all":
        return None
    if isinstance(item_ids, str):
        raise TypeError('item_ids takes a sequence of item ids or "all"')
    wanted = tuple(dict.fromkeys(item_ids))
    for item in wanted:
        if item not in state.item_ids:
            raise UnknownItem(item)
    if not wanted:
        raise InputError("Choose at least one item.", field="items")
    return wanted


def clean_comment(comment: str | None) -> str | None:
    """A comment as stored: trimmed, None when empty; InputError past MAX_COMMENT."""
    text = (comment or "").strip()
    if len(text) > MAX_COMMENT:
        raise InputError(
            f"The comment can be at most {MAX_COMMENT} characters long.", field="comment"
        )
    return text or None


def _check(state: ApprovalState) -> None:
    """ValueError unless the state is one `decide` can work with."""
    if not state.item_ids:
        raise ValueError("an approval needs at least one item")
    if len(set(state.item_ids)) != len(state.item_ids):
        raise ValueError("item ids must be unique")
    stages = {stage.id: stage for stage in state.stages}
    if len(stages) != len(state.stages):
        raise ValueError("stage ids must be unique")
    for stage in state.stages:
        if not stage.approvers:
            raise ValueError(f"stage {stage.id!r} has no approvers")
    for decision in state.decisions:
        decided_at = stages.get(decision.stage_id)
        if decided_at is None or decision.item_id not in state.item_ids:
            raise ValueError(f"a decision names an unknown stage or item: {decision}")
        if decision.approver_id not in decided_at.approvers:
            raise ValueError(f"a decision is by someone who is not an approver: {decision}")


# --- Stored form --------------------------------------------------------------------------------


class _Stored(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _StoredStage(_Stored):
    id: str
    name: str
    mode: StageMode
    approvers: Annotated[list[str], Field(min_length=1)]


class _StoredDecision(_Stored):
    stage: str
    item: str
    approver: str
    approved: bool
    at: AwareDatetime
    comment: str | None = None


class _StoredState(_Stored):
    format: Literal[1]
    stages: list[_StoredStage]
    items: list[str]
    decisions: list[_StoredDecision]
