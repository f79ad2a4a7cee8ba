"""Alembic environment: runs on the connection Frontdesk hands over, or on DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

from bot.storage import tables  # noqa: F401  (registers the tables on the metadata)
from bot.storage.db import create_db_engine

target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from bot.config import load_settings

    engine = create_db_engine(load_settings().database_url)
    with engine.begin() as own_connection:
        _run(own_connection)
    engine.dispose()


run_migrations_online()
