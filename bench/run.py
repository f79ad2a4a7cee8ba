"""`make bench`: Frontdesk against a stock botbuilder echo bot, measured in the same run.

    python -m bench.run [--quick] [--duration S] [--out DIR] [--skip-postgres] [--skip-bigdb]

Everything runs on 127.0.0.1: the bot (`python app.py`, local mode, SQLite and PostgreSQL),
the stock echo bot (bench/reference_bot.py), a fake Bot Connector (bench/connector.py), a fake
Microsoft Graph and token service (tests/support). Results: <out>/latest.json and latest.md.
BENCH_QUICK=1 is the same as --quick; BENCH_DURATION sets the seconds per measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench import dataset, postgres
from bench.harness import (
    DRIVER_CPU,
    ROOT,
    ConnectorControl,
    Server,
    Window,
    drive,
    frontdesk,
    module_process,
    pin,
    pool_source,
    rss_mb,
    say,
    template_source,
    wait_ready,
)
from bench.report import markdown, targets
from bot.config import load_settings
from bot.storage.db import create_db_engine, upgrade
from tests.support.activities import (
    MEGAN,
    TeamsUser,
    make_card_action,
    make_message,
)

APPROVER = TeamsUser(
    id="29:1BenchApproverFinanceDeputy0000000000000000000",
    aad_object_id=dataset.APPROVER_ID,
    name="Finance Deputy",
)
OK_MESSAGE = frozenset({200, 201})
OK_INVOKE = frozenset({200})


class Options(argparse.Namespace):
    quick: bool
    duration: float
    out: Path
    skip_postgres: bool
    skip_bigdb: bool
    concurrency: list[int]
    pool: int | None
    burst: int | None
    searches: int | None
    turns: int | None


def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1"
    )
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-bigdb", action="store_true")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--pool", type=int, help="book offers and pending requests per database")
    parser.add_argument("--burst", type=int, help="proactive cards in the burst (2000)")
    parser.add_argument("--searches", type=int, help="room searches in graph mode (8)")
    parser.add_argument("--turns", type=int, help="turns before the second RSS reading (10000)")
    options = parser.parse_args(argv, namespace=Options())
    if options.duration is None:
        env = os.environ.get("BENCH_DURATION")
        options.duration = float(env) if env else (1.0 if options.quick else 3.0)
    return options


# -- activities -----------------------------------------------------------------------------------
async def settle(connector: ConnectorControl, *, quiet: float = 2.0, limit: float = 180) -> float:
    """Seconds until the connector has seen no request for `quiet` seconds (at most `limit`)."""
    began = time.perf_counter()
    last = await connector.stats()
    quiet_since = time.perf_counter()
    while time.perf_counter() - began < limit:
        await asyncio.sleep(0.25)
        now = await connector.stats()
        if now["counts"] != last["counts"]:
            last, quiet_since = now, time.perf_counter()
        elif time.perf_counter() - quiet_since >= quiet:
            break
    return round(quiet_since - began, 1)


def message_source(service_url: str, text_: str = "book") -> Any:
    return template_source(make_message(text_, service_url=service_url, activity_id="@@id@@"))


def invoke_template(
    service_url: str, verb: str, data: dict[str, Any], user: TeamsUser
) -> dict[str, Any]:
    return make_card_action(
        verb, data, service_url=service_url, user=user, activity_id="@@id@@", title="Bench"
    )


def seed_pools(
    database_url: str, count: int, now: datetime
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Book offers for Megan and pending requests for the approver, written before the load."""
    engine = create_db_engine(database_url)
    try:
        upgrade(engine)
        offers = dataset.seed_book_offers(engine, count=count, user_id=MEGAN.aad_object_id, now=now)
        settings = load_settings(DATABASE_URL=database_url, MICROSOFT_APP_ID="", HOST="127.0.0.1")
        template = dataset.template_request(settings)
        requests = dataset.copy_requests(engine, template, count=count)
    finally:
        engine.dispose()
    return (
        [{"attempt": offer.attempt, "room": offer.room} for offer in offers],
        [{"request": request_id} for request_id in requests],
    )


# -- the run --------------------------------------------------------------------------------------
class Run:
    def __init__(self, options: Options, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.results: list[dict[str, Any]] = []
        self.notes: dict[str, Any] = {}
        self.dead: set[str] = set()

    async def measure(
        self,
        scenario: str,
        target: Server,
        source: Any,
        concurrency: int,
        expect: frozenset[int],
        connector: ConnectorControl | None,
        *,
        duration: float | None = None,
    ) -> dict[str, Any]:
        duration = duration or self.options.duration
        if target.name in self.dead:
            row = {"scenario": scenario, "target": target.name, "concurrency": concurrency}
            row.update(Window().figures())
            row.update(rss_mb=round(rss_mb(target.pid), 1), skipped="stopped answering earlier")
            self.results.append(row)
            say(f"  {scenario:<14} {target.name:<9} c={concurrency:<3} skipped: not answering")
            return row
        window = await drive(
            target,
            source,
            concurrency=concurrency,
            duration=duration,
            warmup=min(0.5, duration / 3),
            expect=expect,
            connector=connector,
        )
        row = {"scenario": scenario, "target": target.name, "concurrency": concurrency}
        row.update(window.figures())
        row["rss_mb"] = round(rss_mb(target.pid), 1)
        if window.completed == 0 and window.statuses.get(0):
            # Nothing answered within Teams' 15 s: later windows would only wait for it again.
            self.dead.add(target.name)
            self.notes.setdefault("stopped_answering", []).append(
                f"{target.name} during {scenario} at concurrency {concurrency}"
            )
        self.results.append(row)
        say(
            f"  {scenario:<14} {target.name:<9} c={concurrency:<3} {row['throughput']:>8}/s "
            f"p50 {row['p50_ms']} p99 {row['p99_ms']} ms  cpu {row['cpu_ms_per_activity']} ms"
            f"  conn/reply {row['new_connections_per_reply']}  statuses {row['statuses']}"
        )
        return row

    async def main(self) -> dict[str, Any]:
        pin(os.getpid(), DRIVER_CPU)
        options = self.options
        started = time.perf_counter()
        async with AsyncExitStack() as stack:
            session = await stack.enter_async_context(aiohttp.ClientSession())
            # One fake connector per server, so that each one's connections are its own.
            connectors: dict[str, ConnectorControl] = {}
            for name in ("reference", "sqlite", "postgres", "burst"):
                _, ports = await stack.enter_async_context(
                    module_process("bench.connector", name=f"connector-{name}")
                )
                connectors[name] = ConnectorControl(session, ports[1], ports[0])
            reference, _ = await stack.enter_async_context(
                module_process("bench.reference_bot", name="reference")
            )
            pin(reference.pid, 0)
            await wait_ready(reference, time.perf_counter())

            targets_: list[Server] = [reference]
            sqlite_url = f"sqlite:///{self.workdir / 'frontdesk.db'}"
            sqlite = await stack.enter_async_context(
                frontdesk("sqlite", self.workdir, {"DATABASE_URL": sqlite_url})
            )
            await asyncio.sleep(1.0)
            self.notes["startup"] = {
                "ready_seconds": round(sqlite.ready_seconds or 0.0, 3),
                "rss_at_rest_mb": round(rss_mb(sqlite.pid), 1),
            }
            say(
                f"sqlite bot ready in {sqlite.ready_seconds:.2f} s, RSS {rss_mb(sqlite.pid):.1f} MB"
            )
            targets_.append(sqlite)
            pool_size = options.pool or (3000 if options.quick else 12000)
            now = datetime.now(UTC)
            pools: dict[str, tuple[list[dict[str, str]], list[dict[str, str]]]] = {}
            pools["sqlite"] = await asyncio.to_thread(seed_pools, sqlite_url, pool_size, now)

            pg_name = f"frontdesk_bench_{os.getpid()}"
            if not options.skip_postgres and postgres.available():
                pg_url = postgres.create(pg_name)
                stack.callback(postgres.drop, pg_name)
                on_postgres = await stack.enter_async_context(
                    frontdesk("postgres", self.workdir, {"DATABASE_URL": pg_url})
                )
                pools["postgres"] = await asyncio.to_thread(seed_pools, pg_url, pool_size, now)
                targets_.append(on_postgres)
            else:
                self.notes["postgres"] = "skipped (no PostgreSQL reachable or --skip-postgres)"

            say("message answered with a card (product: `book` -> booking form)")
            for concurrency in options.concurrency:
                for target in targets_:
                    await self.measure(
                        "message",
                        target,
                        message_source(connectors[target.name].service_url),
                        concurrency,
                        OK_MESSAGE,
                        connectors[target.name],
                    )

            async def clicks(
                scenario: str, verb: str, data: dict[str, Any], user: TeamsUser, index: int
            ) -> None:
                """Card clicks on each target at each concurrency, from the pool `index`."""
                for concurrency in options.concurrency:
                    for target in targets_:
                        connector = connectors[target.name]
                        source = self._click_source(
                            target, pools, connector.service_url, verb, data, user, index=index
                        )
                        await self.measure(
                            scenario, target, source, concurrency, OK_INVOKE, connector
                        )

            say("book click (invoke, booking written, confirmation card)")
            await clicks(
                "book", "booking.book", {"attempt": "@@attempt@@", "room": "@@room@@"}, MEGAN, 0
            )
            say("replies with the connector answering in 50 ms")
            for control in connectors.values():
                await control.configure(delay=0.05)
            for target in targets_:
                await self.measure(
                    "reply_50ms",
                    target,
                    message_source(connectors[target.name].service_url),
                    64,
                    OK_MESSAGE,
                    connectors[target.name],
                )
            for control in connectors.values():
                await control.configure(delay=0.0)
            # Last: on PostgreSQL, 64 concurrent approvals have left the bot unable to answer.
            say("approve click (invoke, database write, card in the answer)")
            await clicks(
                "approve",
                "request.decide",
                {"request": "@@request@@", "decision": "approve", "item": "all"},
                APPROVER,
                1,
            )

            from bench.scenarios import proactive_burst, room_search

            # The burst is paced (Teams' limits), so it runs alongside the memory top-up and the
            # room search, on its own connector, instead of adding its minute and more to the run.
            say("proactive burst of approval cards through the messenger, in the background")
            burst = asyncio.create_task(
                proactive_burst(
                    connectors["burst"],
                    recipients=options.burst or (200 if options.quick else 2000),
                )
            )
            turns = (
                options.turns if options.turns is not None else (2000 if options.quick else 10000)
            )
            startup = self.notes["startup"]
            # The top-up is plain messages after every scenario: what they add is growth per
            # turn (a leak), apart from the high-water mark the bursts before them left.
            startup["turns_before_top_up"] = sqlite.turns
            startup["rss_before_top_up_mb"] = round(rss_mb(sqlite.pid), 1)
            await self._top_up(sqlite, connectors["sqlite"], turns)
            startup["turns_served"] = sqlite.turns
            startup["rss_right_after_turns_mb"] = round(rss_mb(sqlite.pid), 1)
            # At rest again: the sends the approve clicks started (fulfilment cards, paced at
            # Teams' per-tenant rate) have all gone out.
            startup["settled_seconds"] = await settle(connectors["sqlite"])
            startup["rss_after_turns_mb"] = round(rss_mb(sqlite.pid), 1)

            say("room search in graph mode (fake Graph at 150 ms per call)")
            self.notes["room_search"] = await room_search(
                self.workdir, searches=options.searches or (3 if options.quick else 8)
            )
            say(f"  {self.notes['room_search']['summary']}")
            self.notes["proactive_burst"] = await burst
            say(f"  proactive burst: {self.notes['proactive_burst']['summary']}")

        if not options.skip_bigdb:
            from bench.bigdb import measure_existing

            self.notes["large_database"] = await asyncio.to_thread(
                measure_existing, quick=options.quick
            )
        self.notes["bench_seconds"] = round(time.perf_counter() - started, 1)
        return self.report()

    def _click_source(
        self,
        target: Server,
        pools: dict[str, tuple[list[dict[str, str]], list[dict[str, str]]]],
        service_url: str,
        verb: str,
        data: dict[str, Any],
        user: TeamsUser,
        *,
        index: int,
    ) -> Any:
        template = invoke_template(service_url, verb, data, user)
        if target.name == "reference":
            # The echo bot answers any click with a card; the values do not matter to it.
            filler = {
                "request": str(uuid.uuid4()),
                "attempt": str(uuid.uuid4()),
                "room": "hh-anchor",
            }
            return template_source(template, lambda i: filler)
        pool = pools[target.name][index]
        used = getattr(self, "_used", {})
        self._used = used
        start = used.get((target.name, index), 0)
        remaining = pool[start:]

        source = pool_source(template, remaining)

        def counted(i: int) -> bytes | None:
            body = source(i)
            if body is not None:
                used[(target.name, index)] = used.get((target.name, index), start) + 1
            return body

        return counted

    async def _top_up(self, server: Server, connector: ConnectorControl, turns: int) -> None:
        """Messages until the server has answered `turns` activities in all (memory check)."""
        missing = turns - server.turns
        if missing <= 0:
            return
        say(f"  {missing} more turns to reach {turns} on {server.name}")
        source = message_source(connector.service_url, "help")
        remaining = iter(range(missing))

        def limited(i: int) -> bytes | None:
            return source(i) if next(remaining, None) is not None else None

        await drive(
            server,
            limited,
            concurrency=16,
            duration=120,
            warmup=0,
            expect=OK_MESSAGE,
            connector=None,
        )

    def report(self) -> dict[str, Any]:
        report = {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "server_core": 0,
                "quick": self.options.quick,
                "seconds_per_window": self.options.duration,
            },
            "results": self.results,
            "ratios": ratios(self.results),
            "notes": self.notes,
        }
        report["targets"] = targets(report)
        return report


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each product figure over the reference's in the same scenario and concurrency."""
    reference = {
        (row["scenario"], row["concurrency"]): row
        for row in results
        if row["target"] == "reference"
    }
    out = []
    for row in results:
        if row["target"] == "reference":
            continue
        base = reference.get((row["scenario"], row["concurrency"]))
        if base is None:
            continue

        def ratio(key: str, row: dict[str, Any] = row, base: dict[str, Any] = base) -> float | None:
            mine, theirs = row.get(key), base.get(key)
            if not mine or not theirs:
                return None
            return round(mine / theirs, 2)

        out.append(
            {
                "scenario": row["scenario"],
                "target": row["target"],
                "concurrency": row["concurrency"],
                "throughput": ratio("throughput"),
                "p50_ms": ratio("p50_ms"),
                "p99_ms": ratio("p99_ms"),
                "cpu_ms_per_activity": ratio("cpu_ms_per_activity"),
                "rss_mb": ratio("rss_mb"),
                "new_connections_per_reply": ratio("new_connections_per_reply"),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    options = parse(sys.argv[1:] if argv is None else argv)
    options.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="frontdesk-bench-"))
    try:
        report = asyncio.run(Run(options, workdir).main())
    finally:
        logs = options.out / "logs"
        logs.mkdir(exist_ok=True)
        for log in workdir.glob("*.log"):
            shutil.copy(log, logs / log.name)
        shutil.rmtree(workdir, ignore_errors=True)
    (options.out / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (options.out / "latest.md").write_text(table)
    say("")
    say(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
