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
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from bot.approvals.catalogue import FulfilmentChannel, FulfilmentUsers
from bot.approvals.service import ApprovalService, Role, ServiceRequest
from bot.models import Actor
from bot.storage.repository import BookingRepository, ConversationRepository
from bot.storage.service_requests import ServiceRequestRepository
from bot.storage.tables import ConversationRef, FulfilmentStatus, RequestCard, UserProfile
from bot.tasks import BackgroundTasks
from bot.users import zone_or_none
from cards.common import Card
from cards.requests import RequestContext, booking_title, request_card, update_card

logger = logging.getLogger(__name__)

MAX_REFRESH_USERS = 60


class DeliveryError(Exception):
    """The Bot Connector refused or failed a send; `status` is its HTTP status, if any."""

    def __init__(self, status: int | None, code: str = "") -> None:
        super().__init__(f"delivery failed: status={status} code={code}")
        self.status = status
        self.code = code


class Messenger(Protocol):
    """Proactive messages through the Bot Connector (implemented at the Teams edge)."""

    async def send(self, reference: Mapping[str, Any], card: Card) -> str | None:
        """Post a card to the conversation; the new message's id."""
        ...

    async def update(self, reference: Mapping[str, Any], activity_id: str, card: Card) -> None:
        """Replace the card in a message the bot posted."""
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
    ) -> None:
        self._approvals = approvals
        self._requests = requests
        self._conversations = conversations
        self._bookings = bookings
        self._messenger = messenger
        self._tasks = tasks
        self._clock = clock
        self._default_zone = default_zone
        self._locks: dict[str, _RequestLock] = {}

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
    ) -> Card:
        """The request's card as this viewer sees it; it refreshes for those with their own view."""
        context = await self._context(request)
        return request_card(
            request,
            role,
            context,
            viewer_id=viewer_id,
            time_zone=time_zone,
            message=message,
            tone=tone,
            refresh_user_ids=await self._refresh_ids(request),
        )

    async def _context(self, request: ServiceRequest) -> RequestContext:
        history = await self._approvals.history(request.id)
        users = {request.requester_id}
        for stage in request.state.stages:
            users.update(stage.approvers)
        profiles = await self._profiles(request.tenant_id, users)
        names = {user: profile.name for user, profile in profiles.items() if profile.name}
        category = self._approvals.category(request.category_id)
        booking_text = None
        if request.booking_id is not None:
            booking = await asyncio.to_thread(self._requests.booking, request.booking_id)
            if booking is not None:
                zone = zone_or_none(booking.time_zone) or self._default_zone
                booking_text = booking_title(
                    booking.start_at, booking.end_at, booking.room_name, zone
                )
        return RequestContext(
            category_name=category.name if category else request.category_id,
            names=names,
            history=history,
            booking_text=booking_text,
        )

    async def _profiles(
        self, tenant_id: str, users: Sequence[str] | set[str]
    ) -> dict[str, UserProfile]:
        return await asyncio.to_thread(self._requests.profiles, tenant_id, sorted(users))

    async def _refresh_ids(self, request: ServiceRequest) -> list[str]:
        """The Teams ids of the current approvers and the requester (at most 60)."""
        users: list[str] = []
        stage = request.state.current_stage if request.pending else None
        if stage is not None:
            users.extend(stage.approvers)
        users.append(request.requester_id)
        ids: list[str] = []
        for user in dict.fromkeys(users):
            ref = await self._conversations.personal(tenant_id=request.tenant_id, user_id=user)
            channel_user = _channel_user_id(ref)
            if channel_user:
                ids.append(channel_user)
            if len(ids) == MAX_REFRESH_USERS:
                break
        return ids

    async def _zone_of(self, tenant_id: str, user_id: str | None) -> ZoneInfo:
        if user_id is None:
            return self._default_zone
        profile = (await self._profiles(tenant_id, [user_id])).get(user_id)
        return (zone_or_none(profile.time_zone) if profile else None) or self._default_zone

    # -- events ------------------------------------------------------------------------------
    def submitted(self, request: ServiceRequest, actor: Actor) -> None:
        self._tasks.spawn(self._after_submit(request, actor), name=f"submitted {request.id}")

    def changed(self, request: ServiceRequest, *, notice: tuple[str, str] | None = None) -> None:
        """After a decision, a cancellation or a fulfilment step: update and tell."""
        self._tasks.spawn(self._after_change(request, notice), name=f"changed {request.id}")

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
        # starts: two decisions close together cannot leave the older state on the cards.
        entry = self._locks.setdefault(request.id, _RequestLock())
        entry.users += 1
        try:
            async with entry.lock:
                fresh = await self._approvals.get(request.id) or request
                await self.update_copies(fresh)
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[request.id]
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
        for approver in stage.approvers:
            claimed = await self._claim(
                request, f"approve:{stage.id}:{approver}", "approver", approver
            )
            if claimed is None:
                continue  # notified before (a repeated event)
            zone = await self._zone_of(request.tenant_id, approver)
            card = await self.card(request, Role.APPROVER, viewer_id=approver, time_zone=zone)
            if await self._send_personal(request, claimed, approver, card):
                reached.append(approver)
            else:
                unreachable.append(approver)
        names = await self._names(request.tenant_id, reached + unreachable)
        if reached:
            await self._approvals.record_notice(
                request,
                action="notified",
                detail={"stage": stage.id, "audience": "approvers", "names": _join(names, reached)},
            )
        if unreachable:
            await self._fallback(request, stage.id, unreachable, names)

    async def _fallback(
        self, request: ServiceRequest, stage_id: str, users: list[str], names: dict[str, str]
    ) -> None:
        """Approvers the bot cannot reach: the policy's fallback channel gets the card."""
        channel = self._approvals.fallback_channel(request.policy_id)
        who = _join(names, users)
        claimed = await self._claim(request, f"fallback:{stage_id}", "fallback", None)
        if claimed is None:
            return
        card = await self.card(
            request,
            Role.APPROVER,
            viewer_id=users[0],
            time_zone=self._default_zone,
            message=f"Posted here because Frontdesk could not reach {who} in Teams.",
            tone="warning",
        )
        posted = channel is not None and await self._post_channel(request, claimed, channel, card)
        await self._approvals.record_notice(
            request,
            action="notified" if posted else "unreachable",
            detail={"stage": stage_id, "audience": "approvers", "names": who, "fallback": channel},
        )

    # -- fulfilment and the requester --------------------------------------------------------
    async def _notify_fulfilment(self, request: ServiceRequest) -> None:
        category = self._approvals.category(request.category_id)
        if category is None:
            return
        team = category.fulfilment
        if isinstance(team, FulfilmentChannel):
            claimed = await self._claim(request, "fulfil:channel", "fulfilment", None)
            if claimed is None:
                return
            card = await self.card(
                request, Role.FULFILMENT, viewer_id="", time_zone=self._default_zone
            )
            posted = await self._post_channel(request, claimed, team.channel_id, card)
            await self._approvals.record_notice(
                request,
                action="notified" if posted else "unreachable",
                detail={"audience": "fulfilment", "names": "the fulfilment channel"},
            )
            return
        assert isinstance(team, FulfilmentUsers)
        reached: list[str] = []
        for user in team.user_ids:
            claimed = await self._claim(request, f"fulfil:{user}", "fulfilment", user)
            if claimed is None:
                continue
            zone = await self._zone_of(request.tenant_id, user)
            card = await self.card(request, Role.FULFILMENT, viewer_id=user, time_zone=zone)
            if await self._send_personal(request, claimed, user, card):
                reached.append(user)
        if reached:
            names = await self._names(request.tenant_id, reached)
            await self._approvals.record_notice(
                request,
                action="notified",
                detail={"audience": "fulfilment", "names": _join(names, reached)},
            )

    async def _tell_requester(self, request: ServiceRequest, title: str, text: str) -> None:
        if self._messenger is None:
            return
        ref = await self._conversations.personal(
            tenant_id=request.tenant_id, user_id=request.requester_id
        )
        if ref is None:
            return
        category = self._approvals.category(request.category_id)
        card = update_card(
            request,
            title=title,
            text=text,
            category_name=category.name if category else request.category_id,
        )
        try:
            await self._messenger.send(json.loads(ref.reference), card)
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
        updated = 0
        for row in rows:
            if not row.activity_id or not row.reference:
                continue
            role, viewer = self._role_of_copy(request, row)
            zone = await self._zone_of(request.tenant_id, row.user_id)
            card = await self.card(request, role, viewer_id=viewer, time_zone=zone)
            try:
                await self._messenger.update(json.loads(row.reference), row.activity_id, card)
                updated += 1
            except DeliveryError as error:
                logger.warning(
                    "could not update a card of request %s: status=%s", request.id, error.status
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
        """Post to the user's personal chat (opening one if needed); False when unreachable."""
        if self._messenger is None:
            return False
        ref = await self._conversations.personal(tenant_id=request.tenant_id, user_id=user_id)
        for attempt in ("stored", "opened"):
            if attempt == "opened" or ref is None:
                ref = await self._open_personal(request.tenant_id, user_id)
                if ref is None:
                    return False
            reference = json.loads(ref.reference)
            try:
                activity_id = await self._messenger.send(reference, card)
            except DeliveryError as error:
                logger.info(
                    "personal chat of an approver of %s refused a card: status=%s",
                    request.id,
                    error.status,
                )
                if attempt == "opened" or error.status not in (403, 404):
                    return False
                continue
            await asyncio.to_thread(
                self._requests.card_posted,
                _card_id(claimed),
                conversation_id=ref.conversation_id,
                activity_id=activity_id,
                reference=ref.reference,
            )
            return True
        return False

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

    async def _names(self, tenant_id: str, users: Sequence[str]) -> dict[str, str]:
        profiles = await self._profiles(tenant_id, set(users))
        return {user: profile.name for user, profile in profiles.items() if profile.name}


@dataclass
class _RequestLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


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
