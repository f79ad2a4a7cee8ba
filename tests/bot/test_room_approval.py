"""Rooms that need approval (the rooms file's `needs_approval`), over HTTP with the real adapter:
the booking holds the slot while the room's owners decide through a request card, and their
answer confirms or releases it. Local mode with the demo rooms file: Atrium (40 people) needs
the approval of its owner, user ...0101."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app import COMPONENTS
from bot.config import DEFAULT_ROOMS_FILE
from bot.storage.tables import BookingApproval, BookingStatus
from tests.bot.conftest import Frontdesk
from tests.support.activities import ALEX, MEGAN, TeamsUser, make_message, personal_chat
from tests.support.cardquery import action_titled, execute_actions, text_of

OWNER = TeamsUser(
    id="29:1AtriumOwner00000000000000000000000000000000000",
    aad_object_id="00000000-0000-0000-0000-000000000101",
    name="Irvin Sayers",
)
BIG_MEETING = {"attendees": "30", "start": "10:00"}


def request_button(card: dict[str, Any], room: str) -> dict[str, Any]:
    return action_titled(card, f"Request {room}")


async def settle(fd: Frontdesk) -> None:
    await fd.client.server.app[COMPONENTS].tasks.drain(timeout=60)


async def hold_atrium(fd: Frontdesk) -> tuple[dict[str, Any], dict[str, Any]]:
    """Owner and Megan know the bot; Megan asks for the Atrium. The card she gets, and the
    button she pressed, once the owners' request card has been sent."""
    for user in (OWNER, MEGAN, ALEX):
        await fd.send(make_message("help", service_url=fd.service_url, user=user))
    results = await fd.search(BIG_MEETING)
    assert "Needs its owners' approval" in text_of(results)
    button = request_button(results, "Atrium")
    held = await fd.press(button)
    # The owners' request card goes out after the answer: let it land before anyone else talks.
    await settle(fd)
    return held, button


def owner_cards(fd: Frontdesk) -> list[dict[str, Any]]:
    return [
        card
        for request in fd.connector.sent
        if request.conversation_id == personal_chat(OWNER).id and not request.is_update
        for card in request.cards()
        if "Room booking" in text_of(card)
    ]


def told_megan(fd: Frontdesk, title: str) -> bool:
    return any(
        title in text_of(card)
        for request in fd.connector.sent
        if request.conversation_id == personal_chat(MEGAN).id
        for card in request.cards()
    )


async def test_a_held_room_is_confirmed_when_its_owner_approves(frontdesk: Frontdesk) -> None:
    fd = frontdesk
    held, button = await hold_atrium(fd)

    assert "Room held for approval" in text_of(held)
    assert "Held for you until Room owners approve it" in text_of(held)
    [booking] = fd.bookings()
    assert (booking.room_name, booking.status, booking.approval) == (
        "Atrium",
        BookingStatus.CONFIRMED,
        BookingApproval.PENDING,
    )
    [request] = fd.rows("SELECT id, category_id, booking_id, status FROM service_request")
    assert (request["category_id"], request["booking_id"], request["status"]) == (
        "room-booking",
        booking.id,
        "pending",
    )
    # The slot is held: Alex searching the same slot is not offered the Atrium.
    others = await fd.search(BIG_MEETING, user=ALEX)
    assert "Request Atrium" not in {a["title"] for a in execute_actions(others)}
    # The same click again (a redelivery) holds and files nothing new.
    again = await fd.press(button)
    assert "Room held for approval" in text_of(again)
    assert len(fd.rows("SELECT id FROM service_request")) == 1
    assert len(fd.bookings()) == 1

    await settle(fd)
    [card] = owner_cards(fd)
    assert "Atrium" in text_of(card)
    # The lists name the built-in kind as its card does.
    waiting = await fd.say("approvals", user=OWNER)
    assert "Room booking" in text_of(waiting)
    assert "room-booking" not in text_of(waiting)
    mine = await fd.say("my requests", user=MEGAN)
    assert "Room booking" in text_of(mine)
    approved = await fd.press(action_titled(card, "Approve"), user=OWNER)
    assert "Approve" not in {a["title"] for a in execute_actions(approved)}
    await settle(fd)

    [booking] = [b for b in fd.bookings() if b.id == booking.id]
    assert (booking.status, booking.approval) == (BookingStatus.CONFIRMED, BookingApproval.APPROVED)
    assert told_megan(fd, "Room approved")
    listing = await fd.say("my bookings")
    assert "Atrium" in text_of(listing)
    assert "waiting for the room owners' approval" not in text_of(listing)
    [row] = fd.rows("SELECT fulfilment FROM service_request")
    assert row["fulfilment"] == ""  # nothing for a fulfilment team


async def test_a_rejected_room_is_released_with_the_owners_comment(frontdesk: Frontdesk) -> None:
    fd = frontdesk
    await hold_atrium(fd)
    await settle(fd)
    [card] = owner_cards(fd)

    await fd.press(
        action_titled(card, "Reject"), {"comment": "Board meeting that day."}, user=OWNER
    )
    await settle(fd)

    [booking] = fd.bookings()
    assert (booking.status, booking.approval) == (BookingStatus.CANCELLED, BookingApproval.REJECTED)
    assert booking.cancel_comment is not None
    assert "Board meeting that day." in booking.cancel_comment
    assert told_megan(fd, "Room not approved")
    # The slot is free again.
    free_again = await fd.search(BIG_MEETING, user=ALEX)
    assert "Request Atrium" in {a["title"] for a in execute_actions(free_again)}
    assert "Atrium" not in text_of(await fd.say("my bookings"))


async def test_cancelling_a_held_room_withdraws_its_approval_request(
    frontdesk: Frontdesk,
) -> None:
    fd = frontdesk
    held, _ = await hold_atrium(fd)
    asking = await fd.press(action_titled(held, "Cancel booking"))
    await fd.press(action_titled(asking, "Yes, cancel it"))
    await settle(fd)

    [request] = fd.rows("SELECT status FROM service_request")
    assert request["status"] == "cancelled"
    [card] = owner_cards(fd)
    # The owner's late click changes nothing and says why.
    late = await fd.press(action_titled(card, "Approve"), user=OWNER)
    assert "cancelled" in text_of(late).lower()
    [booking] = fd.bookings()
    assert booking.status == BookingStatus.CANCELLED


class TestARoomNobodyCanApprove:
    @pytest.fixture
    def app_env(self, tmp_path: Path) -> dict[str, str]:
        rooms = tmp_path / "rooms.yaml"
        text = DEFAULT_ROOMS_FILE.read_text(encoding="utf-8")
        rooms.write_text(
            text.replace(
                'needs_approval: true, owners: ["00000000-0000-0000-0000-000000000101"]',
                "needs_approval: true",
            ),
            encoding="utf-8",
        )
        return {"ROOMS_FILE": str(rooms)}

    async def test_is_not_held_and_the_user_is_told(self, frontdesk: Frontdesk) -> None:
        results = await frontdesk.search(BIG_MEETING)
        card = await frontdesk.press(request_button(results, "Atrium"))

        assert "Booking cancelled" in text_of(card)
        assert "Nobody can approve this room yet" in text_of(card)
        [booking] = frontdesk.bookings()
        assert booking.status == BookingStatus.CANCELLED
        assert frontdesk.rows("SELECT id FROM service_request") == []
