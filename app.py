"""Frontdesk composition root: builds everything from settings. `python app.py` serves the bot."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from botframework.connector.auth import ServiceClientCredentialsFactory
from sqlalchemy import Engine, text

from bot import doctor
from bot.actions import CardActions
from bot.approvals.catalogue import load_catalogue
from bot.approvals.errors import CatalogueError
from bot.approvals.policy import StaticApproverResolver, load_policies
from bot.approvals.service import ApprovalService
from bot.booking import BookingPolicy, BookingService, Clock, system_clock
from bot.config import DirectoryKind, Settings, SettingsError, load_settings
from bot.directory import RoomDirectory
from bot.directory.graph import GraphDirectory, MailboxZones
from bot.directory.local import (
    LocalDirectory,
    RoomDirectoryError,
    load_manager_map,
    load_room_owners,
)
from bot.graph import GraphClient
from bot.identity import AppIdentity, BotTokenService
from bot.identity.msal_tokens import MsalHttpClient
from bot.identity.user_tokens import UserTokens
from bot.logs import configure_logging
from bot.notifications import Messenger, RequestNotifier
from bot.storage.db import create_db_engine, migrations_current, upgrade
from bot.storage.deliveries import DeliveryLog
from bot.storage.repository import (
    BookingRepository,
    ConversationRepository,
    TokenCacheRepository,
    UserRepository,
)
from bot.storage.service_requests import ServiceRequestRepository
from bot.tasks import BackgroundTasks
from bot.teams_adapter import TeamsMessenger, build_adapter, messages_endpoint
from bot.teams_handler import FrontdeskBot
from bot.users import UserService, WelcomeGuard

logger = logging.getLogger("frontdesk")


class StartupError(RuntimeError):
    """Frontdesk cannot start; the message says what to fix."""


@dataclass(frozen=True)
class Components:
    """Everything the running app is made of, for tests and admin commands."""

    settings: Settings
    engine: Engine
    booking: BookingService
    users: UserService
    bot: FrontdeskBot
    user_tokens: UserTokens | None = None
    approvals: ApprovalService | None = None
    tasks: BackgroundTasks = field(default_factory=BackgroundTasks)


ENGINE = web.AppKey("engine", Engine)
COMPONENTS = web.AppKey("components", Components)
HTTP = web.AppKey("http", aiohttp.ClientSession)
BOT_FRAMEWORK_SCOPE = "https://api.botframework.com/.default"


def build_components(
    settings: Settings,
    *,
    clock: Clock = system_clock,
    http: aiohttp.ClientSession | None = None,
    msal_http_client: MsalHttpClient | None = None,
    messenger: Messenger | None = None,
) -> Components:
    """Wire storage, directory, services and the Teams handler together.

    `http` is the one shared HTTP session (needed by the graph directory); `msal_http_client`
    lets tests answer Entra ID locally.
    """
    engine = create_db_engine(settings.database_url)
    bookings = BookingRepository(engine)
    conversations = ConversationRepository(engine)
    directory: RoomDirectory
    user_tokens: UserTokens | None = None
    mailbox_zones: MailboxZones | None = None
    if settings.directory is DirectoryKind.GRAPH:
        if http is None:
            raise StartupError("the graph directory needs the shared HTTP session")
        user_tokens = _user_tokens(settings, engine, clock, http, msal_http_client)
        graph = GraphClient(http, base_url=settings.graph_base_url)
        directory = GraphDirectory(
            graph, user_tokens, cache_seconds=settings.room_cache_seconds, clock=clock
        )
        mailbox_zones = MailboxZones(graph, user_tokens, clock=clock)
    else:
        try:
            directory = LocalDirectory.from_file(settings.rooms_file, bookings)
        except RoomDirectoryError as error:
            raise StartupError(str(error)) from None
    booking = BookingService(
        directory=directory,
        bookings=bookings,
        policy=BookingPolicy(
            max_minutes=settings.max_booking_minutes,
            max_days_ahead=settings.max_days_ahead,
            max_occurrences=settings.max_occurrences,
        ),
        clock=clock,
    )
    users = UserService(
        users=UserRepository(engine),
        conversations=conversations,
        default_zone=ZoneInfo(settings.timezone),
        clock=clock,
        mailbox_zones=mailbox_zones,
    )
    approvals = _approvals(settings, engine, clock)
    tasks = BackgroundTasks()
    notifier = RequestNotifier(
        approvals=approvals,
        requests=ServiceRequestRepository(engine),
        conversations=conversations,
        bookings=bookings,
        messenger=messenger,
        tasks=tasks,
        clock=clock,
        default_zone=ZoneInfo(settings.timezone),
    )
    bot = FrontdeskBot(
        actions=CardActions(
            booking, user_tokens=user_tokens, approvals=approvals, notifier=notifier
        ),
        user_tokens=user_tokens,
        users=users,
        welcome=WelcomeGuard(conversations, clock),
        allowed_tenants=frozenset(settings.allowed_tenants),
        deliveries=DeliveryLog(engine, clock),
    )
    return Components(
        settings=settings,
        engine=engine,
        booking=booking,
        users=users,
        bot=bot,
        user_tokens=user_tokens,
        approvals=approvals,
        tasks=tasks,
    )


def _approvals(settings: Settings, engine: Engine, clock: Clock) -> ApprovalService:
    """The service catalogue and approval policies, validated now so a broken file stops the
    start with a message naming CATALOGUE_FILE or POLICIES_FILE and the faulty path."""
    try:
        book = load_policies(settings.policies_file)
        catalogue = load_catalogue(settings.catalogue_file, book)
    except CatalogueError as error:
        raise StartupError(str(error)) from None
    managers: dict[str, str] = {}
    owners: dict[str, list[str]] = {}
    if settings.directory is DirectoryKind.LOCAL:
        managers = load_manager_map(settings.rooms_file)
        owners = load_room_owners(settings.rooms_file)
    resolver = StaticApproverResolver(managers=managers, owners=owners, groups=book.groups)
    return ApprovalService(
        requests=ServiceRequestRepository(engine),
        catalogue=catalogue,
        policies=book,
        resolver_for=lambda actor: resolver,
        clock=clock,
        new_id=lambda: str(uuid.uuid4()),
    )


def _user_tokens(
    settings: Settings,
    engine: Engine,
    clock: Clock,
    http: aiohttp.ClientSession,
    msal_http_client: MsalHttpClient | None,
) -> UserTokens:
    app_identity: AppIdentity | None = None
    if not settings.local_mode:
        app_identity = AppIdentity(
            client_id=settings.microsoft_app_id,
            client_secret=settings.microsoft_app_password.get_secret_value(),
            tenant_id=settings.microsoft_app_tenant_id,
            authority_host=settings.aad_authority_host,
            http_client=msal_http_client,
            cache_store=TokenCacheRepository(engine, clock),
        )
    identity = app_identity

    async def bot_framework_token() -> str | None:
        # The token service wants the bot's own token; local mode has none.
        if identity is None:
            return None
        return await identity.app_token([BOT_FRAMEWORK_SCOPE])

    return UserTokens(
        BotTokenService(http, base_url=settings.bot_oauth_url, app_token=bot_framework_token),
        connection_name=settings.oauth_connection_name,
        app_identity=app_identity,
        app_id=settings.microsoft_app_id,
        graph_scopes=(f"{_origin(settings.graph_base_url)}/.default",),
    )


def _origin(url: str) -> str:
    """`https://graph.microsoft.us/v1.0` -> `https://graph.microsoft.us` (the scope's resource)."""
    parsed = urlsplit(url)
    return f"{parsed.scheme}://{parsed.netloc}"


async def create_app(
    settings: Settings,
    *,
    clock: Clock = system_clock,
    msal_http_client: MsalHttpClient | None = None,
    bot_credentials_factory: ServiceClientCredentialsFactory | None = None,
) -> web.Application:
    """The aiohttp application: `/api/messages`, `/healthz`, `/readyz`.

    `bot_credentials_factory` lets tests give the bot's outgoing replies a token without
    Microsoft Entra ID (botbuilder's own factory, from the app id and password, by default).
    """
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    adapter = build_adapter(settings, credentials_factory=bot_credentials_factory)
    try:
        components = build_components(
            settings,
            clock=clock,
            http=http,
            msal_http_client=msal_http_client,
            messenger=TeamsMessenger(adapter, settings.microsoft_app_id),
        )
    except BaseException:
        await http.close()
        raise
    app = web.Application(client_max_size=256 * 1024)
    app[ENGINE] = components.engine
    app[COMPONENTS] = components
    app[HTTP] = http

    async def resources(app: web.Application) -> AsyncIterator[None]:
        await asyncio.to_thread(upgrade, app[ENGINE])
        yield
        # Notifications started by the last turns finish before the connections close.
        await app[COMPONENTS].tasks.drain(timeout=app[COMPONENTS].settings.shutdown_timeout)
        await app[HTTP].close()
        app[ENGINE].dispose()

    app.cleanup_ctx.append(resources)
    app.on_shutdown.append(_log_shutdown)
    app.router.add_post(
        "/api/messages",
        messages_endpoint(adapter, components.bot, local_mode=settings.local_mode),
    )
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app


async def _log_shutdown(app: web.Application) -> None:
    logger.info(
        "stopping: no new connections; requests in flight get up to %s s to finish",
        app[COMPONENTS].settings.shutdown_timeout,
    )


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def _readyz(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]

    def check() -> str | None:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            if not migrations_current(engine):
                return "database schema is not at the latest migration"
        except Exception as error:  # any failure means not ready
            logger.warning("readiness check failed: %s", type(error).__name__)
            return "database unreachable"
        return None

    problem = await asyncio.to_thread(check)
    if problem:
        return web.json_response({"status": "not ready", "problem": problem}, status=503)
    return web.json_response({"status": "ready"})


def main(argv: list[str]) -> int:
    if argv[:1] == ["doctor"]:
        # Before the settings are loaded: the doctor reports bad settings as one of its checks,
        # and its report says all that the log would.
        logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
        return doctor.main(argv[1:], bot_framework_scope=BOT_FRAMEWORK_SCOPE, out=sys.stdout)
    try:
        settings = load_settings()
    except SettingsError as error:
        sys.stderr.write(f"frontdesk: {error}\n")
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if argv[:1] == ["audit-export"]:
        return asyncio.run(_audit_export(settings, argv[1:]))
    if argv:
        sys.stderr.write(
            f"frontdesk: unknown command {argv[0]!r}; use `doctor`, `audit-export` or none\n"
        )
        return 2
    mode = "local mode, no authentication" if settings.local_mode else "authenticated"
    logger.info(
        "Frontdesk on http://%s:%s/api/messages (%s, directory=%s)",
        settings.host,
        settings.port,
        mode,
        settings.directory.value,
    )
    try:
        # On SIGTERM or SIGINT aiohttp stops accepting connections, waits up to
        # shutdown_timeout for requests in flight (turns finish), then runs the cleanups.
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            print=None,
            shutdown_timeout=settings.shutdown_timeout,
        )
    except StartupError as error:
        sys.stderr.write(f"frontdesk: {error}\n")
        return 2
    return 0


async def _audit_export(settings: Settings, args: list[str]) -> int:
    """`python app.py audit-export [--tenant ID] [--since ISO-TIME] [--output FILE]`: the audit
    trail of service requests as CSV (to standard output unless --output is given)."""
    parser = argparse.ArgumentParser(prog="python app.py audit-export")
    parser.add_argument("--tenant", help="only this tenant's requests")
    parser.add_argument("--since", type=datetime.fromisoformat, help="only events from then on")
    parser.add_argument("--output", type=Path, help="write to this file instead of stdout")
    options = parser.parse_args(args)
    since = options.since
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    try:
        components = build_components(settings)
    except StartupError as error:
        sys.stderr.write(f"frontdesk: {error}\n")
        return 2
    await asyncio.to_thread(upgrade, components.engine)
    assert components.approvals is not None
    try:
        if options.output is None:
            count = await components.approvals.export_audit_csv(
                sys.stdout, tenant_id=options.tenant, since=since
            )
        else:
            with options.output.open("w", encoding="utf-8", newline="") as out:
                count = await components.approvals.export_audit_csv(
                    out, tenant_id=options.tenant, since=since
                )
    finally:
        components.engine.dispose()
    logger.info("exported %d audit events", count)
    return 0


# How long Python may spend joining worker threads once the server has stopped.
EXIT_GRACE_SECONDS = 5.0


def _exit_within(grace: float, code: int) -> None:
    """Exit with `code` even if worker threads are still busy `grace` seconds from now.

    botbuilder sends replies with `requests` in asyncio's thread pool, and Python joins those
    threads at exit without a deadline: a reply stuck on the network would keep the process
    alive long after SHUTDOWN_TIMEOUT, until the orchestrator kills it.
    """

    def force_exit() -> None:
        logger.warning("worker threads still busy %s s after shutdown; exiting anyway", grace)
        os._exit(code)

    timer = threading.Timer(grace, force_exit)
    timer.daemon = True
    timer.start()


if __name__ == "__main__":
    exit_code = main(sys.argv[1:])
    _exit_within(EXIT_GRACE_SECONDS, exit_code)
    sys.exit(exit_code)
