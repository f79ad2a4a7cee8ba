"""What each verb does: parse its data, call the service, render the card.

Chat commands and card clicks both come through here, so a button and a typed command behave alike.
This is also the one place that turns domain errors into what the user sees.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bot.admin import AdminService, NotAdmin
from bot.approvals.errors import AlreadyDecided, FormError, NotAnApprover, PolicyError
from bot.approvals.service import (
    ApprovalService,
    RequestBusy,
    RequestNotFound,
    Role,
    ServiceRequest,
)
from bot.booking import BookingService
from bot.commands import Verb
from bot.errors import (
    FrontdeskError,
    InputError,
    MalformedAction,
    NotAllowed,
    NotFound,
    RoomNeedsApproval,
    RoomTaken,
)
from bot.graph import (
    GraphAuthError,
    GraphError,
    GraphThrottled,
    GraphTimeout,
    GraphUnavailable,
)
from bot.identity.errors import AssertionExpired, ConsentRequired, IdentityError, SignInRequired
from bot.identity.user_tokens import UserTokens
from bot.models import Actor
from bot.notifications import RequestNotifier
from bot.storage.tables import (
    Booking,
    BookingApproval,
    BookingStatus,
)
from cards.admin import admin_card, reassign_card
from cards.booking import (
    booking_form,
    bookings_list_card,
    cancel_confirm_card,
    confirmation_card,
    meeting_now_card,
    results_card,
    series_booked_card,
    series_plan_card,
    working_card,
)
from cards.common import Card, action, format_span, message_card
from cards.help import help_card, welcome_card
from cards.requests import (
    BookingChoice,
    approvals_card,
    categories_card,
    final_notice,
    form_inputs,
    fulfilment_notice,
    my_requests_card,
    request_form_card,
    submitted_text,
)

logger = logging.getLogger(__name__)

Handler = Callable[[Actor, Mapping[str, Any]], Awaitable[Card]]

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SLUG = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_ROOM_ID = re.compile(r"^[A-Za-z0-9._@+-]{1,256}$")
# Commands whose answer shows one person's data: in shared chats they answer with a button.
_PRIVATE_ANSWERS: dict[Verb, tuple[str, str]] = {
    Verb.BOOKING_LIST: ("My bookings", "Show my bookings"),
    Verb.REQUEST_LIST: ("My requests", "Show my requests"),
    Verb.APPROVAL_LIST: ("Approvals", "Show what waits for me"),
    Verb.ADMIN_SHOW: ("Frontdesk admin", "Show the admin overview"),
}

# Clicks whose work changes the calendar through Microsoft Graph, which may be slow: answered
# within the turn budget, recorded before the work starts and finished after a crash (each is
# idempotent: attempt ids and Graph's transactionId). See bot.tasks.SlowClicks.
DURABLE_VERBS: frozenset[str] = frozenset(
    {
        Verb.BOOKING_BOOK,
        Verb.BOOKING_SERIES,
        Verb.BOOKING_SERIES_BOOK,
        Verb.BOOKING_CANCEL_CONFIRM,
        Verb.BOOKING_CANCEL_SERIES,
    }
)
# Clicks that call Graph too but leave nothing to finish after a crash (reads, and meet now,
# whose meeting Graph cannot make idempotently): answered within the turn budget only.
BUDGETED_VERBS: frozenset[str] = frozenset(
    {
        Verb.BOOKING_START,
        Verb.BOOKING_SEARCH,
        Verb.BOOKING_ALTERNATIVES,
        Verb.BOOKING_LIST,
        Verb.BOOKING_CANCEL,
        Verb.MEETING_NOW,
    }
)


def _uuid(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not _UUID.match(value):
        raise MalformedAction(f"{key} must be an id")
    return value


def _slug(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not _SLUG.match(value):
        raise MalformedAction(f"{key} must be an id")
    return value


def _optional_uuid(data: Mapping[str, Any], key: str) -> str | None:
    """An id from a choice input, where an empty choice arrives as "" (or not at all)."""
    if data.get(key) in (None, ""):
        return None
    return _uuid(data, key)


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise MalformedAction(f"{key} must be text")
    return value


def _room_id(data: Mapping[str, Any]) -> str:
    value = data.get("room")
    if not isinstance(value, str) or not _ROOM_ID.match(value):
        raise MalformedAction("room must be a room id")
    return value


class CardActions:
    """The verb table and its handlers."""

    def __init__(
        self,
        booking: BookingService,
        *,
        user_tokens: UserTokens | None = None,
        approvals: ApprovalService | None = None,
        notifier: RequestNotifier | None = None,
        admin: AdminService | None = None,
    ) -> None:
        self._admin_service = admin
        self._booking = booking
        self._user_tokens = user_tokens
        self._approvals = approvals
        self._notifier = notifier
        self._table: dict[Verb, Handler] = {
            Verb.HELP: self.help,
            Verb.BOOKING_START: self.start,
            Verb.BOOKING_SEARCH: self.search,
            Verb.BOOKING_BOOK: self.book,
            Verb.BOOKING_LIST: self.list_bookings,
            Verb.BOOKING_SHOW: self.show,
            Verb.BOOKING_CANCEL: self.cancel,
            Verb.BOOKING_CANCEL_CONFIRM: self.cancel_confirm,
            Verb.ACCOUNT_SIGN_OUT: self.sign_out,
            Verb.BOOKING_ALTERNATIVES: self.alternatives,
            Verb.MEETING_NOW: self.meeting_now,
            Verb.BOOKING_SERIES: self.series,
            Verb.BOOKING_SERIES_BOOK: self.book_series,
            Verb.BOOKING_CANCEL_SERIES: self.cancel_series,
            Verb.REQUEST_START: self.request_start,
            Verb.REQUEST_FORM: self.request_form,
            Verb.REQUEST_SUBMIT: self.request_submit,
            Verb.REQUEST_SHOW: self.request_show,
            Verb.REQUEST_LIST: self.request_list,
            Verb.REQUEST_DECIDE: self.request_decide,
            Verb.REQUEST_CANCEL: self.request_cancel,
            Verb.REQUEST_FULFIL: self.request_fulfil,
            Verb.APPROVAL_LIST: self.approval_list,
            Verb.ADMIN_SHOW: self.admin_show,
            Verb.ADMIN_REASSIGN_FORM: self.admin_reassign_form,
            Verb.ADMIN_REASSIGN: self.admin_reassign,
        }
        missing = set(Verb) - set(self._table)
        if missing:
            raise RuntimeError(f"verbs without a handler: {sorted(missing)}")

    async def run(self, verb: str, data: Mapping[str, Any], actor: Actor) -> Card:
        """Run a verb; MalformedAction for what no Teams client would send."""
        try:
            known = Verb(verb)
        except ValueError:
            raise MalformedAction(f"unknown verb {verb[:64]!r}") from None
        try:
            return await self._table[known](actor, data)
        except (MalformedAction, SignInRequired):
            raise  # the Teams edge answers these (400, or a sign-in request)
        except FrontdeskError as error:
            return _error_card(error)
        except GraphError as error:
            logger.warning(
                "Graph failed for verb=%s: status=%s code=%s", known, error.status, error.code
            )
            return _graph_error_card(error, known)

    async def command(self, verb: Verb, actor: Actor, *, shared_chat: bool) -> Card:
        """A typed command. In a group chat or channel a reply is seen by everyone, so a
        private answer becomes a button: a card action's answer is shown to the clicker only."""
        if verb is Verb.ADMIN_SHOW and not self._is_admin(actor):
            # Not offered to others: they get the answer any unknown command gets.
            return await self.not_understood("admin")
        if shared_chat and verb in _PRIVATE_ANSWERS:
            title, button = _PRIVATE_ANSWERS[verb]
            return message_card(
                title,
                "This is private to you. Press the button: only you will see the answer.",
                actions=[action(button, verb)],
            )
        return await self.run(verb, {}, actor)

    async def sign_out(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        if self._user_tokens is None:
            return message_card(
                "Nothing to sign out of",
                "Frontdesk uses its own room directory here and never signed you in.",
                actions=[action("Book a room", Verb.BOOKING_START)],
            )
        await self._user_tokens.sign_out(actor)
        return message_card(
            "Signed out",
            "You are signed out of Microsoft 365. Frontdesk asks you to sign in next time.",
            actions=[action("Book a room", Verb.BOOKING_START)],
        )

    async def help(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        # Admins see the admin command, but not where others would see it too.
        personal = actor.place is None or actor.place.conversation_type == "personal"
        return help_card(
            online_meetings=self._booking.online_meetings_available,
            admin=personal and self._is_admin(actor),
        )

    async def not_understood(self, text: str) -> Card:
        return help_card(
            not_understood=text, online_meetings=self._booking.online_meetings_available
        )

    async def start(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        """The booking form: empty, or filled with an earlier search ("Change search")."""
        if data.get("attempt") is not None:
            values = await self._booking.form_of_search(actor, _uuid(data, "attempt"))
        else:
            values = self._booking.default_form(actor.time_zone)
        return booking_form(
            values,
            rooms=await self._booking.rooms(actor),
            time_zone=actor.time_zone,
            online_meetings_available=self._booking.online_meetings_available,
            max_occurrences=self._booking.max_occurrences,
        )

    async def search(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        try:
            query = await self._booking.parse_form(data, actor)
        except InputError as error:
            return await self._form_again(actor, data, error.message)
        result = await self._booking.search(actor, query)
        return results_card(result, time_zone=actor.time_zone)

    async def _form_again(self, actor: Actor, data: Mapping[str, Any], message: str) -> Card:
        values = self._booking.form_values(data, self._booking.default_form(actor.time_zone))
        return booking_form(
            values,
            rooms=await self._booking.rooms(actor),
            time_zone=actor.time_zone,
            error=message,
            online_meetings_available=self._booking.online_meetings_available,
            max_occurrences=self._booking.max_occurrences,
        )

    async def book(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        attempt, room_id = _uuid(data, "attempt"), _room_id(data)
        try:
            booking, _ = await self._booking.book(actor, attempt, room_id)
        except RoomTaken as taken:
            result = await self._booking.search_again(actor, attempt)
            return results_card(
                result,
                time_zone=actor.time_zone,
                message=f"{taken} was just booked by someone else. Here is what is still free.",
            )
        except InputError as error:
            return await self._form_again(actor, {}, error.message)
        message = "Your room is booked."
        if (
            booking.approval == BookingApproval.PENDING
            and booking.status == BookingStatus.CONFIRMED
        ):
            held = await self._ask_room_owners(actor, booking)
            if held is None:
                booking, _ = await self._booking.cancel(actor, booking.id, _NO_ROOM_APPROVER)
                return confirmation_card(
                    booking,
                    time_zone=actor.time_zone,
                    online_meetings_available=self._booking.online_meetings_available,
                )
            message = _held_text(held)
        return confirmation_card(
            booking,
            time_zone=actor.time_zone,
            online_meetings_available=self._booking.online_meetings_available,
            # A redelivered click finds the same booking and shows the same card.
            message=message,
            refresh_user_id=actor.channel_user_id or None,
        )

    async def _ask_room_owners(self, actor: Actor, booking: Booking) -> ServiceRequest | None:
        """File the approval of a held room (once per booking) and tell its approvers; None
        when the approval policy finds nobody to approve it."""
        approvals, notifier = self._requests()
        try:
            request = await approvals.request_room(actor, booking)
        except PolicyError as error:
            logger.warning("room %s cannot be approved: %s", booking.room_id, error)
            return None
        notifier.submitted(request, actor)
        return request

    async def series(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        """Book a repeating search in a room: at once when every date is free, else ask."""
        attempt, room_id = _uuid(data, "attempt"), _room_id(data)
        if await self._booking.series_bookings(actor, attempt):
            # The click came again (redelivery, a second press): show what it booked.
            return await self._series_booked(actor, attempt, room_id, substitute=False)
        plan = await self._booking.plan_series(actor, attempt, room_id)
        if all(occurrence.free for occurrence in plan):
            return await self._series_booked(actor, attempt, room_id, substitute=False)
        room = await self._booking.room(actor, room_id)
        return series_plan_card(plan, attempt_id=attempt, room=room, time_zone=actor.time_zone)

    async def book_series(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        substitute = data.get("substitute")
        if not isinstance(substitute, bool):
            raise MalformedAction("substitute must be true or false")
        return await self._series_booked(
            actor, _uuid(data, "attempt"), _room_id(data), substitute=substitute
        )

    async def _series_booked(
        self, actor: Actor, attempt: str, room_id: str, *, substitute: bool
    ) -> Card:
        result = await self._booking.book_series(actor, attempt, room_id, substitute=substitute)
        return series_booked_card(
            result,
            time_zone=actor.time_zone,
            online_meetings_available=self._booking.online_meetings_available,
        )

    async def cancel_series(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        cancelled = await self._booking.cancel_series(actor, _uuid(data, "series"), None)
        return message_card(
            "Repeating booking cancelled",
            f"{len(cancelled)} upcoming dates were cancelled and their rooms are free again.",
            actions=[action("My bookings", Verb.BOOKING_LIST)],
        )

    async def meeting_now(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        join_url, start, end = await self._booking.meet_now(actor)
        return meeting_now_card(join_url, start=start, end=end, time_zone=actor.time_zone)

    def sign_in_problem(self) -> Card:
        """When signing in itself failed (the token service or Entra ID did not answer)."""
        return _error_card(IdentityError("sign-in failed"))

    def welcome(self, *, user_name: str | None, personal: bool) -> Card:
        """The card for a new chat: a welcome in a personal chat, help in a shared one."""
        online = self._booking.online_meetings_available
        if personal:
            return welcome_card(user_name=user_name, online_meetings=online)
        return help_card(online_meetings=online)

    async def alternatives(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        """Rooms free for a slot whose room declined (the same search, run again)."""
        result = await self._booking.search_again(actor, _uuid(data, "attempt"))
        return results_card(
            result,
            time_zone=actor.time_zone,
            message="The room declined. These are free for the same time.",
        )

    async def list_bookings(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        return bookings_list_card(await self._booking.upcoming(actor), time_zone=actor.time_zone)

    async def show(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        booking = await self._booking.get(actor, _uuid(data, "booking"))
        return confirmation_card(
            booking,
            time_zone=actor.time_zone,
            online_meetings_available=self._booking.online_meetings_available,
            refresh_user_id=actor.channel_user_id or None,
        )

    async def cancel(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        booking = await self._booking.get(actor, _uuid(data, "booking"))
        if booking.status == BookingStatus.CANCELLED:
            return confirmation_card(
                booking,
                time_zone=actor.time_zone,
                online_meetings_available=self._booking.online_meetings_available,
                message="This booking was already cancelled.",
            )
        return cancel_confirm_card(booking, time_zone=actor.time_zone)

    async def cancel_confirm(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        booking_id = _uuid(data, "booking")
        comment = data.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise MalformedAction("comment must be text")
        try:
            booking, changed = await self._booking.cancel(actor, booking_id, comment)
        except InputError as error:
            booking = await self._booking.get(actor, booking_id)
            return cancel_confirm_card(booking, time_zone=actor.time_zone, error=error.message)
        if changed and booking.approval == BookingApproval.PENDING:
            await self._withdraw_room_request(actor, booking)
        return confirmation_card(
            booking,
            time_zone=actor.time_zone,
            online_meetings_available=self._booking.online_meetings_available,
            message="Cancelled. The room is free again."
            if changed
            else "This booking was already cancelled.",
        )

    # -- slow clicks (bot.tasks.SlowClicks) ------------------------------------------------------
    async def working(self, verb: str, data: Mapping[str, Any], actor: Actor) -> Card:
        """The "working on it" card of a click whose work outlasts the turn budget."""
        pending = None
        if verb == Verb.BOOKING_BOOK:
            attempt = data.get("attempt")
            if isinstance(attempt, str) and _UUID.match(attempt):
                room = data.get("room")
                pending = await self._booking.pending(
                    actor, attempt, room if isinstance(room, str) else None
                )
            data = {"attempt": attempt, "room": data.get("room")}
        return working_card(
            verb,
            time_zone=actor.time_zone,
            pending=pending,
            refresh_data=data,
            refresh_user_id=actor.channel_user_id or None,
        )

    async def unfinished(
        self, verb: str, data: Mapping[str, Any], actor: Actor, error: BaseException
    ) -> Card:
        """The card for a slow click whose work failed after the turn had answered."""
        if isinstance(error, SignInRequired):
            # The token service no longer has the user's Microsoft 365 sign-in, so the calendar
            # cannot be asked whether the event exists: the slot is released, and the same
            # button (the same attempt, so never twice) finishes it after signing in.
            attempt = data.get("attempt")
            if verb == Verb.BOOKING_BOOK and isinstance(attempt, str) and _UUID.match(attempt):
                await self._booking.release_unheld(actor, attempt)
            retry = (
                [action("Sign in and finish", Verb(verb), data)] if verb in DURABLE_VERBS else []
            )
            return message_card(
                "Not finished: please sign in",
                "Frontdesk could not finish this because your Microsoft 365 sign-in has ended. "
                "Nothing is held for you. Press the button to sign in and finish; it will not "
                "book twice.",
                actions=retry,
            )
        if isinstance(error, MalformedAction):
            return message_card("That did not work", "The card action is not valid.")
        if isinstance(error, IdentityError):
            return self.sign_in_problem()
        return message_card(
            "Something went wrong",
            "Sorry, I could not finish that. Please try again in a moment.",
            actions=[action("Help", Verb.HELP)],
        )

    def _release_rejected_room(self, request: ServiceRequest) -> None:
        """A held room its owners rejected: the booking is already cancelled in the database;
        its calendar event (Microsoft 365) is cancelled for the requester, after the answer."""
        booking_id = request.released_booking_id
        if booking_id is None:
            return
        _, notifier = self._requests()

        async def release(requester: Actor) -> None:
            try:
                await self._booking.release_rejected(requester, booking_id)
            except (FrontdeskError, GraphError, SignInRequired) as error:
                logger.warning(
                    "rejected room booking %s: its calendar event was not cancelled (%s)",
                    booking_id,
                    type(error).__name__,
                )

        notifier.on_behalf_of_requester(request, release, name=f"release room {booking_id}")

    async def _withdraw_room_request(self, actor: Actor, booking: Booking) -> None:
        """A held room the user cancelled: its approval request is withdrawn for everyone."""
        approvals, notifier = self._requests()
        withdrawn = await approvals.withdraw_room_request(actor, booking.id)
        if withdrawn is not None:
            notifier.changed(withdrawn)

    # -- service requests ------------------------------------------------------------------------
    def _requests(self) -> tuple[ApprovalService, RequestNotifier]:
        if self._approvals is None or self._notifier is None:
            raise NotAllowed("Service requests are not set up here.")
        return self._approvals, self._notifier

    async def request_start(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        approvals, _ = self._requests()
        return categories_card(
            approvals.catalogue.categories, booking_id=_optional_uuid(data, "booking")
        )

    async def request_form(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        return await self._request_form(
            actor, _slug(data, "category"), booking_id=_optional_uuid(data, "booking")
        )

    async def _request_form(
        self,
        actor: Actor,
        category_id: str,
        *,
        booking_id: str | None,
        values: Mapping[str, Any] | None = None,
        error: str | None = None,
        submission_id: str | None = None,
    ) -> Card:
        approvals, _ = self._requests()
        category = approvals.category(category_id)
        if category is None:
            raise NotFound("That service is not in the catalogue any more.")
        upcoming = [
            booking
            for booking in await self._booking.upcoming(actor)
            if booking.status == BookingStatus.CONFIRMED
        ]
        bookings = [
            BookingChoice(
                booking.id,
                f"{booking.subject} · {booking.room_name}, "
                f"{format_span(booking.start_at, booking.end_at, actor.time_zone)}",
            )
            for booking in upcoming
        ]
        linked = next((b for b in upcoming if b.id == booking_id), None)
        if values is None and linked is not None:
            values = approvals.booking_defaults(
                category, linked.start_at.astimezone(actor.time_zone)
            )
        return request_form_card(
            category,
            submission_id=submission_id or str(uuid.uuid4()),
            bookings=bookings,
            values=values,
            booking_id=booking_id,
            error=error,
        )

    async def request_submit(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        approvals, notifier = self._requests()
        category_id = _slug(data, "category")
        submission = _uuid(data, "submission")
        booking_id = _optional_uuid(data, "booking")
        inputs = form_inputs(data)
        try:
            request = await approvals.submit(
                actor, category_id, inputs, booking_id, submission_id=submission
            )
        except (FormError, InputError) as error:
            return await self._request_form(
                actor,
                category_id,
                booking_id=booking_id,
                values=inputs,
                error=error.message,
                submission_id=submission,
            )
        notifier.submitted(request, actor)
        return await notifier.card(
            request,
            Role.REQUESTER,
            viewer_id=actor.user_id,
            time_zone=actor.time_zone,
            message=submitted_text(request),
        )

    async def request_show(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        return await self._request_card(actor, _uuid(data, "request"))

    async def request_decide(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        approvals, notifier = self._requests()
        request_id = _uuid(data, "request")
        decision = data.get("decision")
        if decision not in ("approve", "reject"):
            raise MalformedAction("decision must be approve or reject")
        item = data.get("item")
        if item != "all" and not (isinstance(item, str) and _SLUG.match(item)):
            raise MalformedAction("item must be an item id or all")
        try:
            result = await approvals.decide(
                actor,
                request_id,
                items="all" if item == "all" else [item],
                approve=decision == "approve",
                comment=_text(data, "comment"),
            )
        except InputError as error:
            return await self._request_card(actor, request_id, error.message, tone="attention")
        except RequestBusy as busy:
            return await self._request_card(actor, request_id, str(busy), tone="attention")
        if result.changed:
            notifier.changed(result.request, notice=final_notice(result.request))
            self._release_rejected_room(result.request)
            message, tone = "Your decision is recorded.", "good"
        else:
            assert result.already is not None
            message, tone = result.already.message, "attention"
        if data.get("from") == "list":
            return await self._approvals_list(actor, message)
        return await self._request_card(actor, request_id, message, tone=tone, known=result.request)

    async def _request_card(
        self,
        actor: Actor,
        request_id: str,
        message: str | None = None,
        *,
        tone: str = "good",
        known: ServiceRequest | None = None,
    ) -> Card:
        """The request as the actor may see it (their role from the database), with a message;
        `known` is the request as this click just read or stored it."""
        approvals, notifier = self._requests()
        place = actor.place
        request, role = await approvals.viewable(
            actor,
            request_id,
            conversation_id=place.conversation_id if place else None,
            in_channel=place.teams_channel_id if place else None,
            known=known,
        )
        return await notifier.card(
            request,
            role,
            viewer_id=actor.user_id,
            time_zone=actor.time_zone,
            message=message,
            tone=tone,
        )

    async def request_cancel(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        approvals, notifier = self._requests()
        request_id = _uuid(data, "request")
        try:
            request = await approvals.cancel(actor, request_id, _text(data, "comment"))
        except (NotAllowed, InputError) as refused:
            return await self._request_card(actor, request_id, str(refused), tone="attention")
        notifier.changed(request)
        message = "Your request is cancelled. The approvers see that on their cards."
        if request.released_booking_id is not None:
            # Withdrawing a held room's approval cancels the booking (with the request) and,
            # with Microsoft 365, its calendar event: the requester is the one clicking.
            await self._booking.release_rejected(actor, request.released_booking_id)
            message = "Your request is withdrawn and the held room is free again."
        return await notifier.card(
            request,
            Role.REQUESTER,
            viewer_id=actor.user_id,
            time_zone=actor.time_zone,
            message=message,
        )

    async def request_fulfil(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        approvals, notifier = self._requests()
        request_id = _uuid(data, "request")
        step = data.get("step")
        if not isinstance(step, str):
            raise MalformedAction("step must be text")
        place = actor.place
        try:
            result = await approvals.fulfil(
                actor,
                request_id,
                step,
                _text(data, "comment"),
                in_channel=place.teams_channel_id if place else None,
            )
        except InputError as error:
            return await self._request_card(actor, request_id, error.message, tone="attention")
        if result.changed:
            notifier.changed(result.request, notice=fulfilment_notice(result.request, actor.name))
            return await self._request_card(actor, request_id, "Updated. The requester is told.")
        return await self._request_card(actor, request_id, result.message, tone="attention")

    async def request_list(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        approvals, _ = self._requests()
        requests = await approvals.my_requests(actor)
        return my_requests_card(requests, _category_names(approvals), time_zone=actor.time_zone)

    async def approval_list(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        return await self._approvals_list(actor, None)

    async def _approvals_list(self, actor: Actor, message: str | None) -> Card:
        approvals, _ = self._requests()
        waiting = await approvals.waiting_for(actor)
        return approvals_card(
            waiting,
            _category_names(approvals),
            viewer_id=actor.user_id,
            time_zone=actor.time_zone,
            message=message,
        )

    # -- admins ------------------------------------------------------------------------------------
    def _is_admin(self, actor: Actor) -> bool:
        return self._admin_service is not None and self._admin_service.is_admin(actor)

    def _admin(self, actor: Actor) -> AdminService:
        """The admin service, once the actor is known to be an admin (else NotAdmin)."""
        if self._admin_service is None:
            raise NotAdmin()
        self._admin_service.require(actor)
        return self._admin_service

    async def admin_show(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        return await self._admin_overview(self._admin(actor), actor)

    async def _admin_overview(
        self, admin: AdminService, actor: Actor, message: str | None = None, tone: str = "good"
    ) -> Card:
        overview = await admin.overview(actor)
        return admin_card(overview, time_zone=actor.time_zone, message=message, tone=tone)

    async def admin_reassign_form(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        """The reassign form for a request: a Reassign button's id, else the number typed."""
        admin = self._admin(actor)
        if data.get("request") is not None:
            reference = _uuid(data, "request")
        else:
            reference = _text(data, "number") or ""
        try:
            pending = await admin.pending(actor, reference)
        except InputError as error:
            return await self._admin_overview(admin, actor, error.message, "attention")
        except RequestNotFound:
            return await self._admin_overview(
                admin,
                actor,
                f"No request waiting for approval has the number {reference[:40]}.",
                "attention",
            )
        return reassign_card(pending, time_zone=actor.time_zone)

    async def admin_reassign(self, actor: Actor, data: Mapping[str, Any]) -> Card:
        admin = self._admin(actor)
        _, notifier = self._requests()
        request_id, stage_id = _uuid(data, "request"), _slug(data, "stage")
        old = data.get("from")
        if not isinstance(old, str) or not 0 < len(old) <= 128:
            raise MalformedAction("from must be an approver id")
        try:
            result = await admin.reassign(
                actor,
                request_id,
                stage_id=stage_id,
                old_approver=old,
                new_approver=_text(data, "to") or "",
                comment=_text(data, "comment"),
            )
        except InputError as error:
            try:
                pending = await admin.pending(actor, request_id)
            except RequestNotFound:
                return await self._admin_overview(admin, actor, error.message, "attention")
            return reassign_card(
                pending, time_zone=actor.time_zone, error=error.message, values=data
            )
        except NotAdmin:
            raise
        except RequestNotFound:
            return await self._admin_overview(
                admin, actor, "That request was not found. Nothing was changed.", "attention"
            )
        except (NotAllowed, RequestBusy) as refused:
            return await self._admin_overview(admin, actor, str(refused), "attention")
        notifier.changed(result.request)
        return await self._admin_overview(
            admin,
            actor,
            f"Request {result.request.number}: {result.new_name} approves {result.stage_name} "
            f"instead of {result.old_name}, and gets the approval card now.",
        )


_REQUEST_LISTS = (
    action("My requests", Verb.REQUEST_LIST),
    action("Approvals", Verb.APPROVAL_LIST),
)
_NO_ROOM_APPROVER = "Nobody can approve this room yet, so it was not held. Pick another room."


def _held_text(request: ServiceRequest) -> str:
    stage = request.state.current_stage if request.pending else None
    if stage is None:
        return "Held for you and already approved."
    return f"Held for you until {stage.name} approve it; you will hear back here."


def _category_names(approvals: ApprovalService) -> dict[str, str]:
    return approvals.category_names()


def _graph_error_card(error: GraphError, verb: Verb) -> Card:
    if isinstance(error, GraphAuthError):
        text = (
            "Microsoft 365 refused the request: Frontdesk may lack a permission your admin has "
            "to grant. Try again, or ask your admin to check Frontdesk's permissions."
        )
    elif isinstance(error, GraphThrottled | GraphTimeout | GraphUnavailable):
        text = "Microsoft 365 is busy right now. Nothing was changed; try again in a minute."
    else:
        text = "Microsoft 365 could not do that. Nothing was changed; try again."
    if verb.value.startswith(("request.", "approval.")):
        retry = [action("Try again", Verb.REQUEST_START), *_REQUEST_LISTS]
    else:
        retry = [action("Try again", Verb.BOOKING_START)]
    return message_card("Microsoft 365 did not answer", text, actions=retry)


def _error_card(error: FrontdeskError) -> Card:
    """What the user sees of a domain error no handler answered itself (never its text, unless
    the error's text is written for the user)."""
    if isinstance(error, RoomNeedsApproval):
        return message_card(
            "Approval needed",
            f"{error} is booked only with its owners' approval, one date at a time, so it "
            "cannot be part of a repeating booking. Pick another room, or request it for a "
            "single date.",
            actions=[action("Book a room", Verb.BOOKING_START)],
        )
    if isinstance(error, RoomTaken):
        return message_card(
            "Room taken",
            f"{error} was just booked by someone else. Search again for what is still free.",
            actions=[action("Book a room", Verb.BOOKING_START)],
        )
    if isinstance(error, InputError):
        return message_card("Please check", error.message, actions=[action("Help", Verb.HELP)])
    if isinstance(error, PolicyError):
        logger.warning("approval policy cannot be applied: %s", error)
        return message_card(
            "This request cannot be sent",
            f"Its approval step \u201c{error.stage_name}\u201d has nobody to approve it "
            f"({error.reason}). Nothing was sent; please tell your Frontdesk admin.",
            actions=[action("Other services", Verb.REQUEST_START)],
        )
    if isinstance(error, RequestBusy):
        return message_card("Please try again", str(error), actions=_REQUEST_LISTS)
    if isinstance(error, AlreadyDecided):
        return message_card(
            "Already decided",
            "Someone decided this before you. Open the request to see who, and when.",
            actions=_REQUEST_LISTS,
        )
    if isinstance(error, RequestNotFound):
        return message_card("Not found", str(error), actions=_REQUEST_LISTS)
    if isinstance(error, NotFound):
        text = str(error) or "That item was not found."
        return message_card(
            "Not found",
            text,
            actions=[
                action("My bookings", Verb.BOOKING_LIST),
                action("Book a room", Verb.BOOKING_START),
            ],
        )
    if isinstance(error, ConsentRequired):
        return message_card(
            "Permission needed",
            "Frontdesk needs your organization's consent to use Microsoft 365 for you. "
            f"Ask your admin to grant it: [admin consent]({error.admin_consent_url}).",
        )
    if isinstance(error, AssertionExpired):
        return message_card(
            "Please sign in again",
            "Your Microsoft 365 sign-in has expired. Type **sign out**, then try again.",
        )
    if isinstance(error, IdentityError):
        return message_card(
            "Sign-in problem",
            "Frontdesk could not get your Microsoft 365 sign-in. Try again in a minute.",
        )
    if isinstance(error, NotAnApprover):  # its text names users and stages, for the logs
        return message_card("Not allowed", "You cannot decide this request at its current stage.")
    if isinstance(error, NotAllowed):
        return message_card("Not allowed", str(error) or "You cannot do that.")
    logger.warning("unmapped domain error %s", type(error).__name__)
    return message_card(
        "Something went wrong",
        "That did not work. Please try again.",
        actions=[action("Help", Verb.HELP)],
    )
