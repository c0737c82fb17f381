"""Settings: validated at start, with errors that name the variable and never its value."""

import pytest

from bot.config import ConfigError, Settings, async_database_url, load_settings


def test_defaults_are_the_embedded_ones() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite:///vpsbot.db"
    assert settings.vps_api_url == "https://admin.vps.org/api/v1"
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.port == 3000
    assert settings.vpsbot_required_approvals == 1
    assert settings.vpsbot_approval_ttl == 30
    assert settings.vpsbot_poll_interval == 15
    assert settings.vpsbot_approvers == ()


def test_id_lists_are_read_from_commas_or_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPSBOT_APPROVERS", "U1, U2 S3")
    monkeypatch.setenv("VPSBOT_CHANNELS", "")
    settings = load_settings()
    assert settings.vpsbot_approvers == ("U1", "U2", "S3")
    assert settings.vpsbot_channels == ()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VPSBOT_REQUIRED_APPROVALS", "zero-secret-value"),
        ("VPSBOT_APPROVAL_TTL", "-5"),
        ("PORT", "70000"),
        ("DATABASE_URL", "mysql://user:hunter2@db/x"),
        ("VPS_API_URL", "ftp://hunter2.example"),
    ],
)
def test_a_bad_value_names_the_variable_but_not_the_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"{name} is invalid")
    assert value not in message
    assert "hunter2" not in message


def test_serve_requires_the_slack_and_vps_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret")
    with pytest.raises(ConfigError, match=r"^SLACK_SIGNING_SECRET is required"):
        load_settings().require_for("serve")


def test_secrets_do_not_show_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    monkeypatch.setenv("VPS_API_TOKEN", "vps-very-secret")
    shown = repr(load_settings()) + str(load_settings().model_dump())
    assert "very-secret" not in shown


@pytest.mark.parametrize(
    ("url", "mapped"),
    [
        ("sqlite:///vpsbot.db", "sqlite+aiosqlite:///vpsbot.db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_plain_database_urls_map_to_async_drivers(url: str, mapped: str) -> None:
    assert async_database_url(url) == mapped
