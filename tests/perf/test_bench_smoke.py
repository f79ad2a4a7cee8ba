"""The benchmark harness in a tiny mode, so that it cannot rot: every scenario runs for a moment
against the real `python app.py` and the stock echo bot, and the result file has every figure.

This checks the harness, not the speed: figures are only required to be there and sane.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.prereq import repo_root

SCENARIOS = {"message", "approve", "book", "reply_50ms"}


def test_a_tiny_bench_run_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "results"
    run = subprocess.run(
        [
            sys.executable, "-m", "bench.run",
            "--duration", "0.6", "--concurrency", "1", "4",
            "--pool", "400", "--burst", "20", "--searches", "2", "--turns", "0",
            "--skip-postgres", "--skip-bigdb", "--out", str(out),
        ],
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((out / "latest.json").read_text())

    rows = report["results"]
    assert {row["scenario"] for row in rows} == SCENARIOS
    assert {row["target"] for row in rows} == {"reference", "sqlite"}
    for row in rows:
        where = f"{row['scenario']}/{row['target']}/c={row['concurrency']}"
        assert row["activities"] > 0 and row["throughput"] > 0, where
        assert row["failed"] == 0, (where, row["statuses"])
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"], where
        assert row["cpu_ms_per_activity"] > 0, where
        assert row["rss_mb"] > 10, where
    messages = [row for row in rows if row["scenario"] in ("message", "reply_50ms")]
    for row in messages:
        # Each measured turn replied once through the fake connector, which counted it: a turn
        # answered as a redelivery (an activity id used by an earlier window) sends no reply.
        assert row["replies"] == row["activities"], row
        assert row["new_connections_per_reply"] is not None, row
    stock = [row for row in messages if row["target"] == "reference"]
    assert all(row["new_connections_per_reply"] >= 0.9 for row in stock), "stock: one per reply"

    ratios = report["ratios"]
    assert len(ratios) == len([row for row in rows if row["target"] != "reference"])
    assert all(ratio["throughput"] and ratio["throughput"] > 0 for ratio in ratios)

    notes = report["notes"]
    assert notes["startup"]["ready_seconds"] > 0
    assert notes["startup"]["rss_at_rest_mb"] > 10
    search = notes["room_search"]
    assert search["rooms"] == 100 and len(search["searches"]) == 2
    assert all(run["sequential_round_trips"] >= 1 for run in search["searches"])
    burst = notes["proactive_burst"]
    assert burst["recipients"] == 20
    assert burst["delivered"] + burst["lost"] == 20
    assert 1 <= burst["peak_requests_per_second"] <= burst["tenant_limit_per_second"]
    assert report["targets"], "no target verdicts"
    table = (out / "latest.md").read_text()
    assert "| message | stock echo |" in table and "| target | goal | measured | met |" in table
