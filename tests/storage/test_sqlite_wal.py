"""A new SQLite file opened by several connections at once: each puts it in WAL mode or finds it
there. SQLite answers "database is locked" at once (no busy wait) to a connection switching the
journal mode while another does: replicas starting together on an empty database hit that."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from bot.storage.db import create_db_engine

ROUNDS = 60
OPENERS = 6


def open_at_once(path: Path) -> list[str]:
    """OPENERS engines of their own open `path` together; what each saw go wrong."""
    start = threading.Barrier(OPENERS)
    errors: list[str] = []

    def opener() -> None:
        engine = create_db_engine(f"sqlite:///{path}")
        start.wait()
        try:
            with engine.connect() as connection:
                mode = connection.execute(text("PRAGMA journal_mode")).scalar()
                if mode != "wal":
                    errors.append(f"journal mode {mode}")
        except Exception as error:
            errors.append(f"{type(error).__name__}: {str(error)[:80]}")
        finally:
            engine.dispose()

    threads = [threading.Thread(target=opener) for _ in range(OPENERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_connections_opening_a_new_file_together_all_get_wal(tmp_path: Path) -> None:
    failed = {
        index: errors
        for index in range(ROUNDS)
        if (errors := open_at_once(tmp_path / f"round-{index}.db"))
    }

    assert failed == {}, f"{len(failed)} of {ROUNDS} rounds failed: {failed}"
