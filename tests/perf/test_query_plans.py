"""Query plans of the hot reads, as `make bench-data` measures them on a million rows.

The plans are taken from the SQL the product's repositories send (captured and explained by
bench/bigdb.py), so a change to a query or an index that picks a worse plan fails here first.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bench.bigdb import captured_sql, explain
from bot.storage.db import create_db_engine, upgrade
from bot.storage.repository import BookingRepository

NOW = datetime(2026, 11, 23, 8, 5, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite at the latest migration, so with the product's own indexes."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'frontdesk.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


async def test_my_bookings_on_sqlite_looks_up_the_users_bookings_by_their_index(
    engine: Engine,
) -> None:
    with captured_sql(engine) as sent:
        await BookingRepository(engine).upcoming(
            tenant_id="tenant-1", user_id="user-a", now=NOW, limit=20
        )
    statement, parameters = next(
        (sql, parameters) for sql, parameters in sent if sql.lstrip().upper().startswith("SELECT")
    )

    plan = explain(engine, statement, parameters)

    # Not ix_booking_tenant_start, which spares the sort by reading every booking of the tenant.
    assert any("ix_booking_user_upcoming" in step for step in plan), plan
    assert not any("ix_booking_tenant_start" in step for step in plan), plan
