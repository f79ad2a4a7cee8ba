"""The Microsoft 365 Agents Toolkit project file (`m365agents.yml`) and its environment template,
checked without the toolkit (it needs Microsoft 365 and Azure sign-ins): the file against the
toolkit's own v1.13 schema, every `${{VAR}}` against what the template declares or an earlier step
writes, and the steps against what the project really builds and serves."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.config import load_settings
from manifest.build import AppDetails
from tests.support.prereq import repo_root, require, shared_dir

ROOT = repo_root()
SCHEMA_NAME = "m365agents-yaml-v1.13.schema.json"
VARIABLE = re.compile(r"\$\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
# Set by the toolkit itself for every run (the environment's name).
TOOLKIT_BUILT_INS = frozenset({"TEAMSFX_ENV"})
LIFECYCLES = ("provision", "deploy", "publish", "share")


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "m365agents.yml").read_text("utf-8"))
    assert isinstance(document, dict)
    return document


def env_template(name: str = "dev") -> dict[str, str]:
    """KEY=VALUE lines of env/.env.<name> (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for raw in (ROOT / "env" / f".env.{name}").read_text("utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, separator, value = line.partition("=")
        assert separator, f"env/.env.{name}: not KEY=VALUE: {raw!r}"
        values[key.strip()] = value.strip()
    return values


def steps(project: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every action in the order the toolkit runs them, with its lifecycle."""
    return [(stage, step) for stage in LIFECYCLES for step in project.get(stage) or []]


def used_variables(node: Any) -> set[str]:
    if isinstance(node, str):
        return set(VARIABLE.findall(node))
    if isinstance(node, dict):
        return set().union(*(used_variables(value) for value in node.values()), set())
    if isinstance(node, list):
        return set().union(*(used_variables(value) for value in node), set())
    return set()


def test_the_project_file_is_valid_against_the_toolkit_schema(project: dict[str, Any]) -> None:
    shared = shared_dir()
    schema_file = shared / "schemas" / SCHEMA_NAME if shared else None
    require(
        schema_file is not None and schema_file.is_file(),
        f"the Agents Toolkit schema {SCHEMA_NAME} is missing under {shared}/schemas",
    )
    assert schema_file is not None
    schema = json.loads(schema_file.read_text("utf-8"))
    validator = jsonschema.Draft7Validator(schema)

    errors = sorted(validator.iter_errors(project), key=lambda e: list(e.absolute_path))

    assert errors == [], "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in errors
    )
    assert project["version"] == "v1.13"


def test_every_variable_is_declared_or_written_by_an_earlier_step(project: dict[str, Any]) -> None:
    declared = set(env_template())
    written: set[str] = set()
    missing: list[str] = []
    for stage, step in steps(project):
        for name in sorted(used_variables(step)):
            if name not in declared | written | TOOLKIT_BUILT_INS:
                missing.append(f"{stage} {step['uses']}: ${{{{{name}}}}}")
        written.update(str(v) for v in (step.get("writeToEnvironmentFile") or {}).values())

    assert missing == [], "used before anything declares or writes them"
    assert not (written & {k for k in declared if env_template()[k]}), (
        "the template leaves empty what provisioning writes"
    )


def test_secrets_stay_out_of_the_template_and_out_of_git(project: dict[str, Any]) -> None:
    secrets = {
        str(name)
        for _, step in steps(project)
        for name in (step.get("writeToEnvironmentFile") or {}).values()
        if str(name).startswith("SECRET_")
    }
    assert secrets, "the bot's client secret is written as a SECRET_ variable"
    assert not secrets & set(env_template()), "secrets are not in the committed template"
    patterns = [
        line.strip().lstrip("/")
        for line in (ROOT / ".gitignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    assert any(fnmatch.fnmatchcase("env/.env.dev.user", p) for p in patterns), (
        "git ignores env/.env.dev.user, where the toolkit puts secrets"
    )


def test_the_bot_is_single_tenant_with_the_teams_channel(project: dict[str, Any]) -> None:
    by_action = {step["uses"]: step for _, step in steps(project)}

    entra = by_action["aadApp/create"]
    assert entra["with"]["signInAudience"] == "AzureADMyOrg"
    assert entra["with"]["generateServicePrincipal"] is True
    bot = by_action["botFramework/create"]
    assert bot["with"]["botId"] == "${{" + entra["writeToEnvironmentFile"]["clientId"] + "}}"
    assert [c["name"] for c in bot["with"]["channels"]] == ["msteams"]
    assert bot["with"]["messagingEndpoint"].startswith("https://")
    assert bot["with"]["messagingEndpoint"].endswith("/api/messages")


def test_the_package_step_runs_make_package_and_uploads_what_it_writes(
    project: dict[str, Any],
) -> None:
    provision: list[dict[str, Any]] = project["provision"]
    actions = [step["uses"] for step in provision]
    build = next(step for step in provision if step["uses"] == "script")
    makefile = (ROOT / "Makefile").read_text("utf-8")
    recipe = re.search(r"^package:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "the Makefile has a package target"
    output = re.search(r"--output\s+(\S+)", recipe.group(1))
    assert output, "make package names its output"

    assert shlex.split(build["with"]["run"]) == ["make", "package"]
    assert actions.index("script") > actions.index("aadApp/create")
    assert actions.index("script") > actions.index("teamsApp/create")
    for action in ("teamsApp/validateAppPackage", "teamsApp/update"):
        step = next(s for s in provision if s["uses"] == action)
        assert actions.index(action) > actions.index("script")
        assert Path(step["with"]["appPackagePath"]) == Path(output.group(1))
    env = build["env"]
    needed = ("MICROSOFT_APP_ID", "MICROSOFT_APP_TENANT_ID", "PUBLIC_HOSTNAME", "TEAMS_APP_ID")
    for setting in needed:
        assert env.get(setting), f"make package is given {setting}"
    assert env["MICROSOFT_APP_TYPE"] == "SingleTenant"


def test_deploy_leaves_local_state_and_secrets_behind(project: dict[str, Any]) -> None:
    [deploy] = project["deploy"]
    ignore_file = ROOT / deploy["with"]["ignoreFile"]
    patterns = {
        line.strip()
        for line in ignore_file.read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }

    assert deploy["uses"] == "azureAppService/zipDeploy"
    assert Path(deploy["with"]["artifactFolder"]) == Path(".")
    for kept_out in (".env", ".env.*", "env", "*.user", "data", "*.db", ".venv", ".git", "tests"):
        assert kept_out in patterns, f"{ignore_file.name} leaves {kept_out} out of the upload"
    for needed in ("app.py", "bot", "cards", "rooms", "catalogue", "requirements.txt"):
        assert needed not in patterns


@pytest.mark.parametrize(
    ("directory", "connection", "meetings"), [("local", "", False), ("graph", "graph", True)]
)
def test_what_provisioning_writes_is_enough_for_make_package(
    project: dict[str, Any], directory: str, connection: str, meetings: bool
) -> None:
    written = {
        "BOT_ID": "0e7c5a52-6f1d-4b3a-9d8e-1c2b3a4d5e6f",
        "SECRET_BOT_PASSWORD": "not-a-real-secret",
        "BOT_TENANT_ID": "72f988bf-0000-4e3a-9b1c-2d7cd011db47",
        "TEAMS_APP_ID": "5d0b8c3e-2a41-4f6b-8e7d-9c1a2b3c4d5e",
    }
    filled_in = {
        **env_template(),
        **written,
        "PUBLIC_HOSTNAME": "frontdesk.contoso.com",
        "FRONTDESK_DIRECTORY": directory,
        "OAUTH_CONNECTION_NAME": connection,
    }
    build = next(step for step in project["provision"] if step["uses"] == "script")
    env = {
        name: VARIABLE.sub(lambda match: filled_in[match.group(1)], str(value))
        for name, value in build["env"].items()
    }

    details = AppDetails.from_settings(load_settings(**env))

    assert details.bot_id == written["BOT_ID"]
    assert details.teams_app_id == written["TEAMS_APP_ID"]
    assert details.public_hostname == "frontdesk.contoso.com"
    assert details.online_meetings is meetings
