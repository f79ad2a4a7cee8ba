"""Database engines: URL normalisation, SQLite locking behaviour, migrations."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
import weakref
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, DateTime, Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Execution option that makes a SQLite transaction take the write lock at BEGIN.
WRITE_LOCK = "frontdesk_write_lock"


def normalize_url(url: str) -> str:
    """Map plain `postgresql://` and `postgres://` URLs onto the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_db_engine(url: str, *, pool_size: int = 10) -> Engine:
    """Create the engine for a `sqlite:///path` or `postgresql://` URL."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling is off so that BEGIN is ours to issue.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _enter_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(WRITE_LOCK):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


# How long a connection keeps trying to switch a database into WAL mode (as long as it waits for
# a lock otherwise: the driver's `timeout`).
WAL_SWITCH_SECONDS = 30.0


def _enter_wal(cursor: Any) -> None:
    """Put the database in WAL mode. Switching it needs the file to itself, and SQLite answers
    "database is locked" at once, without its busy wait, when another connection opens or
    switches the same new file at that moment (replicas starting together on an empty
    database): try again, briefly, until it is switched."""
    deadline = time.monotonic() + WAL_SWITCH_SECONDS
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction holds the database write lock from its start on SQLite.

    On PostgreSQL it is an ordinary transaction; the constraints and row locks guard there.
    """
    with _writers_turn(engine), engine.connect() as connection:
        connection.execution_options(**{WRITE_LOCK: True})
        with Session(bind=connection, expire_on_commit=False) as session:
            yield session


_writers: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_writers_guard = threading.Lock()


@contextmanager
def _writers_turn(engine: Engine) -> Iterator[None]:
    """On SQLite, this process's writers take turns here for the database's one write lock.

    Without it they meet at BEGIN IMMEDIATE, where SQLite's busy handler puts each loser to
    sleep for 1 to 100 ms at a time, rising, whether or not the lock came free meanwhile: with
    16 clicks at once that sleeping made p99 a third of a second. Here a writer goes the moment
    the one before it is done. Other processes (another replica, the admin command line) are
    still waited for by the busy handler. PostgreSQL needs no turns: rows lock, not the file.
    """
    if engine.dialect.name != "sqlite":
        yield
        return
    with _writers_guard:
        lock = _writers.setdefault(engine, threading.RLock())
    with lock:
        yield


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A plain session for reads and simple writes."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def upsert_insert(engine: Engine, table: Any) -> Any:
    """An INSERT into `table` in the engine's dialect, which offers `on_conflict_do_nothing`
    and `on_conflict_do_update` (PostgreSQL and SQLite spell them alike)."""
    return postgresql.insert(table) if is_postgres(engine) else sqlite.insert(table)


# At most this many advisory-lock holders per engine at once in a process: each holds a pooled
# connection for its whole block, and the rest of the bot needs the pool too.
ADVISORY_HOLDERS = 4
_FIRST_POLL = 0.02
_MAX_POLL = 0.5
_holders: weakref.WeakKeyDictionary[Engine, dict[int, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _holder_slots(engine: Engine) -> asyncio.Semaphore:
    by_loop = _holders.setdefault(engine, {})
    loop = id(asyncio.get_running_loop())
    if loop not in by_loop:
        by_loop.clear()  # a new event loop (tests): the old one's semaphore is of no use
        by_loop[loop] = asyncio.Semaphore(ADVISORY_HOLDERS)
    return by_loop[loop]


@asynccontextmanager
async def advisory_lock(
    engine: Engine, namespace: int, name: str, *, waiting: asyncio.Event | None = None
) -> AsyncIterator[None]:
    """Hold a lock on `name` (within `namespace`, a 32-bit number) across every process that
    uses the database, for work that must not overlap between replicas.

    A PostgreSQL session advisory lock held on a pooled connection until the block ends. It is
    asked for with `pg_try_advisory_lock` and, while another holds it, asked again after a
    growing pause: a waiter holds no connection and no worker thread, so many waiters cannot
    starve the pool or the thread pool the rest of the bot runs its queries in (a blocking
    `pg_advisory_lock` per waiter did: 64 clicks at once froze the bot). `waiting` is set when
    the first try finds the lock taken. On SQLite it is no lock at all: SQLite serves one process.
    """
    if not is_postgres(engine):
        yield
        return
    key = zlib.crc32(name.encode("utf-8", "surrogatepass")) - 2**31  # PostgreSQL's int range
    async with _holder_slots(engine):
        pause = _FIRST_POLL
        while True:
            trying = asyncio.ensure_future(
                asyncio.to_thread(_try_advisory_lock, engine, namespace, key)
            )
            try:
                connection = await asyncio.shield(trying)
            except asyncio.CancelledError:
                # The try still runs: give the lock back if it took it.
                trying.add_done_callback(lambda done: _release_when_taken(done, namespace, key))
                raise
            if connection is not None:
                break
            if waiting is not None:
                waiting.set()
            await asyncio.sleep(pause)
            pause = min(pause * 2, _MAX_POLL)
        try:
            yield
        finally:
            await asyncio.to_thread(_release_advisory_lock, connection, namespace, key)


def _try_advisory_lock(engine: Engine, namespace: int, key: int) -> Connection | None:
    """The connection now holding the lock, or None (and no connection kept) when it is taken."""
    connection = engine.connect()
    try:
        taken = connection.execute(
            text("SELECT pg_try_advisory_lock(:namespace, :key)"),
            {"namespace": namespace, "key": key},
        ).scalar_one()
        connection.commit()  # a session lock outlives the transaction; the connection idles
    except BaseException:
        connection.invalidate()
        connection.close()
        raise
    if not taken:
        connection.close()
        return None
    return connection


def _release_when_taken(
    taking: asyncio.Future[Connection | None], namespace: int, key: int
) -> None:
    if not taking.cancelled() and taking.exception() is None:
        connection = taking.result()
        if connection is not None:
            _release_advisory_lock(connection, namespace, key)


def _release_advisory_lock(connection: Connection, namespace: int, key: int) -> None:
    try:
        connection.execute(
            text("SELECT pg_advisory_unlock(:namespace, :key)"),
            {"namespace": namespace, "key": key},
        )
        connection.commit()
    except Exception:
        # Closing the server session releases its locks: never pool a connection that may hold one.
        logger.warning("could not release an advisory lock; dropping its connection")
        connection.invalidate()
    finally:
        connection.close()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware values")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


# The PostgreSQL advisory lock that replicas starting together take around their migrations
# (any fixed 64-bit number; advisory locks are scoped to one database).
MIGRATION_LOCK_KEY = 0x46726F6E74646B31  # "Frontdk1"


def upgrade(engine: Engine) -> None:
    """Apply every migration up to head, one process at a time.

    Replicas starting at once on an empty database would otherwise both create the same tables
    and one would fail. The lock is held for the migration's transaction: on PostgreSQL an
    advisory transaction lock (the DDL is transactional, so whoever waited then finds the schema
    at head and does nothing); on SQLite the write lock taken at BEGIN.
    """
    with engine.connect() as connection:
        connection.execution_options(**{WRITE_LOCK: True})
        with connection.begin():
            if is_postgres(engine):
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            command.upgrade(_alembic_config(connection), "head")


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrations_current(engine: Engine) -> bool:
    """True when the database is reachable and at the head revision."""
    return current_revision(engine) == head_revision()
