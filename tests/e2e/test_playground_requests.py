"""A service request end to end in Microsoft 365 Agents Playground with several users.

The requester is the Playground's current user; approvers and the fulfilment team are its other
users, reached in personal chats the bot opens itself (connector `POST /v3/conversations`), and
they click through the Playground's invoke API as themselves. Two stages, the second "all must
approve", one item rejected, then Start and Done; the audit trail comes out of
`python app.py audit-export`. Verbs, data and input ids come from the cards the Playground got.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.app_process import BotProcess, frontdesk_process, run_app
from tests.support.cardquery import input_values
from tests.support.playground import (
    Message,
    Playground,
    card_text,
    find_action,
    find_actions,
    press,
    require_playground,
    write_config_file,
)
from tests.support.service_catalogue import catalogue, catalogue_settings, catering

pytestmark = pytest.mark.e2e

REQUESTER = {
    "id": "user-ada",
    "name": "Ada Lovelace",
    "aadObjectId": "0a000000-0000-4000-8000-000000000001",
}
# Approvers and the fulfilment team: their Teams ids are their Entra object ids here, so the
# bot can open a personal chat with them from the id in the policies file.
LEAD = "0a000000-0000-4000-8000-000000000002"
FINANCE = ("0a000000-0000-4000-8000-000000000003", "0a000000-0000-4000-8000-000000000004")
KITCHEN = "0a000000-0000-4000-8000-000000000005"
OTHERS = [
    {"id": LEAD, "name": "Grace Hopper", "aadObjectId": LEAD},
    {"id": FINANCE[0], "name": "Katherine Johnson", "aadObjectId": FINANCE[0]},
    {"id": FINANCE[1], "name": "Dorothy Vaughan", "aadObjectId": FINANCE[1]},
    {"id": KITCHEN, "name": "Mary Jackson", "aadObjectId": KITCHEN},
    {
        "id": "user-other",
        "name": "Alan Turing",
        "aadObjectId": "0a000000-0000-4000-8000-000000000006",
    },
]

CATALOGUE = catalogue(catering(policy="two-stage", fulfilment=f"{{users: [{KITCHEN}]}}"))
POLICIES = f"""
groups:
  finance: [{FINANCE[0]}, {FINANCE[1]}]
policies:
  - id: two-stage
    name: Two stages
    fallback_channel: "19:approvals@thread.tacv2"
    stages:
      - {{id: lead, name: Team lead, approvers: [{LEAD}]}}
      - {{id: finance, name: Finance, approvers: [{{group: finance}}], mode: all}}
"""


@pytest.fixture
async def frontdesk(tmp_path: Path) -> AsyncIterator[BotProcess]:
    require_playground()
    settings = catalogue_settings(tmp_path, CATALOGUE, POLICIES)
    async with frontdesk_process(tmp_path, settings) as bot:
        yield bot


def decide(card: dict[str, Any], title: str, item: str | None = None) -> dict[str, Any]:
    for action in find_actions(card):
        data = action.get("data") or {}
        if action.get("title") == title and (item is None or data.get("item") == item):
            return action
    raise AssertionError(f"no {title!r} for {item!r}: {card_text(card)}")


async def card_for(pg: Playground, wanted: str, after: int, seen: set[str]) -> Message:
    """A new card the bot posted in a personal chat it opened (one per person: `seen` holds
    the chats already used), with `wanted` in its text."""

    def wanted_card(m: Message) -> bool:
        return (
            m.kind == "create"
            and bool(m.cards)
            and m.conversation_id != pg.config.personal_chat_id
            and m.conversation_id not in seen
            and wanted in card_text(m.card)
        )

    message = await pg.wait_for_sent(wanted_card, timeout=15, after=after)
    seen.add(message.conversation_id)
    return message


async def test_a_request_is_filed_approved_in_two_stages_and_fulfilled(
    frontdesk: BotProcess, tmp_path: Path
) -> None:
    config = write_config_file(tmp_path / "playground.yml", current_user=REQUESTER, users=OTHERS)
    async with Playground(
        frontdesk.endpoint, config_file=config, log_dir=tmp_path / "playground"
    ) as pg:
        await pg.send_install()
        await pg.wait_for_card()
        await pg.send_message("request")
        categories = await pg.wait_for_card()
        form = await press(pg, categories, find_action(categories.card, "Ask for catering"))
        assert pg.latest_card() == form  # the UI shows the answer in the card's place
        inputs = {
            **input_values(form.card),
            "field.people": "10",
            "field.lunch": "sandwiches",
            "field.pastries": "2",
        }
        mark = len(pg.sent)
        filed = await press(pg, form, find_action(form.card, "Send request"), inputs)
        assert "Sent. It now waits for Team lead" in card_text(filed.card)

        # The team lead gets the card in a chat the bot opened, and decides per item.
        seen: set[str] = set()
        lead_msg = await card_for(pg, "Team lead", mark, seen)
        rejected = await press(
            pg,
            lead_msg,
            decide(lead_msg.card, "Reject", "pastries"),
            {"comment": "No pastries"},
            user_id=LEAD,
        )
        assert "Your decision is recorded." in card_text(rejected.card)
        mark = len(pg.sent)
        await press(pg, lead_msg, decide(rejected.card, "Approve"), user_id=LEAD)

        # Finance: both must approve.
        for approver in FINANCE:
            message = await card_for(pg, "all must approve", mark, seen)
            assert "Pastry platters: 2 × 24.00 = EUR 48.00 — **rejected**" in card_text(
                message.card
            )
            answer = await press(pg, message, decide(message.card, "Approve"), user_id=approver)
            assert "Your decision is recorded." in card_text(answer.card)

        # The kitchen starts and finishes; the requester is told at each step.
        kitchen = await card_for(pg, "waiting for the fulfilment team", mark, seen)
        started = await press(pg, kitchen, find_action(kitchen.card, "Start"), user_id=KITCHEN)
        assert "in progress" in card_text(started.card)
        await press(pg, kitchen, find_action(started.card, "Done"), user_id=KITCHEN)

        def done_notice(m: Message) -> bool:
            return (
                m.conversation_id == pg.config.personal_chat_id
                and bool(m.cards)
                and "Request done" in card_text(m.card)
            )

        # Her own card (updated in place) and a notice message both show the outcome.
        await pg.wait_for(done_notice, timeout=10, after=0)
        original = [m for m in pg.messages if m.id == filed.id][-1]
        assert "Partly approved, done" in card_text(original.card)
        assert "Grace Hopper rejected Pastry platters: “No pastries”" in card_text(original.card)
        # The lead's copy shows it too, with no buttons left.
        lead_copy = [m for m in pg.sent if m.id == lead_msg.id][-1]
        assert "Partly approved, done" in card_text(lead_copy.card)

    export = await asyncio.to_thread(run_app, tmp_path, "audit-export")  # the bot's database
    assert export.returncode == 0, export.stderr
    rows = list(csv.DictReader(io.StringIO(export.stdout)))
    actions = [row["action"] for row in rows if row["actor_name"] != "Frontdesk"]
    assert actions == [
        "submitted",
        "rejected",
        "approved",
        "approved",
        "approved",
        "started",
        "done",
    ]
