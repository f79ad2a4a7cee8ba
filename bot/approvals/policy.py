"""Approval policies: who approves a service request, in which order, and when a stage applies.

The policies file (POLICIES_FILE) defines named groups of approvers and the policies. A policy is
an ordered list of stages; `plan_stages` turns it, for one request, into the stages that apply and
their approvers, with every lookup done through an `ApproverResolver`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from bot.approvals.errors import PolicyError
from bot.approvals.files import (
    ChannelId,
    Identifier,
    Problem,
    file_error,
    read_yaml,
    validate_document,
)
from bot.approvals.models import RequestItem, money

SETTING = "POLICIES_FILE"

MANAGER = "manager"
ROOM_OWNERS = "room_owners"

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ANY_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._@-]{0,127}$")


class StageMode(StrEnum):
    ANY = "any"  # the first approver to decide an item decides it
    ALL = "all"  # every approver must approve an item; one rejection rejects it


# --- What a stage's approvers are made of ------------------------------------------------------


@dataclass(frozen=True)
class NamedUser:
    user_id: str


@dataclass(frozen=True)
class RequesterManager:
    pass


@dataclass(frozen=True)
class RoomOwners:
    pass


@dataclass(frozen=True)
class GroupMembers:
    group_id: str


ApproverSource = NamedUser | RequesterManager | RoomOwners | GroupMembers


@dataclass(frozen=True)
class StageCondition:
    """When a stage applies: every condition given must hold (none given: always)."""

    total_above: Decimal | None = None
    category_in: tuple[str, ...] | None = None

    def holds_for(self, request: RequestFacts) -> bool:
        if self.total_above is not None and not request.total > self.total_above:
            return False
        return self.category_in is None or request.category_id in self.category_in


@dataclass(frozen=True)
class Stage:
    id: str
    name: str
    approvers: tuple[ApproverSource, ...]
    mode: StageMode = StageMode.ANY
    when: StageCondition = field(default_factory=StageCondition)
    skip_if_empty: bool = False


@dataclass(frozen=True)
class ApprovalPolicy:
    """Ordered stages; `fallback_channel` is where to turn when an approver cannot be reached."""

    id: str
    name: str
    stages: tuple[Stage, ...]
    fallback_channel: str


@dataclass(frozen=True)
class PolicyBook:
    """Every policy and group of the policies file, which `path` names in later errors."""

    path: Path
    policies: Mapping[str, ApprovalPolicy]
    groups: Mapping[str, tuple[str, ...]]

    def policy(self, policy_id: str) -> ApprovalPolicy:
        """The policy with that id; KeyError when there is none."""
        return self.policies[policy_id]


# --- Planning -----------------------------------------------------------------------------------


class ApproverResolver(Protocol):
    """The lookups a policy needs; the service prefetches them (Graph, the rooms file, ...)."""

    def manager_of(self, user_id: str) -> str | None:
        """The user's manager, or None when none is known."""
        ...

    def room_owners(self, room_id: str) -> list[str]:
        """Who owns the room (may approve what happens in it)."""
        ...

    def group_members(self, group_id: str) -> list[str]:
        """The members of a named approver group."""
        ...


@dataclass(frozen=True)
class StaticApproverResolver:
    """A resolver over fixed mappings: the local mode's manager_of, room owners and file groups."""

    managers: Mapping[str, str] = field(default_factory=dict)
    owners: Mapping[str, Sequence[str]] = field(default_factory=dict)
    groups: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def manager_of(self, user_id: str) -> str | None:
        return self.managers.get(user_id)

    def room_owners(self, room_id: str) -> list[str]:
        return list(self.owners.get(room_id, ()))

    def group_members(self, group_id: str) -> list[str]:
        return list(self.groups.get(group_id, ()))


@dataclass(frozen=True)
class KnownManager:
    """A resolver whose manager lookup for one user was made beforehand (Graph `/me/manager`,
    which is async and needs the user's own token); every other lookup goes to `base`."""

    base: ApproverResolver
    user_id: str
    manager_id: str | None

    def manager_of(self, user_id: str) -> str | None:
        if user_id == self.user_id:
            return self.manager_id
        return self.base.manager_of(user_id)

    def room_owners(self, room_id: str) -> list[str]:
        return self.base.room_owners(room_id)

    def group_members(self, group_id: str) -> list[str]:
        return self.base.group_members(group_id)


def asks_manager(policy: ApprovalPolicy) -> bool:
    """Whether any stage of the policy may need the requester's manager."""
    sources = (source for stage in policy.stages for source in stage.approvers)
    return any(isinstance(source, RequesterManager) for source in sources)


@dataclass(frozen=True)
class RequestFacts:
    """What a policy looks at: requester, category, items, and the linked booking's room."""

    requester_id: str
    category_id: str
    items: tuple[RequestItem, ...]
    room_id: str | None = None

    @property
    def total(self) -> Decimal:
        return money(sum((item.total for item in self.items), Decimal(0)))


@dataclass(frozen=True)
class PlannedStage:
    """A stage as it applies to one request: its approvers are user ids, in policy order."""

    id: str
    name: str
    mode: StageMode
    approvers: tuple[str, ...]


def plan_stages(
    policy: ApprovalPolicy, request: RequestFacts, resolver: ApproverResolver
) -> list[PlannedStage]:
    """The stages that apply to the request, with their approvers; PolicyError for an empty one.

    A stage whose `when` does not hold is left out. The requester never approves their own
    request. A stage left without approvers raises PolicyError naming it and why, unless it says
    `skip_if_empty`, when it is left out too.
    """
    planned: list[PlannedStage] = []
    for stage in policy.stages:
        if not stage.when.holds_for(request):
            continue
        approvers, gaps = _resolve(stage, request, resolver)
        eligible = tuple(user for user in approvers if user != request.requester_id)
        if eligible:
            planned.append(PlannedStage(stage.id, stage.name, stage.mode, eligible))
            continue
        if stage.skip_if_empty:
            continue
        reason = "the requester is the only approver" if approvers else "; ".join(gaps)
        raise PolicyError(
            policy_id=policy.id, stage_id=stage.id, stage_name=stage.name, reason=reason
        )
    return planned


def _resolve(
    stage: Stage, request: RequestFacts, resolver: ApproverResolver
) -> tuple[list[str], list[str]]:
    """The stage's approvers (deduplicated, in order) and why each source that gave none did."""
    approvers: list[str] = []
    gaps: list[str] = []
    for source in stage.approvers:
        found: list[str]
        match source:
            case NamedUser(user_id=user_id):
                found = [user_id]
            case RequesterManager():
                manager = resolver.manager_of(request.requester_id)
                found = [manager] if manager else []
                if not found:
                    gaps.append("no manager known for the requester")
            case RoomOwners():
                if request.room_id is None:
                    found = []
                    gaps.append("the request is not linked to a room booking")
                else:
                    found = resolver.room_owners(request.room_id)
                    if not found:
                        gaps.append(f"room {request.room_id!r} has no owners")
            case GroupMembers(group_id=group_id):
                found = resolver.group_members(group_id)
                if not found:
                    gaps.append(f"group {group_id!r} has no members")
        for user in found:
            if user and user not in approvers:
                approvers.append(user)
    return approvers, gaps


# --- The policies file --------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_Id = Identifier
_Name = Annotated[str, Field(min_length=1, max_length=120)]
_Amount = Annotated[Decimal, Field(ge=0, decimal_places=2)]


class _WhenEntry(_Strict):
    total_above: _Amount | None = None
    category_in: Annotated[list[_Id], Field(min_length=1)] | None = None


class _StageEntry(_Strict):
    id: _Id
    name: _Name
    approvers: Annotated[list[Any], Field(min_length=1)]
    mode: StageMode = StageMode.ANY
    when: _WhenEntry | None = None
    skip_if_empty: bool = False


class _PolicyEntry(_Strict):
    id: _Id
    name: _Name
    fallback_channel: ChannelId
    stages: Annotated[list[_StageEntry], Field(min_length=1)]


class PoliciesFile(_Strict):
    groups: dict[_Id, Annotated[list[Any], Field(min_length=1)]] = Field(default_factory=dict)
    policies: Annotated[list[_PolicyEntry], Field(min_length=1)]


def load_policies(path: Path) -> PolicyBook:
    """Read and validate a policies file; CatalogueError names the file and each faulty path."""
    parsed = validate_document(PoliciesFile, read_yaml(path, SETTING), path, SETTING)
    problems: list[Problem] = []
    groups: dict[str, tuple[str, ...]] = {}
    for group_id, members in parsed.groups.items():
        users: list[str] = []
        for index, member in enumerate(members):
            user = parse_user_id(member)
            if user is None:
                problems.append((f"groups.{group_id}.{index}", bad_user_message(member)))
            elif user not in users:
                users.append(user)
        groups[group_id] = tuple(users)
    policies: dict[str, ApprovalPolicy] = {}
    for p, entry in enumerate(parsed.policies):
        if entry.id in policies:
            problems.append((f"policies.{p}.id", f"policy id {entry.id!r} appears twice"))
        stages: list[Stage] = []
        for s, stage in enumerate(entry.stages):
            where = f"policies.{p}.stages.{s}"
            if any(stage.id == earlier.id for earlier in stages):
                problems.append((f"{where}.id", f"stage id {stage.id!r} appears twice"))
            sources = list(_sources(stage.approvers, groups, f"{where}.approvers", problems))
            when = stage.when or _WhenEntry()
            stages.append(
                Stage(
                    id=stage.id,
                    name=stage.name,
                    approvers=tuple(sources),
                    mode=stage.mode,
                    when=StageCondition(
                        total_above=(
                            money(when.total_above) if when.total_above is not None else None
                        ),
                        category_in=(
                            tuple(when.category_in) if when.category_in is not None else None
                        ),
                    ),
                    skip_if_empty=stage.skip_if_empty,
                )
            )
        policies[entry.id] = ApprovalPolicy(
            id=entry.id,
            name=entry.name,
            stages=tuple(stages),
            fallback_channel=entry.fallback_channel,
        )
    if problems:
        raise file_error(SETTING, path, problems)
    return PolicyBook(path=path, policies=policies, groups=groups)


def category_references(book: PolicyBook) -> Iterator[tuple[str, str]]:
    """Every category id a `when.category_in` names, with its path in the policies file."""
    for p, policy in enumerate(book.policies.values()):
        for s, stage in enumerate(policy.stages):
            for c, category_id in enumerate(stage.when.category_in or ()):
                yield f"policies.{p}.stages.{s}.when.category_in.{c}", category_id


def bad_user_message(entry: Any) -> str:
    """Why an entry is not a user id, and how to write one."""
    return (
        f"{entry!r} is not a user id: write an Entra object id "
        "(like 3f2b8c1e-0d4a-4b6e-9c7f-2a1d5e8b9c0d) or {user: <id>} for any other kind of id"
    )


def parse_user_id(entry: Any) -> str | None:
    """A user id from `<guid>` or `{user: <id>}`; None when the entry is neither."""
    if isinstance(entry, str) and _GUID.match(entry):
        return entry.lower()  # Teams sends Entra object ids in lower case
    if isinstance(entry, dict) and set(entry) == {"user"}:
        value = entry["user"]
        if isinstance(value, str) and _ANY_USER_ID.match(value):
            return value.lower() if _GUID.match(value) else value
    return None


def _sources(
    entries: Sequence[Any], groups: Mapping[str, Any], where: str, problems: list[Problem]
) -> Iterator[ApproverSource]:
    """The approver sources of a stage; each entry that is none of them becomes a problem."""
    for index, entry in enumerate(entries):
        if entry == MANAGER:
            yield RequesterManager()
        elif entry == ROOM_OWNERS:
            yield RoomOwners()
        elif isinstance(entry, dict) and set(entry) == {"group"}:
            group_id = entry["group"]
            if group_id in groups:
                yield GroupMembers(group_id)
            else:
                known = ", ".join(sorted(groups)) or "none"
                problems.append(
                    (
                        f"{where}.{index}.group",
                        f"unknown group {group_id!r} (groups defined: {known})",
                    )
                )
        else:
            user = parse_user_id(entry)
            if user is not None:
                yield NamedUser(user)
            else:
                problems.append(
                    (
                        f"{where}.{index}",
                        f"{entry!r} is not an approver: write manager, room_owners, "
                        "{group: <id>}, an Entra object id, or {user: <id>}",
                    )
                )
