"""PostgreSQL databases for benchmarks, on the tests' server (FRONTDESK_TEST_POSTGRES_URL)."""

from __future__ import annotations

import os

from sqlalchemy import Engine, create_engine, text

from bot.storage.db import normalize_url

ADMIN_URL = os.environ.get("FRONTDESK_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")


def _admin() -> Engine:
    return create_engine(normalize_url(ADMIN_URL), isolation_level="AUTOCOMMIT")


def database_url(name: str) -> str:
    """The URL of database `name` on the benchmark's server."""
    return f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def available() -> bool:
    """Whether the server answers."""
    engine = _admin()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


def create(name: str) -> str:
    """A new empty database `name` (an older one is dropped first); its URL."""
    drop(name)
    engine = _admin()
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return database_url(name)


def drop(name: str) -> None:
    """Drop database `name` if it exists, disconnecting whoever is still on it."""
    engine = _admin()
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()
