"""ADMIN_USERS: empty by default, comma-separated Entra object ids; nothing else starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import SettingsError, load_settings

ADA = "A0A0A0A0-1111-4222-8333-000000000001"
BEN = "b1b1b1b1-2222-4333-8444-000000000002"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ADMIN_USERS", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_nobody_is_an_admin_by_default() -> None:
    assert load_settings().admin_users == []


def test_admins_are_object_ids_in_lower_case_once_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_USERS", f" {ADA} ,{BEN},, {ADA.lower()} ")

    assert load_settings().admin_users == [ADA.lower(), BEN]


@pytest.mark.parametrize(
    "value",
    [
        "ada@contoso.com",
        f"{ADA};{BEN}",
        "29:1AdaAdmin000000000000000000000000000000000000000",
        ADA[:-1],
    ],
)
def test_anything_but_object_ids_stops_the_start_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ADMIN_USERS", value)

    with pytest.raises(SettingsError) as raised:
        load_settings()

    assert "ADMIN_USERS: must be Entra object ids (GUIDs)" in str(raised.value)
