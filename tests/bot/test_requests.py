"""Service requests over HTTP with the real adapter: filing, per-item decisions in two stages (one
"all must approve"), fulfilment, proactive cards and their updates, and the rules of authority.

The app runs in local mode with a test catalogue and policies (tmp files) whose approvers are the
users of tests/support/activities.py; every card sent or answered is checked by the fixture.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app import COMPONENTS
from tests.bot.conftest import Frontdesk, OnEachDatabase, card_of
from tests.support.activities import (
    ALEX,
    DIEGO,
    GROUP_CHAT,
    LYNNE,
    MEGAN,
    NESTOR,
    STRANGER,
    TeamsUser,
    make_card_action,
    make_message,
    personal_chat,
)
from tests.support.cardquery import action_titled, execute_actions, input_values, text_of
from tests.support.fake_connector import cards_of
from tests.support.service_catalogue import catalogue, catalogue_settings, catering

FALLBACK = "19:fallback0000000000000000000000@thread.tacv2"

CATALOGUE = catalogue(
    catering(policy="two-stage", fulfilment=f"{{users: [{LYNNE.aad_object_id}]}}")
)

POLICIES = f"""
groups:
  finance: [{NESTOR.aad_object_id}, {DIEGO.aad_object_id}]
policies:
  - id: two-stage
    name: Two stages
    fallback_channel: "{FALLBACK}"
    stages:
      - id: lead
        name: Team lead
        approvers: [{ALEX.aad_object_id}]
      - id: finance
        name: Finance
        approvers: [{{group: finance}}]
        mode: all
        when: {{total_above: 100}}
"""


@pytest.fixture
def app_env(tmp_path: Path) -> dict[str, str]:
    return catalogue_settings(tmp_path, CATALOGUE, POLICIES)


class Desk:
    """The request flow from several users' side."""

    def __init__(self, frontdesk: Frontdesk) -> None:
        self.fd = frontdesk
        self.greeted = 0

    @property
    def app(self) -> Any:
        return self.fd.client.server.app

    async def settle(self) -> None:
        """Wait for the notifications started by the last turns."""
        await self.app[COMPONENTS].tasks.drain(timeout=60)

    async def hello(self, user: TeamsUser) -> None:
        """The user writes to the bot once, so it knows their personal chat (the help card the
        bot answers with is not counted by `sent_to`)."""
        await self.fd.send(make_message("help", service_url=self.fd.service_url, user=user))
        self.greeted = len(self.fd.connector.sent)

    async def press(
        self,
        action: Mapping[str, Any],
        inputs: Mapping[str, Any] | None = None,
        *,
        user: TeamsUser = MEGAN,
        **kwargs: Any,
    ) -> dict[str, Any]:
        return await self.fd.press(action, inputs, user=user, **kwargs)

    async def file(self, inputs: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """Megan asks for catering: the card she gets and the request id."""
        card = await self.fd.file_request("catering", inputs)
        return card, self.request_ids()[-1]

    async def order_for_alex(self) -> tuple[str, dict[str, Any]]:
        """Alex, Nestor and Diego know the bot; Megan orders (ORDER, over 100: both stages):
        the request id and the approval card Alex got."""
        for user in (ALEX, NESTOR, DIEGO):
            await self.hello(user)
        _card, request_id = await self.file(ORDER)
        await self.settle()
        [alex_card] = self.sent_to(personal_chat(ALEX).id)
        return request_id, alex_card

    def request_ids(self) -> list[str]:
        return [
            row["id"] for row in self.fd.rows("SELECT id FROM service_request ORDER BY created_at")
        ]

    def request(self, request_id: str) -> dict[str, Any]:
        return self.fd.rows("SELECT * FROM service_request WHERE id = :id", id=request_id)[0]

    def events(self, request_id: str) -> list[dict[str, Any]]:
        return self.fd.rows(
            "SELECT * FROM audit_event WHERE request_id = :id ORDER BY at, id", id=request_id
        )

    def sent_to(self, conversation_id: str, since: int = 0) -> list[dict[str, Any]]:
        """Cards the bot posted (not updated) in a conversation, after the hellos."""
        return [
            card
            for request in self.fd.connector.sent[max(since, self.greeted) :]
            if request.conversation_id == conversation_id and not request.is_update
            for card in request.cards()
        ]

    def updates_of(self, conversation_id: str, since: int = 0) -> list[dict[str, Any]]:
        return [
            card
            for request in self.fd.connector.sent[since:]
            if request.conversation_id == conversation_id and request.is_update
            for card in request.cards()
        ]


def decide_action(card: Mapping[str, Any], title: str, item: str | None = None) -> dict[str, Any]:
    """An Approve/Reject button: for one item (by its id in the data) or the all-items one."""
    for action in execute_actions(card):
        data = action.get("data", {})
        if action.get("title") == title and (item is None or data.get("item") == item):
            return action
    raise AssertionError(f"no {title!r} button for {item!r} in {text_of(card)}")


@pytest.fixture
def desk(frontdesk: Frontdesk) -> Desk:
    return Desk(frontdesk)


ORDER = {"field.people": "12", "field.lunch": "sandwiches", "field.pastries": "2"}


async def test_a_two_stage_request_is_filed_decided_per_item_and_fulfilled(desk: Desk) -> None:
    fd = desk.fd
    for user in (ALEX, NESTOR, LYNNE):
        await desk.hello(user)
    # Diego never wrote to the bot: it opens a personal chat with him when his stage starts.
    card, request_id = await desk.file(ORDER)
    assert "Sent. It now waits for Team lead" in text_of(card)
    assert "Waiting for approval" in text_of(card)
    # Priced from the catalogue: 12 sandwich platters at 9.50 and 2 pastry platters at 24.00.
    assert "12 × 9.50 = EUR 114.00" in text_of(card)
    assert "2 × 24.00 = EUR 48.00" in text_of(card)
    assert "EUR 162.00" in text_of(card)
    cancel = action_titled(card, "Cancel request")
    assert cancel["data"] == {"request": request_id}
    row = desk.request(request_id)
    assert row["status"] == "pending" and row["requester_id"] == MEGAN.aad_object_id
    assert json.loads(row["items"])[0]["id"] == "lunch.sandwiches"

    await desk.settle()
    alex_chat = personal_chat(ALEX).id
    [alex_card] = desk.sent_to(alex_chat)
    assert "Team lead: Alex Wilber (any one approves)" in text_of(alex_card)
    # Teams shows each approver their own view: Alex (and Megan) are in refresh.userIds.
    assert set(alex_card["refresh"]["userIds"]) == {ALEX.id, MEGAN.id}
    assert alex_card["refresh"]["action"]["verb"] == "request.show"

    # Alex rejects the pastries with a comment, then approves what is left.
    rejected = await desk.press(
        decide_action(alex_card, "Reject", "pastries"),
        {"comment": "We have cake already."},
        user=ALEX,
    )
    assert "Your decision is recorded." in text_of(rejected)
    assert "pastries" not in {a["data"].get("item") for a in execute_actions(rejected)}
    approved = await desk.press(decide_action(rejected, "Approve"), user=ALEX)
    assert "Approve" not in {a["title"] for a in execute_actions(approved)}
    await desk.settle()

    # Finance (all must approve) gets cards: Nestor in his chat, Diego in a chat the bot opened.
    [nestor_card] = desk.sent_to(personal_chat(NESTOR).id)
    opened = [body for body in fd.connector.created if body.get("members")]
    assert [body["members"][0]["id"] for body in opened] == [DIEGO.aad_object_id]
    [diego_card] = desk.sent_to(f"a:opened-{DIEGO.aad_object_id}")
    assert "Finance: Nestor Wilke" in text_of(nestor_card)
    assert "all must approve" in text_of(diego_card)
    # The pastries were rejected at the first stage: finance decides only the lunch.
    assert "Pastry platters: 2 × 24.00 = EUR 48.00 — **rejected**" in text_of(nestor_card)

    await desk.press(decide_action(nestor_card, "Approve"), user=NESTOR)
    assert desk.request(request_id)["status"] == "pending"  # Diego still has to approve
    mark = len(fd.connector.sent)
    await desk.press(decide_action(diego_card, "Approve"), user=DIEGO)
    await desk.settle()
    row = desk.request(request_id)
    assert (row["status"], row["fulfilment"]) == ("partially_approved", "waiting")

    # Megan is told, and her original card (the one she pressed Send on) shows the outcome.
    megan_chat = personal_chat(MEGAN).id
    told = desk.sent_to(megan_chat, mark)
    assert [text_of(c).splitlines()[0] for c in told] == ["Request partly approved"]
    megan_copy = desk.updates_of(megan_chat, mark)[-1]
    assert "Partly approved, waiting for the fulfilment team" in text_of(megan_copy)
    assert "Cancel request" not in {a["title"] for a in execute_actions(megan_copy)}
    # Every approver's copy was updated too, and none offers buttons any more.
    for chat in (alex_chat, personal_chat(NESTOR).id, f"a:opened-{DIEGO.aad_object_id}"):
        latest = desk.updates_of(chat, mark)[-1]
        assert "Partly approved" in text_of(latest)
        assert not [a for a in execute_actions(latest) if a["verb"] == "request.decide"]

    # Lynne (fulfilment) gets a card with Start / Done / Can't do.
    [lynne_card] = desk.sent_to(personal_chat(LYNNE).id)
    titles = [a["title"] for a in execute_actions(lynne_card) if a["verb"] == "request.fulfil"]
    assert titles == ["Start", "Done", "Can't do"]
    cannot = await desk.press(action_titled(lynne_card, "Can't do"), user=LYNNE)
    assert "Say why it cannot be done" in text_of(cannot)
    started = await desk.press(action_titled(lynne_card, "Start"), user=LYNNE)
    assert "in progress" in text_of(started)
    await desk.settle()
    assert [text_of(c).splitlines()[0] for c in desk.sent_to(megan_chat, mark)][-1] == (
        "Work started"
    )
    mark = len(fd.connector.sent)
    await desk.press(action_titled(started, "Done"), user=LYNNE)
    await desk.settle()
    assert desk.request(request_id)["fulfilment"] == "done"
    assert [text_of(c).splitlines()[0] for c in desk.sent_to(megan_chat, mark)] == ["Request done"]

    # The audit trail has every step, and the card shows it.
    actions = [event["action"] for event in desk.events(request_id)]
    assert actions[:1] == ["submitted"]
    for expected in ("rejected", "approved", "started", "done", "notified"):
        assert expected in actions
    assert actions.count("approved") == 3
    history = text_of(desk.updates_of(megan_chat)[-1])
    assert "Alex Wilber rejected Pastry platters: “We have cake already.”" in history
    out = io.StringIO()
    await desk.app[COMPONENTS].approvals.export_audit_csv(out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {r["action"] for r in rows if r["request_id"] == request_id} >= {
        "submitted",
        "approved",
        "rejected",
        "started",
        "done",
    }


async def test_each_viewer_gets_the_view_of_their_role_on_refresh(desk: Desk) -> None:
    await desk.hello(ALEX)
    card, request_id = await desk.file(ORDER)
    await desk.settle()
    refresh = card["refresh"]["action"]
    as_requester = await desk.press(refresh, trigger="automatic")
    assert "Cancel request" in {a["title"] for a in execute_actions(as_requester)}
    as_approver = await desk.press(refresh, user=ALEX, trigger="automatic")
    assert "Approve all" in {a["title"] for a in execute_actions(as_approver)}
    # A later stage's approver may look (read-only, no buttons yet).
    as_later = await desk.press(refresh, user=NESTOR, trigger="automatic")
    assert not [a for a in execute_actions(as_later) if a["verb"] == "request.decide"]
    # Someone with no part in the request, in a chat where it was never posted, sees nothing.
    status, body = await desk.fd.post(
        make_card_action(
            "request.show",
            {"request": request_id},
            service_url=desk.fd.service_url,
            user=LYNNE,
            trigger="automatic",
        )
    )
    assert "That request was not found." in text_of(card_of(status, body))


async def test_non_approvers_the_requester_strangers_and_forged_ids_change_nothing(
    desk: Desk,
) -> None:
    fd = desk.fd
    card, request_id = await desk.file(ORDER)
    await desk.settle()
    before = desk.request(request_id)
    approve_all = {"request": request_id, "decision": "approve", "item": "all"}

    async def click(user: TeamsUser, data: Mapping[str, Any], **kwargs: Any) -> str:
        status, body = await fd.post(
            make_card_action(
                "request.decide", data, service_url=fd.service_url, user=user, **kwargs
            )
        )
        return text_of(card_of(status, body))

    assert "cannot approve or reject your own request" in await click(MEGAN, approve_all)
    assert "not an approver of this request" in await click(LYNNE, approve_all)
    # Finance approves later: not before the team lead.
    assert "has not reached your approval stage yet" in await click(NESTOR, approve_all)
    assert "not found" in await click(STRANGER, approve_all)
    forged = {**approve_all, "request": "00000000-0000-4000-8000-000000000000"}
    assert "not found" in await click(ALEX, forged)
    status, body = await fd.post(
        make_card_action("request.decide", forged, service_url=fd.service_url, user=ALEX)
    )
    # A request that is not there points to the request lists, not to bookings.
    assert [a["title"] for a in execute_actions(card_of(status, body))] == [
        "My requests",
        "Approvals",
    ]
    # Card data naming someone else changes nothing: authority is the activity's sender.
    assert "not an approver" in await click(
        LYNNE, {**approve_all, "approver": ALEX.aad_object_id, "user": ALEX.aad_object_id}
    )
    status, body = await fd.post(
        make_card_action(
            "request.decide",
            {**approve_all, "item": "../etc"},
            service_url=fd.service_url,
            user=ALEX,
        )
    )
    assert (status, body["statusCode"]) == (200, 400)
    assert desk.request(request_id) == before
    assert [e["action"] for e in desk.events(request_id)] == ["submitted", "notified"]


async def test_a_stale_card_says_who_decided_first_and_when(desk: Desk) -> None:
    card, request_id = await desk.file({"field.people": "2", "field.lunch": "salads"})
    await desk.settle()
    status, body = await desk.fd.post(
        make_card_action(
            "request.show", {"request": request_id}, service_url=desk.fd.service_url, user=ALEX
        )
    )
    alex_card = card_of(status, body)
    await desk.press(decide_action(alex_card, "Approve"), user=ALEX)
    again = await desk.press(decide_action(alex_card, "Reject"), user=ALEX)
    assert "This was already approved by Alex Wilber at 23 Nov 2026" in text_of(again)
    assert desk.request(request_id)["status"] == "approved"  # 22 EUR: no finance stage


async def test_the_same_invoke_delivered_twice_decides_and_notifies_once(desk: Desk) -> None:
    fd = desk.fd
    card, request_id = await desk.file({"field.people": "2", "field.lunch": "salads"})
    await desk.settle()
    click = make_card_action(
        "request.decide",
        {"request": request_id, "decision": "approve", "item": "all"},
        service_url=fd.service_url,
        user=ALEX,
    )
    mark = len(fd.connector.sent)
    first = card_of(*await fd.post(click))
    second = card_of(*await fd.post(click))
    await desk.settle()
    assert "Your decision is recorded." in text_of(first)
    assert "already approved by Alex Wilber" in text_of(second)
    assert [e["action"] for e in desk.events(request_id)].count("approved") == 1
    told = desk.sent_to(personal_chat(MEGAN).id, mark)
    assert [text_of(c).splitlines()[0] for c in told] == ["Request approved"]


class TestConcurrentClicks(OnEachDatabase):
    async def test_many_approvers_clicking_at_once_give_one_decision_and_one_notice(
        self, desk: Desk
    ) -> None:
        fd = desk.fd
        card, request_id = await desk.file(ORDER)
        await desk.settle()
        await desk.press(
            decide_action(
                card_of(
                    *await fd.post(
                        make_card_action(
                            "request.show",
                            {"request": request_id},
                            service_url=fd.service_url,
                            user=ALEX,
                        )
                    )
                ),
                "Approve all",
            ),
            user=ALEX,
        )
        await desk.settle()
        mark = len(fd.connector.sent)
        # Finance, all must approve: 20 clicks from Nestor and Diego, approve and reject mixed.
        clicks = [
            make_card_action(
                "request.decide",
                {
                    "request": request_id,
                    "decision": "approve" if i % 3 else "reject",
                    "item": "all",
                },
                service_url=fd.service_url,
                user=(NESTOR, DIEGO)[i % 2],
            )
            for i in range(20)
        ]
        answers = await asyncio.gather(*(fd.post(click) for click in clicks))
        await desk.settle()
        texts = [text_of(card_of(*answer)) for answer in answers]
        recorded = sum("Your decision is recorded." in t for t in texts)
        events = [e for e in desk.events(request_id) if e["action"] in ("approved", "rejected")]
        # Alex's one decision, then at most one per finance approver until one rejection settles.
        finance = [e for e in events if e["actor_id"] != ALEX.aad_object_id]
        assert recorded == len(finance) and 1 <= len(finance) <= 2
        assert len({e["actor_id"] for e in finance}) == len(finance)
        assert all("Your decision is recorded." in t or "already" in t for t in texts), texts
        # The request ends as its recorded decisions say: one rejection rejects every item
        # ("all"); otherwise both finance approvers approved.
        decisions = sorted(e["action"] for e in finance)
        assert decisions in (["rejected"], ["approved", "rejected"], ["approved", "approved"])
        expected = "rejected" if "rejected" in decisions else "approved"
        assert desk.request(request_id)["status"] == expected
        told = desk.sent_to(personal_chat(MEGAN).id, mark)
        assert len(told) == 1, [text_of(c) for c in told]


async def test_decisions_close_together_leave_every_copy_showing_the_last_state(
    desk: Desk,
) -> None:
    fd = desk.fd
    request_id, alex_card = await desk.order_for_alex()
    await desk.press(decide_action(alex_card, "Approve all"), user=ALEX)
    await desk.settle()
    [nestor_card] = desk.sent_to(personal_chat(NESTOR).id)
    [diego_card] = desk.sent_to(personal_chat(DIEGO).id)
    # A slow connector: the first decision's first update is still going out when the second
    # decision's updates are sent.
    fd.connector.update_delays = [0.5]
    await desk.press(decide_action(nestor_card, "Approve all"), user=NESTOR)
    await desk.press(decide_action(diego_card, "Approve all"), user=DIEGO)
    await desk.settle()
    assert desk.request(request_id)["status"] == "approved"
    for user in (MEGAN, ALEX, NESTOR, DIEGO):
        latest = desk.updates_of(personal_chat(user).id)[-1]
        assert "Status: Approved" in text_of(latest), (user.name, text_of(latest))


async def test_an_unreachable_approver_gets_the_card_in_the_fallback_channel(desk: Desk) -> None:
    fd = desk.fd
    fd.connector.refuse_members.add(ALEX.aad_object_id)
    card, request_id = await desk.file(ORDER)
    await desk.settle()
    threads = [body for body in fd.connector.created if body.get("channelData", {}).get("channel")]
    assert [t["channelData"]["channel"]["id"] for t in threads] == [FALLBACK]
    posted = cards_of(threads[0]["activity"])[0]
    assert "could not reach" in text_of(posted)
    # Alex can decide from the channel copy: the click is checked like any other.
    channel = type(GROUP_CHAT)(id=f"{FALLBACK};messageid=1", conversation_type="channel")
    decided = await desk.press(
        decide_action(posted, "Approve all"), user=ALEX, conversation=channel
    )
    assert "Your decision is recorded." in text_of(decided)
    # Anyone else in the channel sees the card read-only when it refreshes for them.
    seen = await desk.press(
        {"type": "Action.Execute", "verb": "request.show", "data": {"request": request_id}},
        user=LYNNE,
        conversation=channel,
        trigger="automatic",
    )
    assert "Catering request" in text_of(seen)
    assert not [a for a in execute_actions(seen) if a["verb"] == "request.decide"]
    notice = [e for e in desk.events(request_id) if e["action"] == "notified"][0]
    assert json.loads(notice["detail"])["fallback"] == FALLBACK
    await desk.settle()

    # When the channel refuses too, the audit trail says nobody could be reached.
    fd.connector.refuse_channels.add(FALLBACK)
    _, second = await desk.file(ORDER)
    await desk.settle()
    assert "unreachable" in [e["action"] for e in desk.events(second)]


async def test_the_requester_cancels_and_every_copy_shows_it(desk: Desk) -> None:
    fd = desk.fd
    await desk.hello(ALEX)
    card, request_id = await desk.file(ORDER)
    await desk.settle()
    mark = len(fd.connector.sent)
    too_long = await desk.press(action_titled(card, "Cancel request"), {"comment": "x" * 1001})
    assert "The comment can be at most 1000 characters long." in text_of(too_long)
    cancelled = await desk.press(
        action_titled(card, "Cancel request"), {"comment": "Meeting moved"}
    )
    assert "Your request is cancelled." in text_of(cancelled)
    await desk.settle()
    alex_copy = desk.updates_of(personal_chat(ALEX).id, mark)[-1]
    assert "Cancelled" in text_of(alex_copy)
    assert not [a for a in execute_actions(alex_copy) if a["verb"] == "request.decide"]
    late = await desk.press(
        {
            "type": "Action.Execute",
            "verb": "request.decide",
            "data": {"request": request_id, "decision": "approve", "item": "all"},
        },
        user=ALEX,
    )
    assert "cancelled by the requester" in text_of(late)
    again = await desk.press(action_titled(card, "Cancel request"))
    assert "can no longer be cancelled" in text_of(again)


async def test_my_requests_and_approvals_list_with_the_same_actions(desk: Desk) -> None:
    _, request_id = await desk.file(ORDER)
    await desk.settle()
    mine = await desk.fd.say("my requests")
    assert "**Catering** · Waiting for approval" in text_of(mine)
    assert action_titled(mine, "Cancel")["data"] == {"request": request_id}
    waiting = await desk.fd.say("approvals", user=ALEX)
    assert "**Catering** from Megan Bowen" in text_of(waiting)
    decided = await desk.press(action_titled(waiting, "Approve all"), user=ALEX)
    assert "Your decision is recorded." in text_of(decided)
    assert "Nothing waits for your approval." in text_of(decided)
    await desk.settle()
    # The request moved on to finance: Nestor now finds it waiting for him.
    assert "**Catering** from Megan Bowen" in text_of(await desk.fd.say("approvals", user=NESTOR))


async def test_a_faulty_form_comes_back_with_the_inputs_kept(desk: Desk) -> None:
    categories = await desk.fd.say("request")
    form = await desk.press(action_titled(categories, "Ask for catering"))
    again = await desk.press(
        action_titled(form, "Send request"), {"field.people": "500", "field.notes": "Vegan"}
    )
    assert "Number of people" in text_of(again)
    values = input_values(again)
    assert float(values["field.people"]) == 500 and values["field.notes"] == "Vegan"
    assert desk.request_ids() == []
    # The Send button keeps its submission id: a redelivered Send files once.
    assert (
        action_titled(again, "Send request")["data"] == action_titled(form, "Send request")["data"]
    )


LINKED_CATALOGUE = catalogue(
    catering(
        policy="two-stage",
        fulfilment=f"{{users: [{LYNNE.aad_object_id}]}}",
        booking="required",
        extra_fields=[
            "{id: day, type: date, label: Day}",
            "{id: serve-at, type: time, label: Serve at}",
        ],
    )
)


class TestLinkedToABooking:
    @pytest.fixture
    def app_env(self, tmp_path: Path) -> dict[str, str]:
        return catalogue_settings(tmp_path, LINKED_CATALOGUE, POLICIES)

    async def test_order_services_from_a_booking_confirmation_links_the_request(
        self, desk: Desk
    ) -> None:
        fd = desk.fd
        # Without a booking the form says to book first.
        categories = await fd.say("request")
        needs = await desk.press(action_titled(categories, "Ask for catering"))
        assert "Book a room first" in text_of(needs)
        results = await fd.search({"attendees": "4", "start": "10:00"})
        booked = await desk.press(
            next(a for a in execute_actions(results) if a["verb"] == "booking.book")
        )
        [booking] = fd.bookings()
        order = action_titled(booked, "Order services")
        assert order["data"] == {"booking": booking.id}
        categories = await desk.press(order)
        form = await desk.press(action_titled(categories, "Ask for catering"))
        assert input_values(form)["booking"] == booking.id
        # The date and time fields start from the booking (Megan's client is in New York).
        start = booking.start_at.astimezone(ZoneInfo("America/New_York"))
        assert start.strftime("%H:%M") == "10:00"
        assert input_values(form)["field.day"] == start.date().isoformat()
        assert input_values(form)["field.serve-at"] == "10:00"
        card = await desk.press(
            action_titled(form, "Send request"), {**input_values(form), **ORDER}
        )
        assert booking.room_name in text_of(card)
        [row] = fd.rows("SELECT booking_id FROM service_request")
        assert row["booking_id"] == booking.id
        # Someone else's booking id in the data is refused.
        status, body = await fd.post(
            make_card_action(
                "request.submit",
                {
                    **action_titled(form, "Send request")["data"],
                    "submission": SECOND,
                    **ORDER,
                    "booking": booking.id,
                },
                service_url=fd.service_url,
                user=ALEX,
            )
        )
        assert "not found among yours" in text_of(card_of(status, body))
        assert len(fd.rows("SELECT id FROM service_request")) == 1


SECOND = "0b0b0b0b-1111-4222-8333-555555555555"
