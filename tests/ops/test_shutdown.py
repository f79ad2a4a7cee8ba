"""Graceful shutdown of a real `python app.py`: SIGTERM while a turn waits on the connector.

The fake connector holds the bot's reply until the test opens its gate, so the turn is in flight
when the signal arrives. Nothing here measures time; the bounds only stop a hung test.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.activities import make_message
from tests.support.app_process import SCRUBBED_ENV_PREFIXES
from tests.support.fake_connector import FakeConnector, RecordedRequest
from tests.support.playground import free_port
from tests.support.prereq import repo_root

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


@dataclass
class RunningApp:
    process: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/messages"

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text("utf-8").splitlines() if line]


@asynccontextmanager
async def running_app(workdir: Path, **settings: str) -> AsyncIterator[RunningApp]:
    """`python app.py` in local mode, its process handle kept for signals; killed if still up."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_ENV_PREFIXES)}
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        MICROSOFT_APP_ID="",
        DATABASE_URL=f"sqlite:///{workdir / 'frontdesk.db'}",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        **settings,
    )
    log = workdir / "frontdesk.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "app.py", cwd=repo_root(), env=env, stdout=out, stderr=out
        )
        try:
            async with aiohttp.ClientSession() as http, asyncio.timeout(PATIENCE):
                while True:
                    assert process.returncode is None, log.read_text("utf-8")
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                            if response.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
            yield RunningApp(process=process, port=port, log=log)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def refuses_connections(port: int) -> bool:
    """Whether a new TCP connection to the port is refused (polled until it is, within PATIENCE)."""
    async with asyncio.timeout(PATIENCE):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except ConnectionRefusedError:
                return True
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.05)


async def test_sigterm_lets_the_turn_in_flight_finish_and_refuses_new_connections(
    tmp_path: Path,
) -> None:
    async with (
        GatedConnector() as connector,
        running_app(tmp_path, SHUTDOWN_TIMEOUT="30") as app,
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
        lines = app.lines()
        assert any(line["message"].startswith("stopping:") for line in lines)
        assert not [line for line in lines if line["level"] in ("ERROR", "CRITICAL")], lines


async def test_a_turn_longer_than_shutdown_timeout_does_not_keep_the_process_alive(
    tmp_path: Path,
) -> None:
    async with (
        GatedConnector() as connector,
        running_app(tmp_path, SHUTDOWN_TIMEOUT="1") as app,
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
        assert any(
            line["level"] == "WARNING" and "still busy" in line["message"] for line in app.lines()
        ), app.log.read_text("utf-8")
