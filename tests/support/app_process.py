"""The real `python app.py` in a subprocess, for end-to-end tests: local mode on a free loopback
port, its own SQLite file, and no settings leaking in from the developer's shell.

`frontdesk_process` runs the server until the test is done; `run_app` runs it once to the end
(a start-up that must fail, or a command such as `audit-export`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.support.playground import free_port
from tests.support.prereq import repo_root

# Settings the developer's shell might carry that would change the app under test.
SCRUBBED_ENV_PREFIXES = (
    "MICROSOFT_APP_",
    "DATABASE_URL",
    "ROOMS_FILE",
    "DIRECTORY",
    "GRAPH_",
    "BOT_OAUTH_URL",
    "OAUTH_",
    "AAD_",
    "ROOM_CACHE",
)


@dataclass
class BotProcess:
    process: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/api/messages"


def app_environment(
    workdir: Path, port: int, settings: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of an `app.py` under test: this one's, scrubbed of Frontdesk settings,
    in local mode on 127.0.0.1:`port` with `workdir/frontdesk.db`; then `settings`."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(SCRUBBED_ENV_PREFIXES)
    }
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        MICROSOFT_APP_ID="",  # local mode, also over a stray .env
        DATABASE_URL=f"sqlite:///{workdir / 'frontdesk.db'}",
        TIMEZONE="UTC",
        LOG_LEVEL="INFO",
    )
    env.update(settings or {})
    return env


def _text(path: Path) -> str:
    return path.read_text(errors="replace")


@asynccontextmanager
async def frontdesk_process(
    workdir: Path, settings: Mapping[str, str] | None = None
) -> AsyncIterator[BotProcess]:
    """Start `python app.py` (ready when `/readyz` answers 200) and stop it afterwards."""
    port = free_port()
    env = app_environment(workdir, port, settings)
    log = workdir / "frontdesk.log"
    out = log.open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "app.py", cwd=repo_root(), env=env, stdout=out, stderr=out
    )
    bot = BotProcess(process=process, port=port, log=log)
    try:
        await _wait_ready(bot.base_url, process, log)
        yield bot
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()
        out.close()


async def _wait_ready(base_url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(150):
            if process.returncode is not None:
                raise AssertionError(f"app.py exited: {_text(log)}")
            try:
                async with session.get(f"{base_url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"app.py did not become ready: {_text(log)}")


def run_app(workdir: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """`python app.py *args` to the end, in `workdir` (no .env) with only PATH, HOME, a database
    in `workdir`, a free port and `settings`; its exit code and output."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workdir),
        "DATABASE_URL": f"sqlite:///{workdir / 'frontdesk.db'}",
        "PORT": str(free_port()),
        **settings,
    }
    return subprocess.run(
        [sys.executable, str(repo_root() / "app.py"), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
