"""`advisory_lock`: work that replicas must do in turn (PostgreSQL), waited for off the loop.

Each holder has an engine of its own, as each replica does. Waiting is observed through the
`waiting` event (set when a try finds the lock taken) and the granted locks in `pg_locks`, never
by timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import Engine, text

from bot.storage.db import advisory_lock, create_db_engine

NAMESPACE = 0x54455354  # "TEST"


@pytest.fixture
def engines(database_url: str) -> Iterator[list[Engine]]:
    """Three engines on one database: three processes' worth."""
    made = [create_db_engine(database_url, pool_size=2) for _ in range(3)]
    yield made
    for engine in made:
        engine.dispose()


def advisory_locks(engine: Engine) -> list[bool]:
    """Whether each advisory lock asked for in this database is granted."""
    with engine.connect() as connection:
        return [
            granted
            for (granted,) in connection.execute(
                text(
                    "SELECT granted FROM pg_locks WHERE locktype = 'advisory' AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
        ]


async def until_locks(engine: Engine, *, waiting: int, held: int) -> None:
    """Until the database's advisory locks are `held` granted and `waiting` asked for (for at
    most about 30 s)."""
    for _ in range(600):
        locks = advisory_locks(engine)
        if (locks.count(False), locks.count(True)) == (waiting, held):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not {held} held and {waiting} waiting: {advisory_locks(engine)}")


async def hold(
    engine: Engine,
    name: str,
    log: list[str],
    who: str,
    release: asyncio.Event,
    entered: asyncio.Event | None = None,
    waiting: asyncio.Event | None = None,
) -> None:
    """Take the lock, note it, keep it until `release` is set."""
    async with advisory_lock(engine, NAMESPACE, name, waiting=waiting):
        log.append(f"{who} in")
        if entered is not None:
            entered.set()
        await release.wait()
        log.append(f"{who} out")


async def holder(
    engine: Engine, log: list[str], who: str, release: asyncio.Event
) -> asyncio.Task[None]:
    """A task that has taken the lock "request-1" (noted in `log`) and keeps it until `release`."""
    entered = asyncio.Event()
    task = asyncio.create_task(hold(engine, "request-1", log, who, release, entered))
    await asyncio.wait_for(entered.wait(), timeout=30)
    return task


async def waiter(
    engine: Engine, log: list[str], who: str, release: asyncio.Event
) -> asyncio.Task[None]:
    """A task that found the lock "request-1" taken and waits for it (then keeps it until
    `release`)."""
    tried = asyncio.Event()
    task = asyncio.create_task(hold(engine, "request-1", log, who, release, waiting=tried))
    await asyncio.wait_for(tried.wait(), timeout=30)
    return task


ON_POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
async def postgres_engines(engines: list[Engine]) -> AsyncIterator[list[Engine]]:
    assert engines[0].dialect.name == "postgresql"
    yield engines
    assert advisory_locks(engines[0]) == [], "a lock was left behind"


@ON_POSTGRES
async def test_a_second_process_waits_until_the_first_is_done(
    postgres_engines: list[Engine],
) -> None:
    first, second, _ = postgres_engines
    log: list[str] = []
    release_first, release_second = asyncio.Event(), asyncio.Event()
    holding = await holder(first, log, "first", release_first)
    waiting = await waiter(second, log, "second", release_second)
    await until_locks(first, waiting=0, held=1)
    assert log == ["first in"]

    release_first.set()
    await holding
    release_second.set()
    await waiting

    assert log == ["first in", "first out", "second in", "second out"]


@ON_POSTGRES
async def test_other_names_do_not_wait(postgres_engines: list[Engine]) -> None:
    first, second, _ = postgres_engines
    log: list[str] = []
    release = asyncio.Event()
    release.set()
    async with advisory_lock(first, NAMESPACE, "request-1"):
        # Were the names to share a lock, this would wait for ever: the timeout fails it instead.
        await asyncio.wait_for(hold(second, "request-2", log, "other", release), timeout=30)
    assert log == ["other in", "other out"]


@ON_POSTGRES
async def test_giving_up_while_waiting_leaves_no_lock_behind(
    postgres_engines: list[Engine],
) -> None:
    first, second, third = postgres_engines
    log: list[str] = []
    release_first, never = asyncio.Event(), asyncio.Event()
    holding = await holder(first, log, "first", release_first)
    waiting = await waiter(second, log, "second", never)

    waiting.cancel()  # a shutdown cancels work still waiting for the lock
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release_first.set()
    await holding
    # The abandoned wait takes the lock once the first lets go, and gives it back.
    await until_locks(first, waiting=0, held=0)
    always = asyncio.Event()
    always.set()
    await hold(third, "request-1", log, "third", always)

    assert log == ["first in", "first out", "third in", "third out"]


@ON_POSTGRES
async def test_many_waiters_starve_neither_the_pool_nor_the_worker_threads(
    postgres_engines: list[Engine],
) -> None:
    """40 waiters on a held lock (as 40 clicks on one request): the same process still runs
    queries in worker threads meanwhile, and every waiter gets its turn once it is free."""
    first, second, _ = postgres_engines
    log: list[str] = []
    release_first, go = asyncio.Event(), asyncio.Event()
    go.set()
    holding = await holder(first, log, "first", release_first)
    tries = [asyncio.Event() for _ in range(40)]
    waiters = [
        asyncio.create_task(hold(second, "request-1", log, f"w{i}", go, waiting=tries[i]))
        for i in range(40)
    ]
    await asyncio.wait_for(asyncio.gather(*(t.wait() for t in tries[:4])), timeout=30)

    def query() -> int:
        with second.connect() as connection:
            return int(connection.execute(text("SELECT 1")).scalar_one())

    # A blocking wait per waiter would hold every worker thread and pooled connection here.
    answers = await asyncio.wait_for(
        asyncio.gather(*(asyncio.to_thread(query) for _ in range(8))), 30
    )
    assert answers == [1] * 8
    assert log == ["first in"]

    release_first.set()
    await holding
    await asyncio.wait_for(asyncio.gather(*waiters), timeout=120)
    assert sorted(entry for entry in log if entry.endswith(" in")) == sorted(
        ["first in", *(f"w{i} in" for i in range(40))]
    )


@ON_SQLITE
async def test_on_sqlite_it_holds_nothing(engines: list[Engine]) -> None:
    log: list[str] = []
    release = asyncio.Event()
    release.set()
    async with advisory_lock(engines[0], NAMESPACE, "request-1"):
        await hold(engines[1], "request-1", log, "second", release)
    assert log == ["second in", "second out"]
