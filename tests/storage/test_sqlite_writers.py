"""On SQLite the bot's writers take turns in the process instead of meeting at BEGIN IMMEDIATE,
where SQLite's busy handler puts the loser to sleep for up to 100 ms at a time (the tail of
every click that writes, under load).

With the busy wait off (`busy_timeout=0`), a writer that met another at SQLite's lock would get
"database is locked" at once: none does, because none ever meets another there.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from bot.storage.db import create_db_engine, write_session

WRITERS = 8
WRITES = 40


def test_writers_of_one_process_never_meet_at_sqlites_lock(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'writers.db'}", pool_size=WRITERS)

    @event.listens_for(engine, "connect")
    def no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE tally (writer INTEGER, n INTEGER)"))
    start = threading.Barrier(WRITERS)
    errors: list[str] = []

    def writer(number: int) -> None:
        start.wait()
        for n in range(WRITES):
            try:
                with write_session(engine) as session:
                    session.execute(
                        text("INSERT INTO tally VALUES (:writer, :n)"), {"writer": number, "n": n}
                    )
                    session.execute(text("SELECT count(*) FROM tally")).scalar()
                    session.commit()
            except Exception as error:
                errors.append(f"{type(error).__name__}: {str(error)[:80]}")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM tally")).scalar() == WRITERS * WRITES
    engine.dispose()
