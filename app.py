"""Frontdesk composition root: builds everything from settings. `python app.py` serves the bot."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from botframework.connector.auth import ServiceClientCredentialsFactory
from sqlalchemy import Engine, text

from bot import doctor
from bot.actions import BUDGETED_VERBS, DURABLE_VERBS, CardActions
from bot.admin import AdminService
from bot.approvals.catalogue import load_catalogue
from bot.approvals.errors import CatalogueError
from bot.approvals.policy import StaticApproverResolver, load_policies
from bot.approvals.service import ApprovalService, ManagerLookup
from bot.booking import BookingPolicy, BookingService, Clock, no_checkpoint, system_clock
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
from bot.graph.client import DEFAULT_TIMEOUT_SECONDS as GRAPH_TIMEOUT_SECONDS
from bot.identity import AppIdentity, BotTokenService, MemoryTokenCacheStore, TokenCacheStore
from bot.identity.msal_tokens import MsalHttpClient
from bot.identity.user_tokens import UserTokens
from bot.logs import configure_logging
from bot.notifications import (
    GraphMailer,
    Messenger,
    RateLimiter,
    RequestNotifier,
    RetryPolicy,
    SendLimits,
)
from bot.storage.admin import AdminQueries
from bot.storage.db import create_db_engine, migrations_current, upgrade
from bot.storage.deliveries import DeliveryLog
from bot.storage.jobs import JobRepository
from bot.storage.repository import (
    BookingRepository,
    ConversationRepository,
    TokenCacheRepository,
    UserRepository,
)
from bot.storage.service_requests import ServiceRequestRepository
from bot.tasks import BackgroundTasks, Checkpoint, SlowClicks
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
    slow_clicks: SlowClicks | None = None


ENGINE = web.AppKey("engine", Engine)
COMPONENTS = web.AppKey("components", Components)
HTTP = web.AppKey("http", aiohttp.ClientSession)
BOT_FRAMEWORK_SCOPE = "https://api.botframework.com/.default"

AppTokenSource = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class Seams:
    """What tests put in place of the world outside the process; each default is production's.

    `clock` is every service's time; `msal_http_client` answers for Entra ID;
    `bot_credentials_factory` gives the bot's outgoing replies a token (botbuilder's own, from
    the app id and password, by default); `connector_retry` is how proactive sends are retried
    and `send_limits` how they are paced (by default Teams' limits, PROACTIVE_TENANT_RATE);
    `mail_app_token` is the app-only token approval mail is sent with; `graph_sleep` and
    `graph_timeout_seconds` are the Graph client's waits between retries and per call;
    `checkpoint` is called at the booking path's crash points (bot/tasks.py).
    """

    clock: Clock = system_clock
    msal_http_client: MsalHttpClient | None = None
    bot_credentials_factory: ServiceClientCredentialsFactory | None = None
    connector_retry: RetryPolicy | None = None
    send_limits: SendLimits | None = None
    mail_app_token: AppTokenSource | None = None
    graph_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    graph_timeout_seconds: float = GRAPH_TIMEOUT_SECONDS
    checkpoint: Checkpoint = no_checkpoint


PRODUCTION = Seams()


def build_components(
    settings: Settings,
    seams: Seams = PRODUCTION,
    *,
    http: aiohttp.ClientSession | None = None,
    messenger: Messenger | None = None,
) -> Components:
    """Wire storage, directory, services and the Teams handler together.

    `http` is the one shared HTTP session (needed by the graph directory).
    """
    clock = seams.clock
    engine = create_db_engine(settings.database_url)
    bookings = BookingRepository(engine)
    conversations = ConversationRepository(engine)
    directory: RoomDirectory
    user_tokens: UserTokens | None = None
    mailbox_zones: MailboxZones | None = None
    mailer: GraphMailer | None = None
    if settings.directory is DirectoryKind.GRAPH:
        if http is None:
            raise StartupError("the graph directory needs the shared HTTP session")
        user_tokens = _user_tokens(settings, engine, clock, http, seams.msal_http_client)
        graph = GraphClient(
            http,
            base_url=settings.graph_base_url,
            sleep=seams.graph_sleep,
            timeout_seconds=seams.graph_timeout_seconds,
        )
        directory = GraphDirectory(
            graph, user_tokens, cache_seconds=settings.room_cache_seconds, clock=clock
        )
        mailbox_zones = MailboxZones(graph, user_tokens, clock=clock)
        mailer = _mailer(settings, graph, seams.msal_http_client, seams.mail_app_token)
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
        checkpoint=seams.checkpoint,
        approval_holds=True,  # the room owners' approval is asked for through `approvals`
    )
    users = UserService(
        users=UserRepository(engine),
        conversations=conversations,
        default_zone=ZoneInfo(settings.timezone),
        clock=clock,
        mailbox_zones=mailbox_zones,
    )
    approvals = _approvals(
        settings,
        engine,
        clock,
        manager_lookup=directory.manager_of if isinstance(directory, GraphDirectory) else None,
    )
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
        mailer=mailer,
    )
    bot = FrontdeskBot(
        actions=CardActions(
            booking,
            user_tokens=user_tokens,
            approvals=approvals,
            notifier=notifier,
            admin=_admin(settings, engine, clock, approvals),
        ),
        user_tokens=user_tokens,
        users=users,
        welcome=WelcomeGuard(conversations, clock),
        allowed_tenants=frozenset(settings.allowed_tenants),
        deliveries=DeliveryLog(engine, clock),
    )
    bot.slow_clicks = SlowClicks(
        tasks=tasks,
        budget=settings.turn_budget_seconds,
        run=bot.actions.run,
        working=bot.actions.working,
        failed=bot.actions.unfinished,
        budgeted=BUDGETED_VERBS,
        durable=DURABLE_VERBS,
        jobs=JobRepository(engine, clock, lease=timedelta(seconds=settings.work_lease_seconds)),
        messenger=messenger,
        checkpoint=seams.checkpoint,
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
        slow_clicks=bot.slow_clicks,
    )


def _admin(
    settings: Settings, engine: Engine, clock: Clock, approvals: ApprovalService
) -> AdminService:
    """The `admin` command for ADMIN_USERS, in the bot's own tenant: MICROSOFT_APP_TENANT_ID,
    else ALLOWED_TENANTS (neither: any tenant)."""
    tenant = settings.microsoft_app_tenant_id
    return AdminService(
        admins=settings.admin_users,
        home_tenants=[tenant] if tenant else settings.allowed_tenants,
        queries=AdminQueries(engine),
        approvals=approvals,
        clock=clock,
        day_zone=ZoneInfo(settings.timezone),
    )


def _mailer(
    settings: Settings,
    graph: GraphClient,
    msal_http_client: MsalHttpClient | None,
    app_token: AppTokenSource | None,
) -> GraphMailer | None:
    """Approval mail for approvers Teams cannot reach: sent as NOTIFY_MAIL_FROM with the app's
    own token (application permissions Mail.Send and User.Read.All). Off without the setting,
    and in local mode, which has no app identity (`app_token` is the tests' stand-in)."""
    if not settings.notify_mail_from:
        return None
    if app_token is None:
        if settings.local_mode:
            logger.warning("NOTIFY_MAIL_FROM is set, but local mode has no app token: no mail")
            return None
        # App-only tokens live in msal's own cache.
        identity = _app_identity(settings, msal_http_client, MemoryTokenCacheStore())
        scopes = [settings.graph_scope]

        async def identity_token() -> str | None:
            return await identity.app_token(scopes)

        app_token = identity_token
    return GraphMailer(
        graph,
        app_token=app_token,
        sender=settings.notify_mail_from,
        teams_app_id=settings.teams_app_id or settings.microsoft_app_id.lower(),
    )


def _app_identity(
    settings: Settings, msal_http_client: MsalHttpClient | None, cache_store: TokenCacheStore
) -> AppIdentity:
    """The bot's Entra ID app registration (MICROSOFT_APP_ID, its password and tenant), with its
    tokens cached in `cache_store`."""
    return AppIdentity(
        client_id=settings.microsoft_app_id,
        client_secret=settings.microsoft_app_password.get_secret_value(),
        tenant_id=settings.microsoft_app_tenant_id,
        authority_host=settings.aad_authority_host,
        http_client=msal_http_client,
        cache_store=cache_store,
    )


def _approvals(
    settings: Settings,
    engine: Engine,
    clock: Clock,
    *,
    manager_lookup: ManagerLookup | None = None,
) -> ApprovalService:
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
        manager_lookup=manager_lookup,
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
        app_identity = _app_identity(
            settings, msal_http_client, TokenCacheRepository(engine, clock)
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
        graph_scopes=(settings.graph_scope,),
    )


async def create_app(settings: Settings, seams: Seams = PRODUCTION) -> web.Application:
    """The aiohttp application: `/api/messages`, `/healthz`, `/readyz`."""
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    adapter = build_adapter(settings, http=http, credentials_factory=seams.bot_credentials_factory)
    try:
        components = build_components(
            settings,
            seams,
            http=http,
            messenger=TeamsMessenger(
                adapter,
                settings.microsoft_app_id,
                retry=seams.connector_retry,
                limits=seams.send_limits
                or SendLimits(per_tenant=RateLimiter.per_second(settings.proactive_tenant_rate)),
            ),
        )
    except BaseException:
        await http.close()
        raise
    app = web.Application(client_max_size=256 * 1024)
    app[ENGINE] = components.engine
    app[COMPONENTS] = components
    app[HTTP] = http

    async def resources(app: web.Application) -> AsyncIterator[None]:
        # Closed even when the migration fails: aiohttp runs no cleanup for a context whose
        # start raised.
        try:
            await asyncio.to_thread(upgrade, app[ENGINE])
            yield
            # Notifications started by the last turns finish before the connections close.
            await app[COMPONENTS].tasks.drain(timeout=app[COMPONENTS].settings.shutdown_timeout)
        finally:
            await app[HTTP].close()
            app[ENGINE].dispose()

    app.cleanup_ctx.append(resources)
    app.cleanup_ctx.append(_recover_booking_work)
    app.on_shutdown.append(_log_shutdown)
    app.router.add_post(
        "/api/messages",
        messages_endpoint(adapter, components.bot, local_mode=settings.local_mode),
    )
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app


async def _recover_booking_work(app: web.Application) -> AsyncIterator[None]:
    """At start-up (after the migrations) and then once per WORK_LEASE_SECONDS, finish the
    booking clicks that a process which died left unfinished; stopped before the drain."""
    slow_clicks = app[COMPONENTS].slow_clicks
    recovering = None
    if slow_clicks is not None:
        recovering = asyncio.get_running_loop().create_task(
            slow_clicks.recover_forever(), name="recover booking work"
        )
    yield
    if recovering is not None:
        recovering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await recovering


CRASH_AT_ENV = "FRONTDESK_TEST_CRASH_AT"


def _crash_hook(settings: Settings) -> Checkpoint:
    """Tests only: `FRONTDESK_TEST_CRASH_AT=<point>` kills the process (SIGKILL, as a crash
    would) when the booking path reaches that point: `before_graph`, `after_graph` (the event is
    made, the database does not know it yet) or `after_commit` (the result is stored, the card
    not yet updated). Honoured in local mode only; read here and nowhere else."""
    point = os.environ.get(CRASH_AT_ENV, "")
    if not point:
        return no_checkpoint
    if not settings.local_mode:
        logger.warning("%s is ignored outside local mode", CRASH_AT_ENV)
        return no_checkpoint
    logger.warning("test crash point armed: %s", point)

    def checkpoint(name: str) -> None:
        if name == point:
            logger.warning("test crash point %s reached: killing the process", name)
            os.kill(os.getpid(), signal.SIGKILL)

    return checkpoint


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
            create_app(settings, Seams(checkpoint=_crash_hook(settings))),
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

    Database calls and msal's token requests (`requests`) run in asyncio's thread pool, and
    Python joins those threads at exit without a deadline: one stuck on the network would keep
    the process alive long after SHUTDOWN_TIMEOUT, until the orchestrator kills it.
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
