"""Several replicas: two real `python app.py` processes on one PostgreSQL database behind a
round-robin proxy on 127.0.0.1, as a load balancer would run them.

Through the proxy, clicks and messages land on either replica. What must hold:
- 50 approvers' clicks on one request at once: one decision, one audit entry, one notice to the
  requester and one update of each copy of the card; every other click says who decided first;
- 20 users booking one room for one slot at once: one booking; the others get "taken" with
  alternatives;
- the same activity delivered to both replicas (at once, and one after the other): one effect;
- both replicas starting at once on an empty database: both ready, the schema migrated once.

Both replicas send to one fake connector in this process. Background notifications are waited
for by stopping the replicas (SIGTERM drains them), never by sleeping.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import Engine, create_engine, text

from bot.storage.db import head_revision, normalize_url
from tests.bot.conftest import card_of
from tests.conftest import empty_postgres_database
from tests.support.activities import (
    MEGAN,
    TeamsUser,
    make_card_action,
    make_message,
    personal_chat,
)
from tests.support.app_process import BotProcess, frontdesk_process
from tests.support.cardquery import (
    action_titled,
    book_actions,
    headline,
    input_values,
    text_of,
)
from tests.support.fake_connector import FakeConnector
from tests.support.round_robin import RoundRobinProxy
from tests.support.service_catalogue import catalogue, catalogue_settings, catering

pytestmark = pytest.mark.postgres

REPLICAS = 2


@pytest.fixture
def empty_database(postgres_admin: Engine | None) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database (dropped afterwards)."""
    with empty_postgres_database(postgres_admin) as url:
        yield url


@pytest.fixture
def db(empty_database: str) -> Iterator[Engine]:
    """The test's own view of the replicas' database."""
    engine = create_engine(normalize_url(empty_database))
    yield engine
    engine.dispose()


def rows(engine: Engine, sql: str, **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(text(sql), params).mappings()]


@asynccontextmanager
async def replicas(
    tmp_path: Path, database_url: str, settings: Mapping[str, str] | None = None
) -> AsyncIterator[list[BotProcess]]:
    """REPLICAS app processes on one database, all started at the same moment.

    Each is ready (its `/readyz` answered 200) when this yields; leaving stops them all, which
    lets their background work finish (SIGTERM drains it).
    """
    env = {"DATABASE_URL": database_url, "DIRECTORY": "local", **(settings or {})}
    async with AsyncExitStack() as stack:
        workdirs = [tmp_path / f"replica-{index}" for index in range(REPLICAS)]
        for workdir in workdirs:
            workdir.mkdir()
        started = await asyncio.gather(
            *(stack.enter_async_context(frontdesk_process(w, env)) for w in workdirs),
            return_exceptions=True,
        )
        failed = [outcome for outcome in started if isinstance(outcome, BaseException)]
        if failed:
            raise failed[0]
        yield [outcome for outcome in started if isinstance(outcome, BotProcess)]


def user(index: int, name: str) -> TeamsUser:
    """A Teams user with ids made from `index` (shaped like the real ones)."""
    return TeamsUser(
        id=f"29:1Replica{index:04d}".ljust(49, "0"),
        aad_object_id=f"{index:08x}-1111-4222-8333-{index:012x}",
        name=name,
    )


APPROVERS = [user(100 + i, name) for i, name in enumerate(["Ana", "Ben", "Cai", "Dev", "Eli"])]
APPROVERS = [TeamsUser(u.id, u.aad_object_id, f"{u.name} Approver") for u in APPROVERS]
FULFILMENT = user(200, "Fay Fulfilment")
BOOKERS = [user(300 + i, f"Booker {i:02d}") for i in range(20)]
CLICKS = 50
USER_ZONE = "America/New_York"  # the clientInfo time zone the activity builders send

CATALOGUE = catalogue(
    catering(policy="panel", fulfilment=f"{{users: [{FULFILMENT.aad_object_id}]}}"),
    f"""\
  - id: flowers
    name: Flowers
    description: Flowers for the reception.
    policy: pair
    booking: none
    fulfilment:
      users: [{FULFILMENT.aad_object_id}]
    fields:
      - id: vases
        type: number
        label: Vases
        required: true
        min: 1
        max: 10
""",
)
POLICIES = f"""
groups:
  panel: [{", ".join(a.aad_object_id for a in APPROVERS)}]
policies:
  - id: panel
    name: Any panel member
    fallback_channel: "19:fallback0000000000000000000000@thread.tacv2"
    stages:
      - id: panel
        name: Panel
        approvers: [{{group: panel}}]
  - id: pair
    name: Both of a pair
    fallback_channel: "19:fallback0000000000000000000000@thread.tacv2"
    stages:
      - id: pair
        name: Pair
        approvers: [{APPROVERS[0].aad_object_id}, {APPROVERS[1].aad_object_id}]
        mode: all
"""


@dataclass
class Cluster:
    """The replicas, the proxy in front of them, the connector they send to, the database."""

    apps: list[BotProcess]
    proxy: RoundRobinProxy
    connector: FakeConnector
    db: Engine
    http: aiohttp.ClientSession

    @property
    def service_url(self) -> str:
        return self.connector.service_url

    async def post(self, activity: Mapping[str, Any]) -> tuple[int, Any]:
        """POST an activity through the proxy; the status and JSON body (None if empty)."""
        async with self.http.post(self.proxy.url, json=activity) as response:
            raw = await response.read()
            body = json.loads(raw) if raw.strip() else None
            return response.status, body

    async def press(self, activity: Mapping[str, Any]) -> dict[str, Any]:
        """An invoke through the proxy; the card it was answered with."""
        return card_of(*await self.post(activity))

    async def say(self, text: str, who: TeamsUser) -> dict[str, Any]:
        """A personal-chat message through the proxy; the one card the bot replied with."""
        before = len(self.connector.sent)
        status, body = await self.post(make_message(text, service_url=self.service_url, user=who))
        assert status in (200, 201), (status, body)
        cards = [
            card
            for request in self.connector.sent[before:]
            if request.conversation_id == personal_chat(who).id
            for card in request.cards()
        ]
        assert len(cards) == 1, f"expected one card in reply to {text!r}, got {len(cards)}"
        return cards[0]

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        return rows(self.db, sql, **params)

    def assert_both_replicas_served(self) -> None:
        assert self.proxy.failures == 0
        assert all(count > 0 for count in self.proxy.counts.values()), self.proxy.counts


@asynccontextmanager
async def cluster(
    tmp_path: Path, database_url: str, db: Engine, settings: Mapping[str, str] | None = None
) -> AsyncIterator[Cluster]:
    """Replicas on `database_url` behind a round-robin proxy, replying to one fake connector."""
    async with (
        FakeConnector() as connector,
        replicas(tmp_path, database_url, settings) as apps,
        RoundRobinProxy([app.base_url for app in apps]) as proxy,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200), timeout=aiohttp.ClientTimeout(total=120)
        ) as http,
    ):
        yield Cluster(apps=apps, proxy=proxy, connector=connector, db=db, http=http)


async def ready(session: aiohttp.ClientSession, app: BotProcess) -> tuple[int, Any]:
    async with session.get(f"{app.base_url}/readyz") as response:
        return response.status, await response.json()


async def test_both_replicas_start_at_once_on_an_empty_database(
    tmp_path: Path, empty_database: str, db: Engine
) -> None:
    async with replicas(tmp_path, empty_database) as apps, aiohttp.ClientSession() as session:
        answers = [await ready(session, app) for app in apps]
        logs = [app.log.read_text(errors="replace") for app in apps]

    assert answers == [(200, {"status": "ready"})] * REPLICAS
    assert rows(db, "SELECT version_num FROM alembic_version") == [{"version_num": head_revision()}]
    # The first migration ran in one replica only; the other found the schema at head.
    first_step = [log.count("Running upgrade  -> 0001") for log in logs]
    assert sorted(first_step) == [0, 1], logs
    assert not [log for log in logs if "Traceback" in log], logs


async def wait_for_rows(engine: Engine, sql: str, count: int, **params: Any) -> None:
    """Poll until the query returns at least `count` rows, for at most about 30 s."""
    for _ in range(600):
        if len(rows(engine, sql, **params)) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} rows after 30 s: {sql}")


async def file_request(desk: Cluster, category: str, inputs: Mapping[str, str]) -> dict[str, Any]:
    """Megan files a request through the bot; its row, once its approvers' cards are out."""
    categories = await desk.say("request", MEGAN)
    ask = action_titled(categories, f"Ask for {category}")
    form = await desk.press(
        make_card_action(ask["verb"], ask["data"], service_url=desk.service_url)
    )
    send = action_titled(form, "Send request")
    filed = await desk.press(
        make_card_action(
            send["verb"],
            {**input_values(form), **inputs, **send["data"]},
            service_url=desk.service_url,
        )
    )
    assert "Sent." in text_of(filed), text_of(filed)
    [request] = desk.rows("SELECT id, status FROM service_request ORDER BY created_at DESC LIMIT 1")
    # The approvers' cards are out (the notice is recorded after the last one).
    await wait_for_rows(
        desk.db,
        "SELECT id FROM audit_event WHERE action = 'notified' AND request_id = :id",
        1,
        id=request["id"],
    )
    return request


async def test_fifty_clicks_on_one_request_through_both_replicas_decide_it_once(
    tmp_path: Path, empty_database: str, db: Engine
) -> None:
    async with cluster(
        tmp_path, empty_database, db, catalogue_settings(tmp_path, CATALOGUE, POLICIES)
    ) as desk:
        for approver in APPROVERS:  # each has a personal chat with the bot
            await desk.say("help", approver)
        request = await file_request(desk, "catering", {"field.people": "6"})
        copies = desk.rows("SELECT conversation_id FROM request_card WHERE activity_id IS NOT NULL")
        mark = len(desk.connector.sent)
        clicks = [
            make_card_action(
                "request.decide",
                {
                    "request": request["id"],
                    "decision": "reject" if i % 3 == 0 else "approve",
                    "item": "all",
                },
                service_url=desk.service_url,
                user=APPROVERS[i % len(APPROVERS)],
            )
            for i in range(CLICKS)
        ]

        answers = await asyncio.gather(*(desk.post(click) for click in clicks))

        desk.assert_both_replicas_served()
        texts = [text_of(card_of(*answer)) for answer in answers]
    # The replicas have stopped: every notification they started has finished.

    decided = desk.rows("SELECT status FROM service_request WHERE id = :id", id=request["id"])
    [decision] = desk.rows(
        "SELECT action, actor_name, at FROM audit_event "
        "WHERE request_id = :id AND action IN ('approved', 'rejected')",
        id=request["id"],
    )
    verdict = decision["action"]
    assert decided == [{"status": verdict}]
    winners = [t for t in texts if "Your decision is recorded." in t]
    assert len(winners) == 1, texts
    when = decision["at"].astimezone(ZoneInfo(USER_ZONE)).strftime("%d %b %Y %H:%M")
    already = f"This was already {verdict} by {decision['actor_name']} at {when}."
    losers = [t for t in texts if already in t]
    assert len(losers) == CLICKS - 1, [t for t in texts if already not in t]

    # One notice to the requester, and each copy of the card updated once, to the outcome.
    megan_chat = personal_chat(MEGAN).id
    after = desk.connector.sent[mark:]
    notices = [r for r in after if r.conversation_id == megan_chat and not r.is_update]
    assert [text_of(r.cards()[0]).splitlines()[0] for r in notices] == [f"Request {verdict}"]
    updates = sorted(r.conversation_id or "" for r in after if r.is_update)
    assert updates == sorted(copy["conversation_id"] for copy in copies)
    assert len(copies) == 1 + len(APPROVERS)  # the requester's card and each approver's
    for r in after:
        if r.is_update:
            assert f"Status: {verdict.title()}" in text_of(r.cards()[0]), text_of(r.cards()[0])


def booking_inputs(form: Mapping[str, Any]) -> dict[str, str]:
    """The booking form's inputs for 10:00-11:00 tomorrow in the users' time zone, 4 people."""
    tomorrow = (datetime.now(ZoneInfo(USER_ZONE)) + timedelta(days=1)).date()
    return {
        **input_values(form),
        "date": tomorrow.isoformat(),
        "start": "10:00",
        "duration": "60",
        "attendees": "4",
    }


async def test_twenty_people_booking_one_room_through_both_replicas_get_one_booking(
    tmp_path: Path, empty_database: str, db: Engine
) -> None:
    async with cluster(tmp_path, empty_database, db) as desk:
        form = await desk.say("book", BOOKERS[0])
        find = action_titled(form, "Find rooms")
        results = await asyncio.gather(
            *(
                desk.press(
                    make_card_action(
                        find["verb"],
                        {**booking_inputs(form), **find["data"]},
                        service_url=desk.service_url,
                        user=booker,
                    )
                )
                for booker in BOOKERS
            )
        )
        room = book_actions(results[0])[0]["title"].removeprefix("Book ")
        clicks = [
            make_card_action(
                button["verb"], button["data"], service_url=desk.service_url, user=booker
            )
            for booker, found in zip(BOOKERS, results, strict=True)
            for button in [action_titled(found, f"Book {room}")]
        ]
        desk.proxy.counts = dict.fromkeys(desk.proxy.counts, 0)

        answered = await asyncio.gather(*(desk.press(click) for click in clicks))

        desk.assert_both_replicas_served()
        answers = [await shown(desk, card, b) for card, b in zip(answered, BOOKERS, strict=True)]

    booked = desk.rows("SELECT user_id, room_name, status FROM booking")
    assert len(booked) == 1, booked
    assert booked[0]["room_name"] == room and booked[0]["status"] == "confirmed"
    heads = [headline(card) for card in answers]
    assert sorted(heads) == ["Free rooms"] * (len(BOOKERS) - 1) + ["Room booked"], heads
    winner = BOOKERS[heads.index("Room booked")]
    assert booked[0]["user_id"] == winner.aad_object_id
    for card in answers:
        if headline(card) == "Free rooms":
            assert f"{room} was just booked by someone else" in text_of(card)
            offered = [b["title"].removeprefix("Book ") for b in book_actions(card)]
            assert offered and room not in offered, offered


async def shown(desk: Cluster, card: dict[str, Any], who: TeamsUser) -> dict[str, Any]:
    """The card the user ends up seeing for a Book click.

    A click whose work outlasts the turn (or runs in the other replica) is answered "working on
    it" with a refresh of the same click; Teams asks again when it shows the card, and so does
    this, until the answer is the result (for at most about 30 s).
    """
    for _ in range(150):
        refresh = (card.get("refresh") or {}).get("action") or {}
        if not (headline(card).startswith("Booking") and refresh.get("verb") == "booking.book"):
            return card
        await asyncio.sleep(0.2)
        card = await desk.press(
            make_card_action(
                refresh["verb"],
                refresh.get("data"),
                service_url=desk.service_url,
                user=who,
                trigger="automatic",
            )
        )
    raise AssertionError(f"still working after 30 s: {text_of(card)}")


async def to_both(desk: Cluster, activity: Mapping[str, Any], *, at_once: bool) -> list[Any]:
    """The activity to each replica once (at once or one after the other); the answers."""
    before = dict(desk.proxy.counts)
    if at_once:
        answers = list(await asyncio.gather(desk.post(activity), desk.post(activity)))
    else:
        answers = [await desk.post(activity), await desk.post(activity)]
    assert all(desk.proxy.counts[app] - before[app] == 1 for app in before), desk.proxy.counts
    return answers


async def test_one_activity_delivered_to_both_replicas_has_one_effect(
    tmp_path: Path, empty_database: str, db: Engine
) -> None:
    async with cluster(tmp_path, empty_database, db) as desk:
        su = desk.service_url
        # A message to both replicas at once, another to both one after the other.
        answers = await to_both(desk, make_message("book", service_url=su), at_once=True)
        after_at_once = len(desk.connector.sent)
        answers += await to_both(desk, make_message("my bookings", service_url=su), at_once=False)
        after_in_turn = len(desk.connector.sent)
        # A Book click, the same ways: every answer shows the one booking it made.
        [form] = desk.connector.sent[0].cards()
        find = action_titled(form, "Find rooms")
        found = await desk.press(
            make_card_action(find["verb"], {**booking_inputs(form), **find["data"]}, service_url=su)
        )
        button = book_actions(found)[0]
        click = make_card_action(button["verb"], button["data"], service_url=su)
        clicked = await to_both(desk, click, at_once=True)
        clicked += await to_both(desk, click, at_once=False)
        cards = [await shown(desk, card_of(*answer), MEGAN) for answer in clicked]

    assert {status for status, _ in answers} <= {200, 201}
    assert (after_at_once, after_in_turn) == (1, 2)
    assert len(desk.rows("SELECT key FROM seen_activity")) == 2
    assert [headline(card) for card in cards] == ["Room booked"] * 4
    assert all(card == cards[0] for card in cards)
    assert len(desk.rows("SELECT id FROM booking")) == 1


async def test_decisions_close_together_on_both_replicas_leave_every_copy_current(
    tmp_path: Path, empty_database: str, db: Engine
) -> None:
    # Both of a pair must approve; they do within a moment, each through another replica,
    # while the connector is slow to take the first decision's first card update.
    pair = APPROVERS[:2]
    async with cluster(
        tmp_path, empty_database, db, catalogue_settings(tmp_path, CATALOGUE, POLICIES)
    ) as desk:
        for approver in pair:
            await desk.say("help", approver)
        request = await file_request(desk, "flowers", {"field.vases": "2"})
        desk.connector.update_delays = [1.0]
        decided = []
        for approver in pair:
            decided.append(
                await desk.press(
                    make_card_action(
                        "request.decide",
                        {"request": request["id"], "decision": "approve", "item": "all"},
                        service_url=desk.service_url,
                        user=approver,
                    )
                )
            )
        desk.assert_both_replicas_served()

    assert ["Your decision is recorded." in text_of(card) for card in decided] == [True, True]
    assert desk.rows("SELECT status FROM service_request") == [{"status": "approved"}]
    copies = desk.rows(
        "SELECT conversation_id, activity_id FROM request_card "
        "WHERE audience IN ('requester', 'approver')"
    )
    assert len(copies) == 1 + len(pair)
    for copy in copies:
        updates = [
            r
            for r in desk.connector.sent
            if r.is_update and (r.conversation_id, r.activity_id) == tuple(copy.values())
        ]
        assert updates, copy
        assert "Status: Approved" in text_of(updates[-1].cards()[0]), text_of(
            updates[-1].cards()[0]
        )
