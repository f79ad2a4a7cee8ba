"""Processes and load for benchmarks: start servers on 127.0.0.1, drive them, measure them.

A server under test runs as its own process pinned to one core (`SERVER_CPU`); the load driver,
the fake connector and the fakes share the other. Figures come from the operating system:
CPU time from /proc/<pid>/stat, RSS from /proc/<pid>/status; latencies from the driver's
monotonic clock; new TCP connections from the fake connector's accept count.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.app_process import SCRUBBED_ENV_PREFIXES as APP_SETTINGS
from tests.support.playground import free_port

ROOT = Path(__file__).resolve().parents[1]
SERVER_CPU = 0
DRIVER_CPU = 1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The end-to-end tests' list of settings a developer's shell might carry that would change the
# app under test, and the log settings, which the benchmark sets itself.
SCRUBBED_ENV_PREFIXES = (*APP_SETTINGS, "LOG_")


def pin(pid: int, cpu: int) -> None:
    """Keep a process on one core, when the machine has it (no-op elsewhere)."""
    with contextlib.suppress(AttributeError, OSError):
        if cpu < (os.cpu_count() or 1):
            os.sched_setaffinity(pid, {cpu})


def say(line: str) -> None:
    """A line of progress on standard output, at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process (all its threads) has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command: state is field 3, utime 14 and stime 15 (1-based in proc(5)).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Server:
    """A server process under test."""

    name: str
    process: asyncio.subprocess.Process
    base_url: str
    log: Path | None = None
    ready_seconds: float | None = None
    turns: int = 0
    """Activities this server has answered (all scenarios)."""

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/api/messages"

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def _read_ports(process: asyncio.subprocess.Process, name: str) -> list[int]:
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
    except TimeoutError:
        raise RuntimeError(f"{name} did not start") from None
    if not line.startswith(b"PORT "):
        raise RuntimeError(f"{name} did not start: {line!r}")
    return [int(part) for part in line.split()[1:]]


@contextlib.asynccontextmanager
async def module_process(
    module: str, *args: str, name: str
) -> AsyncIterator[tuple[Server, list[int]]]:
    """`python -m <module> --port 0 ...`, which prints `PORT <n> [<n>...]` once listening."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        "--port",
        "0",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    server = Server(name=name, process=process, base_url="")
    try:
        ports = await _read_ports(process, name)
        server.base_url = f"http://127.0.0.1:{ports[0]}"
        yield server, ports
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def frontdesk(
    name: str, workdir: Path, settings: Mapping[str, str], *, cpu: int = SERVER_CPU
) -> AsyncIterator[Server]:
    """The real `python app.py` in local mode (no authentication) on a free loopback port,
    pinned to `cpu`; `ready_seconds` is the time from spawn until /readyz answered 200."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_ENV_PREFIXES)}
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        MICROSOFT_APP_ID="",
        TIMEZONE="UTC",
        LOG_LEVEL="INFO",
        LOG_FORMAT="json",
    )
    env.update(settings)
    log = workdir / f"{name}.log"
    out = log.open("wb")
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "app.py", cwd=ROOT, env=env, stdout=out, stderr=out
    )
    pin(process.pid, cpu)
    server = Server(name=name, process=process, base_url=f"http://127.0.0.1:{port}", log=log)
    try:
        await wait_ready(server, started)
        yield server
    finally:
        await server.stop()
        out.close()


async def wait_ready(server: Server, started: float) -> None:
    """Until the server's /readyz answers 200 (RuntimeError if it exits or 60 s go by from
    `started`); `ready_seconds` is then the time since `started`."""
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.perf_counter() - started < 60:
            if server.process.returncode is not None:
                tail = server.log.read_text(errors="replace")[-2000:] if server.log else ""
                raise RuntimeError(f"{server.name} exited: {tail}")
            try:
                async with session.get(f"{server.base_url}/readyz") as response:
                    if response.status == 200:
                        server.ready_seconds = time.perf_counter() - started
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.01)
    raise RuntimeError(f"{server.name} did not become ready")


class ConnectorControl:
    """The fake connector's control port: counters and knobs."""

    def __init__(self, session: aiohttp.ClientSession, control_port: int, port: int) -> None:
        self._session = session
        self._control = f"http://127.0.0.1:{control_port}"
        self.service_url = f"http://127.0.0.1:{port}/"

    async def stats(self) -> dict[str, Any]:
        async with self._session.get(f"{self._control}/_stats") as response:
            result: dict[str, Any] = await response.json()
            return result

    async def configure(self, **knobs: Any) -> None:
        async with self._session.post(f"{self._control}/_config", json=knobs) as response:
            response.raise_for_status()

    async def reset(self) -> None:
        async with self._session.post(f"{self._control}/_reset") as response:
            response.raise_for_status()


# -- load ---------------------------------------------------------------------------------------
BodySource = Callable[[int], bytes | None]
"""The i-th request body; None when the pool is used up (the window then ends early)."""


@dataclass
class Window:
    """What one measured load window produced."""

    completed: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    cpu_seconds: float = 0.0
    replies: int = 0
    connections: int = 0
    exhausted: bool = False

    def figures(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def quantile(q: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

        throughput = self.completed / self.elapsed if self.elapsed else 0.0
        return {
            "activities": self.completed,
            "failed": self.failed,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "seconds": round(self.elapsed, 3),
            "throughput": round(throughput, 1),
            "p50_ms": quantile(0.50),
            "p95_ms": quantile(0.95),
            "p99_ms": quantile(0.99),
            "cpu_ms_per_activity": (
                round(self.cpu_seconds * 1000 / self.completed, 3) if self.completed else None
            ),
            "replies": self.replies,
            "new_connections": self.connections,
            "new_connections_per_reply": (
                round(self.connections / self.replies, 4) if self.replies else None
            ),
            "pool_exhausted": self.exhausted,
        }


async def drive(
    server: Server,
    bodies: BodySource,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    expect: frozenset[int],
    connector: ConnectorControl | None = None,
) -> Window:
    """POST bodies to the server with `concurrency` workers for `warmup` then `duration` seconds;
    the window covers the measured part only."""
    counter = iter(range(10**12))
    window = Window()
    measuring = False
    stop_at = 0.0
    limits = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    # Teams gives up on a bot's answer after 15 seconds: so does the driver (status 0).
    timeout = aiohttp.ClientTimeout(total=15)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=limits, timeout=timeout) as session:

        async def worker() -> None:
            while time.perf_counter() < stop_at:
                body = bodies(next(counter))
                if body is None:
                    window.exhausted = True
                    return
                began = time.perf_counter()
                try:
                    async with session.post(server.endpoint, data=body, headers=headers) as reply:
                        await reply.read()
                        status = reply.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                took = time.perf_counter() - began
                server.turns += 1
                if not measuring:
                    continue
                window.statuses[status] += 1
                if status in expect:
                    window.completed += 1
                    window.latencies.append(took)
                else:
                    window.failed += 1

        if warmup > 0:
            stop_at = time.perf_counter() + warmup
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        before_stats = await connector.stats() if connector else None
        before_cpu = cpu_seconds(server.pid)
        measuring = True
        began = time.perf_counter()
        stop_at = began + duration
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        window.elapsed = time.perf_counter() - began
        window.cpu_seconds = cpu_seconds(server.pid) - before_cpu
        if connector is not None and before_stats is not None:
            after = await connector.stats()
            window.replies = sum(after["counts"].values()) - sum(before_stats["counts"].values())
            window.connections = after["connections"] - before_stats["connections"]
    return window


_ACTIVITY_IDS = itertools.count(1)


def activity_id() -> str:
    """An activity id never sent before in this run. The product answers a message id it has seen
    once and ignores redeliveries, so an id used again (say by the next window, counting from 0
    again) would be a cheap turn without a reply, not the turn measured."""
    return f"bench-{os.getpid()}-{next(_ACTIVITY_IDS)}"


def template_source(
    template: dict[str, Any], fill: Callable[[int], dict[str, str]] | None = None
) -> BodySource:
    """Bodies from one activity: a fresh activity id each time (`activity_id`), and `fill(i)`
    values for `"@@name@@"` placeholders."""
    text = json.dumps(template)

    def body(index: int) -> bytes:
        out = text.replace("@@id@@", activity_id())
        if fill is not None:
            for key, value in fill(index).items():
                out = out.replace(f"@@{key}@@", value)
        return out.encode()

    return body


def pool_source(template: dict[str, Any], values: list[dict[str, str]]) -> BodySource:
    """Bodies that each use up one entry of `values` (a pool of offers or requests)."""
    text = json.dumps(template)
    taken = iter(range(len(values)))

    def body(index: int) -> bytes | None:
        position = next(taken, None)
        if position is None:
            return None
        out = text.replace("@@id@@", activity_id())
        for key, value in values[position].items():
            out = out.replace(f"@@{key}@@", value)
        return out.encode()

    return body
