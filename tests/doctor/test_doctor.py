"""`python app.py doctor` as an admin runs it: a child process, healthy and broken setups.

Graph mode runs against the local fakes: Entra ID behind an HTTPS proxy (the real msal in the
child, see entra_https.py), Microsoft Graph and the Bot Framework token service on 127.0.0.1.
Several faults that do not hide one another share a run, to keep the file fast.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from bot.config import DEFAULT_CATALOGUE_FILE, DEFAULT_ROOMS_FILE, load_settings
from bot.directory.local import load_rooms_file
from bot.doctor import (
    Name,
    Status,
    application_permissions,
    approval_mail,
    needed_application_permissions,
)
from bot.storage.db import MIGRATIONS_DIR, create_db_engine, head_revision, upgrade
from tests.doctor.entra_https import EntraProxy
from tests.support.app_process import SCRUBBED_ENV_PREFIXES
from tests.support.fake_entra import FakeEntra, unsigned_jwt
from tests.support.fake_graph import FakeGraph, FakeTenant
from tests.support.fake_token_service import FakeTokenService
from tests.support.graph_contract import metadata_available
from tests.support.playground import free_port
from tests.support.prereq import repo_root, require

CONNECTION = "graph"
BOT_FRAMEWORK = "https://api.botframework.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
NEEDED_SCOPES = (
    "User.Read Calendars.ReadWrite OnlineMeetings.ReadWrite Place.Read.All MailboxSettings.Read"
)
# Whatever the developer's shell or CI carries that would change the child's settings or network.
SCRUBBED = (
    *SCRUBBED_ENV_PREFIXES,
    "CATALOGUE_FILE",
    "POLICIES_FILE",
    "BOT_",
    "DOCTOR_",
    "ALLOWED_TENANTS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)


@dataclass
class Report:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def check(self, name: Name) -> tuple[str, str]:
        """(status, the rest of the line) of one check."""
        for line in self.lines:
            status, rest = line[:4].strip(), line[4:].strip()
            if rest.startswith(f"{name.value} "):
                return status, rest[len(name.value) :].strip()
        raise AssertionError(f"no line for {name.value!r} in:\n{self.stdout}")

    def expect(self, name: Name, status: str) -> str:
        """The detail of a check that must have this status."""
        actual, detail = self.check(name)
        assert actual == status, f"{name.value}: {actual} {detail}"
        return detail

    def status(self, name: Name) -> str:
        return self.check(name)[0]

    def statuses(self) -> dict[Name, str]:
        return {name: self.status(name) for name in Name}

    def text(self) -> str:
        return self.stdout + self.stderr


async def run_doctor(workdir: Path, settings: Mapping[str, str]) -> Report:
    """`python app.py doctor` in `workdir` (no `.env` there) with these settings only."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(SCRUBBED)}
    env.update(MICROSOFT_APP_ID="", TIMEZONE="UTC", LOG_LEVEL="INFO")
    env.update(settings)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(repo_root() / "app.py"),
        "doctor",
        cwd=workdir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    report = Report(process.returncode, out.decode(), err.decode())
    assert "Traceback" not in report.text(), report.text()
    return report


def migrated_database(path: Path, revision: str = "head") -> str:
    """A SQLite database at `path`, migrated to `revision`; its DATABASE_URL."""
    url = f"sqlite:///{path}"
    engine = create_db_engine(url)
    try:
        if revision == "head":
            upgrade(engine)
        else:
            with engine.begin() as connection:
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS_DIR))
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
    finally:
        engine.dispose()
    return url


def previous_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    revisions = [script.revision for script in ScriptDirectory.from_config(config).walk_revisions()]
    return revisions[1]  # newest first


def user_graph_token(scopes: str) -> str:
    """A user's Graph token (the doctor reads claims without checking signatures)."""
    now = int(time.time())
    return unsigned_jwt(
        {"aud": GRAPH_APP_ID, "scp": scopes, "oid": "megan", "iat": now, "exp": now + 3600}
    )


# -- local mode ----------------------------------------------------------------------------------
async def test_a_healthy_local_setup_passes(tmp_path: Path) -> None:
    url = migrated_database(tmp_path / "frontdesk.db")

    report = await run_doctor(tmp_path, {"DATABASE_URL": url})

    assert report.code == 0, report.text()
    # One line per check in a fixed order: status, name and detail in aligned columns.
    width = max(len(name.value) for name in Name)
    assert [line[6 : 6 + width].rstrip() for line in report.lines] == [n.value for n in Name]
    assert {line[4:6] + line[6 + width : 8 + width] for line in report.lines} == {"    "}
    assert all(line[8 + width] != " " for line in report.lines)
    statuses = report.statuses()
    assert {statuses[name] for name in list(Name)[:7]} == {"ok"}
    assert {statuses[name] for name in list(Name)[7:]} == {"skip"}
    assert report.check(Name.MIGRATIONS)[1] == f"at the latest revision {head_revision()}"
    rooms = load_rooms_file(DEFAULT_ROOMS_FILE)
    assert report.check(Name.ROOMS)[1].startswith(f"{len(rooms)} rooms in 2 buildings")
    assert str(tmp_path / "frontdesk.db") in report.check(Name.DATABASE)[1]


async def test_a_bad_setting_fails_naming_the_variable(tmp_path: Path) -> None:
    report = await run_doctor(tmp_path, {"TIMEZONE": "Mars/Olympus_Mons"})

    assert report.code == 1
    detail = report.expect(Name.SETTINGS, "FAIL")
    assert "TIMEZONE: unknown IANA time zone 'Mars/Olympus_Mons'" in detail
    assert "-> set the variables named here" in detail
    assert {report.status(name) for name in list(Name)[1:]} == {"skip"}


async def test_broken_files_and_an_old_schema_each_fail(tmp_path: Path) -> None:
    url = migrated_database(tmp_path / "old.db", previous_revision())
    rooms = tmp_path / "rooms.yaml"
    rooms.write_text(DEFAULT_ROOMS_FILE.read_text().replace("capacity: 40", "capacity: 0", 1))
    catalogue = tmp_path / "services.yaml"
    text = DEFAULT_CATALOGUE_FILE.read_text()
    assert "policy: standard" in text
    catalogue.write_text(text.replace("policy: standard", "policy: no-such-policy", 1))

    report = await run_doctor(
        tmp_path,
        {"DATABASE_URL": url, "ROOMS_FILE": str(rooms), "CATALOGUE_FILE": str(catalogue)},
    )

    assert report.code == 1, report.text()
    assert report.status(Name.DATABASE) == "ok"
    detail = report.expect(Name.MIGRATIONS, "FAIL")
    assert f"at revision {previous_revision()}, 1 behind the latest {head_revision()}" in detail
    assert "start the bot once" in detail
    detail = report.expect(Name.ROOMS, "FAIL")
    assert f"ROOMS_FILE {rooms}" in detail and "capacity" in detail
    assert report.status(Name.POLICIES) == "ok"
    detail = report.expect(Name.CATALOGUE, "FAIL")
    assert f"CATALOGUE_FILE {catalogue}" in detail
    assert "unknown policy 'no-such-policy'" in detail


async def test_an_empty_database_and_an_unreachable_one_fail(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    port = free_port()  # nothing listens there
    password = "doctor-must-not-print-this"

    never_migrated = await run_doctor(tmp_path, {"DATABASE_URL": f"sqlite:///{empty}"})
    unreachable = await run_doctor(
        tmp_path, {"DATABASE_URL": f"postgresql://frontdesk:{password}@127.0.0.1:{port}/fd"}
    )

    assert never_migrated.code == 1
    status, detail = never_migrated.check(Name.MIGRATIONS)
    assert (status, detail.split(" -> ")[0]) == (
        "FAIL",
        f"no migration applied (the latest is {head_revision()})",
    )
    assert unreachable.code == 1
    detail = unreachable.expect(Name.DATABASE, "FAIL")
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{port}/fd (OperationalError" in detail
    assert "-> check DATABASE_URL" in detail
    assert unreachable.status(Name.MIGRATIONS) == "skip"
    assert password not in unreachable.text()


# -- graph mode ----------------------------------------------------------------------------------
@dataclass
class Microsoft:
    """The fakes of Microsoft's services, and the settings that point the doctor at them."""

    entra: FakeEntra
    proxy: EntraProxy
    graph: FakeGraph
    tokens: FakeTokenService
    issued: dict[str, list[str]]
    """Resource -> the app tokens Entra gave for it."""
    env: dict[str, str]


@pytest.fixture
def entra() -> FakeEntra:
    return FakeEntra()


@pytest.fixture
def proxy(entra: FakeEntra, tmp_path: Path) -> Iterator[EntraProxy]:
    with EntraProxy(entra, tmp_path) as running:
        yield running


@pytest.fixture
async def microsoft(
    entra: FakeEntra, proxy: EntraProxy, tmp_path: Path
) -> AsyncIterator[Microsoft]:
    require(metadata_available(), "Graph v1.0 metadata is missing under ../shared/schemas")
    async with FakeGraph(FakeTenant.demo()) as graph, FakeTokenService() as tokens:
        issued: dict[str, list[str]] = {}

        def accept(token: str, resource: str) -> None:
            issued.setdefault(resource, []).append(token)
            if resource == BOT_FRAMEWORK:
                tokens.expected_app_token = token  # the service accepts the bot's token only
            else:
                graph.tenant.app_tokens.add(token)

        proxy.on_app_token = accept
        tokens.expected_app_token = "no token issued yet"
        env = {
            **proxy.env,
            "DATABASE_URL": migrated_database(tmp_path / "frontdesk.db"),
            "MICROSOFT_APP_ID": entra.client_id,
            "MICROSOFT_APP_PASSWORD": entra.client_secret,
            "MICROSOFT_APP_TENANT_ID": entra.tenant_id,
            "MICROSOFT_APP_TYPE": "SingleTenant",
            "DIRECTORY": "graph",
            "GRAPH_BASE_URL": graph.base_url,
            "BOT_OAUTH_URL": tokens.base_url,
            "OAUTH_CONNECTION_NAME": CONNECTION,
        }
        yield Microsoft(entra, proxy, graph, tokens, issued, env)
        graph.assert_contract()


async def test_a_healthy_graph_setup_passes(microsoft: Microsoft, tmp_path: Path) -> None:
    microsoft.tokens.add_connection(CONNECTION)
    user_token = user_graph_token(f"openid profile {NEEDED_SCOPES}")

    report = await run_doctor(tmp_path, {**microsoft.env, "DOCTOR_USER_TOKEN": user_token})

    assert report.code == 0, report.text()
    # Every check runs and passes; graph mode has no rooms file, and approval mail is off.
    assert report.statuses() == {name: "ok" for name in Name} | {
        Name.ROOMS: "skip",
        Name.MAIL: "warn",
    }
    assert "NOTIFY_MAIL_FROM is empty" in report.check(Name.MAIL)[1]
    graph_resource = microsoft.graph.origin
    assert set(microsoft.issued) == {BOT_FRAMEWORK, graph_resource}
    assert f"token for {BOT_FRAMEWORK}/.default" in report.check(Name.APP_TOKEN)[1]
    assert report.check(Name.APP_PERMISSIONS)[1].startswith("needed: none; granted: none")
    assert "without checking its signature" in report.check(Name.APP_PERMISSIONS)[1]
    assert "HTTP 200" in report.check(Name.GRAPH)[1]
    [places] = [r for r in microsoft.graph.requests if "/places/" in r.path]
    assert places.user == "app"
    assert f"OAUTH_CONNECTION_NAME='{CONNECTION}'" in report.check(Name.OAUTH_CONNECTION)[1]
    [status_call] = [r for r in microsoft.tokens.requests if r.path.endswith("GetTokenStatus")]
    assert status_call.authorization == f"Bearer {microsoft.issued[BOT_FRAMEWORK][0]}"
    delegated = report.check(Name.DELEGATED)[1]
    assert "all 5 needed are granted" in delegated
    assert "for approvals later: User.Read.All, Mail.Send" in delegated
    assert microsoft.proxy.refused == []
    secrets = [microsoft.entra.client_secret, user_token, *sum(microsoft.issued.values(), [])]
    assert not [secret for secret in secrets if secret in report.text()]


async def test_graph_faults_each_fail(microsoft: Microsoft, tmp_path: Path) -> None:
    microsoft.tokens.add_connection("other")
    microsoft.proxy.app_roles = ["Mail.Send"]
    closed = free_port()

    report = await run_doctor(
        tmp_path,
        {
            **microsoft.env,
            "GRAPH_BASE_URL": f"http://127.0.0.1:{closed}/v1.0",
            "DOCTOR_USER_TOKEN": user_graph_token(NEEDED_SCOPES.replace("Place.Read.All", "")),
        },
    )

    assert report.code == 1, report.text()
    detail = report.expect(Name.GRAPH, "FAIL")
    assert f"cannot reach 127.0.0.1:{closed} (ClientConnectorError)" in detail
    assert "-> check GRAPH_BASE_URL" in detail
    assert report.status(Name.TOKEN_SERVICE) == "ok"
    detail = report.expect(Name.OAUTH_CONNECTION, "FAIL")
    assert f"no OAuth connection '{CONNECTION}' (it has: other)" in detail
    assert "-> set OAUTH_CONNECTION_NAME" in detail
    detail = report.expect(Name.DELEGATED, "FAIL")
    assert detail.startswith("missing delegated permissions Place.Read.All")
    assert "grant admin consent" in detail
    detail = report.expect(Name.APP_PERMISSIONS, "warn")
    assert "does not use: Mail.Send" in detail
    assert report.status(Name.APP_TOKEN) == "ok"


async def test_a_wrong_client_secret_fails_and_is_not_printed(
    microsoft: Microsoft, tmp_path: Path
) -> None:
    microsoft.tokens.add_connection(CONNECTION)
    wrong = "wrong-secret-that-must-not-be-printed"

    report = await run_doctor(tmp_path, {**microsoft.env, "MICROSOFT_APP_PASSWORD": wrong})

    assert report.code == 1
    detail = report.expect(Name.APP_TOKEN, "FAIL")
    assert "invalid_client (AADSTS7000215)" in detail
    assert "-> MICROSOFT_APP_PASSWORD is not a valid client secret" in detail
    assert report.status(Name.APP_PERMISSIONS) == "skip"
    # Without the bot's token the token service refuses the doctor, as it would refuse the bot.
    detail = report.expect(Name.TOKEN_SERVICE, "FAIL")
    assert "HTTP 401: the bot's credentials were refused -> first get the app token" in detail
    assert microsoft.issued == {}
    assert wrong not in report.text()


# -- the permission rules ------------------------------------------------------------------------
def test_an_app_token_lacking_a_needed_role_fails_naming_it() -> None:
    claims = {"roles": ["User.Read.All"]}

    check = application_permissions(claims, "https://graph.microsoft.com/.default", ["Mail.Send"])

    assert check.status is Status.FAIL
    assert check.detail.startswith("missing application permissions Mail.Send")
    assert "User.Read.All" in check.detail
    assert "grant admin consent" in check.fix


def test_roles_compare_without_case_and_none_needed_with_none_granted_is_fine() -> None:
    scope = "https://graph.microsoft.com/.default"

    case_differs = application_permissions({"roles": ["place.read.all"]}, scope, ["Place.Read.All"])
    nothing = application_permissions({}, scope, ())

    assert case_differs.status is Status.OK
    assert nothing.status is Status.OK
    assert nothing.detail.startswith("needed: none; granted: none")


def test_approval_mail_is_checked_and_needs_its_application_permissions() -> None:
    base = {"DATABASE_URL": "sqlite:///unused.db", "TIMEZONE": "UTC"}
    graph = {
        **base,
        "DIRECTORY": "graph",
        "OAUTH_CONNECTION_NAME": CONNECTION,
        "MICROSOFT_APP_ID": "5d2b9c1e-7a44-4f0e-8d3a-1b2c3d4e5f60",
        "MICROSOFT_APP_PASSWORD": "secret",
        "MICROSOFT_APP_TENANT_ID": "8c4e1b7a-0d5f-4b8e-9a61-2f3c4d5e6f70",
        "HOST": "0.0.0.0",
    }
    local = load_settings(**base)
    unset = load_settings(**graph)
    mailing = load_settings(**graph, NOTIFY_MAIL_FROM="frontdesk@contoso.com")

    assert approval_mail(local).status is Status.SKIP
    off = approval_mail(unset)
    assert off.status is Status.WARN and "NOTIFY_MAIL_FROM is empty" in off.detail
    on = approval_mail(mailing)
    assert on.status is Status.OK and "frontdesk@contoso.com" in on.detail
    assert needed_application_permissions(unset) == ()
    assert needed_application_permissions(mailing) == ("Mail.Send", "User.Read.All")
    scope = "https://graph.microsoft.com/.default"
    missing = application_permissions(
        {"roles": ["Mail.Send"]}, scope, needed_application_permissions(mailing)
    )
    assert missing.status is Status.FAIL and "User.Read.All" in missing.detail
