"""Bot tests over real HTTP: the app from `create_app` behind `/api/messages`, a fake connector.

The app runs in local mode (no app id, loopback only) with the FakeClock and a fresh database;
replies go to a FakeConnector on 127.0.0.1. Every card the bot sends or answers with is checked
against the Adaptive Card schema and our card invariants as it arrives.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from app import COMPONENTS, Seams, create_app
from bot.commands import Verb
from bot.config import DEFAULT_ROOMS_FILE, load_settings
from bot.storage.tables import Booking
from tests.conftest import FakeClock
from tests.support import cardcheck
from tests.support.activities import Activity, make_card_action, make_message
from tests.support.cardquery import action_titled, input_values
from tests.support.fake_connector import FakeConnector
from tests.support.prereq import require, shared_dir

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
ERROR_TYPE = "application/vnd.microsoft.error"
KNOWN_VERBS = frozenset(verb.value for verb in Verb)
# The TIMEZONE setting of the app under test: distinct from UTC and every client zone used.
DEFAULT_ZONE = "Asia/Tokyo"


def card_problems(card: Mapping[str, Any]) -> list[str]:
    """Schema and invariant problems of a card the bot produced."""
    return cardcheck.schema_problems(card) + cardcheck.invariant_problems(card, KNOWN_VERBS)


def card_of(status: int, body: Any) -> dict[str, Any]:
    """The card of an invoke answer that must be HTTP 200 with statusCode 200 and a card."""
    assert status == 200, f"HTTP {status}: {body!r}"
    assert isinstance(body, dict), f"invoke answer is not an object: {body!r}"
    assert body.get("statusCode") == 200, f"statusCode {body.get('statusCode')}: {body!r}"
    assert body.get("type") == CARD_TYPE, body
    card = body["value"]
    assert isinstance(card, dict)
    return card


@dataclass
class Frontdesk:
    """The running app, the connector its replies go to, and helpers to talk to it."""

    client: TestClient[Any, Any]
    connector: FakeConnector
    engine: Engine
    clock: FakeClock

    @property
    def service_url(self) -> str:
        return self.connector.service_url

    # -- raw HTTP ---------------------------------------------------------------------
    async def post(self, activity: Any) -> tuple[int, Any]:
        """POST an activity to /api/messages; the status and the JSON body (None if empty).

        Cards sent to the connector meanwhile and a card in the answer are checked.
        """
        return await self.post_raw(json.dumps(activity).encode(), "application/json")

    async def post_raw(self, body: bytes, content_type: str) -> tuple[int, Any]:
        before = len(self.connector.sent)
        response = await self.client.post(
            "/api/messages", data=body, headers={"Content-Type": content_type}
        )
        payload: Any = None
        if response.content_type == "application/json":
            raw = await response.read()
            payload = json.loads(raw) if raw.strip() else None
        for card in self.connector.cards(before):
            assert card_problems(card) == [], f"sent card has problems: {json.dumps(card)}"
        if isinstance(payload, dict) and payload.get("type") == CARD_TYPE:
            card = payload.get("value")
            assert isinstance(card, dict)
            assert card_problems(card) == [], f"answered card has problems: {json.dumps(card)}"
        return response.status, payload

    # -- conversations ------------------------------------------------------------------
    async def send(self, activity: Activity) -> list[dict[str, Any]]:
        """Deliver a message or event; the cards the bot sent in reply."""
        before = len(self.connector.sent)
        status, body = await self.post(activity)
        assert status in (200, 201), f"HTTP {status}: {body!r}"
        return self.connector.cards(before)

    async def say(self, text: str, **kwargs: Any) -> dict[str, Any]:
        """Send a personal-chat message; the one card the bot answered with."""
        cards = await self.send(make_message(text, service_url=self.service_url, **kwargs))
        assert len(cards) == 1, f"expected one card in reply to {text!r}, got {len(cards)}"
        return cards[0]

    def press_activity(
        self, action: Mapping[str, Any], inputs: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Activity:
        """The invoke Teams sends when the user presses this `Action.Execute`.

        The verb and data come from the card; the inputs are merged into the data.
        """
        assert action.get("type") == "Action.Execute", action
        data = {**(inputs or {}), **action.get("data", {})}
        return make_card_action(
            action.get("verb"),
            data,
            service_url=self.service_url,
            title=str(action.get("title", "")),
            **kwargs,
        )

    async def press(
        self, action: Mapping[str, Any], inputs: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Press a card's button; the card the bot answered with (statusCode 200)."""
        return card_of(*await self.post(self.press_activity(action, inputs, **kwargs)))

    async def invoke(self, verb: Any, data: Any = None, **kwargs: Any) -> tuple[int, Any]:
        """An `adaptiveCard/action` invoke built by hand (for forged and malformed ones)."""
        return await self.post(make_card_action(verb, data, service_url=self.service_url, **kwargs))

    # -- the booking flow ------------------------------------------------------------------
    async def form(self, **kwargs: Any) -> dict[str, Any]:
        """The booking form, asked for with the `book` command."""
        return await self.say("book", **kwargs)

    async def search(self, form: Mapping[str, str], **kwargs: Any) -> dict[str, Any]:
        """Fill the booking form (over its own defaults) and press Find rooms."""
        form_card = await self.form(**kwargs)
        inputs = {**input_values(form_card), **form}
        return await self.press(action_titled(form_card, "Find rooms"), inputs, **kwargs)

    # -- service requests ------------------------------------------------------------------
    async def file_request(
        self, category: str, inputs: Mapping[str, Any], **kwargs: Any
    ) -> dict[str, Any]:
        """Ask for a service (`request`, then `Ask for <category>`), fill its form over its
        defaults and press Send request: the card the bot answered with."""
        categories = await self.say("request", **kwargs)
        form = await self.press(action_titled(categories, f"Ask for {category}"), **kwargs)
        send = action_titled(form, "Send request")
        return await self.press(send, {**input_values(form), **inputs}, **kwargs)

    # -- the database -------------------------------------------------------------------------
    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Rows of a plain SQL query, as dicts."""
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(text(sql), params).mappings()]

    def bookings(self) -> list[Booking]:
        """Every booking row, oldest first, with times as UTC datetimes."""
        with Session(self.engine) as session:
            return list(session.exec(select(Booking).order_by(col(Booking.created_at))))


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The app's database: a fresh SQLite file (each kind in a class based on OnEachDatabase)."""
    return f"sqlite:///{tmp_path / 'frontdesk.db'}"


class OnEachDatabase:
    """A base for test classes whose app runs on each database kind (SQLite and PostgreSQL)."""

    @pytest.fixture
    def db_url(self, database_url: str) -> str:
        return database_url


@pytest.fixture
def app_env() -> dict[str, str]:
    """Extra settings for the app under test, by their environment names."""
    return {}


@pytest.fixture
async def connector() -> AsyncIterator[FakeConnector]:
    async with FakeConnector() as fake:
        yield fake


@asynccontextmanager
async def running_frontdesk(
    db_url: str,
    clock: FakeClock,
    connector: FakeConnector,
    app_env: Mapping[str, str] | None = None,
    **app_options: Any,
) -> AsyncIterator[Frontdesk]:
    """The app in local mode on 127.0.0.1, started (migrations run), replies to the connector.

    `app_env` adds or overrides settings by their environment names; `app_options` are further
    `Seams` of `create_app` (a controlled sleep, a retry policy...).
    """
    require(
        cardcheck.schema_path() is not None,
        f"Adaptive Card schema missing under {shared_dir()}/schemas",
    )
    env = {
        "DATABASE_URL": db_url,
        "TIMEZONE": DEFAULT_ZONE,
        "HOST": "127.0.0.1",
        "MICROSOFT_APP_ID": "",
        "DIRECTORY": "local",
        "ROOMS_FILE": str(DEFAULT_ROOMS_FILE),
        "MAX_BOOKING_MINUTES": "480",
        "MAX_DAYS_AHEAD": "90",
        "ALLOWED_TENANTS": "",
        **(app_env or {}),
    }
    settings = load_settings(**env)
    assert settings.local_mode
    app = await create_app(settings, Seams(clock=clock, **app_options))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Frontdesk(
            client=client, connector=connector, engine=app[COMPONENTS].engine, clock=clock
        )
    assert connector.unexpected == [], (
        f"requests to unknown connector routes: {connector.unexpected}"
    )


@pytest.fixture
async def frontdesk(
    db_url: str, clock: FakeClock, connector: FakeConnector, app_env: dict[str, str]
) -> AsyncIterator[Frontdesk]:
    """The app in local mode (`running_frontdesk`) with the test's database and settings."""
    async with running_frontdesk(db_url, clock, connector, app_env) as running:
        yield running
