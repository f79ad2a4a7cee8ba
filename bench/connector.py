"""A lean fake Bot Connector for benchmarks, run as its own process on 127.0.0.1.

It answers the routes a bot sends to (replies, sends, updates, new conversations) like the real
connector, after a configurable delay, and counts what matters for the figures: TCP connections
accepted (each one a new connection the bot opened), replies, and per conversation how many
activities arrived with which card text (to find lost or doubled proactive cards). It can answer
a share of sends with 429 and `Retry-After`, the way Teams throttles.

    python -m bench.connector --port 0 --delay 0.05   # prints "PORT <connector> <control>"

On the control port (its connections are not counted), `GET /_stats` returns the counters as
JSON, `POST /_config` changes delay and throttling, `POST /_reset` zeroes the counters.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sys
import time
from collections import Counter, defaultdict
from typing import Any

from aiohttp import web


class Connector:
    """The connector's state: knobs and counters."""

    def __init__(self, *, delay: float) -> None:
        self.delay = delay
        self.throttle_share = 0.0
        """Share (0..1) of sends to a conversation answered 429 (a fresh draw per request)."""
        self.retry_after = 1.0
        self.per_conversation_limit: float | None = None
        """Activities per second one conversation may receive; beyond that: 429."""
        self._ids = itertools.count(1)
        self._random = random.Random(7)
        self._conversation_times: dict[str, list[float]] = defaultdict(list)
        self.reset()

    def reset(self) -> None:
        self.connections = 0
        self.counts: Counter[str] = Counter()
        self.throttled = 0
        self.delivered: Counter[str] = Counter()
        """Accepted sends per conversation (a proactive burst checks none lost, none doubled)."""
        self.in_flight = 0
        self.max_in_flight = 0
        self._conversation_times.clear()
        self.arrivals: list[float] = []
        """When each counted request arrived (monotonic seconds)."""

    def stats(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "counts": dict(self.counts),
            "throttled": self.throttled,
            "delivered": dict(self.delivered),
            "max_in_flight": self.max_in_flight,
            "peak_per_second": peak_per_second(self.arrivals),
        }

    def new_id(self) -> str:
        return str(1_795_000_000_000 + next(self._ids))

    def refuse(self, conversation_id: str) -> bool:
        """Whether this send is throttled (429), by share or by the per-conversation rate."""
        if self.throttle_share and self._random.random() < self.throttle_share:
            return True
        limit = self.per_conversation_limit
        if limit is None:
            return False
        now = time.monotonic()
        times = [t for t in self._conversation_times[conversation_id] if now - t < 1.0]
        if len(times) >= limit:
            self._conversation_times[conversation_id] = times
            return True
        times.append(now)
        self._conversation_times[conversation_id] = times
        return False


def peak_per_second(arrivals: list[float]) -> int:
    """The most arrivals within any one-second window."""
    times = sorted(arrivals)
    peak = first = 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


def build_app(connector: Connector) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)

    async def answer(request: web.Request, kind: str) -> web.Response:
        await request.read()
        connector.arrivals.append(time.monotonic())
        connector.counts[kind] += 1
        connector.in_flight += 1
        connector.max_in_flight = max(connector.max_in_flight, connector.in_flight)
        try:
            if connector.delay:
                await asyncio.sleep(connector.delay)
            conversation = request.match_info.get("conversation_id", "")
            if kind in ("send", "reply") and connector.refuse(conversation):
                connector.throttled += 1
                return web.json_response(
                    {"error": {"code": "TooManyRequests", "message": "throttled"}},
                    status=429,
                    headers={"Retry-After": str(connector.retry_after)},
                )
            if kind in ("send", "reply"):
                connector.delivered[conversation] += 1
            if kind == "create":
                return web.json_response({"id": f"a:bench-{connector.new_id()}"})
            if kind == "update":
                return web.json_response({"id": request.match_info["activity_id"]})
            return web.json_response({"id": connector.new_id()})
        finally:
            connector.in_flight -= 1

    async def reply(request: web.Request) -> web.Response:
        return await answer(request, "reply")

    async def send(request: web.Request) -> web.Response:
        return await answer(request, "send")

    async def update(request: web.Request) -> web.Response:
        return await answer(request, "update")

    async def create(request: web.Request) -> web.Response:
        return await answer(request, "create")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(connector.stats())

    async def reset(request: web.Request) -> web.Response:
        connector.reset()
        return web.json_response({"ok": True})

    async def configure(request: web.Request) -> web.Response:
        body = await request.json()
        for name in ("delay", "throttle_share", "retry_after", "per_conversation_limit"):
            if name in body:
                setattr(connector, name, body[name])
        return web.json_response({"ok": True})

    app.router.add_post("/v3/conversations", create)
    app.router.add_post("/v3/conversations/{conversation_id}/activities", send)
    app.router.add_post("/v3/conversations/{conversation_id}/activities/{activity_id}", reply)
    app.router.add_put("/v3/conversations/{conversation_id}/activities/{activity_id}", update)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_reset", reset)
    app.router.add_post("/_config", configure)
    return app


async def serve(port: int, delay: float) -> None:
    connector = Connector(delay=delay)
    runner = web.AppRunner(build_app(connector), access_log=None)
    await runner.setup()
    handler = runner.server
    assert handler is not None

    def counted() -> asyncio.Protocol:
        # Every protocol instance is one accepted TCP connection.
        connector.connections += 1
        return handler()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(counted, "127.0.0.1", port, backlog=1024)
    # The harness's own calls (/_stats...) come through a second, uncounted port.
    control = await loop.create_server(handler, "127.0.0.1", 0)
    ports = (server.sockets[0].getsockname()[1], control.sockets[0].getsockname()[1])
    sys.stdout.write(f"PORT {ports[0]} {ports[1]}\n")
    sys.stdout.flush()
    try:
        await asyncio.Event().wait()
    finally:
        server.close()
        control.close()
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    options = parser.parse_args()
    try:
        asyncio.run(serve(options.port, options.delay))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
