"""Graceful shutdown of a real `python app.py`: SIGTERM while a turn waits on the connector.

The fake connector holds the bot's reply until the test opens its gate, so the turn is in flight
when the signal arrives. Nothing here measures time; the bounds only stop a hung test.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.activities import make_message
from tests.support.app_process import BotProcess, frontdesk_process
from tests.support.fake_connector import FakeConnector, RecordedRequest

# Generous: only there so that a broken shutdown fails the test instead of hanging it.
PATIENCE = 60.0


class GatedConnector(FakeConnector):
    """A connector that takes the bot's requests and answers only once `gate` is open."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()
        self.gate = asyncio.Event()

    async def _record(self, request: web.Request) -> RecordedRequest:
        await request.read()  # the whole body first, so a caller gone by then changes nothing
        self.arrived.set()
        await self.gate.wait()
        return await super()._record(request)

    async def close(self) -> None:
        self.gate.set()
        await super().close()


def log_lines(bot: BotProcess) -> list[dict[str, Any]]:
    """The app's log so far, one JSON object per line (LOG_FORMAT=json)."""
    return [json.loads(line) for line in bot.log.read_text("utf-8").splitlines() if line]


async def refuses_connections(port: int) -> bool:
    """Whether a new TCP connection to the port is refused (polled until it is, within PATIENCE)."""
    async with asyncio.timeout(PATIENCE):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except (ConnectionRefusedError, ConnectionResetError):
                # Reset: the connection reached the backlog as the listening socket closed.
                return True
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.05)


async def test_sigterm_lets_the_turn_in_flight_finish_and_refuses_new_connections(
    tmp_path: Path,
) -> None:
    async with (
        GatedConnector() as connector,
        frontdesk_process(tmp_path, {"SHUTDOWN_TIMEOUT": "30", "LOG_FORMAT": "json"}) as app,
        aiohttp.ClientSession() as http,
    ):
        message = make_message("help", service_url=connector.service_url)
        turn = asyncio.create_task(http.post(app.endpoint, json=message))
        await asyncio.wait_for(connector.arrived.wait(), PATIENCE)

        app.process.send_signal(signal.SIGTERM)
        refused = await refuses_connections(app.port)
        still_running = app.process.returncode is None
        connector.gate.set()
        response = await asyncio.wait_for(turn, PATIENCE)
        body = await response.text()
        exit_code = await asyncio.wait_for(app.process.wait(), PATIENCE)

        assert refused, "new connections are refused once SIGTERM arrived"
        assert still_running, "the process waits for the turn"
        assert response.status == 201, body
        assert len(connector.sent) == 1 and connector.sent[0].cards(), "the reply was delivered"
        assert exit_code == 0
        lines = log_lines(app)
        assert any(line["message"].startswith("stopping:") for line in lines)
        assert not [line for line in lines if line["level"] in ("ERROR", "CRITICAL")], lines


async def test_a_turn_longer_than_shutdown_timeout_does_not_keep_the_process_alive(
    tmp_path: Path,
) -> None:
    async with (
        GatedConnector() as connector,
        frontdesk_process(tmp_path, {"SHUTDOWN_TIMEOUT": "1", "LOG_FORMAT": "json"}) as app,
        aiohttp.ClientSession() as http,
    ):
        message = make_message("help", service_url=connector.service_url)
        turn = asyncio.create_task(http.post(app.endpoint, json=message))
        await asyncio.wait_for(connector.arrived.wait(), PATIENCE)

        app.process.send_signal(signal.SIGTERM)
        # The connector never answers while the process is up.
        exit_code = await asyncio.wait_for(app.process.wait(), PATIENCE)
        outcome = (await asyncio.gather(turn, return_exceptions=True))[0]

        assert exit_code == 0
        assert isinstance(outcome, aiohttp.ClientError), f"the turn was cut off: {outcome!r}"
        assert connector.sent == [], "no reply was delivered"
        # Replies go through the shared aiohttp session (bot/teams_adapter.py), not worker
        # threads: the stuck reply ends with the session, so no forced exit is needed.
        assert not [line for line in log_lines(app) if line["level"] in ("ERROR", "CRITICAL")]
