"""Hardening tests: the app over real HTTP (the bot tests' fixtures), whole-database snapshots."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, inspect, text

# The running app in local mode behind /api/messages, replies to a fake connector (tests/bot).
from tests.bot.conftest import app_env, connector, db_url, frontdesk  # noqa: F401

Snapshot = dict[str, list[tuple[Any, ...]]]


def database_snapshot(engine: Engine) -> Snapshot:
    """Every row of every table in the database (as found there, not as the models say), sorted."""
    snapshot: Snapshot = {}
    with engine.connect() as connection:
        for table in sorted(inspect(connection).get_table_names()):
            rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()
            snapshot[table] = sorted((tuple(row) for row in rows), key=repr)
    return snapshot


def changed_tables(before: Snapshot, after: Snapshot) -> dict[str, tuple[int, int]]:
    """Tables whose rows differ: name -> (rows before, rows after)."""
    return {
        name: (len(before.get(name, [])), len(after.get(name, [])))
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }
