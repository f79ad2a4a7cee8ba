"""The Dockerfile, checked without docker (not installed here): its command is the README's
production command, it runs as a non-root user, its health check asks a path the running app
answers, and everything it copies exists and is what the app needs."""

from __future__ import annotations

import ast
import asyncio
import fnmatch
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.config import (
    DEFAULT_CATALOGUE_FILE,
    DEFAULT_POLICIES_FILE,
    DEFAULT_ROOMS_FILE,
    PROJECT_ROOT,
    SettingsError,
    load_settings,
)
from tests.support.app_process import frontdesk_process
from tests.support.playground import free_port
from tests.support.prereq import repo_root

ROOT = repo_root()


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON array of a CMD/ENTRYPOINT/HEALTHCHECK CMD in exec form."""
        text = self.arguments
        if self.keyword == "HEALTHCHECK":
            text = text[text.index("CMD") + len("CMD") :]
        value = json.loads(text.strip())
        assert isinstance(value, list) and all(isinstance(item, str) for item in value), value
        return value


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text("utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile(ROOT / "Dockerfile")


def only(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in instructions if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ENV":
            for pair in shlex.split(instruction.arguments):
                key, _, value = pair.partition("=")
                values[key] = value
    return values


def readme_production_command() -> list[str]:
    readme = (ROOT / "README.md").read_text("utf-8")
    match = re.search(r"\*\*Production command:\*\* `([^`]+)`", readme)
    assert match, "README.md states the production command as **Production command:** `...`"
    return shlex.split(match.group(1))


def test_the_image_runs_the_production_command_the_readme_documents(
    dockerfile: list[Instruction],
) -> None:
    assert only(dockerfile, "CMD").exec_form() == readme_production_command()
    assert not [i for i in dockerfile if i.keyword == "ENTRYPOINT"], "CMD runs as it is"


def test_the_base_is_python_3_11_slim(dockerfile: list[Instruction]) -> None:
    base = only(dockerfile, "FROM").arguments
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base


def test_it_runs_as_a_user_other_than_root(dockerfile: list[Instruction]) -> None:
    users = [i.arguments for i in dockerfile if i.keyword == "USER"]
    assert users, "the image sets a USER"
    last = users[-1]
    user, _, group = last.partition(":")
    assert user not in ("root", "0") and group not in ("root", "0"), last
    commands = [i.keyword for i in dockerfile]
    assert commands.index("CMD") > max(
        index for index, keyword in enumerate(commands) if keyword == "USER"
    )


def test_only_the_runtime_requirements_are_installed(dockerfile: list[Instruction]) -> None:
    runs = " ".join(i.arguments for i in dockerfile if i.keyword == "RUN")
    assert "pip install" in runs and "-r requirements.txt" in runs
    assert "requirements-dev" not in runs


def test_the_port_and_address_match_what_the_app_reads(dockerfile: list[Instruction]) -> None:
    env = env_of(dockerfile)
    exposed = only(dockerfile, "EXPOSE").arguments.split("/")[0]

    assert env["PORT"] == exposed == "3978"
    assert env["HOST"] == "0.0.0.0"
    settings = load_settings(
        HOST=env["HOST"],
        PORT=env["PORT"],
        DATABASE_URL=env["DATABASE_URL"],
        MICROSOFT_APP_ID="0e7c5a52-6f1d-4b3a-9d8e-1c2b3a4d5e6f",
        MICROSOFT_APP_PASSWORD="not-a-real-secret",
        MICROSOFT_APP_TENANT_ID="72f988bf-0000-4e3a-9b1c-2d7cd011db47",
    )
    assert settings.port == 3978 and settings.database_url.startswith("sqlite:////data/")
    # As the README says: the image cannot run in local mode.
    with pytest.raises(SettingsError, match="MICROSOFT_APP_ID"):
        load_settings(HOST=env["HOST"], MICROSOFT_APP_ID="")


def copy_sources(dockerfile: list[Instruction]) -> list[str]:
    sources: list[str] = []
    for instruction in dockerfile:
        if instruction.keyword == "COPY":
            parts = [p for p in shlex.split(instruction.arguments) if not p.startswith("--")]
            sources.extend(parts[:-1])
    return sources


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text("utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_every_copied_path_exists_and_is_not_ignored(dockerfile: list[Instruction]) -> None:
    sources = copy_sources(dockerfile)
    ignored = dockerignore_patterns()

    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        name = source.rstrip("/")
        hits = [p for p in ignored if fnmatch.fnmatch(name, p.rstrip("/"))]
        assert not hits, f"COPY {source} is excluded from the build context by {hits}"
    for secret in (".env", "env", "data", ".venv", ".git", "tests", "*.user"):
        assert secret in ignored, f".dockerignore keeps {secret} out of the build context"


def imported_top_names(path: Path) -> set[str]:
    """Top-level names of the absolute imports in one Python file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
    return names


def first_party_packages_of_app() -> set[str]:
    """The project's packages that app.py needs, directly or through each other."""
    packages: set[str] = set()
    files = [ROOT / "app.py"]
    while files:
        names = imported_top_names(files.pop())
        found = {name for name in names if (ROOT / name / "__init__.py").exists()}
        for package in found - packages:
            packages.add(package)
            files.extend((ROOT / package).rglob("*.py"))
    return packages


def test_the_image_holds_what_the_app_imports_and_reads(dockerfile: list[Instruction]) -> None:
    copied = {source.rstrip("/").split("/")[0] for source in copy_sources(dockerfile)}
    packages = first_party_packages_of_app()
    data_files = {DEFAULT_ROOMS_FILE, DEFAULT_CATALOGUE_FILE, DEFAULT_POLICIES_FILE}
    data_dirs = {path.relative_to(PROJECT_ROOT).parts[0] for path in data_files}

    assert {"bot", "cards"} <= packages, packages
    assert packages <= copied, f"app.py needs {packages - copied}, not copied"
    assert data_dirs <= copied, f"default data in {data_dirs - copied}, not copied"
    assert "app.py" in copied


def healthcheck_command(dockerfile: list[Instruction]) -> list[str]:
    command = only(dockerfile, "HEALTHCHECK").exec_form()
    assert command[:2] == ["python", "-c"], "slim has no curl: Python runs the check"
    return command


def test_the_health_check_asks_a_path_the_app_serves(dockerfile: list[Instruction]) -> None:
    code = healthcheck_command(dockerfile)[2]
    paths = re.findall(r"'(/[A-Za-z0-9_/.-]*)'", code)

    assert paths == ["/healthz"], f"one literal path in the check: {paths}"
    compile(code, "HEALTHCHECK", "exec")


async def run_health_check(code: str, port: int) -> int:
    check = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        env={**os.environ, "PORT": str(port)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(check.wait(), 60)


async def test_the_health_check_passes_against_a_running_app_and_fails_without_one(
    dockerfile: list[Instruction], tmp_path: Path
) -> None:
    code = healthcheck_command(dockerfile)[2]

    async with frontdesk_process(tmp_path) as bot:
        port = int(bot.base_url.rsplit(":", 1)[1])
        healthy = await run_health_check(code, port)
    nobody_listens = await run_health_check(code, free_port())

    assert healthy == 0
    assert nobody_listens != 0
