"""Frontdesk composition root: builds everything from settings. `python app.py` serves the bot."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import Engine, text

from bot.actions import CardActions
from bot.booking import BookingPolicy, BookingService, Clock, system_clock
from bot.config import DirectoryKind, Settings, SettingsError, load_settings
from bot.directory.local import LocalDirectory, RoomDirectoryError
from bot.storage.db import create_db_engine, migrations_current, upgrade
from bot.storage.repository import BookingRepository, ConversationRepository, UserRepository
from bot.teams_adapter import build_adapter, messages_endpoint
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


ENGINE = web.AppKey("engine", Engine)
COMPONENTS = web.AppKey("components", Components)


def build_components(settings: Settings, *, clock: Clock = system_clock) -> Components:
    """Wire storage, directory, services and the Teams handler together."""
    engine = create_db_engine(settings.database_url)
    bookings = BookingRepository(engine)
    conversations = ConversationRepository(engine)
    if settings.directory is DirectoryKind.GRAPH:
        raise StartupError(
            "DIRECTORY=graph is not available in this version yet; use DIRECTORY=local."
        )
    try:
        directory = LocalDirectory.from_file(settings.rooms_file, bookings)
    except RoomDirectoryError as error:
        raise StartupError(str(error)) from None
    booking = BookingService(
        directory=directory,
        bookings=bookings,
        policy=BookingPolicy(
            max_minutes=settings.max_booking_minutes, max_days_ahead=settings.max_days_ahead
        ),
        clock=clock,
    )
    users = UserService(
        users=UserRepository(engine),
        conversations=conversations,
        default_zone=ZoneInfo(settings.timezone),
        clock=clock,
    )
    bot = FrontdeskBot(
        actions=CardActions(booking),
        users=users,
        welcome=WelcomeGuard(conversations, clock),
        allowed_tenants=frozenset(settings.allowed_tenants),
    )
    return Components(settings=settings, engine=engine, booking=booking, users=users, bot=bot)


def create_app(settings: Settings, *, clock: Clock = system_clock) -> web.Application:
    """The aiohttp application: `/api/messages`, `/healthz`, `/readyz`."""
    components = build_components(settings, clock=clock)
    adapter = build_adapter(settings)
    app = web.Application(client_max_size=256 * 1024)
    app[ENGINE] = components.engine
    app[COMPONENTS] = components

    async def database(app: web.Application) -> AsyncIterator[None]:
        await asyncio.to_thread(upgrade, app[ENGINE])
        yield
        app[ENGINE].dispose()

    app.cleanup_ctx.append(database)
    app.router.add_post(
        "/api/messages",
        messages_endpoint(adapter, components.bot, local_mode=settings.local_mode),
    )
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app


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


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: list[str]) -> int:
    try:
        settings = load_settings()
    except SettingsError as error:
        sys.stderr.write(f"frontdesk: {error}\n")
        return 2
    configure_logging(settings.log_level)
    try:
        app = create_app(settings)
    except StartupError as error:
        sys.stderr.write(f"frontdesk: {error}\n")
        return 2
    mode = "local mode, no authentication" if settings.local_mode else "authenticated"
    logger.info(
        "Frontdesk on http://%s:%s/api/messages (%s, directory=%s)",
        settings.host,
        settings.port,
        mode,
        settings.directory.value,
    )
    web.run_app(app, host=settings.host, port=settings.port, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
