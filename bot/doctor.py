"""`python app.py doctor`: checks what Frontdesk depends on and prints one line per check, with
what to do about each failure. The exit status is 1 when any check failed.

It changes nothing: it neither creates nor migrates the database, and signs nobody in or out. It
never prints a secret: not the client secret, the database password, nor any token (only the names
of the permissions a token carries, read from its claims without checking its signature).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL, make_url

from bot.approvals import policy
from bot.approvals.catalogue import load_catalogue
from bot.approvals.errors import CatalogueError
from bot.approvals.policy import load_policies
from bot.config import AppType, DirectoryKind, Settings, SettingsError, load_settings
from bot.directory.local import RoomDirectoryError, load_rooms_file
from bot.identity import AppIdentity, IdentityError, MemoryTokenCacheStore
from bot.identity.claims import unverified_claims
from bot.identity.user_tokens import is_graph_token
from bot.storage.db import (
    MIGRATIONS_DIR,
    create_db_engine,
    current_revision,
    head_revision,
    normalize_url,
)

TIMEOUT_SECONDS = 10.0
USER_TOKEN_VARIABLE = "DOCTOR_USER_TOKEN"
CHANNEL_ID = "msteams"
# Any user id will do: GetTokenStatus lists every OAuth connection of the bot for it.
PROBE_USER_ID = "frontdesk-doctor"

# Application permissions (the app token's `roles`) that Frontdesk's code uses. None without
# approval mail: every other Graph call runs with the signed-in user's delegated rights
# (docs/GRAPH.md, step 4).
APPLICATION_PERMISSIONS: tuple[str, ...] = ()
# With NOTIFY_MAIL_FROM: approval mail to approvers Teams cannot reach is sent as that mailbox
# (Mail.Send) to the address the directory has for the approver (User.Read.All).
MAIL_APPLICATION_PERMISSIONS = ("Mail.Send", "User.Read.All")
# Delegated permissions (a user token's `scp`) that the Graph calls in bot/graph use today.
DELEGATED_PERMISSIONS = (
    "User.Read",
    "Calendars.ReadWrite",
    "OnlineMeetings.ReadWrite",
    "Place.Read.All",
    "MailboxSettings.Read",
)
# Delegated permissions for calls that exist in the Graph client but no command makes yet.
DELEGATED_PERMISSIONS_LATER = ("User.Read.All", "Mail.Send")

API_PERMISSIONS = "Entra admin center > App registrations > Frontdesk > API permissions"
_NO_GRAPH = "DIRECTORY=local does not use Microsoft Graph"


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIP = "skip"


class Name(StrEnum):
    """The checks, in the order the report lists them."""

    SETTINGS = "settings"
    MODE = "mode"
    DATABASE = "database"
    MIGRATIONS = "migrations"
    ROOMS = "rooms file"
    POLICIES = "policies file"
    CATALOGUE = "catalogue file"
    MAIL = "approval mail"
    APP_TOKEN = "app token"
    APP_PERMISSIONS = "app permissions"
    GRAPH = "graph"
    TOKEN_SERVICE = "token service"
    OAUTH_CONNECTION = "oauth connection"
    DELEGATED = "delegated permissions"


@dataclass(frozen=True)
class Check:
    """The outcome of one check: what was found and, unless it is fine, what to do."""

    name: Name
    status: Status
    detail: str
    fix: str = ""


def render(checks: Sequence[Check]) -> str:
    """The report: one aligned line per check (status, name, detail, and `-> fix` if any)."""
    width = max((len(check.name.value) for check in checks), default=0)
    lines = []
    for check in checks:
        line = f"{check.status.value:<4}  {check.name.value:<{width}}  {_one_line(check.detail)}"
        if check.fix:
            line += f" -> {_one_line(check.fix)}"
        lines.append(line)
    return "".join(f"{line}\n" for line in lines)


def exit_status(checks: Sequence[Check]) -> int:
    """1 when any check failed, else 0 (warnings do not fail)."""
    return 1 if any(check.status is Status.FAIL for check in checks) else 0


def main(argv: Sequence[str], *, bot_framework_scope: str, out: TextIO) -> int:
    """`python app.py doctor`: run every check, write the report to `out`, return the status."""
    parser = argparse.ArgumentParser(
        prog="python app.py doctor",
        description="Check Frontdesk's settings, database, files and Microsoft services.",
        epilog=(
            f"Set {USER_TOKEN_VARIABLE} to a user's Microsoft Graph access token to check the "
            "delegated permissions it carries (an environment variable keeps it out of the "
            "process list and shell history). Exit status: 0 when no check failed, 1 when one "
            "did, 2 for a bad command line."
        ),
    )
    parser.parse_args(list(argv))
    user_token = os.environ.get(USER_TOKEN_VARIABLE, "").strip() or None
    checks = diagnose(bot_framework_scope=bot_framework_scope, user_token=user_token)
    out.write(render(checks))
    out.flush()
    return exit_status(checks)


def diagnose(
    *,
    bot_framework_scope: str,
    user_token: str | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> list[Check]:
    """Every check, in report order. Settings come from the environment and `.env`."""
    try:
        settings = load_settings()
    except SettingsError as error:
        problems = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
        failed = Check(
            Name.SETTINGS,
            Status.FAIL,
            "; ".join(problems) or str(error),
            "set the variables named here in the environment or .env (see README, Configuration)",
        )
        return [failed] + [
            Check(name, Status.SKIP, "needs valid settings") for name in list(Name)[1:]
        ]
    checks = [Check(Name.SETTINGS, Status.OK, "valid"), _mode(settings)]
    checks += _database(settings, timeout)
    checks.append(_rooms_file(settings))
    checks += _approval_files(settings)
    checks.append(approval_mail(settings))
    checks += asyncio.run(
        _remote_checks(
            settings,
            bot_framework_scope=bot_framework_scope,
            user_token=user_token,
            seconds=timeout,
        )
    )
    return checks


# -- local checks ----------------------------------------------------------------------------
def approval_mail(settings: Settings) -> Check:
    """Whether approvers Teams cannot reach get the approval by mail (NOTIFY_MAIL_FROM)."""
    if settings.directory is DirectoryKind.LOCAL:
        return Check(
            Name.MAIL,
            Status.SKIP,
            "DIRECTORY=local has no Microsoft Graph: approvers Teams cannot reach are recorded "
            "as unreachable and get no mail",
        )
    if not settings.notify_mail_from:
        return Check(
            Name.MAIL,
            Status.WARN,
            "NOTIFY_MAIL_FROM is empty: approvers Teams cannot reach get no mail, only the "
            "fallback channel's card",
            "set NOTIFY_MAIL_FROM to the mailbox to send from and grant the application "
            f"permissions {', '.join(MAIL_APPLICATION_PERMISSIONS)} (docs/ADMIN.md, step 6)",
        )
    if settings.local_mode:
        return Check(
            Name.MAIL,
            Status.WARN,
            f"NOTIFY_MAIL_FROM={settings.notify_mail_from}, but local mode has no app identity "
            "to send with: no mail",
            "set MICROSOFT_APP_ID, MICROSOFT_APP_PASSWORD and MICROSOFT_APP_TENANT_ID",
        )
    return Check(
        Name.MAIL,
        Status.OK,
        f"approvers Teams cannot reach are mailed from {settings.notify_mail_from} "
        f"(needs {', '.join(MAIL_APPLICATION_PERMISSIONS)}; see app permissions)",
    )


def needed_application_permissions(settings: Settings) -> tuple[str, ...]:
    """The application permissions these settings make Frontdesk use."""
    if settings.directory is DirectoryKind.GRAPH and settings.notify_mail_from:
        return APPLICATION_PERMISSIONS + MAIL_APPLICATION_PERMISSIONS
    return APPLICATION_PERMISSIONS


def _mode(settings: Settings) -> Check:
    directory = f"directory={settings.directory.value}"
    if settings.local_mode:
        return Check(
            Name.MODE,
            Status.OK,
            f"local mode: no authentication, loopback only (HOST={settings.host}); {directory}",
        )
    tenant = settings.microsoft_app_tenant_id or "any tenant"
    return Check(
        Name.MODE,
        Status.OK,
        f"authenticated as app {settings.microsoft_app_id} "
        f"({settings.microsoft_app_type.value}, {tenant}); {directory}",
    )


def _database(settings: Settings, timeout: float) -> list[Check]:
    url = make_url(normalize_url(settings.database_url))
    where = _database_label(url)
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        if path and path != ":memory:" and not Path(path).exists():
            return [
                Check(
                    Name.DATABASE,
                    Status.WARN,
                    f"{where} does not exist yet",
                    "nothing to do for a new installation (the bot creates it when it starts); "
                    "otherwise check DATABASE_URL: a relative path counts from the directory "
                    "the bot starts in",
                ),
                Check(Name.MIGRATIONS, Status.SKIP, "no database yet"),
            ]
    elif "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": str(max(1, round(timeout)))})
    engine = create_db_engine(url.render_as_string(hide_password=False), pool_size=1)
    try:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:  # any driver error: report it, never a traceback
            return [
                Check(
                    Name.DATABASE,
                    Status.FAIL,
                    f"cannot connect to {where} ({type(error).__name__}: "
                    f"{_driver_message(error, url)})",
                    "check DATABASE_URL, and that the database server runs and lets this "
                    "machine and user in",
                ),
                Check(Name.MIGRATIONS, Status.SKIP, "the database is unreachable"),
            ]
        return [Check(Name.DATABASE, Status.OK, f"connected to {where}"), _migrations(engine)]
    finally:
        engine.dispose()


def _database_label(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        path = url.database or ":memory:"
        shown = path if path == ":memory:" else str(Path(path).resolve())
        return f"SQLite file {shown}"
    port = f":{url.port}" if url.port else ""
    return f"PostgreSQL at {url.host or 'localhost'}{port}/{url.database or ''}"


def _driver_message(error: Exception, url: URL) -> str:
    """The driver's first line, shortened, with the password (should it appear) masked."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    message = lines[0] if lines else "no message"
    if url.password:
        message = message.replace(str(url.password), "***")
    return message[:200]


def _migrations(engine: Engine) -> Check:
    head = head_revision()
    try:
        current = current_revision(engine)
    except Exception as error:  # a broken alembic_version table, for one
        return Check(
            Name.MIGRATIONS,
            Status.FAIL,
            f"cannot read the schema version ({type(error).__name__})",
            "check that DATABASE_URL points at Frontdesk's database",
        )
    upgrade = (
        "back up the database, then start the bot once (`python app.py` upgrades the schema "
        "when it starts)"
    )
    if current == head:
        return Check(Name.MIGRATIONS, Status.OK, f"at the latest revision {head}")
    if current is None:
        return Check(
            Name.MIGRATIONS,
            Status.FAIL,
            f"no migration applied (the latest is {head})",
            "start the bot once: `python app.py` creates the schema when it starts",
        )
    revisions = _revisions()
    if current not in revisions:
        return Check(
            Name.MIGRATIONS,
            Status.FAIL,
            f"at revision {current}, which this Frontdesk does not know (its latest is {head})",
            "the database was upgraded by a newer Frontdesk: run that version, or restore a "
            "backup taken before the upgrade",
        )
    behind = revisions.index(current)
    return Check(
        Name.MIGRATIONS,
        Status.FAIL,
        f"at revision {current}, {behind} behind the latest {head}",
        upgrade,
    )


def _revisions() -> list[str]:
    """Every migration revision, newest first."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return [script.revision for script in ScriptDirectory.from_config(config).walk_revisions()]


def _rooms_file(settings: Settings) -> Check:
    if settings.directory is DirectoryKind.GRAPH:
        return Check(Name.ROOMS, Status.SKIP, "DIRECTORY=graph takes the rooms from Microsoft 365")
    try:
        rooms = load_rooms_file(settings.rooms_file)
    except RoomDirectoryError as error:
        return Check(
            Name.ROOMS,
            Status.FAIL,
            str(error),
            "correct the entry named here (the comments in rooms/demo-office.yaml describe "
            "the format), or point ROOMS_FILE at another file",
        )
    buildings = len({room.building for room in rooms})
    return Check(
        Name.ROOMS,
        Status.OK,
        f"{len(rooms)} rooms in {buildings} buildings ({settings.rooms_file})",
    )


def _approval_files(settings: Settings) -> list[Check]:
    policies_fix = (
        "correct the entries named here (the comments in catalogue/policies.yaml describe the "
        "format), or point POLICIES_FILE at another file"
    )
    try:
        book = load_policies(settings.policies_file)
    except CatalogueError as error:
        return [
            Check(Name.POLICIES, Status.FAIL, str(error), policies_fix),
            Check(Name.CATALOGUE, Status.SKIP, "needs a valid policies file"),
        ]
    try:
        catalogue = load_catalogue(settings.catalogue_file, book)
    except CatalogueError as error:
        if str(error).startswith(policy.SETTING):
            # The policies name a category the catalogue lacks: a fault of the policies file.
            return [
                Check(Name.POLICIES, Status.FAIL, str(error), policies_fix),
                Check(Name.CATALOGUE, Status.SKIP, "checked against a faulty policies file"),
            ]
        return [
            Check(
                Name.POLICIES,
                Status.OK,
                f"{len(book.policies)} policies ({settings.policies_file})",
            ),
            Check(
                Name.CATALOGUE,
                Status.FAIL,
                str(error),
                "correct the entries named here (the comments in catalogue/services.yaml "
                "describe the format; each category's policy must be a policy id of "
                "POLICIES_FILE), or point CATALOGUE_FILE at another file",
            ),
        ]
    return [
        Check(
            Name.POLICIES,
            Status.OK,
            f"{len(book.policies)} policies, {len(book.groups)} approver groups "
            f"({settings.policies_file})",
        ),
        Check(
            Name.CATALOGUE,
            Status.OK,
            f"{len(catalogue.categories)} categories, each with its policy "
            f"({settings.catalogue_file})",
        ),
    ]


# -- Microsoft services ----------------------------------------------------------------------
async def _remote_checks(
    settings: Settings, *, bot_framework_scope: str, user_token: str | None, seconds: float
) -> list[Check]:
    graph_mode = settings.directory is DirectoryKind.GRAPH
    checks: list[Check] = []
    identity, why_not = _app_identity(settings, seconds)
    bot_token: str | None = None
    graph_token: str | None = None
    try:
        if identity is None:
            status = Status.FAIL if graph_mode and not settings.local_mode else Status.SKIP
            fix = "set MICROSOFT_APP_TENANT_ID" if status is Status.FAIL else ""
            checks.append(Check(Name.APP_TOKEN, status, why_not, fix))
        else:
            bot_token, check = await _app_token(identity, settings, bot_framework_scope)
            checks.append(check)
        if not graph_mode:
            checks.append(Check(Name.APP_PERMISSIONS, Status.SKIP, _NO_GRAPH))
        elif identity is None or bot_token is None:
            checks.append(Check(Name.APP_PERMISSIONS, Status.SKIP, "no app token"))
        else:
            graph_token, check = await _app_permissions(identity, settings)
            checks.append(check)
    finally:
        if identity is not None:
            identity.close()
    if not graph_mode:
        checks += [
            Check(Name.GRAPH, Status.SKIP, _NO_GRAPH),
            Check(Name.TOKEN_SERVICE, Status.SKIP, "DIRECTORY=local signs nobody in"),
            Check(Name.OAUTH_CONNECTION, Status.SKIP, "DIRECTORY=local signs nobody in"),
        ]
    else:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session:
            checks.append(await _graph(session, settings, graph_token, seconds))
            checks += await _token_service(session, settings, bot_token, seconds)
    checks.append(_delegated(settings, user_token))
    return checks


def _app_identity(settings: Settings, timeout: float) -> tuple[AppIdentity | None, str]:
    """The app's Entra identity as the bot builds it, or None and why there is none."""
    if settings.local_mode:
        return None, "local mode (no MICROSOFT_APP_ID): the bot has no credentials to check"
    if settings.microsoft_app_type is AppType.USER_ASSIGNED_MSI:
        return None, (
            "UserAssignedMSI: the token comes from the Azure host's managed identity, which "
            "only that host can ask for"
        )
    if not settings.microsoft_app_tenant_id:
        return None, "no MICROSOFT_APP_TENANT_ID to ask Entra ID for the app's own tokens"
    identity = AppIdentity(
        client_id=settings.microsoft_app_id,
        client_secret=settings.microsoft_app_password.get_secret_value(),
        tenant_id=settings.microsoft_app_tenant_id,
        authority_host=settings.aad_authority_host,
        cache_store=MemoryTokenCacheStore(),
        timeout=timeout,
    )
    return identity, ""


async def _app_token(
    identity: AppIdentity, settings: Settings, scope: str
) -> tuple[str | None, Check]:
    host = _host(settings.aad_authority_host)
    try:
        token = await identity.app_token([scope])
    except IdentityError as error:
        return None, Check(Name.APP_TOKEN, Status.FAIL, error.message, _identity_fix(error, host))
    return token, Check(
        Name.APP_TOKEN,
        Status.OK,
        f"{host} gave the app a token for {scope} (tenant {settings.microsoft_app_tenant_id})",
    )


def _identity_fix(error: IdentityError, host: str) -> str:
    """What to do about a refused or failed token request, by its OAuth error or AADSTS code."""
    code = error.code or ""
    if code == "invalid_client" or "AADSTS7000215" in error.message:
        return (
            "MICROSOFT_APP_PASSWORD is not a valid client secret of MICROSOFT_APP_ID (wrong, or "
            "expired): add a new one under App registrations > Frontdesk > Certificates & "
            "secrets and set MICROSOFT_APP_PASSWORD to its Value"
        )
    if code == "unauthorized_client" or "AADSTS700016" in error.message:
        return (
            "no app MICROSOFT_APP_ID in tenant MICROSOFT_APP_TENANT_ID: check both against the "
            "app registration's Overview page"
        )
    if "AADSTS90002" in error.message or code == "invalid_tenant":
        return "no such tenant: check MICROSOFT_APP_TENANT_ID (the Directory (tenant) ID)"
    return (
        f"check that {host} is reachable from here (AAD_AUTHORITY_HOST, DNS, proxy, firewall) "
        "and MICROSOFT_APP_ID, MICROSOFT_APP_PASSWORD and MICROSOFT_APP_TENANT_ID"
    )


async def _app_permissions(identity: AppIdentity, settings: Settings) -> tuple[str | None, Check]:
    scope = settings.graph_scope
    try:
        token = await identity.app_token([scope])
    except IdentityError as error:
        host = _host(settings.aad_authority_host)
        return None, Check(
            Name.APP_PERMISSIONS,
            Status.FAIL,
            f"no app token for {scope}: {error.message}",
            _identity_fix(error, host),
        )
    claims = unverified_claims(token)
    if claims is None:
        return token, Check(
            Name.APP_PERMISSIONS,
            Status.WARN,
            f"the app token for {scope} is not a JWT, so its roles cannot be read",
            "check GRAPH_BASE_URL: Entra ID issues JWTs for Microsoft Graph",
        )
    return token, application_permissions(claims, scope, needed_application_permissions(settings))


def application_permissions(
    claims: Mapping[str, Any], scope: str, needed: Sequence[str] = APPLICATION_PERMISSIONS
) -> Check:
    """The app token's `roles` against the application permissions Frontdesk needs."""
    roles = claims.get("roles")
    granted = sorted(str(role) for role in roles) if isinstance(roles, list) else []
    missing = _missing(needed, granted)
    unused = _missing(granted, needed)
    seen = f"roles in the app token for {scope}, read without checking its signature"
    if missing:
        return Check(
            Name.APP_PERMISSIONS,
            Status.FAIL,
            f"missing application permissions {', '.join(missing)} ({seen}: "
            f"{', '.join(granted) or 'none'})",
            f"add them as application permissions and grant admin consent in {API_PERMISSIONS}",
        )
    wanted = ", ".join(needed) or "none"
    if unused:
        return Check(
            Name.APP_PERMISSIONS,
            Status.WARN,
            f"granted application permissions Frontdesk does not use: {', '.join(unused)} "
            f"(needed: {wanted}; {seen})",
            f"remove them in {API_PERMISSIONS}: an app should hold only what it uses "
            "(docs/GRAPH.md, step 4)",
        )
    return Check(
        Name.APP_PERMISSIONS,
        Status.OK,
        f"needed: {wanted}; granted: {', '.join(granted) or 'none'} ({seen})",
    )


async def _graph(
    session: aiohttp.ClientSession, settings: Settings, app_token: str | None, seconds: float
) -> Check:
    path = "/places/microsoft.graph.room"
    host = _host(settings.graph_base_url)
    headers = {"Accept": "application/json"}
    if app_token:
        headers["Authorization"] = f"Bearer {app_token}"
    try:
        async with session.get(
            settings.graph_base_url + path, params={"$top": "1"}, headers=headers
        ) as response:
            status = response.status
            code = _error_code(await _json(response))
    except (TimeoutError, aiohttp.ClientError) as error:
        return Check(
            Name.GRAPH,
            Status.FAIL,
            _no_answer(host, error, seconds),
            "check GRAPH_BASE_URL and that this machine reaches it (DNS, proxy, firewall)",
        )
    answered = f"{host} answered GET {path} with HTTP {status}" + (f" {code}" if code else "")
    if status == 200:
        return Check(Name.GRAPH, Status.OK, answered)
    if status in (401, 403):
        who = "the app's own token" if app_token else "no token"
        return Check(
            Name.GRAPH,
            Status.OK,
            f"{answered} (with {who}): reachable. Frontdesk reads rooms with each user's "
            "delegated rights, not the app's",
        )
    if status in (400, 404):
        return Check(
            Name.GRAPH,
            Status.FAIL,
            answered,
            "GRAPH_BASE_URL must be Microsoft Graph with its version, such as "
            "https://graph.microsoft.com/v1.0",
        )
    return Check(
        Name.GRAPH,
        Status.FAIL,
        answered,
        "Microsoft Graph is busy or failing: see the Microsoft 365 service health page and "
        "try again later",
    )


async def _token_service(
    session: aiohttp.ClientSession, settings: Settings, bot_token: str | None, seconds: float
) -> list[Check]:
    """GetTokenStatus lists the bot's OAuth connections (for any user id)."""
    path = "/api/usertoken/GetTokenStatus"
    host = _host(settings.bot_oauth_url)
    params = {"userId": PROBE_USER_ID, "channelId": CHANNEL_ID, "api-version": "token"}
    headers = {"Accept": "application/json"}
    if bot_token:
        headers["Authorization"] = f"Bearer {bot_token}"
    skipped = Check(Name.OAUTH_CONNECTION, Status.SKIP, "needs the token service")
    try:
        async with session.get(
            settings.bot_oauth_url + path, params=params, headers=headers
        ) as response:
            status = response.status
            body = await _json(response)
    except (TimeoutError, aiohttp.ClientError) as error:
        failed = Check(
            Name.TOKEN_SERVICE,
            Status.FAIL,
            _no_answer(host, error, seconds),
            "check BOT_OAUTH_URL (the token service of the Azure Bot's cloud and region) and "
            "that this machine reaches it",
        )
        return [failed, skipped]
    answered = f"{host} answered GetTokenStatus with HTTP {status}"
    if status in (401, 403):
        if settings.local_mode:
            fix = (
                "DIRECTORY=graph needs the Azure Bot's MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD"
            )
        elif bot_token is None:
            fix = "first get the app token (above): the token service wants the bot's own token"
        else:
            fix = (
                "check that the Azure Bot's Microsoft App ID is MICROSOFT_APP_ID, and that "
                "BOT_OAUTH_URL is the token service of its cloud"
            )
        refused = Check(
            Name.TOKEN_SERVICE, Status.FAIL, f"{answered}: the bot's credentials were refused", fix
        )
        return [refused, skipped]
    if status != 200 or not isinstance(body, list):
        code = _error_code(body)
        failed = Check(
            Name.TOKEN_SERVICE,
            Status.FAIL,
            answered + (f" {code}" if code else "") + ("" if status != 200 else ", not a list"),
            "check BOT_OAUTH_URL; if it is right, the service is failing: try again later",
        )
        return [failed, skipped]
    connections = {
        str(entry.get("connectionName")): str(entry.get("serviceProviderDisplayName") or "")
        for entry in body
        if isinstance(entry, dict) and entry.get("connectionName")
    }
    names = ", ".join(sorted(connections)) or "none"
    reached = Check(
        Name.TOKEN_SERVICE,
        Status.OK,
        f"{answered}; the Azure Bot has {len(connections)} OAuth connection(s)",
    )
    wanted = settings.oauth_connection_name
    if wanted in connections:
        provider = connections[wanted] or "provider not named"
        found = Check(
            Name.OAUTH_CONNECTION,
            Status.OK,
            f"OAUTH_CONNECTION_NAME={wanted!r} is an OAuth connection of the bot ({provider})",
        )
        return [reached, found]
    return [
        reached,
        Check(
            Name.OAUTH_CONNECTION,
            Status.FAIL,
            f"the Azure Bot has no OAuth connection {wanted!r} (it has: {names})",
            "set OAUTH_CONNECTION_NAME to one of those, or add it in the Azure portal: your "
            "Azure Bot > Settings > Configuration > Add OAuth Connection Settings "
            "(docs/GRAPH.md, step 5)",
        ),
    ]


def _delegated(settings: Settings, user_token: str | None) -> Check:
    if settings.directory is not DirectoryKind.GRAPH:
        return Check(Name.DELEGATED, Status.SKIP, _NO_GRAPH)
    if user_token is None:
        return Check(
            Name.DELEGATED,
            Status.SKIP,
            f"no user token at hand (set {USER_TOKEN_VARIABLE} to a user's Graph access token "
            "to check the delegated permissions it carries)",
        )
    claims = unverified_claims(user_token)
    graph = settings.graph_resource
    if claims is None:
        return Check(
            Name.DELEGATED,
            Status.FAIL,
            f"{USER_TOKEN_VARIABLE} is not a JWT",
            "give a user's access token for Microsoft Graph, as the OAuth connection returns it",
        )
    if not is_graph_token(user_token, graph):
        return Check(
            Name.DELEGATED,
            Status.FAIL,
            f"{USER_TOKEN_VARIABLE} is for {claims.get('aud')!r}, not Microsoft Graph ({graph})",
            "give a user's access token for Microsoft Graph, as the OAuth connection returns it",
        )
    scopes = str(claims.get("scp") or "").split()
    seen = "scp of the user token, read without checking its signature"
    missing = _missing(DELEGATED_PERMISSIONS, scopes)
    if missing:
        return Check(
            Name.DELEGATED,
            Status.FAIL,
            f"missing delegated permissions {', '.join(missing)} ({seen}: "
            f"{', '.join(scopes) or 'none'})",
            f"add them as delegated Microsoft Graph permissions in {API_PERMISSIONS}, grant "
            "admin consent, add them to the OAuth connection's scopes, and sign in again "
            "(docs/GRAPH.md, steps 4 and 5)",
        )
    later = _missing(DELEGATED_PERMISSIONS_LATER, scopes)
    note = f"; not granted, for approvals later: {', '.join(later)}" if later else ""
    return Check(
        Name.DELEGATED,
        Status.OK,
        f"all {len(DELEGATED_PERMISSIONS)} needed are granted ({seen}){note}",
    )


# -- helpers ---------------------------------------------------------------------------------
def _missing(needed: Sequence[str], granted: Sequence[str]) -> list[str]:
    """Those of `needed` not in `granted` (permission names compare without case)."""
    have = {name.lower() for name in granted}
    return [name for name in needed if name.lower() not in have]


async def _json(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None


def _error_code(body: Any) -> str | None:
    """`error.code` of a Microsoft error body (Graph and the token service use this shape)."""
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code[:64] if isinstance(code, str) else None


def _no_answer(host: str, error: BaseException, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer from {host} within {timeout:g} s (TimeoutError)"
    return f"cannot reach {host} ({type(error).__name__})"


def _host(url: str) -> str:
    """`https://graph.microsoft.com/v1.0` -> `graph.microsoft.com` (with a port if it has one;
    never the user and password a URL may carry)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def _one_line(value: str) -> str:
    return " ".join(value.split())
