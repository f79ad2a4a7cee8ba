"""Errors of service requests and approvals (the Teams handler maps each to what the user sees)."""

from __future__ import annotations

from datetime import datetime

from bot.errors import FrontdeskError, InputError, MalformedAction, NotAllowed


class CatalogueError(ValueError):
    """The catalogue or policies file cannot be used; the message names the file and the path."""


class FormError(InputError):
    """A submitted service form cannot be used; `field` is the input to fix."""

    field: str

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class PolicyError(FrontdeskError):
    """A stage of the request's approval policy resolves to no approver."""

    def __init__(self, *, policy_id: str, stage_id: str, stage_name: str, reason: str) -> None:
        super().__init__(
            f"stage {stage_id!r} ({stage_name}) of approval policy {policy_id!r} "
            f"has no approvers: {reason}"
        )
        self.policy_id = policy_id
        self.stage_id = stage_id
        self.stage_name = stage_name
        self.reason = reason


class NotAnApprover(NotAllowed):
    """The user may not decide at this stage (not one of its approvers, or not its turn yet)."""

    def __init__(self, approver_id: str, stage_id: str, reason: str) -> None:
        super().__init__(f"{approver_id} cannot decide at stage {stage_id!r}: {reason}")
        self.approver_id = approver_id
        self.stage_id = stage_id
        self.reason = reason


class AlreadyDecided(FrontdeskError):
    """The item was decided before this click: `by` decided it `at` (UTC)."""

    def __init__(
        self, by: str, at: datetime, *, item_id: str, stage_id: str, approved: bool
    ) -> None:
        verdict = "approved" if approved else "rejected"
        super().__init__(
            f"item {item_id!r} was already {verdict} at stage {stage_id!r} "
            f"by {by} at {at.isoformat()}"
        )
        self.by = by
        self.at = at
        self.item_id = item_id
        self.stage_id = stage_id
        self.approved = approved


class UnknownItem(MalformedAction):
    """A decision names an item the request does not have."""

    def __init__(self, item_id: str) -> None:
        super().__init__(f"the request has no item {item_id!r}")
        self.item_id = item_id
