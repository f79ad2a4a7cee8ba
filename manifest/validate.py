"""Validates a Teams app package as Teams would take it: the manifest against its JSON schema
(from npm @microsoft/app-manifest) and Frontdesk's own rules, the icons, the zip's layout.

Schema: Teams manifest v1.30, the newest generally available ("v1.x") schema that
`@microsoft/app-manifest` 1.1.2 ships; devPreview is not accepted for ordinary sideloading.
Microsoft's current documentation gives v1.30 as the latest version to sideload with, and the
package's own validator (`AppManifestUtils`) reads its copy of it offline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError

from bot.commands import match_command, normalize
from manifest.png import PngError, decode

MANIFEST_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = MANIFEST_DIR.parent
NODE_VALIDATOR = MANIFEST_DIR / "validate_node.cjs"
NODE_MODULES = PROJECT_ROOT / "tests" / "js" / "node_modules"

SCHEMA_VERSION = "1.30"
SCHEMA_URL = (
    f"https://developer.microsoft.com/json-schemas/teams/v{SCHEMA_VERSION}/"
    "MicrosoftTeams.schema.json"
)
SCHEMA_FILE = (
    NODE_MODULES
    / "@microsoft"
    / "app-manifest"
    / "build"
    / "json-schemas"
    / "teams"
    / f"v{SCHEMA_VERSION}"
    / "MicrosoftTeams.schema.json"
)

MANIFEST_NAME = "manifest.json"
COLOR_ICON_SIZE = 192
OUTLINE_ICON_SIZE = 32
BOT_SCOPES = ("personal", "groupChat", "team")
TOKEN_SERVICE_DOMAIN = "token.botframework.com"
# Teams shows at most this much of a command in its menu (stricter than the schema's limits).
COMMAND_TITLE_MAX = 32
COMMAND_DESCRIPTION_MAX = 128

_SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
_GUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


class PackageError(Exception):
    """The package cannot be built or is invalid; the message names the field or setting."""


def field_path(parts: Sequence[str | int]) -> str:
    """`['bots', 0, 'botId']` -> `bots[0].botId`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(root)"


def load_schema(path: Path) -> dict[str, Any]:
    """The Teams manifest JSON schema that @microsoft/app-manifest ships."""
    if not path.is_file():
        raise PackageError(
            f"the Teams manifest schema {path} is missing: run `make node` to install npm "
            "@microsoft/app-manifest in tests/js"
        )
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8-sig"))
    declared = schema.get("properties", {}).get("manifestVersion", {}).get("const")
    if declared != SCHEMA_VERSION:
        raise PackageError(
            f"{path}: schema is for manifestVersion {declared!r}, expected {SCHEMA_VERSION!r}"
        )
    return schema


def schema_problems(manifest: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Each place the manifest breaks the JSON schema, as `field.path: message`."""
    validator = Draft4Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(manifest), key=_error_order):
        problems.append(f"{_error_field(error)}: {_short(error.message)}")
    return problems


def _error_order(error: ValidationError) -> tuple[str, str]:
    return (_error_field(error), error.message)


def _error_field(error: ValidationError) -> str:
    parts: list[str | int] = list(error.absolute_path)
    if error.validator == "required":
        missing = re.match(r"'([^']+)' is a required property", error.message)
        if missing:
            parts.append(missing.group(1))
    elif error.validator == "additionalProperties":
        extra = re.search(r"\('([^']+)'", error.message)
        if extra:
            parts.append(extra.group(1))
    return field_path(parts)


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


def is_semver(value: object) -> bool:
    """A version like 1.0.0 (the manifest's `version`)."""
    return isinstance(value, str) and _SEMVER.fullmatch(value) is not None


def is_guid(value: object) -> bool:
    """A GUID in its usual 8-4-4-4-12 hex form."""
    return isinstance(value, str) and _GUID.fullmatch(value) is not None


def frontdesk_problems(manifest: Mapping[str, Any]) -> list[str]:
    """What our package needs beyond the schema: matching schema URL and version, GUIDs, a
    semantic version, the bot's scopes, single sign-on and domains, and answered commands."""
    problems = []
    if manifest.get("$schema") != SCHEMA_URL:
        problems.append(f"$schema: must be {SCHEMA_URL} (the schema this package is checked with)")
    if manifest.get("manifestVersion") != SCHEMA_VERSION:
        problems.append(f"manifestVersion: must be {SCHEMA_VERSION!r}, the version of $schema")
    version = manifest.get("version")
    if not is_semver(version):
        problems.append(f"version: {version!r} is not a version like 1.0.0")
    if not is_guid(manifest.get("id")):
        problems.append(f"id: {manifest.get('id')!r} is not a GUID")
    bots = manifest.get("bots")
    if not isinstance(bots, list) or len(bots) != 1 or not isinstance(bots[0], dict):
        return [*problems, "bots: must hold exactly one bot"]
    bot = bots[0]
    bot_id = bot.get("botId")
    if not is_guid(bot_id):
        problems.append(f"bots[0].botId: {bot_id!r} is not a GUID")
    if sorted(bot.get("scopes") or []) != sorted(BOT_SCOPES):
        problems.append(f"bots[0].scopes: must be {list(BOT_SCOPES)}")
    for flag in ("supportsFiles", "isNotificationOnly"):
        if bot.get(flag) is not False:
            problems.append(f"bots[0].{flag}: must be false")
    problems += _command_problems(bot.get("commandLists") or [])
    problems += _sign_on_problems(manifest, bot_id)
    return problems


def _command_problems(lists: Sequence[Any]) -> list[str]:
    problems = []
    for i, command_list in enumerate(lists):
        if not isinstance(command_list, dict):
            continue
        for j, command in enumerate(command_list.get("commands") or []):
            where = f"bots[0].commandLists[{i}].commands[{j}]"
            title = command.get("title") if isinstance(command, dict) else None
            description = command.get("description", "") if isinstance(command, dict) else ""
            if not isinstance(title, str) or not title:
                problems.append(f"{where}.title: missing")
                continue
            if len(title) > COMMAND_TITLE_MAX:
                problems.append(f"{where}.title: longer than {COMMAND_TITLE_MAX} characters")
            if not isinstance(description, str) or len(description) > COMMAND_DESCRIPTION_MAX:
                problems.append(
                    f"{where}.description: must be text of at most "
                    f"{COMMAND_DESCRIPTION_MAX} characters"
                )
            command = match_command(title)
            if command is None or normalize(title) not in command.phrases:
                problems.append(f"{where}.title: {title!r} is not a command the bot answers")
    return problems


def _sign_on_problems(manifest: Mapping[str, Any], bot_id: Any) -> list[str]:
    problems = []
    info = manifest.get("webApplicationInfo")
    if not isinstance(info, dict):
        return ["webApplicationInfo: missing (Teams single sign-on needs it)"]
    if info.get("id") != bot_id:
        problems.append("webApplicationInfo.id: must be the bot's app id (bots[0].botId)")
    resource = info.get("resource")
    match = re.fullmatch(r"api://([^/]+)/botid-(.+)", resource if isinstance(resource, str) else "")
    if match is None or match.group(2) != bot_id:
        problems.append(
            f"webApplicationInfo.resource: must be api://<PUBLIC_HOSTNAME>/botid-{bot_id}"
        )
    domains = manifest.get("validDomains") or []
    needed = [TOKEN_SERVICE_DOMAIN] + ([match.group(1)] if match else [])
    for domain in needed:
        if domain not in domains:
            problems.append(f"validDomains: must include {domain}")
    return problems


def icon_problems(name: str, data: bytes, *, outline: bool) -> list[str]:
    """Size, and for the outline icon white-only pixels on a transparent background."""
    try:
        image = decode(data)
    except PngError as error:
        return [f"{name}: {error}"]
    size = OUTLINE_ICON_SIZE if outline else COLOR_ICON_SIZE
    kind = "outline" if outline else "color"
    if (image.width, image.height) != (size, size):
        return [
            f"{name}: the {kind} icon must be {size}x{size} pixels, not "
            f"{image.width}x{image.height}"
        ]
    pixels = image.pixels()
    if not outline:
        if all(p[3] == 0 for p in pixels):
            return [f"{name}: the color icon is fully transparent"]
        return []
    problems = []
    coloured = [(i % size, i // size) for i, p in enumerate(pixels) if p[3] and p[:3] != (255,) * 3]
    if coloured:
        x, y = coloured[0]
        problems.append(
            f"{name}: the outline icon may only use white (#FFFFFF) and transparency; "
            f"{len(coloured)} pixels have another colour, the first at x={x}, y={y}"
        )
    if not any(p[3] == 0 for p in pixels):
        problems.append(f"{name}: the outline icon needs a transparent background")
    if not any(p[3] for p in pixels):
        problems.append(f"{name}: the outline icon is fully transparent")
    return problems


def icon_names(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest's `icons` object, or nothing when it is not one."""
    icons = manifest.get("icons")
    return icons if isinstance(icons, dict) else {}


def raise_problems(problems: list[str], what: str) -> None:
    """Raise PackageError listing every problem, if there is any."""
    if problems:
        raise PackageError(f"{what}:\n  " + "\n  ".join(problems))


def validate_package(path: Path, *, schema_file: Path = SCHEMA_FILE) -> dict[str, Any]:
    """Check an app package as Teams would take it; returns its manifest.

    The zip holds exactly manifest.json and the two icons it names, at the root; the manifest
    passes the JSON schema and Frontdesk's own checks; the icons have the right sizes.
    """
    schema = load_schema(schema_file)
    try:
        archive = zipfile.ZipFile(path)
    except (FileNotFoundError, zipfile.BadZipFile) as error:
        raise PackageError(f"{path}: not a zip file ({error})") from None
    with archive:
        names = archive.namelist()
        problems = []
        if MANIFEST_NAME not in names:
            raise PackageError(f"{path}: no {MANIFEST_NAME} at the root of the zip")
        try:
            manifest = json.loads(archive.read(MANIFEST_NAME).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise PackageError(f"{path}: {MANIFEST_NAME} is not UTF-8 JSON ({error})") from None
        if not isinstance(manifest, dict):
            raise PackageError(f"{path}: {MANIFEST_NAME} is not a JSON object")
        problems += schema_problems(manifest, schema)
        problems += frontdesk_problems(manifest)
        icons = icon_names(manifest)
        expected = {MANIFEST_NAME}
        for kind in ("color", "outline"):
            name = icons.get(kind)
            if not isinstance(name, str):
                continue
            expected.add(name)
            if "/" in name or "\\" in name:
                problems.append(f"icons.{kind}: {name!r} must be a file at the package root")
                continue
            if name not in names:
                problems.append(f"icons.{kind}: {name!r} is not in the zip")
                continue
            problems += icon_problems(
                f"{name} (icons.{kind})", archive.read(name), outline=kind == "outline"
            )
        unexpected = sorted(set(names) - expected)
        if unexpected:
            problems.append(
                f"zip: only {', '.join(sorted(expected))} may be in the package, at its root; "
                f"also found {', '.join(unexpected)}"
            )
        if len(names) != len(set(names)):
            problems.append("zip: a file name appears twice")
    raise_problems(problems, f"{path} is not a valid Teams app package")
    return manifest


def node_validation(manifest_file: Path, *, node_modules: Path = NODE_MODULES) -> str:
    """Validate a manifest.json with @microsoft/app-manifest's own API (offline); its output.

    Raises PackageError with the validator's failures.
    """
    node = shutil.which("node")
    if node is None or not (node_modules / "@microsoft" / "app-manifest").is_dir():
        raise PackageError("node or npm @microsoft/app-manifest is missing: run `make node`")
    result = subprocess.run(
        [node, str(NODE_VALIDATOR), str(manifest_file)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FRONTDESK_NODE_MODULES": str(node_modules)},
    )
    if result.returncode != 0:
        raise PackageError(
            "@microsoft/app-manifest rejects the manifest:\n  "
            + "\n  ".join((result.stderr or result.stdout).strip().splitlines())
        )
    return result.stdout.strip()
