"""Alembic migrations on SQLite and PostgreSQL: fresh, upgraded, repeated, compared, reverted."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier as BarrierType
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, event, inspect, text
from sqlmodel import SQLModel

import bot.storage.tables  # noqa: F401  (puts the tables on SQLModel.metadata)
from bot.storage.db import (
    MIGRATIONS_DIR,
    create_db_engine,
    current_revision,
    head_revision,
    is_postgres,
    migrations_current,
    upgrade,
)
from bot.storage.repository import BookingRepository
from tests.storage.conftest import make_booking

APP_TABLES = {
    "booking",
    "booking_draft",
    "conversation_ref",
    "user_profile",
    "user_token_cache",
    "service_request",
    "request_approver",
    "audit_event",
    "request_card",
    "seen_activity",
    "booking_job",
}
# The plain indexes the migrations create, by table: name -> columns.
MIGRATION_INDEXES = {
    "booking": {
        "ix_booking_user_upcoming": ["tenant_id", "user_id", "status", "end_at"],
        "ix_booking_room_time": ["room_id", "start_at", "end_at"],
        "ix_booking_series_id": ["series_id"],
        "ix_booking_tenant_start": ["tenant_id", "start_at", "status"],
    },
    "booking_draft": {"ix_booking_draft_created": ["created_at"]},
    "conversation_ref": {"ix_conversation_ref_user": ["tenant_id", "user_id"]},
    "user_profile": {},
    "service_request": {
        "ix_service_request_requester": ["tenant_id", "requester_id", "status"],
        "ix_service_request_tenant_status": ["tenant_id", "status", "created_at"],
        "ix_service_request_tenant_fulfilment": ["tenant_id", "fulfilment", "updated_at"],
    },
    "request_approver": {"ix_request_approver_approver": ["approver_id"]},
    "audit_event": {"ix_audit_event_request": ["request_id", "at"]},
    "request_card": {
        "ix_request_card_purpose": ["request_id", "purpose"],
        "ix_request_card_conversation": ["conversation_id"],
    },
    "seen_activity": {"ix_seen_activity_seen_at": ["seen_at"]},
    "booking_job": {
        "ix_booking_job_key": ["key"],
        "ix_booking_job_claimed_until": ["claimed_until"],
    },
}
EXCLUSION_CONSTRAINT = "booking_room_no_overlap"


@pytest.fixture
def fresh_engine(database_url: str) -> Iterator[Engine]:
    """An engine on an empty database that nothing has migrated."""
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


def downgrade_to_base(engine: Engine) -> None:
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        command.downgrade(config, "base")


def plain_indexes(engine: Engine, table: str) -> dict[str, list[str | None]]:
    """Indexes by name, leaving out the ones PostgreSQL keeps behind constraints."""
    return {
        str(index["name"]): list(index["column_names"])
        for index in inspect(engine).get_indexes(table)
        if "duplicates_constraint" not in index
    }


def schema_snapshot(engine: Engine) -> dict[str, Any]:
    inspector = inspect(engine)
    return {
        table: {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ],
            "indexes": plain_indexes(engine, table),
            "unique": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
            ),
            "checks": sorted(str(c["name"]) for c in inspector.get_check_constraints(table)),
        }
        for table in sorted(inspector.get_table_names())
    }


def exclusion_constraints(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT conname FROM pg_constraint "
                    "WHERE contype = 'x' AND conrelid = 'booking'::regclass"
                )
            ).scalars()
        )


def test_a_fresh_database_is_not_current(fresh_engine: Engine) -> None:
    assert current_revision(fresh_engine) is None
    assert migrations_current(fresh_engine) is False


def test_upgrade_brings_a_fresh_database_to_head(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)

    assert current_revision(fresh_engine) == head_revision()
    assert migrations_current(fresh_engine) is True


async def test_a_second_upgrade_changes_nothing(
    fresh_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alembic")
    upgrade(fresh_engine)
    assert any("Running upgrade" in r.getMessage() for r in caplog.records)
    booking, _ = await BookingRepository(fresh_engine).create(make_booking())
    before = schema_snapshot(fresh_engine)
    caplog.clear()

    upgrade(fresh_engine)

    assert [r.getMessage() for r in caplog.records if "Running upgrade" in r.getMessage()] == []
    assert current_revision(fresh_engine) == head_revision()
    assert schema_snapshot(fresh_engine) == before
    assert await BookingRepository(fresh_engine).by_attempt(booking.attempt_id) == booking


def test_the_migration_creates_the_tables_and_indexes(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)

    inspector = inspect(fresh_engine)
    assert set(inspector.get_table_names()) == APP_TABLES | {"alembic_version"}
    for table, indexes in MIGRATION_INDEXES.items():
        assert plain_indexes(fresh_engine, table) == indexes, table
    assert [u["column_names"] for u in inspector.get_unique_constraints("booking")] == [
        ["attempt_id"]
    ]
    assert [c["name"] for c in inspector.get_check_constraints("booking")] == [
        "ck_booking_positive_length"
    ]
    assert inspector.get_pk_constraint("user_profile")["constrained_columns"] == [
        "tenant_id",
        "user_id",
    ]
    if is_postgres(fresh_engine):
        assert exclusion_constraints(fresh_engine) == [EXCLUSION_CONSTRAINT]


def test_the_orm_tables_match_what_the_migration_created(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)

    with fresh_engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        differences = compare_metadata(context, SQLModel.metadata)

    # The PostgreSQL-only EXCLUDE constraint is raw SQL in the migration and absent from the ORM
    # tables (SQLite has no such thing). Alembic does not model exclusion constraints, so a diff
    # naming it, should one appear, says nothing about drift; the test above checks it exists.
    differences = [d for d in differences if EXCLUSION_CONSTRAINT not in repr(d)]
    assert differences == [], "\n".join(repr(d) for d in differences)


async def test_downgrade_to_base_then_upgrade_again(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    await BookingRepository(fresh_engine).create(make_booking())

    downgrade_to_base(fresh_engine)

    assert current_revision(fresh_engine) is None
    assert set(inspect(fresh_engine).get_table_names()) == {"alembic_version"}

    upgrade(fresh_engine)

    assert current_revision(fresh_engine) == head_revision()
    assert set(inspect(fresh_engine).get_table_names()) == APP_TABLES | {"alembic_version"}
    for table, indexes in MIGRATION_INDEXES.items():
        assert plain_indexes(fresh_engine, table) == indexes, table
    if is_postgres(fresh_engine):
        assert exclusion_constraints(fresh_engine) == [EXCLUSION_CONSTRAINT]
    repository = BookingRepository(fresh_engine)
    booking, created = await repository.create(make_booking())
    assert created
    assert await repository.busy_times([booking.room_id], booking.start_at, booking.end_at) == {
        booking.room_id: [(booking.start_at, booking.end_at)]
    }


def test_two_processes_migrating_an_empty_database_at_once_take_turns(
    database_url: str,
) -> None:
    """Replicas starting together both run `upgrade`: both succeed, the schema is made once.

    Two processes (engines of their own) each wait, just before their first CREATE TABLE, for
    the other to get there too, for at most RENDEZVOUS seconds. Without a lock around the
    migration both get there and create the same tables; with one, the second cannot begin
    before the first has committed, so the first goes on alone when its wait runs out.
    """
    context = multiprocessing.get_context("spawn")
    rendezvous = context.Barrier(2)
    with context.Pool(2, initializer=_keep_rendezvous, initargs=(rendezvous,)) as pool:
        outcomes = pool.map(_migrate_in_process, [database_url, database_url])

    assert [error for _, error in outcomes] == [None, None], outcomes
    assert sorted((met for met, _ in outcomes), key=str) == [False, None], outcomes
    engine = create_db_engine(database_url)
    try:
        assert migrations_current(engine)
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [version for (version,) in versions] == [head_revision()]
    finally:
        engine.dispose()


RENDEZVOUS = 3.0
_rendezvous: BarrierType | None = None


def _keep_rendezvous(barrier: BarrierType) -> None:
    global _rendezvous
    _rendezvous = barrier


def _migrate_in_process(url: str) -> tuple[bool | None, str | None]:
    """In a worker: upgrade `url`, meeting the other worker before the first CREATE TABLE.

    Returns whether they met there (None: this one created no table) and the error, if any.
    """
    assert _rendezvous is not None
    barrier = _rendezvous
    engine = create_db_engine(url)
    met: list[bool] = []

    def wait_for_the_other(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not met and statement.lstrip().startswith("CREATE TABLE"):
            try:
                barrier.wait(RENDEZVOUS)
                met.append(True)
            except threading.BrokenBarrierError:
                met.append(False)

    event.listen(engine, "before_cursor_execute", wait_for_the_other)
    try:
        upgrade(engine)
    except Exception as error:
        return (met[0] if met else None), f"{type(error).__name__}: {str(error)[:300]}"
    finally:
        engine.dispose()
    return (met[0] if met else None), None
