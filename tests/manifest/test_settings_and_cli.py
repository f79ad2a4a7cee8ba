"""`python -m manifest.build` and the settings it reads: local mode is refused with the names of
the settings to set; the package settings are validated like every other setting."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bot.config import DirectoryKind, SettingsError, load_settings
from manifest.build import AppDetails
from manifest.validate import PackageError
from tests.manifest.conftest import APP_ID, HOST
from tests.support.prereq import repo_root

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
_OUR_VARIABLES = (
    "HOST",
    "MICROSOFT_APP_ID",
    "MICROSOFT_APP_PASSWORD",
    "MICROSOFT_APP_TYPE",
    "MICROSOFT_APP_TENANT_ID",
    "DIRECTORY",
    "OAUTH_CONNECTION_NAME",
    "PUBLIC_HOSTNAME",
    "TEAMS_APP_ID",
    "DEVELOPER_NAME",
    "DEVELOPER_WEBSITE_URL",
    "DEVELOPER_PRIVACY_URL",
    "DEVELOPER_TERMS_URL",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _OUR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def _deployed(**overrides: str) -> dict[str, str]:
    values = {
        "MICROSOFT_APP_ID": APP_ID,
        "MICROSOFT_APP_PASSWORD": "not-a-real-secret",
        "MICROSOFT_APP_TENANT_ID": TENANT_ID,
        "PUBLIC_HOSTNAME": HOST,
    }
    return {**values, **overrides}


def test_local_mode_is_refused_naming_both_settings() -> None:
    with pytest.raises(PackageError) as raised:
        AppDetails.from_settings(load_settings())

    message = str(raised.value)
    assert "MICROSOFT_APP_ID" in message
    assert "PUBLIC_HOSTNAME" in message


def test_a_missing_public_hostname_is_named() -> None:
    settings = load_settings(**_deployed(PUBLIC_HOSTNAME=""))

    with pytest.raises(PackageError) as raised:
        AppDetails.from_settings(settings)

    assert "PUBLIC_HOSTNAME" in str(raised.value)
    assert "MICROSOFT_APP_ID" not in str(raised.value)


def test_an_app_id_that_is_not_a_guid_is_named() -> None:
    with pytest.raises(PackageError, match="MICROSOFT_APP_ID: must be a GUID"):
        AppDetails.from_settings(load_settings(**_deployed(MICROSOFT_APP_ID="frontdesk")))


def test_details_come_from_the_settings_with_defaults_on_the_host() -> None:
    details = AppDetails.from_settings(
        load_settings(**_deployed(PUBLIC_HOSTNAME="Rooms.Contoso.COM"))
    )

    assert details.bot_id == details.teams_app_id == APP_ID
    assert details.public_hostname == "rooms.contoso.com"
    assert details.website_url == "https://rooms.contoso.com/"
    assert details.privacy_url == "https://rooms.contoso.com/privacy"
    assert details.terms_url == "https://rooms.contoso.com/terms"
    assert details.developer_name == "Frontdesk"
    assert details.online_meetings is False


def test_graph_mode_and_a_separate_teams_app_id_are_used() -> None:
    teams_app_id = "0B7D9C1E-3F5A-4B6C-8D7E-9F0A1B2C3D4E"
    settings = load_settings(
        **_deployed(
            TEAMS_APP_ID=teams_app_id,
            DIRECTORY="graph",
            OAUTH_CONNECTION_NAME="graph",
            DEVELOPER_WEBSITE_URL="https://contoso.com/",
        )
    )

    details = AppDetails.from_settings(settings)

    assert settings.directory is DirectoryKind.GRAPH
    assert details.online_meetings is True
    assert details.teams_app_id == teams_app_id.lower()
    assert details.website_url == "https://contoso.com/"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PUBLIC_HOSTNAME", "https://frontdesk.contoso.com"),
        ("PUBLIC_HOSTNAME", "frontdesk.contoso.com:443"),
        ("PUBLIC_HOSTNAME", "frontdesk.contoso.com/api"),
        ("TEAMS_APP_ID", "frontdesk"),
        ("DEVELOPER_PRIVACY_URL", "http://contoso.com/privacy"),
        ("DEVELOPER_NAME", "Contoso Facilities and Workplace Services"),
    ],
)
def test_bad_package_settings_are_named(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(**{variable: value})


def _run_build(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in _OUR_VARIABLES}
    clean["PYTHONPATH"] = str(repo_root())
    return subprocess.run(
        [sys.executable, "-m", "manifest.build", *args],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_refuses_local_mode(tmp_path: Path) -> None:
    result = _run_build(tmp_path, {}, "--output", str(tmp_path / "app.zip"))

    assert result.returncode == 2
    assert "MICROSOFT_APP_ID" in result.stderr
    assert "PUBLIC_HOSTNAME" in result.stderr
    assert not (tmp_path / "app.zip").exists()


def test_the_command_check_refuses_a_broken_package(tmp_path: Path, schema_file: Path) -> None:
    package = tmp_path / "app.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("manifest.json", '{"manifestVersion": "1.30"}')

    result = _run_build(tmp_path, {}, "--check", str(package))

    assert result.returncode == 2
    assert "developer: 'developer' is a required property" in result.stderr
