"""Approval policies: the policies file, and planning a request's stages and approvers."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.approvals.errors import CatalogueError, PolicyError
from bot.approvals.models import RequestItem
from bot.approvals.policy import (
    ApprovalPolicy,
    ApproverSource,
    GroupMembers,
    KnownManager,
    NamedUser,
    PlannedStage,
    PolicyBook,
    RequesterManager,
    RequestFacts,
    RoomOwners,
    Stage,
    StageCondition,
    StageMode,
    StaticApproverResolver,
    asks_manager,
    load_policies,
    plan_stages,
)
from bot.config import DEFAULT_ROOMS_FILE
from bot.directory.local import load_manager_map, load_room_owners
from tests.approvals.conftest import write

CHANNEL = "19:0a1b2c3d4e5f40718293a4b5c6d7e8f9@thread.tacv2"

# People of the demo policies file (tests/support/playground.py's Agents Playground users).
REQUESTER = "00000000-0000-0000-0000-000000000100"
FACILITIES_LEAD = "00000000-0000-0000-0000-000000000101"
FINANCE_CONTROLLER = "00000000-0000-0000-0000-000000000102"
FINANCE_DEPUTY = "00000000-0000-0000-0000-000000000103"
IT_SECURITY_LEAD = "00000000-0000-0000-0000-000000000104"
FACILITIES_COORDINATOR = "00000000-0000-0000-0000-000000000105"
MANAGER = "6a0f3d52-8c1e-4b7a-9e2d-5f4c3b2a1d0e"
ROOM_OWNER = "c9d8e7f6-a5b4-4c3d-8e2f-1a0b9c8d7e6f"


def demo_resolver(book: PolicyBook) -> StaticApproverResolver:
    """The demo's groups, the requester's manager, and an owner for the Atrium."""
    return StaticApproverResolver(
        managers={REQUESTER: MANAGER},
        owners={"hh-atrium": [ROOM_OWNER]},
        groups=book.groups,
    )


def request(
    category_id: str = "catering",
    *,
    total: str = "120.00",
    room_id: str | None = "hh-atrium",
    requester: str = REQUESTER,
) -> RequestFacts:
    return RequestFacts(
        requester_id=requester,
        category_id=category_id,
        items=(RequestItem("lunch.salads", "Lunch: Salads", Decimal(1), Decimal(total)),),
        room_id=room_id,
    )


def policy(*stages: Stage) -> ApprovalPolicy:
    return ApprovalPolicy(id="test", name="Test", stages=stages, fallback_channel=CHANNEL)


def stage(
    *approvers: ApproverSource,
    id: str = "review",
    mode: StageMode = StageMode.ANY,
    when: StageCondition | None = None,
    skip_if_empty: bool = False,
) -> Stage:
    return Stage(
        id=id,
        name=id.title(),
        approvers=approvers,
        mode=mode,
        when=when or StageCondition(),
        skip_if_empty=skip_if_empty,
    )


# --- The shipped demo ---------------------------------------------------------------------------


def test_the_demo_policies_load(demo_book: PolicyBook) -> None:
    assert sorted(demo_book.policies) == ["it", "room-booking", "room-layout", "standard"]
    assert demo_book.groups["finance"] == (FINANCE_CONTROLLER, FINANCE_DEPUTY)
    assert [s.id for s in demo_book.policy("standard").stages] == [
        "manager",
        "room-owner",
        "facilities",
        "finance",
    ]
    assert all(p.fallback_channel.startswith("19:") for p in demo_book.policies.values())


def test_a_small_catering_order_needs_the_manager_only(demo_book: PolicyBook) -> None:
    stages = plan_stages(demo_book.policy("standard"), request(), demo_resolver(demo_book))

    assert stages == [PlannedStage("manager", "Line manager", StageMode.ANY, (MANAGER,))]


@pytest.mark.parametrize(
    ("total", "finance"),
    [("499.99", False), ("500.00", False), ("500.01", True), ("2400.00", True)],
)
def test_finance_joins_only_above_the_threshold(
    demo_book: PolicyBook, total: str, finance: bool
) -> None:
    stages = plan_stages(
        demo_book.policy("standard"), request(total=total), demo_resolver(demo_book)
    )

    assert [s.id for s in stages] == ["manager", "finance"] if finance else ["manager"]
    if finance:
        assert stages[-1].approvers == (FINANCE_CONTROLLER, FINANCE_DEPUTY)


def test_category_conditions_pick_the_stages(demo_book: PolicyBook) -> None:
    resolver = demo_resolver(demo_book)
    standard = demo_book.policy("standard")

    av = plan_stages(standard, request("av-support"), resolver)
    facilities = plan_stages(standard, request("facilities", room_id=None), resolver)

    assert [(s.id, s.approvers) for s in av] == [
        ("manager", (MANAGER,)),
        ("room-owner", (ROOM_OWNER,)),
    ]
    assert [(s.id, s.approvers) for s in facilities] == [
        ("manager", (MANAGER,)),
        ("facilities", (FACILITIES_LEAD, FACILITIES_COORDINATOR)),
    ]


def test_av_support_without_a_room_owner_skips_that_stage(demo_book: PolicyBook) -> None:
    resolver = demo_resolver(demo_book)
    standard = demo_book.policy("standard")

    unlinked = plan_stages(standard, request("av-support", room_id=None), resolver)
    unowned = plan_stages(standard, request("av-support", room_id="rs-otter"), resolver)

    assert [s.id for s in unlinked] == [s.id for s in unowned] == ["manager"]


def test_it_spending_needs_every_security_signature(demo_book: PolicyBook) -> None:
    stages = plan_stages(
        demo_book.policy("it"), request("it", total="150.00"), demo_resolver(demo_book)
    )

    assert stages[-1] == PlannedStage(
        "security", "IT security sign-off", StageMode.ALL, (IT_SECURITY_LEAD, FINANCE_DEPUTY)
    )


# --- Each kind of approver ----------------------------------------------------------------------


def test_named_users_approve_in_policy_order() -> None:
    stages = plan_stages(
        policy(stage(NamedUser("b"), NamedUser("a"), NamedUser("b"))),
        request(),
        StaticApproverResolver(),
    )

    assert stages[0].approvers == ("b", "a")


def test_the_manager_comes_from_the_resolver() -> None:
    resolver = StaticApproverResolver(managers={REQUESTER: MANAGER, MANAGER: "grand-boss"})

    stages = plan_stages(policy(stage(RequesterManager())), request(), resolver)

    assert stages[0].approvers == (MANAGER,)


def test_a_manager_looked_up_beforehand_wins_for_the_requester_only() -> None:
    """Graph mode: `/me/manager` answered before planning; other lookups use the base resolver."""
    base = StaticApproverResolver(managers={REQUESTER: "stale-manager"}, groups={"finance": ["f1"]})
    resolver = KnownManager(base, REQUESTER, MANAGER)

    stages = plan_stages(
        policy(stage(RequesterManager()), stage(GroupMembers("finance"), id="finance")),
        request(),
        resolver,
    )

    assert [s.approvers for s in stages] == [(MANAGER,), ("f1",)]
    assert resolver.manager_of("someone-else") is None
    with pytest.raises(PolicyError, match="no manager known"):
        plan_stages(
            policy(stage(RequesterManager())), request(), KnownManager(base, REQUESTER, None)
        )


def test_only_policies_with_a_manager_stage_ask_for_the_manager(demo_book: PolicyBook) -> None:
    assert asks_manager(demo_book.policy("standard"))
    assert not asks_manager(demo_book.policy("room-layout"))
    assert not asks_manager(policy(stage(NamedUser("a")), stage(RoomOwners(), id="rooms")))


def test_room_owners_are_those_of_the_linked_room() -> None:
    resolver = StaticApproverResolver(owners={"hh-atrium": ["o1", "o2"], "hh-buoy": ["o3"]})

    stages = plan_stages(policy(stage(RoomOwners(), mode=StageMode.ALL)), request(), resolver)

    assert stages == [PlannedStage("review", "Review", StageMode.ALL, ("o1", "o2"))]


def test_group_members_come_from_the_resolver() -> None:
    resolver = StaticApproverResolver(groups={"finance": ["f1", "f2"]})

    stages = plan_stages(policy(stage(GroupMembers("finance"))), request(), resolver)

    assert stages[0].approvers == ("f1", "f2")


def test_sources_are_merged_without_repeats() -> None:
    resolver = StaticApproverResolver(
        managers={REQUESTER: MANAGER}, groups={"finance": [MANAGER, "f2"]}
    )

    stages = plan_stages(
        policy(stage(RequesterManager(), GroupMembers("finance"))), request(), resolver
    )

    assert stages[0].approvers == (MANAGER, "f2")


def test_a_stage_whose_condition_fails_asks_nobody() -> None:
    class Untouchable:
        """A resolver that must not be asked: the stage does not apply."""

        def manager_of(self, user_id: str) -> str | None:
            raise AssertionError("asked for a manager")

        def room_owners(self, room_id: str) -> list[str]:
            raise AssertionError("asked for room owners")

        def group_members(self, group_id: str) -> list[str]:
            raise AssertionError("asked for a group")

    only_big_it = StageCondition(total_above=Decimal(1000), category_in=("it",))
    stages = plan_stages(
        policy(stage(RequesterManager(), RoomOwners(), GroupMembers("x"), when=only_big_it)),
        request("it", total="999.99"),
        Untouchable(),
    )

    assert stages == []


def test_both_conditions_must_hold() -> None:
    condition = StageCondition(total_above=Decimal(100), category_in=("it", "av-support"))

    assert condition.holds_for(request("it", total="100.01"))
    assert not condition.holds_for(request("it", total="100.00"))
    assert not condition.holds_for(request("catering", total="900.00"))


# --- Stages nobody can approve ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "room_id", "reason"),
    [
        (RequesterManager(), "hh-atrium", "no manager known for the requester"),
        (RoomOwners(), None, "the request is not linked to a room booking"),
        (RoomOwners(), "rs-otter", "room 'rs-otter' has no owners"),
        (GroupMembers("finance"), "hh-atrium", "group 'finance' has no members"),
    ],
)
def test_an_empty_stage_is_refused_with_the_reason(
    source: ApproverSource, room_id: str | None, reason: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        plan_stages(
            policy(stage(NamedUser("x"), id="first"), stage(source, id="second")),
            request(room_id=room_id),
            StaticApproverResolver(),
        )

    assert (caught.value.policy_id, caught.value.stage_id) == ("test", "second")
    assert caught.value.reason == reason
    assert str(caught.value) == (
        f"stage 'second' (Second) of approval policy 'test' has no approvers: {reason}"
    )


def test_every_reason_is_given_when_several_sources_are_empty() -> None:
    with pytest.raises(PolicyError) as caught:
        plan_stages(
            policy(stage(RequesterManager(), GroupMembers("finance"))),
            request(),
            StaticApproverResolver(),
        )

    assert (
        caught.value.reason == "no manager known for the requester; group 'finance' has no members"
    )


def test_skip_if_empty_leaves_the_stage_out() -> None:
    stages = plan_stages(
        policy(
            stage(RequesterManager(), id="manager", skip_if_empty=True),
            stage(NamedUser("f1"), id="finance"),
        ),
        request(),
        StaticApproverResolver(),
    )

    assert [s.id for s in stages] == ["finance"]


def test_the_requester_never_approves_their_own_request() -> None:
    resolver = StaticApproverResolver(groups={"finance": [REQUESTER, "f2"]})

    stages = plan_stages(
        policy(stage(GroupMembers("finance"), NamedUser(REQUESTER))), request(), resolver
    )

    assert stages[0].approvers == ("f2",)


def test_a_stage_of_only_the_requester_is_refused() -> None:
    with pytest.raises(PolicyError) as caught:
        plan_stages(
            policy(stage(NamedUser(REQUESTER), id="owner")),
            request(),
            StaticApproverResolver(),
        )

    assert caught.value.stage_id == "owner"
    assert caught.value.reason == "the requester is the only approver"


def test_a_stage_of_only_the_requester_can_be_skipped() -> None:
    resolver = StaticApproverResolver(owners={"hh-atrium": [REQUESTER]})

    stages = plan_stages(
        policy(stage(RoomOwners(), skip_if_empty=True), stage(NamedUser("f1"), id="finance")),
        request(),
        resolver,
    )

    assert [s.id for s in stages] == ["finance"]


def test_a_finance_member_asking_leaves_finance_to_the_others(demo_book: PolicyBook) -> None:
    resolver = StaticApproverResolver(
        managers={FINANCE_DEPUTY: FINANCE_CONTROLLER}, groups=demo_book.groups
    )

    stages = plan_stages(
        demo_book.policy("standard"), request(total="800.00", requester=FINANCE_DEPUTY), resolver
    )

    assert [(s.id, s.approvers) for s in stages] == [
        ("manager", (FINANCE_CONTROLLER,)),
        ("finance", (FINANCE_CONTROLLER,)),
    ]


# --- Broken policies files ----------------------------------------------------------------------

GOOD_STAGE = "{id: manager, name: Line manager, approvers: [manager]}"


def policies_text(stages: str = GOOD_STAGE, groups: str = "{}", extra: str = "") -> str:
    return f"""
groups: {groups}
policies:
  - id: standard
    name: Standard
    fallback_channel: "{CHANNEL}"
    stages: [{stages}]
{extra}"""


SECOND_POLICY = f"""\
  - id: standard
    name: Again
    fallback_channel: "{CHANNEL}"
    stages: [{GOOD_STAGE}]
"""


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        pytest.param(
            policies_text(
                "{id: f, name: Finance, approvers: [{group: finanse}]}", "{finance: [{user: f1}]}"
            ),
            "policies.0.stages.0.approvers.0.group",
            "unknown group 'finanse' (groups defined: finance)",
            id="unknown group",
        ),
        pytest.param(
            policies_text("{id: m, name: Manager, approvers: [manger]}"),
            "policies.0.stages.0.approvers.0",
            "'manger' is not an approver: write manager, room_owners, {group: <id>}",
            id="typo in a keyword",
        ),
        pytest.param(
            policies_text("{id: m, name: Manager, approvers: [{groups: finance}]}"),
            "policies.0.stages.0.approvers.0",
            "is not an approver",
            id="unknown approver key",
        ),
        pytest.param(
            policies_text("{id: m, name: Manager, approvers: []}"),
            "policies.0.stages.0.approvers",
            "at least 1 item",
            id="no approvers",
        ),
        pytest.param(
            policies_text("{id: m, name: Manager, approvers: [manager], mode: most}"),
            "policies.0.stages.0.mode",
            "Input should be 'any' or 'all'",
            id="unknown mode",
        ),
        pytest.param(
            policies_text(f"{GOOD_STAGE}, {GOOD_STAGE}"),
            "policies.0.stages.1.id",
            "stage id 'manager' appears twice",
            id="duplicate stage",
        ),
        pytest.param(
            policies_text(extra=SECOND_POLICY),
            "policies.1.id",
            "policy id 'standard' appears twice",
            id="duplicate policy",
        ),
        pytest.param(
            policies_text(groups="{finance: []}"),
            "groups.finance",
            "at least 1 item",
            id="empty group",
        ),
        pytest.param(
            policies_text(groups="{finance: [Bob]}"),
            "groups.finance.0",
            "'Bob' is not a user id",
            id="group member not an id",
        ),
        pytest.param(
            policies_text("{id: m, name: M, approvers: [manager], when: {total_below: 5}}"),
            "policies.0.stages.0.when.total_below",
            "Extra inputs are not permitted",
            id="unknown condition",
        ),
        pytest.param(
            policies_text("{id: m, name: M, approvers: [manager], when: {total_above: -5}}"),
            "policies.0.stages.0.when.total_above",
            "greater than or equal to 0",
            id="negative threshold",
        ),
        pytest.param(
            policies_text(""),
            "policies.0.stages",
            "at least 1 item",
            id="no stages",
        ),
        pytest.param(
            policies_text().replace(CHANNEL, "Workplace approvals"),
            "policies.0.fallback_channel",
            "is not a Teams channel id",
            id="fallback channel with spaces",
        ),
        pytest.param(
            policies_text().replace(f'    fallback_channel: "{CHANNEL}"\n', ""),
            "policies.0.fallback_channel",
            "Field required",
            id="no fallback channel",
        ),
    ],
)
def test_a_broken_policies_file_is_explained_by_path(
    tmp_path: Path, text: str, where: str, words: str
) -> None:
    path = write(tmp_path / "policies.yaml", text)

    with pytest.raises(CatalogueError) as caught:
        load_policies(path)

    message = str(caught.value)
    assert message.startswith(f"POLICIES_FILE {path}: ")
    assert f"{where}: " in message
    assert words in message


def test_user_ids_are_entra_ids_or_spelled_out(tmp_path: Path) -> None:
    path = write(
        tmp_path / "policies.yaml",
        policies_text(
            "{id: m, name: M, approvers: [6A0F3D52-8C1E-4B7A-9E2D-5F4C3B2A1D0E, {user: 29:1abc}]}"
        ),
    )

    book = load_policies(path)

    assert book.policy("standard").stages[0].approvers == (
        NamedUser("6a0f3d52-8c1e-4b7a-9e2d-5f4c3b2a1d0e"),
        NamedUser("29:1abc"),
    )


def test_a_missing_policies_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="POLICIES_FILE .*: cannot read it"):
        load_policies(tmp_path / "nowhere.yaml")


def test_the_demo_rooms_file_names_room_owners_for_the_room_owner_stage(
    demo_book: PolicyBook,
) -> None:
    owners = load_room_owners(DEFAULT_ROOMS_FILE)
    managers = load_manager_map(DEFAULT_ROOMS_FILE)
    resolver = StaticApproverResolver(managers=managers, owners=owners, groups=demo_book.groups)
    requester = "00000000-0000-0000-0000-000000000100"
    av = RequestFacts(requester, "av-support", (), room_id="hh-harbour")

    stages = plan_stages(demo_book.policy("standard"), av, resolver)

    assert [(s.id, s.approvers) for s in stages] == [
        ("manager", (managers[requester],)),
        ("room-owner", tuple(owners["hh-harbour"])),
    ]
    assert set(owners) == {"hh-atrium", "hh-boardroom", "hh-harbour"}
