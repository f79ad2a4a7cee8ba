"""Structured logs: one JSON object per line, and one request id through all lines of a turn.

The formatter and the request-id binding are tested in-process; then a real `python app.py`
serves a few requests and every line it wrote is read back.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.logs import (
    REQUEST_ID_HEADER,
    JsonFormatter,
    LogFormat,
    TextFormatter,
    TurnFilter,
    begin_request,
    bind_activity,
    configure_logging,
    current_turn,
    request_id_from,
)
from tests.support.activities import (
    STRANGER,
    TENANT_ID,
    make_card_action,
    make_message,
)
from tests.support.app_process import frontdesk_process
from tests.support.fake_connector import FakeConnector

REQUIRED_KEYS = {"time", "level", "logger", "message"}
TURN_KEYS = {"request_id", "activity_id", "activity_type", "conversation_id"}


def is_uuid4(value: str) -> bool:
    try:
        return uuid.UUID(value).version == 4 and str(uuid.UUID(value)) == value
    except ValueError:
        return False


# --- the request id -------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["abc-123", "A.b_c-9", "x" * 128, "0"])
def test_a_sane_request_id_is_kept(header: str) -> None:
    assert request_id_from(header) == header


@pytest.mark.parametrize(
    "header",
    [None, "", "x" * 129, "has space", "new\nline", 'quote"d', "ünïcode", "a;b", "a/b"],
)
def test_any_other_request_id_is_replaced_by_a_new_uuid4(header: str | None) -> None:
    first, second = request_id_from(header), request_id_from(header)

    assert is_uuid4(first) and is_uuid4(second)
    assert first != second


# --- the formatters ---------------------------------------------------------------------------


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own writing JSON lines into a buffer (the root logger is left alone)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(TurnFilter())
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger(f"tests.ops.{uuid.uuid4().hex}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    yield log, buffer
    log.removeHandler(handler)


def lines_of(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_line_outside_a_request_has_the_base_fields_only(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    log, buffer = captured

    log.info("rooms loaded: %d in %s", 20, "Harbour House")

    [line] = lines_of(buffer)
    assert set(line) == REQUIRED_KEYS
    assert line["message"] == "rooms loaded: 20 in Harbour House"
    assert line["level"] == "INFO"
    assert line["logger"] == log.name
    assert line["time"].endswith("Z")
    stamp = datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
    assert stamp.utcoffset() is not None and stamp.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 600


async def test_a_line_in_a_request_carries_its_id_and_activity(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    log, buffer = captured

    async def request() -> None:
        request_id = begin_request("req-1")
        log.warning("before the activity is known")
        bind_activity(activity_id="f:1", activity_type="invoke", conversation_id="a:1x")
        log.warning('multi\nline "message"')
        assert request_id == "req-1"

    await asyncio.create_task(request())
    log.info("after the request")

    before, during, after = lines_of(buffer)
    assert before["request_id"] == "req-1"
    assert not (set(before) & (TURN_KEYS - {"request_id"}))
    assert {k: during[k] for k in TURN_KEYS} == {
        "request_id": "req-1",
        "activity_id": "f:1",
        "activity_type": "invoke",
        "conversation_id": "a:1x",
    }
    assert during["message"] == 'multi\nline "message"'
    assert "request_id" not in after
    assert len(buffer.getvalue().splitlines()) == 3, "each record is exactly one line"


def test_an_exception_is_logged_with_its_traceback(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    log, buffer = captured

    try:
        raise ValueError("the room vanished")
    except ValueError:
        log.exception("booking failed")

    [line] = lines_of(buffer)
    assert line["level"] == "ERROR"
    assert line["message"] == "booking failed"
    assert "Traceback (most recent call last)" in line["exception"]
    assert "ValueError: the room vanished" in line["exception"]


async def test_concurrent_requests_keep_their_own_ids(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    log, buffer = captured
    both_started = asyncio.Barrier(2)

    async def request(name: str) -> None:
        begin_request(name)
        await both_started.wait()
        for step in range(3):
            log.info("%s step %d", name, step)
            await asyncio.sleep(0)

    await asyncio.gather(request("one"), request("two"))

    lines = lines_of(buffer)
    assert len(lines) == 6
    for line in lines:
        assert line["message"].startswith(line["request_id"] + " ")
    assert current_turn() is None, "the test's own context never saw a request"


def test_text_format_shows_the_request_id(captured: tuple[logging.Logger, io.StringIO]) -> None:
    log, buffer = captured
    log.handlers[0].setFormatter(TextFormatter())

    async def request() -> None:
        begin_request("req-text")
        log.info("in a turn")

    asyncio.run(request())
    log.info("outside")

    inside, outside = buffer.getvalue().splitlines()
    assert f"INFO {log.name} [req-text]: in a turn" in inside
    assert outside.endswith(f"INFO {log.name}: outside")


def test_configure_logging_replaces_only_its_own_handler() -> None:
    root = logging.getLogger()
    level, others = root.level, [h for h in root.handlers if h.get_name() != "frontdesk"]
    first = second = None
    try:
        first = configure_logging("WARNING", LogFormat.TEXT, stream=io.StringIO())
        second = configure_logging("DEBUG", "json", stream=io.StringIO())

        assert first not in root.handlers
        assert second in root.handlers
        assert [h for h in root.handlers if h is not second] == others
        assert isinstance(second.formatter, JsonFormatter)
        assert root.level == logging.DEBUG
    finally:
        for handler in (first, second):
            if handler is not None and handler in root.handlers:
                root.removeHandler(handler)
        root.setLevel(level)


# --- a real app.py ------------------------------------------------------------------------------


async def test_every_line_of_a_running_bot_is_json_and_a_turn_carries_its_request_id(
    tmp_path: Path,
) -> None:
    async with (
        FakeConnector() as connector,
        frontdesk_process(
            tmp_path, {"LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "ALLOWED_TENANTS": TENANT_ID}
        ) as bot,
        aiohttp.ClientSession() as http,
    ):
        service_url = connector.service_url
        # A turn whose handler logs a warning (a tenant outside ALLOWED_TENANTS), with our id.
        outsider = make_message("help", service_url=service_url, user=STRANGER)
        # A card click from that tenant, without an id: Frontdesk makes one.
        click = make_card_action("booking.form", {}, service_url=service_url, user=STRANGER)
        # An ordinary message with an id no one should trust, and a body that is no activity.
        member = make_message("help", service_url=service_url)
        sent = [
            (outsider, {REQUEST_ID_HEADER: "turn-a.1"}),
            (click, {}),
            (member, {REQUEST_ID_HEADER: "bad id with spaces"}),
            ({"type": 7}, {REQUEST_ID_HEADER: "x" * 200}),
        ]
        answers: list[tuple[int, str]] = []
        for body, headers in sent:
            async with http.post(bot.endpoint, json=body, headers=headers) as response:
                answers.append((response.status, response.headers.get(REQUEST_ID_HEADER, "")))
    # The process has stopped: its log is complete.
    raw = bot.log.read_text("utf-8")

    (outsider_status, outsider_id), (click_status, click_id) = answers[:2]
    (member_status, member_id), (bad_status, bad_id) = answers[2:]
    assert (outsider_status, outsider_id) == (201, "turn-a.1")
    assert click_status == 200 and is_uuid4(click_id)
    assert member_status == 201 and is_uuid4(member_id)
    assert bad_status == 400 and is_uuid4(bad_id)

    lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
    assert len(lines) == len(raw.strip().splitlines()), "every line is a JSON object"
    for line in lines:
        assert isinstance(line, dict) and REQUIRED_KEYS <= set(line), line
        assert line["time"].endswith("Z"), line
    by_request: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        if "request_id" in line:
            by_request.setdefault(line["request_id"], []).append(line)
    assert set(by_request) == {outsider_id, click_id, member_id, bad_id}, (
        "only the ids given back to callers appear, each at least once"
    )

    def activity_fields(activity: dict[str, Any]) -> dict[str, str]:
        return {
            "activity_id": activity["id"],
            "activity_type": activity["type"],
            "conversation_id": activity["conversation"]["id"],
        }

    for request_id, activity in ((outsider_id, outsider), (click_id, click), (member_id, member)):
        for line in by_request[request_id]:
            assert {key: line.get(key) for key in TURN_KEYS - {"request_id"}} == (
                activity_fields(activity)
            ), line
    for request_id in (outsider_id, click_id):
        turn_lines = [line for line in by_request[request_id] if line["logger"] != "aiohttp.access"]
        assert any(line["level"] == "WARNING" for line in turn_lines), (
            f"the turn's own warning carries its request id: {by_request[request_id]}"
        )
    assert any(line["logger"] == "aiohttp.access" for line in by_request[bad_id])
    startup = [line for line in lines if line["logger"] == "frontdesk"]
    assert startup and "request_id" not in startup[0]
