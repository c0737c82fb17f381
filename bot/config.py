"""Settings: one frozen object read once from the environment, validated at start."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_VPS_API_URL = "https://admin.vps.org/api/v1"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"

IdList = Annotated[tuple[str, ...], NoDecode]


class ConfigError(Exception):
    """A missing or invalid setting; the message names the variable, never its value."""


class Settings(BaseSettings):
    """Everything the bot reads from its environment (see docs/architecture.md, Configuration)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

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
    vpsbot_poll_interval: float = Field(default=15.0, gt=0)
    vpsbot_require_reason: bool = False
    vpsbot_channels: IdList = ()
    vpsbot_operators: IdList = ()
    # seconds a user group's membership may be reused for a decision (never older when Slack fails)
    vpsbot_directory_ttl: float = Field(default=60.0, ge=0, le=3600)

    @field_validator("vpsbot_approvers", "vpsbot_channels", "vpsbot_operators", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(
                part.strip() for part in value.replace(" ", ",").split(",") if part.strip()
            )
        return value

    @field_validator("vps_api_url", "slack_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        async_database_url(value)  # raises ValueError for an unsupported scheme
        return value

    @property
    def async_database_url(self) -> str:
        return async_database_url(self.database_url)

    def require(self, *names: str) -> None:
        """Raise ConfigError naming the first of `names` that is unset or empty."""
        for name in names:
            value = getattr(self, name.lower())
            secret = value.get_secret_value() if isinstance(value, SecretStr) else value
            if not secret:
                raise ConfigError(f"{name.upper()} is required but not set")

    def require_for(self, mode: Literal["serve", "socket", "worker"]) -> None:
        needs = {
            "serve": ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "VPS_API_TOKEN"),
            "socket": ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "VPS_API_TOKEN"),
            "worker": ("SLACK_BOT_TOKEN", "VPS_API_TOKEN"),
        }[mode]
        self.require(*needs)


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


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; a bad value becomes a one-line ConfigError without the value."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "configuration"
        raise ConfigError(f"{name} is invalid: {first['msg']}") from None
