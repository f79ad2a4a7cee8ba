"""A start that fails after `create_app` built the app still releases what it opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from aiohttp import web

from app import ENGINE, HTTP, create_app
from bot.config import load_settings


def _database_from_a_newer_frontdesk(path: Path) -> None:
    """A schema at a revision these migrations do not know, so the upgrade at start fails."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        connection.execute("INSERT INTO alembic_version VALUES ('from_a_newer_frontdesk')")
    connection.close()


async def test_a_failed_migration_at_start_closes_the_http_session_and_the_engine(
    tmp_path: Path,
) -> None:
    database = tmp_path / "frontdesk.db"
    _database_from_a_newer_frontdesk(database)
    settings = load_settings(
        MICROSOFT_APP_ID="", HOST="127.0.0.1", DATABASE_URL=f"sqlite:///{database}"
    )
    app = await create_app(settings)
    runner = web.AppRunner(app, handle_signals=False)

    # As web.run_app does: the start fails, then the runner cleans up.
    with pytest.raises(Exception, match="from_a_newer_frontdesk"):
        await runner.setup()
    await runner.cleanup()

    # A disposed engine has a fresh pool, without the connection the upgrade gave back to it.
    assert app[ENGINE].pool.checkedin() == 0, "the engine was not disposed after a failed start"
    assert app[HTTP].closed, "the shared HTTP session was left open after a failed start"
