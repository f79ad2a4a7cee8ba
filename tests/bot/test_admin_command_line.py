"""Start-up checks of the catalogue and policies, and `python app.py audit-export`."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

from app import build_components
from bot.config import load_settings
from bot.storage.db import upgrade
from tests.conftest import make_actor
from tests.support.app_process import run_app

REQUESTER = make_actor("00000000-0000-0000-0000-000000000100")


def test_a_broken_catalogue_stops_the_start_naming_the_setting(tmp_path: Path) -> None:
    broken = tmp_path / "services.yaml"
    broken.write_text("currency: EUR\ncategories:\n  - id: catering\n    name: x\n", "utf-8")

    result = run_app(tmp_path, CATALOGUE_FILE=str(broken))

    assert result.returncode == 2
    assert "CATALOGUE_FILE" in result.stderr and str(broken) in result.stderr


def test_a_broken_policies_file_stops_the_start_naming_the_setting(tmp_path: Path) -> None:
    broken = tmp_path / "policies.yaml"
    broken.write_text("policies: [\n", "utf-8")

    result = run_app(tmp_path, POLICIES_FILE=str(broken))

    assert result.returncode == 2
    assert "POLICIES_FILE" in result.stderr


def _submit_one(database_url: str) -> str:
    settings = load_settings(DATABASE_URL=database_url, MICROSOFT_APP_ID="", HOST="127.0.0.1")
    components = build_components(settings)
    upgrade(components.engine)
    assert components.approvals is not None
    request = asyncio.run(
        components.approvals.submit(
            REQUESTER,
            "facilities",
            {"need": "repair", "where": 'Harbour House 2, "Compass"', "details": "=1+1"},
            submission_id="cli-1",
        )
    )
    components.engine.dispose()
    return request.id


def test_audit_export_writes_the_trail_as_csv(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'frontdesk.db'}"
    request_id = _submit_one(database_url)
    output = tmp_path / "audit.csv"

    result = run_app(tmp_path, "audit-export", "--output", str(output), DATABASE_URL=database_url)

    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(output.read_text("utf-8"))))
    assert [(r["request_id"], r["actor_id"], r["action"]) for r in rows] == [
        (request_id, REQUESTER.user_id, "submitted")
    ]


def test_audit_export_refuses_unknown_commands(tmp_path: Path) -> None:
    result = run_app(tmp_path, "export-everything")

    assert result.returncode == 2
    assert "audit-export" in result.stderr
