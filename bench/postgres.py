"""PostgreSQL databases for benchmarks, on the tests' server (FRONTDESK_TEST_POSTGRES_URL)."""

from __future__ import annotations

import os

from sqlalchemy import create_engine, text

from bot.storage.db import normalize_url

ADMIN_URL = os.environ.get("FRONTDESK_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")


def _execute(statement: str) -> None:
    """One statement on the server's admin database, outside a transaction."""
    engine = create_engine(normalize_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def database_url(name: str) -> str:
    """The URL of database `name` on the benchmark's server."""
    return f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def available() -> bool:
    """Whether the server answers."""
    try:
        _execute("SELECT 1")
        return True
    except Exception:
        return False


def create(name: str) -> str:
    """A new empty database `name` (an older one is dropped first); its URL."""
    drop(name)
    _execute(f'CREATE DATABASE "{name}"')
    return database_url(name)


def drop(name: str) -> None:
    """Drop database `name` if it exists, disconnecting whoever is still on it."""
    _execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
