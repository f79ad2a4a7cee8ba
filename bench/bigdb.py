"""A database of a million bookings and a million service requests, and the queries on it.

    python -m bench.bigdb generate [--rows N]   # once: bench/data/ (SQLite) and PostgreSQL
    python -m bench.bigdb measure              # p99 of `my bookings` and `approvals`, plans

Rows are written in bulk into a database migrated by the product's own Alembic migrations (so
the indexes are the product's). The queries are run through the product's repositories; the SQL
they send is captured and explained (SQLite `EXPLAIN QUERY PLAN`, PostgreSQL `EXPLAIN`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, event, func, select, text

from bench import dataset, postgres
from bench.harness import ROOT, say
from bot.config import load_settings
from bot.storage.db import create_db_engine, upgrade
from bot.storage.repository import BookingRepository
from bot.storage.service_requests import ServiceRequestRepository
from bot.storage.tables import Booking, ServiceRequestRecord

DATA = ROOT / "bench" / "data"
SQLITE_PATH = DATA / "frontdesk-1m.db"
POSTGRES_DATABASE = "frontdesk_bench_1m"
ROWS = 1_000_000
USERS = 10_000
APPROVERS = 1_000
PENDING_SHARE = 0.1
UPCOMING_LIMIT = 20  # BookingPolicy.upcoming_limit, what `my bookings` asks for
DONE = "generated.json"


def database_urls() -> dict[str, str]:
    urls = {"sqlite": f"sqlite:///{SQLITE_PATH}"}
    if postgres.available():
        urls["postgres"] = postgres.database_url(POSTGRES_DATABASE)
    return urls


def _marker() -> dict[str, Any]:
    path = DATA / DONE
    return json.loads(path.read_text()) if path.exists() else {}


def generate(rows: int) -> dict[str, Any]:
    """Write `rows` bookings and `rows` service requests into each database (once)."""
    DATA.mkdir(parents=True, exist_ok=True)
    marker = _marker()
    now = datetime.now(UTC)
    for name, url in database_urls().items():
        if marker.get(name, {}).get("rows") == rows:
            say(f"{name}: already generated ({rows} rows)")
            continue
        began = time.perf_counter()
        if name == "sqlite":
            SQLITE_PATH.unlink(missing_ok=True)
        else:
            postgres.create(POSTGRES_DATABASE)
        engine = create_db_engine(url)
        try:
            upgrade(engine)
            settings = load_settings(DATABASE_URL=url, MICROSOFT_APP_ID="", HOST="127.0.0.1")
            template = dataset.template_request(settings)
            users = dataset.user_ids(USERS)
            approvers = dataset.user_ids(USERS + APPROVERS)[USERS:]
            say(f"{name}: {rows} bookings...")
            dataset.generate_bookings(engine, count=rows, users=users, now=now)
            say(f"{name}: {rows} service requests...")
            dataset.copy_requests(
                engine,
                template,
                count=rows,
                requesters=users,
                approvers=approvers,
                pending_share=PENDING_SHARE,
                start=now,
            )
            if name == "postgres":
                with engine.connect() as connection:
                    connection.execute(text("ANALYZE"))
                    connection.commit()
            else:
                with engine.connect() as connection:
                    connection.execute(text("ANALYZE"))
        finally:
            engine.dispose()
        took = time.perf_counter() - began
        marker[name] = {"rows": rows, "seconds": round(took, 1), "at": now.isoformat()}
        (DATA / DONE).write_text(json.dumps(marker, indent=2))
        say(f"{name}: generated in {took:.0f} s")
    return marker


@contextmanager
def captured_sql(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements (with parameters) the engine sends while inside the block."""
    seen: list[tuple[str, Any]] = []

    def record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def explain(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """The plan of a captured statement on this engine's database."""
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(prefix + statement, parameters)
        rows = cursor.fetchall()
    finally:
        raw.close()
    if engine.dialect.name == "sqlite":
        return [str(row[-1]) for row in rows]
    return [str(row[0]) for row in rows]


def uses_index(plan: list[str]) -> bool:
    joined = "\n".join(plan)
    return any(
        marker in joined
        for marker in (
            "USING INDEX",
            "USING COVERING INDEX",
            "Index Scan",
            "Index Only Scan",
            "Bitmap Index Scan",
            "USING PRIMARY KEY",
            "USING INTEGER PRIMARY KEY",
        )
    )


BUDGET_SECONDS = 20.0
"""A query stops being repeated after this long (at least 50 calls): a slow plan stays visible
without making `make bench` wait for it."""


def _timed(calls: int, run: Callable[[int], Any]) -> list[float]:
    took: list[float] = []
    began_all = time.perf_counter()
    for index in range(calls):
        began = time.perf_counter()
        run(index)
        took.append(time.perf_counter() - began)
        if len(took) >= 50 and time.perf_counter() - began_all > BUDGET_SECONDS:
            break
    return sorted(took)


def _quantile(ordered: list[float], q: float) -> float:
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


def measure_one(name: str, url: str, *, calls: int) -> dict[str, Any]:
    engine = create_db_engine(url)
    try:
        upgrade(engine)  # the product may have gained migrations since the data was generated
        bookings = BookingRepository(engine)
        requests = ServiceRequestRepository(engine)
        now = datetime.now(UTC)
        with engine.connect() as connection:
            booking_rows = connection.execute(
                select(func.count()).select_from(Booking)
            ).scalar_one()
            request_rows = connection.execute(
                select(func.count()).select_from(ServiceRequestRecord)
            ).scalar_one()
        users = dataset.user_ids(USERS)
        approvers = dataset.user_ids(USERS + APPROVERS)[USERS:]
        rng = random.Random(3)
        picks = [rng.choice(users) for _ in range(calls)]
        approver_picks = [rng.choice(approvers) for _ in range(calls)]
        sizes: dict[str, list[int]] = {"my_bookings": [], "approvals": []}

        async def upcoming_all() -> list[float]:
            loop = asyncio.get_running_loop()

            def one(index: int) -> None:
                found = asyncio.run_coroutine_threadsafe(
                    bookings.upcoming(
                        tenant_id=dataset.TENANT_ID,
                        user_id=picks[index],
                        now=now,
                        limit=UPCOMING_LIMIT,
                    ),
                    loop,
                ).result()
                sizes["my_bookings"].append(len(found))

            return await asyncio.to_thread(_timed, calls, one)

        with captured_sql(engine) as upcoming_sql:
            asyncio.run(
                bookings.upcoming(
                    tenant_id=dataset.TENANT_ID, user_id=picks[0], now=now, limit=UPCOMING_LIMIT
                )
            )
        upcoming_times = asyncio.run(upcoming_all())

        def approvals(index: int) -> None:
            sizes["approvals"].append(
                len(requests.waiting_for(dataset.TENANT_ID, approver_picks[index]))
            )

        with captured_sql(engine) as approvals_sql:
            requests.waiting_for(dataset.TENANT_ID, approver_picks[0])
        approvals_times = _timed(calls, approvals)
        result: dict[str, Any] = {"bookings": booking_rows, "requests": request_rows}
        for query, times, sql in (
            ("my_bookings", upcoming_times, upcoming_sql),
            ("approvals", approvals_times, approvals_sql),
        ):
            statement, parameters = next(
                (s, p) for s, p in sql if s.lstrip().upper().startswith("SELECT")
            )
            plan = explain(engine, statement, parameters)
            result[query] = {
                "calls": len(times),
                "p50_ms": _quantile(times, 0.5),
                "p99_ms": _quantile(times, 0.99),
                "rows_per_call_avg": round(sum(sizes[query]) / max(1, len(sizes[query])), 1),
                "plan": plan,
                "index_used": uses_index(plan),
                "sql": " ".join(statement.split()),
            }
        return result
    finally:
        engine.dispose()


def measure_existing(*, quick: bool = False) -> dict[str, Any] | str:
    """Figures for the generated databases, or why there are none."""
    marker = _marker()
    if not marker:
        return "not generated: run `make bench-data` once"
    out: dict[str, Any] = {
        "rows": max(m["rows"] for m in marker.values()),
        "databases": {},
        "generated": marker,
    }
    for name, url in database_urls().items():
        if name not in marker:
            continue
        out["databases"][name] = measure_one(name, url, calls=200 if quick else 1000)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bigdb", description=__doc__)
    parser.add_argument("command", choices=["generate", "measure"])
    parser.add_argument("--rows", type=int, default=ROWS)
    options = parser.parse_args(argv)
    if options.command == "generate":
        generate(options.rows)
        return 0
    result = measure_existing()
    if isinstance(result, str):
        say(result)
        return 1
    for name, figures in result["databases"].items():
        for query in ("my_bookings", "approvals"):
            f = figures[query]
            say(
                f"{name} {query}: p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms "
                f"({f['rows_per_call_avg']} rows per call); index used: {f['index_used']}"
            )
            for line in f["plan"]:
                say(f"    {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
