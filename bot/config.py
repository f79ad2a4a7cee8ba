"""Settings: environment variables and an optional `.env`, validated at start-up."""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.logs import LogFormat

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROOMS_FILE = PROJECT_ROOT / "rooms" / "demo-office.yaml"
DEFAULT_DATABASE_URL = "sqlite:///./data/frontdesk.db"
DEFAULT_CATALOGUE_FILE = PROJECT_ROOT / "catalogue" / "services.yaml"
DEFAULT_POLICIES_FILE = PROJECT_ROOT / "catalogue" / "policies.yaml"


class DirectoryKind(StrEnum):
    LOCAL = "local"
    GRAPH = "graph"


class AppType(StrEnum):
    SINGLE_TENANT = "SingleTenant"
    MULTI_TENANT = "MultiTenant"
    USER_ASSIGNED_MSI = "UserAssignedMSI"


class SettingsError(ValueError):
    """Configuration that cannot run; the message names the variable."""


_HOSTNAME = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)
_GUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Everything Frontdesk reads from its environment. Names are the public interface."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
    )

    host: str = Field(default="127.0.0.1", validation_alias="HOST")
    port: int = Field(default=3978, ge=1, le=65535, validation_alias="PORT")
    microsoft_app_id: str = Field(default="", validation_alias="MICROSOFT_APP_ID")
    microsoft_app_password: SecretStr = Field(
        default=SecretStr(""), validation_alias="MICROSOFT_APP_PASSWORD"
    )
    microsoft_app_type: AppType = Field(
        default=AppType.SINGLE_TENANT, validation_alias="MICROSOFT_APP_TYPE"
    )
    microsoft_app_tenant_id: str = Field(default="", validation_alias="MICROSOFT_APP_TENANT_ID")
    database_url: str = Field(default=DEFAULT_DATABASE_URL, validation_alias="DATABASE_URL")
    directory: DirectoryKind = Field(default=DirectoryKind.LOCAL, validation_alias="DIRECTORY")
    rooms_file: Path = Field(default=DEFAULT_ROOMS_FILE, validation_alias="ROOMS_FILE")
    catalogue_file: Path = Field(default=DEFAULT_CATALOGUE_FILE, validation_alias="CATALOGUE_FILE")
    policies_file: Path = Field(default=DEFAULT_POLICIES_FILE, validation_alias="POLICIES_FILE")
    timezone: str = Field(default="UTC", validation_alias="TIMEZONE")
    max_booking_minutes: int = Field(
        default=480, ge=15, le=1440, validation_alias="MAX_BOOKING_MINUTES"
    )
    max_days_ahead: int = Field(default=90, ge=1, le=730, validation_alias="MAX_DAYS_AHEAD")
    max_occurrences: int = Field(default=12, ge=2, le=52, validation_alias="MAX_OCCURRENCES")
    allowed_tenants: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="ALLOWED_TENANTS"
    )
    # Entra object ids of the users who get the `admin` command (docs/ADMIN.md).
    admin_users: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="ADMIN_USERS"
    )
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    log_format: LogFormat = Field(default=LogFormat.JSON, validation_alias="LOG_FORMAT")
    # Longer than the ~15 s Teams waits for an answer, so a turn in flight can finish.
    shutdown_timeout: float = Field(default=20.0, gt=0, le=600, validation_alias="SHUTDOWN_TIMEOUT")
    # How long a card click that calls Microsoft Graph may take before its turn answers "working
    # on it" (and the card is updated later): well inside the ~15 s Teams waits.
    turn_budget_seconds: float = Field(
        default=4.5, gt=0, le=10, validation_alias="TURN_BUDGET_SECONDS"
    )
    # A booking click's work is leased to the process doing it for this long (renewed while it
    # works); work whose lease ran out (its process died) is finished by a running process.
    work_lease_seconds: float = Field(
        default=60.0, ge=1, le=3600, validation_alias="WORK_LEASE_SECONDS"
    )
    graph_base_url: str = Field(
        default="https://graph.microsoft.com/v1.0", validation_alias="GRAPH_BASE_URL"
    )
    bot_oauth_url: str = Field(
        default="https://token.botframework.com", validation_alias="BOT_OAUTH_URL"
    )
    bot_openid_metadata_url: str = Field(default="", validation_alias="BOT_OPENID_METADATA_URL")
    bot_token_issuer: str = Field(default="", validation_alias="BOT_TOKEN_ISSUER")
    oauth_connection_name: str = Field(default="", validation_alias="OAUTH_CONNECTION_NAME")
    aad_authority_host: str = Field(
        default="https://login.microsoftonline.com", validation_alias="AAD_AUTHORITY_HOST"
    )
    room_cache_seconds: int = Field(
        default=900, ge=0, le=86400, validation_alias="ROOM_CACHE_SECONDS"
    )
    # Proactive calls a second per tenant (bot.notifications.SendLimits), under Teams' ~30.
    proactive_tenant_rate: float = Field(
        default=25.0, gt=0, le=30, validation_alias="PROACTIVE_TENANT_RATE"
    )
    # Graph mode: the mailbox (UPN or object id) approval mails are sent from when an approver
    # cannot be reached in Teams; empty turns mail off (docs/ADMIN.md, Mail.Send).
    notify_mail_from: str = Field(default="", validation_alias="NOTIFY_MAIL_FROM")
    # The Teams app package (`make package`, manifest/build.py).
    public_hostname: str = Field(default="", validation_alias="PUBLIC_HOSTNAME")
    teams_app_id: str = Field(default="", validation_alias="TEAMS_APP_ID")
    developer_name: str = Field(
        default="Frontdesk", max_length=32, validation_alias="DEVELOPER_NAME"
    )
    developer_website_url: str = Field(default="", validation_alias="DEVELOPER_WEBSITE_URL")
    developer_privacy_url: str = Field(default="", validation_alias="DEVELOPER_PRIVACY_URL")
    developer_terms_url: str = Field(default="", validation_alias="DEVELOPER_TERMS_URL")

    @field_validator("allowed_tenants", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("admin_users", mode="before")
    @classmethod
    def _split_admins(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("admin_users")
    @classmethod
    def _admin_guids(cls, value: list[str]) -> list[str]:
        wrong = [item for item in value if not _GUID.fullmatch(item)]
        if wrong:
            raise ValueError(
                f"must be Entra object ids (GUIDs) separated by commas; not one: {wrong[0][:40]!r}"
            )
        return list(dict.fromkeys(item.lower() for item in value))

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgres:", "postgresql+psycopg:")):
            raise ValueError("use sqlite:///path or postgresql://user@host/db")
        return value

    @field_validator("graph_base_url", "bot_oauth_url", "aad_authority_host")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("bot_openid_metadata_url")
    @classmethod
    def _optional_http_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL, or empty for the public cloud")
        return value

    @field_validator("public_hostname")
    @classmethod
    def _bare_hostname(cls, value: str) -> str:
        value = value.strip().lower().rstrip(".")
        if value and not _HOSTNAME.fullmatch(value):
            raise ValueError(
                "must be the bot's public host name only, such as frontdesk.contoso.com "
                "(no https://, port or path)"
            )
        return value

    @field_validator("notify_mail_from")
    @classmethod
    def _mailbox(cls, value: str) -> str:
        value = value.strip()
        if value and not (
            _GUID.fullmatch(value) or re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value)
        ):
            raise ValueError(
                "must be the sending mailbox's address (frontdesk@contoso.com) or object id"
            )
        return value

    @field_validator("teams_app_id")
    @classmethod
    def _optional_guid(cls, value: str) -> str:
        if value and not _GUID.fullmatch(value):
            raise ValueError("must be a GUID such as 00000000-0000-0000-0000-000000000000")
        return value.lower()

    @field_validator("developer_website_url", "developer_privacy_url", "developer_terms_url")
    @classmethod
    def _optional_https_url(cls, value: str) -> str:
        if value and not value.startswith("https://"):
            raise ValueError("must be an https:// URL, or empty for one on PUBLIC_HOSTNAME")
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("use DEBUG, INFO, WARNING or ERROR")
        return level

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.local_mode and not _is_loopback(self.host):
            raise ValueError(
                "MICROSOFT_APP_ID is empty, which means local mode without authentication; "
                f"local mode only binds to a loopback address, not HOST={self.host}. "
                "Set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD, or HOST=127.0.0.1."
            )
        if self.directory is DirectoryKind.GRAPH and not self.oauth_connection_name:
            raise ValueError(
                "DIRECTORY=graph needs OAUTH_CONNECTION_NAME, the Azure Bot OAuth connection "
                "that signs users in to Microsoft Graph"
            )
        if (
            self.directory is DirectoryKind.GRAPH
            and self.microsoft_app_type is AppType.USER_ASSIGNED_MSI
        ):
            raise ValueError(
                "DIRECTORY=graph does not support MICROSOFT_APP_TYPE=UserAssignedMSI yet: "
                "use SingleTenant with MICROSOFT_APP_PASSWORD"
            )
        if not self.local_mode:
            if self.microsoft_app_type is not AppType.USER_ASSIGNED_MSI and not (
                self.microsoft_app_password.get_secret_value()
            ):
                raise ValueError("MICROSOFT_APP_PASSWORD is required when MICROSOFT_APP_ID is set")
            if self.microsoft_app_type is not AppType.MULTI_TENANT and not (
                self.microsoft_app_tenant_id
            ):
                raise ValueError(
                    f"MICROSOFT_APP_TENANT_ID is required for MICROSOFT_APP_TYPE="
                    f"{self.microsoft_app_type.value}"
                )
        return self

    @property
    def local_mode(self) -> bool:
        """No app id: accept unauthenticated requests (loopback only)."""
        return not self.microsoft_app_id

    @property
    def graph_resource(self) -> str:
        """Microsoft Graph's origin, which its tokens name: `https://graph.microsoft.us` for
        GRAPH_BASE_URL=`https://graph.microsoft.us/v1.0`."""
        parts = urlsplit(self.graph_base_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def graph_scope(self) -> str:
        """The scope that asks Entra ID for a Graph token with the permissions granted."""
        return f"{self.graph_resource}/.default"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_ALIASES = {name: str(field.validation_alias) for name, field in Settings.model_fields.items()}


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, raising SettingsError that names the variable."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = [str(part) for part in error["loc"]]
            names = [_ALIASES.get(part, part) for part in loc] or ["settings"]
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{'.'.join(names).upper()}: {message}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None
