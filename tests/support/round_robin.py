"""A round-robin HTTP proxy on 127.0.0.1, as a load balancer in front of several replicas.

Each request goes to the next backend in turn (per request, not per connection), with its
method, path, query, headers and body; the answer comes back as the backend gave it. The proxy
counts the requests each backend got, so a test can check that every replica had traffic.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import aiohttp
from aiohttp import web

from tests.support.local_server import LocalServer

# Headers that describe one hop, not the message: never forwarded (RFC 9110, section 7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


class RoundRobinProxy(LocalServer):
    """Forwards each request to the next of `backends` (origins like `http://127.0.0.1:PORT`)."""

    def __init__(self, backends: Sequence[str], *, host: str = "127.0.0.1") -> None:
        super().__init__(host=host)
        if not backends:
            raise ValueError("a proxy needs at least one backend")
        self.backends = [backend.rstrip("/") for backend in backends]
        self.counts = dict.fromkeys(self.backends, 0)
        """Requests forwarded to each backend (counted as they are sent on)."""
        self.failures = 0
        """Requests no backend answered (the proxy answered 502)."""
        self._turn = itertools.cycle(range(len(self.backends)))
        self._session: aiohttp.ClientSession | None = None

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._forward)

    async def start(self) -> None:
        # A pool as big as a burst of clicks: no request waits for another's connection.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200),
            timeout=aiohttp.ClientTimeout(total=120),
            auto_decompress=False,
        )
        await super().start()

    async def close(self) -> None:
        await super().close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def url(self) -> str:
        """The proxy's `/api/messages`: where Teams would post activities."""
        return f"{self.origin}/api/messages"

    def next_backend(self) -> str:
        """The backend the next request goes to (and counts it)."""
        backend = self.backends[next(self._turn)]
        self.counts[backend] += 1
        return backend

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        backend = self.next_backend()
        body = await request.read()
        headers = {
            name: value for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP
        }
        try:
            async with self._session.request(
                request.method,
                f"{backend}{request.rel_url}",
                headers=headers,
                data=body,
                allow_redirects=False,
            ) as answer:
                payload = await answer.read()
                # Not decompressed: the body and its Content-Encoding go back as they came.
                reply_headers = {
                    name: value
                    for name, value in answer.headers.items()
                    if name.lower() not in HOP_BY_HOP
                }
                return web.Response(status=answer.status, body=payload, headers=reply_headers)
        except aiohttp.ClientError:
            self.failures += 1
            return web.json_response({"error": f"backend {backend} did not answer"}, status=502)
