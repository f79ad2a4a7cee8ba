"""Builds the Teams app package (appPackage.zip) from the manifest template and settings, and
validates it.

`python -m manifest.build` (what `make package` runs) reads the bot's settings, fills
`manifest.template.json`, checks the result and writes the zip. `--check FILE` validates an
existing package; `--update-version` only brings `version.json` up to date.

The manifest's schema version and why it was chosen: manifest/validate.py.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import logging
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.commands import COMMANDS, Command
from bot.config import DirectoryKind, Settings, SettingsError, load_settings
from manifest.validate import (
    BOT_SCOPES,
    MANIFEST_NAME,
    NODE_MODULES,
    PROJECT_ROOT,
    SCHEMA_FILE,
    PackageError,
    frontdesk_problems,
    icon_names,
    icon_problems,
    is_guid,
    is_semver,
    load_schema,
    node_validation,
    raise_problems,
    schema_problems,
    validate_package,
)

logger = logging.getLogger(__name__)

MANIFEST_DIR = Path(__file__).resolve().parent
TEMPLATE_FILE = MANIFEST_DIR / "manifest.template.json"
COLOR_ICON_FILE = MANIFEST_DIR / "color.png"
OUTLINE_ICON_FILE = MANIFEST_DIR / "outline.png"
VERSION_FILE = MANIFEST_DIR / "version.json"
DEFAULT_OUTPUT = PROJECT_ROOT / "appPackage.zip"
FIRST_VERSION = "1.0.0"

_PLACEHOLDER = re.compile(r"\{\{([A-Z0-9_]+)\}\}")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class AppDetails:
    """What the template is filled with: one deployment of Frontdesk."""

    teams_app_id: str
    bot_id: str
    public_hostname: str
    developer_name: str
    website_url: str
    privacy_url: str
    terms_url: str
    online_meetings: bool
    """Whether the deployment makes Teams meetings (DIRECTORY=graph), which `meet now` needs."""

    @classmethod
    def from_settings(cls, settings: Settings) -> AppDetails:
        """The deployment's details; refuses local mode, naming the settings to set."""
        missing = []
        if not settings.microsoft_app_id:
            missing.append(
                "MICROSOFT_APP_ID (the bot's Entra app id; without it Frontdesk runs in "
                "local mode, which Teams cannot reach)"
            )
        if not settings.public_hostname:
            missing.append("PUBLIC_HOSTNAME (the bot's public host, such as frontdesk.contoso.com)")
        if missing:
            raise PackageError("cannot build the Teams app package: set " + " and ".join(missing))
        if not is_guid(settings.microsoft_app_id):
            raise PackageError("MICROSOFT_APP_ID: must be a GUID (the bot's Entra app id)")
        host = settings.public_hostname
        return cls(
            teams_app_id=settings.teams_app_id or settings.microsoft_app_id.lower(),
            bot_id=settings.microsoft_app_id.lower(),
            public_hostname=host,
            developer_name=settings.developer_name,
            website_url=settings.developer_website_url or f"https://{host}/",
            privacy_url=settings.developer_privacy_url or f"https://{host}/privacy",
            terms_url=settings.developer_terms_url or f"https://{host}/terms",
            online_meetings=settings.directory is DirectoryKind.GRAPH,
        )


# Fixed details for the version's content hash: the package's own content (template, icons,
# commands) decides the version, not one deployment's ids, so the committed version.json does
# not change from one developer's settings to another's.
REFERENCE_DETAILS = AppDetails(
    teams_app_id="00000000-0000-4000-8000-000000000001",
    bot_id="00000000-0000-4000-8000-000000000002",
    public_hostname="frontdesk.example.com",
    developer_name="Frontdesk",
    website_url="https://frontdesk.example.com/",
    privacy_url="https://frontdesk.example.com/privacy",
    terms_url="https://frontdesk.example.com/terms",
    online_meetings=True,
)


@dataclass(frozen=True)
class Sources:
    """The files a package is made from (the committed ones unless a test says otherwise)."""

    template: Path = TEMPLATE_FILE
    color_icon: Path = COLOR_ICON_FILE
    outline_icon: Path = OUTLINE_ICON_FILE
    version_file: Path = VERSION_FILE
    schema: Path = SCHEMA_FILE


@dataclass(frozen=True)
class BuildResult:
    """A package that was written and validated."""

    path: Path
    manifest: dict[str, Any]
    version: str
    previous_version: str | None
    """The version before this build when the content changed and the version was bumped."""


def offered_commands(*, online_meetings: bool) -> list[Command]:
    """The chat commands this deployment answers, as the help card lists them."""
    return [c for c in COMMANDS if online_meetings or not c.needs_online_meetings]


def command_lists(*, online_meetings: bool) -> list[dict[str, Any]]:
    """The manifest's `commandLists`: each command's first phrase (what the bot parses) and its
    help description, for every scope the bot is installed in."""
    commands = [
        {"title": command.phrases[0], "description": command.description}
        for command in offered_commands(online_meetings=online_meetings)
    ]
    return [{"scopes": list(BOT_SCOPES), "commands": commands}]


def placeholder_values(details: AppDetails, version: str) -> dict[str, Any]:
    """What each `{{NAME}}` in the template stands for."""
    return {
        "VERSION": version,
        "TEAMS_APP_ID": details.teams_app_id,
        "BOT_ID": details.bot_id,
        "PUBLIC_HOSTNAME": details.public_hostname,
        "DEVELOPER_NAME": details.developer_name,
        "DEVELOPER_WEBSITE_URL": details.website_url,
        "DEVELOPER_PRIVACY_URL": details.privacy_url,
        "DEVELOPER_TERMS_URL": details.terms_url,
        "COMMAND_LISTS": command_lists(online_meetings=details.online_meetings),
    }


def load_template(path: Path) -> dict[str, Any]:
    """The template as JSON; a syntax error names the line and column."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackageError(f"{path}: manifest template not found") from None
    except json.JSONDecodeError as error:
        raise PackageError(
            f"{path}: not valid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None
    if not isinstance(document, dict):
        raise PackageError(f"{path}: the manifest template must be a JSON object")
    return document


def fill(node: Any, values: Mapping[str, Any], path: str = "") -> Any:
    """The template with its placeholders replaced, value by value (never by editing JSON text).

    A string that is one placeholder becomes the value (a list for COMMAND_LISTS); placeholders
    inside a longer string are replaced by text.
    """
    if isinstance(node, dict):
        return {key: fill(value, values, _join(path, key)) for key, value in node.items()}
    if isinstance(node, list):
        return [fill(value, values, f"{path}[{index}]") for index, value in enumerate(node)]
    if not isinstance(node, str):
        return node
    whole = _PLACEHOLDER.fullmatch(node)
    if whole:
        return copy.deepcopy(_value(whole.group(1), values, path))

    def text(match: re.Match[str]) -> str:
        value = _value(match.group(1), values, path)
        if not isinstance(value, str):
            raise PackageError(
                f"manifest template {path or '(root)'}: {{{{{match.group(1)}}}}} is not text "
                "and must stand alone in its string"
            )
        return value

    return _PLACEHOLDER.sub(text, node)


def _value(name: str, values: Mapping[str, Any], path: str) -> Any:
    if name not in values:
        known = ", ".join(sorted(values))
        raise PackageError(
            f"manifest template {path or '(root)'}: unknown placeholder {{{{{name}}}}} "
            f"(known: {known})"
        )
    return values[name]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def content_hash(template: Mapping[str, Any], color_icon: bytes, outline_icon: bytes) -> str:
    """A digest of the package's content: the template filled with REFERENCE_DETAILS (so it
    covers the commands), and both icons."""
    manifest = fill(template, placeholder_values(REFERENCE_DETAILS, "0.0.0"))
    digest = hashlib.sha256()
    digest.update(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())
    digest.update(hashlib.sha256(color_icon).digest())
    digest.update(hashlib.sha256(outline_icon).digest())
    return "sha256:" + digest.hexdigest()


def read_version(path: Path) -> tuple[str, str] | None:
    """(version, content hash) recorded in version.json, or None when there is none yet."""
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        version, recorded = state["version"], state["content_hash"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise PackageError(f'{path}: expected {{"version": ..., "content_hash": ...}}') from None
    if not isinstance(version, str) or not is_semver(version):
        raise PackageError(f"{path}: version {version!r} is not a version like 1.0.0")
    return version, str(recorded)


def next_version(path: Path, digest: str) -> tuple[str, str | None]:
    """The version for content with this digest, and the previous version if it is a bump."""
    recorded = read_version(path)
    if recorded is None:
        return FIRST_VERSION, None
    version, recorded_digest = recorded
    if recorded_digest == digest:
        return version, None
    major, minor, patch = (int(part) for part in version.split("."))
    return f"{major}.{minor}.{patch + 1}", version


def write_version(path: Path, version: str, digest: str) -> None:
    document = {"version": version, "content_hash": digest}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def update_version(sources: Sources = Sources()) -> tuple[str, str | None]:
    """Record a bumped version in version.json if the content changed; no settings needed."""
    template = load_template(sources.template)
    digest = content_hash(
        template, sources.color_icon.read_bytes(), sources.outline_icon.read_bytes()
    )
    version, previous = next_version(sources.version_file, digest)
    if previous is not None or read_version(sources.version_file) is None:
        write_version(sources.version_file, version, digest)
    return version, previous


def build_package(
    details: AppDetails,
    output: Path,
    sources: Sources = Sources(),
    *,
    extra_check: Callable[[Path], None] | None = None,
) -> BuildResult:
    """Fill the template, validate manifest and icons, write the zip and validate it again
    (then with `extra_check`, which raises PackageError to refuse the zip).

    No zip is left, and the version is not bumped, when anything is invalid.
    """
    schema = load_schema(sources.schema)
    template = load_template(sources.template)
    icons = {
        "color": (sources.color_icon, _read_icon(sources.color_icon)),
        "outline": (sources.outline_icon, _read_icon(sources.outline_icon)),
    }
    digest = content_hash(template, icons["color"][1], icons["outline"][1])
    version, previous = next_version(sources.version_file, digest)
    manifest = fill(template, placeholder_values(details, version))
    problems = schema_problems(manifest, schema) + frontdesk_problems(manifest)
    files: dict[str, bytes] = {}
    for kind, (path, data) in icons.items():
        name = icon_names(manifest).get(kind)
        if not isinstance(name, str) or "/" in name or "\\" in name or name == MANIFEST_NAME:
            problems.append(f"icons.{kind}: must name a file at the package root, like {path.name}")
            continue
        problems += icon_problems(f"{path.name} (icons.{kind})", data, outline=kind == "outline")
        files[name] = data
    raise_problems(problems, "the manifest template does not give a valid package")
    manifest_bytes = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    _write_zip(output, {MANIFEST_NAME: manifest_bytes, **files})
    try:
        validate_package(output, schema_file=sources.schema)
        if extra_check is not None:
            extra_check(output)
    except PackageError:
        output.unlink(missing_ok=True)
        raise
    if previous is not None or read_version(sources.version_file) is None:
        write_version(sources.version_file, version, digest)
    return BuildResult(output, manifest, version, previous)


def _read_icon(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PackageError(f"{path}: icon not found") from None


def _write_zip(output: Path, files: Mapping[str, bytes]) -> None:
    """A zip with the files at its root, identical bytes for identical content."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(output)


def _node_check_package(path: Path) -> None:
    with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as folder:
        manifest_file = Path(folder) / MANIFEST_NAME
        manifest_file.write_bytes(archive.read(MANIFEST_NAME))
        logger.info("%s: %s", path, node_validation(manifest_file))


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m manifest.build", description="Build and validate the Teams app package."
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the zip to write")
    parser.add_argument("--check", type=Path, help="only validate this existing package")
    parser.add_argument(
        "--update-version",
        action="store_true",
        help="only bump manifest/version.json if the package content changed (no settings needed)",
    )
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        if options.update_version:
            version, previous = update_version()
            _report_version(version, previous)
            return 0
        if options.check is not None:
            manifest = validate_package(options.check)
            logger.info(
                "%s: valid Teams app package, version %s", options.check, manifest["version"]
            )
            _node_check_if_possible(options.check)
            return 0
        settings = load_settings()
        details = AppDetails.from_settings(settings)
        result = build_package(details, options.output, extra_check=_node_check_if_possible)
    except (PackageError, SettingsError) as error:
        sys.stderr.write(f"frontdesk: {error}\n")
        return 2
    logger.info(
        "%s: valid Teams app package %s for bot %s at %s (tenant %s)",
        result.path,
        result.version,
        details.bot_id,
        details.public_hostname,
        settings.microsoft_app_tenant_id or "any",
    )
    _report_version(result.version, result.previous_version)
    return 0


def _node_check_if_possible(path: Path) -> None:
    if shutil.which("node") is None or not (NODE_MODULES / "@microsoft" / "app-manifest").is_dir():
        logger.info("skipped the @microsoft/app-manifest check: run `make node` for it")
        return
    _node_check_package(path)


def _report_version(version: str, previous: str | None) -> None:
    if previous is not None:
        logger.info(
            "the package content changed: version %s -> %s recorded in %s; commit it",
            previous,
            version,
            VERSION_FILE.relative_to(PROJECT_ROOT),
        )
    else:
        logger.info("package version %s", version)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
