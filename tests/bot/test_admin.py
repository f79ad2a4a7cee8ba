"""The `admin` command over HTTP with the real adapter: who gets it, what it counts, reassigning a
waiting approval (notified, audited, every copy updated), a decision racing a reassignment, and
tampered ids.

The app runs in local mode with the request tests' catalogue and policies, ADMIN_USERS naming Ada
and MICROSOFT_APP_TENANT_ID naming the tenant of tests/support/activities.py; TIMEZONE is
Asia/Tokyo (tests/bot/conftest.py), so "today" is 23 Nov 2026 there at the FakeClock's 08:05 UTC.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from app import COMPONENTS
from bot.commands import match_command
from bot.storage.service_requests import ServiceRequestRepository
from bot.storage.tables import BookingStatus
from manifest.build import command_lists
from tests.bot.conftest import Frontdesk, OnEachDatabase, card_of
from tests.bot.test_requests import CATALOGUE, ORDER, POLICIES, Desk, decide_action
from tests.storage.conftest import make_booking
from tests.support.activities import (
    ALEX,
    DIEGO,
    GROUP_CHAT,
    LYNNE,
    MEGAN,
    NESTOR,
    STRANGER,
    TENANT_ID,
    TeamsUser,
    make_card_action,
    make_group_mention,
    personal_chat,
)
from tests.support.cardquery import (
    action_titled,
    execute_actions,
    facts,
    headline,
    input_values,
    text_of,
)
from tests.support.service_catalogue import catalogue_settings

ADA = TeamsUser(
    id="29:1AdaAdmin000000000000000000000000000000000000000",
    aad_object_id="a0a0a0a0-1111-4222-8333-000000000001",
    name="Ada Admin",
)
# The same object id sent from another tenant: not the bot's own, so no admin there.
ADA_ELSEWHERE = TeamsUser(
    id=ADA.id, aad_object_id=ADA.aad_object_id, name=ADA.name, tenant_id=STRANGER.tenant_id
)
NIA = TeamsUser(
    id="29:1NiaNew00000000000000000000000000000000000000000",
    aad_object_id="b1b1b1b1-2222-4333-8444-000000000002",
    name="Nia New",
)
ONLY_ADMINS = "Only Frontdesk admins can do that. Nothing was changed."


@pytest.fixture
def app_env(tmp_path: Path) -> dict[str, str]:
    return {
        **catalogue_settings(tmp_path, CATALOGUE, POLICIES),
        # Capitals on purpose: object ids compare without case.
        "ADMIN_USERS": f"{ADA.aad_object_id.upper()}, 00000000-0000-0000-0000-0000000000ff",
        "MICROSOFT_APP_TENANT_ID": TENANT_ID,
    }


@pytest.fixture
def desk(frontdesk: Frontdesk) -> Desk:
    return Desk(frontdesk)


async def invoke(
    fd: Frontdesk, verb: str, data: Mapping[str, Any], user: TeamsUser, **kwargs: Any
) -> dict[str, Any]:
    """A click built by hand (as a forged or replayed one would be); the card answered."""
    activity = make_card_action(verb, dict(data), service_url=fd.service_url, user=user, **kwargs)
    return card_of(*await fd.post(activity))


async def overview(fd: Frontdesk) -> dict[str, Any]:
    card = await fd.say("admin", user=ADA)
    assert headline(card) == "Frontdesk admin", text_of(card)
    return card


async def reassign_form(desk: Desk, request_id: str) -> dict[str, Any]:
    """Ada opens the admin card and presses Reassign on the request."""
    card = await overview(desk.fd)
    [button] = [
        a
        for a in execute_actions(card, "admin.reassignForm")
        if a["data"].get("request") == request_id
    ]
    form = await desk.press(button, input_values(card), user=ADA)
    assert headline(form) == "Reassign an approval", text_of(form)
    return form


async def file_as(desk: Desk, user: TeamsUser) -> str:
    """The user asks for catering (ORDER); the new request's id."""
    await desk.settle()  # earlier notifications are not taken for the answer
    await desk.fd.file_request("catering", ORDER, user=user)
    rows = desk.fd.rows(
        "SELECT id FROM service_request WHERE requester_id = :u ORDER BY created_at DESC",
        u=user.aad_object_id,
    )
    return str(rows[0]["id"])


def snapshot(desk: Desk, request_id: str) -> tuple[Any, ...]:
    """What a refused click must leave as it was."""
    return (
        desk.request(request_id),
        desk.events(request_id),
        desk.fd.rows("SELECT * FROM request_approver WHERE request_id = :id", id=request_id),
    )


# --- Who gets an answer -------------------------------------------------------------------------


async def test_only_admins_get_the_admin_command_others_get_the_unknown_command_answer(
    desk: Desk,
) -> None:
    fd = desk.fd
    _, request_id = await desk.file(ORDER)
    await desk.settle()
    before = snapshot(desk, request_id)

    unknown = await fd.say("xyzzy")
    asked = await fd.say("admin")
    assert json.dumps(asked) == json.dumps(unknown).replace("xyzzy", "admin")
    assert headline(await overview(fd)) == "Frontdesk admin"
    # The same object id from another tenant is no admin there.
    assert json.dumps(await fd.say("admin", user=ADA_ELSEWHERE)) == json.dumps(asked)

    # Help shows the admin command to admins in their personal chat only.
    assert "admin.show" in {a["verb"] for a in execute_actions(await fd.say("help", user=ADA))}
    for user in (MEGAN, ADA_ELSEWHERE):
        help_card = await fd.say("help", user=user)
        assert "admin.show" not in {a["verb"] for a in execute_actions(help_card)}
    [in_group] = await fd.send(make_group_mention("help", service_url=fd.service_url, user=ADA))
    assert "admin.show" not in {a["verb"] for a in execute_actions(in_group)}

    # In a group chat the overview is behind a button, whose answer only the clicker sees.
    [private] = await fd.send(make_group_mention("admin", service_url=fd.service_url, user=ADA))
    assert "only you will see the answer" in text_of(private)
    shown = await desk.press(
        action_titled(private, "Show the admin overview"), user=ADA, conversation=GROUP_CHAT
    )
    assert headline(shown) == "Frontdesk admin"
    [others] = await fd.send(make_group_mention("admin", service_url=fd.service_url, user=MEGAN))
    assert "didn't understand" in text_of(others)

    # Every admin click from anyone else changes nothing and says why.
    clicks = {
        "admin.show": {},
        "admin.reassignForm": {"request": request_id},
        "admin.reassign": {
            "request": request_id,
            "stage": "lead",
            "from": ALEX.aad_object_id,
            "to": LYNNE.aad_object_id,
        },
    }
    for user in (MEGAN, ALEX, ADA_ELSEWHERE):
        for verb, data in clicks.items():
            card = await invoke(fd, verb, data, user)
            assert ONLY_ADMINS in text_of(card), (user.name, verb, text_of(card))
    # Card data naming the admin grants nothing either.
    forged = {**clicks["admin.reassign"], "user": ADA.aad_object_id, "admin": True}
    assert ONLY_ADMINS in text_of(await invoke(fd, "admin.reassign", forged, MEGAN))
    assert snapshot(desk, request_id) == before


def test_admin_is_answered_but_not_in_the_manifest_menu() -> None:
    command = match_command("<at>Frontdesk</at> Admin")
    assert command is not None and command.verb == "admin.show"
    for online_meetings in (True, False):
        titles = [c["title"] for c in command_lists(online_meetings=online_meetings)[0]["commands"]]
        assert not [title for title in titles if "admin" in title]


# --- Counts -------------------------------------------------------------------------------------


class TestCounts(OnEachDatabase):
    async def test_the_counts_are_the_tenants_today(self, desk: Desk) -> None:
        fd = desk.fd
        now = fd.clock.now
        tokyo_day_start = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)  # 23 Nov, 00:00 in Tokyo
        with Session(fd.engine) as session:
            session.add_all(
                [
                    make_booking(tokyo_day_start, room_id="a", tenant_id=TENANT_ID),
                    make_booking(
                        tokyo_day_start + timedelta(hours=20), room_id="b", tenant_id=TENANT_ID
                    ),
                    make_booking(
                        tokyo_day_start + timedelta(hours=2),
                        room_id="c",
                        tenant_id=TENANT_ID,
                        status=BookingStatus.CANCELLED,
                    ),
                    make_booking(
                        tokyo_day_start - timedelta(minutes=1), room_id="d", tenant_id=TENANT_ID
                    ),
                    make_booking(
                        tokyo_day_start + timedelta(days=1), room_id="e", tenant_id=TENANT_ID
                    ),
                    make_booking(tokyo_day_start, room_id="f", tenant_id=STRANGER.tenant_id),
                ]
            )
            session.commit()
        # Requests filed 5 days, 2 days and 1 hour ago; the 5-day one is then approved by
        # Alex and finance, and waits for fulfilment for 4 days.
        filed: dict[str, str] = {}
        for name, ago in (
            ("old", timedelta(days=5)),
            ("mid", timedelta(days=2)),
            ("new", timedelta(hours=1)),
        ):
            fd.clock.now = now - ago
            _, filed[name] = await desk.file(ORDER)
            await desk.settle()
        await desk.settle()
        fd.clock.now = now - timedelta(days=4)
        approve = {"request": filed["old"], "decision": "approve", "item": "all"}
        for user in (ALEX, NESTOR, DIEGO):
            await invoke(fd, "request.decide", approve, user)
        await desk.settle()
        fd.clock.now = now - timedelta(days=6)
        await file_as(desk, STRANGER)  # another tenant's: not counted
        await desk.settle()
        fd.clock.now = now
        assert desk.request(filed["old"])["fulfilment"] == "waiting"

        card = await overview(fd)

        found = facts(card)
        assert (found["Starting today"], found["Confirmed"], found["Cancelled"]) == ("3", "2", "1")
        assert (found["Under 1 day"], found["1 to 3 days"], found["Over 3 days"]) == ("1", "1", "0")
        assert found["Not started 24 h after approval"] == "1"
        assert found["Not done 72 h after starting"] == "0"
        text = text_of(card)
        assert "Waiting for approval: 2" in text
        assert f"**Catering** {filed['mid'][:8]} from Megan Bowen" in text
        assert "Team lead since" in text and "Alex Wilber" in text
        assert f"**Catering** {filed['old'][:8]} from Megan Bowen" in text
        assert "approved, not started since" in text
        assert f"audit-export --tenant {TENANT_ID} --since 2026-10-24" in text


# --- Reassigning --------------------------------------------------------------------------------


async def test_a_reassigned_approval_notifies_the_new_approver_and_updates_every_copy(
    desk: Desk,
) -> None:
    fd = desk.fd
    for user in (ALEX, NIA):
        await desk.hello(user)
    card, request_id = await desk.file(ORDER)
    await desk.settle()
    [alex_card] = desk.sent_to(personal_chat(ALEX).id)
    assert set(alex_card["refresh"]["userIds"]) == {ALEX.id, MEGAN.id}

    form = await reassign_form(desk, request_id)
    assert input_values(form)["from"] == ALEX.aad_object_id
    assert "Alex Wilber" in text_of(form)
    mark = len(fd.connector.sent)
    fd.clock.advance(minutes=7)
    done = await desk.press(
        action_titled(form, "Reassign"),
        {**input_values(form), "to": f" {NIA.aad_object_id.upper()} ", "comment": "Alex is away"},
        user=ADA,
    )
    assert "Nia New approves Team lead instead of Alex Wilber" in text_of(done)
    await desk.settle()

    assert fd.rows(
        "SELECT stage_id, approver_id FROM request_approver WHERE request_id = :id", id=request_id
    ) == [{"stage_id": "lead", "approver_id": NIA.aad_object_id}]
    event = [e for e in desk.events(request_id) if e["action"] == "reassigned"][0]
    assert (event["actor_id"], event["actor_name"], event["comment"]) == (
        ADA.aad_object_id,
        "Ada Admin",
        "Alex is away",
    )
    [stored] = [
        e
        for e in ServiceRequestRepository(fd.engine).events(request_id)
        if e.action == "reassigned"
    ]
    assert stored.at == fd.clock.now
    detail = json.loads(event["detail"])
    assert (detail["from"], detail["to"]) == (ALEX.aad_object_id, NIA.aad_object_id)
    # Nia gets the approval card, as a new stage's approvers do, and that is audited.
    [nia_card] = desk.sent_to(personal_chat(NIA).id, mark)
    assert "Team lead: Nia New (any one approves)" in text_of(nia_card)
    assert "Approve all" in {a["title"] for a in execute_actions(nia_card)}
    notified = [e for e in desk.events(request_id) if e["action"] == "notified"][-1]
    assert json.loads(notified["detail"])["names"] == "Nia New"
    # Every copy was updated: it names Nia, refreshes for her (not Alex) and Alex's offers no
    # buttons any more.
    for chat in (personal_chat(ALEX).id, personal_chat(MEGAN).id):
        latest = desk.updates_of(chat, mark)[-1]
        assert set(latest["refresh"]["userIds"]) == {NIA.id, MEGAN.id}
        assert "Team lead: Nia New" in text_of(latest)
    megan_copy = desk.updates_of(personal_chat(MEGAN).id, mark)[-1]
    assert "Ada Admin reassigned Team lead from Alex Wilber to Nia New: “Alex is away”" in text_of(
        megan_copy
    )
    alex_copy = desk.updates_of(personal_chat(ALEX).id, mark)[-1]
    assert not [a for a in execute_actions(alex_copy) if a["verb"] == "request.decide"]

    # Alex's old card: the click changes nothing and says what happened.
    before = snapshot(desk, request_id)
    late = await desk.press(decide_action(alex_card, "Approve all"), user=ALEX)
    assert "Ada Admin gave your approval of this request to Nia New" in text_of(late)
    assert snapshot(desk, request_id) == before
    decided = await desk.press(decide_action(nia_card, "Approve all"), user=NIA)
    assert "Your decision is recorded." in text_of(decided)
    out = io.StringIO()
    await desk.app[COMPONENTS].approvals.export_audit_csv(out)
    rows = [r for r in csv.DictReader(io.StringIO(out.getvalue())) if r["request_id"] == request_id]
    assert ("reassigned", "Ada Admin", "Alex is away") in {
        (r["action"], r["actor_name"], r["comment"]) for r in rows
    }


async def test_a_request_is_found_by_the_number_typed(desk: Desk) -> None:
    _, request_id = await desk.file(ORDER)
    await desk.settle()
    card = await overview(desk.fd)
    find = action_titled(card, "Find request")

    form = await desk.press(find, {"number": f"#{request_id[:8].upper()}"}, user=ADA)
    assert headline(form) == "Reassign an approval"
    assert action_titled(form, "Reassign")["data"] == {"request": request_id, "stage": "lead"}
    for typed, says in (
        ("", "Type the request number"),
        ("hello", "Type the request number"),
        ("00000000", "No request waiting for approval has the number 00000000"),
    ):
        again = await desk.press(find, {"number": typed}, user=ADA)
        assert says in text_of(again), text_of(again)


async def test_tampered_or_stale_reassignments_change_nothing(desk: Desk) -> None:
    fd = desk.fd
    _, request_id = await desk.file(ORDER)
    other_tenants = await file_as(desk, STRANGER)
    await desk.settle()
    before = snapshot(desk, request_id)
    others_before = snapshot(desk, other_tenants)
    good = {
        "request": request_id,
        "stage": "lead",
        "from": ALEX.aad_object_id,
        "to": NIA.aad_object_id,
    }

    async def reassign(**changes: Any) -> str:
        return text_of(await invoke(fd, "admin.reassign", {**good, **changes}, ADA))

    assert "That request was not found" in await reassign(request=str(uuid.uuid4()))
    assert "That request was not found" in await reassign(
        request=other_tenants, to=NIA.aad_object_id
    )
    assert "moved on to Team lead" in await reassign(stage="finance")
    assert "no longer an approver of Team lead" in await reassign(**{"from": LYNNE.aad_object_id})
    # Mistakes in the form come back on the form, with the inputs kept.
    wrong = await invoke(
        fd, "admin.reassign", {**good, "to": "nia@contoso.com", "comment": "x"}, ADA
    )
    assert "must be an Entra object id" in text_of(wrong)
    assert (input_values(wrong)["to"], input_values(wrong)["comment"]) == ("nia@contoso.com", "x")
    assert "requester cannot approve" in await reassign(to=MEGAN.aad_object_id)
    assert "already approves Team lead" in await reassign(to=ALEX.aad_object_id)
    # What no Teams client would send is refused with 400.
    for data in (
        {**good, "request": "../etc/passwd"},
        {**good, "from": ["x"]},
        {**good, "stage": "a b"},
        {**good, "to": 42},
    ):
        status, body = await fd.post(
            make_card_action("admin.reassign", data, service_url=fd.service_url, user=ADA)
        )
        assert (status, body["statusCode"]) == (200, 400), data
    assert snapshot(desk, request_id) == before
    assert snapshot(desk, other_tenants) == others_before


# --- Racing a decision --------------------------------------------------------------------------


class TestRacingADecision(OnEachDatabase):
    async def test_a_decision_and_a_reassignment_at_once_have_exactly_one_winner(
        self, desk: Desk
    ) -> None:
        fd = desk.fd
        await desk.hello(NIA)
        for _ in range(4):
            _, request_id = await desk.file({"field.people": "2", "field.lunch": "salads"})
            await desk.settle()
            decision = make_card_action(
                "request.decide",
                {"request": request_id, "decision": "approve", "item": "all"},
                service_url=fd.service_url,
                user=ALEX,
            )
            reassignment = make_card_action(
                "admin.reassign",
                {
                    "request": request_id,
                    "stage": "lead",
                    "from": ALEX.aad_object_id,
                    "to": NIA.aad_object_id,
                },
                service_url=fd.service_url,
                user=ADA,
            )

            decided, reassigned = await asyncio.gather(fd.post(decision), fd.post(reassignment))
            await desk.settle()

            decision_won = "Your decision is recorded." in text_of(card_of(*decided))
            reassign_won = "Nia New approves Team lead" in text_of(card_of(*reassigned))
            assert decision_won != reassign_won, (
                text_of(card_of(*decided)),
                text_of(card_of(*reassigned)),
            )
            actions = [e["action"] for e in desk.events(request_id) if e["action"] != "notified"]
            row = desk.request(request_id)
            if decision_won:
                assert actions == ["submitted", "approved"] and row["status"] == "approved"
                assert "no longer waits for approval" in text_of(card_of(*reassigned))
            else:
                assert actions == ["submitted", "reassigned"] and row["status"] == "pending"
                assert "gave your approval of this request to Nia New" in text_of(card_of(*decided))
