"""Settings: one frozen object read once from the environment, validated at start."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_VPS_API_URL = "https://admin.vps.org/api/v1"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"

IdList = Annotated[tuple[str, ...], NoDecode]
PERSON_OR_GROUP = re.compile(r"[UWS][A-Z0-9]+")  # a user (U…, W… on Enterprise Grid) or group
CHANNEL = re.compile(r"[CGD][A-Z0-9]+")


Mode = Literal["serve", "socket", "worker", "check"]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# What each setting that can be wrong expects, in words (a validation error names this, never
# the value it was given, which may be a secret pasted into the wrong variable).
EXPECTED = {
    "PORT": "a port number from 1 to 65535",
    "VPSBOT_REQUIRED_APPROVALS": "a whole number from 1 to 10",
    "VPSBOT_APPROVAL_TTL": "a number of minutes greater than 0",
    "VPSBOT_REMINDER_AFTER": "a number of minutes, 0 or more (0 turns reminders off)",
    "VPSBOT_POLL_INTERVAL": "a number of seconds greater than 0",
    "VPSBOT_API_TIMEOUT": "a number of seconds greater than 0, at most 60",
    "VPSBOT_DIRECTORY_TTL": "a number of seconds from 0 to 3600",
    "VPSBOT_REQUIRE_REASON": "true or false",
    "VPSBOT_SAFETY_SNAPSHOT": "true or false",
    "VPSBOT_SAFETY_SNAPSHOT_DAYS": "a number of days greater than 0, at most 3650",
    "VPSBOT_STALE_AFTER": "a number of hours greater than 0",
    "VPSBOT_HEALTH_INTERVAL": "a number of minutes greater than 0",
    "VPSBOT_SCHEDULE_MIN_INTERVAL": "a number of seconds, at least 60",
    "VPSBOT_TIMEZONE": "an IANA time zone name such as UTC or Europe/Tallinn",
    "VPSBOT_ALERT_CHANNEL": "a Slack channel ID (C…, G…), not a name",
    "LOG_LEVEL": "one of " + ", ".join(LOG_LEVELS),
    "LOG_FORMAT": "keyvalue or json",
    "DATABASE_URL": (
        "a URL such as sqlite:///vpsbot.db or postgresql://user:password@host/dbname, with "
        "special characters in the password percent-encoded (@ as %40), and ?ssl=require "
        "rather than ?sslmode="
    ),
    "VPS_API_URL": "an http:// or https:// URL without a user name or password",
    "SLACK_API_URL": "an http:// or https:// URL without a user name or password",
    "VPSBOT_APPROVERS": "Slack user IDs (U…, W…) or user-group IDs (S…), not names",
    "VPSBOT_OPERATORS": "Slack user IDs (U…, W…) or user-group IDs (S…), not names",
    "VPSBOT_CHANNELS": "Slack channel IDs (C…, G…), not names",
}

# The variables each way of running needs.
NEEDS: dict[Mode, tuple[str, ...]] = {
    "serve": ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "VPS_API_TOKEN"),
    "socket": ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "VPS_API_TOKEN"),
    "worker": ("SLACK_BOT_TOKEN", "VPS_API_TOKEN"),
    "check": ("SLACK_BOT_TOKEN", "VPS_API_TOKEN"),
}


EXIT_CONFIG = 2  # a setting is missing, invalid or refused: fix the configuration
EXIT_UNREACHABLE = 3  # something the bot needs cannot be reached or used right now


class StartupError(Exception):
    """The bot cannot start; the message is one line naming the variable or the resource and
    what to do, never a secret."""

    exit_code = EXIT_UNREACHABLE


class ConfigError(StartupError):
    """Missing or invalid settings, all of them; each problem names its variable, never its
    value."""

    exit_code = EXIT_CONFIG

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class Unreachable(StartupError):
    """A resource the bot cannot go without (its database, its port) is not there."""


class Settings(BaseSettings):
    """Everything the bot reads from its environment (see docs/architecture.md, Configuration)."""

    # an empty variable (`PORT=`) means "not set": the default applies
    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", case_sensitive=False, env_ignore_empty=True
    )

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL

    vps_api_token: SecretStr | None = None
    vps_api_url: str = DEFAULT_VPS_API_URL
    vpsbot_api_timeout: float = Field(default=10.0, gt=0, le=60)  # seconds per VPS.org call

    database_url: str = "sqlite:///vpsbot.db"
    port: int = Field(default=3000, ge=1, le=65535)

    vpsbot_approvers: IdList = ()
    vpsbot_required_approvals: int = Field(default=1, ge=1, le=10)
    vpsbot_approval_ttl: float = Field(default=30.0, gt=0)
    # minutes after which a restore still waiting gets its one reminder; unset: half the TTL;
    # 0: no reminders
    vpsbot_reminder_after: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    vpsbot_poll_interval: float = Field(default=15.0, gt=0)
    vpsbot_work_process: bool = True
    vpsbot_require_reason: bool = False
    vpsbot_channels: IdList = ()
    vpsbot_operators: IdList = ()
    # seconds a user group's membership may be reused for a decision (never older when Slack fails)
    vpsbot_directory_ttl: float = Field(default=60.0, ge=0, le=3600)
    # a snapshot of the server before each restore, so the restore can be undone
    vpsbot_safety_snapshot: bool = True
    vpsbot_safety_snapshot_days: float = Field(default=7.0, gt=0, le=3650)  # then deleted
    # health: a server whose newest completed backup is older than this (hours) is stale
    vpsbot_stale_after: float = Field(default=26.0, gt=0, allow_inf_nan=False)
    vpsbot_alert_channel: str = ""  # where health alerts go; unset: no alerts
    vpsbot_health_interval: float = Field(default=15.0, gt=0, allow_inf_nan=False)  # minutes
    vpsbot_timezone: str = "UTC"  # schedules' times
    vpsbot_schedule_min_interval: float = Field(default=3600.0, ge=60, allow_inf_nan=False)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["keyvalue", "json"] = "keyvalue"  # json: one JSON object a line

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "vps_api_token",
        "vps_api_url",
        "slack_api_url",
        "database_url",
        mode="before",
    )
    @classmethod
    def _strip(cls, value: object, info: ValidationInfo) -> object:
        """A token or URL pasted with a space or a newline around it: the value meant. One of
        only spaces is not set at all (its default, or "required but not set")."""
        if isinstance(value, str):
            value = value.strip()
            if not value and info.field_name:
                return cls.model_fields[info.field_name].default
        return value

    @field_validator("vpsbot_approvers", "vpsbot_channels", "vpsbot_operators", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part for part in value.replace(",", " ").split() if part)
        return value

    @field_validator("vpsbot_approvers", "vpsbot_operators")
    @classmethod
    def _people(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # a name (`bob`, `@alice`) would match nobody: approvals open to no one, silently
        if not all(PERSON_OR_GROUP.fullmatch(part) for part in value):
            raise ValueError("not a Slack user or user-group ID")
        return value

    @field_validator("vpsbot_channels")
    @classmethod
    def _channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not all(CHANNEL.fullmatch(part) for part in value):
            raise ValueError("not a Slack channel ID")
        return value

    @field_validator("vpsbot_alert_channel", mode="before")
    @classmethod
    def _alert_channel(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            if value and not CHANNEL.fullmatch(value):
                raise ValueError("not a Slack channel ID")
        return value

    @field_validator("vpsbot_timezone", mode="before")
    @classmethod
    def _timezone(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip() or "UTC"
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError("not a time zone") from None
        return value

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.vpsbot_timezone)

    @field_validator("vps_api_url", "slack_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except (httpx.InvalidURL, ValueError):
            raise ValueError("not a URL") from None
        if url.port is not None and not 0 < url.port < 65536:
            raise ValueError("a port from 1 to 65535")
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must start with http:// or https:// and name a host")
        if url.userinfo:
            raise ValueError("must not carry a user name or password")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        async_database_url(value)  # raises ValueError for an unsupported scheme
        try:
            url = make_url(value)
            url.port  # noqa: B018 - a port that is not a number raises here
        except (ArgumentError, ValueError):
            raise ValueError("not a database URL") from None
        if url.host and "@" in url.host:
            raise ValueError("an @ in the password must be written %40")
        if url.drivername.startswith("sqlite") and not url.database:
            raise ValueError("names no database file")
        if not url.drivername.startswith("sqlite") and not (url.host or url.query.get("host")):
            raise ValueError("names no database server")
        if "sslmode" in url.query:  # libpq's spelling, which asyncpg does not take
            raise ValueError("use ?ssl=require (asyncpg), not ?sslmode=")
        return value

    @property
    def reminder_after(self) -> float:
        """Minutes after which a waiting restore is reminded (0: never)."""
        if self.vpsbot_reminder_after is None:
            return self.vpsbot_approval_ttl / 2
        return self.vpsbot_reminder_after

    @property
    def async_database_url(self) -> str:
        return async_database_url(self.database_url)

    def missing(self, *names: str) -> list[str]:
        """A problem for each of `names` that is unset or empty."""
        problems = []
        for name in names:
            value = getattr(self, name.lower(), None)
            secret = value.get_secret_value() if isinstance(value, SecretStr) else value
            if not secret:
                problems.append(f"{name.upper()} is required but not set")
        return problems

    def require(self, *names: str) -> None:
        """Raise ConfigError naming every one of `names` that is unset or empty."""
        if problems := self.missing(*names):
            raise ConfigError(problems)

    def require_for(self, mode: Mode) -> None:
        self.require(*NEEDS[mode])


def reveal(value: SecretStr | None) -> str:
    """A secret setting's value, for the one place that sends it; "" when unset."""
    return value.get_secret_value() if value is not None else ""


def async_database_url(url: str) -> str:
    """Map plain `sqlite:///` and `postgresql://` URLs to the async drivers."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("must be a URL such as sqlite:///vpsbot.db or postgresql://host/db")
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    if base in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}"
    raise ValueError("only sqlite and postgresql databases are supported")


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """`VPSBOT_*` variables the bot does not know: most likely typos, and a mistyped
    VPSBOT_APPROVERS or VPSBOT_CHANNELS would silently leave a safeguard off."""
    known = [name.upper() for name in Settings.model_fields if name.startswith("vpsbot_")]
    problems = []
    for name in sorted(environ):
        upper = name.upper()
        if upper.startswith("VPSBOT_") and upper not in known:
            close = difflib.get_close_matches(upper, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(f"{upper} is not a setting vpsbot knows{hint}")
    return problems


def load_settings(mode: Mode | None = None, **overrides: object) -> Settings:
    """Read the environment once. Every problem is reported at once, in one ConfigError: bad
    values (named, never shown), the variables `mode` needs that are not set, and unknown
    `VPSBOT_*` variables."""
    problems = unknown_variables(os.environ)
    settings: Settings | None = None
    invalid: set[str] = set()
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "configuration"
            invalid.add(name)
            expected = EXPECTED.get(name)
            problems.append(f"{name} is invalid" + (f": expected {expected}" if expected else ""))
    if mode is not None:
        # without valid settings, read the required variables alone (they have no validation)
        if settings is None:
            for name in NEEDS[mode]:
                value = os.environ.get(name, os.environ.get(name.lower(), ""))
                if not value.strip() and name not in invalid:
                    problems.append(f"{name} is required but not set")
        else:
            problems.extend(settings.missing(*NEEDS[mode]))
    if problems or settings is None:
        raise ConfigError(problems)
    return settings
