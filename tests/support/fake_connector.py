"""A fake Bot Framework connector: the service that a bot's replies and updates go to.

It is an aiohttp server on 127.0.0.1 (a free port) that records every request. Point an
activity's `serviceUrl` at `connector.service_url` and the bot's replies arrive here.

botbuilder sends replies with `requests` in a worker thread while the turn awaits them, so this
server runs in the test's own event loop (web.AppRunner and TCPSite), not in a thread of its own.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support.local_server import LocalServer, parse_body

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the connector received."""

    method: str
    path: str
    json: Any
    conversation_id: str | None = None
    activity_id: str | None = None

    @property
    def is_update(self) -> bool:
        return self.method == "PUT"

    @property
    def is_reply(self) -> bool:
        """A POST to `.../activities/{activityId}` (a reply to that activity)."""
        return self.method == "POST" and self.activity_id is not None

    def cards(self) -> list[dict[str, Any]]:
        """The Adaptive Card contents this activity carries, in order."""
        return cards_of(self.json)


@dataclass(frozen=True)
class ConnectorFault:
    """An error the connector answers one request with, as Teams documents them: `status`,
    the error `code` in the body, a `Retry-After` header when given. With `carried_out` the
    connector does the work first (the message is created or updated) and then answers the
    error, as a gateway failing after the service acted would."""

    status: int
    code: str = ""
    retry_after: str | None = None
    method: str | None = None
    """Only requests with this method ("POST", "PUT"); None: any."""
    conversation_id: str | None = None
    """Only requests to this conversation (`POST /v3/conversations` has none); None: any."""
    creates_conversation: bool = False
    """Only `POST /v3/conversations` (new personal chats and channel threads)."""
    carried_out: bool = False

    def matches(self, method: str, conversation_id: str | None, creates: bool) -> bool:
        if self.creates_conversation != creates:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.conversation_id is None or self.conversation_id == conversation_id

    def response(self) -> web.Response:
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else None
        body = {"error": {"code": self.code or "ServiceError", "message": "fault"}}
        return web.json_response(body, status=self.status, headers=headers)


@dataclass(frozen=True)
class Attempt:
    """One request to a connector route that sends, updates or creates, and its answer."""

    method: str
    path: str
    conversation_id: str | None
    status: int


def cards_of(activity: Any) -> list[dict[str, Any]]:
    """The Adaptive Card contents of an activity (a dict as sent on the wire)."""
    if not isinstance(activity, dict):
        return []
    found = []
    for attachment in activity.get("attachments") or []:
        if isinstance(attachment, dict) and attachment.get("contentType") == ADAPTIVE_CARD:
            content = attachment.get("content")
            if isinstance(content, dict):
                found.append(content)
    return found


class FakeConnector(LocalServer):
    """Records what a bot sends to the Bot Framework connector and answers like it does."""

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        super().__init__(host=host)
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self.requests: list[RecordedRequest] = []
        """Every request, including those answered 404."""
        self.created: list[dict[str, Any]] = []
        """Bodies of `POST /v3/conversations` (new personal chats and channel threads)."""
        self.refuse_members: set[str] = set()
        """Member ids whose new personal chat is refused (403, the bot is not installed)."""
        self.refuse_channels: set[str] = set()
        """Channel ids where a new thread is refused (403)."""
        self.update_delays: list[float] = []
        """Seconds the next card updates (`PUT`) take to answer, one per update (then none)."""
        self.faults: list[ConnectorFault] = []
        """Errors to answer with: each answers the first request it matches, then is gone."""
        self.attempts: list[Attempt] = []
        """Every send, reply, update and conversation creation, with the status answered."""

    # -- lifecycle ---------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v3/conversations", self._create_conversation)
        app.router.add_post(
            "/v3/conversations/{conversation_id}/activities", self._send_to_conversation
        )
        app.router.add_post(
            "/v3/conversations/{conversation_id}/activities/{activity_id}", self._reply
        )
        app.router.add_put(
            "/v3/conversations/{conversation_id}/activities/{activity_id}", self._update
        )
        app.router.add_route("*", "/{tail:.*}", self._unknown)

    @property
    def service_url(self) -> str:
        """The `serviceUrl` to put in activities (with the trailing slash Teams sends)."""
        return f"{self.origin}/"

    # -- what was sent -----------------------------------------------------------------
    @property
    def sent(self) -> list[RecordedRequest]:
        """Activities the bot sent or updated (the requests answered 200)."""
        return [request for request in self.requests if request.conversation_id is not None]

    @property
    def unexpected(self) -> list[RecordedRequest]:
        """Requests to routes a connector does not have (answered 404)."""
        return [request for request in self.requests if request.conversation_id is None]

    def cards(self, since: int = 0) -> list[dict[str, Any]]:
        """The Adaptive Card contents of the sent activities from index `since` on."""
        return [card for request in self.sent[since:] for card in request.cards()]

    async def wait_for(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - the deadline is part of what a test asks for
    ) -> list[RecordedRequest]:
        """Wait until at least `count` activities were sent; return them all.

        Replies sent within a turn arrive before its HTTP answer; this is for those that do not.
        """
        try:
            async with asyncio.timeout(timeout):
                while len(self.sent) < count:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"waited {timeout} s for {count} sent activities; got {len(self.sent)}"
            ) from None
        return self.sent

    def fail(self, status: int, code: str = "", *, times: int = 1, **match: Any) -> None:
        """Answer the next `times` matching requests with this error (see ConnectorFault)."""
        self.faults.extend(ConnectorFault(status, code, **match) for _ in range(times))

    def attempts_at(self, conversation_id: str, method: str | None = None) -> list[Attempt]:
        """The requests that reached a conversation (failed ones included)."""
        return [
            attempt
            for attempt in self.attempts
            if attempt.conversation_id == conversation_id
            and (method is None or attempt.method == method)
        ]

    def _take_fault(self, request: web.Request, *, creates: bool = False) -> ConnectorFault | None:
        conversation_id = request.match_info.get("conversation_id")
        for index, fault in enumerate(self.faults):
            if fault.matches(request.method, conversation_id, creates):
                del self.faults[index]
                return fault
        return None

    def _attempted(self, request: web.Request, status: int) -> None:
        self.attempts.append(
            Attempt(
                request.method,
                request.path,
                request.match_info.get("conversation_id"),
                status,
            )
        )
        self._changed.set()

    # -- handlers ----------------------------------------------------------------------
    async def _record(self, request: web.Request) -> RecordedRequest:
        payload, _ = parse_body(await request.read())
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            json=payload,
            conversation_id=request.match_info.get("conversation_id"),
            activity_id=request.match_info.get("activity_id"),
        )
        self.requests.append(recorded)
        self._changed.set()
        return recorded

    async def _send_to_conversation(self, request: web.Request) -> web.Response:
        fault = self._take_fault(request)
        if fault is not None and not fault.carried_out:
            self._attempted(request, fault.status)
            return fault.response()
        await self._record(request)
        self._attempted(request, fault.status if fault else 200)
        return fault.response() if fault else web.json_response({"id": self._new_id()})

    async def _create_conversation(self, request: web.Request) -> web.Response:
        """A new personal chat (`members`) or channel thread (`channelData.channel`)."""
        body = await request.json()
        self.created.append(body)
        self._changed.set()
        fault = self._take_fault(request, creates=True)
        if fault is not None:
            self._attempted(request, fault.status)
            return fault.response()
        channel = (body.get("channelData") or {}).get("channel") or {}
        if channel.get("id"):
            if channel["id"] in self.refuse_channels:
                self._attempted(request, 403)
                return _refusal("BotNotInConversationRoster")
            message_id = self._new_id()
            self._attempted(request, 200)
            return web.json_response(
                {"id": f"{channel['id']};messageid={message_id}", "activityId": message_id}
            )
        members = body.get("members") or [{}]
        member = str(members[0].get("id", ""))
        if member in self.refuse_members:
            self._attempted(request, 403)
            return _refusal("BotNotInConversationRoster")
        self._attempted(request, 200)
        return web.json_response({"id": f"a:opened-{member}"})

    async def _reply(self, request: web.Request) -> web.Response:
        fault = self._take_fault(request)
        if fault is not None and not fault.carried_out:
            self._attempted(request, fault.status)
            return fault.response()
        await self._record(request)
        self._attempted(request, fault.status if fault else 200)
        return fault.response() if fault else web.json_response({"id": self._new_id()})

    async def _update(self, request: web.Request) -> web.Response:
        if self.update_delays:
            await asyncio.sleep(self.update_delays.pop(0))
        fault = self._take_fault(request)
        if fault is not None and not fault.carried_out:
            self._attempted(request, fault.status)
            return fault.response()
        recorded = await self._record(request)
        self._attempted(request, fault.status if fault else 200)
        return fault.response() if fault else web.json_response({"id": recorded.activity_id})

    async def _unknown(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response(
            {"error": {"code": "NotFound", "message": "no such connector route"}}, status=404
        )

    def _new_id(self) -> str:
        # Teams message ids are millisecond timestamps as text.
        return str(1_795_000_000_000 + next(self._ids))


def _refusal(code: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": "refused"}}, status=403)
