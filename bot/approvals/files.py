"""Reading the admin's YAML files: every error names the setting, the file and the path in it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ValidationError

from bot.approvals.errors import CatalogueError

Model = TypeVar("Model", bound=BaseModel)

# A problem found after the structure is valid: (dotted path, message).
Problem = tuple[str, str]

_IDENTIFIER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_CHANNEL = re.compile(r"^\S{1,256}$")


def _identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(
            f"{value[:70]!r} is not an id: use up to 64 lower-case letters, digits, - and _, "
            "starting with a letter or digit"
        )
    return value


def _currency(value: str) -> str:
    if not _CURRENCY.match(value):
        raise ValueError(f"{value[:10]!r} is not a currency: use an ISO 4217 code such as EUR")
    return value


def _channel(value: str) -> str:
    if not _CHANNEL.match(value):
        raise ValueError(
            f"{value[:70]!r} is not a Teams channel id (like 19:...@thread.tacv2, no spaces)"
        )
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]
Currency = Annotated[str, AfterValidator(_currency)]
ChannelId = Annotated[str, AfterValidator(_channel)]


def read_yaml(path: Path, setting: str) -> Any:
    """The parsed YAML document, or CatalogueError when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"{setting} {path}: cannot read it ({exc.strerror})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{setting} {path}: not valid YAML ({exc})") from None
    if document is None:
        raise CatalogueError(f"{setting} {path}: the file is empty")
    return document


def validate_document(model: type[Model], document: Any, path: Path, setting: str) -> Model:
    """The document as `model`, or CatalogueError listing every structural fault with its path."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise file_error(
            setting,
            path,
            (
                (".".join(str(part) for part in error["loc"]), _message(error))
                for error in exc.errors()
            ),
        ) from None


def _message(error: Any) -> str:
    """Pydantic's message; for our own validators, just what they said (no "Value error, ")."""
    cause = (error.get("ctx") or {}).get("error")
    if error["type"] == "value_error" and isinstance(cause, ValueError):
        return str(cause)
    return str(error["msg"])


def file_error(setting: str, path: Path, problems: Iterable[Problem]) -> CatalogueError:
    """One CatalogueError for all the problems: `SETTING file: path: message; path: message`."""
    text = "; ".join(f"{where or 'file'}: {message}" for where, message in problems)
    return CatalogueError(f"{setting} {path}: {text}")
