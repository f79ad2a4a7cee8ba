"""Shared fixtures: a fresh database per test (SQLite and PostgreSQL), a clock, actors."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, text

from bot.booking import BookingPolicy, BookingService
from bot.config import DEFAULT_ROOMS_FILE
from bot.directory.local import LocalDirectory, load_rooms_file
from bot.models import Actor
from bot.storage.db import create_db_engine, normalize_url, upgrade
from bot.storage.repository import BookingRepository
from tests.support.prereq import require

# The server that tests create their own databases on (never assumed empty, never reused).
POSTGRES_ADMIN_URL = os.environ.get(
    "FRONTDESK_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test"
)


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 23, 8, 5, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def _postgres_admin() -> Engine | None:
    engine = create_engine(normalize_url(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        engine.dispose()
        return None
    return engine


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine | None]:
    engine = _postgres_admin()
    yield engine
    if engine is not None:
        engine.dispose()


def make_postgres_database(admin: Engine) -> tuple[str, str]:
    """Create an empty database; return its name and URL."""
    name = f"frontdesk_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    return name, url


def drop_postgres_database(admin: Engine, name: str) -> None:
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def empty_postgres_database(admin: Engine | None) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards (the server required)."""
    require(
        admin is not None,
        f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} (set FRONTDESK_TEST_POSTGRES_URL)",
    )
    assert admin is not None
    name, url = make_postgres_database(admin)
    try:
        yield url
    finally:
        drop_postgres_database(admin, name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_admin: Engine | None
) -> Iterator[str]:
    """An empty database of each kind; PostgreSQL ones are created and dropped per test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'frontdesk.db'}"
        return
    with empty_postgres_database(postgres_admin) as url:
        yield url


@contextmanager
def migrated_engine(database_url: str, **options: Any) -> Iterator[Engine]:
    """An engine on the database (`options` for `create_db_engine`), migrated; disposed after."""
    engine = create_db_engine(database_url, **options)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated engine on each database kind."""
    with migrated_engine(database_url) as engine:
        yield engine


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bookings(engine: Engine) -> BookingRepository:
    return BookingRepository(engine)


@pytest.fixture
def demo_rooms_file() -> Path:
    return DEFAULT_ROOMS_FILE


@pytest.fixture
def booking_service(
    bookings: BookingRepository, clock: FakeClock, demo_rooms_file: Path
) -> BookingService:
    return BookingService(
        directory=LocalDirectory(load_rooms_file(demo_rooms_file), bookings),
        bookings=bookings,
        policy=BookingPolicy(max_minutes=480, max_days_ahead=90),
        clock=clock,
    )


LONDON = ZoneInfo("Europe/London")


def make_actor(
    user: str = "user-a", *, tenant: str = "tenant-1", zone: ZoneInfo = LONDON, name: str = ""
) -> Actor:
    """An actor as the handler would build it from a verified activity."""
    return Actor(tenant_id=tenant, user_id=user, name=name or user.title(), time_zone=zone)
