"""Posts to one channel take turns: a burst of approvals to one fulfilment channel waits as a
queue of ids and renders each card when its post's turn comes, instead of a task per approval
holding its request and rendered card until Teams' pace for that thread lets it out (about two
a second)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from app import COMPONENTS
from bot.approvals.service import Role
from tests.bot.conftest import Frontdesk
from tests.bot.test_requests import Desk, decide_action
from tests.support.activities import ALEX, personal_chat
from tests.support.service_catalogue import catalogue, catalogue_settings, catering

CHANNEL = "19:fulfil0000000000000000000000000@thread.tacv2"
POLICIES = f"""
policies:
  - id: lead
    name: Team lead
    fallback_channel: "{CHANNEL}"
    stages:
      - id: lead
        name: Team lead
        approvers: [{ALEX.aad_object_id}]
"""


@pytest.fixture
def app_env(tmp_path: Path) -> dict[str, str]:
    category = catering(policy="lead", fulfilment=f'{{channel: "{CHANNEL}"}}')
    return catalogue_settings(tmp_path, catalogue(category), POLICIES)


@pytest.fixture
def desk(frontdesk: Frontdesk) -> Desk:
    return Desk(frontdesk)


async def test_approvals_to_one_channel_render_each_card_when_its_post_goes(desk: Desk) -> None:
    await desk.hello(ALEX)
    for _ in range(4):
        await desk.file({"field.people": "2", "field.lunch": "salads"})
        await desk.settle()
    cards = desk.sent_to(personal_chat(ALEX).id)
    assert len(cards) == 4

    notifier = desk.app[COMPONENTS].bot.actions._notifier
    messenger = notifier._messenger
    gate, first_post = asyncio.Event(), asyncio.Event()
    rendered: list[str] = []
    posting: list[str] = []
    render, post = notifier.card, messenger.post_to_channel

    async def counted_card(request: Any, role: Role, **kwargs: Any) -> Any:
        if role is Role.FULFILMENT:
            rendered.append(request.id)
        return await render(request, role, **kwargs)

    async def held_post(**kwargs: Any) -> Any:
        posting.append(kwargs["channel_id"])
        first_post.set()
        await gate.wait()
        return await post(**kwargs)

    notifier.card = counted_card
    messenger.post_to_channel = held_post

    for card in cards:
        await desk.press(decide_action(card, "Approve"), user=ALEX)
    async with asyncio.timeout(10):
        await first_post.wait()
    # The rest of each approval's work (the requester told, copies updated, at Teams' pace for
    # Megan's chat) finishes; the three other posts wait as entries of the channel's queue, not
    # as tasks each holding its request.
    tasks = desk.app[COMPONENTS].tasks
    for _ in range(200):
        if tasks.running == 1:
            break
        await asyncio.sleep(0.05)
    assert tasks.running == 1
    assert posting == [CHANNEL]
    assert len(rendered) == 1, "cards rendered for posts still waiting for their turn"

    gate.set()
    await desk.settle()
    assert posting == [CHANNEL] * 4
    assert len(set(rendered)) == 4
    threads = [
        body
        for body in desk.fd.connector.created
        if body["channelData"]["channel"]["id"] == CHANNEL
    ]
    assert len(threads) == 4
