"""Proactive sends when the Bot Connector fails, over the real adapter and a fake connector.

An approval card goes to Alex's stored personal chat while the connector answers as Teams
documents (https://learn.microsoft.com/microsoftteams/platform/bots/build-conversational-capability#status-codes-from-bot-conversational-apis):
403 (not in the roster, blocked), 404, 412, 429 (with and without Retry-After), 500, 502, 503.
Each test reads what the connector saw (attempts), the waits asked of the controlled clock
(nothing really waits), the stale mark in the database, the audit trail, the cards posted, and
the mail the fake Microsoft Graph accepted for an approver Teams could not reach.

The app runs in Microsoft 365 mode (DIRECTORY=graph against the fake Graph, every request
checked against Graph's v1.0 metadata) with NOTIFY_MAIL_FROM set; approval mail uses an app-only
token the fake Graph knows. One test runs in local mode, where there is no mail.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from app import COMPONENTS
from bot.notifications import RetryPolicy
from tests.bot.conftest import Frontdesk, running_frontdesk
from tests.conftest import FakeClock
from tests.support.activities import ALEX, MEGAN, TENANT_ID, TeamsUser, make_message, personal_chat
from tests.support.cardquery import execute_actions, text_of
from tests.support.fake_connector import FakeConnector, cards_of
from tests.support.fake_graph import FakeGraph, FakeTenant, SentMail
from tests.support.graph_session import MEGAN_TOKEN, Microsoft365, microsoft365
from tests.support.service_catalogue import catalogue, catalogue_settings, catering

FALLBACK = "19:approvalsfallback000000000000@thread.tacv2"
TEAMS_APP_ID = "3f1e2d4c-5b6a-4798-8a9b-0c1d2e3f4a5b"
SENDER = "frontdesk@contoso.example"
ALEX_MAIL = "alexw@contoso.example"
APP_TOKEN = "app-only-token-for-mail"
# RetryPolicy's jitter source: the n-th retry waits 0.75 * 2**n seconds (between half and all).
JITTER = 0.5
FIRST, SECOND, THIRD = 0.75, 1.5, 3.0

CATALOGUE = catalogue(
    catering(
        policy="lead", fulfilment='{channel: "19:kitchen00000000000000000000000@thread.tacv2"}'
    )
)

POLICIES = f"""
policies:
  - id: lead
    name: Team lead
    fallback_channel: "{FALLBACK}"
    stages:
      - id: lead
        name: Team lead
        approvers: [{ALEX.aad_object_id}]
"""

ORDER = {"field.people": "12", "field.lunch": "sandwiches", "field.pastries": "2"}


class Waits:
    """The controlled clock's sleep: records each wait asked for, returns at once."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)


class Desk:
    """The request flow from Megan's and Alex's side, and what each service saw."""

    def __init__(self, fd: Frontdesk, waits: Waits, graph: FakeGraph | None) -> None:
        self.fd = fd
        self.waits = waits
        self.graph = graph
        self.replies: set[int] = set()  # indexes of connector attempts that were turn replies

    @property
    def connector(self) -> FakeConnector:
        return self.fd.connector

    async def settle(self) -> None:
        await self.fd.client.server.app[COMPONENTS].tasks.drain(timeout=60)

    async def hello(self, user: TeamsUser) -> None:
        """The user writes to the bot, so it stores their personal chat."""
        before = len(self.connector.attempts)
        await self.fd.send(make_message("help", service_url=self.fd.service_url, user=user))
        self.replies.update(range(before, len(self.connector.attempts)))

    async def file(self) -> str:
        """Megan asks for catering; the request id. Then the notifications run."""
        card = await self.fd.file_request("catering", ORDER)
        assert "Sent." in text_of(card)
        [row] = self.fd.rows("SELECT id FROM service_request ORDER BY created_at DESC LIMIT 1")
        await self.settle()
        return str(row["id"])

    def cards_in(self, conversation_id: str) -> list[dict[str, Any]]:
        """Cards created (not updated) in a conversation, the help answers left out."""
        return [
            card
            for request in self.connector.sent
            if request.conversation_id == conversation_id and not request.is_update
            for card in request.cards()
            if "Catering request" in text_of(card)
        ]

    def sends_to(self, conversation_id: str) -> list[int]:
        """The statuses the connector answered each card post to this chat with (the help
        cards answering the users' hellos left out)."""
        return [
            attempt.status
            for index, attempt in enumerate(self.connector.attempts)
            if index not in self.replies
            and attempt.conversation_id == conversation_id
            and attempt.method == "POST"
        ]

    def stale(self, conversation_id: str) -> tuple[Any, Any]:
        [row] = self.fd.rows(
            "SELECT stale_at, stale_reason FROM conversation_ref WHERE conversation_id = :id",
            id=conversation_id,
        )
        return row["stale_at"], row["stale_reason"]

    def events(self, request_id: str) -> list[tuple[str, dict[str, Any]]]:
        rows = self.fd.rows(
            "SELECT action, detail FROM audit_event WHERE request_id = :id ORDER BY at, id",
            id=request_id,
        )
        return [(row["action"], json.loads(row["detail"])) for row in rows]

    def actions(self, request_id: str) -> list[str]:
        return [action for action, _ in self.events(request_id)]

    def opened_chats(self) -> list[str]:
        """Members of the personal chats the bot asked the connector to open."""
        return [body["members"][0]["id"] for body in self.connector.created if body.get("members")]

    def fallback_cards(self) -> list[dict[str, Any]]:
        """Cards of the threads the connector started in the fallback channel (not refused)."""
        answers = [a.status for a in self.connector.attempts if a.path == "/v3/conversations"]
        threads = [
            body
            for body, status in zip(self.connector.created, answers, strict=True)
            if status == 200
            and (body.get("channelData") or {}).get("channel", {}).get("id") == FALLBACK
        ]
        return [card for thread in threads for card in cards_of(thread.get("activity"))]

    def mails(self) -> list[SentMail]:
        return list(self.graph.sent_mail) if self.graph is not None else []


def approver_mail_problems(mail: SentMail, request_id: str) -> list[str]:
    """What is wrong with the approval mail Alex got (empty when it is right)."""
    problems = []
    body = str(mail.message.get("body", {}).get("content", ""))
    link = f"https://teams.microsoft.com/l/entity/{TEAMS_APP_ID}/conversations?tenantId={TENANT_ID}"
    if mail.sender != SENDER:
        problems.append(f"sent as {mail.sender}")
    if mail.recipients != [ALEX_MAIL]:
        problems.append(f"sent to {mail.recipients}")
    if mail.message.get("subject") != "Approval needed: Catering request from Megan Bowen":
        problems.append(f"subject {mail.message.get('subject')!r}")
    if mail.message.get("body", {}).get("contentType") != "HTML":
        problems.append("not HTML")
    for expected in (f'href="{link}"', "Sandwich platter", "EUR 162.00", "Megan Bowen", request_id):
        if expected not in body:
            problems.append(f"body lacks {expected!r}")
    return problems


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
async def m365() -> AsyncIterator[Microsoft365]:
    """A tenant of Megan (signed in), Alex and the mail sender; the app's token for mail."""
    tenant = FakeTenant(domain="contoso.example")
    megan = tenant.add_user("Megan Bowen", "meganb@contoso.example", user_id=MEGAN.aad_object_id)
    tenant.add_user("Alex Wilber", ALEX_MAIL, user_id=ALEX.aad_object_id)
    tenant.add_user("Frontdesk", SENDER)
    tenant.issue_token(megan, MEGAN_TOKEN)
    tenant.app_tokens.add(APP_TOKEN)
    async with microsoft365(tenant) as m365:
        yield m365


@asynccontextmanager
async def _start(
    tmp_path: Path,
    clock: FakeClock,
    connector: FakeConnector,
    waits: Waits,
    extra: Mapping[str, str],
    graph: FakeGraph | None,
) -> AsyncIterator[Desk]:
    """The app with the test catalogue and policies, its connector retries on `waits`."""
    env = {**catalogue_settings(tmp_path, CATALOGUE, POLICIES), **extra}

    async def app_token() -> str:
        return APP_TOKEN

    async with running_frontdesk(
        f"sqlite:///{tmp_path / 'frontdesk.db'}",
        clock,
        connector,
        env,
        connector_retry=RetryPolicy(sleep=waits.sleep, random=lambda: JITTER),
        mail_app_token=app_token,
    ) as fd:
        yield Desk(fd, waits, graph)


@pytest.fixture
async def desk(
    tmp_path: Path, clock: FakeClock, waits: Waits, m365: Microsoft365
) -> AsyncIterator[Desk]:
    """Microsoft 365 mode with approval mail from SENDER; Alex has written to the bot."""
    async with FakeConnector() as connector:
        extra = {**m365.settings(), "NOTIFY_MAIL_FROM": SENDER, "TEAMS_APP_ID": TEAMS_APP_ID}
        async with _start(tmp_path, clock, connector, waits, extra, m365.graph) as started:
            await started.hello(ALEX)
            yield started


ALEX_CHAT = personal_chat(ALEX).id
OPENED_CHAT = f"a:opened-{ALEX.aad_object_id}"


# -- gone for good: 403 and 404 mark the stored chat stale, never retried -------------------------
async def test_403_not_in_roster_marks_the_chat_stale_and_opens_a_fresh_one(desk: Desk) -> None:
    desk.connector.fail(403, "BotNotInConversationRoster", conversation_id=ALEX_CHAT)

    request_id = await desk.file()

    assert desk.sends_to(ALEX_CHAT) == [403]  # not retried
    assert desk.waits.asked == []
    stale_at, reason = desk.stale(ALEX_CHAT)
    assert stale_at is not None and reason == "BotNotInConversationRoster"
    assert desk.opened_chats() == [ALEX.aad_object_id]
    assert len(desk.cards_in(OPENED_CHAT)) == 1
    assert desk.cards_in(ALEX_CHAT) == []
    notified = [detail for action, detail in desk.events(request_id) if action == "notified"]
    assert [d["names"] for d in notified] == ["Alex Wilber"] and "fallback" not in notified[0]
    assert desk.mails() == [] and desk.fallback_cards() == []

    # The stale chat is not used again: the next card goes to the chat opened for Alex.
    await desk.file()
    assert desk.sends_to(ALEX_CHAT) == [403]
    assert len(desk.cards_in(OPENED_CHAT)) == 2


async def test_403_blocked_by_user_opens_no_chat_and_mails_the_approval(desk: Desk) -> None:
    desk.connector.fail(403, "ConversationBlockedByUser", conversation_id=ALEX_CHAT)

    request_id = await desk.file()

    assert desk.sends_to(ALEX_CHAT) == [403]
    assert desk.waits.asked == []
    assert desk.stale(ALEX_CHAT)[1] == "ConversationBlockedByUser"
    assert desk.opened_chats() == []  # Teams: stop posting until the user writes again
    [posted] = desk.fallback_cards()
    assert "could not reach Alex Wilber" in text_of(posted)
    [mail] = desk.mails()
    assert approver_mail_problems(mail, request_id) == []
    events = desk.events(request_id)
    assert ("emailed", {"stage": "lead", "audience": "approvers", "names": "Alex Wilber"}) in events
    assert [d.get("fallback") for a, d in events if a == "notified"] == [FALLBACK]
    assert "unreachable" not in desk.actions(request_id)
    # The card's history says so too (Megan's view, as her card refreshes).
    shown = await desk.fd.press(
        {"type": "Action.Execute", "verb": "request.show", "data": {"request": request_id}},
        trigger="automatic",
    )
    assert "Frontdesk emailed the approval to Alex Wilber" in text_of(shown)

    # A second request while still blocked: no card in the chat, no new chat, mailed again.
    second = await desk.file()
    assert desk.sends_to(ALEX_CHAT) == [403]
    assert desk.opened_chats() == []
    assert len(desk.mails()) == 2 and "emailed" in desk.actions(second)

    # Alex writes to the bot again: the mark is cleared and the chat is used again.
    await desk.hello(ALEX)
    assert desk.stale(ALEX_CHAT) == (None, None)
    await desk.file()
    assert desk.sends_to(ALEX_CHAT) == [403, 200]
    assert len(desk.cards_in(ALEX_CHAT)) == 1
    assert len(desk.mails()) == 2


async def test_404_marks_the_chat_stale_and_a_refused_new_chat_leads_to_mail(desk: Desk) -> None:
    desk.connector.fail(404, "ConversationNotFound", conversation_id=ALEX_CHAT)
    desk.connector.refuse_members.add(ALEX.aad_object_id)

    request_id = await desk.file()

    assert desk.sends_to(ALEX_CHAT) == [404]
    assert desk.stale(ALEX_CHAT)[1] == "ConversationNotFound"
    assert desk.opened_chats() == [ALEX.aad_object_id]  # tried once, refused (403), not retried
    assert [a.status for a in desk.connector.attempts if a.path == "/v3/conversations"] == [
        403,
        200,  # the fallback channel's thread
    ]
    assert desk.waits.asked == []
    [mail] = desk.mails()
    assert approver_mail_problems(mail, request_id) == []
    assert len(desk.fallback_cards()) == 1
    assert "emailed" in desk.actions(request_id)


# -- worth a retry: 412, 429, 502/503 -------------------------------------------------------------
async def test_412_is_retried_with_backoff_and_posts_one_card(desk: Desk) -> None:
    desk.connector.fail(412, "PreconditionFailed", conversation_id=ALEX_CHAT)

    request_id = await desk.file()

    assert desk.sends_to(ALEX_CHAT) == [412, 200]
    assert desk.waits.asked == [FIRST]
    assert len(desk.cards_in(ALEX_CHAT)) == 1
    assert desk.stale(ALEX_CHAT) == (None, None)
    assert "notified" in desk.actions(request_id)
    assert desk.mails() == [] and desk.fallback_cards() == [] and desk.opened_chats() == []


async def test_429_waits_what_retry_after_says(desk: Desk) -> None:
    desk.connector.fail(429, "Throttled", conversation_id=ALEX_CHAT, retry_after="7")

    request_id = await desk.file()

    assert desk.sends_to(ALEX_CHAT) == [429, 200]
    assert desk.waits.asked == [7.0]
    assert len(desk.cards_in(ALEX_CHAT)) == 1
    assert desk.stale(ALEX_CHAT) == (None, None)
    assert "notified" in desk.actions(request_id)
    assert desk.mails() == []


async def test_429_without_retry_after_backs_off_exponentially(desk: Desk) -> None:
    desk.connector.fail(429, "Throttled", conversation_id=ALEX_CHAT, times=3)

    await desk.file()

    assert desk.sends_to(ALEX_CHAT) == [429, 429, 429, 200]
    assert desk.waits.asked == [FIRST, SECOND, THIRD]
    assert len(desk.cards_in(ALEX_CHAT)) == 1
    assert desk.mails() == []


async def test_429_asking_for_longer_than_the_limit_falls_back_at_once(desk: Desk) -> None:
    desk.connector.fail(429, "Throttled", conversation_id=ALEX_CHAT, retry_after="120")

    request_id = await desk.file()

    assert desk.sends_to(ALEX_CHAT) == [429]
    assert desk.waits.asked == []  # 120 s is more than one wait may be (30 s)
    assert desk.stale(ALEX_CHAT) == (None, None)  # throttled is not gone
    assert len(desk.fallback_cards()) == 1
    [mail] = desk.mails()
    assert approver_mail_problems(mail, request_id) == []


async def test_503_is_retried_until_it_succeeds(desk: Desk) -> None:
    desk.connector.fail(503, conversation_id=ALEX_CHAT, times=2)

    await desk.file()

    assert desk.sends_to(ALEX_CHAT) == [503, 503, 200]
    assert desk.waits.asked == [FIRST, SECOND]
    assert len(desk.cards_in(ALEX_CHAT)) == 1
    assert desk.mails() == [] and desk.fallback_cards() == []


async def test_503_every_time_gives_up_after_four_attempts_and_mails(desk: Desk) -> None:
    desk.connector.fail(503, conversation_id=ALEX_CHAT, times=10)

    request_id = await desk.file()

    assert desk.sends_to(ALEX_CHAT) == [503, 503, 503, 503]
    assert desk.waits.asked == [FIRST, SECOND, THIRD]
    assert desk.stale(ALEX_CHAT) == (None, None)
    assert desk.opened_chats() == []  # the chat is fine; the service is not
    assert len(desk.fallback_cards()) == 1
    [mail] = desk.mails()
    assert approver_mail_problems(mail, request_id) == []
    assert "emailed" in desk.actions(request_id)


async def test_502_after_the_card_was_created_is_not_posted_again(desk: Desk) -> None:
    # The gateway fails after the connector created the message: posting again would show
    # Alex the card twice, so a card post is not retried on 502 (docs: creating is not
    # idempotent). The bot cannot know the card arrived, so it falls back as well.
    desk.connector.fail(502, "ServiceError", conversation_id=ALEX_CHAT, carried_out=True)

    request_id = await desk.file()

    assert desk.sends_to(ALEX_CHAT) == [502]
    assert len(desk.cards_in(ALEX_CHAT)) == 1  # the one the connector created, not two
    assert desk.waits.asked == []
    assert len(desk.fallback_cards()) == 1
    assert len(desk.mails()) == 1 and "emailed" in desk.actions(request_id)


async def test_500_is_not_retried(desk: Desk) -> None:
    desk.connector.fail(500, "ServiceError", conversation_id=ALEX_CHAT)

    request_id = await desk.file()

    assert desk.sends_to(ALEX_CHAT) == [500]  # Teams: 500 is not to be retried
    assert desk.waits.asked == []
    assert desk.stale(ALEX_CHAT) == (None, None)
    assert desk.opened_chats() == []
    assert len(desk.fallback_cards()) == 1
    [mail] = desk.mails()
    assert approver_mail_problems(mail, request_id) == []


# -- updates of posted copies ---------------------------------------------------------------------
def decide(card: Mapping[str, Any], title: str, item: str) -> dict[str, Any]:
    """The Approve or Reject button of one item."""
    for action in execute_actions(card):
        if action.get("title") == title and action.get("data", {}).get("item") == item:
            return action
    raise AssertionError(f"no {title} button for {item} in {text_of(card)}")


async def test_card_updates_are_retried_on_502_and_503_and_a_403_copy_is_left_alone(
    desk: Desk,
) -> None:
    await desk.hello(MEGAN)
    request_id = await desk.file()
    [alex_card] = desk.cards_in(ALEX_CHAT)
    megan_chat = personal_chat(MEGAN).id
    # Alex's copy updates after one 503 and one 502 (a PUT is safe to repeat); Megan's copy
    # (the card she pressed Send on) refuses with 403, she blocked the bot: not updatable.
    desk.connector.fail(503, method="PUT", conversation_id=ALEX_CHAT)
    desk.connector.fail(502, method="PUT", conversation_id=ALEX_CHAT)
    desk.connector.fail(403, "ConversationBlockedByUser", method="PUT", conversation_id=megan_chat)

    decided = await desk.fd.press(decide(alex_card, "Approve", "lunch.sandwiches"), user=ALEX)
    await desk.settle()

    assert [a.status for a in desk.connector.attempts_at(ALEX_CHAT, "PUT")] == [503, 502, 200]
    assert desk.waits.asked == [FIRST, SECOND]
    assert [a.status for a in desk.connector.attempts_at(megan_chat, "PUT")] == [403]
    [copy] = desk.fd.rows(
        "SELECT stale_at, stale_reason FROM request_card WHERE request_id = :id "
        "AND audience = 'requester'",
        id=request_id,
    )
    assert copy["stale_at"] is not None and copy["stale_reason"] == "ConversationBlockedByUser"

    # The next decision updates Alex's copy again and leaves Megan's alone.
    await desk.fd.press(decide(decided, "Reject", "pastries"), user=ALEX)
    await desk.settle()
    assert [a.status for a in desk.connector.attempts_at(ALEX_CHAT, "PUT")] == [503, 502, 200, 200]
    assert [a.status for a in desk.connector.attempts_at(megan_chat, "PUT")] == [403]


async def test_500_on_a_card_update_is_not_retried(desk: Desk) -> None:
    await desk.file()
    [alex_card] = desk.cards_in(ALEX_CHAT)
    desk.connector.fail(500, "ServiceError", method="PUT", conversation_id=ALEX_CHAT)

    await desk.fd.press(decide(alex_card, "Approve", "lunch.sandwiches"), user=ALEX)
    await desk.settle()

    assert [a.status for a in desk.connector.attempts_at(ALEX_CHAT, "PUT")] == [500]
    assert desk.waits.asked == []
    # A 500 is the service's fault, not the copy's: the next change updates it again.
    [copy] = desk.fd.rows("SELECT stale_at FROM request_card WHERE audience = 'approver'")
    assert copy["stale_at"] is None


# -- local mode: no Graph, no mail ----------------------------------------------------------------
async def test_local_mode_records_unreachable_and_sends_no_mail(
    tmp_path: Path, clock: FakeClock, waits: Waits
) -> None:
    async with FakeConnector() as connector:
        connector.refuse_channels.add(FALLBACK)
        async with _start(tmp_path, clock, connector, waits, {}, None) as desk:
            await desk.hello(ALEX)
            connector.fail(403, "ConversationBlockedByUser", conversation_id=ALEX_CHAT)

            request_id = await desk.file()

            assert desk.sends_to(ALEX_CHAT) == [403]
            assert desk.stale(ALEX_CHAT)[1] == "ConversationBlockedByUser"
            channel = [a.status for a in connector.attempts if a.path == "/v3/conversations"]
            assert channel == [403]  # the fallback channel refused too; no chat was opened
            assert desk.mails() == []
            [(action, detail)] = [e for e in desk.events(request_id) if e[0] != "submitted"]
            assert action == "unreachable" and detail["names"] == "Alex Wilber"
