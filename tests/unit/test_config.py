"""Settings: defaults, list parsing and start-up errors that name the variable."""

from __future__ import annotations

import pytest

from bot.config import AppType, DirectoryKind, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in (
        "HOST",
        "PORT",
        "MICROSOFT_APP_ID",
        "MICROSOFT_APP_PASSWORD",
        "MICROSOFT_APP_TYPE",
        "MICROSOFT_APP_TENANT_ID",
        "DATABASE_URL",
        "DIRECTORY",
        "ROOMS_FILE",
        "TIMEZONE",
        "ALLOWED_TENANTS",
        "MAX_BOOKING_MINUTES",
        "MAX_DAYS_AHEAD",
        "LOG_LEVEL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(str(tmp_path))  # no stray .env


def test_defaults_run_locally_on_loopback_with_sqlite() -> None:
    settings = load_settings()

    assert (settings.host, settings.port) == ("127.0.0.1", 3978)
    assert settings.local_mode
    assert settings.database_url == "sqlite:///./data/frontdesk.db"
    assert settings.directory is DirectoryKind.LOCAL
    assert settings.microsoft_app_type is AppType.SINGLE_TENANT
    assert settings.rooms_file.name == "demo-office.yaml"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "4000")
    monkeypatch.setenv("TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("ALLOWED_TENANTS", " t1, t2 ,,t3 ")
    monkeypatch.setenv("MAX_BOOKING_MINUTES", "120")

    settings = load_settings()

    assert settings.port == 4000
    assert settings.timezone == "Europe/Berlin"
    assert settings.allowed_tenants == ["t1", "t2", "t3"]
    assert settings.max_booking_minutes == 120


def test_local_mode_refuses_a_public_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert "MICROSOFT_APP_ID" in str(caught.value)
    assert "HOST=0.0.0.0" in str(caught.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_local_mode_accepts_loopback_addresses(host: str) -> None:
    assert load_settings(HOST=host).local_mode


def test_an_app_id_needs_a_password_and_a_tenant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROSOFT_APP_ID", "00000000-0000-0000-0000-000000000001")
    with pytest.raises(SettingsError, match="MICROSOFT_APP_PASSWORD"):
        load_settings()
    monkeypatch.setenv("MICROSOFT_APP_PASSWORD", "secret")
    with pytest.raises(SettingsError, match="MICROSOFT_APP_TENANT_ID"):
        load_settings()
    monkeypatch.setenv("MICROSOFT_APP_TENANT_ID", "tenant")
    monkeypatch.setenv("HOST", "0.0.0.0")

    settings = load_settings()

    assert not settings.local_mode
    assert "secret" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TIMEZONE", "Mars/Olympus"),
        ("PORT", "eighty"),
        ("DIRECTORY", "ldap"),
        ("DATABASE_URL", "mysql://db"),
        ("MAX_DAYS_AHEAD", "0"),
        ("LOG_LEVEL", "LOUD"),
        ("MICROSOFT_APP_TYPE", "Other"),
    ],
)
def test_bad_values_name_their_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert name in str(caught.value)


def test_graph_mode_needs_an_oauth_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIRECTORY", "graph")
    with pytest.raises(SettingsError, match="OAUTH_CONNECTION_NAME"):
        load_settings()
    monkeypatch.setenv("OAUTH_CONNECTION_NAME", "graph")

    settings = load_settings()

    assert settings.directory is DirectoryKind.GRAPH
    assert settings.graph_base_url == "https://graph.microsoft.com/v1.0"


def test_graph_mode_refuses_managed_identity_for_now(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "DIRECTORY": "graph",
        "OAUTH_CONNECTION_NAME": "graph",
        "MICROSOFT_APP_ID": "00000000-0000-0000-0000-000000000001",
        "MICROSOFT_APP_TYPE": "UserAssignedMSI",
        "MICROSOFT_APP_TENANT_ID": "tenant",
    }.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError, match="UserAssignedMSI"):
        load_settings()


def test_endpoints_must_be_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPH_BASE_URL", "graph.microsoft.com")

    with pytest.raises(SettingsError, match="GRAPH_BASE_URL"):
        load_settings()


@pytest.mark.parametrize(
    ("base_url", "resource"),
    [
        ("https://graph.microsoft.com/v1.0", "https://graph.microsoft.com"),
        ("https://graph.microsoft.us/v1.0", "https://graph.microsoft.us"),
        ("http://127.0.0.1:8123/v1.0", "http://127.0.0.1:8123"),
    ],
)
def test_graph_tokens_are_asked_for_the_origin_of_graph_base_url(
    base_url: str, resource: str
) -> None:
    settings = load_settings(GRAPH_BASE_URL=base_url)

    assert settings.graph_resource == resource
    assert settings.graph_scope == f"{resource}/.default"
