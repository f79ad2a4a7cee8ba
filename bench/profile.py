"""Where the bot's CPU goes: py-spy samples `python app.py` under load, top functions by share.

    python -m bench.profile [message|approve|book] [--seconds 8] [--out bench/results]

Needs py-spy (`.venv/bin/pip install py-spy`; not a project dependency). Writes
<out>/profile-<scenario>.txt: the functions with the largest share of samples, inclusive (on the
stack) and exclusive (at the top), and the collapsed stacks next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bench.harness import ROOT, ConnectorControl, drive, frontdesk, module_process, pool_source
from bench.run import APPROVER, OK_INVOKE, OK_MESSAGE, invoke_template, message_source, seed_pools
from tests.support.activities import MEGAN


def top_functions(collapsed: str, limit: int = 25) -> str:
    """Inclusive and exclusive shares of the functions in py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame for frame in stack.split(";") if frame]
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            exclusive[frames[-1]] += count
    if not total:
        return "no samples\n"
    lines = [f"{total} samples", "", "inclusive (on the stack):"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(limit)]
    lines += ["", "exclusive (running):"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in exclusive.most_common(limit)]
    return "\n".join(lines) + "\n"


async def profile(scenario: str, seconds: float, out: Path) -> Path:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    workdir = Path(tempfile.mkdtemp(prefix="frontdesk-profile-"))
    url = f"sqlite:///{workdir / 'frontdesk.db'}"
    async with (
        aiohttp.ClientSession() as session,
        module_process("bench.connector", name="connector") as (_, ports),
        frontdesk("sqlite", workdir, {"DATABASE_URL": url}) as bot,
    ):
        connector = ConnectorControl(session, ports[1], ports[0])
        books, requests = await asyncio.to_thread(seed_pools, url, 20000, datetime.now(UTC))
        if scenario == "message":
            source, expect = message_source(connector.service_url), OK_MESSAGE
        elif scenario == "approve":
            template = invoke_template(
                connector.service_url,
                "request.decide",
                {"request": "@@request@@", "decision": "approve", "item": "all"},
                APPROVER,
            )
            source, expect = pool_source(template, requests), OK_INVOKE
        else:
            template = invoke_template(
                connector.service_url,
                "booking.book",
                {"attempt": "@@attempt@@", "room": "@@room@@"},
                MEGAN,
            )
            source, expect = pool_source(template, books), OK_INVOKE
        raw = workdir / "stacks.txt"
        sampler = await asyncio.create_subprocess_exec(
            spy,
            "record",
            "--pid",
            str(bot.pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--function",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--nonblocking",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        window = await drive(
            bot,
            source,
            concurrency=16,
            duration=seconds,
            warmup=0.0,
            expect=expect,
            connector=connector,
        )
        await sampler.wait()
        collapsed = raw.read_text() if raw.exists() else ""
    figures = window.figures()
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    target = out / f"profile-{scenario}.txt"
    header = (
        f"py-spy, {scenario} at concurrency 16 for {seconds:g} s: {figures['throughput']}/s, "
        f"{figures['cpu_ms_per_activity']} ms CPU per activity\n\n"
    )
    target.write_text(header + top_functions(collapsed))
    (out / f"profile-{scenario}.collapsed").write_text(collapsed)
    shutil.rmtree(workdir, ignore_errors=True)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument(
        "scenario", choices=["message", "approve", "book"], nargs="?", default="message"
    )
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    options = parser.parse_args()
    path = asyncio.run(profile(options.scenario, options.seconds, options.out))
    sys.stdout.write(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
