"""Hostile input to `/api/messages`: never a 5xx, invokes always answer in Teams' shape, nothing
of anyone else's changes, and the server's memory stays flat.

The real `python app.py` runs in a subprocess (local mode, its own SQLite file) so that its
memory is measured alone; its replies go to a small connector on 127.0.0.1 in a thread here.
Hypothesis generates the requests: activities of every type (unknown ones too) built from the
recorded Teams shapes, then with fields dropped, given the wrong types, huge or odd texts, card
clicks with unknown verbs, wrong-typed data and the ids of Alex's booking; now and then a body
that is not an activity at all. FRONTDESK_FUZZ_EXAMPLES sets how many (default 300, and 10,000
when FRONTDESK_REQUIRE_ALL=1, as in CI; 10,000 take about 65 s on 2 cores).
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands import Verb
from bot.config import DEFAULT_ROOMS_FILE
from bot.directory.local import load_rooms_file
from tests.support.activities import (
    ALEX,
    MEGAN,
    TeamsUser,
    make_card_action,
    make_group_mention,
    make_installation_update,
    make_members_added,
    make_message,
)
from tests.support.app_process import app_environment
from tests.support.cardquery import BOOKING_FORM_INPUTS, walk
from tests.support.playground import free_port
from tests.support.prereq import REQUIRE_ALL, repo_root

EXAMPLES = int(os.environ.get("FRONTDESK_FUZZ_EXAMPLES") or (10_000 if REQUIRE_ALL else 300))
WARM_UP = min(500, EXAMPLES // 5)
MAX_GROWTH_MB = 20.0
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_BODY = 256 * 1024
ROOM_IDS = [room.id for room in load_rooms_file(DEFAULT_ROOMS_FILE)]


# --- the connector the bot replies to --------------------------------------------------------


class Connector:
    """Answers every reply and update like the Bot Framework connector; counts them."""

    def __init__(self) -> None:
        self.received = 0
        connector = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                connector.received += 1
                body = json.dumps({"id": str(1_795_000_000_000 + connector.received)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_PUT = _answer  # noqa: N815 (http.server's names)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.service_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


# --- the bot in its own process ----------------------------------------------------------------


@dataclass
class Bot:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    connector: Connector
    db: Path
    _connection: http.client.HTTPConnection | None = field(default=None, repr=False)

    def rss_mb(self) -> float:
        """The bot process's resident memory now, in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS for the bot process")

    def post_raw(self, body: bytes, content_type: str = "application/json") -> tuple[int, Any]:
        """POST to /api/messages over one kept-alive connection; the status and JSON answer."""
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self._connection.request(
                    "POST", "/api/messages", body=body, headers={"Content-Type": content_type}
                )
                response = self._connection.getresponse()
                raw = response.read()
            except (ConnectionError, http.client.HTTPException):
                # A refused oversized body may close the connection: open another.
                self._connection.close()
                self._connection = None
                if attempt == 2:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                self._connection.close()
                self._connection = None
            try:
                payload = json.loads(raw) if raw.strip() else None
            except ValueError:
                payload = raw
            return response.status, payload
        raise AssertionError("unreachable")

    def post(self, activity: Any) -> tuple[int, Any]:
        return self.post_raw(json.dumps(activity).encode())

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_ready(bot: Bot) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if bot.process.poll() is not None:
            raise AssertionError(f"app.py exited: {bot.log_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{bot.port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"app.py did not become ready: {bot.log_text()}")


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    """`python app.py` in local mode with the demo office, replying to a local connector."""
    workdir = tmp_path_factory.mktemp("hostile")
    connector = Connector()
    port = free_port()
    env = app_environment(
        workdir,
        port,
        {"DIRECTORY": "local", "ROOMS_FILE": str(DEFAULT_ROOMS_FILE), "ALLOWED_TENANTS": ""},
    )
    log = workdir / "frontdesk.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=repo_root(), env=env, stdout=out, stderr=out
        )
    bot = Bot(process, port, log, connector, workdir / "frontdesk.db")
    try:
        _wait_ready(bot)
        yield bot
    finally:
        if bot._connection is not None:
            bot._connection.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        connector.close()


# --- Alex's booking: the other person's objects -------------------------------------------------


@dataclass(frozen=True)
class AlexsBooking:
    booking_id: str
    attempt_id: str
    row: tuple[Any, ...]


def _booking_rows(bot: Bot) -> list[tuple[Any, ...]]:
    with sqlite3.connect(bot.db) as connection:
        return sorted(connection.execute("SELECT * FROM booking ORDER BY id").fetchall())


def _book_as_alex(bot: Bot) -> AlexsBooking:
    """Alex searches tomorrow 10:00 and books the first room, through HTTP as Teams would."""
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    slot = {"date": tomorrow, "start": "10:00", "duration": "30", "attendees": "2"}
    su = bot.connector.service_url
    search = make_card_action(
        Verb.BOOKING_SEARCH.value, slot, service_url=su, user=ALEX, time_zone="UTC"
    )
    status, body = bot.post(search)
    assert status == 200 and body["statusCode"] == 200, body
    book = next(
        node
        for node in walk(body["value"])
        if node.get("type") == "Action.Execute" and node.get("verb") == Verb.BOOKING_BOOK.value
    )
    status, body = bot.post(
        make_card_action(book["verb"], book["data"], service_url=su, user=ALEX, time_zone="UTC")
    )
    assert status == 200 and body["statusCode"] == 200, body
    cancel = next(
        node
        for node in walk(body["value"])
        if node.get("type") == "Action.Execute" and node.get("verb") == Verb.BOOKING_CANCEL.value
    )
    [row] = _booking_rows(bot)
    return AlexsBooking(cancel["data"]["booking"], book["data"]["attempt"], row)


# --- what Hypothesis generates ----------------------------------------------------------------

KNOWN_TYPES = [
    "message",
    "invoke",
    "conversationUpdate",
    "installationUpdate",
    "event",
    "messageReaction",
    "messageUpdate",
    "messageDelete",
    "typing",
    "endOfConversation",
    "deleteUserData",
    "contactRelationUpdate",
    "handoff",
    "trace",
    "command",
    "suggestion",
]
INVOKE_NAMES = [
    "adaptiveCard/action",
    "signin/tokenExchange",
    "signin/verifyState",
    "task/fetch",
    "task/submit",
    "composeExtension/query",
    "composeExtension/submitAction",
    "actionableMessage/executeAction",
    "fileConsent/invoke",
    "config/fetch",
    "tab/fetch",
    "healthCheck",
    "handoff/action",
    "application/search",
]
DATA_KEYS = [
    "attempt",
    "room",
    "booking",
    "series",
    "substitute",
    "comment",
    *BOOKING_FORM_INPUTS,
    "request",
    "item",
    "stage",
]
TOP_LEVEL_KEYS = [
    "id",
    "type",
    "name",
    "text",
    "value",
    "from",
    "recipient",
    "conversation",
    "channelData",
    "entities",
    "attachments",
    "channelId",
    "timestamp",
    "localTimestamp",
    "locale",
    "localTimezone",
    "replyToId",
    "membersAdded",
    "membersRemoved",
    "action",
    "textFormat",
    "speak",
    "inputHint",
    "relatesTo",
    "label",
    "valueType",
]


@functools.cache
def chance(percent: int) -> st.SearchStrategy[bool]:
    """True about `percent` % of the time. (Hypothesis favours the ends of a range, so the
    true values sit in its middle.)"""
    return st.integers(min_value=1, max_value=1000).map(lambda n: 400 < n <= 400 + 10 * percent)


@functools.cache
def _json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats()
        | st.text(max_size=40)
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=12), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


@functools.cache
def _texts() -> st.SearchStrategy[str]:
    """Short texts, commands, mentions, and now and then a huge one (up to ~1.2 MB in UTF-8)."""
    huge = st.builds(
        lambda unit, times: unit * times,
        st.text(min_size=1, max_size=4),
        st.integers(min_value=1_000, max_value=100_000),
    )
    commands = st.sampled_from(
        ["book", "my bookings", "help", "sign out", "meet now", "<at>Frontdesk</at> book", ""]
    )
    ordinary = st.one_of(commands, st.text(max_size=200))
    return chance(3).flatmap(lambda big: huge if big else ordinary)


@functools.cache
def _users() -> st.SearchStrategy[TeamsUser]:
    made_up = st.builds(
        TeamsUser,
        id=st.text(min_size=1, max_size=60).map(lambda text: f"29:{text}"),
        aad_object_id=st.one_of(st.uuids().map(str), st.text(max_size=60)),
        name=st.text(max_size=60),
    )
    # Alex is left out: his booking is what nobody else may change.
    return st.one_of(st.just(MEGAN), made_up)


class Strategies:
    """Everything drawn, built once (building strategies per example costs more than drawing)."""

    def __init__(self, service_url: str, alex: AlexsBooking) -> None:
        json_small = _json_values(4)
        ids = st.one_of(
            st.sampled_from([alex.booking_id, alex.attempt_id]),
            st.uuids().map(str),
            st.sampled_from(ROOM_IDS),
            st.text(max_size=40),
            json_small,
        )
        self.verb = st.one_of(
            st.sampled_from([verb.value for verb in Verb]),
            st.sampled_from(["booking.teleport", "approval.approve", "request.cancel"]),
            st.text(max_size=30),
            _json_values(3),
        )
        self.data = st.one_of(
            st.dictionaries(
                st.sampled_from(DATA_KEYS) | st.text(max_size=10), ids | _texts(), max_size=6
            ),
            json_small,
        )
        self.action_drops = st.sets(st.sampled_from(["type", "verb", "data"]), max_size=2)
        self.trigger = st.sampled_from(["manual", "automatic", "", 5])
        self.value_extra = st.sampled_from(["authentication", "state", "action", "trigger"])
        self.json_small = json_small
        self.json_value = _json_values()
        self.kind = st.sampled_from(
            ["message", "mention", "invoke", "invoke", "members", "install"]
        )
        self.zone = st.one_of(st.none(), st.sampled_from(["Europe/London", "Mars/Base"]), st.text())
        self.invoke_name = st.sampled_from(INVOKE_NAMES) | st.text(max_size=30)
        self.install_action = st.sampled_from(["add", "remove", "x"])
        self.other_type = st.sampled_from(KNOWN_TYPES) | st.text(max_size=20)
        self.drops = st.sets(st.sampled_from(TOP_LEVEL_KEYS), min_size=1, max_size=3)
        self.wrong_types = st.dictionaries(
            st.sampled_from(TOP_LEVEL_KEYS), _json_values(5), min_size=1, max_size=3
        )
        self.channel_data = st.one_of(
            st.fixed_dictionaries({"tenant": st.fixed_dictionaries({"id": _json_values(2)})}),
            json_small,
        )
        # Only the local connector (under another path), or no URL at all: never an address off
        # this machine, nor a closed port (the connector being down is another test's matter).
        self.service_url = service_url
        self.odd_service_url = st.sampled_from(["", service_url + "x/y?z", None, 7, ["x"]])
        self.content_type = st.sampled_from(["text/plain", "application/json; charset=utf-8", ""])
        self.requests = _requests(self)


@st.composite
def _card_value(draw: st.DrawFn, s: Strategies) -> Any:
    """An `adaptiveCard/action` value: known verbs with hostile data, or something else."""
    action: dict[str, Any] = {
        "type": "Action.Execute",
        "verb": draw(s.verb),
        "data": draw(s.data),
    }
    for key in draw(s.action_drops):
        action.pop(key)
    value: dict[str, Any] = {"action": action, "trigger": draw(s.trigger)}
    if draw(chance(30)):
        value[draw(s.value_extra)] = draw(s.json_small)
    if draw(chance(5)):
        return draw(s.json_value)
    return value


@st.composite
def _requests(draw: st.DrawFn, s: Strategies) -> tuple[bytes, str, Any]:
    """A body for /api/messages, its content type, and the activity it holds (if any)."""
    if draw(chance(3)):
        return draw(st.binary(max_size=300)), "application/json", None
    if draw(chance(3)):
        value = draw(s.json_value)
        return json.dumps(value).encode(), "application/json", value
    user = draw(_users())
    kind = "other" if draw(chance(10)) else draw(s.kind)
    su = s.service_url
    if kind == "message":
        zone = draw(s.zone)
        activity = make_message(draw(_texts()), service_url=su, user=user, time_zone=zone)
    elif kind == "mention":
        activity = make_group_mention(draw(_texts()), service_url=su, user=user)
    elif kind == "invoke":
        activity = make_card_action("x", service_url=su, user=user, time_zone=draw(s.zone))
        activity["value"] = draw(_card_value(s))
        if draw(chance(30)):
            activity["name"] = draw(s.invoke_name)
        elif draw(chance(5)):
            del activity["name"]
    elif kind == "members":
        activity = make_members_added(service_url=su, user=user)
    elif kind == "install":
        activity = make_installation_update(
            service_url=su, user=user, action=draw(s.install_action)
        )
    else:
        activity = make_message("", service_url=su, user=user, time_zone=draw(s.zone))
        activity["type"] = draw(s.other_type)
    # Damage: fields dropped, fields of the wrong type, another tenant, an odd serviceUrl.
    if draw(chance(25)):
        for key in draw(s.drops):
            activity.pop(key, None)
    if draw(chance(25)):
        activity.update(draw(s.wrong_types))
    if draw(chance(10)):
        activity["channelData"] = draw(s.channel_data)
    if draw(chance(3)):
        activity["serviceUrl"] = draw(s.odd_service_url)
    content_type = draw(s.content_type) if draw(chance(2)) else "application/json"
    return json.dumps(activity).encode(), content_type, activity


# --- the run ----------------------------------------------------------------------------------


def _is_card_invoke(activity: Any) -> bool:
    return (
        isinstance(activity, dict)
        and activity.get("type") == "invoke"
        and activity.get("name") == "adaptiveCard/action"
    )


def _refused_before_the_turn(status: int, body: Any) -> bool:
    """The endpoint's own refusals (size, content type, not an activity): `{"error": ...}`."""
    return status in (400, 413, 415) and isinstance(body, dict) and set(body) == {"error"}


def check_answer(body: bytes, activity: Any, status: int, answer: Any) -> None:
    """The promises every single request keeps."""
    assert 200 <= status < 500, f"HTTP {status} {answer!r} for {body[:2000]!r}"
    if len(body) > MAX_BODY:
        assert status == 413, f"HTTP {status} for a body of {len(body)} bytes"
        return
    if _is_card_invoke(activity) and not _refused_before_the_turn(status, answer):
        assert status == 200, f"HTTP {status} {answer!r} for {body[:2000]!r}"
        assert isinstance(answer, dict), f"{answer!r} for {body[:2000]!r}"
        assert isinstance(answer.get("statusCode"), int), answer
        assert isinstance(answer.get("type"), str), answer
        assert "value" in answer, answer
        if answer["type"] == CARD_TYPE:
            assert isinstance(answer["value"], dict) and answer["value"].get("body"), answer


class Sender:
    """Posts the generated requests from a thread of its own, so that Hypothesis draws the next
    one while the bot answers this one, and checks every answer. (Hypothesis cannot shrink a
    failure found this way; the report quotes the whole request instead, which replays it.)"""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.count = 0
        self.statuses: dict[int, int] = {}
        self.failures: list[str] = []
        self.rss_after_warm_up: float | None = None
        self._queue: queue.Queue[tuple[bytes, str, Any] | None] = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def submit(self, request: tuple[bytes, str, Any]) -> None:
        self._queue.put(request)

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=120)

    def _work(self) -> None:
        while (request := self._queue.get()) is not None:
            body, content_type, activity = request
            try:
                status, answer = self.bot.post_raw(body, content_type)
                self.count += 1
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if self.count == WARM_UP:
                    self.rss_after_warm_up = self.bot.rss_mb()
                check_answer(body, activity, status, answer)
            except Exception as error:  # every failure is reported, with its request
                if len(self.failures) < 20:
                    self.failures.append(f"{type(error).__name__}: {str(error)[:3000]}")


def test_generated_requests_never_get_a_5xx_and_memory_stays_flat(bot: Bot) -> None:
    alex = _book_as_alex(bot)
    strategies = Strategies(bot.connector.service_url, alex)
    sender = Sender(bot)
    started = time.monotonic()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategies.requests)
    def one_request(request: tuple[bytes, str, Any]) -> None:
        sender.submit(request)

    try:
        one_request()
    finally:
        sender.finish()

    elapsed = time.monotonic() - started
    rss_end = bot.rss_mb()
    log = bot.log_text()
    summary = (
        f"{sender.count} requests in {elapsed:.1f} s ({sender.count / elapsed:.0f}/s); statuses "
        f"{dict(sorted(sender.statuses.items()))}; bot RSS after {WARM_UP} requests "
        f"{sender.rss_after_warm_up:.1f} MB, at the end {rss_end:.1f} MB; "
        f"{bot.connector.received} replies sent; {log.count('turn failed')} turns failed"
    )
    print(summary)  # noqa: T201 (the figures the README and the issue note quote)
    assert sender.failures == []
    assert sender.count >= EXAMPLES, summary
    assert bot.process.poll() is None, "the bot process died"
    assert sender.rss_after_warm_up is not None
    assert rss_end - sender.rss_after_warm_up < MAX_GROWTH_MB, summary
    # No request made a turn fail unexpectedly (a "Something went wrong" card).
    assert "turn failed" not in log, log[log.index("turn failed") - 200 :][:6000]
    # Alex's booking was offered to every hostile click, and is exactly as he left it.
    assert alex.row in _booking_rows(bot)
