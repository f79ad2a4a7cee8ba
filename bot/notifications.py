"""Service request cards in Teams: who gets which card, and keeping every posted copy true.

After a request is filed or changes, this posts approval cards to the current stage's approvers
(their personal chat with the bot; one the bot opens; else the policy's fallback channel), a card
to the fulfilment team once approved, a short notice to the requester at each change, and then
updates every copy the bot ever posted so that everyone sees the same outcome. Each post is
claimed in the database first (one row per request and purpose), so a repeated notification never
posts twice. It runs after the user got their answer (see `bot.tasks`).
"""

from __future__ import annotations

import asyncio
import functools
import html
import json
import logging
import random as random_module
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from bot.approvals.catalogue import FulfilmentChannel, FulfilmentUsers
from bot.approvals.service import ApprovalService, Role, ServiceRequest
from bot.graph import GraphClient
from bot.graph.errors import GraphError
from bot.identity.errors import IdentityError
from bot.models import Actor
from bot.storage.repository import BookingRepository, ConversationRepository
from bot.storage.service_requests import ServiceRequestRepository
from bot.storage.tables import ConversationRef, FulfilmentStatus, RequestCard
from bot.tasks import BackgroundTasks
from bot.users import zone_or_none
from cards.common import Card
from cards.requests import RequestContext, booking_title, request_card, update_card

logger = logging.getLogger(__name__)

MAX_REFRESH_USERS = 60
# The connector's code for a user who blocked the bot (see RETRYABLE_STATUSES for the source).
BLOCKED_BY_USER = "ConversationBlockedByUser"


class DeliveryError(Exception):
    """The Bot Connector refused or failed a send; `status` is its HTTP status (None when it
    could not be reached), `code` its error code (`ConversationBlockedByUser`, ...) and
    `retry_after` the seconds its `Retry-After` header asked for, if any."""

    def __init__(
        self, status: int | None, code: str = "", *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"delivery failed: status={status} code={code}")
        self.status = status
        self.code = code
        self.retry_after = retry_after

    @property
    def gone(self) -> bool:
        """The conversation (or message) refuses the bot for good: 403 blocked, not in the
        roster, disabled by the admin; 404 not found. Teams says not to retry these."""
        return self.status in (403, 404)


# The Bot Connector's documented retry guidance ("Status codes from bot conversational APIs",
# https://learn.microsoft.com/microsoftteams/platform/bots/build-conversational-capability#status-codes-from-bot-conversational-apis
# and https://learn.microsoft.com/microsoftteams/platform/bots/how-to/rate-limit): retry 412, 429
# (waiting what Retry-After says) and 502, 503, 504 with exponential backoff and random jitter;
# never 400, 401, 403, 404, 413, nor 500 (Teams: "No", report the issue).
RETRYABLE_STATUSES: frozenset[int] = frozenset({412, 429, 502, 503, 504})
# Of those, the answers that say the connector did not carry the request out (precondition
# failed, throttled, unavailable). Posting a message is not idempotent: a 502 or 504 gateway
# error, or a connection lost mid-request, may come after the message was created, and posting
# again would show the approver the card twice. So calls that create a message retry only these;
# calls that are safe to repeat (updating a message, opening the 1:1 chat, which Teams answers
# with the existing chat) retry every retryable status and connection failures too.
NOT_CARRIED_OUT: frozenset[int] = frozenset({412, 429, 503})

T = TypeVar("T")

# Teams' limits for a bot's proactive traffic (https://learn.microsoft.com/microsoftteams/platform/
# bots/how-to/rate-limit): per conversation ("thread") 7 messages in 1 s, 8 in 2 s, 60 in 30 s and
# 1,800 in an hour; per app and tenant about 30 requests a second (PLATFORM.md). The pace here stays
# a step under each: the connector counts arrivals, and calls spaced here can arrive closer.
CONVERSATION_WINDOWS: tuple[tuple[int, float], ...] = (
    (6, 1.0),
    (7, 2.0),
    (55, 30.0),
    (1700, 3600.0),
)
TENANT_RATE = 25.0
"""Proactive calls a second per tenant (PROACTIVE_TENANT_RATE), evenly spaced."""


class RateLimiter:
    """At most `limit` starts per key in any `seconds` long window, for each (limit, seconds) of
    `windows`. Callers of one key go through its gate one at a time, in the order they asked
    (asyncio's lock is first come, first served), and the gate notes when each really started:
    a caller that wakes late (a busy event loop) delays the next ones instead of bunching with
    them. `clock` and `sleep` are injected for a controlled clock; idle keys are forgotten."""

    def __init__(
        self,
        windows: Sequence[tuple[int, float]],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not windows or any(limit < 1 or seconds <= 0 for limit, seconds in windows):
            raise ValueError("every window needs a limit of 1 or more and a positive length")
        self._windows = tuple(windows)
        self._longest = max(seconds for _, seconds in windows)
        self._clock = clock
        self._sleep = sleep
        self._keys: OrderedDict[str, _Gate] = OrderedDict()

    @classmethod
    def per_second(cls, rate: float, **kwargs: Any) -> RateLimiter:
        """Evenly spaced starts, `rate` a second."""
        return cls([(1, 1.0 / rate)], **kwargs)

    def __len__(self) -> int:
        """How many keys are remembered (in use, or with a start within the longest window)."""
        return len(self._keys)

    async def wait(self, key: str) -> float:
        """Wait for this key's next start; the seconds waited."""
        asked = self._clock()
        self._forget_idle(asked)
        gate = self._keys.pop(key, None) or _Gate()
        self._keys[key] = gate
        gate.users += 1
        try:
            async with gate.lock:
                now = self._clock()
                gate.starts = [t for t in gate.starts if t > now - self._longest]
                start = now
                moved = True
                while moved:
                    moved = False
                    for limit, seconds in self._windows:
                        inside = [t for t in gate.starts if t > start - seconds]
                        if len(inside) >= limit:
                            # When the oldest start that is one too many has left the window.
                            start = inside[len(inside) - limit] + seconds
                            moved = True
                if start > now:
                    await self._sleep(start - now)
                started = self._clock()
                gate.starts.append(started)
        finally:
            gate.users -= 1
        return started - asked

    def _forget_idle(self, now: float) -> None:
        while self._keys:
            key, gate = next(iter(self._keys.items()))
            if gate.users or (gate.starts and gate.starts[-1] > now - self._longest):
                return
            del self._keys[key]


@dataclass
class _Gate:
    """One key of a RateLimiter: its lock and its recent starts, oldest first."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    starts: list[float] = field(default_factory=list)
    users: int = 0


@dataclass(frozen=True)
class SendLimits:
    """The pace of proactive connector calls: per conversation, and per tenant for all calls."""

    per_conversation: RateLimiter = field(default_factory=lambda: RateLimiter(CONVERSATION_WINDOWS))
    per_tenant: RateLimiter = field(default_factory=lambda: RateLimiter.per_second(TENANT_RATE))

    async def wait(self, tenant_id: str, conversation_id: str | None) -> float:
        """Wait until a call to this conversation (None: a new one) of this tenant may start;
        the seconds waited."""
        waited = 0.0
        if conversation_id is not None:
            waited += await self.per_conversation.wait(conversation_id)
        return waited + await self.per_tenant.wait(tenant_id)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one proactive connector call: bounded attempts, bounded waits.

    The n-th retry waits between half and all of `base_delay * 2**n` (jitter, so that many
    calls throttled together do not come back together), or exactly what `Retry-After` asks.
    A wait longer than `max_delay`, or one that would take the call's waits past
    `max_total_wait`, is not waited: the call fails and the notifier falls back. `sleep` and
    `random` are injected so tests run on a controlled clock.
    """

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_total_wait: float = 60.0
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    random: Callable[[], float] = random_module.random

    def retryable(self, error: DeliveryError, *, creates: bool) -> bool:
        """Whether Teams' guidance allows this failure to be tried again."""
        if error.status is None:
            return not creates  # no answer: a message may have been created anyway
        return error.status in (NOT_CARRIED_OUT if creates else RETRYABLE_STATUSES)

    def delay(self, retry: int, error: DeliveryError) -> float:
        """The wait before retry number `retry` (0 for the first retry)."""
        if error.retry_after is not None:
            return max(0.0, error.retry_after)
        ceiling = self.base_delay * 2.0**retry
        return ceiling / 2 + self.random() * ceiling / 2

    async def run(self, operation: str, call: Callable[[], Awaitable[T]], *, creates: bool) -> T:
        """`call` until it succeeds, fails for good, or the attempts or waits run out."""
        waited = 0.0
        attempt = 1
        while True:
            try:
                return await call()
            except DeliveryError as error:
                if attempt >= self.attempts or not self.retryable(error, creates=creates):
                    raise
                wait = self.delay(attempt - 1, error)
                if wait > self.max_delay or waited + wait > self.max_total_wait:
                    logger.info(
                        "connector %s: status=%s, not waiting %.1f s to retry",
                        operation,
                        error.status,
                        wait,
                    )
                    raise
                logger.info(
                    "connector %s: status=%s code=%s, retry %d in %.2f s",
                    operation,
                    error.status,
                    error.code,
                    attempt,
                    wait,
                )
                await self.sleep(wait)
                waited += wait
                attempt += 1


class Messenger(Protocol):
    """Proactive messages through the Bot Connector (implemented at the Teams edge)."""

    async def send(self, reference: Mapping[str, Any], card: Card, *, tenant_id: str) -> str | None:
        """Post a card to the conversation (of that tenant); the new message's id."""
        ...

    async def update(
        self, reference: Mapping[str, Any], activity_id: str, card: Card, *, tenant_id: str
    ) -> None:
        """Replace the card in a message the bot posted (in a conversation of that tenant)."""
        ...

    async def open_personal(
        self, *, template: Mapping[str, Any], tenant_id: str, user_id: str
    ) -> tuple[str, dict[str, Any]]:
        """Open (or find) the bot's personal chat with a user (Entra object id) in the tenant of
        `template` (any conversation reference there): the chat's id and reference."""
        ...

    async def post_to_channel(
        self, *, template: Mapping[str, Any], tenant_id: str, channel_id: str, card: Card
    ) -> tuple[str, dict[str, Any], str | None]:
        """Start a thread in a Teams channel with the card: conversation id, reference, message."""
        ...


class Mailer(Protocol):
    """Mail to people the bot cannot reach in Teams (implemented over Microsoft Graph)."""

    def chat_link(self, tenant_id: str) -> str:
        """A link that opens the bot's chat in Teams for a user of this tenant."""
        ...

    async def send(self, *, tenant_id: str, user_id: str, subject: str, html: str) -> bool:
        """Mail the user (Entra object id); False when they could not be mailed."""
        ...


class GraphMailer:
    """Mail through Graph `POST /users/{sender}/sendMail` with the app's own token.

    Needs the application permissions Mail.Send (to send as the `sender` mailbox, the
    NOTIFY_MAIL_FROM setting) and User.Read.All (to read the recipient's address from their
    object id). The link back to Teams is the documented deep link to a chat with an app,
    `https://teams.microsoft.com/l/entity/<appId>/conversations?tenantId=<tenantId>`
    (https://learn.microsoft.com/microsoftteams/platform/concepts/build-and-test/deep-link-application#deep-link-to-a-chat-with-the-application).
    """

    def __init__(
        self,
        graph: GraphClient,
        *,
        app_token: Callable[[], Awaitable[str | None]],
        sender: str,
        teams_app_id: str,
    ) -> None:
        self._graph = graph
        self._app_token = app_token
        self._sender = sender
        self._teams_app_id = teams_app_id

    def chat_link(self, tenant_id: str) -> str:
        if not self._teams_app_id:
            return "https://teams.microsoft.com/"
        return (
            f"https://teams.microsoft.com/l/entity/{quote(self._teams_app_id, safe='')}"
            f"/conversations?tenantId={quote(tenant_id, safe='')}"
        )

    async def send(self, *, tenant_id: str, user_id: str, subject: str, html: str) -> bool:
        try:
            token = await self._app_token()
            if token is None:
                logger.warning("no app token: approval mail not sent")
                return False
            person = await self._graph.get_user(token, user_id)
            if person is None or not person.email:
                logger.warning("approver has no mail address in the directory: not mailed")
                return False
            await self._graph.send_mail(
                token, to=[person.email], subject=subject, html=html, as_user=self._sender
            )
        except (GraphError, IdentityError) as error:
            logger.warning("approval mail not sent: %s", type(error).__name__)
            return False
        return True


class RequestNotifier:
    """Renders request cards per viewer and keeps every posted copy up to date."""

    def __init__(
        self,
        *,
        approvals: ApprovalService,
        requests: ServiceRequestRepository,
        conversations: ConversationRepository,
        bookings: BookingRepository,
        messenger: Messenger | None,
        tasks: BackgroundTasks,
        clock: Callable[[], datetime],
        default_zone: ZoneInfo,
        mailer: Mailer | None = None,
    ) -> None:
        self._approvals = approvals
        self._mailer = mailer
        self._requests = requests
        self._conversations = conversations
        self._bookings = bookings
        self._messenger = messenger
        self._tasks = tasks
        self._clock = clock
        self._default_zone = default_zone
        self._locks: dict[str, _Turns] = {}
        # Fulfilment posts wait in a queue per channel (`_queue_channel_post`).
        self._channel_queues: dict[str, deque[Callable[[], Awaitable[None]]]] = {}

    # -- rendering ---------------------------------------------------------------------------
    async def card(
        self,
        request: ServiceRequest,
        role: Role,
        *,
        viewer_id: str,
        time_zone: ZoneInfo,
        message: str | None = None,
        tone: str = "good",
        facts: CardFacts | None = None,
    ) -> Card:
        """The request's card as this viewer sees it; it refreshes for those with their own view.
        `facts` read for this state of the request serve every copy rendered from it."""
        facts = facts or await self.facts(request)
        return request_card(
            request,
            role,
            facts.context,
            viewer_id=viewer_id,
            time_zone=time_zone,
            message=message,
            tone=tone,
            refresh_user_ids=facts.refresh_ids,
        )

    async def facts(self, request: ServiceRequest, viewers: Iterable[str | None] = ()) -> CardFacts:
        """What the request's cards show besides the request, with the time zones of `viewers`:
        one read however many copies are rendered from it."""
        users = {request.requester_id, *(viewer for viewer in viewers if viewer)}
        for stage in request.state.stages:
            users.update(stage.approvers)
        # Teams refreshes the card for the current approvers and the requester (at most 60).
        refresh_users: list[str] = []
        current = request.state.current_stage if request.pending else None
        if current is not None:
            refresh_users.extend(current.approvers)
        refresh_users.append(request.requester_id)
        found = await self._approvals.card_facts(request, sorted(users), chats_of=refresh_users)
        booking_text = None
        if found.booking is not None:
            booking = found.booking
            zone = zone_or_none(booking.time_zone) or self._default_zone
            booking_text = booking_title(booking.start_at, booking.end_at, booking.room_name, zone)
        refresh_ids: list[str] = []
        for user in dict.fromkeys(refresh_users):
            channel_user = _channel_user_id(found.chats.get(user))
            if channel_user:
                refresh_ids.append(channel_user)
            if len(refresh_ids) == MAX_REFRESH_USERS:
                break
        zones: dict[str, ZoneInfo] = {}
        for user, name in found.zones.items():
            known = zone_or_none(name)
            if known is not None:
                zones[user] = known
        return CardFacts(
            context=RequestContext(
                category_name=self._approvals.category_name(request.category_id),
                names=found.names,
                history=found.history,
                booking_text=booking_text,
            ),
            refresh_ids=refresh_ids,
            zones=zones,
            default_zone=self._default_zone,
        )

    async def _zone_of(self, tenant_id: str, user_id: str | None) -> ZoneInfo:
        if user_id is None:
            return self._default_zone
        profiles = await asyncio.to_thread(self._requests.profiles, tenant_id, [user_id])
        profile = profiles.get(user_id)
        return (zone_or_none(profile.time_zone) if profile else None) or self._default_zone

    # -- events ------------------------------------------------------------------------------
    def submitted(self, request: ServiceRequest, actor: Actor) -> None:
        self._tasks.spawn(self._after_submit(request, actor), name=f"submitted {request.id}")

    def changed(self, request: ServiceRequest, *, notice: tuple[str, str] | None = None) -> None:
        """After a decision, a cancellation or a fulfilment step: update and tell."""
        self._tasks.spawn(self._after_change(request, notice), name=f"changed {request.id}")

    def on_behalf_of_requester(
        self, request: ServiceRequest, work: Callable[[Actor], Awaitable[None]], *, name: str
    ) -> None:
        """Run `work` after the answer as the requester (their Teams account from their stored
        personal chat, which the token service knows them by); skipped when there is none."""

        async def run() -> None:
            ref = await self._conversations.personal(
                tenant_id=request.tenant_id, user_id=request.requester_id
            )
            if ref is None:
                logger.info("%s: the requester has no personal chat with the bot", name)
                return
            reference = json.loads(ref.reference)
            user = reference.get("user") or {}
            actor = Actor(
                tenant_id=request.tenant_id,
                user_id=request.requester_id,
                name=request.requester_name,
                time_zone=await self._zone_of(request.tenant_id, request.requester_id),
                channel_user_id=str(user.get("id") or ""),
                channel_id=str(reference.get("channelId") or "msteams"),
            )
            await work(actor)

        self._tasks.spawn(run(), name=name)

    async def _after_submit(self, request: ServiceRequest, actor: Actor) -> None:
        place = actor.place
        if place is not None and place.message_id and place.conversation_type == "personal":
            # The card the requester pressed Send on now shows the request: keep it up to date.
            claimed = await self._claim(request, "requester", "requester", actor.user_id)
            if claimed is not None:
                await asyncio.to_thread(
                    self._requests.card_posted,
                    _card_id(claimed),
                    conversation_id=place.conversation_id,
                    activity_id=place.message_id,
                    reference=place.reference,
                )
        await self._next_steps(request)

    async def _after_change(self, request: ServiceRequest, notice: tuple[str, str] | None) -> None:
        # One update of a request's copies at a time, each from the request as stored when it
        # starts: two decisions close together cannot leave the older state on the cards. The
        # database lock makes replicas take turns too; the local one spares it connections.
        async with _in_turn(self._locks, request.id), self._requests.updating_cards(request.id):
            fresh = await self._approvals.get(request.id) or request
            await self.update_copies(fresh)
        if notice is not None:
            await self._tell_requester(fresh, *notice)
        await self._next_steps(fresh)

    async def _next_steps(self, request: ServiceRequest) -> None:
        if request.pending:
            await self._notify_stage(request)
        elif request.fulfilment is FulfilmentStatus.WAITING:
            await self._notify_fulfilment(request)

    # -- approvers ---------------------------------------------------------------------------
    async def _notify_stage(self, request: ServiceRequest) -> None:
        stage = request.state.current_stage
        if stage is None:
            return
        reached: list[str] = []
        unreachable: list[str] = []
        facts: CardFacts | None = None
        for approver in stage.approvers:
            claimed = await self._claim(
                request, f"approve:{stage.id}:{approver}", "approver", approver
            )
            if claimed is None:
                continue  # notified before (a repeated event)
            facts = facts or await self.facts(request, stage.approvers)
            card = await self.card(
                request,
                Role.APPROVER,
                viewer_id=approver,
                time_zone=facts.zone(approver),
                facts=facts,
            )
            if await self._send_personal(request, claimed, approver, card):
                reached.append(approver)
            else:
                unreachable.append(approver)
        if facts is None:
            return
        names = dict(facts.context.names)
        if reached:
            await self._approvals.record_notice(
                request,
                action="notified",
                detail={"stage": stage.id, "audience": "approvers", "names": _join(names, reached)},
            )
        if unreachable:
            # Both, not one or the other: the channel reaches a team that may act, the mail
            # reaches the approver wherever they read mail. A channel that also fails, for an
            # approver who could not be mailed either, is recorded as unreachable.
            posted = await self._fallback(request, stage.id, unreachable, names)
            emailed = await self._email(request, stage.id, unreachable, names)
            missing = [user for user in unreachable if user not in emailed]
            if posted is False and missing:
                await self._approvals.record_notice(
                    request,
                    action="unreachable",
                    detail={
                        "stage": stage.id,
                        "audience": "approvers",
                        "names": _join(names, missing),
                        "fallback": self._approvals.fallback_channel(request.policy_id),
                    },
                )

    async def _fallback(
        self, request: ServiceRequest, stage_id: str, users: list[str], names: dict[str, str]
    ) -> bool | None:
        """Approvers the bot cannot reach: the policy's fallback channel gets the card. Whether
        it was posted; None when it was posted (or tried) before."""
        channel = self._approvals.fallback_channel(request.policy_id)
        who = _join(names, users)
        claimed = await self._claim(request, f"fallback:{stage_id}", "fallback", None)
        if claimed is None:
            return None
        posted = False
        if channel is not None:
            card = await self.card(
                request,
                Role.APPROVER,
                viewer_id=users[0],
                time_zone=self._default_zone,
                message=f"Posted here because Frontdesk could not reach {who} in Teams.",
                tone="warning",
            )
            posted = await self._post_channel(request, claimed, channel, card)
        if posted:
            await self._approvals.record_notice(
                request,
                action="notified",
                detail={
                    "stage": stage_id,
                    "audience": "approvers",
                    "names": who,
                    "fallback": channel,
                },
            )
        return posted

    async def _email(
        self, request: ServiceRequest, stage_id: str, users: list[str], names: dict[str, str]
    ) -> list[str]:
        """Approvers the bot cannot reach in Teams get the approval by mail (Microsoft 365
        mode with NOTIFY_MAIL_FROM set; off otherwise). Those mailed."""
        if self._mailer is None:
            return []
        category_name = self._approvals.category_name(request.category_id)
        requester_name = names.get(request.requester_id) or request.requester_name or "someone"
        subject = f"Approval needed: {category_name} request from {requester_name}"
        body = approval_mail(
            request,
            category_name=category_name,
            requester_name=requester_name,
            link=self._mailer.chat_link(request.tenant_id),
        )
        emailed: list[str] = []
        for user in users:
            claimed = await self._claim(request, f"email:{stage_id}:{user}", "email", user)
            if claimed is None:
                emailed.append(user)  # mailed before (a repeated event)
                continue
            if await self._mailer.send(
                tenant_id=request.tenant_id, user_id=user, subject=subject, html=body
            ):
                emailed.append(user)
                await self._approvals.record_notice(
                    request,
                    action="emailed",
                    detail={
                        "stage": stage_id,
                        "audience": "approvers",
                        "names": _join(names, [user]),
                    },
                )
        return emailed

    # -- fulfilment and the requester --------------------------------------------------------
    async def _notify_fulfilment(self, request: ServiceRequest) -> None:
        category = self._approvals.category(request.category_id)
        if category is None:
            return
        team = category.fulfilment
        if isinstance(team, FulfilmentChannel):
            claimed = await self._claim(request, "fulfil:channel", "fulfilment", None)
            if claimed is not None:
                self._queue_channel_post(
                    team.channel_id,
                    functools.partial(self._post_fulfilment, request.id, claimed, team.channel_id),
                )
            return
        assert isinstance(team, FulfilmentUsers)
        reached: list[str] = []
        facts: CardFacts | None = None
        for user in team.user_ids:
            claimed = await self._claim(request, f"fulfil:{user}", "fulfilment", user)
            if claimed is None:
                continue
            facts = facts or await self.facts(request, team.user_ids)
            card = await self.card(
                request, Role.FULFILMENT, viewer_id=user, time_zone=facts.zone(user), facts=facts
            )
            if await self._send_personal(request, claimed, user, card):
                reached.append(user)
        if reached:
            assert facts is not None
            names = dict(facts.context.names)
            await self._approvals.record_notice(
                request,
                action="notified",
                detail={"audience": "fulfilment", "names": _join(names, reached)},
            )

    async def _post_fulfilment(
        self, request_id: str, claimed: RequestCard, channel_id: str
    ) -> None:
        """The fulfilment channel's card, when its turn in the channel's queue comes: the
        request as it is then."""
        request = await self._approvals.get(request_id)
        if request is None:
            return
        card = await self.card(request, Role.FULFILMENT, viewer_id="", time_zone=self._default_zone)
        posted = await self._post_channel(request, claimed, channel_id, card)
        await self._approvals.record_notice(
            request,
            action="notified" if posted else "unreachable",
            detail={"audience": "fulfilment", "names": "the fulfilment channel"},
        )

    def _queue_channel_post(self, channel_id: str, post: Callable[[], Awaitable[None]]) -> None:
        """Posts to one channel go out one after the other from a queue: Teams paces a thread
        to about two a second, so a burst of approvals to one fulfilment channel waits as a
        queue of ids (a few hundred bytes each), not as tasks each holding its request and
        its rendered card until its turn."""
        queue = self._channel_queues.get(channel_id)
        if queue is not None:
            queue.append(post)
            return
        queue = self._channel_queues[channel_id] = deque([post])
        self._tasks.spawn(self._post_queued(channel_id, queue), name=f"posts to {channel_id}")

    async def _post_queued(
        self, channel_id: str, queue: deque[Callable[[], Awaitable[None]]]
    ) -> None:
        try:
            while queue:
                post = queue.popleft()
                try:
                    await post()
                except Exception:
                    logger.exception("a queued post to a channel failed")
        finally:
            del self._channel_queues[channel_id]

    async def _tell_requester(self, request: ServiceRequest, title: str, text: str) -> None:
        if self._messenger is None:
            return
        ref = await self._conversations.personal(
            tenant_id=request.tenant_id, user_id=request.requester_id
        )
        if ref is None:
            return
        card = update_card(
            request,
            title=title,
            text=text,
            category_name=self._approvals.category_name(request.category_id),
        )
        try:
            await self._messenger.send(json.loads(ref.reference), card, tenant_id=request.tenant_id)
        except DeliveryError as error:
            logger.warning(
                "could not tell the requester of %s: status=%s", request.id, error.status
            )

    # -- keeping copies true -----------------------------------------------------------------
    async def update_copies(self, request: ServiceRequest) -> int:
        """Update every posted copy of the request's card for its audience; how many updated."""
        if self._messenger is None:
            return 0
        rows = await asyncio.to_thread(self._requests.cards, request.id)
        live = [row for row in rows if row.activity_id and row.reference and row.stale_at is None]
        if not live:
            return 0
        facts = await self.facts(request, [row.user_id for row in live])
        updated = 0
        for row in live:
            assert row.activity_id is not None and row.reference is not None
            role, viewer = self._role_of_copy(request, row)
            card = await self.card(
                request, role, viewer_id=viewer, time_zone=facts.zone(row.user_id), facts=facts
            )
            try:
                await self._messenger.update(
                    json.loads(row.reference), row.activity_id, card, tenant_id=request.tenant_id
                )
                updated += 1
            except DeliveryError as error:
                logger.warning(
                    "could not update a card of request %s: status=%s code=%s",
                    request.id,
                    error.status,
                    error.code,
                )
                if error.gone:
                    # Blocked, removed or deleted: every later update would fail the same way.
                    await asyncio.to_thread(
                        self._requests.card_stale,
                        _card_id(row),
                        now=self._clock(),
                        reason=error.code or f"status {error.status}",
                    )
        return updated

    def _role_of_copy(self, request: ServiceRequest, row: RequestCard) -> tuple[Role, str]:
        if row.audience == "fallback":
            stage = request.state.current_stage if request.pending else None
            if stage is not None:
                for approver in stage.approvers:
                    if request.state.open_items(approver):
                        return Role.APPROVER, approver
            return Role.VIEWER, ""
        if row.audience == "fulfilment" and row.user_id is None:
            category = self._approvals.category(request.category_id)
            channel = (
                category.fulfilment.channel_id
                if category and isinstance(category.fulfilment, FulfilmentChannel)
                else None
            )
            return self._approvals.role_of("", request, in_channel=channel), ""
        viewer = row.user_id or ""
        return self._approvals.role_of(viewer, request), viewer

    # -- sending -----------------------------------------------------------------------------
    async def _claim(
        self, request: ServiceRequest, purpose: str, audience: str, user_id: str | None
    ) -> RequestCard | None:
        row = RequestCard(
            request_id=request.id,
            purpose=purpose[:200],
            audience=audience,
            user_id=user_id,
            created_at=self._clock(),
        )
        return await asyncio.to_thread(self._requests.claim_card, row)

    async def _send_personal(
        self, request: ServiceRequest, claimed: RequestCard, user_id: str, card: Card
    ) -> bool:
        """Post to the user's personal chat, opening a fresh one when the stored one is gone
        (403 not in the roster, 404 not found: marked stale); False when unreachable.

        A user who blocked the bot (403 ConversationBlockedByUser) gets no new chat: Teams
        says to stop posting until they write to the bot again, which clears the mark.
        """
        if self._messenger is None:
            return False
        ref = await self._conversations.personal(
            tenant_id=request.tenant_id, user_id=user_id, include_stale=True
        )
        if ref is not None and ref.stale_at is None:
            outcome = await self._post_personal(request, claimed, ref, card)
            if isinstance(outcome, bool):
                return outcome
            ref.stale_reason = await self._mark_stale(ref, outcome)
        if ref is not None and ref.stale_reason == BLOCKED_BY_USER:
            return False
        opened = await self._open_personal(request.tenant_id, user_id)
        if opened is None:
            return False
        outcome = await self._post_personal(request, claimed, opened, card)
        if isinstance(outcome, bool):
            return outcome
        await self._mark_stale(opened, outcome)
        return False

    async def _post_personal(
        self, request: ServiceRequest, claimed: RequestCard, ref: ConversationRef, card: Card
    ) -> bool | DeliveryError:
        """Send the card to this chat: True when posted, False when it failed for now, the
        error when the chat refuses the bot for good (the caller marks it stale)."""
        assert self._messenger is not None
        try:
            activity_id = await self._messenger.send(
                json.loads(ref.reference), card, tenant_id=request.tenant_id
            )
        except DeliveryError as error:
            logger.info(
                "personal chat of an approver of %s refused a card: status=%s code=%s",
                request.id,
                error.status,
                error.code,
            )
            return error if error.gone else False
        await asyncio.to_thread(
            self._requests.card_posted,
            _card_id(claimed),
            conversation_id=ref.conversation_id,
            activity_id=activity_id,
            reference=ref.reference,
        )
        return True

    async def _mark_stale(self, ref: ConversationRef, error: DeliveryError) -> str:
        """Mark a stored chat the connector refused for good; the reason recorded."""
        reason = error.code or f"status {error.status}"
        await self._conversations.mark_stale(ref.conversation_id, now=self._clock(), reason=reason)
        logger.info("a stored personal chat is stale (%s): not used again", reason)
        return reason

    async def _open_personal(self, tenant_id: str, user_id: str) -> ConversationRef | None:
        assert self._messenger is not None
        template = await self._conversations.latest_for_tenant(tenant_id)
        if template is None:
            return None
        try:
            conversation_id, reference = await self._messenger.open_personal(
                template=json.loads(template.reference), tenant_id=tenant_id, user_id=user_id
            )
        except DeliveryError as error:
            logger.info("could not open a personal chat: status=%s", error.status)
            return None
        now = self._clock()
        ref = ConversationRef(
            conversation_id=conversation_id[:512],
            tenant_id=tenant_id,
            user_id=user_id,
            conversation_type="personal",
            service_url=template.service_url,
            reference=json.dumps(reference, sort_keys=True),
            created_at=now,
            updated_at=now,
        )
        await self._conversations.remember(ref)
        return ref

    async def _post_channel(
        self, request: ServiceRequest, claimed: RequestCard, channel_id: str, card: Card
    ) -> bool:
        if self._messenger is None:
            return False
        template = await self._conversations.latest_for_tenant(request.tenant_id)
        if template is None:
            return False
        try:
            conversation_id, reference, activity_id = await self._messenger.post_to_channel(
                template=json.loads(template.reference),
                tenant_id=request.tenant_id,
                channel_id=channel_id,
                card=card,
            )
        except DeliveryError as error:
            logger.warning(
                "could not post request %s to a channel: status=%s", request.id, error.status
            )
            return False
        await asyncio.to_thread(
            self._requests.card_posted,
            _card_id(claimed),
            conversation_id=conversation_id,
            activity_id=activity_id,
            reference=json.dumps(reference, sort_keys=True),
        )
        return True


@dataclass(frozen=True)
class CardFacts:
    """What a request's cards show besides the request (`RequestNotifier.facts`)."""

    context: RequestContext
    refresh_ids: list[str]  # the Teams ids the card refreshes for
    zones: Mapping[str, ZoneInfo]  # the viewers' last known time zones
    default_zone: ZoneInfo

    def zone(self, user_id: str | None) -> ZoneInfo:
        """The viewer's time zone: as last seen, else the bot's default."""
        return (self.zones.get(user_id) if user_id else None) or self.default_zone


@dataclass
class _Turns:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@asynccontextmanager
async def _in_turn(turns: dict[str, _Turns], key: str) -> AsyncIterator[None]:
    """Held while it is `key`'s turn: one holder per key at a time, in arrival order; the entry
    is dropped when no one waits for it."""
    entry = turns.setdefault(key, _Turns())
    entry.users += 1
    try:
        async with entry.lock:
            yield
    finally:
        entry.users -= 1
        if entry.users == 0:
            del turns[key]


def _card_id(card: RequestCard) -> int:
    assert card.id is not None
    return card.id


def _join(names: Mapping[str, str], users: Sequence[str]) -> str:
    return ", ".join(names.get(user) or user for user in users)


def _channel_user_id(ref: ConversationRef | None) -> str | None:
    """The user's Teams id (`29:...`) in a stored personal conversation reference."""
    if ref is None:
        return None
    try:
        user = json.loads(ref.reference).get("user") or {}
    except ValueError:
        return None
    user_id = user.get("id") if isinstance(user, dict) else None
    return user_id if isinstance(user_id, str) and user_id else None


def approval_mail(
    request: ServiceRequest, *, category_name: str, requester_name: str, link: str
) -> str:
    """The HTML body of an approval mail: what is asked, by whom, for how much, and the link
    back to the bot's chat in Teams (where the decision is made). Every value is escaped."""
    rows = "".join(
        f"<tr><td>{html.escape(item.description)}</td>"
        f'<td style="text-align:right">{html.escape(_number(item.quantity))}</td>'
        f'<td style="text-align:right">{html.escape(f"{item.total:.2f}")}</td></tr>'
        for item in request.items
    )
    details = "".join(
        f"<li>{html.escape(detail.label)}: {html.escape(detail.value)}</li>"
        for detail in request.details
    )
    currency = html.escape(request.currency)
    return (
        "<html><body>"
        f"<p>{html.escape(requester_name)} asks for {html.escape(category_name.lower())} "
        "and Frontdesk could not reach you in Teams. Your approval is needed.</p>"
        "<table><tr><th>Item</th><th>Quantity</th><th>Price</th></tr>"
        f"{rows}"
        f"<tr><td><b>Total</b></td><td></td>"
        f'<td style="text-align:right"><b>{currency} {request.total:.2f}</b></td></tr>'
        "</table>"
        + (f"<ul>{details}</ul>" if details else "")
        + f"<p>Request {html.escape(request.id)}.</p>"
        f'<p><a href="{html.escape(link, quote=True)}">Open Frontdesk in Teams</a> '
        "and type <b>approvals</b> to decide.</p>"
        "</body></html>"
    )


def _number(value: Any) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
