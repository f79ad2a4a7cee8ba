"""Freed memory goes back to the system once turns stop for a moment (bot/memory.py): after a
burst, not under load, not for health probes, and once per quiet spell."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.memory import TrimWhenIdle, glibc_trim

IDLE = 0.2
GATE = web.AppKey("gate", asyncio.Event)


class Trims:
    def __init__(self) -> None:
        self.count = 0
        self.done = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.done.set()


@pytest.fixture
async def served() -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Trims]]:
    trims = Trims()
    gate = asyncio.Event()
    gate.set()

    async def turn(request: web.Request) -> web.Response:
        await gate.wait()
        return web.Response(status=201)

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[TrimWhenIdle(trims, idle=IDLE).middleware])
    app.router.add_post("/api/messages", turn)
    app.router.add_get("/healthz", health)
    app[GATE] = gate
    async with TestClient(TestServer(app)) as client:
        yield client, trims


async def quiet(seconds: float = IDLE * 3) -> None:
    await asyncio.sleep(seconds)


async def test_memory_is_handed_back_once_after_a_burst_of_turns(
    served: tuple[TestClient[web.Request, web.Application], Trims],
) -> None:
    client, trims = served
    await asyncio.gather(*(client.post("/api/messages") for _ in range(20)))
    await asyncio.to_thread(trims.done.wait, 5)
    await quiet()
    assert trims.count == 1  # one quiet spell, one trim

    await quiet()
    assert trims.count == 1  # no turns since: nothing to hand back


async def test_no_trim_while_a_turn_is_in_flight_nor_for_health_probes(
    served: tuple[TestClient[web.Request, web.Application], Trims],
) -> None:
    client, trims = served
    for _ in range(5):
        assert (await client.get("/healthz")).status == 200
    await quiet()
    assert trims.count == 0

    gate = client.server.app[GATE]
    gate.clear()
    slow = asyncio.ensure_future(client.post("/api/messages"))
    await quiet()
    assert trims.count == 0, "trimmed while a turn was in flight"
    gate.set()
    assert (await slow).status == 201
    await asyncio.to_thread(trims.done.wait, 5)
    assert trims.count == 1


def test_glibc_trim_is_found_here_and_runs() -> None:
    trim = glibc_trim()
    assert trim is not None, "glibc's malloc_trim not found (this machine runs Debian)"
    assert trim() in (0, 1)
