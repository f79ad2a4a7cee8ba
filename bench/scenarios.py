"""The scenarios that are not a plain load window: room search against a slow Microsoft Graph,
and a burst of proactive approval cards through the product's messenger."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from bench.harness import ConnectorControl, frontdesk
from tests.support.activities import MEGAN, TENANT_ID, make_card_action
from tests.support.cardquery import execute_actions, input_values, text_of
from tests.support.fake_connector import FakeConnector
from tests.support.fake_graph import FakeGraph, FakeTenant, GraphRequest
from tests.support.fake_token_service import FakeTokenService

GRAPH_LATENCY = 0.150
RETRY_AFTER = 0.2
SENDERS = 8
"""Requests notifying their approvers at once in the proactive burst."""
TEAMS_TENANT_LIMIT = 30
"""Requests a second Teams allows an app per tenant (../shared/PLATFORM.md)."""
"""Seconds the connector's 429s ask to wait (short, so the burst fits in `make bench`)."""
CONNECTION = "graph"
TOKEN_EXCHANGE_URI = "api://frontdesk.contoso.example/botid-00000000-0000-0000-0000-000000000001"


def sequential_round_trips(requests: list[GraphRequest], latency: float) -> int:
    """How many Graph round trips one after another: requests that started within one latency
    of the first request of a wave were in flight together; a later one had to wait for an
    answer, so it starts the next wave."""
    waves = 0
    wave_start: float | None = None
    for request in sorted(requests, key=lambda r: r.timestamp):
        if wave_start is None or request.timestamp - wave_start >= latency * 0.8:
            waves += 1
            wave_start = request.timestamp
    return waves


async def room_search(workdir: Path, *, searches: int) -> dict[str, Any]:
    """`searches` Find-rooms clicks (100 rooms) in graph mode, one at a time; for each, the time
    the bot took and the Graph round trips it made one after another."""
    tenant = FakeTenant.demo()
    async with (
        FakeGraph(tenant) as graph,
        FakeTokenService() as tokens,
        FakeConnector() as connector,
    ):
        tokens.add_connection(CONNECTION, token_exchange_uri=TOKEN_EXCHANGE_URI)
        tokens.sign_in(MEGAN.id, CONNECTION, "token-megan")
        graph.latency = GRAPH_LATENCY
        graph.mailbox_concurrency_limit = 4  # Outlook: 4 concurrent requests per mailbox
        settings = {
            "DATABASE_URL": f"sqlite:///{workdir / 'graph.db'}",
            "DIRECTORY": "graph",
            "GRAPH_BASE_URL": graph.base_url,
            "BOT_OAUTH_URL": tokens.base_url,
            "OAUTH_CONNECTION_NAME": CONNECTION,
        }
        async with (
            frontdesk("graph", workdir, settings) as bot,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
        ):

            async def click(verb: str, data: dict[str, Any]) -> tuple[dict[str, Any], float]:
                activity = make_card_action(verb, data, service_url=connector.service_url)
                began = time.perf_counter()
                async with session.post(bot.endpoint, json=activity) as response:
                    body = await response.json()
                took = time.perf_counter() - began
                if response.status != 200 or body.get("statusCode") != 200:
                    raise RuntimeError(f"{verb} answered {response.status}: {body}")
                card: dict[str, Any] = body["value"]
                return card, took

            zone = ZoneInfo("America/New_York")
            tomorrow = (datetime.now(zone) + timedelta(days=1)).date()
            runs: list[dict[str, Any]] = []
            for index in range(searches):
                form, _ = await click("booking.start", {})
                [find] = execute_actions(form, "booking.search")
                inputs = {
                    **input_values(form),
                    "date": (tomorrow + timedelta(days=index % 5)).isoformat(),
                    "start": "10:00",
                    "duration": "30",
                    "attendees": "4",
                }
                before = len(graph.requests)
                card, took = await click("booking.search", {**(find.get("data") or {}), **inputs})
                made = graph.requests[before:]
                offers = execute_actions(card, "booking.book")
                runs.append(
                    {
                        "search": index + 1,
                        "ms_in_bot": round(took * 1000, 1),
                        "graph_requests": len(made),
                        "sequential_round_trips": sequential_round_trips(made, GRAPH_LATENCY),
                        "routes": sorted({f"{r.method} {r.path}" for r in made}),
                        "rooms_offered": len(offers),
                        "card_says": text_of(card)[:120],
                    }
                )
            mailbox_peak = max(graph.max_concurrency_by_mailbox.values(), default=0)
            throttled = sum(1 for r in graph.requests if r.status == 429)
    warm = runs[1:] or runs
    warm_ms = sorted(run["ms_in_bot"] for run in warm)
    result = {
        "rooms": len(tenant.rooms),
        "graph_latency_ms": GRAPH_LATENCY * 1000,
        "searches": runs,
        "first_search_round_trips": runs[0]["sequential_round_trips"],
        "warm_round_trips_max": max(run["sequential_round_trips"] for run in warm),
        "warm_ms_p50": warm_ms[len(warm_ms) // 2],
        "warm_ms_max": warm_ms[-1],
        "max_concurrent_per_mailbox": mailbox_peak,
        "graph_429s": throttled,
    }
    result["summary"] = (
        f"{len(tenant.rooms)} rooms: first search {runs[0]['ms_in_bot']} ms "
        f"({runs[0]['sequential_round_trips']} round trips), then p50 {result['warm_ms_p50']} ms "
        f"with at most {result['warm_round_trips_max']} round trips; peak "
        f"{mailbox_peak} requests in flight per mailbox, {throttled} answered 429"
    )
    return result


async def proactive_burst(
    connector: ConnectorControl, *, recipients: int, throttle_share: float = 0.05
) -> dict[str, Any]:
    """An approval card to each of `recipients` personal chats through the product's messenger
    (TeamsMessenger on the product's adapter, with its pace: Teams' limits), sent the way
    RequestNotifier sends a stage's cards (one after another) by SENDERS requests notifying at
    once, with the connector answering a share of sends 429."""
    from bot.config import load_settings
    from bot.teams_adapter import TeamsMessenger, build_adapter

    settings = load_settings(MICROSOFT_APP_ID="", HOST="127.0.0.1", DATABASE_URL="sqlite://")
    async with aiohttp.ClientSession() as http:  # the app's shared session, as app.py gives it
        adapter = build_adapter(settings, http=http)
        messenger = TeamsMessenger(adapter, settings.microsoft_app_id)
        return await _send_burst(messenger, connector, recipients, throttle_share)


async def _send_burst(
    messenger: Any, connector: ConnectorControl, recipients: int, throttle_share: float
) -> dict[str, Any]:
    from bot.notifications import DeliveryError
    from cards.common import message_card

    card = message_card(
        "Approval needed",
        "Catering for 12 on Tuesday at 12:30 (EUR 182.40) waits for your decision.",
    )
    await connector.reset()
    await connector.configure(delay=0.005, throttle_share=throttle_share, retry_after=RETRY_AFTER)
    refused: dict[int | None, int] = {}
    began = time.perf_counter()

    async def sender(indexes: range) -> None:
        for index in indexes:
            await send_one(index)

    async def send_one(index: int) -> None:
        reference = {
            "activityId": None,
            "bot": {"id": "28:bench-bot", "name": "Frontdesk"},
            "channelId": "msteams",
            "conversation": {
                "id": f"a:bench-approver-{index}",
                "conversationType": "personal",
                "tenantId": TENANT_ID,
            },
            "serviceUrl": connector.service_url,
            "user": {"id": f"29:approver-{index}", "aadObjectId": str(uuid.uuid4())},
        }
        try:
            await messenger.send(reference, card, tenant_id=TENANT_ID)
        except DeliveryError as error:
            refused[error.status] = refused.get(error.status, 0) + 1

    await asyncio.gather(*(sender(range(i, recipients, SENDERS)) for i in range(SENDERS)))
    took = time.perf_counter() - began
    stats = await connector.stats()
    await connector.configure(delay=0.0, throttle_share=0.0)
    delivered: dict[str, int] = stats["delivered"]
    reached = sum(1 for index in range(recipients) if delivered.get(f"a:bench-approver-{index}"))
    doubled = sum(1 for count in delivered.values() if count > 1)
    lost = recipients - reached
    result = {
        "recipients": recipients,
        "connector_429_share": throttle_share,
        "connector_delay_ms": 5,
        "retry_after_seconds": RETRY_AFTER,
        "seconds": round(took, 2),
        "cards_per_second": round(recipients / took, 1) if took else None,
        "delivered": reached,
        "lost": lost,
        "doubled": doubled,
        "answered_429": stats["throttled"],
        "errors_raised": {str(k): v for k, v in refused.items()},
        "new_connections": stats["connections"],
        "senders": SENDERS,
        "peak_requests_per_second": stats["peak_per_second"],
        "tenant_limit_per_second": TEAMS_TENANT_LIMIT,
        "retries_seen_by_connector": sum(stats["counts"].values()) - recipients,
    }
    result["summary"] = (
        f"{recipients} cards in {result['seconds']} s ({result['cards_per_second']}/s): "
        f"{reached} delivered, {lost} lost, {doubled} doubled; the connector answered "
        f"{stats['throttled']} with 429 and saw {result['retries_seen_by_connector']} retries; "
        f"at most {stats['peak_per_second']} requests in any second (Teams allows about "
        f"{TEAMS_TENANT_LIMIT} per tenant)"
    )
    return result
