"""The aiohttp server every local fake runs on: 127.0.0.1, a free port, an async context."""

from __future__ import annotations

import asyncio
import json
from types import TracebackType
from typing import Any, Self

from aiohttp import web


def parse_body(raw: bytes) -> tuple[Any, bool]:
    """A request body as the fakes record it: (its JSON, False); text that is not JSON:
    (the text, True); no body: (None, False)."""
    if not raw:
        return None, False
    try:
        return json.loads(raw), False
    except ValueError:
        return raw.decode("utf-8", "replace"), True


class LocalServer:
    """Base of the fakes: subclasses add their routes in `routes(app)`."""

    shutdown_timeout: float = 60.0
    """Seconds `close` waits for requests still in flight (aiohttp's default)."""

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self._host = host
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=self.shutdown_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only through the server
        assert isinstance(server, asyncio.Server)
        self._port = server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:PORT`; RuntimeError before `start`."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self._host}:{self._port}"
